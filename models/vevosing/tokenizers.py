"""Vevo1.5's Coco tokenizers: content-style (Whisper + chromagram, 12.5 Hz) and prosody (chromagram, 6.25 Hz).

:meth:`CocoTokenizer.tokenize` runs the reference's quantizer-only ``quantize`` (input layers,
strided downsampling, Vocos encoder, one factorized VQ stage) -> codes ``[B, T']`` and the quantized
features. ``official_coco_config`` holds the official configurations (written out from Amphion's
``models/svc/vevosing/config/*.json``), ``parse_coco_config`` reads one, ``build_coco_tokenizer`` makes a
seeded one and ``load_coco_tokenizer`` strictly loads the official files (the reconstruction side they
also hold is skipped, as the reference skips it). Details: ``models/vevosing/README.md``.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from models.blocks.quantizers import ResidualVQ
from models.blocks.vocos import VocosBackbone
from models.core.checkpoints import CheckpointError, load_generator_state, load_state_dict_file
from models.core.configs import ConfigError, read_config
from models.core.random_init import init_random_weights
from models.core.weight_norm import fold_weight_norm

__all__ = [
    "COCO_TYPES",
    "CONTENTSTYLE_TOKENIZER_FILE",
    "OFFICIAL_COCO_CONTENT_STYLE",
    "OFFICIAL_COCO_STYLE",
    "PROSODY_TOKENIZER_FILE",
    "CocoConfig",
    "CocoTokenizer",
    "build_coco_tokenizer",
    "load_coco_tokenizer",
    "official_coco_config",
    "parse_coco_config",
    "tiny_coco_config",
]

CONTENTSTYLE_TOKENIZER_FILE = "tokenizer/contentstyle_fvq16384_12.5hz/model.safetensors"
PROSODY_TOKENIZER_FILE = "tokenizer/prosody_fvq512_6.25hz/model.safetensors"
COCO_TYPES = ("content_style", "content", "style")
# Prefixes of the official files that belong to the reconstruction model (not built for tokenizing).
_RECONSTRUCTION_PREFIXES = ("decoder.", "whisper_output_layer.", "chromagram_output_layer.")

# models/svc/vevosing/config/ar_emilia101k_singnet7k.json, model.coco_content_style (= fm_*.json model.coco).
OFFICIAL_COCO_CONTENT_STYLE: dict[str, Any] = {
    "coco_type": "content_style",
    "downsample_rate": 4,
    "codebook_size": 16384,
    "hidden_size": 1024,
    "codebook_dim": 8,
    "encoder": {"vocos_dim": 384, "vocos_intermediate_dim": 2048, "vocos_num_layers": 12},
    "use_normed_whisper": True,
    "whisper_stats_path": "models/svc/vevosing/config/whisper_stats.pt",
    "whisper_dim": 1024,
    "chromagram_dim": 24,
}
# Same file, model.coco_style.
OFFICIAL_COCO_STYLE: dict[str, Any] = {
    "coco_type": "style",
    "downsample_rate": 8,
    "codebook_size": 512,
    "hidden_size": 1024,
    "codebook_dim": 8,
    "encoder": {"vocos_dim": 384, "vocos_intermediate_dim": 2048, "vocos_num_layers": 12},
    "chromagram_dim": 24,
}


@dataclass(frozen=True)
class CocoConfig:
    """One Coco tokenizer. Defaults are the reference constructor's where it has them."""

    coco_type: str
    vocos_dim: int
    vocos_intermediate_dim: int
    vocos_num_layers: int
    codebook_size: int = 8192
    hidden_size: int = 1024
    codebook_dim: int = 8
    num_quantizers: int = 1
    downsample_rate: int = 1
    whisper_dim: int | None = None
    chromagram_dim: int | None = None
    use_normed_whisper: bool = False

    def __post_init__(self) -> None:
        if self.coco_type not in COCO_TYPES:
            raise ConfigError(f"coco_type must be one of {COCO_TYPES}, got {self.coco_type!r}")
        for name in ("vocos_dim", "vocos_intermediate_dim", "vocos_num_layers", "codebook_size", "hidden_size",
                     "codebook_dim", "num_quantizers", "downsample_rate"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"coco {name} must be a positive integer, got {value!r}")
        if self.downsample_rate & (self.downsample_rate - 1):
            raise ConfigError(f"coco downsample_rate must be a power of 2, got {self.downsample_rate}")
        if self.uses_whisper and not self.whisper_dim:
            raise ConfigError(f"coco {self.coco_type}: 'whisper_dim' is required")
        if self.uses_chromagram and not self.chromagram_dim:
            raise ConfigError(f"coco {self.coco_type}: 'chromagram_dim' is required")

    @property
    def uses_whisper(self) -> bool:
        return self.coco_type in ("content_style", "content")

    @property
    def uses_chromagram(self) -> bool:
        return self.coco_type in ("content_style", "style")

    @property
    def num_downsamples(self) -> int:
        return int(math.log2(self.downsample_rate))

    def num_codes(self, frames: int) -> int:
        """Codes for ``frames`` 50 Hz input frames (each stride-2 conv gives ``ceil(T / 2)``)."""
        for _ in range(self.num_downsamples):
            frames = (frames + 1) // 2
        return frames


