"""The bounded-memory path on the real Qlib store: chunked features, block sets, streaming training.

Chunked Alpha158 + label must equal the in-memory frame exactly, a model trained from the block set must
be the in-memory model (same trees), an interrupted build must leave nothing a later run trusts, and a
damaged block must never be served.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from hikyuu_qlib.cache.blocks import BlockSet
from hikyuu_qlib.cache.envelope import CorruptValue
from hikyuu_qlib.domain import DataFormatError, DateRange, LoadErrors, Segments
from hikyuu_qlib.factors.chunked import blocks_dir, build_feature_blocks, members_per_day, plan_chunks
from hikyuu_qlib.factors.pipeline import compute_features, compute_features_partial
from hikyuu_qlib.factors.universe import Universe
from hikyuu_qlib.memory import MemoryBudget, MemoryBudgetError
from hikyuu_qlib.modelling import streaming, trainer
from hikyuu_qlib.modelling.dataset import labels, matrix, prepare_frame
from hikyuu_qlib.modelling.families.lightgbm import LightGBMModel
from hikyuu_qlib.modelling.presets import ProcessorStep, get_preset, qlib_default_learn
from hikyuu_qlib.modelling.service import segment_metrics
from hikyuu_qlib.stores.qlib import QlibStore

REPO = Path(__file__).resolve().parents[2]
THREE_YEARS = DateRange.of("2017-01-01", "2019-12-31")
#: Small enough that the CSI300 universe over three years needs several groups and date blocks.
SMALL = MemoryBudget.of("700MB")


@pytest.fixture(scope="module")
def store(qlib_dir: Path) -> QlibStore:
    return QlibStore.open(qlib_dir)


@pytest.fixture(scope="module")
def csi300(store: QlibStore) -> Universe:
    return Universe.from_store(store, "csi300")


def test_chunked_features_equal_the_in_memory_frame(
    store: QlibStore, csi300: Universe, tmp_path: Path
) -> None:
    members = csi300.members_between(THREE_YEARS)
    assert len(members) >= 200
    blocks = build_feature_blocks(store, csi300, THREE_YEARS, tmp_path, budget=SMALL)
    assert blocks.meta["groups"] > 1 and len(blocks.blocks) > 1  # really chunked both ways
    expected = compute_features(store, csi300, THREE_YEARS)
    got = blocks.frame()
    # each block holds whole dates in (datetime, code) order, the blocks in date order
    assert got.equals(got.sort("datetime", "code"))
    assert_frame_equal(got.sort("code", "datetime"), expected, check_exact=True)
    assert got["code"].n_unique() >= 200
    # a second build with the same key reads the set
    again = build_feature_blocks(store, csi300, THREE_YEARS, tmp_path, budget=SMALL)
    assert again.path == blocks.path and again.rows == blocks.rows


def test_a_damaged_block_is_never_served(store: QlibStore, csi300: Universe, tmp_path: Path) -> None:
    dates = DateRange.of("2019-01-01", "2019-06-30")
    blocks = build_feature_blocks(store, csi300, dates, tmp_path, budget=SMALL)
    target = blocks.path / blocks.blocks[-1].file
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))
    fresh = BlockSet.open(blocks.path)
    assert fresh is not None
    with pytest.raises(CorruptValue, match="does not match the manifest"):
        list(fresh.iter_frames())
    assert not blocks.path.exists()  # deleted: the next build computes it again
    rebuilt = build_feature_blocks(store, csi300, dates, tmp_path, budget=SMALL)
    assert rebuilt.rows == blocks.rows


_BUILD = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from hikyuu_qlib.domain import DateRange
    from hikyuu_qlib.factors.chunked import build_feature_blocks
    from hikyuu_qlib.factors.universe import Universe
    from hikyuu_qlib.memory import MemoryBudget
    from hikyuu_qlib.stores.qlib import QlibStore

    store = QlibStore.open(sys.argv[1])
    universe = Universe.from_store(store, "csi300")
    build_feature_blocks(store, universe, DateRange.of("2012-01-01", "2019-12-31"), Path(sys.argv[2]),
                         budget=MemoryBudget.of("640MB"))
    """
)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["sigkill", "sigint"])
def test_an_interrupted_build_leaves_nothing_trusted(
    store: QlibStore, csi300: Universe, qlib_dir: Path, tmp_path: Path, sig: signal.Signals
) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.Popen([sys.executable, "-c", _BUILD, str(qlib_dir), str(tmp_path)], env=env)
    root = blocks_dir(tmp_path)
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:  # wait until some parts are on disk, mid-build
            if len(list(root.glob(".*.building/parts/*.arrow"))) >= 2:
                break
            assert proc.poll() is None, "the build ended before it could be interrupted"
            time.sleep(0.05)
        else:
            pytest.fail("the build wrote no parts in time")
        proc.send_signal(sig)
        proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0
    committed = [p for p in root.iterdir() if not p.name.startswith(".")]
    assert committed == []  # no set any reader would open
    if sig == signal.SIGINT:  # the build cleaned up after itself
        assert list(root.iterdir()) == []
    # a later build removes what the interrupted one left, and commits only its own complete set
    dates = DateRange.of("2019-07-01", "2019-12-31")
    built = build_feature_blocks(store, csi300, dates, tmp_path, budget=MemoryBudget.of("640MB"))
    assert [p.name for p in root.iterdir()] == [built.path.name]
    assert_frame_equal(
        built.frame().sort("code", "datetime"), compute_features(store, csi300, dates), check_exact=True
    )


