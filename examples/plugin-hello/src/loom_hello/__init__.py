"""An example third-party Loom plugin."""

from __future__ import annotations

__all__ = ["greet"]


def greet(name: str = "world") -> str:
    """The greeting the plugin's capability and command give."""
    return f"Hello, {name}!"
