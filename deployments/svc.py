"""The four Amphion singing voice conversion recipes (MultipleContentsSVC, DiffComoSVC, TransformerSVC,
VitsSVC): one ``SVC`` entry for their four routes, composing ``SVCFrontEnds`` (Whisper-medium,
ContentVec, Praat F0, energy: shared by all four), one acoustic part per model (its singer table
with it) and ``SVCVocoder`` (the singing BigVGAN, shared by the three that predict mels; VitsSVC
decodes audio itself). Stages: ``models.svc.stages``; the in-process pipeline is
``models.svc.pipeline.SVCPipeline``. See ``FAMILY``.
"""

from __future__ import annotations

import asyncio
import time

import numpy as np
from ray import serve

from deployments.base import Loading
from deployments.components import (
    ENTRY_DEPLOYMENT_DEFAULTS, PART_DEPLOYMENT_DEFAULTS, PartHandles, PartService, PipelineService,
)
from deployments.errors import ModelUnavailable
from deployments.topology import Entry, Family, Part
from models.audio.wav import encode_wav
from models.svc.pipeline import KINDS, MODELS, SAMPLE_RATE, SVCInputError, model_parts
from models.svc.stages import LocalStages

FRONT_ENDS = "SVCFrontEnds"
VOCODER = "SVCVocoder"
#: The model whose release holds the front ends and the singing vocoder every recipe shares (its
#: args.json gives the front ends' settings: the four recipes use the same).
SHARED_PARTS_MODEL = "multiplecontentssvc"
#: Each model's acoustic part.
ACOUSTIC = {model: f"{KINDS[model].label}Acoustic" for model in MODELS}


class SVCPartService(PartService):
    """One part of an SVC pipeline: ``part`` (``front_ends``, ``acoustic``, ``vocoder``) of ``model``."""

    family = "SVC"
    local_stages = LocalStages
    input_errors = (SVCInputError,)

    def __init__(self, part: str, model: str = SHARED_PARTS_MODEL, stages: tuple[str, ...] = (), **loading):
        self.model = model
        owner = KINDS[model].label if part == "acoustic" else "SVC"   # the shared parts serve every model
        self.part_label = f"{owner} {part.replace('_', ' ')}"
        super().__init__(part, stages, **loading)

    def _load_part(self, part: str, loading: Loading):
        from models.svc.pipeline import SVCPipeline

        return SVCPipeline.from_weights(self.model, loading.weights, loading.device, loading.dtype, parts=(part,),
                                        cache_dir=loading.cache_dir)


def _part(name: str, part: str, stages: tuple[str, ...], model: str = SHARED_PARTS_MODEL) -> Part:
    deployment = serve.deployment(SVCPartService, name=name, **PART_DEPLOYMENT_DEFAULTS)
    return Part(name, deployment, args={"part": part, "model": model}, stages=stages)


PARTS = (
    _part(FRONT_ENDS, "front_ends", ("front_ends",)),
    *(_part(name, "acoustic", ("acoustic",), model) for model, name in ACOUSTIC.items()),
    _part(VOCODER, "vocoder", ("vocode",)),
)
#: Registry key -> the deployments its requests use.
MODEL_PARTS = {model: (FRONT_ENDS, ACOUSTIC[model], *((VOCODER,) if "vocoder" in model_parts(model) else ()))
               for model in MODELS}


class SVCService(PipelineService):
    """The SVC entry. ``convert(payload)``: model, source (float32 24 kHz), reference (or None),
    target_singer, key_shift, diffusion_steps, seed, subtype, task_id. ``singers(model)``."""

    label = "SVC"
    sample_rate = SAMPLE_RATE
    local_stages = LocalStages
    parts = PARTS
    model_parts = MODEL_PARTS

    async def _call(self, deployment: str, method: str, *args):
        return await PartHandles(self.components, {}, frozenset(), None, self.label).call(deployment, method, *args)

    async def _model(self, model: str) -> dict:
        """The model's acoustic part's facts (singers, steps); 503 when its parts hold different weights."""
        if model not in MODEL_PARTS:
            raise ModelUnavailable(f"{self.label}: no SVC model {model!r}")
        kind = await self._parts_kind(*MODEL_PARTS[model])
        if "+" in kind:
            raise ModelUnavailable(f"{KINDS[model].label}: its parts hold different weights ({kind}); the official "
                                   "model needs the official front ends and vocoder too")
        return (await self.part_facts(ACOUSTIC[model]))[ACOUSTIC[model]]

    async def singers(self, model: str) -> list[dict]:
        """``[{"name", "f0_median"}]`` of the model's checkpoint."""
        return (await self._model(model))["singers"]

    async def convert(self, payload: dict) -> dict:
        model = payload["model"]
        await self._model(model)
        task_id = payload.get("task_id")
        started = time.perf_counter()
        features = await self._call(FRONT_ENDS, "generate", "front_ends", {
            "content": np.ascontiguousarray(payload["source"], np.float32), "content_sr": SAMPLE_RATE,
            "reference": None if payload.get("reference") is None else np.ascontiguousarray(payload["reference"],
                                                                                          np.float32),
            "reference_sr": SAMPLE_RATE, "task_id": task_id})
        out = await self._call(ACOUSTIC[model], "generate", "acoustic", {
            "features": features, "target_singer": payload.get("target_singer"), "key_shift": payload.get("key_shift"),
            "diffusion_steps": payload.get("diffusion_steps"), "seed": payload.get("seed"), "task_id": task_id})
        wave = out["audio"] if "audio" in out else await self._call(VOCODER, "run", "vocode", out["mels"])
        wave = np.asarray(wave, dtype=np.float32)
        wav = await asyncio.to_thread(encode_wav, wave, SAMPLE_RATE, payload.get("subtype", "PCM_16"))
        return {"wav": wav, "sample_rate": SAMPLE_RATE, "duration": len(wave) / SAMPLE_RATE,
                "weights": await self._parts_kind(*MODEL_PARTS[model]), "compute_s": time.perf_counter() - started,
                "singer": out["singer"], "singer_chosen_by": out["singer_chosen_by"]}


SVCDeployment = serve.deployment(SVCService, name="SVC", **ENTRY_DEPLOYMENT_DEFAULTS)

FAMILY = Family("svc", parts=PARTS, entries=(
    Entry("SVC", SVCDeployment, models=MODELS, uses=tuple(p.name for p in PARTS)),
))
