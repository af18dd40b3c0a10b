"""MaskGCT's orchestration, once, for every way of running the stages.

:class:`MaskGCTOrchestrator` does everything between the model stages: input checks, prompt
alignment, target lengths, sentence splitting, cumulative progress, randomness, joining with fades.
The stages are coroutines behind :class:`MaskGCTStages` (numpy in and out: int64 tokens and codes,
float32 audio), so the same orchestration runs in process (:class:`InlineStages` over a pipeline's
:class:`LocalStages`, driven by :func:`models.core.stages.run_inline`) and across deployments (the
protocol over handles to the component deployments, each running :class:`LocalStages`).

Requests and answers of the generating stages, randomness, lengths and errors:
``models/maskgct/README.md``.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

import numpy as np
import torch

from models.audio.resample import to_rate
from models.blocks.masked_generation import executed_steps
from models.core import checks
from models.core import stages as core_stages
from models.core.prompt_cache import PromptMemo
from models.core.stages import ProgressFn, float32, generator_state, inline, int64, stage_generator
from models.maskgct.configs import ACOUSTIC_SAMPLE_RATE, SEMANTIC_SAMPLE_RATE
from models.maskgct.s2a import DEFAULT_STEPS as S2A_DEFAULT_STEPS
from models.text import (
    SUPPORTED_LANGUAGES,
    LanguageUnavailable,
    detect_language,
    normalize_language,
    split_sentences,
)

__all__ = [
    "EmptyTextError",
    "InlineStages",
    "LocalStages",
    "MaskGCTInputError",
    "MaskGCTOrchestrator",
    "MaskGCTStages",
    "ReferenceAudioError",
    "TargetLengthError",
]

SAMPLE_RATE = ACOUSTIC_SAMPLE_RATE     # output and acoustic-prompt rate (24 kHz)
FRAME_RATE = 50                        # semantic and acoustic token rate
#: Progress stages, in the order they run.
STAGES = ("semantic_prompt", "acoustic_prompt", "g2p", "t2s", "s2a", "decode")

# Request defaults: the reference's (maskgct_inference / maskgct_utils), except the T2S temperature,
# which is the API's (amphion_api.md: 0.7; the reference demo samples at 0.9). The routes and the
# served entry import these: one default per knob.
T2S_STEPS = 25
T2S_TEMPERATURE = 0.7
S2A_TEMPERATURE = 1.5
CFG = 2.5
RESCALE_CFG = 0.75
FILTER_THRES = 0.98

MIN_REFERENCE_SECONDS = 0.5
#: RMS below which a reference counts as silent (-80 dBFS).
SILENCE_RMS = 1e-4
DEFAULT_MAX_TARGET_SECONDS = 120.0
DEFAULT_MAX_CHARS = {"zh": 80, "ko": 120}
FALLBACK_MAX_CHARS = 240
JOIN_FADE_SECONDS = 0.01


class MaskGCTInputError(ValueError):
    """A request the pipeline cannot serve as given (a client error); the message is user-safe."""


class EmptyTextError(MaskGCTInputError):
    """The text (or the reference text) is empty or has nothing to pronounce."""


class ReferenceAudioError(MaskGCTInputError):
    """The reference recording is unusable: not mono, not finite, too short or silent."""


class TargetLengthError(MaskGCTInputError):
    """The requested (or estimated) target length is invalid or too long."""


# ---------------------------------------------------------------------------------------------
# small checks and helpers


def _nonneg_float(value, name: str, *, positive: bool = False) -> float:
    return checks.finite(value, name, MaskGCTInputError, positive=positive)


def _count(value, name: str) -> int:
    return checks.integer(value, name, MaskGCTInputError, 1)


def _share(total: int, weights: Sequence[int]) -> list[int]:
    """``total`` split in proportion to ``weights`` (largest remainders), every share >= 1."""
    n = len(weights)
    if total < n:
        raise TargetLengthError(f"the target length ({total} frames) is too short for {n} text pieces")
    spare = total - n                  # one frame each first, the rest by weight
    weight_sum = sum(weights)
    exact = [spare * w / weight_sum for w in weights]
    shares = [int(x) for x in exact]
    order = sorted(range(n), key=lambda i: (-(exact[i] - shares[i]), i))
    for i in order[: spare - sum(shares)]:
        shares[i] += 1
    return [s + 1 for s in shares]


def _join(pieces: list[np.ndarray], fade: int) -> np.ndarray:
    """Concatenate with short fades at the seams (the length is the sum of the pieces)."""
    if len(pieces) == 1:
        return pieces[0]
    out = [p.copy() for p in pieces]
    for i, piece in enumerate(out):
        n = min(fade, len(piece) // 2)
        if n == 0:
            continue
        ramp = np.linspace(0.0, 1.0, n, endpoint=False, dtype=np.float32)
        if i > 0:
            piece[:n] *= ramp
        if i < len(out) - 1:
            piece[-n:] *= ramp[::-1]
    return np.concatenate(out)


def resample_to_16k(wav24: np.ndarray) -> np.ndarray:
    """24 kHz -> 16 kHz (torchaudio's windowed-sinc resampler; the reference lets librosa load the
    file at 16 kHz instead, which differs only near the band edge)."""
    return to_rate(wav24, SAMPLE_RATE, SEMANTIC_SAMPLE_RATE)


def s2a_steps(num_quantizers: int, n_timesteps: Sequence[int] | None = None) -> list[int]:
    """The per-layer S2A step counts: the given ones (one per codec layer) or the reference's."""
    if n_timesteps is None:
        steps = list(S2A_DEFAULT_STEPS[:num_quantizers])
        return steps + [1] * (num_quantizers - len(steps))
    steps = [_count(n, "s2a n_timesteps entries") for n in n_timesteps]
    if len(steps) != num_quantizers:
        raise MaskGCTInputError(f"s2a n_timesteps needs {num_quantizers} entries (one per codec layer), "
                                f"got {len(steps)}")
    return steps


