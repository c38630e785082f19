"""``hq run`` within a small memory budget, as a user runs it: a child process whose peak RSS is polled.

The store is generated from the real histories of qlib_cn (``benchmarks/make_qlib_market_store.py``:
percent ``$change``, no vwap, delisted codes, suspensions), about 2 M rows over every instrument. With
a 1.5 GB budget the run cannot hold the features in memory, so every stage goes through date blocks on
disk; its peak RSS (the process and its children) must stay within the budget. The same workflow on
CSI300 of the real store, in memory and bounded, must give the same model and the same predictions.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import psutil
import pytest
from selection_support import EXAMPLE, REPO, SPANS, SelectionRun, workflow_env

BUDGET_MB = 1536
#: 60 boosting rounds at most (``num_boost_round`` overrides the preset's 1000): the test is about memory
#: and equality, not about the model.
SHORT = "  params: {num_boost_round: 60}"


def workflow(tmp: Path, universe: str) -> Path:
    path = tmp / f"{universe}.yaml"
    text = EXAMPLE.read_text().replace("universe: csi300", f"universe: {universe}")
    path.write_text(text.replace("  params: {}", SHORT))
    return path


def _tree_rss(proc: psutil.Process) -> int:
    total = 0
    try:
        procs = [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            total += p.memory_info().rss
    return total


def _run_polled(args: list[str], env: dict[str, str]) -> tuple[int, str, str, int]:
    """Run ``hq ARGS``; its exit code, stdout, stderr and the peak RSS of its process tree."""
    out_path = Path(env["HQ_HOME"]) / "stdout.txt"
    err_path = Path(env["HQ_HOME"]) / "stderr.txt"
    Path(env["HQ_HOME"]).mkdir(parents=True, exist_ok=True)
    with out_path.open("wb") as out, err_path.open("wb") as err:
        popen = subprocess.Popen([sys.executable, "-m", "hikyuu_qlib", *args], stdout=out, stderr=err, env=env,
                                 cwd=REPO)  # fmt: skip
        proc = psutil.Process(popen.pid)
        peak = 0
        deadline = time.monotonic() + 1200
        while popen.poll() is None:
            peak = max(peak, _tree_rss(proc))
            if time.monotonic() > deadline:
                popen.kill()
            time.sleep(0.02)
    return popen.returncode, out_path.read_text(), err_path.read_text(), peak


@pytest.fixture(scope="module")
def market_store(tmp_path_factory: pytest.TempPathFactory, data_root: Path) -> Path:
    out = tmp_path_factory.mktemp("market") / "qlib"
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "make_qlib_market_store.py"), "--stocks", "700",
         "--out", str(out)],
        capture_output=True, text=True, timeout=600,
        env={**os.environ, "PYTHONPATH": str(REPO / "src"), "HQ_TEST_DATA": str(data_root)},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


@pytest.fixture(scope="module")
def market_run(market_store: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """``hq run`` over every instrument of the generated store within the budget, as the first run after an
    install: numba's cache is empty (``NUMBA_CACHE_DIR``), so the run has its kernels compiled first."""
    tmp = tmp_path_factory.mktemp("market-run")
    path = workflow(tmp, "all")
    numba_cache = tmp / "numba-cache"
    env = workflow_env(tmp, market_store, HQ_TRAIN="2012-01-01:2014-12-31", HQ_VALID="2015-01-01:2015-12-31",
                       HQ_TEST="2016-01-01:2017-12-31", NUMBA_CACHE_DIR=str(numba_cache))  # fmt: skip
    code, out, err, peak = _run_polled(
        ["run", str(path), "--format", "json", "--memory-budget", f"{BUDGET_MB}MB"], env
    )
    assert code == 0, err[-3000:]
    assert list(numba_cache.rglob("*rolling_features*.nbi")), (
        "the factor kernels were not compiled into the cache"
    )
    return {"doc": json.loads(out), "peak": peak, "env": env}


