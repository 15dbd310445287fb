"""The RocksDB state store, on rocksdict: the embedded default.

Write path, measured on the development machine (see ``loom bench --scenario state.``):

- An unsynced ``put`` goes inline (no thread): RocksDB appends it to its write-ahead log
  and memtable in about 2 µs, so it is visible to the next ``get`` at once and survives a
  crash of the process (the log is in the kernel's page cache). Only a power loss or a
  kernel crash before the next fsync can lose it. Handing such a put to a worker thread
  costs about 50 µs, 25 times the put itself.
- A synced ``put`` (``sync=True``) fsyncs the log, which takes 0.3 ms on an SSD and can take
  many ms elsewhere, so it runs in a worker thread (``anyio.to_thread``) while the event
  loop goes on. The thread adds little to the fsync. Every unsynced write before it
  becomes durable with it: the log is synced as a whole.
- :meth:`RocksDBStateStore.flush` fsyncs the log (``flush_wal(sync=True)``), also in a
  thread; :meth:`~RocksDBStateStore.close` flushes, then closes.

Batching unsynced writes in a Python-side ``WriteBatch`` was measured too: faster (about
1,000,000 puts/s against 650,000 for plain puts) but it needs a read-through overlay to keep
``get`` consistent and loses every buffered write when the process dies, so it is not used.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import anyio.to_thread

from loom.state._base import StateStore
from loom.state._errors import (
    InvalidStateError,
    StateStoreClosedError,
    StateStoreError,
    StateStoreLockedError,
)

if TYPE_CHECKING:
    from rocksdict import Options, Rdict, WriteOptions

__all__ = ["RocksDBStateStore"]

T = TypeVar("T")

#: Pairs read per RocksDB iterator during a scan. An iterator keeps the database open, so
#: none is held while the scan is suspended at a ``yield``.
_SCAN_CHUNK = 512


class RocksDBStateStore(StateStore):
    """A :class:`~loom.state.StateStore` in a RocksDB directory.

    The directory is created if missing and opened at construction (which takes a few
    milliseconds and blocks). One process, and one open store in it, holds a directory at a
    time: RocksDB locks it.

    Args:
        path: the database directory.
        options: ``rocksdict.Options`` to open with, for tuning; they must be made with
            ``raw_mode=True``. By default: create if missing, keep 4 info log files.

    Raises:
        StateStoreLockedError: another process, or another open store in this process,
            holds the directory.
        StateStoreError: RocksDB could not open it for another reason.

    Example:
        .. code-block:: python

            async with RocksDBStateStore("/var/lib/myapp/state") as store:
                await store.put("greeting", b"hello", sync=True)
    """

    def __init__(self, path: str | os.PathLike[str], *, options: Options | None = None) -> None:
        from rocksdict import Options, Rdict, WriteOptions  # heavy: only when a store is made

        self.path = os.fspath(path)
        if options is None:
            options = Options(raw_mode=True)
            options.create_if_missing(True)
            options.set_keep_log_file_num(4)
        os.makedirs(self.path, exist_ok=True)
        try:
            self._db: Rdict | None = Rdict(self.path, options)
        except Exception as exc:  # rocksdict raises a bare Exception carrying RocksDB's status
            raise _open_error(self.path, exc) from exc
        self._sync_options: WriteOptions = WriteOptions()
        self._sync_options.sync = True
        self._busy = 0  # operations running in worker threads; close() waits for them

    def __repr__(self) -> str:
        return f"<RocksDBStateStore {self.path!r}{' closed' if self._db is None else ''}>"

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._db is None

    async def close(self) -> None:
        """Wait for writes in flight, fsync the log, close the database and release its lock.

        Shielded from cancellation, so the lock is always released.
        """
        db = self._db
        if db is None:
            return
        self._db = None  # from here on, new calls fail with StateStoreClosedError
        with anyio.CancelScope(shield=True):
            while self._busy:
                await anyio.sleep(0.001)
            await anyio.to_thread.run_sync(_close_db, db)

    # -- primitives ---------------------------------------------------------------------------

    def _open_db(self) -> Rdict:
        db = self._db
        if db is None:
            raise StateStoreClosedError(f"state store {self.path!r} is closed")
        return db

    async def _in_thread(self, function: Callable[..., T], *args: Any) -> T:
        self._busy += 1
        try:
            return await anyio.to_thread.run_sync(function, *args)
        finally:
            self._busy -= 1

    async def _get(self, key: str) -> bytes | None:
        value: bytes | None = self._open_db().get(_encode(key))
        return value

    async def _put(self, key: str, value: bytes, sync: bool) -> None:
        db = self._open_db()
        if sync:
            await self._in_thread(db.put, _encode(key), value, self._sync_options)
        else:
            db.put(_encode(key), value)

    async def _delete(self, key: str, sync: bool) -> None:
        db = self._open_db()
        if sync:
            await self._in_thread(db.delete, _encode(key), self._sync_options)
        else:
            db.delete(_encode(key))

    async def _scan(self, prefix: str) -> AsyncIterator[tuple[str, bytes]]:
        start = wanted = _encode(prefix)
        while True:
            chunk = _read_chunk(self._open_db(), start, wanted)
            for key, value in chunk:
                yield key.decode(), value
            if len(chunk) < _SCAN_CHUNK:
                return
            start = chunk[-1][0] + b"\x00"  # the next key after the last one read

    async def _flush(self) -> None:
        db = self._open_db()
        await self._in_thread(db.flush_wal, True)

    async def _delete_prefix(self, prefix: str, sync: bool) -> int:
        from rocksdict import WriteBatch

        wanted = _encode(prefix)
        count = 0
        while True:
            db = self._open_db()
            chunk = _read_chunk(db, wanted, wanted)
            if not chunk:
                break
            batch = WriteBatch(raw_mode=True)
            for key, _ in chunk:
                batch.delete(key)
            db.write(batch)
            count += len(chunk)
        if sync and count:
            await self._flush()
        return count


def _encode(key: str) -> bytes:
    try:
        return key.encode()
    except UnicodeEncodeError as exc:
        raise InvalidStateError(f"state key {key!r} is not valid UTF-8: {exc}") from exc


def _read_chunk(db: Rdict, start: bytes, prefix: bytes) -> list[tuple[bytes, bytes]]:
    """Up to ``_SCAN_CHUNK`` pairs from ``start`` on whose key starts with ``prefix``."""
    it = db.iter()
    it.seek(start)
    out: list[tuple[bytes, bytes]] = []
    while it.valid() and len(out) < _SCAN_CHUNK:
        key: bytes = it.key()
        if not key.startswith(prefix):
            break
        out.append((key, it.value()))
        it.next()
    return out  # the iterator is dropped here, so it does not keep the database open


def _close_db(db: Rdict) -> None:
    try:
        db.flush_wal(True)
    finally:
        db.close()


def _open_error(path: str, exc: Exception) -> StateStoreError:
    detail = str(exc)
    if "lock hold by current process" in detail:
        return StateStoreLockedError(
            path, "another store in this process has it open; close that one first"
        )
    if "LOCK" in detail or "lock" in detail:
        return StateStoreLockedError(
            path, f"another process holds it (RocksDB: {detail}); stop that process first"
        )
    return StateStoreError(f"cannot open state store {path!r}: {detail}")
