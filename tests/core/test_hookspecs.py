"""Meta-tests: every hook spec is typed, documented in its docstring and in docs/, and tested."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from loom import hookspecs
from loom.host import CONTRIBUTION_HOOKS

ROOT = Path(__file__).resolve().parents[2]
SPECS = sorted(
    name
    for name, fn in vars(hookspecs).items()
    if name.startswith("loom_") and hasattr(fn, "loom_spec")
)


def test_specs_cover_every_part_of_the_design():
    assert set(SPECS) == {
        "loom_capabilities",
        "loom_bus_backends",
        "loom_state_stores",
        "loom_model_providers",
        "loom_routing_policies",
        "loom_event_sources",
        "loom_agent_types",
        "loom_cli_commands",
        "loom_bench_scenarios",
        "loom_app_check",
        "loom_app_startup",
        "loom_app_shutdown",
    }


@pytest.mark.parametrize("name", SPECS)
def test_spec_docstring_states_its_contract(name):
    spec = getattr(hookspecs, name)
    doc = inspect.getdoc(spec) or ""
    assert "Returns:" in doc and "Example:" in doc and "versionadded" in doc
    assert inspect.signature(spec).return_annotation != inspect.Signature.empty


@pytest.mark.parametrize("name", SPECS)
def test_spec_is_documented_in_docs(name):
    assert f"`{name}(" in (ROOT / "docs" / "writing-plugins.md").read_text()


def test_every_spec_is_a_contribution_or_lifecycle_hook():
    # Contribution hooks are exercised below; lifecycle hooks in test_host.py, the config
    # check in test_app_config.py.
    lifecycle = {"loom_app_check", "loom_app_startup", "loom_app_shutdown"}
    assert set(SPECS) == set(CONTRIBUTION_HOOKS) | lifecycle


def test_every_contribution_hook_is_collected_by_its_facade_method(loom_host, register_plugin):
    from loom import contributions as c

    class All:
        pass

    records = {
        "loom_capabilities": c.Capability(name="x", handler=lambda: 0),
        "loom_bus_backends": c.BusBackend(name="x", factory=object),
        "loom_state_stores": c.StateStoreBackend(name="x", factory=object),
        "loom_model_providers": c.ModelProvider(name="x", factory=object),
        "loom_routing_policies": c.RoutingPolicy(name="x", factory=object),
        "loom_event_sources": c.EventSource(name="x", factory=object),
        "loom_agent_types": c.AgentType(name="x", factory=object),
        "loom_cli_commands": c.CliCommand(name="x", run=lambda a, h: 0),
        "loom_bench_scenarios": c.BenchScenario(name="x", run=lambda scale: None),  # type: ignore[arg-type,return-value]
    }
    assert set(records) == set(CONTRIBUTION_HOOKS)
    plugin = All()
    for hook, record in records.items():
        setattr(plugin, hook, (lambda r: lambda: [r])(record))
    register_plugin(plugin, "all")
    for hook, record in records.items():
        facade = getattr(loom_host, hook.removeprefix("loom_"))
        assert record in facade(), hook
