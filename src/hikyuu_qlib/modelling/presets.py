"""Training presets: model family, hyperparameters, boosting rounds and the processors of the data."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hikyuu_qlib.domain.errors import InvalidInputError
from hikyuu_qlib.domain.model import ModelType

QLIB_LGB_ALPHA158 = "qlib-lgb-alpha158"
LABEL_EXPRESSION = "Ref($close, -2)/Ref($close, -1) - 1"

#: Processor names understood by :func:`hikyuu_qlib.modelling.dataset.build_chain`.
PROCESSOR_NAMES = (
    "dropna_label", "cs_zscore", "cs_rank", "robust_zscore", "fillna", "process_inf", "zscore",
)  # fmt: skip


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
)

PRESETS: dict[str, Preset] = {_QLIB_LGB.name: _QLIB_LGB}

QLIB_LGB_ALPHA360 = "qlib-lgb-alpha360"
#: Qlib's examples/benchmarks/LightGBM/workflow_config_lightgbm_Alpha360.yaml: no infer processors, the
#: label ranked per date (CSRankNorm), learning rate 0.0421 (num_threads: ours).
PRESETS[QLIB_LGB_ALPHA360] = Preset(
    name=QLIB_LGB_ALPHA360,
    model_type=ModelType.LIGHTGBM,
    feature_set="alpha360",
    label=LABEL_EXPRESSION,
    params={**_QLIB_LGB.params, "learning_rate": 0.0421},
    num_boost_round=1000,
    early_stopping_rounds=50,
    learn=(ProcessorStep("dropna_label", "label"), ProcessorStep("cs_rank", "label")),
)


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise InvalidInputError(f"unknown preset {name!r}: expected one of {', '.join(PRESETS)}") from None
