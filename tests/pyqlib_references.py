"""pyqlib's own Alpha158 and Alpha360 handlers on the real Qlib store: the references of the parity tests.

Each reference is a set of parquet files in pytest's cache directory under a key that names its span and
codes (a stable digest: the same files serve every later run); a parity test reads the files, or builds its
reference when they are missing. Files are written to a temporary name and renamed, so a reader never sees
half a file.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl


@dataclass(frozen=True)
class Reference:
    """One handler's reference: its codes (``n_codes`` spread over CSI300's members), span and views."""

    name: str
    start: str
    end: str
    fit_end: str
    n_codes: int
    views: tuple[str, ...]

    def codes(self, qlib_dir: Path) -> list[str]:
        lines = (qlib_dir / "instruments" / "csi300.txt").read_text().split("\n")
        names = sorted({line.split("\t")[0] for line in lines if line.strip()})
        return names[:: len(names) // self.n_codes][: self.n_codes]

    def paths(self, cache_dir: Path, qlib_dir: Path) -> dict[str, Path]:
        codes = self.codes(qlib_dir)
        digest = hashlib.sha256(",".join(codes).encode()).hexdigest()[:10]
        key = f"{self.name}-{self.start}-{self.end}-{self.fit_end}-{len(codes)}-{digest}"
        folder = cache_dir / f"hq-{self.name}"
        return {view: folder / f"{key}-{view}.parquet" for view in self.views}


#: Alpha158 without processors (its raw features and label); Alpha360 raw and its default processors' views.
ALPHA158 = Reference("alpha158", "2017-01-01", "2019-12-31", "2018-12-31", 30, ("raw",))
#: Smaller than Alpha158: 12 codes over 7 months (the default processors fitted on the first four). Most of
#: pyqlib's time is its ProcessInf, a pandas replace per column per date (360 × ~140 calls of ~1.5 ms): 18
#: months took 107 s on a quiet machine.
ALPHA360 = Reference("alpha360", "2018-09-01", "2019-03-31", "2018-12-31", 12, ("raw", "infer", "learn"))
#: The label alone (no features: cheap) on 300 of CSI300's codes over three years, raw and after the
#: Alpha158 handler's learn processors (DropnaLabel, CSZScoreNorm of the label): dates hold over 128
#: codes, so pandas' sums take NumPy's pairwise path beyond one block.
LABEL = Reference("label", "2016-01-01", "2018-12-31", "2018-12-31", 300, ("raw", "learn"))
REFERENCES = (ALPHA158, ALPHA360, LABEL)


def _frame(df: Any) -> pl.DataFrame:
    df.columns = [c[1] if isinstance(c, tuple) else c for c in df.columns]
    frame = pl.from_pandas(df.reset_index()).rename({"instrument": "code"})
    return frame.with_columns(pl.col("datetime").cast(pl.Datetime("ms"))).sort("code", "datetime")


def build(ref: Reference, cache_dir: Path, qlib_dir: Path) -> dict[str, pl.DataFrame]:
    """Run pyqlib's handler (pyqlib initialised on ``qlib_dir``) and write the reference's files."""
    from qlib.contrib.data.handler import Alpha158, Alpha360
    from qlib.data.dataset.handler import DataHandlerLP

    span = {
        "instruments": ref.codes(qlib_dir),
        "start_time": ref.start,
        "end_time": ref.end,
        "fit_start_time": ref.start,
        "fit_end_time": ref.fit_end,
    }
    if ref is ALPHA158:
        handler = Alpha158(**span, infer_processors=[], learn_processors=[])
        frames = {"raw": _frame(handler.fetch(col_set="__all"))}
    elif ref is LABEL:  # Alpha158's label expression and default learn processors, without the features
        from qlib.data.dataset.processor import CSZScoreNorm, DropnaLabel

        config = {"label": (["Ref($close, -2)/Ref($close, -1) - 1"], ["LABEL0"])}
        label = DataHandlerLP(
            instruments=span["instruments"],
            start_time=ref.start,
            end_time=ref.end,
            data_loader={"class": "QlibDataLoader", "kwargs": {"config": config}},
            learn_processors=[DropnaLabel(), CSZScoreNorm(fields_group="label")],
        )
        keys = {"raw": DataHandlerLP.DK_R, "learn": DataHandlerLP.DK_L}
        frames = {view: _frame(label.fetch(col_set="__all", data_key=key)) for view, key in keys.items()}
    else:  # Qlib's default processors; the handler keeps the raw data too (DK_R)
        handler = Alpha360(**span)
        keys = {"raw": DataHandlerLP.DK_R, "infer": DataHandlerLP.DK_I, "learn": DataHandlerLP.DK_L}
        frames = {view: _frame(handler.fetch(col_set="__all", data_key=key)) for view, key in keys.items()}
    for view, path in ref.paths(cache_dir, qlib_dir).items():
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial")
        frames[view].write_parquet(partial)
        partial.replace(path)
    return frames


def load(ref: Reference, cache_dir: Path, qlib_dir: Path) -> dict[str, pl.DataFrame] | None:
    """The reference's frames when its files exist, else None."""
    paths = ref.paths(cache_dir, qlib_dir)
    if not all(p.is_file() for p in paths.values()):
        return None
    return {view: pl.read_parquet(p) for view, p in paths.items()}
