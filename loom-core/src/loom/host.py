"""The plugin host: finds, loads and calls plugins.

Build one with :func:`create_host`. It registers core's built-in plugins first, then loads
the entry points of group ``loom`` one by one: a plugin that fails to import or register is
recorded in :attr:`PluginHost.failures` (with entry-point name, distribution, version and
error) and the host goes on without it. Contribution and lifecycle hooks are called one
implementation at a time, so a plugin that raises is reported and the others still run.

Environment switches:
    ``LOOM_DISABLE_PLUGINS=a,b``: do not load these plugins (by entry-point name).
    ``LOOM_LOAD_PLUGINS=a,b``: load only these entry points (built-ins always load).
    ``LOOM_STRICT_PLUGINS=1``: raise on the first plugin failure instead of recording it.
    ``LOOM_TRACE_PLUGINS=1``: print every hook call to stderr.
"""

from __future__ import annotations

import inspect
import logging
import os
import sys
import traceback
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from types import ModuleType
from typing import Any, TypeVar

import pluggy

from loom import contributions as _contrib
from loom import hookspecs
from loom.errors import PluginError, PluginLoadError

__all__ = ["PluginFailure", "PluginHost", "PluginInfo", "create_host"]

log = logging.getLogger("loom.plugins")

C = TypeVar("C", bound=_contrib.Contribution)

#: Contribution hook name -> the record type it returns.
CONTRIBUTION_HOOKS: dict[str, type[_contrib.Contribution]] = {
    "loom_capabilities": _contrib.Capability,
    "loom_bus_backends": _contrib.BusBackend,
    "loom_state_stores": _contrib.StateStoreBackend,
    "loom_model_providers": _contrib.ModelProvider,
    "loom_routing_policies": _contrib.RoutingPolicy,
    "loom_event_sources": _contrib.EventSource,
    "loom_agent_types": _contrib.AgentType,
    "loom_cli_commands": _contrib.CliCommand,
    "loom_bench_scenarios": _contrib.BenchScenario,
}

BUILTIN_PLUGIN_NAME = "core"


@dataclass(frozen=True)
class PluginFailure:
    """A plugin that failed to load, or failed in a hook.

    Attributes:
        plugin: entry-point (or registration) name.
        distribution: the distribution that provides it, if known.
        version: that distribution's version, if known.
        hook: the hook that failed, or None when loading failed.
        error: the exception, as ``Type: message``.
        traceback: the formatted traceback, for ``--verbose`` output and logs.
    """

    plugin: str
    distribution: str | None
    version: str | None
    hook: str | None
    error: str
    traceback: str = field(default="", compare=False)

    def describe(self) -> str:
        """One line naming what failed and where."""
        dist = f" ({self.distribution} {self.version})" if self.distribution else ""
        where = f"hook {self.hook}" if self.hook else "load"
        return f"plugin {self.plugin!r}{dist} failed in {where}: {self.error}"


@dataclass(frozen=True)
class PluginInfo:
    """What ``loom plugins`` shows about one registered plugin."""

    name: str
    distribution: str | None
    version: str | None
    builtin: bool
    hooks: tuple[str, ...]
    contributions: dict[str, list[str]] = field(default_factory=dict)


class _LoomPluginManager(pluggy.PluginManager):
    """Accepts unmarked ``loom_*`` functions as hook implementations, as pytest does."""

    def parse_hookimpl_opts(self, plugin: object, name: str) -> pluggy.HookimplOpts | None:
        opts = super().parse_hookimpl_opts(plugin, name)
        if opts is None and name.startswith("loom_"):
            method = getattr(plugin, name, None)
            if inspect.isroutine(method):
                return pluggy.HookimplOpts(
                    wrapper=False,
                    hookwrapper=False,
                    optionalhook=False,
                    tryfirst=False,
                    trylast=False,
                    specname=None,
                )
        return opts


