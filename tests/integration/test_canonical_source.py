"""One store, one identity: the same data directory named relatively (from another working directory),
absolutely or through a symlink has one ``source``, one ``data_version``, one workflow run id, and hits
the same caches."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
from tests.cache_support import disk_cache, entries

from hikyuu_qlib.app import open_feature_source, open_store
from hikyuu_qlib.domain import DateRange, KType
from hikyuu_qlib.domain.cache import Tier
from hikyuu_qlib.factors.pipeline import compute_features
from hikyuu_qlib.factors.universe import Universe
from hikyuu_qlib.ports import MarketData
from hikyuu_qlib.stores.hikyuu import HikyuuStore
from hikyuu_qlib.workflow.config import WorkflowConfig

SEGMENTS = {
    "train": "2016-01-01:2016-06-30",
    "valid": "2016-07-01:2016-09-30",
    "test": "2016-10-01:2016-12-31",
}


def _spellings(real: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The store's directory as given by the fixture, absolute, through a symlink, and relative to a
    working directory elsewhere (the process changes into it)."""
    link = tmp_path / "link"
    link.symlink_to(real, target_is_directory=True)
    cwd = tmp_path / "somewhere" / "else"
    cwd.mkdir(parents=True)
    monkeypatch.chdir(cwd)
    relative = os.path.relpath(real, cwd)
    assert not Path(relative).is_absolute() and relative.startswith("..")
    return [str(real.resolve()), str(link), relative]


@pytest.mark.parametrize("kind", ["hikyuu", "qlib"])
def test_spellings_share_source_version_and_run_id(
    kind: str, hikyuu_dir: Path, qlib_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = hikyuu_dir if kind == "hikyuu" else qlib_dir
    given = str(real)  # the fixture's spelling goes through the /work/wt/shared symlink
    spellings = [given, *_spellings(real, tmp_path, monkeypatch)]
    stores: list[MarketData] = [open_store(f"{kind}:{s}") for s in spellings]
    try:
        assert {s.source for s in stores} == {f"{kind}:{real.resolve()}"}
        assert len({s.data_version() for s in stores}) == 1
        features = [open_feature_source(s) for s in stores]  # what research reads: one source, one version
        assert {f.source for f in features} == {f"{kind}:{real.resolve()}"}
        assert len({f.data_version() for f in features}) == 1
        version = features[0].data_version()
        configs = [
            WorkflowConfig.model_validate({"source": f"{kind}:{s}", "segments": SEGMENTS}) for s in spellings
        ]
        assert len({c.config_hash() for c in configs}) == 1
        assert len({c.run_id(version) for c in configs}) == 1
        other = WorkflowConfig.model_validate({"source": f"{kind}:{tmp_path}", "segments": SEGMENTS})
        assert other.run_id(version) != configs[0].run_id(version)  # another directory: another run
    finally:
        for store in stores:
            store.close()


def test_feature_cache_hits_across_spellings(
    qlib_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    cache = disk_cache(tmp_path / "features")
    universe = Universe.from_codes(["SH600000", "SH600036", "SZ000001"])
    dates = DateRange.of("2016-01-04", "2016-03-31")
    first, *others = _spellings(qlib_dir, tmp_path, monkeypatch)
    with open_store(f"qlib:{first}") as store:
        expected = compute_features(store, universe, dates, cache=cache)  # type: ignore[arg-type]
    assert len(entries(tmp_path / "features")) == 1
    for spelling in others:
        before = cache.counters().tiers[Tier.DISK].hits
        with open_store(f"qlib:{spelling}") as store:
            got = compute_features(store, universe, dates, cache=cache)  # type: ignore[arg-type]
        assert got.equals(expected)
        assert cache.counters().tiers[Tier.DISK].hits == before + 1, spelling
    assert len(entries(tmp_path / "features")) == 1  # nothing computed twice
    assert cache.counters().computed == 1


def test_decoded_column_cache_hits_across_spellings(
    hikyuu_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    cache_dir = tmp_path / "cache"
    first, *others = _spellings(hikyuu_dir, tmp_path, monkeypatch)
    with HikyuuStore.open(Path(first), cache_dir=cache_dir) as store:
        expected = store.read_all(KType.DAY)
    assert len(list((cache_dir / "hikyuu-bulk").iterdir())) == 1
    caplog.set_level(logging.INFO)
    for spelling in others:
        caplog.clear()
        with HikyuuStore.open(Path(spelling), cache_dir=cache_dir) as store:
            assert store.read_all(KType.DAY).equals(expected)
        assert any("mapped decoded columns" in r.getMessage() for r in caplog.records), spelling
    assert len(list((cache_dir / "hikyuu-bulk").iterdir())) == 1
