"""Bench scenarios: ``audio.stt``, ``audio.tts``, ``audio.voice_turn``, and the bare libraries.

Models load once per process and are shared by every run (loading is not what is measured).
The speech is synthesised by piper, so the scenarios need the ``stt`` and ``tts`` extras.
``scale`` shortens the clip for smoke runs (below 1.0, fewer sentences).
"""

from __future__ import annotations

import asyncio
import io
import os
import statistics
import tempfile
import time
import wave
from typing import Any

import numpy as np

from loom import Event
from loom.bench import Figure
from loom.bus import MemoryBus
from loom_audio._format import AudioFormat
from loom_audio._names import AUDIO_OUT, PLAYBACK_STARTED, SPEECH_END, TRANSCRIPT_FINAL
from loom_audio._pcm import float_to_pcm16, pcm16_to_mono_float, resample
from loom_audio._wer import word_error_rate

__all__ = ["audio_bare", "stt", "tts", "voice_turn"]

#: The clip: five sentences of everyday speech, about ten seconds in piper's voice.
CLIP_SENTENCES = (
    "The weather today is sunny and warm.",
    "Please turn on the lights in the kitchen.",
    "I would like a cup of coffee with milk.",
    "The train leaves the station at noon.",
    "We will meet again tomorrow morning.",
)
CLIP_SECONDS = 10.0
#: What the TTS scenarios speak (about five seconds).
TTS_TEXT = "Good morning. The meeting starts at ten, in the small room on the second floor."
#: The voice turn's question and the first sentence of its answer's shape.
QUESTION = "Hey Loom, what time is it?"
ANSWER = "It is 10:42 AM."

_shared: dict[str, Any] = {}


def _engine() -> Any:
    if "engine" not in _shared:
        from loom_audio._tts_engines import PiperEngine

        _shared["engine"] = PiperEngine()
    return _shared["engine"]


def _transcriber() -> Any:
    if "stt" not in _shared:
        from loom_audio._whisper import WhisperTranscriber

        _shared["stt"] = WhisperTranscriber()
    return _shared["stt"]


def _speech(text: str) -> np.ndarray[Any, np.dtype[np.float32]]:
    """``text`` in piper's voice, mono float32 at 16 kHz."""
    engine = _engine()
    pcm = b"".join(engine.synthesize(text))
    return resample(pcm16_to_mono_float(pcm), engine.sample_rate, 16000)


def _clip(scale: float) -> tuple[np.ndarray[Any, np.dtype[np.float32]], str]:
    """The clip (padded with silence to its length) and its text."""
    seconds = CLIP_SECONDS * min(1.0, max(scale, 0.2))
    key = f"clip{seconds}"
    if key not in _shared:
        pieces: list[np.ndarray[Any, np.dtype[np.float32]]] = []
        said: list[str] = []
        gap = np.zeros(int(0.25 * 16000), dtype=np.float32)
        total = 0
        for sentence in CLIP_SENTENCES:
            audio = np.concatenate((_speech(sentence), gap))
            if pieces and total + audio.size > seconds * 16000:
                break
            pieces.append(audio)
            said.append(sentence)
            total += audio.size
        clip = np.concatenate(pieces)[: int(seconds * 16000)]
        clip = np.pad(clip, (0, int(seconds * 16000) - clip.size))
        _shared[key] = (clip, " ".join(said))
    clip, text = _shared[key]
    return clip, text


def _wav_file(name: str, audio: np.ndarray[Any, np.dtype[np.float32]]) -> str:
    key = f"wav:{name}"
    if key not in _shared:
        directory = _shared.setdefault("dir", tempfile.mkdtemp(prefix="loom-audio-bench-"))
        path = os.path.join(directory, f"{name}.wav")
        from loom_audio._wav import write_wav

        write_wav(path, float_to_pcm16(audio), AudioFormat(16000, 1))
        _shared[key] = path
    return str(_shared[key])


def _consume(segments: Any) -> str:
    return "".join(segment.text for segment in segments)


# -- the baseline --------------------------------------------------------------------------


