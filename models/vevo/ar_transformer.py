"""The autoregressive content-style transformers of Vevo and Vevo1.5: a causal Llama over one shared
vocabulary, with a KV cache and the reference's sampling.

:class:`ContentStyleAR` holds the model and its :class:`ARVocabulary`; :meth:`ContentStyleAR.generate`
continues ``[in_BOS, inputs, in_EOS, (style), out_BOS, prompt]`` with output ids until the output
EOS or the length limit and returns the new ids (``output_only`` restricts sampling to output ids,
our extension). Sampling follows HF ``generate`` (:class:`SamplingConfig`), drawing from a
``torch.Generator`` or from injected uniforms. ``build_ar_model`` / ``load_ar_model`` build or
strictly load one (the official checkpoints: ``fm_ar_configs.OFFICIAL_CHECKPOINTS``). The
architecture, vocabulary layout and sampling steps: ``models/vevo/README.md``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from models.blocks.diff_llama import DiffLlamaMLP, build_or_load, rope_tables
from models.blocks.masked_generation import NoiseSource, make_noise
from models.core.checkpoints import load_state_dict_file
from models.vevo.fm_ar_configs import (
    ARConfig,
    LlamaSize,
    VevoARConfig,
    VevoSingARConfig,
    official_checkpoint,
    parse_ar_config,
    read_config_file,
)

__all__ = [
    "ARStep",
    "ARVocabulary",
    "ContentStyleAR",
    "KVCache",
    "LlamaCausalLM",
    "SamplingConfig",
    "TokenStream",
    "build_ar_model",
    "inverse_cdf_sample",
    "load_ar_model",
    "next_token_scores",
]

ProgressCallback = Callable[[int, int], None]

#: Tokens between two progress reports (1 s of Vevo's 50 Hz content-style tokens).
DEFAULT_PROGRESS_EVERY = 50
IGNORE_LABEL = -100  # HF's "no loss here" label


# ---------------------------------------------------------------------------------------------
# Vocabulary layout
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TokenStream:
    """One stream of the shared vocabulary: its own ids 0 .. size-1 live at offset .. offset+size-1."""

    name: str
    offset: int
    size: int
    bos_id: int
    eos_id: int

    def check(self, ids: torch.Tensor) -> None:
        if ids.dim() != 2:
            raise ValueError(f"{self.name} ids must be (B, T), got shape {tuple(ids.shape)}")
        if ids.dtype not in (torch.int64, torch.int32):
            raise ValueError(f"{self.name} ids must be integers, got {ids.dtype}")
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= self.size):
            raise ValueError(f"{self.name} ids must lie in [0, {self.size}), got [{int(ids.min())}, {int(ids.max())}]")

    def wrap(self, ids: torch.Tensor, pad_id: int, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``[BOS, ids + offset, EOS, PAD ...]`` per row and its attention mask (B, T+2).

        ``mask`` (B, T), 1 = token, must be right-padded (the reference's arithmetic assumes so);
        padded slots become PAD after the row's EOS.
        """
        batch, length = ids.shape
        if mask is None:
            mask = torch.ones_like(ids)
        if mask.shape != ids.shape:
            raise ValueError(f"{self.name} mask {tuple(mask.shape)} does not match its ids {tuple(ids.shape)}")
        valid = mask.to(torch.bool)
        lengths = valid.sum(1)
        positions = torch.arange(length, device=ids.device)
        if not torch.equal(valid, positions[None, :] < lengths[:, None]):
            raise ValueError(f"{self.name} mask must be right-padded (ones, then zeros)")
        self.check(torch.where(valid, ids, 0))
        body = torch.where(valid, ids.long() + self.offset, pad_id)
        body = torch.cat([body, body.new_full((batch, 1), pad_id)], dim=1)
        body.scatter_(1, lengths[:, None], self.eos_id)
        out = torch.cat([body.new_full((batch, 1), self.bos_id), body], dim=1)
        out_mask = (torch.arange(length + 2, device=ids.device)[None, :] < (lengths + 2)[:, None]).long()
        return out, out_mask


