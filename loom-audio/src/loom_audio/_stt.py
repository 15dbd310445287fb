"""The STT stage: utterances from the VAD in, partial and final transcripts out."""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import logging
import time
from typing import Any

import numpy as np

from loom import Event, QoS
from loom.bus import Subscription
from loom_audio._errors import AudioFormatError, AudioModelError, MissingExtraError
from loom_audio._format import format_of
from loom_audio._names import (
    AUDIO_VOICED,
    SPEECH_END,
    SPEECH_START,
    TRANSCRIPT_FINAL,
    TRANSCRIPT_PARTIAL,
    AudioTopics,
)
from loom_audio._pcm import StreamConverter
from loom_audio._stage import Stage
from loom_audio._whisper import SttConfig, Transcript, WhisperTranscriber

__all__ = ["SttStage"]

log = logging.getLogger("loom_audio")

_RATE = 16000
#: Frames waiting in the input queue above which no partial transcript is started.
_BACKLOG_FRAMES = 8
#: Audio this far ahead of the wall clock is not live: no partial transcripts for it.
_AHEAD_S = 0.5


class _Utterance:
    __slots__ = (
        "best",
        "chunks",
        "closed",
        "end_meta",
        "id",
        "last_voiced",
        "opened",
        "partial_at",
        "running",
        "samples",
        "was_voiced",
    )

    def __init__(self, utterance_id: str) -> None:
        self.id = utterance_id
        self.opened = time.monotonic()
        self.chunks: list[np.ndarray[Any, np.dtype[np.float32]]] = []
        self.samples = 0
        self.last_voiced = 0
        self.partial_at = 0
        self.was_voiced = False
        self.closed = False
        self.end_meta: dict[str, str] = {}
        self.best: tuple[int, Transcript] | None = None  # (samples covered, transcript)
        self.running: _Job | None = None

    def snapshot(self) -> np.ndarray[Any, np.dtype[np.float32]]:
        return np.concatenate(self.chunks) if self.chunks else np.zeros(0, dtype=np.float32)


class _Job:
    __slots__ = ("audio", "final", "samples", "utterance")

    def __init__(self, utterance: _Utterance, *, final: bool) -> None:
        self.utterance = utterance
        self.audio = utterance.snapshot()
        self.samples = utterance.samples
        self.final = final


