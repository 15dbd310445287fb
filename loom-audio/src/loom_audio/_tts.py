"""The TTS stage: speak requests in, reply audio out, stoppable mid-reply (barge-in)."""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import itertools
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from loom import Event, QoS
from loom_audio._errors import AudioModelError, MissingExtraError
from loom_audio._format import AudioFormat, frame_event
from loom_audio._names import (
    AUDIO_OUT,
    TTS_DONE,
    TTS_ERROR,
    TTS_SPEAK,
    TTS_START,
    TTS_STOP,
    AudioTopics,
)
from loom_audio._stage import Stage
from loom_audio._tts_engines import TtsConfig, TtsEngine, clamp_rate, load_tts_engine

__all__ = ["SpeakRequest", "TtsStage", "parse_speak_payload"]

log = logging.getLogger("loom_audio")

_reply_ids = itertools.count(1)
#: Metadata a speak request passes on to its audio (for latency accounting downstream).
_PASS_ON = ("last_voiced_ns", "session_id", "query_id")


def new_reply_id() -> str:
    """A fresh reply id (``reply_{n}``)."""
    return f"reply_{next(_reply_ids)}"


@dataclass(slots=True)
class SpeakRequest:
    """Text to speak.

    Attributes:
        text: what to say.
        reply_id: names the reply in every event about it.
        rate: speaking rate (0.5..2.0); None takes the stage's.
        metadata: passed on to the reply's events.
    """

    text: str
    reply_id: str = field(default_factory=new_reply_id)
    rate: float | None = None
    metadata: dict[str, str] = field(default_factory=dict)


def parse_speak_payload(payload: bytes) -> tuple[str, float | None]:
    """The text (and rate) of a ``tts.speak`` payload: JSON ``{"text", "rate"}`` or UTF-8 text."""
    raw = payload.decode("utf-8", "replace")
    stripped = raw.strip()
    if stripped.startswith("{"):
        try:
            document = json.loads(stripped)
        except ValueError:
            return raw, None
        if isinstance(document, dict) and isinstance(document.get("text"), str):
            rate = document.get("rate")
            return document["text"], float(rate) if isinstance(rate, int | float) else None
    return raw, None


