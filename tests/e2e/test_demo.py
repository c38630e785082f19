"""``hq demo`` end to end on a small synthetic market: no files, no network, no services."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from cli_support import run_hq

SOURCE = "synthetic:3?stocks=80&years=4"


def hq(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return run_hq(*args, env={**os.environ, **env})


@pytest.fixture(scope="module")
def first_demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, str], Path, dict[str, Any]]:
    """The first ``hq demo --format json`` on :data:`SOURCE` under a new HQ_HOME: (its environment, its
    ``--out`` directory, its document). Both synthetic-source tests read it (one demo run instead of two)."""
    tmp = tmp_path_factory.mktemp("demo")
    env = {"HQ_HOME": str(tmp / "home"), "HQ_DATABASE_URL": f"sqlite:///{tmp / 'registry.db'}"}
    out = tmp / "demo"
    proc = hq(env, "demo", "--source", SOURCE, "--out", str(out), "--format", "json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return env, out, json.loads(proc.stdout)


def test_demo_runs_the_whole_job_and_reuses_it(
    first_demo: tuple[dict[str, str], Path, dict[str, Any]],
) -> None:
    env, out, doc = first_demo
    run_dir = Path(doc["out_dir"])
    assert run_dir.parent == out and Path(doc["report"]).is_file()
    html = Path(doc["report"]).read_text()
    assert "<script" not in html and "data:image/png;base64" in html
    preds = pl.read_parquet(run_dir / "predictions.parquet")
    assert preds.height > 1000 and preds["code"].n_unique() > 20
    assert doc["metrics"]["model"]["test"]["days"] > 100
    assert doc["metrics"]["backtest"]["portfolio"]["total_return"] is not None
    # the synthetic market is read through its feature source, directly: no hidden export of the store,
    # only the computed features are cached under HQ_HOME
    cache = Path(env["HQ_HOME"]) / "cache"
    assert not (cache / "qlib-views").exists() and list(cache.glob("features/*.hqc"))
    again = hq(env, "demo", "--source", SOURCE, "--out", str(out), "--format", "json")
    assert again.returncode == 0, again.stderr[-3000:]
    second = json.loads(again.stdout)
    assert second["reused_model"] is True and second["model_id"] == doc["model_id"]


def test_demo_benchmarks_on_the_synthetic_index_and_shows_one_set_of_statistics(
    first_demo: tuple[dict[str, str], Path, dict[str, Any]],
) -> None:
    """The synthetic market's equal-weight index is the benchmark; the printed summary, metrics.json and
    report.html show the same figures under the same names; the report's IC is the model's test IC."""
    env, out, doc = first_demo
    backtest = doc["metrics"]["backtest"]
    assert backtest["benchmark"]["code"] == "SH000001" and doc["notes"] == []
    assert "excess_return_with_cost" in backtest
    run_dir = Path(doc["out_dir"])
    saved = json.loads((run_dir / "metrics.json").read_text())
    assert saved["backtest"] == backtest
    test = saved["model"]["test"]
    for name in ("ic", "icir", "rank_ic", "rank_icir", "days"):
        assert backtest["ic"][name] == pytest.approx(test[name], rel=1e-9), name
    from hikyuu_qlib.backtest.formats import format_measure

    page = Path(doc["report"]).read_text(encoding="utf-8")
    for group, values in backtest.items():
        body = re.search(rf"<caption>{group}</caption><tbody>(.*?)</tbody>", page)
        assert body is not None, group
        shown = dict(re.findall(r"<tr><th>([^<]+)</th><td[^>]*>([^<]*)</td></tr>", body.group(1)))
        assert shown == {k: format_measure(k, v) for k, v in values.items()}, group
    table = hq({**env, "COLUMNS": "200"}, "demo", "--source", SOURCE, "--out", str(out))
    assert table.returncode == 0, table.stderr[-3000:]
    lines = [re.split(r"\s*[│\t]\s*", line.strip().strip("│").strip()) for line in table.stdout.splitlines()]
    printed = {(cells[0], cells[1]): cells[2] for cells in lines if len(cells) == 3}
    assert printed[("trades", "trades")] == format_measure("trades", backtest["trades"]["trades"])
    assert re.fullmatch(r"[\d,]+", printed[("trades", "trades")])
    assert printed[("benchmark", "code")] == "SH000001"
    assert printed[("model (test segment)", "ic")] == format_measure("ic", test["ic"])


def test_demo_on_hikyuu_checks_its_benchmark_and_sizes_the_model(hikyuu_dir: Path, tmp_path: Path) -> None:
    """The shared Hikyuu store lists SH000300 without bars: the demo says so before training and falls
    back to SH000001. Its 7 stocks with bars are too few for Qlib's regularisation: the demo says it trains
    with lighter settings, and the model it registers is trained, not degenerate."""
    env = {"HQ_HOME": str(tmp_path / "home"), "HQ_DATABASE_URL": f"sqlite:///{tmp_path / 'registry.db'}"}
    proc = hq(env, "--log-format", "json", "demo", "--source", f"hikyuu:{hikyuu_dir}", "--out",
              str(tmp_path / "demo"), "--format", "json")  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    messages = []
    for line in proc.stderr.splitlines():
        try:
            messages.append(json.loads(line)["msg"])
        except (ValueError, KeyError, TypeError):
            continue
    chosen = [i for i, m in enumerate(messages) if m.startswith("benchmark:")]
    assert chosen, "\n".join(messages[-20:])
    assert "SH000300" in messages[chosen[0]] and "using SH000001 instead" in messages[chosen[0]]
    training = [i for i, m in enumerate(messages) if m.startswith("stage train")]
    assert training and chosen[0] < training[0]  # checked before training
    doc = json.loads(proc.stdout)
    assert any(n.startswith("model: universe all has 7 stocks with bars") for n in doc["notes"])
    assert doc["metrics"]["backtest"]["benchmark"]["code"] == "SH000001"
    listed = json.loads(hq(env, "model", "list", "--format", "json").stdout)["models"]
    assert [m["status"] for m in listed] == ["trained"]
    assert listed[0]["metrics"]["best_iteration"] > 1


def test_a_degenerate_model_is_recorded_failed_not_trained(hikyuu_dir: Path, tmp_path: Path) -> None:
    """Qlib's preset on the shared Hikyuu store's 7 stocks never splits: the model is recorded failed, not
    trained, and the command fails with a clear message."""
    env = {"HQ_HOME": str(tmp_path / "home"), "HQ_DATABASE_URL": f"sqlite:///{tmp_path / 'registry.db'}"}
    proc = hq(env, "model", "train", "--source", f"hikyuu:{hikyuu_dir}", "--universe", "all",
              "--train", "2004-01-01:2008-12-31", "--valid", "2009-01-01:2009-12-31",
              "--test", "2010-01-01:2011-12-06")  # fmt: skip
    assert proc.returncode == 1 and "degenerate" in proc.stderr and "Traceback" not in proc.stderr
    listed = json.loads(hq(env, "model", "list", "--format", "json").stdout)["models"]
    assert [m["status"] for m in listed] == ["failed"]
    assert "one boosting round" in listed[0]["tags"]["failure"]
