"""The second process of ``main.py --remote-researchers``: start it, watch it, stop it.

:class:`ResearcherProcess` runs ``remote_researchers.py`` with this interpreter, relays its
standard output line by line with a ``[pid N]`` prefix (its standard error goes straight to
ours), and stops it with SIGTERM, then SIGKILL if it does not stop in time.
:func:`watched` awaits something unless the process ends first, so that a child that dies
makes ``main.py`` fail at once with a clear message instead of waiting for a timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Awaitable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

SCRIPT = Path(__file__).resolve().with_name("remote_researchers.py")

#: How long the child has to stop after SIGTERM before it is killed.
STOP_TIMEOUT_S = 10.0


class RemoteFailure(Exception):
    """The remote researchers did not connect, died, or did not stop cleanly."""


class ResearcherProcess:
    """``remote_researchers.py`` running as a child process."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self._process = process
        self._relay = asyncio.create_task(self._relay_output())

    @classmethod
    async def start(
        cls, address: str, token: str | None, connect_timeout_s: float
    ) -> ResearcherProcess:
        """Start the child, connecting to the bridge at ``address`` with ``token``.

        The token goes in the child's environment (``LOOM_BRIDGE_TOKEN``), not on its
        command line, where ``ps`` would show it.
        """
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env.pop("LOOM_BRIDGE_TOKEN", None)
        if token:
            env["LOOM_BRIDGE_TOKEN"] = token
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(SCRIPT),
            "--address",
            address,
            "--connect-timeout",
            str(connect_timeout_s),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            env=env,
        )
        return cls(process)

    @property
    def pid(self) -> int:
        """The child's process id."""
        return self._process.pid

    @property
    def returncode(self) -> int | None:
        """The child's exit status (negative: the signal that ended it), None while it runs."""
        return self._process.returncode

    def describe_exit(self) -> str:
        """How the child ended, in words: "exited with code 1", "were killed by SIGKILL"."""
        code = self._process.returncode
        if code is None:
            return "are still running"
        if code < 0:
            try:
                return f"were killed by {signal.Signals(-code).name}"
            except ValueError:
                return f"were killed by signal {-code}"
        return f"exited with code {code}"

    async def wait(self) -> int:
        """Wait until the child ends; its exit status."""
        return await self._process.wait()

    async def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> str:
        """Stop the child (SIGTERM, then SIGKILL after ``timeout_s``) and relay the rest of
        its output.

        Returns:
            How it ended, in words.

        Raises:
            RemoteFailure: it had already died, ended with an error, or had to be killed.
        """
        killed = False
        if self._process.returncode is None:
            self._process.terminate()
            try:
                async with asyncio.timeout(timeout_s):
                    await self._process.wait()
            except TimeoutError:
                self._process.kill()
                await self._process.wait()
                killed = True
        await self._relay
        ended = self.describe_exit()
        if killed:
            raise RemoteFailure(
                f"the remote researchers (pid {self.pid}) did not stop within {timeout_s:g} s "
                f"of SIGTERM and {ended}"
            )
        if self._process.returncode != 0:
            raise RemoteFailure(f"the remote researchers (pid {self.pid}) {ended}")
        return ended

    async def _relay_output(self) -> None:
        stream = self._process.stdout
        assert stream is not None  # started with stdout=PIPE
        prefix = f"[pid {self.pid}] "
        while True:
            try:
                line = await stream.readline()
            except ValueError:  # a line over the reader's limit, which it drops
                print(f"{prefix}(a line over 64 KiB left out)", flush=True)
                continue
            if not line:
                return
            print(prefix + line.decode(errors="replace").rstrip("\n"), flush=True)


async def watched(aw: Awaitable[T], process: ResearcherProcess | None, stage: str) -> T:
    """Await ``aw``, unless ``process`` ends first.

    Args:
        aw: what to wait for.
        process: the child to watch; None waits for ``aw`` alone.
        stage: what was going on, for the message ("before they connected").

    Raises:
        RemoteFailure: the process ended before ``aw`` did (``aw`` is cancelled).
    """
    if process is None:
        return await aw
    task = asyncio.ensure_future(aw)
    ended = asyncio.ensure_future(process.wait())
    try:
        await asyncio.wait((task, ended), return_when=asyncio.FIRST_COMPLETED)
    finally:
        ended.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    if task.cancelled():
        ended_how = process.describe_exit()
        raise RemoteFailure(f"the remote researchers (pid {process.pid}) {ended_how} {stage}")
    return task.result()