async def audio_bare(scale: float) -> list[Figure]:
    """The bare libraries, on the same clip, text and models as the scenarios.

    Returns:
        ``stt_rtf``: faster-whisper's ``transcribe`` on the clip (beam 1, English, its VAD
        filter on), seconds per second of audio; ``tts_rtf``: piper's ``synthesize_wav`` of
        the TTS text; ``turn_model_ms``: the model work of one voice turn, done bare
        (transcribe the question, synthesise the answer).
    """
    clip, _ = await asyncio.to_thread(_clip, scale)
    question = await asyncio.to_thread(_speech, QUESTION)
    model = _transcriber()._model
    engine = _engine()

    def run() -> tuple[float, float, float]:
        # Piper first: right after Whisper, CTranslate2's idle worker threads still spin for
        # a moment and would slow onnxruntime down on a small machine.
        buffer = io.BytesIO()
        started = time.perf_counter()
        with wave.open(buffer, "wb") as writer:
            engine._voice.synthesize_wav(TTS_TEXT, writer)
        elapsed = time.perf_counter() - started
        buffer.seek(0)
        with wave.open(buffer, "rb") as reader:
            audio_s = reader.getnframes() / reader.getframerate()
        started = time.perf_counter()
        segments, _ = model.transcribe(clip, language="en", beam_size=1, vad_filter=True)
        _consume(segments)  # segments are lazy: the work happens while they are read
        stt_rtf = (time.perf_counter() - started) / (clip.size / 16000)
        started = time.perf_counter()
        segments, _ = model.transcribe(question, language="en", beam_size=1)
        _consume(segments)
        with wave.open(io.BytesIO(), "wb") as writer:
            engine._voice.synthesize_wav(ANSWER, writer)
        turn_ms = (time.perf_counter() - started) * 1000
        return stt_rtf, elapsed / audio_s, turn_ms

    stt_rtf, tts_rtf, turn_ms = await asyncio.to_thread(run)
    return [
        Figure("stt_rtf", stt_rtf, "s/s"),
        Figure("tts_rtf", tts_rtf, "s/s"),
        Figure("turn_model_ms", turn_ms, "ms"),
    ]


# -- audio.stt -------------------------------------------------------------------------------


async def stt(scale: float) -> list[Figure]:
    """WAV source (as fast as the bus takes it) -> VAD -> STT stage, on the clip.

    Returns:
        ``rtf``: first frame published to last final transcript, over the clip's duration;
        ``wer``: the transcripts against the clip's text; ``utterances``: how many the VAD
        found (each costs one model call).
    """
    from loom_audio._sources import WavFileSource
    from loom_audio._stt import SttStage
    from loom_audio._vad import VadStage
    from loom_audio._whisper import SttConfig

    clip, text = await asyncio.to_thread(_clip, scale)
    path = _wav_file(f"clip{clip.size}", clip)
    transcriber = await asyncio.to_thread(_transcriber)
    finals: list[Event] = []
    ends: list[Event] = []
    async with MemoryBus() as bus:
        await bus.subscribe(
            "transcript", handler=lambda t, e: finals.append(e), event_types=(TRANSCRIPT_FINAL,)
        )
        await bus.subscribe("vad", handler=lambda t, e: ends.append(e), event_types=(SPEECH_END,))
        stt_stage = SttStage(SttConfig(max_pending=16), transcriber=transcriber)
        vad = VadStage()
        source = WavFileSource(path, pace=0.0, tail_silence_ms=600)
        await stt_stage.start(bus)
        await vad.start(bus)
        started = time.perf_counter()
        await source.start(bus)
        await source.wait()
        while (
            len(finals) + stt_stage.empty + stt_stage.skipped_short < len(ends)
            or vad._utterance is not None
            or stt_stage._busy
            or stt_stage._queue
        ):
            await asyncio.sleep(0.005)
        elapsed = time.perf_counter() - started
        for stage in (source, vad, stt_stage):
            await stage.stop()
    heard = " ".join(e.metadata["text"] for e in finals)
    return [
        Figure("rtf", elapsed / (clip.size / 16000), "s/s"),
        Figure("wer", word_error_rate(text, heard), "ratio"),
        Figure("utterances", float(len(ends)), "count"),
    ]


# -- audio.tts -------------------------------------------------------------------------------


