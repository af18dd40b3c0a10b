"""MaskGCT's G2P data files (phone vocabulary, Mandarin lexicon and tables, the polyphone BERT),
fetched from Amphion's repository at the pinned commit like any weight file (see ``models.pinned``:
each file SHA-256-checked, so a moved or changed upstream file is refused rather than silently
changing the phone ids the models were trained on)."""

from __future__ import annotations

import os
from pathlib import Path

from models.pinned import PinnedFile, PinnedSource
from models.weights import HubFiles, WeightsUnavailable, download, find_local, resolve

from .g2p import DATA_DIR_ENV, REFERENCE_COMMIT, G2PDataUnavailable


def _pin(path: str, sha256: str, size: int) -> PinnedFile:
    return PinnedFile(f"models/tts/maskgct/g2p/{path}", sha256, size)


G2P_SOURCE = PinnedSource("maskgct_g2p", commit=REFERENCE_COMMIT, files={
    "vocab.json": _pin("vocab.json", "0f5c44e05f79df8ae4fd77d7772950436a8bacc83d134fdf0ae3c72412b5676a", 5802),
    "sources/chinese_lexicon.txt": _pin(
        "sources/chinese_lexicon.txt", "a3a7685d1c3e68eb2fa304bfc63e90c90c3c1a1948839a5b1b507b2131b3e2fb", 14779443),
    "sources/pinyin_2_bpmf.txt": _pin(
        "sources/pinyin_2_bpmf.txt", "dc8b048a20cf61d04b5a36bc6939db74095719b8099269a1269023ee3e6535b4", 5262),
    "sources/g2p_chinese_model/polychar.txt": _pin(
        "sources/g2p_chinese_model/polychar.txt",
        "9df819e371415c23e26a2907236a0228ef93772cc698d93dc0c18844956d1011", 636),
    "sources/g2p_chinese_model/polydict.json": _pin(
        "sources/g2p_chinese_model/polydict.json",
        "ec6c8bd6d223205f48a17a07720bc594c20b3eab5460175414f7ebee1e66b6b9", 8210),
    "sources/g2p_chinese_model/vocab.txt": _pin(
        "sources/g2p_chinese_model/vocab.txt",
        "45bbac6b341c319adc98a532532882e91a9cefc0329aa57bac9ae761c27b291c", 109540),
    "sources/g2p_chinese_model/poly_bert_model.onnx": _pin(
        "sources/g2p_chinese_model/poly_bert_model.onnx",
        "8765d835ffdf9811c832d4dc7b6a552757aa8615c01d1184db716a50c20aebbc", 76583333),
})


#: The G2P data as the weights resolver knows it (``$AMPHION_G2P_DATA``, else the pinned cache).
G2P_FILES = HubFiles(repo_id=None, patterns=tuple(G2P_SOURCE.files), local_dir_env=DATA_DIR_ENV, pinned=G2P_SOURCE)


def default_cache() -> Path:
    return G2P_SOURCE.cache_folder()


def missing_files(folder: Path, verify: bool = False) -> list[str]:
    """Files of the G2P data absent from `folder` (wrong size, or wrong hash when `verify`)."""
    return G2P_SOURCE.missing(folder, verify)


def resolve_g2p_data(mode: str = "auto") -> Path:
    """The G2P data folder, through the weights resolver: `$AMPHION_G2P_DATA` wins; otherwise the
    pinned cache folder, which "pretrained" mode fills by downloading (unless HF_HUB_OFFLINE is set).
    Data, not weights: "tiny" reads it too; "auto" and "tiny" read this machine only (an auto-mode
    service fetches it in the background: ``deployments.fetching``). Raises G2PDataUnavailable with
    what to do."""
    try:
        found = resolve(G2P_FILES, "pretrained") if mode == "pretrained" else find_local(G2P_FILES)
    except WeightsUnavailable as exc:
        if os.environ.get(DATA_DIR_ENV):  # the configured folder is incomplete: say which files
            raise G2PDataUnavailable(f"MaskGCT G2P data: {exc}") from None
        raise G2PDataUnavailable(
            "MaskGCT G2P data not present: run scripts/download_weights.py maskgct where GitHub is "
            f"reachable, or set {DATA_DIR_ENV} to a folder holding Amphion's models/tts/maskgct/g2p files "
            f"at commit {REFERENCE_COMMIT[:10]}"
        ) from None
    assert found.root is not None
    return found.root


def download_g2p_data(*, progress: bool = True) -> Path:
    """Download every missing file into the pinned cache (atomically, hash-checked)."""
    try:
        return download(G2P_FILES, progress=progress)
    except WeightsUnavailable as exc:
        raise G2PDataUnavailable(str(exc)) from None
