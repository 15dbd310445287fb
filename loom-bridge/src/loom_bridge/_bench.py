"""``loom bench`` scenarios of the bridge, and the raw gRPC baseline they are judged by.

Server and client run in the one process and event loop over 127.0.0.1, in the baseline and
in the scenarios judged by a ratio to it, so those figures compare like with like. The
batched scenarios, judged against a fixed target, run the remote agent in a child process,
as in use (:mod:`loom_bridge._bench_child`), so the server's and the agent's work each have
a process of their own:

- ``baseline.grpc_raw``: a bare grpc.aio service with no protobuf (150-byte messages passed
  as bytes): ``stream_throughput`` (server -> client messages/s on one bidi stream) and
  ``unary_p50_us`` (one unary echo round trip).
- ``bridge.push``: events published on the server's bus, delivered to a remote agent's
  link (decoded to :class:`~loom.Event`), one ``delivery`` message each: events/s.
- ``bridge.push_batched``: the same with the link asking for ``delivery_batch`` messages,
  the remote agent in a child process: from the first publish until the child reports the
  last event's arrival.
- ``bridge.publish``: a remote agent's link publishes, one ``publish`` message each, a
  subscriber on the server's bus reads: events/s.
- ``bridge.publish_batched``: the same with the link sending ``publish_batch`` messages,
  the remote agent in a child process: from the command to publish until the server's
  subscriber has read the last event.
- ``bridge.forward_action``: ForwardAction round trips of a native echo capability through
  the broker: p50 and p99 in µs.

On a shared machine the load changes from one second to the next, so each bridge scenario
also runs the raw baseline's work interleaved with its own, in slices of the same time
window, and reports it beside its figure (``raw_stream_throughput``,
``raw_unary_p50_us``): the ratio of the two is the figure to judge.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any

from loom import ActionCall, ActionStatus, Event, QoS
from loom.bench import Figure, bench_event, percentile
from loom.bus import MemoryBus
from loom_bridge._bench_child import TOPIC as _TOPIC

__all__ = [
    "forward_action",
    "grpc_raw",
    "publish",
    "publish_batched",
    "push",
    "push_batched",
]

_RAW_PAYLOAD = bytes(150)
#: Events per slice when a scenario alternates with the raw baseline's work.
_SLICE = 1_000
#: Seconds a bench child may take to start and connect, and to exit once told to.
_CHILD_START_S = 60.0
_CHILD_EXIT_S = 5.0


def _count(full: int, scale: float, minimum: int = 50) -> int:
    return max(minimum, int(full * scale))


class _RawGrpc:
    """A bare grpc.aio server and channel: a server-to-client stream and a unary echo."""

    async def __aenter__(self) -> _RawGrpc:
        import grpc
        import grpc.aio

        async def stream(request_iterator: Any, context: Any) -> None:
            count = int(await context.read())
            for _ in range(count):
                await context.write(_RAW_PAYLOAD)

        async def unary(request: bytes, context: Any) -> bytes:
            return request

        handler = grpc.method_handlers_generic_handler(
            "bench.Raw",
            {
                "Stream": grpc.stream_stream_rpc_method_handler(stream),
                "Unary": grpc.unary_unary_rpc_method_handler(unary),
            },
        )
        self._server = grpc.aio.server()
        self._server.add_generic_rpc_handlers((handler,))
        port = self._server.add_insecure_port("127.0.0.1:0")
        await self._server.start()
        self._channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        self._stream = self._channel.stream_stream("/bench.Raw/Stream", None, None)
        self._echo = self._channel.unary_unary("/bench.Raw/Unary", None, None)
        await self._echo(_RAW_PAYLOAD)  # the connection is up and warm
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._channel.close(None)
        await self._server.stop(None)

    async def stream(self, n: int) -> float:
        """Seconds to receive ``n`` messages on a new stream."""
        from loom_bridge._wire import EOF

        call = self._stream(None)
        start = time.perf_counter()
        await call.write(str(n).encode())
        received = 0
        while await call.read() is not EOF:
            received += 1
        elapsed = time.perf_counter() - start
        if received != n:
            raise AssertionError(f"raw stream: {received} of {n} messages arrived")
        return elapsed

    async def unary_us(self) -> float:
        """One unary echo round trip, in µs."""
        start = time.perf_counter_ns()
        await self._echo(_RAW_PAYLOAD)
        return (time.perf_counter_ns() - start) / 1000


class _Child:
    """The remote agent in a child process (:mod:`loom_bridge._bench_child`), talked to by
    lines on its stdin and stdout.

    Entering starts it and waits for its ``ready`` (its stream is open), so its start-up is
    never timed. Leaving always reaps it: stdin is closed (the child stops its link and
    exits) and it is killed if it has not exited within :data:`_CHILD_EXIT_S`, at once when
    the run failed or was cancelled.
    """

    def __init__(self, mode: str, address: str, batch: int) -> None:
        self._argv = (mode, address, str(batch))
        self._proc: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> _Child:
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "loom_bridge._bench_child",
            *self._argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        try:
            await self.expect("ready", _CHILD_START_S)
        except BaseException:
            await self._reap(kill=True)
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._reap(kill=exc is not None)

    async def send(self, line: str) -> None:
        """Write one command line."""
        assert self._proc is not None
        assert self._proc.stdin is not None
        self._proc.stdin.write(line.encode() + b"\n")
        await self._proc.stdin.drain()

    async def expect(self, wanted: str, timeout_s: float) -> None:
        """Read the child's next line, which must be ``wanted``.

        Raises:
            RuntimeError: the child said something else (its ``error ...``), exited, or
                said nothing within ``timeout_s``.
        """
        assert self._proc is not None
        assert self._proc.stdout is not None
        try:
            raw = await asyncio.wait_for(self._proc.stdout.readline(), timeout_s)
        except TimeoutError:
            raise RuntimeError(
                f"bench child {self._argv[0]}: no {wanted!r} within {timeout_s:g} s"
            ) from None
        line = raw.decode().strip()
        if line == wanted:
            return
        if not raw:
            status = await self._proc.wait()
            raise RuntimeError(
                f"bench child {self._argv[0]}: exited with status {status} "
                f"while the bench waited for {wanted!r}"
            )
        raise RuntimeError(f"bench child {self._argv[0]}: {line!r} while expecting {wanted!r}")

    async def _reap(self, kill: bool) -> None:
        proc = self._proc
        if proc is None or proc.returncode is not None:
            return
        if not kill:
            assert proc.stdin is not None
            proc.stdin.close()
            try:
                await asyncio.wait_for(proc.wait(), _CHILD_EXIT_S)
                return
            except TimeoutError:
                pass
        proc.kill()
        await proc.wait()


# -- the baseline ---------------------------------------------------------------------------


async def grpc_raw(scale: float) -> list[Figure]:
    """One run of ``baseline.grpc_raw`` (at scale 1.0: 30,000 streamed messages, 2,000
    unary calls)."""
    n_stream = _count(30_000, scale)
    n_unary = _count(2_000, scale)
    async with _RawGrpc() as raw:
        elapsed = await raw.stream(n_stream)
        latencies = sorted([await raw.unary_us() for _ in range(n_unary)])
    return [
        Figure("stream_throughput", n_stream / elapsed, "messages/s"),
        Figure("unary_p50_us", percentile(latencies, 0.5), "us"),
    ]


# -- the bridge -----------------------------------------------------------------------------


async def _bridge(bus: MemoryBus, broker: Any = None) -> Any:
    from loom_bridge._config import BridgeConfig
    from loom_bridge._server import BridgeServer

    server = BridgeServer(bus, broker, config=BridgeConfig(address="127.0.0.1:0"))
    await server.start()
    return server


async def _until_open(server: Any, agent_id: str) -> None:
    """Wait until the server has opened the agent's stream (its subscriptions exist)."""
    async with asyncio.timeout(10):
        while server.hub.session(agent_id) is None:
            await asyncio.sleep(0.001)