class PluginHost:
    """Typed facade over the pluggy manager: loading, contributions and lifecycle.

    Create it with :func:`create_host`; construct it directly only to wrap a manager of
    your own.
    """

    def __init__(self, pm: pluggy.PluginManager, *, strict: bool = False) -> None:
        self.pm = pm
        self.strict = strict
        #: Every failure so far, in order: loading, registration, and hook calls.
        self.failures: list[PluginFailure] = []
        self._origins: dict[str, tuple[str | None, str | None]] = {}
        self._builtins: set[str] = set()

    # -- registration -------------------------------------------------------------------

    def register(
        self,
        plugin: object,
        name: str | None = None,
        *,
        distribution: str | None = None,
        version: str | None = None,
        builtin: bool = False,
    ) -> str:
        """Register a plugin object and return its name.

        Raises:
            PluginLoadError: it implements a hook that does not exist, or with arguments
                the hook does not have.
        """
        try:
            registered = self.pm.register(plugin, name)
        except (ValueError, pluggy.PluginValidationError) as exc:
            raise PluginLoadError(name or repr(plugin), str(exc)) from exc
        if registered is None:  # blocked by name
            raise PluginLoadError(name or repr(plugin), "is disabled (LOOM_DISABLE_PLUGINS)")
        unknown = _unknown_hooks(self.pm, plugin)
        if unknown:
            self.pm.unregister(plugin)
            hint = ", ".join(sorted(unknown))
            raise PluginLoadError(registered, f"implements unknown hook(s) {hint}")
        self._origins[registered] = (distribution, version)
        if builtin:
            self._builtins.add(registered)
        return registered

    def unregister(self, name: str) -> None:
        """Remove a registered plugin by name (no error if it is not there)."""
        plugin = self.pm.get_plugin(name)
        if plugin is not None:
            self.pm.unregister(plugin, name)
        self._origins.pop(name, None)
        self._builtins.discard(name)

    def load_entrypoints(self, group: str = hookspecs.PROJECT_NAME) -> None:
        """Load every entry point of ``group`` that is not disabled or already registered.

        Each entry point is loaded on its own: a failure is recorded and logged, and
        loading goes on (or raises, in strict mode).
        """
        allow = _env_names("LOOM_LOAD_PLUGINS")
        for ep in entry_points(group=group):
            distribution, version = _dist_of(ep)
            if self.pm.get_plugin(ep.name) is not None:
                if ep.name in self._builtins:
                    self._origins[ep.name] = (distribution, version)
                continue
            if self.pm.is_blocked(ep.name) or (allow is not None and ep.name not in allow):
                continue
            try:
                plugin = ep.load()
                self.register(plugin, ep.name, distribution=distribution, version=version)
            except Exception as exc:
                self._fail(ep.name, distribution, version, None, exc)

    # -- introspection --------------------------------------------------------------------

    def is_builtin(self, name: str) -> bool:
        """Whether the named plugin is one of core's built-ins."""
        return name in self._builtins

    def plugin_names(self) -> list[str]:
        """Names of the registered plugins, in registration order."""
        return [name for name, _ in self.pm.list_name_plugin()]

    def info(self, name: str) -> PluginInfo:
        """What the named plugin is, implements and contributes."""
        plugin = self.pm.get_plugin(name)
        if plugin is None:
            raise KeyError(name)
        distribution, version = self._origins.get(name, (None, None))
        callers = self.pm.get_hookcallers(plugin) or []
        hooks = tuple(sorted(caller.name for caller in callers))
        contributed: dict[str, list[str]] = {}
        for hook_name in hooks:
            record_type = CONTRIBUTION_HOOKS.get(hook_name)
            if record_type is None:
                continue
            records = [r for _, r in self._contributions(hook_name, record_type, only=plugin)]
            contributed[record_type.kind] = sorted(r.name for r in records)
        return PluginInfo(name, distribution, version, name in self._builtins, hooks, contributed)

    # -- contributions ----------------------------------------------------------------------

    def capabilities(self) -> list[_contrib.Capability]:
        """Every contributed capability, sorted by name."""
        return self.collect("loom_capabilities", _contrib.Capability)

    def bus_backends(self) -> list[_contrib.BusBackend]:
        """Every contributed bus backend, sorted by name."""
        return self.collect("loom_bus_backends", _contrib.BusBackend)

    def state_stores(self) -> list[_contrib.StateStoreBackend]:
        """Every contributed state store backend, sorted by name."""
        return self.collect("loom_state_stores", _contrib.StateStoreBackend)

    def model_providers(self) -> list[_contrib.ModelProvider]:
        """Every contributed model provider, sorted by name."""
        return self.collect("loom_model_providers", _contrib.ModelProvider)

    def routing_policies(self) -> list[_contrib.RoutingPolicy]:
        """Every contributed routing policy, sorted by name."""
        return self.collect("loom_routing_policies", _contrib.RoutingPolicy)

    def event_sources(self) -> list[_contrib.EventSource]:
        """Every contributed event source, sorted by name."""
        return self.collect("loom_event_sources", _contrib.EventSource)

    def agent_types(self) -> list[_contrib.AgentType]:
        """Every contributed agent type, sorted by name."""
        return self.collect("loom_agent_types", _contrib.AgentType)

    def cli_commands(self) -> list[_contrib.CliCommand]:
        """Every contributed CLI command, sorted by name."""
        return self.collect("loom_cli_commands", _contrib.CliCommand)

    def bench_scenarios(self) -> list[_contrib.BenchScenario]:
        """Every contributed bench scenario, sorted by name."""
        return self.collect("loom_bench_scenarios", _contrib.BenchScenario)

    def collect(self, hook_name: str, record_type: type[C]) -> list[C]:
        """Call a contribution hook on every plugin and return the records, sorted by name.

        A plugin that raises or returns something else than ``record_type`` records is
        reported and skipped. A record whose name another plugin already contributed is
        rejected with an error naming both; the plugin registered first keeps the name.
        """
        chosen: dict[str, tuple[str, C]] = {}
        for plugin_name, record in self._contributions(hook_name, record_type):
            taken = chosen.get(record.name)
            if taken is None:
                chosen[record.name] = (plugin_name, record)
                continue
            error = PluginError(
                plugin_name,
                f"{record_type.__name__} {record.name!r} is already contributed by plugin "
                f"{taken[0]!r}; this one is ignored",
                hook=hook_name,
            )
            self._fail(plugin_name, *self._origins.get(plugin_name, (None, None)), hook_name, error)
        return [record for _, (_, record) in sorted(chosen.items())]

    def _contributions(
        self, hook_name: str, record_type: type[C], *, only: object = None
    ) -> Iterator[tuple[str, C]]:
        for plugin_name, result in self._call_each(hook_name, {}, only=only):
            if result is None:
                continue
            try:
                records = _as_records(result, record_type, hook_name, plugin_name)
            except PluginError as exc:
                origin = self._origins.get(plugin_name, (None, None))
                self._fail(plugin_name, *origin, hook_name, exc)
                continue
            for record in records:
                yield plugin_name, record

    def app_checks(self, config: Any) -> list[Any]:
        """Run ``loom_app_check`` on every plugin: the issues they return, flattened.

        A plugin that raises, or returns something other than issues (objects with a
        string ``key`` and ``message``), is recorded as failing in that hook.
        """
        issues: list[Any] = []
        for plugin, result in self._call_each("loom_app_check", {"config": config}):
            if result is None:
                continue
            found = list(result) if isinstance(result, Iterable) else [result]
            bad = [i for i in found if not _is_issue(i)]
            if bad:
                origin = self._origins.get(plugin, (None, None))
                error = TypeError(f"loom_app_check returned {bad[0]!r}, not a ConfigIssue")
                self._fail(plugin, *origin, "loom_app_check", error)
                continue
            issues.extend(found)
        return issues

    # -- lifecycle ------------------------------------------------------------------------

    async def startup(self, app: Any) -> None:
        """Run ``loom_app_startup`` on every plugin, awaiting each awaitable it returns."""
        await self._run_lifecycle("loom_app_startup", app, reverse=False)

    async def shutdown(self, app: Any) -> None:
        """Run ``loom_app_shutdown`` on every plugin, in reverse start order."""
        await self._run_lifecycle("loom_app_shutdown", app, reverse=True)

    async def _run_lifecycle(self, hook_name: str, app: Any, *, reverse: bool) -> None:
        calls = list(self._call_each(hook_name, {"app": app}, defer=True))
        if reverse:
            calls.reverse()
        for plugin_name, call in calls:
            try:
                result = call()
                if inspect.isawaitable(result):
                    await result
            except Exception as exc:
                self._fail(
                    plugin_name, *self._origins.get(plugin_name, (None, None)), hook_name, exc
                )

    # -- calling ----------------------------------------------------------------------------

    def _call_each(
        self, hook_name: str, kwargs: dict[str, Any], *, only: object = None, defer: bool = False
    ) -> Iterator[tuple[str, Any]]:
        """Call each implementation on its own, in start order (built-ins first).

        pluggy stops a hook call at the first exception; calling implementations one by one
        lets the host attribute a failure to its plugin and go on with the others.
        With ``defer``, yield a zero-argument callable per implementation instead.
        """
        caller = getattr(self.pm.hook, hook_name)
        for impl in caller.get_hookimpls():
            if only is not None and impl.plugin is not only:
                continue
            args = [kwargs[name] for name in impl.argnames]
            if defer:
                yield impl.plugin_name, _bind(impl.function, args)
                continue
            try:
                result = impl.function(*args)
            except Exception as exc:
                origin = self._origins.get(impl.plugin_name, (None, None))
                self._fail(impl.plugin_name, *origin, hook_name, exc)
                continue
            if inspect.isawaitable(result):
                if inspect.iscoroutine(result):
                    result.close()
                error = PluginError(
                    impl.plugin_name,
                    "returned an awaitable from a contribution hook",
                    hook=hook_name,
                )
                origin = self._origins.get(impl.plugin_name, (None, None))
                self._fail(impl.plugin_name, *origin, hook_name, error)
                continue
            yield impl.plugin_name, result

    def _fail(
        self,
        plugin: str,
        distribution: str | None,
        version: str | None,
        hook: str | None,
        exc: BaseException,
    ) -> None:
        failure = PluginFailure(
            plugin=plugin,
            distribution=distribution,
            version=version,
            hook=hook,
            error=str(exc) if isinstance(exc, PluginError) else f"{type(exc).__name__}: {exc}",
            traceback="".join(traceback.format_exception(exc)),
        )
        if failure in self.failures:  # the same hook asked twice (say, by `loom plugins`)
            return
        if self.strict:
            if isinstance(exc, PluginError):
                raise exc
            if hook is None:
                raise PluginLoadError(plugin, failure.error) from exc
            raise PluginError(plugin, failure.error, hook=hook) from exc
        self.failures.append(failure)
        log.warning("%s", failure.describe())


