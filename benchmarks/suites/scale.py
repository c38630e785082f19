"""Suite ``scale``: the whole market in bounded memory, on a generated whole-market Qlib store.

The store comes from ``benchmarks/make_qlib_market_store.py`` (built once, reused: ``$HQ_BENCH_STORE``
or ``~/.cache/hikyuu_qlib/bench/qlib_market``): ≥ 5,000 instruments, 2010–2026, ≥ 15 M rows, ``$change``
in percent, no vwap, delisted codes, suspensions.

1. Alpha158 + label over every instrument, 2010–2026, as date blocks on disk (budget 2 GB): time, rows,
   peak RSS (goal ≤ 2048 MB).
2. The whole pipeline, ``hq run`` on every instrument with train 2010–2014 / valid 2015–2016 / test
   2017–2020 and ``--memory-budget 4GB``: total time, each stage's time and peak RSS, test IC and Rank
   IC (goal: peak RSS ≤ 4096 MB).
3. pyqlib's Alpha158 handler over every instrument of the same store, in a child process under an RSS
   watchdog (killed above ``HQ_BENCH_QLIB_CAP_MB``, default 8192, or after ``HQ_BENCH_QLIB_TIMEOUT_S``,
   default 1800 s): its peak RSS, or the RSS and time at which it was stopped.
4. In memory against bounded on CSI300 of the real store, 2010–2020: ``compute_features`` against
   block sets built with a budget that forces several groups and blocks (goal: bounded at most 2× the
   time, ratio ≥ 0.5).

Each measurement runs in a fresh process whose peak RSS (with its children) is polled with psutil.
``--quick``: shorter spans, 1,500 instruments, no pyqlib run. ``HQ_BENCH_SCALE_ROWS`` picks the rows to run
(comma-separated, in any order: ``features,pipeline,qlib,csi300,csi300-pipeline``; all by default): each
row stands alone.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import REPO, Result, data_root
from make_qlib_market_store import DEFAULT_STOCKS, default_out, ensure_store
from workers import measure, serve_worker

log = logging.getLogger("bench.scale")

FULL = {
    "stocks": DEFAULT_STOCKS,
    "all": ("2010-01-01", "2026-12-31"),
    "segments": {
        "train": "2010-01-01:2014-12-31",
        "valid": "2015-01-01:2016-12-31",
        "test": "2017-01-01:2020-12-31",
    },
    "csi300": ("2010-01-01", "2020-12-31"),
    "qlib": True,
}
QUICK = {
    "stocks": 1500,
    "all": ("2020-01-01", "2026-12-31"),
    "segments": {
        "train": "2018-01-01:2019-12-31",
        "valid": "2020-01-01:2020-06-30",
        "test": "2020-07-01:2021-06-30",
    },
    "csi300": ("2018-01-01", "2020-12-31"),
    "qlib": False,
}
FEATURES_GOAL_MB = 2048
# under the in-memory estimate of CSI300 2010–2020 (~0.8 M member-days), so ``hq run`` takes the bounded path
CSI300_BOUNDED_BUDGET = "2GB"
PIPELINE_GOAL_MB = 4096


def run(quick: bool) -> list[Result]:
    cfg = QUICK if quick else FULL
    store = ensure_store(
        cfg["stocks"], default_out() if not quick else default_out().with_name("qlib_market_quick")
    )
    params = json.loads((store / "params.json").read_text())
    results: list[Result] = []
    rows = _rows()
    start, end = cfg["all"]
    if "features" in rows:
        results.append(_features_row(store, start, end, params))
    if "pipeline" in rows:
        results.append(_pipeline_row(store, cfg["segments"]))
    if cfg["qlib"] and "qlib" in rows:
        results.append(_qlib_row(store, start, end))
    if "csi300" in rows:
        results.append(_csi300_row(*cfg["csi300"]))
    if "csi300-pipeline" in rows:
        results.append(_csi300_pipeline_row(cfg["segments"]))
    return results


ROWS = ("features", "pipeline", "qlib", "csi300", "csi300-pipeline")


def _rows() -> set[str]:
    picked = {
        r.strip() for r in os.environ.get("HQ_BENCH_SCALE_ROWS", ",".join(ROWS)).split(",") if r.strip()
    }
    unknown = picked - set(ROWS)
    if unknown:
        raise SystemExit(f"HQ_BENCH_SCALE_ROWS: unknown rows {sorted(unknown)} (known: {', '.join(ROWS)})")
    return picked


def _features_row(store: Path, start: str, end: str, params: dict[str, Any]) -> Result:
    with tempfile.TemporaryDirectory(prefix="hq-bench-scale-") as tmp:
        ours = _measure("ours_blocks", str(store), start, end, "2GB", tmp)
    return Result(
        f"alpha158+label all instruments {start[:4]}-{end[:4]} (bounded, budget 2GB)",
        ours["seconds"],
        f"goal peak RSS <= {FEATURES_GOAL_MB} MB",
        extra={**ours, "store": params, "goal_met": ours["peak_rss_mb"] <= FEATURES_GOAL_MB},
    )


def _pipeline_row(store: Path, segments: dict[str, str]) -> Result:
    with tempfile.TemporaryDirectory(prefix="hq-bench-scale-run-") as tmp:
        ours = _measure("ours_run", str(store), json.dumps(segments), "4GB", tmp)
    return Result(
        f"pipeline all instruments hq run (test {segments['test'][:4]}-{segments['test'][-10:-6]}, budget 4GB)",
        ours["seconds"],
        f"goal peak RSS <= {PIPELINE_GOAL_MB} MB",
        extra={**ours, "goal_met": ours["peak_rss_mb"] <= PIPELINE_GOAL_MB},
    )


def _qlib_row(store: Path, start: str, end: str) -> Result:
    cap = int(os.environ.get("HQ_BENCH_QLIB_CAP_MB", "8192"))
    timeout = float(os.environ.get("HQ_BENCH_QLIB_TIMEOUT_S", "1800"))
    anchor = _measure("qlib_alpha158", str(store), start, end, cap_mb=cap, timeout_s=timeout, allow_fail=True)
    return Result(
        f"pyqlib Alpha158 handler all instruments {start[:4]}-{end[:4]} (RSS cap {cap} MB)",
        anchor["seconds"],
        "pyqlib under an RSS watchdog",
        extra=anchor,
    )


def _csi300_pipeline_row(segments: dict[str, str]) -> Result:
    """The whole pipeline (``hq run``) on CSI300 of the real store, in memory (a budget it fits) and on the
    bounded path (a budget under the in-memory estimate): the time ratio, and the same model and figures."""
    qlib_dir = str(data_root() / "qlib_cn")
    runs = {}
    for label, budget in (("in_memory", "16GB"), ("bounded", CSI300_BOUNDED_BUDGET)):
        with tempfile.TemporaryDirectory(prefix=f"hq-bench-scale-csi-run-{label}-") as tmp:
            runs[label] = _measure("ours_run_csi300", qlib_dir, json.dumps(segments), budget, tmp)
    memory, bounded = runs["in_memory"], runs["bounded"]
    same = all(memory[k] == bounded[k] for k in ("test_ic", "test_rank_ic", "test_rows", "best_iteration"))
    return Result(
        f"pipeline csi300 hq run bounded (budget {CSI300_BOUNDED_BUDGET}) vs in memory",
        bounded["seconds"],
        "hq run in memory (budget 16GB)",
        memory["seconds"],
        goal_ratio=0.5,
        extra={"bounded": bounded, "in_memory": memory, "same_model_and_figures": same},
    )


def _csi300_row(start: str, end: str) -> Result:
    qlib_dir = str(data_root() / "qlib_cn")
    memory = _measure("ours_memory", qlib_dir, start, end)
    with tempfile.TemporaryDirectory(prefix="hq-bench-scale-csi-") as tmp:
        bounded = _measure("ours_blocks_csi300", qlib_dir, start, end, "1GB", tmp)
    return Result(
        f"alpha158+label csi300 {start[:4]}-{end[:4]} bounded (budget 1GB) vs in memory",
        bounded["seconds"],
        "in memory (compute_features)",
        memory["seconds"],
        goal_ratio=0.5,
        extra={"bounded": bounded, "in_memory": memory},
    )


# --- the parent: fresh processes, peak RSS, a watchdog ---------------------------------------------------


def _measure(
    kind: str, *args: str, cap_mb: int | None = None, timeout_s: float | None = None, allow_fail: bool = False
) -> dict[str, Any]:
    """Run one worker in a fresh process: its JSON plus the peak RSS of its tree (see :func:`workers.measure`)."""
    return measure(__file__, kind, *args, log=log, cap_mb=cap_mb, timeout_s=timeout_s, allow_fail=allow_fail)


# --- the workers ---------------------------------------------------------------------------------------


def _ours_blocks(
    qlib_dir: str, start: str, end: str, budget: str, tmp: str, universe: str = "all"
) -> dict[str, Any]:
    from hikyuu_qlib.domain import DateRange
    from hikyuu_qlib.factors.chunked import build_feature_blocks
    from hikyuu_qlib.factors.universe import Universe
    from hikyuu_qlib.memory import MemoryBudget
    from hikyuu_qlib.stores.qlib import QlibStore

    began = time.perf_counter()
    store = QlibStore.open(qlib_dir)
    blocks = build_feature_blocks(
        store,
        Universe.from_store(store, universe),
        DateRange.of(start, end),
        Path(tmp),
        budget=MemoryBudget.of(budget),
    )
    return {
        "seconds": time.perf_counter() - began,
        "rows": blocks.rows,
        "codes": blocks.meta["codes"],
        "groups": blocks.meta["groups"],
        "blocks": len(blocks.blocks),
        "disk_mb": round(blocks.bytes / 2**20, 1),
    }


def _ours_blocks_csi300(qlib_dir: str, start: str, end: str, budget: str, tmp: str) -> dict[str, Any]:
    return _ours_blocks(qlib_dir, start, end, budget, tmp, "csi300")


def _ours_memory(qlib_dir: str, start: str, end: str) -> dict[str, Any]:
    from hikyuu_qlib.domain import DateRange
    from hikyuu_qlib.factors.pipeline import compute_features
    from hikyuu_qlib.factors.universe import Universe
    from hikyuu_qlib.stores.qlib import QlibStore

    began = time.perf_counter()
    store = QlibStore.open(qlib_dir)
    frame = compute_features(store, Universe.from_store(store, "csi300"), DateRange.of(start, end))
    return {"seconds": time.perf_counter() - began, "rows": frame.height}


def _ours_run(qlib_dir: str, segments: str, budget: str, tmp: str, universe: str = "all") -> dict[str, Any]:
    spans = json.loads(segments)
    workflow = Path(tmp) / f"{universe}.yaml"
    text = (REPO / "examples" / "workflow_lightgbm_alpha158_csi300.yaml").read_text()
    workflow.write_text(text.replace("universe: csi300", f"universe: {universe}"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("HQ_")}
    env.update(
        HQ_QLIB_DIR=qlib_dir, HQ_TRAIN=spans["train"], HQ_VALID=spans["valid"], HQ_TEST=spans["test"],
        HQ_RUNS_DIR=str(Path(tmp) / "runs"), HQ_HOME=str(Path(tmp) / "home"),
        HQ_DATABASE_URL=f"sqlite:///{Path(tmp) / 'registry.db'}",
    )  # fmt: skip
    began = time.perf_counter()
    # stderr passes through: a long run's log (stages, boosting rounds) shows while it runs
    proc = subprocess.run(
        [sys.executable, "-m", "hikyuu_qlib", "run", str(workflow), "--format", "json", "--memory-budget", budget],
        stdout=subprocess.PIPE, text=True, env=env, cwd=REPO,
    )  # fmt: skip
    seconds = time.perf_counter() - began
    if proc.returncode != 0:
        raise SystemExit(proc.returncode)
    doc = json.loads(proc.stdout)
    metrics = json.loads((Path(doc["out_dir"]) / "metrics.json").read_text())
    test = metrics["model"]["test"]
    return {
        "seconds": seconds,
        "test_ic": test["ic"],
        "test_rank_ic": test["rank_ic"],
        "test_rows": test["rows"],
        "best_iteration": metrics["model"]["best_iteration"],
        "stages_s": metrics["timings"],
        "stages_peak_rss_mb": metrics["memory"]["peak_rss_mb"],
        "path": metrics["memory"]["path"],
        "segments": spans,
    }


def _ours_run_csi300(qlib_dir: str, segments: str, budget: str, tmp: str) -> dict[str, Any]:
    return _ours_run(qlib_dir, segments, budget, tmp, "csi300")


def _qlib_alpha158(qlib_dir: str, start: str, end: str) -> dict[str, Any]:
    began = time.perf_counter()
    import qlib
    from qlib.contrib.data.handler import Alpha158

    qlib.init(provider_uri=qlib_dir, region="cn")
    handler = Alpha158(
        instruments="all", start_time=start, end_time=end, fit_start_time=start, fit_end_time=end
    )
    return {"seconds": time.perf_counter() - began, "rows": len(handler._data)}


WORKERS = {
    "ours_blocks": _ours_blocks,
    "ours_blocks_csi300": _ours_blocks_csi300,
    "ours_memory": _ours_memory,
    "ours_run": _ours_run,
    "ours_run_csi300": _ours_run_csi300,
    "qlib_alpha158": _qlib_alpha158,
}

if __name__ == "__main__" and len(sys.argv) > 2 and sys.argv[1] == "worker":
    serve_worker(WORKERS, sys.argv)
