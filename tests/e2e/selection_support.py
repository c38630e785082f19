"""The session's CSI300 selection run (the ``csi300_selection`` fixture of tests/conftest.py): its
workflow, its environment and what it wrote."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "workflow_lightgbm_alpha158_csi300.yaml"
#: Model selection (``model.select_on``) with two seeds and two candidates, 20 rounds each: the preset's
#: num_leaves (the largest trees, for the memory budget of tests/e2e/test_bounded_run.py) at another
#: learning rate, and smaller trees.
SELECT = (
    "  params: {num_boost_round: 20}\n  select_on: valid\n  seeds: 2\n"
    "  candidates: [{num_leaves: 31}, {num_leaves: 210, learning_rate: 0.1}]"
)
SPANS = {"HQ_TRAIN": "2016-01-01:2016-12-31", "HQ_VALID": "2017-01-01:2017-06-30",
         "HQ_TEST": "2017-07-01:2017-12-31"}  # fmt: skip


def workflow_env(tmp: Path, source: Path, **extra: str) -> dict[str, str]:
    """This process's environment without HQ_* settings; the example workflow's source, outputs, home and
    registry under ``tmp``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HQ_")}
    return {
        **env,
        "PYTHONPATH": str(REPO / "src"),
        "HQ_QLIB_DIR": str(source),
        "HQ_RUNS_DIR": str(tmp / "runs"),
        "HQ_HOME": str(tmp / "home"),
        "HQ_DATABASE_URL": f"sqlite:///{tmp / 'registry.db'}",
        **extra,
    }


@dataclass(frozen=True)
class SelectionRun:
    """``hq run`` of the example workflow with :data:`SELECT`, in memory, on CSI300 of the real store."""

    config: Path  #: the workflow file (read-only: other runs may use it)
    env: dict[str, str]  #: the run's environment: its home and its registry
    doc: dict[str, Any]  #: the run's JSON document

    @property
    def out_dir(self) -> Path:
        return Path(self.doc["out_dir"])

    @property
    def metrics(self) -> dict[str, Any]:
        metrics: dict[str, Any] = json.loads((self.out_dir / "metrics.json").read_text())
        return metrics
