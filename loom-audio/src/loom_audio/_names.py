"""Event types and default topics of the audio stages (upstream Loom's names where it has them)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

__all__ = [
    "AUDIO_CHUNK",
    "AUDIO_END",
    "AUDIO_OUT",
    "AUDIO_VOICED",
    "DEVICE_LOST",
    "DEVICE_RESTORED",
    "PLAYBACK_DONE",
    "PLAYBACK_STARTED",
    "SPEECH_END",
    "SPEECH_START",
    "TRANSCRIPT_FINAL",
    "TRANSCRIPT_PARTIAL",
    "TTS_DONE",
    "TTS_ERROR",
    "TTS_SPEAK",
    "TTS_START",
    "TTS_STOP",
    "USER_QUERY",
    "VOICE_REPLY",
    "WAKE_DETECTED",
    "AudioTopics",
]

#: A frame from a source (microphone, WAV file, tone).
AUDIO_CHUNK: Final = "audio_chunk"
#: A frame the VAD passes on, inside an utterance.
AUDIO_VOICED: Final = "audio_voiced"
#: A chunk of reply audio on its way to the sinks.
AUDIO_OUT: Final = "audio_out"
#: A source reached its end (a WAV file, a tone of fixed length).
AUDIO_END: Final = "audio.end"
#: A microphone stopped delivering audio; the source keeps trying to reopen it.
DEVICE_LOST: Final = "audio.device_lost"
#: A lost microphone delivers audio again.
DEVICE_RESTORED: Final = "audio.device_restored"
#: The VAD saw speech begin.
SPEECH_START: Final = "vad.speech_start"
#: The VAD saw speech end (after the hangover).
SPEECH_END: Final = "vad.speech_end"
#: A transcript of the utterance so far, while it goes on.
TRANSCRIPT_PARTIAL: Final = "transcript.partial"
#: The transcript of a whole utterance.
TRANSCRIPT_FINAL: Final = "transcript.final"
#: The wake phrase was heard.
WAKE_DETECTED: Final = "wake_word_detected"
#: What the user asked, after the wake phrase.
USER_QUERY: Final = "user.query"
#: The voice agent's answer, as text.
VOICE_REPLY: Final = "voice.reply"
#: A request to speak text (payload: the text, or JSON ``{"text", "voice", "rate"}``).
TTS_SPEAK: Final = "tts.speak"
#: Synthesis of a reply began.
TTS_START: Final = "tts.start"
#: Synthesis of a reply finished.
TTS_DONE: Final = "tts.done"
#: Synthesis of a reply failed.
TTS_ERROR: Final = "tts.error"
#: Stop a reply (barge-in): synthesis ends and sinks drop what they hold of it.
TTS_STOP: Final = "tts.stop"
#: A sink began to output a reply (its first audio).
PLAYBACK_STARTED: Final = "playback.started"
#: A sink finished (or dropped) a reply.
PLAYBACK_DONE: Final = "playback.done"


@dataclass(frozen=True, slots=True)
class AudioTopics:
    """The topics the audio stages talk on; every stage takes one of these.

    Attributes:
        mic: source frames (``audio_chunk``), the VAD's input.
        vad: ``vad.speech_start`` / ``vad.speech_end``.
        voiced: the utterance's frames (``audio_voiced``), with the speech start and end
            events interleaved, the STT's input.
        transcript: ``transcript.partial`` / ``transcript.final``.
        wake: ``wake_word_detected``.
        query: ``user.query``, the voice agent's input.
        reply: ``voice.reply``, the agent's answers as text.
        tts: speak requests, ``tts.start`` / ``tts.done`` / ``tts.error`` / ``tts.stop``,
            and the sinks' ``playback.*`` reports.
        out: reply audio (``audio_out``), the sinks' input.
    """

    mic: str = "audio.mic"
    vad: str = "vad"
    voiced: str = "audio.voiced"
    transcript: str = "transcript"
    wake: str = "wake"
    query: str = "query"
    reply: str = "reply"
    tts: str = "tts"
    out: str = "audio.out"
