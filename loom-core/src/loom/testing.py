"""``loom.testing``: a pytest plugin for testing Loom plugins and apps.

Installed with loom-core and loaded by pytest through the ``pytest11`` entry point. It gives:

- the ``loom_host`` fixture: a :class:`~loom.host.PluginHost` with core's built-ins and no
  entry points loaded, so installed plugins cannot leak into a test;
- the ``register_plugin`` fixture: registers a plugin object on ``loom_host`` for one test
  and unregisters it afterwards;
- :func:`registered_plugin`: the same as a context manager, for any host;
- :class:`BusConformance`: the event-bus tests, written once; every bus backend's test
  module subclasses it and overrides :meth:`BusConformance.make_bus`;
- :func:`wire_events`: a hypothesis strategy of events, for property tests of codecs.

Example:
    .. code-block:: python

        class Greeter:
            @hookimpl
            def loom_capabilities(self):
                return [Capability(name="greet", handler=lambda: "hi")]

        def test_greeter(loom_host, register_plugin):
            register_plugin(Greeter())
            assert [c.name for c in loom_host.capabilities()] == ["greet"]
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import pytest

from loom._event import Event
from loom.bus._conformance import BusConformance
from loom.host import PluginHost, create_host

if TYPE_CHECKING:
    from hypothesis.strategies import SearchStrategy

__all__ = ["BusConformance", "loom_host", "register_plugin", "registered_plugin", "wire_events"]


def wire_events(*, max_payload: int = 64, max_text: int = 20) -> SearchStrategy[Event]:
    """A hypothesis strategy of events that every field of ``loom.v1.Event`` can carry:
    text UTF-8 can carry (no lone surrogates), a non-empty id, a float32 confidence,
    up to 4 metadata pairs and 3 tags. Needs hypothesis installed.

    Args:
        max_payload: most bytes of payload.
        max_text: most characters of each string.
    """
    from hypothesis import strategies as st

    text = st.text(st.characters(codec="utf-8"), max_size=max_text)
    return st.builds(
        Event,
        text,
        st.binary(max_size=max_payload),
        id=text.filter(bool),
        timestamp_ms=st.integers(0, 2**62),
        source=text,
        metadata=st.dictionaries(text, text, max_size=4),
        confidence=st.floats(0, 1, width=32),
        tags=st.lists(text, max_size=3).map(tuple),
        priority=st.integers(0, 100),
    )


@contextmanager
def registered_plugin(host: PluginHost, plugin: object, name: str | None = None) -> Iterator[str]:
    """Register ``plugin`` on ``host`` for the ``with`` block; yields its registered name."""
    registered = host.register(plugin, name)
    try:
        yield registered
    finally:
        host.unregister(registered)


@pytest.fixture
def loom_host() -> PluginHost:
    """A plugin host with core's built-ins, no entry points, and strict mode off."""
    return create_host(load_entrypoints=False, strict=False)


@pytest.fixture
def register_plugin(loom_host: PluginHost) -> Iterator[Callable[..., str]]:
    """A function ``register_plugin(plugin, name=None) -> name`` bound to ``loom_host``.

    Everything registered through it is unregistered when the test ends.
    """
    names: list[str] = []

    def register(plugin: object, name: str | None = None) -> str:
        registered = loom_host.register(plugin, name)
        names.append(registered)
        return registered

    try:
        yield register
    finally:
        for name in reversed(names):
            loom_host.unregister(name)
