"""The microphone and speaker for real, on a PulseAudio null sink: what is played into it is
recorded from its monitor. Also: no devices, no PortAudio, and a device that goes away."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from loom_audio import (
    AudioDeviceError,
    MicrophoneSource,
    SpeakerSink,
    SpeakRequest,
    SttStage,
    TtsStage,
    VadStage,
    corpus_word_error_rate,
    list_devices,
)
from loom_audio._names import (
    DEVICE_LOST,
    DEVICE_RESTORED,
    PLAYBACK_DONE,
    PLAYBACK_STARTED,
    TRANSCRIPT_FINAL,
)

from .conftest import need

pytestmark = pytest.mark.audio

LOOM = [sys.executable, "-m", "loom.cli"]


def _has_sound_cards() -> bool:
    try:
        cards = Path("/proc/asound/cards").read_text()
    except OSError:
        return False
    return "no soundcards" not in cards and cards.strip() != ""


def test_devices_lists_the_virtual_devices(pulse) -> None:
    out = subprocess.run(
        [*LOOM, "audio", "devices"], env=pulse.env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert "pulse" in out.stdout and "default" in out.stdout
    listed = json.loads(
        subprocess.run(
            [*LOOM, "audio", "devices", "--json"],
            env=pulse.env,
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout
    )
    assert any(d["name"] == "pulse" and d["inputs"] > 0 and d["outputs"] > 0 for d in listed)
    assert any(d["default_input"] for d in listed)


def test_devices_says_so_when_there_are_none(tmp_path: Path) -> None:
    need("sounddevice", "mic")
    if _has_sound_cards():
        pytest.skip("this machine has sound cards: 'no devices' cannot be shown here")
    env = {**os.environ, "PULSE_SERVER": f"unix:{tmp_path}/no-server"}  # no sound server either
    out = subprocess.run(
        [*LOOM, "audio", "devices"], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0
    assert "no audio devices found" in out.stdout
    listed = subprocess.run(
        [*LOOM, "audio", "devices", "--json"], env=env, capture_output=True, text=True, timeout=60
    )
    assert json.loads(listed.stdout) == []


def test_devices_names_the_package_when_portaudio_is_missing() -> None:
    need("sounddevice", "mic")
    # sounddevice finds libportaudio through ctypes.util.find_library; making that find
    # nothing in a child process is how "not installed" looks, without uninstalling it here.
    code = (
        "import ctypes.util, sys\n"
        "ctypes.util.find_library = lambda name: None\n"
        "from loom.cli import main\n"
        "sys.exit(main(['audio', 'devices']))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 1
    assert "apt-get install libportaudio2" in out.stderr and "no audio stack" in out.stderr


async def test_no_input_device_fails_clearly(bus, monkeypatch, tmp_path: Path) -> None:
    need("sounddevice", "mic")
    if _has_sound_cards() or os.environ.get("PULSE_SERVER"):
        pytest.skip("this machine has audio devices")
    if list_devices():
        pytest.skip("PortAudio sees devices here")
    with pytest.raises(AudioDeviceError, match="no audio input device found"):
        await MicrophoneSource().start(bus)


async def _mic_pipeline(started, collect, transcriber):
    seen = await collect(">", (TRANSCRIPT_FINAL, DEVICE_LOST, DEVICE_RESTORED))
    stt = SttStage(transcriber=transcriber)
    vad = VadStage()
    mic = MicrophoneSource()
    await started(stt, vad, mic)
    await seen.wait_for(lambda: mic.frames > 10, timeout=20, what="the microphone's first frames")
    return seen, mic


async def test_the_microphone_hears_speech(
    pulse, transcriber, speech_wav, started, collect
) -> None:
    text = "Please turn on the lights in the kitchen."
    seen, mic = await _mic_pipeline(started, collect, transcriber)
    await pulse.play(speech_wav(text))
    final = (await seen.wait_type(TRANSCRIPT_FINAL, timeout=30))[0]
    assert corpus_word_error_rate([(text, final.metadata["text"])]) <= 0.2, final.metadata["text"]
    assert mic.device_info is not None and mic.status()["losses"] == 0


async def test_a_microphone_that_goes_away_is_reported_and_reopened(
    pulse, transcriber, started, collect, caplog
) -> None:
    seen, mic = await _mic_pipeline(started, collect, transcriber)
    mic.retry_s = 0.3
    pulse.stop()  # the sound server, and with it the device, goes away mid-stream
    lost = (await seen.wait_type(DEVICE_LOST, timeout=20))[0]
    assert lost.metadata["device"] and lost.metadata["reason"]
    assert mic.running and mic.losses == 1
    assert any("microphone" in r.getMessage() and "lost" in r.getMessage() for r in caplog.records)
    frames_while_lost = mic.frames
    await asyncio.sleep(1.0)  # it keeps retrying, quietly; nothing crashes
    assert mic.losses == 1 and mic.frames == frames_while_lost
    pulse.start()  # the device is back
    await seen.wait_type(DEVICE_RESTORED, timeout=30)
    await seen.wait_for(
        lambda: mic.frames > frames_while_lost + 10, timeout=20, what="frames again"
    )
    assert mic.restores == 1


async def test_the_speaker_plays_what_the_microphone_then_hears(
    pulse, piper_engine, transcriber, started, collect
) -> None:
    text = "The children are playing in the garden."
    seen, _ = await _mic_pipeline(started, collect, transcriber)
    played = await collect(">", (PLAYBACK_STARTED, PLAYBACK_DONE))
    speaker = SpeakerSink()
    tts = TtsStage(engine=piper_engine)
    await started(speaker, tts)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await tts.speak(SpeakRequest(text))
    done = (await played.wait_type(PLAYBACK_DONE, timeout=30))[0]
    assert done.metadata["stopped"] == "0" and speaker.played == 1
    assert loop.time() - started > 1.5  # it waited for the audio to play out (about 2 s)
    final = (await seen.wait_type(TRANSCRIPT_FINAL, timeout=30))[0]
    assert corpus_word_error_rate([(text, final.metadata["text"])]) <= 0.2, final.metadata["text"]


async def test_tts_speak_plays_on_the_default_speaker(
    pulse, piper_engine, transcriber, started, collect
) -> None:
    from loom_audio._capability import speak

    seen, _ = await _mic_pipeline(started, collect, transcriber)
    text = "It is raining outside today."
    result = await asyncio.to_thread(speak, text)  # blocks until played, as the broker runs it
    assert result["played"] and result["engine"] == "piper" and result["wav_path"] is None
    final = (await seen.wait_type(TRANSCRIPT_FINAL, timeout=30))[0]
    assert corpus_word_error_rate([(text, final.metadata["text"])]) <= 0.2, final.metadata["text"]
