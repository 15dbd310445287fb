"""``loom nats``: the NATS bus from the command line.

- ``loom nats status``: the server, the bus's stream (limits, state) and its consumers.
- ``loom nats replay PATTERN --from SEQ|TIME``: a topic's history as JSON lines.

Exit status: 0 on success, 1 when the server or the stream cannot be reached.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import sys
from datetime import UTC, datetime, timedelta
from typing import Any, TextIO

from loom import Event
from loom.host import PluginHost
from loom_nats._config import DEFAULT_SERVERS, stream_name_for

__all__ = ["configure", "parse_start", "run"]

_EPILOG = """\
examples:
  loom nats status
  loom nats status --servers nats://10.0.0.5:4222 --prefix acme --json
  loom nats replay 'sensor.>' --from 1                 everything from stream sequence 1
  loom nats replay orders.created --from 15m --output orders.jsonl
  loom nats replay 'agent.planner.>' --from 2026-11-25T07:00:00Z --types collab.request
"""

_AGO = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_start(text: str) -> tuple[int | None, datetime | None]:
    """``--from``: a stream sequence (``42``), a time ago (``90s``, ``15m``, ``2h``,
    ``1d``), or an ISO 8601 time (``2026-11-25T07:00:00Z``; without a zone, UTC).

    Raises:
        ValueError: none of those.
    """
    text = text.strip()
    if text.isdigit():
        return int(text), None
    ago = _AGO.match(text)
    if ago:
        seconds = float(ago.group(1)) * _UNITS[ago.group(2)]
        return None, datetime.now(UTC) - timedelta(seconds=seconds)
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"--from takes a stream sequence (42), a time ago (15m, 2h) or an ISO time "
            f"(2026-11-25T07:00:00Z), not {text!r}"
        ) from None
    return None, when if when.tzinfo else when.replace(tzinfo=UTC)


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the ``status`` and ``replay`` subcommands."""
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = _EPILOG
    actions = parser.add_subparsers(dest="nats_command", metavar="ACTION", required=True)
    status = actions.add_parser("status", help="the server, the stream and its consumers")
    replay = actions.add_parser("replay", help="a topic's history as JSON lines")
    for sub in (status, replay):
        sub.add_argument(
            "--servers",
            default=os.environ.get("LOOM_NATS_URL", DEFAULT_SERVERS),
            help="NATS URL(s), comma-separated (default $LOOM_NATS_URL or %(default)s)",
        )
        sub.add_argument("--prefix", default="loom", help="the bus's subject prefix")
        sub.add_argument("--stream", help="the stream's name (default: the prefix in upper case)")
    status.add_argument("--json", action="store_true", help="print one JSON document")
    replay.add_argument("pattern", help="a topic or pattern (* and > wildcards)")
    replay.add_argument(
        "--from", dest="start", required=True, help="SEQ, a time ago (15m) or an ISO time"
    )
    replay.add_argument("--types", help="only these event types, comma-separated")
    replay.add_argument("--limit", type=int, help="stop after this many events")
    replay.add_argument("--output", "-o", default="-", help="file to write (default stdout)")


def run(args: argparse.Namespace, host: PluginHost) -> Any:
    """Run ``loom nats ACTION``: a coroutine the CLI awaits."""
    if args.nats_command == "status":
        return _status(args)
    return _replay(args)


