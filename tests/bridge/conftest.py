"""Fixtures of the bridge tests: a real grpc.aio server on 127.0.0.1 (ephemeral port), real
clients (raw ones written against the generated stubs only, and the SDK), and a
self-signed certificate made at test time with the openssl CLI."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import grpc
import grpc.aio
import pytest

from loom import ActionCall
from loom.actions import ActionBroker, Provider
from loom.bus import MemoryBus
from loom.v1 import action_pb2, bridge_pb2, event_pb2
from loom_bridge import BridgeConfig, BridgeServer, ClientConfig
from loom_bridge._grpc import bridge_pb2_grpc
from loom_bridge._wire import EOF

TIMEOUT = 5.0


class EchoProvider(Provider):
    """A real provider for AC12.2: ``test.echo`` 1.0 returns its payload as it is."""

    validates_input = True  # raw bytes in, raw bytes out: there is no schema to check

    def __init__(self) -> None:
        from loom import CapabilityDescriptor

        self.descriptor = CapabilityDescriptor("test.echo", "1.0")

    async def invoke(self, call: ActionCall) -> bytes:
        return call.payload


@pytest.fixture
async def bus():
    async with MemoryBus() as bus:
        yield bus


@pytest.fixture
async def broker():
    broker = ActionBroker(default_timeout_ms=5_000)
    broker.register(EchoProvider())
    yield broker
    await broker.aclose()


@pytest.fixture
async def make_bridge(bus, broker):
    """``await make_bridge(**settings)``: a started server on 127.0.0.1, stopped at the end."""
    servers: list[BridgeServer] = []

    async def make(**settings) -> BridgeServer:
        settings.setdefault("address", "127.0.0.1:0")
        server = BridgeServer(bus, broker, config=BridgeConfig(**settings))
        await server.start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        await server.stop(grace=0)


@pytest.fixture
async def bridge(make_bridge) -> BridgeServer:
    return await make_bridge()


async def eventually(predicate: Callable[[], object], timeout: float = TIMEOUT) -> None:
    """Wait until ``predicate()`` is true; fail with its description after ``timeout``."""
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.005)


@pytest.fixture
def until():
    return eventually


# -- a raw client: only the generated loom.v1 stubs, as an upstream client would be -------


@dataclass
class RawStream:
    call: grpc.aio.StreamStreamCall

    async def send(self, message: bridge_pb2.ClientEvent) -> None:
        await self.call.write(message)

    async def ack(self, agent_id: str) -> None:
        await self.send(bridge_pb2.ClientEvent(ack=bridge_pb2.Ack(message_id=agent_id)))

    async def publish(self, topic: str, event: event_pb2.Event) -> None:
        await self.send(
            bridge_pb2.ClientEvent(publish=bridge_pb2.Publish(topic=topic, event=event))
        )

    async def read(self, timeout: float = TIMEOUT) -> bridge_pb2.ServerEvent:
        message = await asyncio.wait_for(self.call.read(), timeout)
        assert message is not EOF, "the stream ended"
        return message

    async def read_kind(self, kind: str, timeout: float = TIMEOUT) -> bridge_pb2.ServerEvent:
        """The next message of ``kind``, skipping others."""
        async with asyncio.timeout(timeout):
            while True:
                message = await self.read(timeout)
                if message.WhichOneof("msg") == kind:
                    return message

    async def status(self, timeout: float = TIMEOUT) -> tuple[grpc.StatusCode, str]:
        """Read to the end of the stream; its status code and details."""
        async with asyncio.timeout(timeout):
            try:
                while await self.call.read() is not EOF:
                    pass
            except grpc.aio.AioRpcError:
                pass
            return await self.call.code(), await self.call.details()


class RawClient:
    def __init__(self, address: str, metadata=(), channel: grpc.aio.Channel | None = None):
        # Its own connection, as a client in another process would have (gRPC otherwise
        # shares one connection among the channels of a process).
        self.channel = channel or grpc.aio.insecure_channel(
            address, options=[("grpc.use_local_subchannel_pool", 1)]
        )
        self.stub = bridge_pb2_grpc.BridgeStub(self.channel)
        self.metadata = tuple(metadata)

    async def register(self, agent_id: str, topics=(), capabilities=(), metadata=None):
        request = bridge_pb2.AgentRegisterRequest(
            agent_id=agent_id,
            subscribed_topics=list(topics),
            capabilities=list(capabilities),
            metadata=metadata or {},
        )
        return await self.stub.RegisterAgent(request, metadata=self.metadata, timeout=TIMEOUT)

    def stream(self) -> RawStream:
        return RawStream(self.stub.EventStream(metadata=self.metadata))

    async def open(self, agent_id: str, topics=(), capabilities=(), metadata=None) -> RawStream:
        response = await self.register(agent_id, topics, capabilities, metadata)
        assert response.success, response.error_message
        stream = self.stream()
        await stream.ack(agent_id)
        return stream

    async def forward(self, capability: str, payload: bytes, version: str = "", **fields):
        call = action_pb2.ActionCall(
            id=fields.pop("id", ""),
            capability=capability,
            version=version,
            payload=payload,
            **fields,
        )
        if not call.id:
            from loom import new_event_id

            call.id = new_event_id()
        return await self.stub.ForwardAction(call, metadata=self.metadata, timeout=TIMEOUT)

    async def heartbeat(self, timestamp_ms: int = 0, metadata=()):
        return await self.stub.Heartbeat(
            bridge_pb2.HeartbeatRequest(timestamp_ms=timestamp_ms),
            metadata=self.metadata + tuple(metadata),
            timeout=TIMEOUT,
        )

    async def close(self) -> None:
        await self.channel.close(None)


@pytest.fixture
async def raw(bridge):
    """``raw()``: a raw client of ``bridge`` (closed at the end); ``raw(address=..., metadata=...)``
    for another server or credentials."""
    clients: list[RawClient] = []

    def make(address: str | None = None, metadata=(), channel=None) -> RawClient:
        client = RawClient(address or bridge.address, metadata, channel)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()


def proto_event(type: str = "test_input", payload: bytes = b"hello", id: str = "ev1", **fields):
    return event_pb2.Event(id=id, type=type, payload=payload, **fields)


@pytest.fixture
def make_event():
    return proto_event


@pytest.fixture
def client_config(bridge) -> ClientConfig:
    """SDK settings for ``bridge``: fast heartbeats and backoff, so reconnects are quick."""
    from loom_bridge import Backoff

    return ClientConfig(
        address=bridge.address,
        heartbeat_s=0.5,
        backoff=Backoff(initial_s=0.05, factor=2.0, max_s=0.5),
        connect_timeout_s=TIMEOUT,
    )


# -- TLS material, made at test time (no private key is committed) ------------------------


@dataclass(frozen=True)
class Certs:
    ca: Path
    cert: Path
    key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="session")
def certs(tmp_path_factory) -> Certs:
    """A CA, a server cert for localhost/127.0.0.1 and a client cert, all signed by it, plus a
    second CA that signed nothing of ours."""
    if shutil.which("openssl") is None:
        pytest.skip("the TLS tests need the openssl CLI (apt-get install openssl)")
    d = tmp_path_factory.mktemp("tls")
    for name in ("ca", "other-ca"):
        _openssl(
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "2",
            "-subj", f"/CN=loom test {name}", "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d,
        )  # fmt: skip
    (d / "server.ext").write_text(
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"
    )
    (d / "client.ext").write_text("extendedKeyUsage=clientAuth\n")
    for name in ("server", "client"):
        _openssl(
            "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN=loom test {name}",
            cwd=d,
        )  # fmt: skip
        _openssl(
            "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", "-extfile", f"{name}.ext",
            cwd=d,
        )  # fmt: skip
    return Certs(
        ca=d / "ca.pem",
        cert=d / "server.pem",
        key=d / "server.key",
        client_cert=d / "client.pem",
        client_key=d / "client.key",
        other_ca=d / "other-ca.pem",
    )
