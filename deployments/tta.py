"""Text to audio: the ``AudioLDM`` and ``PicoAudio`` entries.

``AudioLDM`` holds the AudioLDM models a request may pick with ``model``: diffusers-format repos
(default ``cvssp/audioldm-s-full-v2``) and ``amphion`` (Amphion's own checkpoint). Which ones it
loads is its ``user_config.models`` (default: those two); each that cannot load answers 503 with
its reason, a name it does not hold answers 400 listing those it does. ``PicoAudio`` serves one
model. In both, requests for the same model and step count share a batch (``@serve.batch``): every
request keeps its own noise, so batching never changes a result beyond float rounding, and a
refused request never fails its batch-mates. Both report a progress event per denoising step and
run inference in a worker thread.
"""

from __future__ import annotations

import asyncio
import logging
import time

import numpy as np
from ray import serve

from deployments import metrics
from deployments.base import Loaded, Loading, ModelService
from deployments.errors import InvalidModelInput, ModelUnavailable
from deployments.runtime import MAX_QUEUED_REQUESTS, apply_batching, inside_serve
from deployments.topology import Entry, Family
from models.audio.wav import encode_wav
from models.weights import WeightsUnavailable

log = logging.getLogger("amphion.tta")

AMPHION = "amphion"
SAMPLE_RATE = 16000
DEFAULT_MAX_BATCH_SIZE = 4
DEFAULT_BATCH_WAIT_S = 0.0


def _audioldm_defaults() -> tuple[str, ...]:
    from models.audioldm.diffusers_pipeline import DIFFUSERS_DEFAULT_REPO

    return (DIFFUSERS_DEFAULT_REPO, AMPHION)


def _wav_result(wave: np.ndarray, payload: dict, weights: str, compute_s: float, batch_size: int = 1) -> dict:
    return {"wav": encode_wav(wave, SAMPLE_RATE, payload.get("subtype", "PCM_16")), "sample_rate": SAMPLE_RATE,
            "duration": len(wave) / SAMPLE_RATE, "weights": weights, "compute_s": compute_s,
            "batch_size": batch_size}


