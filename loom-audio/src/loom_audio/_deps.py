"""Import guards for the optional dependencies, naming the extra or system package to install."""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path
from types import ModuleType

from loom_audio._errors import AudioDeviceError, MissingExtraError

__all__ = [
    "PORTAUDIO_HINT",
    "has_module",
    "import_faster_whisper",
    "import_piper",
    "import_sounddevice",
    "module_dir",
]

#: What to do when the PortAudio library is missing.
PORTAUDIO_HINT = (
    "the PortAudio library is not installed: on Debian/Ubuntu `apt-get install libportaudio2` "
    "(or run scripts/audio-deps.sh), on macOS `brew install portaudio`"
)


def has_module(name: str) -> bool:
    """Whether ``name`` can be imported, without importing it."""
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def module_dir(name: str) -> Path | None:
    """The directory of package ``name``, found without importing it; None if absent."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def import_sounddevice() -> ModuleType:
    """``sounddevice``, or an error saying what to install.

    Raises:
        MissingExtraError: the package is not installed (extra ``mic``).
        AudioDeviceError: the PortAudio system library is missing.
    """
    try:
        return importlib.import_module("sounddevice")
    except ImportError as exc:
        if exc.name == "sounddevice":
            raise MissingExtraError("mic", "sounddevice", "the microphone and speaker") from None
        raise
    except OSError as exc:  # sounddevice raises OSError when libportaudio is absent
        raise AudioDeviceError(f"no audio stack: {PORTAUDIO_HINT} ({exc})") from None


def import_faster_whisper() -> ModuleType:
    """``faster_whisper``, or an error naming the ``stt`` extra."""
    try:
        return importlib.import_module("faster_whisper")
    except ImportError as exc:
        if exc.name in ("faster_whisper", "ctranslate2"):
            raise MissingExtraError("stt", "faster-whisper", "speech to text") from None
        raise


def import_piper() -> ModuleType:
    """``piper``, or an error naming the ``tts`` extra."""
    try:
        return importlib.import_module("piper")
    except ImportError as exc:
        if exc.name in ("piper", "onnxruntime"):
            raise MissingExtraError("tts", "piper-tts", "piper text to speech") from None
        raise
