"""Qlib fields -> platform bars (``BAR_SCHEMA`` plus ``factor``).

Qlib stores adjusted prices, ``$close = original × $factor``, and in its own convention adjusted volumes,
``$volume = original / $factor``; some data sets scale the volume like the prices instead,
``$volume = original × $factor`` (see :mod:`.volume`: ``exponent`` is 1 for the first, −1 for the second,
and the traded shares are ``$volume × $factor ** exponent``).

* ``Adjust.NONE``: original traded prices (``$price / $factor``) and shares.
* ``Adjust.FORWARD`` (前复权): prices scaled so that the instrument's LAST bar (the last day with a close
  in the whole bin, not just the requested window) shows its original price:
  ``$price / factor_last``; volume ``shares × factor_last / $factor`` (Qlib's adjusted volume, rescaled
  the same way).
* ``Adjust.BACKWARD`` (后复权): the FIRST bar shows its original price: ``$price / factor_first``;
  volume ``shares × factor_first / $factor``.

In every mode price × volume is preserved, so turnover stays consistent. ``amount`` comes from the
store's ``amount`` field when it has one (yuan, never adjusted), else null. ``factor`` is the store's
``$factor`` unchanged (1.0 only in a store that has no factor bin at all: see :mod:`.store`). Days where ``$close`` is NaN
(suspensions, padding) are dropped from bars; :meth:`QlibStore.features` keeps them as Qlib does.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import polars as pl

from hikyuu_qlib.domain import Adjust, DataFormatError
from hikyuu_qlib.domain.schema import DATETIME, conform_bars

PRICE_FIELDS = ("open", "high", "low", "close")


def to_bars(
    code: str,
    datetimes: npt.NDArray[np.datetime64],
    values: dict[str, npt.NDArray[np.float32]],
    adjust: Adjust,
    exponent: int = 1,
) -> pl.DataFrame:
    """Bars of one instrument from its full-history field columns (aligned on ``datetimes``);
    ``exponent``: traded shares are ``$volume × $factor ** exponent``."""
    close = values["close"].astype(np.float64)
    traded = ~np.isnan(close)
    if "factor" in values:
        factor = values["factor"].astype(np.float64)
    else:
        factor = np.ones(len(close), dtype=np.float64)
    bad = traded & ~(factor > 0)
    if bad.any():
        when = np.datetime_as_string(datetimes[np.flatnonzero(bad)[0]], unit="D")
        raise DataFormatError(
            f"instrument {code}: field 'factor' is missing or not positive on {when} where close is set"
        )
    factor = factor[traded]
    if adjust is Adjust.NONE or len(factor) == 0:
        scale = factor
    elif adjust is Adjust.FORWARD:
        scale = np.full(len(factor), factor[-1])
    else:
        scale = np.full(len(factor), factor[0])
    data: dict[str, object] = {
        "code": pl.Series("code", [code], dtype=pl.String).gather(np.zeros(len(factor), dtype=np.int64)),
        "datetime": pl.Series("datetime", datetimes[traded]).cast(DATETIME),
    }
    for name in PRICE_FIELDS:
        data[name] = values[name].astype(np.float64)[traded] / scale
    volume = values["volume"].astype(np.float64)[traded]
    data["volume"] = volume * scale if exponent == 1 else volume * factor**exponent * scale / factor
    if "amount" in values:
        data["amount"] = values["amount"].astype(np.float64)[traded]
    data["factor"] = factor
    return conform_bars(pl.DataFrame(data))


def frame_to_bars(
    raw: pl.DataFrame, adjust: Adjust, exponent: int = 1
) -> tuple[pl.DataFrame, dict[str, str]]:
    """Bars of many instruments at once from their full-history fields (``code, datetime, open, …,
    factor[, amount]`` as :meth:`QlibStore.features` returns them), with the semantics of
    :func:`to_bars`; instruments whose factor is missing or not positive where a close is set are
    returned as errors instead."""
    traded = raw.filter(pl.col("close").is_not_nan())
    factor = pl.col("factor").cast(pl.Float64)
    volume = pl.col("volume").cast(pl.Float64)
    bad = traded.filter(~(factor > 0)).group_by("code").agg(pl.col("datetime").min())
    errors = {
        code: f"instrument {code}: field 'factor' is missing or not positive on {when:%Y-%m-%d} where close is set"
        for code, when in bad.iter_rows()
    }
    if errors:
        traded = traded.filter(~pl.col("code").is_in(list(errors)))
    if adjust is Adjust.NONE:
        scale = factor
    elif adjust is Adjust.FORWARD:
        scale = factor.last().over("code")
    else:
        scale = factor.first().over("code")
    out = traded.with_columns(
        *[(pl.col(c).cast(pl.Float64) / scale).alias(c) for c in PRICE_FIELDS],
        (volume * scale if exponent == 1 else volume * factor.pow(exponent) * scale / factor).alias("volume"),
        factor.alias("factor"),
    )
    return conform_bars(out), errors
