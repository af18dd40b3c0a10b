"""Parity adapters for the Vevo / Vevo1.5 generation models: ``vevo_ar``, ``vevo_fmt``, ``vevosing_fmt``.

Components are built through the product loaders (``load_ar_model``, ``load_fm_model``,
``load_vevosing_fm_model``) from the folder's ``config.json`` (the reference's whole config file) and
``model.safetensors``.

``vevo_ar`` cases:

* ``prompt_logits_*``: :meth:`ContentStyleAR.prompt_ids` and the logits of that sequence;
* ``forward_train_*``: :meth:`ContentStyleAR.teacher_forced_layout` and the logits under its
  attention mask; the loss is HF's (mean cross-entropy of the next-token shifted targets), computed
  here from the product's logits;
* ``greedy_generate_vc``: :meth:`ContentStyleAR.continue_ids` greedy, raw logits per step;
* ``sampled_generate_inverse_cdf``: :meth:`ContentStyleAR.generate` with the saved uniforms as the
  injected noise (every one must be consumed), sampling distribution per step.

FM cases run the estimator, ``embed_codes`` and ``reverse_diffusion`` / ``generate`` with the saved
initial noise; ``xt_steps`` / ``t_steps`` come from the sampler's trace.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from models.blocks.masked_generation import SavedNoise
from models.vevo.ar_transformer import ARStep, ContentStyleAR, SamplingConfig, load_ar_model
from models.vevo.flow_matching import FlowStep, VevoFlowMatching, load_fm_model
from models.vevosing.flow_matching import VevoSingFlowMatching, load_vevosing_fm_model

from . import register
from .base import Adapter

IGNORE_LABEL = -100


def _hf_causal_lm_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """HF LlamaForCausalLM's loss: position i predicts target i+1; mean over non-ignored targets."""
    vocab = logits.shape[-1]
    return F.cross_entropy(logits[:, :-1].reshape(-1, vocab), targets[:, 1:].reshape(-1),
                           ignore_index=IGNORE_LABEL).reshape(1)


def _traces(trace: list[FlowStep]) -> dict[str, torch.Tensor]:
    return {"xt_steps": torch.stack([s.x for s in trace]), "t_steps": torch.stack([s.t for s in trace])}


class VevoARAdapter(Adapter):
    def load(self, folder: Path) -> ContentStyleAR:
        return load_ar_model(folder / "model.safetensors", folder / "config.json")

    def run(self, component: ContentStyleAR, case_name: str, call: str, inputs: dict[str, Any],
            args: dict[str, Any], *, case: dict[str, Any]) -> dict[str, Any]:
        model = component
        if case_name.startswith("prompt_logits"):
            ids = model.prompt_ids(inputs["input_ids"], inputs["prompt_output_ids"])
            return {"llama_input_ids": ids, "logits": model.logits(ids)}
        if case_name.startswith("forward_train"):
            ids, mask, targets = model.teacher_forced_layout(inputs["input_ids"], inputs["input_mask"],
                                                             inputs["output_ids"], inputs["output_mask"])
            logits = model.logits(ids, mask)
            return {"llama_input_ids": ids, "attention_mask": mask, "labels": targets, "logits": logits,
                    "loss": _hf_causal_lm_loss(logits, targets)}
        if case_name == "greedy_generate_vc":
            trace: list[ARStep] = []
            sampling = SamplingConfig(do_sample=False, min_new_tokens=int(args["min_new_tokens"]),
                                      max_new_tokens=int(args["max_new_tokens"]))
            new = model.continue_ids(inputs["llama_input_ids"], sampling, trace=trace)
            return {"new_tokens": new, "step_logits": torch.cat([s.logits for s in trace])}
        if case_name == "sampled_generate_inverse_cdf":
            uniforms = inputs["uniforms"]
            noise = SavedNoise([u.reshape(1) for u in uniforms], name=f"{case_name} uniforms")
            trace = []
            prompt_length = model.prompt_ids(inputs["input_ids"], inputs["prompt_output_ids"]).shape[1]
            tokens = model.generate(inputs["input_ids"], inputs["prompt_output_ids"],
                                    temperature=args["temperature"], top_k=args["top_k"], top_p=args["top_p"],
                                    min_new_tokens=args["min_new_tokens"],
                                    max_length=prompt_length + int(args["max_new"]), noise=noise, trace=trace)
            if noise.remaining:
                raise AssertionError(f"{case_name}: only {noise.consumed} of {len(uniforms)} uniforms were consumed")
            return {"gen_tokens": tokens, "step_probs": torch.cat([s.probs for s in trace])}
        raise NotImplementedError(f"vevo_ar: no call known for case {case_name!r}")


