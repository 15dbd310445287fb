"""Errors raised by state stores."""

from __future__ import annotations

import errno

from loom.errors import LoomError

__all__ = [
    "InvalidStateError",
    "StateStoreClosedError",
    "StateStoreError",
    "StateStoreLockedError",
]


class StateStoreError(LoomError):
    """Root of the errors a state store raises."""


class InvalidStateError(StateStoreError, ValueError, TypeError):
    """A key, namespace or value breaks the store's contract (a str value, a NUL in a key).

    It is both a ``ValueError`` and a ``TypeError``, since either can be the cause.
    """


class StateStoreClosedError(StateStoreError, RuntimeError):
    """The store was used after :meth:`~loom.state.StateStore.close`."""


class StateStoreLockedError(StateStoreError, OSError):
    """The store's directory is held by another process, or by another open store here.

    Attributes:
        path: the directory that could not be locked.
    """

    def __init__(self, path: str, detail: str) -> None:
        self.path = path
        self._message = f"state store {path!r} is locked: {detail}"
        super().__init__(errno.EAGAIN, self._message)
        self.filename = path

    def __str__(self) -> str:
        return self._message
