"""The VAD on real speech: Silero finds utterances; silence and noise are not speech."""

from __future__ import annotations

import asyncio
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

from loom import Event
from loom_audio import (
    AudioFormat,
    AudioModelError,
    EnergyVad,
    SileroVad,
    ToneSource,
    VadConfig,
    VadStage,
    WavFileSource,
    format_of,
    write_wav,
)
from loom_audio._names import AUDIO_VOICED, SPEECH_END, SPEECH_START
from loom_audio._pcm import float_to_pcm16
from loom_audio._vad import default_silero_path

from .conftest import RATE, need

pytestmark = pytest.mark.audio


@pytest.fixture(scope="module")
def silero_path() -> Path:
    need("onnxruntime", "stt")
    path = default_silero_path()
    if path is None:
        pytest.skip("needs faster-whisper's Silero model (pip install 'loom-audio[stt]')")
    return path


async def _run_vad(bus, collect, path: Path, config: VadConfig | None = None, pace: float = 0.0):
    seen = await collect(">", (SPEECH_START, SPEECH_END, AUDIO_VOICED))
    vad = VadStage(config)
    await vad.start(bus)
    source = WavFileSource(path, pace=pace, tail_silence_ms=800)
    await source.start(bus)
    await source.wait()
    await seen.wait_for(
        lambda: not vad.status()["in_speech"] and vad.windows > 0, what="the VAD to settle"
    )
    await vad.stop()
    return vad, seen


async def test_one_sentence_is_one_utterance(silero_path, speech_wav, bus, collect) -> None:
    path = speech_wav("Please turn on the lights in the kitchen.", lead_s=0.5)
    vad, seen = await _run_vad(bus, collect, path)
    on_vad = [e for t, e in seen.events if t == "vad"]
    assert [e.type for e in on_vad] == [SPEECH_START, SPEECH_END]
    on_voiced = [e for t, e in seen.events if t == "audio.voiced"]
    assert on_voiced[0].type == SPEECH_START and on_voiced[-1].type == SPEECH_END  # in order
    frames = [e for e in on_voiced if e.type == AUDIO_VOICED]
    assert all(format_of(f) == AudioFormat(16000, 1) and len(f.payload) == 1024 for f in frames)
    end = on_vad[1]
    assert (
        end.metadata["reason"] == "silence"
        and end.metadata["utterance_id"] == frames[0].metadata["utterance_id"]
    )
    duration = int(end.metadata["duration_ms"])
    assert 1400 < duration < 2600  # the sentence lasts about 1.9 s
    assert vad.detector.name == "silero" and vad.utterances == 1
    speech = sum(f.metadata["voiced"] == "1" for f in frames)
    assert speech * 32 > 0.6 * duration


async def test_silence_and_noise_are_not_speech(silero_path, tmp_path: Path, bus, collect) -> None:
    rng = np.random.default_rng(7)
    audio = np.concatenate([np.zeros(RATE), 0.05 * rng.standard_normal(3 * RATE), np.zeros(RATE)])
    path = write_wav(tmp_path / "noise.wav", float_to_pcm16(audio), AudioFormat(RATE, 1))
    vad, seen = await _run_vad(bus, collect, path)
    assert vad.utterances == 0 and seen.of(SPEECH_START) == []
    assert vad.windows > 100


async def test_hangover_decides_where_utterances_split(
    silero_path, speech_wav, bus, collect
) -> None:
    path = speech_wav("Call my mother after dinner.", "It is raining outside today.", gap_s=0.7)
    short, _ = await _run_vad(bus, collect, path, VadConfig(hangover_ms=300))
    long, _ = await _run_vad(bus, collect, path, VadConfig(hangover_ms=1200))
    assert (short.utterances, long.utterances) == (2, 1)


