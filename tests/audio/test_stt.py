"""Speech to text on real speech (piper and espeak-ng voices) through source -> VAD -> STT."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

from loom_audio import (
    AudioFormat,
    AudioModelError,
    SttConfig,
    SttStage,
    VadStage,
    WavFileSource,
    WhisperTranscriber,
    corpus_word_error_rate,
    write_wav,
)
from loom_audio._names import SPEECH_END, TRANSCRIPT_FINAL, TRANSCRIPT_PARTIAL
from loom_audio._pcm import float_to_pcm16

from .conftest import RATE, WER_SENTENCES

pytestmark = pytest.mark.audio


async def _pipeline(bus, collect, path: Path, stt: SttStage, *, pace: float = 0.0, utterances: int):
    seen = await collect(">", (SPEECH_END, TRANSCRIPT_FINAL, TRANSCRIPT_PARTIAL))
    vad = VadStage()
    await stt.start(bus)
    await vad.start(bus)
    source = WavFileSource(path, pace=pace, tail_silence_ms=900)
    await source.start(bus)
    await source.wait()
    await seen.wait_for(
        lambda: (
            len(seen.of(SPEECH_END)) >= 2 * utterances
            and stt.finals + stt.empty + stt.skipped_short >= utterances
            and not stt.status()["dropped_utterances"] < 0
        ),
        timeout=90,
        what=f"{utterances} transcripts",
    )
    for stage in (source, vad, stt):
        await stage.stop()
    return seen


@pytest.mark.parametrize("voice", ["piper", "espeak"])
async def test_word_error_rate_on_the_fixed_sentences(
    voice, transcriber, speech_wav, bus, collect
) -> None:
    path = speech_wav(*WER_SENTENCES, voice=voice, gap_s=1.0)
    stt = SttStage(SttConfig(max_pending=len(WER_SENTENCES)), transcriber=transcriber)
    seen = await _pipeline(bus, collect, path, stt, utterances=len(WER_SENTENCES))
    heard = [e.metadata["text"] for e in seen.of(TRANSCRIPT_FINAL)]
    assert len(heard) == len(WER_SENTENCES), heard  # one transcript per sentence, in order
    wer = corpus_word_error_rate(zip(WER_SENTENCES, heard, strict=True))
    print(f"{voice}: word error rate {wer:.3f}")
    assert wer <= 0.20, list(zip(WER_SENTENCES, heard, strict=True))
    final = seen.of(TRANSCRIPT_FINAL)[0]
    assert final.payload.decode() == final.metadata["text"]
    assert final.metadata["language"] == "en" and final.metadata["sample_rate"] == "16000"
    assert int(final.metadata["duration_ms"]) > 1000 and final.priority == 70
    assert stt.dropped == 0 and stt.dropped_utterances == 0


async def test_partial_transcripts_while_speech_goes_on(
    transcriber, speech_wav, bus, collect
) -> None:
    text = "The weather today is sunny and warm. Please turn on the lights in the kitchen."
    path = speech_wav(text)
    stt = SttStage(SttConfig(partial_interval_ms=800), transcriber=transcriber)
    seen = await _pipeline(bus, collect, path, stt, pace=1.0, utterances=1)  # in real time
    partials = seen.of(TRANSCRIPT_PARTIAL)
    assert partials, "no partial transcript while speaking"
    final = seen.of(TRANSCRIPT_FINAL)[0]
    assert seen.events.index(("transcript", partials[0])) < seen.events.index(("transcript", final))
    assert partials[0].metadata["utterance_id"] == final.metadata["utterance_id"]
    assert corpus_word_error_rate([(text, final.metadata["text"])]) <= 0.2


async def test_language_detection_and_beam_are_configurable(transcriber, speak) -> None:
    audio = speak("I would like a cup of coffee with milk.")
    detected = transcriber.transcribe(audio, SttConfig(language=None, beam_size=3))
    assert detected.language == "en"
    assert (
        corpus_word_error_rate([("I would like a cup of coffee with milk.", detected.text)]) <= 0.2
    )


async def test_short_utterances_silence_and_noise_give_no_transcript(
    transcriber, tmp_path: Path, bus, collect
) -> None:
    rng = np.random.default_rng(3)
    t = np.arange(int(0.12 * RATE)) / RATE
    blip = 0.5 * np.sin(2 * np.pi * 300 * t) * np.hanning(t.size)  # 120 ms: too short for words
    audio = np.concatenate(
        [np.zeros(RATE), blip, np.zeros(RATE), 0.03 * rng.standard_normal(2 * RATE), np.zeros(RATE)]
    )
    path = write_wav(tmp_path / "no-words.wav", float_to_pcm16(audio), AudioFormat(RATE, 1))
    stt = SttStage(transcriber=transcriber)
    seen = await collect(">", (TRANSCRIPT_FINAL,))
    vad = VadStage()
    await stt.start(bus)
    await vad.start(bus)
    source = WavFileSource(path, pace=0, tail_silence_ms=900)
    await source.start(bus)
    await source.wait()
    await seen.wait_for(
        lambda: not vad.status()["in_speech"] and not stt._busy and not stt._queue, what="quiet"
    )
    assert seen.of(TRANSCRIPT_FINAL) == []
    for stage in (source, vad, stt):
        await stage.stop()


@pytest.fixture
def corrupt_model(tmp_path: Path) -> Path:
    from loom_audio._whisper import resolve_whisper_model

    copy = tmp_path / "tiny-corrupt"
    shutil.copytree(resolve_whisper_model(None), copy)
    (copy / "model.bin").write_bytes(b"\x00garbage" * 1000)
    return copy


async def test_a_corrupt_model_is_logged_and_the_pipeline_goes_on(
    transcriber, corrupt_model: Path, speech_wav, bus, collect, caplog
) -> None:
    with pytest.raises(AudioModelError, match=str(corrupt_model)):
        WhisperTranscriber(SttConfig(model=str(corrupt_model)))
    with caplog.at_level(logging.ERROR, logger="loom_audio"):
        stt = SttStage(SttConfig(model=str(corrupt_model)))
        seen = await collect(">", (SPEECH_END, TRANSCRIPT_FINAL))
        vad = VadStage()
        await stt.start(bus)
        await vad.start(bus)
        source = WavFileSource(
            speech_wav("Call my mother after dinner."), pace=0, tail_silence_ms=900
        )
        await source.start(bus)
        await source.wait()
        await seen.wait_type(SPEECH_END, 2)  # the VAD still works
    assert stt.transcriber is None and "does not load" in stt.load_error
    assert seen.of(TRANSCRIPT_FINAL) == []
    assert any("utterances will not be transcribed" in r.getMessage() for r in caplog.records)
    strict = SttStage(SttConfig(model=str(corrupt_model), strict=True))
    with pytest.raises(AudioModelError):
        await strict.start(bus)
    for stage in (source, vad, stt):
        await stage.stop()


def test_model_by_path_that_is_missing_is_named(transcriber, tmp_path: Path) -> None:
    missing = tmp_path / "no-model-here"
    with pytest.raises(AudioModelError, match=f"no Whisper model directory at {missing}"):
        WhisperTranscriber(SttConfig(model=str(missing)))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"beam_size": 0}, "beam_size"),
        ({"device": "tpu"}, "device"),
        ({"max_pending": 0}, "max_pending"),
    ],
)
def test_bad_stt_config_is_refused(kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        SttConfig(**kwargs)
