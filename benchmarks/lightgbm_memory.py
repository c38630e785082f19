"""Measure what LightGBM holds while it trains from row files, against :func:`lightgbm_bytes`.

    python benchmarks/lightgbm_memory.py [--rows 100000,400000] [--valid 0.25] [--features 158] [--rounds 15]

For each row count a child process writes a float32 row file (standard normal values, 2% NaN: every
feature gets its 255 bins, LightGBM's worst case), builds the LightGBM ``Dataset`` from
:func:`~hikyuu_qlib.modelling.streaming.row_sequence` as bounded training does (with Qlib's Alpha158
parameters) and trains a few rounds with a validation set. A thread samples the RSS every 10 ms; the
peak above the RSS before the ``Dataset`` is LightGBM's. Prints one JSON document: per row count the
measured peak and the estimate, in MB. The row files go to a temporary directory, removed afterwards.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile

CHILD = r"""
import json, sys, threading
from pathlib import Path
import numpy as np, psutil
import lightgbm as lgb
from hikyuu_qlib.modelling.presets import get_preset
from hikyuu_qlib.modelling.streaming import RowFile, lightgbm_bytes, row_sequence

rows, valid_rows, ncol, rounds, tmp = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), Path(sys.argv[5])
rng = np.random.default_rng(0)
def write(path, n):
    with path.open("wb") as f:
        for s in range(0, n, 50_000):
            k = min(50_000, n - s)
            x = rng.standard_normal((k, ncol)).astype(np.float32)
            x[rng.random((k, ncol)) < 0.02] = np.nan
            x.tofile(f)
write(tmp / "train.f32", rows)
write(tmp / "valid.f32", valid_rows)
y, yv = rng.standard_normal(rows).astype(np.float32), rng.standard_normal(valid_rows).astype(np.float32)
params = get_preset("qlib-lgb-alpha158").lgb_params(seed=0, num_threads=2)
proc = psutil.Process()
peak, stop = [0], threading.Event()
def sample():
    while not stop.wait(0.01):
        peak[0] = max(peak[0], proc.memory_info().rss)
threading.Thread(target=sample, daemon=True).start()
base = proc.memory_info().rss
peak[0] = base
seqs = [row_sequence(RowFile(tmp / "train.f32", rows, ncol, y))]
sets = [lgb.Dataset(seqs[0], label=y)]
if valid_rows:
    seqs.append(row_sequence(RowFile(tmp / "valid.f32", valid_rows, ncol, yv)))
    sets.append(lgb.Dataset(seqs[1], label=yv))
sets[0].construct()
construct = peak[0] - base
lgb.train(dict(params), sets[0], num_boost_round=rounds, valid_sets=sets)
stop.set()
print(json.dumps({"rows": rows, "valid_rows": valid_rows, "features": ncol,
                  "construct_mb": round(construct / 2**20, 1), "peak_mb": round((peak[0] - base) / 2**20, 1),
                  "estimate_mb": round(lightgbm_bytes(rows, valid_rows, ncol, params) / 2**20, 1)}))
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="50000,200000,400000", help="training row counts, comma-separated")
    parser.add_argument("--valid", type=float, default=0.25, help="validation rows per training row")
    parser.add_argument("--features", type=int, default=158)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args(argv)
    results = []
    for rows in (int(r) for r in args.rows.split(",")):
        with tempfile.TemporaryDirectory(prefix="hq-lgb-memory-") as tmp:
            done = subprocess.run(
                [sys.executable, "-c", CHILD, str(rows), str(int(rows * args.valid)), str(args.features),
                 str(args.rounds), tmp],
                capture_output=True, text=True, check=False,
            )  # fmt: skip
        if done.returncode != 0:
            sys.stderr.write(done.stderr)
            return 1
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    sys.stdout.write(json.dumps({"lightgbm_memory": results}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