class AudioLDMService(ModelService):
    """``generate(payload)``: text, model, audio_length_in_s, num_inference_steps, guidance_scale,
    negative_prompt, seed, subtype, task_id."""

    label = "AudioLDM"

    def __init__(self, models: tuple[str, ...] | None = None, **loading):
        self.batched = inside_serve()
        self.wanted = tuple(models or _audioldm_defaults())
        self.models: dict = {}
        self.missing: dict[str, str] = {}
        super().__init__(**loading)

    # -- loading -----------------------------------------------------------------------------------
    def _load(self, loading: Loading) -> Loaded:
        self.loading = loading
        self.models, self.missing = {}, {}  # from scratch: a load after a start-up download replaces the first
        self._load_models(self.wanted)
        if not self.models:
            raise WeightsUnavailable("; ".join(f"{name}: {why}" for name, why in self.missing.items()))
        kinds = sorted({m.weights_kind for m in self.models.values()})
        return Loaded(self.models, "+".join(kinds), self._note())

    def _load_models(self, names) -> None:
        for name in names:
            if name in self.models:
                continue
            try:
                self.models[name] = self._load_one(name)
                self.missing.pop(name, None)
            except WeightsUnavailable as exc:
                self.missing[name] = str(exc)
                log.error("AudioLDM %s unavailable: %s", name, exc)

    def _load_one(self, name: str):
        loading = self.loading
        if name == AMPHION:
            from models.audioldm.pipeline import AmphionAudioLDM

            return AmphionAudioLDM.from_weights(loading.weights, device=loading.device, dtype=loading.dtype,
                                                cache_dir=loading.cache_dir)
        from models.audioldm.diffusers_pipeline import DiffusersAudioLDM

        return DiffusersAudioLDM.from_weights(name, loading.weights, device=loading.device, dtype=loading.dtype,
                                              cache_dir=loading.cache_dir)

    def _note(self) -> str:
        # The licence of the weights actually served (cvssp's are CC-BY-NC-SA-4.0: non-commercial).
        notes = [f"{name}: weights licence {m.license}" for name, m in self.models.items() if getattr(m, "license", None)]
        notes += [f"{name} unavailable: {why}" for name, why in self.missing.items()]
        return "; ".join(notes)

    def reconfigure(self, config: dict) -> None:
        """Serve ``user_config``: batching knobs, and ``models`` (more AudioLDM models to hold)."""
        apply_batching(config, self._generate_batch)
        if config.get("models") and self.fetching is not None:  # still downloading: the load after it takes them
            self.wanted = tuple(dict.fromkeys([*self.wanted, *config["models"]]))
        elif config.get("models") and self.loaded is not None:
            self._load_models(config["models"])
            self.loaded = Loaded(self.models, self.loaded.weights_kind, self._note())

    # -- requests ------------------------------------------------------------------------------------
    def _facts(self) -> dict:
        return {"sample_rate": SAMPLE_RATE, "models": sorted(self.models), "unavailable": sorted(self.missing)}

    def _model(self, name: str):
        if name in self.models:
            return self.models[name]
        if name in self.missing:
            raise ModelUnavailable(f"AudioLDM model {name!r} is not available: {self.missing[name]}")
        raise InvalidModelInput(f"model: {name!r} is not served here; choose one of "
                                f"{', '.join(sorted([*self.models, *self.missing]))}")

    async def generate(self, payload: dict) -> dict:
        self._require()
        payload = {**payload, "model": payload.get("model") or self.wanted[0]}
        model = self._model(payload["model"])
        if payload["model"] != AMPHION and self.batched:
            result = await self._generate_batch(payload)
        else:
            result = (await asyncio.to_thread(self._run, model, [payload]))[0]
        if "error" in result:
            raise InvalidModelInput(result["error"])
        return result

    @serve.batch(max_batch_size=DEFAULT_MAX_BATCH_SIZE, batch_wait_timeout_s=DEFAULT_BATCH_WAIT_S,
                 max_concurrent_batches=1)
    async def _generate_batch(self, payloads: list[dict]) -> list[dict]:
        # Only requests for the same model and step count can share a denoising loop.
        groups: dict[tuple, list[int]] = {}
        for i, p in enumerate(payloads):
            groups.setdefault((p["model"], p.get("num_inference_steps")), []).append(i)
        results: list = [None] * len(payloads)
        for (name, _), items in groups.items():
            outs = await asyncio.to_thread(self._run, self.models[name], [payloads[i] for i in items])
            if len(items) > 1 and any("error" in o for o in outs):
                # One bad request must not fail its batch-mates: run each alone (their own noise, same result).
                outs = [(await asyncio.to_thread(self._run, self.models[name], [payloads[i]]))[0] for i in items]
            for i, out in zip(items, outs):
                results[i] = out
        return results

    def _run(self, model, payloads: list[dict]) -> list[dict]:
        """Results, or ``{"error": detail}`` for every item when the model refuses the input."""
        from models.audioldm.diffusers_pipeline import AudioLDMInputError
        from models.audioldm.pipeline import AmphionAudioLDMInputError

        reporters = [self.reporter(p.get("task_id")) for p in payloads]

        def on_step(step: int, total: int) -> None:
            for r in reporters:
                r.step("diffusion", step, total)

        settings = [{k: p[k] for k in ("audio_length_in_s", "guidance_scale", "negative_prompt", "seed")
                     if p.get(k) is not None} for p in payloads]
        steps = {k: payloads[0][k] for k in ("num_inference_steps",) if payloads[0].get(k) is not None}
        started = time.perf_counter()
        try:
            if len(payloads) == 1:
                waves = [model.generate(payloads[0]["text"], **settings[0], **steps, on_step=on_step)]
            else:
                per_item = {k: [s.get(k) for s in settings] for k in ("audio_length_in_s", "guidance_scale",
                                                                       "negative_prompt", "seed")}
                waves = model.generate([p["text"] for p in payloads], **per_item, **steps, on_step=on_step)
        except (AudioLDMInputError, AmphionAudioLDMInputError) as exc:
            return [{"error": str(exc)} for _ in payloads]
        compute_s = time.perf_counter() - started
        metrics.record_stage("generate", compute_s, batch_size=len(payloads))
        kind = model.weights_kind
        return [_wav_result(np.asarray(w, np.float32), p, kind, compute_s, len(payloads))
                for w, p in zip(waves, payloads)]


AudioLDMDeployment = serve.deployment(AudioLDMService, name="AudioLDM", max_ongoing_requests=16, max_queued_requests=MAX_QUEUED_REQUESTS,
                                      health_check_period_s=10, graceful_shutdown_timeout_s=600,
                                      ray_actor_options={"num_cpus": 0.5})


