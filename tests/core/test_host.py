"""The plugin host: loading entry points, isolating failures, contributions and lifecycle."""

from __future__ import annotations

import textwrap
from importlib.metadata import EntryPoint

import pytest

import loom.host
from loom import PluginError, PluginLoadError, hookimpl
from loom.contributions import Capability, CliCommand
from loom.host import create_host
from loom.testing import registered_plugin


def _cap(name):
    return Capability(name=name, handler=lambda: name)


class CapPlugin:
    def __init__(self, *names):
        self.names = names

    @hookimpl
    def loom_capabilities(self):
        return [_cap(n) for n in self.names]


@pytest.fixture
def fake_entry_points(monkeypatch, tmp_path):
    """Install plugin modules written from source, reachable through fake entry points."""
    monkeypatch.syspath_prepend(str(tmp_path))
    points: list[EntryPoint] = []

    def add(name, source=None, value=None):
        if source is not None:
            module = f"loomtest_{name}"
            (tmp_path / f"{module}.py").write_text(textwrap.dedent(source))
            value = value or module
        points.append(EntryPoint(name=name, value=value, group="loom"))

    monkeypatch.setattr(loom.host, "entry_points", lambda group: list(points))
    return add


GOOD = """
    from loom import hookimpl
    from loom.contributions import Capability

    @hookimpl
    def loom_capabilities():
        return [Capability(name="good.cap", handler=lambda: 1)]
"""


def test_entry_point_plugins_are_loaded(fake_entry_points):
    fake_entry_points("good", GOOD)
    host = create_host()
    assert "good" in host.plugin_names()
    assert [c.name for c in host.capabilities()] == ["good.cap"]
    assert host.failures == []


def test_plugin_that_raises_on_import_is_reported_and_others_load(fake_entry_points):
    fake_entry_points("broken", "raise RuntimeError('boom at import')\n")
    fake_entry_points("good", GOOD)
    host = create_host()
    assert [c.name for c in host.capabilities()] == ["good.cap"]
    [failure] = host.failures
    assert failure.plugin == "broken" and failure.hook is None
    assert "RuntimeError: boom at import" in failure.error
    assert "broken" in failure.describe() and "load" in failure.describe()


def test_malformed_entry_point_is_reported(fake_entry_points):
    fake_entry_points("malformed", value="no_such_module_xyz:thing")
    fake_entry_points("syntax", value="not a :: valid reference")
    host = create_host()
    assert {f.plugin for f in host.failures} == {"malformed", "syntax"}
    assert any("ModuleNotFoundError" in f.error for f in host.failures)


def test_strict_mode_raises_on_first_failure(fake_entry_points, monkeypatch):
    fake_entry_points("broken", "raise RuntimeError('boom')\n")
    monkeypatch.setenv("LOOM_STRICT_PLUGINS", "1")
    with pytest.raises(PluginLoadError, match=r"broken.*boom"):
        create_host()


def test_disable_plugins_by_name(fake_entry_points, monkeypatch):
    fake_entry_points("good", GOOD)
    fake_entry_points("broken", "raise RuntimeError('boom')\n")
    monkeypatch.setenv("LOOM_DISABLE_PLUGINS", "broken, good")
    host = create_host()
    assert host.failures == [] and host.capabilities() == []


def test_load_plugins_allowlist(fake_entry_points, monkeypatch):
    fake_entry_points("good", GOOD)
    fake_entry_points("broken", "raise RuntimeError('boom')\n")
    monkeypatch.setenv("LOOM_LOAD_PLUGINS", "good")
    host = create_host()
    assert host.failures == [] and [c.name for c in host.capabilities()] == ["good.cap"]
    assert "core" in host.plugin_names()  # built-ins always load


def test_unknown_hook_is_rejected_with_its_name(fake_entry_points):
    fake_entry_points(
        "typo",
        """
        from loom import hookimpl

        @hookimpl
        def loom_capabilitiez():
            return []
        """,
    )
    host = create_host()
    [failure] = host.failures
    assert failure.plugin == "typo" and "loom_capabilitiez" in failure.error
    assert "typo" not in host.plugin_names()


def test_unmarked_loom_functions_are_hooks(loom_host, register_plugin):
    class Plain:
        def loom_capabilities(self):
            return [_cap("plain")]

    register_plugin(Plain(), "plain")
    assert [c.name for c in loom_host.capabilities()] == ["plain"]


def test_hook_that_raises_is_reported_and_others_contribute(loom_host, register_plugin):
    class Raises:
        @hookimpl
        def loom_capabilities(self):
            raise ValueError("cannot list")

    register_plugin(CapPlugin("a"), "first")
    register_plugin(Raises(), "raises")
    register_plugin(CapPlugin("b"), "last")
    assert [c.name for c in loom_host.capabilities()] == ["a", "b"]
    [failure] = loom_host.failures
    assert (failure.plugin, failure.hook) == ("raises", "loom_capabilities")
    assert "ValueError: cannot list" in failure.error


