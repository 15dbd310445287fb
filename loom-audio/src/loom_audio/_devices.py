"""Audio devices through sounddevice/PortAudio: listing, lookup and rescanning."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from loom_audio._blocking import portaudio_lock
from loom_audio._deps import import_sounddevice
from loom_audio._errors import AudioDeviceError

__all__ = ["DeviceInfo", "find_device", "list_devices", "rescan_devices"]


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """One PortAudio device.

    Attributes:
        index: PortAudio's device index.
        name: its name (``pulse``, ``default``, ``USB Audio: ...``).
        hostapi: the host API (ALSA, Core Audio, WASAPI, ...).
        inputs: input channels (0 for an output-only device).
        outputs: output channels.
        default_sample_rate: the rate the device prefers.
        default_input: whether it is the default input.
        default_output: whether it is the default output.
    """

    index: int
    name: str
    hostapi: str
    inputs: int
    outputs: int
    default_sample_rate: float
    default_input: bool = False
    default_output: bool = False

    def to_json(self) -> dict[str, Any]:
        """The device as a JSON-ready dict."""
        return asdict(self)


def list_devices() -> list[DeviceInfo]:
    """Every device PortAudio sees (empty on a machine without sound devices).

    Raises:
        MissingExtraError: sounddevice is not installed (extra ``mic``).
        AudioDeviceError: the PortAudio library is missing.
    """
    sd = import_sounddevice()
    with portaudio_lock("listing devices"):
        hostapis = [api["name"] for api in sd.query_hostapis()]
        default_in, default_out = _defaults(sd)
        raw_devices = list(sd.query_devices())
    devices = []
    for index, raw in enumerate(raw_devices):
        devices.append(
            DeviceInfo(
                index=index,
                name=str(raw["name"]),
                hostapi=hostapis[raw["hostapi"]] if raw["hostapi"] < len(hostapis) else "?",
                inputs=int(raw["max_input_channels"]),
                outputs=int(raw["max_output_channels"]),
                default_sample_rate=float(raw["default_samplerate"]),
                default_input=index == default_in,
                default_output=index == default_out,
            )
        )
    return devices


def _defaults(sd: Any) -> tuple[int, int]:
    default = sd.default.device
    try:
        return int(default[0]), int(default[1])
    except (TypeError, ValueError, IndexError):
        return -1, -1


def find_device(spec: int | str | None, *, kind: str) -> DeviceInfo:
    """The device to open: by index, by a substring of its name, or the default.

    Args:
        spec: an index, a case-insensitive substring of the name, or None for the default.
        kind: ``"input"`` or ``"output"``.

    Raises:
        AudioDeviceError: no device of that kind matches; the message lists those there are.
    """
    devices = list_devices()
    usable = [d for d in devices if (d.inputs if kind == "input" else d.outputs) > 0]
    if not usable:
        raise AudioDeviceError(
            f"no audio {kind} device found (PortAudio sees {len(devices)} device(s)); "
            "`loom audio devices` lists what there is"
        )
    if spec is None:
        chosen = [d for d in usable if (d.default_input if kind == "input" else d.default_output)]
        return chosen[0] if chosen else usable[0]
    if isinstance(spec, int):
        matches = [d for d in usable if d.index == spec]
    else:
        matches = [d for d in usable if spec.lower() in d.name.lower()]
    if not matches:
        names = ", ".join(f"{d.index}: {d.name}" for d in usable)
        raise AudioDeviceError(f"no audio {kind} device matches {spec!r}; there are: {names}")
    return matches[0]


def rescan_devices() -> None:
    """Make PortAudio enumerate the devices again (after a device was plugged in).

    Closes every open sounddevice stream: call it only when none is in use.
    """
    sd = import_sounddevice()
    # sounddevice documents re-initialising as the way to rescan (its FAQ); the functions
    # are private but stable since 0.3.
    with portaudio_lock("rescanning devices"):
        sd._terminate()
        sd._initialize()
