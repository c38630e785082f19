"""Alpha360 end to end on the real Qlib store: ``hq model train --factors alpha360 --preset
qlib-lgb-alpha360``, then ``hq predict`` and ``hq model evaluate`` with the registered model."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import polars as pl
import pytest
from cli_support import hq_env, run_hq_here

# no valid segment: no early stopping, so the few rounds all count (a short valid segment stops at one)
SEGMENTS = ["--train", "2016-01-01:2016-12-31", "--test", "2017-01-01:2017-06-30"]


def _json(proc: subprocess.CompletedProcess[str]) -> dict:  # type: ignore[type-arg]
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def trained(qlib_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, str], dict]:  # type: ignore[type-arg]
    env = hq_env(tmp_path_factory.mktemp("hq-home"))
    doc = _json(
        run_hq_here(
            "--log-level",
            "WARNING",
            "model",
            "train",
            "--source",
            f"qlib:{qlib_dir}",
            "--universe",
            "csi300",
            "--factors",
            "alpha360",
            "--preset",
            "qlib-lgb-alpha360",
            "--name",
            "alpha360-e2e",
            *SEGMENTS,
            "--num-boost-round",
            "8",
            "--threads",
            "2",
            "--format",
            "json",
            env=env,
        )
    )
    return env, doc


def test_train_registers_an_alpha360_model(trained) -> None:  # type: ignore[no-untyped-def]
    _, doc = trained
    model = doc["model"]
    assert model["status"] == "trained" and model["feature_set"] == "alpha360"
    assert model["hyperparameters"]["params"]["learning_rate"] == 0.0421
    assert {"train", "test"} <= set(doc["metrics"])


def test_predict_and_evaluate_read_alpha360(trained, qlib_dir: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    env, doc = trained
    out = tmp_path / "preds.parquet"
    _json(
        run_hq_here(
            "--log-level",
            "WARNING",
            "predict",
            doc["model"]["id"],
            "--source",
            f"qlib:{qlib_dir}",
            "--universe",
            "csi300",
            "--start",
            "2018-01-02",
            "--end",
            "2018-01-31",
            "--out",
            str(out),
            "--format",
            "json",
            env=env,
        )
    )
    preds = pl.read_parquet(out)
    assert preds["datetime"].n_unique() >= 20 and preds.height >= 250 * preds["datetime"].n_unique()
    assert preds["score"].n_unique() > 250
    report = _json(
        run_hq_here(
            "--log-level",
            "WARNING",
            "model",
            "evaluate",
            doc["model"]["id"],
            "--source",
            f"qlib:{qlib_dir}",
            "--format",
            "json",
            env=env,
        )
    )
    assert report  # an IC report of the model's own segments


def test_factors_and_preset_must_agree(qlib_dir: Path, tmp_path: Path) -> None:
    proc = run_hq_here(
        "model", "train", "--source", f"qlib:{qlib_dir}", "--universe", "csi300",
        "--factors", "alpha360", "--preset", "qlib-lgb-alpha158", *SEGMENTS, env=hq_env(tmp_path),
    )  # fmt: skip
    assert proc.returncode == 2 and "trains on alpha158" in proc.stderr
