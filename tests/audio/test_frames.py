"""The frame format, PCM conversions and WAV files: bad input gets a clear error."""

from __future__ import annotations

import struct
import wave
from pathlib import Path

import numpy as np
import pytest

from loom import Event
from loom_audio import (
    ENCODING,
    AudioFormat,
    AudioFormatError,
    conform,
    format_of,
    frame_event,
    read_wav,
    write_wav,
)
from loom_audio._pcm import StreamConverter, float_to_pcm16, pcm16_to_float, pcm16_to_mono_float


def _tone(freq: float, seconds: float, rate: int, channels: int = 1) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    wave_ = 0.5 * np.sin(2 * np.pi * freq * t).astype(np.float32)
    return float_to_pcm16(np.repeat(wave_[:, None], channels, axis=1))


def _peak_hz(pcm: bytes, rate: int, channels: int = 1) -> float:
    mono = pcm16_to_mono_float(pcm, channels)
    spectrum = np.abs(np.fft.rfft(mono))
    return float(np.fft.rfftfreq(mono.size, 1 / rate)[int(np.argmax(spectrum))])


def test_frame_event_carries_the_documented_format() -> None:
    fmt = AudioFormat(16000, 1)
    pcm = _tone(440, 0.02, 16000)
    event = frame_event("audio_chunk", pcm, fmt, source="mic.primary", seq=7, extra={"device": "x"})
    assert event.payload == pcm and event.priority == 90
    assert event.metadata == {
        "sample_rate": "16000",
        "channels": "1",
        "encoding": ENCODING,
        "frame_samples": "320",
        "frame_ms": "20",
        "seq": "7",
        "source": "mic.primary",
        "device": "x",
    }
    assert format_of(event) == fmt
    assert format_of(Event.decode(event.encode())) == fmt  # survives the wire


def test_stereo_frame_format_counts_samples_per_channel() -> None:
    fmt = AudioFormat(48000, 2)
    event = frame_event("audio_chunk", _tone(440, 0.01, 48000, 2), fmt, source="s", seq=0)
    assert event.metadata["frame_samples"] == "480"
    assert event.metadata["frame_ms"] == "10"


@pytest.mark.parametrize(
    ("metadata", "payload", "message"),
    [
        ({"channels": "1"}, b"\0\0", "no sample_rate"),
        ({"sample_rate": "fast", "channels": "1"}, b"\0\0", "not integers"),
        (
            {"sample_rate": "16000", "channels": "1", "encoding": "opus"},
            b"\0\0",
            "'opus' is not supported",
        ),
        ({"sample_rate": "16000", "channels": "2"}, b"\0\0\0", "not a whole number"),
        ({"sample_rate": "100", "channels": "1"}, b"\0\0", "sample rate 100"),
        ({"sample_rate": "16000", "channels": "0"}, b"\0\0", "channel count 0"),
    ],
)
def test_a_bad_frame_is_refused_naming_the_event(metadata, payload, message) -> None:
    event = Event("audio_chunk", payload, metadata=metadata)
    with pytest.raises(AudioFormatError, match=message) as info:
        format_of(event, "vad <- audio.mic")
    assert event.id in str(info.value) and "vad <- audio.mic" in str(info.value)


def test_frame_event_refuses_a_partial_sample() -> None:
    with pytest.raises(AudioFormatError, match="whole number"):
        frame_event("audio_chunk", b"\0\0\0", AudioFormat(16000, 2), source="s", seq=0)


def test_pcm_round_trip_and_mono_mix() -> None:
    stereo = np.array([[0.5, -0.5], [0.25, 0.25]], dtype=np.float32)
    pcm = float_to_pcm16(stereo)
    assert np.allclose(pcm16_to_float(pcm, 2), stereo, atol=1e-4)
    assert np.allclose(pcm16_to_mono_float(pcm, 2), [0.0, 0.25], atol=1e-4)
    assert float_to_pcm16(np.array([2.0, -2.0])) == struct.pack("<hh", 32767, -32767)


def test_stream_converter_resamples_across_chunks() -> None:
    converter = StreamConverter(16000)
    fmt = AudioFormat(44100, 2)
    pcm = _tone(1000, 1.0, 44100, 2)
    step = 441 * 4 * 10  # 100 ms chunks
    out = np.concatenate(
        [converter.convert(pcm[i : i + step], fmt) for i in range(0, len(pcm), step)]
    )
    assert abs(out.size - 16000) < 400  # the resampler holds a few samples back
    assert abs(_peak_hz(float_to_pcm16(out), 16000) - 1000) < 5


def test_wav_round_trip(tmp_path: Path) -> None:
    pcm = _tone(440, 0.5, 22050)
    path = write_wav(tmp_path / "deep" / "a.wav", pcm, AudioFormat(22050, 1))
    assert read_wav(path) == (AudioFormat(22050, 1), pcm)


@pytest.mark.parametrize("width", [1, 3, 4])
def test_other_integer_widths_become_16_bit(tmp_path: Path, width: int) -> None:
    samples = 0.5 * np.sin(2 * np.pi * 500 * np.arange(8000) / 8000)
    if width == 1:
        data = np.round(samples * 127 + 128).astype(np.uint8).tobytes()
    elif width == 3:
        ints = np.round(samples * (2**23 - 1)).astype("<i4")
        data = b"".join(int(v).to_bytes(3, "little", signed=True) for v in ints)
    else:
        data = np.round(samples * (2**31 - 1)).astype("<i4").tobytes()
    path = tmp_path / f"w{width}.wav"
    with wave.open(str(path), "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(width)
        writer.setframerate(8000)
        writer.writeframes(data)
    fmt, pcm = read_wav(path)
    assert fmt == AudioFormat(8000, 1)
    assert np.allclose(pcm16_to_mono_float(pcm), samples, atol=0.01)


def test_a_stereo_44k_file_is_conformed_or_refused(tmp_path: Path) -> None:
    path = write_wav(tmp_path / "s.wav", _tone(440, 1.0, 44100, 2), AudioFormat(44100, 2))
    fmt, pcm = read_wav(path)
    target = AudioFormat(16000, 1)
    converted = conform(pcm, fmt, target, resample_ok=True, where=str(path))
    assert abs(len(converted) // 2 - 16000) <= 2
    assert abs(_peak_hz(converted, 16000) - 440) < 3
    with pytest.raises(AudioFormatError) as info:
        conform(pcm, fmt, target, resample_ok=False, where=str(path))
    message = str(info.value)
    assert str(path) in message and "44100 Hz 2 channels" in message and "16000 Hz mono" in message


def test_unreadable_files_are_named(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(b"RIFF\x10\x00\x00\x00not a wave file at all")
    with pytest.raises(AudioFormatError, match=r"garbage\.wav: not a PCM WAV"):
        read_wav(garbage)
    with pytest.raises(AudioFormatError, match=r"missing\.wav: no such file"):
        read_wav(tmp_path / "missing.wav")
    float_wav = tmp_path / "float.wav"  # format tag 3 (IEEE float): the wave module refuses it
    data = np.zeros(100, dtype="<f4").tobytes()
    header = b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVEfmt "
    header += (
        struct.pack("<IHHIIHH", 16, 3, 1, 16000, 64000, 4, 32)
        + b"data"
        + struct.pack("<I", len(data))
    )
    float_wav.write_bytes(header + data)
    with pytest.raises(AudioFormatError, match=r"float\.wav: not a PCM WAV.*sox"):
        read_wav(float_wav)
