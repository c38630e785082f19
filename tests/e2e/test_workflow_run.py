"""``hq run`` on the examples/ CSI300 workflow over the real Qlib store, with shortened segments."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import IO

import polars as pl
import pytest
from cli_support import run_hq, run_hq_here

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "workflow_lightgbm_alpha158_csi300.yaml"


def hq(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """``hq ARGS`` in a new interpreter, as a user runs it."""
    return run_hq(*args, env={**os.environ, **env}, cwd=REPO)


def hq_here(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """``hq ARGS`` through the same entrypoint in this process (no interpreter to start)."""
    return run_hq_here(*args, env={**os.environ, **env}, cwd=REPO)


@pytest.fixture(scope="module")
def env(qlib_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    tmp = tmp_path_factory.mktemp("workflow")
    return {
        "HQ_QLIB_DIR": str(qlib_dir),
        "HQ_TRAIN": "2016-01-01:2016-12-31",
        "HQ_VALID": "2017-01-01:2017-06-30",
        "HQ_TEST": "2017-07-01:2017-12-31",
        "HQ_RUNS_DIR": str(tmp / "runs"),
        "HQ_HOME": str(tmp / "home"),
        "HQ_DATABASE_URL": f"sqlite:///{tmp / 'registry.db'}",
    }


@pytest.fixture(scope="module")
def first_run(env: dict[str, str]) -> dict[str, object]:
    """The first run, traced into a JSON-lines file and writing its metrics file (both beside the runs)."""
    runs = Path(env["HQ_RUNS_DIR"]).parent
    traced = {**env, "OTEL_TRACES_EXPORTER": "jsonl", "HQ_TRACES_FILE": str(runs / "traces.jsonl")}
    proc = hq(traced, "run", str(EXAMPLE), "--format", "json", "--metrics-file", str(runs / "run.prom"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return dict(json.loads(proc.stdout))


def test_a_run_writes_its_metrics_and_its_trace(first_run: dict[str, object], env: dict[str, str]) -> None:
    """One trace: the command's span, each stage under it, data loads and registry operations under those;
    the metrics file has the same stage times as metrics.json, and the run as a succeeded job."""
    from prometheus_client.parser import text_string_to_metric_families

    runs = Path(env["HQ_RUNS_DIR"]).parent
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families((runs / "run.prom").read_text())
        for s in family.samples
    }
    timings = json.loads((Path(str(first_run["out_dir"])) / "metrics.json").read_text())["timings"]
    for stage, seconds in timings.items():
        recorded = samples[("hq_stage_duration_seconds_sum", (("stage", stage),))]
        assert recorded == pytest.approx(seconds, abs=0.001), stage
    assert samples[("hq_jobs_total", (("kind", "run"), ("status", "succeeded")))] == 1
    loads = [v for (name, labels), v in samples.items() if name == "hq_data_bars_loaded_total"]
    assert loads and sum(loads) > 10_000  # CSI300 for a year and a half
    saves = samples[("hq_db_queries_total", (("backend", "sqlite"), ("operation", "save"), ("status", "ok")))]
    assert saves >= 2

    spans = [json.loads(line) for line in (runs / "traces.jsonl").read_text().splitlines()]
    assert len({s["context"]["trace_id"] for s in spans}) == 1
    by_id = {s["context"]["span_id"]: s for s in spans}
    root = [s for s in spans if s["parent_id"] is None]
    assert [s["name"] for s in root] == ["hq run"] and root[0]["attributes"]["hq.exit_code"] == 0
    stages = {s["name"] for s in spans if by_id.get(s["parent_id"] or "", {}).get("name") == "hq run"}
    assert {"stage.load", "stage.train", "stage.predict", "stage.backtest", "stage.report"} <= stages
    loads_traced = [s for s in spans if s["name"] == "data.load"]
    assert loads_traced and all(s["attributes"]["hq.ktype"] == "day" for s in loads_traced)
    assert max(s["attributes"]["hq.codes"] for s in loads_traced) > 100  # one span per load, not per code
    assert sum(s["attributes"]["hq.bars"] for s in loads_traced) == sum(loads)
    assert any(s["name"] == "registry.save" for s in spans)


def test_a_run_puts_every_output_in_one_directory(first_run: dict[str, object], env: dict[str, str]) -> None:
    out = Path(str(first_run["out_dir"]))
    assert out.parent == Path(env["HQ_RUNS_DIR"]) and out.name == first_run["run_id"]
    for name in ("config.yaml", "metrics.json", "predictions.parquet", "model.json", "report/report.html"):
        assert (out / name).is_file(), name
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no staging left behind
    preds = pl.read_parquet(out / "predictions.parquet")
    assert preds.columns == ["datetime", "code", "score"]
    assert preds["datetime"].min().strftime("%Y-%m") == "2017-07"
    metrics = json.loads((out / "metrics.json").read_text())
    stages = {"load", "factors", "train", "predict", "backtest", "report"}
    assert stages <= set(metrics["timings"]) <= stages | {"compile"}  # compile: numba's cache was cold
    assert -0.2 < metrics["model"]["ic"] < 0.2 and metrics["model"]["test"]["days"] > 100
    model = json.loads((out / "model.json").read_text())
    assert model["id"] == first_run["model_id"] and model["status"] == "trained"
    assert model["metrics"]["backtest"]["portfolio.total_return"] is not None
    assert model["tags"]["run_id"] == first_run["run_id"]


def test_an_identical_run_reuses_the_model_and_force_retrains(
    first_run: dict[str, object], env: dict[str, str]
) -> None:
    again = hq_here(env, "run", str(EXAMPLE), "--format", "json")
    assert again.returncode == 0, again.stderr[-3000:]
    doc = json.loads(again.stdout)
    assert doc["reused_model"] is True and doc["model_id"] == first_run["model_id"]
    assert doc["run_id"] == first_run["run_id"]
    forced = hq_here(env, "run", str(EXAMPLE), "--force", "--format", "json")
    assert forced.returncode == 0, forced.stderr[-3000:]
    doc = json.loads(forced.stdout)
    assert doc["reused_model"] is False and doc["model_id"] != first_run["model_id"]
    listed = hq_here(env, "model", "list", "--format", "json")
    assert len(json.loads(listed.stdout)["models"]) == 2


def test_a_bad_workflow_file_fails_clearly(env: dict[str, str], tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(EXAMPLE.read_text().replace("universe: csi300", "universe: csi300\nuniverze: csi500"))
    proc = hq_here(env, "run", str(bad))
    assert proc.returncode == 2
    assert "univerze" in proc.stderr and str(bad) in proc.stderr


def test_ctrl_c_leaves_no_half_written_outputs(env: dict[str, str], tmp_path: Path) -> None:
    import signal
    import threading
    import time

    runs = tmp_path / "runs"
    local = {**env, "HQ_RUNS_DIR": str(runs), "HQ_DATABASE_URL": f"sqlite:///{tmp_path / 'reg.db'}"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "hikyuu_qlib", "--log-format", "json", "run", str(EXAMPLE), "--force"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **local},
        cwd=REPO,
    )
    assert proc.stderr is not None
    seen: list[str] = []
    training = threading.Event()

    def drain(stream: IO[str]) -> None:  # keep reading, so the child never blocks on a full pipe
        for line in stream:
            seen.append(line)
            if "stage train" in line:
                training.set()

    reader = threading.Thread(target=drain, args=(proc.stderr,), daemon=True)
    reader.start()
    assert training.wait(timeout=300), "".join(seen[-20:])
    time.sleep(1.0)  # training is under way
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=300)
    reader.join(timeout=10)
    assert proc.returncode == 130, "".join(seen[-40:])
    leftovers = list(runs.iterdir()) if runs.exists() else []
    assert leftovers == []  # neither a run directory nor a staging directory
    listed = hq_here(local, "model", "list", "--format", "json")
    document = json.loads(listed.stdout)
    if listed.returncode == 3:  # interrupted before the run opened the registry: it was never created
        assert "no registry at" in document["error"]["message"] and not (tmp_path / "reg.db").exists()
        return
    statuses = [m["status"] for m in document["models"]]
    assert statuses in ([], ["failed"])  # an interrupted training is marked failed, never "trained"
