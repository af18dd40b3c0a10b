"""DualCodec-VALL-E's NAR model: given the semantic codes (DualCodec layer 0) of prompt + target and
the prompt's 7 acoustic layers, predicts the target's acoustic layers 1..7 one after the other,
greedily.

A bidirectional Llama whose RMSNorms are conditioned on the layer being predicted
(``embed_cond(q)``, MaskGCT's adaptive RMSNorm from ``models.blocks.diff_llama``), over
``[phone | prompt | target]`` embeddings: the prompt sums the embeddings of all 8 layers, the
target those of the layers already known. Module names are the official checkpoint's
(``model.model.layers.N...``, ``model.model.embed_cond``, ``model.lm_head.{0..6}``,
``phone_embedder``, ``prompt_embedder.embeddings.{0..7}``).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn as nn

from models.blocks.diff_llama import (
    AdaptiveRMSNorm,
    DiffLlamaAttention,
    DiffLlamaMLP,
    load_state_dict_strict,
    rope_tables,
)
from models.core.random_init import Draws, init_random_weights
from models.valle.configs import NUM_QUANTIZERS, ValleNARConfig

__all__ = ["MIN_PROMPT_FRAMES", "ValleNAR", "build_valle_nar"]

#: The reference asserts a prompt of at least 5 frames.
MIN_PROMPT_FRAMES = 5

ProgressCallback = Callable[[int, int], None]


class _NARLayer(nn.Module):
    def __init__(self, config: ValleNARConfig) -> None:
        super().__init__()
        h = config.hidden_size
        self.self_attn = DiffLlamaAttention(h, config.num_attention_heads)
        self.mlp = DiffLlamaMLP(h, config.intermediate_size)
        self.input_layernorm = AdaptiveRMSNorm(h, eps=config.rms_norm_eps)
        self.post_attention_layernorm = AdaptiveRMSNorm(h, eps=config.rms_norm_eps)

    def forward(self, x: torch.Tensor, c: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                bias: torch.Tensor | None) -> torch.Tensor:
        x = x + self.self_attn(self.input_layernorm(x, c), cos, sin, bias)
        return x + self.mlp(self.post_attention_layernorm(x, c))


class _NARBackbone(nn.Module):
    def __init__(self, config: ValleNARConfig) -> None:
        super().__init__()
        h = config.hidden_size
        self.head_dim = h // config.num_attention_heads
        self.embed_tokens = nn.Embedding(config.vocab_size, h)  # stored in the checkpoints, never used
        self.layers = nn.ModuleList(_NARLayer(config) for _ in range(config.num_hidden_layers))
        self.norm = AdaptiveRMSNorm(h, eps=config.rms_norm_eps)
        self.embed_cond = nn.Embedding(NUM_QUANTIZERS, h)

    def forward(self, h: torch.Tensor, layer: int, mask: torch.Tensor) -> torch.Tensor:
        c = self.embed_cond(torch.tensor(layer, device=h.device))  # (H,): one condition for the batch
        cos, sin = rope_tables(h.shape[1], self.head_dim, device=h.device)
        keep = mask.to(torch.bool)[:, None, None, :]
        bias = None
        if not bool(keep.all()):
            bias = torch.zeros(keep.shape, dtype=h.dtype, device=h.device).masked_fill(~keep, torch.finfo(h.dtype).min)
        for block in self.layers:
            h = block(h, c, cos, sin, bias)
        return self.norm(h, c)


class _NARHeads(nn.Module):
    def __init__(self, config: ValleNARConfig) -> None:
        super().__init__()
        self.model = _NARBackbone(config)
        self.lm_head = nn.ModuleList(nn.Linear(config.hidden_size, config.vocab_size, bias=False)
                                     for _ in range(NUM_QUANTIZERS - 1))


class _CodeEmbeddings(nn.Module):
    def __init__(self, config: ValleNARConfig) -> None:
        super().__init__()
        sizes = [config.first_layer_vocab_size] + [config.target_vocab_size] * (NUM_QUANTIZERS - 1)
        self.embeddings = nn.ModuleList(nn.Embedding(n, config.hidden_size) for n in sizes)

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        """Sum over layers of each layer's embedding: ``codes`` (Q, B, T) -> (B, T, H)."""
        total = self.embeddings[0](codes[0])
        for q in range(1, codes.shape[0]):
            total = total + self.embeddings[q](codes[q])
        return total


