"""Errors of the NATS bus; each derives from :class:`loom.LoomError`."""

from __future__ import annotations

from loom.errors import LoomError

__all__ = ["NatsError", "NatsUnavailableError", "PublishError", "StreamConfigError"]


class NatsError(LoomError):
    """Root of the errors loom-nats raises."""


class NatsUnavailableError(NatsError, ConnectionError):
    """The NATS server cannot be reached (or refused the credentials), at start or for
    longer than the bus's ``outage_timeout`` while publishing."""


class StreamConfigError(NatsError, ValueError):
    """The server refused a JetStream stream or consumer configuration (overlapping
    subjects, limits beyond the account's, a durable that exists with another filter)."""


class PublishError(NatsError):
    """JetStream did not acknowledge a publish: no stream takes the subject, the stream
    refused the message (limits with ``discard="new"``), or no answer came in time."""
