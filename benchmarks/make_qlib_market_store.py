"""Generate a whole-market Qlib store from the real histories of ../shared/data/qlib_cn.

    python benchmarks/make_qlib_market_store.py [--stocks N] [--out DIR] [--seed S] [--force]

The store has the properties of real downloaded data sets: the real calendar (2010-01-04 to the last
day of qlib_cn), adjusted prices (``$close`` = traded close × ``$factor``), ``$change`` in **percent**,
no ``vwap`` or ``amount`` field, codes that list late and codes delisted before the end (their bins
end early), and suspensions (NaN days, as the real histories have them).

Each synthetic stock replays real daily histories **on their own dates**: the adjusted close-to-close
returns, the open/high/low shape of each day relative to its close, the volume and the ``$factor`` jumps
of one real stock listed on the synthetic stock's first day, continued with another one listed then when
it runs out (the seam is not a return), rescaled to a random start price and volume. Replaying a history
at another date (version 1 of this store) let one code's past show another's future: a model learned
the copies, and the whole-market pipeline's test IC came out near 0.5. Replayed on their own dates, the
copies move together, and the cross-section keeps the real market's predictability. The indices of qlib_cn (SH000300 the
benchmark, SH000905, SH000001, SZ399001, SZ399006) are copied as they are. ``instruments/all.txt``
lists every code with its first and last day; ``instruments/csi300.txt`` is qlib_cn's real one.

The default location is ``$HQ_BENCH_STORE`` or ``~/.cache/hikyuu_qlib/bench/qlib_market`` (outside
the repository); a ``params.json`` written last makes the script idempotent: a store whose marker
matches is reused, anything else (an interrupted build included) is rebuilt.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import data_root
from generated_stores import generator_main, read_whole_bin, up_to_date
from hikyuu_qlib.stores.qlib.bins import write_bin

log = logging.getLogger("make_qlib_market_store")
VERSION = 2
DEFAULT_STOCKS = 5800
FIELDS = ("open", "high", "low", "close", "volume", "factor")
INDICES = ("sh000300", "sh000905", "sh000001", "sz399001", "sz399006")
#: Share of codes listed before the calendar starts, and of codes delisted before it ends.
EARLY = 0.55
DELISTED = 0.15


def default_out() -> Path:
    env = os.environ.get("HQ_BENCH_STORE")
    return Path(env).expanduser() if env else Path("~/.cache/hikyuu_qlib/bench/qlib_market").expanduser()


def load_sources(qlib_dir: Path, n_cal: int) -> list[dict[str, Any]]:
    """Each real stock as relative series over the whole calendar (NaN where it does not trade): return,
    day shape, volume, factor jump; with ``first`` and ``last``, its first and last traded day."""
    sources: list[dict[str, Any]] = []
    for folder in sorted((qlib_dir / "features").iterdir()):
        if folder.name.startswith(("sh000", "sz399")):
            continue
        f = {name: read_whole_bin(folder / f"{name}.day.bin", n_cal) for name in FIELDS}
        ok = np.isfinite(f["close"]) & (f["close"] > 0) & np.isfinite(f["factor"]) & (f["factor"] > 0)
        if ok.sum() < 250:
            continue
        first, last = int(np.argmax(ok)), int(n_cal - 1 - np.argmax(ok[::-1]))
        prev = _last_valid(np.where(ok, f["close"], np.nan))
        fprev = _last_valid(np.where(ok, f["factor"], np.nan))
        with np.errstate(divide="ignore", invalid="ignore"):
            sources.append(
                {
                    "ret": np.where(ok, f["close"] / prev, np.nan),
                    "open": f["open"] / f["close"],
                    "high": f["high"] / f["close"],
                    "low": f["low"] / f["close"],
                    "volume": np.where(ok, f["volume"], np.nan),
                    "fjump": np.where(ok, f["factor"] / fprev, np.nan),
                    "first": first,
                    "last": last,
                }
            )
    return sources


def _last_valid(x: np.ndarray) -> np.ndarray:
    """The previous finite value of each position (NaN before the first)."""
    idx = np.where(np.isfinite(x), np.arange(x.size), -1)
    np.maximum.accumulate(idx, out=idx)
    prev_idx = np.concatenate([[-1], idx[:-1]])
    out = np.full(x.size, np.nan)
    has = prev_idx >= 0
    out[has] = x[prev_idx[has]]
    return out


def synth_codes(n: int) -> list[str]:
    sh = [f"SH{600000 + i:06d}" for i in range(3000)] + [f"SH{688000 + i:06d}" for i in range(900)]
    sz = [f"SZ{1 + i:06d}" for i in range(2500)] + [f"SZ{300000 + i:06d}" for i in range(1500)]
    if n > min(len(sh), len(sz)) * 2:
        raise SystemExit(f"at most {min(len(sh), len(sz)) * 2} stocks")
    return [sh[i // 2] if i % 2 == 0 else sz[i // 2] for i in range(n)]


def build_stock(
    rng: np.random.Generator, sources: list[dict[str, Any]], first: int, last: int
) -> dict[str, np.ndarray]:
    """One stock from calendar day ``first`` to ``last``: real relative series of those same days,
    stitched from real stocks listed on each seam's day."""
    parts: list[dict[str, np.ndarray]] = []
    pos = first
    while pos <= last:
        listed = [s for s in sources if s["first"] <= pos < s["last"]]
        # (no real stock listed that day: any one, its days without trading are suspensions)
        src = listed[int(rng.integers(len(listed)))] if listed else sources[int(rng.integers(len(sources)))]
        end = min(last, int(src["last"])) if listed else last
        piece = {k: v[pos : end + 1].copy() for k, v in src.items() if isinstance(v, np.ndarray)}
        valid = np.flatnonzero(np.isfinite(piece["ret"]) | np.isfinite(piece["volume"]))
        if valid.size:  # the first traded day of a piece (and of the stock) is no return, no jump
            piece["ret"][valid[0]] = 1.0
            piece["fjump"][valid[0]] = 1.0
        parts.append(piece)
        pos = end + 1
    cat = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    traded = np.isfinite(cat["ret"]) & np.isfinite(cat["volume"]) & (cat["volume"] > 0)
    traded[0] = True  # the listing day trades
    ret = np.where(traded, np.nan_to_num(cat["ret"], nan=1.0), 1.0)
    fjump = np.where(traded, np.nan_to_num(cat["fjump"], nan=1.0), 1.0)
    factor = float(np.exp(rng.uniform(np.log(0.5), np.log(20.0)))) * np.cumprod(fjump)
    price = float(np.exp(rng.uniform(np.log(3.0), np.log(60.0))))
    close = price * factor[0] * np.cumprod(ret)
    vol_scale = float(np.exp(rng.uniform(np.log(0.2), np.log(5.0))))
    volume = np.nan_to_num(cat["volume"], nan=np.nanmedian(cat["volume"])) * vol_scale
    out = {
        "close": close,
        "open": close * np.nan_to_num(cat["open"], nan=1.0),
        "high": close * np.nan_to_num(cat["high"], nan=1.0),
        "low": close * np.nan_to_num(cat["low"], nan=1.0),
        "volume": volume,
        "factor": factor,
    }
    out["high"] = np.maximum.reduce([out["high"], out["open"], close])
    out["low"] = np.minimum.reduce([out["low"], out["open"], close])
    prev = _last_valid(np.where(traded, close, np.nan))
    out["change"] = (close / prev - 1.0) * 100.0  # percent, as many downloaded data sets keep it
    for key in out:
        out[key] = np.where(traded, out[key], np.nan)
    return out


