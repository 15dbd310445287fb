"""Reading and writing WAV files, with clear errors for what cannot be read."""

from __future__ import annotations

import os
import wave
from pathlib import Path

import numpy as np

from loom_audio._errors import AudioFormatError
from loom_audio._format import SAMPLE_WIDTH, AudioFormat
from loom_audio._pcm import float_to_pcm16, pcm16_to_float, resample

__all__ = ["conform", "read_wav", "write_wav"]

_CONVERT_HINT = "convert it, e.g. `sox in.wav -b 16 -e signed-integer out.wav`"


def read_wav(path: str | os.PathLike[str]) -> tuple[AudioFormat, bytes]:
    """Read a PCM WAV file as s16le.

    8-, 24- and 32-bit integer PCM are converted to 16-bit.

    Returns:
        The file's format and its samples as interleaved PCM s16le.

    Raises:
        AudioFormatError: the file is missing, not a WAV, compressed or float, or empty of
            a whole sample; the message names the file.
    """
    where = os.fspath(path)
    try:
        with wave.open(where, "rb") as reader:
            channels = reader.getnchannels()
            width = reader.getsampwidth()
            rate = reader.getframerate()
            data = reader.readframes(reader.getnframes())
    except FileNotFoundError:
        raise AudioFormatError(f"{where}: no such file") from None
    except (wave.Error, EOFError) as exc:
        raise AudioFormatError(
            f"{where}: not a PCM WAV file ({exc}); only integer PCM WAV is read: {_CONVERT_HINT}"
        ) from None
    try:
        fmt = AudioFormat(rate, channels)
    except AudioFormatError as exc:
        raise AudioFormatError(f"{where}: {exc}") from None
    usable = len(data) - len(data) % (width * channels)
    data = data[:usable]
    if width == SAMPLE_WIDTH:
        return fmt, data
    if width == 1:  # unsigned 8-bit
        pcm = ((np.frombuffer(data, dtype=np.uint8).astype(np.int16) - 128) << 8).astype("<i2")
    elif width == 3:
        raw = np.frombuffer(data, dtype=np.uint8).reshape(-1, 3)
        top = raw[:, 1].astype(np.uint16) | (raw[:, 2].astype(np.uint16) << 8)
        pcm = top.astype("<u2").view("<i2")
    elif width == 4:
        pcm = (np.frombuffer(data, dtype="<i4") >> 16).astype("<i2")
    else:
        raise AudioFormatError(
            f"{where}: {8 * width}-bit samples are not supported; {_CONVERT_HINT}"
        )
    return fmt, bytes(pcm.tobytes())


def conform(
    pcm: bytes, fmt: AudioFormat, target: AudioFormat, *, resample_ok: bool, where: str
) -> bytes:
    """``pcm`` in the ``target`` format: resampled and down- or up-mixed when allowed.

    Args:
        pcm: interleaved PCM s16le in ``fmt``.
        fmt: its format.
        target: the format wanted.
        resample_ok: convert when the formats differ; when False, refuse.
        where: the file or stage, for the error message.

    Raises:
        AudioFormatError: the formats differ and ``resample_ok`` is False.
    """
    if fmt == target:
        return pcm
    if not resample_ok:
        raise AudioFormatError(
            f"{where}: audio is {fmt}, expected {target}; allow resampling or convert it, "
            f"e.g. `sox in.wav -r {target.sample_rate} -c {target.channels} out.wav`"
        )
    samples = pcm16_to_float(pcm, fmt.channels)
    if fmt.channels != target.channels:
        mono = samples.mean(axis=1, dtype=np.float32, keepdims=True)
        samples = np.repeat(mono, target.channels, axis=1)
    samples = resample(samples, fmt.sample_rate, target.sample_rate)
    return float_to_pcm16(samples)


def write_wav(path: str | os.PathLike[str], pcm: bytes, fmt: AudioFormat) -> Path:
    """Write PCM s16le to a WAV file (parents created); returns its path."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    # open the file first: wave.open on a bad path leaves a half-built writer behind
    with open(target, "wb") as file, wave.open(file, "wb") as writer:
        writer.setnchannels(fmt.channels)
        writer.setsampwidth(SAMPLE_WIDTH)
        writer.setframerate(fmt.sample_rate)
        writer.writeframes(pcm)
    return target
