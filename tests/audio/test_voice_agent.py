"""The voice agent end to end: spoken questions in, spoken answers out (and transcribed back),
through the plugin's stages, the model router, barge-in, the CLI and the example."""

from __future__ import annotations

import datetime
import json
import subprocess
import sys
from pathlib import Path

import pytest

from loom import Event
from loom.agents import AgentRuntime
from loom.host import create_host
from loom_audio import (
    AgentConfig,
    LocalResponder,
    SinkConfig,
    SourceConfig,
    TtsStage,
    VoiceAgent,
    VoiceApp,
    VoiceConfig,
    VoiceConfigError,
    WavSink,
    corpus_word_error_rate,
    read_wav,
)
from loom_audio._names import (
    PLAYBACK_DONE,
    PLAYBACK_STARTED,
    SPEECH_START,
    TTS_DONE,
    TTS_STOP,
    USER_QUERY,
    VOICE_REPLY,
)
from loom_audio._pcm import pcm16_to_mono_float, resample

from .conftest import RATE

pytestmark = pytest.mark.audio

ROOT = Path(__file__).resolve().parents[2]


def _heard(transcriber, path: str | Path) -> str:
    fmt, pcm = read_wav(path)
    return transcriber.transcribe(resample(pcm16_to_mono_float(pcm), fmt.sample_rate, RATE)).text


@pytest.fixture
def audio_host():
    """A plugin host with the installed plugins (loom-audio among them)."""
    host = create_host()
    assert "audio" in host.plugin_names(), "loom-audio's entry point is not installed"
    return host


@pytest.mark.parametrize("voice", ["piper", "espeak"])
async def test_spoken_questions_get_spoken_answers(
    voice, audio_host, transcriber, piper_engine, speech_wav, tmp_path: Path, bus, collect
) -> None:
    questions = (
        "Hey Loom, what time is it?",
        "Hey Loom, say good morning everyone.",
        "Hey Loom, what can you do?",
    )
    path = speech_wav(*questions, voice=voice, gap_s=3.0)
    config = VoiceConfig(
        source=SourceConfig(kind="wav", path=str(path), pace=0.0),
        sink=SinkConfig(speaker=False, wav_dir=str(tmp_path / "replies")),
    )
    seen = await collect(">", (USER_QUERY, VOICE_REPLY, PLAYBACK_DONE, "routing.decision"))
    before = datetime.datetime.now()
    async with VoiceApp(
        config, host=audio_host, bus=bus, transcriber=transcriber, tts_engine=piper_engine
    ) as app:
        await app.run(until_source_ends=True, settle_s=60)
        status = app.status()
    after = datetime.datetime.now()
    queries = [e.metadata["text"] for e in seen.of(USER_QUERY)]
    assert len(queries) == 3, queries
    replies = [e.metadata for e in seen.of(VOICE_REPLY)]
    assert all(
        r["responder"] == "router:voice-local" for r in replies
    )  # decided through the router
    decisions = seen.of("routing.decision")
    assert len(decisions) == 3 and all(d.metadata["provider"] == "voice-local" for d in decisions)
    times = {f"It is {t.strftime('%I:%M %p').lstrip('0')}." for t in (before, after)}
    assert replies[0]["text"] in times
    # the echo repeats what was heard: espeak-ng's voice may lose a word on the way
    assert corpus_word_error_rate([("good morning everyone", replies[1]["text"])]) <= 0.34
    assert "tts.speak" in replies[2]["text"]  # the capability list came from the plugin host
    files = [e.metadata["path"] for e in seen.of(PLAYBACK_DONE)]
    assert len(files) == 3
    heard = [_heard(transcriber, f) for f in files]
    assert corpus_word_error_rate([(replies[1]["text"], heard[1])]) <= 0.2, heard
    assert (
        corpus_word_error_rate([(replies[2]["text"].replace("tts.speak", "TTS speak"), heard[2])])
        <= 0.3
    ), heard
    hour = before.strftime("%I").lstrip("0")
    assert "it is" in heard[0].lower() and hour in heard[0], heard[0]
    assert status["agent"]["answered"] == 3 and status["vad"]["detector"] == "silero"


