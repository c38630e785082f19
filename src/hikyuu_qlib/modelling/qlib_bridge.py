"""Qlib bridge (optional extra ``qlib``): our stores and features as a Qlib handler and dataset.

:func:`make_handler` builds a ``qlib.data.dataset.handler.DataHandlerLP`` whose loader is a
``StaticDataLoader`` over features we computed (``compute_features`` on any feature source: a Qlib store,
or Hikyuu/synthetic bars through :class:`~hikyuu_qlib.modelling.bars_source.BarsFeatureSource`), in the
layout Qlib's own handlers produce: index ``(datetime, instrument)``, columns ``("feature", name)`` and
``("label", "LABEL0")``, float32. Processors are Qlib's own (default: Alpha158's — infer none; learn
``DropnaLabel``, ``CSZScoreNorm(label)``). :func:`make_dataset` wraps it in ``DatasetH`` with segments, so
any Qlib model trains on it, e.g. ``qlib.contrib.model.gbdt.LGBModel`` or
``qlib.contrib.model.double_ensemble.DEnsembleModel``. The data never goes through Qlib's provider, so
``qlib.init`` is needed only for what the model itself uses (``R.log_metrics`` in ``LGBModel.fit``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import polars as pl

from hikyuu_qlib.domain import DateRange
from hikyuu_qlib.domain.errors import InvalidInputError
from hikyuu_qlib.domain.segments import Segments
from hikyuu_qlib.factors.label import LABEL
from hikyuu_qlib.factors.pipeline import compute_features
from hikyuu_qlib.factors.processors import feature_columns
from hikyuu_qlib.factors.universe import Universe
from hikyuu_qlib.ports import Cache, FeatureSource


def to_qlib_frame(
    frame: pl.DataFrame, features: Sequence[str] | None = None, label: str | None = LABEL
) -> Any:
    """A features frame → Qlib's handler layout (pandas; MultiIndex rows and columns, float32)."""
    import pandas as pd  # type: ignore[import-untyped,unused-ignore]

    names = list(features) if features is not None else feature_columns(frame)
    ordered = frame.sort("datetime", "code")
    index = pd.MultiIndex.from_arrays(
        [
            pd.DatetimeIndex(
                ordered.get_column("datetime").cast(pl.Datetime("ns")).to_numpy(), name="datetime"
            ),
            pd.Index(ordered.get_column("code").to_numpy(), name="instrument"),
        ]
    )
    values = ordered.select([pl.col(c).cast(pl.Float32) for c in names]).to_numpy()
    columns = [("feature", n) for n in names]
    if label is not None and label in frame.columns:
        values = np.column_stack([values, ordered.get_column(label).cast(pl.Float32).to_numpy()])
        columns.append(("label", label))
    return pd.DataFrame(values, index=index, columns=pd.MultiIndex.from_tuples(columns))


def default_learn_processors() -> list[Any]:
    """Qlib's Alpha158 default learn processors (as Qlib's objects)."""
    from qlib.data.dataset.processor import CSZScoreNorm, DropnaLabel

    return [DropnaLabel(), CSZScoreNorm(fields_group="label")]


def make_handler(
    store: FeatureSource,
    universe: Universe,
    dates: DateRange,
    *,
    factor_set: str = "alpha158",
    infer_processors: Sequence[Any] = (),
    learn_processors: Sequence[Any] | None = None,
    fit_dates: DateRange | None = None,
    cache: Cache | None = None,
    frame: pl.DataFrame | None = None,
) -> Any:
    """A Qlib ``DataHandlerLP`` over our features of ``universe`` within ``dates`` (or over ``frame``).

    ``infer_processors``/``learn_processors`` are Qlib processors (objects or config dicts); learnable ones
    are fitted on ``fit_dates`` (default: all of ``dates``), as Qlib's ``fit_start_time``/``fit_end_time``.
    """
    from qlib.data.dataset.handler import DataHandlerLP
    from qlib.data.dataset.loader import StaticDataLoader
    from qlib.data.dataset.processor import Processor

    data = frame if frame is not None else compute_features(store, universe, dates, factor_set, cache=cache)
    if data.is_empty():
        raise InvalidInputError(f"no features for {universe.name} in {dates}")
    fit = fit_dates or dates
    learn = default_learn_processors() if learn_processors is None else list(learn_processors)
    for proc in [*infer_processors, *learn]:
        if isinstance(proc, Processor) and hasattr(proc, "fit_start_time"):
            proc.fit_start_time, proc.fit_end_time = fit.start, fit.end
    return DataHandlerLP(
        instruments=None,
        start_time=dates.start,
        end_time=dates.end,
        data_loader=StaticDataLoader(config=to_qlib_frame(data)),
        infer_processors=list(infer_processors),
        learn_processors=learn,
        process_type=DataHandlerLP.PTYPE_A,
    )


def make_dataset(
    store: FeatureSource,
    universe: Universe,
    segments: Segments | Mapping[str, DateRange],
    **handler_options: Any,
) -> Any:
    """A Qlib ``DatasetH`` with our handler over all ``segments`` (processors fitted on ``train``)."""
    from qlib.data.dataset import DatasetH

    segments = Segments.of(segments)
    if "train" not in segments:
        raise InvalidInputError("a dataset needs a train segment")
    handler_options.setdefault("fit_dates", segments["train"])
    handler = make_handler(store, universe, segments.span(), **handler_options)
    return DatasetH(handler, segments={name: (span.start, span.end) for name, span in segments.items()})
