"""Collaboration: request/reply, fanout/fanin, barrier and contract net, on the bus.

Everything here is events on the bus and the envelope in their metadata, so the same
primitives work in process, across the bridge and across NATS. Agents use them through
their context::

    thread = ctx.thread(event)
    answer = await ctx.request("research", "research.query", {"q": q}, thread=thread)
    views = await ctx.fanout(["critic.a", "critic.b", "critic.c"], "review", draft,
                             strategy=majority, timeout_s=2.0)
    await ctx.reply(event, "plan.done", {"answer": json_payload(answer)})

and any other code through a :class:`Collab` made with a bus and a sender name.

One shape for ending short: a primitive whose deadline passes before it has what it waits
for publishes ``collab.timeout`` and raises :class:`CollabTimeout`, which carries the
partial result. Every primitive publishes ``collab.summary`` when it ends. Bad arguments
(a zero timeout, ``first_k(0)``, ``window(0)``) raise ``ValueError`` naming the parameter.

See ``docs/agents-and-bus.md``.
"""

from __future__ import annotations

from loom.collab._channel import ReplyChannel, ThreadReplies
from loom.collab._collab import Collab
from loom.collab._contract import AWARD_TO_KEY, SCORE_KEY
from loom.collab._errors import CollabError, CollabTimeout
from loom.collab._events import (
    COLLAB_AWARD,
    COLLAB_BARRIER,
    COLLAB_CFP,
    COLLAB_PRIORITY,
    COLLAB_PROPOSAL,
    COLLAB_REPLY,
    COLLAB_REQUEST,
    COLLAB_SUMMARY,
    COLLAB_TAGS,
    COLLAB_TIMEOUT,
)
from loom.collab._payload import Payload, json_payload
from loom.collab._results import (
    BarrierResult,
    CollabStats,
    ContractNetResult,
    FanoutResult,
    Proposal,
)
from loom.collab._router import Ledger, ReplyRouter
from loom.collab._strategy import ALL, ANY, MAJORITY, Strategy, first_k, window
from loom.collab._thread import Thread

__all__ = [
    "ALL",
    "ANY",
    "AWARD_TO_KEY",
    "COLLAB_AWARD",
    "COLLAB_BARRIER",
    "COLLAB_CFP",
    "COLLAB_PRIORITY",
    "COLLAB_PROPOSAL",
    "COLLAB_REPLY",
    "COLLAB_REQUEST",
    "COLLAB_SUMMARY",
    "COLLAB_TAGS",
    "COLLAB_TIMEOUT",
    "MAJORITY",
    "SCORE_KEY",
    "BarrierResult",
    "Collab",
    "CollabError",
    "CollabStats",
    "CollabTimeout",
    "ContractNetResult",
    "FanoutResult",
    "Ledger",
    "Payload",
    "Proposal",
    "ReplyChannel",
    "ReplyRouter",
    "Strategy",
    "Thread",
    "ThreadReplies",
    "first_k",
    "json_payload",
    "window",
]
