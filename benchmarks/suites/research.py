"""Suite ``research``: Alpha158, Alpha360 and the whole research pipeline, ours vs pyqlib, on the real Qlib
store.

1. Alpha158 + label on CSI300 2010–2020: ours (``compute_features``, no feature cache, then the learn
   processors) vs pyqlib's ``Alpha158`` handler with its default processors (infer none; learn
   DropnaLabel, CSZScoreNorm(label)) — the LightGBM benchmark config. Goal ratio ≥ 20, peak RSS ≤ Qlib's.
2. The whole pipeline (load → factors → train → predict the test segment), same hyperparameters, seed and
   thread count: ours (``train_and_register`` into a temporary SQLite registry, then ``Predictor``) vs
   Qlib (``Alpha158`` + ``DatasetH`` + ``LGBModel.fit`` + ``predict``). Test IC / Rank IC of both and
   their differences (goal ±0.003), and how close the two sets of predictions are. Goal ratio ≥ 5.
3. Alpha158 on every instrument of the store (``all``), 2010–2026: time and peak RSS (goal ≤ 4096 MB).
4. Alpha360 + label on CSI300 2018–2020: ours (``compute_features``, then Qlib's default processors of
   the handler) vs pyqlib's ``Alpha360`` handler with those processors (infer ProcessInf, ZScoreNorm,
   Fillna; learn DropnaLabel, CSZScoreNorm(label)). Goal ratio ≥ 20.
5. Parity of the model zoo: for each preset whose pyqlib model exists (XGBModel, CatBoostModel,
   LinearModel, DEnsembleModel, DNNModelPytorch for the MLP), our ``train_and_register`` against pyqlib's
   model on its own Alpha158 handler with the benchmark configuration's processors, the same segments,
   parameters, seed and thread count: test IC / Rank IC and their differences (goal ±0.003; ±0.006 for
   the MLP — see ``MLP_TOLERANCE``). CatBoost runs the Bernoulli bootstrap on both sides (Qlib's
   configuration asks for Poisson, which CatBoost runs on GPU only). pyqlib's DEnsembleModel keeps the
   features it selects as a set, so their column order (and LightGBM's column sampling with it) follows
   the string hash: the row also reports pyqlib's model with those features in the frame's order, as ours
   keeps them (``qlib_feature_order_fixed``), and every worker runs with ``PYTHONHASHSEED=0`` unless set.
   Each row lists the parameters as each library saw them where they differ (``library_param_diff``).
   A fit our family refuses (the MLP on raw Alpha158: zero-volume days put VMA/VSTD near 1e20 and
   overflow BatchNorm's variance, so the network scores every row alike) gives a row with the reason,
   pyqlib's figures and whether pyqlib's model is degenerate too (its BatchNorm running variance, its
   count of distinct test scores): parity then means both degenerate, the ICs (rounding noise) are not
   compared.
6. Quality: every configuration tried (``QUALITY_CONFIGS``), each over ``QUALITY_SEEDS`` seeds (mean ± std
   of every segment metric), the chosen one picked on the valid segment's mean IC alone, then
   backtested on the test segment (TopkDropout(50, 5) against CSI300, with costs): against pyqlib's
   LightGBM baseline (test IC 0.0387, Rank IC 0.0400 on this data), goal test IC ≥ 0.045 and a positive
   annualised excess return with cost.

Each measurement runs in its own fresh process (``python research.py worker KIND …``) whose peak RSS
(with its children: Qlib's joblib workers) is polled with psutil, so the peaks are separate. The
parent reads the bins once first, so both sides find them in the OS page cache, and runs our kernels once on
a short span, so numba's on-disk cache holds them compiled (a cost paid once per install, not per run).
``--quick``: shorter spans everywhere (and fewer seeds, smaller MLP and ensemble budgets).
``HQ_BENCH_RESEARCH_ROWS``: a comma list of the rows to run (alpha158, pipeline, all, alpha360, parity,
quality); default all of them. ``HQ_BENCH_RESEARCH_PARITY``: a comma list of the parity rows' pyqlib kinds
(xgb, catboost, linear, double_ensemble, mlp, mlp_norm); default all. ``HQ_BENCH_QUALITY_SEEDS``: the quality row's
seed count (default ``QUALITY_SEEDS``, ``QUALITY_SEEDS_QUICK`` with ``--quick``);
``HQ_BENCH_QUALITY_CONFIGS``: the labels of the configurations to try, ``;``-separated (default all).
``HQ_BENCH_PARITY_KEEP``: a directory where the parity rows copy both sides' test predictions.
``HQ_BENCH_QLIB_CACHE``: a directory where pyqlib's raw Alpha158 frame is kept and reused by the parity
rows (pyqlib's processors still run per family; pyqlib's times are then not its whole pipeline's).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


from common import Result, data_root
from workers import measure, serve_worker

log = logging.getLogger("bench.research")

FULL = {
    "alpha158": ("2010-01-01", "2020-12-31"),
    "segments": {
        "train": ("2010-01-01", "2014-12-31"),
        "valid": ("2015-01-01", "2016-12-31"),
        "test": ("2017-01-01", "2020-12-31"),
    },
    "all": ("2010-01-01", "2026-12-31"),
    "alpha360": ("2018-01-01", "2020-12-31"),
}
QUICK = {
    "alpha158": ("2019-01-01", "2020-12-31"),
    "segments": {
        "train": ("2016-01-01", "2017-12-31"),
        "valid": ("2018-01-01", "2018-06-30"),
        "test": ("2018-07-01", "2019-06-30"),
    },
    "all": ("2024-01-01", "2026-12-31"),
    "alpha360": ("2020-01-01", "2020-12-31"),
}
SEED = 0
IC_TOLERANCE = 0.003
#: The MLP is stochastic: batches drawn with replacement, dropout and initial weights from the seeded
#: generators match pyqlib's draw for draw, but PyTorch's float sums (BatchNorm, Adam) over 8000 steps of
#: 8192 rows drift apart at float32 rounding, and early stopping may then pick a neighbouring step.
MLP_TOLERANCE = 0.006
MLP_KINDS = ("mlp", "mlp_norm")
RSS_GOAL_MB = 4096
#: Presets with a pyqlib model, as (preset, pyqlib kind).
PARITY = (
    ("qlib-xgb-alpha158", "xgb"),
    ("qlib-catboost-alpha158", "catboost"),
    ("qlib-linear-alpha158", "linear"),
    ("qlib-double-ensemble-alpha158", "double_ensemble"),
    ("qlib-mlp-alpha158", "mlp"),
    ("qlib-mlp-alpha158-norm", "mlp_norm"),
)
#: --quick budgets (the parity of a budget holds as well as the full one's; both sides get the same).
QUICK_OVERRIDES: dict[str, dict[str, Any]] = {
    "qlib-mlp-alpha158": {"max_steps": 400},
    "qlib-mlp-alpha158-norm": {"max_steps": 400},
    "qlib-double-ensemble-alpha158": {"epochs": 10},
}
#: The quality row's configurations: (label, preset, parameter overrides).
QUALITY_CONFIGS: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("lgb preset", "qlib-lgb-alpha158", {}),
    ("lgb lr0.05 leaves64", "qlib-lgb-alpha158", {"learning_rate": 0.05, "num_leaves": 64}),
    (
        "lgb lr0.02 leaves64 ff0.6",
        "qlib-lgb-alpha158",
        {"learning_rate": 0.02, "num_leaves": 64, "colsample_bytree": 0.6},
    ),
    ("xgb preset", "qlib-xgb-alpha158", {}),
    ("catboost preset", "qlib-catboost-alpha158", {}),
    ("double ensemble preset", "qlib-double-ensemble-alpha158", {}),
    ("linear ridge", "qlib-linear-ridge-alpha158", {}),
)
QUALITY_SEEDS = 5
QUALITY_SEEDS_QUICK = 2
BASELINE = {"test_ic": 0.0387, "test_rank_ic": 0.0400, "source": "pyqlib LGBModel, same data and segments"}
QUALITY_GOAL_IC = 0.045


def _quality_configs() -> tuple[tuple[str, str, dict[str, Any]], ...]:
    """``QUALITY_CONFIGS``, or those whose labels ``HQ_BENCH_QUALITY_CONFIGS`` lists (``;``-separated)."""
    chosen = os.environ.get("HQ_BENCH_QUALITY_CONFIGS")
    if not chosen:
        return QUALITY_CONFIGS
    labels = [c.strip() for c in chosen.split(";") if c.strip()]
    unknown = set(labels) - {label for label, _, _ in QUALITY_CONFIGS}
    if unknown:
        raise ValueError(f"unknown quality configuration(s) {sorted(unknown)} in HQ_BENCH_QUALITY_CONFIGS")
    return tuple(c for c in QUALITY_CONFIGS if c[0] in labels)


def _rows() -> set[str]:
    chosen = os.environ.get("HQ_BENCH_RESEARCH_ROWS", "alpha158,pipeline,all,alpha360,parity,quality")
    return {r.strip() for r in chosen.split(",") if r.strip()}


def run(quick: bool) -> list[Result]:
    cfg = QUICK if quick else FULL
    qlib_dir = data_root() / "qlib_cn"
    _warm(qlib_dir)
    rows = _rows()
    results: list[Result] = []
    if rows & {"alpha158", "pipeline", "all", "alpha360"}:
        results += _first_rows(cfg, qlib_dir)
    if "parity" in rows:
        results += _parity_rows(cfg, qlib_dir, quick)
    if "quality" in rows:
        results.append(_quality_row(cfg, qlib_dir, quick))
    return results


def _parity_kinds() -> set[str]:
    chosen = os.environ.get("HQ_BENCH_RESEARCH_PARITY", ",".join(kind for _, kind in PARITY))
    kinds = {k.strip() for k in chosen.split(",") if k.strip()}
    unknown = kinds - {kind for _, kind in PARITY}
    if unknown:
        raise ValueError(f"unknown parity kind(s) {', '.join(sorted(unknown))} in HQ_BENCH_RESEARCH_PARITY")
    return kinds


def _parity_rows(cfg: dict[str, Any], qlib_dir: Path, quick: bool) -> list[Result]:
    results = []
    segs = json.dumps(cfg["segments"])
    test = cfg["segments"]["test"]
    kinds = _parity_kinds()
    for preset, kind in PARITY:
        if kind not in kinds:
            continue
        overrides = json.dumps(QUICK_OVERRIDES.get(preset, {}) if quick else {})
        with tempfile.TemporaryDirectory(prefix="hq-bench-parity-") as tmp:
            ours = _measure("ours_preset", str(qlib_dir), segs, tmp, preset, overrides)
            anchor = _measure("qlib_model", str(qlib_dir), segs, tmp, kind, overrides)
            if "refused" in ours:
                results.append(_refused_row(preset, kind, test, ours, anchor, overrides, cfg))
                continue
            agreement = _agreement(Path(tmp) / "ours.parquet", Path(tmp) / "qlib.parquet")
            keep = os.environ.get("HQ_BENCH_PARITY_KEEP")
            if keep:  # both sides' test predictions, for a closer look
                Path(keep).mkdir(parents=True, exist_ok=True)
                for side in ("ours", "qlib"):
                    shutil.copyfile(Path(tmp) / f"{side}.parquet", Path(keep) / f"{kind}-{side}.parquet")
        tolerance = MLP_TOLERANCE if kind in MLP_KINDS else IC_TOLERANCE
        d_ic, d_ric = ours["ic"] - anchor["ic"], ours["rank_ic"] - anchor["rank_ic"]
        results.append(
            Result(
                f"parity {preset} csi300 (test {test[0][:4]}-{test[1][:4]})",
                ours["seconds"],
                f"pyqlib {anchor['model']}",
                anchor["seconds"],
                extra={
                    "test_ic": ours["ic"],
                    "qlib_test_ic": anchor["ic"],
                    "ic_diff": d_ic,
                    "test_rank_ic": ours["rank_ic"],
                    "qlib_test_rank_ic": anchor["rank_ic"],
                    "rank_ic_diff": d_ric,
                    "tolerance": tolerance,
                    "goal_met": abs(d_ic) <= tolerance and abs(d_ric) <= tolerance,
                    "best_iteration": ours.get("best_iteration"),
                    "qlib_best_iteration": anchor.get("best_iteration"),
                    "overrides": json.loads(overrides),
                    "params": ours.get("params"),
                    **(
                        {
                            "qlib_feature_order_fixed": {
                                **anchor["feature_order_fixed"],
                                "ic_diff": ours["ic"] - anchor["feature_order_fixed"]["ic"],
                                "rank_ic_diff": ours["rank_ic"] - anchor["feature_order_fixed"]["rank_ic"],
                            }
                        }
                        if "feature_order_fixed" in anchor
                        else {}
                    ),
                    "library_param_diff": _param_diff(
                        ours.get("library_params"), anchor.get("library_params")
                    ),
                    **({"qlib_processors": anchor["qlib_processors"]} if "qlib_processors" in anchor else {}),
                    "seed": SEED,
                    "segments": cfg["segments"],
                    "peak_rss_mb": ours["peak_rss_mb"],
                    "qlib_peak_rss_mb": anchor["peak_rss_mb"],
                    **agreement,
                },
            )
        )
    return results


def _quality_row(cfg: dict[str, Any], qlib_dir: Path, quick: bool) -> Result:
    segs = json.dumps(cfg["segments"])
    seeds = int(os.environ.get("HQ_BENCH_QUALITY_SEEDS", QUALITY_SEEDS_QUICK if quick else QUALITY_SEEDS))
    with tempfile.TemporaryDirectory(prefix="hq-bench-quality-") as tmp:
        doc = _measure("ours_quality", str(qlib_dir), segs, tmp, str(seeds), "1" if quick else "0")
    chosen = doc["chosen"]
    test_ic = chosen["test"]["ic"]["mean"]
    excess = chosen["backtest"]["excess_return_with_cost_annualized"]["mean"]
    return Result(
        f"quality: {len(doc['tried'])} configurations x {seeds} seeds, chosen on valid IC",
        doc["seconds"],
        "goal: test IC >= 0.045 and annualised excess return with cost > 0 (baseline pyqlib LightGBM)",
        extra={
            "baseline": BASELINE,
            "tried": doc["tried"],
            "chosen": chosen,
            "goal_ic_met": test_ic is not None and test_ic >= QUALITY_GOAL_IC,
            "goal_excess_met": excess is not None and excess > 0,
            "goal_met": test_ic is not None
            and test_ic >= QUALITY_GOAL_IC
            and excess is not None
            and excess > 0,
            "seeds": seeds,
            "not_tried": [c[0] for c in QUALITY_CONFIGS if c not in _quality_configs()],
            "segments": cfg["segments"],
            "selection": "the configuration with the highest mean valid IC over its seeds; test never used",
        },
    )


def _first_rows(cfg: dict[str, Any], qlib_dir: Path) -> list[Result]:
    rows = _rows()
    results: list[Result] = []
    start, end = cfg["alpha158"]
    if "alpha158" in rows:
        # The kernels are compiled once per install (numba's on-disk cache); the first run after an install
        # pays that compilation (8–12 s), so a short run fills the cache before anything is measured.
        jit_warm = _measure("ours_alpha158", str(qlib_dir), end[:4] + "-10-01", end)
        ours = _measure("ours_alpha158", str(qlib_dir), start, end)
        anchor = _measure("qlib_alpha158", str(qlib_dir), start, end)
        results.append(
            Result(
                f"alpha158+label csi300 {start[:4]}-{end[:4]} (learn processors)",
                ours["seconds"],
                "pyqlib Alpha158 handler (default processors)",
                anchor["seconds"],
                goal_ratio=20,
                extra={
                    "rows": ours["rows"],
                    "qlib_rows": anchor["rows"],
                    "peak_rss_mb": ours["peak_rss_mb"],
                    "qlib_peak_rss_mb": anchor["peak_rss_mb"],
                    "rss_goal_met": ours["peak_rss_mb"] <= anchor["peak_rss_mb"],
                    "feature_cache": "off (cold)",
                    "jit_warm_up_s": round(jit_warm["seconds"], 3),
                },
            )
        )

    if "pipeline" in rows:
        segs = json.dumps(cfg["segments"])
        with tempfile.TemporaryDirectory(prefix="hq-bench-research-") as tmp:
            ours = _measure("ours_pipeline", str(qlib_dir), segs, tmp)
            anchor = _measure("qlib_pipeline", str(qlib_dir), segs, tmp)
            agreement = _agreement(Path(tmp) / "ours.parquet", Path(tmp) / "qlib.parquet")
        d_ic = ours["ic"] - anchor["ic"]
        d_ric = ours["rank_ic"] - anchor["rank_ic"]
        test = cfg["segments"]["test"]
        results.append(
            Result(
                f"pipeline csi300 load+alpha158+lgb train+predict (test {test[0][:4]}-{test[1][:4]})",
                ours["seconds"],
                "pyqlib Alpha158 + DatasetH + LGBModel",
                anchor["seconds"],
                goal_ratio=5,
                extra={
                    "test_ic": ours["ic"],
                    "qlib_test_ic": anchor["ic"],
                    "ic_diff": d_ic,
                    "test_rank_ic": ours["rank_ic"],
                    "qlib_test_rank_ic": anchor["rank_ic"],
                    "rank_ic_diff": d_ric,
                    "ic_within_tolerance": abs(d_ic) <= IC_TOLERANCE and abs(d_ric) <= IC_TOLERANCE,
                    "best_iteration": ours["best_iteration"],
                    "qlib_best_iteration": anchor["best_iteration"],
                    "stages_s": ours["stages"],
                    "qlib_stages_s": anchor["stages"],
                    "peak_rss_mb": ours["peak_rss_mb"],
                    "qlib_peak_rss_mb": anchor["peak_rss_mb"],
                    "num_threads": ours["num_threads"],
                    "seed": SEED,
                    "segments": cfg["segments"],
                    **agreement,
                },
            )
        )

    if "all" in rows:
        start, end = cfg["all"]
        ours = _measure("ours_all", str(qlib_dir), start, end)
        results.append(
            Result(
                f"alpha158+label all instruments {start[:4]}-{end[:4]}",
                ours["seconds"],
                f"goal peak RSS <= {RSS_GOAL_MB} MB",
                extra={
                    "rows": ours["rows"],
                    "codes": ours["codes"],
                    "peak_rss_mb": ours["peak_rss_mb"],
                    "goal_met": ours["peak_rss_mb"] <= RSS_GOAL_MB,
                },
            )
        )

    if "alpha360" in rows:
        start, end = cfg["alpha360"]
        ours = _measure("ours_alpha360", str(qlib_dir), start, end)
        anchor = _measure("qlib_alpha360", str(qlib_dir), start, end)
        results.append(
            Result(
                f"alpha360+label csi300 {start[:4]}-{end[:4]} (default processors)",
                ours["seconds"],
                "pyqlib Alpha360 handler (default processors)",
                anchor["seconds"],
                goal_ratio=20,
                extra={
                    "rows": ours["rows"],
                    "qlib_rows": anchor["rows"],
                    "peak_rss_mb": ours["peak_rss_mb"],
                    "qlib_peak_rss_mb": anchor["peak_rss_mb"],
                    "feature_cache": "off (cold)",
                },
            )
        )
    return results


# --- the parent: fresh processes, peak RSS -------------------------------------------------------------


def _warm(qlib_dir: Path) -> None:
    for path in (qlib_dir / "features").rglob("*.bin"):
        with path.open("rb") as f:
            while f.read(1 << 20):
                pass


def _measure(kind: str, *args: str) -> dict[str, Any]:
    """Run one worker in a fresh process: its JSON plus the peak RSS of its tree (see :func:`workers.measure`)."""
    return measure(__file__, kind, *args, log=log, report_completion=False, hash_seed="0")


def _refused_row(
    preset: str,
    kind: str,
    test: tuple[str, str],
    ours: dict[str, Any],
    anchor: dict[str, Any],
    overrides: str,
    cfg: dict[str, Any],
) -> Result:
    """A parity row whose fit ours refuses: pyqlib's figures, and whether pyqlib's model is degenerate too
    (the MLP: BatchNorm running variance not finite, a handful of distinct test scores). Parity then means
    both sides degenerate; the ICs of a constant predictor are rounding noise and are not compared."""
    both = anchor.get("batchnorm_finite") is False
    return Result(
        f"parity {preset} csi300 (test {test[0][:4]}-{test[1][:4]})",
        ours["seconds"],
        f"pyqlib {anchor['model']}",
        anchor["seconds"],
        extra={
            "refused": ours["refused"],
            "qlib_batchnorm_finite": anchor.get("batchnorm_finite"),
            "qlib_distinct_scores": anchor.get("distinct_scores"),
            "qlib_test_ic": anchor["ic"],
            "qlib_test_rank_ic": anchor["rank_ic"],
            "qlib_best_iteration": anchor.get("best_iteration"),
            "degenerate_both": both,
            "goal_met": both,
            "overrides": json.loads(overrides),
            "seed": SEED,
            "segments": cfg["segments"],
            "peak_rss_mb": ours["peak_rss_mb"],
            "qlib_peak_rss_mb": anchor["peak_rss_mb"],
        },
    )


def _agreement(ours: Path, theirs: Path) -> dict[str, Any]:
    import polars as pl

    a = pl.read_parquet(ours)
    b = pl.read_parquet(theirs)
    both = a.join(b, on=["datetime", "code"], how="inner", suffix="_qlib")
    diff = (both["score"] - both["score_qlib"]).abs()
    return {
        "pred_rows": a.height,
        "qlib_pred_rows": b.height,
        "pred_rows_matched": both.height,
        "pred_max_abs_diff": float(diff.max()),  # type: ignore[arg-type]
        "pred_corr": float(both.select(pl.corr("score", "score_qlib")).item()),
        "distinct_scores": a["score"].n_unique(),
        "qlib_distinct_scores": b["score"].n_unique(),
    }


# --- the workers ---------------------------------------------------------------------------------------


def _ours_alpha158(qlib_dir: str, start: str, end: str) -> dict[str, Any]:
    from hikyuu_qlib.domain import DateRange
    from hikyuu_qlib.factors.pipeline import compute_features
    from hikyuu_qlib.factors.universe import Universe
    from hikyuu_qlib.modelling.dataset import prepare_frame
    from hikyuu_qlib.modelling.presets import qlib_default_learn
    from hikyuu_qlib.stores.qlib import QlibStore

    began = time.perf_counter()
    store = QlibStore.open(qlib_dir)
    dates = DateRange.of(start, end)
    raw = compute_features(store, Universe.from_store(store, "csi300"), dates)
    data = prepare_frame(raw, {"train": dates}, learn=qlib_default_learn())
    return {"seconds": time.perf_counter() - began, "rows": data.infer.height}


def _qlib_alpha158(qlib_dir: str, start: str, end: str) -> dict[str, Any]:
    began = time.perf_counter()
    import qlib
    from qlib.contrib.data.handler import Alpha158

    qlib.init(provider_uri=qlib_dir, region="cn")
    handler = Alpha158(
        instruments="csi300", start_time=start, end_time=end, fit_start_time=start, fit_end_time=end
    )
    return {"seconds": time.perf_counter() - began, "rows": len(handler._data)}


def _ours_pipeline(qlib_dir: str, segments: str, tmp: str) -> dict[str, Any]:
    import polars as pl

    from hikyuu_qlib.domain import DateRange, Segments
    from hikyuu_qlib.factors.universe import Universe
    from hikyuu_qlib.modelling.predictor import Predictor
    from hikyuu_qlib.modelling.presets import default_threads
    from hikyuu_qlib.modelling.service import TrainSpec, train_and_register
    from hikyuu_qlib.registry import LocalArtifactStore, ModelRegistry
    from hikyuu_qlib.stores.qlib import QlibStore

    spans = {k: f"{v[0]}:{v[1]}" for k, v in json.loads(segments).items()}
    began = time.perf_counter()
    store = QlibStore.open(qlib_dir)
    segs = Segments.parse(spans["train"], spans["valid"], spans["test"])
    universe = Universe.from_store(store, "csi300")
    with ModelRegistry(f"sqlite:///{tmp}/registry.db") as registry:
        artifacts = LocalArtifactStore(Path(tmp) / "artifacts")
        outcome = train_and_register(
            TrainSpec("bench", segs, seed=SEED),
            store=store,
            universe=universe,
            registry=registry,
            artifacts=artifacts,
        )
        trained = time.perf_counter()
        test = outcome.data.view("test", "infer")
        scores = Predictor(registry, artifacts).predict_frame(outcome.model.id, test)
        seconds = time.perf_counter() - began
    scores.write_parquet(Path(tmp) / "ours.parquet")
    test_metrics = outcome.metrics["test"]
    return {
        "seconds": seconds,
        "ic": test_metrics["ic"],
        "rank_ic": test_metrics["rank_ic"],
        "best_iteration": outcome.result.best_iteration,
        "num_threads": default_threads(),
        "stages": {**outcome.timings, "predict_s": time.perf_counter() - trained},
        "pred_rows": scores.height,
        "dates": str(DateRange.of(*json.loads(segments)["test"])),
        "null_scores": int(scores.select(pl.col("score").is_null().sum()).item()),
    }


def _qlib_pipeline(qlib_dir: str, segments: str, tmp: str) -> dict[str, Any]:
    spans = json.loads(segments)
    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")  # R.start on a temporary file store
    began = time.perf_counter()
    import qlib
    from qlib.contrib.data.handler import Alpha158
    from qlib.contrib.eva.alpha import calc_ic
    from qlib.contrib.model.gbdt import LGBModel
    from qlib.data.dataset import DatasetH
    from qlib.data.dataset.handler import DataHandlerLP
    from qlib.workflow import R

    from hikyuu_qlib.modelling.presets import get_preset
    from hikyuu_qlib.modelling.qlib_form import from_qlib

    qlib.init(provider_uri=qlib_dir, region="cn")
    stages: dict[str, float] = {}
    handler = Alpha158(
        instruments="csi300",
        start_time=spans["train"][0],
        end_time=spans["test"][1],
        fit_start_time=spans["train"][0],
        fit_end_time=spans["train"][1],
    )
    dataset = DatasetH(handler, segments={k: tuple(v) for k, v in spans.items()})
    stages["features_s"] = time.perf_counter() - began
    preset = get_preset("qlib-lgb-alpha158")
    params = preset.lgb_params(seed=SEED)
    params.pop("objective")
    params.pop("verbosity")
    model = LGBModel(
        loss="mse",
        early_stopping_rounds=preset.early_stopping_rounds,
        num_boost_round=preset.num_boost_round,
        **params,
    )
    with R.start(experiment_name="bench-research", uri=f"file:{tmp}/mlruns"):
        t0 = time.perf_counter()
        model.fit(dataset)
        stages["train_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        pred = model.predict(dataset, "test")
        stages["predict_s"] = time.perf_counter() - t0
    seconds = time.perf_counter() - began
    label = dataset.prepare("test", col_set="label", data_key=DataHandlerLP.DK_R)
    ic, ric = calc_ic(pred, label.iloc[:, 0])
    from_qlib(pred).write_parquet(Path(tmp) / "qlib.parquet")
    assert model.model is not None
    return {
        "seconds": seconds,
        "ic": float(ic.mean()),
        "rank_ic": float(ric.mean()),
        "best_iteration": int(model.model.best_iteration),
        "stages": stages,
        "pred_rows": len(pred),
    }


def _ours_alpha360(qlib_dir: str, start: str, end: str) -> dict[str, Any]:
    from hikyuu_qlib.domain import DateRange
    from hikyuu_qlib.factors.alpha360 import DEFAULT_INFER, DEFAULT_LEARN
    from hikyuu_qlib.factors.pipeline import compute_features
    from hikyuu_qlib.factors.universe import Universe
    from hikyuu_qlib.modelling.dataset import prepare_frame
    from hikyuu_qlib.modelling.presets import ProcessorStep
    from hikyuu_qlib.stores.qlib import QlibStore

    began = time.perf_counter()
    store = QlibStore.open(qlib_dir)
    dates = DateRange.of(start, end)
    raw = compute_features(store, Universe.from_store(store, "csi300"), dates, "alpha360")
    data = prepare_frame(
        raw,
        {"train": dates},
        infer=[ProcessorStep(n, f) for n, f in DEFAULT_INFER],
        learn=[ProcessorStep(n, f) for n, f in DEFAULT_LEARN],
    )
    return {"seconds": time.perf_counter() - began, "rows": data.infer.height}


def _qlib_alpha360(qlib_dir: str, start: str, end: str) -> dict[str, Any]:
    began = time.perf_counter()
    import qlib
    from qlib.contrib.data.handler import Alpha360

    qlib.init(provider_uri=qlib_dir, region="cn")
    handler = Alpha360(
        instruments="csi300", start_time=start, end_time=end, fit_start_time=start, fit_end_time=end
    )
    return {"seconds": time.perf_counter() - began, "rows": len(handler._data)}


def _ours_all(qlib_dir: str, start: str, end: str) -> dict[str, Any]:
    from hikyuu_qlib.domain import DateRange
    from hikyuu_qlib.factors.pipeline import compute_features
    from hikyuu_qlib.factors.universe import Universe
    from hikyuu_qlib.stores.qlib import QlibStore

    began = time.perf_counter()
    store = QlibStore.open(qlib_dir)
    universe = Universe.from_store(store, "all")
    frame = compute_features(store, universe, DateRange.of(start, end))
    return {"seconds": time.perf_counter() - began, "rows": frame.height, "codes": frame["code"].n_unique()}


def _ours_preset(qlib_dir: str, segments: str, tmp: str, preset: str, overrides: str) -> dict[str, Any]:
    import polars as pl

    from hikyuu_qlib.domain import Segments
    from hikyuu_qlib.factors.universe import Universe
    from hikyuu_qlib.modelling.dataset import matrix
    from hikyuu_qlib.modelling.service import TrainSpec, train_and_register
    from hikyuu_qlib.registry import LocalArtifactStore, ModelRegistry
    from hikyuu_qlib.stores.qlib import QlibStore

    spans = {k: f"{v[0]}:{v[1]}" for k, v in json.loads(segments).items()}
    began = time.perf_counter()
    store = QlibStore.open(qlib_dir)
    segs = Segments.parse(spans["train"], spans["valid"], spans["test"])
    universe = Universe.from_store(store, "csi300")
    from hikyuu_qlib.domain.errors import InvalidInputError

    with ModelRegistry(f"sqlite:///{tmp}/registry.db") as registry:
        artifacts = LocalArtifactStore(Path(tmp) / "artifacts")
        try:
            outcome = train_and_register(
                TrainSpec("bench", segs, preset=preset, seed=SEED, params=json.loads(overrides)),
                store=store,
                universe=universe,
                registry=registry,
                artifacts=artifacts,
            )
        except InvalidInputError as exc:  # a fit our family refuses (the MLP's degenerate BatchNorm)
            return {"seconds": time.perf_counter() - began, "refused": str(exc)}
        test = outcome.data.view("test", "infer")  # already through the infer processors
        scores = test.select("datetime", "code").with_columns(
            pl.Series("score", outcome.result.model.predict(matrix(test, outcome.data.features)))
        )
    scores.write_parquet(Path(tmp) / "ours.parquet")
    return {
        "seconds": time.perf_counter() - began,
        "ic": outcome.metrics["test"]["ic"],
        "rank_ic": outcome.metrics["test"]["rank_ic"],
        "best_iteration": outcome.result.best_iteration,
        "params": outcome.model.hyperparameters.get("params"),
        "library_params": _library_params(outcome.result.model.native),
    }


def _library_params(native: Any) -> dict[str, Any] | None:
    """The parameters as the library sees them after the fit: XGBoost's saved configuration, CatBoost's
    ``get_all_params``; ``None`` for the other families."""
    if hasattr(native, "save_config"):
        config: dict[str, Any] = json.loads(native.save_config())
        return config
    if hasattr(native, "get_all_params"):
        return dict(native.get_all_params())
    return None


def _param_diff(ours: dict[str, Any] | None, theirs: dict[str, Any] | None) -> dict[str, Any]:
    """The library-effective parameters that differ, flattened as dotted keys: ``{key: [ours, pyqlib]}``."""

    def flat(doc: Any, prefix: str = "") -> dict[str, Any]:
        if not isinstance(doc, dict):
            return {prefix.rstrip("."): doc}
        out: dict[str, Any] = {}
        for key, value in doc.items():
            out.update(flat(value, f"{prefix}{key}."))
        return out

    a, b = flat(ours or {}), flat(theirs or {})
    return {k: [a.get(k), b.get(k)] for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)}


def _qlib_handler(kind: str, spans: dict[str, Any]) -> Any:
    """pyqlib's Alpha158 handler with the processors of the kind's benchmark configuration."""
    from qlib.contrib.data.handler import Alpha158

    options: dict[str, Any] = {}
    if kind == "linear":
        options = {
            "infer_processors": [
                {"class": "RobustZScoreNorm", "kwargs": {"fields_group": "feature", "clip_outlier": True}},
                {"class": "Fillna", "kwargs": {"fields_group": "feature"}},
            ],
            "learn_processors": [
                {"class": "DropnaLabel"},
                {"class": "CSRankNorm", "kwargs": {"fields_group": "label"}},
            ],
        }
    elif kind == "mlp":
        options = {
            "infer_processors": [
                {"class": "DropCol", "kwargs": {"col_list": ["VWAP0"]}},
                _cs_mean_fill(),
            ],
            "learn_processors": [
                {"class": "DropCol", "kwargs": {"col_list": ["VWAP0"]}},
                {"class": "DropnaProcessor", "kwargs": {"fields_group": "feature"}},
                "DropnaLabel",
                {"class": "CSZScoreNorm", "kwargs": {"fields_group": "label"}},
            ],
            "process_type": "independent",
        }
    elif kind == "mlp_norm":  # the NN benchmarks' normalisation (LSTM/GRU/ALSTM Alpha158), VWAP0 dropped
        options = {
            "infer_processors": [
                {"class": "DropCol", "kwargs": {"col_list": ["VWAP0"]}},
                {"class": "RobustZScoreNorm", "kwargs": {"fields_group": "feature", "clip_outlier": True}},
                {"class": "Fillna", "kwargs": {"fields_group": "feature"}},
            ],
            "learn_processors": [
                {"class": "DropnaLabel"},
                {"class": "CSRankNorm", "kwargs": {"fields_group": "label"}},
            ],
        }
    cache = os.environ.get("HQ_BENCH_QLIB_CACHE")
    if cache:
        return _cached_qlib_handler(Path(cache), spans, options)
    return Alpha158(
        instruments="csi300",
        start_time=spans["train"][0],
        end_time=spans["test"][1],
        fit_start_time=spans["train"][0],
        fit_end_time=spans["train"][1],
        **options,
    )


#: How the MLP row's pyqlib side fills the features, stated in the row.
CS_FILL_NOTE = (
    "infer CSZFillna(feature) computed as one grouped transform: each missing feature value becomes the "
    "mean of its column's values on its date, as CSZFillna does (the means summed in another order: the "
    "filled values agree within one float32 ulp); pyqlib's CSZFillna itself (DataFrame.fillna on each "
    "date's frame) took 20 s for 40 dates here under pandas 3, about 7 minutes for the quick span and "
    "22 for the full one, against 0.3 s for the transform"
)


def _cs_mean_fill() -> Any:
    """A pyqlib ``Processor`` with ``CSZFillna``'s semantics on the feature group: per date, each missing
    value becomes the mean of the column's values of that date (NaN skipped; NaN when there is none).
    ``CSZFillna`` applies ``DataFrame.fillna`` to each date's frame, about 0.5 s a date here under pandas 3;
    one grouped transform gives the same values (within a float32 ulp: the means are summed in another
    order) at once."""
    from qlib.data.dataset.processor import Processor, get_group_columns

    class CSMeanFill(Processor):  # type: ignore[misc]
        def __call__(self, df: Any) -> Any:
            cols = get_group_columns(df, "feature")
            values = df[cols]
            means = values.groupby(level="datetime").transform("mean")
            df[cols] = values.where(values.notna(), means)
            return df

    return CSMeanFill()


def _cached_qlib_handler(cache: Path, spans: dict[str, Any], options: dict[str, Any]) -> Any:
    """The same handler from pyqlib's raw Alpha158 frame (features and label, no processor) kept in
    ``cache`` (a scratch file of the bench, computed by pyqlib's own handler the first time): pyqlib's
    processors of the configuration on pyqlib's data, without recomputing the expressions per family."""
    import pandas as pd
    from qlib.contrib.data.handler import Alpha158, check_transform_proc
    from qlib.data.dataset.handler import DataHandlerLP
    from qlib.data.dataset.loader import StaticDataLoader

    start, end = spans["train"][0], spans["test"][1]
    path = cache / f"qlib-alpha158-raw-{start}-{end}.pkl"
    if path.is_file():
        raw = pd.read_pickle(path)
    else:
        handler = Alpha158(instruments="csi300", start_time=start, end_time=end, learn_processors=[])
        raw = handler.fetch(col_set=["feature", "label"], data_key=DataHandlerLP.DK_R)
        cache.mkdir(parents=True, exist_ok=True)
        raw.to_pickle(path)
    fit = (spans["train"][0], spans["train"][1])
    default_learn = [{"class": "DropnaLabel"}, {"class": "CSZScoreNorm", "kwargs": {"fields_group": "label"}}]
    return DataHandlerLP(
        instruments=None,
        start_time=start,
        end_time=end,
        data_loader=StaticDataLoader(config=raw),
        infer_processors=check_transform_proc(options.get("infer_processors", []), *fit),
        learn_processors=check_transform_proc(options.get("learn_processors", default_learn), *fit),
        process_type=options.get("process_type", DataHandlerLP.PTYPE_A),
    )


def _qlib_model_of(kind: str, overrides: dict[str, Any], train_dir: str) -> Any:
    """pyqlib's model with our preset's parameters (the benchmark configuration's), seed and threads."""
    from hikyuu_qlib.modelling.presets import default_threads, get_preset

    threads = default_threads()
    if kind == "xgb":
        from qlib.contrib.model.xgboost import XGBModel

        return XGBModel(**dict(get_preset("qlib-xgb-alpha158").params), seed=SEED, nthread=threads)
    if kind == "catboost":
        from qlib.contrib.model.catboost_model import CatBoostModel

        params = dict(get_preset("qlib-catboost-alpha158").params)
        loss = params.pop("loss_function")
        # train_dir: its logs in the temporary directory, not in the repository (no effect on the model)
        return CatBoostModel(loss=loss, **params, random_seed=SEED, thread_count=threads, train_dir=train_dir)
    if kind == "linear":
        from qlib.contrib.model.linear import LinearModel

        return LinearModel(estimator="ols")
    if kind == "double_ensemble":
        from qlib.contrib.model.double_ensemble import DEnsembleModel

        params = {**get_preset("qlib-double-ensemble-alpha158").params, **overrides}
        params.pop("objective")
        return DEnsembleModel(
            base_model="gbm",
            loss="mse",
            **params,
            seed=SEED,
            deterministic=True,
            force_col_wise=True,
            num_threads=threads,
            verbosity=-1,
        )
    if kind in MLP_KINDS:
        from qlib.contrib.model.pytorch_nn import DNNModelPytorch

        preset = "qlib-mlp-alpha158" if kind == "mlp" else "qlib-mlp-alpha158-norm"
        params = {**get_preset(preset).params, **overrides}
        import torch

        torch.set_num_threads(threads)
        return DNNModelPytorch(
            loss="mse",
            lr=params["lr"],
            optimizer=params["optimizer"],
            max_steps=params["max_steps"],
            batch_size=params["batch_size"],
            weight_decay=params["weight_decay"],
            early_stop_rounds=params["early_stop_rounds"],
            eval_steps=params["eval_steps"],
            GPU=-1,
            seed=SEED,
            # Qlib's default scheduler compares torch versions as strings ("2.13" <= "2.6") and then passes
            # ReduceLROnPlateau a verbose argument newer torch refuses: the same scheduler, built here
            scheduler=lambda optimizer: torch.optim.lr_scheduler.ReduceLROnPlateau(
                optimizer,
                mode="min",
                factor=0.5,
                patience=10,
                threshold=0.0001,
                threshold_mode="rel",
                cooldown=0,
                min_lr=0.00001,
                eps=1e-08,
            ),
            pt_model_kwargs={"input_dim": 157, "layers": tuple(params["layers"])},
        )
    raise ValueError(kind)


def _qlib_model(qlib_dir: str, segments: str, tmp: str, kind: str, overrides: str) -> dict[str, Any]:
    spans = json.loads(segments)
    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    began = time.perf_counter()
    import numpy as np
    import qlib
    from qlib.contrib.eva.alpha import calc_ic
    from qlib.data.dataset import DatasetH
    from qlib.data.dataset.handler import DataHandlerLP
    from qlib.workflow import R

    from hikyuu_qlib.modelling.qlib_form import from_qlib

    qlib.init(provider_uri=qlib_dir, region="cn")
    dataset = DatasetH(_qlib_handler(kind, spans), segments={k: tuple(v) for k, v in spans.items()})
    model = _qlib_model_of(kind, json.loads(overrides), f"{tmp}/catboost_info")
    np.random.seed(SEED)  # DEnsembleModel shuffles and draws with NumPy's global generator
    with R.start(experiment_name="bench-parity", uri=f"file:{tmp}/mlruns"):
        model.fit(dataset)
        pred = model.predict(dataset, "test")
    label = dataset.prepare("test", col_set="label", data_key=DataHandlerLP.DK_R)
    ic, ric = calc_ic(pred, label.iloc[:, 0])
    from_qlib(pred).write_parquet(Path(tmp) / "qlib.parquet")
    best = None
    inner = getattr(model, "model", None)
    if kind == "xgb" and inner is not None:
        best = int(inner.best_iteration) + 1
    elif kind == "catboost" and inner is not None:
        best = int(inner.get_best_iteration()) + 1
    elif kind in MLP_KINDS:
        best = model.best_step
    doc = {
        "seconds": time.perf_counter() - began,
        "ic": float(ic.mean()),
        "rank_ic": float(ric.mean()),
        "best_iteration": best,
        "model": type(model).__name__,
        "library_params": None
        if inner is None or kind not in ("xgb", "catboost")
        else _library_params(inner),
    }
    if kind in MLP_KINDS:
        import torch

        if kind == "mlp":
            doc["qlib_processors"] = CS_FILL_NOTE
        norms = [m for m in model.dnn_model.modules() if isinstance(m, torch.nn.BatchNorm1d)]
        doc["batchnorm_finite"] = all(
            m.running_var is not None and bool(torch.isfinite(m.running_var).all()) for m in norms
        )
        doc["distinct_scores"] = int(pred.nunique())
    if kind == "double_ensemble":
        # the same model with its selected features in the frame's column order (as ours keeps them)
        ordered = _ordered_double_ensemble(model)
        np.random.seed(SEED)
        with R.start(experiment_name="bench-parity", uri=f"file:{tmp}/mlruns"):
            ordered.fit(dataset)
            ic2, ric2 = calc_ic(ordered.predict(dataset, "test"), label.iloc[:, 0])
        doc["feature_order_fixed"] = {"ic": float(ic2.mean()), "rank_ic": float(ric2.mean())}
    return doc


def _ordered_double_ensemble(model: Any) -> Any:
    """A fresh copy of pyqlib's ``DEnsembleModel`` ``model`` (unfitted settings) whose feature selection
    returns its features in the frame's column order. pyqlib returns them as ``pd.Index(set(...))``: the
    order of a set of strings, which follows ``PYTHONHASHSEED``; LightGBM's column sampling depends on
    the column order, so pyqlib's result does too. The draws are pyqlib's own (same shuffles, same
    picks); only the order of the chosen columns changes."""
    import pandas as pd
    from qlib.contrib.model.double_ensemble import DEnsembleModel

    class Ordered(DEnsembleModel):  # type: ignore[misc]
        def feature_selection(self, df_train: Any, loss_values: Any) -> Any:
            chosen = set(super().feature_selection(df_train, loss_values))
            return pd.Index([f for f in df_train["feature"].columns if f in chosen])

    fresh = Ordered.__new__(Ordered)
    fresh.__dict__.update(model.__dict__)
    fresh.ensemble, fresh.sub_features = [], []
    return fresh


def _ours_quality(qlib_dir: str, segments: str, tmp: str, seeds: str, quick: str) -> dict[str, Any]:
    """Every configuration of ``QUALITY_CONFIGS`` over the seeds; the best mean valid IC is chosen, and
    its seed models are backtested on the test segment."""
    import polars as pl

    from hikyuu_qlib.backtest import run_topk_backtest
    from hikyuu_qlib.backtest.config import BacktestConfig
    from hikyuu_qlib.backtest.report import prediction_ic
    from hikyuu_qlib.domain import Segments
    from hikyuu_qlib.factors.pipeline import compute_features
    from hikyuu_qlib.factors.universe import Universe
    from hikyuu_qlib.modelling.predictor import Predictor
    from hikyuu_qlib.modelling.quality import mean_std, over_seeds
    from hikyuu_qlib.modelling.service import TrainSpec, train_and_register
    from hikyuu_qlib.registry import LocalArtifactStore, ModelRegistry
    from hikyuu_qlib.stores.qlib import QlibStore

    spans = {k: f"{v[0]}:{v[1]}" for k, v in json.loads(segments).items()}
    began = time.perf_counter()
    store = QlibStore.open(qlib_dir)
    segs = Segments.parse(spans["train"], spans["valid"], spans["test"])
    universe = Universe.from_store(store, "csi300")
    frame = compute_features(store, universe, segs.span(), "alpha158", label=True)
    tried: list[dict[str, Any]] = []
    with ModelRegistry(f"sqlite:///{tmp}/registry.db") as registry:
        artifacts = LocalArtifactStore(Path(tmp) / "artifacts")
        for label, preset, params in _quality_configs():
            budget = {**params, **(QUICK_OVERRIDES.get(preset, {}) if quick == "1" else {})}
            outcomes = []
            for k in range(int(seeds)):
                outcomes.append(
                    train_and_register(
                        TrainSpec(f"quality {label}", segs, preset=preset, seed=SEED + k, params=budget),
                        store=store,
                        universe=universe,
                        registry=registry,
                        artifacts=artifacts,
                        frame=frame,
                    )
                )
            quality = over_seeds([o.metrics for o in outcomes])
            tried.append(
                {
                    "label": label,
                    "preset": preset,
                    "params": budget,
                    "models": [o.model.id for o in outcomes],
                    **quality,
                    "best_iteration": [o.result.best_iteration for o in outcomes],
                }
            )
            log.info(
                "quality %s: valid ic %s, test ic %s", label, quality["valid"]["ic"], quality["test"]["ic"]
            )
        chosen = max(
            tried, key=lambda t: t["valid"]["ic"]["mean"] if t["valid"]["ic"]["mean"] is not None else -1.0
        )
        predictor = Predictor(registry, artifacts)
        test_span = segs["test"]
        test_rows = frame.filter(pl.col("datetime").is_between(test_span.start, test_span.end))
        excess, excess_before, ics = [], [], []
        for model_id in chosen["models"]:
            preds = predictor.predict_frame(model_id, test_rows)
            result = run_topk_backtest(preds, store, BacktestConfig())
            stats = result.statistics(
                store.risk_free() if hasattr(store, "risk_free") else None, ic=prediction_ic(preds, store)
            )
            with_cost = stats.get("excess_return_with_cost") or {}
            without = stats.get("excess_return_without_cost") or {}
            excess.append(with_cost.get("annualized_return_sum"))
            excess_before.append(without.get("annualized_return_sum"))
            ics.append((stats.get("ic") or {}).get("ic"))
        chosen = {
            **chosen,
            "backtest": {
                "strategy": "TopkDropout(50, 5), CSI300 benchmark, default costs",
                "excess_return_with_cost_annualized": mean_std(excess),
                "excess_return_without_cost_annualized": mean_std(excess_before),
                "per_seed_excess_with_cost": excess,
            },
        }
    return {"seconds": time.perf_counter() - began, "tried": tried, "chosen": chosen}


WORKERS = {
    "ours_alpha158": _ours_alpha158,
    "qlib_alpha158": _qlib_alpha158,
    "ours_pipeline": _ours_pipeline,
    "qlib_pipeline": _qlib_pipeline,
    "ours_all": _ours_all,
    "ours_alpha360": _ours_alpha360,
    "qlib_alpha360": _qlib_alpha360,
    "ours_preset": _ours_preset,
    "qlib_model": _qlib_model,
    "ours_quality": _ours_quality,
}

if __name__ == "__main__" and len(sys.argv) > 2 and sys.argv[1] == "worker":
    serve_worker(WORKERS, sys.argv)
