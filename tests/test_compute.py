"""How the models compute (models/core/compute.py and its users): the fused kernels agree with the
plain formulas, prepacked convolutions with plain ones, and the replica's allocator settings apply."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from models.blocks.alias_free import Activation1d, SnakeBeta, make_snake
from models.blocks.snake_conv import SNAKE_KERNEL, _snake_formula
from models.core import compute
from models.core.weight_norm import WNConv1d, WNConvTranspose1d, fold_weight_norm


def _reference_activation(act: Activation1d, x: torch.Tensor) -> torch.Tensor:
    """BigVGAN's anti-aliased activation written as the reference computes it."""
    up, low, channels = act.upsample, act.downsample.lowpass, x.shape[1]
    y = F.pad(x, (up.pad, up.pad), mode="replicate")
    y = up.ratio * F.conv_transpose1d(y, up.filter.expand(channels, -1, -1), stride=up.stride, groups=channels)
    y = act.act(y[..., up.pad_left : -up.pad_right])
    y = F.pad(y, (low.pad_left, low.pad_right), mode="replicate")
    return F.conv1d(y, low.filter.expand(channels, -1, -1), stride=low.stride, groups=channels)


@pytest.fixture
def eager(monkeypatch):
    monkeypatch.setenv(compute.COMPILE_ENV, "0")


def test_snake_in_place_is_bit_exact(eager):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 8, 40000, generator=gen)         # above the compiled-size threshold
    alpha = torch.rand(1, 8, 1, generator=gen) + 0.5
    inv = (alpha + 1e-9).reciprocal()
    assert torch.equal(SNAKE_KERNEL(x, alpha, inv), _snake_formula(x, alpha, inv))


@pytest.mark.parametrize("kind", ["snake", "snakebeta"])
@pytest.mark.parametrize("length", [1, 7, 3000])
def test_anti_aliased_activation_matches_the_reference(eager, kind, length):
    torch.manual_seed(0)
    act = Activation1d(make_snake(kind, 6, alpha_logscale=True))
    with torch.no_grad():
        for p in act.act.parameters():
            p.normal_(0.0, 0.3)
    x = torch.randn(2, 6, length)
    with torch.inference_mode():
        got, want = act(x), _reference_activation(act, x)
    assert got.shape == want.shape == (2, 6, length)
    torch.testing.assert_close(got, want, atol=2e-6, rtol=1e-5)


def test_the_compile_switch(monkeypatch):
    monkeypatch.setenv(compute.COMPILE_ENV, "0")
    assert not compute.compile_enabled()
    monkeypatch.setenv(compute.COMPILE_ENV, "1")
    assert compute.compile_enabled()
    monkeypatch.setenv(compute.COMPILE_ENV, "maybe")
    with pytest.raises(ValueError):
        compute.compile_enabled()


def test_a_failing_compile_falls_back_to_eager(monkeypatch):
    monkeypatch.setenv(compute.COMPILE_ENV, "1")
    kernel = compute.FusedKernel("test_double", lambda x: x * 2, lambda x: x + x, lambda: (torch.ones(4),))
    compute.FusedKernel.registry.remove(kernel)

    def broken(*args, **kwargs):
        raise RuntimeError("no compiler here")

    kernel._compiled = broken
    x = torch.ones(compute.MIN_COMPILED_NUMEL)
    assert torch.equal(kernel(x), x + x) and kernel._failed
    assert torch.equal(kernel(x), x + x)


@pytest.mark.parametrize("transposed", [False, True])
def test_packed_convolutions_match_plain_ones(transposed):
    torch.manual_seed(0)
    conv = (WNConvTranspose1d(16, 8, kernel_size=8, stride=4, padding=2) if transposed
            else WNConv1d(16, 8, kernel_size=7, dilation=3, padding=9))
    keys = set(conv.state_dict())
    x = torch.randn(2, 16, 50)
    with torch.inference_mode():
        plain = conv(x)
        fold_weight_norm(conv)
        assert conv.is_folded
        packed = conv(x)
    assert set(conv.state_dict()) == keys                 # checkpoints' names, nothing added
    torch.testing.assert_close(packed, plain, atol=1e-5, rtol=1e-5)
    if compute.pack_conv(torch.randn(4, 4, 3)) is not None:
        assert conv._packed is not None and conv._folded is None   # held once, packed
        with torch.inference_mode():
            torch.testing.assert_close(copy.deepcopy(conv)(x), packed, atol=0, rtol=0)
            moved = copy.deepcopy(conv).to(torch.float64)  # moving / casting takes the plain weight along
            assert moved._packed is None and moved.is_folded
            torch.testing.assert_close(moved(x.double()).float(), plain, atol=1e-5, rtol=1e-5)


def test_a_model_replica_tunes_glibc_malloc(monkeypatch):
    import platform

    from deployments.runtime import configure_allocator

    if platform.libc_ver()[0] != "glibc":
        pytest.skip("glibc only")
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    monkeypatch.delenv("MALLOC_TOP_PAD_", raising=False)
    assert configure_allocator() is True
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "131072")     # the operator's setting wins
    assert configure_allocator() is False


@pytest.mark.slow
def test_compiled_kernels_agree_with_eager(monkeypatch):
    """Compiles both kernels (about a minute on two cores)."""
    monkeypatch.setenv(compute.COMPILE_ENV, "1")
    torch.manual_seed(0)
    act = Activation1d(SnakeBeta(32, alpha_logscale=True))
    x = torch.randn(1, 32, 8000)
    with torch.inference_mode():
        compiled = act(x)
        monkeypatch.setenv(compute.COMPILE_ENV, "0")
        plain = act(x)
    torch.testing.assert_close(compiled, plain, atol=1e-5, rtol=1e-5)
