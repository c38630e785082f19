"""The research pipeline over a :class:`~hikyuu_qlib.cache.blocks.BlockSet`, one date block at a time.

The in-memory path (:mod:`hikyuu_qlib.modelling.dataset`) holds the whole features frame; this one never
does. A :class:`BlockDataset` gives the same processed views block by block: each block holds whole
dates in (datetime, code) order, so every per-date processor (``dropna_label``, ``cs_zscore``,
``cs_rank``, ``fillna``, ``process_inf``) gives exactly the rows and values it gives on the whole
frame. ``robust_zscore`` is fitted on the train rows one column at a time (a column's median and MAD do
not depend on the other columns).

Training writes each segment's learn view once, block by block, as a float32 row-major file and hands
LightGBM a :class:`lightgbm.Sequence` over it (positioned reads, no memory map): LightGBM samples its bin
boundaries from the same rows and bins the rows batch by batch, so the float matrix is never in memory,
and the model is the one the in-memory path trains for the same seed and parameters. Metrics and
predictions stream by block too: IC and Rank IC are per date, the mean squared errors are sums.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl

from hikyuu_qlib.cache.blocks import BlockSet
from hikyuu_qlib.domain import DateRange
from hikyuu_qlib.domain.errors import InvalidInputError
from hikyuu_qlib.domain.segments import Segments
from hikyuu_qlib.factors.chunked import build_feature_blocks, estimate_in_memory
from hikyuu_qlib.factors.label import LABEL
from hikyuu_qlib.factors.processors import (
    KEYS,
    CSRankNorm,
    CSZScoreNorm,
    Fillna,
    ProcessInf,
    Processor,
    ProcessorChain,
    RobustZScoreNorm,
)
from hikyuu_qlib.factors.sizing import feature_rows
from hikyuu_qlib.factors.universe import Universe
from hikyuu_qlib.memory import MemoryBudget, PeakRss, release_freed_memory
from hikyuu_qlib.modelling import metrics as model_metrics
from hikyuu_qlib.modelling import trainer
from hikyuu_qlib.modelling.dataset import RAW_LABEL, build_chain, encode_state, labels, matrix
from hikyuu_qlib.modelling.presets import ProcessorStep
from hikyuu_qlib.modelling.scratch import remove_stale_scratch, scratch_dir, scratch_root
from hikyuu_qlib.ports import FeatureSource, Progress

log = logging.getLogger(__name__)

F32 = npt.NDArray[np.float32]
#: Rows turned into one float matrix at a time (about 32 MB of Alpha158, twice that with its copy).
SLICE_ROWS = 50_000
#: Rows LightGBM reads from a row file at a time (about 5 MB of Alpha158).
BATCH_ROWS = 8192


@dataclass
class Bounded:
    """How a run stays within a memory budget: where feature blocks and scratch files go (``scratch``:
    by default ``<cache_dir>/scratch``, see :mod:`.scratch`), and each stage's peak RSS. ``always``: take
    the bounded path even when the run would fit in memory. ``reuse``: reuse a block set built before
    (False under ``--no-cache``: it is computed again)."""

    budget: MemoryBudget
    cache_dir: Path
    scratch: Path | None = None
    always: bool = False
    reuse: bool = True
    peaks: PeakRss = field(default_factory=PeakRss)
    used: bool = False  # whether a stage took the bounded path
    rows: RowCache | None = None  # row files shared by trainings (see :meth:`sharing_rows`)

    @property
    def scratch_root(self) -> Path:
        return self.scratch if self.scratch is not None else scratch_root(self.cache_dir)

    def fits(self, store: FeatureSource, universe: Universe, dates: DateRange) -> bool:
        """Whether the in-memory path fits the budget for ``universe`` over ``dates`` (it is then taken:
        it is faster, and its results are the same)."""
        if self.always:
            return False
        rows = feature_rows(universe, store, store.calendar(dates=dates))
        need = estimate_in_memory(rows)
        fits = self.budget.fits(need)
        log.info("the in-memory path needs ~%d MB for at most %d rows (budget %d MB): %s path", need >> 20, rows,
                 self.budget.bytes >> 20, "in-memory" if fits else "bounded")  # fmt: skip
        return fits

    def check_training(
        self,
        store: FeatureSource,
        universe: Universe,
        segments: Segments,
        factor_set: str,
        params: Mapping[str, Any],
    ) -> None:
        """Refuse, before any work, a training run whose LightGBM data cannot fit the budget
        (:class:`MemoryBudgetError` for stage ``train``); its rows are bounded by the member-days with data."""
        from hikyuu_qlib.factors.pipeline import get_factor_set

        rows = {
            name: feature_rows(universe, store, store.calendar(dates=segments[name]))
            for name in ("train", "valid")
            if name in segments
        }
        width = get_factor_set(factor_set).width
        plan_training(self.budget, rows.get("train", 0), rows.get("valid", 0), width, params)

    def features(
        self,
        store: FeatureSource,
        universe: Universe,
        dates: DateRange,
        factor_set: str,
        *,
        label: bool = True,
        skip_failed: bool = False,
    ) -> BlockSet:
        """The features as a block set (see :func:`build_feature_blocks`; ``skip_failed``: the codes that
        fail to load are left out and named in its ``errors``, else :class:`LoadErrors` names them)."""
        from hikyuu_qlib.kernel_cache import warm_kernels

        self.used = True
        remove_stale_scratch(self.scratch_root)  # left by a bounded run that was killed
        warm_kernels(factor_set)  # compiled in a child when numba's cache is cold: not the run's memory
        return build_feature_blocks(
            store, universe, dates, self.cache_dir, budget=self.budget, factor_set=factor_set, label=label,
            skip_failed=skip_failed, reuse=self.reuse,
        )  # fmt: skip

    def stage(self, name: str) -> AbstractContextManager[None]:
        return self.peaks.stage(name)

    @contextmanager
    def sharing_rows(self) -> Iterator[None]:
        """Within it, the trainings on one dataset (a model selection's candidates and seeds) write its
        row files once and read them again; they are removed at its end."""
        with scratch_dir(self.scratch_root) as directory:
            self.rows = RowCache(directory)
            try:
                yield
            finally:
                self.rows = None


@dataclass
class BlockDataset:
    """The processed views of a block set, block by block (see the module docstring)."""

    blocks: BlockSet
    segments: Segments
    features: list[str]
    infer_steps: tuple[ProcessorStep, ...]
    infer_chain: ProcessorChain
    learn_chain: ProcessorChain
    learn_steps: tuple[ProcessorStep, ...] = ()

    @classmethod
    def prepare(
        cls,
        blocks: BlockSet,
        segments: Segments | Mapping[str, DateRange],
        *,
        infer: Sequence[ProcessorStep] = (),
        learn: Sequence[ProcessorStep] = (),
    ) -> BlockDataset:
        segments = Segments.of(segments)
        if "train" not in segments:
            raise InvalidInputError("a dataset needs a train segment")
        features = [c for c in blocks.columns if c not in KEYS and c != LABEL]
        infer_chain, learn_chain = build_chain(infer, features), build_chain(learn, features)
        train = segments["train"]
        if (infer_chain.steps or learn_chain.steps) and not blocks.between(train):
            raise InvalidInputError(f"no rows in the fit window {train}")
        _fit_columnwise(infer_chain, ProcessorChain([]), blocks, train)
        _fit_columnwise(learn_chain, infer_chain, blocks, train)
        return cls(blocks, segments, features, tuple(infer), infer_chain, learn_chain, tuple(learn))

    def span(self, segment: str) -> DateRange:
        if segment not in self.segments:
            raise InvalidInputError(f"no {segment!r} segment (have {', '.join(self.segments)})")
        return self.segments[segment]

    def infer_frames(self, segment: str) -> Iterator[pl.DataFrame]:
        """The infer view of one segment (features infer-processed, ``LABEL0`` and ``LABEL_RAW`` raw)."""
        for raw in self.blocks.iter_frames(self.span(segment)):
            yield self.infer_chain.transform(raw).with_columns(raw.get_column(LABEL).alias(RAW_LABEL))

    def learn_frames(self, segment: str) -> Iterator[pl.DataFrame]:
        """The learn view of one segment: the learn processors on top of the infer view."""
        for inferred in self.infer_frames(segment):
            yield self.learn_chain.transform(inferred)

    def both_frames(self, segment: str) -> Iterator[tuple[pl.DataFrame, pl.DataFrame]]:
        for inferred in self.infer_frames(segment):
            yield inferred, self.learn_chain.transform(inferred)

    def state_bytes(self) -> bytes:
        return encode_state(self.infer_steps, self.infer_chain, self.features)

    def views_key(self) -> str:
        """What the learn views depend on: the block set, the segments, both fitted processor chains."""
        digest = hashlib.sha256(str(self.blocks.path).encode())
        for name, span in self.segments.items():
            digest.update(f"|{name}={span}".encode())
        digest.update(self.state_bytes())
        digest.update(encode_state(self.learn_steps, self.learn_chain, self.features))
        return digest.hexdigest()


class _Identity:
    def fit(self, frame: pl.DataFrame) -> None:
        return None

    def transform(self, frame: pl.DataFrame) -> pl.DataFrame:
        return frame


def _restricted(step: Processor, column: str) -> Processor:
    """``step`` acting on ``column`` alone (every processor here treats each column on its own)."""
    if isinstance(step, RobustZScoreNorm):
        if column not in step.median:
            return _Identity()
        return RobustZScoreNorm([column], step.clip_outlier, {column: step.median[column]},
                                {column: step.scale[column]})  # fmt: skip
    if isinstance(step, CSZScoreNorm | CSRankNorm | Fillna | ProcessInf) and step.columns is not None:
        return replace(step, columns=[column] if column in step.columns else [])
    return step  # dropna_label, or a step on every feature column (here: the one column)


def _fit_columnwise(
    chain: ProcessorChain, before: ProcessorChain, blocks: BlockSet, train: DateRange
) -> None:
    """Fit each ``robust_zscore`` step of ``chain`` on the train rows, one column at a time: the column's
    train rows of every block, through ``before`` and the chain's earlier steps restricted to it. The
    median and MAD of a column are those of the whole train window (what the in-memory fit computes)."""
    for k, step in enumerate(chain.steps):
        if not isinstance(step, RobustZScoreNorm):
            continue
        columns = list(step.columns) if step.columns is not None else [c for c in blocks.columns
                                                                         if c not in KEYS and c != LABEL]  # fmt: skip
        medians: dict[str, float] = {}
        scales: dict[str, float] = {}
        for column in columns:
            steps = [_restricted(p, column) for p in (*before.steps, *chain.steps[:k])]
            wanted = list(dict.fromkeys(["datetime", "code", column, LABEL]))
            parts = []
            for frame in blocks.iter_frames(train, wanted):
                for p in steps:
                    frame = p.transform(frame)
                parts.append(frame.select(column))
            one = RobustZScoreNorm([column], step.clip_outlier)
            one.fit(pl.concat(parts))
            medians.update(one.median)
            scales.update(one.scale)
        step.median, step.scale = medians, scales


# --- training from files of rows --------------------------------------------------------------------------


@dataclass
class RowFile:
    """A float32 row-major matrix on disk (``rows`` × ``ncol``) and its labels in memory."""

    path: Path
    rows: int
    ncol: int
    labels: F32


@dataclass
class RowCache:
    """Row files kept in ``directory`` for several trainings, by :meth:`BlockDataset.views_key`."""

    directory: Path
    files: dict[str, tuple[RowFile, RowFile | None]] = field(default_factory=dict)


def write_rows(
    frames: Iterator[pl.DataFrame], features: Sequence[str], path: Path, slice_rows: int = SLICE_ROWS
) -> RowFile:
    """Append each frame's feature matrix to ``path`` (``slice_rows`` rows of it at a time); keep the
    labels."""
    rows = 0
    found: list[F32] = []
    with path.open("wb") as out:
        for frame in frames:
            for part in frame.iter_slices(slice_rows):  # a slice's matrix at a time, not the block's
                np.ascontiguousarray(matrix(part, features)).tofile(out)
            found.append(labels(frame))
            rows += frame.height
    y = np.concatenate(found) if found else np.empty(0, dtype=np.float32)
    return RowFile(path, rows, len(features), y)


def row_sequence(rows: RowFile, batch_rows: int = BATCH_ROWS) -> Any:
    """A :class:`lightgbm.Sequence` over a :class:`RowFile` (positioned reads of ``batch_rows`` rows; close
    it when done)."""
    import lightgbm as lgb

    class RowSequence(lgb.Sequence):
        batch_size = max(1, batch_rows)

        def __init__(self) -> None:
            self.fd = os.open(rows.path, os.O_RDONLY)
            self.width = rows.ncol * 4
            self.window_start = 0
            self.window = np.empty((0, rows.ncol), dtype=np.float32)

        def __len__(self) -> int:
            return rows.rows

        def _read(self, start: int, count: int) -> F32:
            want = count * self.width
            data = bytearray()
            while len(data) < want:
                got = os.pread(self.fd, want - len(data), start * self.width + len(data))
                if not got:
                    raise InvalidInputError(f"{rows.path}: ends before row {start + count}")
                data += got
            return np.frombuffer(data, dtype=np.float32).reshape(count, rows.ncol)

        def __getitem__(self, idx: Any) -> Any:
            if isinstance(idx, int | np.integer):
                # one sampled row (LightGBM samples bin boundaries from float64 rows, in increasing
                # order): served from a window of rows read at once, so sampling reads the file in order
                i = int(idx)
                if not self.window_start <= i < self.window_start + len(self.window):
                    self.window_start = i
                    self.window = self._read(i, min(self.batch_size, rows.rows - i))
                return self.window[i - self.window_start].astype(np.float64)
            if isinstance(idx, slice):
                start, stop, step = idx.indices(rows.rows)
                if step != 1:
                    raise InvalidInputError("row files are read in contiguous batches")
                return self._read(start, max(0, stop - start))
            return np.stack([self[int(i)] for i in idx])

        def close(self) -> None:
            self.window = np.empty((0, rows.ncol), dtype=np.float32)
            os.close(self.fd)

    return RowSequence()


#: LightGBM's bytes per training row besides its bins (label, gradient, hessian, score, partition
#: indices …) and per validation row besides its bins (label, score); measured (see :func:`lightgbm_bytes`).
LGB_TRAIN_ROW_BYTES = 40
LGB_VALID_ROW_BYTES = 16
#: Bytes per sampled value while LightGBM picks its bin boundaries from a Sequence: each sampled row as a
#: float64 array in a list, then the same rows as one float64 matrix with each column's values (float64)
#: and row indices (int32); measured.
LGB_SAMPLING_BYTES = 21
#: Bytes per sampled value kept until every row is binned (each column's values and row indices).
LGB_SAMPLE_KEPT_BYTES = 12
#: LightGBM's fixed cost (its library state, the booster) besides the histograms; measured.
LGB_FIXED_BYTES = 32 << 20


@dataclass(frozen=True, slots=True)
class TrainPlan:
    """How a bounded training run reads its rows: matrix slices written at a time, LightGBM's batches,
    and the bytes LightGBM's own data takes."""

    lightgbm_bytes: int
    slice_rows: int = SLICE_ROWS
    batch_rows: int = BATCH_ROWS


def lightgbm_bytes(train_rows: int, valid_rows: int, features: int, params: Mapping[str, Any]) -> int:
    """What LightGBM holds at its peak while it trains from row files (:class:`lightgbm.Sequence`), in bytes.

    With ``S = min(train_rows, bin_construct_sample_cnt) × features`` sampled values, ``b`` bytes per
    bin (1 with ``max_bin`` ≤ 255, else 2) and ``T = b × train_rows × features + 40 × train_rows`` (the
    binned training rows, their labels, gradients, scores and partition indices), the peak of three
    phases, plus 32 MB:

    - choosing the bin boundaries: ``21 × S`` (the sampled rows as float64 arrays, then as a matrix, then
      each column's values and row indices);
    - binning the rows: ``12 × S + T`` (the sample's columns are kept until every row is binned);
    - training: ``T + b × valid_rows × features + 16 × valid_rows + num_leaves × features × (max_bin + 1)
      × 16`` (the binned validation rows with their labels and scores, and a float64 gradient and hessian
      histogram per leaf).

    Measured with LightGBM 4.7 on float32 rows (2% NaN, every feature with its 255 bins) of 158 features
    and Qlib's parameters (``num_leaves`` 210), a validation set a quarter of the training rows
    (``benchmarks/lightgbm_memory.py``): peaks of 158, 575, 611, 602 and 747 MB for 50 k, 200 k, 400 k,
    1 M and 2 M training rows, where this estimate gives 190, 665, 665, 665 and 771 MB."""
    max_bin = int(params.get("max_bin", 255))
    bins = 1 if max_bin <= 255 else 2
    leaves = int(params.get("num_leaves", 31))
    sample = min(train_rows, int(params.get("bin_construct_sample_cnt", 200_000))) * features
    train = bins * train_rows * features + LGB_TRAIN_ROW_BYTES * train_rows
    valid = bins * valid_rows * features + LGB_VALID_ROW_BYTES * valid_rows
    histograms = leaves * features * (max_bin + 1) * 16
    sampling = LGB_SAMPLING_BYTES * sample
    binning = LGB_SAMPLE_KEPT_BYTES * sample + train
    training = train + valid + histograms
    return max(sampling, binning, training) + LGB_FIXED_BYTES


def plan_training(
    budget: MemoryBudget | None, train_rows: int, valid_rows: int, features: int, params: Mapping[str, Any]
) -> TrainPlan:
    """LightGBM's bytes for these rows, and the slices and batches that fit next to them in ``budget``;
    :class:`MemoryBudgetError` (stage ``train``) when not even one row does."""
    need = lightgbm_bytes(train_rows, valid_rows, features, params)
    if budget is None:
        return TrainPlan(need)
    labels = 4 * (train_rows + valid_rows)  # kept in memory while the row files are written
    # a batch: its bytes read, the float32 rows LightGBM bins (and, while sampling, one row as float64)
    batch = budget.plan("train", 3 * 4 * features, BATCH_ROWS, fixed=need)
    # a slice: its float32 matrix, and the contiguous copy written out
    slices = budget.plan("train", 2 * 4 * features, SLICE_ROWS, fixed=labels)
    log.info("training: LightGBM needs ~%d MB for %d + %d rows × %d features; batches of %d rows, slices of %d",
             need >> 20, train_rows, valid_rows, features, batch, slices)  # fmt: skip
    return TrainPlan(need, slices, batch)


def segment_rows(blocks: BlockSet, dates: DateRange) -> int:
    """The rows of ``blocks`` within ``dates`` (a block across an edge: its dates column is counted)."""
    total = 0
    for i in blocks.between(dates):
        info = blocks.blocks[i]
        if dates.start <= info.start and info.end <= dates.end:
            total += info.rows
        else:
            total += blocks.read(i, ["datetime"], dates).height
    return total


def train_blocks(
    data: BlockDataset,
    params: Mapping[str, Any],
    *,
    num_boost_round: int = 1000,
    early_stopping_rounds: int = 50,
    scratch: Path | None = None,
    progress: Progress | None = None,
    budget: MemoryBudget | None = None,
    rows: RowCache | None = None,
) -> trainer.TrainResult:
    """LightGBM on the learn view of ``train`` (early stopping on ``valid`` when there is one), read from
    row files through :func:`row_sequence`. With ``budget``, LightGBM's own data (:func:`lightgbm_bytes`)
    must fit it (:class:`MemoryBudgetError` for stage ``train`` before any row is written), and the row
    slices and LightGBM's batches are sized to what it leaves. With ``rows``, the row files of these
    views are taken from it when an earlier training wrote them, else written there and kept."""
    valid_rows = segment_rows(data.blocks, data.segments["valid"]) if "valid" in data.segments else 0
    plan = plan_training(
        budget, segment_rows(data.blocks, data.segments["train"]), valid_rows, len(data.features), params
    )
    key = data.views_key()
    where: AbstractContextManager[Path] = (
        scratch_dir(scratch) if rows is None else nullcontext(rows.directory)
    )
    with where as tmp:
        found = None if rows is None else rows.files.get(key)
        if found is None:
            prefix = "" if rows is None else f"{key[:16]}-"
            found = write_row_files(data, tmp, prefix, plan.slice_rows)
            if rows is not None:
                rows.files[key] = found
        else:
            log.info("training rows: the row files written for an earlier training")
        train, valid = found
        seqs = [row_sequence(train, plan.batch_rows)]
        if valid is not None:
            seqs.append(row_sequence(valid, plan.batch_rows))
        try:
            return trainer.train_lightgbm(
                (seqs[0], train.labels),
                None if valid is None else (seqs[1], valid.labels),
                params,
                num_boost_round=num_boost_round,
                early_stopping_rounds=early_stopping_rounds,
                progress=progress,
            )
        finally:
            for seq in seqs:
                seq.close()
            release_freed_memory()  # LightGBM's datasets are freed: hand their pages back


def write_row_files(
    data: BlockDataset, directory: Path, prefix: str, slice_rows: int
) -> tuple[RowFile, RowFile | None]:
    """The learn views of ``train`` and ``valid`` (when there is one) as row files in ``directory``."""
    train = write_rows(
        data.learn_frames("train"), data.features, directory / f"{prefix}train.f32", slice_rows
    )
    valid = None
    if "valid" in data.segments:
        valid = write_rows(
            data.learn_frames("valid"), data.features, directory / f"{prefix}valid.f32", slice_rows
        )
    log.info("training rows written: train %d, valid %d", train.rows, 0 if valid is None else valid.rows)
    return train, valid


# --- metrics and predictions, block by block -------------------------------------------------------------


@dataclass
class SignalAccumulator:
    """:func:`~hikyuu_qlib.modelling.metrics.signal_metrics`, fed one block (whole dates) at a time."""

    daily: list[pl.DataFrame] = field(default_factory=list)
    sums: dict[str, list[float]] = field(default_factory=dict)  # label column -> [sum of squares, count]
    rows: int = 0

    def add(self, scored: pl.DataFrame, label_columns: Sequence[str]) -> None:
        self.daily.append(model_metrics.daily_ic(scored))
        for column in label_columns:
            pairs = scored.filter(
                pl.col(model_metrics.SCORE).is_finite()
                & pl.col(column).is_not_null()
                & pl.col(column).is_finite()
            )
            sq = pairs.select(
                ((pl.col(model_metrics.SCORE).cast(pl.Float64) - pl.col(column).cast(pl.Float64)) ** 2).sum()
            ).item()
            acc = self.sums.setdefault(column, [0.0, 0.0])
            acc[0] += float(sq or 0.0)
            acc[1] += pairs.height
        self.rows += scored.height

    def daily_frame(self) -> pl.DataFrame:
        if not self.daily:
            return pl.DataFrame(schema={"datetime": pl.Datetime("ms"), "ic": pl.Float64, "rank_ic": pl.Float64,
                                        "n": pl.UInt32})  # fmt: skip
        return pl.concat(self.daily).sort("datetime")

    def mse(self, column: str) -> float:
        total, count = self.sums.get(column, [0.0, 0.0])
        return total / count if count else math.nan

    def summary(self, names: Mapping[str, str]) -> dict[str, Any]:
        """IC summary, then ``mse_<name>`` for each label column ``names`` maps, then ``rows``."""
        out: dict[str, Any] = dict(model_metrics.summarize(self.daily_frame()))
        for column, name in names.items():
            out[name] = self.mse(column)
        out["rows"] = self.rows
        return out


def segment_metrics_blocks(
    booster: Any, data: BlockDataset, num_threads: int | None = None
) -> dict[str, Any]:
    """:func:`~hikyuu_qlib.modelling.service.segment_metrics`, block by block."""
    out: dict[str, Any] = {}
    for name in data.segments:
        acc = SignalAccumulator()
        for inferred, learned in data.both_frames(name):
            scores = [trainer.predict(booster, matrix(part, data.features), num_threads)
                      for part in inferred.iter_slices(SLICE_ROWS)]  # fmt: skip
            scored = inferred.select(
                "datetime", "code", pl.col(RAW_LABEL).alias(model_metrics.LABEL)
            ).with_columns(pl.Series(model_metrics.SCORE, np.concatenate(scores) if scores else np.empty(0)))
            learn = learned.select("datetime", "code", pl.col(LABEL).alias("learn_label"))
            acc.add(
                scored.join(learn, on=["datetime", "code"], how="left"), (model_metrics.LABEL, "learn_label")
            )
        out[name] = acc.summary({model_metrics.LABEL: "mse_raw_label", "learn_label": "mse_learn_label"})
    release_freed_memory()
    return out


def write_predictions_blocks(
    score: Callable[[pl.DataFrame], pl.DataFrame], blocks: BlockSet, dates: DateRange, path: Path
) -> int:
    """Score each block within ``dates`` and append the scores to the Parquet file ``path``; the rows
    written. ``score`` maps a raw features frame to ``datetime, code, score``."""
    import pyarrow.parquet as pq

    rows = 0
    writer: Any = None
    try:
        for frame in blocks.iter_frames(dates):
            table = score(frame).to_arrow()
            if writer is None:
                writer = pq.ParquetWriter(str(path), table.schema)
            writer.write_table(table)
            rows += table.num_rows
    finally:
        if writer is not None:
            writer.close()
        release_freed_memory()
    if writer is None:
        raise InvalidInputError(f"no features to predict in {dates}")
    return rows