async def test_other_rates_and_stereo_are_resampled(
    silero_path, speak, tmp_path: Path, bus, collect
) -> None:
    from loom_audio._pcm import resample

    mono = resample(speak("Open the window in the living room."), RATE, 44100)
    stereo = np.repeat(np.concatenate([np.zeros(22050, np.float32), mono])[:, None], 2, axis=1)
    path = write_wav(tmp_path / "s.wav", float_to_pcm16(stereo), AudioFormat(44100, 2))
    seen = await collect(">", (SPEECH_START, SPEECH_END))
    vad = VadStage()
    await vad.start(bus)
    source = WavFileSource(
        path, target=None, pace=0, tail_silence_ms=800
    )  # frames stay 44.1k stereo
    await source.start(bus)
    await source.wait()
    await seen.wait_type(SPEECH_END, 2)  # published on both topics
    assert vad.utterances == 1
    await vad.stop()


async def test_bad_frames_are_skipped_and_reported_once(silero_path, bus, caplog) -> None:
    vad = VadStage()
    await vad.start(bus)
    with caplog.at_level(logging.ERROR, logger="loom_audio"):
        for _ in range(3):
            await bus.publish(
                "audio.mic", Event("audio_chunk", b"\0\0\0", metadata={"sample_rate": "16000"})
            )
        await bus.publish(
            "audio.mic", Event("audio_chunk", b"\0" * 640, metadata={"sample_rate": "x"})
        )
        source = ToneSource(amplitude=0.0, seconds=0.2, pace=0, name="after")
        await source.start(bus)
        await source.wait()
        while vad.windows < 6:  # 200 ms of silence: six 32 ms windows
            await asyncio.sleep(0.01)
    assert vad.bad_input == 4
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "not a whole number" in errors[0]  # once per source and minute
    assert vad.windows > 0  # and it went on
    await vad.stop()
    await source.stop()


async def test_a_corrupt_model_falls_back_to_energy_and_says_so(
    silero_path, tmp_path: Path, speech_wav, bus, collect, caplog
) -> None:
    corrupt = tmp_path / "silero.onnx"
    corrupt.write_bytes(silero_path.read_bytes()[:5000])
    with pytest.raises(AudioModelError, match=r"silero\.onnx does not load"):
        SileroVad(corrupt)
    with caplog.at_level(logging.WARNING, logger="loom_audio"):
        vad, _ = await _run_vad(
            bus, collect, speech_wav("My favorite color is green."), VadConfig(model=str(corrupt))
        )
    assert vad.detector.name == "energy" and vad.utterances == 1
    assert any("falling back to the energy detector" in r.getMessage() for r in caplog.records)
    strict = VadStage(VadConfig(model=str(corrupt), fallback=False))
    with pytest.raises(AudioModelError, match="does not load"):
        await strict.start(bus)
    assert not strict.running


def test_energy_detector_scores_levels() -> None:
    detector = EnergyVad(-30.0)
    loud = (0.3 * np.sin(np.arange(512) / 3)).astype(np.float32)
    assert detector(loud) == 1.0 and detector(np.zeros(512, np.float32)) == 0.0


def test_a_missing_model_names_the_path(tmp_path: Path) -> None:
    need("onnxruntime", "stt")
    with pytest.raises(AudioModelError, match=r"nope\.onnx"):
        SileroVad(tmp_path / "nope.onnx")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"threshold": 1.5}, "threshold"),
        ({"threshold": 0.5, "neg_threshold": 0.7}, "neg_threshold"),
        ({"hangover_ms": -1}, "hangover_ms"),
        ({"max_speech_s": 0}, "max_speech_s"),
        ({"detector": "webrtc"}, "detector"),
    ],
)
def test_bad_vad_config_is_refused(kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        VadConfig(**kwargs)


def test_model_file_is_copyable(silero_path, tmp_path: Path) -> None:
    copy = tmp_path / "copy.onnx"
    shutil.copy(silero_path, copy)
    model = SileroVad(copy)
    assert 0.0 <= model(np.zeros(512, np.float32)) < 0.5
