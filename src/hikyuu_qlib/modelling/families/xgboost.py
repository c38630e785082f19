"""XGBoost, fed as Qlib's ``XGBModel.fit`` feeds it; saved as XGBoost's UBJSON model.

Qlib builds ``DMatrix(x.values, label=y)`` for train and valid, trains with ``evals=[train, valid]``,
early stopping on the last (valid) set and keeps every tree: its ``predict`` scores with the whole
booster, the rounds after the best one included. We do the same (parity), and the saved model is that
booster (its ``best_iteration`` attribute is kept in the file).

Qlib's benchmark configuration lists ``n_estimators: 647`` among the booster parameters, where
``xgb.train`` ignores it (the rounds come from ``fit``'s ``num_boost_round``, 1000); here it is the round
cap, as the configuration means it (the rounds are the smaller of it and ``num_boost_round``), and never
reaches the booster's parameters.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from hikyuu_qlib.domain.model import ModelType
from hikyuu_qlib.modelling.families import F32, F64, FitInput, FitResult, Importance, require

MODEL_TYPE = ModelType.XGBOOST
TUNABLE = frozenset(
    {
        "objective",
        "eval_metric",
        "eta",
        "learning_rate",
        "max_depth",
        "max_leaves",
        "min_child_weight",
        "gamma",
        "subsample",
        "colsample_bytree",
        "colsample_bylevel",
        "colsample_bynode",
        "lambda",
        "alpha",
        "reg_lambda",
        "reg_alpha",
        "tree_method",
        "max_bin",
        "grow_policy",
        "n_estimators",
    }
)
#: Parameters that are ours, not the booster's (``n_estimators`` caps the rounds).
NOT_BOOSTER = frozenset({"n_estimators"})


def params(
    preset: Mapping[str, Any], *, seed: int, num_threads: int, overrides: Mapping[str, Any]
) -> dict[str, Any]:
    out: dict[str, Any] = {**preset, "seed": int(seed), "nthread": int(num_threads)}
    out.update(overrides)
    return out


@dataclass(frozen=True)
class XGBoostModel:
    booster: Any
    features: list[str]

    @property
    def native(self) -> Any:
        return self.booster

    def predict(self, x: F32, num_threads: int | None = None) -> F64:
        if x.shape[0] == 0:
            return np.empty(0, dtype=np.float64)
        xgb = require("xgboost", "xgboost")
        return np.asarray(self.booster.predict(xgb.DMatrix(x)), dtype=np.float64)

    def to_bytes(self) -> bytes:
        return bytes(self.booster.save_raw(raw_format="ubj"))

    def importance(self) -> Importance:
        out: Importance = {}
        for kind, xgb_kind in (("gain", "total_gain"), ("split", "weight")):
            scores = self.booster.get_score(importance_type=xgb_kind)
            out[kind] = {name: float(scores.get(f"f{i}", 0.0)) for i, name in enumerate(self.features)}
        return out


def fit(data: FitInput) -> FitResult:
    xgb = require("xgboost", "xgboost")
    booster_params = {k: v for k, v in data.params.items() if k not in NOT_BOOSTER}
    rounds = min(int(data.params.get("n_estimators", data.num_boost_round)), int(data.num_boost_round))
    x, y = data.train
    dtrain = xgb.DMatrix(x, label=y)
    evals = [(dtrain, "train")]
    if data.valid is not None:
        evals.append((xgb.DMatrix(data.valid[0], label=data.valid[1]), "valid"))
    record: dict[str, Any] = {}
    callbacks = [] if data.progress is None else [_Progress(data.progress, rounds, xgb)]
    started = time.perf_counter()
    booster = xgb.train(
        booster_params,
        dtrain,
        num_boost_round=rounds,
        evals=evals,
        early_stopping_rounds=data.early_stopping_rounds if data.valid is not None else None,
        verbose_eval=False,
        evals_result=record,
        callbacks=callbacks,
    )
    seconds = time.perf_counter() - started
    run = int(booster.num_boosted_rounds())
    best = int(booster.best_iteration) + 1 if data.valid is not None else run
    return FitResult(XGBoostModel(booster, list(data.features)), best, run, seconds, record)


def _Progress(progress: Any, total: int, xgb: Any) -> Any:
    class Callback(xgb.callback.TrainingCallback):  # type: ignore[misc]
        def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
            progress(epoch + 1, total, "")
            return False

    return Callback()


def load(data: bytes, features: list[str]) -> XGBoostModel:
    xgb = require("xgboost", "xgboost")
    booster = xgb.Booster()
    booster.load_model(bytearray(data))
    return XGBoostModel(booster, features)