class SttStage(Stage):
    """Transcribes the VAD's utterances with faster-whisper.

    Subscribes (Realtime) to ``topics.voiced``: ``vad.speech_start``, the ``audio_voiced``
    frames, ``vad.speech_end``. The model runs on one worker thread, so the event loop (and
    the microphone) never waits for it. While an utterance goes on, what there is gets
    transcribed whenever the model is idle, at each pause and every ``partial_interval_ms``
    of audio (``transcript.partial``); at its end, the utterance is transcribed whole unless
    a transcript taken at the pause already covers all of its speech
    (``transcript.final``, payload the text; metadata ``text``, ``utterance_id``,
    ``duration_ms``, ``language``, ``stt_ms``, ``sample_rate``, ``speculative``).

    A model that does not load is logged and the stage consumes audio without transcribing
    (or, with ``config.strict``, :meth:`start` raises). Utterances beyond
    ``config.max_pending`` waiting for the model are dropped, oldest first, logged and
    counted.

    Args:
        config: model and decoding settings.
        topics: the topics to use.
        transcriber: a loaded model to use instead of loading one (shared by tests and benches).
        name: the stage's name.
        queue_size: its input queue bound (frames of 32 ms: 1024 is about 33 s).
    """

    def __init__(
        self,
        config: SttConfig | None = None,
        *,
        topics: AudioTopics | None = None,
        transcriber: WhisperTranscriber | None = None,
        name: str = "stt",
        queue_size: int = 1024,
    ) -> None:
        super().__init__(name)
        self.config = config or (transcriber.config if transcriber else SttConfig())
        self.topics = topics or AudioTopics()
        self.transcriber = transcriber
        self.queue_size = queue_size
        self.load_error: str | None = None
        self.finals = 0
        self.partials = 0
        self.speculative_hits = 0
        self.empty = 0
        self.skipped_short = 0
        self.dropped_utterances = 0
        self.failures = 0
        self._current: _Utterance | None = None
        self._queue: collections.deque[_Job] = collections.deque()
        self._wakeup = asyncio.Event()
        self._busy = False
        self._worker: asyncio.Task[None] | None = None
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._converter = StreamConverter(_RATE)
        self._input: Subscription | None = None

    def status(self) -> dict[str, Any]:
        return {
            **super().status(),
            "model": self.transcriber.model_name if self.transcriber else None,
            "load_error": self.load_error,
            "finals": self.finals,
            "partials": self.partials,
            "speculative_hits": self.speculative_hits,
            "empty": self.empty,
            "skipped_short": self.skipped_short,
            "dropped_utterances": self.dropped_utterances,
            "failures": self.failures,
        }

    async def _on_start(self) -> None:
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="loom-stt")
        if self.transcriber is None:
            loop = asyncio.get_running_loop()
            try:
                self.transcriber = await loop.run_in_executor(
                    self._executor, WhisperTranscriber, self.config
                )
            except (AudioModelError, MissingExtraError) as exc:
                if self.config.strict:
                    raise
                self.load_error = str(exc)
                log.error("%s: %s; utterances will not be transcribed", self.name, exc)
        self._worker = asyncio.create_task(self._work(), name=f"loom-audio {self.name}")
        self._input = await self._subscribe(
            self.topics.voiced,
            self._on_event,
            event_types=(SPEECH_START, AUDIO_VOICED, SPEECH_END),
            qos=QoS.REALTIME,
            queue_size=self.queue_size,
        )

    async def _on_stop(self) -> None:
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.cancel()
            await asyncio.gather(worker, return_exceptions=True)
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)

    # -- input ------------------------------------------------------------------------------

    async def _on_event(self, topic: str, event: Event) -> None:
        kind = event.type
        utterance_id = event.metadata.get("utterance_id", "")
        current = self._current
        if kind == SPEECH_START:
            if current is not None:  # its end was lost: finish it with what arrived
                await self._close(current, {"reason": "lost_end"})
            self._current = _Utterance(utterance_id)
            return
        if kind == SPEECH_END:
            if current is not None and current.id == utterance_id:
                self._current = None
                await self._close(current, dict(event.metadata))
            return
        if current is None or current.id != utterance_id:  # its start was lost
            if current is not None:
                await self._close(current, {"reason": "lost_end"})
            current = self._current = _Utterance(utterance_id)
        try:
            fmt = format_of(event, f"{self.name} <- {topic}")
        except AudioFormatError as exc:
            self._report_bad_input(f"format:{event.source}", f"{exc}; frame skipped")
            return
        samples = self._converter.convert(event.payload, fmt)
        current.chunks.append(samples)
        current.samples += samples.size
        voiced = event.metadata.get("voiced", "1") == "1"
        if voiced:
            current.last_voiced = current.samples
        elif current.was_voiced and self.config.speculative:
            self._maybe_partial(current)  # a pause began: the end may be near
        current.was_voiced = voiced
        interval = self.config.partial_interval_ms
        if interval and (current.samples - current.partial_at) * 1000 >= interval * _RATE:
            self._maybe_partial(current)

    def _maybe_partial(self, utterance: _Utterance) -> None:
        if self._busy or self._queue or self.transcriber is None:
            return
        if self._input is not None and self._input.qsize() > _BACKLOG_FRAMES:
            return  # audio is waiting: the stage is behind real time, the end will come soon
        if utterance.samples / _RATE - (time.monotonic() - utterance.opened) > _AHEAD_S:
            return  # audio arrives faster than it is spoken (a file, a backlog): no partials
        if utterance.last_voiced * 1000 < self.config.min_utterance_ms * _RATE:
            return
        utterance.partial_at = utterance.samples
        self._submit(_Job(utterance, final=False))

    async def _close(self, utterance: _Utterance, end_meta: dict[str, str]) -> None:
        utterance.closed = True
        utterance.end_meta = end_meta
        if self.transcriber is None:
            return
        if utterance.last_voiced * 1000 < self.config.min_utterance_ms * _RATE:
            self.skipped_short += 1
            log.debug("%s: %s too short to transcribe", self.name, utterance.id)
            return
        best = utterance.best
        if best is not None and best[0] >= utterance.last_voiced:
            self.speculative_hits += 1
            await self._publish_final(utterance, best[1], speculative=True)
            return
        running = utterance.running
        if running is not None and running.samples >= utterance.last_voiced:
            return  # the job in flight covers all the speech; it will publish the final
        self._submit(_Job(utterance, final=True))

    def _submit(self, job: _Job) -> None:
        if job.final:
            finals = [j for j in self._queue if j.final]
            if len(finals) >= self.config.max_pending:
                oldest = finals[0]
                self._queue.remove(oldest)
                self.dropped_utterances += 1
                log.warning(
                    "%s: %d utterances wait for the model; dropped the oldest (%s)",
                    self.name,
                    len(finals),
                    oldest.utterance.id,
                )
        self._queue.append(job)
        self._wakeup.set()

    # -- the worker ---------------------------------------------------------------------------

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            while not self._queue:
                self._wakeup.clear()
                await self._wakeup.wait()
            job = self._queue.popleft()
            utterance = job.utterance
            if not job.final and utterance.closed and job.samples < utterance.last_voiced:
                continue  # a partial of an utterance that has ended: its final is queued
            transcriber = self.transcriber
            if transcriber is None or self._executor is None:
                continue
            self._busy = True
            utterance.running = job
            try:
                transcript = await loop.run_in_executor(
                    self._executor, transcriber.transcribe, job.audio, self.config
                )
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001  # one bad utterance must not stop the stage
                self.failures += 1
                log.error("%s: transcribing %s failed: %s", self.name, utterance.id, exc)
                continue
            finally:
                self._busy = False
                utterance.running = None
            if job.final or (utterance.closed and job.samples >= utterance.last_voiced):
                if job.final:
                    await self._publish_final(utterance, transcript, speculative=False)
                else:
                    self.speculative_hits += 1
                    await self._publish_final(utterance, transcript, speculative=True)
                continue
            utterance.best = (job.samples, transcript)
            if not utterance.closed and transcript.text:
                self.partials += 1
                await self._publish(
                    self.topics.transcript,
                    self._transcript_event(TRANSCRIPT_PARTIAL, utterance, transcript, False),
                )

    async def _publish_final(
        self, utterance: _Utterance, transcript: Transcript, *, speculative: bool
    ) -> None:
        if not transcript.text:
            self.empty += 1
            log.info("%s: %s had no words", self.name, utterance.id)
            return
        self.finals += 1
        event = self._transcript_event(TRANSCRIPT_FINAL, utterance, transcript, speculative)
        log.info(
            "%s: %s: %r (%.0f ms)",
            self.name,
            utterance.id,
            transcript.text,
            transcript.seconds * 1000,
        )
        await self._publish(self.topics.transcript, event)

    def _transcript_event(
        self, kind: str, utterance: _Utterance, transcript: Transcript, speculative: bool
    ) -> Event:
        metadata = {
            "text": transcript.text,
            "utterance_id": utterance.id,
            "duration_ms": str(round(1000 * utterance.last_voiced / _RATE)),
            "sample_rate": str(_RATE),
            "language": transcript.language,
            "stt_ms": str(round(transcript.seconds * 1000)),
            "speculative": "1" if speculative else "0",
        }
        for key in ("last_voiced_ns", "end_ms", "reason"):
            if key in utterance.end_meta:
                metadata[key] = utterance.end_meta[key]
        return Event(
            kind, transcript.text.encode(), source=self.name, metadata=metadata, priority=70
        )
