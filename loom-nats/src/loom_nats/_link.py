"""The bus's connection to NATS: connect with clear errors, track outages, wait them out."""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from loom_nats._errors import NatsUnavailableError

if TYPE_CHECKING:
    from nats.aio.client import Client

__all__ = ["Link", "make_tls_context"]

log = logging.getLogger("loom.nats")

#: Connection attempts per server at start before ``start()`` gives up; once connected,
#: the client reconnects without a bound (the bus's ``outage_timeout`` bounds publishers).
_INITIAL_ATTEMPTS = 2


def make_tls_context(
    tls: ssl.SSLContext | bool | None,
    ca_file: str | None,
    cert_file: str | None,
    key_file: str | None,
) -> ssl.SSLContext | None:
    """The TLS context to connect with: the one given, or one built from the files.

    Raises:
        ValueError: a key without a certificate, or files that do not load (named).
    """
    if isinstance(tls, ssl.SSLContext):
        return tls
    if not (tls or ca_file or cert_file or key_file):
        return None
    if key_file and not cert_file:
        raise ValueError("tls_key needs tls_cert (the client certificate it belongs to)")
    try:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca_file)
        if cert_file:
            context.load_cert_chain(cert_file, key_file)
    except (OSError, ssl.SSLError) as exc:
        files = ", ".join(f for f in (ca_file, cert_file, key_file) if f)
        raise ValueError(f"cannot load the TLS files ({files}): {exc}") from exc
    return context


class Link:
    """One NATS connection with its state: up or down, outages counted and timed.

    Args:
        servers: server URLs.
        options: further keyword arguments for ``nats.connect`` (credentials, TLS, ...).
        on_reconnect: awaited after each reconnection (the bus re-arms its consumers).
        on_disconnect: awaited after each loss of the connection.
        on_error: told of each asynchronous client error (slow consumers, ...).
    """

    def __init__(
        self,
        servers: Sequence[str],
        options: dict[str, Any],
        *,
        on_reconnect: Callable[[], Awaitable[None]],
        on_error: Callable[[Exception], None],
        on_disconnect: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.servers = list(servers)
        self._options = options
        self._on_reconnect = on_reconnect
        self._on_disconnect = on_disconnect
        self._on_error = on_error
        #: Length of the last outage, in seconds.
        self.last_outage = 0.0
        #: When the current (or last) outage began, in seconds since the epoch.
        self.outage_began = 0.0
        self._nc: Client | None = None
        self.up = asyncio.Event()
        self.disconnects = 0
        self.reconnects = 0
        self._down_since: float | None = None
        self._outage_total = 0.0
        self._last_error: Exception | None = None
        self._last_server: str | None = None
        self._closing = False

    @property
    def nc(self) -> Client:
        """The client (after :meth:`open`)."""
        if self._nc is None:
            raise RuntimeError("the NATS connection is not open")
        return self._nc

    @property
    def server(self) -> str | None:
        """The URL connected to, or last connected to."""
        self._note_server()
        return self._last_server

    def _note_server(self) -> None:
        """Remember the server connected to, to name it while disconnected."""
        nc = self._nc
        if nc is not None and nc.connected_url is not None:
            url = nc.connected_url
            self._last_server = f"{url.scheme}://{url.hostname}:{url.port}"

    def outage_seconds(self) -> float:
        """Total time spent disconnected, the current outage included."""
        current = time.monotonic() - self._down_since if self._down_since is not None else 0.0
        return self._outage_total + current

    async def open(self) -> Client:
        """Connect.

        Raises:
            NatsUnavailableError: no server answered, or the server refused the credentials.
        """
        import nats

        try:
            nc = await nats.connect(
                self.servers,
                error_cb=self._error,
                disconnected_cb=self._disconnected,
                reconnected_cb=self._reconnected,
                max_reconnect_attempts=_INITIAL_ATTEMPTS,
                **self._options,
            )
        except Exception as exc:  # noqa: BLE001 - nats-py raises many kinds; all mean "cannot connect"
            raise self._unavailable(exc) from None
        nc.options["max_reconnect_attempts"] = -1  # from now on, reconnect without a bound
        self._nc = nc
        self.up.set()
        self._note_server()
        return nc

    def _unavailable(self, exc: Exception) -> NatsUnavailableError:
        where = ", ".join(self.servers)
        cause = self._last_error or exc
        text = str(cause) or type(cause).__name__
        if "authorization" in text.lower() or "authentication" in text.lower():
            return NatsUnavailableError(
                f"the NATS server at {where} refused the credentials ({text}): check user, "
                "password, token or credentials"
            )
        return NatsUnavailableError(f"cannot connect to NATS at {where}: {text}")

    async def wait_up(self, timeout: float, doing: str) -> None:
        """Return once connected; wait at most ``timeout`` seconds.

        Raises:
            NatsUnavailableError: still disconnected after ``timeout``, naming ``doing``.
        """
        if self.up.is_set():
            return
        if self._closing or (self._nc is not None and self._nc.is_closed):
            raise NatsUnavailableError(f"{doing}: the NATS connection is closed")
        try:
            await asyncio.wait_for(self.up.wait(), timeout)
        except TimeoutError:
            raise NatsUnavailableError(
                f"{doing}: NATS at {', '.join(self.servers)} unreachable for {timeout:g} s"
            ) from None

    async def close(self) -> None:
        """Flush what is buffered and close the connection. Idempotent."""
        self._closing = True
        nc = self._nc
        if nc is not None and not nc.is_closed:
            try:
                await nc.close()
            except Exception as exc:  # noqa: BLE001 - closing must not fail the shutdown
                log.warning("closing the NATS connection: %s", exc)
        self.up.clear()

    # -- client callbacks ----------------------------------------------------------------

    async def _error(self, exc: Exception) -> None:
        self._last_error = exc
        self._on_error(exc)

    async def _disconnected(self) -> None:
        if self._closing:
            return
        self.up.clear()
        self.disconnects += 1
        self._down_since = time.monotonic()
        self.outage_began = time.time()
        log.warning("disconnected from NATS (%s); reconnecting", self.server or "?")
        if self._on_disconnect is not None:
            try:
                await self._on_disconnect()
            except Exception:
                log.exception("reporting the disconnection failed")

    async def _reconnected(self) -> None:
        if self._down_since is not None:
            outage = time.monotonic() - self._down_since
            self._outage_total += outage
            self._down_since = None
        else:
            outage = 0.0
        self.last_outage = outage
        self.reconnects += 1
        self.up.set()
        self._note_server()
        log.warning("reconnected to NATS at %s after %.2f s", self.server or "?", outage)
        try:
            await self._on_reconnect()
        except Exception:
            log.exception("re-arming the subscriptions after a reconnect failed")
