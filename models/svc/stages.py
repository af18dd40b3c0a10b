"""The SVC pipeline's stages as a part deployment runs them: numpy in and out, one request dict per
generating stage (its progress goes to ``emit``), so the four SVC routes can share the front-end
and vocoder deployments and each model's acoustic part runs on its own. In process,
:meth:`SVCPipeline.convert` runs the same three stages."""

from __future__ import annotations

from typing import Any

import numpy as np

from models.core.stages import ProgressFn, float32
from models.svc.pipeline import SVCPipeline

__all__ = ["LocalStages"]


class LocalStages:
    """``front_ends(request, emit)``: ``{"content", "content_sr", "reference" (or None), "reference_sr"}`` ->
    the features dict of :meth:`SVCPipeline.front_ends`. ``acoustic(request, emit)``: ``{"features",
    "target_singer", "key_shift", "diffusion_steps", "seed"}`` -> :meth:`SVCPipeline.acoustic`'s dict.
    ``vocode(mels)``: per-segment log-mels -> float32 24 kHz audio."""

    GENERATING = frozenset({"front_ends", "acoustic"})

    def __init__(self, pipeline: SVCPipeline) -> None:
        self.pipeline = pipeline

    @property
    def facts(self) -> dict[str, Any]:
        """What callers need to know of the part: the acoustic part's singers and step counts."""
        p = self.pipeline
        if "acoustic" not in p.parts:
            return {"model": p.model}
        return {"model": p.model, "singers": p.singers(), "has_steps": p.has_steps,
                "default_steps": p.default_steps, "predicts_audio": p.kind.predicts_audio}

    def front_ends(self, request: dict, emit: ProgressFn | None = None) -> dict:
        return self.pipeline.front_ends(request["content"], int(request.get("content_sr", self.pipeline.sample_rate)),
                                        request.get("reference"),
                                        int(request.get("reference_sr", self.pipeline.sample_rate)), on_step=emit)

    def acoustic(self, request: dict, emit: ProgressFn | None = None) -> dict:
        out = self.pipeline.acoustic(request["features"], target_singer=request.get("target_singer"),
                                     key_shift=request.get("key_shift"), diffusion_steps=request.get("diffusion_steps"),
                                     seed=request.get("seed"), on_step=emit)
        if "audio" in out:
            out["audio"] = float32(out["audio"])
        return out

    def vocode(self, mels: list[np.ndarray]) -> np.ndarray:
        return float32(self.pipeline.vocode(mels))
