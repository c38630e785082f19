"""What instrumented code is given: the metrics and the tracing of one process entrypoint.

The composition root builds it (:func:`hikyuu_qlib.app.open_telemetry`) and passes it to the adapters it
opens (registry, market data clients, feature source, research context); code given none uses
:meth:`Telemetry.disabled`, whose recording does nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

from hikyuu_qlib.observability.recording import Metrics
from hikyuu_qlib.observability.tracing import AttributeValue, Tracing


@dataclass(frozen=True, eq=False)
class Telemetry:
    """Metrics (:class:`~.metrics.Metrics`, switched off or Prometheus) and tracing (:class:`~.tracing.Tracing`)."""

    metrics: Metrics = field(default_factory=Metrics)
    tracing: Tracing = field(default_factory=Tracing.disabled)

    @classmethod
    def disabled(cls) -> Telemetry:
        """Nothing recorded, nothing traced."""
        return _DISABLED

    @property
    def active(self) -> bool:
        """Whether anything is recorded (instrumented code may skip its timing when not)."""
        return self.metrics.enabled or self.tracing.enabled

    def span(
        self, name: str, attributes: Mapping[str, AttributeValue] | None = None
    ) -> AbstractContextManager[Any]:
        """See :meth:`Tracing.span`."""
        return self.tracing.span(name, attributes)

    def close(self) -> None:
        """Export buffered spans and stop the exporters."""
        self.tracing.shutdown()


_DISABLED = Telemetry()
