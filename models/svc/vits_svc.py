"""VitsSVC (Amphion ``models/svc/vits/vits.py::SynthesizerTrn``): condition features in, waveform out.

Inference (:meth:`VitsSVC.infer`, Amphion's ``SynthesizerTrn.infer`` as ``VitsInference`` calls it)
is one pass, every frame treated as real (the reference ignores ``mask`` / ``target_len``):

1. ``g = emb_g(spk_id)`` ``[B, gin, 1]``; ``x = condition_encoder(...)`` ``[B, hidden, T]``;
2. prior ``enc_p``: VITS relative-attention encoder (:mod:`models.svc.conformer`, ``VITS`` numerics),
   ``m, logs = split(proj(x))``, ``z_p = m + eps * exp(logs) * noise_scale`` with ``eps ~ N(0, 1)``;
3. ``z = flow^-1(z_p, g)``: four mean-only affine couplings, each after a channel flip;
4. ``audio = dec(z, f0 = frame_pitch)``: Amphion's NSF-HiFiGAN with ``n_mel := inter_channels``
   (:class:`models.vocoders.nsf_hifigan.NSFHiFiGANGenerator`, reused as is: its harmonic source is
   discarded by the reference's forward, so F0 matters only through its length, and the sine
   source's two random draws never reach the audio).

The only random numbers that matter are ``eps``. The reference reseeds torch's global RNG with
:data:`REFERENCE_SEED` inside every call, so it is deterministic; by default we draw ``eps`` for
each item from a fresh generator seeded with that value, which is exactly the reference run at its
recipe's inference batch size 1 (on the same device), whatever the item is batched with. ``eps`` can
also be given (``prior_noise``: replaying a recording) or drawn from a caller's generator.

Parts that only training uses are built for the checkpoint layout and nothing else: the posterior
encoder ``enc_q`` (its keys are in every checkpoint, strict loading needs them) and ``enc_p.f0_emb``.

Loading: :func:`parse_vits_svc_config` (merged Amphion ``args.json``), :func:`build_vits_svc`
(a config and a state dict, or seeded tiny weights), :func:`load_vits_svc` (an Amphion experiment
folder: ``args.json`` + ``checkpoint/<epoch-..._step-..._loss-...>/model.safetensors`` or
``pytorch_model.bin``; ``model_1.*`` is the discriminator and is never read).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from models.core.configs import ConfigError
from models.core.weight_norm import WNConv1d, fold_weight_norm
from models.svc.condition_encoder import (
    ConditionEncoder,
    ConditionEncoderConfig,
    config_dict,
    official_condition_encoder_config,
    parse_condition_encoder_config,
    tiny_condition_encoder_config,
)
from models.svc.conformer import VITS, RelativeAttentionEncoder, conformer_init_rule, require_positive_int
from models.svc.experiment import check_condition_width, check_model_type, require_section
from models.svc.model_base import build_svc_model, load_svc_run
from models.vocoders.configs import NSFHiFiGANConfig, parse_amphion_config
from models.vocoders.nsf_hifigan import NSFHiFiGANGenerator

__all__ = [
    "DEFAULT_NOISE_SCALE",
    "RECIPE_ARGS",
    "REFERENCE_SEED",
    "TINY_ARGS",
    "VitsSVC",
    "VitsSVCConfig",
    "build_vits_svc",
    "load_vits_svc",
    "parse_vits_svc_config",
    "recipe_config",
]

#: ``VitsInference._inference_each_batch``'s noise scale (``SynthesizerTrn.infer``'s own default,
#: 0.35, is never used by the inference script).
DEFAULT_NOISE_SCALE = 0.667
#: The seed ``SynthesizerTrn.infer`` resets torch's RNG to on every call.
REFERENCE_SEED = 52468

# Hard-coded in the reference's constructor.
N_COUPLINGS = 4           # ResidualCouplingBlock's n_flows default (model.vits.n_flow_layer is the WN depth)
COUPLING_KERNEL = 5
POSTERIOR_KERNEL = 5
POSTERIOR_WN_LAYERS = 16
F0_EMBEDDING_BINS = 256   # enc_p.f0_emb, unused by the forward passes
SUPPORTED_GENERATOR = "nsfhifigan"
MODEL_TYPE = "VitsSVC"


# ---------------------------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VitsSVCConfig:
    condition_encoder: ConditionEncoderConfig
    inter_channels: int             # latent z channels (= the decoder's input "mels")
    hidden_channels: int            # prior encoder width (= condition encoder output)
    filter_channels: int
    n_heads: int
    n_layers: int
    kernel_size: int
    coupling_wn_layers: int         # model.vits.n_flow_layer: depth of each coupling's WaveNet
    gin_channels: int
    n_speakers: int
    spec_channels: int              # n_fft // 2 + 1: the posterior encoder's input (layout only)
    decoder: NSFHiFiGANConfig
    sample_rate: int
    hop_size: int


def _decoder_config(args: Mapping[str, Any], inter_channels: int) -> NSFHiFiGANConfig:
    """The NSF-HiFiGAN generator config, built as the reference does: ``model.generator_config.nsfhifigan``
    with ``preprocess.n_mel`` replaced by ``inter_channels`` (the decoder reads z, not a mel)."""
    model = require_section(args, "model", "args.json")
    generator = model.get("generator")
    if generator != SUPPORTED_GENERATOR:
        raise ConfigError(
            f"VitsSVC: model.generator is {generator!r}; only {SUPPORTED_GENERATOR!r} (the recipe's decoder) is supported"
        )
    block = require_section(require_section(model, "generator_config", "model"), SUPPORTED_GENERATOR,
                            "model.generator_config")
    pre = dict(require_section(args, "preprocess", "args.json"), n_mel=inter_channels)
    pre.setdefault("win_size", pre.get("n_fft"))  # parse_amphion_config wants the mel settings too
    vocoder = parse_amphion_config("nsf_hifigan", {"preprocess": pre, "model": {"generator": generator, generator: block}})
    assert isinstance(vocoder.generator, NSFHiFiGANConfig)
    return vocoder.generator


def parse_vits_svc_config(args: Mapping[str, Any]) -> VitsSVCConfig:
    """A merged Amphion VitsSVC ``args.json`` (``preprocess``, ``model.condition_encoder``,
    ``model.vits``, ``model.generator`` / ``generator_config``) -> :class:`VitsSVCConfig`."""
    check_model_type(args, MODEL_TYPE)
    model = require_section(args, "model", "args.json")
    pre = require_section(args, "preprocess", "args.json")
    vits = require_section(model, "vits", "model")
    where = "model.vits"
    sizes = {key: require_positive_int(vits, key, where) for key in (
        "inter_channels", "hidden_channels", "filter_channels", "n_heads", "n_layers", "kernel_size",
        "n_flow_layer", "gin_channels", "n_speakers")}
    if sizes["hidden_channels"] % sizes["n_heads"]:
        raise ConfigError(f"{where}: hidden_channels {sizes['hidden_channels']} not divisible by n_heads {sizes['n_heads']}")
    if sizes["inter_channels"] % 2:
        raise ConfigError(f"{where}: inter_channels {sizes['inter_channels']} must be even (the couplings split it in halves)")
    condition = parse_condition_encoder_config(args)
    check_condition_width(condition, sizes["hidden_channels"], f"{where}.hidden_channels")
    decoder = _decoder_config(args, sizes["inter_channels"])
    hop = require_positive_int(pre, "hop_size", "preprocess")
    if decoder.upsample_factor != hop:
        raise ConfigError(f"VitsSVC: the decoder upsamples by {decoder.upsample_factor}, preprocess.hop_size is {hop}")
    return VitsSVCConfig(
        condition_encoder=condition,
        inter_channels=sizes["inter_channels"],
        hidden_channels=sizes["hidden_channels"],
        filter_channels=sizes["filter_channels"],
        n_heads=sizes["n_heads"],
        n_layers=sizes["n_layers"],
        kernel_size=sizes["kernel_size"],
        coupling_wn_layers=sizes["n_flow_layer"],
        gin_channels=sizes["gin_channels"],
        n_speakers=sizes["n_speakers"],
        spec_channels=require_positive_int(pre, "n_fft", "preprocess") // 2 + 1,
        decoder=decoder,
        sample_rate=require_positive_int(pre, "sample_rate", "preprocess"),
        hop_size=hop,
    )


def _nsf_block(initial_channel: int, rates: list[int], kernels: list[int]) -> dict[str, Any]:
    return {"resblock": "1", "harmonic_num": 8, "upsample_rates": rates, "upsample_kernel_sizes": kernels,
            "upsample_initial_channel": initial_channel, "resblock_kernel_sizes": [3, 7, 11],
            "resblock_dilation_sizes": [[1, 3, 5], [1, 3, 5], [1, 3, 5]]}


def _vits_args(condition: ConditionEncoderConfig, *, inter: int, filters: int, layers: int, wn_layers: int, gin: int,
               speakers: int, decoder: dict[str, Any], preprocess: dict[str, Any]) -> dict[str, Any]:
    return {
        "model_type": MODEL_TYPE,
        "preprocess": preprocess,
        "model": {
            "condition_encoder": config_dict(condition),
            "vits": {"inter_channels": inter, "hidden_channels": condition.output_dim, "filter_channels": filters,
                     "n_heads": 2, "n_layers": layers, "kernel_size": 3, "p_dropout": 0.1,
                     "n_flow_layer": wn_layers, "n_layers_q": 3, "gin_channels": gin, "n_speakers": speakers,
                     "use_spectral_norm": False},
            "generator": SUPPORTED_GENERATOR,
            "generator_config": {SUPPORTED_GENERATOR: decoder},
        },
    }


_RECIPE_PREPROCESS = {"sample_rate": 24000, "n_fft": 1024, "hop_size": 256, "win_size": 1024, "n_mel": 100,
                      "segment_size": 8192, "f0_min": 50, "f0_max": 1100, "pitch_bin": 256, "fmin": 0, "fmax": 12000}

#: The parts of the merged ``egs/svc/VitsSVC/exp_config.json`` args that the parsers read (the
#: recipe's sizes: what a user-trained checkpoint has).
RECIPE_ARGS: dict[str, Any] = _vits_args(
    official_condition_encoder_config(), inter=384, filters=256, layers=6, wn_layers=4, gin=256, speakers=512,
    decoder=_nsf_block(768, [8, 8, 2, 2], [16, 16, 4, 4]), preprocess=_RECIPE_PREPROCESS,
)

#: Tiny sizes with the recipe's I/O contract (24 kHz, hop 256, every layer type present).
TINY_ARGS: dict[str, Any] = _vits_args(
    tiny_condition_encoder_config(), inter=8, filters=24, layers=2, wn_layers=2, gin=8, speakers=16,
    decoder=_nsf_block(32, [8, 8, 2, 2], [16, 16, 4, 4]), preprocess=_RECIPE_PREPROCESS,
)


# ---------------------------------------------------------------------------------------------
# Modules
# ---------------------------------------------------------------------------------------------


class NonCausalWaveNet(nn.Module):
    """VITS' ``WN``: gated dilated convs with a global condition, summed skip outputs.

    Per layer ``i``: ``a = in_layers[i](x) + cond_layer(g)[slice i]``; ``h = tanh(a_1) * sigmoid(a_2)``;
    ``res_skip_layers[i](h)`` gives a residual (added to ``x``, masked) and a skip half, except the
    last layer, which is skip only. Returns the masked sum of skips. All convs weight-normalised.
    """

    def __init__(self, hidden: int, kernel_size: int, dilation_rate: int, n_layers: int, gin_channels: int) -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"WaveNet kernel size must be odd, got {kernel_size}")
        self.hidden = hidden
        self.n_layers = n_layers
        self.cond_layer = WNConv1d(gin_channels, 2 * hidden * n_layers, 1) if gin_channels else None
        self.in_layers = nn.ModuleList()
        self.res_skip_layers = nn.ModuleList()
        for i in range(n_layers):
            dilation = dilation_rate**i
            self.in_layers.append(WNConv1d(hidden, 2 * hidden, kernel_size, dilation=dilation,
                                           padding=(kernel_size * dilation - dilation) // 2))
            out = 2 * hidden if i < n_layers - 1 else hidden
            self.res_skip_layers.append(WNConv1d(hidden, out, 1))

    def forward(self, x: torch.Tensor, mask: torch.Tensor, g: torch.Tensor | None = None) -> torch.Tensor:
        cond = self.cond_layer(g) if (g is not None and self.cond_layer is not None) else None
        skips = torch.zeros_like(x)
        for i, (in_layer, res_skip) in enumerate(zip(self.in_layers, self.res_skip_layers)):
            a = in_layer(x)
            if cond is not None:
                a = a + cond[:, 2 * self.hidden * i : 2 * self.hidden * (i + 1)]
            h = torch.tanh(a[:, : self.hidden]) * torch.sigmoid(a[:, self.hidden :])
            rs = res_skip(h)
            if i < self.n_layers - 1:
                x = (x + rs[:, : self.hidden]) * mask
                skips = skips + rs[:, self.hidden :]
            else:
                skips = skips + rs
        return skips * mask


class MeanOnlyCoupling(nn.Module):
    """VITS' ``ResidualCouplingLayer`` with ``mean_only=True``: the second half of the channels is
    shifted by a function of the first (``pre`` -> WaveNet -> ``post``); log-scales are zero."""

    def __init__(self, channels: int, hidden: int, kernel_size: int, wn_layers: int, gin_channels: int) -> None:
        super().__init__()
        self.half = channels // 2
        self.pre = nn.Conv1d(self.half, hidden, 1)
        self.enc = NonCausalWaveNet(hidden, kernel_size, 1, wn_layers, gin_channels)
        self.post = nn.Conv1d(hidden, self.half, 1)

    def inverse(self, x: torch.Tensor, mask: torch.Tensor, g: torch.Tensor | None) -> torch.Tensor:
        x0, x1 = x[:, : self.half], x[:, self.half :]
        shift = self.post(self.enc(self.pre(x0) * mask, mask, g)) * mask
        return torch.cat([x0, (x1 - shift) * mask], dim=1)


class ChannelFlip(nn.Module):
    """Reverses the channel order (its own inverse). No parameters, but it occupies an index of
    ``flow.flows`` in the checkpoints (couplings are ``flows.0/2/4/6``)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flip(x, [1])