def create_host(
    *,
    load_entrypoints: bool = True,
    plugins: Sequence[object] = (),
    builtins: bool = True,
    strict: bool | None = None,
) -> PluginHost:
    """Build a plugin host.

    Args:
        load_entrypoints: load installed plugins from the ``loom`` entry-point group.
        plugins: extra plugin objects to register after the built-ins (tests use this).
        builtins: register core's built-in plugins (bus, stores, CLI commands).
        strict: raise on a plugin failure; defaults to ``LOOM_STRICT_PLUGINS``.

    Returns:
        The host, with every plugin that could be loaded registered.
    """
    if strict is None:
        strict = os.environ.get("LOOM_STRICT_PLUGINS", "") not in ("", "0")
    pm = _LoomPluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    if os.environ.get("LOOM_TRACE_PLUGINS", "") not in ("", "0"):
        pm.trace.root.setwriter(sys.stderr.write)
        pm.enable_tracing()
    for name in _env_names("LOOM_DISABLE_PLUGINS") or ():
        pm.set_blocked(name)
    host = PluginHost(pm, strict=strict)
    if builtins and not pm.is_blocked(BUILTIN_PLUGIN_NAME):
        from loom import _builtins

        host.register(_builtins, BUILTIN_PLUGIN_NAME, builtin=True)
    for plugin in plugins:
        module_name = plugin.__name__ if isinstance(plugin, ModuleType) else None
        host.register(plugin, module_name)
    if load_entrypoints:
        host.load_entrypoints()
    return host