def _int(d: dict, key: str, default: Any, where: str) -> Any:
    value = d.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or float(value) != int(value):
        raise ConfigError(f"{where}: {key!r} must be an integer, got {value!r}")
    return int(value)


def parse_coco_config(raw: dict) -> CocoConfig:
    """A Coco block (``model.coco``, ``model.coco_content_style`` or ``model.coco_style``) as a dict."""
    where = "coco config"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a JSON object, got {type(raw).__name__}")
    encoder = raw.get("encoder")
    if not isinstance(encoder, dict):
        raise ConfigError(f"{where}: missing the 'encoder' object (vocos_dim, vocos_intermediate_dim, vocos_num_layers)")
    quantizer_type = raw.get("quantizer_type", "fvq")
    if quantizer_type != "fvq":
        raise ConfigError(f"{where}: quantizer_type {quantizer_type!r} is not supported (Vevo1.5 uses 'fvq')")
    enc = {k: _int(encoder, k, None, f"{where} encoder") for k in ("vocos_dim", "vocos_intermediate_dim",
                                                                    "vocos_num_layers")}
    missing = [k for k, v in enc.items() if v is None]
    if missing:
        raise ConfigError(f"{where} encoder: missing required keys {missing}")
    normed = raw.get("use_normed_whisper", False)
    if not isinstance(normed, bool):
        raise ConfigError(f"{where}: 'use_normed_whisper' must be true or false, got {normed!r}")
    return CocoConfig(
        coco_type=str(raw.get("coco_type", "content_style")),
        codebook_size=_int(raw, "codebook_size", 8192, where),
        hidden_size=_int(raw, "hidden_size", 1024, where),
        codebook_dim=_int(raw, "codebook_dim", 8, where),
        num_quantizers=_int(raw, "num_quantizers", 1, where),
        downsample_rate=_int(raw, "downsample_rate", 1, where),
        whisper_dim=_int(raw, "whisper_dim", None, where),
        chromagram_dim=_int(raw, "chromagram_dim", None, where),
        use_normed_whisper=normed,
        **enc,
    )


def official_coco_config(coco_type: str) -> CocoConfig:
    """``"content_style"`` (12.5 Hz, 16384 codes) or ``"style"`` (prosody, 6.25 Hz, 512 codes)."""
    blocks = {"content_style": OFFICIAL_COCO_CONTENT_STYLE, "style": OFFICIAL_COCO_STYLE}
    if coco_type not in blocks:
        raise ValueError(f"no official Coco tokenizer of type {coco_type!r} (have {sorted(blocks)})")
    return parse_coco_config(copy.deepcopy(blocks[coco_type]))


def tiny_coco_config(coco_type: str, whisper_dim: int = 32) -> CocoConfig:
    """The official token spaces, rates and chromagram width; a 2-layer width-16 encoder, hidden 32."""
    official = official_coco_config(coco_type)
    return CocoConfig(
        coco_type=coco_type, vocos_dim=16, vocos_intermediate_dim=32, vocos_num_layers=2,
        codebook_size=official.codebook_size, hidden_size=32, codebook_dim=official.codebook_dim,
        downsample_rate=official.downsample_rate, chromagram_dim=official.chromagram_dim,
        whisper_dim=whisper_dim if official.uses_whisper else None, use_normed_whisper=official.use_normed_whisper,
    )


