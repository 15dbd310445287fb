"""The audio frame: PCM s16le bytes in an :class:`~loom.Event`, its format in the metadata.

A frame event's payload is interleaved signed 16-bit little-endian PCM (upstream Loom's
``pcm_s16le``). Its metadata says how to read it:

========================  ===================================================================
key                       value
========================  ===================================================================
``sample_rate``           samples per second per channel, e.g. ``"16000"``
``channels``              ``"1"`` (mono) or more, interleaved
``encoding``              ``"pcm_s16le"`` (the only encoding)
``frame_samples``         samples per channel in this frame (``len(payload) / (2 * channels)``)
``frame_ms``              the frame's duration in ms
``seq``                   the frame's number in its stream, from 0
``source``                who produced it (``mic.primary``, a file name, ``tone``)
========================  ===================================================================

Stages add their own keys (``utterance_id``, ``voiced``, ``reply_id``, ...). This module
needs no numpy: it only reads and writes the bytes and the metadata.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from loom import Event
from loom_audio._errors import AudioFormatError

__all__ = [
    "ENCODING",
    "SAMPLE_WIDTH",
    "AudioFormat",
    "format_of",
    "frame_event",
]

#: The encoding of every frame: interleaved signed 16-bit little-endian PCM.
ENCODING: Final = "pcm_s16le"
#: Bytes per sample.
SAMPLE_WIDTH: Final = 2

_MIN_RATE, _MAX_RATE = 4000, 384_000
_MAX_CHANNELS = 32


@dataclass(frozen=True, slots=True)
class AudioFormat:
    """Sample rate and channel count of PCM s16le audio.

    Args:
        sample_rate: samples per second per channel (4,000 to 384,000).
        channels: interleaved channels (1 to 32).

    Raises:
        AudioFormatError: a value is out of range.

    Example:
        >>> AudioFormat(16000, 1).frame_samples(20)
        320
    """

    sample_rate: int = 16000
    channels: int = 1

    def __post_init__(self) -> None:
        rate, channels = self.sample_rate, self.channels
        if rate.__class__ is not int or not _MIN_RATE <= rate <= _MAX_RATE:
            raise AudioFormatError(
                f"sample rate {rate!r} is not an int in {_MIN_RATE}..{_MAX_RATE} Hz"
            )
        if channels.__class__ is not int or not 1 <= channels <= _MAX_CHANNELS:
            raise AudioFormatError(
                f"channel count {channels!r} is not an int in 1..{_MAX_CHANNELS}"
            )

    def __str__(self) -> str:
        layout = "mono" if self.channels == 1 else f"{self.channels} channels"
        return f"{self.sample_rate} Hz {layout}"

    @property
    def bytes_per_frame(self) -> int:
        """Bytes of one sample on every channel."""
        return SAMPLE_WIDTH * self.channels

    def frame_samples(self, frame_ms: float) -> int:
        """Samples per channel in ``frame_ms`` milliseconds (at least 1)."""
        return max(1, round(self.sample_rate * frame_ms / 1000))

    def samples_in(self, pcm: bytes | bytearray | memoryview) -> int:
        """Samples per channel in ``pcm``."""
        return len(pcm) // self.bytes_per_frame

    def duration_ms(self, pcm: bytes | bytearray | memoryview) -> float:
        """The duration of ``pcm`` in milliseconds."""
        return 1000.0 * self.samples_in(pcm) / self.sample_rate

    def metadata(self, frame_samples: int) -> dict[str, str]:
        """The format keys of a frame of ``frame_samples`` samples."""
        return {
            "sample_rate": str(self.sample_rate),
            "channels": str(self.channels),
            "encoding": ENCODING,
            "frame_samples": str(frame_samples),
            "frame_ms": _ms_text(1000.0 * frame_samples / self.sample_rate),
        }


def _ms_text(ms: float) -> str:
    return str(int(ms)) if ms == int(ms) else f"{ms:.3f}"


def frame_event(
    type: str,
    pcm: bytes,
    fmt: AudioFormat,
    *,
    source: str,
    seq: int,
    extra: Mapping[str, str] | None = None,
    priority: int = 90,
) -> Event:
    """A frame event: ``pcm`` as payload, the format and ``extra`` in the metadata.

    Args:
        type: the event type (``audio_chunk``, ``audio_voiced``, ``audio_out``).
        pcm: interleaved PCM s16le, a whole number of samples on every channel.
        fmt: its format.
        source: who produced it.
        seq: the frame's number in its stream.
        extra: more metadata keys.
        priority: the event's priority (upstream: 90 for the microphone, 80 voiced).

    Raises:
        AudioFormatError: ``pcm`` does not hold a whole number of samples.
    """
    if len(pcm) % fmt.bytes_per_frame:
        raise AudioFormatError(
            f"{len(pcm)} bytes are not a whole number of {fmt} s16le samples "
            f"({fmt.bytes_per_frame} bytes each)"
        )
    metadata = fmt.metadata(len(pcm) // fmt.bytes_per_frame)
    metadata["seq"] = str(seq)
    metadata["source"] = source
    if extra:
        metadata.update(extra)
    return Event(type, pcm, source=source, metadata=metadata, priority=priority)


def format_of(event: Event, where: str = "") -> AudioFormat:
    """The format a frame event declares, checked against its payload.

    Args:
        event: a frame event.
        where: the stage or topic reading it, for the error message.

    Raises:
        AudioFormatError: a format key is missing or unreadable, the encoding is not
            ``pcm_s16le``, or the payload is not a whole number of samples.
    """
    md = event.metadata
    place = f"frame {event.id} ({event.type})" + (f" at {where}" if where else "")
    encoding = md.get("encoding", ENCODING)
    if encoding != ENCODING:
        raise AudioFormatError(f"{place}: encoding {encoding!r} is not supported, only {ENCODING}")
    try:
        rate = int(md["sample_rate"])
        channels = int(md.get("channels", "1"))
    except KeyError:
        raise AudioFormatError(f"{place}: metadata has no sample_rate") from None
    except ValueError:
        raise AudioFormatError(
            f"{place}: sample_rate={md.get('sample_rate')!r} channels={md.get('channels')!r} "
            "are not integers"
        ) from None
    try:
        fmt = AudioFormat(rate, channels)
    except AudioFormatError as exc:
        raise AudioFormatError(f"{place}: {exc}") from None
    if len(event.payload) % fmt.bytes_per_frame:
        raise AudioFormatError(
            f"{place}: {len(event.payload)} payload bytes are not a whole number of "
            f"{fmt} s16le samples"
        )
    return fmt
