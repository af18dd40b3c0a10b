"""Building DualCodec and loading the official checkpoints into it.

:func:`build_dualcodec` (config + state dict, None: seeded random weights), :func:`load_dualcodec`
(a folder laid out like ``amphion/dualcodec``, or the file), :func:`build_tiny_dualcodec` (the tiny
profile) and :func:`load_dualcodec_model` (through ``models.weights.resolve``, with the matching
:class:`~models.dualcodec.semantic.SemanticNormPool`) give a module in eval mode with weight norm
folded. Loading is strict: :class:`CheckpointError` names the offending keys and says when a file
looks like the other official model.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from models.blocks.snake_conv import snake1d_near_one
from models.core.checkpoints import CheckpointError, load_generator_state, load_state_dict_file
from models.core.random_init import init_random_weights
from models.core.weight_norm import fold_weight_norm
from models.dualcodec.configs import SEMANTIC_DIM, DualCodecConfig, official_config, tiny_config
from models.dualcodec.model import DualCodec
from models.dualcodec.official import CHECKPOINT_FILES, OFFICIAL, OFFICIAL_REPO_ID, STATS_FILE
from models.dualcodec.semantic import SemanticNormPool, load_semantic_stats, tiny_semantic_stats

__all__ = [
    "CheckpointError",
    "LoadedDualCodec",
    "build_dualcodec",
    "build_tiny_dualcodec",
    "load_dualcodec",
    "load_dualcodec_model",
    "load_dualcodec_stats",
]

_CODEBOOK_KEY = "dac.quantizer.quantizers.{}.codebook.weight"


def _official_hint(config: DualCodecConfig, state_dict: Mapping[str, torch.Tensor]) -> str:
    """Names the official model whose acoustic RVQ (stage count, codebook size) the file has, when the
    config is not that model's."""
    stages = sum(1 for k in state_dict if k.startswith("dac.quantizer.quantizers.") and k.endswith(".codebook.weight"))
    first = state_dict.get(_CODEBOOK_KEY.format(0))
    for model_id in CHECKPOINT_FILES:
        official = official_config(model_id)
        if (first is not None and stages == official.n_codebooks and first.shape[0] == official.codebook_size
                and config != official):
            return f"\n  (the file looks like the official {model_id} checkpoint, {CHECKPOINT_FILES[model_id]})"
    return ""


def build_dualcodec(
    config: DualCodecConfig,
    state_dict: Mapping[str, torch.Tensor] | None = None,
    *,
    seed: int = 0,
    device: str | torch.device = "cpu",
    source: str = "DualCodec state dict",
) -> DualCodec:
    """A DualCodec in eval mode, weight norm folded, no gradients: ``state_dict`` loaded strictly, or
    seeded random weights when it is None."""
    model = DualCodec(config)
    if state_dict is None:
        init_random_weights(model, seed, rules=(snake1d_near_one,))
    else:
        try:
            load_generator_state(model, state_dict, source=source)
        except CheckpointError as exc:
            raise CheckpointError(f"{exc}{_official_hint(config, state_dict)}") from None
    model.eval().requires_grad_(False)
    return fold_weight_norm(model.to(device))  # type: ignore[return-value]


def build_tiny_dualcodec(model_id: str, *, seed: int = 0, device: str | torch.device = "cpu",
                         semantic_dim: int = SEMANTIC_DIM) -> DualCodec:
    """The tiny profile of ``model_id`` (official I/O contract, narrow layers, seeded random weights)."""
    return build_dualcodec(tiny_config(model_id, semantic_dim), seed=seed, device=device)


def _checkpoint_path(root: Path, model_id: str) -> Path:
    if root.is_file():
        return root
    path = root / CHECKPOINT_FILES[model_id]
    if not path.is_file():
        raise CheckpointError(
            f"{root} is not laid out like {OFFICIAL_REPO_ID}: {CHECKPOINT_FILES[model_id]} is missing"
        )
    return path


def load_dualcodec(
    root: str | Path,
    model_id: str,
    config: DualCodecConfig | None = None,
    *,
    device: str | torch.device = "cpu",
) -> DualCodec:
    """``model_id``'s checkpoint from a folder laid out like ``amphion/dualcodec`` (or the file given
    directly). ``config`` None: the official configuration of ``model_id``."""
    config = official_config(model_id) if config is None else config
    path = _checkpoint_path(Path(root), model_id)
    return build_dualcodec(config, load_state_dict_file(path), device=device, source=str(path))


def load_dualcodec_stats(root: str | Path) -> tuple[torch.Tensor, torch.Tensor]:
    """``(mean, var)`` from ``<root>/w2vbert2_mean_var_stats_emilia.pt`` (or the file given directly)."""
    root = Path(root)
    return load_semantic_stats(root if root.is_file() else root / STATS_FILE)


@dataclass(frozen=True)
class LoadedDualCodec:
    codec: DualCodec
    semantic_norm_pool: SemanticNormPool
    """Raw w2v-bert ``hidden_states[17]`` -> the codec's ``semantic_repr`` (DualCodec's stats, pooling)."""
    pretrained: bool
    note: str
    """User-safe: where the weights come from, or why they are tiny."""

    @property
    def weights_kind(self) -> str:
        return "pretrained" if self.pretrained else "tiny"


def load_dualcodec_model(
    model_id: str,
    weights: str = "auto",
    *,
    device: str | torch.device = "cpu",
    cache_dir: str | None = None,
    local_dir: str | None = None,
    seed: int = 0,
    tiny_semantic_dim: int = SEMANTIC_DIM,
) -> LoadedDualCodec:
    """``model_id`` (``"12hz_v1"`` / ``"25hz_v1"``) through ``models.weights.resolve``: ``"pretrained"``
    (official files or WeightsUnavailable), ``"tiny"`` or ``"auto"`` (official if present, else tiny).
    ``tiny_semantic_dim``: the feature width of the w2v-bert a tiny codec is paired with."""
    from models.weights import resolve

    if model_id not in OFFICIAL:
        raise ValueError(f"unknown DualCodec model {model_id!r}; expected one of {', '.join(OFFICIAL)}")
    resolved = resolve(OFFICIAL[model_id], weights, cache_dir=cache_dir, local_dir=local_dir)
    if resolved.pretrained:
        codec = load_dualcodec(resolved.file(CHECKPOINT_FILES[model_id]), model_id, device=device)
        mean, var = load_dualcodec_stats(resolved.file(STATS_FILE))
    else:
        codec = build_tiny_dualcodec(model_id, seed=seed, device=device, semantic_dim=tiny_semantic_dim)
        mean, var = tiny_semantic_stats(seed, tiny_semantic_dim)
    norm_pool = SemanticNormPool(mean, var, codec.semantic_downsample_factor).to(device)
    return LoadedDualCodec(codec, norm_pool, resolved.pretrained, resolved.note)
