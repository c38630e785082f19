"""``hq data universe import|list`` and ``--universe`` / ``--universe-file`` on the commands that take
universes, against temporary copies of the real Hikyuu store and the real Qlib instruments files."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

from cli_support import run_hq_here


def store_copy(hikyuu_dir: Path, dest: Path) -> Path:
    dest.mkdir(parents=True)
    shutil.copy(hikyuu_dir / "stock.db", dest / "stock.db")
    (dest / "stock.db").chmod(0o644)
    for name in ("sh_day.h5", "sz_day.h5"):
        (dest / name).symlink_to(hikyuu_dir / name)
    return dest


def members_on(path: Path, day: str) -> list[str]:
    """The codes of an instruments file whose span holds ``day``, read by hand."""
    rows = [line.split("\t") for line in path.read_text().splitlines()]
    return sorted({code for code, lo, hi in rows if lo <= day <= hi})


def test_import_a_qlib_universe_into_the_block_table_and_trade_it(
    hikyuu_dir: Path, qlib_dir: Path, tmp_path: Path
) -> None:
    root = store_copy(hikyuu_dir, tmp_path / "store")
    csi300 = qlib_dir / "instruments" / "csi300.txt"
    proc = run_hq_here(
        "data", "universe", "import", str(csi300), "--name", "沪深300", "--category", "指数板块",
        "--into", f"hikyuu:{root}", "--on", "2011-06-01", "--format", "json",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    doc = json.loads(proc.stdout)
    assert doc["members"] == len(members_on(csi300, "2011-06-01")) > 250  # the file has gaps: not 300
    assert doc["block"] == "指数板块/沪深300" and doc["written_to"].endswith("stock.db")
    with sqlite3.connect(root / "stock.db") as conn:
        rows = conn.execute("SELECT market_code FROM Block WHERE name = '沪深300'").fetchall()
    assert sorted(r[0] for r in rows) == members_on(csi300, "2011-06-01")  # Hikyuu's form: SH600000
    source = f"hikyuu:{root}"
    listed = json.loads(
        run_hq_here("data", "universe", "list", "--source", source, "--format", "json").stdout
    )
    assert listed["blocks"] == {"指数板块/沪深300": doc["members"]} and "all" in listed["universes"]
    out = tmp_path / "run"
    proc = run_hq_here(
        "system", "run", "--source", f"hikyuu:{root}", "--universe", "csi300", "--start", "2010-01-01",
        "--end", "2011-12-31", "--signal", "ma-cross:5,20", "--mm", "fixed-count:100", "--out", str(out),
        "--format", "json",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    # the members on 2011-06-01 that the store has bars for
    assert json.loads(proc.stdout)["codes"] == ["SH600000", "SH600004", "SH600005", "SZ000001", "SZ000002"]
    assert "survivorship" in proc.stderr


def test_import_into_a_qianlong_block_file(hikyuu_dir: Path, qlib_dir: Path, tmp_path: Path) -> None:
    root = store_copy(hikyuu_dir, tmp_path / "store")
    (root / "block").mkdir()
    (root / "block" / "zsbk.ini").write_text("[上证50]\n0,600000\n", encoding="utf-8")
    proc = run_hq_here(
        "data", "universe", "import", str(qlib_dir / "instruments" / "csi300.txt"), "--name", "沪深300",
        "--category", "指数板块", "--into", str(root), "--format", "json",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    doc = json.loads(proc.stdout)
    assert doc["written_to"] == str((root / "block" / "zsbk.ini").resolve()) and doc["on"] == "2026-05-08"
    text = (root / "block" / "zsbk.ini").read_text(encoding="utf-8")
    assert text.startswith("[上证50]\n0,600000\n[沪深300]\n") and "\n0,600000\n" in text.split("[沪深300]")[1]
    csi300 = qlib_dir / "instruments" / "csi300.txt"
    assert len(text.split("[沪深300]")[1].split()) == doc["members"] == len(members_on(csi300, "2026-05-08"))
    refused = run_hq_here(
        "data", "universe", "import", str(qlib_dir / "instruments" / "csi300.txt"), "--name", "x",
        "--into", f"qlib:{qlib_dir}", "--format", "json",
    )  # fmt: skip
    assert refused.returncode == 2 and "Hikyuu store" in json.loads(refused.stdout)["error"]["message"]


def test_universe_list_of_a_qlib_store(qlib_dir: Path) -> None:
    proc = run_hq_here("data", "universe", "list", "--source", f"qlib:{qlib_dir}", "--format", "json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout)["universes"] == ["all", "csi300"]


def test_a_block_s_index_code_listed_and_used_as_its_name(
    hikyuu_dir: Path, qlib_dir: Path, tmp_path: Path
) -> None:
    """stock.db's BlockIndex table (a generated copy in Hikyuu's layout): ``universe list`` shows each
    block's index code, ``--universe SH000300`` names the block, ``import --index`` writes the row."""
    root = store_copy(hikyuu_dir, tmp_path / "store")
    source = f"hikyuu:{root}"
    with sqlite3.connect(root / "stock.db") as conn:  # rows as Hikyuu's block importers write them
        conn.executemany(
            "INSERT INTO Block (category, name, market_code) VALUES (?, ?, ?)",
            [("指数板块", "中证500", c) for c in ("SZ000004", "SZ000005")]
            + [("行业板块", "银行", "SH600000")],
        )
        conn.execute(
            'CREATE TABLE `BlockIndex` ("id" INTEGER, `category` VARCHAR(100) NOT NULL, `name` VARCHAR(100) '
            'NOT NULL, `market_code` VARCHAR(30) NOT NULL, PRIMARY KEY("id" AUTOINCREMENT))'
        )
        conn.execute(
            "INSERT INTO BlockIndex (category, name, market_code) VALUES ('指数板块', '中证500', 'SH000905')"
        )
    csi300 = qlib_dir / "instruments" / "csi300.txt"
    proc = run_hq_here(
        "data", "universe", "import", str(csi300), "--name", "沪深300", "--category", "指数板块",
        "--index", "000300.SH", "--into", source, "--on", "2011-06-01", "--format", "json",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout)["index_code"] == "SH000300"
    with sqlite3.connect(root / "stock.db") as conn:
        rows = conn.execute("SELECT category, name, market_code FROM BlockIndex ORDER BY id").fetchall()
    assert rows == [("指数板块", "中证500", "SH000905"), ("指数板块", "沪深300", "SH000300")]
    listed = json.loads(
        run_hq_here("data", "universe", "list", "--source", source, "--format", "json").stdout
    )
    assert listed["index_codes"] == {"指数板块/中证500": "SH000905", "指数板块/沪深300": "SH000300"}
    assert set(listed["blocks"]) == {"指数板块/中证500", "指数板块/沪深300", "行业板块/银行"}  # 银行 has none
    table = run_hq_here("data", "universe", "list", "--source", source)
    assert table.returncode == 0 and "SH000905" in table.stdout
    # the block named by its index's code: the same codes as by its name
    runs = {}
    for name in ("SH000300", "沪深300"):
        proc = run_hq_here(
            "system", "run", "--source", source, "--universe", name, "--start", "2010-01-01", "--end",
            "2011-12-31", "--signal", "ma-cross:5,20", "--out", str(tmp_path / name), "--format", "json",
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-2000:]
        runs[name] = json.loads(proc.stdout)["codes"]
    assert runs["SH000300"] == runs["沪深300"] == ["SH600000", "SH600004", "SH600005", "SZ000001", "SZ000002"]
    # an index stock.db does not list is refused, as Hikyuu would ignore it; so is one for an ini file
    proc = run_hq_here(
        "data", "universe", "import", str(csi300), "--name", "x", "--category", "指数板块", "--index", "SH009999",
        "--into", source, "--format", "json",
    )  # fmt: skip
    assert proc.returncode == 2 and "SH009999" in json.loads(proc.stdout)["error"]["message"]
    (root / "block").mkdir()
    (root / "block" / "zsbk.ini").write_text("[上证50]\n0,600000\n", encoding="utf-8")
    proc = run_hq_here(
        "data", "universe", "import", str(csi300), "--name", "上证50", "--category", "指数板块",
        "--index", "SH000016", "--into", source, "--format", "json",
    )  # fmt: skip
    assert proc.returncode == 2 and "qianlong" in json.loads(proc.stdout)["error"]["message"]
