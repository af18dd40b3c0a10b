"""Building MaskGCT's codecs and loading their official weights (``amphion/MaskGCT``).

``build_*``: a module from a config and a state dict (None: seeded random weights), in eval mode
with weight norm folded. ``load_*``: from a folder laid out like the official repository, or a
weights file. Loading is strict: :class:`CheckpointError` names missing, unexpected and
mis-shaped keys, and says when a file looks like another component's. The official files and
configurations are described in ``models/maskgct/README.md``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
import torch.nn as nn

from models.blocks.snake_conv import snake1d_near_one
from models.core.checkpoints import CheckpointError, load_generator_state, load_state_dict_file
from models.core.random_init import init_random_weights
from models.core.weight_norm import fold_weight_norm
from models.maskgct.acoustic_codec import AcousticCodec, CodecDecoder, CodecEncoder
from models.maskgct.configs import (
    AcousticCodecConfig,
    AcousticDecoderConfig,
    AcousticEncoderConfig,
    SemanticCodecConfig,
    official_acoustic_codec_config,
    official_semantic_codec_config,
    tiny_acoustic_codec_config,
    tiny_semantic_codec_config,
)
from models.maskgct.semantic_codec import SemanticCodec
from models.weights import HubFiles

__all__ = [
    "ACOUSTIC_DECODER_FILE",
    "ACOUSTIC_ENCODER_FILE",
    "OFFICIAL",
    "OFFICIAL_REPO_ID",
    "SEMANTIC_CODEC_FILE",
    "CheckpointError",
    "build_acoustic_codec",
    "build_codec_decoder",
    "build_codec_encoder",
    "build_semantic_codec",
    "load_acoustic_codec",
    "load_maskgct_codecs",
    "load_semantic_codec",
    "load_strict",
]

OFFICIAL_REPO_ID = "amphion/MaskGCT"
SEMANTIC_CODEC_FILE = "semantic_codec/model.safetensors"
ACOUSTIC_ENCODER_FILE = "acoustic_codec/model.safetensors"
ACOUSTIC_DECODER_FILE = "acoustic_codec/model_1.safetensors"

#: Model key -> the official files (for ``models.weights.resolve`` / ``download``). Only these
#: files are fetched: the repo also holds the T2S and S2A models (several GB).
OFFICIAL: dict[str, HubFiles] = {
    "maskgct_semantic_codec": HubFiles(repo_id=OFFICIAL_REPO_ID, patterns=(SEMANTIC_CODEC_FILE,)),
    "maskgct_acoustic_codec": HubFiles(
        repo_id=OFFICIAL_REPO_ID, patterns=(ACOUSTIC_ENCODER_FILE, ACOUSTIC_DECODER_FILE)
    ),
}

# A key prefix that only one of the modules has, to say which file was given by mistake.
_KEY_SIGNATURES = (
    ("quantizer.", "model.backbone.", ACOUSTIC_DECODER_FILE, "the acoustic codec decoder"),
    ("encoder.0.embed.", "decoder.0.embed.", SEMANTIC_CODEC_FILE, "the semantic codec"),
    ("block.0.weight_v", "block.1.block.", ACOUSTIC_ENCODER_FILE, "the acoustic codec encoder"),
)


def _signature_hint(model: nn.Module, state_dict: Mapping[str, torch.Tensor]) -> str:
    own = model.state_dict()
    for first, second, file_name, what in _KEY_SIGNATURES:
        in_file = any(k.startswith(first) for k in state_dict) and any(k.startswith(second) for k in state_dict)
        in_model = any(k.startswith(first) for k in own) and any(k.startswith(second) for k in own)
        if in_file and not in_model:
            return f"\n  (the keys look like {what}, official file {file_name})"
    return ""


def load_strict(model: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str) -> None:
    """Strict load with readable errors (missing / unexpected / mis-shaped keys), weight norm kept
    as ``weight_g`` / ``weight_v`` (plain ``weight`` entries converted)."""
    try:
        load_generator_state(model, state_dict, source=source)
    except CheckpointError as exc:
        raise CheckpointError(f"{exc}{_signature_hint(model, state_dict)}") from None


def _for_inference(model: nn.Module, device: str | torch.device) -> nn.Module:
    model.eval().requires_grad_(False)
    return fold_weight_norm(model.to(device))


def _ready(model: nn.Module, state_dict: Mapping[str, torch.Tensor] | None, seed: int, source: str,
           device: str | torch.device) -> nn.Module:
    if state_dict is None:
        # Tiny: the common draws and Snake alphas near 1; layer scales (1 / num_layers) and the ISTFT
        # window keep their built values.
        init_random_weights(model, seed, rules=(snake1d_near_one,))
    else:
        load_strict(model, state_dict, source)
    return _for_inference(model, device)


# ---------------------------------------------------------------------------------------------
# Builders: config + state dict (None: seeded random) -> module in eval mode, weight norm folded
# ---------------------------------------------------------------------------------------------


def build_semantic_codec(
    config: SemanticCodecConfig | None = None,
    state_dict: Mapping[str, torch.Tensor] | None = None,
    *,
    seed: int = 0,
    device: str | torch.device = "cpu",
    source: str = "semantic codec state dict",
) -> SemanticCodec:
    """RepCodec from ``config`` (None: the tiny config) and a state dict (None: seeded random)."""
    model = SemanticCodec(tiny_semantic_codec_config() if config is None else config)
    return _ready(model, state_dict, seed, source, device)  # type: ignore[return-value]


def build_codec_encoder(
    config: AcousticEncoderConfig,
    state_dict: Mapping[str, torch.Tensor] | None = None,
    *,
    seed: int = 0,
    device: str | torch.device = "cpu",
    source: str = "acoustic codec encoder state dict",
) -> CodecEncoder:
    return _ready(CodecEncoder(config), state_dict, seed, source, device)  # type: ignore[return-value]


def build_codec_decoder(
    config: AcousticDecoderConfig,
    state_dict: Mapping[str, torch.Tensor] | None = None,
    *,
    seed: int = 0,
    device: str | torch.device = "cpu",
    source: str = "acoustic codec decoder state dict",
) -> CodecDecoder:
    return _ready(CodecDecoder(config), state_dict, seed, source, device)  # type: ignore[return-value]


def build_acoustic_codec(
    config: AcousticCodecConfig | None = None,
    encoder_state: Mapping[str, torch.Tensor] | None = None,
    decoder_state: Mapping[str, torch.Tensor] | None = None,
    *,
    seed: int = 0,
    device: str | torch.device = "cpu",
    sources: tuple[str, str] = ("acoustic codec encoder state dict", "acoustic codec decoder state dict"),
) -> AcousticCodec:
    """Encoder + decoder from ``config`` (None: tiny) and their two state dicts (given together, or
    neither for seeded random weights)."""
    if (encoder_state is None) != (decoder_state is None):
        raise ValueError("give both the encoder and the decoder state dict, or neither")
    config = tiny_acoustic_codec_config() if config is None else config
    if encoder_state is None:
        return _ready(AcousticCodec.from_config(config), None, seed, "", device)  # type: ignore[return-value]
    encoder = build_codec_encoder(config.encoder, encoder_state, device=device, source=sources[0])
    decoder = build_codec_decoder(config.decoder, decoder_state, device=device, source=sources[1])
    return AcousticCodec(encoder, decoder)


# ---------------------------------------------------------------------------------------------
# Official layout: a folder like the amphion/MaskGCT repo
# ---------------------------------------------------------------------------------------------


def _official_file(root: Path, rel: str) -> Path:
    path = root / rel
    if not path.is_file():
        raise CheckpointError(f"{root} is not laid out like {OFFICIAL_REPO_ID}: {rel} is missing")
    return path


def load_semantic_codec(
    root: str | Path, config: SemanticCodecConfig | None = None, *, device: str | torch.device = "cpu"
) -> SemanticCodec:
    """RepCodec from ``<root>/semantic_codec/model.safetensors`` (``root`` laid out like the official
    repo) or from a weights file given directly. ``config`` None: the official configuration."""
    root = Path(root)
    path = root if root.is_file() else _official_file(root, SEMANTIC_CODEC_FILE)
    return build_semantic_codec(
        official_semantic_codec_config() if config is None else config,
        load_state_dict_file(path), device=device, source=str(path),
    )


def load_acoustic_codec(
    root: str | Path, config: AcousticCodecConfig | None = None, *, device: str | torch.device = "cpu"
) -> AcousticCodec:
    """Encoder (``acoustic_codec/model.safetensors``) + decoder (``acoustic_codec/model_1.safetensors``)
    from a folder laid out like the official repo. ``config`` None: the official configuration."""
    root = Path(root)
    enc_path = _official_file(root, ACOUSTIC_ENCODER_FILE)
    dec_path = _official_file(root, ACOUSTIC_DECODER_FILE)
    return build_acoustic_codec(
        official_acoustic_codec_config() if config is None else config,
        load_state_dict_file(enc_path), load_state_dict_file(dec_path),
        device=device, sources=(str(enc_path), str(dec_path)),
    )


def load_maskgct_codecs(
    weights: str = "auto",
    *,
    device: str | torch.device = "cpu",
    cache_dir: str | None = None,
    local_dir: str | None = None,
    seed: int = 0,
) -> tuple[SemanticCodec, AcousticCodec, str]:
    """Both codecs through ``models.weights.resolve``: ``"pretrained"`` (official files or
    WeightsUnavailable), ``"tiny"`` (tiny configs, seeded random weights) or ``"auto"`` (official files
    if already present, else tiny). Returns ``(semantic, acoustic, note)``; the note is user-safe."""
    from models.weights import resolve

    sem = resolve(OFFICIAL["maskgct_semantic_codec"], weights, cache_dir=cache_dir, local_dir=local_dir)
    aco = resolve(OFFICIAL["maskgct_acoustic_codec"], weights, cache_dir=cache_dir, local_dir=local_dir)
    if sem.pretrained and aco.pretrained:
        return load_semantic_codec(sem.root, device=device), load_acoustic_codec(aco.root, device=device), sem.note
    # Never mix a tiny half with an official half: the token spaces would not match.
    note = sem.note if not sem.pretrained else aco.note
    return build_semantic_codec(seed=seed, device=device), build_acoustic_codec(seed=seed, device=device), note
