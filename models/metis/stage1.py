"""Metis stage 1: MaskGCT's text-to-semantic model plus a condition adapter (Amphion ``MetisStage1``).

The model IS :class:`models.maskgct.t2s.MaskGCTT2S` (same embeddings, ``DiffLlamaPrefix`` backbone,
logit head, decoding loop ``models.blocks.masked_generation.masked_decode``), with two changes:

* without phone conditioning (``use_phone_cond`` false: the VC / SE / TSE models) ``phone_emb`` and
  the backbone's ``cond_mlp`` are not built (their keys are absent from the official files);
* a condition adapter (``cond_adapter``) maps frame features ``finetune_cond`` (B, P+T, cond_dim)
  (w2v-bert-2.0 layer-17 features of prompt ‖ source, or of the noisy input) to (B, P+T, H), added
  to the backbone input on every frame. Per step the conditional input is
  ``[cond_emb(prompt) | target] + f`` and, with ``cfg > 0``, the unconditional one ``target + f[:, P:]``
  (prompt dropped, condition kept).

``build_stage1`` / ``load_stage1`` build or strictly load it; ``models/metis/lora.py`` merges the
LoRA releases into it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from models.blocks.diff_llama import load_state_dict_strict
from models.blocks.masked_generation import (
    DecodingStep,
    NoiseSource,
    ProgressCallback,
    apply_cfg,
    make_noise,
    masked_decode,
)
from models.core.random_init import Draws, init_random_weights
from models.maskgct.t2s import MaskGCTT2S, read_safetensors
from models.metis.configs import MetisConfigError, MetisStage1Config, adapter_kind, parse_stage1_config, read_stage1_config

__all__ = [
    "GatedAdapter",
    "MetisStage1",
    "PlainAdapter",
    "build_stage1",
    "load_stage1",
]


class GatedAdapter(nn.Module):
    """``out_linear(silu(in_linear(x))) * gate_scale`` (the reference's ``SimpleAdapter``; its gate
    starts at 0 in training, so an adapter that ignores the gate is wrong on trained weights)."""

    def __init__(self, in_dim: int, hidden_size: int) -> None:
        super().__init__()
        self.in_linear = nn.Linear(in_dim, 4 * hidden_size)
        self.out_linear = nn.Linear(4 * hidden_size, hidden_size)
        self.gate_scale = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out_linear(F.silu(self.in_linear(x))) * self.gate_scale


class PlainAdapter(nn.Sequential):
    """L2S's adapter: ``Linear(in, 4H), SiLU, Linear(4H, H)`` (keys ``cond_adapter.0/2``), no gate."""

    def __init__(self, in_dim: int, hidden_size: int) -> None:
        super().__init__(nn.Linear(in_dim, 4 * hidden_size), nn.SiLU(), nn.Linear(4 * hidden_size, hidden_size))


@dataclass
class _MetisContext:
    prompt_emb: torch.Tensor             # (B, P, H)
    phone_emb: torch.Tensor | None       # (B, Np, H) before cond_mlp, or None (no prefix)
    phone_mask: torch.Tensor | None
    cond_feat: torch.Tensor | None       # cond_adapter(finetune_cond) (B, P+T, H), or None
    cfg: float
    rescale_cfg: float


