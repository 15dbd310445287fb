"""The audio plugin: light to import, its contributions, `tts.speak` through the broker, and a
smoke run of its bench scenarios."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from loom import ActionCall, ActionStatus
from loom.actions import ActionBroker
from loom.bench import run_scenario
from loom.host import create_host
from loom_audio import MicrophoneSource, SttStage, ToneSource, VoiceAgent, WavFileSource, read_wav

HEAVY = (
    "numpy",
    "soxr",
    "rapidfuzz",
    "sounddevice",
    "faster_whisper",
    "ctranslate2",
    "piper",
    "onnxruntime",
    "pydantic",
)


def test_importing_the_plugin_is_light() -> None:
    code = "import sys, json, loom_audio.plugin, loom_audio\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = json.loads(out.stdout)
    assert [m for m in loaded if m.split(".")[0] in HEAVY] == []


def test_the_plugin_contributes_its_stages_by_name() -> None:
    host = create_host()
    assert "audio" in host.plugin_names()
    sources = {c.name: c for c in host.event_sources()}
    agents = {c.name: c for c in host.agent_types()}
    assert {"audio.mic", "audio.wav", "audio.tone"} <= set(sources)
    assert {
        "audio.vad",
        "audio.stt",
        "audio.wake",
        "audio.tts",
        "audio.speaker",
        "audio.wav_sink",
        "audio.voice_agent",
    } <= set(agents)
    assert isinstance(sources["audio.tone"].factory(seconds=0.1), ToneSource)
    assert isinstance(
        sources["audio.mic"].factory(), MicrophoneSource
    )  # opens nothing until started
    assert isinstance(sources["audio.wav"].factory("x.wav"), WavFileSource)
    assert isinstance(agents["audio.stt"].factory(), SttStage)  # loads no model until started
    assert isinstance(agents["audio.voice_agent"].factory(), VoiceAgent)
    assert [c.name for c in host.cli_commands() if c.name == "audio"] == ["audio"]
    benches = {c.name: c.baseline for c in host.bench_scenarios()}
    assert (
        benches["audio.stt"]
        == benches["audio.tts"]
        == benches["audio.voice_turn"]
        == "baseline.audio_bare"
    )
    speak = next(c for c in host.capabilities() if c.name == "tts.speak")
    assert speak.version == "0.1.0" and set(speak.input_schema["properties"]) >= {
        "text",
        "wav_path",
        "rate",
    }


def test_loom_plugins_lists_audio() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "loom.cli", "plugins", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    document = json.loads(out.stdout)
    plugins = document["plugins"] if isinstance(document, dict) else document
    audio = next(p for p in plugins if p["name"] == "audio")
    assert audio["distribution"] == "loom-audio"
    assert "loom_capabilities" in audio["hooks"] and "loom_event_sources" in audio["hooks"]


@pytest.mark.audio
async def test_tts_speak_through_the_broker(piper_engine, tmp_path: Path) -> None:
    host = create_host()
    async with ActionBroker() as broker:
        broker.register_contributions([c for c in host.capabilities() if c.name == "tts.speak"])
        wav = tmp_path / "hello.wav"
        result = await broker.invoke(
            ActionCall(
                "tts.speak", json.dumps({"text": "Hello there.", "wav_path": str(wav)}).encode()
            )
        )
        assert result.status is ActionStatus.OK, result.error
        output = json.loads(result.output)
        assert (
            output["engine"] == "piper" and output["wav_path"] == str(wav) and not output["played"]
        )
        fmt, pcm = read_wav(wav)
        assert (
            fmt.sample_rate == output["sample_rate"]
            and abs(len(pcm) / 2 / fmt.sample_rate * 1000 - output["audio_ms"]) < 2
        )
        bad = await broker.invoke(ActionCall("tts.speak", json.dumps({"txt": "typo"}).encode()))
        assert (
            bad.status is ActionStatus.ERROR
            and bad.error.code == "INVALID_PARAMS"
            and "text" in bad.error.message
        )
        directory = tmp_path / "a-directory.wav"
        directory.mkdir()
        failed = await broker.invoke(
            ActionCall("tts.speak", json.dumps({"text": "hi", "wav_path": str(directory)}).encode())
        )
        assert failed.status is ActionStatus.ERROR and failed.error.code == "CAPABILITY_ERROR"


@pytest.mark.audio
def test_bench_scenarios_run(transcriber, piper_engine) -> None:
    host = create_host()
    scenarios = {c.name: c for c in host.bench_scenarios()}
    for name in ("baseline.audio_bare", "audio.stt", "audio.tts", "audio.voice_turn"):
        report = run_scenario(scenarios[name], runs=1, scale=0.2)
        assert report.error is None, report.traceback
        figures = {f.metric: f.median for f in report.figures}
        assert all(value >= 0 for value in figures.values()), figures
        if name == "audio.stt":
            assert figures["wer"] <= 0.2 and figures["utterances"] >= 1
        if name == "audio.voice_turn":
            assert figures["turn_ms"] > 0 and figures["hangover_ms"] == 500
