"""Training presets: model family, hyperparameters, boosting rounds and the processors of the data.

Each preset mirrors one of Qlib's benchmark configurations on Alpha158 (``examples/benchmarks/*/
workflow_config_*_Alpha158.yaml``): the model's parameters, and the handler's processors where the
configuration sets its own. Per run, ``--param KEY=VALUE`` overrides a parameter the preset knows
(:meth:`Preset.known_params`: its own, its family's tunable ones and, for boosting families, the rounds);
any other is refused."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hikyuu_qlib.domain.errors import InvalidInputError
from hikyuu_qlib.domain.model import ModelType

QLIB_LGB_ALPHA158 = "qlib-lgb-alpha158"
QLIB_XGB_ALPHA158 = "qlib-xgb-alpha158"
QLIB_CATBOOST_ALPHA158 = "qlib-catboost-alpha158"
QLIB_LINEAR_ALPHA158 = "qlib-linear-alpha158"
QLIB_MLP_ALPHA158 = "qlib-mlp-alpha158"
QLIB_MLP_NORM_ALPHA158 = "qlib-mlp-alpha158-norm"
QLIB_DOUBLE_ENSEMBLE_ALPHA158 = "qlib-double-ensemble-alpha158"
LABEL_EXPRESSION = "Ref($close, -2)/Ref($close, -1) - 1"

#: Processor names understood by :func:`hikyuu_qlib.modelling.dataset.build_chain`.
PROCESSOR_NAMES = (
    "dropna_label",
    "cs_zscore",
    "cs_rank",
    "robust_zscore",
    "fillna",
    "process_inf",
    "cs_zfillna",
    "dropna_feature",
    "zscore",
)


@dataclass(frozen=True, slots=True)
class ProcessorStep:
    """One processor by name; ``fields`` is ``feature``, ``label`` or ``all`` (the workflow's spec)."""

    name: str
    fields: str = "feature"
    clip: float | None = 3.0
    fill_value: float = 0.0

    def __post_init__(self) -> None:
        if self.name not in PROCESSOR_NAMES:
            raise InvalidInputError(
                f"unknown processor {self.name!r}: expected one of {', '.join(PROCESSOR_NAMES)}"
            )
        if self.fields not in ("feature", "label", "all"):
            raise InvalidInputError(
                f"invalid processor fields {self.fields!r}: expected feature, label or all"
            )

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "fields": self.fields, "clip": self.clip, "fill_value": self.fill_value}

    @classmethod
    def of(cls, spec: Any) -> ProcessorStep:
        """From a ``ProcessorStep``, a mapping, or any object with ``name``/``fields`` (``ProcessorSpec``)."""
        if isinstance(spec, ProcessorStep):
            return spec
        if isinstance(spec, Mapping):
            return cls(**{k: spec[k] for k in ("name", "fields", "clip", "fill_value") if k in spec})
        return cls(
            name=str(spec.name),
            fields=str(getattr(spec, "fields", "feature")),
            clip=getattr(spec, "clip", 3.0),
            fill_value=float(getattr(spec, "fill_value", 0.0)),
        )


def qlib_default_learn() -> tuple[ProcessorStep, ...]:
    """Qlib's Alpha158 default learn processors: DropnaLabel, CSZScoreNorm(label)."""
    return (ProcessorStep("dropna_label", "label"), ProcessorStep("cs_zscore", "label"))


