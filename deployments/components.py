"""Pipeline parts as services, and the entries (pipeline deployments) that compose them.

:class:`PartService` is one part of a family's in-process pipeline (``models.<family>.pipeline``,
loaded with ``parts=(part,)``) behind the deployment API: its stages run in a worker thread, a
generating stage reports progress for the request's task id, the family's input errors become
400s. :class:`PartHandles` is the family's async stages protocol over the parts' handles, so the
family's orchestrator runs unchanged whether a part is another replica or in this process.
:class:`PipelineService` is the entry's base: its parts (handles, or recipes it builds inline),
their health and weights kind, the shared Whisper deployment, running the orchestrator.
"""

from __future__ import annotations

import asyncio
import time
from typing import Callable, Mapping

import numpy as np

from deployments import metrics, progress
from deployments.base import LOADING_ARGS, Loaded, Loading, ModelService
from deployments.errors import InvalidModelInput, ModelBusy, ModelError, ModelUnavailable, handle_call_failure
from deployments.fetching import DOWNLOADING
from deployments.runtime import MAX_QUEUED_REQUESTS
from deployments.topology import Part, PartRecipe, stage_owners
from models.audio.wav import encode_wav
from models.core.prompt_cache import PromptCache, PromptMemo

INFO_TIMEOUT_S = 2.5
#: Code defaults of part and entry deployments (the config files set the real numbers).
PART_DEPLOYMENT_DEFAULTS = dict(max_ongoing_requests=16, max_queued_requests=MAX_QUEUED_REQUESTS,
                                health_check_period_s=10, graceful_shutdown_timeout_s=300,
                                ray_actor_options={"num_cpus": 0.5})
ENTRY_DEPLOYMENT_DEFAULTS = dict(max_ongoing_requests=8, max_queued_requests=MAX_QUEUED_REQUESTS,
                                 health_check_period_s=10, graceful_shutdown_timeout_s=600,
                                 ray_actor_options={"num_cpus": 0.5})
#: The shared speech-recognition deployment (prompts sent without a transcript).
ASR = "WhisperASR"


class PartService(ModelService):
    """One part of a pipeline. Subclasses say how to load the family's pipeline with one part
    (:meth:`_load_part`) and name the family's ``local_stages`` class (numpy-in, numpy-out stages
    over a pipeline; its ``GENERATING`` stages take ``(request, emit)``) and ``input_errors``.
    ``stages`` (from the part's declaration) are what callers may run, empty = any.
    ``part_label`` names it in details."""

    family = ""
    part_label = ""
    local_stages: type = type(None)
    input_errors: tuple[type[Exception], ...] = ()

    def __init__(self, part: str, stages: tuple[str, ...] = (), **loading):
        self.part = part
        self.label = self.part_label or f"{self.family} {part}"
        self.stages = tuple(stages)
        super().__init__(**loading)

    def _load(self, loading: Loading) -> Loaded:
        pipeline = self._load_part(self.part, loading)
        return Loaded(self.local_stages(pipeline), pipeline.weights_kind, getattr(pipeline, "note", "") or "")

    def _load_part(self, part: str, loading: Loading):
        raise NotImplementedError

    @property
    def pipeline(self):
        """The in-process pipeline holding this part (None when it has no weights)."""
        return None if self.loaded is None else self.loaded.model.pipeline

    def _facts(self) -> dict:
        """The part's name, plus what its ``LocalStages.facts()`` says callers need (AR limits, say)."""
        return {"part": self.part, **getattr(self.loaded.model, "facts", {})}

    def _checked(self, fn: Callable, *args):
        try:
            return fn(*args)
        except self.input_errors as exc:
            raise InvalidModelInput(str(exc)) from None

    def _method(self, stage: str):
        if self.stages and stage not in self.stages:
            raise ModelUnavailable(f"{self.label} does not run the {stage!r} stage")
        return getattr(self._require(), stage)

    async def run(self, stage: str, *args):
        """A one-shot stage (numpy in and out)."""
        method = self._method(stage)
        with metrics.stage(stage):
            return await asyncio.to_thread(self._checked, method, *args)

    async def generate(self, stage: str, request: dict) -> dict:
        """A generating stage; progress events go to ``request["task_id"]``."""
        if stage not in self.local_stages.GENERATING:
            raise ModelUnavailable(f"{self.label}: {stage!r} is not a generating stage")
        method = self._method(stage)
        reporter = self.reporter(request.get("task_id"))
        emit = reporter.emitter()

        def steps():
            try:
                return self._checked(method, request, emit)
            finally:
                reporter.flush()   # here, in the worker thread: the answer then goes without another hop

        with metrics.stage(stage):
            return await asyncio.to_thread(steps)


