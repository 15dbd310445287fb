"""The app's policy, and the grants a plugin gets: the intersection of what it asks and allows.

Optional grants (directories, environment variables, the clock, instance reuse) are granted
where the policy allows them and refused, with the reason, where it does not: the plugin
still loads. Limits are different: a manifest that asks for more fuel, memory, time, output
or concurrency than the policy's maximum is a load error, because the plugin says it needs
that much.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from loom_wasm._errors import WasmLoadError
from loom_wasm._manifest import Limits, PluginManifest

__all__ = ["DirRule", "Granted", "GrantedDir", "WasmPolicy", "load_policy", "resolve_grants"]


class DirRule(BaseModel):
    """A host directory under which plugins may be granted directories.

    Attributes:
        path: the directory (``~`` is expanded).
        mode: the most a grant under it may have: ``ro`` or ``rw``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str
    mode: Literal["ro", "rw"] = "ro"


class WasmPolicy(BaseModel):
    """What the app allows WASM plugins; the defaults grant no directory and no variable.

    Attributes:
        dirs: roots under which directory grants are allowed.
        env: environment variable names plugins may receive.
        clock: plugins that ask for the clock get it.
        reuse: plugins that declare ``reuse_instance`` get instance reuse.
        max_fuel: the most fuel per call a manifest may ask for.
        max_memory_bytes: the largest memory cap a manifest may ask for.
        max_timeout_ms: the longest per-call deadline a manifest may ask for.
        max_output_bytes: the largest output cap a manifest may ask for.
        max_concurrency: the most concurrent calls a manifest may ask for.
        cache_dir: where compiled modules are cached (owned by this user, not writable
            by others); None means ``$XDG_CACHE_HOME/loom/wasm`` (or ``~/.cache/...``).
        cache: set False to compile on every load.
        inline_max_ms: the longest one call may run on the calling thread, the event loop
            included, instead of a worker thread (saving the thread handoff, about 45 µs;
            see docs/wasm.md). A plugin whose deadline (``limits.timeout_ms``) is at most
            this always runs inline. A cap-v1 plugin without writable directories (a
            fresh Store per call or a reused instance) runs a capability inline once its
            calls are seen to be tiny, with its deadline
            cut to this; a call stopped by that cut is re-run on a worker. 0 never runs
            inline.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    dirs: list[DirRule] = Field(default_factory=list)
    env: list[str] = Field(default_factory=list)
    clock: bool = True
    reuse: bool = True
    max_fuel: int = Field(default=20_000_000_000, gt=0)
    max_memory_bytes: int = Field(default=512 * 1024 * 1024, gt=0)
    max_timeout_ms: int = Field(default=60_000, gt=0)
    max_output_bytes: int = Field(default=64 * 1024 * 1024, gt=0)
    max_concurrency: int = Field(default=16, gt=0)
    cache_dir: str | None = None
    cache: bool = True
    inline_max_ms: int = Field(default=2, ge=0, le=100)


def load_policy(path: str | Path) -> WasmPolicy:
    """Read a policy from a TOML file (the table ``[wasm]`` if present, else the top level).

    Raises:
        WasmLoadError: unreadable, not TOML, or invalid; the message names the file.
    """
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise WasmLoadError(path, f"cannot read policy: {exc}") from exc
    section = data.get("wasm", data)
    try:
        return WasmPolicy.model_validate(section)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise WasmLoadError(path, f"invalid policy: {problems}") from exc


@dataclass(frozen=True, slots=True)
class GrantedDir:
    """A directory the plugin gets: absolute host path, guest path, writable or not."""

    host: Path
    guest: str
    writable: bool


@dataclass(frozen=True, slots=True)
class Granted:
    """What a plugin was granted, and what was refused (each refusal in words).

    Attributes:
        dirs: directories to preopen.
        env: environment variables and their values, read at load time.
        clock: the guest may read clocks.
        reuse: one instance serves many calls.
        inline: every call runs on the caller's thread: its deadline is within the
            policy's ``inline_max_ms``.
        limits: the per-call limits in force.
        refused: one line per refused grant.
        inline_leash_ms: when not 0, a capability whose calls are seen to be tiny runs
            inline with its deadline cut to this (the policy's ``inline_max_ms``); a call
            the cut stops is re-run on a worker. Only for core modules without writable
            directories (a call may then run twice), fresh or reused: a fresh call's
            instantiation and start function run under the leash as well.
    """

    dirs: tuple[GrantedDir, ...]
    env: tuple[tuple[str, str], ...]
    clock: bool
    reuse: bool
    inline: bool
    limits: Limits
    refused: tuple[str, ...] = field(default=())
    inline_leash_ms: int = 0


_LIMITS = (
    ("fuel", "max_fuel"),
    ("memory_bytes", "max_memory_bytes"),
    ("timeout_ms", "max_timeout_ms"),
    ("max_output_bytes", "max_output_bytes"),
    ("max_concurrency", "max_concurrency"),
)


def _limits(manifest: PluginManifest, policy: WasmPolicy, source: Path) -> Limits:
    asked = manifest.limits
    explicit = asked.model_fields_set
    values: dict[str, int] = {}
    for name, cap_name in _LIMITS:
        value = getattr(asked, name)
        cap = getattr(policy, cap_name)
        if value > cap:
            if name in explicit:  # memory_pages arrives as memory_bytes
                raise WasmLoadError(
                    source,
                    f"limits.{name} = {value} asks for more than the policy allows ({cap_name} = "
                    f"{cap})",
                )
            value = cap  # an unset limit's default is lowered to the policy's maximum
        values[name] = value
    return Limits(**values)


def _dirs(
    manifest: PluginManifest, base: Path, policy: WasmPolicy, refused: list[str]
) -> list[GrantedDir]:
    roots = [(Path(rule.path).expanduser().resolve(), rule.mode) for rule in policy.dirs]
    granted = []
    for grant in manifest.grants.dirs:
        host = (base / Path(grant.host).expanduser()).resolve()
        if not host.is_dir():
            refused.append(f"directory {str(host)!r} (for {grant.guest}): not a directory")
            continue
        modes = [mode for root, mode in roots if host == root or host.is_relative_to(root)]
        if not modes:
            refused.append(
                f"directory {str(host)!r} (for {grant.guest}): outside every directory the "
                "policy allows"
            )
            continue
        writable = grant.mode == "rw" and "rw" in modes
        if grant.mode == "rw" and not writable:
            refused.append(
                f"write access to {str(host)!r} (for {grant.guest}): the policy allows read only"
            )
        granted.append(GrantedDir(host, grant.guest, writable))
    return granted


def resolve_grants(manifest: PluginManifest, manifest_path: Path, policy: WasmPolicy) -> Granted:
    """The intersection of what ``manifest`` asks for and what ``policy`` allows.

    Args:
        manifest: the plugin's manifest.
        manifest_path: its file; relative directory grants are relative to its folder.
        policy: the app's policy.

    Raises:
        WasmLoadError: a limit above the policy's maximum (naming the manifest and limit).
    """
    refused: list[str] = []
    limits = _limits(manifest, policy, manifest_path)
    dirs = _dirs(manifest, manifest_path.parent, policy, refused)
    env = []
    for name in manifest.grants.env:
        if name not in policy.env:
            refused.append(f"environment variable {name}: not allowed by the policy")
        elif name not in os.environ:
            refused.append(f"environment variable {name}: not set on the host")
        else:
            env.append((name, os.environ[name]))
    clock = manifest.grants.clock and policy.clock
    if manifest.grants.clock and not clock:
        refused.append("clock: not allowed by the policy")
    reuse = manifest.reuse_instance and policy.reuse
    if manifest.reuse_instance and not reuse:
        refused.append("instance reuse: not allowed by the policy (a fresh instance per call)")
    # Inline calls need a guest the epoch deadline always stops: a component with the clock
    # can sleep in a host call, which the deadline does not interrupt.
    interruptible = manifest.abi == "cap-v1" or not clock
    inline = interruptible and limits.timeout_ms <= policy.inline_max_ms
    # The leash needs a call that may run twice (no writable directory) and a guest that the
    # epoch always stops. A fresh Store is armed before instantiation, so its start function
    # is under the leash too: reuse is not needed.
    leash = 0
    if not inline and manifest.abi == "cap-v1" and not any(d.writable for d in dirs):
        leash = policy.inline_max_ms
    return Granted(tuple(dirs), tuple(env), clock, reuse, inline, limits, tuple(refused), leash)
