"""Turning what wasmtime raises, and what a guest returns, into classified call errors."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from loom_wasm._errors import ErrorKind

__all__ = ["CallFailure", "classify", "decode_guest_error", "trap_summary"]

_MAX_DETAIL = 2000
_GUEST_CODE_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")


@dataclass
class CallFailure(Exception):
    """A classified failure inside a worker thread; the provider turns it into a CapabilityError.

    Attributes:
        kind: the classification.
        message: what happened.
        details: extra str to str context.
        code: the error code (``CAPABILITY_ERROR`` unless the guest chose another).
        discard: the instance is not to be reused.
    """

    kind: ErrorKind
    message: str
    details: dict[str, str] = field(default_factory=dict)
    code: str = "CAPABILITY_ERROR"
    discard: bool = True

    def __str__(self) -> str:
        return f"{self.kind}: {self.message}"


def trap_summary(text: str) -> tuple[str, str]:
    """(the cause, the backtrace) of a wasmtime trap or error message."""
    head, sep, cause = text.partition("Caused by:")
    if not sep:
        return text.strip(), ""
    lines = [line.strip() for line in cause.strip().splitlines() if line.strip()]
    return " / ".join(lines), head.strip()[:_MAX_DETAIL]


def classify(
    exc: BaseException,
    *,
    fuel: int,
    timeout_ms: int,
    memory_cap: int,
    memory_now: int | None,
    memory_initial: int = 0,
) -> CallFailure:
    """Classify an exception raised by wasmtime during instantiation or a call.

    Args:
        exc: a ``wasmtime.Trap``, ``wasmtime.WasmtimeError`` (``ExitTrap`` for
            ``proc_exit``) or anything else.
        fuel: the fuel the call had.
        timeout_ms: its deadline.
        memory_cap: the memory cap in bytes.
        memory_now: the guest memory's size when it failed, if known.
        memory_initial: the memory's size at instantiation. A trap counts as hitting the
            memory cap when the memory grew to within a page of the cap.
    """
    import wasmtime

    if isinstance(exc, wasmtime.ExitTrap):
        return CallFailure(ErrorKind.TRAP, f"the guest exited with status {exc.code}")
    text = exc.message if isinstance(exc, wasmtime.Trap) else str(exc)
    cause, backtrace = trap_summary(text)
    details = {"trap": cause}
    if backtrace:
        details["backtrace"] = backtrace
    code = exc.trap_code if isinstance(exc, wasmtime.Trap) else None
    if code == wasmtime.TrapCode.OUT_OF_FUEL or "all fuel consumed" in cause:
        return CallFailure(
            ErrorKind.FUEL, f"ran out of fuel ({fuel} per call)", details | {"fuel": str(fuel)}
        )
    if code == wasmtime.TrapCode.INTERRUPT or "interrupt" in cause:
        return CallFailure(
            ErrorKind.TIMEOUT,
            f"did not finish within its {timeout_ms} ms deadline",
            details | {"timeout_ms": str(timeout_ms)},
        )
    near_cap = (
        memory_now is not None and memory_now > memory_initial and memory_now + 65536 > memory_cap
    )
    if near_cap or ("memory" in cause and ("limit" in cause or "exceeds" in cause)):
        return CallFailure(
            ErrorKind.MEMORY,
            f"hit the memory cap of {memory_cap} bytes ({cause})",
            details | {"memory_bytes": str(memory_cap)},
        )
    if isinstance(exc, (wasmtime.Trap, wasmtime.WasmtimeError)):
        return CallFailure(ErrorKind.TRAP, f"trapped: {cause}", details)
    return CallFailure(ErrorKind.TRAP, f"failed: {type(exc).__name__}: {exc}", details)


def decode_guest_error(raw: bytes) -> CallFailure:
    """The failure a guest reported through the ABI's error flag.

    The bytes are a JSON object ``{"code": "...", "message": "..."}`` (code optional,
    upper-case letters, digits and ``_``), or plain UTF-8 text taken as the message.
    """
    text = raw.decode("utf-8", errors="replace")
    code = "CAPABILITY_ERROR"
    message = text
    details: dict[str, str] = {}
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict):
        message = str(data.get("message", text))
        asked = data.get("code")
        if isinstance(asked, str) and 0 < len(asked) <= 64 and set(asked) <= _GUEST_CODE_CHARS:
            code = asked
        for key, value in data.items():
            if key not in ("code", "message"):
                details[f"guest.{key}"] = str(value)[:_MAX_DETAIL]
    return CallFailure(
        ErrorKind.GUEST, f"the plugin reported: {message[:_MAX_DETAIL]}", details, code, False
    )
