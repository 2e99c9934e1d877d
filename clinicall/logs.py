"""Logging: plain text or one JSON object per line, always with UTC timestamps; each line written
while a request is served carries its request id, user and client address."""

from __future__ import annotations

import contextvars
import datetime as dt
import json
import logging
import sys
from typing import Any

from clinicall.settings import Settings

REQUEST_CONTEXT: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar("clinicall_request", default=None)
CONTEXT_FIELDS = ("request_id", "user", "client")


def utc_timestamp(record: logging.LogRecord) -> str:
    return dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class RequestContext(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        context = REQUEST_CONTEXT.get() or {}
        for name in CONTEXT_FIELDS:
            setattr(record, name, context.get(name, ""))
        return True


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = f"{utc_timestamp(record)} {record.levelname} {record.name}: {record.getMessage()}"
        context = " ".join(f"{n}={getattr(record, n)}" for n in CONTEXT_FIELDS if getattr(record, n, ""))
        if context:
            line += f" [{context}]"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        body: dict[str, Any] = {"ts": utc_timestamp(record), "level": record.levelname, "logger": record.name,
                                "msg": record.getMessage()}
        for name in CONTEXT_FIELDS:
            if value := getattr(record, name, ""):
                body[name] = value
        if record.exc_info:
            body["exc"] = self.formatException(record.exc_info)
        return json.dumps(body, ensure_ascii=False)


def configure_logging(settings: Settings) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RequestContext())
    handler.setFormatter(JsonFormatter() if settings.log_format == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level)
    for noisy in ("aiohttp.access", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
