"""Where Vevo1.5's (VevoSing's) official files live (:data:`OFFICIAL_FILES`, for
``models.weights.resolve`` / ``download``), one entry per component, and :func:`load_component`,
which resolves and builds a front-end component in one call. :data:`CONFIG_FILES` names the
configurations in Amphion's code repository. The table, the files that are not on the hub and the
licence (cc-by-nc-nd-4.0: load as published, never convert): ``models/vevosing/README.md``.
"""

from __future__ import annotations

from typing import Any

import torch

# Vevo1.5's vocoder is Vevo's Vocos model: its weights file name.
from models.vevo.vocoder import VOCODER_WEIGHTS_FILE
from models.vevosing.tokenizers import CONTENTSTYLE_TOKENIZER_FILE, PROSODY_TOKENIZER_FILE
from models.vevosing.whisper_features import WHISPER_FILES, WHISPER_REPO, WHISPER_STATS_FILE
from models.pinned import PinnedFile, PinnedSource
from models.weights import HubFiles, resolve

__all__ = [
    "AR_FILES",
    "COMPONENTS",
    "CONFIG_DIR_ENV",
    "CONFIG_FILES",
    "FM_FILES",
    "OFFICIAL_FILES",
    "VEVOSING_REPO",
    "load_component",
]

VEVOSING_REPO = "amphion/Vevo1.5"
#: Folder holding a copy of Amphion's ``models/svc/vevosing/config/`` (for ``whisper_stats.pt``).
CONFIG_DIR_ENV = "AMPHION_VEVOSING_CONFIG_DIR"

#: AR and FM checkpoints per training-data variant (the scripts use ``singnet7k``).
AR_FILES = {
    variant: f"contentstyle_modeling/ar_emilia101k_{variant}/model.safetensors" for variant in ("singnet7k", "sing0.4k")
}
FM_FILES = {
    variant: f"acoustic_modeling/fm_emilia101k_{variant}/model.safetensors" for variant in ("singnet7k", "sing0.4k")
}

OFFICIAL_FILES: dict[str, HubFiles] = {
    "whisper": HubFiles(repo_id=WHISPER_REPO, patterns=WHISPER_FILES),
    # Ships with Amphion's code (models/svc/vevosing/config/), not on the hub: pinned and hash-checked.
    "whisper_stats": HubFiles(repo_id=None, patterns=(WHISPER_STATS_FILE,), local_dir_env=CONFIG_DIR_ENV,
                              pinned=PinnedSource("vevosing_whisper_stats", {WHISPER_STATS_FILE: PinnedFile(
                                  "models/svc/vevosing/config/whisper_stats.pt",
                                  "6117052b3e23e9075a79cc208ecc24328ae2f71a7dd4c9793db7c90a88b4a519", 9215)})),
    "contentstyle_tokenizer": HubFiles(repo_id=VEVOSING_REPO, patterns=(CONTENTSTYLE_TOKENIZER_FILE,)),
    "prosody_tokenizer": HubFiles(repo_id=VEVOSING_REPO, patterns=(PROSODY_TOKENIZER_FILE,)),
    **{f"ar_{v}": HubFiles(repo_id=VEVOSING_REPO, patterns=(path,)) for v, path in AR_FILES.items()},
    **{f"fm_{v}": HubFiles(repo_id=VEVOSING_REPO, patterns=(path,)) for v, path in FM_FILES.items()},
    "vocoder": HubFiles(repo_id=VEVOSING_REPO, patterns=(VOCODER_WEIGHTS_FILE,)),
}

#: The configuration file of each checkpoint, in Amphion's code repo under ``models/svc/vevosing/config/``.
CONFIG_FILES: dict[str, str] = {
    "contentstyle_tokenizer": "fm_emilia101k_singnet7k.json",  # model.coco (= the AR configs' model.coco_content_style)
    "prosody_tokenizer": "ar_emilia101k_singnet7k.json",  # model.coco_style
    "ar_singnet7k": "ar_emilia101k_singnet7k.json",
    "ar_sing0.4k": "ar_emilia101k_sing0.4k.json",
    "fm_singnet7k": "fm_emilia101k_singnet7k.json",
    "fm_sing0.4k": "fm_emilia101k_sing0.4k.json",
    "vocoder": "vocoder.json",  # also the mel front end (its preprocess block), identical to Vevo's
}

#: What :func:`load_component` builds, and the OFFICIAL_FILES entries each needs.
COMPONENTS: dict[str, tuple[str, ...]] = {
    "chromagram": (),
    "whisper_features": ("whisper", "whisper_stats"),
    "contentstyle_tokenizer": ("contentstyle_tokenizer",),
    "prosody_tokenizer": ("prosody_tokenizer",),
    "vocoder": ("vocoder",),
}


def load_component(
    name: str,
    weights: str = "auto",
    *,
    device: str | torch.device = "cpu",
    cache_dir: str | None = None,
    local_dirs: dict[str, str] | None = None,
    seed: int = 0,
) -> tuple[Any, str]:
    """Resolve and build one of :data:`COMPONENTS` -> ``(module, note)``; the note is safe to show users.

    ``weights``: ``"pretrained"``, ``"tiny"`` or ``"auto"`` (see ``models.weights``); ``local_dirs`` maps an
    :data:`OFFICIAL_FILES` key to a folder laid out like its repo. Whisper features are built tiny unless both
    the encoder and the statistics resolve."""
    if name not in COMPONENTS:
        raise ValueError(f"unknown Vevo1.5 component {name!r}; expected one of {sorted(COMPONENTS)}")
    from models.vevo import vocoder  # the shared Vocos vocoder (see above)
    from models.vevosing import chromagram, tokenizers, whisper_features

    if name == "chromagram":
        return chromagram.Chromagram(), "no weights (signal processing)"
    local_dirs = local_dirs or {}
    resolved = {key: resolve(OFFICIAL_FILES[key], weights, cache_dir=cache_dir, local_dir=local_dirs.get(key))
                for key in COMPONENTS[name]}
    if all(r.pretrained for r in resolved.values()):
        roots = {key: r.root for key, r in resolved.items()}
        note = next(iter(resolved.values())).note
        if name == "whisper_features":
            stats = roots["whisper_stats"] / WHISPER_STATS_FILE
            return whisper_features.load_whisper_features(roots["whisper"], stats, device=device), note
        if name == "vocoder":
            return vocoder.load_vocoder(roots["vocoder"], device=device), note
        coco_type = "content_style" if name == "contentstyle_tokenizer" else "style"
        return tokenizers.load_coco_tokenizer(roots[name], coco_type, device=device), note
    note = next(r.note for r in resolved.values() if not r.pretrained)
    if name == "whisper_features":
        return whisper_features.build_whisper_features(seed=seed, device=device), note
    if name == "vocoder":
        return vocoder.build_vocoder(seed=seed, device=device), note
    coco_type = "content_style" if name == "contentstyle_tokenizer" else "style"
    return tokenizers.build_coco_tokenizer(tokenizers.tiny_coco_config(coco_type), seed=seed, device=device), note
