"""Errors raised by loom-audio; each also derives from the builtin it resembles."""

from __future__ import annotations

from loom.errors import LoomError

__all__ = [
    "AudioDeviceError",
    "AudioError",
    "AudioFormatError",
    "AudioModelError",
    "MissingExtraError",
]


class AudioError(LoomError):
    """Root of every error loom-audio raises."""


class AudioFormatError(AudioError, ValueError):
    """Audio is not in a format a stage can take (wrong rate, channels, encoding, a bad WAV).

    The message names the file or event and what was expected.
    """


class AudioDeviceError(AudioError, OSError):
    """No audio stack (PortAudio missing), no such device, or a device that went away."""


class AudioModelError(AudioError, RuntimeError):
    """A model (Whisper, Piper voice, Silero VAD) could not be found or loaded.

    Attributes:
        model: the name or path that was asked for.
    """

    def __init__(self, model: str, message: str) -> None:
        self.model = model
        super().__init__(message)


class MissingExtraError(AudioError, ImportError):
    """An optional dependency is not installed; the message names the extra to install.

    Attributes:
        extra: the loom-audio extra that provides it (``stt``, ``tts`` or ``mic``).
    """

    def __init__(self, extra: str, module: str, purpose: str) -> None:
        self.extra = extra
        super().__init__(
            f"{purpose} needs the Python package {module!r}, which is not installed: "
            f"pip install 'loom-audio[{extra}]'",
            name=module,
        )
