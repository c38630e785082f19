"""``hq cache warm`` builds the features a workflow's run reads; the run then finds them in the cache."""

from __future__ import annotations

import json
from pathlib import Path

from cli_support import hq_env, run_hq_here

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "workflow_lightgbm_alpha158_csi300.yaml"


def test_warm_builds_the_workflow_features_once(qlib_dir: Path, tmp_path: Path) -> None:
    env = {
        **hq_env(tmp_path / "home"),
        "HQ_QLIB_DIR": str(qlib_dir),
        "HQ_TRAIN": "2016-01-01:2016-06-30",
        "HQ_VALID": "2016-07-01:2016-09-30",
        "HQ_TEST": "2016-10-01:2016-12-31",
        "HQ_RUNS_DIR": str(tmp_path / "runs"),
    }
    first = run_hq_here("cache", "warm", str(EXAMPLE), "--format", "json", env=env, cwd=REPO)
    assert first.returncode == 0, first.stderr[-2000:]
    doc = json.loads(first.stdout)
    assert [f["frame"] for f in doc["frames"]] == ["train", "predict"]
    assert [f["state"] for f in doc["frames"]] == ["computed", "computed"]
    assert doc["frames"][0]["rows"] > doc["frames"][1]["rows"] > 0 and doc["frames"][1]["columns"] == 160
    again = json.loads(
        run_hq_here("cache", "warm", str(EXAMPLE), "--format", "json", env=env, cwd=REPO).stdout
    )
    assert [f["state"] for f in again["frames"]] == ["cached", "cached"]
    assert [f["rows"] for f in again["frames"]] == [f["rows"] for f in doc["frames"]]
    stats = json.loads(run_hq_here("cache", "stats", "--format", "json", env=env, cwd=REPO).stdout)
    disk = {t["tier"]: t for t in stats["tiers"]}["l3"]
    assert disk["entries"] == 2 and disk["bytes"] > 0
    assert stats["counters"]["computed"] == 2 and stats["counters"]["tiers"]["l3"]["hits"] == 2
    cleared = run_hq_here("cache", "clear", "--format", "json", env=env, cwd=REPO)
    assert cleared.returncode == 0 and json.loads(cleared.stdout)["cleared"]["l3"] == 2
    assert json.loads(cleared.stdout)["off"] == ["l2"]  # no HQ_CACHE_URL: there is no Redis tier
