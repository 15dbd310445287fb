"""The JSON API over real HTTP: topology, metrics, threads, events, health."""

from __future__ import annotations

import asyncio

from loom import Event, QoS
from loom.bus import Backpressure, Policy
from loom.models import RoutingRequest

from .conftest import TIMEOUT, wait_for


async def test_topology_lists_agents_topics_and_capabilities(host, client):
    body = (await client.get("/api/topology")).json()
    agents = {a["id"]: a for a in body["agents"]}
    assert set(agents) == {"asker", "answerer"}
    assert agents["asker"]["kind"] == "local" and agents["asker"]["status"] == "running"
    assert agents["answerer"]["topics"] == ["agent.answerer.replies", "answer.q"]
    topics = {t["pattern"]: t for t in body["topics"]}
    assert topics["answer.q"]["agents"] == ["answerer"]
    assert topics["ask.go"] == {"pattern": "ask.go", "wildcard": False, "agents": ["asker"]}
    capabilities = {c["name"]: c for c in body["capabilities"]}
    assert set(capabilities) == {"text.upper", "text.fail"}
    assert capabilities["text.upper"]["provider"] == "NATIVE"
    assert capabilities["text.upper"]["breaker"] == "closed"
    assert capabilities["text.upper"]["description"] == "Upper-case a text."
    assert body["connections"] == {"bridge": [], "mcp": []}


async def test_topology_follows_the_runtime(host, client):
    async def idle(ctx, event):
        return None

    await host.runtime.spawn("late", idle, topics=["sensor.*.temp"])
    body = (await client.get("/api/topology")).json()
    assert "late" in {a["id"] for a in body["agents"]}
    wild = {t["pattern"]: t for t in body["topics"]}["sensor.*.temp"]
    assert wild["wildcard"] is True and wild["agents"] == ["late"]
    await host.runtime.delete("late")
    body = (await client.get("/api/topology")).json()
    assert "late" not in {a["id"] for a in body["agents"]}


async def test_metrics_move_between_two_reads(host, dashboard, client):
    await host.exchange(2)
    first = (await client.get("/api/metrics")).json()
    await asyncio.sleep(1.05)  # rates are measured over at least a second
    await host.exchange(3)
    second = (await client.get("/api/metrics")).json()
    assert second["bus"]["published"] > first["bus"]["published"]
    assert second["bus"]["delivered"] > first["bus"]["delivered"]
    assert second["bus"]["events_per_s"] > 0
    assert second["window_s"] >= 1.0
    rates = {t["topic"]: t for t in second["bus"]["topics"]}
    assert rates["ask.go"]["rate"] > 0 and rates["ask.go"]["published"] == 5
    assert second["tools"]["calls"] - first["tools"]["calls"] == 6  # upper + fail, three times
    assert second["latency"]["count"] > first["latency"]["count"]
    assert second["generated_ms"] > first["generated_ms"]


async def test_tool_calls_and_error_rates(host, client):
    await host.exchange(4)
    tools = (await client.get("/api/metrics")).json()["tools"]
    assert tools["available"] is True
    assert (tools["ok"], tools["failed"], tools["calls"]) == (4, {"CAPABILITY_ERROR": 4}, 8)
    assert tools["error_rate"] == 0.5
    assert tools["capabilities"] == 2
    if tools["by_capability"]:  # when the broker counts per capability
        rows = {r["capability"]: r for r in tools["by_capability"]}
        assert rows["text.fail"]["error_rate"] == 1.0 and rows["text.upper"]["errors"] == 0


async def test_routing_decisions_by_route(host, dashboard, client):
    for privacy in ("local-only", "local-only", "public"):
        await host.router.route(RoutingRequest(privacy=privacy))
    await wait_for(lambda: sum(host.router.stats.decisions.values()) == 3)
    routing = (await client.get("/api/metrics")).json()["routing"]
    assert routing["source"] == "router"
    assert routing["by_route"] == dict(host.router.stats.decisions)
    assert routing["by_route"]["Local"] >= 2
    # The dashboard also saw the decisions as routing.decision events on runtime.routing.
    await wait_for(lambda: sum(dashboard.tap.routes.values()) == 3)
    events = (await client.get("/api/events", params={"type": "routing.decision"})).json()
    assert len(events["events"]) == 3
    assert {e["topic"] for e in events["events"]} == {"runtime.routing"}
    seen = (await client.get("/api/metrics")).json()["routing"]["events_seen"]
    assert seen == routing["by_route"]


