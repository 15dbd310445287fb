"""``loom.testing``: a pytest plugin for testing Loom plugins and apps.

Installed with loom-core and loaded by pytest through the ``pytest11`` entry point. It gives:

- the ``loom_host`` fixture: a :class:`~loom.host.PluginHost` with core's built-ins and no
  entry points loaded, so installed plugins cannot leak into a test;
- the ``register_plugin`` fixture: registers a plugin object on ``loom_host`` for one test
  and unregisters it afterwards;
- :func:`registered_plugin`: the same as a context manager, for any host;
- :class:`BusConformance`: the event-bus tests, written once; every bus backend's test
  module subclasses it and overrides :meth:`BusConformance.make_bus`.

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

import pytest

from loom.bus._conformance import BusConformance
from loom.host import PluginHost, create_host

__all__ = ["BusConformance", "loom_host", "register_plugin", "registered_plugin"]


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
