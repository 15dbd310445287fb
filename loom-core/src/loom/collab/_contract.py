"""Contract net: call for proposals, rank them by score, award the best, collect results.

1. The call for proposals (``collab.cfp``) goes to ``thread.{id}.broadcast``; its
   ``reply_to`` is the caller's reply channel and its correlation id is the round's id.
2. Proposals (``collab.proposal`` replies carrying that id) are collected until the window
   closes, or earlier once ``bidders`` proposals are in. A proposal's ``score`` metadata
   is a float (missing counts as 0.0); one that is not a finite number, or has no sender,
   is counted as malformed and skipped; a second one from the same sender is a duplicate.
3. The best ``max_awards`` (highest score first, ties in arrival order) each get a
   ``collab.award`` on the broadcast topic: the proposal's own metadata plus ``award_to``
   (the winner's sender), with the round's envelope.
4. With ``result_timeout_s``, each winner's result (any reply carrying the round's id that
   is not a proposal) is collected until that deadline.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING

from loom._envelope import ENVELOPE_KEYS
from loom._event import Event
from loom.collab._checks import positive_int, positive_seconds
from loom.collab._errors import CollabTimeout
from loom.collab._events import (
    COLLAB_AWARD,
    COLLAB_PRIORITY,
    COLLAB_PROPOSAL,
    COLLAB_SUMMARY,
    COLLAB_TAGS,
    COLLAB_TIMEOUT,
    publish_report,
)
from loom.collab._payload import CONTENT_TYPE_KEY, JSON_CONTENT_TYPE, Payload, encode_payload
from loom.collab._results import CollabStats, ContractNetResult, Proposal
from loom.collab._router import Inbox
from loom.collab._thread import Thread

if TYPE_CHECKING:
    from loom.collab._collab import Collab

__all__ = ["AWARD_TO_KEY", "SCORE_KEY", "contract_net", "read_proposal"]

#: The metadata key of a proposal's score, and of an award's winner.
SCORE_KEY = "score"
AWARD_TO_KEY = "award_to"

_ENVELOPE = frozenset(ENVELOPE_KEYS) | {f"loom.{k}" for k in ENVELOPE_KEYS}


def read_proposal(event: Event, stats: CollabStats) -> Proposal | None:
    """The proposal ``event`` makes, or None (counted as malformed) when it makes none."""
    sender = event.sender
    raw = event.metadata.get(SCORE_KEY)
    try:
        score = 0.0 if raw is None else float(raw)
    except ValueError:
        score = math.nan
    if event.type != COLLAB_PROPOSAL or not sender or not math.isfinite(score):
        stats.malformed += 1
        return None
    return Proposal(sender, score, event)


async def contract_net(
    party: Collab,
    thread: Thread,
    payload: Payload,
    *,
    window_s: float,
    max_awards: int,
    bidders: int | None,
    result_timeout_s: float | None,
    event_type: str,
    metadata: Mapping[str, str] | None,
) -> ContractNetResult:
    """See :meth:`Collab.contract_net`."""
    window = positive_seconds("window_s", window_s)
    max_awards = positive_int("max_awards", max_awards)
    if bidders is not None:
        bidders = positive_int("bidders", bidders)
    result_timeout = (
        None if result_timeout_s is None else positive_seconds("result_timeout_s", result_timeout_s)
    )
    body, is_json = encode_payload(payload)
    md = dict(metadata) if metadata else {}
    if is_json:
        md[CONTENT_TYPE_KEY] = JSON_CONTENT_TYPE
    bus = party.bus
    sender = party.sender
    priority = COLLAB_PRIORITY.get(event_type, 50)
    cfp = Event(event_type, body, source=sender, metadata=md, priority=priority, tags=COLLAB_TAGS)
    round_id = cfp.id
    loop = asyncio.get_running_loop()
    started = loop.time()
    ledger = party.ledger
    stats = ledger.stats
    stats.started += 1
    channel = party.channel
    router = await channel.open(thread.id, ledger)
    envelope = thread.envelope_for(round_id, sender, router.topic)
    envelope.attach(md)
    inbox = Inbox(stats)
    router.expect(round_id, inbox)
    broadcast = thread.broadcast_topic
    proposals: list[Proposal] = []
    awards: tuple[Proposal, ...] = ()
    results: dict[str, Event] = {}
    phase = "proposals"
    try:
        try:
            async with asyncio.timeout_at(started + window):
                await bus.publish(broadcast, cfp)
                senders: set[str] = set()
                while bidders is None or len(proposals) < bidders:
                    proposal = read_proposal(await inbox.get(), stats)
                    if proposal is None:
                        continue
                    if proposal.sender in senders:
                        stats.duplicates += 1
                        continue
                    senders.add(proposal.sender)
                    proposals.append(proposal)
        except TimeoutError:
            pass
        proposals.sort(key=lambda p: p.score, reverse=True)  # stable: ties keep arrival order
        awards = tuple(proposals[:max_awards])
        for winner in awards:
            award_md = {k: v for k, v in winner.event.metadata.items() if k not in _ENVELOPE}
            award_md[AWARD_TO_KEY] = winner.sender
            envelope.attach(award_md)
            await bus.publish(
                broadcast,
                Event(
                    COLLAB_AWARD,
                    winner.payload,
                    source=sender,
                    metadata=award_md,
                    priority=COLLAB_PRIORITY[COLLAB_AWARD],
                    tags=COLLAB_TAGS,
                ),
            )
        if awards:
            phase = "done" if result_timeout is None else "results"
        if awards and result_timeout is not None:
            winners = {p.sender for p in awards}
            try:
                async with asyncio.timeout(result_timeout):
                    while len(results) < len(winners):
                        reply = await inbox.get()
                        who = reply.sender or ""
                        if reply.type == COLLAB_PROPOSAL:
                            stats.late += 1  # a bid after the window closed
                        elif who not in winners:
                            stats.malformed += 1
                        elif who in results:
                            stats.duplicates += 1
                        else:
                            results[who] = reply
                phase = "done"
            except TimeoutError:
                pass
    finally:
        router.finish((round_id,))
        await channel.release(router)
    elapsed = loop.time() - started
    complete = phase == "done"
    result = ContractNetResult(
        thread_id=thread.id,
        correlation_id=round_id,
        proposals=tuple(proposals),
        awards=awards,
        results=tuple(results.values()),
        complete=complete,
        phase=phase,
        elapsed_s=elapsed,
    )
    fields = {
        "primitive": "contract_net",
        "proposals": str(len(proposals)),
        "winners": json.dumps(list(result.winners), separators=(",", ":")),
        "max_awards": str(max_awards),
        "results": str(len(results)),
        "phase": phase,
        "elapsed_ms": str(int(elapsed * 1000)),
    }
    if not complete:
        stats.timeouts += 1
        reason = (
            "contract_net_no_proposals" if phase == "proposals" else "contract_net_results_timeout"
        )
        timeout_fields = {"primitive": "contract_net", "reason": reason, "phase": phase}
        await publish_report(bus, broadcast, COLLAB_TIMEOUT, envelope, timeout_fields)
        await publish_report(bus, broadcast, COLLAB_SUMMARY, envelope, fields)
        if phase == "proposals":
            message = f"no valid proposal within the {window:g} s window"
        else:
            missing = sorted({p.sender for p in awards} - set(results))
            message = f"no result from {', '.join(missing)} within {result_timeout:g} s"
        raise CollabTimeout(
            "contract_net",
            reason,
            f"contract net {round_id!r} on thread {thread.id!r}: {message}",
            thread_id=thread.id,
            correlation_id=round_id,
            timeout_s=window if phase == "proposals" else result_timeout or window,
            result=result,
        )
    stats.completed += 1
    await publish_report(bus, broadcast, COLLAB_SUMMARY, envelope, fields)
    return result