def test_a_whole_market_run_stays_within_its_budget(
    market_store: Path, market_run: dict[str, object]
) -> None:
    params = json.loads((market_store / "params.json").read_text())
    assert params["rows"] >= 1_800_000 and params["delisted"] > 0
    doc, peak = market_run["doc"], market_run["peak"]
    assert isinstance(doc, dict) and isinstance(peak, int)
    metrics = json.loads((Path(doc["out_dir"]) / "metrics.json").read_text())
    assert metrics["memory"]["path"] == "bounded"
    assert metrics["memory"]["budget_mb"] == BUDGET_MB
    stages = metrics["memory"]["peak_rss_mb"]
    assert {"load", "train", "factors", "predict", "backtest", "report"} <= set(stages)
    assert max(stages.values()) <= BUDGET_MB
    assert "compile" in metrics["timings"]  # the backtest's kernels: compiled in a child, timed on their own
    assert peak <= BUDGET_MB * 2**20, f"peak RSS {peak / 2**20:.0f} MB over the {BUDGET_MB} MB budget"
    preds = pl.read_parquet(Path(doc["out_dir"]) / "predictions.parquet")
    assert preds["code"].n_unique() > 300 and preds["datetime"].min().year == 2016
    assert metrics["model"]["test"]["days"] > 400


def test_hq_predict_streams_the_same_scores(market_run: dict[str, object], tmp_path: Path) -> None:
    doc, env = market_run["doc"], market_run["env"]
    assert isinstance(doc, dict) and isinstance(env, dict)
    out = tmp_path / "preds.parquet"
    code, stdout, err, peak = _run_polled(
        ["predict", str(doc["model_id"]), "--start", "2016-01-01", "--end", "2017-12-31", "--universe", "all",
         "--out", str(out), "--format", "json", "--memory-budget", f"{BUDGET_MB}MB"],
        env,
    )  # fmt: skip
    assert code == 0, err[-3000:]
    assert json.loads(stdout)["rows"] == pl.read_parquet(out).height
    expected = pl.read_parquet(Path(doc["out_dir"]) / "predictions.parquet")
    assert pl.read_parquet(out).equals(expected)
    assert peak <= BUDGET_MB * 2**20


TRAIN_SPANS = ["--train", "2016-01-01:2016-12-31", "--valid", "2017-01-01:2017-06-30", "--test",
               "2017-07-01:2017-12-31"]  # fmt: skip
#: CSI300's members have data on 126 k of their ~146 k member-days of 2016–2017: the in-memory path needs
#: ~385 MB, so 960 MB (360 MB for data) takes the bounded path, and holds LightGBM's data for one year of
#: training rows.
TRAIN_BUDGET = "960MB"


def _train_args(qlib_dir: Path, rounds: int, budget: str) -> list[str]:
    return ["model", "train", "--source", f"qlib:{qlib_dir}", "--universe", "csi300", *TRAIN_SPANS,
            "--num-boost-round", str(rounds), "--threads", "2", "--memory-budget", budget, "--format", "json"]  # fmt: skip


def test_model_train_within_a_budget_removes_the_scratch_of_a_killed_run(
    qlib_dir: Path, tmp_path: Path
) -> None:
    env = workflow_env(tmp_path / "bounded", qlib_dir)
    scratch = Path(env["HQ_HOME"]) / "cache" / "scratch"
    Path(env["HQ_HOME"]).mkdir(parents=True)
    with (tmp_path / "killed.err").open("wb") as err:
        killed = subprocess.Popen([sys.executable, "-m", "hikyuu_qlib", *_train_args(qlib_dir, 1000, TRAIN_BUDGET)],
                                  stdout=subprocess.DEVNULL, stderr=err, env=env, cwd=REPO)  # fmt: skip
        try:
            deadline = time.monotonic() + 600
            while not list(scratch.glob("hq-rows-*/valid.f32")):  # the row files written: LightGBM is next
                assert killed.poll() is None, (tmp_path / "killed.err").read_text()[-3000:]
                assert time.monotonic() < deadline, "the training wrote no row files in time"
                time.sleep(0.02)
            time.sleep(0.5)
            killed.send_signal(signal.SIGKILL)
            killed.wait(60)
        finally:
            if killed.poll() is None:
                killed.kill()
    left = [p.name for p in scratch.iterdir()]
    assert len(left) == 1 and left[0].startswith(f"hq-rows-{killed.pid}-")  # what SIGKILL leaves behind
    assert (scratch / left[0] / "train.f32").stat().st_size > 0

    code, out, err_text, _ = _run_polled(_train_args(qlib_dir, 30, TRAIN_BUDGET), env)
    assert code == 0, err_text[-3000:]
    bounded = json.loads(out)
    assert bounded["memory"]["path"] == "bounded" and bounded["memory"]["budget_mb"] == 960
    assert {"factors", "train"} <= set(bounded["memory"]["peak_rss_mb"])
    assert list(scratch.iterdir()) == []  # the dead run's scratch is gone, and this run's own

    code, out, err_text, _ = _run_polled(
        _train_args(qlib_dir, 30, "16GB"), workflow_env(tmp_path / "memory", qlib_dir)
    )
    assert code == 0, err_text[-3000:]
    memory = json.loads(out)
    assert memory["memory"]["path"] == "in_memory"
    assert bounded["best_iteration"] == memory["best_iteration"]
    for segment in ("train", "valid", "test"):
        for key, value in memory["metrics"][segment].items():
            assert bounded["metrics"][segment][key] == pytest.approx(value, rel=1e-12, nan_ok=True), (
                segment,
                key,
            )


