"""Suite ``rolling``: rolling LightGBM on CSI300 over the real Qlib store, sequential vs local pool vs Ray,
and pyqlib's own rolling baseline on the same windows.

One rolling workflow (the Qlib benchmark's LightGBM Alpha158 config, 20-day step, sliding, as
``examples/benchmarks_dynamic``): full = train 2010–2014, valid 2015–2016, test 2017-01 → 2020-08
(about 43 windows); ``--quick`` = train 2016–2017, valid 2018-H1, test 2018-H2 (about 6 windows).
``HQ_BENCH_ROLLING_WINDOWS=N`` keeps the first N windows' test span (a documented subset of the full run).

Each executor runs the same tasks (1 LightGBM thread each, so all three give the same predictions,
checked) against a fresh registry; the features are computed once before (feature cache), so the
timings compare the training phase (``tasks``: every window and the static model). The executors run
in rounds (``HQ_BENCH_ROLLING_ROUNDS``; 3 quick, 1 full), each round in another order, and each
executor's best round counts: the machine is shared, so a burst of load hits one round of one executor,
not all. Goals: ≥ 1.7× over the sequential run (``inline``) for both the local pool and Ray on 2 cores;
Ray's overhead against the pool ≤ 15 %. Each executor's record carries where its tasks' seconds went
(the worker's phases: open, load, fit, score) and the CPU seconds of the driver, of the worker processes
and of Ray's own processes (GCS, raylet, agents) during the run: ``ray_cpu_overhead_vs_pool`` compares
the CPU both spent, a figure that others' load on a shared machine disturbs far less than wall time.

pyqlib's baseline runs in its own process: ``qlib.contrib.rolling``'s ``Rolling`` (handler cached once,
``RollingGen`` with the same step, sliding, ``trunc_days`` 2 = our one-day gap, ``TrainerR`` one window
after another, ``RollingEnsemble``), LightGBM with the same parameters and seed and all the cores'
threads (Qlib's trainer runs one task at a time). Its time over ours is the ratio. ``HQ_BENCH_ROLLING_QLIB=0``
skips it (recorded). The quality block compares the stitched rolling series with the static model on
the same test span: IC, Rank IC, annualised excess return with cost, IR.
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

from common import REPO, Result, data_root, work_dir

log = logging.getLogger("bench.rolling")

FULL = {"train": "2010-01-01:2014-12-31", "valid": "2015-01-01:2016-12-31", "test": "2017-01-01:2020-08-01"}
QUICK = {"train": "2016-01-01:2017-12-31", "valid": "2018-01-01:2018-06-30", "test": "2018-07-01:2018-12-31"}
STEP = 20
GOAL_SPEEDUP = 1.7
GOAL_RAY_OVERHEAD = 0.15
EXECUTORS = ("inline", "local", "ray")


def _workflow(path: Path, segments: dict[str, str], runs: Path) -> Path:
    qlib = data_root() / "qlib_cn"
    path.write_text(
        f"""source: qlib:{qlib}