def test_wrong_record_type_is_reported(loom_host, register_plugin):
    class Wrong:
        @hookimpl
        def loom_capabilities(self):
            return [CliCommand(name="x", run=lambda a, h: 0)]

    register_plugin(Wrong(), "wrong")
    assert loom_host.capabilities() == []
    assert "expected Capability" in loom_host.failures[0].error


def test_non_iterable_result_is_reported(loom_host, register_plugin):
    class Scalar:
        @hookimpl
        def loom_capabilities(self):
            return 42

    register_plugin(Scalar(), "scalar")
    assert loom_host.capabilities() == []
    assert "returned int" in loom_host.failures[0].error


def test_awaitable_from_contribution_hook_is_reported(loom_host, register_plugin):
    class Async:
        @hookimpl
        async def loom_capabilities(self):
            return [_cap("never")]

    register_plugin(Async(), "async")
    assert loom_host.capabilities() == []
    assert "awaitable" in loom_host.failures[0].error


def test_duplicate_names_are_rejected_naming_both_plugins(loom_host, register_plugin):
    register_plugin(CapPlugin("same", "x"), "early")
    register_plugin(CapPlugin("same"), "late")
    caps = loom_host.capabilities()
    assert [c.name for c in caps] == ["same", "x"]
    assert caps[0].handler() == "same"
    [failure] = loom_host.failures
    assert failure.plugin == "late"
    assert "'early'" in failure.error and "'same'" in failure.error


def test_duplicate_is_an_error_in_strict_mode():
    host = create_host(load_entrypoints=False, strict=True)
    host.register(CapPlugin("same"), "early")
    host.register(CapPlugin("same"), "late")
    with pytest.raises(PluginError, match="already contributed by plugin 'early'"):
        host.capabilities()


def test_contributions_are_sorted_by_name(loom_host, register_plugin):
    register_plugin(CapPlugin("zeta", "alpha"), "p")
    assert [c.name for c in loom_host.capabilities()] == ["alpha", "zeta"]


def test_registered_plugin_context_manager_unregisters():
    host = create_host(load_entrypoints=False)
    with registered_plugin(host, CapPlugin("tmp")) as name:
        assert [c.name for c in host.capabilities()] == ["tmp"]
    assert name not in host.plugin_names() and host.capabilities() == []


def test_info_lists_hooks_and_contributions(loom_host, register_plugin):
    register_plugin(CapPlugin("a", "b"), "p")
    info = loom_host.info("p")
    assert info.hooks == ("loom_capabilities",)
    assert info.contributions == {"capabilities": ["a", "b"]}
    assert not info.builtin and loom_host.info("core").builtin


async def test_lifecycle_hooks_are_awaited_in_order_and_isolated(loom_host, register_plugin):
    calls = []

    class Sync:
        @hookimpl
        def loom_app_startup(self, app):
            calls.append(("sync-start", app))

        @hookimpl
        def loom_app_shutdown(self, app):
            calls.append(("sync-stop", app))

    class Async:
        @hookimpl
        async def loom_app_startup(self, app):
            calls.append(("async-start", app))

        @hookimpl
        async def loom_app_shutdown(self, app):
            calls.append(("async-stop", app))

    class Broken:
        @hookimpl
        async def loom_app_startup(self, app):
            raise RuntimeError("no database")

    register_plugin(Sync(), "sync")
    register_plugin(Broken(), "broken")
    register_plugin(Async(), "async")
    await loom_host.startup("app")
    await loom_host.shutdown("app")
    assert calls == [
        ("sync-start", "app"),
        ("async-start", "app"),
        ("async-stop", "app"),
        ("sync-stop", "app"),
    ]
    [failure] = loom_host.failures
    assert (failure.plugin, failure.hook) == ("broken", "loom_app_startup")
    assert "no database" in failure.error


def test_hooks_are_not_called_with_arguments_they_do_not_take(loom_host, register_plugin):
    seen = []

    class NoArgs:
        @hookimpl
        def loom_app_startup(self):
            seen.append(True)

    register_plugin(NoArgs(), "noargs")
    import asyncio

    asyncio.run(loom_host.startup(app=object()))
    assert seen == [True]


def test_hook_with_unknown_argument_is_rejected(loom_host):
    class BadArgs:
        @hookimpl
        def loom_capabilities(self, nonsense):
            return []

    with pytest.raises(PluginLoadError, match="nonsense"):
        loom_host.register(BadArgs(), "badargs")
