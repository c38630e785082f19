"""``hq backtest run`` on real Qlib data: report files, one JSON document, clear errors."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
from pathlib import Path

import polars as pl
from cli_support import run_hq_here
from selection_support import SelectionRun

from hikyuu_qlib.domain import DateRange
from hikyuu_qlib.stores.qlib import QlibStore


def hq(*args: str) -> subprocess.CompletedProcess[str]:
    return run_hq_here(*args)


def _predictions(qlib_dir: Path, out: Path) -> Path:
    store = QlibStore.open(qlib_dir)
    close = store.features("csi300", ["$close"], DateRange.of("2019-11-01", "2020-03-31"))
    reversal = -(pl.col("close") / pl.col("close").shift(5).over("code") - 1)
    preds = (
        close.with_columns(reversal.alias("score"))
        .drop_nulls("score")
        .filter(pl.col("datetime") >= pl.datetime(2020, 1, 1))
        .select("datetime", "code", "score")
    )
    preds.write_parquet(out)
    return out


def test_backtest_run_writes_the_report(qlib_dir: Path, tmp_path: Path) -> None:
    preds = _predictions(qlib_dir, tmp_path / "preds.parquet")
    out = tmp_path / "bt"
    proc = hq(
        "backtest",
        "run",
        "--predictions",
        str(preds),
        "--source",
        f"qlib:{qlib_dir}",
        "--topk",
        "20",
        "--n-drop",
        "2",
        "--limit-threshold",
        "0.095",
        "--out",
        str(out),
        "--format",
        "json",
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert Path(doc["report"]).is_file() and (out / "daily.parquet").is_file()
    assert list(out.glob("*.png"))
    daily = pl.read_parquet(out / "daily.parquet")
    assert daily.height == doc["days"] > 50
    assert 20 <= daily["holdings"].max() <= 22  # unsellable stocks can push past topk, as in Qlib
    stats = doc["statistics"]
    assert set(stats) >= {"excess_return_with_cost", "excess_return_without_cost", "portfolio", "trades"}
    assert stats["excess_return_with_cost"]["mean"] < stats["excess_return_without_cost"]["mean"]


def test_backtest_run_rejects_bad_predictions(qlib_dir: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("datetime,code,prediction\n2020-01-02,SH600000,0.1\n")
    proc = hq(
        "backtest", "run", "--predictions", str(bad), "--source", f"qlib:{qlib_dir}", "--out", str(tmp_path)
    )
    assert proc.returncode == 2
    assert "score" in proc.stderr and str(bad) in proc.stderr
    proc = hq("backtest", "run", "--source", f"qlib:{qlib_dir}", "--out", str(tmp_path))
    assert proc.returncode == 2 and "--predictions" in proc.stderr


def test_predictions_and_model_are_mutually_exclusive(qlib_dir: Path, tmp_path: Path) -> None:
    preds = _predictions(qlib_dir, tmp_path / "preds.parquet")
    out = tmp_path / "bt"
    proc = hq(
        "backtest", "run", "--predictions", str(preds), "--model", "abc123", "--source", f"qlib:{qlib_dir}",
        "--out", str(out), "--format", "json",
    )  # fmt: skip
    assert proc.returncode == 2
    error = json.loads(proc.stdout)["error"]
    assert "mutually exclusive" in error["message"] and error["exit_code"] == 2
    assert not out.exists()  # refused before any work


def test_backtest_of_a_registered_model_stores_its_summary(
    qlib_dir: Path, tmp_path: Path, csi300_selection: SelectionRun
) -> None:
    """A model registered by a CSI300 run (the session's selection run: tests/conftest.py), backtested by
    its id's prefix: its record then holds this backtest's summary."""
    model_id = csi300_selection.doc["model_id"]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return run_hq_here(*args, env=csi300_selection.env)

    proc = run(
        "backtest",
        "run",
        "--model",
        model_id[:12],
        "--source",
        f"qlib:{qlib_dir}",
        "--start",
        "2018-01-01",
        "--end",
        "2018-03-31",
        "--topk",
        "20",
        "--n-drop",
        "2",
        "--limit-threshold",
        "0.095",
        "--out",
        str(tmp_path / "bt"),
        "--format",
        "json",
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    doc = json.loads(proc.stdout)
    assert doc["model_id"] == model_id and (tmp_path / "bt" / "report.html").is_file()
    shown = json.loads(run("model", "show", model_id, "--format", "json").stdout)
    stored = shown["metrics"]["backtest"]
    assert (
        stored["topk"] == 20
        and stored["portfolio.total_return"] == doc["statistics"]["portfolio"]["total_return"]
    )


def _printed(stdout: str) -> dict[tuple[str, str], str]:
    """``{(group, statistic): value}`` from the summary table (Rich boxes or tab-separated)."""
    out: dict[tuple[str, str], str] = {}
    for line in stdout.splitlines():
        cells = [c.strip() for c in re.split(r"[│\t]", line.strip().strip("│"))]
        if len(cells) == 3 and cells[1] and cells[0] != "group":
            out[(cells[0], cells[1])] = cells[2]
    return out


def _report_table(page: str, caption: str) -> dict[str, str]:
    body = re.search(rf"<caption>{re.escape(caption)}</caption><tbody>(.*?)</tbody>", page)
    assert body is not None, caption
    return dict(re.findall(r"<tr><th>([^<]+)</th><td[^>]*>([^<]*)</td></tr>", body.group(1)))


def test_summary_json_and_report_show_the_same_statistics(qlib_dir: Path, tmp_path: Path) -> None:
    """The printed summary, the JSON document and report.html: the same figures under the same names,
    printed by kind (counts whole, money in yuan, ratios in percent); positions and trades in traded
    units."""
    preds = _predictions(qlib_dir, tmp_path / "preds.parquet")
    args = ["backtest", "run", "--predictions", str(preds), "--source", f"qlib:{qlib_dir}", "--topk", "20",
            "--n-drop", "2", "--limit-threshold", "9.5"]  # fmt: skip
    table = run_hq_here(*args, "--out", str(tmp_path / "a"), env={**os.environ, "COLUMNS": "200"})
    assert table.returncode == 0, table.stderr[-2000:]
    as_json = hq(*args, "--out", str(tmp_path / "b"), "--format", "json")
    assert as_json.returncode == 0, as_json.stderr[-2000:]
    statistics = json.loads(as_json.stdout)["statistics"]
    printed = _printed(table.stdout)
    assert set(printed) == {(g, n) for g, values in statistics.items() for n in values}
    from hikyuu_qlib.backtest.formats import format_measure

    page = (tmp_path / "a" / "report.html").read_text(encoding="utf-8")
    shown = 0
    for group, values in statistics.items():
        assert isinstance(values, dict), group
        in_report = _report_table(page, group)
        for name, value in values.items():
            text = format_measure(name, value)
            assert printed[(group, name)] == text == in_report[name], (group, name)
            shown += 1
    assert shown == len(printed) > 40
    assert {"cagr", "annualized_return_sum", "max_drawdown_sum", "max_drawdown_compound"} <= set(
        statistics["portfolio"]
    )
    assert re.fullmatch(r"[\d,]+", printed[("trades", "trades")])
    assert re.fullmatch(r"[\d,]+", printed[("portfolio", "trading_days")])
    assert printed[("portfolio", "final_account")].endswith(" yuan")
    assert re.fullmatch(r"-?[\d,]+\.\d\d %", printed[("portfolio", "total_return")])
    trades = pl.read_parquet(tmp_path / "a" / "trades.parquet")
    assert trades["shares"].dtype == pl.Int64 and (trades["shares"] % 100 == 0).all()
    assert "<th>price_yuan</th>" in page and "<th>amount_adj</th>" not in page


def test_without_a_benchmark_the_summary_and_report_say_so(qlib_dir: Path, tmp_path: Path) -> None:
    preds = _predictions(qlib_dir, tmp_path / "preds.parquet")
    out = tmp_path / "bt"
    proc = run_hq_here(
        "backtest", "run", "--predictions", str(preds), "--source", f"qlib:{qlib_dir}", "--topk", "20",
        "--n-drop", "2", "--limit-threshold", "9.5", "--benchmark", "", "--out", str(out),
        env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "without a benchmark" in proc.stdout and "excess_return" not in proc.stdout
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "No benchmark" in page and "excess_return" not in page
    assert pl.read_parquet(out / "daily.parquet")["bench_return"].null_count() > 50  # no line of zeros


def test_a_model_without_dates_is_backtested_and_signalled_on_its_test_segment(
    qlib_dir: Path, tmp_path: Path, csi300_selection: SelectionRun
) -> None:
    """With --model and no --start/--end, backtest and signals run on the model's test segment (the
    selection run's is 2017-07-01 – 2017-12-31); a bound given replaces the test segment's."""
    model_id = csi300_selection.doc["model_id"]
    common = ["--model", model_id, "--source", f"qlib:{qlib_dir}", "--format", "json"]
    bt = run_hq_here("backtest", "run", *common, "--out", str(tmp_path / "bt"), env=csi300_selection.env)
    assert bt.returncode == 0, bt.stderr[-2000:]
    daily = pl.read_parquet(json.loads(bt.stdout)["daily"])
    assert daily["datetime"].min().date() == dt.date(2017, 7, 3)  # the first trading day of the segment
    assert daily["datetime"].max().date() == dt.date(2017, 12, 29)

    out = tmp_path / "signals.parquet"
    sig = run_hq_here(
        "signals", *common, "--start", "2017-10-01", "--out", str(out), env=csi300_selection.env
    )
    assert sig.returncode == 0, sig.stderr[-2000:]
    doc = json.loads(sig.stdout)
    assert doc["first"].startswith("2017-10-09") and doc["last"].startswith("2017-12-29")  # after the holiday
