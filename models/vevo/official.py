"""Where Vevo's official files live (:data:`OFFICIAL_FILES`, for ``models.weights.resolve`` /
``download``), one entry per component, and :func:`load_component`, which resolves and builds a
front-end component in one call. :data:`CONFIG_FILES` names the configurations in Amphion's code
repository (their values are written out in :mod:`models.vevo.configs` and
:mod:`models.vevo.fm_ar_configs`). The table, and the files that are not on the hub (HuBERT's
checkpoint, its statistics): ``models/vevo/README.md``.
"""

from __future__ import annotations

from typing import Any

import torch

from models.vevo.content_tokenizer import CONTENT_TOKENIZER_FILE
from models.vevo.contentstyle_tokenizer import CONTENTSTYLE_TOKENIZER_FILE, HUBERT_STATS_FILE
from models.vevo.hubert import HUBERT_FILE
from models.vevo.vocoder import VOCODER_WEIGHTS_FILE
from models.pinned import PinnedFile, PinnedSource
from models.weights import HubFiles, resolve

__all__ = [
    "AR_TTS_FILE",
    "AR_VC_FILE",
    "COMPONENTS",
    "CONFIG_DIR_ENV",
    "CONFIG_FILES",
    "FM_FILE",
    "HUBERT_DIR_ENV",
    "OFFICIAL_FILES",
    "VEVO_REPO",
    "load_component",
]

VEVO_REPO = "amphion/Vevo"
#: Folder holding a copy of Amphion's ``models/vc/vevo/config/`` (for the HuBERT statistics).
CONFIG_DIR_ENV = "AMPHION_VEVO_CONFIG_DIR"
#: Folder holding torchaudio's ``hubert_fairseq_large_ll60k.pth``.
HUBERT_DIR_ENV = "AMPHION_HUBERT_DIR"

AR_VC_FILE = "contentstyle_modeling/Vq32ToVq8192/model.safetensors"
AR_TTS_FILE = "contentstyle_modeling/PhoneToVq8192/model.safetensors"
FM_FILE = "acoustic_modeling/Vq8192ToMels/model.safetensors"

OFFICIAL_FILES: dict[str, HubFiles] = {
    "hubert": HubFiles(repo_id=None, patterns=(HUBERT_FILE,), local_dir_env=HUBERT_DIR_ENV),
    # Ships with Amphion's code (models/vc/vevo/config/), not on the hub: pinned and hash-checked.
    "hubert_stats": HubFiles(repo_id=None, patterns=(HUBERT_STATS_FILE,), local_dir_env=CONFIG_DIR_ENV,
                             pinned=PinnedSource("vevo_hubert_stats", {HUBERT_STATS_FILE: PinnedFile(
                                 "models/vc/vevo/config/hubert_large_l18_mean_std.npz",
                                 "84115dd2ad3a44526b8e75e173956e41805ba540704acd735f302889a83067b4", 8692)})),
    "content_tokenizer": HubFiles(repo_id=VEVO_REPO, patterns=(CONTENT_TOKENIZER_FILE,)),
    "contentstyle_tokenizer": HubFiles(repo_id=VEVO_REPO, patterns=(CONTENTSTYLE_TOKENIZER_FILE,)),
    "ar_vc": HubFiles(repo_id=VEVO_REPO, patterns=(AR_VC_FILE,)),
    "ar_tts": HubFiles(repo_id=VEVO_REPO, patterns=(AR_TTS_FILE,)),
    "fm": HubFiles(repo_id=VEVO_REPO, patterns=(FM_FILE,)),
    "vocoder": HubFiles(repo_id=VEVO_REPO, patterns=(VOCODER_WEIGHTS_FILE,)),
}

#: The configuration file of each checkpoint, in Amphion's code repo under ``models/vc/vevo/config/``.
CONFIG_FILES: dict[str, str] = {
    "content_tokenizer": "hubert_large_l18_c32.yaml",
    "contentstyle_tokenizer": "Vq8192ToMels.json",  # model.repcodec (the AR configs repeat it as output_repcodec)
    "ar_vc": "Vq32ToVq8192.json",
    "ar_tts": "PhoneToVq8192.json",
    "fm": "Vq8192ToMels.json",
    "vocoder": "Vocoder.json",  # also the mel front end (its preprocess block)
}

#: What :func:`load_component` builds, and the OFFICIAL_FILES entries each needs.
COMPONENTS: dict[str, tuple[str, ...]] = {
    "mel": (),
    "hubert": ("hubert",),
    "content_tokenizer": ("content_tokenizer",),
    "contentstyle_tokenizer": ("contentstyle_tokenizer", "hubert_stats"),
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

    ``weights``: ``"pretrained"`` (official files or ``WeightsUnavailable``), ``"tiny"`` (seeded random tiny
    model) or ``"auto"`` (official files if already on this machine, else tiny). ``local_dirs`` maps an
    :data:`OFFICIAL_FILES` key to a folder laid out like its repo. A component that needs two entries is
    built tiny unless both resolve (a tiny tokenizer must never be mixed with official statistics)."""
    if name not in COMPONENTS:
        raise ValueError(f"unknown Vevo component {name!r}; expected one of {sorted(COMPONENTS)}")
    from models.vevo import content_tokenizer, contentstyle_tokenizer, hubert, mel, vocoder

    if name == "mel":
        return mel.VevoMel(), "no weights (signal processing)"
    local_dirs = local_dirs or {}
    resolved = {key: resolve(OFFICIAL_FILES[key], weights, cache_dir=cache_dir, local_dir=local_dirs.get(key))
                for key in COMPONENTS[name]}
    notes = [r.note for r in resolved.values()]
    if all(r.pretrained for r in resolved.values()):
        roots = {key: r.root for key, r in resolved.items()}
        if name == "hubert":
            return hubert.load_hubert(roots["hubert"], device=device), notes[0]
        if name == "content_tokenizer":
            return content_tokenizer.load_content_tokenizer(roots["content_tokenizer"], device=device), notes[0]
        if name == "contentstyle_tokenizer":
            stats = roots["hubert_stats"] / HUBERT_STATS_FILE
            return contentstyle_tokenizer.load_contentstyle_tokenizer(roots["contentstyle_tokenizer"], stats,
                                                                      device=device), notes[0]
        return vocoder.load_vocoder(roots["vocoder"], device=device), notes[0]
    note = next(r.note for r in resolved.values() if not r.pretrained)
    builders = {
        "hubert": lambda: hubert.build_hubert(seed=seed, device=device),
        "content_tokenizer": lambda: content_tokenizer.build_content_tokenizer(seed=seed, device=device),
        "contentstyle_tokenizer": lambda: contentstyle_tokenizer.build_contentstyle_tokenizer(seed=seed, device=device),
        "vocoder": lambda: vocoder.build_vocoder(seed=seed, device=device),
    }
    return builders[name](), note
