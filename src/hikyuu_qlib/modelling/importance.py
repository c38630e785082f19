"""Feature importance stored with a model: by kind (``gain``, ``split``, ``coef`` …), each feature's value.

The record's :data:`~hikyuu_qlib.domain.model.IMPORTANCE_ARTIFACT` holds it as JSON
``{"kinds": {kind: {feature: value}}}``; :func:`load_importance` reads it back (``None`` for a model
stored without one).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from hikyuu_qlib.domain.errors import DataFormatError
from hikyuu_qlib.domain.model import IMPORTANCE_ARTIFACT, Model
from hikyuu_qlib.ports import ModelFiles

Importance = dict[str, dict[str, float]]

#: What each kind means (one definition for every place that shows it).
KINDS = {
    "gain": "total loss reduction of the splits on the feature",
    "split": "number of splits on the feature",
    "coef": "the feature's coefficient (features normalised by the preset's processors)",
    "prediction_values_change": "CatBoost's PredictionValuesChange: mean change of the prediction (sums to 100)",
}


def encode_importance(importance: Mapping[str, Mapping[str, float]]) -> bytes:
    doc = {"kinds": {kind: {k: float(v) for k, v in values.items()} for kind, values in importance.items()}}
    return json.dumps(doc, sort_keys=True, allow_nan=False).encode()


def decode_importance(data: bytes) -> Importance:
    try:
        doc = json.loads(data)
        kinds = doc["kinds"]
        return {str(kind): {str(k): float(v) for k, v in values.items()} for kind, values in kinds.items()}
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise DataFormatError(f"not a feature importance file: {exc}") from None


def load_importance(model: Model, artifacts: ModelFiles) -> Importance | None:
    ref = model.artifacts.get(IMPORTANCE_ARTIFACT)
    return None if ref is None else decode_importance(artifacts.get_bytes(ref))


def top(importance: Mapping[str, Mapping[str, float]], kind: str, n: int = 20) -> list[tuple[str, float]]:
    """The ``n`` largest values of one kind, largest first (by magnitude, for coefficients)."""
    values = importance.get(kind, {})
    return sorted(values.items(), key=lambda kv: abs(kv[1]), reverse=True)[:n]


def summary(importance: Mapping[str, Mapping[str, float]], n: int = 20) -> dict[str, Any]:
    """Per kind: the top ``n`` features as ``[{"feature", "value"}]`` (what ``hq model show`` prints)."""
    return {kind: [{"feature": f, "value": v} for f, v in top(importance, kind, n)] for kind in importance}
