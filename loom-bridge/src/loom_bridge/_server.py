"""The bridge server: ``loom.v1.Bridge`` on grpc.aio, over a bus and an ActionBroker."""

from __future__ import annotations

import logging
from types import TracebackType
from typing import Any, Self

import grpc
import grpc.aio

from loom.actions import ActionBroker
from loom.bus import EventBus, MemoryBus
from loom.directory import AgentDirectory
from loom_bridge._auth import TokenInterceptor
from loom_bridge._config import BridgeConfig, parse_address
from loom_bridge._errors import BridgeConfigError, BridgeError
from loom_bridge._hub import BridgeHub
from loom_bridge._servicer import BridgeServicer
from loom_bridge._services import service_handlers
from loom_bridge._wire import add_bridge_servicer

__all__ = ["BridgeServer"]

log = logging.getLogger("loom.bridge")


class BridgeServer:
    """Serves ``loom.v1.Bridge`` so that agents in other processes take part.

    Remote agents register (RegisterAgent), open their stream (EventStream, Ack first),
    receive what is published to their topics, publish, and serve their capabilities
    through the broker; any client may run capabilities (ForwardAction) and check the
    server (Heartbeat). The same port serves ``loom.v1.EventBus`` and
    ``loom.v1.ActionBroker`` over the bus and the broker. See ``docs/bridge.md``.

    Args:
        bus: the bus to bridge; None makes a :class:`~loom.bus.MemoryBus` that the server
            starts and shuts down.
        broker: the ActionBroker that remote capabilities join and ForwardAction calls;
            None makes an empty one.
        directory: the agent directory to keep current; None makes one
            (:attr:`directory`).
        config: settings; None reads them from the environment
            (:meth:`BridgeConfig.from_env`).

    Example:
        .. code-block:: python

            config = BridgeConfig(address="127.0.0.1:0")
            async with BridgeServer(bus, broker, config=config) as server:
                print("listening on", server.address)
                await server.wait_for_termination()
    """

    def __init__(
        self,
        bus: EventBus | None = None,
        broker: ActionBroker | None = None,
        *,
        directory: AgentDirectory | None = None,
        config: BridgeConfig | None = None,
    ) -> None:
        self.config = config if config is not None else BridgeConfig.from_env()
        self._owns_bus = bus is None
        self.bus: EventBus = bus if bus is not None else MemoryBus()
        self.broker = broker if broker is not None else ActionBroker()
        self.directory = directory if directory is not None else AgentDirectory()
        self.hub = BridgeHub(self.bus, self.broker, self.directory, self.config)
        self._server: grpc.aio.Server | None = None
        self._port = 0

    def __repr__(self) -> str:
        state = f"listening on {self.address}" if self._server is not None else "stopped"
        return f"<BridgeServer {state}>"

    @property
    def port(self) -> int:
        """The port bound (the real one when the configured port is 0); 0 before start."""
        return self._port

    @property
    def address(self) -> str:
        """``host:port`` as bound, for clients to dial."""
        host, _ = parse_address(self.config.address)
        if ":" in host:
            host = f"[{host}]"
        return f"{host}:{self._port}"

    @property
    def running(self) -> bool:
        """Whether the server is started and not stopped."""
        return self._server is not None

    def _options(self) -> list[tuple[str, Any]]:
        config = self.config
        return [
            ("grpc.max_receive_message_length", config.max_message_bytes),
            ("grpc.max_send_message_length", config.max_message_bytes),
            ("grpc.keepalive_time_ms", int(config.keepalive_s * 1000)),
            ("grpc.keepalive_timeout_ms", 10_000),
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.max_pings_without_data", 0),
            ("grpc.http2.min_recv_ping_interval_without_data_ms", 5_000),
            # Two servers on one port would split the clients between them silently.
            ("grpc.so_reuseport", 0),
        ]

    async def start(self) -> None:
        """Bind the address and start serving (idempotent).

        Raises:
            BridgeConfigError: the address cannot be bound or the TLS files cannot be read.
        """
        if self._server is not None:
            return
        config = self.config
        if self._owns_bus:
            await self.bus.start()
        interceptors = [TokenInterceptor(config.token)] if config.token else []
        server = grpc.aio.server(
            interceptors=interceptors,
            options=self._options(),
            maximum_concurrent_rpcs=config.max_concurrent_rpcs,
        )
        add_bridge_servicer(BridgeServicer(self.hub), server)
        server.add_generic_rpc_handlers(service_handlers(self.bus, self.broker))
        try:
            if config.tls is not None:
                cert, key, client_ca = config.tls.read()
                credentials = grpc.ssl_server_credentials(
                    [(key, cert)],
                    root_certificates=client_ca,
                    require_client_auth=client_ca is not None,
                )
                port = server.add_secure_port(config.address, credentials)
            else:
                port = server.add_insecure_port(config.address)
        except RuntimeError as exc:
            raise BridgeConfigError(
                "address", f"cannot listen on {config.address!r}: {exc}"
            ) from exc
        if port == 0:
            raise BridgeConfigError("address", f"cannot listen on {config.address!r}")
        await server.start()
        self._server = server
        self._port = port
        self.hub.start()
        log.info(
            "bridge listening on %s (%s%s)",
            self.address,
            "TLS" if config.tls else "plaintext",
            ", token required" if config.token else "",
        )

    async def stop(self, grace: float | None = 1.0) -> None:
        """End every stream (``err`` SHUTDOWN), stop serving, and shut an owned bus down."""
        server, self._server = self._server, None
        if server is None:
            return
        await self.hub.shutdown()
        await server.stop(grace)
        if self._owns_bus:
            await self.bus.shutdown()

    async def wait_for_termination(self) -> None:
        """Wait until the server stops.

        Raises:
            BridgeError: the server is not started.
        """
        if self._server is None:
            raise BridgeError("the bridge server is not started")
        await self._server.wait_for_termination()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
