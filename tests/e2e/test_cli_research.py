"""``hq model train``, ``hq predict``, ``hq model evaluate`` end to end through the ``hq`` entrypoint, in
this process (:func:`cli_support.run_hq_here`), on a synthetic market (SQLite registry, artifacts and
feature cache under a temporary HQ_HOME)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import polars as pl
import pytest
from cli_support import run_hq_here

SOURCE = "synthetic:5?stocks=40&years=3"
SEGMENTS = [
    "--train",
    "2015-04-01:2016-06-30",
    "--valid",
    "2016-07-01:2016-12-31",
    "--test",
    "2017-01-01:2017-09-30",
]


def hq(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HQ_")}
    env["HQ_HOME"] = str(home)
    return run_hq_here("--log-level", "WARNING", *args, env=env)


def one_json(proc: subprocess.CompletedProcess[str]) -> dict:  # type: ignore[type-arg]
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)  # exactly one document: json.loads rejects trailing output


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:  # type: ignore[type-arg]
    home = tmp_path_factory.mktemp("hq-home")
    doc = one_json(
        hq(
            home,
            "model",
            "train",
            "--source",
            SOURCE,
            "--universe",
            "csi300",
            "--factors",
            "alpha158",
            "--preset",
            "qlib-lgb-alpha158",
            *SEGMENTS,
            "--name",
            "cli-e2e",
            "--seed",
            "3",
            "--num-boost-round",
            "10",
            "--threads",
            "2",
            "--format",
            "json",
        )
    )
    return home, doc


def test_train_registers_and_prints_metrics(trained) -> None:  # type: ignore[no-untyped-def]
    home, doc = trained
    model = doc["model"]
    assert model["status"] == "trained" and model["name"] == "cli-e2e" and model["version"] == 1
    assert model["hyperparameters"]["params"]["seed"] == 3
    assert set(doc["metrics"]) >= {"train", "valid", "test"} and "days" in doc["metrics"]["test"]
    shown = one_json(hq(home, "model", "show", model["id"][:12], "--format", "json"))
    assert shown["metrics"]["test"] == model["metrics"]["test"] and shown["artifact"]["sha256"]
    assert list((home / "cache").glob("features/*.hqc"))  # features cached by default


def test_train_table_output_and_cached_features(trained) -> None:  # type: ignore[no-untyped-def]
    home, _ = trained
    proc = hq(
        home,
        "model",
        "train",
        "--source",
        SOURCE,
        *SEGMENTS,
        "--name",
        "cli-e2e",
        "--seed",
        "3",
        "--num-boost-round",
        "10",
        "--threads",
        "2",
    )
    assert proc.returncode == 0, proc.stderr
    assert "cli-e2e v2" in proc.stdout and "test" in proc.stdout
    assert "features" in proc.stdout and "boosting" in proc.stderr  # progress on stderr


def test_predict_writes_parquet_csv_and_qlib_form(trained, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    home, doc = trained
    model_id = doc["model"]["id"]
    out = tmp_path / "pred.parquet"
    got = one_json(
        hq(
            home,
            "predict",
            model_id,
            "--source",
            SOURCE,
            "--universe",
            "csi300",
            "--start",
            "2017-03-01",
            "--end",
            "2017-03-31",
            "--out",
            str(out),
            "--format",
            "json",
        )
    )
    frame = pl.read_parquet(out)
    assert frame.columns == ["datetime", "code", "score"] and frame.height == got["rows"] > 0
    csv = tmp_path / "pred.csv"
    assert (
        hq(
            home, "predict", model_id, "--start", "2017-03-01", "--end", "2017-03-31", "--out", str(csv)
        ).returncode
        == 0
    )  # source and universe default to the model's
    assert pl.read_csv(csv).height == frame.height
    qlib_out = tmp_path / "qlib.parquet"
    assert (
        hq(
            home,
            "predict",
            model_id,
            "--start",
            "2017-03-01",
            "--end",
            "2017-03-31",
            "--out",
            str(qlib_out),
            "--qlib-form",
        ).returncode
        == 0
    )
    import pandas as pd

    series = pd.read_parquet(qlib_out)["score"]
    assert list(series.index.names) == ["datetime", "instrument"] and len(series) == frame.height


def test_evaluate_prints_an_ic_report(trained) -> None:  # type: ignore[no-untyped-def]
    home, doc = trained
    report = one_json(hq(home, "model", "evaluate", doc["model"]["id"], "--daily", "--format", "json"))
    assert report["dates"] == "2017-01-01:2017-09-30"
    assert set(report["summary"]) >= {"ic", "icir", "rank_ic", "rank_icir", "days"}
    assert report["summary"]["days"] == len(report["daily"]) > 100
    assert [y["year"] for y in report["yearly"]] == [2017]
    if report["summary"]["ic"] is not None:
        assert report["summary"]["ic"] == pytest.approx(doc["metrics"]["test"]["ic"], rel=1e-6)


def test_train_and_evaluate_report_the_same_mse_under_the_same_name(trained) -> None:  # type: ignore[no-untyped-def]
    """One name per MSE: against the raw label (train and evaluate agree on the test segment) and
    against the learning label (train only: evaluate has no learn processors)."""
    home, doc = trained
    report = one_json(hq(home, "model", "evaluate", doc["model"]["id"], "--format", "json"))
    trained_test = doc["metrics"]["test"]
    assert "mse" not in trained_test and "mse" not in report["summary"] and "mse" not in doc["metrics"]
    assert report["summary"]["mse_raw_label"] == pytest.approx(trained_test["mse_raw_label"], rel=1e-9)
    assert report["summary"]["rows"] == trained_test["rows"]
    assert "mse_learn_label" not in report["summary"]
    assert trained_test["mse_learn_label"] != pytest.approx(trained_test["mse_raw_label"], rel=0.01)
    assert doc["metrics"]["mse_raw_label"] == trained_test["mse_raw_label"]


def test_errors_are_one_line_with_exit_codes(trained, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    home, _ = trained
    missing = hq(
        home,
        "predict",
        "01ZZZZZZZZZZZZZZZZZZZZZZZZ",
        "--start",
        "2017-01-01",
        "--end",
        "2017-01-31",
        "--out",
        str(tmp_path / "x.parquet"),
    )
    assert missing.returncode == 3 and "error:" in missing.stderr
    bad = hq(home, "model", "train", "--source", SOURCE, "--train", "2016-01-01:2015-01-01")
    assert bad.returncode == 2 and "error:" in bad.stderr
