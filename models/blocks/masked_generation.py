"""Masked generative (MaskGIT-style) decoding, as Amphion's MaskGCT T2S / S2A run it.

:func:`masked_decode` fills a ``(B, T)`` token sequence in ``N`` steps from a model's
``logits_fn(seq, mask, t)``; :func:`executed_steps` says in advance how many steps run, and
``on_step(step, total)`` follows each. :func:`apply_cfg` mixes conditional and unconditional outputs
(also used by the flow-matching models). Random numbers come from a :class:`NoiseSource`:
:class:`GeneratorNoise` (a seed or a ``torch.Generator``) or :class:`SavedNoise` (pre-drawn
uniforms, for parity). One step in detail: ``models/blocks/README.md``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch

__all__ = [
    "DecodingStep",
    "GeneratorNoise",
    "NoiseSource",
    "SavedNoise",
    "apply_cfg",
    "executed_steps",
    "gumbel_from_uniform",
    "make_noise",
    "mask_count",
    "masked_decode",
    "step_times",
    "top_k_filter",
    "top_k_keep",
]

ProgressCallback = Callable[[int, int], None]
LogitsFn = Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]

GUMBEL_EPS = 1e-10
SINGLE_STEP_TEMPERATURE = 0.2
MIN_TEMPERATURE = 1e-3


# ---------------------------------------------------------------------------------------------
# Noise
# ---------------------------------------------------------------------------------------------


@runtime_checkable
class NoiseSource(Protocol):
    """Uniform [0, 1) draws for the loop; ``kind`` is ``"sample"`` (B, T, V) or ``"choice"`` (B, T)."""

    def uniform(self, kind: str, shape: tuple[int, ...], device: torch.device) -> torch.Tensor: ...


class GeneratorNoise:
    """Draws from a ``torch.Generator`` (given, or made from ``seed`` on the tensors' device), else
    from torch's global RNG. The same seed on the same device gives the same draws."""

    def __init__(self, generator: torch.Generator | None = None, seed: int | None = None) -> None:
        if generator is not None and seed is not None:
            raise ValueError("give a generator or a seed, not both")
        self._generator = generator
        self._seed = seed
        self._by_device: dict[str, torch.Generator] = {}

    def _gen(self, device: torch.device) -> torch.Generator | None:
        if self._generator is not None:
            return self._generator
        if self._seed is None:
            return None
        key = str(device)
        if key not in self._by_device:
            self._by_device[key] = torch.Generator(device=device).manual_seed(int(self._seed))
        return self._by_device[key]

    def uniform(self, kind: str, shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
        gen = self._gen(torch.device(device))
        if gen is None:
            return torch.rand(shape, device=device)
        draw = torch.rand(shape, generator=gen, device=gen.device)
        return draw.to(device)


class SavedNoise:
    """Pre-drawn uniforms, consumed in order; a draw of the wrong shape (or one too many) is an error."""

    def __init__(self, draws: Sequence[torch.Tensor], name: str = "saved noise") -> None:
        self._draws = list(draws)
        self._next = 0
        self.name = name

    @property
    def consumed(self) -> int:
        return self._next

    @property
    def remaining(self) -> int:
        return len(self._draws) - self._next

    def uniform(self, kind: str, shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
        if self._next >= len(self._draws):
            raise RuntimeError(f"{self.name}: draw {self._next} ({kind}, shape {tuple(shape)}) asked for, "
                               f"but only {len(self._draws)} were given")
        draw = self._draws[self._next]
        if tuple(draw.shape) != tuple(shape):
            raise RuntimeError(f"{self.name}: draw {self._next} ({kind}) has shape {tuple(draw.shape)}, "
                               f"the loop needs {tuple(shape)}")
        self._next += 1
        return draw.to(device=device, dtype=torch.float32)


def make_noise(noise: NoiseSource | Sequence[torch.Tensor] | None = None, *, seed: int | None = None,
               generator: torch.Generator | None = None) -> NoiseSource:
    """The noise source of one call: ``noise`` as given (a list of tensors becomes :class:`SavedNoise`),
    else a :class:`GeneratorNoise` from ``generator`` / ``seed`` (neither: torch's global RNG)."""
    if noise is not None:
        if seed is not None or generator is not None:
            raise ValueError("give saved noise or a seed/generator, not both")
        if isinstance(noise, NoiseSource):
            return noise
        return SavedNoise(list(noise))
    return GeneratorNoise(generator=generator, seed=seed)


def gumbel_from_uniform(u: torch.Tensor) -> torch.Tensor:
    return -torch.log(-torch.log(u + GUMBEL_EPS) + GUMBEL_EPS)


# ---------------------------------------------------------------------------------------------
# Pieces of one step
# ---------------------------------------------------------------------------------------------


def step_times(n_steps: int) -> list[float]:
    """``[t_0, ..., t_{N-1}, 0.0]`` with ``t_i = 1 - i * (1/N)`` in double precision."""
    if n_steps < 1:
        raise ValueError(f"n_steps must be >= 1, got {n_steps}")
    h = 1.0 / n_steps
    return [1.0 - i * h for i in range(n_steps)] + [0.0]


def mask_count(t: float, length: int) -> int:
    """Positions left masked at time ``t``: ``int(sin(t * pi / 2) * length)`` in float32."""
    tt = torch.tensor([t], dtype=torch.float32)
    return int((torch.sin(tt * math.pi / 2) * length).long()[0])


def executed_steps(n_steps: int, length: int) -> int:
    """How many of ``n_steps`` steps run for ``length`` positions (the pass stops after the first
    step whose successor would mask nothing)."""
    times = step_times(n_steps)
    for i in range(n_steps):
        if mask_count(times[i + 1], length) == 0:
            return i + 1
    return n_steps


def top_k_keep(filter_thres: float, vocab: int) -> int:
    """``ceil((1 - filter_thres) * vocab)`` evaluated in Python double precision, at least 1."""
    return max(1, min(vocab, math.ceil((1 - filter_thres) * vocab)))


def top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the ``k`` largest logits along the last dim, set the rest to -inf."""
    values, indices = logits.topk(k, dim=-1)
    return torch.full_like(logits, float("-inf")).scatter(-1, indices, values)


def apply_cfg(cond: torch.Tensor, uncond: torch.Tensor | None, cfg: float, rescale_cfg: float) -> torch.Tensor:
    """Classifier-free guidance on hidden states, with Amphion's std rescale.

    ``g = c + cfg (c - u)``; ``r = g std(c) / std(g)`` with ``std`` over the WHOLE tensor (all of B,
    T, H; unbiased); result ``rescale_cfg r + (1 - rescale_cfg) g``. ``cfg <= 0`` (or no ``uncond``)
    returns ``cond`` unchanged. Computed in float32 (half-precision inputs are upcast) and returned
    in ``cond``'s dtype.
    """
    if cfg <= 0 or uncond is None:
        return cond
    c, u = cond.float(), uncond.float()
    cond_std = c.std()
    guided = c + cfg * (c - u)
    rescaled = guided * cond_std / guided.std()
    return (rescale_cfg * rescaled + (1 - rescale_cfg) * guided).to(cond.dtype)


# ---------------------------------------------------------------------------------------------
# The loop
# ---------------------------------------------------------------------------------------------


@dataclass
class DecodingStep:
    """What one executed step saw and did (collected when ``trace`` is given)."""

    step: int                 # 0-based step of this pass
    n_steps: int              # N of this pass
    t: float
    seq_in: torch.Tensor      # (B, T) int64
    mask_in: torch.Tensor     # (B, T) bool, True = masked
    logits: torch.Tensor      # (B, T, V) before the top-k filter
    sampled: torch.Tensor     # (B, T) int64, the ids sampled at every position
    seq_out: torch.Tensor     # (B, T) after writing the sampled ids into the masked positions
    layer: int | None = None  # set by multi-pass callers (S2A codebook layer)


def masked_decode(
    logits_fn: LogitsFn,
    batch: int,
    length: int,
    *,
    n_steps: int,
    temp: float,
    filter_thres: float,
    noise: NoiseSource,
    device: torch.device | str = "cpu",
    choice_temp: float = 1.0,
    on_step: ProgressCallback | None = None,
    trace: list[DecodingStep] | None = None,
    layer: int | None = None,
) -> torch.Tensor:
    """Run one masked decoding pass and return the (B, T) int64 tokens.

    ``logits_fn(seq, mask, t)`` gets the current tokens (B, T) (0 where masked), the mask (B, T)
    (True = masked) and the step's time as a Python float, and returns (B, T, V) logits (post-CFG).
    """
    device = torch.device(device)
    times = step_times(n_steps)
    total = executed_steps(n_steps, length)
    seq = torch.zeros(batch, length, dtype=torch.long, device=device)
    mask = torch.ones(batch, length, dtype=torch.bool, device=device)
    for i in range(n_steps):
        t = times[i]
        logits = logits_fn(seq, mask, t).float()
        vocab = logits.shape[-1]
        if logits.shape != (batch, length, vocab):
            raise ValueError(f"logits_fn returned shape {tuple(logits.shape)}, expected ({batch}, {length}, V)")
        filtered = top_k_filter(logits, top_k_keep(filter_thres, vocab))
        last = i == n_steps - 1
        if last and n_steps > 1:
            sampled = filtered.argmax(dim=-1)
        else:
            temperature = SINGLE_STEP_TEMPERATURE if last else temp * t
            g = gumbel_from_uniform(noise.uniform("sample", tuple(filtered.shape), device))
            sampled = (filtered / max(temperature, MIN_TEMPERATURE) + g).argmax(dim=-1)
        seq_in = seq
        seq = torch.where(mask, sampled, seq)
        if trace is not None:
            trace.append(DecodingStep(i, n_steps, t, seq_in.clone(), mask.clone(), logits.clone(),
                                      sampled.clone(), seq.clone(), layer))

        probs = filtered.softmax(dim=-1).gather(-1, sampled.unsqueeze(-1)).squeeze(-1)
        g_choice = gumbel_from_uniform(noise.uniform("choice", tuple(probs.shape), device))
        scores = 1 - (choice_temp * t * g_choice + probs)

        n_next = mask_count(times[i + 1], length)
        if on_step is not None:
            on_step(i + 1, total)
        if n_next == 0:
            break
        scores = scores.masked_fill(~mask, -torch.finfo(scores.dtype).max)
        remask = scores.topk(n_next, dim=-1).indices
        mask = torch.zeros_like(mask).scatter(1, remask, True)
        seq = seq.masked_fill(mask, 0)
    return seq
