"""Parity adapter for the MaskGCT G2P fixture (maskgct_g2p): text -> phone string and phone ids.

The component is the product's :class:`models.text.G2P`, built on the data folder that
:func:`models.text.g2p_data_dir` resolves: ``$AMPHION_G2P_DATA`` when set, else the shared copy
``<shared>/data/maskgct_g2p`` next to the parity folder. Inputs and outputs are plain JSON (text,
language code; phone string, id list), which the runner compares exactly.

Skips, each with its reason: the data folder is missing; espeak-ng cannot be loaded; or this
machine's espeak-ng version differs from the one the fixture was made with (its output for
English, French, German and Korean then legitimately differs, so the comparison would test the
machine, not the code).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from models.text import DATA_DIR_ENV, G2P, G2PDataUnavailable, espeak_version, g2p_data_dir, segment_zh_en

from . import register
from .base import Adapter


class _Unavailable:
    def __init__(self, reason: str) -> None:
        self.reason = reason


class MaskGCTG2PAdapter(Adapter):
    def load(self, folder: Path) -> Any:
        try:
            data_dir = g2p_data_dir(os.environ.get(DATA_DIR_ENV) or folder.parent.parent / "data" / "maskgct_g2p")
        except G2PDataUnavailable as exc:
            return _Unavailable(f"MaskGCT G2P data not available: {exc}")
        g2p = G2P(data_dir)
        fixture_vocab = json.loads((folder / "vocab.json").read_text(encoding="utf-8"))["vocab"]
        if fixture_vocab != g2p.vocab:
            raise AssertionError(f"{data_dir}/vocab.json differs from the fixture's vocab.json")
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        wanted = re.search(r"(\d+\.\d+)", config.get("versions", {}).get("espeak-ng", ""))
        g2p.fixture_espeak = wanted.group(1) if wanted else None
        return g2p

    @staticmethod
    def _needs_espeak(text: str, language: str) -> bool:
        if language not in ("zh", "en"):
            return True
        return any(kind != "zh" for _, kind in segment_zh_en(text))

    def run(
        self,
        component: Any,
        case_name: str,
        call: str,
        inputs: dict[str, Any],
        args: dict[str, Any],
        *,
        case: dict[str, Any],
    ) -> dict[str, Any]:
        if isinstance(component, _Unavailable):
            pytest.skip(component.reason)
        text, language = inputs["text"], inputs["language"]
        if self._needs_espeak(text, language):
            have = espeak_version()
            if have is None:
                pytest.skip(f"{case_name}: espeak-ng cannot be loaded here (install Debian's espeak-ng)")
            want = component.fixture_espeak
            if want and not (have == want or have.startswith(want + ".")):
                pytest.skip(f"{case_name}: fixture made with espeak-ng {want}, this machine has {have}")
        phones, ids = component.g2p(text, language)
        return {"phones": phones, "phone_ids": ids}


register("maskgct_g2p", MaskGCTG2PAdapter())
