"""Collab: the collaboration primitives of one party (an agent, or any code with a bus)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from loom._envelope import Envelope
from loom._event import Event
from loom.bus import EventBus
from loom.collab._barrier import barrier
from loom.collab._channel import ReplyChannel, ThreadReplies
from loom.collab._contract import SCORE_KEY, contract_net
from loom.collab._deadline import Deadlines
from loom.collab._events import COLLAB_CFP, COLLAB_PROPOSAL, COLLAB_REPLY, COLLAB_REQUEST
from loom.collab._payload import CONTENT_TYPE_KEY, JSON_CONTENT_TYPE, Payload, encode_payload
from loom.collab._request import fanout, request
from loom.collab._results import (
    BarrierResult,
    CollabStats,
    ContractNetResult,
    FanoutResult,
)
from loom.collab._router import Ledger
from loom.collab._strategy import ALL, Strategy
from loom.collab._thread import Thread, thread_of
from loom.topics import agent_replies_topic, thread_reply_topic

__all__ = ["Collab", "build_reply", "proposal_metadata"]


def build_reply(
    original: Event | Thread,
    event_type: str,
    payload: Payload,
    *,
    sender: str,
    reply_to: str | None,
    metadata: Mapping[str, str] | None = None,
    priority: int = 50,
) -> tuple[str, Event]:
    """The topic and event that answer ``original`` (an event, or the thread read from one).

    The reply goes to the original's ``reply_to`` (else its sender's private topic), in the
    same thread, keeping its correlation id (its own id when it has none), hop and ttl.
    The reply's own ``reply_to`` is ``reply_to``, or the thread's reply topic when None.

    Raises:
        ValueError: the original says nowhere to reply to, or is a thread started here.
    """
    if isinstance(original, Thread):
        if original.event is None:
            raise ValueError(f"thread {original.id!r} was started here: no one to reply to")
        original = original.event
    body, is_json = encode_payload(payload)
    md = dict(metadata) if metadata else {}
    if is_json:
        md[CONTENT_TYPE_KEY] = JSON_CONTENT_TYPE
    got = original.metadata
    thread_id = got.get("thread_id")
    ttl, hop, ts = got.get("ttl"), got.get("hop"), got.get("ts")
    if thread_id and ttl and hop and ts:
        # An event the runtime delivered carries the whole envelope, in bare keys and
        # normalised: copy it rather than parse it (the hot path of every reply).
        topic = original.reply_to or _agent_topic(original.sender or "")
        md["thread_id"] = thread_id
        md["correlation_id"] = original.correlation_id or original.id
        md["sender"] = sender
        md["reply_to"] = reply_to if reply_to is not None else thread_reply_topic(thread_id)
        md["ttl"] = ttl
        md["hop"] = hop
        md["ts"] = ts
    else:
        request = Envelope.from_event(original)
        topic = original.reply_to or request.agent_reply_topic()
        Envelope(
            thread_id=request.thread_id,
            correlation_id=original.correlation_id or original.id,
            sender=sender,
            reply_to=reply_to if reply_to is not None else thread_reply_topic(request.thread_id),
            ttl=request.ttl,
            hop=request.hop,
            ts=request.ts,
        ).attach(md)
    if not topic:
        raise ValueError(f"event {original.id!r} has no reply_to and no agent sender")
    return topic, Event(event_type, body, source=sender, metadata=md, priority=priority)


def _agent_topic(sender: str) -> str:
    """``agent.{id}.replies`` for an ``agent.{id}`` sender; "" for any other sender."""
    return agent_replies_topic(sender[6:]) if sender.startswith("agent.") else ""


class Collab:
    """The collaboration primitives, for one party on a bus.

    Agents use theirs through ``ctx`` (``ctx.request``, ``ctx.fanout``, ...), whose replies
    come on the agent's private topic. Code that is no agent makes one with a bus and a
    sender name; its replies then come on ``thread.{id}.reply`` through a subscription made
    for each call (before it publishes) and removed when the call ends.

    Every primitive publishes a ``collab.summary`` when it ends; one that ends short
    publishes a ``collab.timeout`` first and raises :class:`CollabTimeout`, which carries
    the partial result. Request and fanout report on ``thread.{id}.reply``, barrier and
    contract net on ``thread.{id}.broadcast``.

    Args:
        bus: the bus to collaborate on.
        sender: who this party is, written as the envelope's sender (agents use
            ``agent.{id}``).
        channel: where replies arrive; :class:`ThreadReplies` when None.
        stats: the counters to keep (new ones when None).

    Example:
        .. code-block:: python

            collab = Collab(bus, "client")
            reply = await collab.request("echo", payload={"text": "hi"}, timeout_s=1.0)
            result = await collab.fanout(["a", "b", "c"], payload=b"?", strategy=first_k(2))
    """

    def __init__(
        self,
        bus: EventBus,
        sender: str,
        *,
        channel: ReplyChannel | None = None,
        stats: CollabStats | None = None,
    ) -> None:
        if not isinstance(sender, str) or not sender:
            raise ValueError(f"sender must be a non-empty str, got {sender!r}")
        self.bus = bus
        self.sender = sender
        self.channel: ReplyChannel = channel if channel is not None else ThreadReplies(bus)
        self.ledger = Ledger(stats)
        self.deadlines = Deadlines()

    def __repr__(self) -> str:
        return f"<Collab {self.sender}>"

    @property
    def stats(self) -> CollabStats:
        """The counters of this party's primitives (late and malformed replies, ...)."""
        return self.ledger.stats

    async def request(
        self,
        topic: str,
        type: str = COLLAB_REQUEST,
        payload: Payload = b"",
        *,
        timeout_s: float = 5.0,
        thread: Thread | None = None,
        metadata: Mapping[str, str] | None = None,
        priority: int = 50,
    ) -> Event:
        """Send one request to ``topic`` and wait for the first reply to it.

        The request carries a fresh correlation id (its own event id) and this party's
        reply channel as ``reply_to``; a responder answers with ``ctx.reply(event, ...)``
        (or any event to ``reply_to`` that keeps the correlation id). A reply that comes
        after the call ended is dropped and counted in ``stats.late``; it never reaches a
        later call.

        Args:
            topic: where the request goes (a concrete topic).
            type: the request's event type.
            payload: bytes, str (UTF-8) or a JSON-serialisable mapping or list.
            timeout_s: seconds to wait for the reply, publishing included.
            thread: continue this conversation (thread id, hop and ttl); a new thread
                (the request's id) when None.
            metadata: extra metadata for the request.
            priority: the request's priority.

        Returns:
            The reply event.

        Raises:
            CollabTimeout: no reply within ``timeout_s`` (``result`` is None).
            ValueError: ``timeout_s`` is not a positive number; the topic is invalid.
            TypeError: the payload is not bytes, str or JSON-serialisable.
        """
        return await request(
            self,
            topic,
            type,
            payload,
            timeout_s=timeout_s,
            thread=thread,
            metadata=metadata,
            priority=priority,
        )

    async def fanout(
        self,
        topics: Sequence[str],
        type: str = COLLAB_REQUEST,
        payload: Payload = b"",
        *,
        strategy: Strategy | str = ALL,
        timeout_s: float = 5.0,
        thread: Thread | None = None,
        metadata: Mapping[str, str] | None = None,
        priority: int = 50,
    ) -> FanoutResult:
        """Send the same request to every topic and collect replies as ``strategy`` says.

        The request to ``topics[i]`` carries the correlation id ``{id}:{i}``, so each
        reply is matched to its target. Replies that come after the strategy is satisfied
        are dropped and counted late.

        Args:
            topics: the target topics (at least one).
            type: the requests' event type.
            payload: as for :meth:`request`.
            strategy: :data:`ANY`, :func:`first_k`, :data:`MAJORITY`, :data:`ALL` (the
                default), :func:`window`, or one of the names ``any``, ``majority``,
                ``all``.
            timeout_s: seconds to collect (a window strategy stops at its window when
                that is shorter).
            thread: continue this conversation; a new thread when None.
            metadata: extra metadata for the requests.
            priority: the requests' priority.

        Returns:
            The collected replies, with ``complete=True``.

        Raises:
            CollabTimeout: the deadline passed before the strategy was satisfied (for a
                window: nothing arrived); ``result`` holds what did arrive.
            ValueError: no topics, an invalid topic, a bad strategy or ``timeout_s``.
            TypeError: ``topics`` is a str, or the payload cannot be encoded.
        """
        return await fanout(
            self,
            topics,
            type,
            payload,
            strategy=strategy,
            timeout_s=timeout_s,
            thread=thread,
            metadata=metadata,
            priority=priority,
        )

    async def barrier(
        self,
        thread: Thread | str,
        n: int,
        *,
        timeout_s: float = 5.0,
        participate: bool = True,
    ) -> BarrierResult:
        """Check in on ``thread`` and wait until ``n`` distinct parties have checked in.

        Check-ins are ``collab.barrier`` events on ``thread.{id}.broadcast``; every
        participant calls :meth:`barrier` with the same thread and ``n``. Parties are
        told apart by their sender.

        Args:
            thread: the thread (or thread id) the participants share.
            n: how many distinct participants complete the barrier.
            timeout_s: seconds to wait.
            participate: False to watch without being counted.

        Returns:
            Who arrived, with ``complete=True``.

        Raises:
            CollabTimeout: fewer than ``n`` arrived in time; ``result.arrived`` says who.
            ValueError: ``n`` is not an int >= 1, or ``timeout_s`` is not positive.
        """
        return await barrier(
            self,
            thread_of(thread, self.sender),
            n,
            timeout_s=timeout_s,
            participate=participate,
        )

    async def contract_net(
        self,
        thread: Thread | str | None,
        payload: Payload = b"",
        *,
        window_s: float,
        max_awards: int = 1,
        bidders: int | None = None,
        result_timeout_s: float | None = None,
        type: str = COLLAB_CFP,
        metadata: Mapping[str, str] | None = None,
    ) -> ContractNetResult:
        """Run one contract-net round on ``thread``: cfp, proposals, awards, results.

        Bidders listen on ``thread.{id}.broadcast``, answer the cfp with
        ``ctx.propose(cfp, score, ...)`` and, when an award names them in ``award_to``,
        deliver with ``ctx.reply(award, ...)``.

        Args:
            thread: the thread (or thread id) whose broadcast topic the bidders listen
                on; a new thread when None.
            payload: the call for proposals' payload.
            window_s: seconds to collect proposals.
            max_awards: how many of the best proposals win.
            bidders: close the window early once this many proposals are in.
            result_timeout_s: seconds to wait for the winners' results after the awards;
                None to not wait for results.
            type: the call for proposals' event type.
            metadata: extra metadata for the call for proposals.

        Returns:
            The round, with ``complete=True``.

        Raises:
            CollabTimeout: no valid proposal in the window, or a winner delivered no
                result in time; ``result`` holds the round so far.
            ValueError: a non-positive ``window_s``, ``max_awards``, ``bidders`` or
                ``result_timeout_s``.
        """
        return await contract_net(
            self,
            thread_of(thread, self.sender),
            payload,
            window_s=window_s,
            max_awards=max_awards,
            bidders=bidders,
            result_timeout_s=result_timeout_s,
            event_type=type,
            metadata=metadata,
        )

    async def reply(
        self,
        original: Event | Thread,
        type: str = COLLAB_REPLY,
        payload: Payload = b"",
        *,
        metadata: Mapping[str, str] | None = None,
        priority: int = 50,
    ) -> Event:
        """Answer ``original`` (an event, or the thread read from one); returns the reply.

        The reply goes to the original's ``reply_to`` (else its sender's private topic), in
        the same thread, keeping its correlation id, hop and ttl; its own ``reply_to`` is
        the thread's reply topic.
        """
        topic, event = build_reply(
            original,
            type,
            payload,
            sender=self.sender,
            reply_to=None,
            metadata=metadata,
            priority=priority,
        )
        await self.bus.publish(topic, event)
        return event

    async def propose(
        self,
        cfp: Event,
        score: float,
        payload: Payload = b"",
        *,
        metadata: Mapping[str, str] | None = None,
    ) -> Event:
        """Answer a call for proposals with a ``collab.proposal`` scored ``score``."""
        md = proposal_metadata(score, metadata)
        return await self.reply(cfp, COLLAB_PROPOSAL, payload, metadata=md)


def proposal_metadata(score: float, metadata: Mapping[str, str] | None = None) -> dict[str, str]:
    """The metadata of a proposal: ``metadata`` plus ``score`` as text.

    Raises:
        ValueError: ``score`` is not a finite number.
    """
    if isinstance(score, bool) or not isinstance(score, int | float) or not math.isfinite(score):
        raise ValueError(f"score must be a finite number, got {score!r}")
    md = dict(metadata) if metadata else {}
    md[SCORE_KEY] = repr(float(score))
    return md
