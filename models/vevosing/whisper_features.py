"""Vevo1.5's Whisper-medium encoder features (50 Hz, 1024-d), normalised, for the content-style tokenizer.

:class:`WhisperFeatures` takes 16 kHz waveforms and their 50 Hz frame counts and returns the
reference's ``extract_whisper_features`` output: encoder features of each 30 s window, zeroed past
the frame count, cut or extended to it, normalised with ``whisper_stats.pt``. The encoder is
transformers' ``WhisperEncoder`` from ``openai/whisper-medium``. ``build_whisper_features`` makes a
tiny seeded one, ``load_whisper_features`` the official one. The reference's steps and our two
deliberate differences (per-window floor, inputs over 30 s): ``models/vevosing/README.md``.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from models.audio.mel import slaney_mel_filterbank
from models.core.checkpoints import CheckpointError, load_exact

__all__ = [
    "SAMPLE_RATE",
    "WHISPER_FILES",
    "WHISPER_REPO",
    "WHISPER_STATS_FILE",
    "WINDOW_SAMPLES",
    "WhisperFeatures",
    "build_whisper_features",
    "load_whisper_features",
    "load_whisper_stats",
    "postprocess_whisper_features",
    "tiny_whisper_config",
    "whisper_log_mel",
]

WHISPER_REPO = "openai/whisper-medium"
WHISPER_FILES = ("config.json", "model.safetensors")
WHISPER_STATS_FILE = "whisper_stats.pt"

SAMPLE_RATE = 16000
N_FFT = 400
HOP = 160
WINDOW_SAMPLES = 30 * SAMPLE_RATE       # one encoder window: 30 s
WINDOW_MEL_FRAMES = WINDOW_SAMPLES // HOP  # 3000
SAMPLES_PER_FEATURE = 2 * HOP           # the encoder's stride-2 conv: 50 features per second
LOG_FLOOR_RANGE = 8.0                   # dynamic range kept below the maximum, in log10 units


@functools.lru_cache(maxsize=8)
def _mel_resources(n_mels: int, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    window = torch.hann_window(N_FFT, device=device)
    basis = torch.from_numpy(slaney_mel_filterbank(SAMPLE_RATE, N_FFT, n_mels, 0.0, SAMPLE_RATE / 2)).to(device)
    return window, basis


def whisper_log_mel(windows: torch.Tensor, n_mels: int = 80) -> torch.Tensor:
    """30 s windows ``[B, 480000]`` at 16 kHz -> Whisper's log-mel ``[B, n_mels, 3000]`` (float32)."""
    if windows.dim() != 2 or windows.shape[-1] != WINDOW_SAMPLES:
        raise ValueError(f"expected windows [B, {WINDOW_SAMPLES}], got {tuple(windows.shape)}")
    x = windows.float()
    window, basis = _mel_resources(n_mels, str(x.device))
    stft = torch.stft(x, N_FFT, HOP, window=window, center=True, pad_mode="reflect", return_complex=True)
    power = stft[..., :-1].abs() ** 2
    log_spec = torch.clamp(basis @ power, min=1e-10).log10()
    peak = log_spec.amax(dim=(1, 2), keepdim=True)
    log_spec = torch.maximum(log_spec, peak - LOG_FLOOR_RANGE)
    return (log_spec + 4.0) / 4.0


def postprocess_whisper_features(
    encoded: torch.Tensor,
    frame_lens: torch.Tensor,
    mean: torch.Tensor | None = None,
    std: torch.Tensor | None = None,
) -> torch.Tensor:
    """The reference's step 4: encoder output ``[B, F, D]`` -> ``[B, max(frame_lens), D]``: frames at or
    after each item's ``frame_lens[i]`` zeroed, cut (or extended with the last frame) to the longest, then
    ``(x - mean) / std`` when stats are given."""
    frame_lens = torch.as_tensor(frame_lens, device=encoded.device).long().flatten()
    if frame_lens.shape != (encoded.shape[0],):
        raise ValueError(f"frame_lens must hold one length per item ({encoded.shape[0]}), got {tuple(frame_lens.shape)}")
    max_len = int(frame_lens.max())
    keep = torch.arange(encoded.shape[1], device=encoded.device)[None, :] < frame_lens[:, None]
    feats = torch.where(keep.unsqueeze(-1), encoded, torch.zeros_like(encoded))
    if feats.shape[1] >= max_len:
        feats = feats[:, :max_len]
    else:
        feats = torch.cat([feats, feats[:, -1:].expand(-1, max_len - feats.shape[1], -1)], dim=1)
    if mean is not None and std is not None:
        feats = (feats - mean.to(feats)) / std.to(feats)
    return feats


