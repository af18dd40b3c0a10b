"""Metis' LoRA releases: base model + LoRA + adapter files, merged ONCE at load into a plain
:class:`~models.metis.stage1.MetisStage1`.

Official layout (``amphion/metis``): ``metis_base/model.safetensors`` (the stage-1 model without
phones and without adapter), ``metis_<task>/metis_<task>_lora_<r>.safetensors`` (keys
``model.diff_estimator.layers.N.{self_attn.{q,k,v,o},mlp.{gate,up,down}}_proj.lora_{A,B}.default.weight``,
A (r, in), B (out, r)) and ``metis_<task>/metis_<task>_lora_<r>_adapter.safetensors`` (keys
``model.cond_adapter.{in_linear,out_linear}.{weight,bias}``, ``model.cond_adapter.gate_scale``).

The merge is peft's ``merge_and_unload`` arithmetic without peft: for the 7 projections of every
layer ``W <- W + (B @ A) * (lora_alpha / r)`` (no rsLoRA, no fan-in/fan-out transposition); the
adapter tensors are copied. Unlike the reference (``load_state_dict(strict=False)``, which runs the
base model silently when the names do not match), every file is checked strictly: a missing,
unexpected or mis-shaped key, or a rank other than the configuration's, raises
:class:`LoraMergeError` naming the keys.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch

from models.blocks.diff_llama import CheckpointKeyError
from models.maskgct.t2s import read_safetensors
from models.metis.configs import MetisStage1Config, adapter_kind
from models.metis.stage1 import MetisStage1, build_stage1

__all__ = [
    "LORA_TARGETS",
    "LORA_TASKS",
    "LoraMergeError",
    "expected_adapter_keys",
    "expected_base_keys",
    "expected_lora_keys",
    "load_lora_stage1",
    "merge_lora_state",
]

#: The projections the releases adapt (peft ``target_modules``), relative to a backbone layer.
LORA_TARGETS = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")
LORA_TASKS = ("vc", "se", "tse")
FILE_PREFIX = "model."        # the LoraModel wrapper's attribute, kept by the reference's save helpers
ADAPTER_NAME = "default"      # peft's adapter name
_MAX_LISTED = 20


class LoraMergeError(CheckpointKeyError):
    """Base, LoRA or adapter files that do not fit the configured model."""


def _shapes(config: MetisStage1Config, ft_type: str) -> dict[str, tuple[int, ...]]:
    with torch.device("meta"):
        model = MetisStage1(config, ft_type)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def expected_base_keys(config: MetisStage1Config, ft_type: str) -> dict[str, tuple[int, ...]]:
    """Key -> shape of the base file: the stage-1 model without its adapter."""
    return {k: s for k, s in _shapes(config, ft_type).items() if not k.startswith("cond_adapter.")}


def expected_adapter_keys(config: MetisStage1Config, ft_type: str) -> dict[str, tuple[int, ...]]:
    """Key (as in the adapter file, ``model.`` prefix) -> shape."""
    return {FILE_PREFIX + k: s for k, s in _shapes(config, ft_type).items() if k.startswith("cond_adapter.")}


def _lora_pairs(config: MetisStage1Config, ft_type: str) -> dict[str, tuple[str, str]]:
    """Model weight key -> (lora_A key, lora_B key) as named in the LoRA file."""
    out = {}
    for i in range(config.num_layers):
        for target in LORA_TARGETS:
            module = f"diff_estimator.layers.{i}.{target}"
            out[f"{module}.weight"] = (f"{FILE_PREFIX}{module}.lora_A.{ADAPTER_NAME}.weight",
                                       f"{FILE_PREFIX}{module}.lora_B.{ADAPTER_NAME}.weight")
    return out


def expected_lora_keys(config: MetisStage1Config, ft_type: str, rank: int | None = None) -> dict[str, tuple[int, ...]]:
    """Key (as in the LoRA file) -> shape: A (r, in), B (out, r); ``rank`` default: ``config.lora_r``."""
    r = int(rank if rank is not None else config.lora_r)
    shapes = _shapes(config, ft_type)
    out = {}
    for weight_key, (a_key, b_key) in _lora_pairs(config, ft_type).items():
        n_out, n_in = shapes[weight_key]
        out[a_key] = (r, n_in)
        out[b_key] = (n_out, r)
    return out


def _check(name: str, got: Mapping[str, torch.Tensor], expected: Mapping[str, tuple[int, ...]], hint: str = "") -> None:
    missing = sorted(set(expected) - set(got))
    unexpected = sorted(set(got) - set(expected))
    mismatched = sorted(f"{k} {tuple(got[k].shape)} vs expected {expected[k]}"
                        for k in set(got) & set(expected) if tuple(got[k].shape) != tuple(expected[k]))
    if not (missing or unexpected or mismatched):
        return
    parts = []
    for label, keys in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", mismatched)):
        if keys:
            more = f" (+{len(keys) - _MAX_LISTED} more)" if len(keys) > _MAX_LISTED else ""
            parts.append(f"{label} {len(keys)}: {', '.join(keys[:_MAX_LISTED])}{more}")
    raise LoraMergeError(f"{name} does not fit the model: " + "; ".join(parts) + (f". {hint}" if hint else ""))


def merge_lora_state(
    base: Mapping[str, torch.Tensor],
    lora: Mapping[str, torch.Tensor],
    adapter: Mapping[str, torch.Tensor],
    config: MetisStage1Config,
    ft_type: str,
    *,
    names: tuple[str, str, str] = ("base file", "LoRA file", "adapter file"),
) -> dict[str, torch.Tensor]:
    """The merged state dict (the keys of a complete ``ft_type`` model) from the three files' tensors,
    every one checked strictly first. ``config.lora_r`` / ``lora_alpha`` give the rank and scaling."""
    if ft_type not in LORA_TASKS or adapter_kind(ft_type) != "gated":
        raise LoraMergeError(f"LoRA releases exist for vc / se / tse, not for ft_type {ft_type!r}")
    if not config.use_lora:
        raise LoraMergeError("the configuration has use_lora false; a LoRA release needs lora_r and lora_alpha")
    _check(names[0], base, expected_base_keys(config, ft_type),
           "A metis_base file holds the stage-1 model without phone_emb, cond_mlp and cond_adapter.")
    _check(names[2], adapter, expected_adapter_keys(config, ft_type))
    _check(names[1], lora, expected_lora_keys(config, ft_type),
           f"Expected rank {config.lora_r} (lora_r of the configuration) and the keys peft's LoraModel saves "
           f"(prefix '{FILE_PREFIX}', adapter '{ADAPTER_NAME}').")
    scaling = config.lora_scaling
    merged = dict(base)
    for weight_key, (a_key, b_key) in _lora_pairs(config, ft_type).items():
        w = base[weight_key]
        a = lora[a_key].to(w.dtype)
        b = lora[b_key].to(w.dtype)
        merged[weight_key] = w + (b @ a) * scaling
    for key, value in adapter.items():
        merged[key[len(FILE_PREFIX):]] = value
    return merged


def load_lora_stage1(
    base: str | Path,
    lora: str | Path,
    adapter: str | Path,
    config: MetisStage1Config,
    ft_type: str,
    *,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> MetisStage1:
    """Read the three files, merge once (:func:`merge_lora_state`) and load the result strictly."""
    merged = merge_lora_state(read_safetensors(base), read_safetensors(lora), read_safetensors(adapter), config,
                              ft_type, names=(str(base), str(lora), str(adapter)))
    return build_stage1(config, ft_type, merged, source=f"{base} + {lora} + {adapter}", device=device, dtype=dtype)
