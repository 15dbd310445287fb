"""The one wasmtime Engine, its epoch ticker, and the compiled-artifact cache.

Every plugin compiles against the same Engine, configured with fuel (a CPU bound that does
not depend on the machine's speed) and epoch interruption (the wall-clock deadline). A
daemon thread advances the epoch every :data:`TICK_MS` while any call runs, and sleeps
while none does.

Compiled code is cached as wasmtime's serialized artifacts. ``deserialize`` trusts its
input (it maps native code), so the cache lives only in a directory this user owns and no
one else can write to, and each file is checked the same way before it is loaded; plugin
authors never supply an artifact.
"""

from __future__ import annotations

import atexit
import hashlib
import logging
import os
import stat
import tempfile
import threading
import time
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:
    import wasmtime
    import wasmtime.component

__all__ = [
    "TICK_MS",
    "Ticker",
    "close_at_exit",
    "compile_artifact",
    "default_cache_dir",
    "engine",
    "ticker",
]

log = logging.getLogger("loom_wasm")

#: Epoch tick: the granularity of every wall-clock deadline, in milliseconds.
TICK_MS = 2
#: How long the ticker keeps ticking after the last call ends.
LINGER_S = 0.5

_lock = threading.Lock()
_engine: wasmtime.Engine | None = None
_ticker: Ticker | None = None
#: Part of every cache key: bump when the Engine's configuration changes.
_ENGINE_PROFILE = b"loom-wasm/1 fuel epoch component-model"


class Ticker:
    """Advances an engine's epoch every tick while calls run, and a while after.

    ``enter`` and ``leave`` are on every call's path, so they take a plain lock and wake
    the thread only when it is asleep; the thread keeps ticking for :data:`LINGER_S` after
    the last call ends, so calls made one after another do not wake it each time.
    """

    def __init__(self, engine: wasmtime.Engine, tick_ms: int = TICK_MS) -> None:
        self._engine = engine
        self._tick = tick_ms / 1000
        self._active = 0
        self._asleep = False
        self._stopped = False
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._thread = threading.Thread(target=self._run, name="loom-wasm-epoch", daemon=True)
        self._thread.start()

    def enter(self) -> None:
        """A call starts: keep ticking until it ends."""
        with self._lock:
            self._active += 1
            if self._asleep:
                self._asleep = False
                self._cond.notify()

    def leave(self) -> None:
        """A call ended."""
        with self._lock:
            self._active -= 1

    def stop(self) -> None:
        """Stop the thread (at interpreter exit)."""
        with self._cond:
            self._stopped = True
            self._cond.notify()
        self._thread.join(timeout=1)

    def _run(self) -> None:
        # Advance by the ticks that really elapsed: a sleep often lasts longer than asked
        # (timer slack, a busy machine), and deadlines count ticks.
        clock = time.monotonic
        owed = 0.0  # ticks elapsed and not yet counted
        busy_until = 0.0
        while True:
            now = clock()
            with self._cond:
                if self._active:
                    busy_until = now + LINGER_S
                elif now >= busy_until:
                    self._asleep = True
                    while self._asleep and not self._stopped:
                        self._cond.wait()
                    owed = 0.0
                if self._stopped:
                    return
            started = clock()
            time.sleep(self._tick)
            owed += (clock() - started) / self._tick
            while owed >= 1.0:
                owed -= 1.0
                self._engine.increment_epoch()


class _Closable(Protocol):
    def close(self) -> None: ...


_open: weakref.WeakSet[_Closable] = weakref.WeakSet()


def close_at_exit(owner: _Closable) -> None:
    """Close ``owner`` at interpreter exit if it is still alive then.

    Runners hold Stores (with Python stderr callbacks) for reused instances; a Store left
    alive until the interpreter exits can make wasmtime panic, a known wasmtime-py hazard.
    """
    _open.add(owner)


def _close_all() -> None:
    for owner in list(_open):
        owner.close()


atexit.register(_close_all)


