"""numba kernels compiled ahead of a run, in a throwaway child process, when numba's cache is cold.

numba compiles a kernel the first time it runs after an install (or after its source changed) and keeps
the machine code in its on-disk cache (the kernels are ``cache=True``: ``__pycache__`` next to the
module, or ``NUMBA_CACHE_DIR``); later processes load it in milliseconds. Compiling takes LLVM hundreds
of MB and seconds to a minute, and the process keeps much of it: a bounded run that compiled its own
Alpha158 kernel peaked about 50 MB over a 1.5 GB budget, and a first backtest spent its time compiling.
So before a stage runs its kernels, :func:`warm_kernels` checks the cache entries of the stage's entry
kernels (the ones Python calls; their callees compile with them) and, when one is missing, compiles them
in a child process that runs the stage's own code on a tiny synthetic input and exits, giving its memory
back. The stage then loads them from the cache. A child that fails or times out only costs the stage its
own compilation (logged).

The kernel groups (:data:`GROUPS`): the factor sets (``alpha158``, ``alpha360``), the TopkDropout
backtest (``topk``) and the Hikyuu-style trading system (``system``).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: Seconds a compiling child may take (a cold compilation takes about a minute on a busy machine).
COMPILE_TIMEOUT = 1800.0
_CHILD = "import sys; from hikyuu_qlib.kernel_cache import compile_kernels; compile_kernels(sys.argv[1])"


def _factor_kernels(factor_set: str) -> Callable[[], list[Any]]:
    def kernels() -> list[Any]:
        from hikyuu_qlib.factors import alpha360, grouped
        from hikyuu_qlib.factors.alpha158_kernel import rolling_features

        entry = rolling_features if factor_set == "alpha158" else alpha360._lagged_ratios
        return [entry, grouped._view_flags]

    return kernels


def _topk_kernels() -> list[Any]:
    from hikyuu_qlib.backtest.kernel import run_days

    return [run_days]


def _system_kernels() -> list[Any]:
    from hikyuu_qlib.backtest.system.kernel import run_grid

    return [run_grid]


#: Each group's entry kernels.
GROUPS: dict[str, Callable[[], list[Any]]] = {
    "alpha158": _factor_kernels("alpha158"),
    "alpha360": _factor_kernels("alpha360"),
    "topk": _topk_kernels,
    "system": _system_kernels,
}


def entry_kernels(group: str) -> list[Any]:
    """The compiled functions that Python calls to run ``group`` (their callees compile with them); none
    for a group that is not known (a user's factor set: nothing compiled here)."""
    kernels = GROUPS.get(group)
    return kernels() if kernels is not None else []


def is_cached(kernel: Any) -> bool:
    """Whether numba's on-disk cache holds a compiled version of ``kernel`` for its current source and this
    numba. ``True`` when there is no cache to fill (caching off: a child would compile for nothing);
    ``False`` when this numba's cache cannot be read this way (the child then compiles)."""
    cache = getattr(kernel, "_cache", None)
    if cache is None or type(cache).__name__ == "NullCache":
        return True
    try:
        return bool(cache._cache_file._load_index())
    except Exception:  # a numba whose cache is laid out otherwise
        return False


def cold_kernels(group: str) -> list[str]:
    """The names of ``group``'s entry kernels that numba's cache does not hold."""
    return [k.py_func.__name__ for k in entry_kernels(group) if not is_cached(k)]


def warm_kernels(group: str, *, timeout: float = COMPILE_TIMEOUT) -> bool:
    """Compile ``group``'s kernels in a child process when numba's cache lacks one; whether a child ran."""
    cold = cold_kernels(group)
    if not cold:
        return False
    log.info("numba's cache lacks %s: compiling the %s kernels in a child process", ", ".join(cold), group)
    package_root = str(Path(__file__).resolve().parents[1])  # the child imports this very package
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    try:
        done = subprocess.run(
            [sys.executable, "-c", _CHILD, group],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        log.warning(
            "compiling the %s kernels in a child process failed (%s): the run compiles them", group, exc
        )
        return True
    if done.returncode != 0:
        tail = done.stderr.decode(errors="replace").strip().splitlines()[-3:]
        log.warning("compiling the %s kernels in a child process failed (exit %d: %s): the run compiles them",
                    group, done.returncode, " / ".join(tail))  # fmt: skip
    elif cold_kernels(group):
        log.warning("numba's cache did not keep the %s kernels (is its directory writable? NUMBA_CACHE_DIR): "
                    "the run compiles them", group)  # fmt: skip
    return True


def compile_kernels(group: str) -> None:
    """Run ``group``'s own code on a tiny synthetic input, so that its kernels compile, with the argument
    types of a real run, into numba's cache (what the child of :func:`warm_kernels` runs)."""
    if group == "topk":
        _compile_topk()
    elif group == "system":
        _compile_system()
    else:
        _compile_factors(group)


def _compile_factors(factor_set: str) -> None:
    """Compute ``factor_set`` on synthetic bars of two codes, as a bounded build computes a group."""
    import numpy as np
    import polars as pl

    from hikyuu_qlib.domain.schema import DATETIME
    from hikyuu_qlib.factors.label import label_expr
    from hikyuu_qlib.factors.pipeline import get_factor_set, member_mask
    from hikyuu_qlib.factors.universe import Universe

    chosen = get_factor_set(factor_set)
    days = 140
    when = [dt.datetime(2020, 1, 1) + dt.timedelta(days=i) for i in range(days)]
    codes = ["SH600000", "SZ000001"]
    rng = np.random.default_rng(0)
    close = (10 + rng.random(days * len(codes))).astype(np.float32)
    columns: dict[str, Any] = {
        "code": [c for c in codes for _ in range(days)],
        "datetime": when * len(codes),
    }
    for name in chosen.inputs:
        columns[name] = close * np.float32(1000) if name == "volume" else close
    bars = pl.DataFrame(columns).with_columns(pl.col("datetime").cast(DATETIME))
    universe = Universe.from_codes(codes)
    keep = bars.select(pl.col("datetime") >= when[70]).to_series() & member_mask(universe, bars)
    frame = chosen.compute(bars, keep, when[70])
    frame.with_columns(bars.select(label_expr()).to_series().filter(keep).alias("LABEL0"))


def _tiny_market() -> Any:
    from hikyuu_qlib.stores.source import SyntheticParams
    from hikyuu_qlib.stores.synthetic.store import SyntheticStore

    return SyntheticStore(SyntheticParams(stocks=8, years=1))


def _compile_topk() -> None:
    """A TopkDropout backtest of random scores on a tiny synthetic market, read as a feature source."""
    import numpy as np
    import polars as pl

    from hikyuu_qlib.backtest.config import BacktestConfig
    from hikyuu_qlib.backtest.engine import run_topk_backtest
    from hikyuu_qlib.modelling.bars_source import BarsFeatureSource

    source = BarsFeatureSource(_tiny_market())
    days = source.calendar().head(40)
    codes = source.members("all")["code"].unique().sort().to_list()
    grid = pl.DataFrame({"datetime": days}).join(pl.DataFrame({"code": codes}), how="cross")
    preds = grid.with_columns(pl.Series("score", np.random.default_rng(0).random(grid.height)))
    run_topk_backtest(preds, source, BacktestConfig(topk=3, n_drop=1, benchmark=None))


def _compile_system() -> None:
    """A moving-average crossing system on a tiny synthetic market."""
    from hikyuu_qlib.backtest.system.config import FixedCount, MACross
    from hikyuu_qlib.backtest.system.engine import TradingSystem
    from hikyuu_qlib.domain import DateRange

    store = _tiny_market()
    days = store.calendar()
    codes = store.members("all")["code"].unique().sort().head(3).to_list()
    system = TradingSystem(MACross(5, 20), FixedCount(100))
    system.run(store, codes, DateRange.of(days[0], days[-1]))
