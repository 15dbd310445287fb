"""``loom bridge serve`` and ``loom bridge ping``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from loom_bridge._config import BridgeConfig, DuplicatePolicy, tls_files
from loom_bridge._errors import BridgeConfigError

if TYPE_CHECKING:
    from loom.host import PluginHost

__all__ = ["configure", "run"]

_EPILOG = """\
examples:
  loom bridge serve                               listen on 127.0.0.1:50051 (loopback only)
  loom bridge serve --address 0.0.0.0:50051 --tls-cert cert.pem --tls-key key.pem
  LOOM_BRIDGE_TOKEN=s3cret loom bridge serve      require 'authorization: Bearer s3cret'
  loom bridge ping --address 127.0.0.1:50051 --count 3
"""


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the ``serve`` and ``ping`` subcommands to the ``bridge`` parser."""
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = _EPILOG
    sub = parser.add_subparsers(dest="bridge_command", metavar="SUBCOMMAND")
    serve = sub.add_parser("serve", help="serve loom.v1.Bridge for remote agents")
    serve.add_argument(
        "--address",
        help="host:port to listen on (default $LOOM_BRIDGE_ADDR or 127.0.0.1:50051; "
        "0.0.0.0 serves every interface: set a token and TLS)",
    )
    serve.add_argument(
        "--token-file",
        type=Path,
        help="require the bearer token read from this file (default $LOOM_BRIDGE_TOKEN)",
    )
    serve.add_argument("--tls-cert", type=Path, help="PEM certificate chain: serve TLS")
    serve.add_argument("--tls-key", type=Path, help="PEM private key of --tls-cert")
    serve.add_argument("--tls-client-ca", type=Path, help="require client certs signed by this CA")
    serve.add_argument(
        "--duplicate-ids",
        choices=[p.value for p in DuplicatePolicy],
        help="a second live connection of an agent id: replace the first (default) or refuse it",
    )
    serve.add_argument("--max-message-bytes", type=int, help="largest message (default 4 MiB)")
    ping = sub.add_parser("ping", help="call Heartbeat on a bridge and print the round trip")
    ping.add_argument("--address", help="the bridge (default $LOOM_BRIDGE_ADDR or 127.0.0.1:50051)")
    ping.add_argument("--token-file", type=Path, help="send the bearer token read from this file")
    ping.add_argument("--tls-ca", type=Path, help="connect over TLS, trusting this CA")
    ping.add_argument("--count", type=int, default=1, help="calls to make (default 1)")
    ping.add_argument("--timeout", type=float, default=5.0, help="seconds per call (default 5)")
    ping.add_argument("--json", action="store_true", help="one JSON object per call")


def run(args: argparse.Namespace, host: PluginHost) -> int:
    """Run the chosen subcommand; 2 for none."""
    command = getattr(args, "bridge_command", None)
    try:
        if command == "serve":
            return asyncio.run(_serve(args, host))
        if command == "ping":
            return asyncio.run(_ping(args))
    except BridgeConfigError as exc:
        print(f"loom bridge: error: {exc}", file=sys.stderr)
        return 2
    print(
        "loom bridge: choose a subcommand: serve or ping (see loom bridge --help)", file=sys.stderr
    )
    return 2


def _token(path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise BridgeConfigError(
            "--token-file", f"cannot read {str(path)!r}: {exc.strerror}"
        ) from exc


async def _serve(args: argparse.Namespace, host: PluginHost) -> int:
    from loom.actions import ActionBroker
    from loom.bus import MemoryBus
    from loom_bridge._server import BridgeServer

    config = BridgeConfig.from_env(
        address=args.address,
        token=_token(args.token_file),
        tls=tls_files(
            args.tls_cert, args.tls_key, args.tls_client_ca, source="--tls-cert/--tls-key"
        ),
        duplicate_ids=DuplicatePolicy(args.duplicate_ids) if args.duplicate_ids else None,
        max_message_bytes=args.max_message_bytes,
    )
    broker = ActionBroker()
    broker.register_contributions(host.capabilities())
    async with MemoryBus() as bus:
        server = BridgeServer(bus, broker, config=config)
        await server.start()
        security = ("TLS" if config.tls else "plaintext") + (", token" if config.token else "")
        print(f"loom bridge: listening on {server.address} ({security})", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
        try:
            await stop.wait()
        finally:
            await server.stop()
            await broker.aclose()
    print("loom bridge: stopped", flush=True)
    return 0


async def _ping(args: argparse.Namespace) -> int:
    import grpc.aio

    from loom.v1 import bridge_pb2
    from loom_bridge._auth import bearer_metadata
    from loom_bridge._client_config import ClientConfig
    from loom_bridge._wire import bridge_stub, now_ms

    config = ClientConfig.from_env(
        address=args.address, token=_token(args.token_file), tls_ca=args.tls_ca
    )
    failures = 0
    async with config.channel() as channel:
        stub = bridge_stub(channel)
        for _ in range(max(1, args.count)):
            start = time.perf_counter()
            try:
                response = await stub.Heartbeat(
                    bridge_pb2.HeartbeatRequest(timestamp_ms=now_ms()),
                    timeout=args.timeout,
                    metadata=bearer_metadata(config.token),
                    wait_for_ready=True,
                )
            except grpc.aio.AioRpcError as exc:
                failures += 1
                reason = f"{exc.code().name}: {exc.details()}"
                print(
                    f"loom bridge: ping {config.address} failed: {reason}",
                    file=sys.stderr,
                )
                continue
            rtt_ms = (time.perf_counter() - start) * 1000
            if args.json:
                document = {"address": config.address, "status": response.status, "rtt_ms": rtt_ms}
                print(json.dumps(document), flush=True)
            else:
                print(f"{config.address}: status={response.status} rtt={rtt_ms:.2f} ms", flush=True)
    return 1 if failures else 0
