"""Agents: actors on the event bus, each with a bounded mailbox and one task.

Write an agent as a class with typed handlers::

    class Thermostat(Agent):
        topics = ("sensor.*.temp",)

        @handles("sensor.reading")
        async def on_reading(self, ctx: Context, event: Event) -> None:
            await ctx.emit("heating.commands", "heating.set", b"21")

or as one async function ``async def echo(ctx, event)``. Both run the same way::

    runtime = AgentRuntime(bus)
    await runtime.spawn("thermostat", Thermostat())
    await runtime.spawn("echo", echo, topics=["requests"])

A handler collaborates through its :class:`Context`: ``ctx.request``, ``ctx.fanout``,
``ctx.barrier``, ``ctx.contract_net`` and ``ctx.reply`` (see :mod:`loom.collab`), and runs
capabilities with ``ctx.invoke`` / ``ctx.tool`` through the runtime's ``broker``.
"""

from __future__ import annotations

from loom.agents._agent import Agent, EventHandler, FunctionAgent, handles
from loom.agents._context import ActionFailedError, ActionInvoker, Context
from loom.agents._runtime import (
    AGENT_FAILED_TOPIC,
    DEFAULT_MAILBOX,
    AgentInfo,
    AgentRuntime,
    AgentStatus,
    RestartPolicy,
)

__all__ = [
    "AGENT_FAILED_TOPIC",
    "DEFAULT_MAILBOX",
    "ActionFailedError",
    "ActionInvoker",
    "Agent",
    "AgentInfo",
    "AgentRuntime",
    "AgentStatus",
    "Context",
    "EventHandler",
    "FunctionAgent",
    "RestartPolicy",
    "handles",
]
