"""Sources that publish audio frames: a WAV file and a test tone (the microphone is in _mic)."""

from __future__ import annotations

import abc
import asyncio
import logging
import math
import os
from typing import Any

import numpy as np

from loom import Event
from loom_audio._format import AudioFormat, frame_event
from loom_audio._names import AUDIO_CHUNK, AUDIO_END
from loom_audio._pcm import float_to_pcm16
from loom_audio._stage import Stage
from loom_audio._wav import conform, read_wav

__all__ = ["AudioSource", "ToneSource", "WavFileSource"]

log = logging.getLogger("loom_audio")

#: Priority of source frames (upstream's ``audio_chunk``).
FRAME_PRIORITY = 90


class AudioSource(Stage, abc.ABC):
    """A stage that publishes ``audio_chunk`` frames of ``frame_ms`` on ``topic``.

    Args:
        name: the source's name; frames carry it as ``source``.
        topic: where frames go.
        frame_ms: the duration of one frame (upstream: 20 ms).
        pace: 1.0 publishes in real time, 2.0 twice as fast, 0 as fast as the bus takes them.

    Attributes:
        frames: frames published so far.
        finished: set when the source has nothing more to publish.
    """

    def __init__(self, name: str, *, topic: str, frame_ms: float = 20.0, pace: float = 1.0) -> None:
        super().__init__(name)
        if not 1.0 <= frame_ms <= 1000.0:
            raise ValueError(f"frame_ms must be within 1..1000, got {frame_ms!r}")
        if pace < 0 or not math.isfinite(pace):
            raise ValueError(f"pace must be a finite number >= 0, got {pace!r}")
        self.topic = topic
        self.frame_ms = frame_ms
        self.pace = pace
        self.frames = 0
        self.finished = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.started_at: float | None = None

    async def _on_start(self) -> None:
        self.finished.clear()
        self.started_at = None
        self._task = asyncio.create_task(self._run_guarded(), name=f"loom-audio {self.name}")

    async def _on_stop(self) -> None:
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        self.finished.set()

    async def wait(self) -> None:
        """Wait until the source has published everything it has."""
        await self.finished.wait()

    def status(self) -> dict[str, Any]:
        return {**super().status(), "frames": self.frames, "topic": self.topic}

    async def _run_guarded(self) -> None:
        try:
            await self._produce()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s: the source failed", self.name)
        finally:
            self.finished.set()

    @abc.abstractmethod
    async def _produce(self) -> None:
        """Publish frames until done (or forever)."""

    async def _emit(
        self, pcm: bytes, fmt: AudioFormat, extra: dict[str, str] | None = None
    ) -> None:
        """Publish one frame, first waiting for its time when paced."""
        loop = asyncio.get_running_loop()
        if self.started_at is None:
            self.started_at = loop.time()
        if self.pace > 0:
            due = self.started_at + self.frames * (self.frame_ms / 1000.0) / self.pace
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
        else:
            await asyncio.sleep(0)
        event = frame_event(
            AUDIO_CHUNK,
            pcm,
            fmt,
            source=self.name,
            seq=self.frames,
            extra=extra,
            priority=FRAME_PRIORITY,
        )
        self.frames += 1
        await self._publish(self.topic, event)

    async def _end(self, fmt: AudioFormat, reason: str) -> None:
        await self._publish(
            self.topic,
            Event(
                AUDIO_END,
                source=self.name,
                metadata={
                    "frames": str(self.frames),
                    "duration_ms": str(round(self.frames * self.frame_ms)),
                    "sample_rate": str(fmt.sample_rate),
                    "reason": reason,
                },
            ),
        )