def _link(
    address: str,
    topics: tuple[str, ...],
    on_delivery: Any,
    delivery_batch: int = 1,
    publish_batch: int = 1,
) -> Any:
    from loom.v1 import bridge_pb2
    from loom_bridge._client_config import ClientConfig
    from loom_bridge._link import BridgeLink

    def registration() -> bridge_pb2.AgentRegisterRequest:
        return bridge_pb2.AgentRegisterRequest(agent_id="bench", subscribed_topics=topics)

    return BridgeLink(
        "bench",
        ClientConfig(
            address=address,
            outbound_queue=1024,
            delivery_batch=delivery_batch,
            publish_batch=publish_batch,
        ),
        registration=registration,
        on_delivery=on_delivery,
    )


async def _interleaved(
    n: int,
    raw: _RawGrpc,
    bridge_slice: Callable[[int, int], Awaitable[None]],
    slice_size: int = _SLICE,
    raw_slice: int = _SLICE,
) -> tuple[float, float]:
    """Run ``n`` events in slices of ``slice_size``, each bridge slice followed by a raw
    stream slice of ``raw_slice`` messages; return (bridge events/s, raw messages/s) over
    the same time window."""
    bridge_s = raw_s = 0.0
    done = raw_done = 0
    while done < n:
        size = min(slice_size, n - done)
        start = time.perf_counter()
        await bridge_slice(done, size)
        bridge_s += time.perf_counter() - start
        raw_s += await raw.stream(raw_slice)
        done += size
        raw_done += raw_slice
    return n / bridge_s, raw_done / raw_s