def load_whisper_stats(path: str | Path) -> tuple[torch.Tensor, torch.Tensor]:
    """``(mean, std)`` from Amphion's ``whisper_stats.pt`` (a dict of two tensors; read with weights_only)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"Whisper feature stats not found: {path}")
    try:
        stats = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a foreign or truncated file
        raise CheckpointError(f"cannot read {path} as the Whisper feature stats: {exc}") from exc
    if not isinstance(stats, dict) or "mean" not in stats or "std" not in stats:
        raise CheckpointError(f"{path}: expected a dict with 'mean' and 'std' tensors")
    return torch.as_tensor(stats["mean"]).float().flatten(), torch.as_tensor(stats["std"]).float().flatten()


def tiny_whisper_config(d_model: int = 32):
    """A CPU-cheap ``WhisperConfig`` with the official I/O contract (80 mels, 30 s -> 1500 frames)."""
    from transformers import WhisperConfig

    return WhisperConfig(
        num_mel_bins=80, d_model=d_model, encoder_layers=2, encoder_attention_heads=2, encoder_ffn_dim=2 * d_model,
        decoder_layers=1, decoder_attention_heads=2, decoder_ffn_dim=2 * d_model, max_source_positions=1500,
        vocab_size=64, max_target_positions=8, dropout=0.0, attention_dropout=0.0, activation_dropout=0.0,
        pad_token_id=0, bos_token_id=1, eos_token_id=2, decoder_start_token_id=1,  # inside the tiny vocabulary
    )


class WhisperFeatures(nn.Module):
    """16 kHz waveforms -> (normalised) Whisper encoder features ``[B, T, d_model]`` at 50 Hz."""

    def __init__(self, encoder: nn.Module, mean: torch.Tensor | None, std: torch.Tensor | None) -> None:
        super().__init__()
        self.encoder = encoder.eval().requires_grad_(False)
        self.n_mels = int(encoder.config.num_mel_bins)
        self.dim = int(encoder.config.d_model)
        if int(encoder.config.max_source_positions) * 2 * HOP != WINDOW_SAMPLES:
            raise ValueError("the encoder must take 30 s windows (max_source_positions 1500)")
        if (mean is None) != (std is None):
            raise ValueError("give both the mean and the std, or neither")
        self.normalised = mean is not None
        if mean is not None and std is not None:
            mean, std = mean.float().flatten(), std.float().flatten()
            if mean.shape != (self.dim,) or std.shape != (self.dim,):
                raise ValueError(f"stats must be two vectors of {self.dim}")
            if not bool((std > 0).all()):
                raise ValueError("stats: the standard deviations must be positive")
        self.register_buffer("mean", mean, persistent=False)
        self.register_buffer("std", std, persistent=False)

    @property
    def device(self) -> torch.device:
        return self.encoder.conv1.weight.device

    @staticmethod
    def num_windows(num_samples: int) -> int:
        return max(1, -(-num_samples // WINDOW_SAMPLES))

    @torch.inference_mode()
    def encode(self, wavs16k: Sequence[torch.Tensor | np.ndarray]) -> list[torch.Tensor]:
        """Each waveform (1-D, 16 kHz, any length) -> its raw encoder output ``[windows * 1500, d_model]``,
        all windows of all items in one encoder batch."""
        items = [torch.as_tensor(np.asarray(w) if not isinstance(w, torch.Tensor) else w).float().flatten()
                 for w in wavs16k]
        windows, counts = [], []
        for wav in items:
            n = self.num_windows(wav.numel())
            padded = torch.nn.functional.pad(wav, (0, n * WINDOW_SAMPLES - wav.numel()))
            windows.append(padded.view(n, WINDOW_SAMPLES))
            counts.append(n)
        mel = whisper_log_mel(torch.cat(windows).to(self.device), self.n_mels)
        weight = self.encoder.conv1.weight
        encoded = self.encoder(input_features=mel.to(weight.dtype)).last_hidden_state.float()
        return [chunk.reshape(-1, self.dim) for chunk in torch.split(encoded, counts)]

    @torch.inference_mode()
    def forward(self, wavs16k: Sequence[torch.Tensor | np.ndarray], frame_lens: torch.Tensor | Sequence[int]) -> torch.Tensor:
        """16 kHz waveforms and their 50 Hz frame counts (the reference: ``len(wav24k) // 480``) ->
        features ``[B, max(frame_lens), d_model]`` (``extract_whisper_features``)."""
        encoded = self.encode(wavs16k)
        longest = max(e.shape[0] for e in encoded)
        batch = torch.stack([torch.nn.functional.pad(e, (0, 0, 0, longest - e.shape[0])) for e in encoded])
        frame_lens = torch.as_tensor(frame_lens, device=batch.device)
        return postprocess_whisper_features(batch, frame_lens, self.mean, self.std)


def build_whisper_features(
    config=None,
    *,
    mean: torch.Tensor | None = None,
    std: torch.Tensor | None = None,
    normalised: bool = True,
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> WhisperFeatures:
    """A seeded random encoder from a ``WhisperConfig`` (None: :func:`tiny_whisper_config`); with
    ``normalised`` the stats default to seeded values near (0, 1)."""
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    config = tiny_whisper_config() if config is None else config
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        encoder = WhisperEncoder(config)
    if normalised and mean is None:
        gen = torch.Generator().manual_seed(seed + 1)
        mean = torch.randn(config.d_model, generator=gen) * 0.1
        std = 0.75 + 0.5 * torch.rand(config.d_model, generator=gen)
    return WhisperFeatures(encoder, mean if normalised else None, std if normalised else None).to(device)


def _encoder_state(path: Path) -> dict[str, torch.Tensor]:
    """The encoder's tensors of an HF Whisper checkpoint (``model.encoder.*`` or ``encoder.*``), read lazily."""
    from safetensors import safe_open

    state = {}
    with safe_open(str(path), framework="pt") as f:
        for key in f.keys():
            for prefix in ("model.encoder.", "encoder."):
                if key.startswith(prefix):
                    state[key[len(prefix):]] = f.get_tensor(key)
                    break
    if not state:
        raise CheckpointError(f"{path}: no Whisper encoder weights (keys 'model.encoder.*')")
    return state


def load_whisper_features(
    whisper_dir: str | Path,
    stats_path: str | Path | None,
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> WhisperFeatures:
    """The encoder from a folder laid out like ``openai/whisper-medium`` (``config.json``,
    ``model.safetensors``; never touches the hub) and, for the normalised features Vevo1.5 uses, the
    ``whisper_stats.pt`` file (None: raw encoder features). Strict: every encoder weight must be present."""
    from transformers import WhisperConfig
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    folder = Path(whisper_dir)
    for name in WHISPER_FILES:
        if not (folder / name).is_file():
            raise CheckpointError(f"{folder} is not laid out like {WHISPER_REPO}: {name} is missing")
    config = WhisperConfig.from_json_file(str(folder / "config.json"))
    with torch.device("meta"):
        encoder = WhisperEncoder(config)
    load_exact(encoder, _encoder_state(folder / "model.safetensors"), str(folder / "model.safetensors"), assign=True)
    mean, std = load_whisper_stats(stats_path) if stats_path is not None else (None, None)
    features = WhisperFeatures(encoder.float(), mean, std)
    features.encoder.to(dtype=dtype)
    return features.to(device)
