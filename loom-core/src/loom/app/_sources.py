"""Core's event sources: ``timer`` (a tick every N seconds) and ``file`` (lines or JSONL).

An event source is what a ``loom_event_sources`` factory builds: an object with
``async start(bus)`` (begin publishing; returns once started), ``async stop()``
(idempotent) and, for a source that can run out, ``async wait()`` (returns when it has
published everything). ``loom run`` ends by itself once every source's ``wait()`` has
returned and the agents are idle.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import string
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any, Literal, Protocol, runtime_checkable

from loom._event import Event
from loom.bus import EventBus
from loom.topics import validate_topic

__all__ = ["EventSourceLike", "FileSource", "TimerSource"]

log = logging.getLogger("loom.app.sources")

#: Lines read from the file per trip to a worker thread.
_READ_BATCH = 256
#: Bad lines logged one by one before the rest are only counted.
_LOGGED_BAD_LINES = 20


@runtime_checkable
class EventSourceLike(Protocol):
    """What ``loom run`` needs of an event source (``wait()`` is optional)."""

    async def start(self, bus: EventBus) -> None:
        """Begin publishing on ``bus``."""

    async def stop(self) -> None:
        """Stop publishing (idempotent)."""


def _metadata(value: Mapping[str, Any] | None, who: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise ValueError(f"{who}: metadata must be a table of strings")
    return {k: str(v) for k, v in value.items()}


def _seconds(label: str, value: float, *, allow_zero: bool) -> float:
    number = float(value)
    if not math.isfinite(number) or number < 0 or (number == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{label} must be a finite number {bound}, got {value!r}")
    return number


class _TaskSource:
    """One task that publishes until done; start/stop/wait around it."""

    def __init__(self, name: str, priority: int) -> None:
        if not name:
            raise ValueError("a source needs a name")
        if not 0 <= priority <= 100:
            raise ValueError(f"priority must be within 0..100, got {priority!r}")
        self.name = name
        self.priority = priority
        #: Events published so far.
        self.published = 0
        #: Set when the source has nothing more to publish (or failed, or was stopped).
        self.finished = asyncio.Event()
        #: Why it finished: ``exhausted``, ``stopped`` or ``failed: ...``.
        self.outcome = ""
        self._bus: EventBus | None = None
        self._task: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} published={self.published}>"

    async def start(self, bus: EventBus) -> None:
        """Open what the source reads and start publishing on ``bus``. Idempotent."""
        if self._task is not None:
            return
        self._bus = bus
        self.finished.clear()
        await self._open()
        self._task = asyncio.create_task(self._guarded(), name=f"loom-source-{self.name}")

    async def stop(self) -> None:
        """Stop publishing. Idempotent."""
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            self.outcome = self.outcome or "stopped"
        self._close()
        self.finished.set()

    async def wait(self) -> None:
        """Return once the source has published everything it will."""
        await self.finished.wait()

    def status(self) -> dict[str, Any]:
        """Counters for the console and tests."""
        return {"name": self.name, "published": self.published, "outcome": self.outcome}

    async def _publish(self, topic: str, event: Event) -> None:
        assert self._bus is not None
        await self._bus.publish(topic, event)
        self.published += 1

    async def _guarded(self) -> None:
        try:
            await self._produce()
            self.outcome = "exhausted"
        except asyncio.CancelledError:
            self.outcome = self.outcome or "stopped"
            raise
        except Exception as exc:  # noqa: BLE001  # a failing source is reported; the app goes on
            self.outcome = f"failed: {type(exc).__name__}: {exc}"
            log.error("source %r failed: %s: %s", self.name, type(exc).__name__, exc)
        finally:
            self._close()
            self.finished.set()

    async def _open(self) -> None:
        """Open resources before the task starts; raise to fail :meth:`start`."""

    def _close(self) -> None:
        """Release resources (idempotent)."""

    async def _produce(self) -> None:
        raise NotImplementedError


class TimerSource(_TaskSource):
    """Publishes an event every ``every_s`` seconds, ``count`` times or forever.

    Each event has type ``event_type``, source ``name``, metadata ``tick`` (from 1) plus
    ``metadata``, and a JSON payload ``{"tick": n, "count": count, ...payload}``. Ticks are
    scheduled from the start time, so they do not drift.

    Args:
        name: the source's name.
        topic: where the events go (a concrete topic).
        every_s: the period.
        count: how many events; None for forever.
        delay_s: before the first event; None waits one period, 0 ticks at once.
        event_type: the events' type.
        payload: extra fields of the JSON payload.
        metadata: extra metadata.
        priority: the events' priority.

    Raises:
        ValueError: an option is out of range.
        InvalidTopicError: the topic is not a concrete topic.
    """

    def __init__(
        self,
        name: str = "timer",
        *,
        topic: str,
        every_s: float,
        count: int | None = None,
        delay_s: float | None = None,
        event_type: str = "timer.tick",
        payload: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
        priority: int = 50,
    ) -> None:
        super().__init__(name, priority)
        self.topic = validate_topic(topic)
        self.every_s = _seconds("every_s", every_s, allow_zero=False)
        if count is not None and (isinstance(count, bool) or int(count) != count or count < 1):
            raise ValueError(f"count must be a whole number >= 1 (or left out), got {count!r}")
        self.count = None if count is None else int(count)
        self.delay_s = (
            self.every_s if delay_s is None else _seconds("delay_s", delay_s, allow_zero=True)
        )
        if not event_type:
            raise ValueError("event_type must not be empty")
        self.event_type = event_type
        if payload is not None and not isinstance(payload, Mapping):
            raise ValueError("payload must be a table")
        self.payload = dict(payload or {})
        json.dumps(self.payload)  # refuse what cannot be sent, now rather than at the first tick
        self.metadata = _metadata(metadata, f"timer {name!r}")

    async def _produce(self) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time() + self.delay_s
        tick = 0
        while self.count is None or tick < self.count:
            due = start + tick * self.every_s
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            tick += 1
            body = {"tick": tick, "count": self.count, **self.payload}
            event = Event(
                self.event_type,
                json.dumps(body).encode(),
                source=self.name,
                metadata={**self.metadata, "tick": str(tick)},
                priority=self.priority,
            )
            await self._publish(self.topic, event)

    def status(self) -> dict[str, Any]:
        return {**super().status(), "topic": self.topic, "count": self.count}


class FileSource(_TaskSource):
    """Publishes each line of a text file, or each object of a JSONL file, as an event.

    ``lines``: the payload is the line (without its line break). ``jsonl``: each line is a
    JSON object, sent as the payload (compact JSON); ``topic`` may hold ``{field}``
    placeholders filled from the object (``sensors.{zone}.{kind}``), and ``type_field``
    names a field whose value becomes the event type. A line that is not a JSON object,
    lacks a placeholder's field or makes an invalid topic is skipped, logged with the
    file and line number, and counted (:attr:`skipped`); the rest go on. Blank lines are
    skipped without a word.

    Every event has source ``name``, metadata ``file`` (the file name) and ``line`` (from
    1) plus ``metadata``.

    Args:
        name: the source's name.
        topic: where the events go; with ``{field}`` placeholders for JSONL.
        path: the file (``loom run`` takes a relative path from the loom.toml directory).
        format: ``lines`` or ``jsonl``; by default from the suffix (``.jsonl``,
            ``.ndjson``: jsonl).
        event_type: the events' type (or the default when ``type_field`` is absent).
        type_field: JSONL only: the field holding the event type.
        interval_s: pause between events (0: as fast as the bus takes them).
        metadata: extra metadata.
        priority: the events' priority.
        encoding: the file's text encoding.

    Raises:
        ValueError: an option is out of range, or the topic has placeholders for plain
            lines.
    """

    def __init__(
        self,
        name: str = "file",
        *,
        topic: str,
        path: str | os.PathLike[str],
        format: Literal["lines", "jsonl"] | None = None,  # the option's name in loom.toml
        event_type: str = "file.line",
        type_field: str | None = None,
        interval_s: float = 0.0,
        metadata: Mapping[str, Any] | None = None,
        priority: int = 50,
        encoding: str = "utf-8",
    ) -> None:
        super().__init__(name, priority)
        self.path = Path(path)
        if format is None:
            format = "jsonl" if self.path.suffix.lower() in (".jsonl", ".ndjson") else "lines"
        if format not in ("lines", "jsonl"):
            raise ValueError(f"format must be 'lines' or 'jsonl', got {format!r}")
        self.format = format
        self.fields = [f for _, f, _, _ in string.Formatter().parse(topic) if f is not None]
        if self.fields and format != "jsonl":
            raise ValueError(f"topic {topic!r} has placeholders, which need format 'jsonl'")
        if any(not f.isidentifier() for f in self.fields):
            raise ValueError(f"topic {topic!r}: placeholders must be plain field names")
        if not self.fields:
            validate_topic(topic)
        self.topic = topic
        if type_field is not None and format != "jsonl":
            raise ValueError("type_field needs format 'jsonl'")
        if not event_type:
            raise ValueError("event_type must not be empty")
        self.event_type = event_type
        self.type_field = type_field
        self.interval_s = _seconds("interval_s", interval_s, allow_zero=True)
        self.metadata = _metadata(metadata, f"file source {name!r}")
        self.encoding = encoding
        #: Lines skipped because they could not become an event.
        self.skipped = 0
        self._file: IO[str] | None = None

    async def _open(self) -> None:
        try:
            self._file = open(self.path, encoding=self.encoding)  # noqa: SIM115  # closed by _close
        except OSError as exc:
            raise OSError(
                f"source {self.name!r} cannot read {self.path}: {exc.strerror or exc}"
            ) from None

    def _close(self) -> None:
        file, self._file = self._file, None
        if file is not None:
            file.close()

    async def _produce(self) -> None:
        file = self._file
        assert file is not None
        number = 0
        first = True
        while True:
            batch = await asyncio.to_thread(_read_lines, file, _READ_BATCH)
            if not batch:
                break
            for text in batch:
                number += 1
                made = self._event(text, number)
                if made is None:
                    continue
                if not first and self.interval_s > 0:
                    await asyncio.sleep(self.interval_s)
                first = False
                await self._publish(*made)
                if self.interval_s == 0:
                    await asyncio.sleep(0)  # let subscribers run between events
        if self.skipped > _LOGGED_BAD_LINES:
            log.warning(
                "%s: %d lines skipped in all (the first %d are logged above)",
                self.path,
                self.skipped,
                _LOGGED_BAD_LINES,
            )

    def _event(self, text: str, number: int) -> tuple[str, Event] | None:
        line = text.rstrip("\r\n")
        if not line.strip():
            return None
        metadata = {**self.metadata, "file": self.path.name, "line": str(number)}
        if self.format == "lines":
            event = Event(
                self.event_type,
                line.encode(self.encoding),
                source=self.name,
                metadata=metadata,
                priority=self.priority,
            )
            return self.topic, event
        try:
            value = json.loads(line)
        except ValueError as exc:
            return self._skip(number, f"not JSON: {exc}")
        if not isinstance(value, dict):
            return self._skip(number, f"expected a JSON object, got {type(value).__name__}")
        try:
            topic = validate_topic(self.topic.format_map({f: value[f] for f in self.fields}))
        except KeyError as exc:
            return self._skip(number, f"no field {exc.args[0]!r} for the topic {self.topic!r}")
        except ValueError as exc:
            return self._skip(number, str(exc))
        event_type = self.event_type
        if self.type_field is not None and self.type_field in value:
            event_type = str(value[self.type_field]) or self.event_type
        payload = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
        event = Event(
            event_type, payload, source=self.name, metadata=metadata, priority=self.priority
        )
        return topic, event

    def _skip(self, number: int, why: str) -> tuple[str, Event] | None:
        self.skipped += 1
        if self.skipped <= _LOGGED_BAD_LINES:
            log.warning("%s:%d: line skipped: %s", self.path, number, why)
        return None

    def status(self) -> dict[str, Any]:
        return {**super().status(), "path": str(self.path), "skipped": self.skipped}


def _read_lines(file: IO[str], count: int) -> list[str]:
    lines: list[str] = []
    for _ in range(count):
        line = file.readline()
        if not line:
            break
        lines.append(line)
    return lines
