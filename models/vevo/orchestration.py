"""Vevo's orchestration, once, for every way of running its stages (timbre, style and voice
conversion, TTS).

:class:`VevoOrchestrator` does everything the reference's ``VevoInferencePipeline`` does between its
models: input checks, the 24 kHz -> 16 kHz resampling, which recording feeds which model, prompt
concatenations, the AR length budget (:func:`ar_new_tokens` under the AR's ``ARLimits``), progress
and randomness. The stages are coroutines behind :class:`VevoStages` (numpy in and out), so the
same orchestration runs in process (:class:`InlineStages` over a pipeline's :class:`LocalStages`,
driven by :func:`models.core.stages.run_inline`) and across deployments (the protocol over handles
to the component deployments). Input errors are :class:`VevoInputError` and its subclasses, raised
before any model runs where no model output is needed to tell.

The tasks, how they differ from the reference, progress and randomness: ``models/vevo/README.md``.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from models.audio.resample import to_rate
from models.core import checks
from models.core import stages as core_stages
from models.core.prompt_cache import PromptMemo
from models.core.stages import ProgressFn, float32, generator_state, inline, int64, stage_generator, step_reporter
from models.text import SUPPORTED_LANGUAGES, UnsupportedLanguage, detect_language, normalize_language
from models.vevo.ar_transformer import DEFAULT_PROGRESS_EVERY as AR_PROGRESS_EVERY  # noqa: F401 (public constant)
from models.vevo.flow_matching import DEFAULT_CFG, DEFAULT_RESCALE_CFG, DEFAULT_STEPS, MAX_STEPS
from models.vevo.fm_ar_configs import AR_LIMITS, ARLimits

__all__ = [
    "STAGES",
    "AudioInputError",
    "AudioTooShortError",
    "EmptyTextError",
    "InlineStages",
    "InputTooLongError",
    "LocalStages",
    "ReferenceTextRequired",
    "SilentAudioError",
    "UnsupportedLanguageError",
    "VevoInputError",
    "VevoOrchestrator",
    "VevoStages",
    "ar_new_tokens",
]

SAMPLE_RATE = 24000          # input, mel and output rate
HUBERT_SAMPLE_RATE = 16000   # the tokenizers' rate
HOP = 480                    # output samples per 50 Hz frame
#: Progress stages, in the order they can run.
STAGES = ("transcribe", "g2p", "content_tokens", "contentstyle_tokens", "ar", "mel", "fm", "vocode")
MODES = ("ar", "fm")

# The reference's AR sampling (fixed inside AutoregressiveTransformer.generate).
AR_TEMPERATURE = 0.8
AR_TOP_K = 50
AR_TOP_P = 0.9
AR_MIN_NEW_TOKENS = 50
AR_MAX_LENGTH = AR_LIMITS.max_length
# The reference's FM settings (reverse_diffusion defaults, flow_matching_steps of the scripts).
FM_STEPS = DEFAULT_STEPS
FM_CFG = DEFAULT_CFG
FM_RESCALE_CFG = DEFAULT_RESCALE_CFG

#: Shortest reference (a style or timbre prompt needs some speech).
MIN_REFERENCE_SECONDS = 0.5
#: Shortest source (a few frames; HuBERT alone needs 25 ms).
MIN_SOURCE_SECONDS = 0.1
#: RMS below which a recording counts as silent (-80 dBFS).
SILENCE_RMS = 1e-4

#: ``transcribe(reference_24k) -> {"text", "language", "seconds"}``: what ``WhisperASR.prompt`` answers.
TranscribeFn = Callable[[np.ndarray], Awaitable[dict]]


# ---------------------------------------------------------------------------------------------
# errors


class VevoInputError(ValueError):
    """A request Vevo cannot serve as given (a client error); the message is user-safe."""


class AudioInputError(VevoInputError):
    """A recording is unusable: not mono, not audio samples, or not finite."""


class AudioTooShortError(AudioInputError):
    """A recording is empty or shorter than the task needs."""


class SilentAudioError(AudioInputError):
    """A recording holds no signal."""


class EmptyTextError(VevoInputError):
    """The text (or the reference's transcript) is empty or has nothing to pronounce."""


class UnsupportedLanguageError(VevoInputError, UnsupportedLanguage):
    """A language the G2P cannot convert (also an :class:`models.text.UnsupportedLanguage`)."""


class ReferenceTextRequired(VevoInputError):
    """TTS in ``"ar"`` mode without the reference's transcript, and no speech recognition to make one."""


class InputTooLongError(VevoInputError):
    """The inputs leave the AR stage no room under its length limit."""


# ---------------------------------------------------------------------------------------------
# AR length policy


def ar_new_tokens(limits: ARLimits, prompt_length: int, cap_units: int, per_unit: float | None) -> int:
    """The most new tokens the AR may make after a prompt of ``prompt_length`` under ``limits``
    (``per_unit`` tokens per ``cap_units`` when set); InputTooLongError when the prompt leaves no room."""
    room = limits.max_length - prompt_length
    if room < 1:
        raise InputTooLongError(
            f"the inputs are too long for Vevo's AR stage: its prompt takes {prompt_length} tokens "
            f"of at most {limits.max_length}; use shorter recordings or text")
    if per_unit is None:
        return room
    return max(1, min(room, math.ceil(per_unit * cap_units)))


# ---------------------------------------------------------------------------------------------
# small checks and helpers


def _finite(value, name: str, *, positive: bool = False) -> float:
    return checks.finite(value, name, VevoInputError, positive=positive)


def _integer(value, name: str, low: int, high: int | None = None) -> int:
    return checks.integer(value, name, VevoInputError, low, high)


def _seed(seed) -> int | None:
    return checks.seed(seed, VevoInputError)


def _mode(mode) -> str:
    if mode not in MODES:
        raise VevoInputError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    return mode


def _mono(wav, what: str) -> np.ndarray:
    """Mono float32 samples of a recording (integer PCM is scaled to [-1, 1])."""
    return checks.mono(wav, what, AudioInputError, missing=AudioTooShortError, missing_text="is empty")


def checked_audio(wav, what: str, min_seconds: float) -> np.ndarray:
    """A usable 24 kHz recording: mono, finite, long enough, not silent."""
    arr = _mono(wav, what)
    if arr.size == 0:
        raise AudioTooShortError(f"{what} is empty")
    if arr.size < min_seconds * SAMPLE_RATE:
        raise AudioTooShortError(f"{what} is too short: {arr.size / SAMPLE_RATE:.2f} s, "
                                 f"at least {min_seconds:g} s needed")
    if float(np.sqrt(np.mean(np.square(arr, dtype=np.float64)))) < SILENCE_RMS:
        raise SilentAudioError(f"{what} is silent")
    return arr


def checked_text(text, what: str) -> str:
    if not isinstance(text, str):
        raise EmptyTextError(f"{what} must be a string")
    if not text.strip():
        raise EmptyTextError(f"{what} is empty")
    return text


def source_frames(num_samples: int) -> int:
    """50 Hz mel frames of ``num_samples`` at 24 kHz (``floor(n / 480)``): the length a timbre-only
    conversion produces."""
    return num_samples // HOP


def fit_frames(tokens: np.ndarray, frames: int) -> np.ndarray:
    """``tokens`` cut, or extended by repeating the last one, to ``frames``."""
    if tokens.shape[0] >= frames:
        return np.ascontiguousarray(tokens[:frames])
    return np.concatenate([tokens, np.full(frames - tokens.shape[0], tokens[-1], dtype=tokens.dtype)])


def ar_prompt_length(n_inputs: int, n_prompt: int) -> int:
    """Length of ``[in_BOS, inputs, in_EOS, out_BOS, prompt]`` (``ContentStyleAR.prompt_ids``)."""
    return n_inputs + 3 + n_prompt


# ---------------------------------------------------------------------------------------------
# stages


class VevoStages(Protocol):
    """The model stages as the orchestrator calls them (numpy in and out; see the module docstring)."""

    async def content_tokens(self, wav16k: np.ndarray) -> np.ndarray:
        """float32 [L] at 16 kHz -> int64 [N] vq32 ids in [0, 32), consecutive repeats collapsed
        (HuBERT layer 18 + the vq32 tokenizer: part ``tokenizer``)."""

    async def contentstyle_tokens(self, wav16k: np.ndarray) -> np.ndarray:
        """float32 [L] at 16 kHz -> int64 [T] vq8192 ids at 50 Hz, ``T = (L - 400) // 320 + 1``
        (HuBERT layer 18, normalised, + the vq8192 tokenizer: part ``tokenizer``)."""

    async def mel(self, wav24k: np.ndarray) -> np.ndarray:
        """float32 [L] at 24 kHz -> float32 [L // 480, 128] normalised mel (no weights; part ``fm``)."""

    async def ar_vc(self, request: dict) -> dict:
        """Vq32ToVq8192 (part ``ar_vc``): ``input_ids`` int64 [N] vq32 ids (unshifted),
        ``prompt_ids`` int64 [P] vq8192 ids, ``max_new_tokens``, ``temperature``, ``top_k``,
        ``top_p``, ``min_new_tokens``, ``output_only``, ``seed``, ``rng`` -> ``{"tokens": int64 [T]
        vq8192 ids, "rng"}``; progress ``"ar"``."""

    async def ar_tts(self, request: dict) -> dict:
        """PhoneToVq8192 (part ``ar_tts``): as :meth:`ar_vc` with ``input_ids`` the phone ids and
        ``prompt_ids`` possibly empty (int64 [0])."""

    async def flow_matching(self, request: dict) -> dict:
        """Part ``fm``: ``codes`` int64 [P + T] (timbre reference ‖ target, vq8192), ``prompt_mel``
        float32 [P, 128], ``n_timesteps``, ``cfg``, ``rescale_cfg``, ``seed``, ``rng`` ->
        ``{"mel": float32 [T, 128], "rng"}``; progress ``"fm"`` per step."""

    async def vocode(self, mel: np.ndarray) -> np.ndarray:
        """Part ``vocoder``: float32 [T, 128] normalised mel -> float32 [T * 480] at 24 kHz."""


class LocalStages:
    """The stages of an in-process :class:`~models.vevo.pipeline.VevoPipeline` (possibly one holding
    only some parts), synchronous, numpy in and out: what each component deployment runs (in a
    worker thread) and what :class:`InlineStages` wraps. ``emit(stage, step, total)`` receives
    the generating stages' progress."""

    #: The stages that generate, reporting their steps to ``emit``.
    GENERATING = frozenset({"ar_vc", "ar_tts", "flow_matching"})

    def __init__(self, pipeline) -> None:
        self.pipeline = pipeline

    @property
    def facts(self) -> dict:
        """What a caller running the orchestrator over these stages needs to know: ``ar_limits``, the
        :class:`ARLimits` of the AR this part holds (None without one)."""
        return {"ar_limits": self.pipeline.ar_limits}

    def content_tokens(self, wav16k) -> np.ndarray:
        return int64(self.pipeline.content_tokens(wav16k)).reshape(-1)

    def contentstyle_tokens(self, wav16k) -> np.ndarray:
        return int64(self.pipeline.contentstyle_tokens(wav16k)).reshape(-1)

    def mel(self, wav24k) -> np.ndarray:
        return float32(self.pipeline.mel(wav24k))

    def _content_style(self, task: str, request: dict, emit: ProgressFn | None) -> dict:
        p = self.pipeline
        gen = stage_generator(request, p.device)
        tokens = p.content_style(
            task, int64(request["input_ids"]).reshape(-1), int64(request["prompt_ids"]).reshape(-1),
            max_new_tokens=None if request.get("max_new_tokens") is None else int(request["max_new_tokens"]),
            max_length=int(request.get("max_length", AR_MAX_LENGTH)),
            temperature=float(request.get("temperature", AR_TEMPERATURE)),
            top_k=int(request.get("top_k", AR_TOP_K)), top_p=float(request.get("top_p", AR_TOP_P)),
            min_new_tokens=int(request.get("min_new_tokens", AR_MIN_NEW_TOKENS)),
            output_only=bool(request.get("output_only", False)),
            generator=gen, on_progress=step_reporter("ar", emit),
        )
        return {"tokens": int64(tokens).reshape(-1), "rng": generator_state(gen)}

    def ar_vc(self, request: dict, emit: ProgressFn | None = None) -> dict:
        return self._content_style("vc", request, emit)

    def ar_tts(self, request: dict, emit: ProgressFn | None = None) -> dict:
        return self._content_style("tts", request, emit)

    def flow_matching(self, request: dict, emit: ProgressFn | None = None) -> dict:
        p = self.pipeline
        gen = stage_generator(request, p.device)
        mel = p.flow_matching(
            int64(request["codes"]).reshape(-1), float32(request["prompt_mel"]),
            n_timesteps=int(request.get("n_timesteps", FM_STEPS)), cfg=float(request.get("cfg", FM_CFG)),
            rescale_cfg=float(request.get("rescale_cfg", FM_RESCALE_CFG)),
            generator=gen, on_step=step_reporter("fm", emit),
        )
        return {"mel": float32(mel), "rng": generator_state(gen)}

    def vocode(self, mel) -> np.ndarray:
        return float32(self.pipeline.vocode(float32(mel))).reshape(-1)


class InlineStages(core_stages.InlineStages, local=LocalStages):
    """:class:`LocalStages` as coroutines that never suspend (for ``run_inline``)."""


# ---------------------------------------------------------------------------------------------
# the orchestration


@dataclass(frozen=True)
class _Settings:
    """A call's checked settings."""

    fm: dict
    ar: dict
    seed: int | None


class _Run:
    """One call: its settings, the random state so far, and its progress reports."""

    def __init__(self, stages: VevoStages, settings: _Settings, on_progress: ProgressFn | None) -> None:
        self.stages = stages
        self.settings = settings
        self.rng: dict | None = None
        self.on_progress = on_progress
        self.counts: dict[str, int] = {}

    def done(self, stage: str, total: int = 1) -> None:
        """Report one more call of a one-shot stage (``total``: how many this run makes)."""
        self.counts[stage] = self.counts.get(stage, 0) + 1
        if self.on_progress is not None:
            self.on_progress(stage, self.counts[stage], total)

    async def contentstyle(self, wav16k: np.ndarray, total: int, kept: PromptMemo | None = None) -> np.ndarray:
        """Content-style tokens; ``kept``: the reference's memo when ``wav16k`` is (all of) the reference."""
        tokens = int64(await (kept or PromptMemo()).get(
            "contentstyle_tokens", lambda: self.stages.contentstyle_tokens(wav16k))).reshape(-1)
        self.done("contentstyle_tokens", total)
        return tokens

    async def content_style(self, stage: str, input_ids: np.ndarray, prompt_ids: np.ndarray,
                            max_new_tokens: int) -> np.ndarray:
        answer = await getattr(self.stages, stage)({
            "input_ids": input_ids, "prompt_ids": prompt_ids, "max_new_tokens": max_new_tokens,
            **self.settings.ar, "seed": self.settings.seed, "rng": self.rng,
        })
        self.rng = answer["rng"]
        return int64(answer["tokens"]).reshape(-1)

    async def render(self, timbre_tokens: np.ndarray, timbre24: np.ndarray, target: np.ndarray,
                     kept: PromptMemo | None = None) -> np.ndarray:
        """FM (timbre reference's tokens and mel as the prompt) and the vocoder: ``target`` ->
        ``len(target) * 480`` samples. ``kept``: the reference's memo when ``timbre24`` is the reference."""
        prompt_mel = float32(await (kept or PromptMemo()).get("mel", lambda: self.stages.mel(timbre24)))
        self.done("mel")
        n_prompt = min(timbre_tokens.shape[0], prompt_mel.shape[0])
        answer = await self.stages.flow_matching({
            "codes": np.concatenate([timbre_tokens[:n_prompt], target]),
            "prompt_mel": np.ascontiguousarray(prompt_mel[:n_prompt]),
            **self.settings.fm, "seed": self.settings.seed, "rng": self.rng,
        })
        self.rng = answer["rng"]
        audio = float32(await self.stages.vocode(float32(answer["mel"]))).reshape(-1)
        self.done("vocode")
        return audio


class VevoOrchestrator:
    """Checks and the whole flow of Vevo's four tasks over any :class:`VevoStages`.

    ``g2p``: a :class:`models.text.G2P` (only :meth:`tts` needs it). ``ar_limits``: the AR length
    policy (the AR weights' own, ``VevoPipeline.ar_limits``).
    ``codebook_size``: the FM's code range (AR tokens outside it are dropped). ``offload(fn,
    *args)``: how CPU work outside the stages (checks, resampling, G2P) runs: inline by default,
    ``models.core.stages.in_thread`` on an event loop that must stay free.
    """

    def __init__(self, g2p=None, *, ar_limits: ARLimits = AR_LIMITS, codebook_size: int = 8192,
                 offload: Callable[..., Awaitable[Any]] | None = None) -> None:
        self.g2p = g2p
        self.ar_limits = ar_limits
        self.codebook_size = int(codebook_size)
        self.offload = offload or inline

    # --- checks --------------------------------------------------------------------------------

    def _settings(self, flow_matching_steps, cfg, rescale_cfg, temperature, top_k, top_p, seed) -> _Settings:
        fm = {"n_timesteps": _integer(flow_matching_steps, "flow_matching_steps", 1, MAX_STEPS),
              "cfg": _finite(cfg, "cfg"), "rescale_cfg": _finite(rescale_cfg, "rescale_cfg")}
        top_p = _finite(top_p, "top_p", positive=True)
        if top_p > 1:
            raise VevoInputError(f"top_p must be in (0, 1], got {top_p:g}")
        ar = {"temperature": _finite(temperature, "temperature", positive=True),
              "top_k": _integer(top_k, "top_k", 0), "top_p": top_p, "min_new_tokens": AR_MIN_NEW_TOKENS,
              "output_only": self.ar_limits.output_only}
        return _Settings(fm=fm, ar=ar, seed=_seed(seed))

    @staticmethod
    def language(language, text: str, what: str) -> str:
        """Canonical language of ``text`` (``"auto"`` detects it) that the G2P converts."""
        try:
            lang = detect_language(text) if language == "auto" else normalize_language(language)
        except UnsupportedLanguage:
            raise UnsupportedLanguageError(language, f"{what}: unsupported language {language!r}") from None
        if lang not in SUPPORTED_LANGUAGES:
            raise UnsupportedLanguageError(lang, f"{what}: language {lang!r} cannot be converted to phones here")
        return lang

    def phone_ids(self, text: str, language: str, what: str) -> np.ndarray:
        if self.g2p is None:
            raise RuntimeError("Vevo TTS needs a G2P; this orchestrator was built without one")
        try:
            ids = self.g2p.phone_ids(text, language)
        except UnsupportedLanguage:
            raise UnsupportedLanguageError(language, f"{what}: language {language!r} cannot be converted to "
                                                     f"phones here") from None
        if not ids:
            raise EmptyTextError(f"{what} has nothing to pronounce")
        return int64(ids)

    def _conversion_inputs(self, source, reference, settings_args) -> tuple:
        settings = self._settings(*settings_args)
        src24 = checked_audio(source, "source audio", MIN_SOURCE_SECONDS)
        ref24 = checked_audio(reference, "reference audio", MIN_REFERENCE_SECONDS)
        return settings, src24, to_rate(src24, SAMPLE_RATE, HUBERT_SAMPLE_RATE), ref24, \
            to_rate(ref24, SAMPLE_RATE, HUBERT_SAMPLE_RATE)

    # --- conversions ---------------------------------------------------------------------------

    async def timbre(self, stages: VevoStages, source_wav_24k, reference_wav_24k, *,
                     flow_matching_steps: int = FM_STEPS, cfg: float = FM_CFG, rescale_cfg: float = FM_RESCALE_CFG,
                     seed: int | None = None, on_progress: ProgressFn | None = None,
                     prompts: PromptMemo | None = None) -> np.ndarray:
        """Timbre conversion (``inference_fm``): the source's content and style, the reference's
        timbre. Returns float32 24 kHz audio of ``floor(len(source) / 480) * 480`` samples.
        ``prompts`` (every task): where the reference's encodings are kept between requests."""
        settings, src24, src16, ref24, ref16 = await self.offload(
            self._conversion_inputs, source_wav_24k, reference_wav_24k,
            (flow_matching_steps, cfg, rescale_cfg, AR_TEMPERATURE, AR_TOP_K, AR_TOP_P, seed))
        run = _Run(stages, settings, on_progress)
        target = fit_frames(await run.contentstyle(src16, 2), source_frames(src24.size))
        timbre = await run.contentstyle(ref16, 2, prompts)
        return await run.render(timbre, ref24, target, prompts)

    async def _ar_conversion(self, stages: VevoStages, source, reference, timbre_from_source: bool, *,
                             flow_matching_steps, cfg, rescale_cfg, temperature, top_k, top_p, seed,
                             on_progress, prompts: PromptMemo | None = None) -> np.ndarray:
        settings, src24, src16, ref24, ref16 = await self.offload(
            self._conversion_inputs, source, reference,
            (flow_matching_steps, cfg, rescale_cfg, temperature, top_k, top_p, seed))
        run = _Run(stages, settings, on_progress)
        content = int64(await stages.content_tokens(np.concatenate([ref16, src16]))).reshape(-1)
        run.done("content_tokens")
        if timbre_from_source:
            style = await run.contentstyle(ref16, 2, prompts)
            timbre, timbre24, timbre_kept = await run.contentstyle(src16, 2), src24, None
        else:  # one recording for style and timbre: tokenized once
            style = timbre = await run.contentstyle(ref16, 1, prompts)
            timbre24, timbre_kept = ref24, prompts
        limits = self.ar_limits
        max_new = ar_new_tokens(limits, ar_prompt_length(content.size, style.size), source_frames(src24.size),
                                limits.frames_per_source_frame)
        target = self._in_codebook(await run.content_style("ar_vc", content, style, max_new))
        return await run.render(timbre, timbre24, target, timbre_kept)

    async def style(self, stages: VevoStages, source_wav_24k, reference_wav_24k, *,
                    flow_matching_steps: int = FM_STEPS, cfg: float = FM_CFG, rescale_cfg: float = FM_RESCALE_CFG,
                    temperature: float = AR_TEMPERATURE, top_k: int = AR_TOP_K, top_p: float = AR_TOP_P,
                    seed: int | None = None, on_progress: ProgressFn | None = None,
                    prompts: PromptMemo | None = None) -> np.ndarray:
        """Style conversion (``infer_vevostyle``): the AR re-renders the source's content in the
        reference's style (accent, emotion, prosody); the FM keeps the SOURCE's timbre. The length
        is the AR's."""
        return await self._ar_conversion(
            stages, source_wav_24k, reference_wav_24k, True, flow_matching_steps=flow_matching_steps, cfg=cfg,
            rescale_cfg=rescale_cfg, temperature=temperature, top_k=top_k, top_p=top_p, seed=seed,
            on_progress=on_progress, prompts=prompts)

    async def voice(self, stages: VevoStages, source_wav_24k, reference_wav_24k, mode: str = "ar", *,
                    flow_matching_steps: int = FM_STEPS, cfg: float = FM_CFG, rescale_cfg: float = FM_RESCALE_CFG,
                    temperature: float = AR_TEMPERATURE, top_k: int = AR_TOP_K, top_p: float = AR_TOP_P,
                    seed: int | None = None, on_progress: ProgressFn | None = None,
                    prompts: PromptMemo | None = None) -> np.ndarray:
        """Voice conversion: ``"ar"`` (``infer_vevovoice``) takes style and timbre from the
        reference; ``"fm"`` only its timbre (= :meth:`timbre`; the AR settings are then unused)."""
        if _mode(mode) == "fm":
            return await self.timbre(stages, source_wav_24k, reference_wav_24k,
                                     flow_matching_steps=flow_matching_steps, cfg=cfg, rescale_cfg=rescale_cfg,
                                     seed=seed, on_progress=on_progress, prompts=prompts)
        return await self._ar_conversion(
            stages, source_wav_24k, reference_wav_24k, False, flow_matching_steps=flow_matching_steps, cfg=cfg,
            rescale_cfg=rescale_cfg, temperature=temperature, top_k=top_k, top_p=top_p, seed=seed,
            on_progress=on_progress, prompts=prompts)

    def _in_codebook(self, tokens: np.ndarray) -> np.ndarray:
        kept = tokens[(tokens >= 0) & (tokens < self.codebook_size)]
        if kept.size == 0:
            raise RuntimeError("Vevo's AR stage produced no content-style tokens")
        return np.ascontiguousarray(kept)

    # --- TTS -----------------------------------------------------------------------------------

    def _tts_inputs(self, text, language, reference, mode, reference_text, reference_language,
                    settings_args) -> dict:
        c = {"mode": _mode(mode), "settings": self._settings(*settings_args)}
        c["text"] = checked_text(text, "text")
        c["lang"] = self.language(language, c["text"], "text")
        c["ref24"] = checked_audio(reference, "reference audio", MIN_REFERENCE_SECONDS)
        c["ref16"] = to_rate(c["ref24"], SAMPLE_RATE, HUBERT_SAMPLE_RATE)
        c["phones"] = self.phone_ids(c["text"], c["lang"], "text")
        c["prompt_phones"] = None
        if c["mode"] == "ar" and reference_text is not None:
            reference_text = checked_text(reference_text, "reference_text")
            ref_lang = self.language(language if reference_language is None else reference_language,
                                     reference_text, "reference_text")
            c["prompt_phones"] = self.phone_ids(reference_text, ref_lang, "reference_text")
        return c

    async def _transcribed(self, transcribe: TranscribeFn | None, ref24: np.ndarray,
                           on_progress: ProgressFn | None, prompts: PromptMemo) -> tuple[np.ndarray, np.ndarray]:
        """(phone ids of the reference's transcript, the reference cut to what the transcript covers)."""
        if transcribe is None:
            raise ReferenceTextRequired("reference_text (the reference's transcript) is required in 'ar' mode")
        heard = await prompts.get("transcript", lambda: transcribe(ref24))
        if on_progress is not None:
            on_progress("transcribe", 1, 1)
        text = heard.get("text") or ""
        if not text.strip():
            raise EmptyTextError("no speech was recognised in the reference audio; send reference_text "
                                 "(its transcript) if it does hold speech")
        what = "the reference's recognised speech"
        lang = self.language(heard.get("language") or "auto", text, what)
        phones = await self.offload(self.phone_ids, text, lang, what)
        keep = int(round(float(heard.get("seconds") or 0.0) * SAMPLE_RATE))
        style24 = ref24[:keep] if 0 < keep < ref24.size else ref24
        if style24.size < MIN_REFERENCE_SECONDS * SAMPLE_RATE:
            raise AudioTooShortError("the transcribed part of the reference audio is too short")
        return phones, style24

    async def tts(self, stages: VevoStages, text: str, reference_wav_24k, mode: str = "fm", *,
                  reference_text: str | None = None, language: str = "auto", reference_language: str | None = None,
                  transcribe: TranscribeFn | None = None, flow_matching_steps: int = FM_STEPS, cfg: float = FM_CFG,
                  rescale_cfg: float = FM_RESCALE_CFG, temperature: float = AR_TEMPERATURE, top_k: int = AR_TOP_K,
                  top_p: float = AR_TOP_P, seed: int | None = None,
                  on_progress: ProgressFn | None = None, prompts: PromptMemo | None = None) -> np.ndarray:
        """Speak ``text`` (in ``language``, ``"auto"`` detects it) with the reference's timbre
        (``infer_vevotts``). ``"ar"``: the AR is also prompted with the reference's style, which
        needs its transcript: ``reference_text`` (in ``reference_language``, default ``language``)
        or, when None, ``transcribe(reference_24k)`` (e.g. ``WhisperASR.prompt``), whose answer's
        ``seconds`` cut the style prompt to what the transcript covers. ``"fm"``: the AR runs on the
        text alone, without a style prompt. The length is the AR's."""
        c = await self.offload(self._tts_inputs, text, language, reference_wav_24k, mode, reference_text,
                               reference_language, (flow_matching_steps, cfg, rescale_cfg, temperature, top_k,
                                                    top_p, seed))
        prompts = prompts or PromptMemo()
        run = _Run(stages, c["settings"], on_progress)
        ref24, ref16, phones = c["ref24"], c["ref16"], c["phones"]
        if c["mode"] == "fm":
            run.done("g2p")
            inputs, style = phones, np.zeros(0, np.int64)
            timbre = await run.contentstyle(ref16, 1, prompts)
        else:
            prompt_phones, style24 = c["prompt_phones"], ref24
            if prompt_phones is None:
                prompt_phones, style24 = await self._transcribed(transcribe, ref24, on_progress, prompts)
            run.done("g2p")
            inputs = np.concatenate([prompt_phones, phones])
            if style24 is ref24:  # one recording for style and timbre: tokenized once
                style = timbre = await run.contentstyle(ref16, 1, prompts)
            else:
                style = await run.contentstyle(to_rate(style24, SAMPLE_RATE, HUBERT_SAMPLE_RATE), 2,
                                               prompts.cut(style24.size))
                timbre = await run.contentstyle(ref16, 2, prompts)
        limits = self.ar_limits
        max_new = ar_new_tokens(limits, ar_prompt_length(inputs.size, style.size), phones.size, limits.frames_per_phone)
        target = self._in_codebook(await run.content_style("ar_tts", inputs, style, max_new))
        return await run.render(timbre, ref24, target, prompts)