def _estimator_case(model: VevoFlowMatching, case_name: str, inputs: dict[str, Any]) -> dict[str, Any] | None:
    """The estimator cases shared by both FM folders (None if ``case_name`` is not one)."""
    with torch.inference_mode():
        if case_name == "estimator_uncond":
            x = inputs["x_t"]
            zeros = x.new_zeros(*x.shape[:2], model.hidden_size)
            return {"flow_pred": model.diff_estimator(x, inputs["t"], zeros, torch.ones(x.shape[:2]))}
        if case_name.startswith("estimator"):
            prompt, x = inputs["prompt"], inputs["x_t"]
            frames = prompt.shape[1] + x.shape[1]
            cond = model.embed_codes(inputs["cond_ids"])
            if isinstance(model, VevoSingFlowMatching):
                cond = model.fit_condition(cond, frames)
            mask = inputs.get("x_mask", torch.ones(x.shape[0], frames))
            flow = model.diff_estimator(torch.cat([prompt, x], dim=1), inputs["t"], cond, mask)
            return {"cond": cond, "flow_pred": flow}
    return None


def _loop_kwargs(args: dict[str, Any]) -> dict[str, Any]:
    return {"n_timesteps": int(args["n_timesteps"]), "cfg": float(args["cfg"]), "rescale_cfg": float(args["rescale_cfg"])}


class VevoFMAdapter(Adapter):
    def load(self, folder: Path) -> VevoFlowMatching:
        return load_fm_model(folder / "model.safetensors", folder / "config.json")

    def run(self, component: VevoFlowMatching, case_name: str, call: str, inputs: dict[str, Any],
            args: dict[str, Any], *, case: dict[str, Any]) -> dict[str, Any]:
        out = _estimator_case(component, case_name, inputs)
        if out is not None:
            return out
        if case_name.startswith("reverse_diffusion"):
            trace: list[FlowStep] = []
            mel = component.generate(inputs["cond_ids"], inputs["prompt"], noise=inputs["noise"], trace=trace,
                                     **_loop_kwargs(args))
            return {"mel": mel, **_traces(trace)}
        raise NotImplementedError(f"vevo_fmt: no call known for case {case_name!r}")


class VevoSingFMAdapter(Adapter):
    def load(self, folder: Path) -> VevoSingFlowMatching:
        return load_vevosing_fm_model(folder / "model.safetensors", folder / "config.json")

    def run(self, component: VevoSingFlowMatching, case_name: str, call: str, inputs: dict[str, Any],
            args: dict[str, Any], *, case: dict[str, Any]) -> dict[str, Any]:
        model = component
        if case_name == "cond_resample":
            with torch.inference_mode():
                return {"cond": model.embed_codes(inputs["cond_ids"])}
        out = _estimator_case(model, case_name, inputs)
        if out is not None:
            return out
        trace: list[FlowStep] = []
        if case_name in ("inference_fm_4steps", "inference_ar_and_fm_4steps"):
            later = inputs["src_codes"] if "src_codes" in inputs else inputs["predicted_codes"]
            codes = torch.cat([inputs["timbre_ref_codes"], later], dim=1)
            target_frames = args.get("src_frames")
            mel = model.generate(codes, inputs["prompt"], target_frames=target_frames, noise=inputs["noise"],
                                 trace=trace, **_loop_kwargs(args))
            with torch.inference_mode():
                cond = model.embed_codes(codes)
                if target_frames is not None:
                    cond = model.fit_condition(cond, inputs["prompt"].shape[1] + int(target_frames))
            return {"mel": mel, "cond": cond, "xt_steps": _traces(trace)["xt_steps"]}
        if case_name == "reverse_diffusion_cfg0":
            mel = model.generate(inputs["cond_ids"], inputs["prompt"], target_frames=int(args["target_frames"]),
                                 noise=inputs["noise"], trace=trace, **_loop_kwargs(args))
            return {"mel": mel, "xt_steps": _traces(trace)["xt_steps"]}
        raise NotImplementedError(f"vevosing_fmt: no call known for case {case_name!r}")


register("vevo_ar", VevoARAdapter())
register("vevo_fmt", VevoFMAdapter())
register("vevosing_fmt", VevoSingFMAdapter())
