"""The count that tells how a Qlib store keeps ``$volume``: traded shares are whole numbers."""

from __future__ import annotations

import numpy as np

from hikyuu_qlib.stores.qlib.volume import EXACT_BELOW, whole_days


def _history(days: int = 500, *, seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """Traded shares (whole, odd lots included) and a forward factor that moves with splits and dividends."""
    rng = np.random.default_rng(seed)
    shares = np.round(1e5 * np.exp(rng.normal(0.0, 0.5, days)))
    factor = np.cumprod(np.where(rng.random(days) < 0.01, rng.uniform(1.02, 2.0, days), 1.0))
    return shares, (factor / factor[-1]).astype(np.float32).astype(np.float64)


def test_traded_volume_is_whole_and_adjusted_volume_is_not() -> None:
    shares, factor = _history()
    traded, days = whole_days(shares.astype(np.float32), factor)
    adjusted, same_days = whole_days((shares / factor).astype(np.float32), factor)
    assert days > 200 and same_days > 200
    assert traded == days
    assert adjusted < 0.2 * same_days


def test_only_days_where_the_conventions_differ_and_float32_is_exact_count() -> None:
    shares, factor = _history()
    ones = np.ones_like(factor)
    assert whole_days(shares, ones) == (0, 0)  # factor 1: both conventions give the same shares
    huge = np.full(10, EXACT_BELOW * 2)
    assert whole_days(huge, np.full(10, 0.5)) == (0, 0)  # float32 cannot tell whole numbers there
    suspended = shares.copy()
    suspended[:100] = np.nan
    moved = np.abs(factor - 1.0) >= 0.01
    assert whole_days(suspended, factor)[1] == int(moved[100:].sum())
