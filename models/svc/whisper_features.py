"""Whisper encoder features for the SVC recipes: the last encoder layer after its final LayerNorm,
50 frames per second, of each source segment (Whisper-medium: 1024-d).

Contract:

* :class:`SVCWhisper` ``(wavs16k, durations) -> list of [frames, D]`` features, each segment computed
  ALONE (served requests); :meth:`SVCWhisper.batch_like_reference` reproduces the reference's batched
  call, whose log-mel floor depends on the other items of the batch (parity only).
* :func:`load_svc_whisper` reads openai-whisper's ``medium.pt`` (what Amphion loads; encoder keys
  mapped to transformers' names by :func:`openai_to_transformers_encoder`), an openai-named
  ``.safetensors`` with its ``dims``, or a folder laid out like ``openai/whisper-medium`` (the same
  weights, already used by VevoSing). :func:`build_svc_whisper` makes a tiny seeded one.

The encoder and the log-mel are VevoSing's (:mod:`models.vevosing.whisper_features`: transformers'
``WhisperEncoder``, Whisper's log-mel with a per-window floor); this module adds the reference's
30 s ``pad_or_trim``, the valid-frame cut and the openai checkpoint names. Reference notes and our
choices: ``models/svc/README.md`` ("Front ends").
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from models.core.checkpoints import CheckpointError, load_exact
from models.svc.frontends import valid_content_frames
from models.vevosing.whisper_features import (
    LOG_FLOOR_RANGE,
    SAMPLE_RATE,
    WINDOW_SAMPLES,
    WhisperFeatures,
    load_whisper_features,
    tiny_whisper_config,
    whisper_log_mel,
)

__all__ = [
    "FRAME_SECONDS",
    "OFFICIAL_WHISPER_DIMS",
    "OFFICIAL_WHISPER_FILE",
    "SAMPLE_RATE",
    "SVCWhisper",
    "TINY_WHISPER_DIM",
    "batch_floor",
    "build_svc_whisper",
    "load_svc_whisper",
    "openai_to_transformers_encoder",
    "pad_or_trim",
    "whisper_config_from_dims",
]

#: What Amphion's preprocess loads (``pretrained/whisper/medium.pt``, openai-whisper's download).
OFFICIAL_WHISPER_FILE = "medium.pt"
#: openai-whisper's ``ModelDimensions`` of ``medium`` (the audio half is what the encoder needs).
OFFICIAL_WHISPER_DIMS: dict[str, int] = {
    "n_mels": 80, "n_audio_ctx": 1500, "n_audio_state": 1024, "n_audio_head": 16, "n_audio_layer": 24,
    "n_vocab": 51865, "n_text_ctx": 448, "n_text_state": 1024, "n_text_head": 16, "n_text_layer": 24,
}
FRAME_SECONDS = 0.02  # one encoder frame: 10 ms mel hop x the stride-2 conv
#: Width of the tiny profile's encoder (the tiny ConditionEncoder's ``whisper_dim``).
TINY_WHISPER_DIM = 32


# ---------------------------------------------------------------------------------------------
# openai-whisper checkpoint -> transformers' WhisperEncoder
# ---------------------------------------------------------------------------------------------


def whisper_config_from_dims(dims: Mapping[str, Any]):
    """A transformers ``WhisperConfig`` whose encoder has openai-whisper's ``dims`` (MLP 4x wide, as openai's)."""
    from transformers import WhisperConfig

    try:
        state, heads = int(dims["n_audio_state"]), int(dims["n_audio_head"])
        return WhisperConfig(
            num_mel_bins=int(dims["n_mels"]), d_model=state, encoder_layers=int(dims["n_audio_layer"]),
            encoder_attention_heads=heads, encoder_ffn_dim=4 * state, max_source_positions=int(dims["n_audio_ctx"]),
            # The decoder is never built here; keep its part small and inside a tiny vocabulary.
            decoder_layers=1, decoder_attention_heads=heads, decoder_ffn_dim=4 * state, vocab_size=64,
            max_target_positions=8, pad_token_id=0, bos_token_id=1, eos_token_id=2, decoder_start_token_id=1,
            dropout=0.0, attention_dropout=0.0, activation_dropout=0.0,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"Whisper dims are incomplete or malformed ({exc}): {dict(dims)}") from exc


# openai names inside a block -> transformers' names inside ``layers.N``.
_BLOCK_NAMES = {
    "attn.query": "self_attn.q_proj",
    "attn.key": "self_attn.k_proj",
    "attn.value": "self_attn.v_proj",
    "attn.out": "self_attn.out_proj",
    "attn_ln": "self_attn_layer_norm",
    "mlp.0": "fc1",
    "mlp.2": "fc2",
    "mlp_ln": "final_layer_norm",
}
_TOP_NAMES = {
    "conv1": "conv1",
    "conv2": "conv2",
    "ln_post": "layer_norm",
}
_BLOCK_KEY = re.compile(r"^blocks\.(\d+)\.(.+)\.(weight|bias)$")
_TOP_KEY = re.compile(r"^(conv1|conv2|ln_post)\.(weight|bias)$")


def openai_to_transformers_encoder(state_dict: Mapping[str, torch.Tensor],
                                   source: str = "checkpoint") -> dict[str, torch.Tensor]:
    """openai-whisper's ``encoder.*`` entries under transformers' ``WhisperEncoder`` names
    (``encoder.blocks.N.attn.query`` -> ``layers.N.self_attn.q_proj``, ``positional_embedding`` ->
    ``embed_positions.weight``, ``ln_post`` -> ``layer_norm``, ...). ``decoder.*`` is dropped; an
    encoder key that is not recognised is an error (a strict load would otherwise hide it)."""
    out: dict[str, torch.Tensor] = {}
    unknown = []
    for key, value in state_dict.items():
        if not key.startswith("encoder."):
            continue
        name = key[len("encoder."):]
        if name == "positional_embedding":
            out["embed_positions.weight"] = value
            continue
        top, block = _TOP_KEY.match(name), _BLOCK_KEY.match(name)
        if top:
            out[f"{_TOP_NAMES[top.group(1)]}.{top.group(2)}"] = value
        elif block and block.group(2) in _BLOCK_NAMES:
            out[f"layers.{block.group(1)}.{_BLOCK_NAMES[block.group(2)]}.{block.group(3)}"] = value
        else:
            unknown.append(key)
    if unknown:
        raise CheckpointError(f"{source}: Whisper encoder keys not understood: {unknown[:20]}")
    if not out:
        raise CheckpointError(f"{source}: no Whisper encoder weights (keys 'encoder.*')")
    return out


def _read_openai_file(path: Path, dims: Mapping[str, Any] | None) -> tuple[dict, dict[str, torch.Tensor]]:
    """(dims, state dict) of openai's ``{"dims", "model_state_dict"}`` pickle or of a safetensors file."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        if dims is None:
            raise CheckpointError(f"{path}: a safetensors Whisper needs its dims (openai's ModelDimensions)")
        return dict(dims), load_file(str(path), device="cpu")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:  # corrupt, or a pickle holding more than plain data and tensors
        raise CheckpointError(f"cannot read {path}: {exc}") from exc
    if not isinstance(obj, Mapping) or not isinstance(obj.get("model_state_dict"), Mapping):
        raise CheckpointError(f"{path}: expected openai-whisper's {{'dims', 'model_state_dict'}}")
    file_dims = obj.get("dims")
    if dims is None and not isinstance(file_dims, Mapping):
        raise CheckpointError(f"{path}: no 'dims' in the file")
    return dict(dims if dims is not None else file_dims), dict(obj["model_state_dict"])


