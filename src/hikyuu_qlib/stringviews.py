"""Polars string columns as Arrow string views, for the few places that work on them in bulk.

Polars keeps strings as Arrow string views: 16 bytes per value, the length in the first four. A string
of at most 12 bytes (every stock code) sits inside its view after the length, zero-padded, so two such
strings are equal exactly when their views are, and a column of them can be built or compared as
plain ``(n, 2)`` arrays of 64-bit words without touching a Python string per row.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import polars as pl
from numba import njit

INLINE_MAX = 12
VIEWS_MIN_ROWS = 4_000_000
U64 = npt.NDArray[np.uint64]


def inline_views(series: pl.Series) -> U64 | None:
    """The views of a one-chunk, null-free string column as ``(n, 2)`` words (zero-copy), or ``None``.

    The caller checks the lengths (the low 32 bits of the first word): longer strings live elsewhere
    and their views do not decide equality."""
    if series.dtype != pl.String or series.n_chunks() != 1 or series.null_count():
        return None
    import pyarrow as pa

    array = series.to_arrow(compat_level=pl.CompatLevel.newest())
    if not isinstance(array, pa.StringViewArray):
        return None
    buffer = array.buffers()[1]
    if buffer is None:
        return None
    words = np.frombuffer(buffer, dtype=np.uint64)
    return words[2 * array.offset : 2 * (array.offset + len(array))].reshape(-1, 2)


def repeat_strings(name: str, values: Sequence[str], counts: npt.NDArray[np.int64]) -> pl.Series:
    """A String column holding ``values[i]`` ``counts[i]`` times, in order.

    Built as views in numpy when every value fits in its view (no per-row work in Python or polars)
    and the column is long or pyarrow is loaded already (importing it costs a quarter of a second, a
    gather about 40 ns a row); else with a gather."""
    encoded = [v.encode() for v in values]
    if not encoded or not _views_pay_off(int(np.sum(counts))) or max(len(e) for e in encoded) > INLINE_MAX:
        index = np.repeat(np.arange(len(values), dtype=np.int64), counts)
        return pl.Series(name, list(values), dtype=pl.String).gather(pl.Series(index))
    import pyarrow as pa

    table = np.zeros((len(encoded), 16), dtype=np.uint8)
    for i, e in enumerate(encoded):
        table[i, :4] = np.frombuffer(np.uint32(len(e)).tobytes(), dtype=np.uint8)
        table[i, 4 : 4 + len(e)] = np.frombuffer(e, dtype=np.uint8)
    if counts.size and int(np.sum(counts)) >= VIEWS_MIN_ROWS:
        # off the GIL: bulk loads build this column while their decoding threads run
        views = np.empty((int(np.sum(counts)), 2), dtype=np.uint64)
        _fill_rows(table.view(np.uint64), np.ascontiguousarray(counts, dtype=np.int64), views)
    else:
        views = np.repeat(table.view(np.uint64), counts, axis=0)
    array = pa.Array.from_buffers(pa.string_view(), views.shape[0], [None, pa.py_buffer(views)])
    return pl.Series(name, array)


def _views_pay_off(rows: int) -> bool:
    return "pyarrow" in sys.modules or rows >= VIEWS_MIN_ROWS


@njit(nogil=True, cache=True)
def _fill_rows(table: U64, counts: npt.NDArray[np.int64], out: U64) -> None:  # pragma: no cover - compiled
    # row i of table, counts[i] times, into out
    pos = 0
    for i in range(table.shape[0]):
        w0, w1 = table[i, 0], table[i, 1]
        for j in range(pos, pos + counts[i]):
            out[j, 0] = w0
            out[j, 1] = w1
        pos += counts[i]
