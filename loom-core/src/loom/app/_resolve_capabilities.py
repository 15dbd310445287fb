"""Resolving ``[[capabilities]]``: Python references and plugin contributions, filtered."""

from __future__ import annotations

import fnmatch
import inspect
from collections.abc import Sequence

from loom.actions import CapabilityFunction
from loom.app._refs import ReferenceImportError, import_reference
from loom.app._resolve_base import ResolverBase
from loom.contributions import Capability

__all__ = ["CapabilityResolver"]


class CapabilityResolver(ResolverBase):
    """What the broker registers, and where each capability came from."""

    def _capabilities(self) -> tuple[list[Capability], dict[str, str]]:
        entries = list(enumerate(self.config.capabilities))
        chosen: dict[tuple[str, str], tuple[str, Capability]] = {}
        implicit = not any(entry.plugin is not None for _, entry in entries)
        selections: list[tuple[str, list[Capability], list[str], list[str]]] = []
        if implicit:
            selections.append(("installed plugins", self._plugin_capabilities("*", ""), ["*"], []))
        for index, entry in entries:
            key = f"capabilities[{index}]"
            if entry.plugin is not None:
                found = self._plugin_capabilities(entry.plugin, f"{key}.plugin")
            else:
                assert entry.ref is not None
                found = self._referenced_capabilities(entry.ref, f"{key}.ref")
            selections.append((key, found, entry.include, entry.exclude))
        for label, found, include, exclude in selections:
            for record in found:
                if not _selected(record.name, include, exclude):
                    continue
                taken = chosen.get((record.name, record.version))
                if taken is not None:
                    self.issue(
                        label,
                        f"capability {record.name!r} version {record.version} also comes from "
                        f"{taken[0]}; exclude it from one of them",
                    )
                    continue
                chosen[(record.name, record.version)] = (label, record)
        ordered = [record for _, record in sorted(chosen.values(), key=lambda c: c[1].name)]
        origins = {record.name: label for label, record in chosen.values()}
        return ordered, origins

    def _plugin_capabilities(self, plugin: str, key: str) -> list[Capability]:
        records = self.host.capabilities()
        if plugin == "*":
            return records
        if plugin not in self.host.plugin_names():
            names = self.host.plugin_names()
            installed = ", ".join(n for n in names if not self.host.is_builtin(n))
            self.issue(key, f"no plugin named {plugin!r} is loaded; loaded: {installed or 'none'}")
            return []
        wanted = set(self.host.info(plugin).contributions.get("capabilities", []))
        return [r for r in records if r.name in wanted]

    def _referenced_capabilities(self, reference: str, key: str) -> list[Capability]:
        try:
            value = import_reference(reference, self.base_dir)
        except ReferenceImportError as exc:
            self.issue(key, str(exc))
            return []
        if isinstance(value, CapabilityFunction):
            return [value.contribution]
        if isinstance(value, Capability):
            return [value]
        if inspect.ismodule(value):
            found: dict[str, Capability] = {}
            for attribute in vars(value).values():
                if isinstance(attribute, CapabilityFunction):
                    found.setdefault(attribute.name, attribute.contribution)
            if not found:
                self.issue(key, f"module {reference!r} defines no @capability function")
            return list(found.values())
        self.issue(
            key,
            f"{reference!r} is a {type(value).__name__}, not a @capability function "
            "(decorate it with loom.actions.capability) nor a module",
        )
        return []


def _selected(name: str, include: Sequence[str], exclude: Sequence[str]) -> bool:
    if not any(fnmatch.fnmatchcase(name, pattern) for pattern in include):
        return False
    return not any(fnmatch.fnmatchcase(name, pattern) for pattern in exclude)
