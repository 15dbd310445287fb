"""The WAV sink: one file per reply, other formats resampled, stops honoured, bad chunks skipped."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from loom import Event
from loom_audio import AudioFormat, WavSink, frame_event, read_wav
from loom_audio._names import AUDIO_OUT, PLAYBACK_DONE, PLAYBACK_STARTED, TTS_STOP
from loom_audio._pcm import float_to_pcm16


def _chunk(reply: str, seconds: float, rate: int, *, last: bool = False, seq: int = 0) -> Event:
    t = np.arange(int(seconds * rate)) / rate
    pcm = b"" if last else float_to_pcm16(0.3 * np.sin(2 * np.pi * 440 * t))
    extra = {"reply_id": reply, "last": "1" if last else "0", "last_voiced_ns": "123"}
    return frame_event(AUDIO_OUT, pcm, AudioFormat(rate, 1), source="tts", seq=seq, extra=extra)


async def test_each_reply_gets_its_own_file(tmp_path: Path, bus, collect) -> None:
    seen = await collect(">", (PLAYBACK_STARTED, PLAYBACK_DONE))
    sink = WavSink(tmp_path / "out")
    await sink.start(bus)
    await bus.publish("audio.out", _chunk("a", 0.5, 22050))
    await bus.publish("audio.out", _chunk("a", 0.25, 16000, seq=1))  # another rate: resampled
    await bus.publish("audio.out", _chunk("a", 0, 22050, last=True, seq=2))
    await bus.publish("audio.out", _chunk("b", 0.1, 16000))
    await bus.publish("audio.out", _chunk("b", 0, 16000, last=True, seq=1))
    done = await seen.wait_type(PLAYBACK_DONE, 2)
    started = seen.of(PLAYBACK_STARTED)
    assert [e.metadata["reply_id"] for e in started] == ["a", "b"]
    assert (
        started[0].metadata["last_voiced_ns"] == "123"
        and int(started[0].metadata["first_audio_ns"]) > 0
    )
    fmt, pcm = read_wav(done[0].metadata["path"])
    assert fmt == AudioFormat(22050, 1) and abs(len(pcm) / 2 / 22050 - 0.75) < 0.01
    assert done[0].metadata["audio_ms"] == "750" and done[0].metadata["stopped"] == "0"
    assert read_wav(done[1].metadata["path"])[0] == AudioFormat(16000, 1)
    assert [p.name for p in sink.files] == ["reply-001.wav", "reply-002.wav"]
    await sink.stop()


async def test_a_stopped_reply_keeps_what_was_written(tmp_path: Path, bus, collect) -> None:
    seen = await collect(">", (PLAYBACK_DONE,))
    sink = WavSink(tmp_path)
    await sink.start(bus)
    await bus.publish("audio.out", _chunk("a", 0.5, 16000))
    await seen.wait_for(
        lambda: sink.status()["replies"] == 0 and "a" in sink._started, what="reply a"
    )
    await bus.publish("tts", Event(TTS_STOP, metadata={"reply_id": "a"}))
    done = (await seen.wait_type(PLAYBACK_DONE))[0]
    await bus.publish("audio.out", _chunk("a", 0.5, 16000, seq=1))  # after the stop: dropped
    await bus.publish("audio.out", _chunk("a", 0, 16000, last=True, seq=2))
    await bus.publish("audio.out", _chunk("c", 0.1, 16000))
    await bus.publish("audio.out", _chunk("c", 0, 16000, last=True, seq=1))
    await seen.wait_type(PLAYBACK_DONE, 2)
    assert done.metadata["stopped"] == "1" and sink.stops == 1
    fmt, pcm = read_wav(done.metadata["path"])
    assert abs(len(pcm) / 2 / fmt.sample_rate - 0.5) < 0.01
    assert len(seen.of(PLAYBACK_DONE)) == 2  # one report per reply
    await sink.stop()


async def test_a_bad_chunk_is_skipped_and_reported(tmp_path: Path, bus, collect, caplog) -> None:
    seen = await collect(">", (PLAYBACK_DONE,))
    sink = WavSink(tmp_path)
    await sink.start(bus)
    with caplog.at_level(logging.ERROR, logger="loom_audio"):
        await bus.publish(
            "audio.out",
            Event(AUDIO_OUT, b"\0\0\0", metadata={"reply_id": "x", "sample_rate": "22050"}),
        )
        await bus.publish("audio.out", _chunk("y", 0.1, 16000))
        await bus.publish("audio.out", _chunk("y", 0, 16000, last=True, seq=1))
        await seen.wait_type(PLAYBACK_DONE)
    assert sink.bad_input == 1
    assert any("not a whole number" in r.getMessage() for r in caplog.records)
    await sink.stop()
