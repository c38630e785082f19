"""LightGBM, trained as Qlib's ``LGBModel`` trains it (:mod:`hikyuu_qlib.modelling.trainer`); saved as
LightGBM's text model at its best iteration."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from hikyuu_qlib.domain.model import ModelType
from hikyuu_qlib.modelling import trainer
from hikyuu_qlib.modelling.families import F32, F64, FitInput, FitResult, Importance

MODEL_TYPE = ModelType.LIGHTGBM
TUNABLE = frozenset(
    {
        "objective",
        "learning_rate",
        "num_leaves",
        "max_depth",
        "min_data_in_leaf",
        "min_child_samples",
        "min_sum_hessian_in_leaf",
        "feature_fraction",
        "colsample_bytree",
        "bagging_fraction",
        "subsample",
        "bagging_freq",
        "subsample_freq",
        "lambda_l1",
        "lambda_l2",
        "reg_alpha",
        "reg_lambda",
        "min_gain_to_split",
        "max_bin",
        "extra_trees",
        "path_smooth",
        "verbosity",
        "deterministic",
        "force_col_wise",
    }
)


def params(
    preset: Mapping[str, Any], *, seed: int, num_threads: int, overrides: Mapping[str, Any]
) -> dict[str, Any]:
    """The preset's parameters, the seed (deterministic), the thread count, then the overrides."""
    out: dict[str, Any] = {"objective": "mse", "verbosity": -1, **preset}
    out.update(seed=int(seed), deterministic=True, force_col_wise=True, num_threads=int(num_threads))
    out.update(overrides)
    return out


@dataclass(frozen=True)
class LightGBMModel:
    booster: Any
    features: list[str]

    @property
    def native(self) -> Any:
        return self.booster

    def predict(self, x: F32, num_threads: int | None = None) -> F64:
        return trainer.predict(self.booster, x, num_threads)

    def to_bytes(self) -> bytes:
        return str(self.booster.model_to_string()).encode("utf-8")

    def importance(self) -> Importance:
        return booster_importance(self.booster, self.features)


def booster_importance(booster: Any, features: list[str], weight: float = 1.0) -> Importance:
    """Gain and split importance of a LightGBM booster by feature name."""
    out: Importance = {}
    for kind in ("gain", "split"):
        values = np.asarray(booster.feature_importance(importance_type=kind), dtype=np.float64) * weight
        out[kind] = {name: float(v) for name, v in zip(features, values, strict=True)}
    return out


def fit(data: FitInput) -> FitResult:
    result = trainer.train_lightgbm(
        data.train,
        data.valid,
        data.params,
        num_boost_round=data.num_boost_round,
        early_stopping_rounds=data.early_stopping_rounds,
        progress=data.progress,
    )
    model = LightGBMModel(result.booster, list(data.features))
    return FitResult(model, result.best_iteration, result.rounds, result.seconds, result.evals)


def load(data: bytes, features: list[str]) -> LightGBMModel:
    import lightgbm

    booster = lightgbm.Booster(model_str=data.decode("utf-8"))
    return LightGBMModel(booster, features or list(booster.feature_name()))
