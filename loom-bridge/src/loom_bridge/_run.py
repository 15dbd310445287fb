"""Run several remote agents in one process until a signal: ``run_agents``."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from loom_bridge._signals import stop_signals

if TYPE_CHECKING:
    from loom_bridge._remote_agent import RemoteAgent

__all__ = ["run_agents"]


async def run_agents(
    *agents: RemoteAgent,
    on_started: Callable[[], object] | None = None,
) -> bool:
    """Start the agents, run them until SIGINT or SIGTERM, then stop them all.

    One set of signal handlers serves them all (and any other ``run_agents`` or
    :meth:`RemoteAgent.run` on the same loop); the handlers that were there before are
    put back on return. The agents start one by one, in the order given (a failure names
    the first that failed); a signal while they connect stops at once, without waiting for
    the connect timeout. When one agent's connection stops for good (its registration
    refused, its id taken over by another connection), the others are stopped too and its
    reason is raised: the process's agents live and end together. Agents that should
    outlive each other can each ``await agent.run()`` side by side instead
    (``asyncio.gather``): they share the handlers just the same.

    Args:
        *agents: the agents, with distinct ids; none started yet or all stopped.
        on_started: called once every agent is connected and started (to print that the
            process is ready, say).

    Returns:
        True when every agent started and ran until a signal, False when a signal came while
        they were still starting.

    Raises:
        ValueError: no agents, or two with the same id.
        BridgeError: an agent could not start (``RegistrationError``,
            ``NotConnectedError``), or its connection stopped for good (the link's
            ``closed_reason``); every agent is stopped first.
    """
    if not agents:
        raise ValueError("run_agents: no agents given")
    ids = [agent.agent_id for agent in agents]
    duplicates = sorted({agent_id for agent_id in ids if ids.count(agent_id) > 1})
    if duplicates:
        raise ValueError(f"run_agents: agent ids given twice: {', '.join(duplicates)}")
    stopping = asyncio.Event()
    with stop_signals(stopping.set):
        signalled = asyncio.ensure_future(stopping.wait())
        try:
            if not await _start_all(agents, signalled):
                return False
            closed = [asyncio.ensure_future(agent.wait_closed()) for agent in agents]
            try:
                if on_started is not None:
                    on_started()  # if it raises, the agents are stopped all the same
                await asyncio.wait((signalled, *closed), return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in closed:
                    waiter.cancel()
                await _stop_all(agents)
        finally:
            signalled.cancel()
    if stopping.is_set():
        return True
    reasons = [agent.link.closed_reason for agent in agents]
    reason = next((r for r in reasons if r is not None), None)
    if reason is not None:
        raise reason
    return True  # every agent was stopped from elsewhere (``agent.stop()``)


async def _start_all(agents: tuple[RemoteAgent, ...], signalled: asyncio.Future[Any]) -> bool:
    """Start the agents one by one, in order (so a failure names the first that failed); on
    a failure or a signal, stop those that started."""
    try:
        for agent in agents:
            starting = asyncio.ensure_future(agent.start())
            try:
                await asyncio.wait((starting, signalled), return_when=asyncio.FIRST_COMPLETED)
            finally:
                if not starting.done():
                    starting.cancel()  # a cancelled start closes what it opened
                    await asyncio.gather(starting, return_exceptions=True)
            if not starting.done() or starting.cancelled() or signalled.done():
                await _stop_all(agents)
                return False
            starting.result()  # its failure, if it failed
    except BaseException:
        await _stop_all(agents)
        raise
    return True


async def _stop_all(agents: tuple[RemoteAgent, ...]) -> None:
    await asyncio.gather(*(agent.stop() for agent in agents))
