"""The agent runtime: actors with a bounded mailbox and one task each, under supervision."""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from loom._action import QoS
from loom._envelope import DEFAULT_TTL
from loom._event import Event, _with_metadata_unchecked
from loom.agents._agent import Agent, EventHandler, FunctionAgent
from loom.agents._context import ActionInvoker, Context
from loom.bus import DeliveryQueue, EventBus, Subscription, SubscriptionClosed
from loom.bus._queue import _wake
from loom.collab import CollabError, Ledger, ReplyRouter
from loom.directory import AgentDirectory, AgentRecord
from loom.errors import AgentError, AgentExistsError, AgentNotFoundError
from loom.telemetry import _switch
from loom.topics import agent_replies_topic, thread_reply_topic, validate_pattern

__all__ = [
    "AGENT_FAILED_TOPIC",
    "DEFAULT_MAILBOX",
    "AgentInfo",
    "AgentRuntime",
    "AgentStatus",
    "RestartPolicy",
]

log = logging.getLogger("loom.agents")

#: Where the runtime reports an agent it gave up on (event type ``agent.failed``).
AGENT_FAILED_TOPIC = "runtime.agent.failed"

DEFAULT_MAILBOX = 1000

#: How many of the newest mailbox items are searched for a reply the router claimed.
_DISCARD_SCAN = 64


class AgentStatus(enum.Enum):
    """Where an agent is in its life."""

    CREATED = "created"
    RUNNING = "running"
    RESTARTING = "restarting"
    STOPPED = "stopped"
    FAILED = "failed"


@dataclass(frozen=True)
class RestartPolicy:
    """How the supervisor treats an agent whose handler raises.

    Each failure restarts the agent (``on_start`` again, fresh memory) after a backoff that
    doubles from ``initial_backoff_s`` up to ``max_backoff_s``. More than ``max_restarts``
    failures within ``window_s`` seconds stop the agent for good (status FAILED), reported
    in the log and on :data:`AGENT_FAILED_TOPIC`. The event that failed is not retried.
    """

    max_restarts: int = 5
    window_s: float = 60.0
    initial_backoff_s: float = 0.05
    max_backoff_s: float = 5.0

    def backoff(self, recent_failures: int) -> float:
        """Seconds to wait before the restart that follows ``recent_failures`` failures."""
        exponent = max(0, recent_failures - 1)
        return min(self.max_backoff_s, self.initial_backoff_s * 2.0**exponent)


@dataclass(frozen=True)
class AgentInfo:
    """A snapshot of one agent's status and counters.

    ``late_replies`` counts replies that came after the request (or fanout, contract
    net) waiting for them had ended; they were dropped.
    """

    agent_id: str
    status: AgentStatus
    topics: tuple[str, ...]
    processed: int
    failures: int
    restarts: int
    expired: int
    mailbox: int
    last_error: str | None
    late_replies: int = 0


class _Cell:
    """Everything the runtime keeps about one agent."""

    __slots__ = (
        "agent",
        "busy",
        "ctx",
        "expired",
        "failure_times",
        "failures",
        "last_error",
        "mailbox",
        "processed",
        "restarts",
        "router",
        "started",
        "status",
        "stopping",
        "subscriptions",
        "task",
        "topics",
    )

    def __init__(self, agent: Agent, ctx: Context, mailbox: DeliveryQueue) -> None:
        self.agent = agent
        self.ctx = ctx
        self.mailbox = mailbox
        self.topics: list[str] = []
        self.subscriptions: dict[str, Subscription] = {}
        self.task: asyncio.Task[None] | None = None
        self.status = AgentStatus.CREATED
        self.stopping = False
        self.busy = False
        self.started = False
        self.processed = 0
        self.failures = 0
        self.restarts = 0
        self.expired = 0
        self.failure_times: deque[float] = deque()
        self.last_error: str | None = None
        self.router: ReplyRouter | None = None


