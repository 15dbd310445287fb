"""A Loom plugin for the server-mode tests (``loom mcp serve --plugin mcp_test_plugin``)."""

from __future__ import annotations

from loom import hookimpl
from loom.actions import capability


@capability("text.upper", description="Upper-case a text")
async def upper(text: str) -> str:
    return text.upper()


@capability("math.divide", description="Divide a by b")
def divide(a: float, b: float) -> float:
    return a / b


@hookimpl
def loom_capabilities():
    return [upper.contribution, divide.contribution]
