"""Logging configuration for entrypoints: human or JSON lines, always on stderr.

Text logs go through Rich on a terminal; when stderr is a pipe or a file they are plain lines, one per
record and never wrapped, so they can be read back and searched.

A record logged while a trace span is current carries ``trace_id`` and ``span_id`` (hex, as trace
backends show them): fields of the JSON object, ``trace_id=… span_id=…`` at the end of a text line.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Literal

from hikyuu_qlib.observability.redact import RedactingFilter

LogFormat = Literal["text", "json"]

PLAIN_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
_RESERVED = frozenset(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}


class TraceFilter(logging.Filter):
    """Adds ``trace_id`` and ``span_id`` to a record when a span is current (nothing otherwise)."""

    def filter(self, record: logging.LogRecord) -> bool:
        from opentelemetry import trace

        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            record.trace_id = trace.format_trace_id(context.trace_id)
            record.span_id = trace.format_span_id(context.span_id)
        return True


class TextFormatter(logging.Formatter):
    """The message, then ``trace_id=… span_id=…`` when the record has them."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        trace_id = getattr(record, "trace_id", None)
        if trace_id:
            text += f" trace_id={trace_id} span_id={getattr(record, 'span_id', '')}"
        return text


class JsonFormatter(logging.Formatter):
    """One JSON object a line, with the record's extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _RESERVED and not key.startswith("_"):
                payload[key] = value
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str, ensure_ascii=False)


def configure_logging(level: str = "INFO", fmt: LogFormat = "text") -> None:
    """Send the package's logs to stderr; replaces earlier handlers set by this function."""
    root = logging.getLogger("hikyuu_qlib")
    for old in list(root.handlers):
        if getattr(old, "_hq", False):
            root.removeHandler(old)
    handler: logging.Handler
    if fmt == "json":
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
    elif sys.stderr.isatty():
        from rich.console import Console
        from rich.logging import RichHandler

        handler = RichHandler(console=Console(stderr=True), show_path=False, rich_tracebacks=False)
        handler.setFormatter(TextFormatter("%(message)s"))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(TextFormatter(PLAIN_FORMAT, datefmt="%Y-%m-%d %H:%M:%S"))
    handler.addFilter(TraceFilter())
    handler.addFilter(RedactingFilter())  # no password of a URL reaches a log line
    setattr(handler, "_hq", True)  # noqa: B010 - marks handlers this function owns
    root.addHandler(handler)
    root.setLevel(level.upper())
    root.propagate = False
