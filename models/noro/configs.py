"""Noro's configuration: the model sizes, the diffusion schedule and the front-end settings.

:func:`parse_noro_config` reads Amphion's merged experiment configuration (the JSON shape Amphion
writes as ``args.json`` next to a checkpoint: ``egs/vc/Noro/exp_config_clean.json`` merged over its
``base_config`` chain) into a :class:`NoroConfig`. :data:`OFFICIAL_CONFIG` holds the recipe's values
(the Google Drive release ships only ``model.safetensors``, so the recipe is the config);
:data:`TINY_CONFIG` is the tiny profile. Request settings (steps, sigma) and their ranges are data
here too. Which reference options are refused, and why: ``models/noro/README.md``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from models.audio.mel import MelConfig
from models.noro.mel import MAGNITUDE_EPS
from models.core.configs import ConfigError

__all__ = [
    "DEFAULT_SIGMA",
    "DEFAULT_STEPS",
    "OFFICIAL_CONFIG",
    "SIGMA_RANGE",
    "STEPS_RANGE",
    "TINY_CONFIG",
    "DiffusionConfig",
    "EstimatorConfig",
    "F0Config",
    "NoroConfig",
    "ReferenceEncoderConfig",
    "official_config",
    "parse_noro_config",
    "tiny_config",
]

# ---------------------------------------------------------------------------------------------
# Request settings (one default per knob)
# ---------------------------------------------------------------------------------------------

#: ``noro_inference.py`` calls ``inference(..., inference_steps=200, sigma=1.2)``.
DEFAULT_STEPS = 200
#: Its comment gives "150-300" steps; we accept a wider range, as the issue asks.
STEPS_RANGE = (50, 500)
#: Temperature of the starting noise only (``z = randn / sigma``); the SDE's own sigma is the config's.
DEFAULT_SIGMA = 1.2
#: Its comment gives "0.95-1.5"; the issue asks for 0.9-1.5.
SIGMA_RANGE = (0.9, 1.5)


# ---------------------------------------------------------------------------------------------
# Dataclasses
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReferenceEncoderConfig:
    """``model.reference_encoder``: a pre-norm transformer over the reference mel plus query attention."""

    in_dim: int  # ref_in_dim: the mel bands
    hidden: int  # encoder_hidden
    out_dim: int  # ref_out_dim: == hidden in the official config (then there is no out_linear)
    layers: int  # encoder_layer
    heads: int  # encoder_head
    ffn_filter: int  # conv_filter_size
    ffn_kernel: int  # conv_kernel_size
    conv_ffn: bool  # use_new_ffn: Conv1d first FFN layer (True) or Linear (False)
    num_queries: int  # num_query_emb

    @property
    def query_heads(self) -> int:
        """The reference hard-codes ``encoder_hidden // 64`` heads for the query attention."""
        return self.hidden // 64


@dataclass(frozen=True)
class EstimatorConfig:
    """``model.diffusion.diff_wavenet``: the WaveNet that predicts the clean mel."""

    in_dim: int  # input_size (n_mel)
    hidden: int  # hidden_size
    out_dim: int  # out_size (n_mel)
    layers: int  # num_layers
    cross_attn_every: int  # cross_attn_per_layer: layers 0, k, 2k, ... attend to the speaker queries
    dilation_cycle: int  # layer i dilates by 2 ** (i % dilation_cycle)
    heads: int  # attn_head


@dataclass(frozen=True)
class DiffusionConfig:
    """``model.diffusion``: the VP-SDE schedule the sampler integrates (Euler)."""

    beta_min: float
    beta_max: float
    sigma: float  # the SDE's sigma (1.0), NOT the request's sigma (which only divides the start noise)
    estimator: EstimatorConfig


@dataclass(frozen=True)
class F0Config:
    """``preprocess``: what ``get_f0_features_using_dio`` reads (frame period = hop / rate)."""

    sample_rate: int
    hop: int
    f0_min: float
    f0_max: float

    @property
    def frame_period_ms(self) -> float:
        return 1000 * self.hop / self.sample_rate


@dataclass(frozen=True)
class NoroConfig:
    reference_encoder: ReferenceEncoderConfig
    diffusion: DiffusionConfig
    content_dim: int  # vc_feature.content_feature_dim (768: HuBERT-base)
    condition_dim: int  # vc_feature.hidden_dim
    mel: MelConfig  # the top-level mel keys (mel_spectrogram_torch reads the whole config)
    f0: F0Config

    @property
    def n_mels(self) -> int:
        return self.diffusion.estimator.out_dim


