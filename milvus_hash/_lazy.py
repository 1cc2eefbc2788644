"""Lazy re-exports for package ``__init__`` files (PEP 562).

A package lists the public names it re-exports and the module that defines each; the module is
imported on the first access of one of its names. ``import milvus_hash`` therefore costs nothing
until a name is used, and a program that only needs the code format never loads torch or pymilvus.
"""

from __future__ import annotations

import importlib


def lazy_exports(package: str, exports: dict[str, str]):
    """``(__getattr__, __dir__)`` for ``package`` re-exporting ``exports`` (name -> relative module)."""

    def __getattr__(name: str):
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module, package), name)
        globals_ = importlib.import_module(package).__dict__
        globals_[name] = value  # later accesses skip __getattr__
        return value

    def __dir__():
        return sorted(set(importlib.import_module(package).__dict__) | set(exports))

    return __getattr__, __dir__