class CouplingFlow(nn.Module):
    """VITS' ``ResidualCouplingBlock``: ``flows = [coupling, flip] * 4``; only the inverse is needed here."""

    def __init__(self, channels: int, hidden: int, wn_layers: int, gin_channels: int) -> None:
        super().__init__()
        self.flows = nn.ModuleList()
        for _ in range(N_COUPLINGS):
            self.flows.append(MeanOnlyCoupling(channels, hidden, COUPLING_KERNEL, wn_layers, gin_channels))
            self.flows.append(ChannelFlip())

    def reverse(self, z_p: torch.Tensor, mask: torch.Tensor, g: torch.Tensor | None) -> torch.Tensor:
        """``z_p [B, C, T]``, ``mask [B, 1, T]``, ``g [B, gin, 1]`` -> ``z [B, C, T]``."""
        x = z_p
        for flow in reversed(self.flows):
            x = flow(x) if isinstance(flow, ChannelFlip) else flow.inverse(x, mask, g)
        return x


class PriorEncoder(nn.Module):
    """VitsSVC's ``ContentEncoder``: ``(m, logs) = split(proj(Encoder(x * mask)) * mask)``."""

    def __init__(self, cfg: VitsSVCConfig) -> None:
        super().__init__()
        self.inter_channels = cfg.inter_channels
        self.f0_emb = nn.Embedding(F0_EMBEDDING_BINS, cfg.hidden_channels)  # in checkpoints; never used
        self.enc_ = RelativeAttentionEncoder(cfg.hidden_channels, cfg.filter_channels, cfg.n_heads, cfg.n_layers,
                                             cfg.kernel_size, VITS)
        self.proj = nn.Conv1d(cfg.hidden_channels, 2 * cfg.inter_channels, 1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        stats = self.proj(self.enc_(x * mask, mask)) * mask
        return stats[:, : self.inter_channels], stats[:, self.inter_channels :]


class PosteriorEncoder(nn.Module):
    """The posterior encoder ``enc_q`` (linear spectrogram -> z), used only in training. It is built
    so that checkpoints load strictly; it has no forward pass here."""

    def __init__(self, cfg: VitsSVCConfig) -> None:
        super().__init__()
        self.pre = nn.Conv1d(cfg.spec_channels, cfg.hidden_channels, 1)
        self.enc = NonCausalWaveNet(cfg.hidden_channels, POSTERIOR_KERNEL, 1, POSTERIOR_WN_LAYERS, cfg.gin_channels)
        self.proj = nn.Conv1d(cfg.hidden_channels, 2 * cfg.inter_channels, 1)


class VitsSVC(nn.Module):
    """``SynthesizerTrn`` for inference. Submodule names are the checkpoint's (``condition_encoder``,
    ``emb_g``, ``enc_p``, ``dec``, ``enc_q``, ``flow``)."""

    def __init__(self, config: VitsSVCConfig) -> None:
        super().__init__()
        self.config = config
        self.condition_encoder = ConditionEncoder(config.condition_encoder)
        self.emb_g = nn.Embedding(config.n_speakers, config.gin_channels)
        self.enc_p = PriorEncoder(config)
        self.dec = NSFHiFiGANGenerator(config.decoder)
        self.enc_q = PosteriorEncoder(config)
        self.flow = CouplingFlow(config.inter_channels, config.hidden_channels, config.coupling_wn_layers,
                                 config.gin_channels)
        #: ``singers.json`` of the experiment (name -> spk_id); filled by :func:`load_vits_svc`.
        self.singers: dict[str, int] = {}

    @property
    def samples_per_frame(self) -> int:
        return self.dec.upsample_factor

    def speaker_embedding(self, spk_id: torch.Tensor) -> torch.Tensor:
        """``spk_id [B, 1]`` (or ``[B]``) integer -> ``g [B, gin, 1]``."""
        if spk_id.dim() == 1:
            spk_id = spk_id.unsqueeze(-1)
        if spk_id.dim() != 2 or spk_id.shape[1] != 1:
            raise ValueError(f"spk_id must be [B, 1], got {tuple(spk_id.shape)}")
        return self.emb_g(spk_id.long()).transpose(1, 2)

    def draw_prior_noise(self, shape: tuple[int, int, int], device: torch.device,
                         generator: torch.Generator | None = None) -> torch.Tensor:
        """``eps`` of shape ``[B, inter, T]``: from ``generator`` in one draw, else per item from a
        fresh generator seeded with :data:`REFERENCE_SEED` on ``device`` (the reference at batch 1)."""
        if generator is not None:
            return torch.randn(shape, generator=generator, device=generator.device).to(device)
        b, c, t = shape
        items = []
        for _ in range(b):
            gen = torch.Generator(device=device).manual_seed(REFERENCE_SEED)
            items.append(torch.randn((1, c, t), generator=gen, device=device))
        return torch.cat(items, dim=0)

    @torch.no_grad()
    def infer(
        self,
        frame_pitch: torch.Tensor,
        frame_uv: torch.Tensor,
        frame_energy: torch.Tensor,
        whisper_feat: torch.Tensor,
        contentvec_feat: torch.Tensor,
        spk_id: torch.Tensor,
        *,
        noise_scale: float = DEFAULT_NOISE_SCALE,
        prior_noise: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        trace: dict[str, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Frame features of B items of equal length T -> audio ``[B, 1, T * hop]`` in (-1, 1).

        ``frame_pitch [B, T]`` Hz (0 = unvoiced; also the decoder's F0), ``frame_uv [B, T]`` int
        (1 = UNVOICED), ``frame_energy [B, T]``, ``whisper_feat [B, T, whisper_dim]``,
        ``contentvec_feat [B, T, contentvec_dim]``, ``spk_id [B, 1]`` int (``singers.json`` id).
        Every frame is real: items of different lengths must be run separately (padding would change
        the result, as it does in the reference). ``prior_noise [B, inter, T]`` replays ``eps``;
        otherwise it comes from ``generator``, else :meth:`draw_prior_noise`'s seeded default.
        ``trace`` (a dict) receives ``condition``, ``m_p``, ``logs_p``, ``z_p``, ``z`` for debugging.
        """
        if not math.isfinite(noise_scale) or noise_scale < 0:
            raise ValueError(f"noise_scale must be a finite number >= 0, got {noise_scale}")
        condition = self.condition_encoder(frame_pitch, frame_uv, frame_energy, whisper_feat, contentvec_feat, spk_id)
        return self.synthesise(condition, spk_id, frame_pitch, noise_scale=noise_scale, prior_noise=prior_noise,
                               generator=generator, trace=trace)

    @torch.no_grad()
    def synthesise(
        self,
        condition: torch.Tensor,
        spk_id: torch.Tensor,
        f0: torch.Tensor,
        *,
        noise_scale: float = DEFAULT_NOISE_SCALE,
        prior_noise: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        trace: dict[str, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Steps 2-4 of :meth:`infer` from the condition encoder's output ``[B, T, hidden]``."""
        b, t, _ = condition.shape
        if tuple(f0.shape) != (b, t):
            raise ValueError(f"frame_pitch must be [B, T] = {(b, t)} like the features, got {tuple(f0.shape)}")
        x = condition.transpose(1, 2)
        mask = torch.ones(b, 1, t, dtype=x.dtype, device=x.device)
        g = self.speaker_embedding(spk_id)
        m_p, logs_p = self.enc_p(x, mask)
        if prior_noise is None:
            prior_noise = self.draw_prior_noise(tuple(m_p.shape), m_p.device, generator)
        elif tuple(prior_noise.shape) != tuple(m_p.shape):
            raise ValueError(f"prior_noise must be {tuple(m_p.shape)}, got {tuple(prior_noise.shape)}")
        eps = prior_noise.to(m_p)
        z_p = (m_p + eps * torch.exp(logs_p) * noise_scale) * mask
        z = self.flow.reverse(z_p, mask, g)
        if trace is not None:
            trace.update(condition=condition, m_p=m_p, logs_p=logs_p, z_p=z_p, z=z)
        return self.dec(z * mask, f0.to(z.dtype))


# ---------------------------------------------------------------------------------------------
# Building and loading
# ---------------------------------------------------------------------------------------------


def build_vits_svc(config: VitsSVCConfig | None = None, state_dict: Mapping[str, torch.Tensor] | None = None, *,
                   seed: int = 0, source: str = "state dict", device: str | torch.device = "cpu") -> VitsSVC:
    """A VitsSVC in eval mode with folded weight norm (:func:`~models.svc.model_base.build_svc_model`):
    ``config`` None = :data:`TINY_ARGS`; a strict ``state_dict`` (plain ``weight`` keys of weight-normed
    convs accepted), or seeded random weights."""
    config = parse_vits_svc_config(TINY_ARGS) if config is None else config
    return build_svc_model(VitsSVC(config), state_dict, seed=seed, source=source, device=device,
                           init_rules=(conformer_init_rule,), after_load=fold_weight_norm)


def load_vits_svc(folder: str | Path, device: str | torch.device = "cpu") -> VitsSVC:
    """An Amphion VitsSVC experiment folder (``args.json``, ``checkpoint/``, optional ``singers.json``)."""
    return load_svc_run(folder, parse_vits_svc_config, build_vits_svc, lambda c: c.n_speakers, device)


def recipe_config() -> VitsSVCConfig:
    """The recipe's full-size configuration (what a user-trained checkpoint has)."""
    return parse_vits_svc_config(RECIPE_ARGS)

