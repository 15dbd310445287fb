"""Bearer tokens and TLS: a wrong or missing token is UNAUTHENTICATED and changes nothing;
TLS with a certificate made at test time, and mutual TLS."""

from __future__ import annotations

import grpc
import grpc.aio
import pytest

from loom import Event
from loom_bridge import (
    BridgeConfig,
    BridgeConfigError,
    ClientConfig,
    NotConnectedError,
    RemoteAgent,
    TLSFiles,
)

TOKEN = "s3cret-token"


def bearer(token: str) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {token}")]


@pytest.fixture
async def guarded(make_bridge):
    return await make_bridge(token=TOKEN)


async def test_the_right_token_opens_every_call(guarded, raw, make_event):
    client = raw(guarded.address, metadata=bearer(TOKEN))
    assert (await client.heartbeat(5)).status == "ok"
    assert (await client.forward("test.echo", b"hi", version="1.0")).output == b"hi"
    stream = await client.open("trusted", ["t"])
    await stream.publish("t", make_event())
    assert (await stream.read()).WhichOneof("msg") == "delivery"


@pytest.mark.parametrize(
    ("metadata", "reason"),
    [
        ([], "missing bearer token"),
        (bearer("wrong"), "wrong bearer token"),
        ([("authorization", TOKEN)], "missing bearer token"),  # no "Bearer " scheme
    ],
)
async def test_a_missing_or_wrong_token_is_unauthenticated_and_touches_nothing(
    guarded, raw, metadata, reason
):
    client = raw(guarded.address, metadata=metadata)
    for call in (
        lambda: client.heartbeat(1),
        lambda: client.register("intruder", ["t"]),
        lambda: client.forward("test.echo", b"x", version="1.0"),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call()
        assert caught.value.code() is grpc.StatusCode.UNAUTHENTICATED
        assert reason in caught.value.details()
    stream = client.stream()
    await stream.ack("intruder")
    assert (await stream.status())[0] is grpc.StatusCode.UNAUTHENTICATED
    assert guarded.hub.registration("intruder") is None
    assert guarded.hub.sessions() == []


async def test_the_sdk_sends_its_token(guarded, client_config, until):
    config = client_config.replace(address=guarded.address, token=TOKEN)
    got = []

    async def handler(ctx, event):
        got.append(event.payload)

    async with RemoteAgent("tokened", handler, topics=["tok.t"], config=config) as agent:
        await until(lambda: guarded.hub.session("tokened") is not None)
        await guarded.bus.publish("tok.t", Event("x", b"in"))
        await until(lambda: got == [b"in"])
        assert (await agent.link.heartbeat()).status == "ok"


async def test_the_sdk_with_a_wrong_token_fails_to_start(guarded, client_config):
    agent = RemoteAgent(
        "tokened",
        lambda ctx, event: None,
        config=client_config.replace(address=guarded.address, token="nope"),
    )
    with pytest.raises(NotConnectedError, match="UNAUTHENTICATED"):
        await agent.start()
    assert not agent.connected


# -- TLS -------------------------------------------------------------------------------------


@pytest.fixture
async def tls_bridge(make_bridge, certs):
    return await make_bridge(tls=TLSFiles(certs.cert, certs.key))


def secure_channel(address: str, ca: bytes, cert: bytes | None = None, key: bytes | None = None):
    credentials = grpc.ssl_channel_credentials(
        root_certificates=ca, private_key=key, certificate_chain=cert
    )
    return grpc.aio.secure_channel(
        address, credentials, options=[("grpc.use_local_subchannel_pool", 1)]
    )


async def test_tls_with_the_servers_ca(tls_bridge, raw, certs, make_event):
    client = raw(channel=secure_channel(tls_bridge.address, certs.ca.read_bytes()))
    assert (await client.heartbeat(3)).status == "ok"
    stream = await client.open("secure", ["t"])
    await stream.publish("t", make_event())
    assert (await stream.read()).WhichOneof("msg") == "delivery"


async def test_tls_refuses_plaintext_and_unknown_cas(tls_bridge, raw, certs):
    plaintext = raw(tls_bridge.address)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await plaintext.stub.Heartbeat(plaintext_request(), timeout=2)
    assert caught.value.code() is grpc.StatusCode.UNAVAILABLE
    stranger = raw(channel=secure_channel(tls_bridge.address, certs.other_ca.read_bytes()))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stranger.stub.Heartbeat(plaintext_request(), timeout=2)
    assert caught.value.code() is grpc.StatusCode.UNAVAILABLE
    assert tls_bridge.hub.sessions() == []


def plaintext_request():
    from loom.v1 import bridge_pb2

    return bridge_pb2.HeartbeatRequest(timestamp_ms=1)


async def test_mutual_tls_requires_a_client_certificate(make_bridge, raw, certs):
    server = await make_bridge(tls=TLSFiles(certs.cert, certs.key, client_ca=certs.ca))
    ca = certs.ca.read_bytes()
    with_cert = raw(
        channel=secure_channel(
            server.address, ca, certs.client_cert.read_bytes(), certs.client_key.read_bytes()
        )
    )
    assert (await with_cert.heartbeat(1)).status == "ok"
    without = raw(channel=secure_channel(server.address, ca))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await without.stub.Heartbeat(plaintext_request(), timeout=2)
    assert caught.value.code() is grpc.StatusCode.UNAVAILABLE


async def test_the_sdk_over_tls_with_a_token(make_bridge, certs, client_config, until):
    server = await make_bridge(tls=TLSFiles(certs.cert, certs.key), token=TOKEN)
    config = client_config.replace(address=server.address, tls_ca=certs.ca, token=TOKEN)
    got = []

    async def handler(ctx, event):
        got.append(event.type)

    async with RemoteAgent("tls-agent", handler, topics=["tls.t"], config=config):
        await until(lambda: server.hub.session("tls-agent") is not None)
        await server.bus.publish("tls.t", Event("over-tls"))
        await until(lambda: got == ["over-tls"])


def test_tls_settings_are_checked(tmp_path):
    with pytest.raises(BridgeConfigError, match="key is missing"):
        BridgeConfig.from_env({"LOOM_BRIDGE_TLS_CERT": "cert.pem"})
    with pytest.raises(BridgeConfigError, match="client CA needs"):
        BridgeConfig.from_env({"LOOM_BRIDGE_TLS_CLIENT_CA": "ca.pem"})
    missing = TLSFiles(tmp_path / "absent.pem", tmp_path / "absent.key")
    with pytest.raises(BridgeConfigError, match=r"absent\.pem"):
        missing.read()
    with pytest.raises(BridgeConfigError, match="needs its key"):
        ClientConfig(tls_cert=b"pem")


async def test_unreadable_tls_files_fail_start_clearly(bus, broker, tmp_path):
    from loom_bridge import BridgeServer

    server = BridgeServer(
        bus,
        broker,
        config=BridgeConfig(
            address="127.0.0.1:0", tls=TLSFiles(tmp_path / "no.pem", tmp_path / "no.key")
        ),
    )
    with pytest.raises(BridgeConfigError, match="tls cert"):
        await server.start()
    assert not server.running
