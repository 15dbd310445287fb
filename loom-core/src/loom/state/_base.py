"""The StateStore interface, namespaced views, and the agent key scheme."""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator
from types import TracebackType
from typing import Final

from loom.state._errors import InvalidStateError

__all__ = [
    "AGENT_NAMESPACE",
    "AGENT_STATE_KEY",
    "NAMESPACE_SEPARATOR",
    "StateStore",
    "load_agent_state",
    "save_agent_state",
]

#: Joins a namespace to the keys inside it. Keys and namespace names may not contain it,
#: so a namespaced key can never collide with a key of another namespace or of the root.
NAMESPACE_SEPARATOR: Final = "\x00"

#: The namespace under which :meth:`StateStore.for_agent` keeps each agent's keys.
AGENT_NAMESPACE: Final = "agent"

#: The key, inside an agent's namespace, that :func:`save_agent_state` writes.
AGENT_STATE_KEY: Final = "state"


class StateStore(abc.ABC):
    """A key-value store for agent state: str keys, bytes values, async methods.

    Keys are str without NUL characters; values are bytes (encode text or JSON first).
    :meth:`scan` yields keys in order of their UTF-8 bytes (for str: code point order).

    Durability: ``put(..., sync=True)`` and ``delete(..., sync=True)`` are durable when they
    return. Without ``sync`` a write is visible at once to every read through this store and
    becomes durable at the latest with the next synced write, :meth:`flush` or :meth:`close`
    (what "durable" means depends on the backend; the memory store never is).

    Namespaces: :meth:`namespace` returns a view whose keys live under a prefix, so that
    several users share one store without seeing each other's keys. Views nest.
    :meth:`for_agent` is the view the agent runtime hands to each agent; the key layout is
    ``agent<NUL>{agent_id}<NUL>{key}``.

    A store is used from one event loop at a time. Subclasses implement the ``_``-prefixed
    primitives; the public methods validate their arguments and call them.

    Example:
        >>> import asyncio
        >>> from loom.state import MemoryStateStore
        >>> async def demo() -> bytes | None:
        ...     async with MemoryStateStore() as store:
        ...         counter = store.for_agent("counter-1")
        ...         await counter.put("count", b"41")
        ...         return await counter.get("count")
        >>> asyncio.run(demo())
        b'41'
    """

    # -- public API ---------------------------------------------------------------------

    async def get(self, key: str) -> bytes | None:
        """The value stored under ``key``, or None if there is none.

        Raises:
            InvalidStateError: ``key`` is not a str or holds a NUL character.
            StateStoreClosedError: the store is closed.
        """
        if key.__class__ is not str or NAMESPACE_SEPARATOR in key:
            _bad_key(key)
        return await self._get(key)

    async def put(self, key: str, value: bytes, *, sync: bool = False) -> None:
        """Store ``value`` under ``key``, replacing what was there.

        Args:
            key: the key.
            value: the value, as bytes.
            sync: be durable on return; otherwise durable at the next sync, flush or close.

        Raises:
            InvalidStateError: a bad key, or a value that is not bytes.
            StateStoreClosedError: the store is closed.
        """
        if key.__class__ is not str or NAMESPACE_SEPARATOR in key:
            _bad_key(key)
        if value.__class__ is not bytes:
            _bad_value(value)
        await self._put(key, value, sync)

    async def delete(self, key: str, *, sync: bool = False) -> None:
        """Remove ``key``; nothing happens if it is not there.

        Args:
            key: the key.
            sync: be durable on return.

        Raises:
            InvalidStateError: a bad key.
            StateStoreClosedError: the store is closed.
        """
        if key.__class__ is not str or NAMESPACE_SEPARATOR in key:
            _bad_key(key)
        await self._delete(key, sync)

    def scan(self, prefix: str = "") -> AsyncIterator[tuple[str, bytes]]:
        """Iterate over ``(key, value)`` pairs whose key starts with ``prefix``, in key order.

        Writes made during the iteration may or may not be seen.

        Example:
            .. code-block:: python

                async for key, value in store.scan("sensor."):
                    ...

        Raises:
            InvalidStateError: a bad prefix (raised at once, not on first iteration).
            StateStoreClosedError: the store is closed.
        """
        if prefix.__class__ is not str or NAMESPACE_SEPARATOR in prefix:
            _bad_key(prefix)
        return self._scan(prefix)

    async def delete_prefix(self, prefix: str, *, sync: bool = False) -> int:
        """Remove every key that starts with ``prefix`` and return how many there were.

        ``delete_prefix("")`` on a namespace clears that namespace (say, when an agent is
        deleted for good).

        Raises:
            InvalidStateError: a bad prefix.
            StateStoreClosedError: the store is closed.
        """
        if prefix.__class__ is not str or NAMESPACE_SEPARATOR in prefix:
            _bad_key(prefix)
        return await self._delete_prefix(prefix, sync)

    async def flush(self) -> None:
        """Make every write so far durable (a no-op for the memory store).

        Raises:
            StateStoreClosedError: the store is closed.
        """
        await self._flush()

    @abc.abstractmethod
    async def close(self) -> None:
        """Flush and release the store (its files and lock). Closing twice does nothing.

        Closing a namespace view does nothing: whoever opened the store closes it.
        """

    @property
    @abc.abstractmethod
    def closed(self) -> bool:
        """Whether the store has been closed."""

    def namespace(self, name: str) -> StateStore:
        """A view of this store whose keys all live under ``name``.

        The view's ``get("k")`` reads this store's key ``name<NUL>k``; its :meth:`scan`
        strips the prefix again. Views of views nest.

        Raises:
            InvalidStateError: ``name`` is empty, not a str, or holds a NUL character.
        """
        if name.__class__ is not str or not name or NAMESPACE_SEPARATOR in name:
            raise InvalidStateError(
                f"a namespace name is a non-empty str without NUL characters, got {name!r}"
            )
        return _NamespacedStateStore(self._root(), self._prefix() + name + NAMESPACE_SEPARATOR)

    def for_agent(self, agent_id: str) -> StateStore:
        """The namespace that holds one agent's persistent state (``agent<NUL>{agent_id}``).

        The agent runtime gives each agent this view; an agent sees only its own keys.

        Raises:
            InvalidStateError: ``agent_id`` is empty or holds a NUL character.
        """
        return self.namespace(AGENT_NAMESPACE).namespace(agent_id)

    async def __aenter__(self) -> StateStore:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- what a backend implements ----------------------------------------------------------

    @abc.abstractmethod
    async def _get(self, key: str) -> bytes | None:
        """Read a validated key."""

    @abc.abstractmethod
    async def _put(self, key: str, value: bytes, sync: bool) -> None:
        """Write a validated key and value."""

    @abc.abstractmethod
    async def _delete(self, key: str, sync: bool) -> None:
        """Remove a validated key."""

    @abc.abstractmethod
    def _scan(self, prefix: str) -> AsyncIterator[tuple[str, bytes]]:
        """Iterate over the pairs under a validated prefix, in key order."""

    @abc.abstractmethod
    async def _flush(self) -> None:
        """Make the writes so far durable."""

    async def _delete_prefix(self, prefix: str, sync: bool) -> int:
        """Remove the keys under a validated prefix; backends may do it in one batch."""
        keys = [key async for key, _ in self._scan(prefix)]
        for key in keys:
            await self._delete(key, False)
        if sync and keys:
            await self._flush()
        return len(keys)

    def _root(self) -> StateStore:
        """The store that holds the data (itself, unless this is a view)."""
        return self

    def _prefix(self) -> str:
        """What this view puts before every key ("" for a store)."""
        return ""