@dataclass(frozen=True)
class ARVocabulary:
    """The shared vocabulary of an AR model: main input stream, optional style stream, output stream."""

    input: TokenStream
    style: TokenStream | None
    output: TokenStream
    pad_id: int
    size: int

    @classmethod
    def from_config(cls, config: ARConfig) -> ARVocabulary:
        if isinstance(config, VevoARConfig):
            out_size = config.output_vocab_size
            pad = config.input_vocab_size + out_size
            return cls(
                input=TokenStream("input", out_size, config.input_vocab_size, pad + 1, pad + 2),
                style=None,
                output=TokenStream("output", 0, out_size, pad + 3, pad + 4),
                pad_id=pad,
                size=config.vocab_size,
            )
        if isinstance(config, VevoSingARConfig):
            cs, st = config.content_style_vocab_size, config.style_vocab_size
            pad = config.content_vocab_size + st + cs
            return cls(
                input=TokenStream("content", cs + st, config.content_vocab_size, pad + 1, pad + 2),
                style=TokenStream("style", cs, st, pad + 3, pad + 4),
                output=TokenStream("content_style", 0, cs, pad + 5, pad + 6),
                pad_id=pad,
                size=config.vocab_size,
            )
        raise TypeError(f"not an AR configuration: {type(config).__name__}")


# ---------------------------------------------------------------------------------------------
# The causal Llama
# ---------------------------------------------------------------------------------------------


class RMSNorm(nn.Module):
    """HF Llama RMSNorm: mean of squares in float32, gain applied in the input dtype."""

    def __init__(self, hidden_size: int, eps: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden_size))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x32 = x.to(torch.float32)
        normed = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * normed.to(x.dtype)


class KVCache:
    """Pre-allocated keys and values of every layer, (B, heads, capacity, head_dim) each."""

    def __init__(self, num_layers: int, batch: int, num_heads: int, capacity: int, head_dim: int,
                 device: torch.device, dtype: torch.dtype) -> None:
        shape = (batch, num_heads, capacity, head_dim)
        self.keys = [torch.empty(shape, device=device, dtype=dtype) for _ in range(num_layers)]
        self.values = [torch.empty(shape, device=device, dtype=dtype) for _ in range(num_layers)]
        self.capacity = capacity

    def update(self, layer: int, start: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store ``k``/``v`` at positions start .. start+n-1; return the keys/values of 0 .. start+n-1."""
        end = start + k.shape[2]
        if end > self.capacity:
            raise RuntimeError(f"KV cache overflow: position {end} > capacity {self.capacity}")
        self.keys[layer][:, :, start:end] = k
        self.values[layer][:, :, start:end] = v
        return self.keys[layer][:, :, :end], self.values[layer][:, :, :end]


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    first, second = x.chunk(2, dim=-1)
    return torch.cat([-second, first], dim=-1)


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention with RoPE (q/k/v/o without bias), via SDPA."""

    def __init__(self, size: LlamaSize) -> None:
        super().__init__()
        h = size.hidden_size
        self.num_heads = size.num_heads
        self.head_dim = size.head_dim
        self.q_proj = nn.Linear(h, h, bias=False)
        self.k_proj = nn.Linear(h, h, bias=False)
        self.v_proj = nn.Linear(h, h, bias=False)
        self.o_proj = nn.Linear(h, h, bias=False)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, attn_bias: torch.Tensor | None,
                cache: KVCache | None, layer: int, start: int) -> torch.Tensor:
        b, n, _ = x.shape

        def heads(t: torch.Tensor) -> torch.Tensor:
            return t.view(b, n, self.num_heads, self.head_dim).transpose(1, 2)

        cos, sin = cos.to(x.dtype), sin.to(x.dtype)
        q = heads(self.q_proj(x))
        k = heads(self.k_proj(x))
        q = q * cos + _rotate_half(q) * sin
        k = k * cos + _rotate_half(k) * sin
        v = heads(self.v_proj(x))
        if cache is not None:
            k, v = cache.update(layer, start, k, v)
        # A single new query may see every cached key; a block starting at 0 is plain causal.
        is_causal = attn_bias is None and n > 1
        if is_causal and start != 0:
            raise ValueError("a multi-token block must start at position 0 (prefill)")
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_bias, is_causal=is_causal)
        return self.o_proj(out.transpose(1, 2).reshape(b, n, -1))


class LlamaDecoderLayer(nn.Module):
    def __init__(self, size: LlamaSize) -> None:
        super().__init__()
        self.self_attn = CausalSelfAttention(size)
        self.mlp = DiffLlamaMLP(size.hidden_size, size.intermediate_size)  # the same SwiGLU block
        self.input_layernorm = RMSNorm(size.hidden_size, size.rms_norm_eps)
        self.post_attention_layernorm = RMSNorm(size.hidden_size, size.rms_norm_eps)

    def forward(self, h: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, attn_bias: torch.Tensor | None,
                cache: KVCache | None, layer: int, start: int) -> torch.Tensor:
        h = h + self.self_attn(self.input_layernorm(h), cos, sin, attn_bias, cache, layer, start)
        return h + self.mlp(self.post_attention_layernorm(h))


