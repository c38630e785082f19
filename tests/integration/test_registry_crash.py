"""A writer killed with SIGKILL in the middle of ``save_many`` leaves all of its records or none."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator

import pytest
from registry_support import Target, make_target

from hikyuu_qlib.registry import ModelRegistry

N = 10_000

WRITER = textwrap.dedent(
    """
    import sys
    from hikyuu_qlib.domain.model import Model
    from hikyuu_qlib.registry import ModelRegistry, RegistryOptions

    url, schema = sys.argv[1], sys.argv[2] or None
    models = [Model.new("crash", "lightgbm", hyperparameters={"i": i}, tags={"k": str(i % 7)})
              for i in range(N)]
    with ModelRegistry(url, RegistryOptions(schema=schema)) as registry:
        print("started", flush=True)
        registry.save_many(models)
        print("done", flush=True)
    """
).replace("N)", f"{N})")


@pytest.fixture(params=["sqlite", "postgresql"])
def target(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    with make_target(request.param, request, tmp_path_factory) as t:
        yield t


def _run_and_kill(target: Target, delay: float) -> tuple[bool, str]:
    """Start the writer, SIGKILL it ``delay`` s after it starts saving; (killed while running, output)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, target.url, target.options.schema or ""],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.strip() == "started", proc.stderr.read() if proc.stderr else line
    time.sleep(delay)
    alive = proc.poll() is None
    if alive:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    out = proc.stdout.read()
    return alive, out


@pytest.mark.slow
def test_sigkill_during_save_many_leaves_all_or_none(target: Target) -> None:
    killed_mid_flight = 0
    expected = 0
    for delay in (0.02, 0.15, 0.4):
        alive, out = _run_and_kill(target, delay)
        with ModelRegistry(target.url, target.options) as registry:
            stored = registry.count()
        assert stored - expected in (0, N), f"after SIGKILL at {delay}s: {stored - expected} of {N} records"
        if alive and "done" not in out:
            killed_mid_flight += 1
        expected = stored
    assert killed_mid_flight >= 1, "the writer finished before every kill: the test proved nothing"
    with ModelRegistry(target.url, target.options) as registry:
        if target.backend == "sqlite":
            raw = registry.engine.raw_connection()
            try:
                assert raw.cursor().execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            finally:
                raw.close()
        versions = sorted(m.version or 0 for m in registry.iterate())
        assert versions == list(range(1, len(versions) + 1))
