"""Fetching MaskGCT's G2P data files (phone vocabulary, Mandarin lexicon and tables, the
polyphone BERT) from their public location, pinned to one Amphion commit, like any weight file.

The files are not on the Hugging Face hub: they live in Amphion's repository. Each is verified
against the SHA-256 recorded here, so a moved or changed upstream file is refused rather than
silently changing the phone ids the models were trained on.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import urllib.request
from pathlib import Path

from .g2p import DATA_DIR_ENV, REFERENCE_COMMIT, G2PDataUnavailable

log = logging.getLogger("amphion.weights")

SOURCE_URL = "https://github.com/open-mmlab/Amphion/raw/{commit}/models/tts/maskgct/{path}"
CACHE_ENV = "AMPHION_DATA_CACHE"

# folder-relative name -> (path under models/tts/maskgct/ in Amphion, sha256, bytes)
G2P_DATA = {
    "vocab.json": ("g2p/vocab.json",
                   "0f5c44e05f79df8ae4fd77d7772950436a8bacc83d134fdf0ae3c72412b5676a", 5802),
    "sources/chinese_lexicon.txt": ("g2p/sources/chinese_lexicon.txt",
                                    "a3a7685d1c3e68eb2fa304bfc63e90c90c3c1a1948839a5b1b507b2131b3e2fb", 14779443),
    "sources/pinyin_2_bpmf.txt": ("g2p/sources/pinyin_2_bpmf.txt",
                                  "dc8b048a20cf61d04b5a36bc6939db74095719b8099269a1269023ee3e6535b4", 5262),
    "sources/g2p_chinese_model/polychar.txt": (
        "g2p/sources/g2p_chinese_model/polychar.txt",
        "9df819e371415c23e26a2907236a0228ef93772cc698d93dc0c18844956d1011", 636),
    "sources/g2p_chinese_model/polydict.json": (
        "g2p/sources/g2p_chinese_model/polydict.json",
        "ec6c8bd6d223205f48a17a07720bc594c20b3eab5460175414f7ebee1e66b6b9", 8210),
    "sources/g2p_chinese_model/vocab.txt": (
        "g2p/sources/g2p_chinese_model/vocab.txt",
        "45bbac6b341c319adc98a532532882e91a9cefc0329aa57bac9ae761c27b291c", 109540),
    "sources/g2p_chinese_model/poly_bert_model.onnx": (
        "g2p/sources/g2p_chinese_model/poly_bert_model.onnx",
        "8765d835ffdf9811c832d4dc7b6a552757aa8615c01d1184db716a50c20aebbc", 76583333),
}


def default_cache() -> Path:
    root = os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "amphion"
    return Path(root) / "maskgct_g2p" / REFERENCE_COMMIT[:10]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def missing_files(folder: Path, verify: bool = False) -> list[str]:
    """Files of G2P_DATA absent from `folder` (wrong size, or wrong hash when `verify`)."""
    missing = []
    for name, (_, sha, size) in G2P_DATA.items():
        path = folder / name
        if not path.is_file() or path.stat().st_size != size or (verify and _sha256(path) != sha):
            missing.append(name)
    return missing


def resolve_g2p_data(mode: str = "auto", *, cache: Path | None = None) -> Path:
    """The G2P data folder. `$AMPHION_G2P_DATA` wins; otherwise the pinned cache folder, which
    "pretrained" mode fills by downloading (unless HF_HUB_OFFLINE is set); "auto" and "tiny" never
    download. Raises G2PDataUnavailable with what to do."""
    configured = os.environ.get(DATA_DIR_ENV)
    if configured:
        return Path(configured)
    folder = cache or default_cache()
    if not missing_files(folder):
        return folder
    if mode == "pretrained" and os.environ.get("HF_HUB_OFFLINE", "") not in ("1", "true", "True"):
        return download_g2p_data(folder)
    raise G2PDataUnavailable(
        "MaskGCT G2P data not present: run scripts/download_weights.py maskgct where GitHub is "
        f"reachable, or set {DATA_DIR_ENV} to a folder holding Amphion's models/tts/maskgct/g2p files "
        f"at commit {REFERENCE_COMMIT[:10]}"
    )


def download_g2p_data(folder: Path | None = None, *, base_url: str = SOURCE_URL, progress: bool = True) -> Path:
    """Download every missing file into `folder` (atomically, hash-checked)."""
    folder = folder or default_cache()
    todo = missing_files(folder)
    for i, name in enumerate(todo, 1):
        path, sha, size = G2P_DATA[name]
        url = base_url.format(commit=REFERENCE_COMMIT, path=path)
        target = folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if progress:
            print(f"  [{i}/{len(todo)}] {name} ({size / 1e6:.1f} MB)")
        with tempfile.NamedTemporaryFile(dir=target.parent, delete=False) as tmp:
            try:
                with urllib.request.urlopen(url, timeout=60) as response:
                    shutil.copyfileobj(response, tmp, 1 << 20)
                tmp.close()
                if _sha256(Path(tmp.name)) != sha:
                    raise G2PDataUnavailable(f"{name}: downloaded file does not match the pinned SHA-256")
                os.replace(tmp.name, target)
            except G2PDataUnavailable:
                os.unlink(tmp.name)
                raise
            except OSError as exc:
                os.unlink(tmp.name)
                raise G2PDataUnavailable(f"{name}: download failed ({type(exc).__name__})") from None
    return folder