def _bind(function: Any, args: list[Any]) -> Any:
    return lambda: function(*args)


def _env_names(variable: str) -> set[str] | None:
    raw = os.environ.get(variable)
    if raw is None:
        return None
    return {name.strip() for name in raw.split(",") if name.strip()}


def _dist_of(ep: EntryPoint) -> tuple[str | None, str | None]:
    dist = ep.dist
    if dist is None:
        return None, None
    return dist.name, dist.version


def _unknown_hooks(pm: pluggy.PluginManager, plugin: object) -> set[str]:
    unknown: set[str] = set()
    for caller in pm.get_hookcallers(plugin) or []:
        if caller.has_spec():
            continue
        for impl in caller.get_hookimpls():
            if impl.plugin is plugin and not impl.optionalhook:
                unknown.add(caller.name)
    return unknown


def _as_records(result: object, record_type: type[C], hook_name: str, plugin: str) -> list[C]:
    if isinstance(result, (str, bytes)) or not isinstance(result, Iterable):
        raise PluginError(
            plugin,
            f"returned {type(result).__name__}, expected an iterable of {record_type.__name__}",
            hook=hook_name,
        )
    records = list(result)
    for record in records:
        if not isinstance(record, record_type):
            raise PluginError(
                plugin,
                f"returned a {type(record).__name__} among its records, expected "
                f"{record_type.__name__}",
                hook=hook_name,
            )
    return records


def _is_issue(value: object) -> bool:
    return isinstance(getattr(value, "key", None), str) and isinstance(
        getattr(value, "message", None), str
    )
