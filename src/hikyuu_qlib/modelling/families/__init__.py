"""Model families: one small module each, with the same seam.

A family turns a preset's parameters, a seed and a thread count into the library's own parameters
(:meth:`Family.params`), fits on float32 ``(x, y)`` pairs (:meth:`Family.fit`) and loads a fitted model
back from the bytes it saved (:meth:`Family.load`). A fitted model (:class:`Fitted`) scores a float32
matrix, saves itself in its library's own format (never pickle) and reports its feature importance.

* :mod:`.lightgbm` – LightGBM's text model;
* :mod:`.xgboost` – XGBoost's UBJSON model;
* :mod:`.catboost` – CatBoost's ``.cbm``;
* :mod:`.linear` – OLS / ridge / lasso / NNLS coefficients as JSON;
* :mod:`.mlp` – a PyTorch MLP (extra ``torch``), its ``state_dict`` in safetensors;
* :mod:`.double_ensemble` – DoubleEnsemble over LightGBM (sample reweighting, feature selection), JSON
  holding each sub-model's LightGBM text and features.

Each module imports its library only when used; importing this package loads none of them.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from hikyuu_qlib.domain.errors import InvalidInputError
from hikyuu_qlib.domain.model import ModelType
from hikyuu_qlib.ports import Progress

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]

#: Importance kinds: ``gain`` (total loss reduction of the feature's splits) and ``split`` (how many splits
#: use it); a linear model reports ``coef`` (its coefficients), a family without either reports none.
Importance = dict[str, dict[str, float]]

#: Parameters every preset knows besides its family's: the rounds and the early stopping patience.
ROUND_PARAMS = frozenset({"num_boost_round", "early_stopping_rounds"})


@dataclass(frozen=True)
class FitInput:
    """One fit: the learn view's train (and valid) matrices, the feature names and the run's settings."""

    train: tuple[F32, F32]
    valid: tuple[F32, F32] | None
    features: list[str]
    params: Mapping[str, Any]
    num_boost_round: int
    early_stopping_rounds: int
    seed: int = 0
    num_threads: int = 1
    progress: Progress | None = None

    def __post_init__(self) -> None:
        if self.train[0].shape[0] == 0:
            raise InvalidInputError("empty training data: check the universe and the train segment")
        if self.valid is not None and self.valid[0].shape[0] == 0:
            raise InvalidInputError("empty validation data: check the valid segment")


class Fitted(Protocol):
    """A fitted model of some family."""

    @property
    def native(self) -> Any:
        """The library's own model object (a LightGBM booster, an XGBoost booster …)."""
        ...

    def predict(self, x: F32, num_threads: int | None = None) -> F64: ...

    def to_bytes(self) -> bytes:
        """The model in its library's own format."""
        ...

    def importance(self) -> Importance: ...


@dataclass
class FitResult:
    """A fitted model with how its fit went. ``best_iteration``/``rounds`` are ``None`` for a family
    without boosting rounds or steps."""

    model: Fitted
    best_iteration: int | None
    rounds: int | None
    seconds: float
    evals: dict[str, Any] = field(default_factory=dict)

    @property
    def booster(self) -> Any:
        """The library's model object (for LightGBM, the booster)."""
        return self.model.native


class Family(Protocol):
    """One model family (a module of this package)."""

    MODEL_TYPE: ModelType
    #: The library's parameters a preset of this family accepts as overrides, besides its own.
    TUNABLE: frozenset[str]

    def params(
        self, preset: Mapping[str, Any], *, seed: int, num_threads: int, overrides: Mapping[str, Any]
    ) -> dict[str, Any]:
        """The library's parameters: the preset's, the seed and threads, then the overrides."""
        ...

    def fit(self, data: FitInput) -> FitResult: ...

    def load(self, data: bytes, features: list[str]) -> Fitted: ...


_MODULES: dict[ModelType, str] = {
    ModelType.LIGHTGBM: "lightgbm",
    ModelType.XGBOOST: "xgboost",
    ModelType.CATBOOST: "catboost",
    ModelType.LINEAR: "linear",
    ModelType.MLP: "mlp",
    ModelType.DOUBLE_ENSEMBLE: "double_ensemble",
}


def family(model_type: ModelType | str) -> Family:
    """The family module of ``model_type``; :class:`InvalidInputError` for a type none trains."""
    kind = ModelType.parse(model_type)
    name = _MODULES.get(kind)
    if name is None:
        known = ", ".join(t.value for t in _MODULES)
        raise InvalidInputError(f"no model family trains {kind.value!r} yet: trained families are {known}")
    module: Any = importlib.import_module(f"{__name__}.{name}")
    return module  # type: ignore[no-any-return]


def require(module: str, extra: str) -> Any:
    """Import an optional library, or say which extra brings it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise InvalidInputError(
            f"this model family needs {module}: install it with pip install 'hikyuu-qlib[{extra}]'"
        ) from None