class PartHandles:
    """A family's stages protocol over part deployments: ``stage_owner`` maps each stage to the
    deployment that runs it; ``handles`` maps deployment names to handles (or local stand-ins)."""

    def __init__(self, handles: dict, stage_owner: dict[str, str], generating: frozenset[str], task_id: str | None,
                 family: str):
        self.handles = handles
        self.stage_owner = stage_owner
        self.generating = generating
        self.task_id = task_id
        self.family = family

    async def call(self, deployment: str, method: str, *args):
        handle = self.handles.get(deployment)
        if handle is None:
            raise ModelUnavailable(f"{self.family}: deployment {deployment} is not part of this application")
        progress.send_now()   # this entry's events so far go ahead of the part's
        try:
            return await getattr(handle, method).remote(*args)
        except ModelError as exc:  # re-raised as a plain instance, so it crosses the next hop intact
            # Ray hands it over as its own subclass of the error (RayTaskError(...)): rebuild ours.
            kind = next((k for k in (ModelBusy, ModelUnavailable, InvalidModelInput) if isinstance(exc, k)),
                        InvalidModelInput)
            raise kind(getattr(exc, "detail", str(exc))) from None
        except Exception as exc:
            failure = handle_call_failure(exc, deployment, f"running {method}")
            if failure is None:
                raise
            raise type(failure)(f"{self.family}: {failure.detail}") from None

    def __getattr__(self, stage: str):
        owner = self.__dict__["stage_owner"].get(stage)
        if owner is None:
            raise AttributeError(stage)
        if stage in self.generating:
            async def generating(request: dict):
                return await self.call(owner, "generate", stage, {**request, "task_id": self.task_id})
            return generating

        async def one_shot(*args):
            return await self.call(owner, "run", stage, *args)
        return one_shot


async def components_info(handles: dict, names) -> dict[str, dict]:
    """Each named deployment's ``info()`` (not_running when absent or silent)."""
    async def one(name: str) -> dict:
        handle = handles.get(name)
        if handle is None:
            return {"status": "not_running", "weights": None, "detail": "not part of this application"}
        try:
            return await asyncio.wait_for(handle.info.remote(), INFO_TIMEOUT_S)
        except asyncio.TimeoutError:
            return {"status": "not_running", "weights": None, "detail": f"no answer in {INFO_TIMEOUT_S:g} s"}
        except Exception as exc:
            return {"status": "not_running", "weights": None, "detail": f"did not answer ({type(exc).__name__})"}

    names = list(names)
    return dict(zip(names, await asyncio.gather(*(one(n) for n in names))))


def summarize_info(infos: dict[str, dict], extra_problems: list[str] | None = None) -> dict:
    """A pipeline's health from its components': ready only when all are; ``downloading`` while some
    fetch their official files (with the combined ``progress``), otherwise unavailable."""
    problems = list(extra_problems or []) + [f"{name}: {i['status']} ({i.get('detail') or ''})"
                                             for name, i in infos.items() if i.get("status") != "ready"]
    downloads = [i.get("progress") or {} for i in infos.values() if i.get("status") == DOWNLOADING]
    status = "ready" if not problems else DOWNLOADING if downloads else "unavailable"
    summary = {"status": status, "running": True,
               "weights": joined_kind(i.get("weights") for i in infos.values()), "detail": "; ".join(problems)}
    if downloads:
        summary["progress"] = combined_progress(downloads)
    return summary


