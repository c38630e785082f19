"""DoubleEnsemble over LightGBM (Zhang et al., 2020), with the semantics of Qlib's ``DEnsembleModel``.

``num_models`` LightGBM sub-models are trained one after another, each for ``epochs`` rounds (no early
stopping in Qlib's benchmark configuration), with per-row weights and on a subset of the features:

* **Sample reweighting** (``enable_sr``): after sub-model *k*, each training row gets
  ``h = alpha1 · h1 + alpha2 · h2``, where ``h1`` is the percentile rank of the ensemble's negated squared
  error and ``h2`` the percentile rank of ``l_end / l_start`` — the mean percentile rank (among rows, per
  tree) of the row's loss over the last and first tenth of sub-model *k*'s trees. Rows are put into
  ``bins_sr`` equal-width bins of ``h``; a row's new weight is ``1 / (decay^k · mean h of its bin + 0.1)``.
* **Feature selection** (``enable_fs``): each feature's column is shuffled in turn; the ensemble's
  (equally averaged) squared error on the shuffled data minus its error on the real data gives
  ``g = mean / (std + 1e-7)``. Features go into ``bins_fs`` equal-width bins of ``g``; from the bins, by
  decreasing ``g``, ``ceil(sample_ratios[i] · size)`` features are drawn without replacement.

The ensemble scores with the ``sub_weights``-weighted mean of its sub-models. Shuffles and draws come from
a NumPy ``RandomState(seed)``. Each sub-model's features keep the frame's column order. Saved as JSON:
each sub-model's LightGBM text model and feature names, and the sub-weights.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from hikyuu_qlib.domain.errors import InvalidInputError
from hikyuu_qlib.domain.model import ModelType
from hikyuu_qlib.modelling.families import F32, F64, FitInput, FitResult, Importance
from hikyuu_qlib.modelling.families import lightgbm as lgb_family

log = logging.getLogger(__name__)

MODEL_TYPE = ModelType.DOUBLE_ENSEMBLE
ENSEMBLE_KEYS = frozenset(
    {
        "num_models",
        "enable_sr",
        "enable_fs",
        "alpha1",
        "alpha2",
        "bins_sr",
        "bins_fs",
        "decay",
        "sample_ratios",
        "sub_weights",
        "epochs",
    }
)
TUNABLE = ENSEMBLE_KEYS | lgb_family.TUNABLE
FORMAT = "hikyuu-qlib.double-ensemble/1"


def params(
    preset: Mapping[str, Any], *, seed: int, num_threads: int, overrides: Mapping[str, Any]
) -> dict[str, Any]:
    out = lgb_family.params(preset, seed=seed, num_threads=num_threads, overrides=overrides)
    num_models = int(out.get("num_models", 6))
    bins_fs = int(out.get("bins_fs", 5))
    out.setdefault("sample_ratios", [0.8, 0.7, 0.6, 0.5, 0.4])
    out["sample_ratios"] = _floats(out["sample_ratios"])
    if "sub_weights" not in out or len(_floats(out["sub_weights"])) != num_models:
        if "sub_weights" in overrides:
            raise InvalidInputError(
                f"sub_weights needs {num_models} values (num_models), got {out['sub_weights']}"
            )
        out["sub_weights"] = [1.0] * num_models
    out["sub_weights"] = _floats(out["sub_weights"])
    if len(out["sample_ratios"]) != bins_fs:
        raise InvalidInputError(f"sample_ratios needs {bins_fs} values (bins_fs), got {out['sample_ratios']}")
    if num_models < 1 or bins_fs < 1 or int(out.get("bins_sr", 10)) < 1:
        raise InvalidInputError("num_models, bins_sr and bins_fs must be at least 1")
    if out.get("decay") is None:
        raise InvalidInputError("decay is required (Qlib's configuration: 0.5)")
    return out


def _floats(value: Any) -> list[float]:
    if isinstance(value, str):
        return [float(v) for v in value.replace("/", ",").split(",") if v.strip()]
    if isinstance(value, int | float):
        return [float(value)]
    return [float(v) for v in value]


@dataclass(frozen=True)
class DoubleEnsembleModel:
    boosters: list[Any]
    sub_features: list[list[str]]
    sub_weights: list[float]
    features: list[str]

    @property
    def native(self) -> list[Any]:
        return self.boosters

    def _columns(self, names: Sequence[str]) -> npt.NDArray[np.intp]:
        position = {name: i for i, name in enumerate(self.features)}
        try:
            return np.asarray([position[n] for n in names], dtype=np.intp)
        except KeyError as exc:
            raise InvalidInputError(
                f"the ensemble needs feature {exc.args[0]!r}, absent from the frame"
            ) from None

    def predict(self, x: F32, num_threads: int | None = None) -> F64:
        if x.shape[0] == 0:
            return np.empty(0, dtype=np.float64)
        total = np.zeros(x.shape[0], dtype=np.float64)
        kwargs: dict[str, Any] = {} if num_threads is None else {"num_threads": num_threads}
        for booster, names, weight in zip(self.boosters, self.sub_features, self.sub_weights, strict=True):
            total += (
                np.asarray(booster.predict(x[:, self._columns(names)], **kwargs), dtype=np.float64) * weight
            )
        return total / float(np.sum(self.sub_weights))

    def to_bytes(self) -> bytes:
        doc = {
            "format": FORMAT,
            "features": self.features,
            "sub_weights": self.sub_weights,
            "models": [
                {"features": names, "model": booster.model_to_string()}
                for booster, names in zip(self.boosters, self.sub_features, strict=True)
            ],
        }
        return json.dumps(doc).encode()

    def importance(self) -> Importance:
        out: Importance = {
            "gain": dict.fromkeys(self.features, 0.0),
            "split": dict.fromkeys(self.features, 0.0),
        }
        for booster, names, weight in zip(self.boosters, self.sub_features, self.sub_weights, strict=True):
            for kind, values in lgb_family.booster_importance(booster, names, weight).items():
                for name, value in values.items():
                    out[kind][name] += value
        return out


def fit(data: FitInput) -> FitResult:
    import lightgbm as lgb

    options = dict(data.params)
    lgb_params = {k: v for k, v in options.items() if k not in ENSEMBLE_KEYS}
    num_models = int(options.get("num_models", 6))
    epochs = int(options.get("epochs", data.num_boost_round))
    sub_weights = list(options["sub_weights"])
    x, y = data.train
    y = np.asarray(y, dtype=np.float64)
    rows, width = x.shape
    rng = np.random.RandomState(int(options.get("seed", data.seed)))
    weights = np.ones(rows, dtype=np.float64)
    chosen = np.arange(width, dtype=np.intp)
    boosters: list[Any] = []
    sub_columns: list[npt.NDArray[np.intp]] = []
    preds = np.zeros((rows, num_models), dtype=np.float64)
    started = time.perf_counter()
    for k in range(num_models):
        sub_columns.append(chosen)
        log.info("double ensemble: sub-model %d/%d on %d features", k + 1, num_models, chosen.size)
        xk = np.ascontiguousarray(x[:, chosen])
        sets = [lgb.Dataset(xk, label=y, weight=weights)]
        if data.valid is not None:
            sets.append(lgb.Dataset(np.ascontiguousarray(data.valid[0][:, chosen]), label=data.valid[1]))
        booster = lgb.train(
            lgb_params,
            sets[0],
            num_boost_round=epochs,
            valid_sets=sets,
            valid_names=["train", "valid"][: len(sets)],
        )
        boosters.append(booster)
        if data.progress is not None:
            data.progress(k + 1, num_models, f"sub-model {k + 1}")
        if k + 1 == num_models:
            break
        curve = loss_curve(booster, xk, y)
        preds[:, k] = booster.predict(xk)
        used = np.asarray(sub_weights[: k + 1], dtype=np.float64)
        ensemble = (preds[:, : k + 1] * used).sum(axis=1) / used.sum()
        losses = (y - ensemble) ** 2
        if bool(options.get("enable_sr", True)):
            weights = sample_weights(
                curve,
                losses,
                k + 1,
                bins=int(options.get("bins_sr", 10)),
                decay=float(options["decay"]),
                alpha1=float(options.get("alpha1", 1.0)),
                alpha2=float(options.get("alpha2", 1.0)),
            )
        if bool(options.get("enable_fs", True)):
            chosen = select_features(
                x,
                y,
                losses,
                boosters,
                sub_columns,
                rng,
                bins=int(options.get("bins_fs", 5)),
                ratios=list(options["sample_ratios"]),
            )
    seconds = time.perf_counter() - started
    names = list(data.features)
    model = DoubleEnsembleModel(
        boosters,
        [[names[i] for i in cols] for cols in sub_columns],
        [float(w) for w in sub_weights[: len(boosters)]],
        names,
    )
    return FitResult(model, epochs, epochs, seconds)


def loss_curve(booster: Any, x: F32, y: npt.NDArray[Any]) -> F64:
    """``(rows, trees)``: each row's squared error after each tree (the trees' scores summed in order)."""
    trees = int(booster.num_trees())
    curve = np.empty((x.shape[0], trees), dtype=np.float64)
    running = np.zeros(x.shape[0], dtype=np.float64)
    for t in range(trees):
        running += booster.predict(x, start_iteration=t, num_iteration=1)
        curve[:, t] = (y - running) ** 2
    return curve


def pct_rank(values: npt.NDArray[Any], axis: int = 0) -> F64:
    """Percentile ranks (average ranks over the count), as pandas' ``rank(pct=True)``."""
    from scipy.stats import rankdata

    ranks: F64 = np.asarray(rankdata(values, method="average", axis=axis), dtype=np.float64)
    return np.asarray(ranks / values.shape[axis], dtype=np.float64)