class LlamaBackbone(nn.Module):
    """``embed_tokens``, ``layers``, ``norm`` (HF ``LlamaModel`` names)."""

    def __init__(self, size: LlamaSize, vocab_size: int) -> None:
        super().__init__()
        self.size = size
        self.embed_tokens = nn.Embedding(vocab_size, size.hidden_size)
        self.layers = nn.ModuleList(LlamaDecoderLayer(size) for _ in range(size.num_layers))
        self.norm = RMSNorm(size.hidden_size, size.rms_norm_eps)

    def forward(self, ids: torch.Tensor, attention_mask: torch.Tensor | None, cache: KVCache | None,
                start: int) -> torch.Tensor:
        h = self.embed_tokens(ids)
        cos, sin = rope_tables(ids.shape[1], self.size.head_dim, offset=start, theta=self.size.rope_theta,
                               device=ids.device)
        attn_bias = _causal_padding_bias(attention_mask, h.dtype) if attention_mask is not None else None
        for index, layer in enumerate(self.layers):
            h = layer(h, cos, sin, attn_bias, cache, index, start)
        return self.norm(h)


def _causal_padding_bias(attention_mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor | None:
    """Additive (B, 1, L, L) bias: finfo.min where a key is in the future or padding (as HF's
    SDPA path builds it); None when nothing is padded (plain causal attention)."""
    keep = attention_mask.to(torch.bool)
    if bool(keep.all()):
        return None
    length = keep.shape[1]
    causal = torch.ones(length, length, dtype=torch.bool, device=keep.device).tril()
    allowed = causal[None, None] & keep[:, None, None, :]
    bias = torch.zeros(allowed.shape, dtype=dtype, device=keep.device)
    return bias.masked_fill(~allowed, torch.finfo(dtype).min)


class LlamaCausalLM(nn.Module):
    """``model`` (backbone) and ``lm_head`` (HF ``LlamaForCausalLM`` names)."""

    def __init__(self, size: LlamaSize, vocab_size: int) -> None:
        super().__init__()
        self.model = LlamaBackbone(size, vocab_size)
        self.lm_head = nn.Linear(size.hidden_size, vocab_size, bias=False)

    def forward(self, ids: torch.Tensor, attention_mask: torch.Tensor | None = None, cache: KVCache | None = None,
                start: int = 0, last_only: bool = False) -> torch.Tensor:
        """Logits (B, L, V) in float32, or (B, 1, V) of the last position with ``last_only``."""
        h = self.model(ids, attention_mask, cache, start)
        if last_only:
            h = h[:, -1:]
        return self.lm_head(h).float()

    def new_cache(self, batch: int, capacity: int, device: torch.device, dtype: torch.dtype) -> KVCache:
        size = self.model.size
        return KVCache(size.num_layers, batch, size.num_heads, capacity, size.head_dim, device, dtype)


# ---------------------------------------------------------------------------------------------
# Sampling
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SamplingConfig:
    """Decoding settings; the defaults are the reference's (fixed inside its ``generate``).

    ``max_length`` counts the whole sequence, prompt included (HF semantics); ``max_new_tokens``,
    when given, replaces it by ``prompt length + max_new_tokens``. ``top_k = 0`` and ``top_p = 1``
    disable those filters; ``do_sample=False`` is greedy (argmax after the min-length rule).
    """

    do_sample: bool = True
    temperature: float = 0.8
    top_k: int = 50
    top_p: float = 0.9
    min_new_tokens: int = 50
    max_length: int = 2000
    max_new_tokens: int | None = None
    output_only: bool = False

    def __post_init__(self) -> None:
        if self.do_sample and not self.temperature > 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if self.top_k < 0:
            raise ValueError(f"top_k must be >= 0 (0 = off), got {self.top_k}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.min_new_tokens < 0:
            raise ValueError(f"min_new_tokens must be >= 0, got {self.min_new_tokens}")
        if self.max_new_tokens is not None and self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")

    def new_token_limit(self, prompt_length: int) -> int:
        """How many tokens may be generated after a prompt of ``prompt_length``."""
        if self.max_new_tokens is not None:
            return self.max_new_tokens
        room = self.max_length - prompt_length
        if room < 1:
            raise ValueError(f"the AR prompt has {prompt_length} tokens, which leaves no room under "
                             f"max_length={self.max_length}; shorten the inputs or raise max_length")
        return room


def next_token_scores(logits: torch.Tensor, n_generated: int, sampling: SamplingConfig,
                      vocab: ARVocabulary) -> torch.Tensor:
    """The processed scores (B, V) of one step, in HF's order (see the module docstring)."""
    scores = logits.float()
    eos = vocab.output.eos_id
    columns = torch.arange(scores.shape[-1], device=scores.device)
    if n_generated < sampling.min_new_tokens:
        scores = scores.masked_fill(columns == eos, float("-inf"))
    if sampling.output_only:
        outside = (columns >= vocab.output.size) & (columns != eos)
        scores = scores.masked_fill(outside, float("-inf"))
    if not sampling.do_sample:
        return scores
    scores = scores / sampling.temperature
    if sampling.top_k > 0:
        k = min(sampling.top_k, scores.shape[-1])
        kth = torch.topk(scores, k).values[..., -1:]
        scores = scores.masked_fill(scores < kth, float("-inf"))
    if sampling.top_p < 1.0:
        ascending, order = torch.sort(scores, descending=False)
        cumulative = ascending.softmax(dim=-1).cumsum(dim=-1)
        drop_sorted = cumulative <= (1 - sampling.top_p)
        drop_sorted[..., -1:] = False  # the most likely token always stays
        drop = drop_sorted.scatter(1, order, drop_sorted)
        scores = scores.masked_fill(drop, float("-inf"))
    return scores


def inverse_cdf_sample(probs: torch.Tensor, uniforms: torch.Tensor) -> torch.Tensor:
    """Token (B,) = number of cumulative probabilities (vocabulary order) <= u; a u beyond the
    float32 total falls on the last token that has any probability."""
    cdf = probs.cumsum(dim=-1)
    index = (cdf <= uniforms.to(cdf.dtype)[:, None]).sum(dim=-1)
    last_possible = (probs > 0).cumsum(dim=-1).argmax(dim=-1)
    return torch.minimum(index, last_possible)


@dataclass
class ARStep:
    """What one decoding step saw and chose (collected when ``trace`` is given)."""

    logits: torch.Tensor        # (B, V) raw float32 logits
    probs: torch.Tensor | None  # (B, V) sampling distribution (None when greedy)
    token: torch.Tensor         # (B,)


# ---------------------------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------------------------


class ContentStyleAR(nn.Module):
    """Vevo / Vevo1.5 AR content-style model; state-dict keys as the official checkpoints
    (``model.model.embed_tokens.weight``, ``model.model.layers.N.self_attn.q_proj.weight``, ...,
    ``model.lm_head.weight``)."""

    def __init__(self, config: ARConfig) -> None:
        super().__init__()
        self.config = config
        self.vocab = ARVocabulary.from_config(config)
        self.model = LlamaCausalLM(config.llama, self.vocab.size)

    # -- layouts ----------------------------------------------------------------------------

    def prompt_ids(self, input_ids: torch.Tensor, prompt_output_ids: torch.Tensor | None = None, *,
                   style_ids: torch.Tensor | None = None) -> torch.Tensor:
        """The inference sequence (B, L): wrapped inputs (and style ids, Vevo1.5), output BOS and the
        prompt's content-style ids.

        ``input_ids``: Vevo: ids of the input stream, vq32 ids already shifted by
        :attr:`VevoARConfig.vc_input_ids_offset`; Vevo1.5: phone ids. ``prompt_output_ids``: the
        style reference's content-style ids (required by Vevo; Vevo1.5 may go without).
        """
        vocab = self.vocab
        if style_ids is not None and vocab.style is None:
            raise ValueError("this AR model has no style stream (style_ids is a Vevo1.5 input)")
        if prompt_output_ids is None:
            if isinstance(self.config, VevoARConfig):
                raise ValueError("Vevo's AR needs prompt_output_ids (the style reference's content-style tokens)")
            prompt_output_ids = input_ids.new_zeros((input_ids.shape[0], 0))
        parts = [vocab.input.wrap(input_ids, vocab.pad_id)[0]]
        if style_ids is not None:
            parts.append(vocab.style.wrap(style_ids, vocab.pad_id)[0])
        parts.append(vocab.output.wrap(prompt_output_ids, vocab.pad_id)[0][:, :-1])
        batches = {p.shape[0] for p in parts}
        if len(batches) != 1:
            raise ValueError(f"inputs disagree on the batch size: {sorted(batches)}")
        return torch.cat(parts, dim=1)

    def teacher_forced_layout(self, input_ids: torch.Tensor, input_mask: torch.Tensor, output_ids: torch.Tensor,
                              output_mask: torch.Tensor, *, style_ids: torch.Tensor | None = None,
                              style_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(ids, attention_mask, targets)`` (B, L) of the reference's ``forward`` layout for
        right-padded batches: ``[in_BOS, in, in_EOS, PAD.., (style), out_BOS, out, out_EOS, PAD..]``;
        ``targets`` are the ids over the output stream's real slots and -100 elsewhere (the positions
        whose likelihood the model scores)."""
        vocab = self.vocab
        if style_ids is not None and vocab.style is None:
            raise ValueError("this AR model has no style stream (style_ids is a Vevo1.5 input)")
        ids, masks = [], []
        for stream, sid, smask in ((vocab.input, input_ids, input_mask), (vocab.style, style_ids, style_mask)):
            if sid is None:
                continue
            wrapped, wmask = stream.wrap(sid, vocab.pad_id, smask)
            ids.append(wrapped)
            masks.append(wmask)
        out_ids, out_mask = vocab.output.wrap(output_ids, vocab.pad_id, output_mask)
        n_inputs = sum(p.shape[1] for p in ids)
        layout = torch.cat([*ids, out_ids], dim=1)
        attention = torch.cat([*masks, out_mask], dim=1)
        targets = torch.full_like(layout, IGNORE_LABEL)
        targets[:, n_inputs:] = torch.where(out_mask.bool(), out_ids, IGNORE_LABEL)
        return layout, attention, targets

    # -- scoring ----------------------------------------------------------------------------

    @torch.inference_mode()
    def logits(self, llama_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Float32 logits (B, L, V) of a whole sequence (causal; ``attention_mask`` 1 = token)."""
        if llama_ids.dim() != 2:
            raise ValueError(f"llama_ids must be (B, L), got {tuple(llama_ids.shape)}")
        return self.model(llama_ids, attention_mask)

    # -- decoding ---------------------------------------------------------------------------

    @torch.inference_mode()
    def continue_ids(self, llama_ids: torch.Tensor, sampling: SamplingConfig = SamplingConfig(), *,
                     noise: NoiseSource | Sequence[torch.Tensor] | None = None, seed: int | None = None,
                     generator: torch.Generator | None = None, on_progress: ProgressCallback | None = None,
                     progress_every: int = DEFAULT_PROGRESS_EVERY, trace: list[ARStep] | None = None) -> torch.Tensor:
        """New ids (1, N) after the sequence ``llama_ids`` (1, L), as HF ``generate``: decoding stops
        after the output EOS (included) or at the length limit. Nothing is stripped.

        Randomness: ``noise`` (uniform draws of shape (1,), one per sampled step, e.g. saved ones),
        else ``seed`` / ``generator``, else torch's global RNG. ``on_progress(done, limit)`` is
        called every ``progress_every`` tokens and once when decoding ends (``limit`` = the most
        tokens this call may produce).
        """
        if llama_ids.dim() != 2 or llama_ids.shape[0] != 1:
            raise ValueError(f"decoding runs one sequence at a time: llama_ids must be (1, L), got {tuple(llama_ids.shape)}")
        if int(llama_ids.min()) < 0 or int(llama_ids.max()) >= self.vocab.size:
            raise ValueError(f"llama_ids must lie in [0, {self.vocab.size})")
        if progress_every < 1:
            raise ValueError(f"progress_every must be >= 1, got {progress_every}")
        prompt_length = llama_ids.shape[1]
        limit = sampling.new_token_limit(prompt_length)
        source = make_noise(noise, seed=seed, generator=generator) if sampling.do_sample else None
        weight = self.model.lm_head.weight
        cache = self.model.new_cache(1, prompt_length + limit, weight.device, weight.dtype)
        logits = self.model(llama_ids, cache=cache, start=0, last_only=True)[:, -1]
        eos = self.vocab.output.eos_id
        tokens: list[torch.Tensor] = []
        for n in range(limit):
            scores = next_token_scores(logits, n, sampling, self.vocab)
            if source is None:
                probs, token = None, scores.argmax(dim=-1)
            else:
                probs = scores.softmax(dim=-1)
                token = inverse_cdf_sample(probs, source.uniform("token", (1,), probs.device))
            tokens.append(token)
            if trace is not None:
                trace.append(ARStep(logits.clone(), probs, token.clone()))
            finished = int(token) == eos or n + 1 == limit
            if on_progress is not None and (finished or (n + 1) % progress_every == 0):
                on_progress(n + 1, limit)
            if finished:
                break
            logits = self.model(token[:, None], cache=cache, start=prompt_length + n, last_only=True)[:, -1]
        return torch.stack(tokens, dim=1)

    def generate(self, input_ids: torch.Tensor, prompt_output_ids: torch.Tensor | None = None, *,
                 style_ids: torch.Tensor | None = None, temperature: float = 0.8, top_k: int = 50,
                 top_p: float = 0.9, min_new_tokens: int = 50, max_length: int = 2000,
                 max_new_tokens: int | None = None, output_only: bool = False,
                 noise: NoiseSource | Sequence[torch.Tensor] | None = None, seed: int | None = None,
                 generator: torch.Generator | None = None, on_progress: ProgressCallback | None = None,
                 progress_every: int = DEFAULT_PROGRESS_EVERY, trace: list[ARStep] | None = None) -> torch.Tensor:
        """Predicted content-style ids (1, N) for one utterance, as the reference ``generate``.

        Vevo: 50 Hz vq8192 ids; Vevo1.5: 12.5 Hz Coco content-style ids. Inputs as
        :meth:`prompt_ids` (batch 1). A leading output BOS and a trailing output EOS are removed;
        with ``output_only=False`` (the reference) the ids may, rarely, fall outside the output
        range. Arguments as :class:`SamplingConfig` and :meth:`continue_ids`.
        """
        sampling = SamplingConfig(do_sample=True, temperature=temperature, top_k=top_k, top_p=top_p,
                                  min_new_tokens=min_new_tokens, max_length=max_length,
                                  max_new_tokens=max_new_tokens, output_only=output_only)
        ids = self.prompt_ids(input_ids, prompt_output_ids, style_ids=style_ids)
        new = self.continue_ids(ids, sampling, noise=noise, seed=seed, generator=generator,
                                on_progress=on_progress, progress_every=progress_every, trace=trace)
        if int(new[0, 0]) == self.vocab.output.bos_id:
            new = new[:, 1:]
        if new.shape[1] and int(new[0, -1]) == self.vocab.output.eos_id:
            new = new[:, :-1]
        return new


# ---------------------------------------------------------------------------------------------
# Building and loading
# ---------------------------------------------------------------------------------------------


def build_ar_model(config: ARConfig, state_dict: dict[str, torch.Tensor] | None = None, *,
                   source: str = "AR checkpoint", seed: int = 0, device: torch.device | str = "cpu",
                   dtype: torch.dtype = torch.float32) -> ContentStyleAR:
    """A :class:`ContentStyleAR` in eval mode: ``state_dict`` loaded strictly (readable error on
    missing / unexpected / mis-shaped keys), else seeded random weights (the tiny profile)."""
    return build_or_load(lambda: ContentStyleAR(config), state_dict, source=source, seed=seed, device=device,
                         dtype=dtype)


def load_ar_model(weights: str | Path, config: ARConfig | dict | str | Path | None = None, *,
                  checkpoint: str = "Vq32ToVq8192", device: torch.device | str = "cpu",
                  dtype: torch.dtype = torch.float32) -> ContentStyleAR:
    """Load an AR model from its ``model.safetensors`` or from a folder laid out like its HF repo
    (``checkpoint`` names the official entry, e.g. ``"Vq32ToVq8192"``, ``"PhoneToVq8192"``,
    ``"ar_emilia101k_singnet7k"``: it gives the file inside the folder and, when ``config`` is
    None, the configuration). ``config``: an :data:`ARConfig`, a parsed JSON object or a JSON file."""
    entry = official_checkpoint(checkpoint, (VevoARConfig, VevoSingARConfig))
    path = Path(weights)
    if path.is_dir():
        path = path / entry.weights_file
    if config is None:
        cfg = entry.config
    elif isinstance(config, (VevoARConfig, VevoSingARConfig)):
        cfg = config
    elif isinstance(config, dict):
        cfg = parse_ar_config(config)
    else:
        cfg = parse_ar_config(read_config_file(config))
    assert isinstance(cfg, (VevoARConfig, VevoSingARConfig))
    return build_ar_model(cfg, load_state_dict_file(path), source=str(path), device=device, dtype=dtype)
