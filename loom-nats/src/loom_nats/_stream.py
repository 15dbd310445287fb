"""JetStream stream and consumer management for the bus: created or updated on start."""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING, Any

from loom_nats._config import StreamLimits
from loom_nats._errors import NatsUnavailableError, StreamConfigError

if TYPE_CHECKING:
    from nats.js.api import ConsumerConfig, ConsumerInfo, StreamInfo
    from nats.js.client import JetStreamContext

__all__ = ["create_consumer", "ensure_stream"]

log = logging.getLogger("loom.nats")

# JetStream error codes with a hint of their own.
_OVERLAP = 10065  # subjects overlap with an existing stream
_NO_JETSTREAM = 10039  # JetStream not enabled for the account


def _refused(what: str, exc: Any) -> StreamConfigError:
    description = getattr(exc, "description", None) or str(exc)
    code = getattr(exc, "err_code", None)
    hint = ""
    if code == _OVERLAP:
        hint = (
            "; another stream already captures some of these subjects: give the bus another "
            "prefix, or delete that stream"
        )
    elif code == _NO_JETSTREAM:
        hint = "; start the server with JetStream (nats-server -js)"
    return StreamConfigError(
        f"the NATS server refused {what}: {description} (err_code {code}){hint}"
    )


def _same(current: Any, wanted: Any) -> bool:
    fields = (
        "max_age",
        "max_bytes",
        "max_msgs",
        "max_msg_size",
        "storage",
        "num_replicas",
        "duplicate_window",
        "discard",
    )
    if sorted(current.subjects or []) != sorted(wanted.subjects):
        return False
    for name in fields:
        have, want = getattr(current, name), getattr(wanted, name)
        if name == "max_age" and not have and not want:
            continue  # 0 and None both mean "forever"
        if have != want:
            return False
    return True


async def ensure_stream(
    js: JetStreamContext, name: str, subjects: list[str], limits: StreamLimits, *, create: bool
) -> StreamInfo:
    """Create the stream, or update it when its subjects or limits differ from ``limits``.

    With ``create`` false the stream belongs to its operators: it must exist, and it is
    used as it is, its limits untouched.

    Raises:
        StreamConfigError: the server refused the configuration (overlapping subjects,
            limits beyond the account's, a storage change), or the stream is missing and
            ``create`` is false.
        NatsUnavailableError: JetStream did not answer.
    """
    from nats.errors import NoRespondersError, TimeoutError
    from nats.js.errors import APIError, NotFoundError, ServiceUnavailableError

    wanted = limits.stream_config(name, subjects)
    try:
        try:
            info = await js.stream_info(name)
        except NotFoundError:
            if not create:
                raise StreamConfigError(
                    f"JetStream stream {name!r} does not exist and create_stream is off"
                ) from None
            try:
                info = await js.add_stream(wanted)
            except APIError as exc:
                raise _refused(f"to create stream {name!r} over {subjects}", exc) from None
            log.info("created JetStream stream %s over %s", name, subjects)
            return info
        if not create or _same(info.config, wanted):
            return info
        try:
            info = await js.update_stream(wanted)
        except APIError as exc:
            raise _refused(f"to update stream {name!r} to {subjects} with {limits}", exc) from None
        log.info("updated JetStream stream %s: %s over %s", name, limits, subjects)
        return info
    except (NoRespondersError, ServiceUnavailableError, TimeoutError) as exc:
        raise NatsUnavailableError(
            f"JetStream does not answer ({type(exc).__name__}): is the server started with "
            "JetStream (nats-server -js)?"
        ) from None


async def create_consumer(
    js: JetStreamContext, stream: str, config: ConsumerConfig, *, replace: bool = False
) -> ConsumerInfo:
    """Create (or bind to) a consumer; ``replace`` deletes a durable of that name first.

    Raises:
        StreamConfigError: the server refused the consumer (a durable that exists with
            another filter, limits beyond the stream's, ...).
    """
    from nats.js.errors import APIError, NotFoundError

    name = config.durable_name or config.name
    if replace and name:
        with contextlib.suppress(NotFoundError):
            await js.delete_consumer(stream, name)
    try:
        return await js.add_consumer(stream, config)
    except APIError as exc:
        raise _refused(
            f"consumer {name!r} on stream {stream!r} (filter {config.filter_subject!r})", exc
        ) from None