def test_a_model_trained_from_blocks_is_the_in_memory_model(
    store: QlibStore, csi300: Universe, tmp_path: Path
) -> None:
    segments = Segments.parse("2016-01-01:2017-06-30", "2017-07-01:2017-12-31", "2018-01-01:2018-06-30")
    universe = Universe(csi300.name, csi300.membership.filter(pl.col("code").is_in(csi300.codes()[:120])))
    # bins from a sample of the train rows (as whenever they pass 200,000): drawn with the seed's rows
    params = {
        **get_preset("qlib-lgb-alpha158").lgb_params(seed=3, num_threads=2),
        "bin_construct_sample_cnt": 5000,
    }
    learn = (*qlib_default_learn(), ProcessorStep("fillna"))
    infer = (ProcessorStep("process_inf"), ProcessorStep("cs_rank"))

    data = prepare_frame(
        compute_features(store, universe, segments.span()), segments, infer=infer, learn=learn
    )
    train, valid = data.view("train"), data.view("valid")
    memory = trainer.train_lightgbm(
        (matrix(train, data.features), labels(train)),
        (matrix(valid, data.features), labels(valid)),
        params,
        num_boost_round=40,
    )
    blocks = build_feature_blocks(store, universe, segments.span(), tmp_path, budget=MemoryBudget.of("650MB"))
    assert len(blocks.blocks) > 1
    stream = streaming.BlockDataset.prepare(blocks, segments, infer=infer, learn=learn)
    bounded = streaming.train_blocks(stream, params, num_boost_round=40, scratch=tmp_path / "scratch")
    assert bounded.booster.model_to_string() == memory.booster.model_to_string()
    assert bounded.best_iteration == memory.best_iteration
    assert not list((tmp_path / "scratch").iterdir())  # the row files are gone
    expected = segment_metrics(LightGBMModel(memory.booster, list(data.features)), data, 2)
    got = streaming.segment_metrics_blocks(bounded.booster, stream, 2)
    for segment in segments:
        for key, value in expected[segment].items():
            assert got[segment][key] == pytest.approx(value, rel=1e-12, nan_ok=True), (segment, key)
    assert stream.state_bytes() == data.state_bytes()