class TtsStage(Stage):
    """Speaks text: ``tts.speak`` events (or :meth:`speak`) in, ``audio_out`` chunks out.

    Subscribes (Batched) to ``topics.tts`` for ``tts.speak`` (payload: the text, or JSON
    ``{"text", "rate"}``; metadata ``reply_id``) and ``tts.stop`` (metadata ``reply_id``;
    none or empty stops every reply). Requests are spoken one at a time, in order; at most
    ``max_queue`` wait (beyond that the oldest is dropped, logged and counted).

    For each reply it publishes ``tts.start``, then one ``audio_out`` chunk per sentence
    on ``topics.out`` as soon as that sentence is synthesised (mono PCM s16le at the
    engine's rate; metadata ``reply_id``, ``chunk``), then an empty ``audio_out`` with
    ``last=1``, and ``tts.done`` (``synthesis_ms``, ``audio_ms``, ``first_chunk_ms``) or
    ``tts.error`` (``code`` TTS_SYNTH_ERROR). A stopped reply publishes no more audio after
    the sentence in hand, and ``tts.done`` with ``stopped=1``.

    Args:
        config: engine, voice and rate; the engine falls back from piper to espeak-ng to
            none, each switch logged.
        topics: the topics to use.
        engine: a loaded engine to use instead of loading one.
        name: the stage's name.
        max_queue: requests that may wait.
    """

    def __init__(
        self,
        config: TtsConfig | None = None,
        *,
        topics: AudioTopics | None = None,
        engine: TtsEngine | None = None,
        name: str = "tts",
        max_queue: int = 8,
    ) -> None:
        super().__init__(name)
        self.config = config or TtsConfig()
        self.topics = topics or AudioTopics()
        self.engine = engine
        self.max_queue = max_queue
        self.spoken = 0
        self.stopped = 0
        self.failures = 0
        self.dropped_requests = 0
        self._queue: collections.deque[SpeakRequest] = collections.deque()
        self._wakeup = asyncio.Event()
        self._current: SpeakRequest | None = None
        self._current_task: asyncio.Task[None] | None = None
        self._worker: asyncio.Task[None] | None = None
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None

    def status(self) -> dict[str, Any]:
        return {
            **super().status(),
            "engine": self.engine.name if self.engine else None,
            "voice": self.engine.voice if self.engine else None,
            "spoken": self.spoken,
            "stopped": self.stopped,
            "failures": self.failures,
            "dropped_requests": self.dropped_requests,
        }

    async def _on_start(self) -> None:
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="loom-tts")
        if self.engine is None:
            loop = asyncio.get_running_loop()
            try:
                self.engine = await loop.run_in_executor(
                    self._executor, load_tts_engine, self.config
                )
            except (AudioModelError, MissingExtraError):
                self._executor.shutdown(wait=False)
                raise
        log.info("%s: speaking with %s (%s)", self.name, self.engine.name, self.engine.voice or "-")
        self._worker = asyncio.create_task(self._work(), name=f"loom-audio {self.name}")
        await self._subscribe(
            self.topics.tts, self._on_event, event_types=(TTS_SPEAK, TTS_STOP), qos=QoS.BATCHED
        )

    async def _on_stop(self) -> None:
        for task in (self._current_task, self._worker):
            if task is not None and not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        self._worker = self._current_task = None
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)

    async def speak(self, request: SpeakRequest) -> str:
        """Queue a request; returns its reply id."""
        if len(self._queue) >= self.max_queue:
            dropped = self._queue.popleft()
            self.dropped_requests += 1
            log.warning(
                "%s: %d requests waiting; dropped %s", self.name, self.max_queue, dropped.reply_id
            )
        self._queue.append(request)
        self._wakeup.set()
        return request.reply_id

    def stop_reply(self, reply_id: str = "") -> bool:
        """Stop a reply (every reply when ``reply_id`` is empty); whether one was stopped."""
        hit = False
        for queued in list(self._queue):
            if not reply_id or queued.reply_id == reply_id:
                self._queue.remove(queued)
                hit = True
        current, task = self._current, self._current_task
        running = current is not None and task is not None and not task.done()
        if running and (not reply_id or (current is not None and current.reply_id == reply_id)):
            assert task is not None
            task.cancel()
            hit = True
        return hit

    async def _on_event(self, topic: str, event: Event) -> None:
        md = event.metadata
        if event.type == TTS_STOP:
            if self.stop_reply(md.get("reply_id", "")):
                log.info(
                    "%s: stopped %s (%s)",
                    self.name,
                    md.get("reply_id") or "all replies",
                    md.get("reason", ""),
                )
            return
        text, rate = parse_speak_payload(event.payload)
        if not text.strip():
            return
        request = SpeakRequest(
            text,
            reply_id=md.get("reply_id") or new_reply_id(),
            rate=rate,
            metadata={k: md[k] for k in _PASS_ON if k in md},
        )
        await self.speak(request)

    async def _work(self) -> None:
        while True:
            while not self._queue:
                self._wakeup.clear()
                await self._wakeup.wait()
            request = self._current = self._queue.popleft()
            task = self._current_task = asyncio.create_task(self._speak(request))
            try:
                await asyncio.shield(task)
            except asyncio.CancelledError:
                if not task.cancelled():  # the worker itself is being stopped
                    task.cancel()
                    raise
            finally:
                self._current = None
                self._current_task = None

    async def _speak(self, request: SpeakRequest) -> None:
        engine = self.engine
        executor = self._executor
        assert engine is not None  # set by _on_start
        assert executor is not None
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        rid = request.reply_id
        base = {"reply_id": rid, "engine": engine.name, "voice": engine.voice, **request.metadata}
        await self._publish(
            self.topics.tts,
            Event(
                TTS_START,
                request.text.encode(),
                source=self.name,
                metadata={**base, "text": request.text},
                priority=70,
            ),
        )
        rate = clamp_rate(request.rate if request.rate is not None else self.config.rate)
        chunks = 0
        samples = 0
        first_ms = 0.0
        stopped = False
        fmt = AudioFormat(engine.sample_rate, 1)
        try:
            pieces = engine.synthesize(request.text, rate=rate)
            while True:
                pcm = await loop.run_in_executor(executor, next, pieces, None)
                if pcm is None:
                    break
                if not pcm:
                    continue
                fmt = AudioFormat(engine.sample_rate, 1)
                if chunks == 0:
                    first_ms = (time.perf_counter() - started) * 1000
                await self._publish(
                    self.topics.out,
                    frame_event(
                        AUDIO_OUT,
                        pcm,
                        fmt,
                        source=self.name,
                        seq=chunks,
                        extra={**base, "chunk": str(chunks), "last": "0"},
                        priority=80,
                    ),
                )
                chunks += 1
                samples += len(pcm) // 2
        except asyncio.CancelledError:
            stopped = True
            self.stopped += 1
        except Exception as exc:  # noqa: BLE001  # a failed synthesis is reported, the stage goes on
            self.failures += 1
            log.error("%s: synthesis of %s failed: %s", self.name, rid, exc)
            await self._publish(
                self.topics.tts,
                Event(
                    TTS_ERROR,
                    str(exc).encode(),
                    source=self.name,
                    metadata={**base, "code": "TTS_SYNTH_ERROR", "message": str(exc)},
                    priority=70,
                ),
            )
        await self._publish(
            self.topics.out,
            frame_event(
                AUDIO_OUT,
                b"",
                fmt,
                source=self.name,
                seq=chunks,
                extra={
                    **base,
                    "chunk": str(chunks),
                    "last": "1",
                    "stopped": "1" if stopped else "0",
                },
                priority=80,
            ),
        )
        if not stopped:
            self.spoken += 1
        await self._publish(
            self.topics.tts,
            Event(
                TTS_DONE,
                source=self.name,
                metadata={
                    **base,
                    "synthesis_ms": str(round((time.perf_counter() - started) * 1000)),
                    "first_chunk_ms": str(round(first_ms)),
                    "audio_ms": str(round(1000 * samples / fmt.sample_rate)),
                    "chunks": str(chunks),
                    "stopped": "1" if stopped else "0",
                },
                priority=70,
            ),
        )