def s2a_planned_steps(target_len: int, steps: Sequence[int]) -> int:
    """S2A steps over both models (the 1-layer one for layer 0, the full one for the rest)."""
    return sum(executed_steps(int(n), target_len) for n in steps)


def _on_step(stage: str, request: dict, emit: ProgressFn | None):
    if emit is None:
        return None
    progress = request.get("progress") or {}
    offset, total = int(progress.get("offset", 0)), progress.get("total")

    def on_step(step: int, n: int) -> None:
        emit(stage, offset + step, n if total is None else int(total))

    return on_step


# ---------------------------------------------------------------------------------------------
# stages


class MaskGCTStages(Protocol):
    """The model stages as the orchestrator calls them (see the module docstring)."""

    async def semantic_tokens(self, wav16k: np.ndarray) -> np.ndarray:
        """float32 [L] at 16 kHz -> int64 [P]."""

    async def acoustic_codes(self, wav24k: np.ndarray) -> np.ndarray:
        """float32 [L] at 24 kHz -> int64 [P, nq]."""

    async def text_to_semantic(self, request: dict) -> dict:
        """prompt_semantic int64 [P], phone_ids int64 [N], target_len, settings -> {tokens int64 [T], rng}."""

    async def semantic_to_acoustic(self, request: dict) -> dict:
        """semantic int64 [P + T], prompt_codes int64 [P, nq] (P may be 0), settings (``first_layer_cfg``:
        the 1-layer model's guidance, default ``cfg``) -> {codes int64 [T, nq], rng}."""

    async def decode(self, codes: np.ndarray) -> np.ndarray:
        """int64 [T, nq] -> float32 [T * 480] at 24 kHz."""


