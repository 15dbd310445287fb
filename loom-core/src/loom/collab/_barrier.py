"""Barrier: wait until ``n`` distinct parties have checked in on a thread.

Every participant subscribes to ``thread.{id}.broadcast`` (type ``collab.barrier``) and then
checks in there, listing everyone it knows has arrived. A participant that sees a check-in
which does not list it checks in again, so a party that subscribed late still learns who
came before it; knowledge spreads through the lists, and each newcomer causes at most one
re-check-in per party already there. An observer (``participate=False``) is not counted:
it sends a probe, which every participant answers with a check-in.
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING

from loom._action import QoS
from loom._event import Event
from loom.collab._checks import positive_int, positive_seconds
from loom.collab._errors import CollabTimeout
from loom.collab._events import (
    COLLAB_BARRIER,
    COLLAB_SUMMARY,
    COLLAB_TAGS,
    COLLAB_TIMEOUT,
    publish_report,
)
from loom.collab._results import BarrierResult
from loom.collab._thread import Thread

if TYPE_CHECKING:
    from loom.collab._collab import Collab

__all__ = ["barrier"]

#: Metadata of a check-in: the barrier's size, and "1" on an observer's probe.
BARRIER_N_KEY = "barrier_n"
BARRIER_PROBE_KEY = "barrier_probe"


def _listed(event: Event) -> list[str] | None:
    """The senders a check-in lists as arrived; [] for an empty tick; None if malformed."""
    if not event.payload:
        return []
    try:
        document = json.loads(event.payload)
    except (UnicodeDecodeError, ValueError):
        return None
    arrived = document.get("arrived") if isinstance(document, dict) else None
    if not isinstance(arrived, list) or not all(isinstance(a, str) and a for a in arrived):
        return None
    return arrived


async def barrier(
    party: Collab, thread: Thread, n: int, *, timeout_s: float, participate: bool
) -> BarrierResult:
    """See :meth:`Collab.barrier`."""
    n = positive_int("n", n)
    timeout = positive_seconds("timeout_s", timeout_s)
    bus = party.bus
    me = party.sender
    stats = party.ledger.stats
    stats.started += 1
    topic = thread.broadcast_topic
    envelope = thread.envelope_for(thread.id, me, thread.reply_topic)
    loop = asyncio.get_running_loop()
    started = loop.time()
    arrived: dict[str, None] = {me: None} if participate else {}

    async def check_in() -> None:
        metadata = {BARRIER_N_KEY: str(n)}
        if not participate:
            metadata[BARRIER_PROBE_KEY] = "1"
        envelope.attach(metadata)
        body = json.dumps({"arrived": list(arrived)}, separators=(",", ":")).encode()
        await bus.publish(
            topic, Event(COLLAB_BARRIER, body, source=me, metadata=metadata, tags=COLLAB_TAGS)
        )

    subscription = await bus.subscribe(topic, event_types=(COLLAB_BARRIER,), qos=QoS.BATCHED)
    complete = False
    try:
        async with asyncio.timeout_at(started + timeout):
            await check_in()
            while len(arrived) < n:
                _, event = await subscription.get()
                who = event.sender
                if who == me:
                    continue  # our own check-in, echoed
                listed = _listed(event)
                if not who or listed is None:
                    stats.malformed += 1
                    continue
                if event.metadata.get(BARRIER_PROBE_KEY) != "1":
                    arrived.setdefault(who)
                for name in listed:
                    arrived.setdefault(name)
                if participate and me not in listed:
                    await check_in()
            complete = True
    except TimeoutError:
        pass
    finally:
        await bus.unsubscribe(subscription.id)
    elapsed = loop.time() - started
    result = BarrierResult(thread.id, n, tuple(arrived), complete, elapsed)
    fields = {
        "primitive": "barrier",
        "n": str(n),
        "arrived": str(len(arrived)),
        "participants": json.dumps(list(arrived), separators=(",", ":")),
        "elapsed_ms": str(int(elapsed * 1000)),
    }
    if not complete:
        stats.timeouts += 1
        timeout_fields = {"primitive": "barrier", "reason": "barrier_timeout"}
        timeout_fields["n"] = str(n)
        timeout_fields["arrived"] = str(len(arrived))
        await publish_report(bus, topic, COLLAB_TIMEOUT, envelope, timeout_fields)
        await publish_report(bus, topic, COLLAB_SUMMARY, envelope, fields)
        raise CollabTimeout(
            "barrier",
            "barrier_timeout",
            f"barrier on thread {thread.id!r} waited {timeout:g} s for {n} and saw "
            f"{len(arrived)}: {', '.join(arrived) or 'nobody'}",
            thread_id=thread.id,
            correlation_id=thread.id,
            timeout_s=timeout,
            result=result,
        )
    stats.completed += 1
    await publish_report(bus, topic, COLLAB_SUMMARY, envelope, fields)
    return result