async def test_drops_by_reason_and_queue_depths(host, dashboard, client):
    # A Realtime subscriber that never reads, with room for 4: the fifth event drops.
    stuck = await host.bus.subscribe(
        "flood.x", qos=QoS.REALTIME, backpressure=Backpressure(Policy.DROP_OLDEST, queue_size=4)
    )
    for i in range(10):
        await host.bus.publish("flood.x", Event("flood", str(i).encode()))
    metrics = (await client.get("/api/metrics")).json()
    assert metrics["bus"]["drops_by_reason"] == {"QUEUE_FULL": 6}
    flood = {t["topic"]: t for t in metrics["bus"]["topics"]}["flood.x"]
    assert flood["dropped_by_reason"] == {"QUEUE_FULL": 6} and flood["published"] == 10
    queues = {q["id"]: q for q in metrics["queues"]["subscriptions"]}
    gauge = queues[stuck.id]
    assert (gauge["depth"], gauge["capacity"], gauge["fill"]) == (4, 4, 1.0)
    assert (gauge["qos"], gauge["policy"], gauge["dropped"]) == ("REALTIME", "DROP_OLDEST", 6)
    # The fullest queue comes first; the dashboard's own tap is marked as such.
    assert metrics["queues"]["subscriptions"][0]["id"] == stuck.id
    assert [q["dashboard"] for q in metrics["queues"]["subscriptions"]].count(True) == 1
    agents = {a["id"]: a for a in metrics["queues"]["agents"]}
    assert agents["asker"]["capacity"] == host.runtime.mailbox_size
    assert metrics["dashboard"]["dropped"] == 0


async def test_swimlane_thread_for_a_request_reply(host, dashboard, client):
    await host.exchange(1)
    await wait_for(lambda: len(dashboard.tap.threads.summaries(10, collab_only=True)) >= 1)
    threads = (await client.get("/api/threads")).json()["threads"]
    exchange = next(t for t in threads if t["kind"] == "request/reply")
    assert exchange["collab"] is True
    assert exchange["lanes"] == ["agent.asker", "agent.answerer"]
    await wait_for(lambda: dashboard.tap.threads.detail(exchange["id"])["status"] == "done")
    detail = (await client.get(f"/api/threads/{exchange['id']}")).json()
    types = [e["type"] for e in detail["events"]]
    assert types == ["collab.request", "collab.reply", "collab.summary"]
    request, reply = detail["events"][0], detail["events"][1]
    assert (request["lane"], request["phase"]) == ("agent.asker", "request")
    assert (reply["lane"], reply["phase"]) == ("agent.answerer", "reply")
    assert reply["correlation_id"] == request["correlation_id"]
    assert [e["ts"] for e in detail["events"]] == sorted(e["ts"] for e in detail["events"])
    assert detail["status"] == "done" and detail["count"] == 3


async def test_threads_kind_all_lists_plain_threads_too(host, dashboard, client):
    await host.bus.publish("misc.note", Event("note", metadata={"thread_id": "plain-1"}))
    await wait_for(lambda: dashboard.tap.threads.detail("plain-1") is not None)
    collab = (await client.get("/api/threads")).json()["threads"]
    everything = (await client.get("/api/threads", params={"kind": "all"})).json()["threads"]
    assert "plain-1" not in {t["id"] for t in collab}
    plain = next(t for t in everything if t["id"] == "plain-1")
    assert (plain["kind"], plain["collab"], plain["events"]) == ("events", False, 1)


