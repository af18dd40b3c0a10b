"""Registry of parity adapters: fixture folder name -> :class:`Adapter`.

Each family module registers its folders on import; add a module per family and import it below.
Folders without an adapter are skipped by the runner with a reason naming them.
"""

from __future__ import annotations

from .base import Adapter

ADAPTERS: dict[str, Adapter] = {}


def register(folder_name: str, adapter: Adapter) -> None:
    if folder_name in ADAPTERS:
        raise ValueError(f"an adapter for {folder_name} is already registered")
    ADAPTERS[folder_name] = adapter


# Family modules (import for their register() side effect).
from . import vocoders  # noqa: E402,F401
from . import maskgct_g2p  # noqa: E402,F401
from . import maskgct_generation  # noqa: E402,F401
from . import maskgct_codecs  # noqa: E402,F401

__all__ = ["ADAPTERS", "Adapter", "register"]