async def test_barge_in_stops_the_current_reply(piper_engine, tmp_path: Path, bus, collect) -> None:
    seen = await collect(">", (TTS_STOP, TTS_DONE, PLAYBACK_STARTED, PLAYBACK_DONE))
    sink = WavSink(tmp_path)
    tts = TtsStage(engine=piper_engine)
    await sink.start(bus)
    await tts.start(bus)
    runtime = AgentRuntime(bus)
    agent = VoiceAgent(LocalResponder())
    await runtime.spawn("voice", agent, topics=VoiceAgent.topics_for())
    long_echo = "echo " + " ".join(
        f"This is part {n} of a long answer."
        for n in ("one", "two", "three", "four", "five", "six")
    )
    await bus.publish("query", Event(USER_QUERY, long_echo.encode(), metadata={"text": long_echo}))
    await seen.wait_type(PLAYBACK_STARTED)  # the reply is being spoken
    assert agent.speaking
    await bus.publish("vad", Event(SPEECH_START, metadata={"utterance_id": "u2"}))  # the user talks
    stop = (await seen.wait_type(TTS_STOP))[0]
    done = (await seen.wait_type(TTS_DONE))[0]
    await seen.wait_type(PLAYBACK_DONE)
    assert (
        stop.metadata["reason"] == "barge_in"
        and stop.metadata["reply_id"] == done.metadata["reply_id"]
    )
    assert done.metadata["stopped"] == "1" and int(done.metadata["chunks"]) < 6
    assert seen.of(PLAYBACK_DONE)[0].metadata["stopped"] == "1"
    assert agent.barge_ins == 1 and not agent.speaking
    await bus.publish(
        "vad", Event(SPEECH_START, metadata={"utterance_id": "u3"})
    )  # nothing to stop
    await bus.publish("query", Event(USER_QUERY, b"echo done", metadata={"text": "echo done"}))
    await seen.wait_type(TTS_DONE, 2)
    assert agent.barge_ins == 1 and len(seen.of(TTS_STOP)) == 1
    await runtime.shutdown()
    await tts.stop()
    await sink.stop()


async def test_barge_in_on_a_real_speaker(
    pulse, transcriber, piper_engine, speech_wav, tmp_path: Path, bus, collect
) -> None:
    first = (
        "Hey Loom, repeat after me, this answer is long enough "
        "that there is time to talk over it while it plays."
    )
    path = speech_wav(first, "Hey Loom, what time is it?", gap_s=2.5)
    config = VoiceConfig(
        source=SourceConfig(kind="wav", path=str(path), pace=1.0),
        sink=SinkConfig(speaker=True, wav_dir=str(tmp_path)),
    )
    seen = await collect(">", (TTS_STOP, PLAYBACK_DONE, VOICE_REPLY))
    async with VoiceApp(config, bus=bus, transcriber=transcriber, tts_engine=piper_engine) as app:
        await app.run(until_source_ends=True, settle_s=30)
        status = app.status()
    replies = seen.of(VOICE_REPLY)
    assert len(replies) == 2
    stop = seen.of(TTS_STOP)[0]
    assert stop.metadata["reply_id"] == replies[0].metadata["reply_id"]
    speaker_done = [e for e in seen.of(PLAYBACK_DONE) if e.metadata["sink"] == "speaker"]
    assert [e.metadata["stopped"] for e in speaker_done] == ["1", "0"]  # cut, then the next reply
    assert status["agent"]["barge_ins"] == 1 and status["speaker"]["stops"] == 1


