"""Segments → processed frames, as Qlib's ``DataHandlerLP`` (process type A) + ``DatasetH`` make them.

Raw features (``compute_features``) go through the *infer* processors, fitted on the train segment only;
that is the inference view (Qlib's ``DK_I``), used for prediction. The *learn* processors run on top of
it (Qlib's ``DK_L``), used for fitting. Rows are ordered by (datetime, code), as Qlib orders its
(datetime, instrument) index, because LightGBM's result depends on the row order. The raw label stays
alongside for the metrics (Qlib's ``SigAnaRecord`` compares predictions with the raw label).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl

from hikyuu_qlib.domain import DateRange
from hikyuu_qlib.domain.errors import InvalidInputError
from hikyuu_qlib.domain.segments import Segments
from hikyuu_qlib.factors.label import LABEL
from hikyuu_qlib.factors.pipeline import compute_features
from hikyuu_qlib.factors.processors import (
    CSRankNorm,
    CSZFillna,
    CSZScoreNorm,
    DropnaFeature,
    DropnaLabel,
    Fillna,
    ProcessInf,
    Processor,
    ProcessorChain,
    RobustZScoreNorm,
    ZScoreNorm,
    feature_columns,
)
from hikyuu_qlib.factors.universe import Universe
from hikyuu_qlib.modelling.presets import ProcessorStep
from hikyuu_qlib.ports import Cache, FeatureSource

log = logging.getLogger(__name__)

RAW_LABEL = "LABEL_RAW"
F32 = npt.NDArray[np.float32]


# --- processors ------------------------------------------------------------------------------------


def _fields(step: ProcessorStep, features: Sequence[str]) -> list[str]:
    if step.fields == "label":
        return [LABEL]
    if step.fields == "all":
        return [*features, LABEL]
    return list(features)


def build_processor(step: ProcessorStep, features: Sequence[str]) -> Processor:
    cols = _fields(step, features)
    if step.name == "dropna_label":
        return DropnaLabel()
    if step.name == "cs_zscore":
        return CSZScoreNorm(cols)
    if step.name == "cs_rank":
        return CSRankNorm(cols)
    if step.name == "robust_zscore":
        return RobustZScoreNorm(cols, clip_outlier=step.clip is not None)
    if step.name == "fillna":
        return Fillna(cols, step.fill_value)
    if step.name == "zscore":
        return ZScoreNorm(cols)
    if step.name == "cs_zfillna":
        return CSZFillna(cols)
    if step.name == "dropna_feature":
        return DropnaFeature(cols)
    return ProcessInf(cols)


def build_chain(steps: Sequence[ProcessorStep], features: Sequence[str]) -> ProcessorChain:
    return ProcessorChain([build_processor(s, features) for s in steps])


def chain_state(chain: ProcessorChain) -> list[dict[str, Any]]:
    """The fitted state of each step (RobustZScoreNorm's medians and scales, ZScoreNorm's means and stds;
    ``{}`` for stateless)."""
    return [_step_state(s) for s in chain.steps]


def _step_state(step: Processor) -> dict[str, Any]:
    if isinstance(step, RobustZScoreNorm):
        return {"median": step.median, "scale": step.scale}
    if isinstance(step, ZScoreNorm):
        return {"mean": step.mean, "std": step.std}
    return {}


def restore_chain(
    steps: Sequence[ProcessorStep], features: Sequence[str], state: Sequence[Mapping[str, Any]]
) -> ProcessorChain:
    """A chain rebuilt from its steps and the state saved by :func:`chain_state` (no refit)."""
    chain = build_chain(steps, features)
    if len(state) != len(chain.steps):
        raise InvalidInputError(f"processor state has {len(state)} steps, the chain {len(chain.steps)}")
    for step, saved in zip(chain.steps, state, strict=True):
        if isinstance(step, RobustZScoreNorm):
            step.median = {k: float(v) for k, v in saved["median"].items()}
            step.scale = {k: float(v) for k, v in saved["scale"].items()}
        elif isinstance(step, ZScoreNorm):
            step.mean = {k: float(v) for k, v in saved["mean"].items()}
            step.std = {k: float(v) for k, v in saved["std"].items()}
    return chain


def encode_state(steps: Sequence[ProcessorStep], chain: ProcessorChain, features: Sequence[str]) -> bytes:
    doc = {"steps": [s.to_json() for s in steps], "state": chain_state(chain), "features": list(features)}
    return json.dumps(doc, sort_keys=True, allow_nan=True).encode()


def decode_state(data: bytes) -> tuple[list[ProcessorStep], list[str], ProcessorChain]:
    doc = json.loads(data)
    steps = [ProcessorStep.of(s) for s in doc["steps"]]
    features = list(doc["features"])
    return steps, features, restore_chain(steps, features, doc["state"])


# --- the dataset -----------------------------------------------------------------------------------


@dataclass
class PreparedData:
    """The processed views of one training run's rows, ordered by (datetime, code)."""

    infer: pl.DataFrame  # code, datetime, features (infer-processed), LABEL0 (raw), LABEL_RAW
    learn: pl.DataFrame  # learn processors on top of ``infer`` (rows with a label only, by default)
    segments: Segments
    features: list[str]
    infer_steps: tuple[ProcessorStep, ...]
    infer_chain: ProcessorChain

    def view(self, segment: str, kind: str = "learn") -> pl.DataFrame:
        """Rows of one segment from the ``learn`` or ``infer`` view."""
        if segment not in self.segments:
            raise InvalidInputError(f"no {segment!r} segment (have {', '.join(self.segments)})")
        span = self.segments[segment]
        frame = self.learn if kind == "learn" else self.infer
        return frame.filter(pl.col("datetime").is_between(span.start, span.end))

    def state_bytes(self) -> bytes:
        return encode_state(self.infer_steps, self.infer_chain, self.features)


