"""Model artifacts on the local filesystem, content-addressed by sha256.

A file lives at ``ROOT/ab/cdef…`` (its sha256 in hex, split after two characters) and its URI is
``file://`` + that path. Writes go to a temporary file in the same directory, are fsynced, then renamed
into place, so a reader never sees a partial file and the same content is stored once. Reads verify
the size and sha256 (:class:`ArtifactIntegrityError` on mismatch). Models are kept in their library's
own format (LightGBM's text model), never pickle.

The store reads and deletes only its own files: a reference is honoured only when its URI names the
content address of its sha256 under this store's root. A record whose URI points anywhere else (another
directory, a path with ``..``, a symlink out of the root) gets an :class:`ArtifactLocationError` and
nothing outside the root is read or removed.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

from hikyuu_qlib.domain.errors import (
    ArtifactIntegrityError,
    ArtifactLocationError,
    ArtifactNotFoundError,
    InvalidInputError,
)
from hikyuu_qlib.domain.model import ArtifactRef

if TYPE_CHECKING:
    import lightgbm

_BLOCK = 1 << 20


class LocalArtifactStore:
    """Content-addressed artifact files under one root directory."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser().resolve()

    def _path(self, sha256: str) -> Path:
        return self.root / sha256[:2] / sha256[2:]

    def path_of(self, ref: ArtifactRef) -> Path:
        """The file of ``ref`` under this store's root; :class:`ArtifactLocationError` for any other place."""
        parsed = urlparse(ref.uri)
        if parsed.scheme != "file":
            raise InvalidInputError(f"unsupported artifact URI {ref.uri!r}: this store holds file:// URIs")
        expected = self._path(ref.sha256)
        given = Path(unquote(parsed.path))
        if parsed.netloc not in ("", "localhost") or os.path.normpath(given) != str(expected):
            raise ArtifactLocationError(
                f"artifact URI {ref.uri!r} is not the content address of sha256 {ref.sha256[:12]}… under "
                f"this store's root {self.root} (expected {expected.as_uri()}): refusing to touch it"
            )
        if expected.is_symlink() or expected.parent.is_symlink():
            raise ArtifactLocationError(f"artifact {ref.uri!r} is a symbolic link: refusing to follow it")
        return expected

    def put_bytes(self, data: bytes) -> ArtifactRef:
        """Store ``data``; returns its reference (storing the same content twice is a no-op)."""
        digest = hashlib.sha256(data).hexdigest()
        target = self._path(digest)
        if not (target.is_file() and target.stat().st_size == len(data)):
            self._atomic_write(target, [data])
        return ArtifactRef(target.as_uri(), digest, len(data))

    def put_file(self, path: str | Path) -> ArtifactRef:
        """Copy a file into the store (streamed, hashed on the way)."""
        source = Path(path)
        if not source.is_file():
            raise ArtifactNotFoundError(f"no such file {str(source)!r}")
        digest = hashlib.sha256()
        size = 0
        with source.open("rb") as f:
            while block := f.read(_BLOCK):
                digest.update(block)
                size += len(block)
        target = self._path(digest.hexdigest())
        if not (target.is_file() and target.stat().st_size == size):
            with source.open("rb") as f:
                self._atomic_write(target, iter(lambda: f.read(_BLOCK), b""))
        return ArtifactRef(target.as_uri(), digest.hexdigest(), size)

    def _atomic_write(self, target: Path, blocks: Any) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as f:
                for block in blocks:
                    f.write(block)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def get_path(self, ref: ArtifactRef) -> Path:
        """The local path of a verified artifact."""
        path = self.path_of(ref)
        self._verify(path, ref)
        return path

    def get_bytes(self, ref: ArtifactRef) -> bytes:
        """The content of an artifact, verified against its sha256 and size."""
        path = self.path_of(ref)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise ArtifactNotFoundError(f"artifact {ref.uri!r} is missing") from None
        self._check(ref, len(data), hashlib.sha256(data).hexdigest())
        return data

    def _verify(self, path: Path, ref: ArtifactRef) -> None:
        digest = hashlib.sha256()
        size = 0
        try:
            with path.open("rb") as f:
                while block := f.read(_BLOCK):
                    digest.update(block)
                    size += len(block)
        except FileNotFoundError:
            raise ArtifactNotFoundError(f"artifact {ref.uri!r} is missing") from None
        self._check(ref, size, digest.hexdigest())

    @staticmethod
    def _check(ref: ArtifactRef, size: int, sha256: str) -> None:
        if size != ref.size or sha256 != ref.sha256:
            raise ArtifactIntegrityError(
                f"artifact {ref.uri!r} is corrupt: sha256 {sha256[:12]}… size {size}, "
                f"expected {ref.sha256[:12]}… size {ref.size}"
            )

    def delete(self, ref: ArtifactRef) -> bool:
        """Remove an artifact file (content-addressed: only when no other model uses it)."""
        path = self.path_of(ref)
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        return True

    # --- LightGBM: its own text format ----------------------------------------------------------

    def save_lightgbm(self, booster: lightgbm.Booster) -> ArtifactRef:
        """Store a LightGBM booster as LightGBM's text model (``Booster.model_to_string``)."""
        return self.put_bytes(booster.model_to_string().encode("utf-8"))

    def load_lightgbm(self, ref: ArtifactRef) -> lightgbm.Booster:
        """Load a booster stored by :meth:`save_lightgbm`, after verifying its checksum."""
        import lightgbm

        return lightgbm.Booster(model_str=self.get_bytes(ref).decode("utf-8"))
