"""A model trained on a relatively named source records the absolute path, so ``hq model evaluate ID``
works from any directory."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from cli_support import run_hq_here

UNIVERSE = "csi300"  # enough rows for Qlib's strongly regularised trees to split in five rounds


def hq(home: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HQ_")}
    env["HQ_HOME"] = str(home)
    return run_hq_here("--log-level", "WARNING", *args, env=env, cwd=cwd)


def test_evaluate_from_another_directory(qlib_dir: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    here = tmp_path / "train"
    there = tmp_path / "somewhere" / "deeper" / "else"  # deeper: the relative path leads nowhere from it
    here.mkdir()
    there.mkdir(parents=True)
    relative = os.path.relpath(qlib_dir, here)
    assert relative.startswith("..") and not (there / relative).is_dir()  # means nothing from `there`
    trained = hq(
        home,
        here,
        "model",
        "train",
        "--source",
        f"qlib:{relative}",
        "--universe",
        UNIVERSE,
        "--train",
        "2015-01-01:2016-12-31",
        "--test",
        "2017-04-01:2017-06-30",
        "--num-boost-round",
        "5",
        "--threads",
        "2",
        "--no-cache",
        "--format",
        "json",
    )  # fmt: skip  (no valid segment: five rounds, never a degenerate one-round model)
    assert trained.returncode == 0, trained.stderr[-3000:]
    model = json.loads(trained.stdout)["model"]
    assert model["tags"]["source"] == f"qlib:{qlib_dir.resolve()}"  # absolute and canonical
    shown = hq(home, there, "model", "show", model["id"], "--format", "json")
    assert json.loads(shown.stdout)["tags"]["source"] == f"qlib:{qlib_dir.resolve()}"
    evaluated = hq(home, there, "model", "evaluate", model["id"], "--no-cache", "--format", "json")
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    report = json.loads(evaluated.stdout)
    assert report["id"] == model["id"] and report["summary"]["days"] > 50