@dataclass(frozen=True, slots=True)
class Preset:
    """Everything a training run takes from its preset (overridable per run)."""

    name: str
    model_type: ModelType
    feature_set: str
    label: str
    params: Mapping[str, Any]
    num_boost_round: int
    early_stopping_rounds: int
    infer: tuple[ProcessorStep, ...] = ()
    learn: tuple[ProcessorStep, ...] = field(default_factory=qlib_default_learn)
    #: ``append`` (learn processors on the infer view) or ``independent`` (on the raw features).
    process: str = "append"
    #: Feature columns left out (Qlib's ``DropCol``).
    drop: tuple[str, ...] = ()
    #: Whether ``num_boost_round``/``early_stopping_rounds`` apply (boosting families).
    rounds: bool = True
    description: str = ""

    def known_params(self) -> frozenset[str]:
        """The parameters ``--param`` may set: the preset's, its family's tunable ones, the rounds."""
        from hikyuu_qlib.modelling.families import ROUND_PARAMS, family

        known = frozenset(self.params) | family(self.model_type).TUNABLE
        return known | ROUND_PARAMS if self.rounds else known

    def check_params(self, overrides: Mapping[str, Any]) -> None:
        """Refuse a parameter the preset does not know (the message lists the known ones)."""
        unknown = sorted(set(overrides) - self.known_params())
        if unknown:
            raise InvalidInputError(
                f"unknown parameter(s) {', '.join(unknown)} for preset {self.name}: known are "
                f"{', '.join(sorted(self.known_params()))}"
            )

    def family_params(
        self, *, seed: int = 0, num_threads: int | None = None, overrides: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """The library's parameters for a run: the preset's, seed, threads, then ``overrides`` (checked)."""
        from hikyuu_qlib.modelling.families import ROUND_PARAMS, family

        given = dict(overrides or {})
        self.check_params(given)
        own = {k: v for k, v in given.items() if k not in ROUND_PARAMS}
        threads = int(num_threads or default_threads())
        return family(self.model_type).params(self.params, seed=int(seed), num_threads=threads, overrides=own)

    def lgb_params(
        self, *, seed: int = 0, num_threads: int | None = None, overrides: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """LightGBM parameters: the preset's, the seed (deterministic), the thread count, then overrides."""
        params: dict[str, Any] = {"objective": "mse", "verbosity": -1, **self.params}
        params.update(
            seed=int(seed),
            deterministic=True,
            force_col_wise=True,
            num_threads=int(num_threads or default_threads()),
        )
        params.update(overrides or {})
        return params


def default_threads() -> int:
    return os.cpu_count() or 1


#: Qlib's examples/benchmarks/LightGBM/workflow_config_lightgbm_Alpha158.yaml (num_threads: ours).
_QLIB_LGB = Preset(
    name=QLIB_LGB_ALPHA158,
    model_type=ModelType.LIGHTGBM,
    feature_set="alpha158",
    label=LABEL_EXPRESSION,
    params={
        "objective": "mse",
        "colsample_bytree": 0.8879,
        "learning_rate": 0.2,
        "subsample": 0.8789,
        "lambda_l1": 205.6999,
        "lambda_l2": 580.9768,
        "max_depth": 8,
        "num_leaves": 210,
    },
    num_boost_round=1000,
    early_stopping_rounds=50,
    description="LightGBM (Qlib's benchmark parameters)",
)

#: Qlib's examples/benchmarks/XGBoost/workflow_config_xgboost_Alpha158.yaml (nthread: ours).
_QLIB_XGB = Preset(
    name=QLIB_XGB_ALPHA158,
    model_type=ModelType.XGBOOST,
    feature_set="alpha158",
    label=LABEL_EXPRESSION,
    params={
        "eval_metric": "rmse",
        "colsample_bytree": 0.8879,
        "eta": 0.0421,
        "max_depth": 8,
        "n_estimators": 647,
        "subsample": 0.8789,
    },
    num_boost_round=1000,
    early_stopping_rounds=50,
    description="XGBoost; n_estimators caps the rounds",
)

#: Qlib's examples/benchmarks/CatBoost/workflow_config_catboost_Alpha158.yaml (thread_count: ours;
#: bootstrap Bernoulli on CPU where Qlib's GPU runs Poisson, see families.catboost).
_QLIB_CATBOOST = Preset(
    name=QLIB_CATBOOST_ALPHA158,
    model_type=ModelType.CATBOOST,
    feature_set="alpha158",
    label=LABEL_EXPRESSION,
    params={
        "loss_function": "RMSE",
        "learning_rate": 0.0421,
        "subsample": 0.8789,
        "max_depth": 6,
        "num_leaves": 100,
        "grow_policy": "Lossguide",
        "bootstrap_type": "Bernoulli",
    },
    num_boost_round=1000,
    early_stopping_rounds=50,
    description="CatBoost, Lossguide trees; Bernoulli bootstrap on CPU (Poisson is GPU-only)",
)


def _linear(name: str, estimator: str, alpha: float, description: str) -> Preset:
    """Qlib's examples/benchmarks/Linear/workflow_config_linear_Alpha158.yaml: infer RobustZScoreNorm
    (clipped) and Fillna on the features; learn DropnaLabel and CSRankNorm on the label."""
    return Preset(
        name=name,
        model_type=ModelType.LINEAR,
        feature_set="alpha158",
        label=LABEL_EXPRESSION,
        params={"estimator": estimator, "alpha": alpha, "fit_intercept": False},
        num_boost_round=1,
        early_stopping_rounds=1,
        infer=(ProcessorStep("robust_zscore", "feature"), ProcessorStep("fillna", "feature")),
        learn=(ProcessorStep("dropna_label", "label"), ProcessorStep("cs_rank", "label")),
        rounds=False,
        description=description,
    )


_QLIB_LINEAR = _linear(QLIB_LINEAR_ALPHA158, "ols", 0.0, "ordinary least squares (Qlib's configuration)")
#: Regularised variants on the same data; their alphas are starting points, not tuned values.
_QLIB_RIDGE = _linear("qlib-linear-ridge-alpha158", "ridge", 1000.0, "ridge regression, alpha 1000")
_QLIB_LASSO = _linear("qlib-linear-lasso-alpha158", "lasso", 0.001, "lasso regression, alpha 0.001")

#: Qlib's examples/benchmarks/MLP/workflow_config_mlp_Alpha158.yaml: VWAP0 dropped; infer CSZFillna;
#: learn (independent of infer) DropnaProcessor(feature), DropnaLabel, CSZScoreNorm(label). The network
#: learns from raw features: on a store with zero-volume days (VMA/VSTD ~1e20) BatchNorm overflows and the
#: family refuses the fit (pyqlib trains a constant predictor there); ``qlib-mlp-alpha158-norm`` trains it.
_QLIB_MLP = Preset(
    name=QLIB_MLP_ALPHA158,
    model_type=ModelType.MLP,
    feature_set="alpha158",
    label=LABEL_EXPRESSION,
    params={
        "lr": 0.002,
        "optimizer": "adam",
        "max_steps": 8000,
        "batch_size": 8192,
        "weight_decay": 0.0002,
        "layers": [256],
        "early_stop_rounds": 50,
        "eval_steps": 20,
    },
    num_boost_round=1,
    early_stopping_rounds=1,
    infer=(ProcessorStep("cs_zfillna", "feature"),),
    learn=(
        ProcessorStep("dropna_feature", "feature"),
        ProcessorStep("dropna_label", "label"),
        ProcessorStep("cs_zscore", "label"),
    ),
    process="independent",
    drop=("VWAP0",),
    rounds=False,
    description="PyTorch MLP (extra torch), one hidden layer of 256",
)

#: The same network and parameters on features normalised as Qlib's own neural-network benchmarks on
#: Alpha158 normalise them (examples/benchmarks/{LSTM,GRU,ALSTM}/workflow_config_*_Alpha158.yaml, also
#: Linear/workflow_config_linear_Alpha158.yaml): infer RobustZScoreNorm(clip_outlier: true, fitted on the
#: train segment) and Fillna on the features; learn DropnaLabel and CSRankNorm on the label; the default
#: process type (append: the learn view comes from the normalised features). Those configurations'
#: FilterCol (20 features for their d_feat 20 recurrent networks) is not taken: this network reads all of
#: Alpha158 but VWAP0, as the MLP configuration. The clipped robust z-score bounds every input to [-3, 3],
#: so the zero-volume days that overflow ``qlib-mlp-alpha158``'s BatchNorm train here.
_QLIB_MLP_NORM = Preset(
    name=QLIB_MLP_NORM_ALPHA158,
    model_type=ModelType.MLP,
    feature_set="alpha158",
    label=LABEL_EXPRESSION,
    params=dict(_QLIB_MLP.params),
    num_boost_round=1,
    early_stopping_rounds=1,
    infer=(ProcessorStep("robust_zscore", "feature"), ProcessorStep("fillna", "feature")),
    learn=(ProcessorStep("dropna_label", "label"), ProcessorStep("cs_rank", "label")),
    drop=("VWAP0",),
    rounds=False,
    description="PyTorch MLP (extra torch) on robust z-scored features (Qlib's NN normalisation)",
)

#: Qlib's examples/benchmarks/DoubleEnsemble/workflow_config_doubleensemble_Alpha158.yaml (num_threads:
#: ours). Sub-models train for ``epochs`` rounds without early stopping.
_QLIB_DOUBLE_ENSEMBLE = Preset(
    name=QLIB_DOUBLE_ENSEMBLE_ALPHA158,
    model_type=ModelType.DOUBLE_ENSEMBLE,
    feature_set="alpha158",
    label=LABEL_EXPRESSION,
    params={
        "objective": "mse",
        "num_models": 3,
        "enable_sr": True,
        "enable_fs": True,
        "alpha1": 1.0,
        "alpha2": 1.0,
        "bins_sr": 10,
        "bins_fs": 5,
        "decay": 0.5,
        "sample_ratios": [0.8, 0.7, 0.6, 0.5, 0.4],
        "sub_weights": [1.0, 1.0, 1.0],
        "epochs": 28,
        "colsample_bytree": 0.8879,
        "learning_rate": 0.2,
        "subsample": 0.8789,
        "lambda_l1": 205.6999,
        "lambda_l2": 580.9768,
        "max_depth": 8,
        "num_leaves": 210,
    },
    num_boost_round=28,
    early_stopping_rounds=1,
    rounds=False,
    description="DoubleEnsemble of 3 LightGBM sub-models (sample reweighting, feature selection)",
)

QLIB_LGB_ALPHA360 = "qlib-lgb-alpha360"
#: Qlib's examples/benchmarks/LightGBM/workflow_config_lightgbm_Alpha360.yaml: no infer processors, the
#: label ranked per date (CSRankNorm), learning rate 0.0421 (num_threads: ours).
_QLIB_LGB_360 = Preset(
    name=QLIB_LGB_ALPHA360,
    model_type=ModelType.LIGHTGBM,
    feature_set="alpha360",
    label=LABEL_EXPRESSION,
    params={**_QLIB_LGB.params, "learning_rate": 0.0421},
    num_boost_round=1000,
    early_stopping_rounds=50,
    learn=(ProcessorStep("dropna_label", "label"), ProcessorStep("cs_rank", "label")),
    description="LightGBM on Alpha360 (Qlib's benchmark parameters)",
)

PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        _QLIB_LGB,
        _QLIB_XGB,
        _QLIB_CATBOOST,
        _QLIB_LINEAR,
        _QLIB_RIDGE,
        _QLIB_LASSO,
        _QLIB_MLP,
        _QLIB_MLP_NORM,
        _QLIB_DOUBLE_ENSEMBLE,
        _QLIB_LGB_360,
    )
}


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise InvalidInputError(f"unknown preset {name!r}: expected one of {', '.join(PRESETS)}") from None


def parse_param(item: str) -> tuple[str, Any]:
    """``KEY=VALUE`` → (key, value): an int, a float, true/false, a comma list of numbers, else the text."""
    key, sep, text = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise InvalidInputError(f"invalid parameter {item!r}: expected KEY=VALUE")
    return key, parse_value(text.strip())


def parse_value(text: str) -> Any:
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    if "," in text:
        parts = [p.strip() for p in text.split(",") if p.strip()]
        try:
            return [int(p) if p.lstrip("-").isdigit() else float(p) for p in parts]
        except ValueError:
            return text
    return text
