"""The backtests' numba kernels, compiled by a child process when numba's cache is cold.

With an empty cache (``NUMBA_CACHE_DIR``) a group's kernels are compiled by a child; the process then runs
the group's own code (what the child ran) and loads every entry kernel from the cache: no cache miss, so
nothing was compiled in it (its memory and time are not the stage's).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

_GROUP = textwrap.dedent(
    """
    import json, sys
    from hikyuu_qlib import kernel_cache

    group = sys.argv[1]
    before = kernel_cache.cold_kernels(group)
    ran = kernel_cache.warm_kernels(group)
    after = kernel_cache.cold_kernels(group)
    kernel_cache.compile_kernels(group)  # the group's own code, run here after the child's
    stats = [k.stats for k in kernel_cache.entry_kernels(group)]
    print(json.dumps({"before": before, "ran": ran, "after": after,
                      "hits": [sum(s.cache_hits.values()) for s in stats],
                      "misses": [sum(s.cache_misses.values()) for s in stats]}))
    """
)


@pytest.mark.parametrize(("group", "entry"), [("topk", "run_days"), ("system", "run_grid")])
def test_cold_backtest_kernels_are_compiled_in_a_child_process(
    group: str, entry: str, tmp_path: Path
) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "NUMBA_CACHE_DIR": str(tmp_path / "numba")}
    proc = subprocess.run(
        [sys.executable, "-c", _GROUP, group], env=env, capture_output=True, text=True, timeout=1200
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(proc.stdout.strip().splitlines()[-1])
    assert doc["before"] == [entry] and doc["ran"] is True and doc["after"] == []
    assert doc["misses"] == [0] and doc["hits"][0] >= 1  # loaded from the cache, not compiled here
    assert list((tmp_path / "numba").rglob(f"*{entry}*.nbi"))
