"""MaskGCT text-to-semantic model (Amphion ``MaskGCT_T2S`` with a ``DiffLlamaPrefix`` backbone).

Given the prompt's semantic tokens ``(B, P)``, the phone ids of prompt + target text ``(B, Np)`` and
a target length ``T``, :meth:`MaskGCTT2S.generate` fills ``T`` semantic tokens by masked generative
decoding. ``build_t2s_model`` / ``load_t2s_model`` build or strictly load it (weights
``t2s_model/model.safetensors`` of ``amphion/MaskGCT``, configuration
:data:`~models.maskgct.generation_configs.OFFICIAL_T2S`). One decoding step: ``models/maskgct/README.md``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn

from models.blocks.diff_llama import DiffLlamaPrefix, build_or_load
from models.blocks.masked_generation import (
    DecodingStep,
    NoiseSource,
    ProgressCallback,
    apply_cfg,
    make_noise,
    masked_decode,
)
from models.maskgct.generation_configs import OFFICIAL_T2S, T2SConfig, parse_t2s_config, read_config_file
from models.weights import HubFiles

__all__ = [
    "HUB_REPO",
    "T2S_HUB_FILES",
    "T2S_WEIGHTS_FILE",
    "MaskGCTT2S",
    "build_t2s_model",
    "load_t2s_model",
    "read_safetensors",
]

HUB_REPO = "amphion/MaskGCT"
T2S_WEIGHTS_FILE = "t2s_model/model.safetensors"
T2S_HUB_FILES = HubFiles(repo_id=HUB_REPO, patterns=(T2S_WEIGHTS_FILE,))

# maskgct_inference's settings (temperature and top-k threshold are hard-coded there).
DEFAULT_STEPS = 25
DEFAULT_TEMP = 0.9
DEFAULT_FILTER_THRES = 0.98
DEFAULT_CFG = 2.5
DEFAULT_RESCALE_CFG = 0.75


@dataclass
class _T2SContext:
    prompt_emb: torch.Tensor      # (B, P, H)
    phone_emb: torch.Tensor       # (B, Np, H), before cond_mlp
    phone_mask: torch.Tensor | None
    cfg: float
    rescale_cfg: float


class MaskGCTT2S(nn.Module):
    def __init__(self, config: T2SConfig) -> None:
        super().__init__()
        self.config = config
        h = config.hidden_size
        self.hidden_size = h
        self.phone_emb = nn.Embedding(config.phone_vocab_size, h, padding_idx=config.phone_padding_idx)
        self.cond_emb = nn.Embedding(config.cond_codebook_size, h)
        self.mask_emb = nn.Embedding(1, h)
        self.to_logit = nn.Linear(h, config.cond_codebook_size)
        self.diff_estimator = DiffLlamaPrefix(h, config.num_heads, config.num_layers)

    @property
    def vocab_size(self) -> int:
        return self.config.cond_codebook_size

    # -- one step ---------------------------------------------------------------------------

    def _context(self, prompt: torch.Tensor, phone_id: torch.Tensor, phone_mask: torch.Tensor | None,
                 cfg: float, rescale_cfg: float) -> _T2SContext:
        if prompt.dim() != 2 or phone_id.dim() != 2 or prompt.shape[0] != phone_id.shape[0]:
            raise ValueError(f"prompt (B, P) and phone_id (B, Np) expected, got {tuple(prompt.shape)} and {tuple(phone_id.shape)}")
        return _T2SContext(self.cond_emb(prompt), self.phone_emb(phone_id), phone_mask, float(cfg), float(rescale_cfg))

    def _hidden(self, ctx: _T2SContext, seq: torch.Tensor, mask: torch.Tensor,
                t: float | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        batch, n_prompt = ctx.prompt_emb.shape[:2]
        t_vec = torch.as_tensor(t, dtype=torch.float32, device=seq.device)
        if t_vec.dim() == 0:
            t_vec = t_vec.expand(batch)
        target = torch.where(mask.unsqueeze(-1), self.mask_emb.weight[0], self.cond_emb(seq))
        inputs = torch.cat([ctx.prompt_emb, target], dim=1)
        cond = self.diff_estimator(inputs, t_vec, None, prefix=ctx.phone_emb, prefix_mask=ctx.phone_mask)[:, n_prompt:]
        uncond = self.diff_estimator(target, t_vec, None) if ctx.cfg > 0 else None
        return cond, uncond

    def _logits(self, ctx: _T2SContext, seq: torch.Tensor, mask: torch.Tensor, t: float | torch.Tensor) -> torch.Tensor:
        cond, uncond = self._hidden(ctx, seq, mask, t)
        return self.to_logit(apply_cfg(cond, uncond, ctx.cfg, ctx.rescale_cfg))

    @torch.inference_mode()
    def step_logits(self, prompt: torch.Tensor, phone_id: torch.Tensor, seq: torch.Tensor, mask: torch.Tensor,
                    t: float | torch.Tensor, *, cfg: float = DEFAULT_CFG, rescale_cfg: float = DEFAULT_RESCALE_CFG,
                    phone_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """One decoding step's ``(logits, cond_hidden, uncond_hidden)``; ``mask`` True = masked,
        ``seq`` the decided tokens; logits are post-CFG and before the top-k filter."""
        ctx = self._context(prompt, phone_id, phone_mask, cfg, rescale_cfg)
        cond, uncond = self._hidden(ctx, seq, mask.to(torch.bool), t)
        return self.to_logit(apply_cfg(cond, uncond, ctx.cfg, ctx.rescale_cfg)), cond, uncond

    # -- decoding ---------------------------------------------------------------------------

    @torch.inference_mode()
    def generate(
        self,
        prompt: torch.Tensor,
        phone_id: torch.Tensor,
        target_len: int,
        *,
        n_timesteps: int = DEFAULT_STEPS,
        temp: float = DEFAULT_TEMP,
        filter_thres: float = DEFAULT_FILTER_THRES,
        cfg: float = DEFAULT_CFG,
        rescale_cfg: float = DEFAULT_RESCALE_CFG,
        phone_mask: torch.Tensor | None = None,
        noise: NoiseSource | Sequence[torch.Tensor] | None = None,
        seed: int | None = None,
        generator: torch.Generator | None = None,
        on_step: ProgressCallback | None = None,
        trace: list[DecodingStep] | None = None,
    ) -> torch.Tensor:
        """Semantic tokens (B, target_len) for ``prompt`` (B, P) semantic tokens and ``phone_id``
        (B, Np) (prompt phones then target phones), as Amphion's ``reverse_diffusion``.

        Randomness: ``noise`` (saved uniform draws, consumed in the reference's order), else
        ``seed`` / ``generator``, else torch's global RNG. ``on_step(step, total)`` is called after
        each executed step; ``trace`` (a list) receives a :class:`DecodingStep` per step.
        ``phone_mask`` (B, Np) (1 = keep) is an extension for padded phone batches; the reference
        always uses all ones.
        """
        if target_len < 1:
            raise ValueError(f"target_len must be >= 1, got {target_len}")
        ctx = self._context(prompt, phone_id, phone_mask, cfg, rescale_cfg)
        return masked_decode(
            lambda seq, mask, t: self._logits(ctx, seq, mask, t),
            prompt.shape[0],
            int(target_len),
            n_steps=int(n_timesteps),
            temp=temp,
            filter_thres=filter_thres,
            noise=make_noise(noise, seed=seed, generator=generator),
            device=prompt.device,
            on_step=on_step,
            trace=trace,
        )


# ---------------------------------------------------------------------------------------------
# Building and loading
# ---------------------------------------------------------------------------------------------


def read_safetensors(path: str | Path) -> dict[str, torch.Tensor]:
    """All tensors of a ``.safetensors`` file, on CPU, with a readable error for a missing/bad file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except Exception as exc:  # a truncated or foreign file
        raise ValueError(f"cannot read {path} as safetensors: {exc}") from exc


def build_t2s_model(config: T2SConfig, state_dict: dict[str, torch.Tensor] | None = None, *,
                    source: str = "t2s checkpoint", seed: int = 0, device: torch.device | str = "cpu",
                    dtype: torch.dtype = torch.float32) -> MaskGCTT2S:
    """A :class:`MaskGCTT2S` in eval mode: with ``state_dict`` loaded strictly, else with seeded random
    weights (the tiny / test profile)."""
    return build_or_load(lambda: MaskGCTT2S(config), state_dict, source=source, seed=seed, device=device, dtype=dtype)


def load_t2s_model(weights: str | Path, config: T2SConfig | str | Path | dict | None = None, *,
                   device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> MaskGCTT2S:
    """Load the T2S model from a ``model.safetensors`` file or a folder laid out like ``amphion/MaskGCT``
    (``t2s_model/model.safetensors``). ``config``: a :class:`T2SConfig`, a parsed JSON object or a
    JSON file (maskgct.json or its ``t2s_model`` section); None = the official configuration."""
    path = Path(weights)
    if path.is_dir():
        path = path / T2S_WEIGHTS_FILE
    if config is None:
        cfg = OFFICIAL_T2S
    elif isinstance(config, T2SConfig):
        cfg = config
    elif isinstance(config, dict):
        cfg = parse_t2s_config(config)
    else:
        cfg = parse_t2s_config(read_config_file(config))
    return build_t2s_model(cfg, read_safetensors(path), source=str(path), device=device, dtype=dtype)
