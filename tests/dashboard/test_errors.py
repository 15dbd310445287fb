"""Bad input: malformed requests, wrong tokens, a foreign Host: a clear HTTP error, and the
host and the dashboard go on."""

from __future__ import annotations

import httpx2
import pytest


def _error(response: httpx2.Response, status: int) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["status"] == status and body["error"]
    return str(body["message"])


@pytest.mark.parametrize(
    ("path", "params", "needle"),
    [
        ("/api/events", {"limit": "abc"}, "limit must be an integer from 1 to 2000, got 'abc'"),
        ("/api/events", {"limit": "0"}, "limit must be an integer from 1 to 2000, got 0"),
        ("/api/events", {"after": "-1"}, "after must be an integer"),
        ("/api/events", {"topic": "orders..x"}, "topic: invalid topic 'orders..x'"),
        ("/api/events", {"topic": "a.>.b"}, "topic: invalid topic 'a.>.b'"),
        ("/api/events", {"colour": "red"}, "unknown query parameter 'colour' for /api/events"),
        ("/api/metrics", {"limit": "100000"}, "limit must be an integer from 1 to 1000"),
        ("/api/threads", {"kind": "some"}, "kind must be 'collab' or 'all', got 'some'"),
        (
            "/api/topology",
            {"x": "1"},
            "unknown query parameter 'x' for /api/topology (known: none)",
        ),
        ("/api/stream", {"topic": "bad topic"}, "topic: invalid topic 'bad topic'"),
        ("/api/stream", {"since": "1"}, "unknown query parameter 'since' for /api/stream"),
    ],
)
async def test_malformed_requests_are_400_with_a_message(client, path, params, needle):
    message = _error(await client.get(path, params=params), 400)
    assert needle in message


async def test_a_repeated_parameter_is_400(client):
    message = _error(await client.get("/api/events?topic=a&topic=b"), 400)
    assert message == "query parameter 'topic' is given twice"


async def test_an_unknown_thread_is_404(client):
    message = _error(await client.get("/api/threads/no-such-thread"), 404)
    assert "no thread 'no-such-thread'" in message


async def test_an_overlong_thread_id_is_400(client):
    message = _error(await client.get("/api/threads/" + "x" * 300), 400)
    assert "a thread id is 1 to 256 characters" in message


async def test_unknown_paths_and_methods(client):
    assert "no such path: /api/nothing" in _error(await client.get("/api/nothing"), 404)
    assert "no such path: /favicon.ico" in _error(await client.get("/favicon.ico"), 404)
    message = _error(await client.post("/api/metrics", content=b"{}"), 405)
    assert message == "method POST is not allowed on /api/metrics; use GET"


async def test_the_host_goes_on_after_bad_requests(host, dashboard, client):
    for _ in range(3):
        await client.get("/api/events", params={"topic": "..."})
        await client.get("/api/threads/" + "y" * 999)
    await host.exchange(2)
    assert (await client.get("/api/metrics")).status_code == 200
    assert host.asker.replies == 2
