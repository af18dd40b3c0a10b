"""Parity adapters for TransformerSVC (``svc_transformer``) and VitsSVC (``svc_vits``).

``load`` goes through the product loaders: the fixture folder is laid out as the Amphion experiment
folder a user-trained model comes in (``args.json`` = the fixture's merged ``config.json``,
``checkpoint/<epoch-..._step-..._loss-...>/model.safetensors`` = its weights), symlinked into a
temporary folder, and read by :func:`load_transformer_svc` / :func:`load_vits_svc` (config parsing,
checkpoint discovery, strict key checks, weight-norm folding).

Cases:

* ``conformer_*``: the acoustic mapper (``model[1]``) on the given condition and mask;
* ``full_*``: :meth:`TransformerSVC.forward` from the frame features and mask;
* ``infer_*``: :meth:`VitsSVC.infer` with the recorded prior draw replayed (``prior_noise``); the
  decoder's two sine-source draws are checked to be irrelevant by the model itself (it never
  evaluates the discarded source), so they are not consumed;
* ``flow_reverse``: the speaker embedding and the reverse flow.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

from models.svc.transformer_svc import TransformerSVC, load_transformer_svc
from models.svc.vits_svc import VitsSVC, load_vits_svc

from . import register
from .base import Adapter

# What an accelerate state folder is called (the loader picks the highest step).
_STATE_DIR = "epoch-0001_step-0000001_loss-0.000000"


def _as_experiment_folder(fixture: Path) -> Path:
    """A temporary Amphion experiment folder whose files are links to the fixture's."""
    root = Path(tempfile.mkdtemp(prefix=f"{fixture.name}-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    state = root / "checkpoint" / _STATE_DIR
    state.mkdir(parents=True)
    (root / "args.json").symlink_to(fixture / "config.json")
    (state / "model.safetensors").symlink_to(fixture / "model.safetensors")
    return root


class TransformerSVCAdapter(Adapter):
    def load(self, folder: Path) -> TransformerSVC:
        return load_transformer_svc(_as_experiment_folder(folder))

    def run(self, component: TransformerSVC, case_name: str, call: str, inputs: dict[str, Any],
            args: dict[str, Any], *, case: dict[str, Any]) -> dict[str, Any]:
        with torch.inference_mode():
            if "condition" in inputs:
                return {"mel": component.acoustic_mapper(inputs["condition"], inputs["mask"])}
            mel = component(inputs["frame_pitch"], inputs["frame_uv"], inputs["frame_energy"], inputs["whisper_feat"],
                            inputs["contentvec_feat"], inputs["spk_id"], inputs["mask"])
        return {"mel": mel}


class VitsSVCAdapter(Adapter):
    def load(self, folder: Path) -> VitsSVC:
        return load_vits_svc(_as_experiment_folder(folder))

    def run(self, component: VitsSVC, case_name: str, call: str, inputs: dict[str, Any],
            args: dict[str, Any], *, case: dict[str, Any]) -> dict[str, Any]:
        with torch.inference_mode():
            if case_name == "flow_reverse":
                g = component.speaker_embedding(inputs["spk_id"])
                return {"z": component.flow.reverse(inputs["z_p"], inputs["mask"], g)}
            if "noise_scale" not in args:
                raise AssertionError(f"{case_name}: the case gives no noise_scale")
            audio = component.infer(
                inputs["frame_pitch"], inputs["frame_uv"], inputs["frame_energy"], inputs["whisper_feat"],
                inputs["contentvec_feat"], inputs["spk_id"], noise_scale=float(args["noise_scale"]),
                prior_noise=inputs["prior_noise"],
            )
        return {"audio": audio}


register("svc_transformer", TransformerSVCAdapter())
register("svc_vits", VitsSVCAdapter())
