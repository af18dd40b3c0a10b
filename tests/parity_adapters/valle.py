"""Parity adapters for DualCodec-VALL-E: ``valle_text``, ``valle_ar``, ``valle_nar``.

* ``valle_text``: the product's text front end (``models.valle.text``): ``normalize_en`` and the
  Whisper tokenizer built from the shared copy of ``multilingual.tiktoken`` (``../shared/data``;
  the product fetches its own, hash-checked, see ``models.valle.official.TEXT_VOCAB``), and
  :func:`plan_text` for the pipeline cases.
* ``valle_ar`` / ``valle_nar``: built through ``read_ar_config`` / ``read_nar_config`` on the folder's
  ``config.json`` (the reference's yaml layout), ``load_state_dict_file`` on ``model.safetensors`` and
  ``build_valle_ar`` / ``build_valle_nar`` (strict). Sampled AR cases inject the saved uniforms
  (every one must be consumed); the NAR loop cases run the pipeline's NAR glue
  (:func:`models.valle.pipeline.nar_inputs`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import torch

from models.blocks.masked_generation import SavedNoise
from models.core.checkpoints import load_state_dict_file
from models.valle.ar import ARSampling, ARTrace, ValleAR, build_valle_ar
from models.valle.configs import read_ar_config, read_nar_config
from models.valle.nar import ValleNAR, build_valle_nar
from models.valle.official import TEXT_VOCAB_FILE
from models.valle.pipeline import nar_inputs
from models.valle.text import fix_reference_text, load_text_tokenizer, normalize_en, plan_text

from . import register
from .base import Adapter


def _vocab_path(folder: Path) -> Path:
    data = Path(os.environ.get("AMPHION_SHARED_DATA", folder.parent.parent / "data")) / "valle_text" / TEXT_VOCAB_FILE
    if not data.is_file():
        pytest.skip(f"valle_text needs {data} (Whisper's multilingual.tiktoken)")
    return data


class ValleTextAdapter(Adapter):
    def load(self, folder: Path):
        return load_text_tokenizer(_vocab_path(folder))

    def run(self, component, case_name: str, call: str, inputs: dict[str, Any], args: dict[str, Any], *,
            case: dict[str, Any]) -> dict[str, Any]:
        tok = component
        if case_name.startswith("sent_"):
            normalized = normalize_en(inputs["text"])
            ids = [tok.language_token("en"), *tok.encode(normalized)]
            return {"normalized": normalized, "ids": torch.tensor(ids, dtype=torch.int64)}
        if case_name.startswith("pipeline_"):
            seconds = inputs["ref_audio_samples"] / inputs["ref_audio_sample_rate"]
            plan = plan_text(tok, inputs["ref_text"], inputs["gen_text"], seconds)
            return {"ref_text_after_preprocess": fix_reference_text(inputs["ref_text"]),
                    "ref_text_used": plan.ref_text, "max_chars": plan.max_bytes, "chunks": list(plan.chunks),
                    "final_texts": list(plan.final_texts), "ids_per_chunk": [list(ids) for ids in plan.ids]}
        if case_name == "special_tokens":
            languages = case["outputs"]["language_tokens"]
            return {"n_vocab": tok.n_vocab, "eot": tok.eot, "sot": tok.sot, "n_bpe_ranks": tok.n_bpe_ranks,
                    "language_tokens": {code: tok.language_token(code) for code in languages}}
        raise NotImplementedError(f"valle_text: no call known for case {case_name!r}")


class ValleARAdapter(Adapter):
    def load(self, folder: Path) -> ValleAR:
        path = folder / "model.safetensors"
        return build_valle_ar(read_ar_config(folder / "config.json"), load_state_dict_file(path), source=str(path))

    def run(self, component: ValleAR, case_name: str, call: str, inputs: dict[str, Any], args: dict[str, Any], *,
            case: dict[str, Any]) -> dict[str, Any]:
        model = component
        if case_name == "prompt_logits":
            ids = model.layout(inputs["text"], inputs["prompt_speech_token"])
            return {"lm_input": ids, "logits": model.logits(ids)}
        if case_name == "batch2_padded_logits":
            ids, mask = model.padded_layout(inputs["text"], inputs["text_len"], inputs["prompt_speech_token"],
                                            inputs["prompt_speech_token_len"])
            return {"lm_input": ids, "attention_mask": mask, "logits": model.logits(ids, mask)}
        if case_name.startswith("sample_"):
            uniforms = inputs["uniforms"]
            noise = SavedNoise([u.reshape(1) for u in uniforms], name=f"{case_name} uniforms")
            sampling = ARSampling(top_k=int(args["top_k"]), top_p=float(args["top_p"]),
                                  temperature=float(args["temperature"]), repeat_penalty=float(args["repeat_penalty"]),
                                  max_length=int(args["max_length"]))
            trace: list[ARTrace] = []
            lm_input = model.layout(inputs["text"], inputs["prompt_speech_token"])
            new = model.continue_ids(lm_input, sampling, noise=noise, trace=trace)
            out = model.generate(inputs["text"], inputs["prompt_speech_token"], sampling,
                                 noise=SavedNoise([u.reshape(1) for u in uniforms]))
            if noise.remaining:
                raise AssertionError(f"{case_name}: only {noise.consumed} of {len(uniforms)} uniforms were consumed")
            return {"lm_input": lm_input, "generated_ids": torch.cat([lm_input, new], dim=1), "out": out,
                    "step_logits": torch.cat([s.logits for s in trace]),
                    "step_probs": torch.cat([s.probs for s in trace])}
        raise NotImplementedError(f"valle_ar: no call known for case {case_name!r}")


class ValleNARAdapter(Adapter):
    def load(self, folder: Path) -> ValleNAR:
        path = folder / "model.safetensors"
        return build_valle_nar(read_nar_config(folder / "config.json"), load_state_dict_file(path), source=str(path))

    def run(self, component: ValleNAR, case_name: str, call: str, inputs: dict[str, Any], args: dict[str, Any], *,
            case: dict[str, Any]) -> dict[str, Any]:
        model = component
        if case_name.startswith("forward_"):
            layer, prompt_len = int(args["target_quantization_layer"]), int(args["prompt_len"])
            full = model(inputs["phone_ids"], inputs["phone_mask"], inputs["target_ids"], inputs["target_mask"],
                         layer, prompt_len)
            frames = inputs["target_ids"].shape[2] - prompt_len
            return {"logits": full[:, -frames:], "full_logits": full}
        if case_name.startswith("sample_hf"):
            prompt, semantic = nar_inputs(inputs["combine_semantic_code"], inputs["prompt_acoustic_code"])
            trace: list[torch.Tensor] = []
            codes = model.generate(prompt, semantic, trace=trace)
            return {"predict_full": codes.permute(1, 0, 2), "layer_logits": torch.cat(trace)}
        raise NotImplementedError(f"valle_nar: no call known for case {case_name!r}")


register("valle_text", ValleTextAdapter())
register("valle_ar", ValleARAdapter())
register("valle_nar", ValleNARAdapter())
