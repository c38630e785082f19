"""Logging configuration for entrypoints: human or JSON lines, always on stderr.

Text logs go through Rich on a terminal; when stderr is a pipe or a file they are plain lines, one per
record and never wrapped, so they can be read back and searched.
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
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(PLAIN_FORMAT, datefmt="%Y-%m-%d %H:%M:%S"))
    handler.addFilter(RedactingFilter())  # no password of a URL reaches a log line
    setattr(handler, "_hq", True)  # noqa: B010 - marks handlers this function owns
    root.addHandler(handler)
    root.setLevel(level.upper())
    root.propagate = False