universe: csi300
model: {{preset: qlib-lgb-alpha158, seed: 0, num_threads: 1}}
segments: {{train: "{segments["train"]}", valid: "{segments["valid"]}", test: "{segments["test"]}"}}
strategy: {{topk: 50, n_drop: 5}}
backtest: {{benchmark: SH000300, open_cost: 0.0005, close_cost: 0.0015, min_cost: 5}}
rolling: {{step: {STEP}, mode: sliding}}
outputs: {{dir: {runs}, report: false}}
"""
    )
    return path


def _subset(segments: dict[str, str], keep: int | None) -> dict[str, str]:
    """``segments`` with the test span cut to its first ``keep`` windows (``None``: all)."""
    if keep is None:
        return segments
    days = (data_root() / "qlib_cn" / "calendars" / "day.txt").read_text().split()
    start, end = segments["test"].split(":")
    test = [d for d in days if start <= d <= end]
    last = test[min(len(test), keep * STEP) - 1]
    return {**segments, "test": f"{start}:{last}"}


def _env_int(name: str, default: int | None) -> int | None:
    value = os.environ.get(name)
    return int(value) if value else default


def _process_cpu(root: int) -> dict[str, float]:
    """CPU seconds (user + system) of ``root``'s descendants: Ray's own processes, and task workers."""
    import psutil

    me = psutil.Process(root)
    times = me.cpu_times()
    out = {"driver": times.user + times.system, "workers": 0.0, "ray_system": 0.0}
    children = me.children(recursive=True)
    for child in children:
        try:
            times = child.cpu_times()
            title = " ".join(child.cmdline())
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        used = times.user + times.system
        is_worker = title.startswith("ray::") or "multiprocessing" in title
        out["workers" if is_worker else "ray_system"] += used
    return out


def _one(name: str, config: Any, settings: Any, scratch: Path, round_: int, ray_dir: str) -> dict[str, Any]:
    """One rolling run on executor ``name`` against a fresh registry: timings, phases, predictions."""
    import polars as pl

    from hikyuu_qlib.executors import open_executor
    from hikyuu_qlib.research import ResearchContext
    from hikyuu_qlib.workflow.rolling import run_rolling

    tag = f"{name}-{round_}"
    with ResearchContext.open(config.source, settings=settings, db=f"sqlite:///{scratch / tag}.db") as ctx:
        started = time.perf_counter()
        executor = open_executor(name, registry_url=ctx.registry_url, threads=1, ray_temp_dir=ray_dir)
        opened = time.perf_counter() - started
        before = _process_cpu(os.getpid())
        try:
            result = run_rolling(config, ctx, executor, out_root=scratch / tag)
            after = _process_cpu(os.getpid())
        finally:
            executor.close()
    cpu = {k: round(after[k] - before[k], 2) for k in after}
    count = len(result.windows) + 1
    means = {k: round(v / count, 3) for k, v in result.task_seconds.items()}
    return {
        "timings": {**result.timings, "executor_start": round(opened, 3)},
        "task_mean_s": means,
        "cpu_s_during_run": cpu,
        "preds": pl.read_parquet(result.out_dir / "predictions.parquet"),
        "comparison": result.comparison,
        "windows": [w["test"] for w in result.windows],
    }


def run(quick: bool) -> list[Result]:
    from hikyuu_qlib.domain import DateRange
    from hikyuu_qlib.research import ResearchContext
    from hikyuu_qlib.settings import Settings
    from hikyuu_qlib.workflow.config import load_workflow
    from hikyuu_qlib.workflow.rolling import plan_windows
    from hikyuu_qlib.workflow.tasks import shared_features

    keep = _env_int("HQ_BENCH_ROLLING_WINDOWS", None)
    rounds = _env_int("HQ_BENCH_ROLLING_ROUNDS", 3 if quick else 1) or 1
    segments = _subset(QUICK if quick else FULL, keep)
    home = work_dir() / "rolling-home"
    scratch = Path(tempfile.mkdtemp(prefix="bench-rolling-", dir=work_dir()))
    config = load_workflow(_workflow(scratch / "rolling.yaml", segments, scratch / "runs"))
    settings = Settings(home=home)
    load: dict[str, Any] = {"loadavg_before": os.getloadavg(), "cpus": os.cpu_count()}
    with ResearchContext.open(config.source, settings=settings, db=f"sqlite:///{scratch / 'warm.db'}") as ctx:
        windows = plan_windows(config, ctx)
        start = min(windows[0].segments.span().start, config.segments.span().start)
        shared_features(ctx, config, DateRange(start, windows[-1].test.end))
    log.info("%d windows (test %s); features warm; %d round(s)", len(windows), segments["test"], rounds)
    ray_dir = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: Ray's socket paths have a length limit
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in EXECUTORS}
    errors: dict[str, str] = {}
    for round_ in range(rounds):
        order = EXECUTORS[round_ % 3 :] + EXECUTORS[: round_ % 3]
        for name in order:
            try:
                outcome = _one(name, config, settings, scratch, round_, ray_dir)
            except Exception as exc:  # a local Ray that cannot start on an overloaded machine
                errors[f"{name} round {round_}"] = f"{type(exc).__name__}: {exc}"
                log.error("%s failed: %s", name, exc)
                continue
            outcome["round"] = round_
            outcome["loadavg_after"] = os.getloadavg()
            runs[name].append(outcome)
            log.info("round %d %s: tasks %.1fs, per task %s, cpu %s", round_, name,
                     outcome["timings"]["tasks"], outcome["task_mean_s"], outcome["cpu_s_during_run"])  # fmt: skip
    load["loadavg_after"] = os.getloadavg()
    best = {n: min(r, key=lambda o: o["timings"]["tasks"]) for n, r in runs.items() if r}
    reference = best["inline"]["preds"]
    same = {n: bool(o["preds"].equals(reference)) for n, o in best.items()}
    seconds = {n: o["timings"]["tasks"] for n, o in best.items()}
    every = {n: [o["timings"]["tasks"] for o in r] for n, r in runs.items()}
    seq = seconds["inline"]
    pool = seconds.get("local", float("nan"))
    ray = seconds.get("ray", float("nan"))
    overhead = ray / pool - 1

    def started(
        name: str,
    ) -> float:  # the tasks and the executor's start (Ray's init; the pool starts lazily)
        o = best.get(name)
        return o["timings"]["tasks"] + o["timings"]["executor_start"] if o else float("nan")

    overhead_with_start = started("ray") / started("local") - 1

    def cpu(name: str) -> float:  # CPU seconds of the whole run (driver, workers, Ray's own processes)
        o = best.get(name)
        return sum(o["cpu_s_during_run"].values()) if o else float("nan")

    cpu_overhead = cpu("ray") / cpu("local") - 1
    common: dict[str, Any] = {
        "errors": errors,
        "windows": len(windows),
        "tasks": len(windows) + 1,
        "test_span": segments["test"],
        "subset": None if keep is None else f"the first {keep} windows of the full test span",
        "rounds": rounds,
        "tasks_s_every_round": every,
        "identical_predictions": all(same.values()) and len(same) == len(EXECUTORS),
        **load,
    }

    def record(name: str) -> dict[str, Any]:
        o = best[name]
        return {k: o[k] for k in ("timings", "task_mean_s", "cpu_s_during_run", "round", "loadavg_after")}

    qlib = _qlib_baseline(segments, scratch, len(windows)) if os.environ.get("HQ_BENCH_ROLLING_QLIB", "1") != "0" \
        else {"error": "skipped (HQ_BENCH_ROLLING_QLIB=0)"}  # fmt: skip
    results = [
        Result(
            f"rolling {len(windows)} windows: local pool (2 workers) vs sequential",
            pool,
            "sequential (inline)",
            seq,
            GOAL_SPEEDUP,
            {**common, "local": record("local") if "local" in best else None, "inline": record("inline")},
        ),
        Result(
            f"rolling {len(windows)} windows: Ray local vs sequential",
            ray,
            "sequential (inline)",
            seq,
            GOAL_SPEEDUP,
            {
                **common,
                "ray": record("ray") if "ray" in best else None,
                "ray_overhead_vs_pool": round(overhead, 3),
                "ray_overhead_vs_pool_with_start": round(overhead_with_start, 3),
                "ray_cpu_overhead_vs_pool": round(cpu_overhead, 3),  # less sensitive to others' load
                "goal_ray_overhead": GOAL_RAY_OVERHEAD,
                "goal_met": overhead <= GOAL_RAY_OVERHEAD and common["identical_predictions"],
            },
        ),
    ]
    if "seconds" in qlib:
        ours_best = min(v for v in (pool, ray, seq) if v == v)  # NaN: an executor that failed
        ours_preds = best["inline"]["preds"]
        qlib["ours_pred_rows"] = ours_preds.height
        qlib["ours_pred_days"] = ours_preds["datetime"].n_unique()
        qlib["ours_first_last_test"] = [best["inline"]["windows"][0], best["inline"]["windows"][-1]]
        results.append(
            Result(
                f"rolling {len(windows)} windows, training phase: ours (best executor) vs pyqlib Rolling (TrainerR)",
                ours_best,
                "pyqlib qlib.contrib.rolling Rolling, training phase (handler excluded)",
                qlib["stages"]["train_s"],
                extra={
                    **common,
                    "pyqlib": qlib,
                    "ours_s": seconds,
                    "like_for_like": "both exclude building the features (ours: the warm feature cache; "
                    "pyqlib: its cached handler, built in stages.handler_s)",
                    "ratio_vs_sequential": round(qlib["stages"]["train_s"] / seq, 3),
                    "ratio_pyqlib_total_vs_ours_tasks": round(qlib["seconds"] / ours_best, 3),
                },
            )
        )
    results.append(
        Result(
            "rolling vs static: quality on the same test span",
            best["inline"]["timings"]["total"],
            "static model",
            extra={
                "comparison": best["inline"]["comparison"],
                "pyqlib": qlib if "seconds" not in qlib else "see the pyqlib result",
            },
        )
    )
    return results


# --- pyqlib's rolling, in its own process ----------------------------------------------------------------


def _qlib_baseline(segments: dict[str, str], scratch: Path, windows: int) -> dict[str, Any]:
    """Run pyqlib's rolling in a fresh process; its JSON (seconds, stages, windows), or why it did not run."""
    tmp = scratch / "pyqlib"
    tmp.mkdir()
    args = [sys.executable, __file__, "qlib", str(data_root() / "qlib_cn"), json.dumps(segments), str(tmp)]
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "MLFLOW_ALLOW_FILE_STORE": "true"}
    try:
        proc = subprocess.run(args, cwd=tmp, env=env, capture_output=True, text=True, timeout=4 * 3600)
    except subprocess.TimeoutExpired:
        return {"error": "pyqlib's rolling did not finish within 4 hours"}
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-5:]
        log.error("pyqlib rolling failed: %s", "\n".join(tail))
        return {"error": f"pyqlib's rolling failed (exit {proc.returncode}): {' | '.join(tail)}"}
    doc: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    doc["same_window_count"] = doc["windows"] == windows
    log.info("pyqlib rolling: %s", doc)
    return doc


