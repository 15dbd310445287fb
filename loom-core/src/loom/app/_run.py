"""What ``loom run`` does, once its arguments are parsed."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from loom.app._app import App
from loom.app._config import load_config
from loom.app._console import RunConsole, make_console
from loom.app._errors import AppConfigError, AppError
from loom.host import PluginHost

__all__ = ["EXIT_CONFIG", "EXIT_FAILED", "run_command"]

#: ``loom run`` exits with this when the configuration is invalid.
EXIT_CONFIG = 2
#: ... and with this when the app could not start or did not stop cleanly.
EXIT_FAILED = 1


async def run_command(args: argparse.Namespace, host: PluginHost) -> int:
    """Run the app of ``args.config`` on ``host``; the exit code.

    0: it ran and stopped cleanly (a signal, ``run_for``, or every source exhausted);
    2: the configuration is invalid or names something not installed; 1: it could not
    start, or a part failed to stop.
    """
    console = make_console(args.console)
    console.setup_logging(getattr(logging, args.log_level.upper()))
    try:
        config = load_config(args.config)
        if args.run_for is not None:
            if args.run_for <= 0:
                raise AppConfigError.one(args.config, "run_for", "--run-for must be > 0")
            config = config.model_copy(update={"run_for": args.run_for})
        if args.keep_running:
            section = config.app.model_copy(update={"end_when_exhausted": False})
            config = config.model_copy(update={"app": section})
        app = App(config, host=host, config_path=args.config, on_phase=console.phase)
        app.plan()
    except AppConfigError as exc:
        print(f"loom run: error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    console.header(app)
    if args.check:
        console.line("loom run: the configuration is valid (--check: nothing was started)")
        return 0
    remove = app.install_signal_handlers()
    try:
        try:
            await app.start()
        except AppConfigError as exc:
            print(f"loom run: error: {exc}", file=sys.stderr)
            return EXIT_CONFIG
        except AppError as exc:
            print(f"loom run: error: app {app.name!r} could not start: {exc}", file=sys.stderr)
            return EXIT_FAILED
        console.started(app)
        ticker = _ticker(console, app, args.status_every)
        try:
            with console.live(app):
                report = await app.run()
        finally:
            if ticker is not None:
                ticker.cancel()
                await asyncio.gather(ticker, return_exceptions=True)
    finally:
        remove()
    console.report(report)
    return EXIT_FAILED if report.errors else 0


def _ticker(console: RunConsole, app: App, every_s: float) -> asyncio.Task[None] | None:
    if every_s <= 0 or type(console) is not RunConsole:
        return None

    async def tick() -> None:
        while True:
            await asyncio.sleep(every_s)
            console.line("loom: " + console.status_line(app.status()))

    return asyncio.create_task(tick(), name="loom-run-status")
