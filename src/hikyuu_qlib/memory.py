"""The memory budget of a research run, and the peak RSS of each of its stages.

A :class:`MemoryBudget` is a number of bytes (``"4GB"``, ``"512MiB"``, ``"2.5G"`` or a plain byte
count); the default is :data:`DEFAULT_FRACTION` of the machine's RAM. Each bounded stage asks the budget
for its working set with :meth:`MemoryBudget.plan` and gets the chunk size that fits, or
:class:`MemoryBudgetError` naming the stage, what it needs at the least and what the budget leaves.

:class:`PeakRss` samples the process's resident set size on a thread while a stage runs, so that each
stage's peak is reported on its own (``metrics.json``'s ``memory``).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import re
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import psutil

from hikyuu_qlib.domain.errors import HQError, InvalidInputError

#: The default budget: this share of the machine's total RAM.
DEFAULT_FRACTION = 0.25
#: What the interpreter and the imported libraries (polars, numba, LightGBM) hold before any work.
BASELINE_BYTES = 600 << 20
_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
_SIZE = re.compile(r"^\s*(?P<num>\d+(?:\.\d+)?)\s*(?P<unit>[kmgt]?)(?:i?b)?\s*$", re.IGNORECASE)


class MemoryBudgetError(HQError):
    """A stage cannot run within the memory budget, even with its smallest chunk."""

    def __init__(self, stage: str, needed: int, budget: int) -> None:
        super().__init__(
            f"stage {stage!r} needs at least {format_bytes(needed)} but the memory budget is "
            f"{format_bytes(budget)}: raise --memory-budget (setting memory_budget, env HQ_MEMORY_BUDGET) "
            f"to {format_bytes(needed)} or more"
        )
        self.stage = stage
        self.needed = needed
        self.budget = budget


def parse_bytes(text: str | int) -> int:
    """``"4GB"``, ``"512MiB"``, ``"2.5g"``, ``"1000000"`` or an int, in bytes (binary units)."""
    if isinstance(text, int):
        value = text
    else:
        match = _SIZE.match(text)
        if match is None:
            raise InvalidInputError(
                f"invalid memory size {text!r}: expected a number with a unit, e.g. 4GB or 512MB"
            )
        value = int(float(match["num"]) * _UNITS[match["unit"].lower()])
    if value <= 0:
        raise InvalidInputError(f"a memory size must be positive, got {text!r}")
    return value


def format_bytes(n: int) -> str:
    for unit, size in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if n >= size:
            return f"{n / size:.2f} {unit}"
    return f"{n} B"


def machine_bytes() -> int:
    return int(psutil.virtual_memory().total)


@dataclass(frozen=True, slots=True)
class MemoryBudget:
    """At most ``bytes`` of resident memory for a run; stages size their chunks to fit it."""

    bytes: int

    @classmethod
    def of(cls, value: MemoryBudget | str | int | None) -> MemoryBudget:
        """A budget from a size (``"4GB"``), bytes, or ``None`` for the default share of the RAM."""
        if isinstance(value, MemoryBudget):
            return value
        if value is None:
            return cls(int(machine_bytes() * DEFAULT_FRACTION))
        return cls(parse_bytes(value))

    @property
    def working(self) -> int:
        """What the budget leaves for data once the libraries are loaded."""
        return self.bytes - BASELINE_BYTES

    def fits(self, needed: int) -> bool:
        return needed <= self.working

    def plan(self, stage: str, per_unit: int, units: int, *, fixed: int = 0, least: int = 1) -> int:
        """How many of ``units`` (each ``per_unit`` bytes, on top of ``fixed``) fit at once, at most
        ``units``; :class:`MemoryBudgetError` when not even ``least`` of them fit."""
        room = self.working - fixed
        fit = room // max(1, per_unit)
        if fit < least:
            raise MemoryBudgetError(stage, BASELINE_BYTES + fixed + least * per_unit, self.bytes)
        return int(max(least, min(units, fit)))


def rss_bytes() -> int:
    return int(psutil.Process().memory_info().rss)


def release_freed_memory() -> None:
    """Give the C heap's free pages back to the system (glibc's ``malloc_trim``); nothing elsewhere.

    glibc keeps what LightGBM frees (its bins, gradients and histograms: blocks of a few MB, taken from
    the heap once its mmap threshold has grown) for later allocations, so after a training the process's
    RSS stays at LightGBM's peak, and the next stages' peaks are counted on top of it. Measured: 1 M rows
    × 158 features, RSS 755 MB after the booster was rebuilt and the dataset freed, 198 MB after the trim.
    Called by the bounded path after each stage that freed a large working set."""
    if not sys.platform.startswith("linux"):
        return
    name = ctypes.util.find_library("c")
    if name is None:
        return
    trim = getattr(ctypes.CDLL(name), "malloc_trim", None)  # absent from musl
    if trim is not None:
        trim(0)


@dataclass
class PeakRss:
    """Peak resident set size of this process per stage, sampled every ``interval`` seconds."""

    interval: float = 0.05
    peaks: dict[str, int] = field(default_factory=dict)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        peak = [rss_bytes()]
        done = threading.Event()

        def sample() -> None:
            while not done.wait(self.interval):
                peak[0] = max(peak[0], rss_bytes())

        thread = threading.Thread(target=sample, name=f"rss-{name}", daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join()
            peak[0] = max(peak[0], rss_bytes())
            self.peaks[name] = max(self.peaks.get(name, 0), peak[0])

    def to_json(self) -> dict[str, float]:
        """Each stage's peak in MB."""
        return {name: round(value / 2**20, 1) for name, value in self.peaks.items()}
