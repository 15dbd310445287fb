"""The speaker sink: reply audio played through PortAudio (sounddevice)."""

from __future__ import annotations

import asyncio
import collections
import logging
import threading
import time
from typing import Any

import numpy as np

from loom_audio._blocking import call_bounded
from loom_audio._deps import import_sounddevice
from loom_audio._devices import DeviceInfo, find_device
from loom_audio._errors import AudioDeviceError
from loom_audio._format import AudioFormat
from loom_audio._names import AudioTopics
from loom_audio._pcm import float_to_pcm16, pcm16_to_mono_float, resample
from loom_audio._sinks import AudioSink

__all__ = ["SpeakerSink"]

log = logging.getLogger("loom_audio")


class _Playback:
    """Audio queued for the device, shared with PortAudio's thread under a lock."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.buffer = bytearray()
        # (reply_id, bytes of it still in the buffer), in buffer order
        self.segments: collections.deque[list[Any]] = collections.deque()

    def add(self, reply_id: str, pcm: bytes) -> None:
        with self.lock:
            self.buffer += pcm
            if self.segments and self.segments[-1][0] == reply_id:
                self.segments[-1][1] += len(pcm)
            else:
                self.segments.append([reply_id, len(pcm)])

    def take(self, n: int) -> tuple[bytes, list[str]]:
        """Up to ``n`` bytes (zero-padded) and the replies whose audio ran out."""
        with self.lock:
            chunk = bytes(self.buffer[:n])
            del self.buffer[:n]
            taken = len(chunk)
            emptied = []
            while taken and self.segments:
                segment = self.segments[0]
                used = min(taken, segment[1])
                segment[1] -= used
                taken -= used
                if segment[1] == 0:
                    emptied.append(segment[0])
                    self.segments.popleft()
        return chunk + bytes(n - len(chunk)), emptied

    def drop(self, reply_id: str) -> None:
        """Remove what is left of a reply."""
        with self.lock:
            offset = 0
            kept: collections.deque[list[Any]] = collections.deque()
            for segment in self.segments:
                if segment[0] == reply_id:
                    del self.buffer[offset : offset + segment[1]]
                else:
                    offset += segment[1]
                    kept.append(segment)
            self.segments = kept

    def pending(self, reply_id: str) -> int:
        with self.lock:
            return sum(s[1] for s in self.segments if s[0] == reply_id)

    def size(self) -> int:
        with self.lock:
            return len(self.buffer)


class SpeakerSink(AudioSink):
    """Plays reply audio on an output device; ``playback.done`` when a reply has played out.

    The device is opened when the sink starts, at ``sample_rate`` (chunks at another rate
    are resampled). At most ``max_buffer_s`` of audio is queued for the device; beyond
    that the sink waits, and so (through its Batched queue) does the TTS. A stop request
    removes what is left of the reply at once (barge-in).

    Args:
        device: a PortAudio index, a substring of the device's name, or None for the default.
        sample_rate: the rate the device is opened at (piper and espeak-ng speak at 22,050 Hz).
        topics: the topics to use.
        name: the sink's name.
        max_buffer_s: audio queued for the device at most.

    Raises:
        AudioDeviceError: from :meth:`start`: no audio stack, no output device, or it will not open.
        MissingExtraError: from :meth:`start`: sounddevice is not installed (extra ``mic``).
    """

    def __init__(
        self,
        *,
        device: int | str | None = None,
        sample_rate: int = 22050,
        topics: AudioTopics | None = None,
        name: str = "speaker",
        max_buffer_s: float = 30.0,
    ) -> None:
        super().__init__(name, topics=topics)
        self.device = device
        self.format = AudioFormat(sample_rate, 1)
        self.max_buffer_s = max_buffer_s
        self.device_info: DeviceInfo | None = None
        self.played = 0
        self._playback = _Playback()
        self._stream: Any = None
        self._done: dict[str, asyncio.Event] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    async def _on_start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stream = await call_bounded(
            self._open,
            timeout=10.0,
            what=f"{self.name}: opening the output device",
            cleanup=lambda stream: stream.close(True),
        )
        await super()._on_start()

    async def _on_stop(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            try:
                await call_bounded(
                    lambda: stream.close(True),
                    timeout=10.0,
                    what=f"{self.name}: closing the output device",
                )
            except AudioDeviceError as exc:
                log.error("%s", exc)
        for event in self._done.values():
            event.set()

    def _open(self) -> Any:
        sd = import_sounddevice()
        info = find_device(self.device, kind="output")
        self.device_info = info
        playback = self._playback
        loop = self._loop
        assert loop is not None

        def callback(outdata: Any, frames: int, time_info: Any, status: Any) -> None:
            chunk, emptied = playback.take(len(outdata))
            outdata[:] = chunk
            for reply_id in emptied:
                try:
                    loop.call_soon_threadsafe(self._played_out, reply_id)
                except RuntimeError:
                    return

        try:
            stream = sd.RawOutputStream(
                device=info.index,
                samplerate=self.format.sample_rate,
                channels=1,
                dtype="int16",
                callback=callback,
            )
            stream.start()
        except sd.PortAudioError as exc:
            raise AudioDeviceError(
                f"{self.name}: cannot open {info.name!r} for output: {exc}"
            ) from None
        log.info("%s: playing on %r at %s", self.name, info.name, self.format)
        return stream

    def _played_out(self, reply_id: str) -> None:
        event = self._done.get(reply_id)
        if event is not None:
            event.set()

    async def _write(self, reply_id: str, pcm: bytes, fmt: AudioFormat, *, first: bool) -> int:
        target = self.format
        if fmt != target:
            mono = pcm16_to_mono_float(pcm, fmt.channels)
            pcm = float_to_pcm16(
                resample(mono, fmt.sample_rate, target.sample_rate).astype(np.float32)
            )
        limit = int(self.max_buffer_s * target.sample_rate) * target.bytes_per_frame
        while self._playback.size() > limit and self._stream is not None:
            await asyncio.sleep(0.02)
        self._done.setdefault(reply_id, asyncio.Event())
        self._playback.add(reply_id, pcm)
        latency = float(self._stream.latency) if self._stream is not None else 0.0
        return time.time_ns() + round(latency * 1e9)

    async def _finish(self, reply_id: str, *, stopped: bool) -> dict[str, str]:
        done = self._done.get(reply_id)
        if stopped:
            self._playback.drop(reply_id)
            if done is not None:
                done.set()  # wakes a _finish waiting for this reply to play out
        elif done is not None and self._playback.pending(reply_id):
            remaining_s = self._playback.size() / (
                self.format.sample_rate * self.format.bytes_per_frame
            )
            try:
                await asyncio.wait_for(done.wait(), remaining_s + 2.0)
            except TimeoutError:
                log.error(
                    "%s: %s did not play out (is the device still there?)", self.name, reply_id
                )
                self._playback.drop(reply_id)
        self._done.pop(reply_id, None)
        if not stopped:
            self.played += 1
        return {}
