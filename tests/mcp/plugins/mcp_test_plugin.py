"""A Loom plugin for the server-mode tests (``loom mcp serve --plugin mcp_test_plugin``)."""

from __future__ import annotations

import logging

from loom import hookimpl
from loom.actions import capability


@capability("text.upper", description="Upper-case a text")
async def upper(text: str) -> str:
    return text.upper()


@capability("math.divide", description="Divide a by b")
def divide(a: float, b: float) -> float:
    return a / b


@capability("test.log", description="Log MESSAGE COUNT times at LEVEL on loom.test")
def log_lines(level: str, message: str, count: int = 1) -> int:
    logger = logging.getLogger("loom.test.plugin")
    levelno = logging.getLevelName(level.upper())
    for n in range(count):
        logger.log(levelno, "%s %d", message, n)
    return count


@hookimpl
def loom_capabilities():
    return [upper.contribution, divide.contribution, log_lines.contribution]
