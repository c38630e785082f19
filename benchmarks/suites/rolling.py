"""Suite ``rolling``: rolling LightGBM on CSI300 over the real Qlib store, sequential vs local pool vs Ray.

One rolling workflow (the Qlib benchmark's LightGBM Alpha158 config, 20-day step, sliding, as
``examples/benchmarks_dynamic``): full = train 2010–2014, valid 2015–2016, test 2017-01 → 2020-08
(about 43 windows); ``--quick`` = train 2016–2017, valid 2018-H1, test 2018-H2 (about 6 windows).
Each executor runs the same tasks (1 LightGBM thread each, so all three give the same predictions)
against a fresh registry; the features are computed once before (feature cache) so that the timings
compare the training phase (``tasks``: share the features, run every window). Goals: ≥ 1.7× over the
sequential run (``inline``) for both the local pool and Ray on 2 cores; Ray's overhead against the pool
≤ 15 %. The quality block compares the stitched rolling series with the static model (the workflow's
own segments) on the same test span: IC, Rank IC, annualised excess return with cost, IR.
pyqlib's own rolling baseline is not run here (see ``extra.pyqlib``).
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import Result, data_root, work_dir

log = logging.getLogger("bench.rolling")

FULL = {"train": "2010-01-01:2014-12-31", "valid": "2015-01-01:2016-12-31", "test": "2017-01-01:2020-08-01"}
QUICK = {"train": "2016-01-01:2017-12-31", "valid": "2018-01-01:2018-06-30", "test": "2018-07-01:2018-12-31"}
GOAL_SPEEDUP = 1.7
GOAL_RAY_OVERHEAD = 0.15


def _workflow(path: Path, segments: dict[str, str], runs: Path) -> Path:
    qlib = data_root() / "qlib_cn"
    path.write_text(
        f"""source: qlib:{qlib}
universe: csi300
model: {{preset: qlib-lgb-alpha158, seed: 0, num_threads: 1}}
segments: {{train: "{segments["train"]}", valid: "{segments["valid"]}", test: "{segments["test"]}"}}
strategy: {{topk: 50, n_drop: 5}}
backtest: {{benchmark: SH000300, open_cost: 0.0005, close_cost: 0.0015, min_cost: 5}}
rolling: {{step: 20, mode: sliding}}
outputs: {{dir: {runs}, report: false}}
"""
    )
    return path


def run(quick: bool) -> list[Result]:
    import polars as pl

    from hikyuu_qlib.executors import open_executor
    from hikyuu_qlib.research import ResearchContext
    from hikyuu_qlib.settings import Settings
    from hikyuu_qlib.workflow.config import load_workflow
    from hikyuu_qlib.workflow.rolling import plan_windows, run_rolling
    from hikyuu_qlib.workflow.tasks import shared_features

    home = work_dir() / "rolling-home"
    scratch = Path(tempfile.mkdtemp(prefix="bench-rolling-", dir=work_dir()))
    config = load_workflow(_workflow(scratch / "rolling.yaml", QUICK if quick else FULL, scratch / "runs"))
    settings = Settings(home=home)
    load = {"loadavg_before": os.getloadavg(), "cpus": os.cpu_count()}
    with ResearchContext.open(config.source, settings=settings, db=f"sqlite:///{scratch / 'warm.db'}") as ctx:
        windows = plan_windows(config, ctx)
        whole = windows[0].segments.span().start
        from hikyuu_qlib.domain import DateRange

        shared_features(
            ctx, config, DateRange(min(whole, config.segments.span().start), windows[-1].test.end)
        )
    log.info("%d windows; features warm", len(windows))
    timings: dict[str, dict[str, float]] = {}
    preds: dict[str, Any] = {}
    comparison: dict[str, Any] = {}
    ray_dir = tempfile.mkdtemp(prefix="ray", dir="/tmp")
    errors: dict[str, str] = {}
    for name in ("inline", "local", "ray"):
        with ResearchContext.open(
            config.source, settings=settings, db=f"sqlite:///{scratch / name}.db"
        ) as ctx:
            import time

            started = time.perf_counter()
            try:
                executor = open_executor(name, registry_url=ctx.registry_url, threads=1, ray_temp_dir=ray_dir)
            except Exception as exc:  # a local Ray that cannot start on an overloaded machine
                errors[name] = f"{type(exc).__name__}: {exc}"
                log.error("%s could not start: %s", name, exc)
                continue
            opened = time.perf_counter() - started
            try:
                result = run_rolling(config, ctx, executor, out_root=scratch / name)
            finally:
                executor.close()
        timings[name] = {**result.timings, "executor_start": round(opened, 3)}
        preds[name] = pl.read_parquet(result.out_dir / "predictions.parquet")
        comparison = result.comparison
        log.info("%s: %s", name, timings[name])
    load["loadavg_after"] = os.getloadavg()
    same = all(preds[n].equals(preds["inline"]) for n in ("local", "ray"))
    if "ray" in errors:
        timings["ray"] = {"tasks": float("nan")}
        preds["ray"] = preds["inline"].clear()
    seq, pool, ray = (timings[n]["tasks"] for n in ("inline", "local", "ray"))
    overhead = ray / pool - 1
    common = {
        "errors": errors,
        "windows": len(windows),
        "tasks": len(windows) + 1,
        "identical_predictions": same,
        **load,
    }
    return [
        Result(
            f"rolling {len(windows)} windows: local pool (2 workers) vs sequential",
            pool,
            "sequential (inline)",
            seq,
            GOAL_SPEEDUP,
            {**common, "timings": timings["local"]},
        ),
        Result(
            f"rolling {len(windows)} windows: Ray local vs sequential",
            ray,
            "sequential (inline)",
            seq,
            GOAL_SPEEDUP,
            {
                **common,
                "timings": timings["ray"],
                "ray_overhead_vs_pool": round(overhead, 3),
                "goal_ray_overhead": GOAL_RAY_OVERHEAD,
                "goal_met": overhead <= GOAL_RAY_OVERHEAD and same,
            },
        ),
        Result(
            "rolling vs static: quality on the same test span",
            timings["inline"]["total"],
            "static model",
            extra={
                "comparison": comparison,
                "pyqlib": "not run: qlib.contrib.rolling needs its mlflow experiment set-up; not measured",
            },
        ),
    ]
