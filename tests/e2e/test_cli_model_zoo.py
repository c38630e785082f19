"""The model zoo on the command line, on the real Qlib store (18 CSI300 codes, short segments):
``hq model train --preset … --param …``, ``--seeds``, ``--features``, then ``hq predict``,
``hq model evaluate``, ``hq backtest run --model``, ``hq model show`` (importance), ``hq model compare``
and ``hq model list --format csv``."""

from __future__ import annotations

import csv
import io
import json
import subprocess
from pathlib import Path

import polars as pl
import pytest
from cli_support import hq_env, run_hq_here

from hikyuu_qlib.domain import DateRange
from hikyuu_qlib.factors.label import LABEL
from hikyuu_qlib.factors.pipeline import compute_features
from hikyuu_qlib.factors.universe import Universe
from hikyuu_qlib.stores.qlib import QlibStore

SEGMENTS = ["--train", "2016-01-01:2017-06-30", "--valid", "2017-07-01:2017-09-30",
            "--test", "2017-10-01:2017-12-31"]  # fmt: skip


@pytest.fixture(scope="module")
def setup(qlib_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    store = QlibStore.open(qlib_dir)
    members = Universe.from_store(store, "csi300").members_between(DateRange.of("2016-01-01", "2017-12-31"))
    codes = members[:18]  # a list universe's name is stored whole: at most 200 characters
    return tmp_path_factory.mktemp("zoo-home"), f"qlib:{qlib_dir}", ",".join(codes)


def hq(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_hq_here("--log-level", "WARNING", *args, env=hq_env(home))


def one_json(proc: subprocess.CompletedProcess[str]) -> dict:  # type: ignore[type-arg]
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


@pytest.fixture(scope="module")
def xgb(setup) -> dict:  # type: ignore[no-untyped-def,type-arg]
    home, source, codes = setup
    return one_json(hq(home, "model", "train", "--source", source, "--universe", codes, *SEGMENTS,
                       "--preset", "qlib-xgb-alpha158", "--param", "n_estimators=20", "--param", "max_depth=4",
                       "--threads", "2", "--format", "json"))  # fmt: skip


@pytest.fixture(scope="module")
def linear(setup) -> dict:  # type: ignore[no-untyped-def,type-arg]
    home, source, codes = setup
    return one_json(hq(home, "model", "train", "--source", source, "--universe", codes, *SEGMENTS,
                       "--preset", "qlib-linear-ridge-alpha158", "--param", "alpha=5000", "--seeds", "2",
                       "--format", "json"))  # fmt: skip


def test_xgb_round_trips_predict_evaluate_backtest(setup, xgb, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    home, source, codes = setup
    model = xgb["model"]
    assert model["model_type"] == "xgboost" and model["status"] == "trained"
    assert (
        model["hyperparameters"]["params"]["n_estimators"] == 20
        and model["hyperparameters"]["params"]["max_depth"] == 4
    )
    assert xgb["rounds"] <= 20
    out = tmp_path / "preds.parquet"
    pred = one_json(hq(home, "predict", model["id"][:10], "--start", "2017-10-01", "--end", "2017-12-31",
                       "--out", str(out), "--format", "json"))  # fmt: skip
    assert pred["rows"] == pl.read_parquet(out).height > 0 and 15 <= pred["codes"] <= 18
    report = one_json(hq(home, "model", "evaluate", model["id"], "--format", "json"))
    assert abs(report["summary"]["ic"] - model["metrics"]["test"]["ic"]) < 1e-6  # the same test segment
    bt = one_json(hq(home, "backtest", "run", "--model", model["id"], "--source", source, "--universe", codes,
                     "--start", "2017-10-01", "--end", "2017-12-31", "--topk", "10", "--n-drop", "2",
                     "--out", str(tmp_path / "bt"), "--format", "json"))  # fmt: skip
    html = Path(bt["report"]).read_text()
    assert "Feature importance" in html and (tmp_path / "bt" / "importance_gain.png").is_file()


def test_mlp_norm_round_trips_predict_evaluate_backtest(setup, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    # Qlib's MLP network on robust z-scored features: it trains where qlib-mlp-alpha158 is refused
    pytest.importorskip("torch")
    home, source, codes = setup
    model = one_json(hq(home, "model", "train", "--source", source, "--universe", codes, *SEGMENTS,
                        "--preset", "qlib-mlp-alpha158-norm", "--param", "max_steps=60",
                        "--param", "batch_size=512", "--threads", "2", "--format", "json"))["model"]  # fmt: skip
    assert model["model_type"] == "mlp" and model["status"] == "trained"
    assert model["hyperparameters"]["preset"] == "qlib-mlp-alpha158-norm"
    assert model["hyperparameters"]["params"]["max_steps"] == 60
    out = tmp_path / "preds.parquet"
    pred = one_json(hq(home, "predict", model["id"], "--start", "2017-10-01", "--end", "2017-12-31",
                       "--out", str(out), "--format", "json"))  # fmt: skip
    scores = pl.read_parquet(out)
    assert pred["rows"] == scores.height > 0 and scores["score"].n_unique() > scores.height // 2
    report = one_json(hq(home, "model", "evaluate", model["id"], "--format", "json"))
    assert abs(report["summary"]["ic"] - model["metrics"]["test"]["ic"]) < 1e-6
    bt = one_json(hq(home, "backtest", "run", "--model", model["id"], "--source", source, "--universe", codes,
                     "--start", "2017-10-01", "--end", "2017-12-31", "--topk", "10", "--n-drop", "2",
                     "--out", str(tmp_path / "bt"), "--format", "json"))  # fmt: skip
    assert Path(bt["report"]).is_file()


def test_show_prints_importance(setup, xgb) -> None:  # type: ignore[no-untyped-def]
    home, _, _ = setup
    shown = one_json(hq(home, "model", "show", xgb["model"]["id"], "--top", "5", "--format", "json"))
    assert set(shown["importance"]) == {"gain", "split"} and len(shown["importance"]["gain"]) == 5
    gains = [row["value"] for row in shown["importance"]["gain"]]
    assert gains == sorted(gains, reverse=True) and gains[0] > 0
    table = hq(home, "model", "show", xgb["model"]["id"], "--top", "3")
    assert table.returncode == 0 and "importance: gain" in table.stdout


def test_seeds_report_mean_and_std(linear) -> None:  # type: ignore[no-untyped-def]
    assert linear["seeds"] == [0, 1] and len(linear["models"]) == 2
    cell = linear["quality"]["test"]["ic"]
    values = [m["metrics"]["test"]["ic"] for m in linear["models"]]
    assert cell["n"] == 2 and abs(cell["mean"] - sum(values) / 2) < 1e-12 and cell["std"] is not None
    groups = {m["model"]["tags"]["seed_group"] for m in linear["models"]}
    assert len(groups) == 1


def test_compare_json_and_table(setup, xgb, linear) -> None:  # type: ignore[no-untyped-def]
    home, _, _ = setup
    ids = [xgb["model"]["id"], linear["models"][0]["model"]["id"]]
    doc = one_json(hq(home, "model", "compare", *ids, "--format", "json"))
    assert [m["id"] for m in doc["models"]] == ids
    assert doc["models"][0]["segments"]["test"]["ic"] == xgb["model"]["metrics"]["test"]["ic"]
    assert doc["models"][1]["model_type"] == "linear"
    assert doc["models"][0]["backtest"] is not None  # stored by backtest run --model
    assert "portfolio.annualized_return" in doc["backtest_measures"] or doc["backtest_measures"]
    table = hq(home, "model", "compare", *ids)
    assert table.returncode == 0 and "test ic" in table.stdout


def test_list_csv(setup, xgb, linear) -> None:  # type: ignore[no-untyped-def]
    home, _, _ = setup
    proc = hq(home, "model", "list", "--format", "csv")
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.DictReader(io.StringIO(proc.stdout)))
    assert list(rows[0]) == ["id", "name", "version", "type", "status", "created", "ic", "rank_ic"]
    by_id = {r["id"]: r for r in rows}
    assert by_id[xgb["model"]["id"]]["type"] == "xgboost"
    assert float(by_id[xgb["model"]["id"]]["ic"]) == pytest.approx(xgb["model"]["metrics"]["ic"])


def test_unknown_param_is_a_clear_error(setup) -> None:  # type: ignore[no-untyped-def]
    home, source, codes = setup
    proc = hq(home, "model", "train", "--source", source, "--universe", codes, *SEGMENTS,
              "--preset", "qlib-xgb-alpha158", "--param", "num_leaves=64", "--format", "json")  # fmt: skip
    assert proc.returncode == 2
    message = json.loads(proc.stdout)["error"]["message"]
    assert (
        "unknown parameter(s) num_leaves for preset qlib-xgb-alpha158" in message and "max_depth" in message
    )


def test_train_and_predict_from_a_features_file(setup, qlib_dir: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    home, _, codes = setup
    store = QlibStore.open(qlib_dir)
    frame = compute_features(
        store, Universe.from_codes(codes.split(",")), DateRange.of("2016-01-01", "2017-12-31")
    )
    path = tmp_path / "mine.parquet"
    frame.select("datetime", "code", "KMID", "ROC5", "STD20", pl.col(LABEL).alias("ret")).write_parquet(path)
    doc = one_json(hq(home, "model", "train", "--features", str(path), "--label", "ret", *SEGMENTS,
                      "--preset", "qlib-linear-alpha158", "--format", "json"))  # fmt: skip
    assert doc["model"]["feature_set"] == "file:mine.parquet" and doc["model"]["status"] == "trained"
    out = tmp_path / "scores.csv"
    pred = one_json(hq(home, "predict", doc["model"]["id"], "--features", str(path), "--start", "2017-10-01",
                       "--end", "2017-12-31", "--out", str(out), "--format", "json"))  # fmt: skip
    assert pred["rows"] == pl.read_csv(out).height > 0
    refused = hq(home, "predict", doc["model"]["id"], "--start", "2017-10-01", "--end", "2017-12-31",
                 "--out", str(tmp_path / "x.csv"))  # fmt: skip
    assert refused.returncode == 2 and "features file" in refused.stderr
    missing = hq(home, "model", "train", "--features", str(path), *SEGMENTS)
    assert missing.returncode == 2 and "--label" in missing.stderr
