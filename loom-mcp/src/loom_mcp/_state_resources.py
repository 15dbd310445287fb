"""Server mode: agents' persistent state as read-only MCP resources.

The agent runtime keeps each agent's keys in the state store under ``agent<NUL>{id}<NUL>``
(:meth:`loom.state.StateStore.for_agent`). Served here, with ids and keys percent-encoded:

- ``loom://agents/{agent_id}/state``: an index of the agent's keys, as JSON;
- ``loom://agents/{agent_id}/state/{key}``: one value: JSON (``application/json``), other
  UTF-8 text (``text/plain``), or bytes (a blob, ``application/octet-stream``).

Only ``get`` and ``scan`` of the store are ever called: MCP resources have no write, and
no handler here takes anything but a URI.
"""

from __future__ import annotations

import base64
import fnmatch
import json
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from typing import Any, NoReturn, Protocol
from urllib.parse import quote, unquote

import mcp_types
from mcp.shared.exceptions import MCPError

from loom.state import AGENT_NAMESPACE, NAMESPACE_SEPARATOR

__all__ = ["RESOURCE_NOT_FOUND", "STATE_URI_PREFIX", "AgentStateResources", "ReadableState"]

#: The JSON-RPC error code MCP gives "resource not found" (2025-06-18 spec, Resources).
RESOURCE_NOT_FOUND = -32002
STATE_URI_PREFIX = "loom://agents/"
_PAGE = 200
_INDEX_KEYS = 1000


class ReadableState(Protocol):
    """What is needed of a :class:`loom.state.StateStore`: reading, nothing else."""

    async def get(self, key: str) -> bytes | None:
        """The value under ``key``."""

    def scan(self, prefix: str = "") -> AsyncIterator[tuple[str, bytes]]:
        """The pairs under ``prefix``, in key order."""

    def namespace(self, name: str) -> Any:
        """A view of the store under ``name``."""


def state_uri(agent_id: str, key: str | None = None) -> str:
    """The URI of an agent's index (``key`` None) or of one of its keys."""
    uri = f"{STATE_URI_PREFIX}{quote(agent_id, safe='')}/state"
    return uri if key is None else f"{uri}/{quote(key, safe='')}"


class AgentStateResources:
    """Lists and reads agents' state as MCP resources; see the module docstring.

    Args:
        store: the app's state store (only read).
        include: glob patterns of agent ids whose state is served.
        agents: ids of the running agents, listed even before they stored anything.
    """

    def __init__(
        self,
        store: ReadableState,
        *,
        include: Sequence[str] = ("*",),
        agents: Callable[[], Iterable[str]] | None = None,
    ) -> None:
        self._agents_view = store.namespace(AGENT_NAMESPACE)
        self._include = tuple(include) or ("*",)
        self._running = agents

    def _served(self, agent_id: str) -> bool:
        return any(fnmatch.fnmatchcase(agent_id, p) for p in self._include)

    async def _entries(self) -> list[tuple[str, str, int]]:
        """(agent, key, size) in order; key "" is the agent's index."""
        entries: list[tuple[str, str, int]] = []
        seen: set[str] = set()
        async for raw, value in self._agents_view.scan(""):
            agent_id, _, key = raw.partition(NAMESPACE_SEPARATOR)
            if not key or not self._served(agent_id):
                continue
            if agent_id not in seen:
                seen.add(agent_id)
                entries.append((agent_id, "", 0))
            entries.append((agent_id, key, len(value)))
        if self._running is not None:
            for agent_id in self._running():
                if agent_id not in seen and self._served(agent_id):
                    seen.add(agent_id)
                    entries.append((agent_id, "", 0))
        entries.sort()
        return entries

    async def list_resources(
        self, ctx: Any, params: mcp_types.PaginatedRequestParams | None
    ) -> mcp_types.ListResourcesResult:
        """One page of resources (``_PAGE`` of them); the cursor is the last one's place."""
        after: tuple[str, str] | None = None
        if params is not None and params.cursor:
            after = _decode_cursor(params.cursor)
        entries = await self._entries()
        if after is not None:
            entries = [e for e in entries if (e[0], e[1]) > after]
        page, rest = entries[:_PAGE], entries[_PAGE:]
        resources = [_resource(agent_id, key, size) for agent_id, key, size in page]
        cursor = _encode_cursor(page[-1][0], page[-1][1]) if rest else None
        return mcp_types.ListResourcesResult(resources=resources, next_cursor=cursor)

    async def list_templates(
        self, ctx: Any, params: mcp_types.PaginatedRequestParams | None
    ) -> mcp_types.ListResourceTemplatesResult:
        """The two URI templates."""
        templates = [
            mcp_types.ResourceTemplate(
                name="agent-state-index",
                uri_template=STATE_URI_PREFIX + "{agent_id}/state",
                description="The keys of an agent's persistent state (JSON), read-only",
                mime_type="application/json",
            ),
            mcp_types.ResourceTemplate(
                name="agent-state-value",
                uri_template=STATE_URI_PREFIX + "{agent_id}/state/{key}",
                description="One key of an agent's persistent state, read-only",
            ),
        ]
        return mcp_types.ListResourceTemplatesResult(resource_templates=templates)

    async def read(
        self, ctx: Any, params: mcp_types.ReadResourceRequestParams
    ) -> mcp_types.ReadResourceResult:
        """The contents of an index or of one value.

        Raises:
            MCPError: -32002 for a URI that names no served agent state, saying why.
        """
        uri = str(params.uri)
        agent_id, key = _parse(uri)
        if not self._served(agent_id):
            _not_found(uri, f"the state of agent {agent_id!r} is not served")
        view = self._agents_view.namespace(agent_id)
        if key is None:
            return await self._index(uri, agent_id, view)
        value = await view.get(key)
        if value is None:
            _not_found(uri, f"agent {agent_id!r} has no state key {key!r}")
        return mcp_types.ReadResourceResult(contents=[_contents(uri, value)])

    async def _index(self, uri: str, agent_id: str, view: Any) -> mcp_types.ReadResourceResult:
        keys: list[dict[str, Any]] = []
        truncated = False
        async for key, value in view.scan(""):
            if len(keys) == _INDEX_KEYS:
                truncated = True
                break
            keys.append({"key": key, "uri": state_uri(agent_id, key), "size": len(value)})
        running = set(self._running()) if self._running is not None else set()
        if not keys and agent_id not in running:
            _not_found(uri, f"no agent {agent_id!r} has state here")
        document = {"agent_id": agent_id, "keys": keys, "truncated": truncated}
        text = json.dumps(document, separators=(",", ":"))
        contents = mcp_types.TextResourceContents(uri=uri, mime_type="application/json", text=text)
        return mcp_types.ReadResourceResult(contents=[contents])


