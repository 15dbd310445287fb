"""ThreadBook: the recent collaboration threads, each with its newest events.

Filing an event costs a dict lookup and an append (the tap does it for every event that
carries a thread id); what a thread is (its lanes, phases, status) is worked out when it is
read, and remembered until the thread changes.
"""

from __future__ import annotations

import re
from collections import Counter, OrderedDict, deque
from typing import Any, Final

from loom_dashboard._records import METADATA, TS, TYPE, RawRecord, to_json

__all__ = ["PHASES", "ThreadBook", "lane_of"]

#: The collaboration phase each reserved event type shows on a swimlane.
PHASES: Final[dict[str, str]] = {
    "collab.request": "request",
    "collab.reply": "reply",
    "collab.cfp": "cfp",
    "collab.proposal": "proposal",
    "collab.award": "award",
    "collab.barrier": "barrier",
    "collab.timeout": "timeout",
    "collab.summary": "summary",
}

_TRACE_ID: Final = re.compile(r"[0-9a-f]{32}")

# What kind of exchange a thread is, by the first phase that says so.
_KIND_OF_PHASE: Final = {
    "request": "request/reply",
    "cfp": "contract-net",
    "proposal": "contract-net",
    "award": "contract-net",
    "barrier": "barrier",
}


def lane_of(record: dict[str, Any]) -> str:
    """The swimlane of a JSON record: its envelope sender, else its source."""
    return str(record["sender"] or record["source"] or "(unknown)")


class _Thread:
    __slots__ = ("collab", "events", "id", "seen", "summary")

    def __init__(self, thread_id: str, limit: int) -> None:
        self.id = thread_id
        self.events: deque[RawRecord] = deque(maxlen=limit)
        self.seen = 0
        self.collab = False
        self.summary: dict[str, Any] | None = None

    def records(self) -> list[dict[str, Any]]:
        """The kept events as JSON records, in time order (ties in arrival order)."""
        return [to_json(r) for r in sorted(self.events, key=lambda r: (r[TS], r[0]))]

    def describe(self) -> dict[str, Any]:
        if self.summary is not None:
            return self.summary
        records = self.records()
        lanes: dict[str, None] = {}
        types: Counter[str] = Counter()
        kind, status, trace_id = "", "open", ""
        for r in records:
            lanes.setdefault(lane_of(r), None)
            types[r["type"]] += 1
            trace_id = trace_id or r["trace_id"]
            phase = PHASES.get(r["type"])
            if phase is None:
                continue
            kind = kind or _KIND_OF_PHASE.get(phase, "")
            if phase == "timeout":
                status = "timeout"
            elif phase == "summary" and status != "timeout":
                status = "done"
            elif phase in ("reply", "proposal", "award") and status == "open":
                status = "answered"
        self.summary = {
            "id": self.id,
            "trace_id": trace_id,
            "kind": kind or ("collab" if self.collab else "events"),
            "collab": self.collab,
            "status": status,
            "first_ms": records[0]["ts"] if records else 0,
            "last_ms": records[-1]["ts"] if records else 0,
            "events": self.seen,
            "kept": len(records),
            "lanes": list(lanes),
            "types": dict(types),
        }
        return self.summary


class ThreadBook:
    """The most recently active threads (bounded), each keeping its newest events (bounded).

    Args:
        max_threads: threads remembered; the least recently active is forgotten first.
        per_thread: events kept per thread.
    """

    def __init__(self, max_threads: int = 300, per_thread: int = 100) -> None:
        self.max_threads = max_threads
        self.per_thread = per_thread
        self._threads: OrderedDict[str, _Thread] = OrderedDict()
        #: Bumped on every change, so a stream sends the thread list only when it moved.
        self.version = 0
        #: Threads forgotten to stay within ``max_threads``.
        self.forgotten = 0

    def __len__(self) -> int:
        return len(self._threads)

    def add(self, thread_id: str, raw: RawRecord) -> None:
        """File a raw record under its thread."""
        threads = self._threads
        thread = threads.get(thread_id)
        if thread is None:
            if len(threads) >= self.max_threads:
                threads.popitem(last=False)
                self.forgotten += 1
            thread = threads[thread_id] = _Thread(thread_id, self.per_thread)
        else:
            threads.move_to_end(thread_id)
        thread.events.append(raw)
        thread.seen += 1
        thread.summary = None
        if not thread.collab and raw[TYPE].startswith("collab."):
            thread.collab = True
        self.version += 1

    def _by_trace(self, trace_id: str) -> _Thread | None:
        """The most recent thread whose kept events carry ``trace_id`` in ``traceparent``
        (a look at the raw metadata only: no record is built)."""
        for thread in reversed(self._threads.values()):
            for raw in thread.events:
                parent = raw[METADATA].get("traceparent")
                if parent is not None and parent[3:35] == trace_id:
                    return thread
        return None

    def summaries(self, limit: int, *, collab_only: bool = False) -> list[dict[str, Any]]:
        """The most recently active threads first, at most ``limit``."""
        out: list[dict[str, Any]] = []
        for thread in reversed(self._threads.values()):
            if collab_only and not thread.collab:
                continue
            out.append(thread.describe())
            if len(out) >= limit:
                break
        return out

    def detail(self, key: str) -> dict[str, Any] | None:
        """One thread with its events, by thread id or by the trace id its events carry;
        None if unknown."""
        thread = self._threads.get(key)
        if thread is None and _TRACE_ID.fullmatch(key):
            thread = self._by_trace(key)
        if thread is None:
            return None
        out = dict(thread.describe())
        out["count"] = thread.seen
        out["events"] = [
            dict(r, lane=lane_of(r), phase=PHASES.get(r["type"], "")) for r in thread.records()
        ]
        return out
