"""Audio for Loom: microphone, VAD, speech to text, wake phrase, text to speech.

Stages are bus participants; audio travels as events of PCM s16le frames (see
:mod:`loom_audio._format` and ``docs/audio.md``). Importing this package is light: the
names below load their modules (and numpy, the models, PortAudio) on first use.

Example:
    .. code-block:: python

        from loom_audio import SinkConfig, SourceConfig, VoiceApp, VoiceConfig

        config = VoiceConfig(
            source=SourceConfig(kind="wav", path="question.wav"),
            sink=SinkConfig(speaker=False, wav_dir="replies"),
        )
        async with VoiceApp(config) as app:
            await app.run(until_source_ends=True)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from loom_audio._agent import VoiceAgent
    from loom_audio._app import VoiceApp, make_responder
    from loom_audio._config import (
        AgentConfig,
        SinkConfig,
        SourceConfig,
        VoiceConfig,
        VoiceConfigError,
    )
    from loom_audio._devices import DeviceInfo, find_device, list_devices, rescan_devices
    from loom_audio._errors import (
        AudioDeviceError,
        AudioError,
        AudioFormatError,
        AudioModelError,
        MissingExtraError,
    )
    from loom_audio._format import ENCODING, AudioFormat, format_of, frame_event
    from loom_audio._mic import MicrophoneSource
    from loom_audio._names import AudioTopics
    from loom_audio._pcm import StreamConverter
    from loom_audio._responder import LocalResponder, Responder
    from loom_audio._router import LocalResponderModel, RouterResponder, router_responder
    from loom_audio._sinks import AudioSink, WavSink
    from loom_audio._sources import AudioSource, ToneSource, WavFileSource
    from loom_audio._speaker import SpeakerSink
    from loom_audio._stage import Stage
    from loom_audio._stt import SttStage
    from loom_audio._tts import SpeakRequest, TtsStage
    from loom_audio._tts_engines import (
        EspeakEngine,
        NoEngine,
        PiperEngine,
        TtsConfig,
        TtsEngine,
        load_tts_engine,
    )
    from loom_audio._vad import EnergyVad, SileroVad, VadConfig, VadStage
    from loom_audio._wake import WakeConfig, WakeMatch, WakeMatcher, WakeStage
    from loom_audio._wav import conform, read_wav, write_wav
    from loom_audio._wer import corpus_word_error_rate, normalize_transcript, word_error_rate
    from loom_audio._whisper import SttConfig, Transcript, WhisperTranscriber

__all__ = [
    "ENCODING",
    "AgentConfig",
    "AudioDeviceError",
    "AudioError",
    "AudioFormat",
    "AudioFormatError",
    "AudioModelError",
    "AudioSink",
    "AudioSource",
    "AudioTopics",
    "DeviceInfo",
    "EnergyVad",
    "EspeakEngine",
    "LocalResponder",
    "LocalResponderModel",
    "MicrophoneSource",
    "MissingExtraError",
    "NoEngine",
    "PiperEngine",
    "Responder",
    "RouterResponder",
    "SileroVad",
    "SinkConfig",
    "SourceConfig",
    "SpeakRequest",
    "SpeakerSink",
    "Stage",
    "StreamConverter",
    "SttConfig",
    "SttStage",
    "ToneSource",
    "Transcript",
    "TtsConfig",
    "TtsEngine",
    "TtsStage",
    "VadConfig",
    "VadStage",
    "VoiceAgent",
    "VoiceApp",
    "VoiceConfig",
    "VoiceConfigError",
    "WakeConfig",
    "WakeMatch",
    "WakeMatcher",
    "WakeStage",
    "WavFileSource",
    "WavSink",
    "WhisperTranscriber",
    "conform",
    "corpus_word_error_rate",
    "find_device",
    "format_of",
    "frame_event",
    "list_devices",
    "load_tts_engine",
    "make_responder",
    "normalize_transcript",
    "read_wav",
    "rescan_devices",
    "router_responder",
    "word_error_rate",
    "write_wav",
]

_MODULES = {
    "VoiceAgent": "_agent",
    "VoiceApp": "_app",
    "make_responder": "_app",
    "AgentConfig": "_config",
    "SinkConfig": "_config",
    "SourceConfig": "_config",
    "VoiceConfig": "_config",
    "VoiceConfigError": "_config",
    "DeviceInfo": "_devices",
    "find_device": "_devices",
    "list_devices": "_devices",
    "rescan_devices": "_devices",
    "AudioDeviceError": "_errors",
    "AudioError": "_errors",
    "AudioFormatError": "_errors",
    "AudioModelError": "_errors",
    "MissingExtraError": "_errors",
    "ENCODING": "_format",
    "AudioFormat": "_format",
    "format_of": "_format",
    "frame_event": "_format",
    "MicrophoneSource": "_mic",
    "AudioTopics": "_names",
    "StreamConverter": "_pcm",
    "LocalResponder": "_responder",
    "Responder": "_responder",
    "LocalResponderModel": "_router",
    "RouterResponder": "_router",
    "router_responder": "_router",
    "AudioSink": "_sinks",
    "WavSink": "_sinks",
    "AudioSource": "_sources",
    "ToneSource": "_sources",
    "WavFileSource": "_sources",
    "SpeakerSink": "_speaker",
    "Stage": "_stage",
    "SttStage": "_stt",
    "SpeakRequest": "_tts",
    "TtsStage": "_tts",
    "EspeakEngine": "_tts_engines",
    "NoEngine": "_tts_engines",
    "PiperEngine": "_tts_engines",
    "TtsConfig": "_tts_engines",
    "TtsEngine": "_tts_engines",
    "load_tts_engine": "_tts_engines",
    "EnergyVad": "_vad",
    "SileroVad": "_vad",
    "VadConfig": "_vad",
    "VadStage": "_vad",
    "WakeConfig": "_wake",
    "WakeMatch": "_wake",
    "WakeMatcher": "_wake",
    "WakeStage": "_wake",
    "conform": "_wav",
    "read_wav": "_wav",
    "write_wav": "_wav",
    "corpus_word_error_rate": "_wer",
    "normalize_transcript": "_wer",
    "word_error_rate": "_wer",
    "SttConfig": "_whisper",
    "Transcript": "_whisper",
    "WhisperTranscriber": "_whisper",
}


def __getattr__(name: str) -> Any:
    module = _MODULES.get(name)
    if module is None:
        raise AttributeError(f"module 'loom_audio' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"loom_audio.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
