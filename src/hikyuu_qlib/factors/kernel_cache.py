"""The factor kernels compiled ahead of a budgeted run, in a throwaway child process, when numba's cache is cold.

numba compiles a kernel the first time it runs after an install (or after its source changed) and keeps
the machine code in its on-disk cache (the kernels are ``cache=True``: ``__pycache__`` next to the
module, or ``NUMBA_CACHE_DIR``); later processes load it in milliseconds. Compiling the fused Alpha158
kernel takes LLVM a few hundred MB for a minute, and the process keeps much of it: a bounded run that
compiled its own kernels peaked about 50 MB over a 1.5 GB budget. So before a budgeted run,
:func:`warm_kernels` checks the cache entries of the factor set's entry kernels (the ones Python calls;
their callees compile with them) and, when one is missing, compiles them in a child process that
computes the factor set on a few synthetic bars and exits, giving its memory back. The run then loads
them from the cache. A child that fails or times out only costs the run its own compilation (logged).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: Seconds a compiling child may take (a cold compilation takes about a minute on a busy machine).
COMPILE_TIMEOUT = 1800.0
_CHILD = (
    "import sys; from hikyuu_qlib.factors.kernel_cache import compile_kernels; compile_kernels(sys.argv[1])"
)


def entry_kernels(factor_set: str) -> list[Any]:
    """The compiled functions that Python calls to compute ``factor_set`` (their callees compile with them)."""
    from hikyuu_qlib.factors import alpha360, grouped
    from hikyuu_qlib.factors.alpha158_kernel import rolling_features

    kernels: dict[str, list[Any]] = {
        "alpha158": [rolling_features, grouped._view_flags],
        "alpha360": [alpha360._lagged_ratios, grouped._view_flags],
    }
    return kernels.get(factor_set, [])


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


def cold_kernels(factor_set: str) -> list[str]:
    """The names of ``factor_set``'s entry kernels that numba's cache does not hold."""
    return [k.py_func.__name__ for k in entry_kernels(factor_set) if not is_cached(k)]


def warm_kernels(factor_set: str, *, timeout: float = COMPILE_TIMEOUT) -> bool:
    """Compile ``factor_set``'s kernels in a child process when numba's cache lacks one; whether a child ran."""
    cold = cold_kernels(factor_set)
    if not cold:
        return False
    log.info(
        "numba's cache lacks %s: compiling the %s kernels in a child process", ", ".join(cold), factor_set
    )
    package_root = str(Path(__file__).resolve().parents[2])  # the child imports this very package
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    try:
        done = subprocess.run(
            [sys.executable, "-c", _CHILD, factor_set],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        log.warning("compiling the %s kernels in a child process failed (%s): the run compiles them", factor_set,
                    exc)  # fmt: skip
        return True
    if done.returncode != 0:
        tail = done.stderr.decode(errors="replace").strip().splitlines()[-3:]
        log.warning("compiling the %s kernels in a child process failed (exit %d: %s): the run compiles them",
                    factor_set, done.returncode, " / ".join(tail))  # fmt: skip
    elif cold_kernels(factor_set):
        log.warning("numba's cache did not keep the %s kernels (is its directory writable? NUMBA_CACHE_DIR): "
                    "the run compiles them", factor_set)  # fmt: skip
    return True


def compile_kernels(factor_set: str) -> None:
    """Compute ``factor_set`` on synthetic bars of two codes, as a bounded build computes a group (its
    kernels compile, with the argument types of a real run, into numba's cache)."""
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
