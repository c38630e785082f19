"""Every package's ``__all__`` is exactly what it exports: its public names, no more, no fewer."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from types import ModuleType

import pytest

import hikyuu_qlib


def _packages_with_all() -> list[str]:
    names = [hikyuu_qlib.__name__]
    for info in pkgutil.walk_packages(hikyuu_qlib.__path__, prefix=f"{hikyuu_qlib.__name__}."):
        if info.ispkg and "migrations" not in info.name:
            names.append(info.name)
    return [n for n in names if hasattr(importlib.import_module(n), "__all__")]


_TYPING_HELPERS = frozenset({"TYPE_CHECKING", "annotations"})
_HELPER_MODULES = frozenset({"typing", "typing_extensions", "collections.abc", "builtins", "__future__"})


def _exported(module: ModuleType) -> set[str]:
    """The names a package offers: the public objects it binds (not its submodules, not the typing helpers
    it imports), and the names it resolves on first use (``_WHERE``)."""
    bound = {
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and not inspect.ismodule(value)
        and name not in _TYPING_HELPERS
        and getattr(value, "__module__", None) not in _HELPER_MODULES
    }
    lazy = set(getattr(module, "_WHERE", {}))
    return bound | lazy | ({"__version__"} if hasattr(module, "__version__") else set())


def test_every_package_with_a_public_api_declares_it() -> None:
    assert {"hikyuu_qlib", "hikyuu_qlib.domain", "hikyuu_qlib.registry"} <= set(_packages_with_all())


@pytest.mark.parametrize("name", _packages_with_all())
def test_all_lists_exactly_the_exported_members(name: str) -> None:
    module = importlib.import_module(name)
    declared = set(module.__all__)
    assert len(declared) == len(module.__all__), f"{name}.__all__ repeats a name"
    assert declared == _exported(module), name
    for member in declared:
        assert getattr(module, member) is not None, f"{name}.{member} does not resolve"
