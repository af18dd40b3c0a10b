"""MaskGCT's semantic encoder: 16 kHz audio -> normalised w2v-bert-2.0 layer-17 features at 50 Hz.

:class:`SemanticEncoder` runs transformers' ``SeamlessM4TFeatureExtractor`` and ``Wav2Vec2BertModel``
(layers above the one read are not built) and normalises with ``wav2vec2bert_stats.pt``: ``[B, F,
hidden]`` float32 with ``F = ceil((1 + (samples - 400) // 160) / 2)``. ``build_semantic_encoder``
makes a tiny seeded one, ``load_semantic_encoder`` the official one (``facebook/w2v-bert-2.0`` plus
the stats, :data:`W2V_BERT_FILES`, :data:`SEMANTIC_STATS_FILES`). The reference's steps and where
the stats come from: ``models/maskgct/README.md``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from models.core.checkpoints import CheckpointError
from models.pinned import PinnedFile, PinnedSource
from models.weights import HubFiles

__all__ = [
    "OFFICIAL_LAYER",
    "SEMANTIC_STATS_FILES",
    "STATS_DIR_ENV",
    "STATS_FILE",
    "TINY_LAYER",
    "W2V_BERT_FILES",
    "W2V_BERT_REPO",
    "SemanticEncoder",
    "build_semantic_encoder",
    "load_semantic_encoder",
    "load_semantic_stats",
    "official_feature_extractor_values",
    "tiny_w2v_bert_config",
]

W2V_BERT_REPO = "facebook/w2v-bert-2.0"
W2V_BERT_FILES = HubFiles(
    repo_id=W2V_BERT_REPO, patterns=("config.json", "preprocessor_config.json", "model.safetensors")
)

STATS_FILE = "wav2vec2bert_stats.pt"
#: Environment variable naming the folder that holds :data:`STATS_FILE`.
STATS_DIR_ENV = "AMPHION_MASKGCT_STATS_DIR"
#: The statistics ship with Amphion's code (models/tts/maskgct/ckpt/), not in a hub repo: fetched from
#: the repository at the pinned commit, hash-checked (or read from $AMPHION_MASKGCT_STATS_DIR).
SEMANTIC_STATS_FILES = HubFiles(
    repo_id=None, patterns=(STATS_FILE,), local_dir_env=STATS_DIR_ENV,
    pinned=PinnedSource("maskgct_stats", {STATS_FILE: PinnedFile(
        "models/tts/maskgct/ckpt/wav2vec2bert_stats.pt",
        "c9c176c2b8850ab2e3ba828bbfa969deaf4566ce55db5f2687b8430b87526ad2", 9343)}),
)

#: ``hidden_states`` index MaskGCT reads (``maskgct_utils.extract_semantic_code``).
OFFICIAL_LAYER = 17
#: The tiny profile's index (of 3 layers, so truncation is exercised too).
TINY_LAYER = 2

SAMPLE_RATE = 16000
FBANK_HOP = 160      # samples per fbank frame (10 ms); fixed in SeamlessM4TFeatureExtractor
FBANK_WINDOW = 400   # samples per fbank window (25 ms)


def official_feature_extractor_values() -> dict:
    """``preprocessor_config.json`` of facebook/w2v-bert-2.0 (the constructor arguments that matter)."""
    return {"feature_size": 80, "num_mel_bins": 80, "sampling_rate": SAMPLE_RATE, "padding_value": 1.0, "stride": 2}


def _feature_extractor(folder: str | Path | None):
    from transformers import SeamlessM4TFeatureExtractor

    if folder is None:
        return SeamlessM4TFeatureExtractor(**official_feature_extractor_values())
    return SeamlessM4TFeatureExtractor.from_pretrained(str(folder), local_files_only=True)


def tiny_w2v_bert_config(hidden_size: int = 32):
    """A CPU-cheap ``Wav2Vec2BertConfig`` with the official structure (relative-key attention, conformer
    conv, 160-d stacked fbank input); 3 layers, read at :data:`TINY_LAYER`."""
    from transformers import Wav2Vec2BertConfig

    return Wav2Vec2BertConfig(
        hidden_size=hidden_size,
        num_hidden_layers=3,
        num_attention_heads=2,
        intermediate_size=2 * hidden_size,
        output_hidden_size=hidden_size,
        feature_projection_input_dim=160,
        conv_depthwise_kernel_size=5,
        position_embeddings_type="relative_key",
        left_max_position_embeddings=8,
        right_max_position_embeddings=4,
        add_adapter=False,
        apply_spec_augment=False,
        mask_time_prob=0.0,
        layerdrop=0.0,
        hidden_dropout=0.0,
        attention_dropout=0.0,
        activation_dropout=0.0,
        feat_proj_dropout=0.0,
        conformer_conv_dropout=0.0,
    )


def load_semantic_stats(path: str | Path) -> tuple[torch.Tensor, torch.Tensor]:
    """``(mean, std)`` float32 vectors from Amphion's ``wav2vec2bert_stats.pt`` (``std = sqrt(var)``)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"semantic feature stats not found: {path}")
    try:
        stats = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a foreign or truncated file
        raise CheckpointError(f"cannot read {path} as the w2v-bert feature stats: {exc}") from exc
    if not isinstance(stats, dict) or "mean" not in stats or "var" not in stats:
        raise CheckpointError(f"{path}: expected a dict with 'mean' and 'var' tensors")
    mean = torch.as_tensor(stats["mean"]).float().flatten()
    var = torch.as_tensor(stats["var"]).float().flatten()
    if mean.shape != var.shape:
        raise CheckpointError(f"{path}: 'mean' {tuple(mean.shape)} and 'var' {tuple(var.shape)} differ in shape")
    return mean, var.sqrt()


