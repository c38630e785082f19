"""Qlib fields -> platform bars (``BAR_SCHEMA`` plus ``factor``).

Qlib stores adjusted prices: ``$close = original × $factor`` and ``$volume = original / $factor``.

* ``Adjust.NONE``: original traded prices (``$price / $factor``) and shares (``$volume × $factor``).
* ``Adjust.FORWARD`` (前复权): prices scaled so that the instrument's LAST bar (the last day with a close
  in the whole bin, not just the requested window) shows its original price:
  ``$price / factor_last``; volume ``$volume × factor_last``.
* ``Adjust.BACKWARD`` (后复权): the FIRST bar shows its original price: ``$price / factor_first``;
  volume ``$volume × factor_first``.

In every mode price × volume is preserved, so turnover stays consistent. ``amount`` comes from the
store's ``amount`` field when it has one (yuan, never adjusted), else null. ``factor`` is the store's
``$factor`` unchanged (1.0 when the instrument has no factor bin). Days where ``$close`` is NaN
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
) -> pl.DataFrame:
    """Bars of one instrument from its full-history field columns (aligned on ``datetimes``)."""
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
    data["volume"] = values["volume"].astype(np.float64)[traded] * scale
    if "amount" in values:
        data["amount"] = values["amount"].astype(np.float64)[traded]
    data["factor"] = factor
    return conform_bars(pl.DataFrame(data))
