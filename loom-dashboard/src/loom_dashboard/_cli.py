"""``loom dashboard``: watch an app (``loom dashboard loom.toml``) or the built-in demo.

This module is imported when the ``loom`` CLI builds its parser, so it imports nothing
heavy at the top: the server, the demo and the app load inside :func:`run`.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from typing import TYPE_CHECKING

from loom_dashboard._settings import DEFAULT_HOST, PORT_ENV, TOKEN_ENV

if TYPE_CHECKING:
    from loom.host import PluginHost
    from loom_dashboard._settings import DashboardSettings

__all__ = ["configure", "run"]


def configure(parser: argparse.ArgumentParser) -> None:
    """The command's arguments."""
    parser.add_argument(
        "config",
        nargs="?",
        help="a loom.toml to run and watch; without one, a demo host runs",
    )
    parser.add_argument(
        "--host", default=None, help=f"address to listen on (default {DEFAULT_HOST})"
    )
    parser.add_argument(
        "--port", type=int, default=None, help=f"port (default ${PORT_ENV} or 3030; 0 = any free)"
    )
    parser.add_argument(
        "--token",
        default=None,
        help=f"bearer token viewers must send (default ${TOKEN_ENV}; needed off loopback)",
    )
    parser.add_argument(
        "--run-for", type=float, default=None, metavar="SECONDS", help="stop after this long"
    )
    parser.add_argument(
        "--rate", type=float, default=2.0, help="demo ticks per second (demo only; default 2)"
    )


def _settings(args: argparse.Namespace) -> DashboardSettings:
    from loom_dashboard._settings import DashboardSettings

    table: dict[str, object] = {"enabled": True}
    if args.host is not None:
        table["host"] = args.host
    if args.port is not None:
        table["port"] = args.port
    if args.token is not None:
        table["token"] = args.token
    return DashboardSettings.from_mapping(table)


def _announce(url: str, settings: DashboardSettings) -> None:
    shown = url + (f"#token={settings.token}" if settings.token else "")
    print(f"loom dashboard: serving {shown}", flush=True)


async def run(args: argparse.Namespace, host: PluginHost) -> int:
    """Run the demo or the app with the dashboard until Ctrl-C or ``--run-for``."""
    from loom_dashboard._errors import DashboardError

    if args.run_for is not None and not args.run_for > 0:
        print("loom dashboard: error: --run-for must be > 0", file=sys.stderr)
        return 2
    try:
        settings = _settings(args)
        if args.config is None:
            return await _demo(args, settings)
        return await _app(args, settings, host)
    except DashboardError as exc:
        print(f"loom dashboard: error: {exc}", file=sys.stderr)
        return 2


async def _wait(run_for: float | None) -> None:
    import asyncio
    import signal

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        if run_for is None:
            await stop.wait()
        else:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), run_for)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


async def _demo(args: argparse.Namespace, settings: DashboardSettings) -> int:
    from loom_dashboard._demo import DemoHost
    from loom_dashboard._server import DashboardServer

    if not args.rate > 0:
        print("loom dashboard: error: --rate must be > 0", file=sys.stderr)
        return 2
    demo = DemoHost(rate=args.rate)
    await demo.start()
    try:
        async with DashboardServer(demo, settings) as server:
            _announce(server.url, settings)
            print(
                "loom dashboard: demo host with agents " + ", ".join(demo.runtime.agent_ids()),
                flush=True,
            )
            await _wait(args.run_for)
    finally:
        await demo.stop()
    return 0


async def _app(args: argparse.Namespace, settings: DashboardSettings, host: PluginHost) -> int:
    import asyncio

    try:
        from loom.app import App, AppConfigError, AppError
    except ImportError:
        print(
            "loom dashboard: error: this loom-core has no app support (loom.app); run the "
            "demo with `loom dashboard` and no configuration",
            file=sys.stderr,
        )
        return 2
    from loom_dashboard._lifecycle import override, running

    if not os.path.exists(args.config):
        print(f"loom dashboard: error: {args.config}: no such file", file=sys.stderr)
        return 2
    try:
        app = App.from_file(args.config, host=host, on_phase=lambda line: print(line, flush=True))
    except AppConfigError as exc:
        print(f"loom dashboard: error: {exc}", file=sys.stderr)
        return 2
    override(app, settings)
    stop = asyncio.Event()
    run = asyncio.create_task(app.run(stop=stop, handle_signals=True))
    while not run.done() and running(app) is None and app.phase not in ("running", "stopped"):
        await asyncio.wait({run}, timeout=0.05)
    server = running(app)
    if server is not None:
        _announce(server.url, settings)
    elif not run.done():
        for failure in getattr(app, "failures", []):
            describe = getattr(failure, "describe", None)
            print(
                f"loom dashboard: {describe() if callable(describe) else failure}", file=sys.stderr
            )
        print("loom dashboard: warning: the dashboard did not start", file=sys.stderr)
    if args.run_for is not None and not run.done():
        await asyncio.wait({run}, timeout=args.run_for)
        stop.set()
    try:
        report = await run
    except (AppConfigError, AppError) as exc:
        print(f"loom dashboard: error: {exc}", file=sys.stderr)
        return 1
    return 1 if getattr(report, "errors", None) else 0
