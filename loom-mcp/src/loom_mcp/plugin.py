"""The ``mcp`` plugin: what loom-mcp contributes to the Loom host through its hooks.

Loaded through the entry point ``mcp`` in group ``loom``. It imports nothing heavy: the
``mcp`` SDK loads inside the commands and scenarios it contributes.

- App lifecycle: ``loom run`` starts the servers of ``[[mcp.servers]]`` in the app's
  ``loom.toml`` (their tools become capabilities of the app's broker, their events go to
  its bus) and stops them when the app stops.
- CLI: ``loom mcp serve``, ``loom mcp tools``, ``loom mcp call``.
- Bench: ``baseline.mcp_sdk`` (the bare SDK client's tool-call round trips over stdio and
  streamable HTTP) and ``mcp.stdio_call`` / ``mcp.http_call`` (the same calls through the
  ActionBroker), all against the same server in the same run.
"""

from __future__ import annotations

import logging
from typing import Any

from loom.contributions import BenchScenario, CliCommand, lazy
from loom.hookspecs import hookimpl

__all__: list[str] = []

log = logging.getLogger("loom.mcp")

#: Where the session manager is kept in ``app.extensions``.
_EXTENSION = "mcp"


@hookimpl
def loom_cli_commands() -> list[CliCommand]:
    from loom_mcp._cli import MCP_COMMAND

    return [MCP_COMMAND]


@hookimpl
def loom_bench_scenarios() -> list[BenchScenario]:
    baseline = "baseline.mcp_sdk"
    return [
        BenchScenario(
            name=baseline,
            description="bare mcp SDK client: tools/call round trips over stdio and HTTP",
            run=lazy("loom_mcp._bench", "sdk_baseline"),
        ),
        BenchScenario(
            name="mcp.stdio_call",
            description="a stdio MCP tool called through the ActionBroker",
            run=lazy("loom_mcp._bench", "stdio_call"),
            baseline=baseline,
        ),
        BenchScenario(
            name="mcp.http_call",
            description="a streamable-HTTP MCP tool called through the ActionBroker",
            run=lazy("loom_mcp._bench", "http_call"),
            baseline=baseline,
        ),
    ]


@hookimpl
async def loom_app_startup(app: Any) -> None:
    """Start the app's ``[[mcp.servers]]`` (without waiting for them to connect: a server
    that is down is retried with backoff while the app runs). Sampling requests of the
    servers with ``allow_sampling = true`` are answered by the app's model router."""
    servers = list(getattr(app, "mcp_servers", None) or [])
    if not servers:
        return
    from loom_mcp._config import parse_server_configs
    from loom_mcp._manager import McpSessionManager
    from loom_mcp._sampling import router_sampling

    source = str(getattr(app, "config_path", None) or "<config>")
    configs = parse_server_configs(servers, source=source, key="mcp.servers")
    privacy = {config.name: config.sampling_privacy for config in configs}
    sampling = None
    if any(config.allow_sampling for config in configs):
        sampling = router_sampling(app.router, privacy_of=privacy.get)
    manager = McpSessionManager(app.broker, bus=app.bus, sampling=sampling)
    app.extensions[_EXTENSION] = manager
    outcome = await manager.add_servers(configs, wait=False)
    for name, error in outcome.items():
        if error is not None:
            log.error("MCP server %r could not be added: %s", name, error)


@hookimpl
async def loom_app_shutdown(app: Any) -> None:
    """Stop the app's MCP servers (ending their processes) and unregister their tools."""
    extensions = getattr(app, "extensions", None)
    manager = extensions.pop(_EXTENSION, None) if isinstance(extensions, dict) else None
    if manager is not None:
        await manager.aclose()