async def push(scale: float) -> list[Figure]:
    """Events published on the server's bus and received by a remote agent's link, one
    upstream ``delivery`` message per event: events/s (at scale 1.0, 30,000 events, each
    built by :func:`~loom.bench.bench_event`)."""
    return await _push(_count(30_000, scale), 1, _SLICE)


async def push_batched(scale: float) -> list[Figure]:
    """As :func:`push`, with the link asking for ``delivery_batch`` messages (the SDK's
    default, 256 deliveries at most per message), and the remote agent in a child process,
    as in use: events/s from a slice's first publish until the child reports its last
    event's arrival (at scale 1.0, 200,000 events)."""
    from loom_bridge._registration import DEFAULT_DELIVERY_BATCH

    # Slices ten times longer than the raw stream's: a slice of 1,000 events is four
    # batches, too few for the batches to overlap with publishing.
    return await _push_remote(_count(200_000, scale), DEFAULT_DELIVERY_BATCH, 10 * _SLICE)


def _stream_figures(rate: float, raw_rate: float) -> list[Figure]:
    """A stream scenario's figures: the bridge's events/s beside the raw stream's."""
    return [
        Figure("throughput", rate, "events/s"),
        Figure("raw_stream_throughput", raw_rate, "messages/s"),
    ]


async def _push_remote(n: int, delivery_batch: int, slice_size: int) -> list[Figure]:
    async with MemoryBus() as bus, _RawGrpc() as raw:
        server = await _bridge(bus)
        try:
            async with _Child("push", server.address, delivery_batch) as child:
                await _until_open(server, "bench")

                async def bridge_slice(first: int, size: int) -> None:
                    target = first + size
                    await child.send(f"expect {target}")
                    for i in range(first, target):
                        await bus.publish(_TOPIC, bench_event(i))
                    await child.expect(f"got {target}", 60)

                rate, raw_rate = await _interleaved(n, raw, bridge_slice, slice_size)
        finally:
            await server.stop()
    return _stream_figures(rate, raw_rate)


async def _push(n: int, delivery_batch: int, slice_size: int) -> list[Figure]:
    async with MemoryBus() as bus, _RawGrpc() as raw:
        server = await _bridge(bus)
        received = 0
        target = 0
        arrived = asyncio.Event()

        async def on_delivery(topic: str, event: Event) -> None:
            nonlocal received
            received += 1
            if received == target:
                arrived.set()

        link = _link(server.address, (_TOPIC,), on_delivery, delivery_batch)
        try:
            await link.start()
            await _until_open(server, "bench")

            async def bridge_slice(first: int, size: int) -> None:
                nonlocal target
                target = first + size
                arrived.clear()
                for i in range(first, first + size):
                    await bus.publish(_TOPIC, bench_event(i))
                await asyncio.wait_for(arrived.wait(), 60)

            rate, raw_rate = await _interleaved(n, raw, bridge_slice, slice_size)
        finally:
            await link.stop()
            await server.stop()
    return _stream_figures(rate, raw_rate)


async def publish(scale: float) -> list[Figure]:
    """Events a remote agent's link publishes, one upstream ``publish`` message each, read by
    a Batched subscriber on the server's bus: events/s (at scale 1.0, 30,000 events)."""
    return await _publish(_count(30_000, scale), 1, _SLICE)