class PicoAudioService(ModelService):
    """``generate(payload)``: text (events with times), duration, num_inference_steps, guidance_scale,
    seed, subtype, task_id; ``events()``: the event classes the model was trained on. Requests with
    the same step count share a batch (``@serve.batch``); each keeps its own noise, and one the
    model refuses is answered alone, before the batch runs."""

    label = "PicoAudio"

    def __init__(self, **loading):
        self.batched = inside_serve()
        super().__init__(**loading)

    def _load(self, loading: Loading) -> Loaded:
        from models.picoaudio.pipeline import PicoAudioPipeline

        pipeline = PicoAudioPipeline.from_weights(loading.weights, device=loading.device, dtype=loading.dtype,
                                                  cache_dir=loading.cache_dir)
        return Loaded(pipeline, pipeline.weights_kind, pipeline.note)

    def reconfigure(self, config: dict) -> None:
        """Serve ``user_config``: batching knobs (``max_batch_size``, ``batch_wait_timeout_s``)."""
        apply_batching(config, self._generate_batch)

    def _facts(self) -> dict:
        return {"sample_rate": SAMPLE_RATE, "max_seconds": self.loaded.model.max_seconds}

    async def events(self, _payload: dict | None = None) -> list[str]:
        """The event classes (data: answered whether or not the weights loaded)."""
        from models.picoaudio import events

        return list(events())

    async def generate(self, payload: dict) -> dict:
        self._require()
        if self.batched:
            result = await self._generate_batch(payload)
        else:
            result = (await asyncio.to_thread(self._run, [payload]))[0]
        if "error" in result:
            raise InvalidModelInput(result["error"])
        return result

    @serve.batch(max_batch_size=DEFAULT_MAX_BATCH_SIZE, batch_wait_timeout_s=DEFAULT_BATCH_WAIT_S,
                 max_concurrent_batches=1)
    async def _generate_batch(self, payloads: list[dict]) -> list[dict]:
        return await asyncio.to_thread(self._run, payloads)

    @staticmethod
    def _settings(payload: dict) -> dict:
        return {k: payload[k] for k in ("duration", "num_inference_steps", "guidance_scale", "seed")
                if payload.get(k) is not None}

    def _run(self, payloads: list[dict]) -> list[dict]:
        """Results in order. Each request is checked first by the pipeline's own input checks: one it
        refuses gets ``{"error": detail}`` and stays out of the run; the rest share a denoising loop
        per step count (only requests with the same step count can)."""
        from models.picoaudio.timestamps import PicoAudioInputError

        pipeline = self.loaded.model
        results: list = [None] * len(payloads)
        groups: dict[int, list[int]] = {}
        for i, p in enumerate(payloads):
            try:
                _, steps = pipeline.check(p.get("text"), **self._settings(p))
            except PicoAudioInputError as exc:
                results[i] = {"error": str(exc)}
                continue
            groups.setdefault(steps, []).append(i)
        for steps, items in groups.items():
            group = [payloads[i] for i in items]
            for i, out in zip(items, self._run_group(pipeline, group, steps)):
                results[i] = out
        return results

    def _run_group(self, pipeline, payloads: list[dict], steps: int) -> list[dict]:
        reporters = [self.reporter(p.get("task_id")) for p in payloads]

        def on_step(step: int, total: int) -> None:
            for r in reporters:
                r.step("diffusion", step, total)

        per_item = {k: [p.get(k) for p in payloads] for k in ("duration", "guidance_scale", "seed")}
        started = time.perf_counter()
        waves = pipeline.generate([p["text"] for p in payloads], **per_item, num_inference_steps=steps,
                                  on_step=on_step)
        compute_s = time.perf_counter() - started
        metrics.record_stage("generate", compute_s, batch_size=len(payloads))
        return [_wav_result(np.asarray(w, np.float32), p, pipeline.weights_kind, compute_s, len(payloads))
                for w, p in zip(waves, payloads)]


PicoAudioDeployment = serve.deployment(PicoAudioService, name="PicoAudio", max_ongoing_requests=16, max_queued_requests=MAX_QUEUED_REQUESTS,
                                       health_check_period_s=10, graceful_shutdown_timeout_s=600,
                                       ray_actor_options={"num_cpus": 0.5})

FAMILY = Family("tta", entries=(
    Entry("AudioLDM", AudioLDMDeployment, models=("audioldm",)),
    Entry("PicoAudio", PicoAudioDeployment, models=("picoaudio",)),
))
