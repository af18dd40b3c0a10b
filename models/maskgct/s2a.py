"""MaskGCT semantic-to-acoustic models (Amphion ``MaskGCT_S2A`` with a ``DiffLlama`` backbone).

:class:`MaskGCTS2A` is one of two checkpoints of the same class: the 1-layer model predicts RVQ
layer 0, the full model layers 1..11 given layer 0; :func:`semantic_to_acoustic` chains them.
:meth:`MaskGCTS2A.generate` decodes one layer after the other by masked generative passes.
``build_s2a_model`` / ``load_s2a_model`` build or strictly load one (weights in ``amphion/MaskGCT``).
How a step works and what the files hold: ``models/maskgct/README.md``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn

from models.blocks.diff_llama import DiffLlama, build_or_load
from models.blocks.masked_generation import (
    DecodingStep,
    NoiseSource,
    ProgressCallback,
    apply_cfg,
    executed_steps,
    make_noise,
    masked_decode,
)
from models.maskgct.generation_configs import (
    S2A_VARIANTS,
    S2AConfig,
    official_s2a_config,
    parse_s2a_config,
    read_config_file,
)
from models.maskgct.t2s import HUB_REPO, read_safetensors
from models.weights import HubFiles

__all__ = [
    "S2A_HUB_FILES",
    "S2A_WEIGHTS_FILES",
    "MaskGCTS2A",
    "build_s2a_model",
    "load_s2a_model",
    "semantic_to_acoustic",
]

#: Variant -> weights file inside the HF repo.
S2A_WEIGHTS_FILES = {
    "1layer": "s2a_model/s2a_model_1layer/model.safetensors",
    "full": "s2a_model/s2a_model_full/model.safetensors",
}
S2A_HUB_FILES = HubFiles(repo_id=HUB_REPO, patterns=tuple(S2A_WEIGHTS_FILES.values()))

# maskgct_inference's settings.
DEFAULT_STEPS = (25, 10, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1)
DEFAULT_TEMP = 1.5
DEFAULT_FILTER_THRES = 0.98
DEFAULT_CFG = 2.5
DEFAULT_RESCALE_CFG = 0.75


@dataclass
class _S2AContext:
    prompt_emb: torch.Tensor   # (B, P, H)
    cond: torch.Tensor         # (B, P+T, H) semantic condition (without the layer embedding)
    cfg: float
    rescale_cfg: float
    max_layer: int


class MaskGCTS2A(nn.Module):
    def __init__(self, config: S2AConfig) -> None:
        super().__init__()
        self.config = config
        h = config.hidden_size
        self.hidden_size = h
        self.num_quantizer = config.num_quantizer
        self.layer_emb = nn.Embedding(config.num_quantizer, h)
        self.mask_emb = nn.Embedding(1, h)
        self.token_emb = nn.ModuleList(nn.Embedding(config.codebook_size, h) for _ in range(config.num_quantizer))
        self.to_logits = nn.ModuleList(nn.Linear(h, config.codebook_size) for _ in range(config.num_quantizer))
        self.cond_emb = nn.Embedding(config.cond_codebook_size, h)
        self.diff_estimator = DiffLlama(h, config.num_heads, config.num_layers)

    # -- inputs -----------------------------------------------------------------------------

    def embed_condition(self, cond: torch.Tensor) -> torch.Tensor:
        """Semantic tokens (B, L) -> ``cond_emb`` (B, L, H); float (B, L, H) is returned as is."""
        if cond.is_floating_point():
            if cond.dim() != 3 or cond.shape[-1] != self.hidden_size:
                raise ValueError(f"a float condition must be (B, L, {self.hidden_size}), got {tuple(cond.shape)}")
            return cond
        if cond.dim() != 2:
            raise ValueError(f"semantic tokens must be (B, L), got {tuple(cond.shape)}")
        return self.cond_emb(cond)

    def _embed_codes(self, codes: torch.Tensor, n_layers: int) -> torch.Tensor:
        """``sum_{j < n_layers} token_emb[j](codes[..., j])`` for codes (B, N, >= n_layers)."""
        total = torch.zeros(*codes.shape[:2], self.hidden_size, device=codes.device,
                            dtype=self.mask_emb.weight.dtype)
        for j in range(n_layers):
            total = total + self.token_emb[j](codes[..., j])
        return total

    def _context(self, cond: torch.Tensor, prompt: torch.Tensor, cfg: float, rescale_cfg: float,
                 max_layer: int | None) -> _S2AContext:
        cond_emb = self.embed_condition(cond)
        if prompt.dim() != 3 or prompt.shape[0] != cond_emb.shape[0]:
            raise ValueError(f"prompt codes must be (B, P, num_quantizer), got {tuple(prompt.shape)}")
        if prompt.shape[-1] < self.num_quantizer:
            raise ValueError(f"prompt codes have {prompt.shape[-1]} layers, the model needs {self.num_quantizer}")
        if cond_emb.shape[1] <= prompt.shape[1]:
            raise ValueError(f"the condition ({cond_emb.shape[1]} frames) must be longer than the prompt ({prompt.shape[1]})")
        max_layer = self.num_quantizer if max_layer is None else int(max_layer)
        if not 1 <= max_layer <= self.num_quantizer:
            raise ValueError(f"max_layer must be in 1..{self.num_quantizer}, got {max_layer}")
        prompt_emb = self._embed_codes(prompt, self.num_quantizer)
        return _S2AContext(prompt_emb, cond_emb, float(cfg), float(rescale_cfg), max_layer)

    # -- one step ---------------------------------------------------------------------------

    def _hidden(self, ctx: _S2AContext, cum: torch.Tensor, layer: int, seq: torch.Tensor, mask: torch.Tensor,
                t: float | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        batch, n_prompt = ctx.prompt_emb.shape[:2]
        t_vec = torch.as_tensor(t, dtype=torch.float32, device=seq.device)
        if t_vec.dim() == 0:
            t_vec = t_vec.expand(batch)
        layer_cond = ctx.cond + self.layer_emb.weight[layer]
        mask_token = self.mask_emb.weight[0]
        target = cum + torch.where(mask.unsqueeze(-1), mask_token, self.token_emb[layer](seq))
        target = target + mask_token * float(ctx.max_layer - 1 - layer)
        inputs = torch.cat([ctx.prompt_emb, target], dim=1)
        cond = self.diff_estimator(inputs, t_vec, layer_cond, None)[:, n_prompt:]
        uncond = self.diff_estimator(target, t_vec, layer_cond[:, n_prompt:], None) if ctx.cfg > 0 else None
        return cond, uncond

    def _logits(self, ctx: _S2AContext, cum: torch.Tensor, layer: int, seq: torch.Tensor, mask: torch.Tensor,
                t: float | torch.Tensor) -> torch.Tensor:
        cond, uncond = self._hidden(ctx, cum, layer, seq, mask, t)
        return self.to_logits[layer](apply_cfg(cond, uncond, ctx.cfg, ctx.rescale_cfg))

    @torch.inference_mode()
    def step_logits(self, cond: torch.Tensor, prompt: torch.Tensor, lower_codes: torch.Tensor | None,
                    seq: torch.Tensor, mask: torch.Tensor, t: float | torch.Tensor, layer: int, *,
                    cfg: float = DEFAULT_CFG, rescale_cfg: float = DEFAULT_RESCALE_CFG,
                    max_layer: int | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """One step of layer ``layer``: ``(logits, cond_hidden, uncond_hidden)``. ``lower_codes``
        (B, T, layer) are the decided layers below (None for layer 0)."""
        ctx = self._context(cond, prompt, cfg, rescale_cfg, max_layer)
        n_target = ctx.cond.shape[1] - ctx.prompt_emb.shape[1]
        if lower_codes is None:
            lower_codes = torch.zeros(seq.shape[0], n_target, 0, dtype=torch.long, device=seq.device)
        if lower_codes.shape[-1] != layer:
            raise ValueError(f"layer {layer} needs {layer} lower layers of codes, got {lower_codes.shape[-1]}")
        cum = self._embed_codes(lower_codes, layer)
        cond_h, uncond_h = self._hidden(ctx, cum, layer, seq, mask.to(torch.bool), t)
        return self.to_logits[layer](apply_cfg(cond_h, uncond_h, ctx.cfg, ctx.rescale_cfg)), cond_h, uncond_h

    # -- decoding ---------------------------------------------------------------------------

    def planned_steps(self, n_timesteps: Sequence[int], target_len: int, first_layer: int = 0,
                      max_layer: int | None = None) -> int:
        """Steps that :meth:`generate` will execute (the total passed to ``on_step``)."""
        max_layer = self.num_quantizer if max_layer is None else max_layer
        return sum(executed_steps(int(n_timesteps[l]), target_len) for l in range(first_layer, max_layer))

    @torch.inference_mode()
    def generate(
        self,
        cond: torch.Tensor,
        prompt: torch.Tensor,
        *,
        n_timesteps: Sequence[int] | None = None,
        temp: float = DEFAULT_TEMP,
        filter_thres: float = DEFAULT_FILTER_THRES,
        cfg: float = DEFAULT_CFG,
        rescale_cfg: float = DEFAULT_RESCALE_CFG,
        gt_code: torch.Tensor | None = None,
        max_layer: int | None = None,
        noise: NoiseSource | Sequence[torch.Tensor] | None = None,
        seed: int | None = None,
        generator: torch.Generator | None = None,
        on_step: ProgressCallback | None = None,
        trace: list[DecodingStep] | None = None,
    ) -> torch.Tensor:
        """Acoustic codes (B, T, max_layer) as Amphion's ``reverse_diffusion``.

        ``cond``: semantic tokens (B, P+T) of prompt and target (or their (B, P+T, H) embedding);
        ``prompt``: the prompt's acoustic codes (B, P, >= num_quantizer) in (B, T, layer) order;
        ``n_timesteps``: one step count per quantizer layer (``num_quantizer`` entries; the entries
        of ``gt_code``'s layers are ignored), default MaskGCT's [25, 10, 1, ...];
        ``gt_code`` (B, T, g): layers 0..g-1 given, copied to the output. Randomness, ``on_step``
        and ``trace`` as in :meth:`MaskGCTT2S.generate` (``on_step`` counts over all layers).
        """
        ctx = self._context(cond, prompt, cfg, rescale_cfg, max_layer)
        batch, n_prompt = ctx.prompt_emb.shape[:2]
        n_target = ctx.cond.shape[1] - n_prompt
        if n_timesteps is None:
            n_timesteps = DEFAULT_STEPS[: self.num_quantizer]
        n_timesteps = [int(n) for n in n_timesteps]
        if len(n_timesteps) != self.num_quantizer:
            raise ValueError(f"n_timesteps needs one entry per quantizer layer ({self.num_quantizer}), got {len(n_timesteps)}")
        device = ctx.cond.device
        out = torch.zeros(batch, n_target, ctx.max_layer, dtype=torch.long, device=device)
        first = 0
        if gt_code is not None:
            if gt_code.dim() != 3 or tuple(gt_code.shape[:2]) != (batch, n_target) or gt_code.shape[-1] > ctx.max_layer:
                raise ValueError(f"gt_code must be (B={batch}, T={n_target}, g <= {ctx.max_layer}), got {tuple(gt_code.shape)}")
            first = gt_code.shape[-1]
            out[..., :first] = gt_code
        cum = self._embed_codes(out, first)
        source = make_noise(noise, seed=seed, generator=generator)
        total = self.planned_steps(n_timesteps, n_target, first, ctx.max_layer)
        done = 0
        for layer in range(first, ctx.max_layer):
            progress = None
            if on_step is not None:
                progress = (lambda offset: (lambda step, _n: on_step(offset + step, total)))(done)
            seq = masked_decode(
                lambda s, m, t, layer=layer, cum=cum: self._logits(ctx, cum, layer, s, m, t),
                batch,
                n_target,
                n_steps=n_timesteps[layer],
                temp=temp,
                filter_thres=filter_thres,
                noise=source,
                device=device,
                on_step=progress,
                trace=trace,
                layer=layer,
            )
            done += executed_steps(n_timesteps[layer], n_target)
            cum = cum + self.token_emb[layer](seq)
            out[..., layer] = seq
        return out


@torch.inference_mode()
def semantic_to_acoustic(
    s2a_1layer: MaskGCTS2A,
    s2a_full: MaskGCTS2A,
    semantic: torch.Tensor,
    prompt: torch.Tensor,
    *,
    n_timesteps: Sequence[int] | None = None,
    temp: float = DEFAULT_TEMP,
    filter_thres: float = DEFAULT_FILTER_THRES,
    cfg: float = DEFAULT_CFG,
    rescale_cfg: float = DEFAULT_RESCALE_CFG,
    first_layer_cfg: float | None = None,
    noise_1layer: NoiseSource | Sequence[torch.Tensor] | None = None,
    noise_full: NoiseSource | Sequence[torch.Tensor] | None = None,
    seed: int | None = None,
    generator: torch.Generator | None = None,
    on_step: ProgressCallback | None = None,
    trace_1layer: list[DecodingStep] | None = None,
    trace_full: list[DecodingStep] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """MaskGCT's two-stage S2A (``semantic2acoustic`` without the codec): the 1-layer model predicts
    layer 0 with ``n_timesteps[:1]``, then the full model the remaining layers with that layer as
    ``gt_code``. Returns ``(predict_1layer (B, T, 1), predict_full (B, T, nq))``.

    ``semantic`` (B, P+T) covers prompt and target; ``prompt`` (B, P, nq) acoustic prompt codes.
    Saved noise is given per stage; a ``seed`` / ``generator`` feeds both stages from one stream.
    ``first_layer_cfg``: the 1-layer model's guidance when it differs from ``cfg`` (Metis runs it at 0).
    """
    if n_timesteps is None:
        n_timesteps = DEFAULT_STEPS[: s2a_full.num_quantizer]
    n_timesteps = [int(n) for n in n_timesteps]
    if (noise_1layer is None) != (noise_full is None):
        raise ValueError("give saved noise for both stages or for neither")
    shared = None if noise_1layer is not None else make_noise(seed=seed, generator=generator)
    n_target = semantic.shape[1] - prompt.shape[1]
    total = s2a_1layer.planned_steps(n_timesteps[:1], n_target) + s2a_full.planned_steps(n_timesteps, n_target, 1)
    first_steps = s2a_1layer.planned_steps(n_timesteps[:1], n_target)

    def progress(offset: int):
        if on_step is None:
            return None
        return lambda step, _n: on_step(offset + step, total)

    layer0 = s2a_1layer.generate(
        semantic, prompt, n_timesteps=n_timesteps[:1], temp=temp, filter_thres=filter_thres,
        cfg=cfg if first_layer_cfg is None else first_layer_cfg, rescale_cfg=rescale_cfg, noise=noise_1layer if shared is None else shared, on_step=progress(0),
        trace=trace_1layer,
    )
    full = s2a_full.generate(
        semantic, prompt, n_timesteps=n_timesteps, temp=temp, filter_thres=filter_thres, cfg=cfg,
        rescale_cfg=rescale_cfg, gt_code=layer0, noise=noise_full if shared is None else shared,
        on_step=progress(first_steps), trace=trace_full,
    )
    return layer0, full


# ---------------------------------------------------------------------------------------------
# Building and loading
# ---------------------------------------------------------------------------------------------


def build_s2a_model(config: S2AConfig, state_dict: dict[str, torch.Tensor] | None = None, *,
                    source: str = "s2a checkpoint", seed: int = 0, device: torch.device | str = "cpu",
                    dtype: torch.dtype = torch.float32) -> MaskGCTS2A:
    """A :class:`MaskGCTS2A` in eval mode: with ``state_dict`` loaded strictly, else with seeded random
    weights (the tiny / test profile)."""
    return build_or_load(lambda: MaskGCTS2A(config), state_dict, source=source, seed=seed, device=device, dtype=dtype)


def load_s2a_model(weights: str | Path, variant: str, config: S2AConfig | str | Path | dict | None = None, *,
                   device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> MaskGCTS2A:
    """Load an S2A model (``variant`` ``"1layer"`` or ``"full"``) from its ``model.safetensors`` or a
    folder laid out like ``amphion/MaskGCT``. ``config``: an :class:`S2AConfig`, a parsed JSON object
    or a JSON file (maskgct.json, its ``s2a_model`` object or the variant's section); None = official."""
    if variant not in S2A_VARIANTS:
        raise ValueError(f"unknown S2A variant {variant!r}; expected one of {sorted(S2A_VARIANTS)}")
    path = Path(weights)
    if path.is_dir():
        path = path / S2A_WEIGHTS_FILES[variant]
    if config is None:
        cfg = official_s2a_config(variant)
    elif isinstance(config, S2AConfig):
        cfg = config
    elif isinstance(config, dict):
        cfg = parse_s2a_config(config, variant)
    else:
        cfg = parse_s2a_config(read_config_file(config), variant)
    return build_s2a_model(cfg, read_safetensors(path), source=str(path), device=device, dtype=dtype)