class LocalStages:
    """The stages of an in-process pipeline (possibly one holding only some components), with numpy
    in and out: what each component deployment runs (in a worker thread), and what
    :class:`InlineStages` wraps for :meth:`MaskGCTPipeline.generate`."""

    #: The stages that generate, reporting their steps to ``emit``.
    GENERATING = frozenset({"text_to_semantic", "semantic_to_acoustic"})

    def __init__(self, pipeline) -> None:
        self.pipeline = pipeline

    def semantic_tokens(self, wav16k) -> np.ndarray:
        return int64(self.pipeline.semantic_tokens(wav16k)).reshape(-1)

    def features(self, wav16k) -> np.ndarray:
        """The normalised w2v-bert-2.0 layer-17 features, float32 [F, hidden] at 50 Hz (what the
        semantic codec quantises; Metis' condition adapter reads them)."""
        return float32(self.pipeline.semantic_features(wav16k)).reshape(-1, self.pipeline.semantic_encoder.hidden_size)

    def acoustic_codes(self, wav24k) -> np.ndarray:
        codes = self.pipeline.acoustic_codes(wav24k)
        return int64(codes.reshape(codes.shape[-2], codes.shape[-1]))

    def text_to_semantic(self, request: dict, emit: ProgressFn | None = None) -> dict:
        p = self.pipeline
        gen = stage_generator(request, p.device)
        tokens = p.text_to_semantic(
            torch.from_numpy(int64(request["prompt_semantic"])).view(1, -1),
            torch.from_numpy(int64(request["phone_ids"])).view(1, -1),
            int(request["target_len"]),
            n_timesteps=int(request.get("n_timesteps", T2S_STEPS)), cfg=float(request.get("cfg", CFG)),
            rescale_cfg=float(request.get("rescale_cfg", RESCALE_CFG)),
            temperature=float(request.get("temperature", T2S_TEMPERATURE)),
            filter_thres=float(request.get("filter_thres", FILTER_THRES)),
            generator=gen, on_step=_on_step("t2s", request, emit),
        )
        return {"tokens": int64(tokens).reshape(-1), "rng": generator_state(gen)}

    def semantic_to_acoustic(self, request: dict, emit: ProgressFn | None = None) -> dict:
        p = self.pipeline
        gen = stage_generator(request, p.device)
        prompt_codes = int64(request["prompt_codes"])
        codes = p.semantic_to_acoustic(
            torch.from_numpy(int64(request["semantic"])).view(1, -1),
            torch.from_numpy(prompt_codes).view(1, *prompt_codes.shape[-2:]),
            n_timesteps=request.get("n_timesteps"), cfg=float(request.get("cfg", CFG)),
            rescale_cfg=float(request.get("rescale_cfg", RESCALE_CFG)),
            temperature=float(request.get("temperature", S2A_TEMPERATURE)),
            filter_thres=float(request.get("filter_thres", FILTER_THRES)),
            first_layer_cfg=None if request.get("first_layer_cfg") is None else float(request["first_layer_cfg"]),
            generator=gen, on_step=_on_step("s2a", request, emit),
        )
        return {"codes": int64(codes.reshape(codes.shape[-2], codes.shape[-1])), "rng": generator_state(gen)}

    def decode(self, codes) -> np.ndarray:
        return float32(self.pipeline.decode(torch.from_numpy(int64(codes))))


class InlineStages(core_stages.InlineStages, local=LocalStages):
    """:class:`LocalStages` as coroutines that never suspend (for ``run_inline``)."""


# ---------------------------------------------------------------------------------------------
# the orchestration