def test_robust_zscore_is_fitted_on_train_blocks_as_in_memory(
    store: QlibStore, csi300: Universe, tmp_path: Path
) -> None:
    segments = Segments.parse("2018-01-01:2018-12-31", "2019-01-01:2019-03-31", "2019-04-01:2019-06-30")
    infer = (ProcessorStep("process_inf"), ProcessorStep("robust_zscore"), ProcessorStep("fillna"))
    learn = (ProcessorStep("dropna_label"), ProcessorStep("robust_zscore", fields="label"))
    data = prepare_frame(compute_features(store, csi300, segments.span()), segments, infer=infer, learn=learn)
    blocks = build_feature_blocks(store, csi300, segments.span(), tmp_path, budget=SMALL)
    assert len(blocks.blocks) > 1
    stream = streaming.BlockDataset.prepare(blocks, segments, infer=infer, learn=learn)
    assert stream.state_bytes() == data.state_bytes()
    for segment in segments:
        got = pl.concat(list(stream.learn_frames(segment)))
        assert_frame_equal(got, data.view(segment), check_exact=True)


def test_a_budget_too_small_names_the_stage_and_the_need() -> None:
    busy = np.full(3900, 5000, dtype=np.int64)
    with pytest.raises(
        MemoryBudgetError, match=r"stage 'factors \(a group of codes\)' needs at least .* MB"
    ) as err:
        plan_chunks(MemoryBudget.of("601MB"), codes=5000, loaded_days=4000, rows_per_day=busy)
    assert err.value.needed > err.value.budget
    with pytest.raises(MemoryBudgetError, match=r"stage 'factors \(a date block\)'"):
        plan_chunks(MemoryBudget.of("610MB"), codes=5000, loaded_days=100, rows_per_day=busy)
    plan = plan_chunks(MemoryBudget.of("4GB"), codes=5800, loaded_days=4000, rows_per_day=busy)
    assert plan.groups > 1 and plan.codes * plan.groups >= 5800 and plan.blocks > 1
    assert plan.block_starts[0] == 0 and np.all(np.diff(plan.block_starts) > 0)


def test_members_per_day_counts_the_spans(store: QlibStore, csi300: Universe) -> None:
    days = store.calendar(dates=THREE_YEARS)
    counts = members_per_day(csi300, days)
    assert len(counts) == days.len() and 250 <= counts.min() <= counts.max() <= 310  # CSI300: ~300 a day
    for i in (0, 100, 365, days.len() - 1):
        assert int(counts[i]) == len(csi300.members_on(days[i].strftime("%Y-%m-%d")))


# --- codes that fail to load -------------------------------------------------------------------------------

FAIL_DATES = DateRange.of("2019-01-01", "2019-06-30")


