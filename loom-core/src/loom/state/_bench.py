"""``state.rocksdb_put_get``: RocksDB through the StateStore API, in a temporary directory."""

from __future__ import annotations

import tempfile
import time

from loom.bench import Figure
from loom.state._rocksdb import RocksDBStateStore

__all__ = ["rocksdb_put_get"]

#: Size of each value written, in bytes.
VALUE_SIZE = 128


async def rocksdb_put_get(scale: float) -> list[Figure]:
    """One run: unsynced puts, gets of the same keys, then synced puts.

    At scale 1.0: 200,000 puts and gets of 128-byte values under 10-character keys, and
    1,000 synced puts (each an fsync of the write-ahead log).

    Args:
        scale: multiplies the operation counts.

    Returns:
        ``put_throughput``, ``get_throughput`` and ``sync_put_throughput``, in operations/s.
    """
    n = max(100, int(200_000 * scale))
    n_sync = max(10, int(1_000 * scale))
    keys = [f"k{i:09d}" for i in range(n)]
    value = bytes(VALUE_SIZE)
    with tempfile.TemporaryDirectory(prefix="loom-bench-rocksdb-") as path:
        store = RocksDBStateStore(path)
        try:
            put = store.put
            start = time.perf_counter()
            for key in keys:
                await put(key, value)
            put_s = time.perf_counter() - start

            get = store.get
            start = time.perf_counter()
            for key in keys:
                if await get(key) is None:
                    raise AssertionError(f"{key!r} was put but is not there")
            get_s = time.perf_counter() - start

            start = time.perf_counter()
            for key in keys[:n_sync]:
                await put(key, value, sync=True)
            sync_s = time.perf_counter() - start
        finally:
            await store.close()
    return [
        Figure("put_throughput", n / put_s, "puts/s"),
        Figure("get_throughput", n / get_s, "gets/s"),
        Figure("sync_put_throughput", n_sync / sync_s, "puts/s"),
    ]
