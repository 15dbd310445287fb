"""PCM conversions and resampling (numpy and soxr)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import soxr  # type: ignore[import-untyped]  # soxr ships no type hints

from loom_audio._format import AudioFormat

if TYPE_CHECKING:
    from numpy.typing import NDArray

__all__ = [
    "StreamConverter",
    "float_to_pcm16",
    "pcm16_to_float",
    "pcm16_to_mono_float",
    "resample",
    "rms_dbfs",
]

_SCALE = 32768.0


def pcm16_to_float(pcm: bytes | bytearray | memoryview, channels: int = 1) -> NDArray[np.float32]:
    """Interleaved PCM s16le as float32 in [-1, 1), shape ``(samples, channels)``."""
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / _SCALE
    return samples.reshape(-1, channels)


def pcm16_to_mono_float(
    pcm: bytes | bytearray | memoryview, channels: int = 1
) -> NDArray[np.float32]:
    """Interleaved PCM s16le as mono float32 (channels averaged), shape ``(samples,)``."""
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / _SCALE
    if channels == 1:
        return samples
    return np.asarray(samples.reshape(-1, channels).mean(axis=1), dtype=np.float32)


def float_to_pcm16(samples: NDArray[np.floating]) -> bytes:
    """Float samples (clipped to [-1, 1]) as PCM s16le; 2-D arrays are interleaved."""
    scaled = np.clip(samples, -1.0, 1.0) * 32767.0
    return bytes(np.round(scaled).astype("<i2").tobytes())


def resample(samples: NDArray[np.float32], from_rate: int, to_rate: int) -> NDArray[np.float32]:
    """Resample mono or ``(samples, channels)`` float32 audio with soxr (high quality)."""
    if from_rate == to_rate:
        return samples
    return np.asarray(soxr.resample(samples, from_rate, to_rate), dtype=np.float32)


def rms_dbfs(samples: NDArray[np.float32]) -> float:
    """The RMS level in dB below full scale (-120 for digital silence)."""
    if samples.size == 0:
        return -120.0
    rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))
    return max(-120.0, 20.0 * float(np.log10(rms + 1e-12)))


class StreamConverter:
    """Converts a stream of PCM s16le chunks to mono float32 at one target rate.

    Keeps a soxr resampling stream across chunks, so chunk boundaries leave no clicks; a
    change of input format starts a new stream.

    Args:
        target_rate: the output rate.
    """

    def __init__(self, target_rate: int) -> None:
        self.target_rate = target_rate
        self._format: AudioFormat | None = None
        self._stream: soxr.ResampleStream | None = None

    @property
    def input_format(self) -> AudioFormat | None:
        """The format of the last chunk, or None before the first."""
        return self._format

    def convert(self, pcm: bytes, fmt: AudioFormat) -> NDArray[np.float32]:
        """The chunk as mono float32 at the target rate (possibly fewer samples at first:
        the resampler holds a few back until the next chunk)."""
        if fmt != self._format:
            self._format = fmt
            self._stream = (
                None
                if fmt.sample_rate == self.target_rate
                else soxr.ResampleStream(fmt.sample_rate, self.target_rate, 1, dtype="float32")
            )
        mono = pcm16_to_mono_float(pcm, fmt.channels)
        if self._stream is None:
            return mono
        return np.asarray(self._stream.resample_chunk(mono), dtype=np.float32)