class WavFileSource(AudioSource):
    """Publishes a WAV file as frames, then ``audio.end``.

    The file is read when the source starts, so a bad file fails :meth:`start` with a
    message naming it. Frames have the ``target`` format: a file in another format is
    resampled and mixed when ``resample`` is True, and refused otherwise.

    Args:
        path: the WAV file (integer PCM, any rate and channel count).
        topic: where frames go.
        target: the format to publish; None keeps the file's.
        resample: convert a file whose format differs from ``target``.
        frame_ms: the frame duration.
        pace: 1.0 real time, 0 as fast as possible.
        lead_silence_ms: silence published before the file.
        tail_silence_ms: silence published after it (lets a VAD see the speech end).
        name: the source's name; the file's name when None.

    Raises:
        AudioFormatError: from :meth:`start`, when the file cannot be read or converted.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        topic: str = "audio.mic",
        target: AudioFormat | None = AudioFormat(16000, 1),  # noqa: B008  # frozen, immutable
        resample: bool = True,
        frame_ms: float = 20.0,
        pace: float = 1.0,
        lead_silence_ms: float = 0.0,
        tail_silence_ms: float = 0.0,
        name: str | None = None,
    ) -> None:
        self.path = os.fspath(path)
        super().__init__(
            name or os.path.basename(self.path), topic=topic, frame_ms=frame_ms, pace=pace
        )
        self.target = target
        self.resample = resample
        self.lead_silence_ms = lead_silence_ms
        self.tail_silence_ms = tail_silence_ms
        self.format: AudioFormat | None = None
        self._pcm = b""

    async def _on_start(self) -> None:
        file_format, pcm = await asyncio.to_thread(read_wav, self.path)
        target = self.target or file_format
        if file_format != target:
            pcm = await asyncio.to_thread(
                conform, pcm, file_format, target, resample_ok=self.resample, where=self.path
            )
            log.info("%s: %s resampled to %s", self.name, file_format, target)
        self.format = target
        self._pcm = pcm
        await super()._on_start()

    async def _produce(self) -> None:
        fmt = self.format
        assert fmt is not None  # set by _on_start
        step = fmt.frame_samples(self.frame_ms) * fmt.bytes_per_frame
        silence = bytes(step)
        for _ in range(round(self.lead_silence_ms / self.frame_ms)):
            await self._emit(silence, fmt)
        pcm = self._pcm
        for offset in range(0, len(pcm), step):
            chunk = pcm[offset : offset + step]
            if len(chunk) < step:  # whole frames only: pad the last one with silence
                chunk += bytes(step - len(chunk))
            await self._emit(chunk, fmt)
        for _ in range(round(self.tail_silence_ms / self.frame_ms)):
            await self._emit(silence, fmt)
        await self._end(fmt, "eof")


class ToneSource(AudioSource):
    """A sine tone (amplitude 0 gives digital silence), for tests and level checks.

    Args:
        frequency: in Hz.
        amplitude: 0..1 of full scale.
        seconds: how long; None plays until stopped.
        fmt: the format of the frames.
        topic: where frames go.
        frame_ms: the frame duration.
        pace: 1.0 real time, 0 as fast as possible.
        name: the source's name.
    """

    def __init__(
        self,
        frequency: float = 440.0,
        *,
        amplitude: float = 0.3,
        seconds: float | None = 1.0,
        fmt: AudioFormat = AudioFormat(16000, 1),  # noqa: B008  # frozen, immutable
        topic: str = "audio.mic",
        frame_ms: float = 20.0,
        pace: float = 1.0,
        name: str = "tone",
    ) -> None:
        super().__init__(name, topic=topic, frame_ms=frame_ms, pace=pace)
        if not 0.0 <= amplitude <= 1.0:
            raise ValueError(f"amplitude must be within 0..1, got {amplitude!r}")
        if not 0.0 <= frequency < fmt.sample_rate / 2:
            raise ValueError(
                f"frequency must be within 0..{fmt.sample_rate / 2} Hz, got {frequency!r}"
            )
        self.frequency = frequency
        self.amplitude = amplitude
        self.seconds = seconds
        self.format = fmt

    async def _produce(self) -> None:
        fmt = self.format
        n = fmt.frame_samples(self.frame_ms)
        total = None if self.seconds is None else round(self.seconds * 1000 / self.frame_ms)
        step = 2 * math.pi * self.frequency / fmt.sample_rate
        index = 0
        while total is None or index < total:
            phase = np.arange(index * n, (index + 1) * n, dtype=np.float64) * step
            wave = (self.amplitude * np.sin(phase)).astype(np.float32)
            if fmt.channels > 1:
                wave = np.repeat(wave[:, None], fmt.channels, axis=1)
            await self._emit(float_to_pcm16(wave), fmt)
            index += 1
        await self._end(fmt, "done")
