"""The artifact store: content-addressed, atomic, verified on read; LightGBM in its own text format."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pytest

from hikyuu_qlib.domain import errors
from hikyuu_qlib.domain.model import ArtifactRef
from hikyuu_qlib.registry import LocalArtifactStore


def test_put_bytes_is_content_addressed_and_idempotent(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path / "artifacts")
    a = store.put_bytes(b"model text")
    b = store.put_bytes(b"model text")
    assert a == b and a.size == 10
    path = store.get_path(a)
    assert path.read_bytes() == b"model text"
    assert path.name == a.sha256[2:] and path.parent.name == a.sha256[:2]
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".tmp-")]
    assert store.get_bytes(a) == b"model text"


def test_put_file_streams_and_matches_put_bytes(tmp_path: Path) -> None:
    data = os.urandom(3 * 2**20 + 17)
    source = tmp_path / "model.bin"
    source.write_bytes(data)
    store = LocalArtifactStore(tmp_path / "artifacts")
    ref = store.put_file(source)
    assert ref == store.put_bytes(data)
    with pytest.raises(errors.ArtifactNotFoundError):
        store.put_file(tmp_path / "missing.bin")


def test_corruption_and_loss_are_detected(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path)
    ref = store.put_bytes(b"abcdef")
    path = store.path_of(ref)
    path.write_bytes(b"abcdeX")
    with pytest.raises(errors.ArtifactIntegrityError, match="corrupt"):
        store.get_bytes(ref)
    with pytest.raises(errors.ArtifactIntegrityError):
        store.get_path(ref)
    path.write_bytes(b"abc")
    with pytest.raises(errors.ArtifactIntegrityError):
        store.get_bytes(ref)
    path.unlink()
    with pytest.raises(errors.ArtifactNotFoundError):
        store.get_bytes(ref)


def test_failed_write_leaves_no_partial_file(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path)

    def blocks():  # type: ignore[no-untyped-def]
        yield b"half of it"
        raise OSError("disk full")

    target = tmp_path / "ab" / "cd"
    with pytest.raises(OSError, match="disk full"):
        store._atomic_write(target, blocks())
    assert not target.exists()
    assert list(target.parent.iterdir()) == []


def test_lightgbm_round_trip_in_text_format(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(300, 5)), rng.normal(size=300)
    booster = lgb.train({"objective": "regression", "verbose": -1, "num_leaves": 7}, lgb.Dataset(x, y), 5)
    store = LocalArtifactStore(tmp_path)
    ref = store.save_lightgbm(booster)
    text = store.get_bytes(ref)
    assert text.startswith(b"tree\nversion=")  # LightGBM's own text model, not a pickle
    loaded = store.load_lightgbm(ref)
    np.testing.assert_allclose(loaded.predict(x), booster.predict(x))
    store.path_of(ref).write_bytes(text.replace(b"num_leaves=7", b"num_leaves=8"))
    with pytest.raises(errors.ArtifactIntegrityError):
        store.load_lightgbm(ref)


def _outside_refs(store: LocalArtifactStore, victim: Path, inside: ArtifactRef) -> list[ArtifactRef]:
    """References a tampered record could carry: each names a file that is not its content address."""
    sha = hashlib.sha256(victim.read_bytes()).hexdigest()
    size = victim.stat().st_size
    escaped = store.root / inside.sha256[:2] / ".." / ".." / ".." / victim.parent.name / victim.name
    return [
        ArtifactRef(victim.as_uri(), sha, size),  # another directory altogether
        ArtifactRef(f"file://{escaped}", sha, size),  # under the root, then out with ..
        ArtifactRef(victim.as_uri(), inside.sha256, inside.size),  # a stored sha with a foreign path
    ]


def test_reads_and_deletes_stay_under_the_root(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path / "home" / "artifacts")
    inside = store.put_bytes(b"a model")
    victim = tmp_path / "victim" / "precious.txt"
    victim.parent.mkdir()
    victim.write_bytes(b"not an artifact")
    for ref in _outside_refs(store, victim, inside):
        for operation in (store.delete, store.get_bytes, store.get_path):
            with pytest.raises(errors.ArtifactLocationError, match="refusing"):
                operation(ref)
    assert victim.read_bytes() == b"not an artifact"
    assert store.get_bytes(inside) == b"a model"
    assert store.delete(inside) and not store.path_of(inside).exists()


def test_a_symlink_out_of_the_root_is_not_followed(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path / "artifacts")
    victim = tmp_path / "precious.txt"
    victim.write_bytes(b"payload")
    ref = store.put_bytes(b"payload")
    target = store.path_of(ref)
    target.unlink()
    target.symlink_to(victim)
    with pytest.raises(errors.ArtifactLocationError, match="symbolic link"):
        store.delete(ref)
    assert victim.read_bytes() == b"payload"
