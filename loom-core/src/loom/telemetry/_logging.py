"""Structured logs: one JSON object per line, with the trace and span ids of the span
current when the record was made.

Loom's own log calls put structured fields in ``extra=`` (the router's ``routing``, the
LLM client's ``provider``/``endpoint``/``attempt``); the formatter writes them as JSON
fields. Values under keys that name secrets (``api_key``, ``authorization``, ``token``,
``password``, ``secret``, ...) are masked wherever they appear.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Mapping
from typing import IO, Any

__all__ = ["JsonFormatter", "TraceContextFilter", "install_json_handler", "json_logging"]

# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "trace_id",
    "span_id",
    "trace_flags",
    "taskName",
}
_SECRET_WORDS = ("api_key", "apikey", "authorization", "password", "secret", "token", "cookie")
_MASK = "***"


def _secret(key: str) -> bool:
    lowered = key.lower().replace("-", "_")
    return any(word in lowered for word in _SECRET_WORDS) and not lowered.endswith("_tokens")


def _masked(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _MASK if _secret(str(k)) else _masked(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_masked(v) for v in value]
    return value


def _trace_ids() -> tuple[str, str] | None:
    """The current span's ids as hex, or None; never loads OpenTelemetry by itself."""
    if "opentelemetry.trace" not in sys.modules:
        return None  # no span can be current if OpenTelemetry was never imported
    from opentelemetry import trace

    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return f"{context.trace_id:032x}", f"{context.span_id:016x}"


class TraceContextFilter(logging.Filter):
    """Adds ``trace_id`` and ``span_id`` to every record ("" outside a span), so a text
    format can show them: ``%(trace_id)s``."""

    def filter(self, record: logging.LogRecord) -> bool:
        ids = _trace_ids()
        record.trace_id, record.span_id = ids if ids is not None else ("", "")
        return True


class JsonFormatter(logging.Formatter):
    """Formats a record as one line of JSON.

    Fields: ``ts`` (UTC, ISO 8601 with milliseconds), ``level``, ``logger``, ``message``,
    ``trace_id`` and ``span_id`` inside a span, ``exception`` (the traceback) when there
    is one, and every ``extra=`` field, with secrets masked.

    Example:
        >>> import logging
        >>> record = logging.LogRecord("loom.demo", logging.INFO, __file__, 1, "hi %s", ("you",),
        ...                            None)
        >>> record.api_key = "sk-123"
        >>> '"api_key": "***"' in JsonFormatter().format(record)
        True
    """

    def format(self, record: logging.LogRecord) -> str:
        created = time.gmtime(record.created)
        document: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", created) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        ids = _trace_ids()
        trace_id = getattr(record, "trace_id", "") or (ids[0] if ids else "")
        span_id = getattr(record, "span_id", "") or (ids[1] if ids else "")
        if trace_id:
            document["trace_id"] = trace_id
            document["span_id"] = span_id
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                document[key] = _MASK if _secret(key) else _masked(value)
        if record.exc_info:
            document["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            document["exception"] = record.exc_text
        if record.stack_info:
            document["stack"] = self.formatStack(record.stack_info)
        return json.dumps(document, default=str, ensure_ascii=False)


class _JsonHandler(logging.StreamHandler):  # type: ignore[type-arg]  # stream type varies
    """The handler :func:`json_logging` installs (recognised when installing again)."""


def json_logging(
    level: int | str | None = None,
    *,
    stream: IO[str] | None = None,
    logger: str = "",
) -> logging.Handler:
    """Log as JSON lines: install one JSON handler on ``logger``.

    Plain stream handlers on that logger (what ``logging.basicConfig`` installs) and a
    JSON handler installed before are removed, so every line on the stream is JSON and
    calling this again is harmless; other handlers (files, pytest's capture, rich) stay.

    Args:
        level: the logger's level, if it should change.
        stream: where lines go (stderr by default).
        logger: the logger's name ("" for the root logger).

    Returns:
        The handler installed (remove it with ``logging.getLogger(logger).removeHandler``).
    """
    return install_json_handler(level, stream=stream, logger=logger)[0]


def install_json_handler(
    level: int | str | None = None,
    *,
    stream: IO[str] | None = None,
    logger: str = "",
) -> tuple[logging.Handler, list[logging.Handler]]:
    """:func:`json_logging`, also returning the handlers it removed (to put them back)."""
    target = logging.getLogger(logger)
    removed = [
        h
        for h in target.handlers
        if isinstance(h, _JsonHandler) or type(h) is logging.StreamHandler
    ]
    for handler in removed:
        target.removeHandler(handler)
    handler = _JsonHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter())
    target.addHandler(handler)
    if level is not None:
        target.setLevel(level)
    return handler, [h for h in removed if not isinstance(h, _JsonHandler)]
