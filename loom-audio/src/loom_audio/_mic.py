"""The microphone source: PortAudio input through sounddevice, published as frames."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from typing import Any

from loom import Event
from loom_audio._blocking import call_bounded
from loom_audio._deps import import_sounddevice
from loom_audio._devices import DeviceInfo, find_device
from loom_audio._errors import AudioDeviceError
from loom_audio._format import AudioFormat
from loom_audio._names import DEVICE_LOST, DEVICE_RESTORED
from loom_audio._pcm import StreamConverter, float_to_pcm16
from loom_audio._sources import AudioSource

__all__ = ["MicrophoneSource"]

log = logging.getLogger("loom_audio")


class MicrophoneSource(AudioSource):
    """Publishes a microphone's audio as ``audio_chunk`` frames (PCM s16le).

    PortAudio calls back from its own thread; each block is handed to the event loop
    through a bounded buffer (``max_pending`` blocks: if the loop falls that far behind,
    the oldest blocks are dropped and counted in :attr:`overruns`). Only whole frames are
    published; a remainder waits for the next block. A device that cannot run at
    ``sample_rate`` is opened at its own rate and resampled.

    When the stream ends without being stopped (the device was unplugged, the sound server
    went away) or delivers nothing for ``stall_s``, the source logs it, publishes
    ``audio.device_lost`` on its topic, and tries to reopen the device every ``retry_s``;
    once audio flows again it publishes ``audio.device_restored``. Nothing else stops.

    Args:
        device: a PortAudio index, a substring of the device's name, or None for the default.
        sample_rate: the rate frames are published at.
        channels: channels to record and publish.
        frame_ms: the frame duration (upstream: 20 ms).
        topic: where frames go.
        name: the source's name (upstream: ``mic.primary``).
        reconnect: reopen a lost device.
        retry_s: seconds between reopen attempts.
        stall_s: seconds without audio that count as a lost device.
        startup_s: seconds a newly opened stream may take to deliver its first audio.
        max_pending: blocks buffered between the PortAudio thread and the loop.
        open_timeout_s: the longest an open or close of the device may take.

    Raises:
        AudioDeviceError: from :meth:`start`: no audio stack, no such device, or it will not open.
        MissingExtraError: from :meth:`start`: sounddevice is not installed (extra ``mic``).
    """

    def __init__(
        self,
        *,
        device: int | str | None = None,
        sample_rate: int = 16000,
        channels: int = 1,
        frame_ms: float = 20.0,
        topic: str = "audio.mic",
        name: str = "mic.primary",
        reconnect: bool = True,
        retry_s: float = 1.0,
        stall_s: float = 2.0,
        startup_s: float = 5.0,
        max_pending: int = 64,
        open_timeout_s: float = 10.0,
    ) -> None:
        super().__init__(name, topic=topic, frame_ms=frame_ms, pace=0.0)
        self.device = device
        self.format = AudioFormat(sample_rate, channels)
        self.open_timeout_s = open_timeout_s
        self.reconnect = reconnect
        self.retry_s = retry_s
        self.stall_s = stall_s
        self.startup_s = startup_s
        self.overruns = 0
        self.losses = 0
        self.restores = 0
        self.device_info: DeviceInfo | None = None
        self._pending: collections.deque[bytes] = collections.deque()
        self._max_pending = max_pending
        self._wakeup = asyncio.Event()
        self._stream: Any = None
        self._stream_ended = False
        self._converter: StreamConverter | None = None
        self._device_rate = sample_rate
        self._buffer = bytearray()
        self._is_lost = False

    def status(self) -> dict[str, Any]:
        return {
            **super().status(),
            "device": self.device_info.name if self.device_info else None,
            "overruns": self.overruns,
            "losses": self.losses,
            "restores": self.restores,
        }

    async def _on_start(self) -> None:
        await self._open()
        await super()._on_start()

    async def _on_stop(self) -> None:
        await super()._on_stop()
        await self._close()

    # -- the PortAudio side ------------------------------------------------------------------

    async def _open(self) -> None:
        loop = asyncio.get_running_loop()
        self._stream = await call_bounded(
            lambda: self._open_blocking(loop),
            timeout=self.open_timeout_s,
            what=f"{self.name}: opening the input device",
            cleanup=_close_quietly,
        )
        self._stream_ended = False

    def _open_blocking(self, loop: asyncio.AbstractEventLoop) -> Any:
        sd = import_sounddevice()
        info = find_device(self.device, kind="input")
        self.device_info = info
        fmt = self.format

        def callback(indata: Any, frames: int, time: Any, status: Any) -> None:
            data = bytes(indata)
            # a closed loop means the stream is being torn down: nothing to deliver to
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._take, data, bool(status.input_overflow))

        def finished() -> None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._ended)

        def open_at(rate: int) -> Any:
            stream = sd.RawInputStream(
                device=info.index,
                samplerate=rate,
                channels=fmt.channels,
                dtype="int16",
                blocksize=max(1, round(rate * self.frame_ms / 1000)),
                callback=callback,
                finished_callback=finished,
            )
            stream.start()
            return stream

        try:
            stream = open_at(fmt.sample_rate)
            self._device_rate = fmt.sample_rate
            self._converter = None
        except sd.PortAudioError as exc:
            native = int(info.default_sample_rate)
            if native == fmt.sample_rate:
                raise AudioDeviceError(f"{self.name}: cannot open {info.name!r}: {exc}") from None
            try:
                stream = open_at(native)
            except sd.PortAudioError as exc2:
                raise AudioDeviceError(f"{self.name}: cannot open {info.name!r}: {exc2}") from None
            log.info(
                "%s: %r does not take %d Hz (%s); recording at %d Hz and resampling",
                self.name,
                info.name,
                fmt.sample_rate,
                exc,
                native,
            )
            self._device_rate = native
            self._converter = StreamConverter(fmt.sample_rate)
        log.info("%s: recording from %r at %s", self.name, info.name, fmt)
        return stream

    async def _close(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            try:
                await call_bounded(
                    lambda: _close_quietly(stream),
                    timeout=self.open_timeout_s,
                    what=f"{self.name}: closing the input device",
                )
            except AudioDeviceError as exc:
                log.error("%s", exc)

    def _take(self, data: bytes, overflow: bool) -> None:
        if overflow:
            self.overruns += 1
        if len(self._pending) >= self._max_pending:
            self._pending.popleft()
            self.overruns += 1
        self._pending.append(data)
        self._wakeup.set()

    def _ended(self) -> None:
        self._stream_ended = True
        self._wakeup.set()

    # -- the loop side -------------------------------------------------------------------------

    async def _produce(self) -> None:
        while True:
            delivered = await self._pump()
            if not delivered and not self.reconnect:
                return
            await self._recover()

    async def _pump(self) -> bool:
        """Publish audio until the stream ends or stalls; whether it delivered any."""
        delivered = False
        loop = asyncio.get_running_loop()
        wait_s = self.startup_s
        last_audio = loop.time()
        while True:
            self._wakeup.clear()
            while self._pending:
                if self._is_lost:
                    await self._restored()
                await self._publish_block(self._pending.popleft())
                delivered = True
                last_audio = loop.time()
                wait_s = self.stall_s
            if self._stream_ended:
                await self._lost("the stream ended (device unplugged or sound server gone)")
                return delivered
            timeout = last_audio + wait_s - loop.time()
            if timeout <= 0:
                await self._lost(f"no audio for {wait_s:.1f} s")
                return delivered
            try:
                await asyncio.wait_for(self._wakeup.wait(), timeout)
            except TimeoutError:
                continue

    async def _publish_block(self, data: bytes) -> None:
        fmt = self.format
        if self._converter is not None:
            mono = self._converter.convert(data, AudioFormat(self._device_rate, fmt.channels))
            if fmt.channels > 1:
                mono = mono.repeat(fmt.channels)
            data = float_to_pcm16(mono)
        buffer = self._buffer
        buffer += data
        step = fmt.frame_samples(self.frame_ms) * fmt.bytes_per_frame
        while len(buffer) >= step:
            frame = bytes(buffer[:step])
            del buffer[:step]
            await self._emit(
                frame, fmt, {"device": self.device_info.name if self.device_info else ""}
            )

    async def _lost(self, reason: str) -> None:
        await self._close()
        self._pending.clear()
        self._buffer.clear()
        device = self.device_info.name if self.device_info else str(self.device)
        if self._is_lost:  # a reopened stream that never delivered: still lost, said already
            log.debug("%s: %r still silent after reopening: %s", self.name, device, reason)
            return
        self._is_lost = True
        self.losses += 1
        log.error(
            "%s: microphone %r lost: %s; %s",
            self.name,
            device,
            reason,
            f"retrying every {self.retry_s:g} s" if self.reconnect else "not retrying",
        )
        await self._publish(
            self.topic,
            Event(
                DEVICE_LOST,
                source=self.name,
                metadata={"device": device, "reason": reason},
                priority=90,
            ),
        )

    async def _recover(self) -> None:
        while True:
            await asyncio.sleep(self.retry_s)
            try:
                await self._open()
            except AudioDeviceError as exc:
                log.debug("%s: reopen failed: %s", self.name, exc)
                continue
            return

    async def _restored(self) -> None:
        self._is_lost = False
        self.restores += 1
        device = self.device_info.name if self.device_info else str(self.device)
        log.warning("%s: microphone %r delivers audio again", self.name, device)
        await self._publish(
            self.topic,
            Event(DEVICE_RESTORED, source=self.name, metadata={"device": device}, priority=90),
        )


def _close_quietly(stream: Any) -> None:
    try:
        stream.close(ignore_errors=True)
    except Exception:  # a dead device may fail to close; it is gone anyway
        log.debug("closing the input stream failed", exc_info=True)
