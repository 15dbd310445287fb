"""The voice agent: listen -> VAD -> STT -> wake phrase -> decide -> TTS -> speaker or WAV.

    python examples/voice_agent/main.py            # microphone to speaker: say
                                                   # "Hey Loom, what time is it?"
    python examples/voice_agent/main.py --demo     # no sound hardware needed

``--demo`` synthesises three spoken questions with piper, feeds them to the agent as a WAV
file in real time, writes the agent's spoken replies to ``--out`` (``replies/``), and
transcribes them back so you can read what it said. Needs ``pip install
'loom-audio[stt,tts]'``; the microphone and speaker also need ``loom-audio[mic]`` and
PortAudio (``scripts/audio-deps.sh``).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import sys
import tempfile
from pathlib import Path

import numpy as np

from loom.host import create_host
from loom_audio import (
    AudioFormat,
    PiperEngine,
    SinkConfig,
    SourceConfig,
    VoiceApp,
    VoiceConfig,
    WhisperTranscriber,
    read_wav,
    write_wav,
)
from loom_audio._pcm import pcm16_to_mono_float, resample

QUESTIONS = (
    "Hey Loom, what time is it?",
    "Hey Loom, echo hello world.",
    "Hey Loom, what can you do?",
)


def synthesise_questions(path: Path) -> None:
    """Write the demo's questions, with pauses, as one 16 kHz WAV file.

    Piper's noise is off, so the questions sound the same on every run.
    """
    engine = PiperEngine(noise_scale=0.0, noise_w_scale=0.0)
    pause = np.zeros(int(3.5 * 16000), dtype=np.float32)
    parts = []
    for question in QUESTIONS:
        pcm = b"".join(engine.synthesize(question))
        parts += [resample(pcm16_to_mono_float(pcm), engine.sample_rate, 16000), pause]
    audio = np.concatenate(parts)
    write_wav(path, (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes(), AudioFormat(16000, 1))


async def run(args: argparse.Namespace) -> int:
    config = VoiceConfig.from_toml(args.config) if args.config else VoiceConfig()
    host = create_host()  # the stages come from the audio plugin's contributions
    if args.demo:
        out = Path(args.out)
        question = Path(tempfile.mkdtemp(prefix="voice-demo-")) / "questions.wav"
        synthesise_questions(question)
        config = dataclasses.replace(
            config,
            source=SourceConfig(kind="wav", path=str(question)),
            sink=SinkConfig(speaker=False, wav_dir=str(out)),
        )
    async with VoiceApp(config, host=host) as app:
        print("voice agent: listening (Ctrl+C to stop)", file=sys.stderr)
        await app.run(seconds=args.seconds, until_source_ends=config.source.kind == "wav")
        status = app.status()
    if args.demo:
        model = WhisperTranscriber()
        for path in sorted(Path(args.out).glob("reply-*.wav")):
            fmt, pcm = read_wav(path)
            audio = resample(pcm16_to_mono_float(pcm), fmt.sample_rate, 16000)
            print(f"{path.name}: {model.transcribe(audio).text}")
    agent = status.get("agent", {})
    print(f"answered {agent.get('answered', 0)} queries with {agent.get('responder', '?')}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", help="a voice_agent.toml (see the one beside this file)")
    parser.add_argument(
        "--demo", action="store_true", help="no hardware: spoken questions from a file"
    )
    parser.add_argument("--out", default="replies", help="where --demo writes the replies")
    parser.add_argument("--seconds", type=float, help="stop after this long")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every stage")
    args = parser.parse_args()
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("faster_whisper").setLevel(logging.WARNING)
    try:
        return asyncio.run(run(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
