"""``model.select_on: valid`` in a workflow file: candidates × seeds trained, chosen on valid alone."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from cli_support import hq_env, run_hq_here
from selection_support import SelectionRun


def _config(qlib_dir: Path, tmp: Path, **model: object) -> Path:
    doc = {
        "source": f"qlib:{qlib_dir}",
        "universe": "csi300",
        "model": {
            "preset": "qlib-lgb-alpha158",
            "params": {"num_boost_round": 20},
            **model,
        },
        "segments": {
            "train": "2016-01-01:2016-12-31",
            "valid": "2017-01-01:2017-06-30",
            "test": "2017-07-01:2017-12-31",
        },
        "strategy": {"topk": 5, "n_drop": 1},
        "outputs": {"dir": str(tmp / "runs")},
    }
    path = tmp / "select.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_selection_on_valid_reports_every_candidate(csi300_selection: SelectionRun) -> None:
    """The example workflow with two candidates × two seeds (the session's selection run:
    tests/conftest.py)."""
    run = csi300_selection.doc
    selection = run["metrics"]["model"]["selection"]
    assert selection["select_on"] == "valid" and selection["select_metric"] == "ic"
    tried = selection["tried"]
    assert [t["params"] for t in tried] == [{"num_leaves": 31}, {"num_leaves": 210, "learning_rate": 0.1}]
    assert all(len(t["models"]) == 2 and t["valid"]["ic"]["n"] == 2 and "test" in t for t in tried)
    best = max(tried, key=lambda t: t["select_value"])  # the valid mean, never the test
    assert selection["chosen_candidate"] == best["candidate"]
    assert run["model_id"] in best["models"] and selection["chosen_model"] == run["model_id"]
    html = (Path(run["out_dir"]) / "report" / "report.html").read_text()
    assert "Model comparison" in html and "Feature importance" in html


def test_unknown_preset_is_refused(qlib_dir: Path, tmp_path: Path) -> None:
    config = _config(qlib_dir, tmp_path)
    doc = yaml.safe_load(config.read_text())
    doc["model"]["preset"] = "qlib-nope"
    config.write_text(yaml.safe_dump(doc))
    proc = run_hq_here("run", str(config), env=hq_env(tmp_path / "home"))
    assert proc.returncode == 2 and "unknown preset 'qlib-nope'" in proc.stderr


@pytest.mark.parametrize("segment", ["test"])
def test_select_on_only_valid(qlib_dir: Path, tmp_path: Path, segment: str) -> None:
    config = _config(qlib_dir, tmp_path, select_on=segment)
    proc = run_hq_here("run", str(config), env=hq_env(tmp_path / "home"))
    assert proc.returncode == 2 and "select_on" in proc.stderr
