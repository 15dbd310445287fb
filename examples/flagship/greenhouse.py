"""The flagship's agents and capabilities: a greenhouse that senses, reasons and acts.

- ``Monitor`` (sense): reads every sensor reading the ``file`` source publishes, keeps
  per-sensor statistics in its persistent state (RocksDB), and raises an alert when a value
  leaves its limits (and clears it when the value is back).
- ``Caretaker`` (reason and act): for each alert it asks the model router for a model
  (the deterministic local one when none is configured, the ``OPENAI_BASE_URL`` endpoint
  when that is set) and lets it drive the actuators through the tool orchestrator; when an
  alert clears it resets the actuator itself, with a plain capability call.
- ``greenhouse.vent``, ``greenhouse.heat``, ``greenhouse.mist``, ``greenhouse.notify``:
  the actuators, as capabilities the broker runs.

Every agent says what it does on stdout, one line each: together they are the narrative.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import Field

from loom import Event
from loom.actions import capability
from loom.agents import Agent, Context, handles
from loom.models import RoutingParams, RoutingRequest
from loom.tools import ToolOrchestrator

Zone = Literal["north", "south", "east"]

#: What the actuators are set to now (the greenhouse's hardware, simulated).
ACTUATORS: dict[str, dict[str, Any]] = {}

ALERTS_TOPIC = "alerts.{zone}"
ACTUATOR_CAPABILITIES = (
    "greenhouse.heat",
    "greenhouse.mist",
    "greenhouse.notify",
    "greenhouse.vent",
)


def say(who: str, text: str) -> None:
    """One line of the narrative."""
    print(f"{who:<10} {text}", flush=True)


# -- act: the actuators -------------------------------------------------------------------


@capability("greenhouse.vent")
async def vent(zone: Zone, open_percent: Annotated[int, Field(ge=0, le=100)]) -> dict[str, Any]:
    """Open a zone's roof vents to a percentage (0 closes them)."""
    ACTUATORS.setdefault(zone, {})["vent"] = open_percent
    say("actuator", f"{zone} vents {'closed' if open_percent == 0 else f'open {open_percent} %'}")
    return {"zone": zone, "vent_percent": open_percent}


@capability("greenhouse.heat")
async def heat(
    zone: Zone, target_c: Annotated[float, Field(ge=0, le=35)] | None = None
) -> dict[str, Any]:
    """Heat a zone to a target temperature (none switches the heater off)."""
    ACTUATORS.setdefault(zone, {})["heat"] = target_c
    say("actuator", f"{zone} heater {'off' if target_c is None else f'on, target {target_c} C'}")
    return {"zone": zone, "heat_target_c": target_c}


@capability("greenhouse.mist")
async def mist(zone: Zone, seconds: Annotated[int, Field(ge=1, le=600)]) -> dict[str, Any]:
    """Run a zone's misting nozzles for some seconds."""
    ACTUATORS.setdefault(zone, {})["mist_s"] = seconds
    say("actuator", f"{zone} misting for {seconds} s")
    return {"zone": zone, "mist_s": seconds}


@capability("greenhouse.notify")
async def notify(message: str) -> str:
    """Tell the grower something (here: print it)."""
    say("notify", message)
    return "delivered"


# -- sense ---------------------------------------------------------------------------------