class SemanticEncoder(nn.Module):
    """16 kHz waveform -> normalised ``hidden_states[layer]`` of w2v-bert-2.0, ``[B, F, hidden]`` at 50 Hz."""

    def __init__(self, model: nn.Module, feature_extractor, mean: torch.Tensor, std: torch.Tensor, layer: int) -> None:
        super().__init__()
        config = model.config
        self.hidden_size = int(config.hidden_size)
        if not 1 <= layer <= config.num_hidden_layers:
            raise ValueError(f"layer must be in 1..{config.num_hidden_layers} (hidden_states index), got {layer}")
        if config.num_hidden_layers > layer:  # the layers above are never needed
            model.encoder.layers = model.encoder.layers[:layer]
            config.num_hidden_layers = layer
        self.layer = int(layer)
        mean = torch.as_tensor(mean, dtype=torch.float32).flatten()
        std = torch.as_tensor(std, dtype=torch.float32).flatten()
        if mean.shape != (self.hidden_size,) or std.shape != (self.hidden_size,):
            raise ValueError(f"stats must be two vectors of {self.hidden_size}, "
                             f"got {tuple(mean.shape)} and {tuple(std.shape)}")
        if not bool((std > 0).all()) or not bool(torch.isfinite(mean).all()):
            raise ValueError("stats: the standard deviations must be positive and the means finite")
        self.model = model.eval().requires_grad_(False)
        self.feature_extractor = feature_extractor
        self.register_buffer("mean", mean, persistent=False)
        self.register_buffer("std", std, persistent=False)
        if int(feature_extractor.sampling_rate) != SAMPLE_RATE:
            raise ValueError(f"the feature extractor expects {feature_extractor.sampling_rate} Hz, not {SAMPLE_RATE}")
        self.sample_rate = SAMPLE_RATE
        self.stride = int(feature_extractor.stride)
        expected_in = int(feature_extractor.num_mel_bins) * self.stride
        if int(config.feature_projection_input_dim) != expected_in:
            raise ValueError(f"the model takes {config.feature_projection_input_dim}-d frames, the feature "
                             f"extractor makes {expected_in}-d ones")

    @property
    def frame_rate(self) -> float:
        """Feature frames per second (50)."""
        return self.sample_rate / FBANK_HOP / self.stride

    @property
    def min_samples(self) -> int:
        """Shortest input that yields a frame (one fbank window)."""
        return FBANK_WINDOW

    def num_frames(self, num_samples: int) -> int:
        """Feature frames for ``num_samples`` of 16 kHz audio."""
        if num_samples < FBANK_WINDOW:
            return 0
        fbank = 1 + (num_samples - FBANK_WINDOW) // FBANK_HOP
        return -(-fbank // self.stride)

    @property
    def device(self) -> torch.device:
        return self.mean.device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    def features(self, wav16k: np.ndarray | torch.Tensor | Sequence) -> tuple[torch.Tensor, torch.Tensor]:
        """The front end: one waveform (1-D) or a batch (a list of 1-D, or a 2-D array) ->
        ``(input_features [B, F, 160], attention_mask [B, F])`` on this module's device."""
        if isinstance(wav16k, torch.Tensor):
            wav16k = wav16k.detach().float().cpu().numpy()
        if isinstance(wav16k, np.ndarray):
            batch = [wav16k] if wav16k.ndim == 1 else list(wav16k)
        else:
            batch = [np.asarray(w.detach().float().cpu() if isinstance(w, torch.Tensor) else w) for w in wav16k]
        batch = [np.asarray(w, dtype=np.float32) for w in batch]
        if not batch or any(w.ndim != 1 for w in batch):
            raise ValueError("expected a mono 16 kHz waveform (1-D) or a batch of them")
        short = [len(w) for w in batch if len(w) < FBANK_WINDOW]
        if short:
            raise ValueError(f"audio too short for the semantic encoder: {min(short)} samples, needs {FBANK_WINDOW}")
        inputs = self.feature_extractor(batch, sampling_rate=self.sample_rate, return_tensors="pt", padding=True)
        return inputs["input_features"].to(self.device), inputs["attention_mask"].to(self.device)

    def hidden(self, input_features: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Stacked fbank frames ``[B, F, 160]`` -> raw ``hidden_states[layer]`` ``[B, F, hidden]`` (float32),
        before any normalisation: DualCodec normalises the same layer with its own statistics."""
        out = self.model(
            input_features=input_features.to(device=self.device, dtype=self.dtype),
            attention_mask=None if attention_mask is None else attention_mask.to(self.device),
            output_hidden_states=True,
        )
        return out.hidden_states[self.layer].float()

    def forward(self, input_features: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Stacked fbank frames ``[B, F, 160]`` -> normalised features ``[B, F, hidden]`` (float32)."""
        return (self.hidden(input_features, attention_mask) - self.mean) / self.std

    @torch.inference_mode()
    def encode(self, wav16k: np.ndarray | torch.Tensor | Sequence) -> torch.Tensor:
        """Waveform(s) at 16 kHz -> normalised features ``[B, F, hidden]`` at 50 Hz."""
        return self(*self.features(wav16k))

    @torch.inference_mode()
    def encode_raw(self, wav16k: np.ndarray | torch.Tensor | Sequence) -> torch.Tensor:
        """Waveform(s) at 16 kHz -> un-normalised ``hidden_states[layer]`` ``[B, F, hidden]`` at 50 Hz."""
        return self.hidden(*self.features(wav16k))


# ---------------------------------------------------------------------------------------------
# Building and loading
# ---------------------------------------------------------------------------------------------


def _placed(encoder: SemanticEncoder, device: str | torch.device, dtype: torch.dtype) -> SemanticEncoder:
    """On ``device``, the encoder weights in ``dtype``; the stats stay float32."""
    encoder.to(device)
    encoder.model.to(dtype=dtype)
    return encoder


def build_semantic_encoder(
    config=None,
    *,
    layer: int | None = None,
    mean: torch.Tensor | None = None,
    std: torch.Tensor | None = None,
    seed: int = 0,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> SemanticEncoder:
    """A randomly initialised (seeded) encoder: ``config`` a ``Wav2Vec2BertConfig`` (None: the tiny one,
    read at :data:`TINY_LAYER`), ``layer`` the hidden_states index (default: the tiny one for the
    tiny config, else the config's last layer). Stats default to seeded values near (0, 1)."""
    from transformers import Wav2Vec2BertModel

    if config is None:
        config = tiny_w2v_bert_config()
        layer = TINY_LAYER if layer is None else layer
    layer = config.num_hidden_layers if layer is None else layer
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Wav2Vec2BertModel(config)
    gen = torch.Generator().manual_seed(seed + 1)
    hidden = config.hidden_size
    if mean is None:
        mean = torch.randn(hidden, generator=gen) * 0.1
    if std is None:
        std = 0.75 + 0.5 * torch.rand(hidden, generator=gen)
    return _placed(SemanticEncoder(model, _feature_extractor(None), mean, std, layer), device, dtype)


def load_semantic_encoder(
    w2v_bert_dir: str | Path,
    stats_path: str | Path,
    *,
    layer: int = OFFICIAL_LAYER,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> SemanticEncoder:
    """The official encoder from a folder laid out like ``facebook/w2v-bert-2.0`` (never touches the
    hub) and Amphion's stats file. Only the first ``layer`` conformer layers are loaded; any weight
    the encoder needs but the checkpoint lacks (or has in another shape) is an error."""
    from transformers import Wav2Vec2BertConfig, Wav2Vec2BertModel

    folder = Path(w2v_bert_dir)
    for name in W2V_BERT_FILES.patterns:
        if not (folder / name).is_file():
            raise CheckpointError(f"{folder} is not laid out like {W2V_BERT_REPO}: {name} is missing")
    mean, std = load_semantic_stats(stats_path)
    config = Wav2Vec2BertConfig.from_pretrained(str(folder), local_files_only=True)
    if not 1 <= layer <= config.num_hidden_layers:
        raise ValueError(f"layer must be in 1..{config.num_hidden_layers}, got {layer}")
    config.num_hidden_layers = layer
    from transformers.utils import logging as hf_logging

    # The checkpoint holds the pre-training model: the skipped layers and heads would each be
    # reported as unused. What matters (a missing or mis-shaped weight) is checked below.
    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        model, info = Wav2Vec2BertModel.from_pretrained(
            str(folder), config=config, local_files_only=True, output_loading_info=True
        )
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()
    missing = list(info.get("missing_keys") or [])
    mismatched = list(info.get("mismatched_keys") or [])
    if missing or mismatched:
        raise CheckpointError(
            f"{folder}/model.safetensors does not fit Wav2Vec2BertModel: "
            f"missing {missing[:5]}{'...' if len(missing) > 5 else ''}, mismatched {mismatched[:5]}"
        )
    if mean.numel() != config.hidden_size:
        raise CheckpointError(f"{stats_path}: stats have {mean.numel()} entries, the encoder {config.hidden_size}")
    return _placed(SemanticEncoder(model.float(), _feature_extractor(folder), mean, std, layer), device, dtype)
