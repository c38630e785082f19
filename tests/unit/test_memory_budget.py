"""The memory budget: sizes, the default, chunk planning and its error, per-stage peak RSS, the setting."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from hikyuu_qlib.domain.errors import InvalidInputError
from hikyuu_qlib.memory import (
    BASELINE_BYTES,
    DEFAULT_FRACTION,
    MemoryBudget,
    MemoryBudgetError,
    PeakRss,
    machine_bytes,
    parse_bytes,
)
from hikyuu_qlib.settings import Settings


@pytest.mark.parametrize(
    ("text", "expected"),
    [("4GB", 4 << 30), ("4g", 4 << 30), ("512MiB", 512 << 20), ("2.5G", int(2.5 * (1 << 30))), ("1000", 1000),
     ("64 kb", 64 << 10), (123, 123)],
)  # fmt: skip
def test_sizes_parse(text: str | int, expected: int) -> None:
    assert parse_bytes(text) == expected


@pytest.mark.parametrize("text", ["", "four GB", "4XB", "-1GB", "0"])
def test_bad_sizes_are_refused_clearly(text: str) -> None:
    with pytest.raises(InvalidInputError, match="memory size"):
        parse_bytes(text)


def test_the_default_is_a_share_of_the_ram() -> None:
    assert MemoryBudget.of(None).bytes == int(machine_bytes() * DEFAULT_FRACTION)
    assert MemoryBudget.of("4GB") == MemoryBudget(4 << 30) == MemoryBudget.of(MemoryBudget(4 << 30))


def test_plan_fits_the_budget_or_names_the_stage() -> None:
    budget = MemoryBudget.of("1GB")
    room = (1 << 30) - BASELINE_BYTES
    assert budget.plan("x", per_unit=room // 10, units=100) == 10
    assert budget.plan("x", per_unit=1, units=7) == 7  # never more than there is
    with pytest.raises(MemoryBudgetError) as err:
        budget.plan("train (one block)", per_unit=room + 1, units=3)
    assert err.value.stage == "train (one block)" and err.value.needed == BASELINE_BYTES + room + 1
    assert "stage 'train (one block)' needs at least" in str(err.value) and "--memory-budget" in str(
        err.value
    )


def test_peak_rss_is_recorded_per_stage() -> None:
    peaks = PeakRss(interval=0.005)
    with peaks.stage("small"):
        pass
    with peaks.stage("big"):
        block = np.ones(200 << 20, dtype=np.uint8)  # touched: resident
        assert block.sum() > 0
        del block
    assert peaks.peaks["big"] >= peaks.peaks["small"] + (150 << 20)
    assert set(peaks.to_json()) == {"small", "big"}


def test_the_setting_is_checked() -> None:
    assert Settings(memory_budget="3GB").memory_budget == "3GB"
    with pytest.raises(ValueError, match="memory size"):
        Settings(memory_budget="lots")


_TRAIN_AND_FREE = """
import gc, json, sys
import numpy as np, lightgbm as lgb, psutil
from hikyuu_qlib.memory import release_freed_memory

proc = psutil.Process()
rng = np.random.default_rng(0)
x = rng.standard_normal((400_000, 60), dtype=np.float32)
y = (x[:, 0] + rng.standard_normal(400_000)).astype(np.float32)
gc.collect()
start = proc.memory_info().rss  # the inputs stay alive: freeing them (mmapped) is returned at once
data = lgb.Dataset(x, label=y, free_raw_data=True)
booster = lgb.train({"objective": "mse", "num_leaves": 63, "verbosity": -1, "num_threads": 1}, data, 5)
del data, booster
gc.collect()
freed = proc.memory_info().rss
release_freed_memory()
trimmed = proc.memory_info().rss
json.dump({"start": start, "freed": freed, "trimmed": trimmed}, sys.stdout)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim")
def test_release_freed_memory_hands_lightgbms_freed_heap_back() -> None:
    """After a LightGBM training is freed, glibc keeps its heap pages (RSS stays high) until they are
    released; the bounded path releases them after each stage, so the next stage's peak is its own."""
    # glibc's thresholds pinned where a long process's end up (they grow with its frees; left dynamic, how
    # much of this one short training stays on the heap varied from 50 to 190 MB between runs): blocks up
    # to 32 MB come from the heap, and free pages are never handed back on their own.
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": str(32 << 20), "MALLOC_TRIM_THRESHOLD_": str(1 << 40)}
    out = subprocess.run(
        [sys.executable, "-c", _TRAIN_AND_FREE], capture_output=True, text=True, check=True, env=env
    )
    rss = json.loads(out.stdout)
    kept = rss["freed"] - rss["start"]
    assert kept > 100 << 20, rss  # glibc kept what LightGBM freed (the premise of the release)
    assert rss["trimmed"] - rss["start"] < kept / 2, rss