class MetisStage1(MaskGCTT2S):
    """Metis' semantic model for one ``ft_type`` (see :mod:`models.metis.configs`)."""

    def __init__(self, config: MetisStage1Config, ft_type: str) -> None:
        super().__init__(config.t2s_config())
        self.metis_config = config
        self.ft_type = ft_type
        kind = adapter_kind(ft_type)
        if ft_type == "tts" and not config.use_phone_cond:
            raise MetisConfigError("the TTS model needs use_phone_cond true")
        if not config.use_phone_cond:
            del self.phone_emb
            del self.diff_estimator.cond_mlp
        if kind == "gated":
            self.cond_adapter: nn.Module | None = GatedAdapter(config.cond_dim, config.hidden_size)
        elif kind == "plain":
            self.cond_adapter = PlainAdapter(config.cond_dim, config.hidden_size)
        else:
            self.cond_adapter = None

    @property
    def uses_phones(self) -> bool:
        return self.metis_config.use_phone_cond

    @property
    def has_adapter(self) -> bool:
        return self.cond_adapter is not None

    # -- one step ---------------------------------------------------------------------------

    def adapt(self, finetune_cond: torch.Tensor) -> torch.Tensor:
        """``cond_adapter(finetune_cond)``: (B, L, cond_dim) -> (B, L, H)."""
        if self.cond_adapter is None:
            raise MetisConfigError(f"the {self.ft_type!r} model has no condition adapter")
        if finetune_cond.dim() != 3 or finetune_cond.shape[-1] != self.metis_config.cond_dim:
            raise ValueError(f"finetune_cond must be (B, L, {self.metis_config.cond_dim}), got {tuple(finetune_cond.shape)}")
        return self.cond_adapter(finetune_cond.to(self.cond_emb.weight.dtype))

    def _context(self, prompt: torch.Tensor, phone_id: torch.Tensor | None, phone_mask: torch.Tensor | None,
                 cfg: float, rescale_cfg: float, finetune_cond: torch.Tensor | None = None,
                 target_len: int | None = None) -> _MetisContext:
        if prompt.dim() != 2:
            raise ValueError(f"prompt must be (B, P), got {tuple(prompt.shape)}")
        batch, n_prompt = prompt.shape
        phone_emb = None
        if phone_id is not None and self.uses_phones:
            if phone_id.dim() != 2 or phone_id.shape[0] != batch:
                raise ValueError(f"phone_id must be (B, Np) with B = {batch}, got {tuple(phone_id.shape)}")
            phone_emb = self.phone_emb(phone_id)
        elif phone_id is not None:
            raise ValueError(f"the {self.ft_type!r} model has no phone conditioning (use_phone_cond false)")
        cond_feat = None
        if finetune_cond is not None:
            if finetune_cond.shape[0] != batch:
                raise ValueError(f"finetune_cond batch {finetune_cond.shape[0]} != prompt batch {batch}")
            if target_len is not None and finetune_cond.shape[1] != n_prompt + target_len:
                raise ValueError(f"finetune_cond has {finetune_cond.shape[1]} frames; prompt ({n_prompt}) + "
                                 f"target ({target_len}) = {n_prompt + target_len} expected")
            cond_feat = self.adapt(finetune_cond)
        return _MetisContext(self.cond_emb(prompt), phone_emb, phone_mask, cond_feat, float(cfg), float(rescale_cfg))

    def _hidden(self, ctx: _MetisContext, seq: torch.Tensor, mask: torch.Tensor,
                t: float | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        batch, n_prompt = ctx.prompt_emb.shape[:2]
        t_vec = torch.as_tensor(t, dtype=torch.float32, device=seq.device)
        if t_vec.dim() == 0:
            t_vec = t_vec.expand(batch)
        target = torch.where(mask.unsqueeze(-1), self.mask_emb.weight[0], self.cond_emb(seq))
        inputs = torch.cat([ctx.prompt_emb, target], dim=1)
        if ctx.cond_feat is not None:
            if ctx.cond_feat.shape[1] != inputs.shape[1]:
                raise ValueError(f"finetune_cond has {ctx.cond_feat.shape[1]} frames, prompt + target = {inputs.shape[1]}")
            inputs = inputs + ctx.cond_feat
        cond = self.diff_estimator(inputs, t_vec, None, prefix=ctx.phone_emb, prefix_mask=ctx.phone_mask)[:, n_prompt:]
        uncond = None
        if ctx.cfg > 0:
            uncond_in = target if ctx.cond_feat is None else target + ctx.cond_feat[:, n_prompt:]
            uncond = self.diff_estimator(uncond_in, t_vec, None)
        return cond, uncond

    @torch.inference_mode()
    def step_logits(self, prompt: torch.Tensor, phone_id: torch.Tensor | None, seq: torch.Tensor, mask: torch.Tensor,
                    t: float | torch.Tensor, *, cfg: float, rescale_cfg: float = 0.75,
                    phone_mask: torch.Tensor | None = None, finetune_cond: torch.Tensor | None = None,
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """One step's ``(logits, cond_hidden, uncond_hidden)`` (logits post-CFG, before top-k)."""
        ctx = self._context(prompt, phone_id, phone_mask, cfg, rescale_cfg, finetune_cond, seq.shape[1])
        cond, uncond = self._hidden(ctx, seq, mask.to(torch.bool), t)
        return self.to_logit(apply_cfg(cond, uncond, ctx.cfg, ctx.rescale_cfg)), cond, uncond

    # -- decoding ---------------------------------------------------------------------------

    @torch.inference_mode()
    def generate(
        self,
        prompt: torch.Tensor,
        phone_id: torch.Tensor | None,
        target_len: int,
        *,
        finetune_cond: torch.Tensor | None = None,
        n_timesteps: int = 25,
        temp: float = 0.9,
        filter_thres: float = 0.98,
        cfg: float = 2.5,
        rescale_cfg: float = 0.75,
        phone_mask: torch.Tensor | None = None,
        noise: NoiseSource | Sequence[torch.Tensor] | None = None,
        seed: int | None = None,
        generator: torch.Generator | None = None,
        on_step: ProgressCallback | None = None,
        trace: list[DecodingStep] | None = None,
    ) -> torch.Tensor:
        """Semantic tokens (B, target_len), as the reference's ``reverse_diffusion``.

        ``prompt`` (B, P) semantic tokens (P may be 0: SE); ``phone_id`` (B, Np) prompt + target
        phones (TTS; None otherwise); ``finetune_cond`` (B, P + target_len, cond_dim) features for the
        adapter (VC / SE / TSE; None for TTS). Randomness, ``on_step`` and ``trace`` as
        :meth:`MaskGCTT2S.generate`.
        """
        if target_len < 1:
            raise ValueError(f"target_len must be >= 1, got {target_len}")
        if phone_id is None and finetune_cond is None:
            raise ValueError("give phone_id (TTS) or finetune_cond (VC / SE / TSE): the model needs a condition")
        ctx = self._context(prompt, phone_id, phone_mask, cfg, rescale_cfg, finetune_cond, int(target_len))
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


def _gate_near_one(module: nn.Module, draws: Draws) -> bool:
    # Tiny builds: a gate of 0 (the reference's init) would switch the adapter off; draw it near 1.
    if isinstance(module, GatedAdapter):
        draws.normal_(module.gate_scale, 1.0, 0.1)
        return True
    return False


def build_stage1(config: MetisStage1Config, ft_type: str, state_dict: Mapping[str, torch.Tensor] | None = None, *,
                 source: str = "metis stage-1 checkpoint", seed: int = 0, device: torch.device | str = "cpu",
                 dtype: torch.dtype = torch.float32) -> MetisStage1:
    """A :class:`MetisStage1` in eval mode: ``state_dict`` loaded strictly (exact keys and shapes,
    :class:`~models.blocks.diff_llama.CheckpointKeyError` naming them otherwise), else seeded random
    weights (``models.core.random_init``; adapter gates near 1)."""
    if state_dict is None:
        model = MetisStage1(config, ft_type)
        init_random_weights(model, seed, rules=(_gate_near_one,))
    else:
        with torch.device("meta"):
            model = MetisStage1(config, ft_type)
        load_state_dict_strict(model, state_dict, source, assign=True)
    return model.to(device=device, dtype=dtype).eval()


def load_stage1(weights: str | Path | Mapping[str, torch.Tensor], config: MetisStage1Config | dict | str | Path,
                ft_type: str, *, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> MetisStage1:
    """Load a complete stage-1 file (``metis_omni.safetensors``, a merged VC/SE/TSE file, MaskGCT's
    ``t2s_model/model.safetensors`` for ``tts``). ``config``: a :class:`MetisStage1Config`, a parsed
    Metis config or its path. The LoRA releases load through :func:`models.metis.lora.load_lora_stage1`."""
    if isinstance(config, MetisStage1Config):
        cfg = config
    elif isinstance(config, dict):
        cfg = parse_stage1_config(config)
    else:
        cfg = read_stage1_config(config)
    if isinstance(weights, Mapping):
        sd, source = dict(weights), "state dict"
    else:
        sd, source = read_safetensors(weights), str(weights)
    return build_stage1(cfg, ft_type, sd, source=source, device=device, dtype=dtype)
