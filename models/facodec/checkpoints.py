"""Building FACodec's encoder and decoder and loading the official state dicts into them.

:func:`build_facodec_encoder` / :func:`build_facodec_decoder`: a module from the config and a state
dict (None: seeded random weights), in eval mode with weight norm folded. Loading is strict
(:class:`CheckpointError` names the keys, and says when the two files were swapped); the decoder
file's training-only heads are dropped first (:func:`drop_training_heads`). What is adapted and what
tiny weights look like: ``models/facodec/README.md``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
import torch.nn as nn

from models.blocks.alias_free import SnakeBeta
from models.core.checkpoints import CheckpointError, load_generator_state, load_state_dict_file
from models.core.random_init import Draws, init_random_weights
from models.core.weight_norm import fold_weight_norm
from models.facodec.configs import FACodecConfig, training_only_prefixes
from models.facodec.decoder import FACodecDecoder
from models.facodec.encoder import FACodecEncoder
from models.facodec.official import FACODEC_DECODER_FILE, FACODEC_ENCODER_FILE
from models.facodec.timbre import SelfAttention

__all__ = [
    "CheckpointError",
    "build_facodec_decoder",
    "build_facodec_encoder",
    "drop_training_heads",
]


def drop_training_heads(state_dict: Mapping[str, torch.Tensor], config: FACodecConfig) -> dict[str, torch.Tensor]:
    """The decoder state dict without the training-only predictor heads the config implies."""
    prefixes = training_only_prefixes(config.decoder)
    return {k: v for k, v in state_dict.items() if not k.startswith(prefixes)}


# A key prefix only one of the two files has, to say when they were swapped.
_FILE_SIGNATURES = (("quantizer.", FACODEC_DECODER_FILE), ("block.", FACODEC_ENCODER_FILE))


def _load_strict(model: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str) -> None:
    try:
        load_generator_state(model, state_dict, source=source)
    except CheckpointError as exc:
        own = model.state_dict()
        for prefix, file_name in _FILE_SIGNATURES:
            if any(k.startswith(prefix) for k in state_dict) and not any(k.startswith(prefix) for k in own):
                raise CheckpointError(f"{exc}\n  (the keys look like the official {file_name})") from None
        raise


def _self_attention(module: nn.Module, draws: Draws) -> bool:
    """The timbre encoder's fused attention input projection: uniform(+-1/sqrt(width))."""
    if not isinstance(module, SelfAttention):
        return False
    bound = 1.0 / math.sqrt(module.in_proj_weight.shape[1])
    draws.uniform_(module.in_proj_weight, bound)
    draws.uniform_(module.in_proj_bias, bound)
    return True


def _snake_beta(module: nn.Module, draws: Draws) -> bool:
    """SnakeBeta log-parameters: normal(0, 0.1)."""
    if not isinstance(module, SnakeBeta):
        return False
    draws.normal_(module.alpha, 0.0, 0.1)
    draws.normal_(module.beta, 0.0, 0.1)
    return True


def _film_gain_near_one(model: nn.Module) -> None:
    """The FiLM gain half of the decoder's ``timbre_linear.bias`` shifted by 1, as the reference
    initialises it."""
    if isinstance(model, FACodecDecoder):
        model.timbre_linear.bias[: model.config.width] += 1.0


#: Tiny builds: the common draws (:mod:`models.core.random_init`) plus these; buffers (filters,
#: sinusoid table) keep their computed values.
_TINY_RULES = (_self_attention, _snake_beta)


def _ready(model: nn.Module, state_dict: Mapping[str, torch.Tensor] | None, seed: int, source: str,
           device: str | torch.device) -> nn.Module:
    if state_dict is None:
        init_random_weights(model, seed, rules=_TINY_RULES, after=_film_gain_near_one)
    else:
        _load_strict(model, state_dict, source)
    model.eval().requires_grad_(False)
    return fold_weight_norm(model.to(device))


def build_facodec_encoder(
    config: FACodecConfig,
    state_dict: Mapping[str, torch.Tensor] | None = None,
    *,
    seed: int = 0,
    device: str | torch.device = "cpu",
    source: str = "FACodec encoder state dict",
) -> FACodecEncoder:
    """Encoder from ``config`` and a state dict (None: seeded random), eval mode, weight norm folded."""
    return _ready(FACodecEncoder(config.encoder), state_dict, seed, source, device)  # type: ignore[return-value]


def build_facodec_decoder(
    config: FACodecConfig,
    state_dict: Mapping[str, torch.Tensor] | None = None,
    *,
    seed: int = 1,
    device: str | torch.device = "cpu",
    source: str = "FACodec decoder state dict",
) -> FACodecDecoder:
    """Decoder from ``config`` and a state dict (training-only heads skipped; None: seeded random)."""
    state = None if state_dict is None else drop_training_heads(state_dict, config)
    return _ready(FACodecDecoder(config), state, seed, source, device)  # type: ignore[return-value]
