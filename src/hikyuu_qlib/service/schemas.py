"""Response documents of the API, as OpenAPI schemas (the routes write them with orjson directly)."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

#: A stock code as the API takes it: SH600000, sh600000, SH.600000 or 600000.SH (SH, SZ, BJ).
CODE_PATTERN = r"(?:[Ss][HhZz]|[Bb][Jj])\.?[0-9]{6}|[0-9]{6}\.(?:[Ss][HhZz]|[Bb][Jj])"
#: A whole model id (a ULID, Crockford base32).
MODEL_ID_PATTERN = r"^[0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{26}$"
#: A model id or a unique prefix of one.
MODEL_REF_PATTERN = r"^[0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{1,26}$"


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ArtifactOut(_Doc):
    uri: str
    sha256: str
    size: int


class ModelOut(_Doc):
    """A model record of the registry."""

    id: str
    name: str
    version: int
    model_type: str
    status: Literal["created", "training", "trained", "deployed", "archived", "failed"]
    hyperparameters: dict[str, Any]
    feature_set: str
    universe: str
    segments: dict[str, list[str]]
    label: str
    metrics: dict[str, Any]
    artifact: ArtifactOut | None
    artifacts: dict[str, ArtifactOut]
    tags: dict[str, str]
    config_hash: str
    created_at: str
    updated_at: str


class ModelPage(_Doc):
    models: list[ModelOut]
    next_page_token: str | None = Field(description="the page_token of the next page; null on the last")


class FeatureValue(_Doc):
    feature: str
    value: float


class ImportanceOut(_Doc):
    """A model's feature importance: per kind (gain, split, coef …) its largest features."""

    model_id: str
    top: int = Field(description="features per kind at most (the top ones by magnitude)")
    importance: dict[str, list[FeatureValue]] = Field(description="per kind, the top features, largest first")
    features: dict[str, int] = Field(description="per kind, how many features the model holds")
    kinds: dict[str, str] = Field(description="what each kind measures")


class Transition(_Doc):
    to: Literal["created", "training", "trained", "deployed", "archived", "failed"] = "deployed"


class TransitionOut(_Doc):
    id: str
    from_: str = Field(alias="from")
    to: str
    model: ModelOut


class StockOut(_Doc):
    code: str
    market: str
    symbol: str
    name: str | None
    type: int | None
    valid: bool | None
    start_date: str | None
    end_date: str | None
    lot: int | None
    tick: float | None
    has_data: bool


class StockPage(_Doc):
    stocks: list[StockOut]
    total_size: int = Field(description="stocks matching the filters, all pages")
    next_page_token: str | None
    source: str = Field(description="the store the stocks were listed from")


class CodeError(_Doc):
    type: str = Field(description="the error's type, e.g. UnknownCodeError")
    message: str


class BarOut(BaseModel):
    model_config = ConfigDict(extra="allow")

    code: str
    datetime: str = Field(description="ISO 8601, exchange local time")
    open: float | None
    high: float | None
    low: float | None
    close: float | None
    volume: float | None
    amount: float | None = None


class BarsOut(_Doc):
    rows: int
    errors: dict[str, CodeError] = Field(description="codes that failed, with their error (not in bars)")
    without_bars: list[str] = Field(description="codes the store lists but holds no bars for")
    source: str = Field(description="the store the bars were read from")
    bars: list[BarOut]


class MemberOut(_Doc):
    code: str
    start: str
    end: str


class MembersOut(_Doc):
    universe: str
    date: str | None
    rows: int
    members: list[MemberOut]


class PredictionRequest(_Doc):
    model: str = Field(pattern=MODEL_REF_PATTERN, description="a model id or a unique prefix of one")
    universe: str | None = Field(None, min_length=1, max_length=200, description="default: the model's")
    start: dt.date = Field(description="first day")
    end: dt.date = Field(description="last day")

    @model_validator(mode="after")
    def _ordered(self) -> PredictionRequest:
        if self.start > self.end:
            raise ValueError(f"start {self.start} is after end {self.end}")
        return self


class ScoreOut(_Doc):
    datetime: str
    code: str
    score: float | None


class PredictionsOut(_Doc):
    rows: int
    model_id: str
    universe: str
    errors: dict[str, CodeError]
    scores: list[ScoreOut]


class JobLinks(_Doc):
    self: str
    model: str | None = None


class JobOut(_Doc):
    id: str
    kind: Literal["train", "evaluate", "backtest", "workflow"]
    status: Literal["queued", "running", "succeeded", "failed", "cancelled"]
    progress: float = Field(ge=0, le=1, description="fraction done of the current stage")
    stage: str | None
    cancel_requested: bool
    created_at: str
    started_at: str | None
    finished_at: str | None
    timings: dict[str, float | None]
    result: dict[str, Any] | None
    error: dict[str, Any] | None
    body: dict[str, Any]
    links: JobLinks


class JobPage(_Doc):
    jobs: list[JobOut]
    next_page_token: str | None


class Health(_Doc):
    status: Literal["ok"]
    version: str


class Check(_Doc):
    ok: bool
    detail: str
    seconds: float


class Ready(_Doc):
    status: Literal["ready", "unavailable"]
    checks: dict[str, Check]