class CocoTokenizer(nn.Module):
    """Quantizer-only Coco model: 50 Hz features -> codes at ``50 / downsample_rate`` Hz."""

    def __init__(self, config: CocoConfig) -> None:
        super().__init__()
        self.config = config
        h = config.hidden_size
        if config.uses_whisper:
            self.whisper_input_layer = nn.Linear(config.whisper_dim, h)  # type: ignore[arg-type]
        if config.uses_chromagram:
            self.chromagram_input_layer = nn.Linear(config.chromagram_dim, h)  # type: ignore[arg-type]
        if config.downsample_rate > 1:
            down: list[nn.Module] = []
            up: list[nn.Module] = []
            for _ in range(config.num_downsamples):
                down += [nn.Conv1d(h, h, kernel_size=3, stride=2, padding=1), nn.GELU()]
                up += [nn.ConvTranspose1d(h, h, kernel_size=4, stride=2, padding=1), nn.GELU()]
            self.downsample_layers = nn.Sequential(*down)
            self.upsample_layers = nn.Sequential(*up)  # kept for the checkpoint's keys; unused by quantize
        self.encoder = nn.Sequential(
            VocosBackbone(h, config.vocos_dim, config.vocos_intermediate_dim, config.vocos_num_layers),
            nn.Linear(config.vocos_dim, h),
        )
        self.quantizer = ResidualVQ(h, config.num_quantizers, config.codebook_size, config.codebook_dim,
                                    use_l2_normalize=True)

    def _embed(self, chromagram: torch.Tensor | None, whisper: torch.Tensor | None) -> torch.Tensor:
        c = self.config
        parts = []
        if c.uses_whisper:
            if whisper is None or whisper.dim() != 3 or whisper.shape[-1] != c.whisper_dim:
                raise ValueError(f"{c.coco_type} tokenizer needs Whisper features [B, T, {c.whisper_dim}]")
            parts.append(self.whisper_input_layer(whisper))
        if c.uses_chromagram:
            if chromagram is None or chromagram.dim() != 3 or chromagram.shape[-1] != c.chromagram_dim:
                raise ValueError(f"{c.coco_type} tokenizer needs a chromagram [B, T, {c.chromagram_dim}]")
            parts.append(self.chromagram_input_layer(chromagram))
        if len(parts) == 2 and parts[0].shape[:2] != parts[1].shape[:2]:
            raise ValueError(f"Whisper features {tuple(whisper.shape)} and chromagram {tuple(chromagram.shape)} "  # type: ignore[union-attr]
                             "must have the same batch and frame count")
        return parts[0] + parts[1] if len(parts) == 2 else parts[0]

    @torch.inference_mode()
    def tokenize(self, chromagram: torch.Tensor | None = None,
                 whisper: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``chromagram`` ``[B, T, 24]`` and/or (normalised) ``whisper`` ``[B, T, D]`` at 50 Hz ->
        ``(codes [B, T'] int64, quantized [B, T', hidden])`` with ``T' = config.num_codes(T)``.

        Right-padded batches: the stride-2 convs and k7 ConvNeXt kernels let padding reach the last few
        codes of a shorter item; the reference tokenizes one utterance per call."""
        weight = self.encoder[1].weight
        cast = {"device": weight.device, "dtype": weight.dtype}
        x = self._embed(None if chromagram is None else chromagram.to(**cast),
                        None if whisper is None else whisper.to(**cast))
        if self.config.downsample_rate > 1:
            x = self.downsample_layers(x.transpose(1, 2)).transpose(1, 2)
        z = self.encoder(x.transpose(1, 2)).transpose(1, 2)  # [B, hidden, T']
        quantized, codes = self.quantizer(z)
        if codes.shape[0] == 1:
            codes = codes[0]
        return codes, quantized.transpose(1, 2)


def build_coco_tokenizer(
    config: CocoConfig | None = None,
    state_dict: Mapping[str, torch.Tensor] | None = None,
    *,
    seed: int = 0,
    device: str | torch.device = "cpu",
    source: str = "coco tokenizer state dict",
) -> CocoTokenizer:
    """From ``config`` (None: the tiny content-style one) and a state dict (None: seeded random weights).
    The state dict must hold exactly the quantizer-only model's keys (see :func:`load_coco_tokenizer` for
    the official files)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = CocoTokenizer(tiny_coco_config("content_style") if config is None else config)
    if state_dict is None:
        init_random_weights(model, seed)
    else:
        load_generator_state(model, state_dict, source)
    model.eval().requires_grad_(False)
    return fold_weight_norm(model.to(device))  # type: ignore[return-value]


def load_coco_tokenizer(
    root: str | Path,
    coco_type: str,
    config: CocoConfig | str | Path | None = None,
    *,
    device: str | torch.device = "cpu",
) -> CocoTokenizer:
    """A Coco tokenizer from a folder laid out like ``amphion/Vevo1.5`` (``coco_type`` "content_style":
    :data:`CONTENTSTYLE_TOKENIZER_FILE`, "style": :data:`PROSODY_TOKENIZER_FILE`) or the weights file itself.
    ``config``: parsed, the path of a Vevo1.5 AR/FM config (its matching block is used), or None (official).
    The reconstruction keys of the official files are dropped; any other extra key is an error."""
    files = {"content_style": CONTENTSTYLE_TOKENIZER_FILE, "style": PROSODY_TOKENIZER_FILE}
    if coco_type not in files:
        raise ValueError(f"coco_type must be one of {sorted(files)}, got {coco_type!r}")
    root = Path(root)
    path = root if root.is_file() else root / files[coco_type]
    if not path.is_file():
        raise CheckpointError(f"{root} is not laid out like amphion/Vevo1.5: {files[coco_type]} is missing")
    if config is None:
        config = official_coco_config(coco_type)
    elif not isinstance(config, CocoConfig):
        config = parse_coco_config(_coco_block(read_config(config), coco_type))
    if config.coco_type != coco_type:
        raise ConfigError(f"the config describes a {config.coco_type!r} tokenizer, not {coco_type!r}")
    state = {k: v for k, v in load_state_dict_file(path).items() if not k.startswith(_RECONSTRUCTION_PREFIXES)}
    return build_coco_tokenizer(config, state, device=device, source=str(path))


def _coco_block(raw: dict, coco_type: str) -> dict:
    """The block of an AR/FM config file that describes the ``coco_type`` tokenizer."""
    model = raw.get("model") if isinstance(raw.get("model"), dict) else {}
    names = ("coco_content_style", "coco") if coco_type == "content_style" else ("coco_style",)
    for name in names:
        block = model.get(name)
        if isinstance(block, dict) and block.get("coco_type", "content_style") == coco_type:
            return block
    raise ConfigError(f"no Coco {coco_type!r} block (model.{' / model.'.join(names)}) in the config")
