"""The typed task a worker runs: train (or reuse) one model and score some of its segments.

A task is plain JSON: the workflow document of the one model to train (its segments, model, processors
…), the registry URL, the settings and the tags to record. Its id is the run id of that document and
the data version (:meth:`WorkflowConfig.run_id`), the same id an ``hq run`` of the document has, so a
model trained once is found again by its ``run_id`` tag and never trained twice.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any

import polars as pl
from pydantic import BaseModel, ConfigDict

from hikyuu_qlib.domain.segments import SEGMENT_NAMES


class TrainTask(BaseModel):
    """One model to train and the segments to score with it (JSON in, JSON out: no pickled payload)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    task_id: str
    config: dict[str, Any]  # the task's workflow document (WorkflowConfig, mode="json")
    tags: dict[str, str] = {}
    score: tuple[str, ...] = ("test",)
    keep_degenerate: bool = False  # a degenerate model is a result (sweeps), not an error (rolling)
    db: str
    settings: dict[str, Any]

    def label(self) -> str:
        return self.tags.get("window") or self.tags.get("trial") or self.task_id

    def check(self) -> None:
        unknown = [name for name in self.score if name not in SEGMENT_NAMES]
        if unknown:
            raise ValueError(f"unknown segment(s) to score: {unknown}")


@dataclass
class TaskResult:
    """What a task hands back: the model, whether it was reused, its metrics and the scores (Arrow IPC
    bytes per segment, so that they reach the driver bit for bit)."""

    task_id: str
    model_id: str
    reused: bool
    metrics: dict[str, Any]
    predictions: dict[str, bytes] = field(default_factory=dict)
    seconds: float = 0.0
    worker_pid: int = 0
    failure: str | None = None  # why the model is degenerate (recorded failed; no predictions)
    #: where the task's seconds went: open (its process's context), load (the shared features), fit
    #: (train and register, or find the registered model), score
    phases: dict[str, float] = field(default_factory=dict)
    loaded_shared: bool = False  # whether this task read the shared features into its process

    def run_doc(self) -> dict[str, Any]:
        """Where and how the task ran (no scores): for the drivers' outputs."""
        return {
            "task_id": self.task_id,
            "model_id": self.model_id,
            "reused": self.reused,
            "worker_pid": self.worker_pid,
            "seconds": self.seconds,
            "phases": self.phases,
            "loaded_shared": self.loaded_shared,
        }

    def frame(self, segment: str) -> pl.DataFrame:
        return frame_from_bytes(self.predictions[segment])


def frame_to_bytes(frame: pl.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.write_ipc(buffer, compression="uncompressed")
    return buffer.getvalue()


def frame_from_bytes(data: bytes) -> pl.DataFrame:
    return pl.read_ipc(io.BytesIO(data))
