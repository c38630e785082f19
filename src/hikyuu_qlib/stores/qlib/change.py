"""The unit of a Qlib store's ``$change``: a fraction (Qlib's own data, ``0.0123``) or a percent (``1.23``).

Many downloaded Qlib-format data sets keep ``$change`` in percent, and a limit threshold of 0.095 then
means 0.095 %. The platform serves ``$change`` as a fraction everywhere; :func:`detect_change_unit`
tells the stored unit once per store by comparing ``$change`` with ``$close / Ref($close, 1) - 1`` on a
deterministic sample: up to :data:`MAX_SAMPLED` instruments spread evenly over the sorted ``features``
folders, the last :data:`SAMPLE_DAYS` values of their ``close`` and ``change`` bins. The median of
``change / return`` over days that moved (``|return| >= 0.2 %``) is about 1 for a fraction and about
100 for a percent (adjustment days and rounding do not move a median).

A sample with fewer than :data:`MIN_PAIRS` such days, or a median that is neither, is inconclusive: the
store is taken to follow Qlib's convention (fraction) and the log says so, naming the setting that
overrides it (``qlib_change_unit``, env ``HQ_QLIB_CHANGE_UNIT``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt

from hikyuu_qlib.domain import DataFormatError
from hikyuu_qlib.stores.qlib.bins import bin_path, read_span

log = logging.getLogger(__name__)

ChangeUnit = Literal["fraction", "percent"]
ChangeUnitSetting = Literal["auto", "fraction", "percent"]
CHANGE_UNITS: tuple[ChangeUnitSetting, ...] = ("auto", "fraction", "percent")
#: Stored ``$change`` divided by this is a fraction.
DIVISOR: dict[ChangeUnit, float] = {"fraction": 1.0, "percent": 100.0}
MAX_SAMPLED = 8
MAX_TRIED = 32
SAMPLE_DAYS = 250
MIN_PAIRS = 30
MIN_MOVE = 0.002
SETTING_HINT = "set qlib_change_unit (env HQ_QLIB_CHANGE_UNIT) to fraction or percent to say which"


@dataclass(frozen=True, slots=True)
class ChangeUnitFinding:
    """What :func:`detect_change_unit` found: the unit, whether the sample was conclusive, and why."""

    unit: ChangeUnit
    conclusive: bool
    reason: str


def spread(names: list[str], count: int) -> list[str]:
    """``names`` reordered so that the first ``count`` are spread evenly over the list (deterministic)."""
    if len(names) <= count:
        return names
    picks = np.unique(np.linspace(0, len(names) - 1, count).round().astype(int)).tolist()
    chosen = set(picks)
    return [names[i] for i in picks] + [n for i, n in enumerate(names) if i not in chosen]


def _ratios(root: Path, folder: str, freq: str, n_calendar: int) -> npt.NDArray[np.float64] | None:
    """``change / (close / previous close - 1)`` on the days that moved, or None without both bins."""
    lo = max(0, n_calendar - SAMPLE_DAYS - 1)
    try:
        _, _, c_first, close = read_span(
            bin_path(root, folder, "close", freq), "close", n_calendar, lo, n_calendar - 1
        )
        _, _, g_first, change = read_span(
            bin_path(root, folder, "change", freq), "change", n_calendar, lo, n_calendar - 1
        )
    except (OSError, DataFormatError):
        return None
    if len(close) < 2 or len(change) == 0:
        return None
    first = max(c_first + 1, g_first)
    last = min(c_first + len(close) - 1, g_first + len(change) - 1)
    if first > last:
        return None
    now = close[first - c_first : last - c_first + 1].astype(np.float64)
    before = close[first - c_first - 1 : last - c_first].astype(np.float64)
    stored = change[first - g_first : last - g_first + 1].astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        moved = now / before - 1.0
        usable = np.isfinite(moved) & np.isfinite(stored) & (np.abs(moved) >= MIN_MOVE) & (before > 0)
        return stored[usable] / moved[usable]


def detect_change_unit(
    root: Path, folders: list[str], n_calendar: int, freq: str = "day"
) -> ChangeUnitFinding:
    """The unit of ``$change`` in the store at ``root`` (``folders``: its ``features`` folder names)."""
    ratios: list[npt.NDArray[np.float64]] = []
    sampled = 0
    for tried, folder in enumerate(spread(sorted(folders), MAX_SAMPLED)):
        if sampled >= MAX_SAMPLED or tried >= MAX_TRIED:
            break
        got = _ratios(root, folder, freq, n_calendar)
        if got is not None:
            sampled += 1
            ratios.append(got)
    if not sampled:
        return ChangeUnitFinding("fraction", False, "no sampled instrument has close and change bins")
    values = np.concatenate(ratios)
    if len(values) < MIN_PAIRS:
        return ChangeUnitFinding(
            "fraction",
            False,
            f"only {len(values)} days that moved in {sampled} instrument(s), need {MIN_PAIRS}",
        )
    median = float(np.median(values))
    where = f"median change/return {median:.4g} over {len(values)} days of {sampled} instrument(s)"
    if 0.5 <= median <= 2.0:
        return ChangeUnitFinding("fraction", True, where)
    if 50.0 <= median <= 200.0:
        return ChangeUnitFinding("percent", True, where)
    return ChangeUnitFinding("fraction", False, f"{where} is neither about 1 nor about 100")
