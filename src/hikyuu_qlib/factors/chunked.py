"""Alpha158 + label of any universe in bounded memory: computed by groups of codes, kept as date blocks.

Alpha158 is a per-code time series, so a group of codes gives exactly the rows that the whole universe
gives for those codes (:func:`~hikyuu_qlib.factors.pipeline.compute_features` computes code by code
too). Each group's rows are cut by date block and written as parts; then each block's parts are merged
into (datetime, code) order, the order Qlib's datasets (and LightGBM) read, and every per-date processor
(CSZScoreNorm, CSRankNorm, ProcessInf) finds a whole date inside one block. The result is a
:class:`~hikyuu_qlib.cache.blocks.BlockSet` in the disk cache, under the same key as the in-memory
features frame (:func:`~hikyuu_qlib.cache.keys.features_key`): a second call reads it.

A code whose bars fail to load (a damaged bin: :class:`~hikyuu_qlib.domain.errors.DataFormatError`) is
never silently missing: without ``skip_failed`` the build loads every group to collect every failing
code and raises :class:`~hikyuu_qlib.domain.errors.LoadErrors` naming them all, as
:func:`~hikyuu_qlib.factors.pipeline.compute_features` does; with ``skip_failed`` the other codes go on,
the set's :attr:`~hikyuu_qlib.cache.blocks.BlockSet.errors` names the failing ones (as
:func:`~hikyuu_qlib.factors.pipeline.compute_features_partial` does), and the set is never reused by a
later build (a partial frame is never cached either): its manifest lists them under ``failed``.

The group and block sizes come from the :class:`~hikyuu_qlib.memory.MemoryBudget`: a group's working
set is its loaded rows times :data:`GROUP_ROW_BYTES`, a block's is its rows times :data:`BLOCK_ROW_BYTES`
(an upper bound of its rows: each day's members with data, see :mod:`.sizing`).
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import polars as pl

from hikyuu_qlib.cache.blocks import BlockSet, BlockWriter, read_mapped
from hikyuu_qlib.cache.keys import features_key
from hikyuu_qlib.domain import DateRange
from hikyuu_qlib.domain.errors import LoadErrors
from hikyuu_qlib.factors.alpha158 import sorted_by_code_date
from hikyuu_qlib.factors.label import LABEL, label_expr
from hikyuu_qlib.factors.pipeline import extended_dates, get_factor_set, load_fields, member_mask
from hikyuu_qlib.factors.sizing import members_per_day, with_data
from hikyuu_qlib.factors.universe import Universe
from hikyuu_qlib.memory import MemoryBudget
from hikyuu_qlib.ports import FeatureSource

log = logging.getLogger(__name__)

#: Working set of one loaded row while a group is computed (inputs, kernel scratch, 158 outputs, parts).
GROUP_ROW_BYTES = 2400
#: Working set of one row of a date block: merged here, then read by the training, metrics and prediction
#: stages, which hold the mapped block, its processed copy and slices of its matrix next to LightGBM's data.
BLOCK_ROW_BYTES = 5000
#: The in-memory path holds the whole frame a few times over (load, compute, sort, processors).
IN_MEMORY_ROW_BYTES = 3200


@dataclass(frozen=True, slots=True)
class ChunkPlan:
    """How a build is cut: codes per group and trading days per date block."""

    codes: int
    groups: int
    block_starts: list[int]  # index of each block's first trading day
    rows_upper: int  # member-days: an upper bound of the rows
    block_rows: int  # the most rows a block may hold

    @property
    def blocks(self) -> int:
        return len(self.block_starts)


def blocks_dir(cache_dir: Path) -> Path:
    """Where feature block sets live in a disk cache directory."""
    return Path(cache_dir).expanduser() / "features-blocks"


def estimate_in_memory(rows: int) -> int:
    """Bytes the in-memory path needs for ``rows`` feature rows (features, processors, the matrices)."""
    return rows * IN_MEMORY_ROW_BYTES


def plan_chunks(
    budget: MemoryBudget, codes: int, loaded_days: int, rows_per_day: npt.NDArray[np.int64]
) -> ChunkPlan:
    """The largest groups and blocks that fit ``budget``; :class:`MemoryBudgetError` when none does.

    A group's working set is its codes' loaded rows; a block's is its days' member rows (the busiest day
    must fit on its own)."""
    per_code = max(1, loaded_days) * GROUP_ROW_BYTES
    group = budget.plan("factors (a group of codes)", per_code, max(1, codes))
    busiest = int(rows_per_day.max()) if len(rows_per_day) else 1
    budget.plan("factors (a date block)", max(1, busiest) * BLOCK_ROW_BYTES, 1)
    per_block = budget.plan("factors (a date block)", BLOCK_ROW_BYTES, max(1, int(rows_per_day.sum())))
    starts = block_starts(rows_per_day, per_block)
    return ChunkPlan(group, -(-codes // group), starts, int(rows_per_day.sum()), max(per_block, busiest))


def block_starts(rows_per_day: npt.NDArray[np.int64], per_block: int) -> list[int]:
    """Day indices where each block starts: days join a block while its rows stay within ``per_block``."""
    starts = [0]
    total = 0
    for i, rows in enumerate(rows_per_day.tolist()):
        if total and total + rows > per_block:
            starts.append(i)
            total = 0
        total += rows
    return starts


def build_feature_blocks(
    store: FeatureSource,
    universe: Universe,
    dates: DateRange,
    cache_dir: Path,
    *,
    budget: MemoryBudget | None = None,
    factor_set: str = "alpha158",
    label: bool = True,
    skip_failed: bool = False,
    reuse: bool = True,
) -> BlockSet:
    """Features of each date's members within ``dates`` (as :func:`compute_features` gives them) as a block
    set under ``cache_dir``; an existing complete set with the same key is reused (with ``reuse=False``,
    as ``--no-cache`` asks, it is removed and computed again). ``skip_failed``: the
    codes that fail to load are left out and named in the set's ``errors`` (else :class:`LoadErrors`
    names every one of them)."""
    chosen = get_factor_set(factor_set)
    budget = MemoryBudget.of(budget)
    key = features_key(
        store.source,
        store.data_version(),
        universe=universe.fingerprint(),
        factor_set=factor_set,
        engine=chosen.engine,
        dates=dates,
        label=label,
    )
    path = blocks_dir(cache_dir) / key.digest
    calendar = store.calendar()
    span = extended_dates(calendar, dates, chosen.lookback)
    days = calendar.filter(calendar.is_between(dates.start, dates.end))
    loaded_days = int(calendar.is_between(span.start, span.end).sum())
    sized = with_data(universe, store)  # the members with data: codes without any give no row
    codes = sized.members_between(dates)
    plan = plan_chunks(budget, len(codes), loaded_days, members_per_day(sized, days))
    if not reuse and path.exists():
        shutil.rmtree(path)
    found = BlockSet.open(path)
    if found is not None:
        largest = max((b.rows for b in found.blocks), default=0)
        if found.meta.get("failed"):
            log.info("features: %s left out codes that failed to load; computing it again", path)
        elif largest <= plan.block_rows:
            log.info("features: %d rows in %d blocks from %s", found.rows, len(found.blocks), path)
            return found
        else:
            log.info(
                "features: the blocks of %s were cut for a larger memory budget; cutting them again", path
            )
    fields = [*chosen.inputs, *(["vwap"] if codes and "vwap" in store.fields(codes) else [])]
    edges = days.gather(plan.block_starts).to_numpy().astype("datetime64[ms]").astype(np.int64)
    log.info(
        "features: %d codes in %d group(s) of %d, %d days in %d block(s), at most %d rows (budget %d MB)",
        len(codes), plan.groups, plan.codes, days.len(), plan.blocks, plan.rows_upper, budget.bytes >> 20,
    )  # fmt: skip
    started = time.perf_counter()
    errors: dict[str, BaseException] = {}
    with BlockWriter(path) as writer:
        for g in range(plan.groups):
            group = codes[g * plan.codes : (g + 1) * plan.codes]
            if errors and not skip_failed:  # the build fails: only load the rest, to name every failing code
                errors.update(load_errors(store, group, fields, span))
                continue
            try:
                frame = compute_group(store, universe, group, fields, span, dates, label=label,
                                      skip_failed=skip_failed, errors=errors, factor_set=factor_set)  # fmt: skip
            except LoadErrors as exc:
                errors.update(exc.errors)
                continue
            if frame.height == 0:
                continue
            when = frame.get_column("datetime").to_numpy().astype("datetime64[ms]").astype(np.int64)
            block = np.searchsorted(edges, when, side="right") - 1
            parts = frame.with_columns(pl.Series("_block", block)).partition_by("_block", maintain_order=True)
            del frame
            for part in parts:
                b = int(part.get_column("_block")[0])
                writer.part(b, g, part.drop("_block"))
            del parts
            log.debug("features: group %d/%d done", g + 1, plan.groups)
        if errors and (not skip_failed or len(errors) == len(codes)):
            raise LoadErrors(errors)
        for b in range(plan.blocks):
            pieces = writer.parts(b)
            if not pieces:
                continue
            merged = pl.concat([read_mapped(p) for p in pieces]).sort("datetime", "code")
            writer.block(b, merged)
            del merged
        meta = {"codes": len(codes), "dates": str(dates), "factor_set": factor_set, "label": label,
                "groups": plan.groups, "seconds": round(time.perf_counter() - started, 2)}  # fmt: skip
        if errors:
            meta["failed"] = {code: str(err) for code, err in sorted(errors.items())}
        built = writer.commit(meta)
    built.errors = errors
    log.info("features: %d rows in %d blocks written to %s", built.rows, len(built.blocks), path)
    return built


def load_errors(
    store: FeatureSource, codes: Sequence[str], fields: Sequence[str], span: DateRange
) -> dict[str, BaseException]:
    """The codes of ``codes`` whose fields fail to load, with their errors."""
    try:
        store.features(list(codes), list(fields), span)
    except LoadErrors as exc:
        return dict(exc.errors)
    return {}


def compute_group(
    store: FeatureSource,
    universe: Universe,
    codes: Sequence[str],
    fields: Sequence[str],
    span: DateRange,
    dates: DateRange,
    *,
    label: bool = True,
    skip_failed: bool = False,
    errors: dict[str, BaseException] | None = None,
    factor_set: str = "alpha158",
) -> pl.DataFrame:
    """The features of ``codes`` (part of ``universe``), sorted by (code, datetime): the rows
    :func:`compute_features` gives for them, with the fields chosen for the whole universe.

    A code that fails to load raises :class:`LoadErrors`; with ``skip_failed`` it is left out and its
    error added to ``errors`` (:class:`LoadErrors` only when every code of ``codes`` fails)."""
    bars, failed = load_fields(store, list(codes), list(fields), span, skip_failed)
    if errors is not None:
        errors.update(failed)
    if bars.height == 0:
        return pl.DataFrame()
    if not sorted_by_code_date(bars):
        bars = bars.sort("code", "datetime")
    keep = bars.select(pl.col("datetime").is_between(dates.start, dates.end)).to_series() & member_mask(
        universe, bars
    )
    frame = get_factor_set(factor_set).compute(bars, keep, dates.start)
    if label:
        frame = frame.with_columns(bars.select(label_expr()).to_series().filter(keep).alias(LABEL))
    return frame
