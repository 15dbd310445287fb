"""``loom audio``: devices, say, transcribe, and the voice agent. Imports stay inside ``run``."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from loom.contributions import CliCommand

if TYPE_CHECKING:
    from loom.host import PluginHost

__all__ = ["AUDIO_COMMAND"]


def _configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="audio_command", metavar="SUBCOMMAND")
    devices = sub.add_parser("devices", help="list audio input and output devices")
    devices.add_argument("--json", action="store_true", help="print one JSON document")

    say = sub.add_parser("say", help="speak text (piper; espeak-ng when piper is missing)")
    say.add_argument("text")
    say.add_argument("--wav", metavar="PATH", help="write a WAV file instead of playing")
    say.add_argument("--voice", help="piper voice name or .onnx path")
    say.add_argument("--engine", default="auto", choices=["auto", "piper", "espeak-ng"])

    transcribe = sub.add_parser("transcribe", help="transcribe a WAV file (faster-whisper)")
    transcribe.add_argument("path")
    transcribe.add_argument("--model", help="model name or directory (default: installed tiny.en)")
    transcribe.add_argument("--language", default="en", help="language, or 'auto'")
    transcribe.add_argument("--beam", type=int, default=1, help="beam size")

    voice = sub.add_parser("voice", help="run the voice agent (microphone to speaker by default)")
    voice.add_argument("--config", metavar="TOML", help="a voice_agent.toml")
    voice.add_argument(
        "--wav-in", metavar="PATH", help="listen to a WAV file instead of the microphone"
    )
    voice.add_argument("--wav-out", metavar="DIR", help="write each reply to a WAV file in DIR")
    voice.add_argument("--no-speaker", action="store_true", help="do not play replies")
    voice.add_argument(
        "--no-wake", action="store_true", help="answer every utterance, no wake phrase"
    )
    voice.add_argument("--seconds", type=float, help="stop after this long")


def _run(args: argparse.Namespace, host: PluginHost) -> int | Awaitable[int]:
    command = getattr(args, "audio_command", None)
    if command is None:
        print("usage: loom audio {devices,say,transcribe,voice} ...", file=sys.stderr)
        return 2
    if command == "voice":
        return _guarded_voice(args, host)
    handlers: dict[str, Callable[[argparse.Namespace, PluginHost], int]] = {
        "devices": _devices,
        "say": _say,
        "transcribe": _transcribe,
    }
    from loom_audio._errors import AudioError

    try:
        return handlers[command](args, host)
    except AudioError as exc:  # MissingExtraError too: it names what to install
        print(f"loom audio {command}: {exc}", file=sys.stderr)
        return 1


async def _guarded_voice(args: argparse.Namespace, host: PluginHost) -> int:
    from loom_audio._config import VoiceConfigError
    from loom_audio._errors import AudioError

    try:
        return await _voice(args, host)
    except (AudioError, VoiceConfigError) as exc:
        print(f"loom audio voice: {exc}", file=sys.stderr)
        return 1


def _devices(args: argparse.Namespace, host: PluginHost) -> int:
    from loom_audio._devices import list_devices

    devices = list_devices()
    if args.json:
        print(json.dumps([d.to_json() for d in devices], indent=2))
        return 0
    if not devices:
        print(
            "no audio devices found: PortAudio sees no sound card and no sound server "
            "(start PulseAudio or PipeWire, or plug in a device)"
        )
        return 0
    print(f"{'#':>3}  {'in':>3} {'out':>3}  {'rate':>7}  {'host api':<10} name")
    for d in devices:
        mark = ("<" if d.default_input else " ") + (">" if d.default_output else " ")
        print(
            f"{d.index:>3}  {d.inputs:>3} {d.outputs:>3}  {d.default_sample_rate:>7.0f}  "
            f"{d.hostapi:<10} {d.name} {mark}".rstrip()
        )
    print("(< default input, > default output)")
    return 0


def _say(args: argparse.Namespace, host: PluginHost) -> int:
    from loom_audio._capability import speak

    result = speak(args.text, voice=args.voice, wav_path=args.wav, engine=args.engine)
    print(json.dumps(result))
    return 0


def _transcribe(args: argparse.Namespace, host: PluginHost) -> int:
    from loom_audio._format import AudioFormat
    from loom_audio._pcm import pcm16_to_mono_float
    from loom_audio._wav import conform, read_wav
    from loom_audio._whisper import SttConfig, WhisperTranscriber

    fmt, pcm = read_wav(args.path)
    target = AudioFormat(16000, 1)
    pcm = conform(pcm, fmt, target, resample_ok=True, where=args.path)
    model = WhisperTranscriber(
        SttConfig(model=args.model, language=args.language, beam_size=args.beam)
    )
    transcript = model.transcribe(pcm16_to_mono_float(pcm))
    print(transcript.text)
    print(
        f"({transcript.audio_s:.1f} s of audio in {transcript.seconds:.2f} s, "
        f"RTF {transcript.rtf:.3f}, {model.model_name} on {model.device})",
        file=sys.stderr,
    )
    return 0


async def _voice(args: argparse.Namespace, host: PluginHost) -> int:
    import dataclasses
    import logging

    from loom_audio._app import VoiceApp
    from loom_audio._config import SourceConfig, VoiceConfig

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    config = VoiceConfig.from_toml(args.config) if args.config else VoiceConfig()
    if args.wav_in:
        config = dataclasses.replace(config, source=SourceConfig(kind="wav", path=args.wav_in))
    sink = config.sink
    if args.wav_out:
        sink = dataclasses.replace(sink, wav_dir=args.wav_out)
    if args.no_speaker:
        sink = dataclasses.replace(sink, speaker=False)
    config = dataclasses.replace(config, sink=sink)
    if args.no_wake:
        config = dataclasses.replace(config, wake=dataclasses.replace(config.wake, phrases=()))
    async with VoiceApp(config, host=host) as app:
        print("voice agent: listening (Ctrl+C to stop)", file=sys.stderr)
        await app.run(seconds=args.seconds, until_source_ends=config.source.kind == "wav")
        report: dict[str, Any] = app.status()
    print(json.dumps(report, indent=2, default=str))
    return 0


AUDIO_COMMAND = CliCommand(
    name="audio",
    description="Audio: list devices, speak, transcribe, run the voice agent",
    run=_run,
    configure=_configure,
)