def combined_progress(downloads: list[dict]) -> dict:
    """Several downloads' progress as one (the total is unknown while one of them is still planning)."""
    done = sum(d.get("done_bytes") or 0 for d in downloads)
    totals = [d.get("total_bytes") for d in downloads]
    total = None if None in totals else sum(totals)
    if total is None:
        percent = None
    else:
        percent = round(100 * min(1.0, done / total), 1) if total else 100.0
    return {"done_bytes": done, "total_bytes": total, "percent": percent}


def knobs(payload: Mapping, *names: str, **renamed: str) -> dict:
    """The request's settings among ``names`` (and ``renamed``: argument name -> payload key) that it
    carries: the orchestrator's own defaults apply to the rest, so no default is retyped here."""
    found = {name: payload[name] for name in names if name in payload}
    found.update({arg: payload[key] for arg, key in renamed.items() if key in payload})
    return found


def joined_kind(kinds) -> str | None:
    """One weights kind for several parts: ``tiny``, ``pretrained``, or ``pretrained+tiny``."""
    kinds = sorted({k for k in kinds if k})
    return "+".join(kinds) or None


class PipelineService(ModelService):
    """An entry deployment: orchestration here, models in its parts.

    ``components``: deployment name -> handle (or a :class:`~deployments.topology.PartRecipe`, built
    here: the family's inline switch). ``parts`` are the family's part declarations (stages per
    deployment), ``local_stages`` its stages class (whose ``GENERATING`` stages report progress). The entry's own load (:meth:`_load`) is
    what it needs besides the parts (G2P data, or nothing); it is ready when that and every part is.
    """

    parts: tuple[Part, ...] = ()
    local_stages: type = type(None)
    #: Registry key -> the deployments its requests use, for an entry serving several models whose
    #: needs differ (health per model); a model not named here uses every part.
    model_parts: Mapping[str, tuple[str, ...]] = {}

    def __init__(self, components: Mapping | None = None, **loading):
        self._described: dict[str, dict] = {}
        # The references' encodings, kept between requests (a voice used again skips its encoders).
        self.prompt_cache = PromptCache()
        super().__init__(**loading)
        inline = {k: v for k, v in loading.items() if k in LOADING_ARGS}
        self.components = {name: (c.build(inline, self.store) if isinstance(c, PartRecipe) else c)
                           for name, c in (components or {}).items()}

    def _load(self, loading: Loading) -> Loaded:
        return Loaded(None, None)

    def _part_names(self, model: str | None = None) -> tuple[str, ...]:
        """The parts this entry calls (shared ones included), in declaration order; with ``model``,
        those its requests use."""
        names = tuple(p.name for p in self.parts if p.name in self.components)
        if model in self.model_parts:
            return tuple(n for n in names if n in self.model_parts[model])
        return names

    async def part_facts(self, *names: str) -> dict[str, dict]:
        """The named parts' (default: all) ``describe()``, each asked once: weights kind and facts."""
        names = names or self._part_names()
        todo = [n for n in names if n not in self._described]
        if todo:
            calls = PartHandles(self.components, {}, frozenset(), None, self.label)
            self._described.update(zip(todo, await asyncio.gather(*(calls.call(n, "describe") for n in todo))))
        return {n: self._described[n] for n in names}

    async def _parts_kind(self, *names: str) -> str:
        """The named parts' (default: all) weights kind."""
        return joined_kind(d.get("weights") for d in (await self.part_facts(*names)).values()) or ""

    async def describe(self) -> dict:
        self._require()
        await self._parts_kind()
        return {"sample_rate": self.sample_rate}

    def _own_problems(self, model: str | None) -> list[str]:
        """Why this entry itself cannot serve ``model`` (its own data), beyond its parts."""
        return [] if self.loaded is not None else [f"{self.label}: {self.missing.removeprefix('has ')}: {self.unavailable}"]

    async def info(self, model: str | None = None) -> dict:
        """Ready when the entry and every part ``model``'s requests use (default: all) are."""
        infos = await components_info(self.components, self._part_names(model))
        fetching = self.fetching
        if fetching is not None:  # the entry's own files (G2P data, a built-in voice) are on their way
            return summarize_info({self.label: fetching.info(), **infos})
        return summarize_info(infos, self._own_problems(model))

    def handles(self, task_id: str | None) -> PartHandles:
        return PartHandles(self.components, stage_owners(self.parts), self.local_stages.GENERATING, task_id,
                           self.label)

    async def asr(self, method: str, *args) -> dict:
        """Call the shared speech-recognition deployment (``prompt`` / ``transcribe``)."""
        if ASR not in self.components:
            raise ModelUnavailable(f"{self.label} needs a transcript here and speech recognition (WhisperASR) "
                                   "is not part of this application")
        return await PartHandles(self.components, {}, frozenset(), None, self.label).call(ASR, method, *args)

    def prompt_memo(self, payload: dict) -> PromptMemo:
        """This request's view of the kept encodings of its reference (``payload["prompt_key"]``, set by
        the ingress; without one nothing is kept). Hand it to :meth:`render`, which reports it."""
        return PromptMemo(self.prompt_cache, payload.get("prompt_key"))

    async def render(self, payload: dict, make, input_errors, parts: tuple[str, ...] = (),
                     prompts: PromptMemo | None = None) -> dict:
        """Run ``make(kind, emit)`` (the orchestration, returning float32 audio) for a request and
        answer the WAV; the family's ``input_errors`` become 400s. ``parts``: those this request
        uses (default: all), whose weights kind it reports. ``prompts``: the request's memo of kept
        prompt encodings (keyed by that weights kind too); the answer's ``prompt`` reports its hits."""
        kind = await self._parts_kind(*parts)
        if prompts is not None:
            prompts.weights = kind
        emit = self.reporter(payload.get("task_id")).emitter()
        started = time.perf_counter()
        try:
            wave = await make(kind, emit)
        except input_errors as exc:
            raise InvalidModelInput(str(exc)) from None
        wave = np.asarray(wave, dtype=np.float32)
        wav = await asyncio.to_thread(encode_wav, wave, self.sample_rate, payload.get("subtype", "PCM_16"))
        result = {"wav": wav, "sample_rate": self.sample_rate, "duration": len(wave) / self.sample_rate,
                  "weights": kind, "compute_s": time.perf_counter() - started}
        report = None if prompts is None else prompts.report()
        if report is not None:
            result["prompt"] = report
        return result


