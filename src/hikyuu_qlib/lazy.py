"""Package exports loaded on first use (PEP 562), so importing one light module of a package does not
import the heavy ones its ``__init__`` re-exports (the numba kernels of the backtest engines)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib import import_module
from typing import Any


def lazy_exports(namespace: dict[str, Any], where: Mapping[str, str]) -> Callable[[str], Any]:
    """The module ``__getattr__`` of the package whose globals are ``namespace``: each name of ``where`` is
    read from its module (``where[name]``) when first asked for, then kept in the package's globals."""
    package = namespace["__name__"]

    def __getattr__(name: str) -> Any:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(import_module(module), name)
        namespace[name] = value
        return value

    return __getattr__
