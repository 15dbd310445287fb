"""State stores: where agents keep what must outlive a restart.

A :class:`StateStore` maps str keys to bytes values, with async methods. Two backends ship
with core, contributed through the ``loom_state_stores`` hook as ``memory`` and ``rocksdb``:

- :class:`MemoryStateStore`: a dict, for tests.
- :class:`RocksDBStateStore`: an embedded RocksDB directory (through rocksdict), the
  default. ``put(..., sync=True)`` is durable on return; other writes are visible at once,
  survive a crash of the process, and are fsynced with the next synced write, ``flush()``
  or ``close()``. A directory held by another process raises :class:`StateStoreLockedError`.

Agents: the runtime gives each agent ``store.for_agent(agent_id)``, a namespace view whose
keys are stored as ``agent<NUL>{agent_id}<NUL>{key}``; :func:`save_agent_state` and
:func:`load_agent_state` keep one state blob per agent under the key ``state`` there.

``import loom.state`` does not import rocksdict; the RocksDB store loads it when created.
"""

from __future__ import annotations

from loom.state._base import (
    AGENT_NAMESPACE,
    AGENT_STATE_KEY,
    NAMESPACE_SEPARATOR,
    StateStore,
    load_agent_state,
    save_agent_state,
)
from loom.state._errors import (
    InvalidStateError,
    StateStoreClosedError,
    StateStoreError,
    StateStoreLockedError,
)
from loom.state._memory import MemoryStateStore
from loom.state._rocksdb import RocksDBStateStore

__all__ = [
    "AGENT_NAMESPACE",
    "AGENT_STATE_KEY",
    "NAMESPACE_SEPARATOR",
    "InvalidStateError",
    "MemoryStateStore",
    "RocksDBStateStore",
    "StateStore",
    "StateStoreClosedError",
    "StateStoreError",
    "StateStoreLockedError",
    "load_agent_state",
    "save_agent_state",
]