class TextPipelineService(PipelineService):
    """An entry whose requests read text: it loads the G2P data at start. ``g2p_required``: every
    request reads text (without the data the entry is unavailable); otherwise only some modes do,
    and those answer 503 with the reason while the others serve."""

    g2p_required = True
    missing = "has no G2P data"
    #: With ``g2p_required`` off: the registry keys whose requests read text (unavailable without it).
    text_models: frozenset[str] = frozenset()

    def __init__(self, components: Mapping | None = None, **loading):
        from models.text.g2p import G2PDataUnavailable

        self.load_errors = (G2PDataUnavailable,)
        self.g2p_unavailable = ""
        super().__init__(components, **loading)

    def _load(self, loading: Loading) -> Loaded:
        from models.text import G2P
        from models.text.data import resolve_g2p_data
        from models.text.g2p import G2PDataUnavailable

        self.g2p_unavailable = ""  # a load after a start-up download starts afresh
        try:
            return Loaded(G2P(resolve_g2p_data(loading.weights)), None)
        except G2PDataUnavailable as exc:
            if self.g2p_required:
                raise
            self.g2p_unavailable = str(exc)
            return Loaded(None, None)

    def _own_problems(self, model: str | None) -> list[str]:
        problems = super()._own_problems(model)
        if not problems and self.g2p_unavailable and model in self.text_models:
            problems.append(f"{self.label} text front end: {self.g2p_unavailable}")
        return problems

    @property
    def g2p_or_none(self):
        """The G2P, or None when this entry runs without text (no data, only text-free modes work)."""
        return None if self.loaded is None else self.loaded.model

    def g2p(self):
        """The G2P for a request that reads text, or ModelUnavailable (503) saying why there is none."""
        g2p = self._require()
        if g2p is None:
            raise ModelUnavailable(f"{self.label} needs its text front end here, which has no data: "
                                   f"{self.g2p_unavailable}")
        return g2p
