"""The workflow file: pydantic models that reject unknown keys, with ``${VAR}`` / ``${VAR:-default}``
environment interpolation.

Interpolation applies to the parsed document's scalar values, never to the raw text: the file is
parsed first, then each string value (not the keys) has its references replaced. A variable's value
is therefore always data, a string that validation converts to the field's type: newlines or YAML in
a variable can add no keys and change no structure.

A run is identified by :meth:`WorkflowConfig.run_id` together with the data version of its source.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    ValidationError,
    field_validator,
    model_validator,
)

from hikyuu_qlib.backtest.config import STRATEGY_FIELDS, BacktestConfig
from hikyuu_qlib.domain import InvalidInputError, NotFoundError
from hikyuu_qlib.domain.segments import SEGMENT_NAMES, Segments
from hikyuu_qlib.rolling.windows import RollingSpec
from hikyuu_qlib.stores.source import SourceSpec

_VAR = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _segments(value: Any) -> Segments:
    """The file's ``segments``: ``train``, ``valid`` and ``test``, each ``START:END``."""
    if not isinstance(value, Mapping):
        raise ValueError(f"expected train, valid and test, each START:END, got {value!r}")
    missing = [name for name in SEGMENT_NAMES if name not in value]
    if missing:
        raise ValueError(f"missing {', '.join(missing)}: give train, valid and test, each START:END")
    if not isinstance(value, Segments):
        for name, text in value.items():
            if not isinstance(text, str):
                raise ValueError(f"{name}: expected START:END, got {text!r}")
    return Segments.of(value)


#: Segments as the workflow file writes them (each ``START:END``; all three required).
WorkflowSegments = Annotated[
    Segments,
    PlainValidator(_segments, json_schema_input_type=dict[str, str]),
    PlainSerializer(
        lambda segments: {name: str(span) for name, span in segments.items()}, return_type=dict[str, str]
    ),
]


class ProcessorSpec(_Strict):
    """One processor, by name; ``fields`` says which columns it touches."""

    name: Literal[
        "dropna_label",
        "cs_zscore",
        "cs_rank",
        "robust_zscore",
        "fillna",
        "process_inf",
        "cs_zfillna",
        "dropna_feature",
    ]
    fields: Literal["feature", "label", "all"] = "feature"
    clip: float | None = Field(3.0, description="robust_zscore: clip at ± this many MADs")
    fill_value: float = 0.0


class Processors(_Strict):
    """Qlib's Alpha158 defaults: nothing at inference; drop missing labels and z-score them to learn."""

    infer: list[ProcessorSpec] = Field(default_factory=list)
    learn: list[ProcessorSpec] = Field(
        default_factory=lambda: [
            ProcessorSpec(name="dropna_label"),
            ProcessorSpec(name="cs_zscore", fields="label"),
        ]
    )


class ModelSpec(_Strict):
    """The model: a preset (``hq model presets``), its parameter overrides, the seed.

    Selection (``select_on: valid``): with ``candidates`` (parameter sets, each over ``params``) and/or
    ``seeds`` > 1, every candidate is trained with each seed, and the one whose mean ``select_metric`` on
    the valid segment is highest is chosen (and, of its seeds, the best on valid). The test segment is
    reported for every candidate and never used to choose.
    """

    preset: str = "qlib-lgb-alpha158"
    params: dict[str, float | int | str | bool | list[float]] = Field(
        default_factory=dict, description="override preset params"
    )
    seed: Annotated[int, Field(ge=0)] = 0
    num_threads: Annotated[int | None, Field(ge=1)] = None
    name: str | None = None
    select_on: Literal["valid"] = Field(
        "valid", description="the segment that chooses among candidates and seeds (only valid: never test)"
    )
    select_metric: Literal["ic", "rank_ic", "icir", "rank_icir"] = "ic"
    candidates: list[dict[str, float | int | str | bool | list[float]]] = Field(
        default_factory=list, description="parameter sets to choose from (each over params)"
    )
    seeds: Annotated[int, Field(ge=1, description="seeds per candidate (seed, seed+1, …)")] = 1

    @field_validator("preset")
    @classmethod
    def _known_preset(cls, value: str) -> str:
        from hikyuu_qlib.modelling.presets import PRESETS

        if value not in PRESETS:
            raise ValueError(f"unknown preset {value!r}: expected one of {', '.join(PRESETS)}")
        return value

    def selecting(self) -> bool:
        return bool(self.candidates) or self.seeds > 1


class Outputs(_Strict):
    dir: Path = Path("hq-output/runs")
    predictions: Literal["parquet", "csv"] = "parquet"
    report: bool = True