async def tts(scale: float) -> list[Figure]:
    """TTS stage (piper): speak request to the last ``audio_out`` chunk on the bus.

    Returns:
        ``rtf``: that time over the audio's duration; ``first_chunk_ms``: request to the
        first chunk.
    """
    from loom_audio._tts import SpeakRequest, TtsStage

    engine = await asyncio.to_thread(_engine)
    done = asyncio.Event()
    first: list[float] = []
    samples = 0

    def on_audio(topic: str, event: Event) -> None:
        nonlocal samples
        if event.payload and not first:
            first.append(time.perf_counter())
        samples += len(event.payload) // 2
        if event.metadata.get("last") == "1":
            done.set()

    async with MemoryBus() as bus:
        await bus.subscribe("audio.out", handler=on_audio, event_types=(AUDIO_OUT,))
        stage = TtsStage(engine=engine)
        await stage.start(bus)
        started = time.perf_counter()
        await stage.speak(SpeakRequest(TTS_TEXT))
        await done.wait()
        elapsed = time.perf_counter() - started
        await stage.stop()
    return [
        Figure("rtf", elapsed / (samples / engine.sample_rate), "s/s"),
        Figure("first_chunk_ms", (first[0] - started) * 1000, "ms"),
    ]


# -- audio.voice_turn ------------------------------------------------------------------------


async def voice_turn(scale: float) -> list[Figure]:
    """The voice app on a WAV source in real time: "Hey Loom, what time is it?".

    Returns:
        ``turn_ms``: the end of speech (the VAD's last voiced window) to the first reply
        audio at the sink (``playback.started``); ``stt_ms``, ``decide_ms`` and
        ``tts_first_chunk_ms``: the stages' parts of it; ``hangover_ms``: the silence the
        VAD waits for before it calls the speech ended (the turn includes it, and the STT
        works during it).
    """
    from loom_audio._app import VoiceApp
    from loom_audio._config import SinkConfig, SourceConfig, VoiceConfig
    from loom_audio._responder import LocalResponder
    from loom_audio._wake import WakeConfig

    question = await asyncio.to_thread(_speech, QUESTION)
    path = _wav_file("question", question)
    engine = await asyncio.to_thread(_engine)
    transcriber = await asyncio.to_thread(_transcriber)
    turns = max(1, round(2 * min(scale, 1.0)))
    results: dict[str, list[float]] = {k: [] for k in ("turn", "stt", "decide", "tts")}
    with tempfile.TemporaryDirectory(prefix="loom-audio-turn-") as out:
        for _ in range(turns):
            config = VoiceConfig(
                source=SourceConfig(kind="wav", path=path, pace=1.0, tail_silence_ms=1200),
                sink=SinkConfig(speaker=False, wav_dir=out),
                wake=WakeConfig(phrases=()),  # the turn is measured, not the wake phrase
            )
            seen: dict[str, Event] = {}

            def keep(topic: str, event: Event, seen: dict[str, Event] = seen) -> None:
                seen.setdefault(event.type, event)

            bus = MemoryBus()
            async with bus:
                await bus.subscribe(
                    ">",
                    handler=keep,
                    event_types=(PLAYBACK_STARTED, TRANSCRIPT_FINAL, "voice.reply", "tts.done"),
                )
                async with VoiceApp(
                    config,
                    bus=bus,
                    responder=LocalResponder(),
                    transcriber=transcriber,
                    tts_engine=engine,
                ) as app:
                    await app.run(until_source_ends=True)
            started = seen.get(PLAYBACK_STARTED)
            if started is None:
                heard = seen.get(TRANSCRIPT_FINAL)
                raise RuntimeError(
                    f"no reply was played; events seen: {sorted(seen)}; heard: "
                    f"{heard.metadata.get('text') if heard else None!r}"
                )
            first_ns = int(started.metadata["first_audio_ns"])
            end_ns = int(started.metadata["last_voiced_ns"])
            results["turn"].append((first_ns - end_ns) / 1e6)
            results["stt"].append(float(seen[TRANSCRIPT_FINAL].metadata["stt_ms"]))
            results["decide"].append(float(seen["voice.reply"].metadata["decide_ms"]))
            results["tts"].append(float(seen["tts.done"].metadata["first_chunk_ms"]))
    hangover = float(VoiceConfig().vad.hangover_ms)
    return [
        Figure("turn_ms", statistics.median(results["turn"]), "ms"),
        Figure("stt_ms", statistics.median(results["stt"]), "ms"),
        Figure("decide_ms", statistics.median(results["decide"]), "ms"),
        Figure("tts_first_chunk_ms", statistics.median(results["tts"]), "ms"),
        Figure("hangover_ms", hangover, "ms"),
    ]
