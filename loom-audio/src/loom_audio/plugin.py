"""The ``audio`` plugin: what loom-audio contributes to the Loom host through its hooks.

Loaded through the entry point ``audio`` in group ``loom``. It imports nothing heavy:
numpy, sounddevice, faster-whisper and piper load inside the factories it contributes.

- event sources: ``audio.mic`` (microphone), ``audio.wav`` (WAV file), ``audio.tone``;
- agent types: the pipeline stages ``audio.vad``, ``audio.stt``, ``audio.wake``,
  ``audio.tts``, ``audio.speaker``, ``audio.wav_sink``, and ``audio.voice_agent``;
- the capability ``tts.speak``;
- the command ``loom audio`` (``devices``, ``say``, ``transcribe``, ``voice``);
- bench scenarios ``audio.stt``, ``audio.tts``, ``audio.voice_turn`` and their baseline
  ``baseline.audio_bare``.
"""

from __future__ import annotations

from loom.contributions import AgentType, BenchScenario, Capability, CliCommand, EventSource, lazy
from loom.hookspecs import hookimpl

__all__: list[str] = []


@hookimpl
def loom_event_sources() -> list[EventSource]:
    return [
        EventSource(
            name="audio.mic",
            description="Microphone through PortAudio: PCM s16le frames (extra 'mic')",
            factory=lazy("loom_audio._mic", "MicrophoneSource"),
        ),
        EventSource(
            name="audio.tone",
            description="A sine tone (or silence) as frames, for tests and levels",
            factory=lazy("loom_audio._sources", "ToneSource"),
        ),
        EventSource(
            name="audio.wav",
            description="A WAV file as frames, resampled to the wanted format",
            factory=lazy("loom_audio._sources", "WavFileSource"),
        ),
    ]


@hookimpl
def loom_agent_types() -> list[AgentType]:
    stages = [
        ("audio.vad", "loom_audio._vad", "VadStage", "Voice activity detection (Silero VAD)"),
        (
            "audio.stt",
            "loom_audio._stt",
            "SttStage",
            "Speech to text, partial and final (faster-whisper)",
        ),
        ("audio.wake", "loom_audio._wake", "WakeStage", "Wake phrase on transcripts (fuzzy)"),
        ("audio.tts", "loom_audio._tts", "TtsStage", "Text to speech (piper, espeak-ng fallback)"),
        ("audio.speaker", "loom_audio._speaker", "SpeakerSink", "Plays reply audio (PortAudio)"),
        ("audio.wav_sink", "loom_audio._sinks", "WavSink", "Writes each reply to a WAV file"),
        (
            "audio.voice_agent",
            "loom_audio._agent",
            "VoiceAgent",
            "Answers queries by voice, with barge-in",
        ),
    ]
    return [
        AgentType(name=name, description=text, factory=lazy(module, attribute))
        for name, module, attribute, text in stages
    ]


@hookimpl
def loom_capabilities() -> list[Capability]:
    from loom_audio._capability import speak

    return [speak.contribution]


@hookimpl
def loom_cli_commands() -> list[CliCommand]:
    from loom_audio._cli import AUDIO_COMMAND

    return [AUDIO_COMMAND]


@hookimpl
def loom_bench_scenarios() -> list[BenchScenario]:
    baseline = "baseline.audio_bare"
    scenarios = [
        (
            baseline,
            "audio_bare",
            None,
            "bare faster-whisper on the 10 s clip, bare piper, and a turn's bare model work",
        ),
        ("audio.stt", "stt", baseline, "10 s clip: source -> VAD -> STT stage, real-time factor"),
        (
            "audio.tts",
            "tts",
            baseline,
            "TTS stage: speak request -> last audio chunk, real-time factor",
        ),
        (
            "audio.voice_turn",
            "voice_turn",
            baseline,
            "voice app in real time: end of speech -> first reply audio, ms",
        ),
    ]
    return [
        BenchScenario(
            name=name, description=text, run=lazy("loom_audio._bench", function), baseline=base
        )
        for name, function, base, text in scenarios
    ]