async def _status(args: argparse.Namespace) -> int:
    from nats.errors import Error as NatsClientError
    from nats.js.errors import NotFoundError

    from loom_nats._link import Link

    stream = args.stream or stream_name_for(args.prefix)
    servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    link = Link(servers, {"connect_timeout": 2}, on_reconnect=_nothing, on_error=lambda e: None)
    try:
        nc = await link.open()
    except ConnectionError as exc:
        print(f"loom nats: {exc}", file=sys.stderr)
        return 1
    try:
        report: dict[str, Any] = {
            "server": link.server,
            "version": _version(nc.connected_server_version),
            "jetstream": True,
            "max_payload": nc.max_payload,
            "stream": stream,
        }
        js = nc.jetstream(timeout=3)
        try:
            info = await js.stream_info(stream)
        except NotFoundError:
            report["stream_state"] = None
        except NatsClientError:  # no JetStream answers (NoResponders, timeout)
            report["jetstream"] = False
            report["stream_state"] = None
        else:
            config, state = info.config, info.state
            report["stream_config"] = {
                "subjects": config.subjects,
                "storage": getattr(config.storage, "value", config.storage),
                "max_age_s": config.max_age,
                "max_bytes": config.max_bytes,
                "max_msgs": config.max_msgs,
                "discard": getattr(config.discard, "value", config.discard),
                "duplicate_window_s": config.duplicate_window,
                "replicas": config.num_replicas,
            }
            report["stream_state"] = {
                "messages": state.messages,
                "bytes": state.bytes,
                "first_seq": state.first_seq,
                "last_seq": state.last_seq,
                "consumers": state.consumer_count,
            }
            consumers = []
            for consumer in await js.consumers_info(stream):
                consumers.append(
                    {
                        "name": consumer.name,
                        "durable": bool(consumer.config.durable_name),
                        "filter": consumer.config.filter_subject,
                        "pending": consumer.num_pending,
                        "ack_pending": consumer.num_ack_pending,
                        "redelivered": consumer.num_redelivered,
                    }
                )
            report["consumers"] = consumers
    finally:
        await link.close()
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        _print_status(report, sys.stdout)
    return 0 if report.get("stream_state") is not None else 1


def _version(version: Any) -> str:
    return f"{version.major}.{version.minor}.{version.patch}"


async def _nothing() -> None:
    return None


def _print_status(report: dict[str, Any], out: TextIO) -> None:
    js = "JetStream" if report["jetstream"] else "NO JetStream"
    out.write(f"server   {report['server']} (nats-server {report['version']}, {js})\n")
    state = report.get("stream_state")
    if state is None:
        out.write(f"stream   {report['stream']}: does not exist (a NatsBus creates it on start)\n")
        return
    config = report["stream_config"]
    out.write(
        f"stream   {report['stream']} over {', '.join(config['subjects'])}: "
        f"{state['messages']} events, {state['bytes']} bytes, "
        f"sequences {state['first_seq']}..{state['last_seq']}\n"
    )
    out.write(
        f"limits   max_age {config['max_age_s']} s, max_bytes {config['max_bytes']}, "
        f"max_msgs {config['max_msgs']}, {config['storage']} storage, discard "
        f"{config['discard']}, duplicate window {config['duplicate_window_s']} s\n"
    )
    for consumer in report["consumers"]:
        kind = "durable" if consumer["durable"] else "ephemeral"
        out.write(
            f"consumer {consumer['name']} ({kind}) on {consumer['filter']}: "
            f"{consumer['pending']} pending, {consumer['ack_pending']} unacknowledged\n"
        )


def event_json(event: Event) -> dict[str, Any]:
    """An event as JSON-ready data; the payload in base64."""
    return {
        "id": event.id,
        "type": event.type,
        "timestamp_ms": event.timestamp_ms,
        "source": event.source,
        "metadata": event.metadata,
        "payload_b64": base64.b64encode(event.payload).decode(),
        "confidence": event.confidence,
        "tags": list(event.tags),
        "priority": event.priority,
    }


async def _replay(args: argparse.Namespace) -> int:
    from loom_nats._bus import NatsBus
    from loom_nats._errors import NatsError

    try:
        from_seq, from_time = parse_start(args.start)
    except ValueError as exc:
        print(f"loom nats: {exc}", file=sys.stderr)
        return 2
    types = [t for t in (args.types or "").split(",") if t]
    bus = NatsBus(args.servers, prefix=args.prefix, stream=args.stream, create_stream=False)
    out: TextIO = sys.stdout if args.output == "-" else open(args.output, "w")  # noqa: SIM115
    count = 0
    try:
        await bus.start()
        async for item in bus.replay(
            args.pattern,
            from_seq=from_seq,
            from_time=from_time,
            event_types=types,
            limit=args.limit,
        ):
            record = {
                "seq": item.seq,
                "topic": item.topic,
                "stored_at": item.stored_at.isoformat(),
                "event": event_json(item.event),
            }
            out.write(json.dumps(record) + "\n")
            count += 1
    except (NatsError, ValueError) as exc:
        print(f"loom nats: {exc}", file=sys.stderr)
        return 1
    finally:
        await bus.shutdown()
        if out is not sys.stdout:
            out.close()
    print(f"loom nats: replayed {count} events", file=sys.stderr)
    return 0
