"""The embedded synthetic market: ``synthetic[:SEED]`` sources, ``hq demo`` and users without data.

A deterministic, seeded market of A-share-like stocks with realistic day bars (market, sector and
fat-tailed idiosyncratic returns with volatility clustering, 0.01 ticks, daily limits, suspensions,
dividends and bonus shares) and a weak planted cross-sectional signal (5-day reversal plus a slow
latent quality visible in abnormal turnover) so that a model has something to learn. It is a stand-in
for demos and smoke runs, never a substitute for real data in tests of real-data behaviour.

Modules: :mod:`.calendar` (trading days), :mod:`.universe` (stock list), :mod:`.prices` (the close
pass and the return model), :mod:`.bars` (OHLCV, shares, weights), :mod:`.index` (the equal-weight
market index ``SH000001``, the benchmark), :mod:`.members` (universes), :mod:`.periods` (week … year
bars), :mod:`.store` (the ``MarketData`` adapter).
"""

from hikyuu_qlib.stores.synthetic.store import GENERATOR_VERSION, KTYPES, SyntheticStore

__all__ = ["GENERATOR_VERSION", "KTYPES", "SyntheticStore"]
