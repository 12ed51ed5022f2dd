"""Lazy package exports: a package's public names, imported from their modules on first use.

Loading a config imports `<package>.options`, which runs the package's `__init__`; an eager
`__init__` would pull numpy, dask, xarray or torch into every command (and into `satflow --help`).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable


def exports_of(modules: dict[str, Iterable[str]]) -> dict[str, str]:
    """{module: names} -> {name: module}."""
    return {name: module for module, names in modules.items() for name in names}


def lazy_getattr(package: str, exports: dict[str, str]) -> Callable[[str], object]:
    """A module `__getattr__` that imports `exports[name]` and returns its `name`."""

    def __getattr__(name: str):
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(exports[name]), name)

    return __getattr__