def _parse(uri: str) -> tuple[str, str | None]:
    if not uri.startswith(STATE_URI_PREFIX):
        _not_found(uri, f"this server serves only {STATE_URI_PREFIX}{{agent_id}}/state[/{{key}}]")
    parts = uri[len(STATE_URI_PREFIX) :].split("/")
    if len(parts) not in (2, 3) or parts[1] != "state" or not parts[0]:
        _not_found(uri, f"expected {STATE_URI_PREFIX}{{agent_id}}/state[/{{key}}]")
    agent_id = unquote(parts[0])
    key = unquote(parts[2]) if len(parts) == 3 else None
    if NAMESPACE_SEPARATOR in agent_id or (key is not None and (not key or "\x00" in key)):
        _not_found(uri, "an agent id or key is empty or holds a NUL character")
    return agent_id, key


def _resource(agent_id: str, key: str, size: int) -> mcp_types.Resource:
    if not key:
        return mcp_types.Resource(
            name=f"{agent_id}/state",
            uri=state_uri(agent_id),
            description=f"The keys of agent {agent_id!r}'s persistent state (read-only)",
            mime_type="application/json",
        )
    return mcp_types.Resource(
        name=f"{agent_id}/state/{key}",
        uri=state_uri(agent_id, key),
        description=f"Key {key!r} of agent {agent_id!r}'s persistent state (read-only)",
        size=size,
    )


def _contents(
    uri: str, value: bytes
) -> mcp_types.TextResourceContents | mcp_types.BlobResourceContents:
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        blob = base64.b64encode(value).decode("ascii")
        return mcp_types.BlobResourceContents(
            uri=uri, mime_type="application/octet-stream", blob=blob
        )
    try:
        json.loads(text)
        mime = "application/json"
    except ValueError:
        mime = "text/plain"
    return mcp_types.TextResourceContents(uri=uri, mime_type=mime, text=text)


def _encode_cursor(agent_id: str, key: str) -> str:
    raw = json.dumps([agent_id, key]).encode()
    return base64.urlsafe_b64encode(raw).decode("ascii")


def _decode_cursor(cursor: str) -> tuple[str, str]:
    try:
        agent_id, key = json.loads(base64.urlsafe_b64decode(cursor.encode("ascii")))
    except (ValueError, TypeError, UnicodeError) as exc:
        raise MCPError(
            code=mcp_types.INVALID_PARAMS, message=f"invalid cursor {cursor!r}: {exc}"
        ) from None
    return str(agent_id), str(key)


def _not_found(uri: str, why: str) -> NoReturn:
    raise MCPError(code=RESOURCE_NOT_FOUND, message=f"unknown resource {uri}: {why}")
