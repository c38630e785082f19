"""Job bodies: one schema per kind, built from the workflow file's own schemas (unknown keys refused).

``POST /v1/jobs`` takes ``{"kind": "train" | "evaluate" | "backtest" | "workflow", …}``; the ``kind``
picks the schema. A train job has the workflow file's model, processors and segments; a backtest job its
backtest configuration; a workflow job a whole workflow file under ``config``.
The source of every job is the server's own: a body may name it, or nothing (another is refused).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, model_validator

from hikyuu_qlib.backtest.config import BacktestConfig
from hikyuu_qlib.workflow.config import ModelSpec, Processors, WorkflowConfig, WorkflowSegments

#: A model id (26 characters) or a unique prefix of one (at least 4).
ModelRef = Annotated[str, Field(min_length=4, max_length=26, pattern=r"^[0-9A-Za-z]+$")]
Universe = Annotated[str, Field(min_length=1, max_length=200)]
Source = Annotated[str, Field(min_length=1, max_length=1000)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Dated(_Body):
    start: dt.date | None = None
    end: dt.date | None = None

    @model_validator(mode="after")
    def _ordered(self) -> _Dated:
        if self.start is not None and self.end is not None and self.start > self.end:
            raise ValueError(f"start {self.start} is after end {self.end}")
        return self


class TrainJob(_Body):
    """Train a model on a universe and register it (``hq model train``)."""

    kind: Literal["train"]
    source: Source | None = None
    universe: Universe = "csi300"
    factors: Literal["alpha158"] = "alpha158"
    processors: Processors = Field(default_factory=Processors)
    model: ModelSpec = Field(default_factory=ModelSpec)
    segments: WorkflowSegments
    num_boost_round: Annotated[int | None, Field(ge=1, le=100_000)] = None


class EvaluateJob(_Dated):
    """The IC report of a registered model (``hq model evaluate``); dates default to its test segment."""

    kind: Literal["evaluate"]
    model: ModelRef
    source: Source | None = None
    universe: Universe | None = None


class BacktestJob(_Dated):
    """Predict with a registered model and backtest TopkDropout on the predictions (``hq backtest run``);
    ``backtest`` is the workflow file's one backtest configuration (strategy, rules, costs, account). The
    summary is stored with the model."""

    kind: Literal["backtest"]
    model: ModelRef
    source: Source | None = None
    universe: Universe | None = None
    backtest: BacktestConfig = Field(default_factory=BacktestConfig)

    @model_validator(mode="after")
    def _dates_given(self) -> BacktestJob:
        if self.start is None or self.end is None:
            raise ValueError("a backtest job needs start and end")
        return self


class WorkflowJob(_Body):
    """A whole workflow file (``hq run``); its outputs go under the server's home, not ``outputs.dir``."""

    kind: Literal["workflow"]
    config: WorkflowConfig
    force: bool = False


JobBody = Annotated[TrainJob | EvaluateJob | BacktestJob | WorkflowJob, Field(discriminator="kind")]
JOB_BODY: TypeAdapter[TrainJob | EvaluateJob | BacktestJob | WorkflowJob] = TypeAdapter(JobBody)


def body_source(body: TrainJob | EvaluateJob | BacktestJob | WorkflowJob) -> str | None:
    """The source a body names, if any."""
    return body.config.source if isinstance(body, WorkflowJob) else body.source