def equal_width_bins(values: F64, bins: int) -> npt.NDArray[np.intp]:
    """Bin of each value among ``bins`` equal-width right-closed bins over [min, max], the lowest edge
    lowered by 0.1% of the range (pandas' ``cut`` with a bin count)."""
    low, high = float(values.min()), float(values.max())
    if low == high:  # pandas widens a constant range by 0.1% each side: every value in the middle bin
        low, high = low - 0.001 * abs(low) if low else -0.001, high + 0.001 * abs(high) if high else 0.001
        edges = np.linspace(low, high, bins + 1)
    else:
        edges = np.linspace(low, high, bins + 1)
        edges[0] -= (high - low) * 0.001
    return np.clip(np.searchsorted(edges, values, side="left") - 1, 0, bins - 1).astype(np.intp)


def sample_weights(
    curve: F64, losses: F64, k: int, *, bins: int, decay: float, alpha1: float, alpha2: float
) -> F64:
    """The sample reweighting step (see the module notes)."""
    ranked = pct_rank(curve, axis=0)
    trees = curve.shape[1]
    part = max(int(trees * 0.1), 1)
    start = ranked[:, :part].mean(axis=1)
    end = ranked[:, -part:].mean(axis=1)
    h = alpha1 * pct_rank(-losses) + alpha2 * pct_rank(end / start)
    which = equal_width_bins(h, bins)
    sums = np.bincount(which, weights=h, minlength=bins)
    counts = np.bincount(which, minlength=bins)
    means = np.divide(sums, counts, out=np.full(bins, np.nan), where=counts > 0)
    return np.asarray(1.0 / (decay**k * means[which] + 0.1), dtype=np.float64)


