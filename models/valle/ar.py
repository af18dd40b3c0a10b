"""DualCodec-VALL-E's AR model: a causal Llama over one vocabulary of specials, DualCodec semantic
codes and Whisper text ids, continuing ``[text, SEP, prompt codes]`` with codes.

The Llama itself is Vevo's (``models.vevo.ar_transformer.LlamaCausalLM``: HF ``LlamaForCausalLM``
names, RMSNorm, RoPE, SwiGLU, KV cache), held as ``llm`` so the state-dict keys are the official
checkpoint's (``llm.model.embed_tokens.weight`` ... ``llm.lm_head.weight``). Sampling is HF
``generate``'s with a repetition penalty over the whole context (:func:`valle_scores`); the draw is
inverse-CDF over a uniform from a ``torch.Generator`` or from injected uniforms.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn as nn

from models.blocks.diff_llama import load_state_dict_strict
from models.blocks.masked_generation import NoiseSource, make_noise
from models.core.random_init import Draws, init_random_weights
from models.valle.configs import ValleARConfig
from models.vevo.ar_transformer import (
    ARVocabulary,
    LlamaCausalLM,
    RMSNorm,
    SamplingConfig,
    TokenStream,
    inverse_cdf_sample,
    next_token_scores,
)

__all__ = ["ARSampling", "ARTrace", "ValleAR", "build_valle_ar", "valle_scores"]

ProgressCallback = Callable[[int, int], None]


@dataclass(frozen=True)
class ARSampling:
    """The AR's decoding settings. Defaults: the reference CLI / gradio values; ``max_length``
    counts the prompt (HF semantics), 1000 as the reference's ``valle_ar_inference``."""

    top_k: int = 15
    top_p: float = 0.85
    temperature: float = 1.0
    repeat_penalty: float = 1.1
    max_length: int = 1000
    speech_only: bool = False
    """Our extension (off = the reference): only speech codes and EOS may be sampled."""

    def __post_init__(self) -> None:
        if not self.temperature > 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if self.top_k < 0:
            raise ValueError(f"top_k must be >= 0 (0 = off), got {self.top_k}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if not self.repeat_penalty > 0:
            raise ValueError(f"repeat_penalty must be > 0, got {self.repeat_penalty}")
        if self.max_length < 2:
            raise ValueError(f"max_length must be >= 2, got {self.max_length}")

    def warpers(self) -> SamplingConfig:
        """Temperature / top-k / top-p as Vevo's :class:`SamplingConfig` (no minimum length)."""
        return SamplingConfig(do_sample=True, temperature=self.temperature, top_k=self.top_k, top_p=self.top_p,
                              min_new_tokens=0, max_length=self.max_length)


def valle_scores(logits: torch.Tensor, context: torch.Tensor, sampling: ARSampling,
                 vocab: ARVocabulary) -> torch.Tensor:
    """Processed scores (B, V) of one step, in HF's order: repetition penalty over every id of
    ``context`` (B, N) (``l * p`` for negative logits, ``l / p`` otherwise, each id once), then
    temperature, top-k, top-p."""
    scores = logits.float()
    if sampling.speech_only:
        columns = torch.arange(scores.shape[-1], device=scores.device)
        speech = vocab.output
        allowed = ((columns >= speech.offset) & (columns < speech.offset + speech.size)) | (columns == speech.eos_id)
        scores = scores.masked_fill(~allowed, float("-inf"))
    if sampling.repeat_penalty != 1.0:
        seen = scores.gather(1, context)
        seen = torch.where(seen < 0, seen * sampling.repeat_penalty, seen / sampling.repeat_penalty)
        scores = scores.scatter(1, context, seen)
    return next_token_scores(scores, 0, sampling.warpers(), vocab)


@dataclass
class ARTrace:
    """What one decoding step saw and chose."""

    logits: torch.Tensor  # (1, V) raw float32 logits
    probs: torch.Tensor   # (1, V) the sampling distribution
    token: int


def _rmsnorm_near_one(module: nn.Module, draws: Draws) -> bool:
    if isinstance(module, RMSNorm):
        draws.normal_(module.weight, 1.0, 0.1)
        return True
    return False


class ValleAR(nn.Module):
    """``LLM`` of the reference: ``llm`` is the causal Llama."""

    def __init__(self, config: ValleARConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        self.vocab = ARVocabulary(
            input=TokenStream("text", c.text_offset, c.text_vocab_size, c.bos_token_id, c.eos_token_id),
            style=None,
            output=TokenStream("speech", c.initial_offset, c.speech_vocab_size, c.bos_token_id, c.eos_token_id),
            pad_id=c.pad_token_id,
            size=c.vocab_size,
        )
        self.llm = LlamaCausalLM(c.llama, c.vocab_size)

    # -- layouts ----------------------------------------------------------------------------

    def layout(self, text_ids: torch.Tensor, prompt_codes: torch.Tensor) -> torch.Tensor:
        """``[text + text_offset, SEP, prompt + initial_offset]`` (B, Lt + 1 + P), no padding."""
        self.vocab.input.check(text_ids)
        self.vocab.output.check(prompt_codes)
        if text_ids.shape[0] != prompt_codes.shape[0]:
            raise ValueError(f"text and prompt disagree on the batch: {text_ids.shape[0]} vs {prompt_codes.shape[0]}")
        sep = text_ids.new_full((text_ids.shape[0], 1), self.config.sep_token)
        return torch.cat([text_ids.long() + self.config.text_offset, sep.long(),
                          prompt_codes.long() + self.config.initial_offset], dim=1)

    def padded_layout(self, text_ids: torch.Tensor, text_lengths: torch.Tensor, prompt_codes: torch.Tensor,
                      prompt_lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A right-padded batch of layouts (pad id, mask 0 after each row) and its int32 mask."""
        rows = []
        for b in range(text_ids.shape[0]):
            lt, lp = int(text_lengths[b]), int(prompt_lengths[b])
            rows.append(self.layout(text_ids[b:b + 1, :lt], prompt_codes[b:b + 1, :lp])[0])
        length = max(r.shape[0] for r in rows)
        ids = text_ids.new_full((len(rows), length), self.config.pad_token_id).long()
        mask = torch.zeros((len(rows), length), dtype=torch.int32, device=text_ids.device)
        for b, row in enumerate(rows):
            ids[b, :row.shape[0]] = row
            mask[b, :row.shape[0]] = 1
        return ids, mask

    # -- scoring ----------------------------------------------------------------------------

    @torch.inference_mode()
    def logits(self, ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Float32 logits (B, L, V) of whole right-padded sequences (``attention_mask`` 1 = token)."""
        return self.llm(ids, attention_mask)

    # -- decoding ---------------------------------------------------------------------------

    @torch.inference_mode()
    def continue_ids(self, ids: torch.Tensor, sampling: ARSampling = ARSampling(), *,
                     noise: NoiseSource | Sequence[torch.Tensor] | None = None,
                     generator: torch.Generator | None = None, on_progress: ProgressCallback | None = None,
                     trace: list[ARTrace] | None = None) -> torch.Tensor:
        """New ids (1, N) after ``ids`` (1, L), as HF ``generate``: until EOS (included) or until the
        sequence reaches ``max_length``. ``noise``: injected uniforms, one (1,) per step; else draws
        from ``generator`` (else torch's global RNG). ``on_progress(done, limit)`` after every token."""
        if ids.dim() != 2 or ids.shape[0] != 1:
            raise ValueError(f"decoding runs one sequence at a time: ids must be (1, L), got {tuple(ids.shape)}")
        length = ids.shape[1]
        limit = sampling.max_length - length
        if limit < 1:
            raise ValueError(f"the AR prompt has {length} tokens, which leaves no room under "
                             f"max_length={sampling.max_length}")
        source = make_noise(noise, generator=generator)
        weight = self.llm.lm_head.weight
        cache = self.llm.new_cache(1, sampling.max_length, weight.device, weight.dtype)
        logits = self.llm(ids, cache=cache, start=0, last_only=True)[:, -1]
        context = ids.clone()
        eos = self.config.eos_token_id
        new: list[int] = []
        for n in range(limit):
            probs = valle_scores(logits, context, sampling, self.vocab).softmax(dim=-1)
            token = inverse_cdf_sample(probs, source.uniform("token", (1,), probs.device))
            new.append(int(token))
            if trace is not None:
                trace.append(ARTrace(logits.clone(), probs, int(token)))
            finished = int(token) == eos or n + 1 == limit
            if on_progress is not None:
                on_progress(n + 1, limit)
            if finished:
                break
            context = torch.cat([context, token[:, None]], dim=1)
            logits = self.llm(token[:, None], cache=cache, start=length + n, last_only=True)[:, -1]
        return torch.tensor([new], dtype=torch.long, device=ids.device)

    def generate(self, text_ids: torch.Tensor, prompt_codes: torch.Tensor, sampling: ARSampling = ARSampling(), *,
                 noise: NoiseSource | Sequence[torch.Tensor] | None = None,
                 generator: torch.Generator | None = None, on_progress: ProgressCallback | None = None,
                 trace: list[ARTrace] | None = None) -> torch.Tensor:
        """Semantic codes (1, N) continuing the prompt, as the reference ``LLM.inference``: the new ids
        less the last one (EOS, or the token at the length limit), shifted back by ``initial_offset``.

        Like the reference, nothing masks the sampled ids: a sampled special or text id comes back
        out of the code range (negative, or >= speech_vocab_size); :meth:`ValleTTS` checks for it."""
        ids = self.layout(text_ids, prompt_codes)
        new = self.continue_ids(ids, sampling, noise=noise, generator=generator, on_progress=on_progress, trace=trace)
        return new[:, :-1] - self.config.initial_offset


def build_valle_ar(config: ValleARConfig, state_dict: dict[str, torch.Tensor] | None = None, *,
                   source: str = "VALL-E AR checkpoint", seed: int = 0, device: torch.device | str = "cpu",
                   dtype: torch.dtype = torch.float32) -> ValleAR:
    """A :class:`ValleAR` in eval mode: ``state_dict`` loaded strictly, else seeded random weights."""
    if state_dict is None:
        model = ValleAR(config)
        init_random_weights(model, seed, rules=(_rmsnorm_near_one,))
    else:
        with torch.device("meta"):
            model = ValleAR(config)
        load_state_dict_strict(model, state_dict, source, assign=True)
    return model.to(device=device, dtype=dtype).eval()
