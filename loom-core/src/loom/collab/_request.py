"""Request/reply and fanout/fanin."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from loom._envelope import DEFAULT_TTL, Envelope
from loom._event import Event, new_event_id
from loom.collab._checks import positive_seconds
from loom.collab._errors import CollabTimeout
from loom.collab._events import (
    COLLAB_PRIORITY,
    COLLAB_SUMMARY,
    COLLAB_TAGS,
    COLLAB_TIMEOUT,
    publish_report,
)
from loom.collab._payload import CONTENT_TYPE_KEY, JSON_CONTENT_TYPE, Payload, encode_payload
from loom.collab._results import FanoutResult
from loom.collab._router import FutureSink, Inbox
from loom.collab._strategy import Strategy
from loom.collab._thread import Thread
from loom.topics import thread_reply_topic, validate_topic

if TYPE_CHECKING:
    from loom.collab._collab import Collab

__all__ = ["fanout", "request"]


def _metadata(metadata: Mapping[str, str] | None, is_json: bool) -> dict[str, str]:
    md = dict(metadata) if metadata else {}
    if is_json:
        md[CONTENT_TYPE_KEY] = JSON_CONTENT_TYPE
    return md


def _envelope(
    thread: Thread | None, thread_id: str, correlation_id: str, sender: str, reply_to: str
) -> Envelope:
    if thread is not None:
        return thread.envelope_for(correlation_id, sender, reply_to)
    return Envelope(
        thread_id, correlation_id, sender, reply_to, DEFAULT_TTL, 0, time.time_ns() // 1_000_000
    )


class _Expiry:
    """The deadline of one request: cheaper than ``asyncio.timeout`` (see :class:`Deadlines`).

    At the deadline it resolves the request's future with None; if the request is still
    publishing (waiting for room in a full queue), it cancels the task instead, and the
    request turns that cancellation into its timeout.
    """

    __slots__ = ("fired", "future", "publishing", "task")

    def __init__(self, future: asyncio.Future[Event | None], task: asyncio.Task[object]) -> None:
        self.future = future
        self.task = task
        self.publishing = True
        self.fired = False

    def __call__(self) -> None:
        self.fired = True
        if self.publishing:
            self.task.cancel()
        elif not self.future.done():
            self.future.set_result(None)


async def request(
    party: Collab,
    topic: str,
    event_type: str,
    payload: Payload,
    *,
    timeout_s: float,
    thread: Thread | None,
    metadata: Mapping[str, str] | None,
    priority: int,
) -> Event:
    """See :meth:`Collab.request`."""
    timeout = positive_seconds("timeout_s", timeout_s)
    body, is_json = encode_payload(payload)
    md = _metadata(metadata, is_json)
    sender = party.sender
    event = Event(event_type, body, source=sender, metadata=md, priority=priority, tags=COLLAB_TAGS)
    correlation_id = event.id
    thread_id = thread.id if thread is not None else correlation_id
    loop = asyncio.get_running_loop()
    started = loop.time()
    ledger = party.ledger
    stats = ledger.stats
    stats.started += 1
    channel = party.channel
    router = await channel.open(thread_id, ledger)
    envelope = _envelope(thread, thread_id, correlation_id, sender, router.topic)
    envelope_md = envelope.to_metadata()
    md.update(envelope_md)
    future: asyncio.Future[Event | None] = loop.create_future()
    task = asyncio.current_task()
    if task is None:
        raise RuntimeError("request() must run in an asyncio task")
    expiry = _Expiry(future, task)
    deadlines = party.deadlines
    deadlines.add(correlation_id, started + timeout, expiry)
    router.expect(correlation_id, FutureSink(future, stats))
    reply: Event | None = None
    try:
        try:
            await party.bus.publish(topic, event)
        except asyncio.CancelledError:
            if not expiry.fired or task.uncancel() > 0:
                raise  # cancelled from outside, not by the deadline
        else:
            expiry.publishing = False
            reply = await future
    finally:
        deadlines.remove(correlation_id)
        router.finish((correlation_id,))
        await channel.release(router)
    report_topic = thread_reply_topic(thread_id)
    fields = {"primitive": "request", "topic": topic}
    fields["elapsed_ms"] = str(int((loop.time() - started) * 1000))
    if reply is None:
        stats.timeouts += 1
        timeout_fields = {"primitive": "request", "reason": "request_reply_timeout"}
        timeout_fields["topic"] = topic
        timeout_fields["timeout_ms"] = str(int(timeout * 1000))
        await publish_report(party.bus, report_topic, COLLAB_TIMEOUT, envelope, timeout_fields)
        fields["received"] = "0"
        await publish_report(party.bus, report_topic, COLLAB_SUMMARY, envelope, fields)
        raise CollabTimeout(
            "request",
            "request_reply_timeout",
            f"request {correlation_id!r} to {topic!r} got no reply within {timeout:g} s",
            thread_id=thread_id,
            correlation_id=correlation_id,
            timeout_s=timeout,
        )
    stats.completed += 1
    fields["received"] = "1"
    fields.update(envelope_md)
    await party.bus.publish(
        report_topic,
        Event(
            COLLAB_SUMMARY,
            source=sender,
            metadata=fields,
            priority=COLLAB_PRIORITY[COLLAB_SUMMARY],
            tags=COLLAB_TAGS,
        ),
    )
    return reply


async def fanout(
    party: Collab,
    topics: Sequence[str],
    event_type: str,
    payload: Payload,
    *,
    strategy: Strategy | str,
    timeout_s: float,
    thread: Thread | None,
    metadata: Mapping[str, str] | None,
    priority: int,
) -> FanoutResult:
    """See :meth:`Collab.fanout`."""
    if isinstance(topics, str):
        raise TypeError(f"topics takes a list of topics, not one str: write [{topics!r}]")
    targets = tuple(topics)
    if not targets:
        raise ValueError("topics must name at least one target topic")
    for target in targets:
        validate_topic(target)
    chosen = Strategy.of(strategy)
    timeout = positive_seconds("timeout_s", timeout_s)
    body, is_json = encode_payload(payload)
    base_md = _metadata(metadata, is_json)
    sender = party.sender
    base = new_event_id()
    thread_id = thread.id if thread is not None else base
    correlations = [f"{base}:{i}" for i in range(len(targets))]
    index = {cid: i for i, cid in enumerate(correlations)}
    loop = asyncio.get_running_loop()
    started = loop.time()
    ledger = party.ledger
    stats = ledger.stats
    stats.started += 1
    channel = party.channel
    router = await channel.open(thread_id, ledger)
    inbox = Inbox(stats)
    for correlation_id in correlations:
        router.expect(correlation_id, inbox)
    replies: list[Event] = []
    answered: dict[int, None] = {}
    seen: set[tuple[int, str]] = set()
    total = len(targets)
    complete = False
    try:
        async with asyncio.timeout_at(started + chosen.deadline_s(timeout)):
            for i, target in enumerate(targets):
                md = dict(base_md)
                _envelope(thread, thread_id, correlations[i], sender, router.topic).attach(md)
                await party.bus.publish(
                    target,
                    Event(
                        event_type,
                        body,
                        source=sender,
                        metadata=md,
                        priority=priority,
                        tags=COLLAB_TAGS,
                    ),
                )
            while not chosen.satisfied(len(replies), len(answered), total):
                reply = await inbox.get()
                i = index[reply.correlation_id or ""]
                key = (i, reply.sender or "")
                if key in seen:
                    stats.duplicates += 1
                    continue
                seen.add(key)
                replies.append(reply)
                answered.setdefault(i)
            complete = True
    except TimeoutError:
        complete = chosen.kind == "window" and bool(replies)
    finally:
        router.finish(correlations)
        await channel.release(router)
    elapsed = loop.time() - started
    result = FanoutResult(
        replies=tuple(replies),
        strategy=chosen,
        complete=complete,
        targets=targets,
        answered=tuple(targets[i] for i in answered),
        thread_id=thread_id,
        correlation_id=base,
        elapsed_s=elapsed,
    )
    envelope = _envelope(thread, thread_id, base, sender, router.topic)
    fields = {
        "primitive": "fanout",
        "strategy": str(chosen),
        "targets": str(total),
        "received": str(len(replies)),
        "answered": str(len(answered)),
        "expected": str(chosen.expected(total)),
        "elapsed_ms": str(int(elapsed * 1000)),
    }
    if chosen.kind in ("any", "first_k"):
        fields["target_first_k"] = str(chosen.k)
    report_topic = thread_reply_topic(thread_id)
    if not complete:
        stats.timeouts += 1
        timeout_fields = {"primitive": "fanout", "reason": "fanout_timeout"}
        timeout_fields["strategy"] = str(chosen)
        timeout_fields["received"] = str(len(replies))
        await publish_report(party.bus, report_topic, COLLAB_TIMEOUT, envelope, timeout_fields)
        await publish_report(party.bus, report_topic, COLLAB_SUMMARY, envelope, fields)
        raise CollabTimeout(
            "fanout",
            "fanout_timeout",
            f"fanout {base!r} to {total} topic(s) under {chosen} ended after {elapsed:.3g} s "
            f"with {len(replies)} repl{'y' if len(replies) == 1 else 'ies'} "
            f"(missing: {', '.join(result.missing) or 'none'})",
            thread_id=thread_id,
            correlation_id=base,
            timeout_s=timeout,
            result=result,
        )
    stats.completed += 1
    await publish_report(party.bus, report_topic, COLLAB_SUMMARY, envelope, fields)
    return result