def _qlib_worker(qlib_dir: str, segments_json: str, tmp: str) -> dict[str, Any]:
    spans = {k: v.split(":") for k, v in json.loads(segments_json).items()}
    began = time.perf_counter()
    import qlib
    import yaml
    from qlib.contrib.rolling.base import Rolling
    from qlib.workflow import R
    from qlib.workflow.task.gen import RollingGen, task_generator

    from hikyuu_qlib.modelling.presets import get_preset
    from hikyuu_qlib.modelling.qlib_form import from_qlib

    threads = os.cpu_count() or 1
    qlib.init(
        provider_uri=qlib_dir,
        region="cn",
        exp_manager={
            "class": "MLflowExpManager",
            "module_path": "qlib.workflow.expm",
            "kwargs": {"uri": f"file:{tmp}/mlruns", "default_exp_name": "Experiment"},
        },
    )
    preset = get_preset("qlib-lgb-alpha158")
    params = preset.lgb_params(seed=0, num_threads=threads)
    params.pop("objective")
    params.pop("verbosity")
    task = {
        "model": {
            "class": "LGBModel",
            "module_path": "qlib.contrib.model.gbdt",
            "kwargs": {
                "loss": "mse",
                "early_stopping_rounds": preset.early_stopping_rounds,
                "num_boost_round": preset.num_boost_round,
                **params,
            },
        },
        "dataset": {
            "class": "DatasetH",
            "module_path": "qlib.data.dataset",
            "kwargs": {
                "handler": {
                    "class": "Alpha158",
                    "module_path": "qlib.contrib.data.handler",
                    "kwargs": {
                        "start_time": spans["train"][0],
                        "end_time": spans["test"][1],
                        "fit_start_time": spans["train"][0],
                        "fit_end_time": spans["train"][1],
                        "instruments": "csi300",
                    },
                },
                "segments": {k: list(v) for k, v in spans.items()},
            },
        },
        "record": [{"class": "SignalRecord", "module_path": "qlib.workflow.record_temp"}],
    }
    conf = Path(tmp) / "rolling_conf.yaml"
    conf.write_text(yaml.safe_dump({"task": task}))
    stages: dict[str, float] = {"import_init_s": time.perf_counter() - began}

    class SlidingRolling(Rolling):  # type: ignore[misc]
        """Qlib's Rolling with sliding windows (its default is expanding), as our benchmark workflow."""

        def get_task_list(self) -> list[dict[str, Any]]:
            mark = time.perf_counter()
            base = self.basic_task()  # builds (and caches) the handler once for every window
            stages["handler_s"] = time.perf_counter() - mark
            tasks = task_generator(
                base, RollingGen(step=self.step, rtype=RollingGen.ROLL_SD, trunc_days=self.horizon + 1)
            )
            for t in tasks:
                t["record"] = ["qlib.workflow.record_temp.SignalRecord"]
            self.tasks = tasks
            return list(tasks)

    rolling = SlidingRolling(conf_path=str(conf), exp_name="bench-rolling", horizon=1, step=STEP)
    mark = time.perf_counter()
    rolling.run()
    stages["rolling_run_s"] = time.perf_counter() - mark
    stages["train_s"] = stages["rolling_run_s"] - stages["handler_s"]
    seconds = time.perf_counter() - began
    pred = R.get_recorder(experiment_name="bench-rolling", recorder_id=rolling._rid).load_object("pred.pkl")
    preds = from_qlib(pred)
    preds.write_parquet(Path(tmp) / "qlib_rolling.parquet")
    tests = [t["dataset"]["kwargs"]["segments"]["test"] for t in rolling.tasks]
    return {
        "seconds": round(seconds, 3),
        "stages": {k: round(v, 3) for k, v in stages.items()},
        "windows": len(rolling.tasks),
        "first_test": [str(x) for x in tests[0]],
        "last_test": [str(x) for x in tests[-1]],
        "pred_rows": preds.height,
        "pred_days": preds["datetime"].n_unique(),
        "lightgbm_threads": threads,
        "note": "Qlib's Rolling builds the Alpha158 handler once over the whole span and caches it (a pickle); "
        "each window's dataset is sliced from it and its model trained by TrainerR, one window after another",
    }


if __name__ == "__main__" and len(sys.argv) > 1 and sys.argv[1] == "qlib":
    sys.stdout.write(json.dumps(_qlib_worker(*sys.argv[2:5]), default=str) + "\n")
    sys.stdout.flush()
