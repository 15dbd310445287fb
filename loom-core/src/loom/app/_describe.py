"""An app's composition in lines, for the console and ``loom run --check``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from loom.app._compose import describe_models

if TYPE_CHECKING:
    from loom.app._app import App

__all__ = ["describe", "shown"]


def shown(path: Path) -> str:
    """``path`` relative to the working directory when it is under it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def describe(app: App) -> list[tuple[str, str]]:
    """(part, description) lines: bus, state, capabilities, router, models, each agent and
    source, MCP servers, ``run_for``.

    Raises:
        AppConfigError: the configuration does not resolve.
    """
    plan = app.plan()
    config = app.config
    lines = [("bus", config.bus.backend)]
    state = config.state.backend
    if plan.state_path is not None:
        state += f" at {shown(plan.state_path)}"
    lines.append(("state", state))
    names = [c.name for c in plan.capabilities]
    lines.append(("capabilities", ", ".join(names) if names else "none"))
    models = ", ".join(describe_models(plan.models).values())
    lines.append(("router", f"policy {config.router.policy}; providers {models}"))
    lines.append(("models", plan.reasoning.removeprefix("reasoning: ")))
    for agent in plan.agents:
        topics = ", ".join(agent.entry.topics) or "its own topics"
        lines.append(("agent", f"{agent.entry.id} ({agent.type_label}) on {topics}"))
    for item in plan.sources:
        topic = item.entry.topic or getattr(item.obj, "topic", "")
        lines.append(("source", f"{item.name} ({item.entry.type}) -> {topic}"))
    if config.mcp.servers:
        servers = ", ".join(str(s.get("name", "?")) for s in config.mcp.servers)
        lines.append(("mcp", servers))
    if config.run_for is not None:
        lines.append(("run_for", f"{config.run_for:g} s"))
    return lines