def test_model_train_refuses_a_budget_that_cannot_hold_lightgbm(qlib_dir: Path, tmp_path: Path) -> None:
    """700 MB leaves 100 MB for data: enough for the factors by groups of codes, not for LightGBM's bins,
    sample and histograms (num_leaves 210). Refused before any work, naming the stage and the need."""
    env = workflow_env(tmp_path, qlib_dir)
    code, out, _, _ = _run_polled(_train_args(qlib_dir, 30, "700MB"), env)
    assert code == 1
    error = json.loads(out)["error"]
    assert error["type"] == "MemoryBudgetError"
    assert re.search(r"stage 'train' needs at least \d+\.\d\d MB but the memory budget is 700\.00 MB",
                     error["message"]), error["message"]  # fmt: skip
    assert not (Path(env["HQ_HOME"]) / "cache" / "features-blocks").exists()  # no factor was computed
    code, out, _, _ = _run_polled(["model", "train", "--source", f"qlib:{qlib_dir}", *TRAIN_SPANS,
                                   "--memory-budget", "lots", "--format", "json"], env)  # fmt: skip
    assert code == 2 and "invalid memory size 'lots'" in json.loads(out)["error"]["message"]


def test_a_selection_within_a_budget_trains_every_run_from_the_block_set(
    csi300_selection: SelectionRun, qlib_dir: Path, tmp_path: Path
) -> None:
    """Each candidate and seed of a selection over the budget trains from the one block set, as a single
    training does, and from one set of row files (written by the first training): the run stays within the
    budget, chooses the model the in-memory selection (the session's: tests/conftest.py) chooses, and
    predicts and backtests as it does: the stages after training are those of a run of one model, whose
    bounded training is ``hq model train``'s (train_and_register with a budget), compared to the in-memory
    training in test_model_train_within_a_budget_removes_the_scratch_of_a_killed_run."""
    memory = csi300_selection.metrics
    env = workflow_env(tmp_path / "bounded", qlib_dir, **SPANS)
    code, out, log, peak = _run_polled(
        ["--log-level", "INFO", "run", str(csi300_selection.config), "--format", "json", "--memory-budget",
         TRAIN_BUDGET], env,
    )  # fmt: skip
    assert code == 0, log[-3000:]
    out_dir = Path(json.loads(out)["out_dir"])
    bounded = json.loads((out_dir / "metrics.json").read_text())
    assert log.count("training rows written") == 1  # four trainings, one set of row files
    assert log.count("the row files written for an earlier training") == 3
    assert list((tmp_path / "bounded" / "home" / "cache" / "scratch").iterdir()) == []
    assert memory["memory"]["path"] == "in_memory" and bounded["memory"]["path"] == "bounded"
    budget_mb = int(TRAIN_BUDGET.removesuffix("MB"))
    assert max(bounded["memory"]["peak_rss_mb"].values()) <= budget_mb
    assert peak <= budget_mb * 2**20, f"peak RSS {peak / 2**20:.0f} MB over the {TRAIN_BUDGET} budget"
    chosen, expected = bounded["model"]["selection"], memory["model"]["selection"]
    assert chosen["chosen_candidate"] == expected["chosen_candidate"]
    assert len(chosen["tried"]) == 2 and all(len(t["models"]) == 2 for t in chosen["tried"])
    for got, want in zip(chosen["tried"], expected["tried"], strict=True):
        assert got["select_value"] == pytest.approx(want["select_value"], rel=1e-12)
    for key in ("ic", "rank_ic", "best_iteration"):
        assert bounded["model"][key] == pytest.approx(memory["model"][key], rel=1e-12), key
    # the run's later stages within the budget too: the same predictions, the same backtest
    a = pl.read_parquet(csi300_selection.out_dir / "predictions.parquet")
    assert a.height > 10_000 and a.equals(pl.read_parquet(out_dir / "predictions.parquet"))
    assert bounded["backtest"] == memory["backtest"]