class Monitor(Agent):
    """Watches the readings, keeps statistics in its state, raises and clears alerts.

    State (RocksDB): ``seen`` (readings in all runs), ``runs``, and per sensor
    ``sensor.{zone}.{kind}`` (count, mean, last) and ``alerting.{zone}.{kind}``.

    Args:
        limits: per kind of reading, the ``[low, high]`` range that needs no action.
    """

    def __init__(self, limits: dict[str, list[float]]) -> None:
        self.limits = {kind: (float(low), float(high)) for kind, (low, high) in limits.items()}

    async def on_start(self, ctx: Context) -> None:
        assert ctx.state is not None, "the monitor needs a state store"
        runs = int(await ctx.state.get("runs") or b"0")
        seen = int(await ctx.state.get("seen") or b"0")
        await ctx.state.put("runs", str(runs + 1).encode())
        ctx.memory["seen_before"] = seen
        if runs == 0:
            say("monitor", "first run: every reading's statistics go to RocksDB")
        else:
            say("monitor", f"run {runs + 1}: {seen} readings remembered from earlier runs")

    @handles("sensor.reading")
    async def on_reading(self, ctx: Context, event: Event) -> None:
        assert ctx.state is not None
        reading = json.loads(event.payload)
        zone, kind, value = reading["zone"], reading["kind"], float(reading["value"])
        unit = reading.get("unit", "")
        key = f"sensor.{zone}.{kind}"
        stats = json.loads(await ctx.state.get(key) or b'{"count": 0, "mean": 0.0}')
        stats["count"] += 1
        stats["mean"] += (value - stats["mean"]) / stats["count"]
        stats["last"] = value
        await ctx.state.put(key, json.dumps(stats).encode())
        seen = int(await ctx.state.get("seen") or b"0") + 1
        await ctx.state.put("seen", str(seen).encode())
        text = f"{zone} {kind} {value:g} {unit}".rstrip()
        low, high = self.limits.get(kind, (float("-inf"), float("inf")))
        alerting_key = f"alerting.{zone}.{kind}"
        was_alerting = await ctx.state.get(alerting_key) == b"1"
        if low <= value <= high:
            if was_alerting:
                await ctx.state.put(alerting_key, b"0")
                say("monitor", f"{text}: back within {low:g}..{high:g}, alert cleared")
                await self._alert(ctx, "alert.cleared", zone, kind, value, low, high)
            else:
                say("monitor", f"{text}: fine")
            return
        direction = "above" if value > high else "below"
        limit = high if value > high else low
        await ctx.state.put(alerting_key, b"1")
        say("monitor", f"{text}: {direction} the limit of {limit:g}, alert raised")
        await self._alert(ctx, "alert.raised", zone, kind, value, low, high)

    async def _alert(
        self,
        ctx: Context,
        kind_of: str,
        zone: str,
        kind: str,
        value: float,
        low: float,
        high: float,
    ) -> None:
        body = {"zone": zone, "kind": kind, "value": value, "low": low, "high": high}
        await ctx.emit(
            ALERTS_TOPIC.format(zone=zone), kind_of, json.dumps(body).encode(), priority=80
        )

    async def on_stop(self, ctx: Context) -> None:
        if ctx.state is None:
            return
        seen = int(await ctx.state.get("seen") or b"0")
        this_run = seen - ctx.memory.get("seen_before", 0)
        say("monitor", f"{this_run} readings this run, {seen} in all, kept in RocksDB")


# -- reason and act ---------------------------------------------------------------------------

SYSTEM = (
    "You look after a greenhouse. When a reading leaves its limits, act with the tools: "
    "greenhouse.vent, greenhouse.heat, greenhouse.mist, then tell the grower with "
    "greenhouse.notify. Be brief."
)