async def publish_batched(scale: float) -> list[Figure]:
    """As :func:`publish`, the link sending ``publish_batch`` messages as the bridge offers
    (the SDK's default, 256 publishes at most per message), and the remote agent in a child
    process, as in use: events/s from the command to publish a slice until the server's
    subscriber has read its last event (at scale 1.0, 200,000 events)."""
    from loom_bridge._registration import DEFAULT_DELIVERY_BATCH

    return await _publish_remote(_count(200_000, scale), DEFAULT_DELIVERY_BATCH, 10 * _SLICE)


async def _publish_remote(n: int, publish_batch: int, slice_size: int) -> list[Figure]:
    async with MemoryBus() as bus, _RawGrpc() as raw:
        server = await _bridge(bus)
        sub = await bus.subscribe(_TOPIC, qos=QoS.BATCHED)
        try:
            async with _Child("publish", server.address, publish_batch) as child:
                await _until_open(server, "bench")

                async def bridge_slice(first: int, size: int) -> None:
                    async def read() -> None:
                        for _ in range(size - 1):
                            await sub.get()
                        _, last = await sub.get()
                        seq = last.metadata.get("seq")
                        if seq != str(first + size - 1):
                            raise AssertionError(f"bridge.publish_batched: last seq {seq!r}")

                    reader = asyncio.create_task(read())
                    try:
                        await child.send(f"publish {first} {size}")
                        await asyncio.wait_for(reader, 60)
                    finally:
                        reader.cancel()
                    await child.expect(f"sent {first} {size}", 60)

                rate, raw_rate = await _interleaved(n, raw, bridge_slice, slice_size)
        finally:
            await server.stop()
    return _stream_figures(rate, raw_rate)


async def _publish(n: int, publish_batch: int, slice_size: int) -> list[Figure]:
    async with MemoryBus() as bus, _RawGrpc() as raw:
        server = await _bridge(bus)
        sub = await bus.subscribe(_TOPIC, qos=QoS.BATCHED)

        async def nothing(topic: str, event: Event) -> None:
            return None

        link = _link(server.address, (), nothing, publish_batch=publish_batch)
        try:
            await link.start()

            async def bridge_slice(first: int, size: int) -> None:
                async def read() -> None:
                    for _ in range(size):
                        await sub.get()

                reader = asyncio.create_task(read())
                for i in range(first, first + size):
                    await link.publish(_TOPIC, bench_event(i))
                await asyncio.wait_for(reader, 60)

            rate, raw_rate = await _interleaved(n, raw, bridge_slice, slice_size)
        finally:
            await link.stop()
            await server.stop()
    return _stream_figures(rate, raw_rate)


async def forward_action(scale: float) -> list[Figure]:
    """ForwardAction round trips of a native echo capability through the broker: p50 and
    p99 in µs (at scale 1.0, 2,000 calls, as many as the baseline's unary calls), each call
    followed by a raw unary echo in the same window."""
    from loom.actions import ActionBroker, NativeProvider, capability

    n = _count(2_000, scale)

    @capability("bench.echo", version="1.0")
    async def echo(text: str) -> str:
        return text

    broker = ActionBroker()
    broker.register(NativeProvider(echo))
    async with MemoryBus() as bus, _RawGrpc() as raw:
        server = await _bridge(bus, broker)

        async def nothing(topic: str, event: Event) -> None:
            return None

        link = _link(server.address, (), nothing)
        try:
            await link.start()
            payload = b'{"text": "ping"}'
            latencies = []
            raw_latencies = []
            clock = time.perf_counter_ns
            for i in range(n + 1):
                t0 = clock()
                result = await link.forward(ActionCall("bench.echo", payload, version="1.0"))
                if i:  # the first call warms the path
                    latencies.append((clock() - t0) / 1000)
                    raw_latencies.append(await raw.unary_us())
                if result.status is not ActionStatus.OK:
                    raise AssertionError(f"bench.echo failed: {result.error}")
        finally:
            await link.stop()
            await server.stop()
            await broker.aclose()
    latencies.sort()
    raw_latencies.sort()
    return [
        Figure("p50_us", percentile(latencies, 0.5), "us"),
        Figure("p99_us", percentile(latencies, 0.99), "us"),
        Figure("raw_unary_p50_us", percentile(raw_latencies, 0.5), "us"),
    ]
