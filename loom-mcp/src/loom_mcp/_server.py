"""Server mode: the broker's capabilities as MCP tools, over stdio or streamable HTTP.

Every capability the broker holds (native, WASM, remote, other MCP servers') is listed as
a tool: its name made valid for MCP (:mod:`loom_mcp._names`), its description, and its
input schema as ``inputSchema``. A capability whose input is not a JSON object is offered
with one argument, ``input``. A call goes through ``broker.invoke``, so the broker's
validation, timeouts, concurrency bound and circuit breaker apply; a failed call is a
result with ``isError`` set whose text is ``CODE: message``, and whose ``_meta`` holds
``{"loom/error": {"code", "message", "details"}}``.

Given a state store (``agent_state``), agents' persistent state is also served as
read-only resources (:mod:`loom_mcp._state_resources`). ``logging/setLevel`` subscribes
the client to Loom's log records at that level and above (:mod:`loom_mcp._log_forward`).
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import hmac
import json
import logging
import os
import socket
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, cast

import anyio
import mcp_types
from mcp.server.lowlevel import Server
from mcp.shared.exceptions import MCPError

from loom._action import ActionCall, ActionResult, ActionStatus, CapabilityDescriptor, ProviderKind
from loom._version import __version__ as loom_version
from loom_mcp._log_forward import LogForwarder
from loom_mcp._names import tool_name_table
from loom_mcp._state_resources import AgentStateResources, ReadableState

if TYPE_CHECKING:
    from mcp.server.context import ServerRequestContext
    from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["LoomMcpServer", "ServedBroker"]

log = logging.getLogger("loom.mcp.server")

_MAX_STDIN_LINE = 64 * 1024 * 1024
#: The argument that carries the input of a capability whose input is not an object.
WRAPPED_ARGUMENT = "input"


class ServedBroker(Protocol):
    """What server mode needs of the ActionBroker."""

    def list_capabilities(self) -> Iterable[CapabilityDescriptor]:
        """The registered capabilities."""

    async def invoke(self, call: ActionCall) -> ActionResult:
        """Run a call."""


@dataclass(frozen=True)
class _Entry:
    descriptor: CapabilityDescriptor
    tool: mcp_types.Tool
    wrapped: bool


class LoomMcpServer:
    """An MCP server in front of an ActionBroker.

    Args:
        broker: the broker whose capabilities are served.
        name: the server name MCP clients see.
        instructions: text for clients about how to use the server.
        include: glob patterns of capability names to serve (all when empty).
        exclude: glob patterns of capability names never to serve.
        agent_state: a state store whose agents' state is served as read-only resources
            (``loom://agents/{agent_id}/state[/{key}]``); None serves no resources.
        agent_state_include: glob patterns of the agent ids whose state is served.
        agents: the ids of the running agents, listed even before they store anything.
        log_buffer: log records buffered per client before new ones are dropped.
    """

    def __init__(
        self,
        broker: ServedBroker,
        *,
        name: str = "loom",
        instructions: str | None = None,
        include: Sequence[str] = (),
        exclude: Sequence[str] = (),
        agent_state: ReadableState | None = None,
        agent_state_include: Sequence[str] = ("*",),
        agents: Callable[[], Iterable[str]] | None = None,
        log_buffer: int = 256,
    ) -> None:
        self.broker = broker
        self.include = tuple(include)
        self.exclude = tuple(exclude)
        self._entries: dict[str, _Entry] = {}
        #: Forwards log records to the clients that sent ``logging/setLevel``.
        self.logs = LogForwarder(capacity=log_buffer)
        self.state_resources = (
            AgentStateResources(agent_state, include=agent_state_include, agents=agents)
            if agent_state is not None
            else None
        )
        resources = self.state_resources
        self.server: Server[Any] = Server(
            name,
            version=loom_version,
            instructions=instructions,
            on_list_tools=self._list_tools,
            on_call_tool=self._call_tool,
            # Read-only: list and read only (no subscribe; MCP has no resource writes).
            on_list_resources=resources.list_resources if resources else None,
            on_list_resource_templates=resources.list_templates if resources else None,
            on_read_resource=resources.read if resources else None,
        )
        # Added as a plain handler: the constructor argument warns that logging is
        # deprecated in 2026-07-28, and handshake-era clients still send it.
        self.server.add_request_handler(
            "logging/setLevel", mcp_types.SetLevelRequestParams, self._set_level
        )

    # -- the tools --------------------------------------------------------------------------

    def tools(self) -> list[mcp_types.Tool]:
        """The tools as listed now (a fresh snapshot of the broker)."""
        descriptors: dict[str, CapabilityDescriptor] = {}
        for descriptor in self.broker.list_capabilities():
            if not self._served(descriptor.name):
                continue
            kept = descriptors.get(descriptor.name)
            if kept is None or _version_key(descriptor.version) > _version_key(kept.version):
                descriptors[descriptor.name] = descriptor
        entries: dict[str, _Entry] = {}
        for tool_name, capability in tool_name_table(descriptors).items():
            entries[tool_name] = _entry(tool_name, descriptors[capability])
        self._entries = entries
        return [entry.tool for entry in entries.values()]

    def _served(self, capability: str) -> bool:
        if self.include and not any(fnmatch.fnmatchcase(capability, p) for p in self.include):
            return False
        return not any(fnmatch.fnmatchcase(capability, p) for p in self.exclude)

    async def _list_tools(
        self, ctx: ServerRequestContext[Any], params: mcp_types.PaginatedRequestParams | None
    ) -> mcp_types.ListToolsResult:
        return mcp_types.ListToolsResult(tools=self.tools())

    async def _call_tool(
        self, ctx: ServerRequestContext[Any], params: mcp_types.CallToolRequestParams
    ) -> mcp_types.CallToolResult:
        entry = self._entries.get(params.name)
        if entry is None:
            self.tools()  # a client may call without listing first, or after a change
            entry = self._entries.get(params.name)
        if entry is None:
            raise MCPError(code=mcp_types.INVALID_PARAMS, message=f"Unknown tool: {params.name}")
        arguments: Any = params.arguments or {}
        if entry.wrapped:
            arguments = arguments.get(WRAPPED_ARGUMENT)
        payload = json.dumps(arguments, separators=(",", ":")).encode()
        call = ActionCall(entry.descriptor.name, payload, version=entry.descriptor.version)
        result = await self.broker.invoke(call)
        return _tool_result(entry, result)

    async def _set_level(
        self, ctx: ServerRequestContext[Any], params: mcp_types.SetLevelRequestParams
    ) -> mcp_types.EmptyResult:
        # One sink per connection, which the per-request session proxies share; the SDK
        # keeps it private, but its exit_stack is the documented per-connection teardown
        # (a notification to a closed connection is dropped silently, never an error).
        connection = getattr(ctx.session, "_connection", None)
        key = connection if connection is not None else ctx.session
        if self.logs.set_level(key, ctx.session, params.level):
            exit_stack = getattr(connection, "exit_stack", None)
            if exit_stack is not None:
                exit_stack.callback(self.logs.remove, key)
        return mcp_types.EmptyResult()

    def close(self) -> None:
        """Stop forwarding log records (the transports call it when they end)."""
        self.logs.close()

    # -- transports -------------------------------------------------------------------------

    async def run_stdio(self) -> None:
        """Serve one client over this process's stdin and stdout until it disconnects.

        While serving, stray writes to stdout go to stderr instead of the wire. Cancelling
        the task (the CLI does on SIGTERM and SIGINT) ends it promptly: stdin is read
        without a blocking thread.
        """
        from mcp.server.stdio import stdio_server

        lines = _StdinLines()
        await lines.open()
        try:
            # The SDK reads stdin in a worker thread that a cancellation cannot stop.
            stdin = cast("anyio.AsyncFile[str]", lines)
            async with stdio_server(stdin=stdin) as (read_stream, write_stream):
                await self.server.run(
                    read_stream, write_stream, self.server.create_initialization_options()
                )
        finally:
            lines.close()
            self.close()

    async def run_http(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 8765,
        path: str = "/mcp",
        token: str | None = None,
        on_ready: Callable[[str], Awaitable[None] | None] | None = None,
    ) -> None:
        """Serve over streamable HTTP until cancelled.

        Args:
            host: the address to bind; loopback by default (with DNS-rebinding
                protection). Bind another only behind a token and a firewall.
            port: the TCP port; 0 picks a free one (``on_ready`` gets the URL).
            path: the endpoint's path.
            token: when set, every request must carry ``Authorization: Bearer <token>``.
            on_ready: called with the endpoint URL once the server listens.

        Raises:
            OSError: the address cannot be bound (say, the port is in use).
        """
        import uvicorn

        class _Server(uvicorn.Server):
            @contextlib.contextmanager
            def capture_signals(self) -> Iterator[None]:
                yield  # the CLI owns the signals; a cancellation stops us gracefully

        app: ASGIApp = self.server.streamable_http_app(streamable_http_path=path, host=host)
        if token:
            app = _BearerGuard(app, token)
        sock = _bind(host, port)
        bound_port = sock.getsockname()[1]
        config = uvicorn.Config(app, host=host, port=bound_port, log_level="warning", lifespan="on")
        server = _Server(config)
        url = f"http://{_url_host(host)}:{bound_port}{path}"

        async def announce() -> None:
            while not server.started:
                if server.should_exit:
                    return
                await anyio.sleep(0.01)
            if on_ready is not None:
                outcome = on_ready(url)
                if outcome is not None:
                    await outcome

        serving = asyncio.ensure_future(server.serve(sockets=[sock]))
        announcing = asyncio.ensure_future(announce())
        try:
            await asyncio.shield(serving)
        except asyncio.CancelledError:
            server.should_exit = True
            await serving
            raise
        finally:
            announcing.cancel()
            sock.close()
            self.close()


class _StdinLines:
    """This process's stdin as an async iterator of lines, read by the event loop."""

    def __init__(self) -> None:
        self._reader = asyncio.StreamReader(limit=_MAX_STDIN_LINE)
        self._transport: asyncio.ReadTransport | None = None
        self._was_blocking = True

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        self._was_blocking = os.get_blocking(0)
        pipe = os.fdopen(os.dup(0), "rb", buffering=0)
        protocol = asyncio.StreamReaderProtocol(self._reader)
        try:
            self._transport, _ = await loop.connect_read_pipe(lambda: protocol, pipe)
        except BaseException:
            pipe.close()
            raise

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None
        # The descriptor's flags are shared with whoever started us (a terminal, say).
        with contextlib.suppress(OSError):
            os.set_blocking(0, self._was_blocking)

    def __aiter__(self) -> _StdinLines:
        return self

    async def __anext__(self) -> str:
        while True:
            try:
                line = await self._reader.readline()
            except ValueError:
                log.warning("a request longer than %d bytes was discarded", _MAX_STDIN_LINE)
                continue
            if not line:
                raise StopAsyncIteration
            return line.decode("utf-8", errors="replace")


class _BearerGuard:
    """Refuses requests without ``Authorization: Bearer <token>`` (401)."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self._expected = f"Bearer {token}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            given = dict(scope.get("headers") or ()).get(b"authorization", b"")
            if not hmac.compare_digest(given, self._expected):
                await send(
                    {
                        "type": "http.response.start",
                        "status": 401,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"www-authenticate", b"Bearer"),
                        ],
                    }
                )
                body = b'{"error":"unauthorized","error_description":"bearer token required"}'
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # TCP_NODELAY (asyncio)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise OSError(exc.errno, f"cannot serve MCP on {host}:{port}: {exc.strerror}") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _entry(tool_name: str, descriptor: CapabilityDescriptor) -> _Entry:
    metadata = descriptor.metadata
    schema = _json_object(metadata.get("input_schema") or metadata.get("schema"))
    wrapped = False
    if schema is None:
        schema = {"type": "object"}
    elif schema.get("type") != "object":
        schema = {
            "type": "object",
            "properties": {WRAPPED_ARGUMENT: schema},
            "required": [WRAPPED_ARGUMENT],
        }
        wrapped = True
    output = _json_object(metadata.get("output_schema"))
    if output is not None and output.get("type") != "object":
        output = None  # MCP clients before 2026-07-28 accept object output schemas only
    description = metadata.get("description") or metadata.get("desc") or ""
    if not description:
        description = f"Loom capability {descriptor.name} (version {descriptor.version})"
    annotations = _json_object(metadata.get("mcp_annotations"))
    tool = mcp_types.Tool.model_validate(
        {
            "name": tool_name,
            "title": metadata.get("title") or None,
            "description": description,
            "inputSchema": schema,
            "outputSchema": output,
            "annotations": annotations,
            "_meta": {
                "loom/capability": descriptor.name,
                "loom/version": descriptor.version,
                "loom/provider": ProviderKind(descriptor.provider).name,
            },
        }
    )
    return _Entry(descriptor, tool, wrapped)


def _tool_result(entry: _Entry, result: ActionResult) -> mcp_types.CallToolResult:
    if result.status is not ActionStatus.OK:
        error = result.error
        code = error.code if error is not None else result.status.name
        message = error.message if error is not None else ""
        details = dict(error.details) if error is not None else {}
        return mcp_types.CallToolResult.model_validate(
            {
                "content": [{"type": "text", "text": f"{code}: {message}"}],
                "isError": True,
                "_meta": {"loom/error": {"code": code, "message": message, "details": details}},
            }
        )
    text = result.output.decode(errors="replace")
    try:
        value = json.loads(result.output) if result.output.strip() else None
    except ValueError:
        value = None
    if entry.descriptor.provider == ProviderKind.MCP and isinstance(value, dict):
        # Another MCP server's result (loom_mcp._content's shape): pass its blocks through.
        return mcp_types.CallToolResult.model_validate(
            {
                "content": value.get("content") or [],
                "structuredContent": value.get("structured"),
            }
        )
    structured = value if isinstance(value, dict) and entry.tool.output_schema else None
    return mcp_types.CallToolResult.model_validate(
        {"content": [{"type": "text", "text": text}], "structuredContent": structured}
    )


def _json_object(text: str | None) -> dict[str, Any] | None:
    if not text:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _version_key(version: str) -> tuple[tuple[int, int | str], ...]:
    parts: list[tuple[int, int | str]] = []
    for part in version.replace("-", ".").split("."):
        parts.append((1, int(part)) if part.isdigit() else (0, part))
    return tuple(parts)
