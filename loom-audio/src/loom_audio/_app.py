"""The voice app: source -> VAD -> STT -> wake -> voice agent -> TTS -> sinks, on one bus."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from loom.agents import AgentRuntime
from loom.bus import EventBus, MemoryBus
from loom_audio._agent import VoiceAgent
from loom_audio._config import VoiceConfig
from loom_audio._errors import AudioDeviceError, MissingExtraError
from loom_audio._format import AudioFormat
from loom_audio._mic import MicrophoneSource
from loom_audio._responder import LocalResponder, Responder
from loom_audio._sinks import WavSink
from loom_audio._sources import AudioSource, ToneSource, WavFileSource
from loom_audio._speaker import SpeakerSink
from loom_audio._stage import Stage
from loom_audio._stt import SttStage
from loom_audio._tts import TtsStage
from loom_audio._vad import VadStage
from loom_audio._wake import WakeStage

if TYPE_CHECKING:
    from loom.host import PluginHost
    from loom_audio._tts_engines import TtsEngine
    from loom_audio._whisper import WhisperTranscriber

__all__ = ["VoiceApp", "make_responder", "wake_prompt"]

log = logging.getLogger("loom_audio")

#: The contribution names of the stages (event sources and agent types of the audio plugin).
_DIRECT: dict[str, Callable[..., Any]] = {
    "audio.mic": MicrophoneSource,
    "audio.wav": WavFileSource,
    "audio.tone": ToneSource,
    "audio.vad": VadStage,
    "audio.stt": SttStage,
    "audio.wake": WakeStage,
    "audio.tts": TtsStage,
    "audio.speaker": SpeakerSink,
    "audio.wav_sink": WavSink,
    "audio.voice_agent": VoiceAgent,
}


def wake_prompt(phrases: tuple[str, ...]) -> str:
    """The STT prompt that makes Whisper expect the wake word ("The assistant is called Loom.").

    Measured with tiny.en on 24 spoken wake phrases (piper and espeak-ng): 15 heard without
    a prompt ("Hey, Lynn", "Halo", "Lim"), 24 with it, and no change in word error rate or
    false wakes on other sentences. Naming the phrase itself ("Hey Loom.") makes the model
    leave it out of transcripts, so the prompt names the assistant instead.
    """
    name = max(phrases, key=len).split()[-1]
    return f"The assistant is called {name.title()}."


def make_responder(
    kind: str, capabilities: Callable[[], list[str]] | None = None, bus: EventBus | None = None
) -> Responder:
    """The responder an :class:`~loom_audio.AgentConfig` names.

    ``"auto"`` and ``"router"`` decide through loom's model router (``loom.models``), whose
    local provider is the deterministic :class:`~loom_audio.LocalResponder` and which also
    has the ``OPENAI_BASE_URL`` endpoint when that is set; ``"local"`` skips the router.
    When the router is not available, ``"auto"`` falls back to the local responder (logged)
    and ``"router"`` raises ImportError.
    """
    from loom_audio._router import router_responder

    if kind in ("auto", "router"):
        responder = router_responder(required=kind == "router", capabilities=capabilities, bus=bus)
        if responder is not None:
            return responder
    return LocalResponder(capabilities or (lambda: []))


class VoiceApp:
    """The voice agent, end to end, on one bus.

    Stages are built from the audio plugin's contributions when a plugin ``host`` is given
    (event sources ``audio.mic`` / ``audio.wav`` / ``audio.tone``; agent types
    ``audio.vad``, ``audio.stt``, ``audio.wake``, ``audio.tts``, ``audio.speaker``,
    ``audio.wav_sink``, ``audio.voice_agent``), else from the classes directly. They start
    consumers first (sinks, TTS, agent, wake, STT, VAD), the source last, and stop in
    reverse.

    A speaker that cannot be opened is logged and the app goes on without it (replies are
    still written to ``sink.wav_dir`` when set); a source that cannot be opened fails
    :meth:`start`.

    Args:
        config: the configuration (defaults: microphone to speaker).
        host: a plugin host to build the stages from.
        bus: the bus (a new :class:`~loom.bus.MemoryBus` when None).
        responder: decides answers (instead of ``config.agent.responder``).
        transcriber: a loaded Whisper model to share.
        tts_engine: a loaded TTS engine to share.

    Example:
        .. code-block:: python

            config = VoiceConfig(source=SourceConfig(kind="wav", path="question.wav"),
                                 sink=SinkConfig(speaker=False, wav_dir="replies"))
            async with VoiceApp(config) as app:
                await app.run(until_source_ends=True)
    """

    def __init__(
        self,
        config: VoiceConfig | None = None,
        *,
        host: PluginHost | None = None,
        bus: EventBus | None = None,
        responder: Responder | None = None,
        transcriber: WhisperTranscriber | None = None,
        tts_engine: TtsEngine | None = None,
    ) -> None:
        self.config = config or VoiceConfig()
        self.host = host
        self.bus: EventBus = bus or MemoryBus()
        self._own_bus = bus is None
        self.responder = responder
        self._transcriber = transcriber
        self._tts_engine = tts_engine
        self.runtime: AgentRuntime | None = None
        self.stages: dict[str, Stage] = {}
        self.agent: VoiceAgent | None = None
        self.source: AudioSource | None = None
        self._factories = self._resolve_factories()

    def _resolve_factories(self) -> dict[str, Callable[..., Any]]:
        if self.host is None:
            return dict(_DIRECT)
        found = {c.name: c.factory for c in self.host.event_sources()}
        found.update({c.name: c.factory for c in self.host.agent_types()})
        missing = sorted(set(_DIRECT) - set(found))
        if missing:
            raise RuntimeError(
                f"the audio plugin does not contribute {', '.join(missing)}: is loom-audio "
                "installed, and not disabled (LOOM_DISABLE_PLUGINS)?"
            )
        return {name: found[name] for name in _DIRECT}

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def _capability_names(self) -> list[str]:
        """The capabilities the host's plugins contribute, collected once, at start."""
        if self.host is None:
            return []
        try:
            return [c.name for c in self.host.capabilities()]
        except Exception as exc:  # noqa: BLE001  # a nicety: a broken plugin must not stop the app
            log.warning("voice app: could not list capabilities: %s", exc)
            return []

    async def start(self) -> None:
        """Build and start every stage (consumers first) and the voice agent."""
        config, topics, make = self.config, self.config.topics, self._factories
        await self.bus.start()
        self.runtime = AgentRuntime(self.bus)
        try:
            await self._start_sinks()
            await self._add(
                "tts", make["audio.tts"](config.tts, topics=topics, engine=self._tts_engine)
            )
            names = self._capability_names()
            responder = self.responder or make_responder(
                config.agent.responder, lambda: names, self.bus
            )
            agent = make["audio.voice_agent"](
                responder,
                topics=topics,
                barge_in=config.agent.barge_in,
                timeout_s=config.agent.timeout_s,
            )
            self.agent = agent
            await self.runtime.spawn("voice", agent, topics=VoiceAgent.topics_for(topics))
            await self._add("wake", make["audio.wake"](config.wake, topics=topics))
            stt_config = config.stt
            if stt_config.prompt is None and config.wake.phrases:
                stt_config = dataclasses.replace(
                    stt_config, prompt=wake_prompt(config.wake.phrases)
                )
            await self._add(
                "stt", make["audio.stt"](stt_config, topics=topics, transcriber=self._transcriber)
            )
            await self._add("vad", make["audio.vad"](config.vad, topics=topics))
            self.source = self._make_source()
            await self._add("source", self.source)
        except BaseException:
            await self.stop()
            raise

    async def _start_sinks(self) -> None:
        config, topics, make = self.config, self.config.topics, self._factories
        if config.sink.wav_dir:
            await self._add("wav_sink", make["audio.wav_sink"](config.sink.wav_dir, topics=topics))
        if config.sink.speaker:
            device = _device(config.sink.device)
            try:
                await self._add("speaker", make["audio.speaker"](device=device, topics=topics))
            except (AudioDeviceError, MissingExtraError) as exc:
                log.error(
                    "voice app: no speaker (%s); replies %s",
                    exc,
                    f"go to {config.sink.wav_dir}" if config.sink.wav_dir else "are only logged",
                )

    def _make_source(self) -> AudioSource:
        source, topic, make = self.config.source, self.config.topics.mic, self._factories
        fmt = AudioFormat(source.sample_rate, 1)
        if source.kind == "mic":
            return make["audio.mic"](  # type: ignore[no-any-return]
                device=_device(source.device),
                sample_rate=source.sample_rate,
                frame_ms=source.frame_ms,
                topic=topic,
            )
        if source.kind == "wav":
            return make["audio.wav"](  # type: ignore[no-any-return]
                source.path,
                topic=topic,
                target=fmt,
                frame_ms=source.frame_ms,
                pace=source.pace,
                lead_silence_ms=source.lead_silence_ms,
                tail_silence_ms=source.tail_silence_ms,
            )
        return make["audio.tone"](fmt=fmt, topic=topic, frame_ms=source.frame_ms, pace=source.pace)  # type: ignore[no-any-return]

    async def _add(self, key: str, stage: Stage) -> None:
        await stage.start(self.bus)
        self.stages[key] = stage

    async def stop(self) -> None:
        """Stop the source first, then every stage and the agent. Idempotent."""
        for key in ("source", "vad", "stt", "wake"):
            stage = self.stages.pop(key, None)
            if stage is not None:
                await stage.stop()
        if self.runtime is not None:
            await self.runtime.shutdown()
            self.runtime = None
        for key in list(self.stages):
            await self.stages.pop(key).stop()
        if self._own_bus:
            await self.bus.shutdown()

    async def run(
        self,
        *,
        seconds: float | None = None,
        until_source_ends: bool = False,
        settle_s: float = 10.0,
    ) -> None:
        """Run until ``seconds`` pass, or the source ends and the last reply is out.

        Args:
            seconds: stop after this long (None: no limit).
            until_source_ends: return once a WAV or tone source has published everything and
                the pipeline has settled (no transcription, decision or reply in progress),
                waiting at most ``settle_s`` for that.
            settle_s: see ``until_source_ends``.
        """
        waits: list[asyncio.Future[Any]] = []
        if seconds is not None:
            waits.append(asyncio.ensure_future(asyncio.sleep(seconds)))
        if until_source_ends and self.source is not None:
            waits.append(asyncio.ensure_future(self._source_done(settle_s)))
        if not waits:
            waits.append(asyncio.ensure_future(asyncio.Event().wait()))
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiting in waits:
                waiting.cancel()
            await asyncio.gather(*waits, return_exceptions=True)

    async def _source_done(self, settle_s: float) -> None:
        assert self.source is not None
        await self.source.wait()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + settle_s
        quiet_since = None
        while loop.time() < deadline:
            busy = self._busy()
            now = loop.time()
            if busy:
                quiet_since = None
            elif quiet_since is None:
                quiet_since = now
            elif now - quiet_since >= 0.3:
                return
            await asyncio.sleep(0.05)

    def _busy(self) -> bool:
        stt = self.stages.get("stt")
        if isinstance(stt, SttStage) and (stt._busy or stt._queue or stt._current is not None):
            return True
        vad = self.stages.get("vad")
        if isinstance(vad, VadStage) and vad._utterance is not None:
            return True
        tts = self.stages.get("tts")
        if isinstance(tts, TtsStage) and (tts._current is not None or tts._queue):
            return True
        agent = self.agent
        if agent is not None and (
            agent.speaking or (agent._deciding is not None and not agent._deciding.done())
        ):
            return True
        return any(sub.qsize() for stage in self.stages.values() for sub in stage._subscriptions)

    def status(self) -> dict[str, Any]:
        """Every stage's counters, and the agent's."""
        report: dict[str, Any] = {key: stage.status() for key, stage in self.stages.items()}
        if self.agent is not None:
            report["agent"] = self.agent.status()
        return report


def _device(spec: str | None) -> int | str | None:
    if spec is None:
        return None
    return int(spec) if spec.strip().isdigit() else spec
