"""``hq demo`` end to end on a small synthetic market: no files, no network, no services."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import polars as pl
from cli_support import run_hq

SOURCE = "synthetic:3?stocks=80&years=4"


def hq(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return run_hq(*args, env={**os.environ, **env})


def test_demo_runs_the_whole_job_and_reuses_it(tmp_path: Path) -> None:
    env = {"HQ_HOME": str(tmp_path / "home"), "HQ_DATABASE_URL": f"sqlite:///{tmp_path / 'registry.db'}"}
    out = tmp_path / "demo"
    proc = hq(env, "demo", "--source", SOURCE, "--out", str(out), "--format", "json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(proc.stdout)
    run_dir = Path(doc["out_dir"])
    assert run_dir.parent == out and Path(doc["report"]).is_file()
    html = Path(doc["report"]).read_text()
    assert "<script" not in html and "data:image/png;base64" in html
    preds = pl.read_parquet(run_dir / "predictions.parquet")
    assert preds.height > 1000 and preds["code"].n_unique() > 20
    assert doc["metrics"]["model"]["test"]["days"] > 100
    assert doc["metrics"]["backtest"]["portfolio"]["total_return"] is not None
    # the synthetic market was exported once to a Qlib view under HQ_HOME, keyed by its data version
    views = list((tmp_path / "home" / "cache" / "qlib-views").iterdir())
    assert len(views) == 1 and (views[0] / "instruments" / "csi300.txt").is_file()
    again = hq(env, "demo", "--source", SOURCE, "--out", str(out), "--format", "json")
    assert again.returncode == 0, again.stderr[-3000:]
    second = json.loads(again.stdout)
    assert second["reused_model"] is True and second["model_id"] == doc["model_id"]
