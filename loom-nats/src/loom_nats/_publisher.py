"""Publishing into the bus's stream, in the three modes of :data:`PublishMode`.

- ``ack``: each publish awaits JetStream's PubAck; a publish whose acknowledgement is lost
  to a disconnection is sent again after the reconnect (the event id, sent as
  ``Nats-Msg-Id``, makes the stream store it once).
- ``async``: publishes go out at once with a reply subject; a bounded window of them may
  await their PubAck. Unacknowledged ones are sent again after a reconnect or a timeout;
  :meth:`Publisher.flush` waits for all and reports failures.
- ``core``: plain core NATS publishes; the stream stores what reaches it, nobody confirms.

In every mode a publish made while the connection is down waits for it to come back, at
most ``outage_timeout`` seconds, and at most ``max_waiting`` publishes wait at once; past
either bound it raises :class:`NatsUnavailableError`. (Core publishes first fill the
client's reconnect buffer, then wait.)
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from loom_nats._config import PublishMode
from loom_nats._errors import NatsUnavailableError, PublishError

if TYPE_CHECKING:
    from nats.aio.client import Client
    from nats.aio.msg import Msg

    from loom_nats._link import Link

__all__ = ["Publisher"]

log = logging.getLogger("loom.nats")

_MSG_ID = "Nats-Msg-Id"


@dataclass(slots=True)
class _Unacked:
    subject: str
    data: bytes
    msg_id: str
    first_sent: float
    sent: float
    attempts: int = 1


def _refusal(data: bytes) -> str | None:
    """The error a PubAck carries, or None when it acknowledges."""
    if b'"error"' not in data:
        return None
    try:
        error = json.loads(data)["error"]
        return f"{error.get('description', error)} (err_code {error.get('err_code')})"
    except (ValueError, KeyError, TypeError, AttributeError):
        return data.decode(errors="replace")


class Publisher:
    """Sends encoded events to JetStream subjects in one :data:`PublishMode`.

    Args:
        link: the connection.
        mode: ``"ack"``, ``"async"`` or ``"core"``.
        ack_timeout: seconds to wait for one PubAck before sending again.
        outage_timeout: seconds a publish waits for a lost connection to come back.
        max_waiting: publishes that may wait for the connection at once.
        max_pending_acks: the ``async`` window.
    """

    def __init__(
        self,
        link: Link,
        mode: PublishMode,
        *,
        ack_timeout: float,
        outage_timeout: float,
        max_waiting: int,
        max_pending_acks: int,
    ) -> None:
        self._link = link
        self.mode = mode
        self._ack_timeout = ack_timeout
        self._outage_timeout = outage_timeout
        self._max_waiting = max_waiting
        self._max_pending = max_pending_acks
        self._waiting = 0
        self._unacked: dict[str, _Unacked] = {}
        self._tokens = itertools.count(1)
        self._mux = ""
        self._room = asyncio.Event()
        self._room.set()
        self._all_acked = asyncio.Event()
        self._all_acked.set()
        self._sweeper: asyncio.Task[None] | None = None
        self.retries = 0
        self.failures = 0
        self._failures_reported = 0
        from nats.errors import OutboundBufferLimitError  # the bus has loaded nats already

        self._buffer_full = OutboundBufferLimitError

    @property
    def pending_acks(self) -> int:
        """``async`` publishes awaiting their acknowledgement."""
        return len(self._unacked)

    async def start(self) -> None:
        """Subscribe to the acknowledgements of ``async`` publishes."""
        if self.mode != "async":
            return
        nc = self._link.nc
        self._mux = nc.new_inbox() + "."
        await nc.subscribe(self._mux + "*", cb=self._on_ack)
        self._sweeper = asyncio.create_task(self._sweep(), name="loom.nats publish acks")

    async def close(self, timeout: float) -> None:
        """Wait (at most ``timeout``) for outstanding acknowledgements, then stop."""
        if self._unacked and self._link.up.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._all_acked.wait(), timeout)
        if self._unacked:
            log.error(
                "shutting down with %d publishes JetStream never acknowledged", len(self._unacked)
            )
            self.failures += len(self._unacked)
            self._unacked.clear()
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper

    # -- waiting out an outage -----------------------------------------------------------

    async def wait_up(self, deadline: float, subject: str) -> None:
        """Wait for the connection until ``deadline`` (monotonic).

        Raises:
            NatsUnavailableError: the deadline passed, or too many publishes wait already.
        """
        if self._waiting >= self._max_waiting:
            raise NatsUnavailableError(
                f"publish to {subject!r}: the NATS connection is down and {self._waiting} "
                "publishes already wait for it (max_waiting_publishes)"
            )
        self._waiting += 1
        try:
            await self._link.wait_up(max(0.0, deadline - time.monotonic()), subject)
        except NatsUnavailableError:
            raise NatsUnavailableError(
                f"publish to {subject!r}: NATS at {', '.join(self._link.servers)} unreachable "
                f"for {self._outage_timeout:g} s (outage_timeout)"
            ) from None
        finally:
            self._waiting -= 1

    # -- the three modes -----------------------------------------------------------------

    async def send(self, subject: str, data: bytes, msg_id: str) -> None:
        """Publish one encoded event in this publisher's mode.

        Raises:
            NatsUnavailableError: the connection stayed down past ``outage_timeout``.
            PublishError: JetStream refused the event or never acknowledged it
                (``ack`` mode).
        """
        mode = self.mode
        if mode == "core":
            await self.send_core(subject, data)
        elif mode == "ack":
            await self._send_ack(subject, data, msg_id)
        else:
            await self._send_async(subject, data, msg_id)

    async def send_core(
        self, subject: str, data: bytes, headers: dict[str, str] | None = None
    ) -> None:
        """A core NATS publish; waits out an outage once the client's buffer is full."""
        nc = self._link.nc
        try:
            await nc.publish(subject, data, headers=headers)
        except self._buffer_full:
            await self.wait_up(time.monotonic() + self._outage_timeout, subject)
            await nc.publish(subject, data, headers=headers)

    async def _send_ack(self, subject: str, data: bytes, msg_id: str) -> None:
        from nats.errors import NoRespondersError, OutboundBufferLimitError
        from nats.errors import TimeoutError as NatsTimeout

        link = self._link
        nc: Client = link.nc
        now = time.monotonic()
        outage_deadline = now + self._outage_timeout
        deadline = outage_deadline + self._ack_timeout
        headers = {_MSG_ID: msg_id}
        while True:
            if not link.up.is_set():
                await self.wait_up(outage_deadline, subject)
            try:
                reply = await nc.request(subject, data, timeout=self._ack_timeout, headers=headers)
            except NoRespondersError:
                raise PublishError(
                    f"no JetStream stream takes subject {subject!r} (was the stream deleted?)"
                ) from None
            except (NatsTimeout, OutboundBufferLimitError):
                if time.monotonic() >= deadline:
                    raise PublishError(
                        f"JetStream did not acknowledge event {msg_id} on {subject!r} within "
                        f"{self._outage_timeout + self._ack_timeout:g} s"
                    ) from None
                self.retries += 1  # same event id: the stream stores it once
                continue
            refusal = _refusal(reply.data)
            if refusal is not None:
                raise PublishError(f"JetStream refused event {msg_id} on {subject!r}: {refusal}")
            return

    async def _send_async(self, subject: str, data: bytes, msg_id: str) -> None:
        link = self._link
        if len(self._unacked) >= self._max_pending:
            await self._wait_for_room(subject)
        if not link.up.is_set():
            await self.wait_up(time.monotonic() + self._outage_timeout, subject)
        token = str(next(self._tokens))
        now = time.monotonic()
        self._unacked[token] = _Unacked(subject, data, msg_id, now, now)
        self._all_acked.clear()
        if len(self._unacked) >= self._max_pending:
            self._room.clear()
        await link.nc.publish(subject, data, reply=self._mux + token, headers={_MSG_ID: msg_id})

    async def _wait_for_room(self, subject: str) -> None:
        deadline = time.monotonic() + self._outage_timeout + self._ack_timeout
        while len(self._unacked) >= self._max_pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise PublishError(
                    f"publish to {subject!r}: {len(self._unacked)} publishes await JetStream's "
                    "acknowledgement (max_pending_acks) and none came"
                )
            self._room.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._room.wait(), remaining)

    async def _on_ack(self, msg: Msg) -> None:
        token = msg.subject[len(self._mux) :]
        unacked = self._unacked.pop(token, None)
        if unacked is None:
            return  # a late answer to a publish sent again since
        headers = msg.headers
        if headers and headers.get("Status") == "503":
            refusal: str | None = "no JetStream stream takes the subject"
        else:
            refusal = _refusal(msg.data)
        if refusal is not None:
            self.failures += 1
            log.error(
                "JetStream refused event %s on %r: %s", unacked.msg_id, unacked.subject, refusal
            )
        self._released()

    def _released(self) -> None:
        unacked = self._unacked
        if len(unacked) < self._max_pending:
            self._room.set()
        if not unacked:
            self._all_acked.set()

    async def _sweep(self) -> None:
        """Send again what waits too long for its acknowledgement; give up on what waited
        longer than the outage bound."""
        period = max(0.05, self._ack_timeout / 2)
        while True:
            await asyncio.sleep(period)
            if self._unacked and self._link.up.is_set():
                await self.resend(older_than=self._ack_timeout)

    async def resend(self, older_than: float = 0.0) -> None:
        """Send again the ``async`` publishes unacknowledged for ``older_than`` seconds
        (all of them after a reconnect)."""
        nc = self._link.nc
        now = time.monotonic()
        give_up = self._outage_timeout + self._ack_timeout
        for token, unacked in list(self._unacked.items()):
            if now - unacked.sent < older_than:
                continue
            if now - unacked.first_sent > give_up:
                del self._unacked[token]
                self.failures += 1
                log.error(
                    "JetStream never acknowledged event %s on %r (%d attempts); given up",
                    unacked.msg_id,
                    unacked.subject,
                    unacked.attempts,
                )
                continue
            unacked.sent = now
            unacked.attempts += 1
            self.retries += 1
            await nc.publish(
                unacked.subject,
                unacked.data,
                reply=self._mux + token,
                headers={_MSG_ID: unacked.msg_id},
            )
        self._released()

    async def flush(self, timeout: float) -> None:
        """Wait until every ``async`` publish so far is acknowledged.

        Raises:
            PublishError: some were refused or never acknowledged since the last flush,
                or ``timeout`` passed first.
        """
        if self._unacked:
            try:
                await asyncio.wait_for(self._all_acked.wait(), timeout)
            except TimeoutError:
                raise PublishError(
                    f"{len(self._unacked)} publishes still await JetStream's acknowledgement "
                    f"after {timeout:g} s"
                ) from None
        failed = self.failures - self._failures_reported
        self._failures_reported = self.failures
        if failed:
            raise PublishError(
                f"{failed} publishes were refused or never acknowledged by JetStream "
                "(see the log for their event ids)"
            )
