"""Parity adapters for MaskGCT's generation models: ``maskgct_t2s`` and ``maskgct_s2a``.

Components are built through the product loaders (``load_t2s_model`` / ``load_s2a_model``) from the
folder's ``config.json`` (the reference's ``t2s_model`` / ``s2a_model`` section) and weight files.
Cases:

* ``diff_estimator*``: the backbone forward (and one logit head);
* ``step_logits``: the models' ``step_logits`` (conditional and unconditional hidden states, post-CFG
  logits);
* ``rd_*`` and ``semantic2acoustic``: the full decoding loops through ``generate`` /
  ``semantic_to_acoustic`` with the saved uniform draws as :class:`SavedNoise` (every draw must be
  consumed), traces collected per executed step.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch

from models.blocks.masked_generation import DecodingStep, SavedNoise
from models.maskgct.generation_configs import read_config_file
from models.maskgct.s2a import MaskGCTS2A, load_s2a_model, semantic_to_acoustic
from models.maskgct.t2s import MaskGCTT2S, load_t2s_model

from . import register
from .base import Adapter

_CONFIG_KEY_TO_VARIANT = {"s2a_1layer": "1layer", "s2a_full": "full"}


def _noise(inputs: dict[str, Any], prefix: str, name: str) -> SavedNoise:
    pattern = re.compile(rf"^{re.escape(prefix)}(\d+)$")
    keyed = sorted((int(m.group(1)), k) for k in inputs if (m := pattern.match(k)))
    return SavedNoise([inputs[k] for _, k in keyed], name=name)


def _check_consumed(noise: SavedNoise, case_name: str) -> None:
    if noise.remaining:
        raise AssertionError(f"{case_name}: {noise.name}: only {noise.consumed} of "
                             f"{noise.consumed + noise.remaining} saved draws were consumed")


def _traces(trace: list[DecodingStep], prefix: str = "trace_") -> dict[str, torch.Tensor]:
    return {
        f"{prefix}seq_in": torch.stack([s.seq_in for s in trace]),
        f"{prefix}mask_in": torch.stack([s.mask_in for s in trace]),
        f"{prefix}sampled": torch.stack([s.sampled for s in trace]),
        f"{prefix}seq_out": torch.stack([s.seq_out for s in trace]),
        f"{prefix}logits": torch.stack([s.logits for s in trace]),
    }


def _loop_kwargs(args: dict[str, Any]) -> dict[str, Any]:
    return {k: args[k] for k in ("temp", "filter_thres", "cfg", "rescale_cfg") if k in args}


class MaskGCTT2SAdapter(Adapter):
    def load(self, folder: Path) -> MaskGCTT2S:
        return load_t2s_model(folder / "model.safetensors", read_config_file(folder / "config.json"))

    def run(self, component: MaskGCTT2S, case_name: str, call: str, inputs: dict[str, Any],
            args: dict[str, Any], *, case: dict[str, Any]) -> dict[str, Any]:
        model = component
        with torch.inference_mode():
            if case_name.startswith("diff_estimator"):
                out = model.diff_estimator(inputs["x"], inputs["t"], inputs["x_mask"],
                                           prefix=inputs.get("phone_embedding"), prefix_mask=inputs.get("phone_mask"))
                return {"out": out, "logits": model.to_logit(out)}
        if case_name == "step_logits":
            logits, cond, uncond = model.step_logits(
                inputs["prompt"], inputs["phone_id"], inputs["seq"], inputs["mask"], inputs["t"],
                cfg=args["cfg"], rescale_cfg=args["rescale_cfg"])
            return {"embeds_cond": cond, "embeds_uncond": uncond, "logits": logits}
        if case_name.startswith("rd_"):
            noise = _noise(inputs, "noise_", f"{case_name} noise")
            trace: list[DecodingStep] = []
            tokens = model.generate(inputs["prompt"], inputs["phone_id"], args["target_len"],
                                    n_timesteps=args["n_timesteps"], noise=noise, trace=trace, **_loop_kwargs(args))
            _check_consumed(noise, case_name)
            return {"tokens": tokens, **_traces(trace)}
        raise NotImplementedError(f"maskgct_t2s: no call known for case {case_name!r}")


class MaskGCTS2AAdapter(Adapter):
    def load(self, folder: Path) -> dict[str, MaskGCTS2A]:
        config = read_config_file(folder / "config.json")
        return {
            "model_1layer.safetensors": load_s2a_model(folder / "model_1layer.safetensors", "1layer", config),
            "model.safetensors": load_s2a_model(folder / "model.safetensors", "full", config),
        }

    @staticmethod
    def _model(component: dict[str, MaskGCTS2A], case: dict[str, Any]) -> MaskGCTS2A:
        model = component[case["weights"]]
        variant = _CONFIG_KEY_TO_VARIANT[case["config_key"]]
        if (model.num_quantizer == 1) != (variant == "1layer"):
            raise AssertionError(f"{case['weights']} holds {model.num_quantizer} quantizer layers, not the {variant} model")
        return model

    def run(self, component: dict[str, MaskGCTS2A], case_name: str, call: str, inputs: dict[str, Any],
            args: dict[str, Any], *, case: dict[str, Any]) -> dict[str, Any]:
        if case_name == "semantic2acoustic":
            noise1 = _noise(inputs, "noise1_", "1-layer noise")
            noisef = _noise(inputs, "noisef_", "full noise")
            trace1: list[DecodingStep] = []
            tracef: list[DecodingStep] = []
            s2a_1layer = component["model_1layer.safetensors"]
            s2a_full = component["model.safetensors"]
            layer0, full = semantic_to_acoustic(
                s2a_1layer, s2a_full, inputs["semantic"], inputs["prompt"], n_timesteps=args["n_timesteps"],
                noise_1layer=noise1, noise_full=noisef, trace_1layer=trace1, trace_full=tracef,
                **_loop_kwargs(args))
            _check_consumed(noise1, case_name)
            _check_consumed(noisef, case_name)
            return {
                "predict_1layer": layer0,
                "predict_full": full,
                "trace1_logits": torch.stack([s.logits for s in trace1]),
                "tracef_logits": torch.stack([s.logits for s in tracef]),
            }
        model = self._model(component, case)
        if case_name.startswith("diff_estimator"):
            with torch.inference_mode():
                out = model.diff_estimator(inputs["x"], inputs["t"], inputs["cond"], inputs["x_mask"])
                return {"out": out, "logits": model.to_logits[int(args["logit_head"])](out)}
        if case_name == "step_logits":
            logits, cond, uncond = model.step_logits(
                inputs["semantic"], inputs["prompt"], inputs["lower_codes"], inputs["seq"], inputs["mask"],
                inputs["t"], int(args["layer"]), cfg=args["cfg"], rescale_cfg=args["rescale_cfg"],
                max_layer=args.get("max_layer"))
            return {"embeds_cond": cond, "embeds_uncond": uncond, "logits": logits}
        if case_name.startswith("rd_"):
            noise = _noise(inputs, "noise_", f"{case_name} noise")
            trace: list[DecodingStep] = []
            codes = model.generate(inputs["semantic"], inputs["prompt"], n_timesteps=args["n_timesteps"],
                                   gt_code=inputs.get("gt_code"), max_layer=args.get("max_layer"), noise=noise,
                                   trace=trace, **_loop_kwargs(args))
            _check_consumed(noise, case_name)
            return {"codes": codes, **_traces(trace)}
        raise NotImplementedError(f"maskgct_s2a: no call known for case {case_name!r}")


register("maskgct_t2s", MaskGCTT2SAdapter())
register("maskgct_s2a", MaskGCTS2AAdapter())
