"""Parity adapters for the diffusion SVC models: MultipleContentsSVC (``svc_multiplecontents``) and
DiffComoSVC (``svc_diffcomo``).

``load`` goes through the product loaders: each fixture weights file is laid out as the Amphion
experiment folder a checkpoint comes in (``args.json`` = its config, ``singers.json``,
``checkpoint/<epoch-..._step-..._loss-...>/model.safetensors``), symlinked into a temporary folder and
read by :func:`load_multiplecontents` / :func:`load_comosvc` (config parsing, checkpoint discovery,
singer table check, strict key checks).

Cases:

* ``denoiser_*``: the acoustic mapper (:class:`DiffWaveNet`) on ``x, t, c``;
* ``pndm_timesteps_*``: the PNDM timesteps the sampler runs;
* ``pndm_*``: :meth:`MultipleContentsSVC.forward` from the frame features with the recorded initial
  noise, counting the denoiser calls (``N + 9``);
* ``encoder_b2_masked``: the Conformer's mu; ``edm_precond_*``: the EDM preconditioning around the
  teacher's / the student's EMA denoiser (channel-first in the fixture, transposed here);
* ``teacher_*`` / ``student_*``: :meth:`DiffComoSVC.forward` with the recorded ``noise`` (the
  teacher's zero-weighted per-step draws are not made; the fixture notes they do not change the output).
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

from models.svc.comosvc import DiffComoSVC, load_comosvc
from models.svc.diffusion import pndm_timesteps
from models.svc.multiplecontents import MultipleContentsSVC, load_multiplecontents

from . import register
from .base import Adapter

# What an accelerate state folder is called (the loader picks the highest step).
_STATE_DIR = "epoch-0001_step-0000001_loss-0.000000"
_FEATURES = ("frame_pitch", "frame_uv", "frame_energy", "whisper_feat", "contentvec_feat", "spk_id")
# svc_diffcomo: weights file -> its config.
_COMO_FILES = {"model.safetensors": "config.json", "model_student.safetensors": "config_student.json"}


def _as_experiment_folder(fixture: Path, weights: str = "model.safetensors", config: str = "config.json") -> Path:
    """A temporary Amphion experiment folder whose files are links to the fixture's."""
    root = Path(tempfile.mkdtemp(prefix=f"{fixture.name}-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    state = root / "checkpoint" / _STATE_DIR
    state.mkdir(parents=True)
    (root / "args.json").symlink_to(fixture / config)
    (root / "singers.json").symlink_to(fixture / "singers.json")
    (state / "model.safetensors").symlink_to(fixture / weights)
    return root


def _features(inputs: dict[str, Any]) -> list[torch.Tensor]:
    return [inputs[name] for name in _FEATURES]


class MultipleContentsAdapter(Adapter):
    def load(self, folder: Path) -> MultipleContentsSVC:
        return load_multiplecontents(_as_experiment_folder(folder))

    def run(self, component: MultipleContentsSVC, case_name: str, call: str, inputs: dict[str, Any],
            args: dict[str, Any], *, case: dict[str, Any]) -> dict[str, Any]:
        if case_name.startswith("denoiser_"):
            with torch.inference_mode():
                return {"eps": component.acoustic_mapper(inputs["x"], inputs["t"], inputs["c"])}
        n_steps = int(args["num_inference_timesteps"])
        if case_name.startswith("pndm_timesteps_"):
            return {"timesteps": pndm_timesteps(n_steps, component.config.scheduler)}
        if case_name.startswith("pndm_"):
            calls: list[tuple[int, int]] = []
            mel = component(*_features(inputs), inputs["mask"], n_steps=n_steps, noise=inputs["noise"],
                            on_step=lambda step, total: calls.append((step, total)))
            expected = component.denoiser_calls(n_steps)
            if [c[0] for c in calls] != list(range(1, expected + 1)) or {c[1] for c in calls} != {expected}:
                raise AssertionError(f"{case_name}: progress {calls[:3]}... is not 1..{expected} of {expected}")
            return {"mel": mel}
        raise NotImplementedError(f"svc_multiplecontents: no call known for case {case_name!r}")


class DiffComoAdapter(Adapter):
    def load(self, folder: Path) -> dict[str, DiffComoSVC]:
        return {weights: load_comosvc(_as_experiment_folder(folder, weights, config))
                for weights, config in _COMO_FILES.items()}

    def run(self, component: dict[str, DiffComoSVC], case_name: str, call: str, inputs: dict[str, Any],
            args: dict[str, Any], *, case: dict[str, Any]) -> dict[str, Any]:
        model = component[case.get("weights", "model.safetensors")]
        if case_name == "encoder_b2_masked":
            with torch.inference_mode():
                return {"mu": model.mu(inputs["x"], inputs["x_mask"])}
        if case_name.startswith("edm_precond_"):
            decoder = model.acoustic_mapper.decoder
            denoiser = decoder.denoise_fn_ema if case_name.endswith("_ema") else decoder.denoise_fn
            with torch.inference_mode():
                out = decoder.precondition(inputs["x"].transpose(1, 2), inputs["sigma"],
                                           inputs["cond"].transpose(1, 2), denoiser)
            return {"denoised": out.transpose(1, 2)}
        if case_name.startswith(("teacher_", "student_")):
            if bool(args["distill"]) != model.is_student:
                raise AssertionError(f"{case_name}: distill {args['distill']} but {case['weights']} loaded "
                                     f"as {'student' if model.is_student else 'teacher'}")
            # The student samples in one step whatever the run's inference_steps says (the reference too).
            n_steps = None if model.is_student else int(args["inference_steps"])
            calls: list[tuple[int, int]] = []
            mel = model(*_features(inputs), inputs["mask"], n_steps=n_steps, noise=inputs["noise"],
                        on_step=lambda step, total: calls.append((step, total)))
            expected = model.denoiser_calls(n_steps)
            if len(calls) != expected:
                raise AssertionError(f"{case_name}: {len(calls)} denoiser calls, expected {expected}")
            return {"mel": mel}
        raise NotImplementedError(f"svc_diffcomo: no call known for case {case_name!r}")


register("svc_multiplecontents", MultipleContentsAdapter())
register("svc_diffcomo", DiffComoAdapter())
