"""Parity adapters for Noro: ``noro_model`` and ``noro_frontends``.

``noro_model``: the model is built by :func:`models.noro.model.load_noro_model` from the folder's
``config.json`` (parsed by :func:`models.noro.configs.parse_noro_config`) and ``model.safetensors``
(strict). Cases: the reference encoder alone, the estimator alone, and ``NoroVC.generate`` (the
reference's ``inference``) on the recorded noise draw; batch-2 cases include the batch-position
positional quirk, which the model reproduces.

``noro_frontends``: the configuration through the same parser, the k-means centres through
:func:`models.noro.kmeans.read_cluster_centres`; the reference mel, and the source path (padding,
HuBERT input, k-means on the case's given layer-9 features, WORLD F0). HuBERT itself is not covered
by the fixture (its layer-9 output is a case input). The F0 needs pyworld: without it the source
cases skip with that reason (a failure in required mode).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from models.core.configs import read_config
from models.noro.configs import NoroConfig, parse_noro_config
from models.noro.frontends import hubert_input, pad_source, quantise_content
from models.noro.kmeans import KMeansQuantizer, read_cluster_centres
from models.noro.mel import pad_reference, reference_log_mel
from models.noro.model import NoroVC, load_noro_model
from models.noro.pitch import PitchUnavailable, source_pitch

from . import register
from .base import Adapter


class NoroModelAdapter(Adapter):
    def load(self, folder: Path) -> NoroVC:
        return load_noro_model(folder / "model.safetensors", parse_noro_config(read_config(folder / "config.json")))

    def run(self, component: NoroVC, case_name: str, call: str, inputs: dict[str, Any], args: dict[str, Any],
            *, case: dict[str, Any]) -> dict[str, Any]:
        with torch.inference_mode():
            if case_name.startswith("reference_encoder"):
                speaker, encoded = component.reference_encoder(inputs["x_ref"], inputs["x_ref_mask"])
                return {"spk_embs": speaker, "x_encoded": encoded}
            if case_name.startswith("estimator"):
                x0 = component.estimate(inputs["xt"], inputs["condition_embedding"], inputs["reference_embedding"],
                                        inputs["diffusion_step"])
                return {"x0_pred": x0}
        if case_name.startswith("inference"):
            trace: list = []
            x0 = component.generate(inputs["content_feature"], inputs["pitch"], inputs["x_ref"], inputs["x_ref_mask"],
                                    inputs["noise"], steps=int(args["inference_steps"]),
                                    temperature=float(args["sigma"]), trace=trace)
            if len(trace) != int(args["inference_steps"]):
                raise AssertionError(f"{case_name}: {len(trace)} estimator calls for {args['inference_steps']} steps")
            return {"x0": x0}
        raise NotImplementedError(f"noro_model: no call known for case {case_name!r}")


@dataclass(frozen=True)
class _Frontends:
    cfg: NoroConfig
    kmeans: KMeansQuantizer
    recorded: dict[str, torch.Tensor]  # cases.safetensors, for the intermediates the runner does not compare


class NoroFrontendsAdapter(Adapter):
    def load(self, folder: Path) -> _Frontends:
        from safetensors.torch import load_file

        cfg = parse_noro_config(read_config(folder / "config.json"))
        return _Frontends(cfg, KMeansQuantizer(read_cluster_centres(folder / "model.safetensors")),
                          load_file(str(folder / "cases.safetensors")))

    def run(self, component: _Frontends, case_name: str, call: str, inputs: dict[str, Any], args: dict[str, Any],
            *, case: dict[str, Any]) -> dict[str, Any]:
        cfg = component.cfg

        def mid(name: str, got: np.ndarray) -> None:
            # Padding and WORLD's own output must match exactly: the runner compares only outputs.
            spec = case.get("mid", {}).get(name)
            if spec is None:
                return
            want = component.recorded[spec["tensor"]].numpy()
            if got.shape != want.shape or not np.array_equal(got.astype(want.dtype), want):
                raise AssertionError(f"{case_name}: intermediate {name} differs (shape {got.shape} vs {want.shape})")

        if case_name.startswith("ref_mel"):
            padded = pad_reference(inputs["ref_wav"].numpy(), cfg.mel.hop_length)
            mid("ref_wav_padded", padded[None])
            with torch.inference_mode():
                return {"x_ref": reference_log_mel(torch.from_numpy(padded)[None], cfg.mel)}
        if case_name.startswith("source_features"):
            padded = pad_source(inputs["wav"].numpy())
            mid("wav_padded", padded[None])
            mid("hubert_input", hubert_input(torch.from_numpy(padded)[None]).numpy())
            clusters, content = quantise_content(inputs["hubert_layer9"], component.kmeans)
            try:
                pitch, raw, filled = source_pitch(padded, cfg.f0)
            except PitchUnavailable as exc:
                pytest.skip(str(exc))
            mid("f0_raw", raw)
            mid("f0_interp", filled)
            return {"clusters": clusters, "content_feature": content, "pitch": pitch}
        raise NotImplementedError(f"noro_frontends: no call known for case {case_name!r}")


register("noro_model", NoroModelAdapter())
register("noro_frontends", NoroFrontendsAdapter())
