"""The ``tts.speak`` capability: speak text on the default speaker, or into a WAV file."""

from __future__ import annotations

import logging
import threading
import time

from typing_extensions import TypedDict

from loom.actions import CapabilityError, ErrorCode, capability
from loom_audio._errors import AudioError

__all__ = ["SpeakOutput", "speak"]

log = logging.getLogger("loom_audio")

_engines: dict[tuple[str, str | None], object] = {}
_lock = threading.Lock()


class SpeakOutput(TypedDict):
    """What ``tts.speak`` did."""

    engine: str
    voice: str
    sample_rate: int
    audio_ms: int
    synthesis_ms: int
    played: bool
    wav_path: str | None


def _engine(engine: str, voice: str | None) -> object:
    from loom_audio._tts_engines import TtsConfig, load_tts_engine

    key = (engine, voice)
    with _lock:
        loaded = _engines.get(key)
        if loaded is None:
            loaded = _engines[key] = load_tts_engine(TtsConfig(engine=engine, voice=voice))
        return loaded


@capability(
    "tts.speak",
    version="0.1.0",
    description="Speak text: play it on the default speaker, or write it to a WAV file.",
)
def speak(
    text: str,
    voice: str | None = None,
    rate: float = 1.0,
    wav_path: str | None = None,
    engine: str = "auto",
) -> SpeakOutput:
    """Speak ``text`` with piper (espeak-ng when piper or its voice is missing).

    Args:
        text: what to say; empty says nothing.
        voice: a piper voice name or ``.onnx`` path (default: en_US-joe-medium).
        rate: speaking rate, 0.5..2.0.
        wav_path: write the speech here instead of playing it.
        engine: ``auto``, ``piper``, ``espeak-ng`` or ``none``.
    """
    from loom_audio._format import AudioFormat
    from loom_audio._tts_engines import TtsEngine, clamp_rate
    from loom_audio._wav import write_wav

    try:
        tts: TtsEngine = _engine(engine, voice)  # type: ignore[assignment]  # built by load_tts_engine
        started = time.perf_counter()
        pcm = b"".join(tts.synthesize(text, rate=clamp_rate(rate))) if text.strip() else b""
        synthesis_ms = round((time.perf_counter() - started) * 1000)
        fmt = AudioFormat(tts.sample_rate, 1)
        played = False
        if wav_path is not None:
            write_wav(wav_path, pcm, fmt)
        elif pcm:
            _play(pcm, fmt.sample_rate)
            played = True
    except (AudioError, ValueError) as exc:
        raise CapabilityError(ErrorCode.CAPABILITY_ERROR, str(exc)) from None
    return SpeakOutput(
        engine=tts.name,
        voice=tts.voice,
        sample_rate=fmt.sample_rate,
        audio_ms=round(1000 * len(pcm) / 2 / fmt.sample_rate),
        synthesis_ms=synthesis_ms,
        played=played,
        wav_path=wav_path,
    )


def _play(pcm: bytes, sample_rate: int) -> None:
    import numpy as np

    from loom_audio._deps import import_sounddevice
    from loom_audio._devices import find_device

    sd = import_sounddevice()
    device = find_device(None, kind="output")
    samples = np.frombuffer(pcm, dtype="<i2")
    sd.play(samples, samplerate=sample_rate, device=device.index, blocking=True)
