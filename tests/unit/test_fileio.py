"""Positioned reads give the same bytes with ``os.pread`` and with the seek-and-read path Windows uses."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hikyuu_qlib import fileio


@pytest.mark.parametrize("positioned", [True, False])
def test_read_at_reads_the_asked_bytes_and_stops_at_the_end(
    tmp_path: Path, positioned: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not positioned:
        monkeypatch.setattr(fileio, "_pread", None)
    path = tmp_path / "blob"
    blob = bytes(range(256)) * 40 + b"\r\n\x1a tail"  # bytes a text-mode descriptor would change
    path.write_bytes(blob)
    fd = fileio.open_to_read(path)
    try:
        assert fileio.read_at(fd, 100, 5000) == blob[5000:5100]
        assert fileio.read_at(fd, 10, 0) == blob[:10]
        assert fileio.read_at(fd, 1000, len(blob) - 7) == blob[-7:]  # short only at the end
        assert fileio.read_at(fd, 10, len(blob) + 3) == b""
    finally:
        os.close(fd)
