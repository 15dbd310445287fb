"""Python references in ``loom.toml`` (``module`` or ``module:attr``), imported from the app's
directory first."""

from __future__ import annotations

import importlib
import importlib.machinery
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

__all__ = ["ReferenceImportError", "import_reference"]


class ReferenceImportError(ImportError):
    """A reference could not be imported; the message says why, without the key."""


def import_reference(reference: str, base_dir: Path | None = None) -> Any:
    """The object ``module:attr`` names (or the module, for ``module``).

    ``base_dir`` (the directory of the ``loom.toml``) goes first on ``sys.path``, so an
    app's own modules are found beside its configuration. A module of the same name
    imported earlier from elsewhere (another app's ``agents.py``) is replaced by the one
    in ``base_dir``.

    Raises:
        ReferenceImportError: the module cannot be imported or has no such attribute.
    """
    module_name, _, attribute = reference.partition(":")
    if base_dir is not None:
        _prefer(base_dir, module_name.split(".")[0])
    module = _import(module_name, base_dir)
    if not attribute:
        return module
    value: Any = module
    walked = module_name
    for part in attribute.split("."):
        try:
            value = getattr(value, part)
        except AttributeError:
            raise ReferenceImportError(f"{walked!r} has no attribute {part!r}") from None
        walked = f"{walked}:{part}" if walked == module_name else f"{walked}.{part}"
    return value


def _prefer(base_dir: Path, top: str) -> None:
    directory = str(base_dir)
    if directory not in sys.path:
        sys.path.insert(0, directory)
    importlib.invalidate_caches()  # the app's files may be newer than the finders' caches
    spec = importlib.machinery.PathFinder.find_spec(top, [directory])
    if spec is None:
        return
    loaded = sys.modules.get(top)
    origin = getattr(loaded, "__file__", None) if loaded is not None else None
    if origin is None or _within(Path(origin), base_dir):
        return
    for name in [n for n in sys.modules if n == top or n.startswith(top + ".")]:
        del sys.modules[name]


def _within(path: Path, directory: Path) -> bool:
    try:
        return path.resolve().is_relative_to(directory.resolve())
    except OSError:
        return False


def _import(module_name: str, base_dir: Path | None) -> ModuleType:
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if module_name == missing or module_name.startswith(missing + "."):
            where = f" (looked in {base_dir} and on sys.path)" if base_dir is not None else ""
            raise ReferenceImportError(f"no module named {module_name!r}{where}") from None
        raise ReferenceImportError(f"importing {module_name!r} failed: {exc}") from exc
    except Exception as exc:  # any error in the user's module is reported
        raise ReferenceImportError(
            f"importing {module_name!r} failed: {type(exc).__name__}: {exc}"
        ) from exc
