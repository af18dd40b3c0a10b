"""Seeded random weights for the tiny builds: same seed, same weights, whatever the global RNG.

:func:`init_random_weights` visits ``model.modules()`` in order and draws every number from one
generator seeded with ``seed``. A family's ``rules`` come first (each says whether it took the
module); the others get the common treatment:

* weight-normalised convs: ``v`` uniform(+-1/sqrt(fan_in)), ``g = ||v||`` (effective weight = v),
  bias uniform with the same bound;
* ``nn.Conv1d`` and ``nn.Linear``: weight and bias uniform(+-1/sqrt(fan_in)), as PyTorch's default;
* ``nn.LayerNorm`` with parameters: gains normal(1, 0.1), biases normal(0, 0.1);
* ``nn.Embedding`` (codebooks): standard normal.

Buffers and every other parameter keep the values their modules were built with.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn as nn

from models.core.weight_norm import WeightNormConv, norm_except_dim0

__all__ = ["Draws", "Rule", "init_random_weights"]


class Draws:
    """The seeded generator a build draws from, with the two distributions the rules use."""

    def __init__(self, seed: int) -> None:
        self.generator = torch.Generator().manual_seed(seed)

    def randn(self, shape: torch.Size) -> torch.Tensor:
        return torch.randn(shape, generator=self.generator)

    def uniform_(self, t: torch.Tensor, bound: float) -> None:
        """``t`` <- uniform(-bound, bound)."""
        t.copy_((torch.rand(t.shape, generator=self.generator) * 2 - 1) * bound)

    def normal_(self, t: torch.Tensor, mean: float, std: float) -> None:
        """``t`` <- normal(mean, std)."""
        t.copy_(self.randn(t.shape) * std + mean)


#: ``rule(module, draws) -> bool``: initialise ``module`` (True) or leave it to the next rule (False).
Rule = Callable[[nn.Module, Draws], bool]


def _fan_in_uniform(draws: Draws, weight: torch.Tensor, bias: torch.Tensor | None) -> None:
    bound = 1.0 / math.sqrt(weight[0].numel())
    draws.uniform_(weight, bound)
    if bias is not None:
        draws.uniform_(bias, bound)


def _common(module: nn.Module, draws: Draws) -> None:
    if isinstance(module, WeightNormConv):
        _fan_in_uniform(draws, module.weight_v, module.bias)
        module.weight_g.copy_(norm_except_dim0(module.weight_v))
        module.unfold()
    elif isinstance(module, (nn.Conv1d, nn.Linear)):
        _fan_in_uniform(draws, module.weight, module.bias)
    elif isinstance(module, nn.LayerNorm) and module.elementwise_affine:
        draws.normal_(module.weight, 1.0, 0.1)
        draws.normal_(module.bias, 0.0, 0.1)
    elif isinstance(module, nn.Embedding):
        draws.normal_(module.weight, 0.0, 1.0)


@torch.no_grad()
def init_random_weights(model: nn.Module, seed: int, rules: Sequence[Rule] = (),
                        after: Callable[[nn.Module], None] | None = None) -> None:
    """Deterministic random weights for ``model`` (see the module docstring). ``rules``: the family's
    own treatments, tried in order before the common one; ``after(model)``: a last adjustment, run
    without gradients once every module is drawn."""
    draws = Draws(seed)
    for module in model.modules():
        if not any(rule(module, draws) for rule in rules):
            _common(module, draws)
    if after is not None:
        after(model)


def conv2d_and_groupnorm(module: nn.Module, draws: Draws) -> bool:
    """A :data:`Rule` for 2-D models (the TTA UNets and VAEs): ``nn.Conv2d`` uniform(+-1/sqrt(fan_in))
    like the Conv1d rule; ``nn.GroupNorm`` gains normal(1, 0.1), biases normal(0, 0.1) like LayerNorm's."""
    if isinstance(module, nn.Conv2d):
        bound = 1.0 / module.weight[0].numel() ** 0.5
        draws.uniform_(module.weight, bound)
        if module.bias is not None:
            draws.uniform_(module.bias, bound)
        return True
    if isinstance(module, nn.GroupNorm) and module.affine:
        draws.normal_(module.weight, 1.0, 0.1)
        draws.normal_(module.bias, 0.0, 0.1)
        return True
    return False