@pytest.fixture()
def damaged_store(qlib_dir: Path, csi300: Universe, tmp_path: Path) -> tuple[QlibStore, list[str]]:
    """A copy of the shared store (never the store itself) with one bin of three CSI300 members damaged: the
    first, the middle and the last member of 2019H1, so that they fall in different groups of codes."""
    root = tmp_path / "qlib"
    shutil.copytree(qlib_dir, root)
    members = csi300.members_between(FAIL_DATES)  # the order a build cuts its groups in
    damaged = [members[0], members[len(members) // 2], members[-1]]
    for code, field in zip(damaged, ("close", "volume", "open"), strict=True):
        path = root / "features" / code.lower() / f"{field}.day.bin"
        os.truncate(path, path.stat().st_size - 2)  # no longer a multiple of 4 bytes: DataFormatError
    return QlibStore.open(root), damaged


def test_a_bounded_build_names_every_code_that_fails(
    damaged_store: tuple[QlibStore, list[str]], csi300: Universe, tmp_path: Path
) -> None:
    store, damaged = damaged_store
    with pytest.raises(LoadErrors) as failed:
        compute_features(store, csi300, FAIL_DATES)
    assert sorted(failed.value.errors) == sorted(damaged)  # the in-memory path names all three
    cache = tmp_path / "cache"
    with pytest.raises(LoadErrors) as bounded:
        build_feature_blocks(store, csi300, FAIL_DATES, cache, budget=SMALL)
    assert sorted(bounded.value.errors) == sorted(damaged)  # from every group, not the first failing one
    assert all(isinstance(e, DataFormatError) for e in bounded.value.errors.values())
    assert list(blocks_dir(cache).iterdir()) == []  # nothing committed, no staging left


def test_a_bounded_build_leaves_out_and_reports_the_codes_that_fail(
    damaged_store: tuple[QlibStore, list[str]], csi300: Universe, tmp_path: Path
) -> None:
    store, damaged = damaged_store
    expected = compute_features_partial(store, csi300, FAIL_DATES)
    assert sorted(expected.errors) == sorted(damaged)
    blocks = build_feature_blocks(store, csi300, FAIL_DATES, tmp_path, budget=SMALL, skip_failed=True)
    assert blocks.meta["groups"] > 1
    assert sorted(blocks.errors) == sorted(damaged) and sorted(blocks.meta["failed"]) == sorted(damaged)
    assert "day.bin" in blocks.meta["failed"][damaged[0]]
    got = blocks.frame()
    assert not got["code"].is_in(damaged).any()
    assert_frame_equal(got.sort("code", "datetime"), expected.frame, check_exact=True)
    # a set that left codes out is never reused as if it were whole: the next build reads them again
    again = build_feature_blocks(store, csi300, FAIL_DATES, tmp_path, budget=SMALL, skip_failed=True)
    assert sorted(again.errors) == sorted(damaged)


# --- LightGBM's own data in the budget ---------------------------------------------------------------------


def test_lightgbm_data_is_counted_in_the_train_plan() -> None:
    params = get_preset("qlib-lgb-alpha158").lgb_params(seed=0, num_threads=2)
    # 4 M training rows × 158 features: 632 MB of bins alone
    need = streaming.lightgbm_bytes(4_000_000, 1_000_000, 158, params)
    assert need >= 5_000_000 * 158 + 4_000_000 * 40
    assert streaming.lightgbm_bytes(8_000_000, 1_000_000, 158, params) > need  # grows with the rows
    with pytest.raises(MemoryBudgetError, match=r"stage 'train' needs at least .* GB") as err:
        streaming.plan_training(MemoryBudget.of("1GB"), 4_000_000, 1_000_000, 158, params)
    assert err.value.stage == "train" and err.value.needed > need > err.value.budget - (600 << 20)
    plan = streaming.plan_training(MemoryBudget.of("4GB"), 4_000_000, 1_000_000, 158, params)
    assert plan.lightgbm_bytes == need
    assert plan.batch_rows == streaming.BATCH_ROWS and plan.slice_rows == streaming.SLICE_ROWS
    # a budget that just holds LightGBM's data leaves small batches, never none
    tight = MemoryBudget(600 * 2**20 + need + 100 * 158 * 12)
    assert 1 <= streaming.plan_training(tight, 4_000_000, 1_000_000, 158, params).batch_rows < 200


# --- numba's cache ---------------------------------------------------------------------------------------

_KERNELS = textwrap.dedent(
    """
    import json
    from hikyuu_qlib import kernel_cache
    from hikyuu_qlib.factors.alpha158_kernel import rolling_features

    before = kernel_cache.cold_kernels("alpha158")
    ran = kernel_cache.warm_kernels("alpha158")
    after = kernel_cache.cold_kernels("alpha158")
    again = kernel_cache.warm_kernels("alpha158")
    print(json.dumps({"before": before, "ran": ran, "after": after, "again": again,
                      "compiled_here": len(rolling_features.overloads)}))
    """
)


def test_cold_kernels_are_compiled_in_a_child_process(tmp_path: Path) -> None:
    """With an empty numba cache the factor kernels are compiled by a child (its memory is not the run's);
    the run then finds them in the cache and compiles nothing itself."""
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "NUMBA_CACHE_DIR": str(tmp_path / "numba")}
    proc = subprocess.run(
        [sys.executable, "-c", _KERNELS], env=env, capture_output=True, text=True, timeout=1200
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(proc.stdout.strip().splitlines()[-1])
    assert "rolling_features" in doc["before"] and doc["ran"] is True
    assert doc["after"] == [] and doc["again"] is False
    assert doc["compiled_here"] == 0  # the parent loaded nothing and compiled nothing