class ValleNAR(nn.Module):
    def __init__(self, config: ValleNARConfig) -> None:
        super().__init__()
        self.config = config
        self.model = _NARHeads(config)
        self.phone_embedder = nn.Embedding(config.phone_vocab_size + 10, config.hidden_size)
        self.prompt_embedder = _CodeEmbeddings(config)

    def _check_codes(self, codes: torch.Tensor) -> None:
        if codes.dim() != 3 or codes.shape[0] != NUM_QUANTIZERS:
            raise ValueError(f"codes must be ({NUM_QUANTIZERS}, B, T), got {tuple(codes.shape)}")
        limits = [self.config.first_layer_vocab_size] + [self.config.target_vocab_size] * (NUM_QUANTIZERS - 1)
        for q, limit in enumerate(limits):
            if codes[q].numel() and (int(codes[q].min()) < 0 or int(codes[q].max()) >= limit):
                raise ValueError(f"layer {q} codes must lie in [0, {limit})")

    @torch.inference_mode()
    def forward(self, phone_ids: torch.Tensor, phone_mask: torch.Tensor, codes: torch.Tensor,
                code_mask: torch.Tensor, layer: int, prompt_len: int) -> torch.Tensor:
        """Float32 logits (B, 1 + P + T, V) of head ``layer - 1`` over ``[phone | prompt | target]``.

        ``codes`` (8, B, P + T): layer 0 semantic, 1..7 acoustic (the target's layers >= ``layer``
        are not read); ``code_mask`` (B, P + T), 1 = valid (the prompt part is taken as valid)."""
        if not 1 <= layer < NUM_QUANTIZERS:
            raise ValueError(f"layer must be 1..{NUM_QUANTIZERS - 1}, got {layer}")
        self._check_codes(codes)
        h = torch.cat([self.phone_embedder(phone_ids), self.prompt_embedder(codes[:, :, :prompt_len]),
                       self.prompt_embedder(codes[:layer, :, prompt_len:])], dim=1)
        mask = torch.cat([phone_mask, torch.ones_like(code_mask[:, :prompt_len]), code_mask[:, prompt_len:]], dim=1)
        out = self.model.model(h, layer, mask)
        return self.model.lm_head[layer - 1](out).float()

    @torch.inference_mode()
    def generate(self, prompt_codes: torch.Tensor, target_semantic: torch.Tensor, *,
                 on_progress: ProgressCallback | None = None, trace: list[torch.Tensor] | None = None) -> torch.Tensor:
        """Codes (8, B, T) of the target: its semantic codes and 7 greedily predicted acoustic layers.

        ``prompt_codes`` (8, B, P) (P >= 5), ``target_semantic`` (B, T). The phone input is the
        reference's single dummy id 0, attended. Unlike the reference (whose write-back is only right
        for B = 1), every row of a batch keeps its own codes. ``trace`` collects the target logits
        (B, T, V) of each layer; ``on_progress(layer, 7)`` after each."""
        batch, frames = target_semantic.shape
        prompt_len = prompt_codes.shape[2]
        if prompt_len < MIN_PROMPT_FRAMES:
            raise ValueError(f"the NAR needs a prompt of at least {MIN_PROMPT_FRAMES} frames, got {prompt_len}")
        if prompt_codes.shape[1] != batch:
            raise ValueError(f"prompt ({prompt_codes.shape[1]}) and target ({batch}) disagree on the batch")
        target = torch.cat([target_semantic[None].long(), target_semantic.new_ones((NUM_QUANTIZERS - 1, batch, frames)).long()])
        codes = torch.cat([prompt_codes.long(), target], dim=2)
        phone_ids = codes.new_zeros((batch, 1))
        phone_mask = torch.ones_like(phone_ids)
        code_mask = torch.ones_like(codes[0])
        steps = NUM_QUANTIZERS - 1
        for layer in range(1, NUM_QUANTIZERS):
            logits = self.forward(phone_ids, phone_mask, codes, code_mask, layer, prompt_len)[:, -frames:]
            if trace is not None:
                trace.append(logits)
            codes[layer, :, prompt_len:] = logits[..., :self.config.target_vocab_size].argmax(dim=-1)
            if on_progress is not None:
                on_progress(layer, steps)
        return codes[:, :, prompt_len:]


def _adaptive_norms_near_one(seed: int) -> Callable[[nn.Module], None]:
    """Tiny builds, after the common draws: every adaptive RMSNorm's gain near 1 (bias normal(1, 0.1),
    condition weights normal(0, 0.3 / sqrt(H))), from a generator of its own."""
    def adjust(model: nn.Module) -> None:
        draws = Draws(seed + 1)
        for module in model.modules():
            if isinstance(module, AdaptiveRMSNorm):
                w = module.to_weight
                draws.normal_(w.weight, 0.0, 0.3 / w.in_features ** 0.5)
                draws.normal_(w.bias, 1.0, 0.1)
    return adjust


def build_valle_nar(config: ValleNARConfig, state_dict: dict[str, torch.Tensor] | None = None, *,
                    source: str = "VALL-E NAR checkpoint", seed: int = 0, device: torch.device | str = "cpu",
                    dtype: torch.dtype = torch.float32) -> ValleNAR:
    """A :class:`ValleNAR` in eval mode: ``state_dict`` loaded strictly, else seeded random weights."""
    if state_dict is None:
        model = ValleNAR(config)
        init_random_weights(model, seed, after=_adaptive_norms_near_one(seed))
    else:
        with torch.device("meta"):
            model = ValleNAR(config)
        load_state_dict_strict(model, state_dict, source, assign=True)
    return model.to(device=device, dtype=dtype).eval()
