"""Where the MCP peers that ``scripts/mcp-peers.sh`` installs are found.

The npm servers live in ``.mcp-peers/node_modules/.bin`` of the repository (or of
``$LOOM_MCP_PEERS``, a directory holding ``node_modules``); ``mcp-server-time`` is in the
virtual environment's ``bin``.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

__all__ = ["PEERS_ENV", "find_peer", "peers_dir"]

PEERS_ENV = "LOOM_MCP_PEERS"


def peers_dir() -> Path | None:
    """The ``.mcp-peers`` directory: ``$LOOM_MCP_PEERS``, else the first one found upward
    from the working directory or from this package (a development checkout)."""
    configured = os.environ.get(PEERS_ENV)
    if configured:
        return Path(configured)
    for start in (Path.cwd(), Path(__file__).resolve().parent):
        for folder in (start, *start.parents):
            candidate = folder / ".mcp-peers"
            if (candidate / "node_modules").is_dir():
                return candidate
    return None


def find_peer(name: str) -> Path | None:
    """The executable of an installed peer (``mcp-server-everything``, ``mcp-server-time``,
    ...), or None when it is not installed."""
    folder = peers_dir()
    if folder is not None:
        candidate = folder / "node_modules" / ".bin" / name
        if candidate.exists():
            return candidate
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return beside
    found = shutil.which(name)
    return Path(found) if found else None