async def test_a_thread_is_found_by_its_trace_id(host, dashboard, client):
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    for i, kind in enumerate(("collab.request", "collab.reply")):
        md = {
            "thread_id": "traced",
            "correlation_id": "c1",
            "sender": f"agent.p{i}",
            "traceparent": f"00-{trace}-00f067aa0ba902b{i}-01",
        }
        await host.bus.publish("t.x", Event(kind, metadata=md))
    await wait_for(lambda: dashboard.tap.threads.detail("traced") is not None)
    await wait_for(lambda: dashboard.tap.threads.detail("traced")["count"] == 2)
    detail = (await client.get(f"/api/threads/{trace}")).json()
    assert detail["id"] == "traced" and detail["trace_id"] == trace
    assert [e["span_id"] for e in detail["events"]] == ["00f067aa0ba902b0", "00f067aa0ba902b1"]


async def test_events_tail_with_a_topic_filter(host, dashboard, client):
    for topic in ("orders.created", "orders.paid", "billing.sent", "orders.eu.created"):
        await host.bus.publish(topic, Event("x", topic.encode()))
    await wait_for(lambda: dashboard.tap.seq >= 4)
    one = (await client.get("/api/events", params={"topic": "orders.*"})).json()
    assert [e["topic"] for e in one["events"]] == ["orders.created", "orders.paid"]
    assert one["events"][0]["preview"] == "orders.created" and one["topic"] == "orders.*"
    rest = (await client.get("/api/events", params={"topic": "orders.>"})).json()
    assert [e["topic"] for e in rest["events"]] == [
        "orders.created",
        "orders.paid",
        "orders.eu.created",
    ]
    after = one["events"][0]["seq"]
    later = await client.get("/api/events", params={"topic": "orders.>", "after": after})
    assert [e["topic"] for e in later.json()["events"]] == ["orders.paid", "orders.eu.created"]
    last = (await client.get("/api/events", params={"limit": 1})).json()["events"]
    assert [e["topic"] for e in last] == ["orders.eu.created"]


async def test_event_records_carry_envelope_latency_and_preview(host, dashboard, client):
    payload = b"\xff\xfe binary"
    await host.bus.publish("bin.x", Event("blob", payload, source="sensor", priority=70))
    await host.bus.publish("txt.x", Event("text", ("é" * 200).encode()))
    await wait_for(lambda: dashboard.tap.seq >= 2)
    events = (await client.get("/api/events")).json()["events"]
    blob = next(e for e in events if e["topic"] == "bin.x")
    assert blob["preview"].startswith(f"<{len(payload)} bytes: fffe")
    assert (blob["source"], blob["priority"], blob["size"]) == ("sensor", 70, len(payload))
    assert blob["latency_ms"] >= 0 and blob["seen_ms"] >= blob["ts"]
    text = next(e for e in events if e["topic"] == "txt.x")
    # 160 bytes kept: 80 two-byte characters, then a mark that there is more.
    assert text["preview"] == "é" * 80 + "…" and text["size"] == 400


async def test_health(client, dashboard):
    body = (await client.get("/api/health")).json()
    assert body["ok"] is True and body["viewers"]["connected"] == 0


async def test_the_page_is_one_self_contained_file(client):
    response = await client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    csp = response.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "connect-src 'self'" in csp
    html = response.text
    # Nothing is fetched from elsewhere: no external scripts, styles or fonts.
    assert "http://" not in html and "https://" not in html.replace("https://goo", "")
    assert "<script src" not in html and '<link rel="stylesheet"' not in html
    for path in ("/api/topology", "/api/metrics", "/api/threads", "/api/events", "/api/stream"):
        assert path in html
    assert (await client.get("/index.html")).text == html


async def test_reads_do_not_wait_on_a_busy_bus(host, dashboard, client):
    """A burst far beyond the tap's queue: the API answers and counts what it lost."""
    burst = dashboard.settings.tap_queue * 3
    for _ in range(burst):
        await host.bus.publish("burst.x", Event("b", b""))
    metrics = (await asyncio.wait_for(client.get("/api/metrics"), TIMEOUT)).json()
    assert metrics["bus"]["published"] >= burst
    await wait_for(lambda: dashboard.tap.subscription.qsize() == 0)
    assert len(dashboard.tap.ring) <= dashboard.settings.ring_size
    assert dashboard.tap.seq + dashboard.tap.dropped >= burst
