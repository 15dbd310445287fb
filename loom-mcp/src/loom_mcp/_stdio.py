"""The stdio transport: a server child process spoken to over its stdin and stdout.

Like the SDK's ``stdio_client`` (and shut down the same way: close stdin, wait, then signal
the whole process group), plus what a supervisor needs: the child's pid and exit status,
an event set when its stdout ends, the tail of its stderr (read continuously, so a chatty
server never blocks on a full pipe), and bounded lines (a line longer than
``max_line_bytes`` is discarded and counted, as is a line that is not JSON-RPC).

Faster than the SDK's by three event-loop iterations a call (:mod:`loom_mcp._stdio_pipes`):
a request is written to stdin by the task that sends it, with no writer task between, and
stdout is parsed in the event loop's read callback, with no reader task between.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from subprocess import PIPE
from types import TracebackType
from typing import TYPE_CHECKING, Any

import anyio
import anyio.abc
from mcp.client.stdio import get_default_environment
from mcp.os.posix.utilities import terminate_posix_process_tree
from mcp.shared.message import SessionMessage

from loom_mcp._errors import McpConnectError
from loom_mcp._stdio_pipes import StdinWriter, StdoutReader

if TYPE_CHECKING:
    from mcp.client._transport import TransportStreams

    from loom_mcp._config import McpServerConfig

__all__ = ["StdioTransport"]

log = logging.getLogger("loom.mcp.stdio")

_STDERR_LINES = 40
_STDERR_LINE_CHARS = 2000
_EXIT_GRACE_S = 2.0
_TERM_GRACE_S = 2.0
_REAP_S = 2.0
_POLL_S = 0.01
_CHUNK = 65536
#: Parsed messages waiting for the session; the reader stops reading stdout when it is full.
_READ_BUFFER = 16


class StdioTransport:
    """One run of a stdio server; an ``mcp.client.Transport`` (enter it once).

    Attributes:
        name: the server's name, for logs.
        pid: the child's pid once started.
        returncode: its exit status once it has exited (negative: killed by that signal).
        ended: set when its stdout ends (it exited, crashed or closed stdout).
        garbage_lines: stdout lines that were not JSON-RPC messages.
        oversized_lines: stdout lines longer than the limit, discarded.
    """

    def __init__(self, config: McpServerConfig) -> None:
        if config.command is None:
            raise ValueError(f"server {config.name!r} has no command")
        self.name = config.name
        self._argv = [config.command, *config.args]
        base = dict(os.environ) if config.inherit_env else get_default_environment()
        self._env = base | dict(config.env)
        self._cwd = config.cwd
        self._max_line = config.max_line_bytes
        self.pid: int | None = None
        self.ended = anyio.Event()
        self.garbage_lines = 0
        self.oversized_lines = 0
        self._process: anyio.abc.Process | None = None
        self._stderr: deque[str] = deque(maxlen=_STDERR_LINES)
        self._context: Any = None

    @property
    def returncode(self) -> int | None:
        """The child's exit status, or None while it runs (or before it started)."""
        return None if self._process is None else self._process.returncode

    def stderr_tail(self, lines: int = 10) -> str:
        """The last ``lines`` lines the child wrote to stderr."""
        return "\n".join(list(self._stderr)[-lines:])

    def exit_description(self) -> str:
        """How the child ended, with the tail of its stderr, for error messages."""
        code = self.returncode
        if code is None:
            what = "closed its stdout" if self.ended.is_set() else "is running"
        elif code < 0:
            try:
                what = f"was killed by {signal.Signals(-code).name}"
            except ValueError:
                what = f"was killed by signal {-code}"
        else:
            what = f"exited with status {code}"
        tail = self.stderr_tail(5)
        return f"process {self.pid} {what}" + (f"; its stderr ends with:\n{tail}" if tail else "")

    async def __aenter__(self) -> TransportStreams:
        if self._context is not None:
            raise RuntimeError("a StdioTransport is entered once; make a new one to reconnect")
        self._context = self._open()
        streams: TransportStreams = await self._context.__aenter__()
        return streams

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        result: bool | None = await self._context.__aexit__(exc_type, exc, tb)
        return result

    @asynccontextmanager
    async def _open(self) -> AsyncIterator[TransportStreams]:
        stdout = StdoutReader(self, self._max_line)
        # Our own pipe for stdout, read by a protocol that parses each line as it arrives:
        # an answer reaches the session one event-loop iteration sooner than through a
        # reader task. Connected before the spawn, so nothing awaits between the spawn and
        # the task group below (a cancellation there would leak the child).
        read_fd, write_fd = os.pipe()
        try:
            loop = asyncio.get_running_loop()
            pipe, _ = await loop.connect_read_pipe(
                lambda: stdout, os.fdopen(read_fd, "rb", buffering=0)
            )
        except BaseException:
            os.close(read_fd)
            os.close(write_fd)
            raise
        try:
            process = await anyio.open_process(
                self._argv,
                stdin=PIPE,
                stdout=write_fd,
                stderr=PIPE,
                env=self._env,
                cwd=self._cwd,
                start_new_session=True,
            )
        except OSError as exc:
            pipe.close()
            reason = exc.strerror or str(exc)
            raise McpConnectError(self.name, f"cannot start {self._argv[0]!r}: {reason}") from exc
        except BaseException:
            pipe.close()
            raise
        finally:
            os.close(write_fd)  # the child's copy is the one that counts
        self._process = process
        self.pid = process.pid
        reader_send, read_stream = anyio.create_memory_object_stream[SessionMessage | Exception](
            _READ_BUFFER
        )
        stdout.send = reader_send  # nothing arrives before the child runs
        assert process.stdin is not None
        write_stream = StdinWriter(process.stdin, reader_send)

        async with anyio.create_task_group() as tg:
            tg.start_soon(stdout.deliver_backlog)
            tg.start_soon(self._read_stderr, process)
            try:
                yield read_stream, write_stream
            finally:
                # Bounded and shielded: a cancelled caller must not leak the child.
                with anyio.CancelScope(shield=True):
                    read_stream.close()
                    write_stream.close()
                    # Closing stdin (first thing _stop does) flushes what is still buffered.
                    await self._stop(process)
                    pipe.close()
                    for stream in (read_stream, reader_send):
                        await stream.aclose()
                tg.cancel_scope.cancel()

    async def _read_stderr(self, process: anyio.abc.Process) -> None:
        assert process.stderr is not None
        pending = ""
        while True:
            try:
                chunk = await process.stderr.receive(_CHUNK)
            except (anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError):
                break
            except OSError:
                break
            lines = (pending + chunk.decode(errors="replace")).split("\n")
            pending = lines.pop()[-_STDERR_LINE_CHARS:]
            for line in lines:
                self._note_stderr(line)
        if pending:
            self._note_stderr(pending)

    def _note_stderr(self, line: str) -> None:
        line = line.rstrip("\r")[:_STDERR_LINE_CHARS]
        if line:
            self._stderr.append(line)
            log.debug("[%s stderr] %s", self.name, line)

    async def _stop(self, process: anyio.abc.Process) -> None:
        """Close stdin, give the child a grace period, then end its whole process group."""
        assert process.stdin is not None
        with suppress(OSError, anyio.BrokenResourceError, anyio.ClosedResourceError):
            await process.stdin.aclose()
        await _wait_exit(process, _EXIT_GRACE_S)
        # Also after a clean exit: children the server left in its group go too.
        await terminate_posix_process_tree(process, _TERM_GRACE_S)
        if not await _wait_exit(process, _REAP_S):
            log.warning("MCP server %r (pid %s) survived SIGKILL", self.name, process.pid)
        if process.stderr is not None:
            with suppress(OSError, anyio.BrokenResourceError, anyio.ClosedResourceError):
                await process.stderr.aclose()
        # asyncio keeps the subprocess transport open while a descendant holds a pipe, and
        # warns at garbage collection; nothing public closes it.
        transport = getattr(getattr(process, "_process", None), "_transport", None)
        close = getattr(transport, "close", None)
        if callable(close):
            with suppress(PermissionError):
                close()


async def _wait_exit(process: anyio.abc.Process, timeout: float) -> bool:
    # Not process.wait(): on asyncio it also waits for pipe EOF, which a grandchild holding
    # the pipe would delay past the child's own exit.
    with anyio.move_on_after(timeout):
        while process.returncode is None:
            await anyio.sleep(_POLL_S)
        return True
    return False
