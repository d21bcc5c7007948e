"""Log lines for people (``text``) or collectors (``json``: one object per line), the
same in every process of a node; `current_request_id` is the request being handled (the
HTTP processes set it, `web.logs`)."""

from __future__ import annotations

import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

import orjson

#: The id of the request being handled, for every log line written meanwhile.
current_request_id: ContextVar[str | None] = ContextVar("request_id", default=None)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the process's role
    (``http``, ``pipeline``, ``supervisor``) when it has one, the request id or a request
    log line's fields, and the traceback."""

    def __init__(self, process: str | None = None) -> None:
        super().__init__()
        self.process = process

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if self.process is not None:
            entry["process"] = self.process
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        else:
            request_id = current_request_id.get()
            if request_id is not None:
                entry["request_id"] = request_id
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


class TextFormatter(logging.Formatter):
    """The usual text line (with the process's role), with ``[request id]`` when one is
    being handled."""

    def __init__(self, process: str | None = None) -> None:
        role = f" {process}" if process else ""
        super().__init__(f"%(asctime)s{role} %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = getattr(record, "fields", None)
        request_id = (
            fields.get("request_id") if isinstance(fields, dict) else current_request_id.get()
        )
        return f"{line} [{request_id}]" if request_id else line


def configure_logging(
    log_format: str, level: int = logging.INFO, *, process: str | None = None
) -> None:
    """Send every log line to stderr in `log_format` (``json`` or ``text``), naming the
    process's role when given."""
    if log_format not in ("json", "text"):
        raise ValueError(f"log format must be json or text, not {log_format!r}")
    handler = logging.StreamHandler(sys.stderr)
    formatter = JsonFormatter(process) if log_format == "json" else TextFormatter(process)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
