"""Parity adapters for the shared Amphion SVC parts: ``svc_condition_encoder`` and ``svc_frontends``.

Built through the product code: :func:`models.svc.condition_encoder.parse_condition_encoder_config` on
the folder's whole ``config.json`` and :func:`build_condition_encoder` on the ``0.`` part of its
weights; the front ends from :func:`models.svc.frontends.parse_frontend_config` and the Whisper
encoder from the openai-whisper-named ``whisper_encoder.safetensors`` (with the config's
``whisper_dims``) through :func:`models.svc.whisper_features.load_svc_whisper`. ContentVec has no
fixture (no reference run was possible); tests/test_svc_frontends.py checks its key mapping and
forward against fairseq's semantics.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from models.core.checkpoints import load_state_dict_file
from models.core.configs import read_config
from models.svc.condition_encoder import (
    ConditionEncoder,
    build_condition_encoder,
    energy_to_bins,
    f0_to_coarse,
    parse_condition_encoder_config,
    sub_state_dict,
)
from models.svc.frontends import (
    SVCFrontendConfig,
    align_content,
    content_hops,
    frame_pitch_and_uv,
    mel_and_energy,
    parse_frontend_config,
    praat_f0,
    shift_f0,
)
from models.svc.whisper_features import SVCWhisper, load_svc_whisper

from . import register
from .base import Adapter

_FORWARD_INPUTS = ("frame_pitch", "frame_uv", "frame_energy", "whisper_feat", "contentvec_feat", "spk_id")


class ConditionEncoderAdapter(Adapter):
    def load(self, folder: Path) -> ConditionEncoder:
        config = parse_condition_encoder_config(read_config(folder / "config.json"))
        path = folder / "model.safetensors"
        return build_condition_encoder(config, sub_state_dict(load_state_dict_file(path), "0."), source=str(path))

    def run(self, component: ConditionEncoder, case_name: str, call: str, inputs: dict[str, Any],
            args: dict[str, Any], *, case: dict[str, Any]) -> dict[str, Any]:
        cfg = component.config
        if case_name.startswith("f0_to_coarse"):
            return {"coarse": f0_to_coarse(inputs["f0"], cfg.n_bins_melody, cfg.f0_min, cfg.f0_max)}
        if case_name == "energy_bucketize":
            return {"ids": energy_to_bins(inputs["energy"], component.loudness_encoder.energy_bins)}
        if case_name.startswith("forward_"):
            with torch.inference_mode():
                return {"conditioner": component(**{name: inputs[name] for name in _FORWARD_INPUTS})}
        raise NotImplementedError(f"svc_condition_encoder: no call known for case {case_name!r}")


class FrontendsAdapter(Adapter):
    def load(self, folder: Path) -> dict[str, Any]:
        raw = read_config(folder / "config.json")
        whisper = load_svc_whisper(folder / "whisper_encoder.safetensors", dims=raw["whisper_dims"])
        return {"config": parse_frontend_config(raw), "whisper": whisper}

    def run(self, component: dict[str, Any], case_name: str, call: str, inputs: dict[str, Any],
            args: dict[str, Any], *, case: dict[str, Any]) -> dict[str, Any]:
        config: SVCFrontendConfig = component["config"]
        whisper: SVCWhisper = component["whisper"]
        if case_name.startswith("mel_energy"):
            mel, energy = mel_and_energy(inputs["wav"], config)
            return {"mel": mel, "energy": energy}
        if case_name.startswith("f0_parselmouth"):
            wav = inputs["wav"].numpy()
            f0 = praat_f0(wav, config)
            autoshift = shift_f0(f0, "autoshift", target_median=args["target_pitch_median"])
            pitch, uv = frame_pitch_and_uv(autoshift, config.num_frames(wav.shape[0]))
            return {"f0": torch.from_numpy(f0), "f0_autoshift": torch.from_numpy(autoshift),
                    "f0_key_plus3": torch.from_numpy(shift_f0(f0, int(args["trans_key_int"]))),
                    "frame_pitch": torch.from_numpy(pitch), "frame_uv": torch.from_numpy(uv)}
        if case_name.startswith("align"):
            hops = content_hops(config, "whisper")
            assert hops == content_hops(config, "contentvec"), "the case's hops hold for both features"
            return {"aligned": torch.from_numpy(align_content(inputs["content"], int(args["target_len"]), *hops))}
        if case_name == "whisper_b1":
            assert case.get("weights") == "whisper_encoder.safetensors"
            return {"features": whisper(list(inputs["wav"]))[0]}
        if case_name == "whisper_b2":
            feats = whisper.batch_like_reference(inputs["wav"], lengths=inputs["n_samples"].tolist())
            return {"features_0": feats[0], "features_1": feats[1]}
        raise NotImplementedError(f"svc_frontends: no call known for case {case_name!r}")


register("svc_condition_encoder", ConditionEncoderAdapter())
register("svc_frontends", FrontendsAdapter())
