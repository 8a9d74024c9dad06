"""Logging: ``key=value`` lines for people, one JSON object per line for machines.

Context such as job id, run id, worker id, space and source id is attached with :func:`log_context`
and appears on every line logged inside it.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_context: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar("holocron_log_context", default=None)


@contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    current = _context.get() or {}
    token = _context.set({**current, **{k: v for k, v in fields.items() if v is not None}})
    try:
        yield
    finally:
        _context.reset(token)


def current_context() -> dict[str, Any]:
    return dict(_context.get() or {})


class _ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.holocron_context = current_context()
        return True


REDACTED = "[redacted]"
_SECRET_KEY = re.compile(
    r"(?:^|[_-])(?:token|key|password|passwd|secret|authorization|cookie|credentials?)$", re.IGNORECASE
)
_SECRET_NAME = r"(?:[\w-]*(?:token|password|passwd|secret|authorization|apikey)|(?:[\w-]*[_-])?key)"
_SECRET_TEXT = re.compile(
    rf"(?P<kv>\b{_SECRET_NAME}[\"']?\s*[=:]\s*[\"']?(?:(?:bearer|basic)\s+)?)[^\s&,;\"']+"
    r"|(?P<head>\b(?:bearer|basic)\s+)[^\s,;\"']+"
    r"|(?P<url>://[^/\s:@]+:)[^@\s/]+@",
    re.IGNORECASE,
)


def redact_text(text: str) -> str:
    """Mask bearer tokens, ``token=...``-style values and passwords inside URLs."""

    def mask(match: re.Match[str]) -> str:
        head = match.group("head") or match.group("kv")
        if head:
            return head + REDACTED
        return f"{match.group('url')}{REDACTED}@"

    return _SECRET_TEXT.sub(mask, text)


def redact_fields(fields: dict[str, Any]) -> dict[str, Any]:
    """Fields whose name says they are secret lose their value; other string values are scrubbed."""
    return {
        key: REDACTED if _SECRET_KEY.search(key) else (redact_text(value) if isinstance(value, str) else value)
        for key, value in fields.items()
    }


class RedactingFilter(logging.Filter):
    """Nothing secret reaches a log line: neither in the message, its arguments, its context nor its fields."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed call; keep what logging would have shown
            message = str(record.msg)
        clean = redact_text(message)
        if clean != message or record.args:
            record.msg, record.args = clean, None
        context = getattr(record, "holocron_context", None)
        if context:
            record.holocron_context = redact_fields(context)
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            record.fields = redact_fields(fields)
        return True


def _quote(value: Any) -> str:
    text = str(value)
    return json.dumps(text, ensure_ascii=False) if (not text or any(c in text for c in ' ="\n')) else text


class KeyValueFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        fields = getattr(record, "holocron_context", {}) | getattr(record, "fields", {})
        extra = " ".join(f"{k}={_quote(v)}" for k, v in fields.items())
        line = f"{stamp} {record.levelname.lower():7} {record.getMessage()}" + (f"  {extra}" if extra else "")
        # Tracebacks only under --verbose, unless the line asks for its own (``extra={"with_traceback": True}``).
        wanted = getattr(record, "with_traceback", False) or logging.getLogger().isEnabledFor(logging.DEBUG)
        if record.exc_info and wanted:
            line += "\n" + redact_text(self.formatException(record.exc_info))
        return line


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            **getattr(record, "holocron_context", {}),
            **getattr(record, "fields", {}),
        }
        if record.exc_info:
            payload["error"] = redact_text(self.formatException(record.exc_info))
        return json.dumps(payload, default=str, ensure_ascii=False)


def configure_logging(log_format: str = "text", level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else KeyValueFormatter())
    handler.addFilter(_ContextFilter())
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in (
        "httpx",
        "httpcore",
        "sentence_transformers",
        "transformers",
        "alembic",
        "urllib3",
        "filelock",
    ):
        logging.getLogger(noisy).setLevel(logging.WARNING)
