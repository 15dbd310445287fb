"""What ``loom run`` shows: the composition, the phases, a live status line (rich, on a
terminal) and the report. The plain console writes the same lines without styling, for
pipes, files and CI logs."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Literal, TextIO

from loom.app._report import AppStatus, RunReport

if TYPE_CHECKING:
    from loom.app._app import App

__all__ = ["PlainConsole", "RichConsole", "RunConsole", "make_console"]

Mode = Literal["auto", "rich", "plain"]


class RunConsole:
    """The plain console: one line per thing worth saying, nothing redrawn.

    Args:
        out: where it writes (stdout by default).
    """

    def __init__(self, out: TextIO | None = None) -> None:
        self.out = out if out is not None else sys.stdout

    def line(self, text: str = "") -> None:
        """Write one line."""
        print(text, file=self.out, flush=True)

    def phase(self, text: str) -> None:
        """A step of starting or stopping (``running`` is said by :meth:`started`)."""
        if text != "running":
            self.line(f"loom: {text}")

    def header(self, app: App) -> None:
        """What the app is made of."""
        described = f" ({app.config.app.description})" if app.config.app.description else ""
        self.line(f"loom run: app {app.name!r}{described} from {app.source}")
        for part, text in app.describe():
            self.line(f"  {part:<13}{text}")
        for note in app.notes:
            self.line(f"  note         {note}")

    def started(self, app: App) -> None:
        """The app runs; say where to look and what failed on the way."""
        for line in app.telemetry_lines():
            self.line(f"  telemetry    {line}")
        for failure in app.failures:
            self.line(f"  warning      {failure.describe()} (the app goes on without it)")
        self.line("loom: running; Ctrl-C (SIGINT) or SIGTERM stops it cleanly")

    @contextlib.contextmanager
    def live(self, app: App) -> Iterator[None]:
        """While the app runs (the plain console shows nothing live)."""
        yield

    def status_line(self, status: AppStatus) -> str:
        """One line of counters."""
        failed = f", {status.actions_failed} failed" if status.actions_failed else ""
        dropped = f" ({status.dropped} dropped)" if status.dropped else ""
        return (
            f"{status.phase} {status.elapsed_s:.1f}s | {status.published} events{dropped} | "
            f"{status.handled} handled | {status.mailbox} queued | {status.busy} busy | "
            f"{status.actions_ok} actions{failed} | {status.decisions} decisions | "
            f"sources {status.sources_done}/{status.sources} done"
        )

    def report(self, report: RunReport) -> None:
        """How the run went."""
        for line in _report_lines(report):
            self.line(line)

    def setup_logging(self, level: int) -> None:
        """Send log records to stderr."""
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        _install(handler, level)


PlainConsole = RunConsole


class RichConsole(RunConsole):
    """The terminal console: styled lines and a live status line at the bottom.

    Prints by the app's agents (``print``) and log records appear above the status line.
    """

    def __init__(self, out: TextIO | None = None) -> None:
        super().__init__(out)
        from rich.console import Console

        self.console = Console(file=self.out, highlight=False)

    def line(self, text: str = "") -> None:
        from rich.markup import escape

        self.console.print(escape(text))

    def phase(self, text: str) -> None:
        from rich.markup import escape

        if text != "running":
            self.console.print(f"[dim]loom: {escape(text)}[/dim]")

    def header(self, app: App) -> None:
        from rich.markup import escape
        from rich.table import Table

        described = f" - {app.config.app.description}" if app.config.app.description else ""
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold cyan", no_wrap=True)
        table.add_column()
        for part, text in app.describe():
            table.add_row(part, escape(text))
        for note in app.notes:
            table.add_row("note", f"[yellow]{escape(note)}[/yellow]")
        self.console.rule(f"[bold]{escape(app.name)}[/bold]{escape(described)}")
        self.console.print(f"[dim]from {escape(app.source)}[/dim]")
        self.console.print(table)

    def started(self, app: App) -> None:
        from rich.markup import escape

        for line in app.telemetry_lines():
            self.console.print(f"[bold cyan]telemetry[/bold cyan]  {escape(line)}")
        for failure in app.failures:
            self.console.print(
                f"[yellow]warning[/yellow]  {escape(failure.describe())} (the app goes on)"
            )
        self.console.print("[green]running[/green] [dim](Ctrl-C stops it cleanly)[/dim]")

    @contextlib.contextmanager
    def live(self, app: App) -> Iterator[None]:
        from rich.live import Live
        from rich.spinner import Spinner
        from rich.text import Text

        def render() -> Spinner:
            text = Text(self.status_line(app.status()), no_wrap=True, overflow="ellipsis")
            return Spinner("dots", text, style="cyan")

        with Live(console=self.console, get_renderable=render, transient=True):
            yield

    def report(self, report: RunReport) -> None:
        from rich.markup import escape

        lines = _report_lines(report)
        self.console.rule("[bold]report[/bold]")
        for line in lines[1:]:
            self.console.print(escape(line))
        self.console.print(f"[green]{escape(lines[0])}[/green]")

    def setup_logging(self, level: int) -> None:
        from rich.logging import RichHandler

        handler = RichHandler(console=self.console, show_path=False, show_time=False)
        _install(handler, level)


def make_console(mode: Mode = "auto", out: TextIO | None = None) -> RunConsole:
    """The rich console on a terminal (unless ``NO_COLOR`` or ``TERM=dumb``), the plain one
    elsewhere; ``mode`` forces one."""
    stream = out if out is not None else sys.stdout
    if mode == "auto":
        terminal = getattr(stream, "isatty", lambda: False)()
        plain_env = os.environ.get("TERM") == "dumb" or "NO_COLOR" in os.environ
        mode = "rich" if terminal and not plain_env else "plain"
    if mode == "rich":
        try:
            return RichConsole(out)
        except ImportError:
            pass
    return RunConsole(out)


def _install(handler: logging.Handler, level: int) -> None:
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)


def _report_lines(report: RunReport) -> list[str]:
    lines = [
        f"loom: app {report.app!r} stopped cleanly after {report.duration_s:.1f} s: "
        f"{report.detail}",
    ]
    drained = "drained" if report.drained else "NOT drained (drain timeout; events left)"
    lines.append(
        f"  events       {report.published} published, {report.delivered} delivered, "
        f"{report.dropped} dropped; mailboxes {drained}"
    )
    if report.dropped_by_reason:
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(report.dropped_by_reason.items()))
        lines.append(f"  drops        {reasons}")
    for info in report.agents:
        extra = f", {info.failures} failed, {info.restarts} restarts" if info.failures else ""
        last = f" (last error: {info.last_error})" if info.last_error else ""
        lines.append(
            f"  agent        {info.agent_id}: {info.processed} handled{extra}, "
            f"{info.status.value}{last}"
        )
    for status in report.sources:
        lines.append(f"  source       {_source_line(status)}")
    failed = sum(report.actions_failed.values())
    by_code = ", ".join(f"{k} {v}" for k, v in sorted(report.actions_failed.items()))
    detail = f" ({by_code})" if failed else ""
    lines.append(f"  actions      {report.actions_ok} ok, {failed} failed{detail}")
    if report.decisions:
        routes = ", ".join(f"{k} {v}" for k, v in sorted(report.decisions.items()))
        lines.append(f"  routing      {routes}")
    if report.provider_failures:
        failures = ", ".join(f"{k} {v}" for k, v in sorted(report.provider_failures.items()))
        lines.append(f"  model calls  failed: {failures}")
    if report.state:
        lines.append(f"  state        {report.state}")
    for line in report.telemetry:
        lines.append(f"  telemetry    {line}")
    for failure in report.failures:
        lines.append(f"  plugin       {failure.describe()}")
    for error in report.errors:
        lines.append(f"  error        {error}")
    return lines


def _source_line(status: dict[str, Any]) -> str:
    name = status.get("name", "?")
    parts = [f"{k} {v}" for k, v in status.items() if k != "name" and v not in (None, "")]
    return f"{name}: " + ", ".join(parts) if parts else str(name)
