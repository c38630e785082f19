"""Rolling on a local Ray (started once for the module): same predictions as the local pool, and a Ray
worker killed in the middle of a task does not stop the run."""

from __future__ import annotations

import os
import signal
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest
from rolling_support import assert_tiles, small_store, write_workflow
from tests.conftest import require


@pytest.fixture(scope="module")
def ray_local() -> Iterator[None]:
    try:
        import ray as ray_mod
    except ImportError:
        require(False, "ray is not installed (pip install -e '.[ray]')")
        raise
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: Ray's socket paths have a length limit
    ray_mod.init(num_cpus=2, _temp_dir=temp, include_dashboard=False, logging_level="WARNING")
    yield
    ray_mod.shutdown()


def _kill_first_task_worker(stop: threading.Event, killed: list[int]) -> None:
    """SIGKILL the first Ray worker seen running a task (its title is ``ray::run_task``)."""
    import psutil

    while not stop.is_set() and not killed:
        for proc in psutil.process_iter(["pid", "cmdline"]):
            cmdline = " ".join(proc.info.get("cmdline") or [])
            if cmdline.startswith("ray::run_task"):
                time.sleep(1.0)  # well inside the task: the features are read, training is under way
                try:
                    os.kill(proc.info["pid"], signal.SIGKILL)
                except ProcessLookupError:
                    continue
                killed.append(proc.info["pid"])
                return
        time.sleep(0.1)


def test_ray_gives_the_local_pool_predictions_and_survives_a_killed_worker(
    ray_local: None, qlib_dir: Path, tmp_path: Path
) -> None:
    from hikyuu_qlib.executors.local import LocalPoolExecutor
    from hikyuu_qlib.executors.ray import RayExecutor
    from hikyuu_qlib.research import ResearchContext
    from hikyuu_qlib.settings import Settings
    from hikyuu_qlib.workflow.config import load_workflow
    from hikyuu_qlib.workflow.rolling import run_rolling

    store = small_store(qlib_dir, tmp_path / "store")
    config = load_workflow(write_workflow(tmp_path / "w.yaml", store, tmp_path / "runs", static=False))
    settings = Settings(home=tmp_path / "home")
    outputs = {}
    for name, make in (("local", lambda: LocalPoolExecutor(2)), ("ray", lambda: RayExecutor(threads=1))):
        executor = make()
        stop, killed = threading.Event(), []
        watcher = threading.Thread(target=_kill_first_task_worker, args=(stop, killed), daemon=True)
        if name == "ray":
            watcher.start()
        try:
            with ResearchContext.open(
                config.source, settings=settings, db=f"sqlite:///{tmp_path / name}.db"
            ) as ctx:
                result = run_rolling(config, ctx, executor, out_root=tmp_path / name)
        finally:
            stop.set()
            executor.close()
        if name == "ray":
            assert killed, "no Ray worker was seen running a task"
        assert result.executor == name and result.skipped == 0
        outputs[name] = pl.read_parquet(result.out_dir / "predictions.parquet")
    assert_tiles(outputs["ray"], store)
    assert outputs["ray"].equals(outputs["local"])
