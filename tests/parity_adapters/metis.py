"""Parity adapters for Metis: ``metis_stage1`` and ``metis_lora``.

Built through the product loaders: :func:`models.metis.stage1.load_stage1` with the folder's config
section (``config_key``) and the ``ft_type`` of the weights file, and
:func:`models.metis.lora.load_lora_stage1` (base + LoRA + adapter merged once, strictly).
Cases: ``adapter`` (the condition adapter), ``step_vc_cfg`` (one step with finetune_cond and CFG),
``rd_*`` (the decoding loops through ``MetisStage1.generate`` on saved noise), ``tts_frontend_rules``
(target length and language fallback) and ``merge`` (the merged state dict).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from models.maskgct.generation_configs import read_config_file
from models.metis.configs import parse_stage1_config
from models.metis.lora import load_lora_stage1
from models.metis.stage1 import MetisStage1, load_stage1
from models.metis.tasks import metis_language, target_len_from_seconds, tts_target_len

from . import register
from .base import Adapter
from .maskgct_generation import _check_consumed, _loop_kwargs, _noise, _traces

# The ft_type each fixture file was built with (README): model.safetensors = build_metis_stage1(ft, "vc").
_FT_TYPES = {"model.safetensors": "vc", "model_omni.safetensors": "omni"}


def _run_loop(model: MetisStage1, case_name: str, inputs: dict[str, Any], args: dict[str, Any]) -> dict[str, Any]:
    noise = _noise(inputs, "noise_", f"{case_name} noise")
    trace: list = []
    tokens = model.generate(inputs["prompt"], inputs.get("phone_id"), args["target_len"],
                            finetune_cond=inputs.get("finetune_cond"), n_timesteps=args["n_timesteps"],
                            noise=noise, trace=trace, **_loop_kwargs(args))
    _check_consumed(noise, case_name)
    return {"tokens": tokens, **_traces(trace)}


def _frontend(inputs: dict[str, Any]) -> None:
    for ex in inputs["examples"]:
        got = {
            "prompt_language": metis_language(ex["langid_prompt"]),
            "target_language": metis_language(ex["langid_text"]),
            "target_len": tts_target_len(ex["prompt_tokens"], ex["text"], ex["prompt_text"]),
            "target_len_if_seconds_given_2.5": target_len_from_seconds(2.5),
        }
        want = {k: ex[k] for k in got}
        if got != want:
            raise AssertionError(f"tts front end on {ex['text']!r}: got {got}, want {want}")


class MetisStage1Adapter(Adapter):
    def load(self, folder: Path) -> dict[str, MetisStage1]:
        config = read_config_file(folder / "config.json")
        return {name: load_stage1(folder / name, config["omni" if ft == "omni" else "ft"], ft)
                for name, ft in _FT_TYPES.items()}

    def run(self, component: dict[str, MetisStage1], case_name: str, call: str, inputs: dict[str, Any],
            args: dict[str, Any], *, case: dict[str, Any]) -> dict[str, Any]:
        if case_name == "tts_frontend_rules":
            _frontend(inputs)
            return {"note": case["outputs"]["note"]}
        model = component[case["weights"]]
        expected_key = "omni" if model.ft_type == "omni" else "ft"
        if case["config_key"] != expected_key:
            raise AssertionError(f"{case['weights']} was loaded with config {expected_key}, the case says {case['config_key']}")
        if case_name == "adapter":
            with torch.inference_mode():
                return {"out": model.adapt(inputs["x"])}
        if case_name == "step_vc_cfg":
            logits, cond, uncond = model.step_logits(inputs["prompt"], None, inputs["seq"], inputs["mask"], inputs["t"],
                                                     cfg=args["cfg"], rescale_cfg=args["rescale_cfg"],
                                                     finetune_cond=inputs["finetune_cond"])
            return {"cond_hidden": cond, "uncond_hidden": uncond, "logits": logits}
        if case_name.startswith("rd_"):
            return _run_loop(model, case_name, inputs, args)
        raise NotImplementedError(f"metis_stage1: no call known for case {case_name!r}")


class MetisLoraAdapter(Adapter):
    def load(self, folder: Path) -> MetisStage1:
        config = parse_stage1_config(read_config_file(folder / "config.json"))
        return load_lora_stage1(folder / "model.safetensors", folder / "lora.safetensors",
                                folder / "adapter.safetensors", config, "tse")

    def run(self, component: MetisStage1, case_name: str, call: str, inputs: dict[str, Any],
            args: dict[str, Any], *, case: dict[str, Any]) -> dict[str, Any]:
        if case_name == "merge":
            if (component.metis_config.lora_r, component.metis_config.lora_alpha) != (args["lora_r"], args["lora_alpha"]):
                raise AssertionError(f"config r/alpha {component.metis_config.lora_r}/{component.metis_config.lora_alpha} "
                                     f"!= case {args['lora_r']}/{args['lora_alpha']}")
            state = component.state_dict()
            if "merged_keys" in case and sorted(state) != sorted(case["merged_keys"]):
                raise AssertionError("the merged model's keys differ from the reference's merged_keys")
            return {k: v for k, v in state.items()}
        if case_name.startswith("rd_"):
            return _run_loop(component, case_name, inputs, args)
        raise NotImplementedError(f"metis_lora: no call known for case {case_name!r}")


register("metis_stage1", MetisStage1Adapter())
register("metis_lora", MetisLoraAdapter())
