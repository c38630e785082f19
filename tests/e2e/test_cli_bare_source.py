"""``--source DIR``: a bare directory names a store whose kind is detected from its layout."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from cli_support import hq_env, run_hq_here

from hikyuu_qlib.app import open_store
from hikyuu_qlib.domain.errors import InvalidSourceError
from hikyuu_qlib.settings import Settings
from hikyuu_qlib.stores.hikyuu import HikyuuStore
from hikyuu_qlib.stores.qlib import QlibStore
from hikyuu_qlib.stores.source import SourceSpec


def test_detects_the_real_stores(hikyuu_dir: Path, qlib_dir: Path, tmp_path: Path) -> None:
    assert SourceSpec.parse(str(hikyuu_dir)).canonical() == f"hikyuu:{hikyuu_dir.resolve()}"
    assert SourceSpec.parse(str(qlib_dir)).canonical() == f"qlib:{qlib_dir.resolve()}"
    settings = Settings(home=tmp_path)
    for folder, kind in ((qlib_dir, QlibStore), (hikyuu_dir, HikyuuStore)):
        store = open_store(str(folder), settings=settings)
        try:
            assert isinstance(store, kind)
            assert store.source.endswith(f":{folder.resolve()}")
        finally:
            store.close()


def test_a_folder_named_like_a_kind_is_a_folder(
    hikyuu_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--source hikyuu`` run next to a folder called ``hikyuu`` names that folder."""
    monkeypatch.chdir(hikyuu_dir.parent)
    assert SourceSpec.parse("hikyuu").canonical() == f"hikyuu:{hikyuu_dir.resolve()}"
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InvalidSourceError, match="hikyuu needs a path"):
        SourceSpec.parse("hikyuu")


def test_hikyuu_ini_alone_is_enough(tmp_path: Path) -> None:
    (tmp_path / "hikyuu.ini").write_text("[hikyuu]\n")
    assert SourceSpec.parse(str(tmp_path)).kind == "hikyuu"
    assert SourceSpec.parse(str(tmp_path / "hikyuu.ini")).kind == "hikyuu"


def test_unknown_layouts_are_refused_saying_what_was_looked_for(hikyuu_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(InvalidSourceError) as caught:
        SourceSpec.parse(str(hikyuu_dir / "vipdoc"))
    said = str(caught.value)
    assert "stock.db" in said and "hikyuu.ini" in said and "calendars/" in said
    with pytest.raises(InvalidSourceError, match="no such directory"):
        SourceSpec.parse(str(tmp_path / "absent"))
    with pytest.raises(InvalidSourceError, match="not a directory"):
        SourceSpec.parse(str(hikyuu_dir / "stock.db"))


def test_cli_with_bare_directories(hikyuu_dir: Path, qlib_dir: Path, tmp_path: Path) -> None:
    env = hq_env(tmp_path / "home")
    for folder, kind in ((hikyuu_dir, "hikyuu"), (qlib_dir, "qlib")):
        proc = run_hq_here("data", "info", "--source", str(folder), "--format", "json", env=env)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert json.loads(proc.stdout)["source"] == f"{kind}:{folder.resolve()}"
    odd = tmp_path / "odd"
    shutil.copytree(hikyuu_dir / "vipdoc", odd)
    proc = run_hq_here("data", "info", "--source", str(odd), "--format", "json", env=env)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    said = " ".join(proc.stderr.split())
    assert "looked for stock.db or hikyuu.ini" in said and "calendars/" in said