def _plan(alert: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The action a careful grower would take: the model is told it as a suggestion."""
    zone, kind, value = alert["zone"], alert["kind"], alert["value"]
    over = value > alert["high"]
    if kind == "temperature" and over:
        return "greenhouse.vent", {
            "zone": zone,
            "open_percent": 100 if value > alert["high"] + 3 else 60,
        }
    if kind == "temperature":
        return "greenhouse.heat", {"zone": zone, "target_c": alert["low"] + 4}
    if over:
        return "greenhouse.vent", {"zone": zone, "open_percent": 40}
    return "greenhouse.mist", {"zone": zone, "seconds": 30}


class _Narrated:
    """A routed chat model that tells the narrative where each call went."""

    def __init__(self, router: Any, model: Any) -> None:
        self.router = router
        self.model = model
        self.providers: list[str] = []

    async def complete(self, messages: Any, tools: Any = (), **options: Any) -> Any:
        turn = await self.model.complete(messages, tools, **options)
        routed = self.model.last
        self.providers.append(routed.provider)
        if len(self.providers) == 1:
            decision = routed.decision
            where = self.router.providers[routed.provider].location.value
            fallback = " (its fallback)" if routed.provider != decision.provider else ""
            say(
                "router",
                f"route {decision.route.value} -> {routed.provider!r}{fallback}, {where}, "
                f"{routed.latency_ms:.0f} ms: {decision.reason}",
            )
        return turn


class Caretaker(Agent):
    """Acts on alerts: the model router picks a model, which calls the actuators.

    Args:
        app: the running app (its router and broker), given by ``loom run``.
        privacy: how far alert data may travel (``public``, ``sensitive``, ``private``,
            ``local-only``); ``private`` and ``local-only`` never reach a cloud model.
        latency_budget_ms: how long an answer may take, for the router.
    """

    def __init__(
        self, app: Any, privacy: str = "sensitive", latency_budget_ms: float = 2000.0
    ) -> None:
        self.app = app
        self.params = RoutingParams.from_parameters(
            {"routing.privacy": privacy, "routing.latency_budget_ms": latency_budget_ms}
        )
        self.trace_log: Any = None
        self.first_trace: str | None = None

    async def on_start(self, ctx: Context) -> None:
        ctx.memory["alerts"] = 0
        ctx.memory["models"] = {}
        say("caretaker", self.app.reasoning.removeprefix("reasoning: "))
        telemetry = self.app.telemetry
        if self.trace_log is None and telemetry is not None and telemetry.tracer is not None:
            from tracelog import TraceLog  # needs the OpenTelemetry SDK, there with tracing

            self.trace_log = TraceLog()
            telemetry.add_span_processor(self.trace_log)

    @handles("alert.raised")
    async def on_alert(self, ctx: Context, event: Event) -> None:
        alert = json.loads(event.payload)
        zone, kind, value = alert["zone"], alert["kind"], alert["value"]
        traceparent = event.metadata.get("traceparent", "")
        if self.first_trace is None and traceparent.count("-") == 3:
            self.first_trace = traceparent.split("-")[1]
        capability_name, arguments = _plan(alert)
        message = f"{zone} {kind} {value:g}: {capability_name} {json.dumps(arguments)}"
        prompt = (
            f"Zone {zone}: {kind} is {value:g}, outside {alert['low']:g}..{alert['high']:g}. "
            f"Suggested: {capability_name} {json.dumps(arguments)} then greenhouse.notify "
            f"{json.dumps({'message': message})}"
        )
        request = RoutingRequest.for_event(event, self.params, agent_id=ctx.agent_id)
        model = _Narrated(self.app.router, self.app.router.chat_model(request))
        orchestrator = ToolOrchestrator(
            self.app.broker,
            model,
            capabilities=ACTUATOR_CAPABILITIES,
            max_steps=4,
            time_budget_s=30,
        )
        say("caretaker", f"alert {zone} {kind}: asking the model router what to do")
        try:
            result = await orchestrator.run(prompt, system=SYSTEM, correlation_id=event.id)
        except Exception as exc:  # noqa: BLE001  # a failing model is reported; the greenhouse goes on
            say(
                "caretaker", f"no model could answer ({type(exc).__name__}: {exc}); the alert waits"
            )
            return
        ctx.memory["alerts"] += 1
        for provider in model.providers:
            ctx.memory["models"][provider] = ctx.memory["models"].get(provider, 0) + 1
        for call in result.calls:
            if call.error is None and call.capability in ("greenhouse.heat", "greenhouse.vent"):
                ctx.memory[f"acted.{zone}.{kind}"] = call.capability
            outcome = (
                "ok" if call.error is None else f"failed: {call.error.code} {call.error.message}"
            )
            say("caretaker", f"called {call.capability or call.tool}: {outcome}")
        answer = " ".join((result.answer or "(no answer)").split())
        say("caretaker", f"model says: {answer[:100]}{'...' if len(answer) > 100 else ''}")
        if ctx.state is not None:
            done = int(await ctx.state.get("actions") or b"0") + len(result.calls)
            await ctx.state.put("actions", str(done).encode())
            await ctx.state.put(
                f"last.{zone}",
                json.dumps({"kind": kind, "calls": [c.capability for c in result.calls]}).encode(),
            )

    @handles("alert.cleared")
    async def on_cleared(self, ctx: Context, event: Event) -> None:
        alert = json.loads(event.payload)
        zone, kind = alert["zone"], alert["kind"]
        acted = ctx.memory.pop(f"acted.{zone}.{kind}", None)
        if acted == "greenhouse.heat":
            await ctx.tool("greenhouse.heat", {"zone": zone, "target_c": None})
        elif acted == "greenhouse.vent":
            await ctx.tool("greenhouse.vent", {"zone": zone, "open_percent": 0})
        else:
            say("caretaker", f"{zone} {kind} is back to normal; nothing to undo")

    async def on_stop(self, ctx: Context) -> None:
        models = ", ".join(
            f"{name} x{n}" for name, n in sorted(ctx.memory.get("models", {}).items())
        )
        total = int(await ctx.state.get("actions") or b"0") if ctx.state is not None else 0
        say(
            "caretaker",
            f"{ctx.memory.get('alerts', 0)} alerts handled this run "
            f"(model calls: {models or 'none'}); "
            f"{total} model-driven actions in all, kept in RocksDB",
        )
        if self.trace_log is not None and self.first_trace is not None:
            say("trace", f"the first alert, from sensor reading to actuators ({self.first_trace}):")
            for line in self.trace_log.render(self.first_trace):
                say("trace", "  " + line)
