"""``loom nats`` and ``loom replay``: the NATS bus from the command line.

- ``loom nats status``: the server, the bus's stream (limits, state) and its consumers.
- ``loom replay PATTERN --from SEQ|TIME`` (also ``loom nats replay``): a topic's history
  as JSON lines, on stdout or into a file.

Exit status: 0 on success; 1 when the server or the stream cannot be reached, or the
stream holds no event on the topic; 2 for bad arguments (``--from``, the pattern).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from datetime import UTC, datetime, timedelta
from typing import Any, TextIO

from loom.host import PluginHost
from loom_nats._config import DEFAULT_SERVERS, stream_name_for

__all__ = ["configure", "configure_replay", "parse_start", "run", "run_replay"]

_EPILOG = """\
examples:
  loom nats status
  loom nats status --servers nats://10.0.0.5:4222 --prefix acme --json
  loom nats replay 'sensor.>' --from 1                 everything from stream sequence 1
  loom nats replay orders.created --from 15m --output orders.jsonl
  loom nats replay 'agent.planner.>' --from 2026-11-25T07:00:00Z --types collab.request
"""

_REPLAY_EPILOG = """\
examples:
  loom replay 'sensor.>' --from 1                      everything from stream sequence 1
  loom replay orders.created --from 15m -o orders.jsonl the last 15 minutes, to a file
  loom replay 'agent.planner.>' --from 2026-11-25T07:00:00Z --types collab.request

Each line is one JSON object: seq, topic, stored_at and event (payload in base64).
exit status: 0 done; 1 no server, no such stream, or no event stored on the topic;
2 bad arguments.
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
    _add_connection(status)
    status.add_argument("--json", action="store_true", help="print one JSON document")
    configure_replay(replay)


def configure_replay(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``loom replay`` (and ``loom nats replay``)."""
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = _REPLAY_EPILOG
    _add_connection(parser)
    parser.add_argument("pattern", help="a topic or pattern (* and > wildcards)")
    parser.add_argument(
        "--from", dest="start", required=True, help="SEQ, a time ago (15m) or an ISO time"
    )
    parser.add_argument("--types", help="only these event types, comma-separated")
    parser.add_argument("--limit", type=_positive, help="stop after this many events")
    parser.add_argument("--output", "-o", default="-", help="file to write (default stdout)")


def _add_connection(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--servers",
        default=os.environ.get("LOOM_NATS_URL", DEFAULT_SERVERS),
        help="NATS URL(s), comma-separated (default $LOOM_NATS_URL or %(default)s)",
    )
    parser.add_argument("--prefix", default="loom", help="the bus's subject prefix")
    parser.add_argument("--stream", help="the stream's name (default: the prefix in upper case)")


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, not {text!r}")
    return int(text)


def run(args: argparse.Namespace, host: PluginHost) -> Any:
    """Run ``loom nats ACTION``: a coroutine the CLI awaits."""
    if args.nats_command == "status":
        return _status(args)
    return _replay(args, "loom nats")


def run_replay(args: argparse.Namespace, host: PluginHost) -> Any:
    """Run ``loom replay``: a coroutine the CLI awaits."""
    return _replay(args, "loom replay")


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


async def _replay(args: argparse.Namespace, prog: str) -> int:
    from nats.errors import Error as NatsClientError
    from nats.js.errors import NotFoundError

    from loom.topics import TopicPattern
    from loom_nats._link import Link
    from loom_nats._replay import replay_stream

    def fail(message: str, code: int) -> int:
        print(f"{prog}: {message}", file=sys.stderr)
        return code

    try:
        from_seq, from_time = parse_start(args.start)
        TopicPattern.compile(args.pattern)
    except ValueError as exc:
        return fail(str(exc), 2)
    prefix = args.prefix
    stream = args.stream or stream_name_for(prefix)
    subject = f"{prefix}.{args.pattern}"
    types = frozenset(t for t in (args.types or "").split(",") if t) or None
    servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    link = Link(servers, {"connect_timeout": 2}, on_reconnect=_nothing, on_error=lambda e: None)
    try:
        nc = await link.open()
    except ConnectionError as exc:
        return fail(str(exc), 1)
    out: TextIO | None = None
    count = 0
    undecodable = 0

    def skip(subject: str, exc: Exception) -> None:
        nonlocal undecodable
        undecodable += 1

    try:
        js = nc.jetstream(timeout=5)
        try:
            info = await js.stream_info(stream, subjects_filter=subject)
        except NotFoundError:
            return fail(
                f"no JetStream stream {stream!r} at {link.server} (is the prefix "
                f"{prefix!r} the bus's? --prefix and --stream name it)",
                1,
            )
        except NatsClientError as exc:
            return fail(f"JetStream does not answer at {link.server}: {exc}", 1)
        if not info.state.subjects:
            return fail(
                f"stream {stream!r} holds no event on {args.pattern!r} (it holds "
                f"{info.state.messages} events, sequences {info.state.first_seq}.."
                f"{info.state.last_seq})",
                1,
            )
        try:
            out = sys.stdout if args.output == "-" else open(args.output, "w")  # noqa: SIM115
        except OSError as exc:
            return fail(f"cannot write {args.output}: {exc.strerror}", 1)
        async for item in replay_stream(
            js,
            stream=stream,
            subject=subject,
            strip=len(prefix) + 1,
            from_seq=from_seq,
            from_time=from_time,
            event_types=types,
            limit=args.limit,
            batch=256,
            undecodable=skip,
        ):
            out.write(json.dumps(item.to_json()) + "\n")
            count += 1
    finally:
        await link.close()
        if out is not None and out is not sys.stdout:
            out.close()
    skipped = f", skipped {undecodable} that were not Loom events" if undecodable else ""
    print(f"{prog}: replayed {count} events from {stream}{skipped}", file=sys.stderr)
    return 0
