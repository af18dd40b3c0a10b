"""Noro one-shot voice conversion: the ``Noro`` entry (``/api/vc/noro``), one model (``models.noro``).

The source's words in the target speaker's voice, 16 kHz in and out. ``convert(payload)`` checks
the request (bad input: 400 at once, before waiting for the model), then runs the front ends
(HuBERT + k-means + WORLD F0 on the source, the target's mel), the diffusion sampler and the vocoder
in this replica's single worker thread, and answers the WAV. Progress: one event per front end
(``content``, ``reference``), one per sampler step (``diffusion``) and one for the vocoder
(``vocoding``).

One request at a time. Noro's reference encoder adds the positional vector of the BATCH position to
every frame, so only an unbatched request gives what the official inference gives; and a request's
peak memory is the model's. Requests are never batched, and inference runs on a one-thread executor
(``ThreadPoolExecutor(max_workers=1)``) owned by the replica: requests that arrive together wait
there in arrival order; one cancelled while waiting never runs. ``describe()`` / ``info()`` do not
wait for it. More throughput is more replicas (config ``autoscaling_config``).

Weights are the user's (Noro's checkpoint, k-means file and 16 kHz BigVGAN are unpublished):
``$AMPHION_NORO_DIR``, plus HuBERT-base from the hub or ``$AMPHION_NORO_HUBERT_DIR``
(``models/noro/official.py``). Missing files: every call answers 503 naming them; files that are
present but cannot be loaded: 503 with the reason. Neither detail names a folder of the server.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Mapping

import numpy as np
from ray import serve

from deployments.base import Loaded, Loading, ModelService
from deployments.components import ENTRY_DEPLOYMENT_DEFAULTS
from deployments.errors import InvalidModelInput
from deployments.progress import ProgressReporter
from deployments.topology import Entry, Family
from models.audio.wav import encode_wav
from models.weights import WeightsUnavailable

log = logging.getLogger("amphion.noro")

SAMPLE_RATE = 16000
#: Requests a replica accepts at once: one converting, the rest waiting for the worker thread, and
#: room for the ingress's ``describe`` / ``info`` calls, which must not wait behind a conversion.
MAX_ONGOING_REQUESTS = 4
_HF_CACHE_LABEL = "the Hugging Face cache"
#: An absolute path of two or more components (not one that follows a name, like "$VAR/file").
_ABSOLUTE_PATH = re.compile(r"(?<![\w$.~])(?:/[^\s/'\":,;()\[\]]+)+/([^\s/'\":,;()\[\]]+)")


def without_server_paths(text: str, folders: Mapping[str, str]) -> str:
    """``text`` with each of ``folders`` (folder -> how it is named to users) replaced by its name,
    and any other absolute path by its last component: details are shown to API users."""
    for folder, label in sorted(folders.items(), key=lambda kv: -len(kv[0])):
        if folder and folder != os.sep:
            text = text.replace(folder, label)
    return _ABSOLUTE_PATH.sub(r"\1", text)


class NoroService(ModelService):
    """``convert(payload)``: source (float32 mono, 16 kHz), target (the voice, float32 mono 16 kHz),
    inference_steps (50..500, 200), sigma (0.9..1.5, 1.2), seed, subtype ("PCM_16" / "FLOAT"),
    task_id. ``local_dirs``: ``{"noro": folder, "hubert": folder}`` instead of the environment
    variables (tests, scripts)."""

    label = "Noro"

    def __init__(self, local_dirs: Mapping[str, str] | None = None, **loading):
        self.local_dirs = {k: os.fspath(v) for k, v in (local_dirs or {}).items()}
        # The one thread every conversion runs on: one request at a time, in arrival order.
        self.worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="noro")
        super().__init__(**loading)

    # -- loading -----------------------------------------------------------------------------------
    def _load(self, loading: Loading) -> Loaded:
        from models.core.checkpoints import CheckpointError
        from models.noro.pipeline import NoroPipeline

        # float32 whatever ``dtype`` says: the pipeline has no half-precision path (parity is fp32).
        try:
            pipeline = NoroPipeline.from_weights(loading.weights, device=loading.device, cache_dir=loading.cache_dir,
                                                 local_dirs=self.local_dirs or None)
        except (CheckpointError, ValueError, OSError) as exc:
            if loading.weights == "tiny":
                raise  # seeded weights that do not build are a bug, not a missing file
            log.exception("Noro: the supplied files could not be loaded")
            detail = without_server_paths(str(exc), self._folder_names(loading))
            raise WeightsUnavailable(f"the supplied files could not be loaded: {detail}") from None
        return Loaded(pipeline, pipeline.weights_kind, pipeline.note)

    def _folder_names(self, loading: Loading) -> dict[str, str]:
        """The folders weights may come from on this server -> how users know them."""
        from models.noro.official import HUBERT_DIR_ENV, NORO_DIR_ENV
        from models.weights import default_cache_dir

        given = {"noro": (self.local_dirs.get("noro") or os.environ.get(NORO_DIR_ENV, ""), f"${NORO_DIR_ENV}"),
                 "hubert": (self.local_dirs.get("hubert") or os.environ.get(HUBERT_DIR_ENV, ""), f"${HUBERT_DIR_ENV}")}
        names: dict[str, str] = {}
        try:
            cache = default_cache_dir(loading.cache_dir)
            names.update({str(cache): _HF_CACHE_LABEL, str(cache.resolve()): _HF_CACHE_LABEL})
        except Exception:  # noqa: BLE001 - naming only
            pass
        for folder, label in given.values():
            if folder.strip():
                path = Path(folder.strip()).expanduser()
                names.update({folder.strip(): label, str(path): label, str(path.resolve()): label})
        return {k.rstrip(os.sep): v for k, v in names.items() if k.rstrip(os.sep)}

    def _facts(self) -> dict:
        pipeline = self.loaded.model
        return {"sample_rate": SAMPLE_RATE, "min_target_samples": pipeline.min_target_samples}

    # -- requests ----------------------------------------------------------------------------------
    async def convert(self, payload: dict) -> dict:
        from models.noro import configs as C
        from models.noro.pipeline import NoroInputError

        pipeline = self._require()
        steps = payload.get("inference_steps")
        sigma = payload.get("sigma")
        try:
            # Checked before queueing: a refused request answers at once, not after the one running.
            request = await asyncio.to_thread(
                pipeline.check, payload.get("source"), payload.get("target"),
                steps=C.DEFAULT_STEPS if steps is None else steps, sigma=C.DEFAULT_SIGMA if sigma is None else sigma,
                seed=payload.get("seed"))
        except NoroInputError as exc:
            raise InvalidModelInput(str(exc)) from None
        reporter = self.reporter(payload.get("task_id"))
        loop = asyncio.get_running_loop()
        wave, compute_s = await loop.run_in_executor(self.worker, self._run, pipeline, request, reporter)
        wav = await asyncio.to_thread(encode_wav, wave, SAMPLE_RATE, payload.get("subtype", "PCM_16"))
        return {"wav": wav, "sample_rate": SAMPLE_RATE, "duration": len(wave) / SAMPLE_RATE,
                "weights": self.weights_kind, "compute_s": compute_s}

    @staticmethod
    def _run(pipeline, request, reporter: ProgressReporter) -> tuple[np.ndarray, float]:
        """One checked request, on the worker thread: ``NoroPipeline.convert``'s steps, with progress
        after each front end, every sampler step and the vocoder."""
        started = time.perf_counter()
        source = pipeline.source_features(request.source)
        reporter.step("content", 1, 1, "HuBERT-base layer 9, k-means, F0")
        reference = pipeline.reference_features(request.target)
        reporter.step("reference", 1, 1, "target speaker's mel")
        mel = pipeline.generate_mel(source, reference, steps=request.steps, sigma=request.sigma, seed=request.seed,
                                    on_step=lambda step, total: reporter.step("diffusion", step, total))
        # As convert: the model sees the source padded to 1600 samples; the answer has its length.
        wave = np.asarray(pipeline.vocode(mel)[: request.source.shape[0]], dtype=np.float32)
        reporter.step("vocoding", 1, 1)
        return wave, time.perf_counter() - started


NoroDeployment = serve.deployment(NoroService, name="Noro",
                                  **{**ENTRY_DEPLOYMENT_DEFAULTS, "max_ongoing_requests": MAX_ONGOING_REQUESTS})

FAMILY = Family("noro", entries=(
    Entry("Noro", NoroDeployment, models=("noro",)),
))