# ---------------------------------------------------------------------------------------------
# Parsing
# ---------------------------------------------------------------------------------------------


def _section(d: Any, key: str, where: str) -> dict:
    value = d.get(key) if isinstance(d, dict) else None
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: missing section {key!r}")
    return value


def _get(d: dict, key: str, where: str) -> Any:
    if d.get(key) is None:
        raise ConfigError(f"{where}: missing required key {key!r}")
    return d[key]


def _int(d: dict, key: str, where: str) -> int:
    return int(_get(d, key, where))


def _float(d: dict, key: str, where: str) -> float:
    return float(_get(d, key, where))


def _reference_encoder(raw: dict) -> ReferenceEncoderConfig:
    w = "model.reference_encoder"
    if raw.get("use_query_emb") is False:
        # The reference returns an undefined speaker embedding without query embeddings.
        raise ConfigError(f"{w}: use_query_emb must be true (Noro's reference encoder needs its queries)")
    cfg = ReferenceEncoderConfig(
        in_dim=_int(raw, "ref_in_dim", w), hidden=_int(raw, "encoder_hidden", w),
        out_dim=_int(raw, "ref_out_dim", w), layers=_int(raw, "encoder_layer", w),
        heads=_int(raw, "encoder_head", w), ffn_filter=_int(raw, "conv_filter_size", w),
        ffn_kernel=_int(raw, "conv_kernel_size", w), conv_ffn=bool(raw.get("use_new_ffn", True)),
        num_queries=_int(raw, "num_query_emb", w),
    )
    if cfg.in_dim == cfg.hidden:
        # The reference then builds no input projection and fails on its first call.
        raise ConfigError(f"{w}: ref_in_dim equal to encoder_hidden ({cfg.hidden}) is not supported by the reference")
    if cfg.query_heads < 1:
        raise ConfigError(f"{w}: encoder_hidden {cfg.hidden} < 64 leaves the query attention no head (hidden // 64)")
    if cfg.hidden % cfg.heads or cfg.hidden % cfg.query_heads:
        raise ConfigError(f"{w}: encoder_hidden {cfg.hidden} is not divisible by the head counts")
    return cfg


def _diffusion(raw: dict) -> DiffusionConfig:
    w = "model.diffusion"
    kind = raw.get("diff_model_type", "WaveNet")
    if kind != "WaveNet":
        raise ConfigError(f"{w}: diff_model_type {kind!r}; Noro_VCmodel only builds 'WaveNet'")
    method = raw.get("ode_solve_method", "euler")
    if method != "euler":
        raise ConfigError(f"{w}: ode_solve_method {method!r} is not supported (the official recipe uses 'euler')")
    net = _section(raw, "diff_wavenet", w)
    wn = f"{w}.diff_wavenet"
    est = EstimatorConfig(
        in_dim=_int(net, "input_size", wn), hidden=_int(net, "hidden_size", wn), out_dim=_int(net, "out_size", wn),
        layers=_int(net, "num_layers", wn), cross_attn_every=_int(net, "cross_attn_per_layer", wn),
        dilation_cycle=_int(net, "dilation_cycle", wn), heads=_int(net, "attn_head", wn),
    )
    if est.hidden % est.heads:
        raise ConfigError(f"{wn}: hidden_size {est.hidden} is not divisible by attn_head {est.heads}")
    return DiffusionConfig(beta_min=_float(raw, "beta_min", w), beta_max=_float(raw, "beta_max", w),
                           sigma=_float(raw, "sigma", w), estimator=est)