class AgentRuntime:
    """Runs agents on an event bus.

    Each agent has one bounded mailbox (``mailbox_size``, default 1000) that all its
    subscriptions feed (QoS Batched: a full mailbox makes publishers wait, nothing accepted
    is dropped), and one task that handles events one at a time, in order. Every agent is
    subscribed to its private topic ``agent.{id}.replies`` from creation; that subscription
    cannot be removed.

    Per event the runtime reads the envelope, sets the sender to ``agent.{id}`` when it is
    empty, takes one hop, and drops (and counts) the event when its ttl is exhausted before
    the handler sees it. A handler that raises is logged with the agent and event ids,
    counted, and the agent is restarted by the supervisor (see :class:`RestartPolicy`).

    Args:
        bus: the event bus the agents live on.
        state_store: persistent state for the agents (``ctx.state``), or None.
        mailbox_size: each agent's mailbox bound.
        restart_policy: the supervisor's policy.
        directory: the directory to keep current as agents come and go (a new one if None);
            available as :attr:`directory`.
        broker: what ``ctx.invoke`` and ``ctx.tool`` run capabilities through (a
            ``loom.actions.ActionBroker``, or anything with ``async invoke(call)``); None
            makes those calls raise :class:`~loom.AgentError`.

    Replies: an agent that makes a request (``ctx.request``, ``ctx.fanout``,
    ``ctx.contract_net``) gets, from its first one, a second subscription on its private
    topic, read by a :class:`~loom.collab.ReplyRouter`: a reply that carries the
    correlation id of a call waiting for it goes to that call, even while the agent's
    mailbox loop is busy in the handler that awaits it, and the mailbox loop skips it. A
    reply that comes after its call ended is dropped and counted (``late_replies``).
    Everything else on the private topic reaches the handler as before.
    """

    def __init__(
        self,
        bus: EventBus,
        *,
        state_store: Any = None,
        mailbox_size: int = DEFAULT_MAILBOX,
        restart_policy: RestartPolicy | None = None,
        directory: AgentDirectory | None = None,
        broker: ActionInvoker | None = None,
    ) -> None:
        if mailbox_size < 1:
            raise ValueError(f"mailbox_size must be at least 1, got {mailbox_size}")
        self.bus = bus
        self.state_store = state_store
        self.mailbox_size = mailbox_size
        self.restart_policy = restart_policy or RestartPolicy()
        self.directory = directory if directory is not None else AgentDirectory()
        self.broker = broker
        self._cells: dict[str, _Cell] = {}
        self._closed = False

    # -- lifecycle ------------------------------------------------------------------------

    async def spawn(
        self, agent_id: str, agent: Agent | EventHandler, *, topics: Iterable[str] = ()
    ) -> str:
        """Create an agent and start it; returns its id."""
        await self.create(agent_id, agent, topics=topics)
        await self.start(agent_id)
        return agent_id

    async def create(
        self, agent_id: str, agent: Agent | EventHandler, *, topics: Iterable[str] = ()
    ) -> str:
        """Create an agent, subscribed to its private topic, ``topics`` and its class's topics.

        Events published to those topics from now on wait in its mailbox until it starts.

        Raises:
            AgentExistsError: an agent with this id exists.
            InvalidTopicError: a topic pattern is invalid.
        """
        if self._closed:
            raise AgentError("the runtime is shut down")
        if not agent_id or "." in agent_id or any(c.isspace() for c in agent_id):
            raise AgentError(f"invalid agent id {agent_id!r}: non-empty, no dots, no spaces")
        if agent_id in self._cells:
            raise AgentExistsError(agent_id)
        instance = agent if isinstance(agent, Agent) else FunctionAgent(agent)
        wanted = [agent_replies_topic(agent_id)]
        for pattern in (*type(instance).topics, *topics):
            validate_pattern(pattern)
            if pattern not in wanted:
                wanted.append(pattern)
        state = None
        if self.state_store is not None:
            state = self.state_store.for_agent(agent_id)
        cell = _Cell(instance, Context(self, agent_id, state), DeliveryQueue(self.mailbox_size))
        self._cells[agent_id] = cell
        for pattern in wanted:
            await self._subscribe(cell, pattern)
        self.directory.register(
            AgentRecord(
                agent_id, frozenset(cell.topics), metadata={"type": type(instance).__qualname__}
            )
        )
        return agent_id

    async def start(self, agent_id: str) -> None:
        """Start a created or stopped agent (no-op if it runs)."""
        cell = self._cell(agent_id)
        if cell.task is not None and not cell.task.done():
            return
        for pattern in cell.topics:
            if pattern not in cell.subscriptions:
                await self._subscribe(cell, pattern, remember=False)
        cell.stopping = False
        cell.status = AgentStatus.RUNNING
        cell.started = False
        cell.task = asyncio.create_task(self._run(cell), name=f"loom-agent-{agent_id}")

    async def stop(self, agent_id: str, *, timeout: float = 5.0) -> None:
        """Stop an agent: it finishes the event in hand, then its subscriptions are dropped.

        Events already in its mailbox stay there for a later :meth:`start`.
        """
        cell = self._cell(agent_id)
        await self._stop(cell, timeout)

    async def delete(self, agent_id: str) -> None:
        """Stop an agent, drop its subscriptions and mailbox, and forget it.

        Raises:
            AgentNotFoundError: no agent has this id.
        """
        cell = self._cell(agent_id)
        await self._stop(cell, 5.0)
        cell.mailbox.close()
        del self._cells[agent_id]
        self.directory.unregister(agent_id)

    async def shutdown(self) -> None:
        """Stop and delete every agent; the runtime accepts no new agents."""
        self._closed = True
        await asyncio.gather(*(self._stop(cell, 5.0) for cell in self._cells.values()))
        for agent_id, cell in self._cells.items():
            cell.mailbox.close()
            self.directory.unregister(agent_id)
        self._cells.clear()

    # -- subscriptions --------------------------------------------------------------------

    async def subscribe(self, agent_id: str, pattern: str) -> None:
        """Subscribe a (running or not) agent to one more topic pattern.

        Raises:
            AgentNotFoundError: no agent has this id.
            AgentError: the agent is already subscribed to ``pattern``.
        """
        cell = self._cell(agent_id)
        validate_pattern(pattern)
        if pattern in cell.topics:
            raise AgentError(f"agent {agent_id!r} is already subscribed to {pattern!r}")
        await self._subscribe(cell, pattern)
        self.directory.update_topics(agent_id, cell.topics)

    async def unsubscribe(self, agent_id: str, pattern: str) -> None:
        """Remove one of an agent's subscriptions.

        Raises:
            AgentNotFoundError: no agent has this id.
            AgentError: the agent is not subscribed to ``pattern``, or ``pattern`` is its
                private topic, which cannot be removed.
        """
        cell = self._cell(agent_id)
        if pattern == agent_replies_topic(agent_id):
            raise AgentError(f"agent {agent_id!r} cannot leave its private topic {pattern!r}")
        if pattern not in cell.topics:
            raise AgentError(f"agent {agent_id!r} is not subscribed to {pattern!r}")
        cell.topics.remove(pattern)
        subscription = cell.subscriptions.pop(pattern, None)
        if subscription is not None:
            await self.bus.unsubscribe(subscription.id)
        self.directory.update_topics(agent_id, cell.topics)

    def subscriptions(self, agent_id: str) -> list[str]:
        """The agent's topic patterns, its private topic first."""
        return list(self._cell(agent_id).topics)

    # -- introspection --------------------------------------------------------------------

    def agent_ids(self) -> list[str]:
        """Ids of every agent, in creation order."""
        return list(self._cells)

    def info(self, agent_id: str) -> AgentInfo:
        """Status and counters of one agent."""
        cell = self._cell(agent_id)
        return AgentInfo(
            agent_id=agent_id,
            status=cell.status,
            topics=tuple(cell.topics),
            processed=cell.processed,
            failures=cell.failures,
            restarts=cell.restarts,
            expired=cell.expired,
            mailbox=cell.mailbox.qsize(),
            last_error=cell.last_error,
            late_replies=cell.ctx._collab.stats.late if cell.ctx._collab is not None else 0,
        )

    def agent(self, agent_id: str) -> Agent:
        """The agent object itself."""
        return self._cell(agent_id).agent

    # -- internals ------------------------------------------------------------------------

    def _cell(self, agent_id: str) -> _Cell:
        try:
            return self._cells[agent_id]
        except KeyError:
            raise AgentNotFoundError(agent_id) from None

    def _reply_channel(self, agent_id: str) -> _AgentReplies:
        return _AgentReplies(self, agent_id)

    async def _reply_router(self, agent_id: str, ledger: Ledger) -> ReplyRouter:
        """The agent's router on its private topic, started on first use."""
        cell = self._cell(agent_id)
        router = cell.router
        if router is None:
            mailbox = cell.mailbox
            router = cell.router = ReplyRouter(
                self.bus,
                agent_replies_topic(agent_id),
                ledger,
                mirror=lambda event: _discard(mailbox, event),
                queue_size=self.mailbox_size,
            )
        await router.start()
        return router

    async def _close_router(self, cell: _Cell, why: str) -> None:
        router, cell.router = cell.router, None
        if router is not None:
            await router.close(CollabError(f"agent {cell.ctx.agent_id!r} {why}"))

    async def _subscribe(self, cell: _Cell, pattern: str, *, remember: bool = True) -> None:
        subscription = await self.bus.subscribe(pattern, qos=QoS.BATCHED, queue=cell.mailbox)
        cell.subscriptions[pattern] = subscription
        if remember:
            cell.topics.append(pattern)

    async def _stop(self, cell: _Cell, timeout: float) -> None:
        task = cell.task
        cell.stopping = True
        for subscription in cell.subscriptions.values():
            await self.bus.unsubscribe(subscription.id)
        cell.subscriptions.clear()
        if task is not None and not task.done():
            # A task cancelled before its first step never runs, so on_start/on_stop would
            # be skipped: let it start (one loop turn) before cancelling it.
            while not cell.started and not task.done():
                await asyncio.sleep(0)
            if not cell.busy:
                task.cancel()
            try:
                await asyncio.wait_for(asyncio.shield(task), timeout)
            except (TimeoutError, asyncio.CancelledError):
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        cell.task = None
        await self._close_router(cell, "stopped while a call waited for replies")
        if cell.status is not AgentStatus.FAILED:
            cell.status = AgentStatus.STOPPED

    async def _run(self, cell: _Cell) -> None:
        cell.started = True
        agent, ctx, mailbox = cell.agent, cell.ctx, cell.mailbox
        sender = ctx.sender
        private = agent_replies_topic(ctx.agent_id)
        try:
            await agent.on_start(ctx)
        except Exception as exc:
            if not await self._supervise(cell, exc, None):
                return
        on_event = agent.on_event
        try:
            while not cell.stopping:
                try:
                    topic, event = await mailbox.get()
                except SubscriptionClosed:
                    break
                router = cell.router
                if router is not None and topic == private and router.claim(event, mirrored=True):
                    continue  # a reply, handed to the call waiting for it (or late)
                advanced = _advance(event, sender)
                if advanced is None:
                    cell.expired += 1
                    continue
                ctx.topic = topic
                cell.busy = True
                try:
                    hook = _switch.handle  # None unless telemetry traces or samples latency
                    if hook is None:
                        await on_event(ctx, advanced)
                    else:
                        await hook(ctx, topic, advanced, on_event)
                    cell.processed += 1
                except Exception as exc:
                    if not await self._supervise(cell, exc, advanced):
                        return
                    on_event = agent.on_event
                finally:
                    cell.busy = False
                    ctx.topic = ""
        finally:
            if cell.status is not AgentStatus.FAILED:
                try:
                    await agent.on_stop(ctx)
                except Exception:
                    log.exception("agent %s: on_stop raised", ctx.agent_id)

    async def _supervise(self, cell: _Cell, exc: Exception, event: Event | None) -> bool:
        """Record a failure; restart the agent (True) or give up on it (False)."""
        agent_id = cell.ctx.agent_id
        event_id = event.id if event is not None else "-"
        cell.failures += 1
        cell.last_error = f"{type(exc).__name__}: {exc}"
        log.error(
            "agent %s failed on event %s: %s", agent_id, event_id, cell.last_error, exc_info=exc
        )
        policy = self.restart_policy
        now = time.monotonic()
        cell.failure_times.append(now)
        while cell.failure_times and now - cell.failure_times[0] > policy.window_s:
            cell.failure_times.popleft()
        recent = len(cell.failure_times)
        if recent > policy.max_restarts:
            cell.status = AgentStatus.FAILED
            log.error(
                "agent %s stopped: %d failures within %.0f s (last: %s)",
                agent_id,
                recent,
                policy.window_s,
                cell.last_error,
            )
            for subscription in cell.subscriptions.values():
                await self.bus.unsubscribe(subscription.id)
            cell.subscriptions.clear()
            await self._close_router(cell, "failed while a call waited for replies")
            await self._report_failure(agent_id, cell.last_error, event_id, recent)
            return False
        cell.status = AgentStatus.RESTARTING
        await asyncio.sleep(policy.backoff(recent))
        if cell.stopping:
            return False
        cell.restarts += 1
        cell.ctx.memory.clear()
        cell.status = AgentStatus.RUNNING
        try:
            await cell.agent.on_start(cell.ctx)
        except Exception as start_exc:
            return await self._supervise(cell, start_exc, None)
        return True

    async def _report_failure(self, agent_id: str, error: str, event_id: str, count: int) -> None:
        report = Event(
            "agent.failed",
            error.encode(),
            source="runtime",
            metadata={
                "agent_id": agent_id,
                "error": error,
                "event_id": event_id,
                "failures": str(count),
            },
            priority=90,
        )
        try:
            await self.bus.publish(AGENT_FAILED_TOPIC, report)
        except Exception:
            log.exception("could not publish the failure report of agent %s", agent_id)