class MaskGCTOrchestrator:
    """Checks, G2P and the whole flow of one MaskGCT call over any :class:`MaskGCTStages`.

    ``g2p``: a :class:`models.text.G2P`. ``num_quantizers``: the acoustic codec's layers.
    ``offload(fn, *args)``: how CPU work outside the stages (checks, resampling, G2P) runs: inline
    by default, :func:`models.core.stages.in_thread` on an event loop that must stay free.
    """

    def __init__(self, g2p, num_quantizers: int, *,
                 max_target_seconds: float | None = DEFAULT_MAX_TARGET_SECONDS,
                 offload: Callable[..., Awaitable[Any]] | None = None) -> None:
        self.g2p = g2p
        self.num_quantizers = int(num_quantizers)
        self.max_target_seconds = max_target_seconds
        self.offload = offload or inline

    # --- checks --------------------------------------------------------------------------------

    @staticmethod
    def target_frames(target_len_s: float) -> int:
        """Frames for a target length in seconds (``floor(s * 50)``, tolerant to float noise)."""
        seconds = _nonneg_float(target_len_s, "target_len_s", positive=True)
        frames = int(math.floor(seconds * FRAME_RATE + 1e-6))
        if frames < 1:
            raise TargetLengthError(f"target_len_s must be at least {1 / FRAME_RATE} s, got {seconds}")
        return frames

    def s2a_steps(self, n_timesteps: Sequence[int] | None = None) -> list[int]:
        return s2a_steps(self.num_quantizers, n_timesteps)

    def language(self, language: str, text: str, what: str) -> str:
        """Canonical language of ``text`` (``"auto"`` detects it); UnsupportedLanguage when the G2P
        cannot convert it."""
        if language == "auto":
            lang = detect_language(text)
        else:
            lang = normalize_language(language)
        if lang not in SUPPORTED_LANGUAGES:
            # The G2P's own refusal (e.g. Japanese), without converting anything.
            self.g2p.g2p("", lang)
            raise LanguageUnavailable(lang, f"{what}: language {lang!r} cannot be converted")
        return lang

    @staticmethod
    def text(text, what: str) -> str:
        if not isinstance(text, str):
            raise EmptyTextError(f"{what} must be a string")
        if not text.strip():
            raise EmptyTextError(f"{what} is empty")
        return text

    @staticmethod
    def reference(wav24k) -> np.ndarray:
        wav = checks.mono(wav24k, "reference audio", ReferenceAudioError)
        if len(wav) < MIN_REFERENCE_SECONDS * SAMPLE_RATE:
            raise ReferenceAudioError(
                f"reference audio too short: {len(wav) / SAMPLE_RATE:.2f} s, at least {MIN_REFERENCE_SECONDS} s needed"
            )
        if float(np.sqrt(np.mean(np.square(wav, dtype=np.float64)))) < SILENCE_RMS:
            raise ReferenceAudioError("reference audio is silent")
        return wav

    def check_total(self, frames: int) -> None:
        if self.max_target_seconds is not None and frames > self.max_target_seconds * FRAME_RATE:
            raise TargetLengthError(
                f"target too long: {frames / FRAME_RATE:.1f} s of speech, at most {self.max_target_seconds:g} s"
            )

    def _checked(self, text, language, reference_wav_24k, reference_text, target_len_s, n_timesteps, cfg,
                 temperature, seed, reference_language, rescale_cfg, s2a_timesteps, s2a_cfg, s2a_rescale_cfg,
                 s2a_temperature, filter_thres, max_chars) -> dict:
        """Every input check, before any model runs; the normalised settings."""
        text = self.text(text, "text")
        reference_text = self.text(reference_text, "reference_text")
        lang = self.language(language, text, "text")
        ref_lang = self.language(language if reference_language is None else reference_language,
                                 reference_text, "reference_text")
        if max_chars is None:
            max_chars = DEFAULT_MAX_CHARS.get(lang, FALLBACK_MAX_CHARS)
        pieces = split_sentences(text, lang, _count(max_chars, "max_chars"))
        if not pieces:
            raise EmptyTextError("text is empty")
        total_frames = None if target_len_s is None else self.target_frames(target_len_s)
        if total_frames is not None:
            self.check_total(total_frames)
        c = dict(reference_text=reference_text, lang=lang, ref_lang=ref_lang, pieces=pieces,
                 total_frames=total_frames)
        c["n_timesteps"] = _count(n_timesteps, "n_timesteps")
        c["s2a_steps"] = self.s2a_steps(s2a_timesteps)
        c["cfg"], c["s2a_cfg"] = _nonneg_float(cfg, "cfg"), _nonneg_float(s2a_cfg, "s2a_cfg")
        c["rescale_cfg"] = _nonneg_float(rescale_cfg, "rescale_cfg")
        c["s2a_rescale_cfg"] = _nonneg_float(s2a_rescale_cfg, "s2a_rescale_cfg")
        c["temperature"] = _nonneg_float(temperature, "temperature", positive=True)
        c["s2a_temperature"] = _nonneg_float(s2a_temperature, "s2a_temperature", positive=True)
        c["filter_thres"] = _nonneg_float(filter_thres, "filter_thres")
        if c["filter_thres"] >= 1:
            raise MaskGCTInputError(f"filter_thres must be below 1, got {c['filter_thres']}")
        c["seed"] = checks.seed(seed, MaskGCTInputError)
        c["wav24"] = self.reference(reference_wav_24k)
        c["wav16"] = resample_to_16k(c["wav24"])
        return c

    def _phones(self, c: dict) -> tuple[list[int], list[list[int]]]:
        prompt_phones = list(self.g2p.phone_ids(c["reference_text"], c["ref_lang"]))
        if not prompt_phones:
            raise EmptyTextError("reference_text has nothing to pronounce")
        piece_phones = [list(ids) for ids in (self.g2p.phone_ids(p, c["lang"]) for p in c["pieces"]) if ids]
        if not piece_phones:
            raise EmptyTextError("text has nothing to pronounce")
        return prompt_phones, piece_phones

    # --- the whole thing -----------------------------------------------------------------------

    async def generate(
        self,
        stages: MaskGCTStages,
        text: str,
        language: str,
        reference_wav_24k: np.ndarray,
        reference_text: str,
        target_len_s: float | None = None,
        n_timesteps: int = T2S_STEPS,
        cfg: float = CFG,
        temperature: float = T2S_TEMPERATURE,
        seed: int | None = None,
        on_progress: ProgressFn | None = None,
        *,
        reference_language: str | None = None,
        rescale_cfg: float = RESCALE_CFG,
        s2a_timesteps: Sequence[int] | None = None,
        s2a_cfg: float = CFG,
        s2a_rescale_cfg: float = RESCALE_CFG,
        s2a_temperature: float = S2A_TEMPERATURE,
        filter_thres: float = FILTER_THRES,
        max_chars: int | None = None,
        prompts: PromptMemo | None = None,
    ) -> np.ndarray:
        """See :meth:`models.maskgct.pipeline.MaskGCTPipeline.generate`. ``on_progress`` gets the
        stages this orchestration runs itself (prompts, G2P, decode); the generating stages report
        their own steps (``progress`` in their requests). ``prompts``: where the reference's
        encodings are kept between requests (:mod:`models.core.prompt_cache`; default: computed)."""
        prompts = prompts or PromptMemo()
        # --- cheap checks first: nothing runs on a request that must fail
        c = await self.offload(
            self._checked, text, language, reference_wav_24k, reference_text, target_len_s, n_timesteps, cfg,
            temperature, seed, reference_language, rescale_cfg, s2a_timesteps, s2a_cfg, s2a_rescale_cfg,
            s2a_temperature, filter_thres, max_chars,
        )

        def progress(stage: str, step: int, total: int) -> None:
            if on_progress is not None:
                on_progress(stage, step, total)

        # --- prompts
        prompt_semantic = int64(await prompts.get("semantic_tokens",
                                                  lambda: stages.semantic_tokens(c["wav16"]))).reshape(-1)
        progress("semantic_prompt", 1, 1)
        prompt_codes = int64(await prompts.get("acoustic_codes", lambda: stages.acoustic_codes(c["wav24"])))
        progress("acoustic_prompt", 1, 1)
        n_prompt = min(prompt_semantic.shape[0], prompt_codes.shape[0])
        if n_prompt < 1:
            raise ReferenceAudioError("the reference audio is too short")
        prompt_semantic = np.ascontiguousarray(prompt_semantic[:n_prompt])
        prompt_codes = np.ascontiguousarray(prompt_codes[:n_prompt])

        # --- text
        prompt_phones, piece_phones = await self.offload(self._phones, c)
        progress("g2p", 1, 1)
        if c["total_frames"] is not None:
            lengths = _share(c["total_frames"], [len(ids) for ids in piece_phones])
        else:
            lengths = [max(1, int(len(c["wav16"]) * len(ids) / len(prompt_phones) / SEMANTIC_SAMPLE_RATE
                                  * FRAME_RATE))
                       for ids in piece_phones]
            self.check_total(sum(lengths))
        rng = None

        # --- T2S, every piece
        n_steps = c["n_timesteps"]
        t2s_total = sum(executed_steps(n_steps, n) for n in lengths)
        semantics, done = [], 0
        for ids, n in zip(piece_phones, lengths):
            answer = await stages.text_to_semantic({
                "prompt_semantic": prompt_semantic, "phone_ids": int64(prompt_phones + ids), "target_len": n,
                "n_timesteps": n_steps, "cfg": c["cfg"], "rescale_cfg": c["rescale_cfg"],
                "temperature": c["temperature"], "filter_thres": c["filter_thres"], "seed": c["seed"], "rng": rng,
                "progress": {"offset": done, "total": t2s_total},
            })
            rng = answer["rng"]
            done += executed_steps(n_steps, n)
            semantics.append(int64(answer["tokens"]).reshape(-1))

        # --- S2A, every piece
        steps = c["s2a_steps"]
        s2a_total = sum(s2a_planned_steps(n, steps) for n in lengths)
        codes, done = [], 0
        for semantic, n in zip(semantics, lengths):
            answer = await stages.semantic_to_acoustic({
                "semantic": np.concatenate([prompt_semantic, semantic]), "prompt_codes": prompt_codes,
                "n_timesteps": steps, "cfg": c["s2a_cfg"], "rescale_cfg": c["s2a_rescale_cfg"],
                "temperature": c["s2a_temperature"], "filter_thres": c["filter_thres"], "seed": c["seed"],
                "rng": rng, "progress": {"offset": done, "total": s2a_total},
            })
            rng = answer["rng"]
            done += s2a_planned_steps(n, steps)
            codes.append(int64(answer["codes"]))

        # --- decode, every piece
        audio = []
        for i, piece_codes in enumerate(codes, start=1):
            audio.append(float32(await stages.decode(piece_codes)).reshape(-1))
            progress("decode", i, len(codes))
        return _join(audio, int(JOIN_FADE_SECONDS * SAMPLE_RATE)).astype(np.float32, copy=False)