def engine() -> wasmtime.Engine:
    """The shared Engine (fuel and epoch interruption on), created on first use."""
    global _engine, _ticker
    with _lock:
        if _engine is None:
            import wasmtime

            config = wasmtime.Config()
            config.consume_fuel = True
            config.epoch_interruption = True
            config.wasm_component_model = True
            _engine = wasmtime.Engine(config)
            _ticker = Ticker(_engine)
            atexit.register(_ticker.stop)
        return _engine


def ticker() -> Ticker:
    """The shared Engine's epoch ticker."""
    engine()
    assert _ticker is not None
    return _ticker


def deadline_ticks(timeout_ms: int) -> int:
    """Epoch ticks for a deadline of ``timeout_ms`` (rounded up, plus the tick in progress)."""
    return -(-timeout_ms // TICK_MS) + 1


def default_cache_dir() -> Path:
    """``$LOOM_WASM_CACHE``, else ``$XDG_CACHE_HOME/loom/wasm``, else ``~/.cache/loom/wasm``."""
    explicit = os.environ.get("LOOM_WASM_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "loom" / "wasm"


def _unsafe(path: Path, st: os.stat_result) -> str | None:
    if st.st_uid != os.getuid():
        return f"{path} is owned by uid {st.st_uid}, not by this user"
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return f"{path} is writable by group or others"
    return None


def check_cache_dir(path: Path) -> str | None:
    """Create ``path`` (mode 0700) if needed; the reason it is unsafe, or None if it is fine."""
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = path.lstat()
    except OSError as exc:
        return f"cannot use {path}: {exc}"
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        return f"{path} is not a plain directory"
    return _unsafe(path, st)


def cache_key(kind: str, wasm: bytes) -> str:
    """The artifact's file stem: a hash of wasmtime's version, the engine profile and the bytes."""
    from importlib.metadata import version

    digest = hashlib.sha256()
    for part in (_ENGINE_PROFILE, version("wasmtime").encode(), kind.encode(), wasm):
        digest.update(len(part).to_bytes(8, "little"))
        digest.update(part)
    return digest.hexdigest()


def compile_artifact(
    kind: Literal["module", "component"], wasm: bytes | str, cache_dir: Path | None
) -> tuple[wasmtime.Module | wasmtime.component.Component, str]:
    """Compile ``wasm`` (binary, or WAT text) for the shared engine, through the cache.

    Args:
        kind: a core module or a component.
        wasm: the bytes, or WAT text.
        cache_dir: the cache directory, or None for no cache.

    Returns:
        The compiled artifact and how it was obtained: ``hit``, ``miss`` (compiled and
        stored), or ``off: <reason>`` (compiled, not cached).

    Raises:
        wasmtime.WasmtimeError: the bytes do not compile.
    """
    import wasmtime
    import wasmtime.component

    eng = engine()
    cls: type[wasmtime.Module] | type[wasmtime.component.Component] = (
        wasmtime.Module if kind == "module" else wasmtime.component.Component
    )
    if cache_dir is None:
        return cls(eng, wasm), "off: disabled"
    reason = check_cache_dir(cache_dir)
    if reason is not None:
        log.warning("loom-wasm: not caching compiled modules: %s", reason)
        return cls(eng, wasm), f"off: {reason}"
    data = wasm.encode() if isinstance(wasm, str) else wasm
    path = cache_dir / f"{cache_key(kind, data)}.cwasm"
    try:
        st = path.lstat()
    except FileNotFoundError:
        st = None
    if st is not None:
        problem = "not a plain file" if not stat.S_ISREG(st.st_mode) else _unsafe(path, st)
        if problem is None:
            try:
                return cls.deserialize_file(eng, str(path)), "hit"
            except wasmtime.WasmtimeError as exc:
                log.warning("loom-wasm: dropping unreadable cache entry %s: %s", path, exc)
        else:
            log.warning("loom-wasm: ignoring cache entry: %s", problem)
        path.unlink(missing_ok=True)
    artifact = cls(eng, wasm)
    fd, tmp = tempfile.mkstemp(dir=cache_dir, prefix=".tmp-", suffix=".cwasm")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(artifact.serialize())
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        return artifact, f"off: cannot write {path}: {exc}"
    return artifact, "miss"
