"""CatBoost, fed as Qlib's ``CatBoostModel.fit`` feeds it; saved as CatBoost's ``.cbm``.

Qlib trains ``CatBoost(params)`` with ``iterations`` (1000), ``early_stopping_rounds`` (50) and
``use_best_model=True`` on ``Pool(x, y)`` with the valid pool as ``eval_set``; the model keeps the trees
up to the best iteration. Qlib's benchmark configuration asks for the Poisson bootstrap, which CatBoost
runs on GPU only (on CPU it refuses: "poisson bootstrap is not supported on CPU"); on CPU the preset uses
the Bernoulli bootstrap with the same ``subsample`` (each row kept with that probability), the nearest
CPU scheme.

Importance: ``prediction_values_change`` (CatBoost's default importance: how much the prediction moves
with the feature, summing to 100) and ``split`` (how many splits of the trees test the feature).
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from hikyuu_qlib.domain.errors import InvalidInputError
from hikyuu_qlib.domain.model import ModelType
from hikyuu_qlib.modelling.families import F32, F64, FitInput, FitResult, Importance, require

MODEL_TYPE = ModelType.CATBOOST
TUNABLE = frozenset(
    {
        "loss_function",
        "learning_rate",
        "subsample",
        "max_depth",
        "depth",
        "num_leaves",
        "max_leaves",
        "grow_policy",
        "bootstrap_type",
        "l2_leaf_reg",
        "min_data_in_leaf",
        "rsm",
        "random_strength",
        "border_count",
    }
)


def params(
    preset: Mapping[str, Any], *, seed: int, num_threads: int, overrides: Mapping[str, Any]
) -> dict[str, Any]:
    out: dict[str, Any] = {**preset, "random_seed": int(seed), "thread_count": int(num_threads)}
    out.update(overrides)
    if str(out.get("bootstrap_type", "")).lower() == "poisson":
        raise InvalidInputError(
            "bootstrap_type Poisson runs on GPU only in CatBoost; on CPU use Bernoulli (the preset's) or "
            "Bayesian/MVS"
        )
    if "num_leaves" in out:  # CatBoost's name for it
        out["max_leaves"] = out.pop("num_leaves")
    return out


@dataclass(frozen=True)
class CatBoostModel:
    model: Any
    features: list[str]

    @property
    def native(self) -> Any:
        return self.model

    def predict(self, x: F32, num_threads: int | None = None) -> F64:
        if x.shape[0] == 0:
            return np.empty(0, dtype=np.float64)
        kwargs: dict[str, Any] = {} if num_threads is None else {"thread_count": int(num_threads)}
        return np.asarray(self.model.predict(x, **kwargs), dtype=np.float64)

    def to_bytes(self) -> bytes:
        with tempfile.TemporaryDirectory(prefix="hq-cbm-") as tmp:
            path = os.path.join(tmp, "model.cbm")
            self.model.save_model(path, format="cbm")
            with open(path, "rb") as f:
                return f.read()

    def importance(self) -> Importance:
        values = np.asarray(
            self.model.get_feature_importance(type="PredictionValuesChange"), dtype=np.float64
        )
        changes = {name: float(v) for name, v in zip(self.features, values, strict=True)}
        counts = split_counts(self.model, len(self.features))
        return {
            "prediction_values_change": changes,
            "split": {name: float(c) for name, c in zip(self.features, counts, strict=True)},
        }


def split_counts(model: Any, n_features: int) -> list[int]:
    """Splits per float feature, from the model's JSON form (symmetric and non-symmetric trees)."""
    import json

    with tempfile.TemporaryDirectory(prefix="hq-cbm-") as tmp:
        path = os.path.join(tmp, "model.json")
        model.save_model(path, format="json")
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    counts = [0] * n_features

    def walk(node: Any) -> None:
        if not isinstance(node, dict):
            return
        split = node.get("split")
        if isinstance(split, dict) and "float_feature_index" in split:
            counts[int(split["float_feature_index"])] += 1
        for split in node.get("splits", []) or []:  # symmetric trees: one split per level
            if "float_feature_index" in split:
                counts[int(split["float_feature_index"])] += 1
        walk(node.get("left"))
        walk(node.get("right"))

    for tree in doc.get("trees") or doc.get("oblivious_trees") or []:
        walk(tree)
    return counts


def fit(data: FitInput) -> FitResult:
    cb = require("catboost", "catboost")
    options = dict(data.params)
    options["iterations"] = int(data.num_boost_round)
    options.setdefault("verbose", False)
    options.setdefault("allow_writing_files", False)  # no catboost_info/ directory in the working directory
    x, y = data.train
    train = cb.Pool(x, label=y)
    kwargs: dict[str, Any] = {}
    if data.valid is not None:
        options["early_stopping_rounds"] = int(data.early_stopping_rounds)
        kwargs = {"eval_set": cb.Pool(data.valid[0], label=data.valid[1]), "use_best_model": True}
    model = cb.CatBoost(options)
    started = time.perf_counter()
    model.fit(train, **kwargs)
    seconds = time.perf_counter() - started
    evals = model.get_evals_result()
    rounds = max((len(v) for m in evals.values() for v in m.values()), default=model.tree_count_)
    best = model.get_best_iteration()
    best_iteration = int(best) + 1 if best is not None else int(model.tree_count_)
    if data.progress is not None:
        data.progress(rounds, rounds, f"best iteration {best_iteration}")
    return FitResult(CatBoostModel(model, list(data.features)), best_iteration, rounds, seconds, evals)


def load(data: bytes, features: list[str]) -> CatBoostModel:
    cb = require("catboost", "catboost")
    model = cb.CatBoost()
    model.load_model(blob=data)
    return CatBoostModel(model, features)
