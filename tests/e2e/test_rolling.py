"""``hq rolling`` and ``hq sweep`` on the real Qlib store: windows, stitching, kill and resume, the
registry rule, a sweep's records and leaderboard."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest
from cli_support import hq_env, run_hq, run_hq_here
from rolling_support import assert_tiles, small_store, write_workflow

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("rolling")


@pytest.fixture(scope="module")
def env(home: Path) -> dict[str, str]:
    return {**hq_env(home / "home"), "HQ_DATABASE_URL": f"sqlite:///{home / 'registry.db'}"}


@pytest.fixture(scope="module")
def workflow(home: Path, qlib_dir: Path) -> Path:
    return write_workflow(home / "rolling.yaml", small_store(qlib_dir, home / "store"), home / "runs")


@pytest.fixture(scope="module")
def first(workflow: Path, env: dict[str, str]) -> dict[str, object]:
    proc = run_hq("rolling", str(workflow), "--workers", "2", "--format", "json", env=env, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return dict(json.loads(proc.stdout))


def models(env: dict[str, str], db: str | None = None) -> list[dict[str, object]]:
    args = ["model", "list", "--format", "json", "--limit", "200"] + (["--db", db] if db else [])
    proc = run_hq_here(*args, env=env, cwd=REPO)  # a read: no new interpreter needed
    assert proc.returncode == 0, proc.stderr[-2000:]
    return list(json.loads(proc.stdout)["models"])


def test_rolling_stitches_windows_without_overlap_or_gap(
    first: dict[str, object], env: dict[str, str], qlib_dir: Path
) -> None:
    windows = first["windows"]
    assert isinstance(windows, list) and len(windows) == 3
    assert [w["test"] for w in windows] == [
        "2016-10-10:2016-11-04", "2016-11-07:2016-12-02", "2016-12-05:2016-12-30"
    ]  # fmt: skip
    # sliding: each window's train and valid moved on by 20 trading days, a one-day gap before the test
    assert windows[1]["train"].startswith("2015-07-29") and windows[1]["valid"].endswith("2016-11-03")
    preds = pl.read_parquet(str(first["predictions"]))
    assert_tiles(preds, qlib_dir)
    comparison = first["comparison"]
    assert isinstance(comparison, dict)
    assert set(comparison["ic.ic"]) == {"rolling", "static"}
    rid = first["rolling_id"]
    mine = [m for m in models(env) if m["tags"].get("rolling_id") == rid]  # type: ignore[union-attr]
    assert sorted(m["tags"]["window"] for m in mine) == ["0", "1", "2", "static"]  # type: ignore[index]
    assert all(m["status"] == "trained" for m in mine)


def test_rerunning_skips_finished_windows(
    first: dict[str, object], workflow: Path, env: dict[str, str]
) -> None:
    proc = run_hq("rolling", str(workflow), "--format", "json", env=env, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(proc.stdout)
    assert doc["skipped_windows"] == 4 and doc["rolling_id"] == first["rolling_id"]
    assert "tasks" not in doc["timings"]
    assert pl.read_parquet(doc["predictions"]).equals(pl.read_parquet(str(first["predictions"])))


def test_a_killed_run_resumes_to_the_same_predictions(
    first: dict[str, object], workflow: Path, env: dict[str, str], home: Path
) -> None:
    out = home / "killed"
    local = {**env, "HQ_DATABASE_URL": f"sqlite:///{home / 'killed.db'}"}
    args = [
        sys.executable,
        "-m",
        "hikyuu_qlib",
        "rolling",
        str(workflow),
        "--workers",
        "2",
        "--out",
        str(out),
    ]
    proc = subprocess.Popen(args, env=local, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    tasks = out / f"rolling-{first['rolling_id']}" / "tasks"
    deadline = time.monotonic() + 600
    while not list(tasks.glob("*.parquet")) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)  # one window finished, others training
    proc.wait(timeout=60)
    finished = list(tasks.glob("*.parquet"))
    assert 1 <= len(finished) < 4, "the run ended before it could be killed mid-way"
    assert not (tasks.parent / "predictions.parquet").exists()
    time.sleep(1.5)  # the pool's workers notice their driver is gone and exit
    resumed = run_hq("rolling", str(workflow), "--resume", "--out", str(out), "--format", "json", env=local,
                     cwd=REPO)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    doc = json.loads(resumed.stdout)
    assert doc["skipped_windows"] == len(finished)
    again = pl.read_parquet(doc["predictions"])
    original = pl.read_parquet(str(first["predictions"]))
    assert again.equals(original)  # bit for bit: same seeds, same thread counts
    assert again["score"].to_numpy().tobytes() == original["score"].to_numpy().tobytes()
    states = [m["status"] for m in models(local) if m["tags"].get("rolling_id") == first["rolling_id"]]  # type: ignore[union-attr]
    assert "training" not in states and states.count("trained") == 4


def test_a_remote_cluster_with_a_sqlite_registry_is_refused_before_any_task(
    workflow: Path, env: dict[str, str], home: Path
) -> None:
    db = home / "remote.db"
    proc = run_hq_here("rolling", str(workflow), "--executor", "ray://10.1.2.3:10001", "--db", f"sqlite:///{db}",
                  "--format", "json", env=env, cwd=REPO)  # fmt: skip
    assert proc.returncode == 2, proc.stderr[-2000:]
    error = json.loads(proc.stdout)["error"]
    assert "PostgreSQL" in error["message"] and "10.1.2.3" in error["message"]
    assert not db.exists()  # refused before the registry was even created


def test_a_sweep_registers_every_configuration_and_ranks_on_valid(
    workflow: Path, env: dict[str, str], home: Path
) -> None:
    local = {**env, "HQ_DATABASE_URL": f"sqlite:///{home / 'sweep.db'}"}
    proc = run_hq("sweep", str(workflow), "--param", "num_leaves=16,64", "--param", "learning_rate=0.1,0.2",
                  "--workers", "2", "--format", "json", env=local, cwd=REPO)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(proc.stdout)  # one JSON document
    board = doc["leaderboard"]
    assert len(board) == 4 and doc["select"] == "valid.ic"
    assert {(r["params"]["num_leaves"], r["params"]["learning_rate"]) for r in board} == {
        (16, 0.1), (16, 0.2), (64, 0.1), (64, 0.2)
    }  # fmt: skip
    trained = [r for r in board if r["status"] == "trained"]
    assert trained and board[: len(trained)] == trained  # a failed (degenerate) trial is listed last
    valid = [r["valid"]["ic"] for r in trained]
    assert valid == sorted(valid, reverse=True) and doc["best"] == board[0]
    for row in board:
        assert set(row["valid"]) == set(row["test"]) == {"ic", "rank_ic", "ir", "excess_return"}
        assert row["status"] == "trained" or row["failure"]
    registered = [m for m in models(local) if m["tags"].get("sweep_id") == doc["sweep_id"]]  # type: ignore[union-attr]
    assert len(registered) == 4 and {m["id"] for m in registered} == {r["model_id"] for r in board}
    assert {m["hyperparameters"]["params"]["num_leaves"] for m in registered} == {16, 64}  # type: ignore[index]
    assert {m["status"] for m in registered} <= {"trained", "failed"}
    assert sorted(m["status"] for m in registered) == sorted(r["status"] for r in board)


def test_rolling_options_are_checked_before_any_work(workflow: Path, env: dict[str, str], home: Path) -> None:
    out = home / "refused"
    proc = run_hq_here("rolling", str(workflow), "--train-days", "5", "--out", str(out), "--format", "json",
                  env=env, cwd=REPO)  # fmt: skip
    assert proc.returncode == 2, proc.stderr[-2000:]
    error = json.loads(proc.stdout)["error"]
    assert error["message"].startswith("--train-days:") and "20" in error["message"]
    assert not list(out.glob("rolling-*"))
