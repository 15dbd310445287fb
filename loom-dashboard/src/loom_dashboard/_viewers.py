"""Viewers of the event stream: one bounded queue each, fed by one shared ticker.

The ticker runs while at least one viewer is connected. Every ``tick_s`` it takes the
events the tap recorded since the last tick and offers each viewer the ones its topic
filter matches (at most ``tail_batch`` per message, the rest counted as skipped); once a
second it adds the metrics, and the thread list when it changed; every few seconds the
topology when it changed. Each document is serialised once, whatever the number of
viewers. A viewer whose queue is full is dropped (reason ``slow``): its stream ends and the
others, the tap and the bus go on.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from loom_dashboard._errors import DashboardError
from loom_dashboard._records import SEQ, TOPIC, RawRecord, to_json

if TYPE_CHECKING:
    from loom.topics import TopicPattern
    from loom_dashboard._metrics import MetricsView
    from loom_dashboard._tap import Tap

__all__ = ["TooManyViewersError", "Viewer", "ViewerHub", "sse"]

log = logging.getLogger("loom.dashboard")

#: How many metrics points per topic list a streamed metrics message carries.
STREAM_TOPIC_LIMIT = 20
#: How many threads a streamed thread list carries.
STREAM_THREAD_LIMIT = 30
_METRICS_EVERY_S = 1.0
_TOPOLOGY_EVERY_S = 5.0
_PING_EVERY_S = 15.0


def sse(event: str, document: Any) -> bytes:
    """One server-sent event: ``event: <name>`` and the document as one line of JSON."""
    data = json.dumps(document, separators=(",", ":"))
    return f"event: {event}\ndata: {data}\n\n".encode()


class TooManyViewersError(DashboardError):
    """The dashboard already streams to ``max_viewers`` viewers."""


class Viewer:
    """One connected stream: a bounded queue of encoded messages and a topic filter.

    Attributes:
        id: unique per dashboard.
        pattern: the topic filter of the tail, or None for every topic.
        filter_text: the filter as given ("" for none).
        reason: why the viewer was closed ("" while open): ``slow``, ``disconnected``,
            ``shutdown`` or ``left``.
    """

    __slots__ = (
        "_gone",
        "_queue",
        "_ready",
        "after",
        "filter_text",
        "id",
        "limit",
        "pattern",
        "reason",
    )

    def __init__(
        self, viewer_id: int, pattern: TopicPattern | None, filter_text: str, limit: int, after: int
    ) -> None:
        self.id = viewer_id
        self.pattern = pattern
        self.filter_text = filter_text
        self.limit = limit
        self.after = after
        self.reason = ""
        self._queue: deque[bytes] = deque()
        self._ready = asyncio.Event()
        self._gone = asyncio.Event()

    @property
    def closed(self) -> bool:
        """Whether the viewer was closed."""
        return bool(self.reason)

    def qsize(self) -> int:
        """Messages waiting."""
        return len(self._queue)

    def offer(self, chunk: bytes) -> bool:
        """Queue a message; a full queue closes the viewer as ``slow`` (False)."""
        if self.reason:
            return False
        if len(self._queue) >= self.limit:
            self.close("slow")
            return False
        self._queue.append(chunk)
        self._ready.set()
        return True

    async def next(self) -> bytes | None:
        """The next message, waiting for one; None once the viewer is closed."""
        while not self._queue:
            if self.reason:
                return None
            self._ready.clear()
            await self._ready.wait()
        if self.reason == "slow":
            return None
        return self._queue.popleft()

    def close(self, reason: str) -> None:
        """Close the viewer (the first reason sticks); a slow one loses what was queued."""
        if self.reason:
            return
        self.reason = reason
        if reason == "slow":
            self._queue.clear()
        self._ready.set()
        self._gone.set()

    async def wait_closed(self) -> None:
        """Return once the viewer is closed."""
        await self._gone.wait()


class ViewerHub:
    """The connected viewers and the ticker that feeds them.

    Args:
        tap: where new events come from.
        metrics: builds the metrics document.
        threads: ``threads(limit)`` gives the thread summaries.
        topology: builds the topology document.
        viewer_queue: messages one viewer may have waiting.
        max_viewers: viewers at once.
        tick_s: the ticker's period.
        tail_batch: events per tail message.
    """

    def __init__(
        self,
        tap: Tap,
        metrics: MetricsView,
        topology: Callable[[], dict[str, Any]],
        *,
        viewer_queue: int = 64,
        max_viewers: int = 32,
        tick_s: float = 0.5,
        tail_batch: int = 200,
    ) -> None:
        self.tap = tap
        self.metrics = metrics
        self.topology = topology
        self.viewer_queue = viewer_queue
        self.max_viewers = max_viewers
        self.tick_s = tick_s
        self.tail_batch = tail_batch
        self.viewers: dict[int, Viewer] = {}
        self.joined = 0
        self.dropped_slow = 0
        self.disconnected = 0
        self._ids = itertools.count(1)
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._last_seq = 0
        self._last_metrics = 0.0
        self._last_topology = 0.0
        self._topology_text = ""
        self._threads_version = -1
        self._last_sent = 0.0

    def counts(self) -> dict[str, int]:
        """Viewers connected now, and since the start: joined, dropped as slow, disconnected."""
        return {
            "connected": len(self.viewers),
            "joined": self.joined,
            "dropped_slow": self.dropped_slow,
            "disconnected": self.disconnected,
            "max": self.max_viewers,
        }

    def join(self, pattern: TopicPattern | None, filter_text: str) -> Viewer:
        """Add a viewer; it gets a ``hello`` message, then the current state, then ticks.

        Raises:
            TooManyViewersError: ``max_viewers`` are connected, or the hub is closed.
        """
        if self._closed:
            raise TooManyViewersError("the dashboard is shutting down")
        if len(self.viewers) >= self.max_viewers:
            raise TooManyViewersError(
                f"{self.max_viewers} viewers are connected already (dashboard.max_viewers)"
            )
        viewer = Viewer(next(self._ids), pattern, filter_text, self.viewer_queue, self.tap.seq)
        self.viewers[viewer.id] = viewer
        self.joined += 1
        viewer.offer(b"retry: 2000\n\n")
        viewer.offer(sse("hello", {"viewer": viewer.id, "seq": self.tap.seq, "topic": filter_text}))
        try:  # the current state, so that a stream alone is enough to draw the page
            viewer.offer(sse("topology", self.topology()))
            viewer.offer(
                sse("metrics", self.metrics.build(limit=STREAM_TOPIC_LIMIT, viewers=self.counts()))
            )
            viewer.offer(
                sse(
                    "threads",
                    {"threads": self.tap.threads.summaries(STREAM_THREAD_LIMIT, collab_only=True)},
                )
            )
        except Exception:
            log.exception("dashboard: the first state of a new stream could not be built")
        if self._task is None:
            self._last_seq = self.tap.seq
            self._task = asyncio.create_task(self._run(), name="loom-dashboard-viewers")
        return viewer

    def leave(self, viewer: Viewer, reason: str = "left") -> None:
        """Remove a viewer (idempotent); counts it as slow or disconnected by its reason."""
        viewer.close(reason)
        if self.viewers.pop(viewer.id, None) is None:
            return
        if viewer.reason == "slow":
            self.dropped_slow += 1
            log.info("dashboard: viewer %d dropped: too slow to read its stream", viewer.id)
        elif viewer.reason == "disconnected":
            self.disconnected += 1

    def open(self) -> None:
        """Take viewers again after :meth:`close` (a dashboard started anew)."""
        self._closed = False

    async def close(self) -> None:
        """Close every viewer (reason ``shutdown``) and stop the ticker; refuse new ones."""
        self._closed = True
        for viewer in list(self.viewers.values()):
            viewer.close("shutdown")
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # -- the ticker ----------------------------------------------------------------------

    async def _run(self) -> None:
        try:
            while self.viewers and not self._closed:
                await asyncio.sleep(self.tick_s)
                try:
                    self.tick(time.monotonic())
                except Exception:
                    log.exception("dashboard: a stream tick failed; the next one goes on")
        finally:
            if self._task is asyncio.current_task():
                self._task = None

    def tick(self, now: float) -> None:
        """Offer every viewer what is new (events, and metrics, threads, topology when due)."""
        viewers = [v for v in self.viewers.values() if not v.closed]
        for v in list(self.viewers.values()):
            if v.closed:
                self.leave(v)
        if not viewers:
            return
        tap = self.tap
        fresh = tap.since(self._last_seq)
        self._last_seq = tap.seq
        sent = False
        if fresh:
            encoded: dict[str, bytes | None] = {}
            converted: dict[int, dict[str, Any]] = {}
            for viewer in viewers:
                key = f"{viewer.filter_text}\x00{viewer.after}"
                if key not in encoded:
                    encoded[key] = self._tail(fresh, viewer, converted)
                chunk = encoded[key]
                viewer.after = self._last_seq
                if chunk is not None:
                    viewer.offer(chunk)
                    sent = True
        if now - self._last_metrics >= _METRICS_EVERY_S:
            self._last_metrics = now
            chunk = sse(
                "metrics", self.metrics.build(limit=STREAM_TOPIC_LIMIT, viewers=self.counts())
            )
            self._broadcast(viewers, chunk)
            sent = True
            book = tap.threads
            if book.version != self._threads_version:
                self._threads_version = book.version
                self._broadcast(
                    viewers,
                    sse(
                        "threads",
                        {"threads": book.summaries(STREAM_THREAD_LIMIT, collab_only=True)},
                    ),
                )
        if now - self._last_topology >= _TOPOLOGY_EVERY_S:
            self._last_topology = now
            document = self.topology()
            text = json.dumps({k: v for k, v in document.items() if k != "generated_ms"})
            if text != self._topology_text:
                self._topology_text = text
                self._broadcast(viewers, sse("topology", document))
                sent = True
        if sent:
            self._last_sent = now
        elif now - self._last_sent >= _PING_EVERY_S:
            self._last_sent = now
            self._broadcast(viewers, b": ping\n\n")
        for viewer in viewers:
            if viewer.closed:
                self.leave(viewer)

    def _tail(
        self, fresh: list[RawRecord], viewer: Viewer, converted: dict[int, dict[str, Any]]
    ) -> bytes | None:
        """The tail message for one viewer: its filter's newest events, JSON made once."""
        pattern, after = viewer.pattern, viewer.after
        matching = [
            r for r in fresh if r[SEQ] > after and (pattern is None or pattern.matches(r[TOPIC]))
        ]
        if not matching:
            return None
        skipped = max(0, len(matching) - self.tail_batch)
        events = []
        for raw in matching[skipped:]:
            record = converted.get(raw[SEQ])
            if record is None:
                record = converted[raw[SEQ]] = to_json(raw)
            events.append(record)
        return sse("tail", {"events": events, "skipped": skipped, "seq": self._last_seq})

    @staticmethod
    def _broadcast(viewers: list[Viewer], chunk: bytes) -> None:
        for viewer in viewers:
            viewer.offer(chunk)
