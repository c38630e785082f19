"""Models side by side (``hq model compare``): segment metrics and the last backtest's statistics.

The figures are the ones each record holds, under the names they have there: per segment the metrics of
:func:`hikyuu_qlib.modelling.service.segment_metrics`, and ``metrics["backtest"]`` (the flattened
statistics document of ``hq backtest run --model``, see :mod:`hikyuu_qlib.backtest.measures`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hikyuu_qlib.domain.model import Model

SEGMENT_METRICS = ("ic", "icir", "rank_ic", "rank_icir", "mse_raw_label", "mse_learn_label")
SEGMENTS = ("train", "valid", "test")


def comparison(models: Sequence[Model]) -> dict[str, Any]:
    """The comparison document: one entry per model, and the row order of the measures."""
    entries = []
    backtest_keys: list[str] = []
    for m in models:
        segments = {
            name: {k: m.metrics[name].get(k) for k in SEGMENT_METRICS if k in m.metrics[name]}
            for name in SEGMENTS
            if isinstance(m.metrics.get(name), dict)
        }
        backtest = m.metrics.get("backtest") if isinstance(m.metrics.get("backtest"), dict) else None
        for key in backtest or {}:
            if key not in backtest_keys and isinstance(backtest[key], int | float):  # type: ignore[index]
                backtest_keys.append(key)
        entries.append(
            {
                "id": m.id,
                "name": m.name,
                "version": m.version,
                "model_type": m.model_type.value,
                "preset": m.hyperparameters.get("preset"),
                "status": m.status.value,
                "universe": m.universe,
                "segments_dates": m.segments.to_json(),
                "best_iteration": m.metrics.get("best_iteration"),
                "segments": segments,
                "backtest": backtest,
            }
        )
    return {"models": entries, "segment_metrics": list(SEGMENT_METRICS), "backtest_measures": backtest_keys}


def comparison_rows(doc: dict[str, Any]) -> list[tuple[str, list[str]]]:
    """``(measure, one text per model)`` rows for a table."""
    models = doc["models"]
    rows: list[tuple[str, list[str]]] = [
        ("type", [str(m["model_type"]) for m in models]),
        ("preset", [str(m["preset"] or "") for m in models]),
    ]
    for segment in SEGMENTS:
        for metric in doc["segment_metrics"]:
            values = [m["segments"].get(segment, {}).get(metric) for m in models]
            if any(v is not None for v in values):
                rows.append((f"{segment} {metric}", [_text(v) for v in values]))
    for key in doc["backtest_measures"]:
        rows.append((f"backtest {key}", [_text((m["backtest"] or {}).get(key)) for m in models]))
    return rows


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)