def parse_noro_config(raw: dict) -> NoroConfig:
    """Amphion's merged Noro configuration (``args.json`` / the recipe merged over its bases) ->
    :class:`NoroConfig`; :class:`ConfigError` naming the key when something is missing or refused."""
    model = _section(raw, "model", "Noro config")
    ref = _reference_encoder(_section(model, "reference_encoder", "model"))
    diffusion = _diffusion(_section(model, "diffusion", "model"))
    vc = _section(model, "vc_feature", "model")
    content_dim = _int(vc, "content_feature_dim", "model.vc_feature")
    condition_dim = _int(vc, "hidden_dim", "model.vc_feature")
    est = diffusion.estimator
    problems = []
    if condition_dim != est.hidden:
        problems.append(f"vc_feature.hidden_dim {condition_dim} != diff_wavenet.hidden_size {est.hidden}")
    if ref.out_dim != est.hidden:
        problems.append(f"reference_encoder.ref_out_dim {ref.out_dim} != diff_wavenet.hidden_size {est.hidden}")
    if est.in_dim != est.out_dim:
        problems.append(f"diff_wavenet.input_size {est.in_dim} != out_size {est.out_dim}")
    # mel_spectrogram_torch reads the top-level keys of the whole config (not preprocess's).
    top = "Noro config (top level)"
    mel = MelConfig(sample_rate=_int(raw, "sample_rate", top), n_fft=_int(raw, "n_fft", top),
                    hop_length=_int(raw, "hop_size", top), win_length=_int(raw, "win_size", top),
                    n_mels=_int(raw, "n_mel", top), fmin=float(raw.get("fmin") or 0.0),
                    fmax=None if raw.get("fmax") is None else float(raw["fmax"]), magnitude_eps=MAGNITUDE_EPS)
    if mel.n_mels != ref.in_dim or mel.n_mels != est.out_dim:
        problems.append(f"n_mel {mel.n_mels} must equal ref_in_dim {ref.in_dim} and out_size {est.out_dim}")
    pre = _section(raw, "preprocess", "Noro config")
    f0 = F0Config(sample_rate=_int(pre, "sample_rate", "preprocess"), hop=_int(pre, "hop_size", "preprocess"),
                  f0_min=_float(pre, "f0_min", "preprocess"), f0_max=_float(pre, "f0_max", "preprocess"))
    if f0.sample_rate != mel.sample_rate or f0.hop != mel.hop_length:
        # Pitch frames and mel frames must line up one to one (both N / hop).
        problems.append(f"preprocess rate/hop {f0.sample_rate}/{f0.hop} != mel rate/hop "
                        f"{mel.sample_rate}/{mel.hop_length}")
    if problems:
        raise ConfigError("Noro config does not describe a consistent model: " + "; ".join(problems))
    return NoroConfig(reference_encoder=ref, diffusion=diffusion, content_dim=content_dim,
                      condition_dim=condition_dim, mel=mel, f0=f0)


# ---------------------------------------------------------------------------------------------
# The official recipe and the tiny profile, as data (only the keys the parser reads)
# ---------------------------------------------------------------------------------------------

#: ``egs/vc/Noro/exp_config_clean.json`` merged over ``exp_config_base.json`` -> ``config/noro.json``
#: -> ``config/base.json`` (Amphion d3de90f), the keys Noro reads. The official checkpoint was
#: trained with it and ships without a config file.
OFFICIAL_CONFIG: dict[str, Any] = {
    "model": {
        "reference_encoder": {
            "encoder_layer": 6, "encoder_hidden": 512, "encoder_head": 8, "conv_filter_size": 2048,
            "conv_kernel_size": 9, "encoder_dropout": 0.2, "use_skip_connection": False, "use_new_ffn": True,
            "ref_in_dim": 80, "ref_out_dim": 512, "use_query_emb": True, "num_query_emb": 32,
        },
        "diffusion": {
            "beta_min": 0.05, "beta_max": 20, "sigma": 1.0, "noise_factor": 1.0, "ode_solve_method": "euler",
            "diff_model_type": "WaveNet",
            "diff_wavenet": {
                "input_size": 80, "hidden_size": 512, "out_size": 80, "num_layers": 47, "cross_attn_per_layer": 3,
                "dilation_cycle": 2, "attn_head": 8, "drop_out": 0.2,
            },
        },
        "vc_feature": {"content_feature_dim": 768, "hidden_dim": 512},
    },
    "preprocess": {"sample_rate": 16000, "hop_size": 200, "f0_min": 50, "f0_max": 500},
    "sample_rate": 16000, "n_fft": 1024, "n_mel": 80, "hop_size": 200, "win_size": 800, "fmin": 0, "fmax": 8000,
}

#: The tiny profile: the official structure (47 -> 4 layers keeps cross-attention at layers 0 and 3,
#: both dilations), the official front end (80 mels, 16 kHz, hop 200), few channels.
TINY_CONFIG: dict[str, Any] = copy.deepcopy(OFFICIAL_CONFIG)
TINY_CONFIG["model"]["reference_encoder"].update(encoder_layer=2, encoder_hidden=64, encoder_head=2,
                                                 conv_filter_size=48, ref_out_dim=64, num_query_emb=4)
TINY_CONFIG["model"]["diffusion"]["diff_wavenet"].update(hidden_size=64, num_layers=4, attn_head=2)
TINY_CONFIG["model"]["vc_feature"].update(content_feature_dim=32, hidden_dim=64)


def official_config() -> NoroConfig:
    return parse_noro_config(OFFICIAL_CONFIG)


def tiny_config() -> NoroConfig:
    return parse_noro_config(TINY_CONFIG)
