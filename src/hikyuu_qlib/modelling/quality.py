"""Quality over seeds: one set-up trained with several seeds, each metric as mean ± std.

A single seed's figure decides nothing (early stopping may keep a handful of trees, and one seed against
another moves the test IC visibly); :func:`over_seeds` summarises the segment metrics of the runs.
``std`` is the sample standard deviation (n - 1), ``null`` for a single run.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

#: The segment metrics summarised over seeds.
SEED_METRICS = ("ic", "icir", "rank_ic", "rank_icir", "mse_raw_label")
SEGMENTS = ("train", "valid", "test")


def mean_std(values: Sequence[float]) -> dict[str, Any]:
    finite = [float(v) for v in values if isinstance(v, int | float) and math.isfinite(v)]
    n = len(finite)
    if n == 0:
        return {"mean": None, "std": None, "n": 0}
    mean = sum(finite) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in finite) / (n - 1)) if n > 1 else None
    return {"mean": mean, "std": std, "n": n}


def over_seeds(runs: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """Per segment and metric: mean, std and count over the runs' metrics (each a model's metrics)."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for segment in SEGMENTS:
        rows = [r[segment] for r in runs if isinstance(r.get(segment), Mapping)]
        if rows:
            out[segment] = {m: mean_std([row.get(m) for row in rows]) for m in SEED_METRICS}
    return out


def format_mean_std(cell: Mapping[str, Any]) -> str:
    mean, std = cell.get("mean"), cell.get("std")
    if mean is None:
        return ""
    return f"{mean:.4f}" if std is None else f"{mean:.4f} ± {std:.4f}"
