"""Rolling on Ray, on the real Qlib store: the same predictions as the local pool; a Ray worker killed in
the middle of a task does not stop the run; a driver killed (SIGKILL) in the middle of a run takes its
local Ray down with it, and ``--resume`` ends with the uninterrupted run's predictions, bit for bit.

Ray runs locally with 2 CPUs and its temp dir under the session's tmp path (short enough for Ray's socket
paths): in this process (``ray.init(num_cpus=2)``), and in the ``hq rolling --executor ray --workers 2``
drivers started as users start them (``RAY_TMPDIR``)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest
from cli_support import hq_env, run_hq, run_hq_here
from rolling_support import assert_tiles, small_store, write_workflow
from tests.conftest import require

REPO = Path(__file__).resolve().parents[2]
#: Ray's socket paths (temp dir, ``/ray`` under RAY_TMPDIR, ``/session_<date>_<pid>/sockets/plasma_store``)
#: must stay under 108 bytes.
MAX_RAY_TEMP = 39


def _short_tmp(factory: pytest.TempPathFactory, name: str) -> Path:
    path = factory.mktemp(name)
    assert len(str(path)) <= MAX_RAY_TEMP, f"{path}: too long for Ray's socket paths"
    return path


def _need_ray() -> None:
    try:
        import ray  # noqa: F401
    except ImportError:
        require(False, "ray is not installed (pip install -e '.[ray]')")


@pytest.fixture(scope="module")
def ray_local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    _need_ray()
    import ray as ray_mod

    temp = _short_tmp(tmp_path_factory, "ray")
    from hikyuu_qlib.executors.ray import init_ray

    init_ray(ray_mod, None, {"num_cpus": 2, "_temp_dir": str(temp), "include_dashboard": False,
                             "logging_level": "WARNING"})  # fmt: skip
    yield temp
    ray_mod.shutdown()


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("rolling-ray")


@pytest.fixture(scope="module")
def store(home: Path, qlib_dir: Path) -> Path:
    return small_store(qlib_dir, home / "store")


@pytest.fixture(scope="module")
def uninterrupted(home: Path, store: Path) -> pl.DataFrame:
    """The stitched predictions of an uninterrupted run on the local pool (2 workers)."""
    from hikyuu_qlib.executors.local import LocalPoolExecutor
    from hikyuu_qlib.research import ResearchContext
    from hikyuu_qlib.settings import Settings
    from hikyuu_qlib.workflow.config import load_workflow
    from hikyuu_qlib.workflow.rolling import run_rolling

    config = load_workflow(write_workflow(home / "pool.yaml", store, home / "runs", static=False))
    executor = LocalPoolExecutor(2)
    try:
        with ResearchContext.open(
            config.source, settings=Settings(home=home / "home"), db=f"sqlite:///{home / 'pool.db'}"
        ) as ctx:
            result = run_rolling(config, ctx, executor, out_root=home / "pool")
    finally:
        executor.close()
    preds = pl.read_parquet(result.out_dir / "predictions.parquet")
    assert_tiles(preds, store)
    return preds


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
    ray_local: Path, home: Path, store: Path, uninterrupted: pl.DataFrame, tmp_path: Path
) -> None:
    from hikyuu_qlib.executors.ray import RayExecutor
    from hikyuu_qlib.research import ResearchContext
    from hikyuu_qlib.settings import Settings
    from hikyuu_qlib.workflow.config import load_workflow
    from hikyuu_qlib.workflow.rolling import run_rolling

    config = load_workflow(write_workflow(tmp_path / "w.yaml", store, tmp_path / "runs", static=False))
    executor = RayExecutor(threads=1, max_retries=2)
    stop, killed = threading.Event(), []
    watcher = threading.Thread(target=_kill_first_task_worker, args=(stop, killed), daemon=True)
    watcher.start()
    try:
        with ResearchContext.open(
            config.source, settings=Settings(home=tmp_path / "home"), db=f"sqlite:///{tmp_path / 'ray.db'}"
        ) as ctx:
            result = run_rolling(config, ctx, executor, out_root=tmp_path / "ray")
    finally:
        stop.set()
        executor.close()
    assert killed, "no Ray worker was seen running a task"
    assert result.executor == "ray" and result.skipped == 0 and len(result.windows) == 3
    preds = pl.read_parquet(result.out_dir / "predictions.parquet")
    assert_tiles(preds, store)
    assert preds.equals(uninterrupted)
    # the shared features are read from the object store once per worker process, never once per task
    loads = Counter(run["worker_pid"] for run in result.task_runs if run["loaded_shared"])
    assert loads and max(loads.values()) == 1, result.task_runs
    assert len({run["worker_pid"] for run in result.task_runs}) == len(loads)


def _ray_processes(temp: Path) -> list[int]:
    """The processes of the Ray session under ``temp`` (raylet, GCS, agents, workers)."""
    import psutil

    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        if str(temp) in " ".join(proc.info.get("cmdline") or []):
            found.append(proc.info["pid"])
    return found


def test_a_killed_ray_driver_resumes_to_the_same_predictions(
    home: Path, store: Path, uninterrupted: pl.DataFrame, tmp_path_factory: pytest.TempPathFactory
) -> None:
    _need_ray()
    temp = _short_tmp(tmp_path_factory, "rk")
    workflow = write_workflow(home / "killed.yaml", store, home / "runs")  # with the static model: 4 tasks
    out = home / "killed"
    env = {
        **hq_env(home / "home"),
        "HQ_DATABASE_URL": f"sqlite:///{home / 'killed.db'}",
        "RAY_TMPDIR": str(temp),
    }
    env.pop("RAY_ADDRESS", None)
    args = [sys.executable, "-m", "hikyuu_qlib", "rolling", str(workflow), "--executor", "ray", "--workers", "2",
            "--out", str(out)]  # fmt: skip
    proc = subprocess.Popen(args, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 600
        finished: list[Path] = []
        while not finished and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
            finished = list(out.glob("rolling-*/tasks/*.parquet"))
        assert _ray_processes(temp), "the driver started no local Ray under RAY_TMPDIR"
        proc.send_signal(signal.SIGKILL)  # one task finished, others training
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    tasks = next(out.glob("rolling-*/tasks"))
    finished = list(tasks.glob("*.parquet"))
    assert 1 <= len(finished) < 4, "the run ended before it could be killed mid-way"
    assert not (tasks.parent / "predictions.parquet").exists()
    deadline = time.monotonic() + 60  # the killed driver's Ray shares its fate: no orphan keeps training
    while _ray_processes(temp) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not _ray_processes(temp), "the killed driver's Ray processes outlived it"

    resumed = run_hq("rolling", str(workflow), "--executor", "ray", "--workers", "2", "--resume", "--out",
                     str(out), "--format", "json", env=env, cwd=REPO)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    doc = json.loads(resumed.stdout)
    assert doc["executor"] == "ray" and doc["skipped_windows"] == len(finished)
    again = pl.read_parquet(doc["predictions"])
    assert again.equals(uninterrupted)  # bit for bit: same seeds, same thread counts
    assert again["score"].to_numpy().tobytes() == uninterrupted["score"].to_numpy().tobytes()
    listed = run_hq_here("model", "list", "--format", "json", "--limit", "200", env=env, cwd=REPO)
    assert listed.returncode == 0, listed.stderr[-2000:]
    mine = [
        m for m in json.loads(listed.stdout)["models"] if m["tags"].get("rolling_id") == doc["rolling_id"]
    ]
    states = sorted(m["status"] for m in mine)
    assert "training" not in states and states.count("trained") == 4
