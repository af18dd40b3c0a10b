"""Registry of parity adapters: fixture folder name -> :class:`Adapter`.

Each family module registers its folders on import; add a module per family.
Folders without an adapter are skipped by the runner with a reason naming them.
"""

from __future__ import annotations

from .base import Adapter

ADAPTERS: dict[str, Adapter] = {}


def register(folder_name: str, adapter: Adapter) -> None:
    if folder_name in ADAPTERS:
        raise ValueError(f"an adapter for {folder_name} is already registered")
    ADAPTERS[folder_name] = adapter


# Family modules register themselves on import: every module of this package except `base` is a
# family module, so adding a family is adding a file (no list to edit here).
import importlib as _importlib  # noqa: E402
import pkgutil as _pkgutil  # noqa: E402

for _module in sorted(m.name for m in _pkgutil.iter_modules(__path__)):
    if _module != "base":
        _importlib.import_module(f"{__name__}.{_module}")

__all__ = ["ADAPTERS", "Adapter", "register"]