def matrix(frame: pl.DataFrame, features: Sequence[str]) -> F32:
    """The feature matrix as float32 (Qlib hands LightGBM its float32 ``DataFrame.values``)."""
    return frame.select([pl.col(c).cast(pl.Float32) for c in features]).to_numpy()


def labels(frame: pl.DataFrame, column: str = LABEL) -> F32:
    return frame.get_column(column).cast(pl.Float32).to_numpy()


def qlib_order(frame: pl.DataFrame) -> pl.DataFrame:
    """Rows in Qlib's (datetime, instrument) order."""
    return frame.sort("datetime", "code")


def prepare(
    store: FeatureSource,
    universe: Universe,
    segments: Segments | Mapping[str, DateRange],
    *,
    factor_set: str = "alpha158",
    infer: Sequence[ProcessorStep] = (),
    learn: Sequence[ProcessorStep] = (),
    cache: Cache | None = None,
    process: str = "append",
    drop: Sequence[str] = (),
) -> PreparedData:
    """Features over all segments, processors fitted on the train segment, both views built."""
    segments = Segments.of(segments)
    if "train" not in segments:
        raise InvalidInputError("a dataset needs a train segment")
    span = segments.span()
    raw = compute_features(store, universe, span, factor_set, label=True, cache=cache)
    return prepare_frame(raw, segments, infer=infer, learn=learn, process=process, drop=drop)


#: How the learn view is made: ``append`` (Qlib's default) runs the learn processors on the infer view;
#: ``independent`` runs them on the raw features (Qlib's ``process_type: independent``).
PROCESS_TYPES = ("append", "independent")


def prepare_frame(
    raw: pl.DataFrame,
    segments: Segments | Mapping[str, DateRange],
    *,
    infer: Sequence[ProcessorStep] = (),
    learn: Sequence[ProcessorStep] = (),
    process: str = "append",
    drop: Sequence[str] = (),
) -> PreparedData:
    """:func:`prepare` from an already computed features frame; ``drop`` names feature columns left out
    of both views (Qlib's ``DropCol`` in both processor lists)."""
    if process not in PROCESS_TYPES:
        raise InvalidInputError(f"unknown process type {process!r}: expected {' or '.join(PROCESS_TYPES)}")
    segments = Segments.of(segments)
    raw = qlib_order(raw)
    if drop:
        raw = raw.drop([c for c in drop if c in raw.columns])
    features = feature_columns(raw)
    train = segments["train"]
    infer_chain = build_chain(infer, features)
    if infer_chain.steps:
        infer_chain.fit(raw, train)
    inferred = infer_chain.transform(raw).with_columns(raw.get_column(LABEL).alias(RAW_LABEL))
    base = inferred if process == "append" else raw.with_columns(raw.get_column(LABEL).alias(RAW_LABEL))
    learn_chain = build_chain(learn, features)
    if learn_chain.steps:
        learn_chain.fit(base, train)
    learned = learn_chain.transform(base)
    log.info(
        "dataset: %d rows (%d for learning), %d features", inferred.height, learned.height, len(features)
    )
    return PreparedData(inferred, learned, segments, features, tuple(infer), infer_chain)
