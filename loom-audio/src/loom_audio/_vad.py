"""Voice activity detection: Silero (the ONNX model faster-whisper ships), or signal energy."""

from __future__ import annotations

import collections
import importlib
import itertools
import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from loom import Event
from loom_audio._deps import module_dir
from loom_audio._errors import AudioFormatError, AudioModelError, MissingExtraError
from loom_audio._format import AudioFormat, format_of, frame_event
from loom_audio._names import (
    AUDIO_CHUNK,
    AUDIO_END,
    AUDIO_VOICED,
    DEVICE_LOST,
    SPEECH_END,
    SPEECH_START,
    AudioTopics,
)
from loom_audio._pcm import StreamConverter, float_to_pcm16, rms_dbfs
from loom_audio._stage import Stage

if TYPE_CHECKING:
    from numpy.typing import NDArray

__all__ = [
    "VAD_RATE",
    "VAD_WINDOW",
    "EnergyVad",
    "SileroVad",
    "SpeechDetector",
    "VadConfig",
    "VadStage",
    "default_silero_path",
]

log = logging.getLogger("loom_audio")

#: The VAD works at 16 kHz mono; other input is resampled.
VAD_RATE = 16000
#: Samples per decision (Silero's window at 16 kHz: 32 ms).
VAD_WINDOW = 512
_CONTEXT = 64
_WINDOW_MS = 1000.0 * VAD_WINDOW / VAD_RATE
_utterance_ids = itertools.count(1)


class SpeechDetector(Protocol):
    """Scores one window of :data:`VAD_WINDOW` samples at 16 kHz: 0 (silence) to 1 (speech)."""

    name: str

    def __call__(self, window: NDArray[np.float32]) -> float: ...

    def reset(self) -> None:
        """Forget the stream so far (a new stream begins)."""


def default_silero_path() -> Path | None:
    """The Silero VAD model faster-whisper ships, or None when faster-whisper is absent."""
    package = module_dir("faster_whisper")
    if package is None:
        return None
    path = package / "assets" / "silero_vad_v6.onnx"
    return path if path.is_file() else None