async def test_a_failing_model_still_gets_an_answer(bus, collect) -> None:
    # The router's only provider is an OpenAI-compatible endpoint that is not there.
    from loom.models import ModelRouter, OpenAIChatModel, OpenAIConfig, RulePolicy
    from loom_audio import RouterResponder

    config = OpenAIConfig(base_url="http://127.0.0.1:9/v1", model="m", max_retries=0)
    router = ModelRouter(RulePolicy(), {"down": OpenAIChatModel(config)})
    seen = await collect(">", (VOICE_REPLY,))
    runtime = AgentRuntime(bus)
    agent = VoiceAgent(RouterResponder(router))
    await runtime.spawn("voice", agent, topics=VoiceAgent.topics_for())
    await bus.publish("query", Event(USER_QUERY, b"hello", metadata={"text": "hello"}))
    reply = (await seen.wait_type(VOICE_REPLY))[0]
    assert reply.metadata["text"] == "Sorry, something went wrong." and agent.failures == 1
    await runtime.shutdown()
    await router.aclose()


def test_local_responder_answers_deterministically() -> None:
    clock = lambda: datetime.datetime(2026, 3, 5, 15, 4)  # noqa: E731
    responder = LocalResponder(["tts.speak", "text.upper"], clock=clock)
    assert responder.answer("What time is it?") == "It is 3:04 PM."
    assert responder.answer("tell me the time") == "It is 3:04 PM."
    assert responder.answer("what's the date today") == "Today is Thursday, March 5."
    assert responder.answer("Echo the quick brown fox.") == "the quick brown fox."
    assert responder.answer("please repeat after me: hello world") == "hello world."
    assert responder.answer("say") == "Echo what? Say echo, then the words."
    assert responder.answer("What can you do?").endswith(
        "My capabilities are: text.upper, tts.speak."
    )
    assert responder.answer("sing a song").startswith("Sorry, I can only")
    assert responder.answer("...") == ""


def test_the_example_config_and_bad_configs(tmp_path: Path) -> None:
    config = VoiceConfig.from_toml(ROOT / "examples" / "voice_agent" / "voice_agent.toml")
    assert config.vad.hangover_ms == 500 and config.wake.phrases == ("hey loom", "loom")
    assert config.agent == AgentConfig()
    cases = {
        "[vad]\nhangover = 3\n": "[vad] has no key 'hangover'",
        "[ears]\n": "unknown table [ears]",
        "[vad]\nthreshold = 'high'\n": "[vad] threshold must be float, not str",
        "[vad]\nthreshold = 2.0\n": "vad.threshold must be within",
        "[source]\nkind = 'wav'\n": "source.path is needed",
        "[wake]\nphrases = 'hey'\n": "[wake] phrases must be a list",
        "[agent]\nbarge_in = 1\n": "[agent] barge_in must be bool",
        "vad = 3\n": "[vad] must be a table",
        "[vad\n": "not valid TOML",
    }
    for text, message in cases.items():
        path = tmp_path / "bad.toml"
        path.write_text(text)
        with pytest.raises(
            VoiceConfigError, match=message.replace("[", r"\[").replace("]", r"\]")
        ) as info:
            VoiceConfig.from_toml(path)
        assert str(path) in str(info.value)
    with pytest.raises(VoiceConfigError, match="no such file"):
        VoiceConfig.from_toml(tmp_path / "missing.toml")


def test_loom_audio_voice_runs_by_one_command(speech_wav, tmp_path: Path) -> None:
    question = speech_wav("Hey Loom, say good morning everyone.", lead_s=0.5)
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "loom.cli",
            "audio",
            "voice",
            "--wav-in",
            str(question),
            "--wav-out",
            str(tmp_path),
            "--no-speaker",
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    status = json.loads(out.stdout)
    assert status["agent"]["answered"] == 1 and (tmp_path / "reply-001.wav").is_file()


def test_the_example_runs_by_one_command(transcriber, tmp_path: Path) -> None:
    out = subprocess.run(
        [
            sys.executable,
            str(ROOT / "examples" / "voice_agent" / "main.py"),
            "--demo",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.splitlines()
    assert lines[-1].startswith("answered 3 queries"), out.stdout
    assert any("reply-002.wav: hello world" in line.lower() for line in lines), out.stdout
