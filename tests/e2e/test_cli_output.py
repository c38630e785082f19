"""What ``hq`` prints: formats chosen by ``--out``'s extension and refused where unsupported, human output
without Python reprs, whole tables when piped, progress bars that end cleanly, and help that matches the
commands (through the real ``hq``, on a terminal where that matters)."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from importlib.metadata import version
from pathlib import Path

import polars as pl
import pytest
from cli_support import hq_env, run_hq_here


def hq(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_hq_here(*args, env=hq_env(home))


def on_terminal(home: Path, *args: str, columns: int = 160) -> str:
    """Stdout of ``hq ARGS`` run with stdout on a pseudo-terminal ``columns`` wide."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    env = {**hq_env(home), "COLUMNS": str(columns), "LINES": "50"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "hikyuu_qlib", *args], stdout=slave, stderr=subprocess.DEVNULL, env=env
    )
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 1 << 16)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    assert proc.wait(timeout=300) == 0
    return re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]", "", b"".join(chunks).decode("utf-8", "replace"))


# --- formats -------------------------------------------------------------------------------------------


def test_out_extension_chooses_the_format(hikyuu_dir: Path, tmp_path: Path) -> None:
    args = ["data", "bars", "SZ000001", "--source", f"hikyuu:{hikyuu_dir}", "--start", "2011-11-01"]
    for name in ("bars.json", "bars.parquet", "bars.csv"):
        proc = hq(tmp_path, *args, "--out", str(tmp_path / name))
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout == ""
    doc = json.loads((tmp_path / "bars.json").read_text())
    assert doc["rows"] == len(doc["data"]) > 20 and doc["data"][0]["code"] == "SZ000001"
    parquet = pl.read_parquet(tmp_path / "bars.parquet")
    csv = pl.read_csv(tmp_path / "bars.csv", try_parse_dates=True)
    assert parquet.height == csv.height == doc["rows"]
    assert csv["close"].to_list() == pytest.approx(parquet["close"].to_list())
    unknown = hq(tmp_path, *args, "--out", str(tmp_path / "bars.txt"))
    assert unknown.returncode == 2 and "'.txt'" in unknown.stderr
    assert not (tmp_path / "bars.txt").exists()


def test_formats_a_command_does_not_support_are_refused(hikyuu_dir: Path, tmp_path: Path) -> None:
    source = f"hikyuu:{hikyuu_dir}"
    for fmt in ("parquet", "csv"):
        proc = hq(tmp_path, "data", "info", "--source", source, "--format", fmt)
        assert proc.returncode == 2 and proc.stdout == "", proc.stderr
    out = tmp_path / "qlib"
    export = hq(
        tmp_path,
        "data",
        "export-qlib",
        "--source",
        source,
        "--code",
        "SH600000",
        "--out",
        str(out),
        "--format",
        "csv",
    )
    assert export.returncode == 2 and not out.exists()  # refused before anything was written
    backtest = hq(
        tmp_path,
        "backtest",
        "run",
        "--predictions",
        "p.parquet",
        "--out",
        str(tmp_path / "bt"),
        "--format",
        "parquet",
    )
    assert backtest.returncode == 2


def test_help_shows_the_accepted_formats_and_no_bool_metavars(tmp_path: Path) -> None:
    info = hq(tmp_path, "data", "info", "--help").stdout
    assert "<table|json>" in info and "parquet" not in info
    bars = hq(tmp_path, "data", "bars", "--help").stdout
    assert "<table|csv|json|parquet>" in bars
    for command in ([], ["data", "stocks"], ["model", "train"], ["predict"], ["demo"], ["run"]):
        proc = hq(tmp_path, *command, "--help")
        assert proc.returncode == 0, proc.stderr
        assert "<bool>" not in proc.stdout, command
        assert "--help" in proc.stdout


def test_model_help_lists_every_subcommand(tmp_path: Path) -> None:
    text = hq(tmp_path, "model", "--help").stdout
    for name in ("train", "evaluate", "list", "show", "rm", "promote"):
        assert re.search(rf"│ {name}\s+\S", text), name  # listed with its description
    assert "train" in text.split("Commands", 1)[0]  # the group's own help names train and evaluate too


