"""Fixtures for the loom-mcp tests: the real MCP peers, a broker, a session manager.

The npm peers (server-everything, server-filesystem, the inspector CLI) and the PyPI one
(mcp-server-time) are installed by ``scripts/mcp-peers.sh``; a test that needs one that is
missing skips and says how to install it. The servers under ``servers/`` are real MCP
servers too (the SDK's, and a hand-written JSON-RPC one that misbehaves on purpose).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from loom.actions import ActionBroker
from loom.bus import MemoryBus
from loom_mcp import McpSessionManager
from loom_mcp._peers import find_peer

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
SERVERS = HERE / "servers"
PLUGINS = HERE / "plugins"
INSTALL_HINT = "run scripts/mcp-peers.sh to install the MCP peers"


def _missing(reason: str) -> None:
    # CI installs every peer: there a missing one is a broken setup, not a skip.
    if os.environ.get("CI", "") not in ("", "0", "false"):
        pytest.fail(f"{reason} (CI installs the peers with scripts/mcp-peers.sh)")
    pytest.skip(reason)


def _peer(name: str, needs_node: bool) -> Path:
    if needs_node and shutil.which("node") is None:
        _missing(f"node is not installed, so {name} cannot run ({INSTALL_HINT})")
    path = find_peer(name)
    if path is None:
        _missing(f"{name} is not installed ({INSTALL_HINT})")
    assert path is not None
    return path


@pytest.fixture
def everything_bin() -> Path:
    """server-everything's executable (npm)."""
    return _peer("mcp-server-everything", needs_node=True)


@pytest.fixture
def filesystem_bin() -> Path:
    """server-filesystem's executable (npm)."""
    return _peer("mcp-server-filesystem", needs_node=True)


@pytest.fixture
def inspector_bin() -> Path:
    """The MCP inspector CLI's executable (npm)."""
    return _peer("mcp-inspector-cli", needs_node=True)


@pytest.fixture
def time_bin() -> Path:
    """mcp-server-time's executable (PyPI)."""
    return _peer("mcp-server-time", needs_node=False)


def python_server(name: str, *args: str) -> dict[str, object]:
    """Config entries (command, args) for one of the servers under ``servers/``."""
    return {"command": sys.executable, "args": [str(SERVERS / f"{name}.py"), *args]}


@pytest.fixture
async def broker() -> AsyncIterator[ActionBroker]:
    async with ActionBroker(default_timeout_ms=10_000) as broker:
        yield broker


@pytest.fixture
async def bus() -> AsyncIterator[MemoryBus]:
    async with MemoryBus() as bus:
        yield bus


@pytest.fixture
async def manager(broker: ActionBroker) -> AsyncIterator[McpSessionManager]:
    async with McpSessionManager(broker) as manager:
        yield manager


async def wait_for(predicate: Callable[[], object], timeout: float = 10.0, what: str = "") -> None:
    """Poll ``predicate`` until it is true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        await asyncio.sleep(0.02)


def reaped(pid: int) -> bool:
    """Whether ``pid`` has exited and been reaped (neither running nor a zombie)."""
    return not Path(f"/proc/{pid}").exists()


def child_pids() -> set[int]:
    """The pids of this process's children (running or zombie)."""
    pids: set[int] = set()
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        try:
            pids.update(int(p) for p in (task / "children").read_text().split())
        except FileNotFoundError:
            continue
    return pids
