"""What every benchmark suite shares: result records, timing, RSS and the data locations."""

from __future__ import annotations

import gc
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parents[1]


def data_root() -> Path:
    """The shared real data (env ``HQ_TEST_DATA`` overrides ``../shared/data``)."""
    return Path(os.environ.get("HQ_TEST_DATA", REPO.parent / "shared" / "data")).expanduser()


def work_dir() -> Path:
    """Scratch space for generated stores (env ``HQ_BENCH_WORK``), kept between runs."""
    path = Path(os.environ.get("HQ_BENCH_WORK", REPO / "bench-results" / "work")).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


@dataclass
class Result:
    """One benchmark line. ``ratio`` = anchor_s / ours_s, both measured in the same process run.

    For goals that are not a ratio against an anchor (a time ceiling, a throughput floor),
    ``anchor`` names the goal and ``extra`` carries the figures and ``goal_met``.
    """

    name: str
    ours_s: float
    anchor: str | None = None
    anchor_s: float | None = None
    goal_ratio: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        if self.anchor_s is None or self.ours_s <= 0:
            return None
        return self.anchor_s / self.ours_s

    def to_json(self) -> dict[str, Any]:
        record = asdict(self)
        record["ratio"] = None if self.ratio is None else round(self.ratio, 3)
        if self.goal_ratio is not None and self.ratio is not None:  # both the ratio and any other goal
            ratio_met = self.ratio >= self.goal_ratio
            record["extra"] = {
                **self.extra,
                "ratio_goal_met": ratio_met,
                "goal_met": ratio_met and self.extra.get("goal_met", True),
            }
        return record


def timed(fn: Callable[[], Any], repeat: int = 1) -> tuple[float, Any]:
    """Best wall time of ``repeat`` calls, and the last call's value."""
    best = float("inf")
    value: Any = None
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        value = fn()
        best = min(best, time.perf_counter() - start)
    return best, value


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return {"p50": statistics.median(ordered), "p99": p99, "n": float(len(ordered))}


def rss_mb() -> float:
    return psutil.Process().memory_info().rss / 2**20
