"""State stores: one conformance suite run against every backend, then RocksDB specifics."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from loom.errors import LoomError
from loom.state import (
    NAMESPACE_SEPARATOR,
    InvalidStateError,
    MemoryStateStore,
    RocksDBStateStore,
    StateStore,
    StateStoreClosedError,
    StateStoreLockedError,
    load_agent_state,
    save_agent_state,
)


async def _items(store: StateStore, prefix: str = "") -> list[tuple[str, bytes]]:
    return [item async for item in store.scan(prefix)]


class StateStoreConformance:
    """Every backend passes these. A subclass provides the ``store`` fixture."""

    @pytest.fixture
    def store(self) -> StateStore:
        raise NotImplementedError("a backend's test class provides the store")

    async def test_missing_key_is_none(self, store: StateStore) -> None:
        assert await store.get("nope") is None

    async def test_put_then_get(self, store: StateStore) -> None:
        await store.put("k", b"v")
        assert await store.get("k") == b"v"

    async def test_overwrite(self, store: StateStore) -> None:
        await store.put("k", b"one")
        await store.put("k", b"two")
        assert await store.get("k") == b"two"

    async def test_sync_put_is_visible(self, store: StateStore) -> None:
        await store.put("k", b"v", sync=True)
        assert await store.get("k") == b"v"

    async def test_delete(self, store: StateStore) -> None:
        await store.put("k", b"v")
        await store.delete("k")
        assert await store.get("k") is None
        await store.delete("k")  # absent: no error
        await store.put("k2", b"v")
        await store.delete("k2", sync=True)
        assert await store.get("k2") is None

    async def test_binary_and_empty_values(self, store: StateStore) -> None:
        blob = bytes(range(256)) * 40
        await store.put("blob", blob)
        await store.put("empty", b"")
        assert await store.get("blob") == blob
        assert await store.get("empty") == b""

    async def test_unicode_and_empty_keys(self, store: StateStore) -> None:
        await store.put("clé/ü/🙂", b"1")
        await store.put("", b"root")
        assert await store.get("clé/ü/🙂") == b"1"
        assert await store.get("") == b"root"

    async def test_scan_prefix_in_key_order(self, store: StateStore) -> None:
        for key in ["b.2", "a.1", "b.1", "b", "c", "b.10", "bz"]:
            await store.put(key, key.encode())
        assert await _items(store, "b.") == [(k, k.encode()) for k in ["b.1", "b.10", "b.2"]]
        assert [k for k, _ in await _items(store)] == ["a.1", "b", "b.1", "b.10", "b.2", "bz", "c"]
        assert await _items(store, "zzz") == []

    async def test_scan_order_is_utf8_byte_order(self, store: StateStore) -> None:
        keys = ["a", "é", "z", "中", "🙂", "~", "A"]
        for key in keys:
            await store.put(key, b"")
        assert [k for k, _ in await _items(store)] == sorted(keys, key=str.encode)

    async def test_scan_many(self, store: StateStore) -> None:
        # More than one RocksDB scan chunk.
        for i in range(1500):
            await store.put(f"n.{i:05d}", str(i).encode())
        await store.put("o", b"after")
        items = await _items(store, "n.")
        assert len(items) == 1500
        assert items[0] == ("n.00000", b"0")
        assert items[-1] == ("n.01499", b"1499")

    async def test_writes_during_scan_do_not_break_it(self, store: StateStore) -> None:
        for i in range(10):
            await store.put(f"k{i}", b"")
        seen = []
        async for key, _ in store.scan("k"):
            seen.append(key)
            await store.put(key + "x", b"")
            await store.delete(key)
        assert seen[:1] == ["k0"]
        assert len(seen) >= 10

    async def test_delete_prefix(self, store: StateStore) -> None:
        for key in ["a.1", "a.2", "ab", "b"]:
            await store.put(key, b"")
        assert await store.delete_prefix("a.") == 2
        assert [k for k, _ in await _items(store)] == ["ab", "b"]
        assert await store.delete_prefix("", sync=True) == 2
        assert await _items(store) == []

    async def test_namespaces_are_isolated(self, store: StateStore) -> None:
        a = store.namespace("a")
        b = store.namespace("b")
        await a.put("k", b"in a")
        await b.put("k", b"in b")
        await store.put("k", b"at root")
        assert await a.get("k") == b"in a"
        assert await b.get("k") == b"in b"
        assert await store.get("k") == b"at root"
        assert await _items(a) == [("k", b"in a")]
        await a.delete("k")
        assert await b.get("k") == b"in b"

    async def test_nested_namespaces_and_agent_views(self, store: StateStore) -> None:
        agents = store.namespace("agents")
        one = agents.namespace("one")
        await one.put("count", b"1")
        await agents.put("one", b"not the namespace")
        assert await one.get("count") == b"1"
        assert await _items(agents) == [
            ("one", b"not the namespace"),
            (f"one{NAMESPACE_SEPARATOR}count", b"1"),
        ]
        assert await _items(one) == [("count", b"1")]
        # A namespace's view of a prefix never leaks into a sibling that shares it.
        await store.namespace("ab").put("k", b"x")
        assert await _items(store.namespace("a")) == []

        planner = store.for_agent("planner")
        await planner.put("plan", b"p")
        assert await store.for_agent("planner").get("plan") == b"p"
        assert await store.for_agent("other").get("plan") is None
        await save_agent_state(store, "planner", b"blob", sync=True)
        assert await load_agent_state(store, "planner") == b"blob"
        assert await load_agent_state(store, "nobody") is None
        assert await planner.delete_prefix("") == 2
        assert await load_agent_state(store, "planner") is None

    async def test_bad_arguments(self, store: StateStore) -> None:
        with pytest.raises(InvalidStateError, match=r"bytes, not str.*encode"):
            await store.put("k", "text")  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            await store.put("k", bytearray(b"x"))  # type: ignore[arg-type]
        with pytest.raises(InvalidStateError, match="str, not int"):
            await store.get(1)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="NUL"):
            await store.put("a\x00b", b"")
        with pytest.raises(InvalidStateError):
            store.scan("a\x00")
        with pytest.raises(InvalidStateError):
            store.namespace("")
        with pytest.raises(InvalidStateError):
            store.for_agent("a\x00b")
        assert isinstance(InvalidStateError("x"), LoomError)

    async def test_flush_and_context_manager(self, store: StateStore) -> None:
        await store.put("k", b"v")
        await store.flush()
        async with store.namespace("ns") as view:
            await view.put("k", b"v")
        assert not store.closed  # closing a view leaves the store open
        assert await store.namespace("ns").get("k") == b"v"

    async def test_closed_store_refuses(self, store: StateStore) -> None:
        view = store.namespace("ns")
        await store.close()
        await store.close()  # twice: fine
        assert store.closed
        assert view.closed
        with pytest.raises(StateStoreClosedError):
            await store.get("k")
        with pytest.raises(StateStoreClosedError):
            await view.put("k", b"v")
        with pytest.raises(StateStoreClosedError):
            await _items(store)
        with pytest.raises(StateStoreClosedError):
            await store.flush()


class TestMemoryStateStore(StateStoreConformance):
    @pytest.fixture
    async def store(self) -> AsyncIterator[StateStore]:
        store = MemoryStateStore()
        yield store
        await store.close()


class TestRocksDBStateStore(StateStoreConformance):
    @pytest.fixture
    async def store(self, tmp_path: Path) -> AsyncIterator[StateStore]:
        store = RocksDBStateStore(tmp_path / "db")
        yield store
        await store.close()


# -- RocksDB specifics ------------------------------------------------------------------------

_CHILD = textwrap.dedent(
    """
    import asyncio, sys, time
    from loom.state import RocksDBStateStore

    async def main():
        store = RocksDBStateStore(sys.argv[1])
        await store.put("synced", b"survives", sync=True)
        await store.put("unsynced", b"survives too")
        await store.for_agent("a1").put("state", b"agent state", sync=True)
        print("ready", flush=True)
        time.sleep(60)  # killed before this ends, without closing the store

    asyncio.run(main())
    """
)


def _spawn(code: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


async def test_data_survives_sigkill(tmp_path: Path) -> None:
    path = str(tmp_path / "db")
    child = _spawn(_CHILD, path)
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
        assert line == "ready\n", child.stderr.read() if child.stderr else ""
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait(timeout=30)
        for stream in (child.stdout, child.stderr):
            if stream is not None:
                stream.close()
    assert child.returncode == -signal.SIGKILL
    store = RocksDBStateStore(path)
    try:
        assert await store.get("synced") == b"survives"
        # Unsynced writes are in the write-ahead log in the page cache: a dead process
        # does not lose them (a power cut could).
        assert await store.get("unsynced") == b"survives too"
        assert await load_agent_state(store, "a1") == b"agent state"
    finally:
        await store.close()


async def test_second_process_gets_locked_error(tmp_path: Path) -> None:
    path = str(tmp_path / "db")
    store = RocksDBStateStore(path)
    try:
        code = textwrap.dedent(
            """
            import sys
            from loom.state import RocksDBStateStore, StateStoreLockedError
            try:
                RocksDBStateStore(sys.argv[1])
            except StateStoreLockedError as exc:
                assert isinstance(exc, OSError) and exc.path == sys.argv[1]
                print("locked:", exc)
            else:
                print("opened")
            """
        )
        result = subprocess.run(
            [sys.executable, "-c", code, path], capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith("locked: "), result.stdout + result.stderr
        assert path in result.stdout
        assert "another process" in result.stdout
    finally:
        await store.close()


async def test_same_process_second_open_is_locked_until_close(tmp_path: Path) -> None:
    path = tmp_path / "db"
    first = RocksDBStateStore(path)
    with pytest.raises(StateStoreLockedError, match="close that one first") as caught:
        RocksDBStateStore(path)
    assert caught.value.path == str(path)
    assert isinstance(caught.value, OSError)
    await first.put("k", b"v")
    async for _ in first.scan():  # an abandoned scan must not keep the database open
        break
    await first.close()
    second = RocksDBStateStore(path)
    try:
        assert await second.get("k") == b"v"
    finally:
        await second.close()


async def test_unsynced_writes_are_read_back_at_once(tmp_path: Path) -> None:
    store = RocksDBStateStore(tmp_path / "db")
    try:
        for i in range(1000):
            await store.put(f"k{i}", str(i).encode())
            assert await store.get(f"k{i}") == str(i).encode()
        await store.delete("k5")
        assert await store.get("k5") is None
    finally:
        await store.close()


async def test_close_flushes_and_releases(tmp_path: Path) -> None:
    path = tmp_path / "db"
    store = RocksDBStateStore(path)
    for i in range(100):
        await store.put(f"k{i}", b"v")
    await store.close()
    # close() flushed the memtable: the data is in a table file, not only in the log.
    assert list(path.glob("*.sst"))
    reopened = RocksDBStateStore(path)
    try:
        assert len([item async for item in reopened.scan()]) == 100
    finally:
        await reopened.close()


async def test_close_waits_for_a_sync_write_in_flight(tmp_path: Path) -> None:
    import asyncio

    store = RocksDBStateStore(tmp_path / "db")
    write = asyncio.ensure_future(store.put("k", b"v", sync=True))
    await asyncio.sleep(0)
    await store.close()
    await write
    reopened = RocksDBStateStore(tmp_path / "db")
    try:
        assert await reopened.get("k") == b"v"
    finally:
        await reopened.close()


def test_import_does_not_load_rocksdict() -> None:
    code = "import sys, loom, loom.state; print('rocksdict' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "False", result.stderr


async def test_state_stores_are_contributed(tmp_path: Path) -> None:
    from loom.host import create_host

    stores = {s.name: s for s in create_host(load_entrypoints=False).state_stores()}
    assert isinstance(stores["memory"].factory(), MemoryStateStore)
    store = stores["rocksdb"].factory(path=tmp_path / "db")
    assert isinstance(store, RocksDBStateStore)
    await store.close()