def _discard(mailbox: DeliveryQueue, event: Event) -> bool:
    """Take ``event`` out of the mailbox if it is among the newest items; whether it was.

    A reply the router handed to a waiting call must not hold a mailbox place: a handler
    that makes many requests would fill its own mailbox with them and block its
    responders. The reply is nearly always the newest item, so only the newest
    :data:`_DISCARD_SCAN` are looked at; one further back is skipped by the mailbox loop.
    """
    # DeliveryQueue has no public removal; the runtime owns this mailbox and is its only
    # reader, so it edits the deque in place and wakes a publisher waiting for room.
    items = mailbox._items
    last = len(items) - 1
    for i in range(last, max(-1, last - _DISCARD_SCAN), -1):
        item = items[i]
        if item.__class__ is tuple and item[1] is event:
            del items[i]
            if mailbox._putters:
                _wake(mailbox._putters)
            return True
    return False


def _advance(event: Event, sender: str) -> Event | None:
    """Take one hop on the event's envelope; None when its ttl is exhausted.

    Writes the full envelope back (on a copy), filling the sender when it is empty.
    """
    md = event.metadata
    get = md.get
    ttl_text = get("ttl") or get("loom.ttl")
    try:
        ttl = int(ttl_text) if ttl_text is not None else DEFAULT_TTL
    except ValueError:
        ttl = DEFAULT_TTL
    hop_text = get("hop") or get("loom.hop")
    try:
        hop = int(hop_text) + 1 if hop_text is not None else 1
    except ValueError:
        hop = 1
    if ttl > 0:
        ttl -= 1
    if ttl <= 0:
        return None
    thread_id = get("thread_id") or get("loom.thread_id") or event.id
    ts = get("ts") or get("loom.ts")
    new = dict(md)
    new["thread_id"] = thread_id
    new["correlation_id"] = get("correlation_id") or get("loom.correlation_id") or thread_id
    new["sender"] = get("sender") or get("loom.sender") or sender
    new["reply_to"] = get("reply_to") or get("loom.reply_to") or thread_reply_topic(thread_id)
    new["ttl"] = str(ttl)
    new["hop"] = str(hop)
    new["ts"] = ts if ts and ts.isdigit() and ts != "0" else str(time.time_ns() // 1_000_000)
    return _with_metadata_unchecked(event, new)


class _AgentReplies:
    """An agent's reply channel: the router on its private topic, made on first use."""

    __slots__ = ("_agent_id", "_router", "_runtime")

    def __init__(self, runtime: AgentRuntime, agent_id: str) -> None:
        self._runtime = runtime
        self._agent_id = agent_id
        self._router: ReplyRouter | None = None

    async def open(self, thread_id: str, ledger: Ledger) -> ReplyRouter:
        router = self._router
        if router is None or router.closed:
            router = self._router = await self._runtime._reply_router(self._agent_id, ledger)
        return router

    async def release(self, router: ReplyRouter) -> None:
        """Nothing to do: the router outlives the call."""
