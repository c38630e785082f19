"""Linear regression as Qlib's ``LinearModel``: OLS, ridge, lasso or non-negative least squares.

Qlib fits on the train segment's learn view with every row holding a missing value dropped (with
``include_valid``, the valid segment's rows too), with scikit-learn's ``LinearRegression``, ``Ridge`` or
``Lasso`` (``alpha``; ``fit_intercept`` False by default) or SciPy's ``nnls``; a score is
``x @ coef + intercept``. Saved as JSON: the estimator, alpha, the coefficients by feature, the intercept.
Importance: ``coef``, the coefficients themselves (features are normalised by the preset's processors).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from hikyuu_qlib.domain.errors import InvalidInputError
from hikyuu_qlib.domain.model import ModelType
from hikyuu_qlib.modelling.families import F32, F64, FitInput, FitResult, Importance

MODEL_TYPE = ModelType.LINEAR
ESTIMATORS = ("ols", "ridge", "lasso", "nnls")
TUNABLE = frozenset({"estimator", "alpha", "fit_intercept", "include_valid"})
FORMAT = "hikyuu-qlib.linear/1"


def params(
    preset: Mapping[str, Any], *, seed: int, num_threads: int, overrides: Mapping[str, Any]
) -> dict[str, Any]:
    out: dict[str, Any] = {"estimator": "ols", "alpha": 0.0, "fit_intercept": False, **preset}
    out.update(overrides)
    estimator = str(out["estimator"]).lower()
    if estimator not in ESTIMATORS:
        raise InvalidInputError(
            f"unknown linear estimator {estimator!r}: expected one of {', '.join(ESTIMATORS)}"
        )
    alpha = float(out["alpha"])
    if alpha < 0 or (alpha != 0 and estimator not in ("ridge", "lasso")):
        raise InvalidInputError(
            f"alpha {alpha} is for ridge and lasso only (and at least 0), not {estimator}"
        )
    if estimator in ("ridge", "lasso") and alpha == 0:
        raise InvalidInputError(f"{estimator} needs alpha > 0 (alpha 0 is ols)")
    out.update(estimator=estimator, alpha=alpha, fit_intercept=bool(out["fit_intercept"]))
    out["include_valid"] = bool(out.get("include_valid", False))
    return out


@dataclass(frozen=True)
class LinearModel:
    estimator: str
    alpha: float
    coef: F64
    intercept: float
    features: list[str]

    @property
    def native(self) -> LinearModel:
        return self

    def predict(self, x: F32, num_threads: int | None = None) -> F64:
        if x.shape[0] == 0:
            return np.empty(0, dtype=np.float64)
        return np.asarray(x @ self.coef + self.intercept, dtype=np.float64)

    def to_bytes(self) -> bytes:
        doc = {
            "format": FORMAT,
            "estimator": self.estimator,
            "alpha": self.alpha,
            "intercept": self.intercept,
            "features": self.features,
            "coef": [float(c) for c in self.coef],
        }
        return json.dumps(doc, allow_nan=False).encode()

    def importance(self) -> Importance:
        return {"coef": {name: float(c) for name, c in zip(self.features, self.coef, strict=True)}}


def fit(data: FitInput) -> FitResult:
    options = data.params
    x, y = data.train
    if bool(options.get("include_valid")) and data.valid is not None:
        x = np.concatenate([x, data.valid[0]])
        y = np.concatenate([y, data.valid[1]])
    keep = ~(np.isnan(x).any(axis=1) | np.isnan(y))
    x, y = x[keep], y[keep]
    if x.shape[0] == 0:
        raise InvalidInputError("no training row without a missing value: add a fillna processor")
    estimator = str(options["estimator"])
    alpha = float(options["alpha"])
    intercept_on = bool(options["fit_intercept"])
    started = time.perf_counter()
    if estimator == "nnls":
        from scipy.optimize import nnls

        design = np.c_[x, np.ones(len(x))] if intercept_on else x
        solution = nnls(design, y)[0]
        coef, intercept = (solution[:-1], float(solution[-1])) if intercept_on else (solution, 0.0)
    else:
        from sklearn.linear_model import (  # type: ignore[import-untyped,unused-ignore]
            Lasso,
            LinearRegression,
            Ridge,
        )

        model: Any
        if estimator == "ols":
            model = LinearRegression(fit_intercept=intercept_on, copy_X=False)
        else:
            model = (Ridge if estimator == "ridge" else Lasso)(
                alpha=alpha, fit_intercept=intercept_on, copy_X=False
            )
        model.fit(x, y)
        coef, intercept = model.coef_, float(model.intercept_)
    seconds = time.perf_counter() - started
    fitted = LinearModel(estimator, alpha, np.asarray(coef, dtype=np.float64), intercept, list(data.features))
    return FitResult(fitted, None, None, seconds)


def load(data: bytes, features: list[str]) -> LinearModel:
    doc = json.loads(data)
    if doc.get("format") != FORMAT:
        raise InvalidInputError(f"not a linear model file (format {doc.get('format')!r}, expected {FORMAT})")
    return LinearModel(
        doc["estimator"],
        float(doc["alpha"]),
        np.asarray(doc["coef"], dtype=np.float64),
        float(doc["intercept"]),
        list(doc["features"]),
    )
