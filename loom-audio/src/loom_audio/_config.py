"""The voice app's configuration: dataclasses with defaults, read from TOML with clear errors."""

from __future__ import annotations

import dataclasses
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from loom_audio._names import AudioTopics
from loom_audio._tts_engines import TtsConfig
from loom_audio._vad import VadConfig
from loom_audio._wake import WakeConfig
from loom_audio._whisper import SttConfig

__all__ = ["AgentConfig", "SinkConfig", "SourceConfig", "VoiceConfig", "VoiceConfigError"]

T = TypeVar("T")


class VoiceConfigError(ValueError):
    """A voice app configuration is invalid.

    The message names the file, the key and what is expected.
    """


@dataclass(frozen=True, slots=True)
class SourceConfig:
    """Where the voice app listens.

    Attributes:
        kind: ``"mic"``, ``"wav"`` or ``"tone"``.
        device: the microphone (index or name substring); None is the default input.
        path: the WAV file, for ``kind = "wav"``.
        pace: 1.0 feeds a file in real time, 0 as fast as possible.
        sample_rate: the rate frames are published at.
        frame_ms: the frame duration.
        lead_silence_ms: silence before a file.
        tail_silence_ms: silence after a file, so the VAD sees the speech end.
    """

    kind: str = "mic"
    device: str | None = None
    path: str | None = None
    pace: float = 1.0
    sample_rate: int = 16000
    frame_ms: float = 20.0
    lead_silence_ms: float = 300.0
    tail_silence_ms: float = 1500.0

    def __post_init__(self) -> None:
        if self.kind not in ("mic", "wav", "tone"):
            raise ValueError(f"source.kind must be 'mic', 'wav' or 'tone', got {self.kind!r}")
        if self.kind == "wav" and not self.path:
            raise ValueError("source.path is needed when source.kind is 'wav'")


@dataclass(frozen=True, slots=True)
class SinkConfig:
    """Where replies go.

    Attributes:
        speaker: play them on an output device.
        device: the output device (index or name substring); None is the default.
        wav_dir: also write each reply to a WAV file in this directory.
    """

    speaker: bool = True
    device: str | None = None
    wav_dir: str | None = None


@dataclass(frozen=True, slots=True)
class AgentConfig:
    """The voice agent.

    Attributes:
        responder: ``"auto"`` (the model router when one is configured, else local),
            ``"local"`` (deterministic: time, echo, capabilities) or ``"router"``.
        barge_in: stop talking when the user speaks.
        timeout_s: how long deciding an answer may take.
    """

    responder: str = "auto"
    barge_in: bool = True
    timeout_s: float = 10.0

    def __post_init__(self) -> None:
        if self.responder not in ("auto", "local", "router"):
            raise ValueError(
                f"agent.responder must be 'auto', 'local' or 'router', got {self.responder!r}"
            )


@dataclass(frozen=True, slots=True)
class VoiceConfig:
    """Everything the voice app needs; every part has a default.

    A TOML file has one table per part::

        [source]
        kind = "mic"
        [vad]
        hangover_ms = 500
        [stt]
        model = "tiny.en"        # or a directory; default: the installed tiny.en
        [wake]
        phrases = ["hey loom", "loom"]
        [tts]
        voice = "en_US-joe-medium"
        [sink]
        speaker = true
        wav_dir = "replies"
        [agent]
        responder = "auto"
        [topics]
        mic = "audio.mic"
    """

    source: SourceConfig = field(default_factory=SourceConfig)
    vad: VadConfig = field(default_factory=VadConfig)
    stt: SttConfig = field(default_factory=SttConfig)
    wake: WakeConfig = field(default_factory=WakeConfig)
    tts: TtsConfig = field(default_factory=TtsConfig)
    sink: SinkConfig = field(default_factory=SinkConfig)
    agent: AgentConfig = field(default_factory=AgentConfig)
    topics: AudioTopics = field(default_factory=AudioTopics)

    @classmethod
    def from_toml(cls, path: str | os.PathLike[str]) -> VoiceConfig:
        """Read a TOML file.

        Raises:
            VoiceConfigError: the file is missing, not TOML, or holds an unknown table or
                key, a value of the wrong type, or one out of range.
        """
        where = os.fspath(path)
        try:
            with open(where, "rb") as file:
                data = tomllib.load(file)
        except FileNotFoundError:
            raise VoiceConfigError(f"{where}: no such file") from None
        except tomllib.TOMLDecodeError as exc:
            raise VoiceConfigError(f"{where}: not valid TOML: {exc}") from None
        return cls.from_mapping(data, where=where)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, where: str = "config") -> VoiceConfig:
        """Build from a mapping of tables (as TOML gives it).

        Raises:
            VoiceConfigError: as :meth:`from_toml`.
        """
        hints = typing.get_type_hints(cls)
        parts: dict[str, Any] = {}
        for table, values in data.items():
            if table not in hints:
                raise VoiceConfigError(
                    f"{where}: unknown table [{table}]; known: {', '.join(sorted(hints))}"
                )
            if not isinstance(values, Mapping):
                raise VoiceConfigError(
                    f"{where}: [{table}] must be a table, not {type(values).__name__}"
                )
            parts[table] = _build(hints[table], values, f"{where}: [{table}]")
        return cls(**parts)


def _build(kind: type[T], values: Mapping[str, Any], where: str) -> T:
    hints = typing.get_type_hints(kind)
    names = {f.name for f in dataclasses.fields(kind)}  # type: ignore[arg-type]
    arguments: dict[str, Any] = {}
    for key, value in values.items():
        if key not in names:
            raise VoiceConfigError(f"{where} has no key {key!r}; known: {', '.join(sorted(names))}")
        arguments[key] = _coerce(hints[key], value, f"{where} {key}")
    try:
        return kind(**arguments)
    except ValueError as exc:
        raise VoiceConfigError(f"{where}: {exc}") from None


def _coerce(hint: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    if origin in (types.UnionType, typing.Union):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _coerce(option, value, where)
            except VoiceConfigError as exc:
                errors.append(str(exc))
        raise VoiceConfigError(errors[0] if errors else f"{where}: unexpected {value!r}")
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise VoiceConfigError(f"{where} must be a list, not {type(value).__name__} {value!r}")
        item = typing.get_args(hint)[0]
        return tuple(_coerce(item, v, where) for v in value)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is str and isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    if isinstance(hint, type) and not isinstance(value, hint):
        raise VoiceConfigError(
            f"{where} must be {hint.__name__}, not {type(value).__name__} {value!r}"
        )
    if hint is int and isinstance(value, bool):
        raise VoiceConfigError(f"{where} must be int, not bool {value!r}")
    return value
