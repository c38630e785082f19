"""What the generators of whole-market stores share (``make_market_store.py``, a Hikyuu store, and
``make_qlib_market_store.py``, a Qlib store): reading qlib_cn's bins, the ``params.json`` marker that makes
them idempotent, and their command line."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


def read_whole_bin(path: Path, n_cal: int) -> np.ndarray:
    """One Qlib bin over the whole calendar as float64 (NaN outside the bin)."""
    raw = np.fromfile(path, dtype="<f4")
    out = np.full(n_cal, np.nan, dtype=np.float64)
    if raw.size > 1:
        start = int(raw[0])
        values = raw[1:].astype(np.float64)[: max(0, n_cal - start)]
        out[start : start + values.size] = values
    return out


def up_to_date(marker: Path, params: dict[str, Any]) -> bool:
    """Whether the store's marker says it was built with ``params`` (a store without one is rebuilt)."""
    return marker.is_file() and json.loads(marker.read_text()).get("params") == params


def generator_main(
    argv: list[str] | None,
    doc: str | None,
    stocks: int,
    seed: int,
    ensure: Callable[[int, Path | None, int, bool], Path],
) -> int:
    """``--stocks N --out DIR --seed S --force``: build (or reuse) the store, print its path and marker."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stocks", type=int, default=stocks)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--seed", type=int, default=seed)
    parser.add_argument("--force", action="store_true", help="rebuild even when the marker matches")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    path = ensure(args.stocks, args.out, args.seed, args.force)
    sys.stdout.write(f"{path}\n{(path / 'params.json').read_text()}\n")
    return 0
