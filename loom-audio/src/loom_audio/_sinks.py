"""Sinks: where reply audio ends up. The WAV file sink; the speaker is in _speaker."""

from __future__ import annotations

import abc
import collections
import logging
import os
import time
import wave
from pathlib import Path
from typing import Any, BinaryIO

from loom import Event, QoS
from loom_audio._errors import AudioFormatError
from loom_audio._format import SAMPLE_WIDTH, AudioFormat, format_of
from loom_audio._names import AUDIO_OUT, PLAYBACK_DONE, PLAYBACK_STARTED, TTS_STOP, AudioTopics
from loom_audio._stage import Stage
from loom_audio._wav import conform

__all__ = ["AudioSink", "WavSink"]

log = logging.getLogger("loom_audio")

_PASS_ON = ("last_voiced_ns", "session_id", "query_id")


class AudioSink(Stage, abc.ABC):
    """A stage that outputs reply audio: ``audio_out`` chunks in, ``playback.*`` reports out.

    Subscribes (Batched: reply audio is never dropped; a slow sink makes the TTS wait) to
    ``audio_out`` on ``topics.out``, and to ``tts.stop`` on ``topics.tts``. The first audio
    of a reply publishes ``playback.started`` (metadata ``reply_id``, ``sink``,
    ``first_audio_ns``, plus the request's ``last_voiced_ns`` when known); its end, or a
    stop, publishes ``playback.done`` (``stopped`` 1 or 0).

    Args:
        name: the sink's name.
        topics: the topics to use.
        queue_size: the input queue bound (chunks).
    """

    def __init__(
        self, name: str, *, topics: AudioTopics | None = None, queue_size: int = 256
    ) -> None:
        super().__init__(name)
        self.topics = topics or AudioTopics()
        self.queue_size = queue_size
        self.replies = 0
        self.stops = 0
        self._started: set[str] = set()
        self._stopped: collections.OrderedDict[str, None] = collections.OrderedDict()

    def status(self) -> dict[str, Any]:
        return {**super().status(), "replies": self.replies, "stops": self.stops}

    async def _on_start(self) -> None:
        await self._subscribe(
            self.topics.out,
            self._on_audio,
            event_types=(AUDIO_OUT,),
            qos=QoS.BATCHED,
            queue_size=self.queue_size,
        )
        await self._subscribe(
            self.topics.tts, self._on_stop_request, event_types=(TTS_STOP,), qos=QoS.BATCHED
        )

    async def _on_audio(self, topic: str, event: Event) -> None:
        md = event.metadata
        reply_id = md.get("reply_id", "")
        if reply_id in self._stopped:
            return
        try:
            fmt = format_of(event, f"{self.name} <- {topic}")
        except AudioFormatError as exc:
            self._report_bad_input(f"format:{reply_id}", f"{exc}; chunk skipped")
            return
        if event.payload:
            if reply_id not in self._started:
                self._started.add(reply_id)
                first_ns = await self._write(reply_id, event.payload, fmt, first=True)
                await self._report(
                    PLAYBACK_STARTED, reply_id, md, {"first_audio_ns": str(first_ns)}
                )
            else:
                await self._write(reply_id, event.payload, fmt, first=False)
        if md.get("last") == "1":
            stopped = md.get("stopped") == "1"
            extra = await self._finish(reply_id, stopped=stopped)
            if reply_id in self._stopped:  # stopped while it played out: reported already
                return
            if reply_id in self._started or extra:
                self._started.discard(reply_id)
                self.replies += 1
                await self._report(
                    PLAYBACK_DONE, reply_id, md, {"stopped": "1" if stopped else "0", **extra}
                )

    async def _on_stop_request(self, topic: str, event: Event) -> None:
        reply_id = event.metadata.get("reply_id", "")
        targets = [reply_id] if reply_id else list(self._started)
        for target in targets:
            self._stopped[target] = None
            while len(self._stopped) > 256:
                self._stopped.popitem(last=False)
            if target in self._started:
                self._started.discard(target)
                self.stops += 1
                extra = await self._finish(target, stopped=True)
                await self._report(PLAYBACK_DONE, target, event.metadata, {"stopped": "1", **extra})

    async def _report(
        self, kind: str, reply_id: str, md: dict[str, str], extra: dict[str, str]
    ) -> None:
        metadata = {"reply_id": reply_id, "sink": self.name, **extra}
        for key in _PASS_ON:
            if key in md:
                metadata[key] = md[key]
        await self._publish(
            self.topics.tts, Event(kind, source=self.name, metadata=metadata, priority=70)
        )

    @abc.abstractmethod
    async def _write(self, reply_id: str, pcm: bytes, fmt: AudioFormat, *, first: bool) -> int:
        """Output a chunk; returns when its first audio is out (``time.time_ns()``)."""

    @abc.abstractmethod
    async def _finish(self, reply_id: str, *, stopped: bool) -> dict[str, str]:
        """End a reply (finished or stopped); returns metadata for ``playback.done``."""


class WavSink(AudioSink):
    """Writes each reply to its own WAV file in ``directory`` (``reply-001.wav``, ...).

    A reply keeps the format of its first chunk; later chunks in another format are
    resampled to it. A stopped reply's file keeps what was written before the stop.
    ``playback.done`` carries the file's ``path`` and ``audio_ms``.

    Args:
        directory: where the files go (created).
        topics: the topics to use.
        name: the sink's name.
        prefix: the file names' prefix.

    Attributes:
        files: the files written, in order.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        topics: AudioTopics | None = None,
        name: str = "wav_sink",
        prefix: str = "reply",
    ) -> None:
        super().__init__(name, topics=topics)
        self.directory = Path(directory)
        self.prefix = prefix
        self.files: list[Path] = []
        self._open: dict[str, tuple[wave.Wave_write, AudioFormat, Path, int]] = {}
        self._files: dict[str, BinaryIO] = {}

    async def _on_start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        await super()._on_start()

    async def _on_stop(self) -> None:
        for reply_id in list(self._open):
            await self._finish(reply_id, stopped=True)

    async def _write(self, reply_id: str, pcm: bytes, fmt: AudioFormat, *, first: bool) -> int:
        entry = self._open.get(reply_id)
        if entry is None:
            path = self.directory / f"{self.prefix}-{len(self.files) + 1:03d}.wav"
            file = open(path, "wb")  # noqa: SIM115  # closed in _finish
            writer = wave.open(file, "wb")  # noqa: SIM115  # closed in _finish
            writer.setnchannels(fmt.channels)
            writer.setsampwidth(SAMPLE_WIDTH)
            writer.setframerate(fmt.sample_rate)
            entry = (writer, fmt, path, 0)
            self._files[reply_id] = file
            self.files.append(path)
        writer, file_format, path, samples = entry
        if fmt != file_format:
            pcm = conform(pcm, fmt, file_format, resample_ok=True, where=str(path))
        writer.writeframes(pcm)
        self._open[reply_id] = (
            writer,
            file_format,
            path,
            samples + len(pcm) // file_format.bytes_per_frame,
        )
        return time.time_ns()

    async def _finish(self, reply_id: str, *, stopped: bool) -> dict[str, str]:
        entry = self._open.pop(reply_id, None)
        if entry is None:
            return {}
        writer, fmt, path, samples = entry
        writer.close()
        self._files.pop(reply_id).close()
        log.info(
            "%s: %s %s (%d ms)",
            self.name,
            "cut" if stopped else "wrote",
            path,
            1000 * samples // fmt.sample_rate,
        )
        return {"path": os.fspath(path), "audio_ms": str(1000 * samples // fmt.sample_rate)}
