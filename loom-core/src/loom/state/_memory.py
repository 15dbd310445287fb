"""The memory state store: a dict, lost at exit. For tests and ephemeral setups."""

from __future__ import annotations

from collections.abc import AsyncIterator

from loom.state._base import StateStore
from loom.state._errors import StateStoreClosedError

__all__ = ["MemoryStateStore"]


class MemoryStateStore(StateStore):
    """A :class:`~loom.state.StateStore` in a dict.

    Nothing is ever durable: ``sync`` and :meth:`flush` are accepted and do nothing, and
    the data is gone when the process exits. Every method runs inline (no thread).

    Example:
        >>> import asyncio
        >>> store = MemoryStateStore()
        >>> asyncio.run(store.put("k", b"v"))
        >>> asyncio.run(store.get("k"))
        b'v'
    """

    def __init__(self) -> None:
        self._data: dict[str, bytes] = {}
        self._closed = False

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{len(self._data)} keys"
        return f"<MemoryStateStore {state}>"

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    async def close(self) -> None:
        """Mark the store closed; its data is dropped."""
        self._closed = True
        self._data = {}

    def _check(self) -> dict[str, bytes]:
        if self._closed:
            raise StateStoreClosedError("the memory state store is closed")
        return self._data

    async def _get(self, key: str) -> bytes | None:
        return self._check().get(key)

    async def _put(self, key: str, value: bytes, sync: bool) -> None:
        self._check()[key] = value

    async def _delete(self, key: str, sync: bool) -> None:
        self._check().pop(key, None)

    async def _scan(self, prefix: str) -> AsyncIterator[tuple[str, bytes]]:
        data = self._check()
        # A snapshot, so writes during the iteration do not break it. Python orders str by
        # code point, which is the UTF-8 byte order RocksDB uses.
        items = sorted((k, v) for k, v in data.items() if k.startswith(prefix))
        for item in items:
            yield item

    async def _flush(self) -> None:
        self._check()

    async def _delete_prefix(self, prefix: str, sync: bool) -> int:
        data = self._check()
        keys = [k for k in data if k.startswith(prefix)]
        for key in keys:
            del data[key]
        return len(keys)
