"""The bearer token, and the loopback guard without one: 401 and 403 with a clear message,
and the host goes on."""

from __future__ import annotations

import httpx2
import pytest

from loom import Event
from loom_dashboard import DashboardServer, DashboardSettings

from .conftest import TIMEOUT


def _error(response: httpx2.Response, status: int) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["status"] == status and body["error"]
    return str(body["message"])


TOKEN = "s3cret-token"


@pytest.fixture
def settings() -> DashboardSettings:
    return DashboardSettings(port=0, tick_s=0.05, token=TOKEN)


async def test_a_token_guards_every_api_path(dashboard, client):
    for path in ("/api/topology", "/api/metrics", "/api/threads", "/api/events", "/api/stream"):
        response = await client.get(path)
        message = _error(response, 401)
        assert message.startswith("a bearer token is required: send 'Authorization: Bearer")
        assert response.headers["www-authenticate"] == 'Bearer realm="loom-dashboard"'
    # The page itself holds no data: it loads, and asks for the token.
    assert (await client.get("/")).status_code == 200


async def test_a_wrong_or_malformed_token_is_401(dashboard, client):
    wrong = await client.get("/api/metrics", headers={"Authorization": "Bearer nope"})
    assert _error(wrong, 401) == "wrong bearer token"
    assert 'error="invalid_token"' in wrong.headers["www-authenticate"]
    basic = await client.get("/api/metrics", headers={"Authorization": f"Basic {TOKEN}"})
    assert _error(basic, 401) == "wrong bearer token"
    query = await client.get("/api/metrics", params={"access_token": "nope"})
    assert _error(query, 401) == "wrong bearer token"


async def test_the_right_token_in_a_header_or_the_query(host, dashboard, client):
    header = await client.get("/api/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert header.status_code == 200
    query = await client.get("/api/topology", params={"access_token": TOKEN})
    assert query.status_code == 200 and {a["id"] for a in query.json()["agents"]} >= {"asker"}
    # The token parameter is no unknown parameter, and a bad one still gets its 400.
    bad = await client.get("/api/events", params={"access_token": TOKEN, "limit": "x"})
    assert "limit must be an integer" in _error(bad, 400)


async def test_wrong_tokens_do_not_disturb_the_host(host, dashboard, client):
    for _ in range(5):
        await client.get("/api/metrics", headers={"Authorization": "Bearer wrong"})
    await host.exchange(1)
    ok = await client.get("/api/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert ok.json()["bus"]["published"] > 0


# -- loopback without a token --------------------------------------------------------------


async def test_without_a_token_only_loopback_hosts_are_served(host):
    async with (
        DashboardServer(host, DashboardSettings(port=0)) as server,
        httpx2.AsyncClient(base_url=server.url, timeout=TIMEOUT) as client,
    ):
        ok = await client.get("/api/health", headers={"Host": f"localhost:{server.port}"})
        assert ok.status_code == 200
        foreign = await client.get("/api/health", headers={"Host": "evil.example:80"})
        message = _error(foreign, 403)
        assert "'evil.example:80' is not a loopback name" in message
        v6 = await client.get("/api/health", headers={"Host": f"[::1]:{server.port}"})
        assert v6.status_code == 200


async def test_the_port_in_use_is_a_clear_error(host, dashboard):
    taken = DashboardSettings(port=dashboard.port)
    with pytest.raises(Exception, match=rf"cannot listen on 127.0.0.1:{dashboard.port}"):
        await DashboardServer(host, taken).start()
    # The first dashboard, and the bus, are unaffected.
    await host.bus.publish("after.x", Event("x"))
    async with httpx2.AsyncClient(base_url=dashboard.url, timeout=TIMEOUT) as client:
        response = await client.get("/api/health", headers={"Authorization": f"Bearer {TOKEN}"})
        assert response.status_code == 200