def select_features(
    x: F32,
    y: npt.NDArray[Any],
    losses: F64,
    boosters: Sequence[Any],
    sub_columns: Sequence[npt.NDArray[np.intp]],
    rng: np.random.RandomState,
    *,
    bins: int,
    ratios: Sequence[float],
) -> npt.NDArray[np.intp]:
    """The feature selection step (see the module notes): the chosen columns, in the frame's order."""
    rows, width = x.shape
    g = np.zeros(width, dtype=np.float64)
    shuffled = x.copy()
    m = len(boosters)
    for f in range(width):
        shuffled[:, f] = rng.permutation(x[:, f])
        pred = np.zeros(rows, dtype=np.float64)
        for booster, cols in zip(boosters, sub_columns, strict=True):
            pred += np.asarray(booster.predict(shuffled[:, cols]), dtype=np.float64) / m
        diff = (y - pred) ** 2 - losses
        g[f] = np.mean(diff) / (np.std(diff) + 1e-7)
        shuffled[:, f] = x[:, f]
    g = np.nan_to_num(g, nan=0.0)
    which = equal_width_bins(g, bins)
    chosen: set[int] = set()
    for i, b in enumerate(sorted(set(which.tolist()), reverse=True)):
        members = np.flatnonzero(which == b)
        take = math.ceil(ratios[i] * members.size)
        chosen.update(int(v) for v in rng.choice(members, size=take, replace=False))
    return np.asarray(sorted(chosen), dtype=np.intp)


def load(data: bytes, features: list[str]) -> DoubleEnsembleModel:
    import lightgbm as lgb

    doc = json.loads(data)
    if doc.get("format") != FORMAT:
        raise InvalidInputError(
            f"not a DoubleEnsemble file (format {doc.get('format')!r}, expected {FORMAT})"
        )
    boosters = [lgb.Booster(model_str=m["model"]) for m in doc["models"]]
    subs = [list(m["features"]) for m in doc["models"]]
    return DoubleEnsembleModel(
        boosters, subs, [float(w) for w in doc["sub_weights"]], features or list(doc["features"])
    )
