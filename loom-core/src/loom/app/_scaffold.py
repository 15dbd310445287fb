"""``loom new app|plugin NAME``: write a working app or plugin package from templates.

Templates live in ``loom/app/_templates/{app,plugin}``. A file ``x.tmpl`` becomes ``x``;
``__pkg__`` in a path becomes the package name; ``{{name}}``, ``{{pkg}}``, ``{{dist}}``,
``{{title}}`` and ``{{loom_version}}`` in a file become their values.
"""

from __future__ import annotations

import keyword
import os
import re
import sys
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Literal

from loom._version import __version__

__all__ = ["Kind", "Scaffold", "ScaffoldError", "plan_scaffold", "write_scaffold"]

Kind = Literal["app", "plugin"]

_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,39}")
_TOKEN = re.compile(r"\{\{(name|pkg|dist|title|loom_version)\}\}")


class ScaffoldError(ValueError):
    """The name or the target directory cannot be used; the message says why."""


@dataclass(frozen=True)
class Scaffold:
    """What ``loom new`` will write.

    Attributes:
        kind: ``app`` or ``plugin``.
        name: the name given (lower-cased).
        pkg: the Python package (``my_app``; ``loom_weather`` for a plugin).
        dist: the distribution name (``loom-weather``; the name itself for an app).
        target: the directory written to.
        files: each file's path relative to ``target``, with its text.
    """

    kind: Kind
    name: str
    pkg: str
    dist: str
    target: Path
    files: tuple[tuple[str, str], ...]


def plan_scaffold(kind: Kind, name: str, target: str | os.PathLike[str] | None = None) -> Scaffold:
    """Render the templates for ``name`` (nothing is written).

    Raises:
        ScaffoldError: the name is not usable (not an identifier once ``-`` becomes
            ``_``, a Python keyword, or the name of a standard library module).
    """
    if not _NAME.fullmatch(name):
        raise ScaffoldError(
            f"{name!r} is not a usable name: 1 to 40 letters, digits, '-' or '_', "
            "starting with a letter"
        )
    name = name.lower()
    snake = name.replace("-", "_")
    if kind == "plugin":
        base = snake.removeprefix("loom_")
        if not base:
            raise ScaffoldError(f"{name!r}: give the plugin a name of its own after 'loom-'")
        pkg, dist, plugin_name = f"loom_{base}", f"loom-{base.replace('_', '-')}", base
    else:
        pkg, dist, plugin_name = snake, name, name
        if keyword.iskeyword(pkg) or pkg in sys.stdlib_module_names or pkg in _TAKEN:
            raise ScaffoldError(
                f"{name!r} would make a package {pkg!r} that shadows another module; "
                "pick another name"
            )
    values = {
        "name": plugin_name,
        "pkg": pkg,
        "dist": dist,
        "title": plugin_name.replace("_", " ").replace("-", " ").title(),
        "loom_version": __version__,
    }
    root = resources.files("loom.app").joinpath("_templates", kind)
    files = tuple(sorted(_render(root, "", values)))
    where = Path(target) if target is not None else Path(name)
    return Scaffold(kind, name, pkg, dist, where, files)


def write_scaffold(scaffold: Scaffold, *, force: bool = False) -> list[Path]:
    """Write the files; returns their paths.

    Raises:
        ScaffoldError: the target exists and is not empty (unless ``force``), or a file
            cannot be written.
    """
    target = scaffold.target
    if target.exists() and not target.is_dir():
        raise ScaffoldError(f"{target} exists and is not a directory")
    if target.is_dir() and any(target.iterdir()) and not force:
        raise ScaffoldError(f"{target} exists and is not empty (use --force to write into it)")
    written: list[Path] = []
    try:
        for relative, text in scaffold.files:
            path = target / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            written.append(path)
    except OSError as exc:
        raise ScaffoldError(f"cannot write {exc.filename or target}: {exc.strerror}") from None
    return written


# Package names an app must not take: they would shadow what its own imports need.
_TAKEN = frozenset({"loom", "tests", "test", "conftest", "pytest", "pydantic"})


def _render(folder: Traversable, prefix: str, values: dict[str, str]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for item in folder.iterdir():
        name = item.name
        if name == "__pycache__":
            continue
        relative = f"{prefix}{name.replace('__pkg__', values['pkg'])}"
        if item.is_dir():
            out.extend(_render(item, relative + "/", values))
            continue
        if not name.endswith(".tmpl"):
            continue
        text = _TOKEN.sub(lambda m: values[m.group(1)], item.read_text(encoding="utf-8"))
        out.append((relative.removesuffix(".tmpl"), text))
    return out
