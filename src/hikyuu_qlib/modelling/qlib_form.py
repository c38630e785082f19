"""To and from Qlib's pandas form: a Series/DataFrame on a MultiIndex ``(datetime, instrument)``.

Qlib's strategies (``TopkDropoutStrategy(signal=...)``) and ``calc_ic`` take predictions in that form:
``datetime`` is ``datetime64[ns]``, ``instrument`` the upper-case code (``SH600000``), sorted.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import polars as pl

from hikyuu_qlib.domain.errors import InvalidInputError
from hikyuu_qlib.domain.schema import DATETIME

PREDICTION_SCHEMA: dict[str, pl.DataType] = {"datetime": DATETIME, "code": pl.String(), "score": pl.Float64()}


def to_qlib(frame: pl.DataFrame, columns: str | Sequence[str] = "score") -> Any:
    """``(datetime, code, value…)`` → pandas indexed by ``(datetime, instrument)``, sorted.

    One column name gives a Series named after it; a list gives a DataFrame.
    """
    import pandas as pd  # type: ignore[import-untyped,unused-ignore]

    names = [columns] if isinstance(columns, str) else list(columns)
    missing = [c for c in ("datetime", "code", *names) if c not in frame.columns]
    if missing:
        raise InvalidInputError(f"frame lacks column(s) {', '.join(missing)}")
    ordered = frame.sort("datetime", "code")
    index = pd.MultiIndex.from_arrays(
        [
            pd.DatetimeIndex(
                ordered.get_column("datetime").cast(pl.Datetime("ns")).to_numpy(), name="datetime"
            ),
            pd.Index(ordered.get_column("code").to_numpy(), name="instrument"),
        ]
    )
    if isinstance(columns, str):
        return pd.Series(ordered.get_column(columns).to_numpy(), index=index, name=columns)
    return pd.DataFrame({c: ordered.get_column(c).to_numpy() for c in names}, index=index)


def from_qlib(obj: Any, name: str = "score") -> pl.DataFrame:
    """Qlib's ``(datetime, instrument)`` Series/DataFrame → ``datetime, code, <columns>`` (polars).

    A Series becomes column ``name``; a DataFrame keeps its column names (flattened when MultiIndex).
    """
    import pandas as pd  # type: ignore[import-untyped,unused-ignore]

    index = obj.index
    if not isinstance(index, pd.MultiIndex) or index.nlevels != 2:
        raise InvalidInputError("expected a (datetime, instrument) MultiIndex")
    levels = list(index.names)
    dt_level = levels.index("datetime") if "datetime" in levels else 0
    inst_level = 1 - dt_level
    data: dict[str, object] = {
        "datetime": pl.Series("datetime", index.get_level_values(dt_level).to_numpy()).cast(DATETIME),
        "code": pl.Series("code", index.get_level_values(inst_level).astype(str).to_numpy(), dtype=pl.String),
    }
    if isinstance(obj, pd.Series):
        data[name] = pl.Series(name, obj.to_numpy(dtype="float64"))
    else:
        for col in obj.columns:
            key = col[-1] if isinstance(col, tuple) else str(col)
            data[str(key)] = pl.Series(str(key), obj[col].to_numpy())
    return pl.DataFrame(data).sort("datetime", "code")
