"""The event stream (SSE) over real HTTP: state then updates, the topic filter, viewers that
disconnect or read too slowly, too many viewers, and shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import AsyncIterator

import httpx2
import pytest

from loom import Event
from loom_dashboard import DashboardServer, DashboardSettings

from .conftest import TIMEOUT, wait_for


async def messages(response: httpx2.Response) -> AsyncIterator[tuple[str, dict]]:
    """``(event, data)`` of each server-sent event (comments and ``retry:`` skipped)."""
    name, data = "", []
    async for line in response.aiter_lines():
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: "):
            data.append(line[6:])
        elif line == "" and name:
            yield name, json.loads("".join(data))
            name, data = "", []


async def until(stream: AsyncIterator[tuple[str, dict]], want, timeout: float = TIMEOUT):
    """The first message for which ``want(name, data)`` holds."""
    async with asyncio.timeout(timeout):
        async for name, data in stream:
            if want(name, data):
                return name, data
    raise AssertionError("the stream ended first")


async def test_a_stream_starts_with_the_state_then_follows(host, dashboard, client):
    async with client.stream("GET", "/api/stream") as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-store"
        stream = messages(response)
        first = [await anext(stream) for _ in range(4)]
        assert [name for name, _ in first] == ["hello", "topology", "metrics", "threads"]
        assert {a["id"] for a in first[1][1]["agents"]} == {"asker", "answerer"}
        await host.exchange(1)
        _, tail = await until(
            stream,
            lambda n, d: n == "tail" and "collab.reply" in {e["type"] for e in d["events"]},
        )
        assert tail["skipped"] == 0
        assert {"ask.go", "answer.q"} <= {e["topic"] for e in tail["events"]}
        _, threads = await until(
            stream, lambda n, d: n == "threads" and any(t["status"] == "done" for t in d["threads"])
        )
        assert threads["threads"][0]["kind"] == "request/reply"
        _, metrics = await until(stream, lambda n, d: n == "metrics" and d["bus"]["published"])
        assert metrics["dashboard"]["viewers"]["connected"] == 1


async def test_the_stream_filters_the_tail_by_topic(host, dashboard, client):
    async with client.stream("GET", "/api/stream", params={"topic": "answer.*"}) as response:
        stream = messages(response)
        _, hello = await anext(stream)
        assert hello["topic"] == "answer.*"
        await host.exchange(2)
        await host.bus.publish("answer.extra", Event("x"))
        seen: list[str] = []
        while "answer.extra" not in seen:
            _, tail = await until(stream, lambda n, d: n == "tail")
            seen += [e["topic"] for e in tail["events"]]
        assert set(seen) == {"answer.q", "answer.extra"}


async def test_a_viewer_that_disconnects_mid_stream_leaves_the_others(host, dashboard, client):
    hub = dashboard.hub
    async with client.stream("GET", "/api/stream") as staying:
        stream = messages(staying)
        await anext(stream)
        async with client.stream("GET", "/api/stream") as leaving:
            await anext(messages(leaving))
            assert hub.counts()["connected"] == 2
            await host.exchange(1)
        # The second one is gone without reading to the end.
        await wait_for(lambda: hub.counts()["connected"] == 1, what="the viewer to be dropped")
        assert hub.counts()["disconnected"] == 1 and hub.counts()["dropped_slow"] == 0
        await host.exchange(1)
        await until(stream, lambda n, d: n == "tail" and d["events"])
    await wait_for(lambda: hub.counts()["connected"] == 0)
    assert host.asker.replies == 2


async def test_too_many_viewers_are_told_503(host):
    settings = DashboardSettings(port=0, tick_s=0.05, max_viewers=1)
    async with (
        DashboardServer(host, settings) as dashboard,
        httpx2.AsyncClient(base_url=dashboard.url, timeout=TIMEOUT) as client,
        client.stream("GET", "/api/stream") as first,
    ):
        await anext(messages(first))
        second = await client.get("/api/stream")
        assert second.status_code == 503 and second.headers["retry-after"] == "5"
        assert "1 viewers are connected already (dashboard.max_viewers)" in second.json()["message"]
        assert dashboard.hub.counts()["connected"] == 1


async def test_a_slow_viewer_is_dropped_and_the_others_go_on(host):
    """A viewer that stops reading fills its socket, then its queue: it is dropped; another
    viewer, the tap and the bus are not held up."""
    settings = DashboardSettings(
        port=0,
        tick_s=0.02,
        viewer_queue=8,
        payload_preview=4096,
        tail_batch=1000,
        ring_size=4000,
    )
    async with (
        DashboardServer(host, settings) as dashboard,
        httpx2.AsyncClient(base_url=dashboard.url, timeout=TIMEOUT) as client,
        client.stream("GET", "/api/stream") as good,
    ):
        hub = dashboard.hub
        stream = messages(good)
        await anext(stream)
        slow = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        slow.connect(("127.0.0.1", dashboard.port))
        slow.sendall(b"GET /api/stream HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        await wait_for(lambda: hub.counts()["connected"] == 2, what="the slow viewer to join")
        big = b"x" * 4096
        deadline = time.monotonic() + 30
        published = 0
        # The good viewer keeps reading while the bus floods; the slow one reads nothing.
        reader = asyncio.create_task(_drain(stream))
        try:
            while hub.counts()["dropped_slow"] == 0:
                assert time.monotonic() < deadline, f"not dropped: {hub.counts()}"
                for _ in range(50):
                    await host.bus.publish("flood.big", Event("big", big))
                    published += 1
                await asyncio.sleep(0.02)
            assert hub.counts()["connected"] == 1
            before = reader_count[0]
            await host.exchange(1)
            await wait_for(lambda: reader_count[0] > before, what="the good viewer to go on")
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
        # The server closed the slow viewer's connection: reading it to the end finds EOF.
        slow.setblocking(False)
        closed = await asyncio.wait_for(_eof(slow), TIMEOUT)
        slow.close()
        assert closed
        assert host.bus.stats("flood.big").published == published


reader_count = [0]


async def _drain(stream: AsyncIterator[tuple[str, dict]]) -> None:
    reader_count[0] = 0
    async for _ in stream:
        reader_count[0] += 1


async def _eof(sock: socket.socket) -> bool:
    loop = asyncio.get_running_loop()
    while True:
        try:
            chunk = await loop.sock_recv(sock, 1 << 20)
        except ConnectionResetError:
            return True
        if not chunk:
            return True


async def test_stopping_the_dashboard_ends_the_streams_cleanly(host):
    dashboard = DashboardServer(host, DashboardSettings(port=0, tick_s=0.05))
    await dashboard.start()
    try:
        async with (
            httpx2.AsyncClient(base_url=dashboard.url, timeout=TIMEOUT) as client,
            client.stream("GET", "/api/stream") as response,
        ):
            stream = messages(response)
            await anext(stream)
            stopping = asyncio.create_task(dashboard.stop())
            names = [name async for name, _ in stream]  # ends, no error
            await asyncio.wait_for(stopping, TIMEOUT)
            assert "hello" not in names
    finally:
        await dashboard.stop()
    assert dashboard.hub.counts()["connected"] == 0
    # The host goes on without its dashboard: the tap's subscription is gone.
    assert dashboard.tap.subscription is None
    await host.exchange(1)
    with pytest.raises(httpx2.ConnectError):
        async with httpx2.AsyncClient(timeout=2) as client:
            await client.get(dashboard.url + "api/health")


async def test_head_on_the_stream_answers_the_headers_only(dashboard, client):
    response = await client.head("/api/stream")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert dashboard.hub.counts()["joined"] == 0


async def test_a_dashboard_started_again_serves_streams_again(host):
    dashboard = DashboardServer(host, DashboardSettings(port=0, tick_s=0.05))
    for _ in range(2):
        await dashboard.start()
        try:
            async with (
                httpx2.AsyncClient(base_url=dashboard.url, timeout=TIMEOUT) as client,
                client.stream("GET", "/api/stream") as response,
            ):
                name, _ = await anext(messages(response))
                assert name == "hello"
        finally:
            await dashboard.stop()
    assert dashboard.hub.counts()["joined"] == 2
