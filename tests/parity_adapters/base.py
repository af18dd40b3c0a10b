"""The contract between the generic parity runner (tests/test_parity.py) and per-family adapters."""

from __future__ import annotations

import abc
from pathlib import Path
from typing import Any


class Adapter(abc.ABC):
    """Knows one fixture family: how to build its component and how to run its cases.

    ``load`` must build the component THROUGH THE PRODUCT LOADING CODE (the same config parsing
    and state-dict key mapping the service uses), from the folder's ``config.json`` and weight
    file(s); the runner calls it once per folder and caches the result. ``run`` executes one case
    and returns its outputs by the names used in ``cases.json`` (tensors, or plain JSON values for
    non-tensor outputs). The full case object is passed too, for folders whose cases carry extra
    keys (which weights file, which component, ...).
    """

    @abc.abstractmethod
    def load(self, folder: Path) -> Any: ...

    @abc.abstractmethod
    def run(
        self,
        component: Any,
        case_name: str,
        call: str,
        inputs: dict[str, Any],
        args: dict[str, Any],
        *,
        case: dict[str, Any],
    ) -> dict[str, Any]: ...