def test_version(tmp_path: Path) -> None:
    proc = hq(tmp_path, "--version")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith(version("hikyuu-qlib"))


# --- human output --------------------------------------------------------------------------------------


def test_info_prints_key_value_lines(hikyuu_dir: Path, tmp_path: Path) -> None:
    proc = hq(tmp_path, "data", "info", "--source", f"hikyuu:{hikyuu_dir}")
    assert proc.returncode == 0, proc.stderr
    assert "datetime" not in proc.stdout and "{" not in proc.stdout and "[" not in proc.stdout
    lines = proc.stdout.splitlines()
    assert "markets: SH, SZ, BJ" in lines and "calendar:" in lines
    assert "  first: 1990-12-19" in lines and "  last: 2011-12-06" in lines


def test_piped_stocks_are_whole_tsv_with_types_by_name(hikyuu_dir: Path, tmp_path: Path) -> None:
    proc = hq(tmp_path, "data", "stocks", "--source", f"hikyuu:{hikyuu_dir}")
    assert proc.returncode == 0, proc.stderr
    rows = [line.split("\t") for line in proc.stdout.splitlines()]
    header, body = rows[0], rows[1:]
    assert header[:5] == ["code", "market", "symbol", "name", "type"]
    assert len(body) > 3000 and all(len(row) == len(header) for row in body)  # every row, every column
    by_code = {row[0]: dict(zip(header, row, strict=True)) for row in body}
    assert by_code["SH000001"]["type"] == "index" and by_code["SH000001"]["name"] == "上证指数"
    assert by_code["SH600000"]["type"] == "a_share" and by_code["SH600000"]["start_date"] == "1999-11-10"


def test_a_long_table_on_a_terminal_says_how_to_get_every_row(hikyuu_dir: Path, tmp_path: Path) -> None:
    text = on_terminal(tmp_path, "data", "stocks", "--source", f"hikyuu:{hikyuu_dir}")
    assert re.search(r"… [\d,]+ rows, showing 200: use --format csv or --out FILE for all", text), text[-500:]
    assert "SH000001" in text and "index" in text


def test_export_report_has_no_python_reprs(hikyuu_dir: Path, tmp_path: Path) -> None:
    proc = hq(
        tmp_path,
        "data",
        "export-qlib",
        "--source",
        f"hikyuu:{hikyuu_dir}",
        "--code",
        "SH600000",
        "--code",
        "SH999999",
        "--out",
        str(tmp_path / "qlib"),
    )
    assert proc.returncode == 5, proc.stderr
    assert "{'" not in proc.stdout and "['" not in proc.stdout and "PosixPath" not in proc.stdout
    lines = proc.stdout.splitlines()
    assert "failed:" in lines and any(line.startswith("  SH999999: ") for line in lines)


# --- progress ------------------------------------------------------------------------------------------


def test_the_training_bar_ends_at_the_rounds_run(tmp_path: Path) -> None:
    proc = run_hq_here(
        "--log-format",
        "json",
        "model",
        "train",
        "--source",
        "synthetic:5?stocks=40&years=3",
        "--train",
        "2015-04-01:2016-06-30",
        "--valid",
        "2016-07-01:2016-12-31",
        "--test",
        "2017-01-01:2017-09-30",
        "--num-boost-round",
        "500",
        "--threads",
        "2",
        env=hq_env(tmp_path),
    )
    assert proc.returncode == 0, proc.stderr
    logged = [json.loads(line)["msg"] for line in proc.stderr.splitlines() if line.startswith("{")]
    stop = next(m for m in logged if m.startswith("lightgbm: "))
    found = re.search(r"early stopping after (\d+) of 500 rounds.*best iteration (\d+)", stop)
    assert found, stop
    rounds, best = (int(g) for g in found.groups())
    assert best < rounds < 500
    bar = [line for line in proc.stderr.splitlines() if line.startswith("boosting")]
    assert len(bar) == 1, proc.stderr
    assert f" {rounds}/{rounds} " in bar[0] and f"best iteration {best}" in bar[0]
    assert len(re.findall(r"\d+:\d\d:\d\d", bar[0])) == 1, bar[0]  # the time elapsed, no time remaining
    assert f"{rounds} rounds run, best iteration {best}" in proc.stdout
