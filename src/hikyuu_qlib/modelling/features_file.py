"""A user's own features frame (``hq model train --features FILE.parquet --label COL``).

The file holds one row per (datetime, code): ``datetime``, ``code``, the feature columns (numbers) and
the label column. It becomes a features frame as :func:`~hikyuu_qlib.factors.pipeline.compute_features`
makes them: the label renamed ``LABEL0``, codes upper-case, features as float64.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from hikyuu_qlib.domain.errors import InvalidInputError
from hikyuu_qlib.domain.schema import DATETIME
from hikyuu_qlib.factors.label import LABEL


def read_features_file(path: str | Path, label: str | None) -> pl.DataFrame:
    """The frame of ``path`` (Parquet) with ``label`` as the label (``None``: rows to score, no label); a
    clear error naming the file and the column for anything missing or malformed."""
    source = Path(path)
    if not source.is_file():
        raise InvalidInputError(f"no features file {str(source)!r}")
    try:
        frame = pl.read_parquet(source)
    except Exception as exc:  # polars raises several kinds for a file that is not Parquet
        raise InvalidInputError(f"{source}: not a readable Parquet file ({exc})") from None
    keys = ("datetime", "code") if label is None else ("datetime", "code", label)
    missing = [c for c in keys if c not in frame.columns]
    if missing:
        raise InvalidInputError(
            f"{source}: missing column(s) {', '.join(missing)} (a features file has datetime, code, the "
            f"features and the label {label!r}; it has {', '.join(frame.columns[:12])})"
        )
    features = [c for c in frame.columns if c not in keys]
    if not features:
        raise InvalidInputError(f"{source}: no feature column besides datetime, code and {label!r}")
    if LABEL in features:
        raise InvalidInputError(f"{source}: a feature column is named {LABEL}, the name the label takes")
    bad = [c for c in (*features, *keys[2:]) if not frame.schema[c].is_numeric()]
    if bad:
        raise InvalidInputError(f"{source}: column(s) {', '.join(bad)} are not numbers")
    kind = frame.schema["datetime"]
    if kind == pl.String:
        when = pl.col("datetime").str.to_datetime(strict=False)
    elif kind in (pl.Date,) or isinstance(kind, pl.Datetime):
        when = pl.col("datetime").cast(pl.Datetime("us"))
    else:
        raise InvalidInputError(f"{source}: column datetime is {kind}, not dates")
    out = frame.select(
        when.cast(DATETIME).alias("datetime"),
        pl.col("code").cast(pl.String).str.to_uppercase().alias("code"),
        *[pl.col(c).cast(pl.Float64) for c in features],
        (pl.lit(None, pl.Float64) if label is None else pl.col(label).cast(pl.Float64)).alias(LABEL),
    )
    if out.get_column("datetime").null_count():
        raise InvalidInputError(f"{source}: column datetime has values that are not dates")
    if out.select(pl.struct("datetime", "code").is_duplicated().any()).item():
        raise InvalidInputError(f"{source}: more than one row for some (datetime, code)")
    return out.sort("datetime", "code")