class SileroVad:
    """Streaming Silero VAD v6 through onnxruntime: its state carries across windows.

    Args:
        path: the ``.onnx`` model; None takes the one faster-whisper ships.

    Raises:
        MissingExtraError: onnxruntime is not installed (extra ``stt``).
        AudioModelError: the model is missing or does not load; the message names it.
    """

    name = "silero"

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        model = Path(path) if path is not None else default_silero_path()
        if model is None:
            raise AudioModelError(
                "silero_vad_v6.onnx",
                "the Silero VAD model ships with faster-whisper, which is not installed: "
                "pip install 'loom-audio[stt]'",
            )
        try:
            ort = importlib.import_module("onnxruntime")
        except ImportError:
            raise MissingExtraError("stt", "onnxruntime", "the Silero VAD") from None
        options = ort.SessionOptions()
        options.inter_op_num_threads = 1
        options.intra_op_num_threads = 1
        options.log_severity_level = 4
        try:
            self._session = ort.InferenceSession(
                os.fspath(model), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # noqa: BLE001  # onnxruntime raises its own, untyped errors
            raise AudioModelError(
                os.fspath(model), f"the VAD model {model} does not load: {exc}"
            ) from None
        self.path = model
        self.reset()

    def reset(self) -> None:
        self._h = np.zeros((1, 1, 128), dtype=np.float32)
        self._c = np.zeros((1, 1, 128), dtype=np.float32)
        self._context = np.zeros(_CONTEXT, dtype=np.float32)

    def __call__(self, window: NDArray[np.float32]) -> float:
        model_input = np.concatenate((self._context, window))[None, :]
        out, self._h, self._c = self._session.run(
            None, {"input": model_input, "h": self._h, "c": self._c}
        )
        self._context = window[-_CONTEXT:]
        return float(out.reshape(-1)[0])


class EnergyVad:
    """Speech where the RMS level exceeds ``threshold_db`` dBFS: the fallback detector.

    Args:
        threshold_db: the level (dB below full scale) above which a window counts as speech.
    """

    name = "energy"

    def __init__(self, threshold_db: float = -35.0) -> None:
        self.threshold_db = threshold_db

    def reset(self) -> None:
        return None

    def __call__(self, window: NDArray[np.float32]) -> float:
        return 1.0 if rms_dbfs(window) > self.threshold_db else 0.0


@dataclass(frozen=True, slots=True)
class VadConfig:
    """How the VAD decides where speech starts and ends.

    Attributes:
        threshold: a window with a speech score at or above this starts (or continues) speech.
        neg_threshold: inside speech, a window below this counts as silence (hysteresis);
            None means ``threshold - 0.15``.
        min_speech_ms: speech must last this long before ``vad.speech_start``.
        hangover_ms: silence that ends an utterance (``vad.speech_end``).
        pre_roll_ms: audio before the start that is passed on with the utterance.
        max_speech_s: an utterance longer than this is ended (Whisper takes 30 s at once).
        model: the Silero ``.onnx`` file; None takes faster-whisper's.
        detector: ``"silero"``, or ``"energy"`` to use the level detector.
        fallback: when Silero cannot be loaded, log it and use the energy detector
            (False: fail the stage's start instead).
        energy_threshold_db: the energy detector's level.
    """

    threshold: float = 0.5
    neg_threshold: float | None = None
    min_speech_ms: float = 64.0
    hangover_ms: float = 500.0
    pre_roll_ms: float = 256.0
    max_speech_s: float = 25.0
    model: str | None = None
    detector: str = "silero"
    fallback: bool = True
    energy_threshold_db: float = -35.0

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold < 1.0:
            raise ValueError(f"vad.threshold must be within (0, 1), got {self.threshold!r}")
        neg = self.neg_threshold
        if neg is not None and not 0.0 <= neg <= self.threshold:
            raise ValueError(f"vad.neg_threshold must be within 0..threshold, got {neg!r}")
        for field in ("min_speech_ms", "hangover_ms", "pre_roll_ms"):
            value = getattr(self, field)
            if not 0.0 <= value <= 10_000.0:
                raise ValueError(f"vad.{field} must be within 0..10000 ms, got {value!r}")
        if not 1.0 <= self.max_speech_s <= 600.0:
            raise ValueError(f"vad.max_speech_s must be within 1..600, got {self.max_speech_s!r}")
        if self.detector not in ("silero", "energy"):
            raise ValueError(f"vad.detector must be 'silero' or 'energy', got {self.detector!r}")

    @property
    def low(self) -> float:
        """The threshold under which a window inside speech counts as silence."""
        if self.neg_threshold is not None:
            return self.neg_threshold
        return max(self.threshold - 0.15, 0.01)

    def windows(self, ms: float) -> int:
        """Windows (32 ms each) in ``ms``, rounded up, at least 1."""
        return max(1, math.ceil(ms / _WINDOW_MS))


def load_detector(config: VadConfig) -> SpeechDetector:
    """The detector ``config`` asks for, falling back to energy (logged) when allowed.

    Raises:
        AudioModelError, MissingExtraError: Silero does not load and ``fallback`` is off.
    """
    if config.detector == "energy":
        return EnergyVad(config.energy_threshold_db)
    try:
        return SileroVad(config.model)
    except (AudioModelError, MissingExtraError) as exc:
        if not config.fallback:
            raise
        log.warning(
            "vad: %s; falling back to the energy detector (%.0f dBFS)",
            exc,
            config.energy_threshold_db,
        )
        return EnergyVad(config.energy_threshold_db)


class _Utterance:
    __slots__ = ("frames", "id", "last_voiced_ms", "last_voiced_ns", "silence", "start_ms")

    def __init__(self, start_ms: float) -> None:
        self.id = f"utt_{next(_utterance_ids)}"
        self.start_ms = start_ms
        self.frames = 0
        self.silence = 0
        self.last_voiced_ms = start_ms
        self.last_voiced_ns = time.time_ns()


class VadStage(Stage):
    """Finds speech in source frames and passes the utterances on.

    Subscribes (Realtime) to ``audio_chunk`` frames on ``topics.mic``, in any format:
    frames are mixed to mono and resampled to 16 kHz, then scored in 32 ms windows. When
    ``min_speech_ms`` of windows score at or above the threshold, it publishes
    ``vad.speech_start``, then the pre-roll and every window of the utterance as
    ``audio_voiced`` frames (16 kHz mono, 512 samples, metadata ``utterance_id``,
    ``voiced`` 1 or 0, ``prob``), until ``hangover_ms`` of windows score under the low
    threshold: ``vad.speech_end``. Start and end go to ``topics.vad`` and, in order with the
    frames, to ``topics.voiced``.

    Args:
        config: thresholds and timings.
        topics: the topics to use.
        name: the stage's name.
        queue_size: its input queue bound (frames).
    """

    def __init__(
        self,
        config: VadConfig | None = None,
        *,
        topics: AudioTopics | None = None,
        name: str = "vad",
        queue_size: int = 256,
    ) -> None:
        super().__init__(name)
        self.config = config or VadConfig()
        self.topics = topics or AudioTopics()
        self.queue_size = queue_size
        self.detector: SpeechDetector | None = None
        self.utterances = 0
        self.windows = 0
        self._converter = StreamConverter(VAD_RATE)
        self._pending = np.zeros(0, dtype=np.float32)
        self._preroll: collections.deque[tuple[bytes, bool, float]] = collections.deque(
            maxlen=max(
                self.config.windows(self.config.pre_roll_ms),
                self.config.windows(self.config.min_speech_ms),
            )
        )
        self._run = 0
        self._position_ms = 0.0
        self._utterance: _Utterance | None = None
        self._seq = 0
        self._source = ""

    def status(self) -> dict[str, Any]:
        return {
            **super().status(),
            "detector": self.detector.name if self.detector else None,
            "utterances": self.utterances,
            "windows": self.windows,
            "in_speech": self._utterance is not None,
        }

    async def _on_start(self) -> None:
        import asyncio

        if self.detector is None:
            self.detector = await asyncio.to_thread(load_detector, self.config)
        await self._subscribe(
            self.topics.mic,
            self._on_event,
            event_types=(AUDIO_CHUNK, AUDIO_END, DEVICE_LOST),
            queue_size=self.queue_size,
        )

    async def _on_event(self, topic: str, event: Event) -> None:
        if event.type != AUDIO_CHUNK:
            await self._end_utterance("source_end" if event.type == AUDIO_END else "device_lost")
            self._reset_stream()
            return
        try:
            fmt = format_of(event, f"{self.name} <- {topic}")
        except AudioFormatError as exc:
            self._report_bad_input(f"format:{event.source}", f"{exc}; frame skipped")
            return
        if fmt.sample_rate != VAD_RATE and self._converter.input_format != fmt:
            log.info(
                "%s: resampling %s from %r to %d Hz mono", self.name, fmt, event.source, VAD_RATE
            )
        self._source = event.source
        samples = self._converter.convert(event.payload, fmt)
        pending = np.concatenate((self._pending, samples)) if self._pending.size else samples
        offset = 0
        while pending.size - offset >= VAD_WINDOW:
            await self._window(pending[offset : offset + VAD_WINDOW])
            offset += VAD_WINDOW
        self._pending = pending[offset:].copy()

    def _reset_stream(self) -> None:
        self._converter = StreamConverter(VAD_RATE)
        self._pending = np.zeros(0, dtype=np.float32)
        self._preroll.clear()
        self._run = 0
        if self.detector is not None:
            self.detector.reset()

    async def _window(self, window: NDArray[np.float32]) -> None:
        config = self.config
        self.windows += 1
        try:
            assert self.detector is not None  # loaded in _on_start
            prob = self.detector(window)
        except Exception as exc:  # noqa: BLE001  # a model failing mid-stream must not stop the VAD
            log.error("vad: %s failed (%s); switching to the energy detector", self.detector, exc)
            self.detector = EnergyVad(config.energy_threshold_db)
            prob = self.detector(window)
        pcm = float_to_pcm16(window)
        start_ms = self._position_ms
        self._position_ms += _WINDOW_MS
        utterance = self._utterance
        if utterance is None:
            voiced = prob >= config.threshold
            self._preroll.append((pcm, voiced, prob))
            self._run = self._run + 1 if voiced else 0
            if self._run >= config.windows(config.min_speech_ms):
                await self._start_utterance(start_ms)
            return
        voiced = prob >= config.low
        if voiced:
            utterance.silence = 0
            utterance.last_voiced_ms = self._position_ms
            utterance.last_voiced_ns = time.time_ns()
        else:
            utterance.silence += 1
        await self._voiced_frame(pcm, voiced, prob)
        if utterance.silence >= config.windows(config.hangover_ms):
            await self._end_utterance("silence")
        elif self._position_ms - utterance.start_ms >= config.max_speech_s * 1000.0:
            await self._end_utterance("max_length")

    async def _start_utterance(self, start_ms: float) -> None:
        first_ms = start_ms - _WINDOW_MS * (len(self._preroll) - 1)
        utterance = self._utterance = _Utterance(max(0.0, first_ms))
        self.utterances += 1
        event = Event(
            SPEECH_START,
            source=self.name,
            metadata={
                "utterance_id": utterance.id,
                "start_ms": str(round(utterance.start_ms)),
                "sample_rate": str(VAD_RATE),
                "frame_ms": str(round(_WINDOW_MS)),
                "detector": self.detector.name if self.detector else "",
                "input": self._source,
            },
            priority=70,
        )
        await self._publish(self.topics.vad, event)
        await self._publish(self.topics.voiced, event)
        preroll = list(self._preroll)
        self._preroll.clear()
        self._run = 0
        for pcm, voiced, prob in preroll:
            await self._voiced_frame(pcm, voiced, prob)

    async def _voiced_frame(self, pcm: bytes, voiced: bool, prob: float) -> None:
        utterance = self._utterance
        assert utterance is not None
        utterance.frames += 1
        event = frame_event(
            AUDIO_VOICED,
            pcm,
            _VAD_FORMAT,
            source=self.name,
            seq=self._seq,
            extra={
                "utterance_id": utterance.id,
                "voiced": "1" if voiced else "0",
                "prob": f"{prob:.2f}",
            },
            priority=80,
        )
        self._seq += 1
        await self._publish(self.topics.voiced, event)

    async def _end_utterance(self, reason: str) -> None:
        utterance, self._utterance = self._utterance, None
        if utterance is None:
            return
        event = Event(
            SPEECH_END,
            source=self.name,
            metadata={
                "utterance_id": utterance.id,
                "start_ms": str(round(utterance.start_ms)),
                "end_ms": str(round(utterance.last_voiced_ms)),
                "duration_ms": str(round(utterance.last_voiced_ms - utterance.start_ms)),
                "frames": str(utterance.frames),
                "hangover_ms": str(round(self.config.hangover_ms)),
                "last_voiced_ns": str(utterance.last_voiced_ns),
                "reason": reason,
            },
            priority=70,
        )
        await self._publish(self.topics.voiced, event)
        await self._publish(self.topics.vad, event)


_VAD_FORMAT = AudioFormat(VAD_RATE, 1)
