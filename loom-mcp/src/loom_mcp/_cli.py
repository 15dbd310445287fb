"""``loom mcp``: serve the broker over MCP, and look at configured MCP servers.

This module is imported by ``loom`` at every start (through the plugin), so it imports
nothing heavy at the top: the SDK loads when a subcommand runs.

- ``loom mcp serve [CONFIG]``: the broker's capabilities (installed plugins, ``--plugin``
  modules, and the tools of the MCP servers in CONFIG) as MCP tools, over stdio or HTTP.
  When CONFIG is an app's ``loom.toml`` (it has an ``[app]`` table) the app runs and its
  broker is served; ``--agent-state`` adds its agents' state as read-only resources.
- ``loom mcp tools CONFIG``: connect to the servers in CONFIG and list their tools as the
  capabilities they become.
- ``loom mcp call CONFIG CAPABILITY [JSON]``: call one of them through the broker.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from loom.contributions import CliCommand

if TYPE_CHECKING:
    import asyncio
    import signal

    from loom.actions import ActionBroker
    from loom.host import PluginHost
    from loom_mcp._manager import McpSessionManager

__all__ = ["MCP_COMMAND"]

TOKEN_ENV = "LOOM_MCP_TOKEN"

_EPILOG = """\
examples:
  loom mcp serve                         installed capabilities over stdio
  loom mcp serve loom.toml --http 8765   plus the tools of loom.toml's MCP servers, over HTTP
  loom mcp serve app.toml --agent-state  run the app; serve its broker and agents' state
  loom mcp tools servers.toml            connect and list the tools as capabilities
  loom mcp call servers.toml time:get_current_time '{"timezone": "Etc/UTC"}'