def ensure_store(
    stocks: int = DEFAULT_STOCKS, out: Path | None = None, seed: int = 20260601, force: bool = False
) -> Path:
    """Build the store (or reuse it when its marker matches) and return its directory."""
    out = Path(out) if out is not None else default_out()
    params = {"version": VERSION, "stocks": stocks, "seed": seed}
    marker = out / "params.json"
    if not force and up_to_date(marker, params):
        log.info("qlib market store %s is up to date", out)
        return out
    started = time.perf_counter()
    if out.exists():
        shutil.rmtree(out)
    (out / "calendars").mkdir(parents=True)
    (out / "instruments").mkdir()
    qlib_dir = data_root() / "qlib_cn"
    days = (qlib_dir / "calendars" / "day.txt").read_text().split()
    n_cal = len(days)
    (out / "calendars" / "day.txt").write_text("\n".join(days) + "\n")
    shutil.copyfile(qlib_dir / "instruments" / "csi300.txt", out / "instruments" / "csi300.txt")
    sources = load_sources(qlib_dir, n_cal)
    rng = np.random.default_rng(seed)
    lines: list[str] = []
    rows = 0
    delisted = 0
    for name in INDICES:
        src = qlib_dir / "features" / name
        if src.is_dir():
            shutil.copytree(src, out / "features" / name)
            close = read_whole_bin(src / "close.day.bin", n_cal)
            ok = np.flatnonzero(np.isfinite(close))
            lines.append(f"{name.upper()}\t{days[ok[0]]}\t{days[ok[-1]]}")
    for code in synth_codes(stocks):
        first = 0 if rng.random() < EARLY else int(rng.integers(1, n_cal - 300))
        last = n_cal - 1
        if rng.random() < DELISTED:
            last = int(rng.integers(first + 250, n_cal - 20))
            delisted += 1
        bars = build_stock(rng, sources, first, last)
        folder = out / "features" / code.lower()
        for field, values in bars.items():
            write_bin(folder / f"{field}.day.bin", first, values.astype(np.float32))
        rows += last - first + 1
        lines.append(f"{code}\t{days[first]}\t{days[last]}")
    (out / "instruments" / "all.txt").write_text("\n".join(lines) + "\n")
    seconds = round(time.perf_counter() - started, 1)
    doc = {
        "params": params,
        "instruments": len(lines),
        "rows": rows,
        "delisted": delisted,
        "seconds": seconds,
    }
    tmp = marker.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, indent=2))
    tmp.replace(marker)
    log.info(
        "wrote %s: %d instruments, %d rows (%d delisted) in %.1fs", out, len(lines), rows, delisted, seconds
    )
    return out


def main(argv: list[str] | None = None) -> int:
    return generator_main(argv, __doc__, DEFAULT_STOCKS, 20260601, ensure_store)


if __name__ == "__main__":
    raise SystemExit(main())
