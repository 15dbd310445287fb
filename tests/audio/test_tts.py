"""Text to speech: piper, the espeak-ng fallback (logged), the stage, stopping a reply, and
speech that comes back word for word through speech to text."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest

from loom import Event
from loom_audio import (
    AudioFormat,
    AudioModelError,
    EspeakEngine,
    NoEngine,
    PiperEngine,
    SpeakRequest,
    TtsConfig,
    TtsStage,
    WavSink,
    corpus_word_error_rate,
    format_of,
    load_tts_engine,
    read_wav,
)
from loom_audio._names import (
    AUDIO_OUT,
    PLAYBACK_DONE,
    PLAYBACK_STARTED,
    TTS_DONE,
    TTS_ERROR,
    TTS_SPEAK,
    TTS_START,
    TTS_STOP,
)
from loom_audio._pcm import pcm16_to_mono_float, resample
from loom_audio._tts_engines import split_sentences

from .conftest import RATE, need

pytestmark = pytest.mark.audio

LONG = " ".join(
    f"This is sentence number {word} of a long reply."
    for word in ("one", "two", "three", "four", "five", "six", "seven", "eight")
)


def test_sentences_are_split_for_streaming() -> None:
    assert split_sentences("Hello there. How are you?  Fine!") == [
        "Hello there.",
        "How are you?",
        "Fine!",
    ]
    assert split_sentences("  ") == []


def test_piper_speaks_per_sentence(piper_engine) -> None:
    chunks = list(piper_engine.synthesize("Good morning. The meeting starts soon."))
    assert len(chunks) == 2 and piper_engine.sample_rate == 22050
    assert all(len(c) > 0.3 * 22050 * 2 for c in chunks)
    assert list(piper_engine.synthesize("Good morning.")) == [
        chunks[0]
    ]  # deterministic (noise off)


def test_rate_changes_duration(piper_engine) -> None:
    normal = sum(map(len, piper_engine.synthesize("The train leaves the station at noon.")))
    fast = sum(map(len, piper_engine.synthesize("The train leaves the station at noon.", rate=2.0)))
    assert fast < 0.7 * normal


def test_espeak_speaks(espeak_engine) -> None:
    chunks = list(espeak_engine.synthesize("Hello there. How are you?"))
    assert len(chunks) == 2 and espeak_engine.sample_rate == 22050 and all(chunks)


def test_a_missing_voice_falls_back_to_espeak_and_says_so(
    espeak_engine, tmp_path: Path, caplog
) -> None:
    need("piper", "tts")
    with caplog.at_level(logging.WARNING, logger="loom_audio"):
        engine = load_tts_engine(TtsConfig(voice=str(tmp_path / "missing.onnx")))
    assert isinstance(engine, EspeakEngine)
    assert any(
        "piper unavailable" in r.getMessage() and "missing.onnx" in r.getMessage()
        for r in caplog.records
    )
    with pytest.raises(AudioModelError, match="no piper voice file"):
        load_tts_engine(TtsConfig(engine="piper", voice=str(tmp_path / "missing.onnx")))


def test_a_corrupt_voice_falls_back_too(
    espeak_engine, piper_engine, tmp_path: Path, caplog
) -> None:
    voice = tmp_path / "broken.onnx"
    voice.write_bytes(b"not an onnx model")
    Path(f"{voice}.json").write_bytes(piper_engine.path.with_suffix(".onnx.json").read_bytes())
    with pytest.raises(AudioModelError, match=r"broken\.onnx does not load"):
        PiperEngine(str(voice))
    with caplog.at_level(logging.WARNING, logger="loom_audio"):
        assert isinstance(load_tts_engine(TtsConfig(voice=str(voice))), EspeakEngine)
    assert any("falling back to espeak-ng" in r.getMessage() for r in caplog.records)


def test_no_engine_at_all_logs_what_it_would_say(tmp_path: Path, monkeypatch, caplog) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no espeak-ng on this PATH
    with caplog.at_level(logging.WARNING, logger="loom_audio"):
        engine = load_tts_engine(TtsConfig(engine="auto", voice=str(tmp_path / "none.onnx")))
        assert isinstance(engine, NoEngine)
        assert list(engine.synthesize("nothing to hear")) == []
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert "espeak-ng is not installed" in messages and "would say: nothing to hear" in messages
    with pytest.raises(AudioModelError, match="apt-get install espeak-ng"):
        EspeakEngine()


async def test_stage_streams_a_reply_sentence_by_sentence(piper_engine, bus, collect) -> None:
    seen = await collect(">", (TTS_START, AUDIO_OUT, TTS_DONE))
    stage = TtsStage(engine=piper_engine)
    await stage.start(bus)
    await bus.publish(
        "tts",
        Event(
            TTS_SPEAK,
            json.dumps({"text": "Hello there. How are you today?"}).encode(),
            metadata={"reply_id": "r1"},
        ),
    )
    done = (await seen.wait_type(TTS_DONE))[0]
    chunks = seen.of(AUDIO_OUT)
    assert [c.metadata["last"] for c in chunks] == ["0", "0", "1"] and chunks[-1].payload == b""
    assert all(c.metadata["reply_id"] == "r1" for c in chunks)
    assert format_of(chunks[0]) == AudioFormat(22050, 1)
    assert seen.of(TTS_START)[0].metadata["text"] == "Hello there. How are you today?"
    assert done.metadata["stopped"] == "0" and done.metadata["chunks"] == "2"
    assert int(done.metadata["audio_ms"]) > 1000 and int(done.metadata["first_chunk_ms"]) > 0
    assert stage.spoken == 1
    await stage.stop()


async def test_stopping_a_reply_cuts_it_short(piper_engine, tmp_path: Path, bus, collect) -> None:
    seen = await collect(">", (AUDIO_OUT, TTS_DONE, PLAYBACK_STARTED, PLAYBACK_DONE))
    sink = WavSink(tmp_path)
    stage = TtsStage(engine=piper_engine)
    await sink.start(bus)
    await stage.start(bus)
    await stage.speak(SpeakRequest(LONG, reply_id="long"))
    await seen.wait_type(PLAYBACK_STARTED)  # the first sentence is out
    await bus.publish("tts", Event(TTS_STOP, metadata={"reply_id": "long", "reason": "barge_in"}))
    done = (await seen.wait_type(TTS_DONE))[0]
    stopped = (await seen.wait_type(PLAYBACK_DONE))[0]
    assert done.metadata["stopped"] == "1" and int(done.metadata["chunks"]) < 8
    assert stopped.metadata["stopped"] == "1" and stage.stopped == 1
    fmt, pcm = read_wav(stopped.metadata["path"])
    assert 0 < len(pcm) / 2 / fmt.sample_rate < 0.8 * 8 * 2.5  # less than the whole reply
    await stage.speak(SpeakRequest("Still talking.", reply_id="next"))  # the stage goes on
    await seen.wait_type(TTS_DONE, 2)
    assert seen.of(TTS_DONE)[1].metadata["stopped"] == "0"
    await stage.stop()
    await sink.stop()


async def test_queue_is_bounded(piper_engine, bus) -> None:
    stage = TtsStage(engine=piper_engine, max_queue=2)
    await stage.start(bus)
    await stage.stop()  # no worker: requests stay queued
    for n in range(4):
        await stage.speak(SpeakRequest(f"number {n}", reply_id=f"r{n}"))
    assert [r.reply_id for r in stage._queue] == ["r2", "r3"] and stage.dropped_requests == 2


async def test_a_failing_synthesis_is_reported(bus, collect) -> None:
    # The espeak engine running a program that fails: the real error path, on demand.
    engine = EspeakEngine(binary="false")
    seen = await collect(">", (TTS_ERROR, TTS_DONE, AUDIO_OUT))
    stage = TtsStage(engine=engine)
    await stage.start(bus)
    await stage.speak(SpeakRequest("hello", reply_id="r"))
    error = (await seen.wait_type(TTS_ERROR))[0]
    await seen.wait_type(TTS_DONE)
    assert (
        error.metadata["code"] == "TTS_SYNTH_ERROR" and "exited with 1" in error.metadata["message"]
    )
    assert seen.of(AUDIO_OUT)[-1].metadata["last"] == "1"  # sinks still close the reply
    assert stage.failures == 1
    await stage.speak(SpeakRequest("again", reply_id="r2"))  # and the stage goes on
    await seen.wait_type(TTS_DONE, 2)
    await stage.stop()


@pytest.mark.parametrize("voice", ["piper", "espeak"])
async def test_spoken_reply_transcribes_back(
    voice, piper_engine, espeak_engine, transcriber, tmp_path: Path, bus, collect
) -> None:
    text = "The children are playing in the garden. Call my mother after dinner."
    engine = piper_engine if voice == "piper" else espeak_engine
    seen = await collect(">", (PLAYBACK_DONE,))
    sink = WavSink(tmp_path)
    stage = TtsStage(engine=engine)
    await sink.start(bus)
    await stage.start(bus)
    await stage.speak(SpeakRequest(text))
    done = (await seen.wait_type(PLAYBACK_DONE))[0]
    fmt, pcm = read_wav(done.metadata["path"])
    heard = transcriber.transcribe(resample(pcm16_to_mono_float(pcm), fmt.sample_rate, RATE)).text
    assert corpus_word_error_rate([(text, heard)]) <= 0.2, heard
    assert os.path.basename(done.metadata["path"]) == "reply-001.wav"
    await stage.stop()
    await sink.stop()
