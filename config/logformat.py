"""Log formats: plain text for a terminal, one JSON object a line for log pipelines.

`LOG_FORMAT=json` switches every handler to `JsonFormatter`. Engine log lines
carry `execution`, `node` and `attempt` as `extra`, so both formats show them:
the JSON one as fields, the plain one as `key=value` after the message.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

CONTEXT = ("execution", "node", "attempt", "worker", "error_class")


def _context(record: logging.LogRecord) -> dict:
    return {key: str(getattr(record, key)) if key == "execution" else getattr(record, key)
            for key in CONTEXT if getattr(record, key, None) is not None}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {"ts": datetime.fromtimestamp(record.created, UTC).isoformat(
            timespec="milliseconds"), "level": record.levelname, "logger": record.name,
            "message": record.getMessage(), **_context(record)}
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class PlainFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        context = _context(record)
        if context and not all(f"{k}=" in record.getMessage() for k in context):
            text += " " + " ".join(f"{k}={v}" for k, v in context.items())
        return text
