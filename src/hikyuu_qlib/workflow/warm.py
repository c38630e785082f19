"""Warm the cache for a workflow: build (or find) the feature frames its run will read.

``hq run`` reads two frames: Alpha158 with its label over every segment (training) and Alpha158 without
the label over the test segment (prediction). Warming builds both under the same keys, so the run that
follows — in any process sharing the cache — reads them instead of computing them.
"""

from __future__ import annotations

import time
from typing import Any

from hikyuu_qlib.factors.pipeline import compute_features
from hikyuu_qlib.research import ResearchContext
from hikyuu_qlib.workflow.config import WorkflowConfig


def warm_workflow(config: WorkflowConfig, ctx: ResearchContext) -> dict[str, Any]:
    """Build the workflow's feature frames in ``ctx``'s cache; what each was (``cached`` or ``computed``),
    its rows and seconds."""
    features = ctx.features
    segments = config.segments
    whole, test = segments.span(), segments["test"]
    frames: list[dict[str, Any]] = []
    for role, dates, label in (("train", whole, True), ("predict", test, False)):
        before = ctx.cache.counters().computed
        started = time.perf_counter()
        frame = compute_features(
            features,
            ctx.universe(config.universe, dates),
            dates,
            config.factors,
            label=label,
            cache=ctx.cache,
        )
        frames.append(
            {
                "frame": role,
                "dates": str(dates),
                "label": label,
                "rows": frame.height,
                "columns": frame.width,
                "state": "computed" if ctx.cache.counters().computed > before else "cached",
                "seconds": round(time.perf_counter() - started, 3),
            }
        )
    return {
        "source": features.source,
        "data_version": features.data_version(),
        "universe": config.universe,
        "frames": frames,
    }