CONFIG is a TOML file with [[mcp.servers]] (an app's loom.toml) or [[servers]] tables.
"""


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = _EPILOG
    commands = parser.add_subparsers(dest="mcp_command", metavar="SUBCOMMAND", required=True)

    serve = commands.add_parser(
        "serve", help="expose the broker's capabilities as MCP tools (stdio or HTTP)"
    )
    serve.add_argument("config", nargs="?", help="TOML file naming MCP servers to front too")
    serve.add_argument("--transport", choices=("stdio", "http"), default=None)
    serve.add_argument("--http", type=int, metavar="PORT", help="serve HTTP on PORT")
    serve.add_argument("--port", type=int, default=8765, help="HTTP port (default 8765; 0: any)")
    serve.add_argument("--host", default="127.0.0.1", help="HTTP address (default 127.0.0.1)")
    serve.add_argument("--path", default="/mcp", help="HTTP endpoint path (default /mcp)")
    serve.add_argument(
        "--token",
        default=None,
        help=f"require 'Authorization: Bearer TOKEN' over HTTP (default: ${TOKEN_ENV})",
    )
    serve.add_argument(
        "--plugin",
        action="append",
        default=[],
        metavar="MODULE",
        help="also load this module as a Loom plugin (repeatable)",
    )
    serve.add_argument("--include", action="append", default=[], metavar="GLOB")
    serve.add_argument("--exclude", action="append", default=[], metavar="GLOB")
    serve.add_argument("--name", default="loom", help="server name shown to clients")
    serve.add_argument(
        "--agent-state",
        action="store_true",
        help="serve the app's agents' state as read-only resources (CONFIG must be an app)",
    )
    serve.add_argument(
        "--agent-state-include",
        action="append",
        default=[],
        metavar="GLOB",
        help="only these agents' state (agent id globs; repeatable)",
    )

    tools = commands.add_parser("tools", help="connect to configured servers and list tools")
    tools.add_argument("config", help="TOML file with the servers")
    tools.add_argument("--json", action="store_true", help="one JSON document")

    call = commands.add_parser("call", help="call a capability of a configured server")
    call.add_argument("config", help="TOML file with the servers")
    call.add_argument("capability", help="server:tool")
    call.add_argument("arguments", nargs="?", default="{}", help="JSON object (default {})")
    call.add_argument("--timeout-ms", type=int, default=0)


def _run(args: argparse.Namespace, host: PluginHost) -> Awaitable[int]:
    runners: dict[str, Callable[[argparse.Namespace, PluginHost], Awaitable[int]]] = {
        "serve": _serve,
        "tools": _tools,
        "call": _call,
    }
    return _guarded(runners[args.mcp_command](args, host))


async def _guarded(work: Awaitable[int]) -> int:
    import asyncio
    import signal

    from loom_mcp._errors import McpError

    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    with _cancel_on(loop, task, signal.SIGTERM):
        try:
            return await work
        except McpError as exc:
            _err(f"loom mcp: {exc}")
            return 1
        except asyncio.CancelledError:
            return 0 if task is not None and task.cancelling() else 130


@contextmanager
def _cancel_on(
    loop: asyncio.AbstractEventLoop, task: asyncio.Task[Any] | None, sig: signal.Signals
) -> Iterator[None]:
    if task is None:
        yield
        return
    try:
        loop.add_signal_handler(sig, task.cancel)
    except (NotImplementedError, RuntimeError):  # not the main thread, or no signals here
        yield
        return
    try:
        yield
    finally:
        loop.remove_signal_handler(sig)


async def _serve(args: argparse.Namespace, host: PluginHost) -> int:
    import importlib

    from loom.errors import PluginLoadError
    from loom_mcp._server import LoomMcpServer

    for module_name in args.plugin:
        try:
            host.register(importlib.import_module(module_name), module_name)
        except (ImportError, PluginLoadError) as exc:
            _err(f"loom mcp serve: cannot load plugin {module_name!r}: {exc}")
            return 1
    transport = args.transport or ("http" if args.http is not None else "stdio")
    port = args.http if args.http is not None else args.port
    is_app = args.config is not None and _is_app(args.config)
    if args.agent_state and not is_app:
        _err(
            "loom mcp serve: --agent-state needs an app's loom.toml (a file with an [app] "
            "table): agent state lives in the app's state store"
        )
        return 2
    composing = _app_composed(host, args.config) if is_app else _composed(host, args.config)
    async with composing as composed:
        for reason in composed.failures.values():
            _err(f"loom mcp serve: left out: {reason}")
        server = LoomMcpServer(
            composed.broker,
            name=args.name,
            include=args.include,
            exclude=args.exclude,
            agent_state=composed.state if args.agent_state else None,
            agent_state_include=args.agent_state_include or ("*",),
            agents=composed.agents,
        )
        count = len(server.tools())
        if transport == "stdio":
            _err(f"loom mcp serve: {count} tools over stdio")
            await server.run_stdio()
            return 0
        token = args.token or os.environ.get(TOKEN_ENV) or None
        if args.host not in ("127.0.0.1", "localhost", "::1") and not token:
            _err(
                f"loom mcp serve: warning: serving {args.host} without a token; anyone who "
                f"reaches it can call every tool (set --token or ${TOKEN_ENV})"
            )

        def ready(url: str) -> None:
            guard = " (bearer token required)" if token else ""
            _err(f"loom mcp serve: {count} tools at {url}{guard}")

        try:
            await server.run_http(
                host=args.host, port=port, path=args.path, token=token, on_ready=ready
            )
        except OSError as exc:
            _err(f"loom mcp serve: {exc}")
            return 1
    return 0


async def _tools(args: argparse.Namespace, host: PluginHost) -> int:
    async with _composed(host, args.config, contributions=False) as composed:
        manager = composed.manager
        assert manager is not None
        statuses = manager.servers()
        descriptors = manager.capabilities()
        failed = composed.failures
    if args.json:
        document = {
            "capabilities": [
                {
                    "name": d.name,
                    "version": d.version,
                    "description": d.metadata.get("description", ""),
                    "input_schema": json.loads(d.metadata["input_schema"]),
                }
                for d in descriptors
            ],
            "servers": [
                {
                    "name": s.name,
                    "state": str(s.state),
                    "endpoint": s.endpoint,
                    "protocol_version": s.protocol_version,
                    "server_info": s.server_info,
                    "tools": len(s.tools),
                }
                for s in statuses
            ],
            "failures": failed,
        }
        print(json.dumps(document, indent=2))
    else:
        for status in statuses:
            print(
                f"{status.name}: {status.server_info or 'unnamed'}, protocol "
                f"{status.protocol_version}, {len(status.tools)} tools ({status.endpoint})"
            )
        for descriptor in descriptors:
            line = descriptor.metadata.get("description", "").strip().splitlines()
            print(f"  {descriptor.name}" + (f"  {line[0]}" if line else ""))
        for name, error in failed.items():
            print(f"{name}: FAILED: {error}")
    return 1 if failed else 0


async def _call(args: argparse.Namespace, host: PluginHost) -> int:
    from loom._action import ActionCall, ActionStatus

    try:
        arguments = json.loads(args.arguments)
    except ValueError as exc:
        _err(f"loom mcp call: the arguments are not JSON: {exc}")
        return 2
    payload = json.dumps(arguments).encode()
    async with _composed(host, args.config, contributions=False) as composed:
        for reason in composed.failures.values():
            _err(f"loom mcp call: left out: {reason}")
        call = ActionCall(args.capability, payload, timeout_ms=args.timeout_ms)
        result = await composed.broker.invoke(call)
    if result.status is ActionStatus.OK:
        print(result.output.decode(errors="replace"))
        return 0
    error = result.error
    _err(f"loom mcp call: {error.code}: {error.message}" if error else f"{result.status.name}")
    return 1


@dataclass
class _Composition:
    """A broker with the host's capabilities and the configured MCP servers' tools."""

    broker: ActionBroker
    manager: McpSessionManager | None
    failures: dict[str, str] = field(default_factory=dict)
    state: Any = None
    agents: Callable[[], Iterator[str]] | None = None


@asynccontextmanager
async def _composed(
    host: PluginHost, config: str | None, *, contributions: bool = True
) -> AsyncIterator[_Composition]:
    from loom.actions import ActionBroker
    from loom_mcp._config import load_server_configs
    from loom_mcp._manager import McpSessionManager

    configs = load_server_configs(config) if config else []
    async with ActionBroker() as broker, McpSessionManager(broker) as manager:
        if contributions:
            broker.register_contributions(host.capabilities())
        outcome = await manager.add_servers(configs)
        failures = {name: str(error) for name, error in outcome.items() if error is not None}
        yield _Composition(broker, manager, failures)


def _is_app(config: str) -> bool:
    import tomllib
    from pathlib import Path

    try:
        return "app" in tomllib.loads(Path(config).read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        return False  # load_server_configs reports it, with the reason


@asynccontextmanager
async def _app_composed(host: PluginHost, config: str) -> AsyncIterator[_Composition]:
    """Runs the app of ``config`` (agents, state store, its MCP servers) while serving."""
    from loom.app import App, AppError
    from loom_mcp._errors import McpConfigError

    app = App.from_file(config, host=host)
    try:
        await app.start()
    except AppError as exc:  # AppConfigError included: its message lists every key
        raise McpConfigError(config, "", str(exc)) from None
    try:
        manager = app.extensions.get("mcp")
        if manager is not None:
            await _connected(manager)
        failures = {f"{f.plugin}.{f.hook}": f.error for f in app.failures}
        yield _Composition(
            app.broker, manager, failures, state=app.state, agents=lambda: iter(app.agents)
        )
    finally:
        await app.stop()


async def _connected(manager: McpSessionManager) -> None:
    """Waits (within each server's connect timeout) for the app's servers to connect, so
    their tools are listed from the start."""
    import asyncio

    from loom_mcp._session import ServerState

    sessions = [manager.session(status.name) for status in manager.servers()]
    if not sessions:
        return
    deadline = max(session.config.connect_timeout_s for session in sessions)
    with suppress(TimeoutError):  # still trying: served as they connect
        async with asyncio.timeout(deadline):
            while any(s.state is ServerState.STARTING for s in sessions):
                await asyncio.sleep(0.02)


def _err(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


MCP_COMMAND = CliCommand(
    name="mcp",
    description="MCP: serve Loom's capabilities as MCP tools, or inspect MCP servers",
    run=_run,
    configure=_configure,
)