class WorkflowConfig(_Strict):
    """A whole research run, equivalent to Qlib's benchmark workflow files."""

    source: str
    universe: str = "csi300"
    factors: Literal["alpha158"] = "alpha158"
    label: Literal["Ref($close,-2)/Ref($close,-1) - 1"] = "Ref($close,-2)/Ref($close,-1) - 1"
    processors: Processors = Field(default_factory=Processors)
    model: ModelSpec = Field(default_factory=ModelSpec)
    segments: WorkflowSegments
    backtest: BacktestConfig = Field(
        default_factory=BacktestConfig,
        description="the backtest: the file's strategy section (TopkDropout) and backtest section in one",
    )
    outputs: Outputs = Field(default_factory=Outputs)
    rolling: RollingSpec | None = Field(
        None, description="rolling retraining (hq rolling): the step, mode, lengths and test span"
    )

    @model_validator(mode="before")
    @classmethod
    def _strategy_into_backtest(cls, data: Any) -> Any:
        """The file writes the strategy (``kind: topk_dropout``, topk, n_drop …) apart from the market
        rules, costs and account; both are the one :class:`BacktestConfig`."""
        if not isinstance(data, Mapping) or "strategy" not in data:
            return data
        document = dict(data)
        strategy = document.pop("strategy")
        if strategy is None:
            return document
        if not isinstance(strategy, Mapping):
            raise ValueError(f"strategy: expected a mapping (kind, topk, n_drop …), got {strategy!r}")
        strategy = dict(strategy)
        kind = strategy.pop("kind", "topk_dropout")
        if kind != "topk_dropout":
            raise ValueError(f"strategy.kind: only 'topk_dropout' is supported, got {kind!r}")
        unknown = sorted(map(str, set(strategy) - set(STRATEGY_FIELDS)))
        if unknown:
            raise ValueError(
                f"{', '.join(f'strategy.{key}' for key in unknown)}: unknown key; "
                f"a TopkDropout strategy takes kind, {', '.join(STRATEGY_FIELDS)}"
            )
        backtest = document.get("backtest") or {}
        if not isinstance(backtest, Mapping):
            return document  # the backtest field reports it
        twice = sorted(set(strategy) & set(backtest))
        if twice:
            raise ValueError(
                f"{', '.join(map(str, twice))}: given in both the strategy and the backtest sections"
            )
        document["backtest"] = {**backtest, **strategy}
        return document

    def document(self) -> dict[str, Any]:
        """The configuration as a workflow file writes it (the strategy in its own section)."""
        doc = self.model_dump(mode="json")
        if doc.get("rolling") is None:
            doc.pop("rolling", None)
        backtest = doc.pop("backtest")
        strategy = {"kind": "topk_dropout", **{name: backtest.pop(name) for name in STRATEGY_FIELDS}}
        ordered: dict[str, Any] = {}
        for key, value in doc.items():
            if key == "outputs":
                ordered["strategy"], ordered["backtest"] = strategy, backtest
            ordered[key] = value
        return ordered

    @field_validator("source")
    @classmethod
    def _source(cls, value: str) -> str:
        SourceSpec.parse(value)
        return value

    def canonical_json(self) -> str:
        return json.dumps(
            self.model_dump(mode="json", exclude={"outputs", "rolling"}),
            sort_keys=True,
            separators=(",", ":"),
        )

    def config_hash(self) -> str:
        """Hash of everything that changes one model's results (outputs and the rolling block, which
        only ``hq rolling`` reads, excluded), with the source in its
        canonical form (absolute, symlinks resolved): one store spelled any way gives one hash."""
        canonical = self.model_copy(update={"source": SourceSpec.parse(self.source).canonical()})
        return hashlib.sha256(canonical.canonical_json().encode()).hexdigest()

    def run_id(self, data_version: str) -> str:
        """The run's identity: the config hash (canonical source) and the data version of its source."""
        digest = hashlib.sha256(f"{self.config_hash()}|{data_version}".encode()).hexdigest()
        return digest[:16]


def interpolate(text: str, env: Mapping[str, str] | None = None) -> str:
    """Replace ``${VAR}`` and ``${VAR:-default}`` in one string; an unset variable without a default is
    an error."""
    values = os.environ if env is None else env

    def replace(match: re.Match[str]) -> str:
        name, default = match.group("name"), match.group("default")
        if name in values:
            return values[name]
        if default is not None:
            return default
        raise InvalidInputError(
            f"environment variable {name!r} is not set and has no default (${{{name}:-…}})"
        )

    return _VAR.sub(replace, text)


def interpolate_values(node: Any, env: Mapping[str, str] | None = None, where: str = "") -> Any:
    """``node`` (a parsed YAML document) with :func:`interpolate` applied to every string value.

    Keys are left as written; the result has exactly the structure of ``node``.
    """
    if isinstance(node, dict):
        return {key: interpolate_values(value, env, f"{where}.{key}" if where else str(key))
                for key, value in node.items()}  # fmt: skip
    if isinstance(node, list):
        return [interpolate_values(item, env, f"{where}[{i}]") for i, item in enumerate(node)]
    if isinstance(node, str):
        try:
            return interpolate(node, env)
        except InvalidInputError as exc:
            raise InvalidInputError(f"{where or '(top)'}: {exc}") from None
    return node


def load_workflow(path: Path, env: Mapping[str, str] | None = None) -> WorkflowConfig:
    """Read, validate and interpolate a workflow file; errors name the file and the offending keys."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise NotFoundError(f"workflow file not found: {path}") from None
    except UnicodeDecodeError as exc:
        raise InvalidInputError(
            f"{path}: not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset {exc.start})"
        ) from None
    except OSError as exc:
        raise InvalidInputError(f"{path}: cannot read the workflow file: {exc.strerror or exc}") from None
    try:
        parsed: Any = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InvalidInputError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(parsed, dict):
        raise InvalidInputError(f"{path}: expected a mapping at the top level")
    try:
        raw = interpolate_values(parsed, env)
    except InvalidInputError as exc:
        raise InvalidInputError(f"{path}: {exc}") from None
    try:
        return WorkflowConfig.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(top)'}: {err['msg']}" for err in exc.errors()
        )
        raise InvalidInputError(f"{path}: invalid workflow: {problems}") from None
