"""Reading the official checkpoint layouts into our generators.

Layouts (see README.md in this folder for what was checked and how):

* NVIDIA BigVGAN (``nvidia/bigvgan_v2_24khz_100band_256x``): ``config.json`` (flat) and
  ``bigvgan_generator.pt`` = ``torch.save({"generator": state_dict})`` with weight-norm keys. NVIDIA's
  own loader falls back to plain ``weight`` keys (a generator saved after ``remove_weight_norm``), so
  we accept those too by converting them to ``weight_g``/``weight_v``.
* Amphion GAN vocoders (``amphion/hifigan_speech_bigdata`` -> ``hifigan_speech/``; NSF-HiFiGAN has no
  release, a local folder is laid out the same way): ``args.json`` plus accelerate state folders
  ``checkpoint/epoch-XXXX_step-XXXXXXX_loss-X.XXXXXX/``, the generator being accelerate's first model
  file (``pytorch_model.bin``, or ``model.safetensors`` with safe serialisation). Multi-GPU runs
  prefix every key with ``module.``. Older Amphion files are ``.pt`` dicts
  ``{"generator_state_dict": ...}``; Amphion's singing BigVGAN ships that way.

Everything is loaded with ``torch.load(weights_only=True)`` or safetensors (no pickled code), then
strictly: a missing, unexpected or mis-shaped key is an error that names the keys.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import torch
import torch.nn as nn

from models.vocoders.configs import VocoderConfig, parse_config, read_json
from models.vocoders.layers import weight_norm_prefixes

# Wrapper keys under which the official files keep the generator's state dict.
_WRAPPER_KEYS = ("generator", "generator_state_dict", "state_dict")
# Prefixes added by DistributedDataParallel (accelerate saves unwrap=False) and torch.compile.
_PREFIXES = ("module.", "_orig_mod.")
# Accelerate's name for the first prepared model, safetensors first (newer accelerate default).
_ACCELERATE_MODEL_FILES = ("model.safetensors", "pytorch_model.bin")
_MAX_LISTED_KEYS = 20


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be found, read, or does not fit the configured generator."""


# ---------------------------------------------------------------------------------------------
# Files -> state dict
# ---------------------------------------------------------------------------------------------


def strip_prefixes(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        changed = True
        while changed:
            changed = False
            for prefix in _PREFIXES:
                if key.startswith(prefix):
                    key, changed = key[len(prefix) :], True
        out[key] = value
    return out


def unwrap_state_dict(obj: object, source: str = "checkpoint") -> dict[str, torch.Tensor]:
    """Find the generator's tensors in a loaded file (bare state dict or one of the wrappers)."""
    if isinstance(obj, Mapping):
        for key in _WRAPPER_KEYS:
            inner = obj.get(key)
            if isinstance(inner, Mapping):
                obj = inner
                break
    if not isinstance(obj, Mapping) or not obj:
        raise CheckpointError(f"{source}: no state dict found (expected a dict of tensors or one under {_WRAPPER_KEYS})")
    bad = [k for k, v in obj.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(f"{source}: entries that are not tensors: {bad[:_MAX_LISTED_KEYS]}")
    return strip_prefixes(obj)


def load_state_dict_file(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a ``.safetensors`` / ``.pt`` / ``.bin`` file and return the generator state dict (on CPU)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint file not found: {path}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            obj: object = load_file(str(path), device="cpu")
        else:
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except CheckpointError:
        raise
    except Exception as exc:  # corrupt file, or a pickle that needs more than tensors
        raise CheckpointError(f"cannot read {path}: {exc}") from exc
    return unwrap_state_dict(obj, str(path))


# ---------------------------------------------------------------------------------------------
# State dict -> model
# ---------------------------------------------------------------------------------------------


def _norm_except_dim0(w: torch.Tensor) -> torch.Tensor:
    return w.flatten(1).norm(dim=1).view(-1, *([1] * (w.dim() - 1)))


def adapt_weight_norm_keys(model: nn.Module, state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Turn plain ``<conv>.weight`` entries into ``weight_g``/``weight_v`` where the model expects those.

    ``g = ||w||``, ``v = w`` reproduces ``w`` exactly up to float rounding (what NVIDIA's loader
    achieves by removing weight norm from the model instead).
    """
    sd = dict(state_dict)
    for prefix in weight_norm_prefixes(model):
        plain = prefix + "weight"
        if plain in sd and prefix + "weight_g" not in sd and prefix + "weight_v" not in sd:
            w = sd.pop(plain)
            sd[prefix + "weight_v"] = w
            sd[prefix + "weight_g"] = _norm_except_dim0(w.float()).to(w.dtype)
    return sd


def _listing(title: str, keys: list[str]) -> str:
    shown = ", ".join(keys[:_MAX_LISTED_KEYS])
    more = f" ... (+{len(keys) - _MAX_LISTED_KEYS} more)" if len(keys) > _MAX_LISTED_KEYS else ""
    return f"\n  {title} ({len(keys)}): {shown}{more}"


def load_exact(model: nn.Module, sd: Mapping[str, torch.Tensor], source: str = "checkpoint", *,
               error: type[Exception] = CheckpointError, assign: bool = False) -> None:
    """Load `sd` requiring exactly the model's keys and shapes; otherwise raise `error` naming the
    missing, unexpected and mis-shaped keys. Every model family's strict loading ends here."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(sd))
    unexpected = sorted(set(sd) - set(expected))
    mismatched = sorted(
        f"{k} {tuple(sd[k].shape)} vs expected {tuple(expected[k].shape)}"
        for k in set(sd) & set(expected)
        if tuple(sd[k].shape) != tuple(expected[k].shape)
    )
    if missing or unexpected or mismatched:
        msg = f"{source} does not match the {type(model).__name__} built from its config:"
        if missing:
            msg += _listing("missing keys", missing)
        if unexpected:
            msg += _listing("unexpected keys", unexpected)
        if mismatched:
            msg += _listing("shape mismatches", mismatched)
        raise error(msg)
    model.load_state_dict({k: v.to(expected[k].dtype) for k, v in sd.items()}, strict=True, assign=assign)


def load_generator_state(model: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str = "checkpoint") -> None:
    """Strict load with a readable error (missing / unexpected / mis-shaped keys)."""
    load_exact(model, adapt_weight_norm_keys(model, strip_prefixes(state_dict)), source)


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
