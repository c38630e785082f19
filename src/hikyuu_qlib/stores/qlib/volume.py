"""How a Qlib store's ``$volume`` relates to the traded shares: adjusted (Qlib's convention) or as traded.

Qlib adjusts a bar with one factor per day: ``$price = traded price × $factor`` and
``$volume = traded shares / $factor``, so that ``$price × $volume`` is the day's turnover; this is the
``"adjusted"`` convention, the one Qlib's collectors and ``hq data export-qlib`` write. Many downloaded
data sets adjust the prices only and keep the volume as traded, ``$volume = traded shares``: the
``"traded"`` convention (the shared ``qlib_cn`` data set is one: its ``$volume`` is the Hikyuu store's
traded volume on the codes both hold). Traded shares are ``$volume × $factor ** EXPONENT[convention]``.

:func:`detect_volume_convention` tells the two apart once per store: traded shares are whole numbers, so
a store that keeps them as traded has a whole ``$volume`` on every day, while ``traded shares / $factor``
is whole only on some days (often enough when the source counts lots of 100 and a split leaves a round
factor such as 1 / 1.3: about half the days of an export of the Hikyuu test data). It looks at the days where the two differ (``$factor`` at least
:data:`MIN_FACTOR_GAP` away from 1) and whose volume float32 holds exactly (below 2**24), in a
deterministic sample of instruments (up to :data:`MAX_SAMPLED`, spread evenly over the sorted
``features`` folders): a whole ``$volume`` on at least :data:`TRADED_SHARE` of them is ``"traded"``, on at
most :data:`ADJUSTED_SHARE` ``"adjusted"``.

Fewer than :data:`MIN_DAYS` such days (a store without ``$factor``, or whose factor is 1 throughout: then
both conventions give the same shares), or a share in between, is inconclusive: the store is taken to
follow Qlib's convention and the log says so, naming the setting that overrides it (``qlib_volume``, env
``HQ_QLIB_VOLUME``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt

from hikyuu_qlib.domain import DataFormatError
from hikyuu_qlib.stores.qlib.bins import bin_path, read_span
from hikyuu_qlib.stores.qlib.change import spread

VolumeConvention = Literal["adjusted", "traded"]
VolumeSetting = Literal["auto", "adjusted", "traded"]
VOLUME_SETTINGS: tuple[VolumeSetting, ...] = ("auto", "adjusted", "traded")
#: Traded shares = ``$volume × $factor ** EXPONENT[convention]``.
EXPONENT: dict[VolumeConvention, int] = {"adjusted": 1, "traded": 0}
MAX_SAMPLED = 8
MAX_TRIED = 32
MIN_DAYS = 200
MIN_FACTOR_GAP = 0.01
#: float32 holds every whole number below this exactly.
EXACT_BELOW = 2.0**24
TRADED_SHARE = 0.99
ADJUSTED_SHARE = 0.9
SETTING_HINT = "set qlib_volume (env HQ_QLIB_VOLUME) to adjusted or traded to say which"


@dataclass(frozen=True, slots=True)
class VolumeFinding:
    """What :func:`detect_volume_convention` found: the convention, whether the sample was conclusive,
    and why."""

    convention: VolumeConvention
    conclusive: bool
    reason: str


def whole_days(volume: npt.ArrayLike, factor: npt.ArrayLike) -> tuple[int, int]:
    """Of one instrument's days where the conventions differ and float32 is exact: how many have a whole
    ``$volume``, and how many there are."""
    v = np.asarray(volume, dtype=np.float64)
    f = np.asarray(factor, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        usable = (
            np.isfinite(v)
            & (v > 0)
            & (v < EXACT_BELOW)
            & np.isfinite(f)
            & (np.abs(f - 1.0) >= MIN_FACTOR_GAP)
        )
    v = v[usable]
    return int(np.count_nonzero(v == np.round(v))), len(v)


def _field(root: Path, folder: str, field: str, freq: str, n_calendar: int) -> npt.NDArray[np.float64]:
    """One field of one instrument over the whole calendar (NaN outside its bin)."""
    _, _, first, values = read_span(bin_path(root, folder, field, freq), field, n_calendar, 0, n_calendar - 1)
    out = np.full(n_calendar, np.nan)
    out[first : first + len(values)] = values
    return out


def detect_volume_convention(
    root: Path, folders: list[str], n_calendar: int, freq: str = "day"
) -> VolumeFinding:
    """The convention of ``$volume`` in the store at ``root`` (``folders``: its ``features`` folders)."""
    whole = days = sampled = 0
    for tried, folder in enumerate(spread(sorted(folders), MAX_SAMPLED)):
        if sampled >= MAX_SAMPLED or tried >= MAX_TRIED:
            break
        try:
            volume = _field(root, folder, "volume", freq, n_calendar)
            factor = _field(root, folder, "factor", freq, n_calendar)
        except (OSError, DataFormatError):
            continue
        sampled += 1
        got, seen = whole_days(volume, factor)
        whole, days = whole + got, days + seen
    if not sampled:
        return VolumeFinding("adjusted", False, "no sampled instrument has volume and factor bins")
    if days < MIN_DAYS:
        return VolumeFinding(
            "adjusted",
            False,
            f"only {days} days with a factor other than 1 in {sampled} instrument(s), need {MIN_DAYS}",
        )
    share = whole / days
    where = f"$volume is a whole number on {share:.1%} of {days} days of {sampled} instrument(s)"
    if share >= TRADED_SHARE:
        return VolumeFinding("traded", True, where)
    if share <= ADJUSTED_SHARE:
        return VolumeFinding("adjusted", True, where)
    return VolumeFinding("adjusted", False, f"{where}: neither all nor clearly fewer")
