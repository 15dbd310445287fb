"""The plugin manifest: what a ``.wasm`` offers and what it asks for, validated with pydantic.

A manifest is a TOML or JSON file named ``<stem>.wasm.toml`` or ``<stem>.wasm.json``; its
module is ``<stem>.wasm`` beside it unless ``module`` says otherwise.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from loom_wasm._errors import WasmLoadError

__all__ = [
    "MANIFEST_SUFFIXES",
    "CapabilitySpec",
    "DirGrant",
    "Grants",
    "Limits",
    "PluginManifest",
    "load_manifest",
]

#: File names that mark a manifest, in discovery order.
MANIFEST_SUFFIXES = (".wasm.toml", ".wasm.json")

PAGE = 65536
_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,127}$"
_EXPORT = r"^[A-Za-z_][A-Za-z0-9_\-]{0,127}$"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DirGrant(_Model):
    """A host directory the plugin asks to see.

    Attributes:
        host: the directory on the host; relative paths are relative to the manifest.
        guest: where the guest sees it (an absolute POSIX path such as ``/data``).
        mode: ``ro`` (read only, the default) or ``rw``.
    """

    host: str
    guest: str
    mode: Literal["ro", "rw"] = "ro"

    @field_validator("guest")
    @classmethod
    def _guest_is_absolute(cls, value: str) -> str:
        path = PurePosixPath(value)
        if not path.is_absolute() or ".." in path.parts:
            raise ValueError(f"guest path must be absolute without '..', got {value!r}")
        return str(path)


class Grants(_Model):
    """What the plugin asks to reach outside its sandbox; nothing by default.

    Network is not grantable: wasmtime's WASI preview 1 has no sockets, and the loader
    rejects modules that import ``sock_*``.

    Attributes:
        dirs: directories to preopen.
        env: names of host environment variables to pass through.
        clock: read the wall and monotonic clocks (``clock_time_get``).
    """

    dirs: list[DirGrant] = Field(default_factory=list)
    env: list[Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]] = Field(
        default_factory=list
    )
    clock: bool = False

    @model_validator(mode="after")
    def _unique_guest_paths(self) -> Grants:
        seen: set[str] = set()
        for grant in self.dirs:
            if grant.guest in seen:
                raise ValueError(f"guest path {grant.guest!r} is granted twice")
            seen.add(grant.guest)
        return self


class Limits(_Model):
    """Bounds on one call; the policy caps each of them.

    Attributes:
        fuel: fuel per call (about one unit per wasm instruction).
        memory_bytes: linear memory cap in bytes (``memory_pages`` sets it in 64 KiB pages).
        timeout_ms: wall-clock deadline per call.
        max_output_bytes: the largest output accepted.
        max_concurrency: calls of this plugin running at once; more wait their turn.
    """

    fuel: int = Field(default=1_000_000_000, gt=0)
    memory_bytes: int = Field(default=64 * 1024 * 1024, ge=PAGE)
    timeout_ms: int = Field(default=1000, gt=0)
    max_output_bytes: int = Field(default=1024 * 1024, gt=0, lt=2**31)
    max_concurrency: int = Field(default=4, gt=0)

    @model_validator(mode="before")
    @classmethod
    def _pages(cls, data: Any) -> Any:
        if isinstance(data, dict) and "memory_pages" in data:
            data = dict(data)
            pages = data.pop("memory_pages")
            if "memory_bytes" in data:
                raise ValueError("give memory_pages or memory_bytes, not both")
            if not isinstance(pages, int) or isinstance(pages, bool) or pages < 1:
                raise ValueError(f"memory_pages must be a positive integer, got {pages!r}")
            data["memory_bytes"] = pages * PAGE
        return data


class CapabilitySpec(_Model):
    """One capability the module implements.

    Attributes:
        name: the capability's name in the broker (``text.upper``).
        version: its version.
        description: one line for tool listings.
        export: the function that implements it: for ABI ``cap-v1`` a core export
            ``(i32, i32) -> i64`` (default ``cap_call``); for ``component-v1`` a component
            export ``func(input: string) -> string`` (default ``call``).
        input_schema: JSON Schema of the input.
        output_schema: JSON Schema of the output, if known.
    """

    name: str = Field(pattern=_NAME)
    version: str = Field(default="1.0", min_length=1)
    description: str = ""
    export: str | None = Field(default=None, pattern=_EXPORT)
    input_schema: dict[str, Any] = Field(default_factory=lambda: {"type": "object"})
    output_schema: dict[str, Any] | None = None


class PluginManifest(_Model):
    """A WASM plugin's manifest.

    Attributes:
        name: the plugin's name.
        version: the plugin's version.
        abi: ``cap-v1`` (a core module, JSON through linear memory) or ``component-v1``
            (a component exporting ``func(input: string) -> string``).
        module: the ``.wasm`` (or ``.wat``) file, relative to the manifest.
        description: one line.
        reuse_instance: the author declares the plugin stateless and trusted, so one
            instance may serve many calls (re-armed per call, discarded after a trap).
        limits: per-call bounds.
        grants: what it asks to reach.
        capabilities: what it offers; at least one.
    """

    name: str = Field(pattern=_NAME)
    version: str = Field(min_length=1)
    abi: Literal["cap-v1", "component-v1"] = "cap-v1"
    module: str | None = None
    description: str = ""
    reuse_instance: bool = False
    limits: Limits = Field(default_factory=Limits)
    grants: Grants = Field(default_factory=Grants)
    capabilities: list[CapabilitySpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_capabilities(self) -> PluginManifest:
        seen: set[tuple[str, str]] = set()
        for spec in self.capabilities:
            key = (spec.name, spec.version)
            if key in seen:
                raise ValueError(
                    f"capability {spec.name!r} version {spec.version!r} is listed twice"
                )
            seen.add(key)
        return self

    def export_of(self, spec: CapabilitySpec) -> str:
        """The export that implements ``spec``, with the ABI's default filled in."""
        if spec.export is not None:
            return spec.export
        return "cap_call" if self.abi == "cap-v1" else "call"


def _errors_text(error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"]) or "(top level)"
        lines.append(f"{where}: {item['msg']}")
    return "; ".join(lines)


def load_manifest(path: str | Path) -> tuple[PluginManifest, Path]:
    """Read and validate a manifest.

    Args:
        path: a ``*.wasm.toml`` or ``*.wasm.json`` file.

    Returns:
        The manifest and the absolute path of its module.

    Raises:
        WasmLoadError: the file is unreadable, not TOML/JSON, or breaks the schema; the
            message names the file and each offending field.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise WasmLoadError(path, f"cannot read manifest: {exc}") from exc
    try:
        data: Any = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        kind = "JSON" if path.suffix == ".json" else "TOML"
        raise WasmLoadError(path, f"manifest is not valid {kind}: {exc}") from exc
    if not isinstance(data, dict):
        raise WasmLoadError(path, "manifest must be a table/object at the top level")
    try:
        manifest = PluginManifest.model_validate(data)
    except ValidationError as exc:
        raise WasmLoadError(path, f"invalid manifest: {_errors_text(exc)}") from exc
    module = manifest.module
    if module is None:
        name = path.name
        for suffix in MANIFEST_SUFFIXES:
            if name.endswith(suffix):
                module = name[: -len(suffix)] + ".wasm"
                break
        else:
            raise WasmLoadError(path, "manifest names no module and is not named <stem>.wasm.toml")
    return manifest, (path.parent / module).resolve()
