"""The voice agent: answers ``user.query`` events by voice, and stops talking when spoken over."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from loom import Event
from loom.agents import Agent, Context, handles
from loom_audio._names import (
    PLAYBACK_DONE,
    PLAYBACK_STARTED,
    SPEECH_START,
    TTS_DONE,
    TTS_ERROR,
    TTS_SPEAK,
    TTS_STOP,
    USER_QUERY,
    VOICE_REPLY,
    AudioTopics,
)
from loom_audio._responder import LocalResponder, Responder
from loom_audio._tts import new_reply_id

__all__ = ["VoiceAgent"]

log = logging.getLogger("loom_audio")

_PASS_ON = ("last_voiced_ns", "session_id", "utterance_id")


class VoiceAgent(Agent):
    """Listens for queries, decides an answer, has it spoken; barge-in stops it.

    Spawn it on ``topics.query``, ``topics.vad`` and ``topics.tts`` (see :meth:`topics_for`).
    For each ``user.query`` it asks its responder for an answer (within ``timeout_s``),
    publishes it as ``voice.reply`` on ``topics.reply`` (metadata ``text``, ``query``,
    ``responder``, ``reply_id``, ``decide_ms``) and as a ``tts.speak`` request on
    ``topics.tts``. A reply is current from that request until the TTS and every sink that
    began playing it are done. With ``barge_in``, ``vad.speech_start`` while a reply is
    current (or being decided) stops it: ``tts.stop`` for each, and the TTS and sinks drop
    what is left. A new query also replaces an answer still being decided.

    Args:
        responder: decides answers; the deterministic :class:`LocalResponder` by default.
        topics: the topics to use.
        barge_in: stop the current reply when new speech starts.
        timeout_s: how long the responder may take.
    """

    def __init__(
        self,
        responder: Responder | None = None,
        *,
        topics: AudioTopics | None = None,
        barge_in: bool = True,
        timeout_s: float = 10.0,
    ) -> None:
        self.responder: Responder = responder or LocalResponder()
        self.audio_topics = topics or AudioTopics()
        self.barge_in = barge_in
        self.timeout_s = timeout_s
        self.answered = 0
        self.barge_ins = 0
        self.failures = 0
        self._active: dict[str, set[str]] = {}
        self._deciding: asyncio.Task[None] | None = None

    @staticmethod
    def topics_for(topics: AudioTopics | None = None) -> list[str]:
        """The topics to spawn the agent on."""
        t = topics or AudioTopics()
        return [t.query, t.vad, t.tts]

    @property
    def speaking(self) -> bool:
        """Whether a reply is current."""
        return bool(self._active)

    def status(self) -> dict[str, Any]:
        """Counters."""
        return {
            "responder": self.responder.name,
            "answered": self.answered,
            "barge_ins": self.barge_ins,
            "failures": self.failures,
            "speaking": self.speaking,
        }

    async def on_stop(self, ctx: Context) -> None:
        task, self._deciding = self._deciding, None
        if task is not None and not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    @handles(USER_QUERY)
    async def on_query(self, ctx: Context, event: Event) -> None:
        previous = self._deciding
        if previous is not None and not previous.done():
            previous.cancel()
        self._deciding = asyncio.create_task(self._answer(ctx, event))

    async def _answer(self, ctx: Context, event: Event) -> None:
        query = (event.metadata.get("text") or event.payload.decode("utf-8", "replace")).strip()
        started = time.perf_counter()
        try:
            text = await asyncio.wait_for(self.responder.respond(query), self.timeout_s)
        except TimeoutError:
            self.failures += 1
            log.error(
                "voice agent: %s took over %.0f s on %r", self.responder.name, self.timeout_s, query
            )
            text = "Sorry, that took too long."
        except Exception as exc:  # noqa: BLE001  # a failing responder must not silence the agent
            self.failures += 1
            log.error("voice agent: %s failed on %r: %s", self.responder.name, query, exc)
            text = "Sorry, something went wrong."
        decide_ms = (time.perf_counter() - started) * 1000
        text = text.strip()
        if not text:
            return
        reply_id = new_reply_id()
        metadata = {k: event.metadata[k] for k in _PASS_ON if k in event.metadata}
        topics = self.audio_topics
        await ctx.emit(
            topics.reply,
            VOICE_REPLY,
            text.encode(),
            metadata={
                **metadata,
                "text": text,
                "query": query,
                "responder": self.responder.name,
                "reply_id": reply_id,
                "decide_ms": f"{decide_ms:.1f}",
            },
        )
        self._active[reply_id] = {"tts"}
        self.answered += 1
        log.info("voice agent: %r -> %r (%s, %.1f ms)", query, text, self.responder.name, decide_ms)
        await ctx.emit(
            topics.tts,
            TTS_SPEAK,
            text.encode(),
            metadata={**metadata, "reply_id": reply_id},
            priority=70,
        )

    @handles(SPEECH_START)
    async def on_speech(self, ctx: Context, event: Event) -> None:
        if not self.barge_in:
            return
        deciding = self._deciding
        if deciding is not None and not deciding.done():
            deciding.cancel()
        if not self._active:
            return
        self.barge_ins += 1
        for reply_id in list(self._active):
            log.info("voice agent: barge-in stops %s", reply_id)
            await ctx.emit(
                self.audio_topics.tts,
                TTS_STOP,
                metadata={"reply_id": reply_id, "reason": "barge_in"},
                priority=90,
            )
        self._active.clear()

    @handles(PLAYBACK_STARTED)
    async def on_playback_started(self, ctx: Context, event: Event) -> None:
        reply_id = event.metadata.get("reply_id", "")
        if reply_id:
            self._active.setdefault(reply_id, set()).add(event.metadata.get("sink", ""))

    @handles(TTS_DONE, TTS_ERROR, PLAYBACK_DONE)
    async def on_reply_progress(self, ctx: Context, event: Event) -> None:
        reply_id = event.metadata.get("reply_id", "")
        parts = self._active.get(reply_id)
        if parts is None:
            return
        parts.discard("tts" if event.type != PLAYBACK_DONE else event.metadata.get("sink", ""))
        if not parts:
            del self._active[reply_id]
