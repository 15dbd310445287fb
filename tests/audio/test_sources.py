"""Sources publish frames as events; a slow stage loses frames, counted and logged, and never
slows the source down."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import numpy as np
import pytest

from loom import Event
from loom_audio import (
    AudioFormat,
    AudioFormatError,
    Stage,
    ToneSource,
    WavFileSource,
    format_of,
    write_wav,
)
from loom_audio._names import AUDIO_CHUNK, AUDIO_END
from loom_audio._pcm import float_to_pcm16, pcm16_to_mono_float


async def test_tone_source_publishes_whole_frames_then_ends(bus, collect) -> None:
    seen = await collect("audio.mic")
    source = ToneSource(
        1000, amplitude=0.5, seconds=0.2, fmt=AudioFormat(8000, 2), frame_ms=10, pace=0
    )
    await source.start(bus)
    await source.wait()
    await seen.wait_type(AUDIO_END)
    frames = seen.of(AUDIO_CHUNK)
    assert len(frames) == 20 == source.frames
    assert [int(f.metadata["seq"]) for f in frames] == list(range(20))
    assert all(format_of(f) == AudioFormat(8000, 2) and len(f.payload) == 80 * 4 for f in frames)
    samples = pcm16_to_mono_float(b"".join(f.payload for f in frames), 2)
    assert abs(float(np.max(np.abs(samples))) - 0.5) < 0.01
    end = seen.of(AUDIO_END)[0]
    assert end.metadata["frames"] == "20" and end.metadata["reason"] == "done"
    await source.stop()


async def test_silent_tone_is_digital_silence(bus, collect) -> None:
    seen = await collect("audio.mic", (AUDIO_CHUNK,))
    source = ToneSource(amplitude=0.0, seconds=0.1, pace=0)
    await source.start(bus)
    await source.wait()
    await seen.wait_type(AUDIO_CHUNK, 5)
    assert all(set(f.payload) == {0} for f in seen.of(AUDIO_CHUNK))
    await source.stop()


async def test_wav_source_resamples_and_pads(tmp_path: Path, bus, collect) -> None:
    t = np.arange(int(0.5 * 44100)) / 44100
    stereo = np.repeat((0.4 * np.sin(2 * np.pi * 300 * t))[:, None], 2, axis=1)
    path = write_wav(tmp_path / "s.wav", float_to_pcm16(stereo), AudioFormat(44100, 2))
    seen = await collect("audio.mic")
    source = WavFileSource(path, pace=0, lead_silence_ms=40, tail_silence_ms=100)
    await source.start(bus)
    await source.wait()
    await seen.wait_type(AUDIO_END)
    frames = seen.of(AUDIO_CHUNK)
    assert all(format_of(f) == AudioFormat(16000, 1) and len(f.payload) == 640 for f in frames)
    assert len(frames) == 2 + 25 + 5  # lead, 500 ms of file, tail
    assert set(frames[0].payload) == {0} and set(frames[-1].payload) == {0}
    assert frames[0].metadata["source"] == "s.wav"
    await source.stop()


async def test_wav_source_refuses_a_format_when_told_to(tmp_path: Path, bus) -> None:
    path = write_wav(tmp_path / "s.wav", bytes(4000), AudioFormat(8000, 2))
    source = WavFileSource(path, resample=False)
    with pytest.raises(
        AudioFormatError, match=r"s\.wav: audio is 8000 Hz 2 channels, expected 16000 Hz mono"
    ):
        await source.start(bus)
    assert not source.running


async def test_wav_source_keeps_the_file_format_when_asked(tmp_path: Path, bus, collect) -> None:
    path = write_wav(tmp_path / "s.wav", bytes(8000 * 2 * 2 // 10), AudioFormat(8000, 2))
    seen = await collect("audio.mic", (AUDIO_CHUNK,))
    source = WavFileSource(path, target=None, pace=0)
    await source.start(bus)
    await source.wait()
    await seen.wait_type(AUDIO_CHUNK, 5)
    assert format_of(seen.of(AUDIO_CHUNK)[0]) == AudioFormat(8000, 2)
    await source.stop()


def test_source_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="frame_ms"):
        ToneSource(frame_ms=0)
    with pytest.raises(ValueError, match="pace"):
        ToneSource(pace=-1)
    with pytest.raises(ValueError, match="frequency"):
        ToneSource(9000, fmt=AudioFormat(16000, 1))
    with pytest.raises(AudioFormatError, match="sample rate"):
        AudioFormat(1000, 1)


class SlowStage(Stage):
    """A stage whose work per frame takes longer than the frame lasts."""

    def __init__(self) -> None:
        super().__init__("slow")
        self.handled = 0

    async def _on_start(self) -> None:
        await self._subscribe("audio.mic", self.on_frame, event_types=(AUDIO_CHUNK,), queue_size=16)

    async def on_frame(self, topic: str, event: Event) -> None:
        await asyncio.sleep(0.01)
        self.handled += 1


async def test_a_slow_stage_drops_frames_and_says_so(bus, caplog) -> None:
    stage = SlowStage()
    await stage.start(bus)
    source = ToneSource(seconds=4.0, pace=0)  # 200 frames, as fast as the bus takes them
    with caplog.at_level(logging.WARNING, logger="loom_audio"):
        await source.start(bus)
        await source.wait()
        published = source.frames
        handled_when_source_finished = stage.handled
        while stage.handled + stage.dropped < published:
            await asyncio.sleep(0.01)
    assert published == 200
    assert handled_when_source_finished < 100  # the source did not wait for the stage
    assert stage.dropped > 0 and stage.handled + stage.dropped == published
    stats = bus.stats("audio.mic")
    assert stats.dropped_by_reason.get("QUEUE_FULL") == stage.dropped
    assert any(
        "slow: dropped" in r.getMessage() and "slower than real time" in r.getMessage()
        for r in caplog.records
    )
    await stage.stop()
    await source.stop()