# ---------------------------------------------------------------------------------------------
# Log-mel and the features
# ---------------------------------------------------------------------------------------------


def pad_or_trim(wavs: torch.Tensor) -> torch.Tensor:
    """``[B, N]`` -> ``[B, 480000]``: zero-padded, or cut, to one 30 s window (openai's ``pad_or_trim``)."""
    if wavs.shape[-1] >= WINDOW_SAMPLES:
        return wavs[..., :WINDOW_SAMPLES]
    return torch.nn.functional.pad(wavs, (0, WINDOW_SAMPLES - wavs.shape[-1]))


def batch_floor(log_mel: torch.Tensor) -> torch.Tensor:
    """Per-window-floored Whisper log-mels ``[B, n_mels, 3000]`` -> the floor openai's
    ``log_mel_spectrogram`` applies to a batch: 8 log10 units (2 after its ``(x + 4) / 4`` scaling)
    below the maximum of the WHOLE batch. Raising each window's floor to that common one gives the
    same values (each window's own floor is at or below it), up to a last-bit rounding."""
    return torch.maximum(log_mel, log_mel.amax() - LOG_FLOOR_RANGE / 4)


class SVCWhisper(nn.Module):
    """16 kHz segments -> Whisper encoder features (raw, 50 Hz) of their valid frames."""

    def __init__(self, features: WhisperFeatures) -> None:
        super().__init__()
        if features.normalised:
            raise ValueError("the SVC recipes use raw encoder features: build WhisperFeatures without stats")
        self.features = features
        self.dim = features.dim
        self.sample_rate = SAMPLE_RATE

    @property
    def device(self) -> torch.device:
        return self.features.device

    @staticmethod
    def num_frames(duration: float) -> int:
        """Valid frames of a segment of ``duration`` seconds (at most the window's 1500)."""
        return min(valid_content_frames(duration, FRAME_SECONDS), WINDOW_SAMPLES // SAMPLE_RATE * 50)

    def _encode(self, windows: torch.Tensor, *, shared_floor: bool) -> torch.Tensor:
        mel = whisper_log_mel(windows.to(self.device), self.features.n_mels)
        if shared_floor:
            mel = batch_floor(mel)
        encoder = self.features.encoder
        return encoder(input_features=mel.to(encoder.conv1.weight.dtype)).last_hidden_state.float()

    @staticmethod
    def _durations(durations: Sequence[float] | None, lengths: Sequence[int]) -> list[float]:
        if durations is None:
            return [n / SAMPLE_RATE for n in lengths]
        durations = [float(d) for d in durations]
        if len(durations) != len(lengths):
            raise ValueError(f"need one duration per segment ({len(lengths)}), got {len(durations)}")
        return durations

    @torch.inference_mode()
    def forward(self, wavs16k: Sequence[torch.Tensor | np.ndarray],
                durations: Sequence[float] | None = None) -> list[torch.Tensor]:
        """Each 16 kHz segment (1-D, cut to 30 s) computed alone -> its features ``[frames, D]``.
        ``durations``: each segment's length in seconds (the reference takes the 24 kHz segment's);
        None: from the 16 kHz sample counts. All segments go through the encoder as one batch (each
        a full 30 s window): callers bound how many they pass at once."""
        items = [torch.as_tensor(np.asarray(w) if not isinstance(w, torch.Tensor) else w).float().reshape(-1)
                 for w in wavs16k]
        durations = self._durations(durations, [w.numel() for w in items])
        windows = torch.stack([pad_or_trim(w) for w in items])
        encoded = self._encode(windows, shared_floor=False)
        return [encoded[i, : self.num_frames(d)] for i, d in enumerate(durations)]

    @torch.inference_mode()
    def batch_like_reference(self, wavs16k: torch.Tensor, durations: Sequence[float] | None = None,
                             lengths: Sequence[int] | None = None) -> list[torch.Tensor]:
        """The reference's call on a zero-padded batch ``[B, N]``: one log-mel floor for the whole
        batch, so each item depends on the others. For parity checks only."""
        if wavs16k.dim() != 2:
            raise ValueError(f"expected a batch [B, N], got {tuple(wavs16k.shape)}")
        lengths = [wavs16k.shape[1]] * wavs16k.shape[0] if lengths is None else [int(n) for n in lengths]
        durations = self._durations(durations, lengths)
        encoded = self._encode(pad_or_trim(wavs16k.float()), shared_floor=True)
        return [encoded[i, : self.num_frames(d)] for i, d in enumerate(durations)]


# ---------------------------------------------------------------------------------------------
# Building and loading
# ---------------------------------------------------------------------------------------------


def build_svc_whisper(config=None, *, seed: int = 0, device: str | torch.device = "cpu") -> SVCWhisper:
    """A seeded random encoder from a ``WhisperConfig`` (None: VevoSing's tiny config at width
    :data:`TINY_WHISPER_DIM`)."""
    from models.vevosing.whisper_features import build_whisper_features

    config = tiny_whisper_config(TINY_WHISPER_DIM) if config is None else config
    return SVCWhisper(build_whisper_features(config, normalised=False, seed=seed, device=device))


def load_svc_whisper(path: str | Path, *, dims: Mapping[str, Any] | None = None,
                     device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32) -> SVCWhisper:
    """The encoder from openai-whisper's ``medium.pt`` (or a folder holding it), an openai-named
    ``.safetensors`` file with ``dims``, or a folder laid out like ``openai/whisper-medium``
    (``config.json`` + ``model.safetensors``, VevoSing's loader). Strict: every encoder weight."""
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    path = Path(path)
    if path.is_dir():
        if (path / "config.json").is_file() and (path / "model.safetensors").is_file():
            return SVCWhisper(load_whisper_features(path, None, device=device, dtype=dtype))
        path = path / OFFICIAL_WHISPER_FILE
    if not path.is_file():
        raise CheckpointError(f"Whisper checkpoint not found: {path}")
    file_dims, state = _read_openai_file(path, dims)
    config = whisper_config_from_dims(file_dims)
    with torch.device("meta"):
        encoder = WhisperEncoder(config)
    weights = {k: v.float() for k, v in openai_to_transformers_encoder(state, str(path)).items()}
    load_exact(encoder, weights, str(path), assign=True)
    features = WhisperFeatures(encoder.float().eval(), None, None)
    features.encoder.to(dtype=dtype)
    return SVCWhisper(features.to(device))
