"""Reading the official vocoder checkpoint layouts (see README.md in this folder for what was
checked and how): the config and generator file inside a folder laid out like each release.

Layouts: NVIDIA BigVGAN (flat ``config.json`` + ``bigvgan_generator.pt``) and Amphion experiment
folders (``args.json`` + accelerate state folders ``checkpoint/epoch-..._step-..._loss-.../``, or
older ``.pt`` files). Reading the files and strict loading are :mod:`models.core.checkpoints`.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from models.core.checkpoints import CheckpointError, load_state_dict_file
from models.core.configs import read_json
from models.vocoders.configs import VocoderConfig, parse_config

# Accelerate's name for the first prepared model, safetensors first (newer accelerate default).
_ACCELERATE_MODEL_FILES = ("model.safetensors", "pytorch_model.bin")


# ---------------------------------------------------------------------------------------------
# Official folder layouts
# ---------------------------------------------------------------------------------------------

_STEP = re.compile(r"step-(\d+)")
_EPOCH = re.compile(r"epoch-(\d+)")


def _progress_key(path: Path) -> tuple[int, int, str]:
    """Order checkpoints by training step (then epoch); names without a step sort first."""
    step = _STEP.search(path.name)
    epoch = _EPOCH.search(path.name)
    if step is None and epoch is None:
        digits = re.findall(r"\d+", path.stem)
        return (int(digits[-1]) if digits else -1, -1, path.name)
    return (int(step.group(1)) if step else -1, int(epoch.group(1)) if epoch else -1, path.name)


def find_amphion_weights(folder: Path) -> Path:
    """The generator file of an Amphion experiment folder (the one holding ``args.json``)."""
    ckpt_dir = folder / "checkpoint"
    if ckpt_dir.is_dir():
        for state_dir in sorted((p for p in ckpt_dir.iterdir() if p.is_dir()), key=_progress_key, reverse=True):
            for name in _ACCELERATE_MODEL_FILES:
                if (state_dir / name).is_file():
                    return state_dir / name
    # Older layout: .pt files {"generator_state_dict": ...}, possibly under checkpoints/ with a
    # "checkpoint" text file naming the latest one (Amphion's hifigan_ljspeech release).
    for pt_dir in (folder / "checkpoints", folder, ckpt_dir):
        pointer = pt_dir / "checkpoint"
        if pointer.is_file():
            named = pt_dir / pointer.read_text(encoding="utf-8").strip()
            if named.is_file():
                return named
        pts = sorted((p for p in pt_dir.glob("*.pt") if p.is_file()), key=_progress_key, reverse=True) if pt_dir.is_dir() else []
        if pts:
            return pts[0]
    raise CheckpointError(
        f"no generator weights under {folder}: expected checkpoint/<epoch-..._step-..._loss-...>/"
        f"{' or '.join(_ACCELERATE_MODEL_FILES)}, or a .pt file with 'generator_state_dict'"
    )


# Sub-folders in which the official repositories keep the Amphion experiment folder.
_AMPHION_SUBDIRS = {"hifigan": ("hifigan_speech",), "nsf_hifigan": (), "bigvgan": ("bigvgan_singing",)}


def locate_official_files(name: str, root: str | Path) -> tuple[Path, Path]:
    """``(config file, weights file)`` inside a folder laid out like the official repository."""
    root = Path(root)
    if name == "bigvgan" and (root / "config.json").is_file() and (root / "bigvgan_generator.pt").is_file():
        return root / "config.json", root / "bigvgan_generator.pt"
    for folder in [root / sub for sub in _AMPHION_SUBDIRS.get(name, ())] + [root]:
        if (folder / "args.json").is_file():
            return folder / "args.json", find_amphion_weights(folder)
    if name == "bigvgan":
        expected = "config.json + bigvgan_generator.pt (NVIDIA) or args.json + a checkpoint (Amphion)"
    else:
        subs = [f"{s}/" for s in _AMPHION_SUBDIRS.get(name, ())]
        expected = f"args.json + checkpoint/ (directly or under {' / '.join(subs)})" if subs else "args.json + checkpoint/"
    raise CheckpointError(f"{name}: {root} is not laid out like the official release: expected {expected}")


def load_official(name: str, root: str | Path) -> tuple[VocoderConfig, dict[str, torch.Tensor], str]:
    """Parse the config and read the generator weights of an official-layout folder.

    Returns ``(config, state_dict, description)``; the state dict is not yet loaded into a model
    (``build_vocoder`` does that strictly).
    """
    config_path, weights_path = locate_official_files(name, root)
    config = parse_config(name, read_json(config_path))
    state_dict = load_state_dict_file(weights_path)
    return config, state_dict, f"{weights_path} (config {config_path.name})"