class _NamespacedStateStore(StateStore):
    """A view of a store under a key prefix; see :meth:`StateStore.namespace`."""

    def __init__(self, base: StateStore, key_prefix: str) -> None:
        self._base = base
        self._key_prefix = key_prefix

    def __repr__(self) -> str:
        shown = self._key_prefix.rstrip(NAMESPACE_SEPARATOR).replace(NAMESPACE_SEPARATOR, "/")
        return f"<namespace {shown!r} of {self._base!r}>"

    async def close(self) -> None:
        """Do nothing: the view does not own the store."""

    @property
    def closed(self) -> bool:
        """Whether the underlying store is closed."""
        return self._base.closed

    async def _get(self, key: str) -> bytes | None:
        return await self._base._get(self._key_prefix + key)

    async def _put(self, key: str, value: bytes, sync: bool) -> None:
        await self._base._put(self._key_prefix + key, value, sync)

    async def _delete(self, key: str, sync: bool) -> None:
        await self._base._delete(self._key_prefix + key, sync)

    async def _scan(self, prefix: str) -> AsyncIterator[tuple[str, bytes]]:
        cut = len(self._key_prefix)
        async for key, value in self._base._scan(self._key_prefix + prefix):
            yield key[cut:], value

    async def _flush(self) -> None:
        await self._base._flush()

    async def _delete_prefix(self, prefix: str, sync: bool) -> int:
        return await self._base._delete_prefix(self._key_prefix + prefix, sync)

    def _root(self) -> StateStore:
        return self._base

    def _prefix(self) -> str:
        return self._key_prefix


async def load_agent_state(store: StateStore, agent_id: str) -> bytes | None:
    """An agent's saved state blob (``AgentState.persistent_state``), or None if never saved.

    The same as ``await store.for_agent(agent_id).get(AGENT_STATE_KEY)``.
    """
    return await store.for_agent(agent_id).get(AGENT_STATE_KEY)


async def save_agent_state(
    store: StateStore, agent_id: str, state: bytes, *, sync: bool = False
) -> None:
    """Save an agent's state blob, to be read back by :func:`load_agent_state`.

    Args:
        store: the store (not a namespace view of it).
        agent_id: the agent.
        state: the serialised state.
        sync: be durable on return (costs an fsync with RocksDB).
    """
    await store.for_agent(agent_id).put(AGENT_STATE_KEY, state, sync=sync)


def _bad_key(key: object) -> None:
    if isinstance(key, str):
        raise InvalidStateError(f"state keys may not contain NUL characters: {key!r}")
    raise InvalidStateError(f"state keys are str, not {type(key).__name__}")


def _bad_value(value: object) -> None:
    hint = " (encode text first, e.g. text.encode())" if isinstance(value, str) else ""
    raise InvalidStateError(f"state values are bytes, not {type(value).__name__}{hint}")
