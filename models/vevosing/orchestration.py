"""VevoSing's (Vevo1.5's) singing voice conversion, orchestrated once for every way of running its stages.

:class:`VevoSingOrchestrator` does everything the reference's ``VevosingInferencePipeline`` does
between its models: input checks, which recording feeds which model, the key shift
(:func:`key_shift`), lyrics and G2P, prompt concatenations, the AR length budget, progress and
randomness. The stages are coroutines behind :class:`VevoSingStages` (numpy in and out; every
recording mono float32 at 24 kHz), so the same orchestration runs in process (:class:`InlineStages`
over a pipeline's :class:`LocalStages`, driven by :func:`~models.core.stages.run_inline`) and across
deployments (the protocol over handles to the component deployments and the shared Whisper ASR).
Input errors are :class:`VevoSingInputError` and its subclasses, raised before any model runs where
no model is needed to tell.

The modes, how they differ from the reference, progress and randomness: ``models/vevosing/README.md``.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import numpy as np
import torch

from models.audio.f0 import parselmouth_f0
from models.audio.resample import to_rate
from models.core import checks
from models.core import stages as core_stages
from models.core.prompt_cache import PromptMemo
from models.core.stages import ProgressFn, float32, generator_state, inline, int64, stage_generator, step_reporter
from models.text import SUPPORTED_LANGUAGES, UnsupportedLanguage, detect_language, normalize_language
# VevoSing's FM is Vevo's flow-matching transformer (the Vevo1.5 variant): its sampling defaults.
from models.vevo.flow_matching import DEFAULT_CFG, DEFAULT_RESCALE_CFG, DEFAULT_STEPS, MAX_STEPS
from models.vevosing.tokenizers import official_coco_config

__all__ = [
    "AR_MAX_LENGTH",
    "AR_PROGRESS_EVERY",
    "MODES",
    "SAMPLE_RATE",
    "STAGES",
    "InlineStages",
    "InputTooLongError",
    "LocalStages",
    "UnsupportedLanguageError",
    "VevoSingInputError",
    "VevoSingOrchestrator",
    "VevoSingStages",
    "key_shift",
]

SAMPLE_RATE = 24000          # every recording, the mel and the output
HOP = 480                    # samples per 50 Hz frame
MODES = ("fm", "ar")
#: Request defaults the routes import (one default per knob): ``use_shifted_src`` on, as the
#: reference's FM script runs it, and the reference's flow-matching steps.
USE_SHIFTED_SRC = True
FM_STEPS = DEFAULT_STEPS
#: Progress stages, in the order they can run.
STAGES = ("pitch", "asr", "g2p", "content_style", "prosody", "ar", "mel", "fm", "vocoder")

# The reference's AR sampling (fixed inside AutoregressiveTransformer.generate).
AR_TEMPERATURE = 0.8
AR_TOP_K = 50
AR_TOP_P = 0.9
AR_MIN_NEW_TOKENS = 50
AR_MAX_LENGTH = 2000
#: AR tokens between progress reports (0.8 s of 12.5 Hz content-style tokens).
AR_PROGRESS_EVERY = 10

MIN_SECONDS = 0.5                  # source and reference
SILENCE_RMS = 1e-4                 # -80 dBFS
MAX_REFERENCE_SECONDS = 30.0       # one Whisper window
DEFAULT_MAX_SOURCE_SECONDS = 600.0
ASR_WINDOW_SECONDS = 30.0          # what one Whisper ASR call hears
MIN_ASR_SECONDS = 1.0              # a shorter last window is not transcribed

# key_shift: the reference's extract_f0_hz settings.
F0_SAMPLE_RATE = 16000
F0_HOP = 256

_CONTENT_STYLE = official_coco_config("content_style")   # 50 Hz -> 12.5 Hz
_PROSODY = official_coco_config("style")                  # 50 Hz -> 6.25 Hz


# ---------------------------------------------------------------------------------------------
# errors


class VevoSingInputError(ValueError):
    """A request VevoSing cannot serve as given (a client error); the message is user-safe."""


class UnsupportedLanguageError(VevoSingInputError, UnsupportedLanguage):
    """A language the G2P cannot convert (also an :class:`models.text.UnsupportedLanguage`); the message
    names the supported ones."""


class InputTooLongError(VevoSingInputError):
    """A recording is longer than the pipeline takes (the source limit, or the AR's context)."""


# ---------------------------------------------------------------------------------------------
# small checks and helpers


def _finite(value, name: str, *, positive: bool = False, below: float | None = None) -> float:
    return checks.finite(value, name, VevoSingInputError, positive=positive, below=below)


def _integer(value, name: str, low: int, high: int | None = None) -> int:
    return checks.integer(value, name, VevoSingInputError, low, high)


def _seed(seed) -> int | None:
    return checks.seed(seed, VevoSingInputError)


def mono_audio(wav, what: str) -> np.ndarray:
    """Mono float32 samples of a recording (integer PCM scaled to [-1, 1]); VevoSingInputError when it
    is not one channel of finite samples."""
    return checks.mono(wav, what, VevoSingInputError)


def checked_audio(wav, what: str, max_seconds: float | None = None) -> np.ndarray:
    """A usable 24 kHz recording (cut to its first ``max_seconds``): mono, finite, at least
    :data:`MIN_SECONDS`, not silent."""
    arr = mono_audio(wav, what)
    if max_seconds is not None:
        arr = np.ascontiguousarray(arr[: int(max_seconds * SAMPLE_RATE)])
    if arr.size == 0:
        raise VevoSingInputError(f"{what} is empty")
    if arr.size < MIN_SECONDS * SAMPLE_RATE:
        raise VevoSingInputError(f"{what} is too short: {arr.size / SAMPLE_RATE:.2f} s, at least {MIN_SECONDS:g} s "
                                 f"needed")
    if float(np.sqrt(np.mean(np.square(arr, dtype=np.float64)))) < SILENCE_RMS:
        raise VevoSingInputError(f"{what} is silent")
    return arr


def _text(text, what: str) -> str:
    if not isinstance(text, str):
        raise VevoSingInputError(f"{what} must be a string")
    if not text.strip():
        raise VevoSingInputError(f"{what} is empty")
    return text.strip()


def _language_arg(language, what: str) -> str:
    """``"auto"`` or the canonical code of a language the G2P converts."""
    if language == "auto":
        return language
    try:
        code = normalize_language(language)
    except UnsupportedLanguage:
        raise UnsupportedLanguageError(language, f"{what}: unsupported language {language!r}") from None
    return _g2p_language(code, what)


def _g2p_language(code: str, what: str) -> str:
    if code not in SUPPORTED_LANGUAGES:  # e.g. Japanese, which this G2P cannot convert
        raise UnsupportedLanguageError(code, f"{what}: language {code!r} cannot be converted to phones")
    return code


def mel_frames(num_samples: int) -> int:
    """Vevo1.5's 50 Hz mel frames of ``num_samples`` at 24 kHz: ``floor(n / 480)`` (the reference's
    reflect-padded STFT, n_fft 1920, hop 480, gives exactly that)."""
    return num_samples // HOP


def content_style_count(num_samples: int) -> int:
    """Content-style tokens (12.5 Hz) of a recording: its frames through two stride-2 convolutions."""
    return _CONTENT_STYLE.num_codes(mel_frames(num_samples))


def prosody_count(num_samples: int) -> int:
    """Prosody tokens (6.25 Hz) of a recording: its frames through three stride-2 convolutions."""
    return _PROSODY.num_codes(mel_frames(num_samples))


def ar_prompt_length(n_phones: int, n_style: int, n_prompt: int) -> int:
    """Length of ``[c_BOS, phones, c_EOS, s_BOS, style, s_EOS, cs_BOS, prompt]``
    (``ContentStyleAR.prompt_ids``)."""
    return n_phones + 2 + n_style + 2 + 1 + n_prompt


def _median_f0(wav24k: np.ndarray) -> float | None:
    """Median F0 (Hz) as the reference's ``extract_f0_hz`` takes it; None with no voiced frame."""
    wav16k = to_rate(wav24k, SAMPLE_RATE, F0_SAMPLE_RATE)
    f0 = parselmouth_f0(wav16k, F0_SAMPLE_RATE, F0_HOP).astype(np.float64)
    voiced = f0 > 0
    if not voiced.any():
        return None
    frames = np.arange(f0.shape[0])
    filled = np.interp(frames, frames[voiced], f0[voiced])
    return float(np.median(filled))


def key_shift(source24k: np.ndarray, reference24k: np.ndarray) -> int:
    """Semitones that move the source to the reference's key: ``round(12 log2(median F0 of the reference
    / median F0 of the source))`` (half to even, as the reference's ``round`` of a numpy float); 0 when
    either recording has no voiced frame."""
    source, reference = _median_f0(source24k), _median_f0(reference24k)
    if source is None or reference is None:
        return 0
    return int(round(12.0 * math.log2(reference / source)))


def _windows(wav: np.ndarray, seconds: float, min_seconds: float) -> list[np.ndarray]:
    """Consecutive ``seconds``-long pieces; a last piece under ``min_seconds`` is dropped (unless it is
    the only one)."""
    size = int(seconds * SAMPLE_RATE)
    pieces = [wav[i: i + size] for i in range(0, wav.shape[0], size)]
    if len(pieces) > 1 and pieces[-1].shape[0] < min_seconds * SAMPLE_RATE:
        pieces.pop()
    return [np.ascontiguousarray(p) for p in pieces]


# ---------------------------------------------------------------------------------------------
# stages


class VevoSingStages(Protocol):
    """The model stages as the orchestrator calls them (numpy in and out; see the module docstring)."""

    async def transcribe(self, wav24k: np.ndarray, language: str | None) -> dict:
        """float32 [L] at 24 kHz (at most 30 s are heard), a language code or None (detect) ->
        {"text": str, "language": str}. Whisper ASR."""

    async def content_style_tokens(self, wav24k: np.ndarray, shift_semitones: int = 0) -> np.ndarray:
        """float32 [L] at 24 kHz -> int64 [ceil(ceil((L // 480) / 2) / 2)] (12.5 Hz); the chromagram of the
        recording pitch-shifted by ``shift_semitones``. Whisper-medium features + chromagram + Coco
        content-style."""

    async def prosody_tokens(self, wav24k: np.ndarray) -> np.ndarray:
        """float32 [L] at 24 kHz -> int64 [ceil((L // 480) / 8)] (6.25 Hz). Chromagram + Coco style."""

    async def mel(self, wav24k: np.ndarray) -> np.ndarray:
        """float32 [L] at 24 kHz -> normalised mel float32 [L // 480, 128]. The vocoder's front end."""

    async def ar(self, request: dict) -> dict:
        """phone_ids int64 [N], style_ids int64 [S], prompt_tokens int64 [P], temperature, top_k, top_p,
        min_new_tokens, max_length, max_new_tokens (None: up to max_length), progress_every, seed, rng
        -> {"tokens": int64 [M] (content-style ids), "rng"}. Vevo1.5 AR."""

    async def fm(self, request: dict) -> dict:
        """codes int64 [K] (12.5 Hz), prompt_mel float32 [P, 128], target_frames (None: 4 K - P),
        n_timesteps, cfg, rescale_cfg, seed, rng -> {"mel": float32 [T, 128], "rng"}. Vevo1.5 FM."""

    async def vocode(self, mel: np.ndarray) -> np.ndarray:
        """float32 [T, 128] -> float32 [T * 480] at 24 kHz. Vevo1.5 vocoder."""


class LocalStages:
    """The stages of an in-process :class:`~models.vevosing.pipeline.VevoSingPipeline` (possibly one
    holding only some parts), numpy in and out: what each component deployment runs (in a worker
    thread), and what :class:`InlineStages` wraps for ``VevoSingPipeline.convert``."""

    #: The stages that generate, reporting their steps to ``emit``.
    GENERATING = frozenset({"ar", "fm"})

    def __init__(self, pipeline) -> None:
        self.pipeline = pipeline

    @property
    def facts(self) -> dict:
        """What a caller running the orchestrator over these stages needs to know: ``ar_length_bound``,
        the cap on new AR tokens per expected source token of the AR this part holds (None: no cap,
        or no AR here)."""
        return {"ar_length_bound": self.pipeline.ar_length_bound}

    def transcribe(self, wav24k, language: str | None) -> dict:
        heard = self.pipeline.transcribe(float32(wav24k).reshape(-1), language)
        return {"text": heard.text, "language": heard.language}

    def content_style_tokens(self, wav24k, shift_semitones: int = 0) -> np.ndarray:
        tokens = self.pipeline.content_style_tokens(float32(wav24k).reshape(-1), int(shift_semitones))
        return int64(tokens).reshape(-1)

    def prosody_tokens(self, wav24k) -> np.ndarray:
        return int64(self.pipeline.prosody_tokens(float32(wav24k).reshape(-1))).reshape(-1)

    def mel(self, wav24k) -> np.ndarray:
        return float32(self.pipeline.mel(float32(wav24k).reshape(-1)))

    def ar(self, request: dict, emit: ProgressFn | None = None) -> dict:
        p = self.pipeline
        gen = stage_generator(request, p.device)
        reported: list[tuple[int, int]] = []

        def on_progress(done: int, limit: int) -> None:
            reported.append((done, limit))
            if emit is not None:
                emit("ar", int(done), int(limit))

        max_new = request.get("max_new_tokens")
        tokens = p.generate_content_style(
            torch.from_numpy(int64(request["phone_ids"])), torch.from_numpy(int64(request["style_ids"])),
            torch.from_numpy(int64(request["prompt_tokens"])),
            temperature=float(request.get("temperature", AR_TEMPERATURE)),
            top_k=int(request.get("top_k", AR_TOP_K)), top_p=float(request.get("top_p", AR_TOP_P)),
            min_new_tokens=int(request.get("min_new_tokens", AR_MIN_NEW_TOKENS)),
            max_length=int(request.get("max_length", AR_MAX_LENGTH)),
            max_new_tokens=None if max_new is None else int(max_new),
            progress_every=int(request.get("progress_every", AR_PROGRESS_EVERY)),
            generator=gen, on_progress=on_progress,
        )
        if emit is not None and reported and reported[-1][0] != reported[-1][1]:
            emit("ar", reported[-1][0], reported[-1][0])  # stopped early: the bar ends full
        return {"tokens": int64(tokens).reshape(-1), "rng": generator_state(gen)}

    def fm(self, request: dict, emit: ProgressFn | None = None) -> dict:
        p = self.pipeline
        gen = stage_generator(request, p.device)
        target = request.get("target_frames")
        mel = p.flow_matching(
            torch.from_numpy(int64(request["codes"])), torch.from_numpy(float32(request["prompt_mel"])),
            target_frames=None if target is None else int(target),
            n_timesteps=int(request.get("n_timesteps", DEFAULT_STEPS)),
            cfg=float(request.get("cfg", DEFAULT_CFG)),
            rescale_cfg=float(request.get("rescale_cfg", DEFAULT_RESCALE_CFG)),
            generator=gen, on_step=step_reporter("fm", emit),
        )
        return {"mel": float32(mel), "rng": generator_state(gen)}

    def vocode(self, mel) -> np.ndarray:
        return float32(self.pipeline.vocode(torch.from_numpy(float32(mel)))).reshape(-1)


class InlineStages(core_stages.InlineStages, local=LocalStages):
    """:class:`LocalStages` as coroutines that never suspend (for ``run_inline``)."""


# ---------------------------------------------------------------------------------------------
# the orchestration


class VevoSingOrchestrator:
    """Checks, key shift, lyrics, G2P and the whole flow of one VevoSing conversion over any
    :class:`VevoSingStages`.

    ``g2p``: a :class:`models.text.G2P` (needed by ``"ar"`` only). ``transcribes``: whether the stages
    can transcribe (else ``"ar"`` needs ``lyrics`` and ``reference_text``). ``ar_length_bound``: cap
    the AR's new tokens at this many per expected source token (the tiny profile's 1.0; None: only
    the reference's ``max_length``). ``max_source_seconds``: longest source (None: no limit).
    ``offload(fn, *args)``: how CPU work outside the stages (checks, F0, G2P) runs: inline by default,
    :func:`~models.core.stages.in_thread` on an event loop that must stay free.
    """

    def __init__(self, g2p=None, *, transcribes: bool = True, ar_length_bound: float | None = None,
                 max_source_seconds: float | None = DEFAULT_MAX_SOURCE_SECONDS,
                 offload: Callable[..., Awaitable[Any]] | None = None) -> None:
        self.g2p = g2p
        self.transcribes = transcribes
        self.ar_length_bound = ar_length_bound
        self.max_source_seconds = max_source_seconds
        self.offload = offload or inline

    # --- checks --------------------------------------------------------------------------------

    def _checked(self, source, reference, mode, use_shifted_src, flow_matching_steps, lyrics, language,
                 reference_text, reference_language, seed, cfg, rescale_cfg, temperature, top_k, top_p) -> dict:
        """Every check that needs no model; the normalised request."""
        if mode not in MODES:
            raise VevoSingInputError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        if not isinstance(use_shifted_src, (bool, np.bool_)):
            raise VevoSingInputError(f"use_shifted_src must be true or false, got {use_shifted_src!r}")
        c: dict[str, Any] = {"mode": mode, "use_shifted_src": bool(use_shifted_src) and mode == "fm"}
        c["steps"] = _integer(flow_matching_steps, "flow_matching_steps", 1, MAX_STEPS)
        c["cfg"] = _finite(cfg, "cfg")
        c["rescale_cfg"] = _finite(rescale_cfg, "rescale_cfg", below=1.0)
        c["temperature"] = _finite(temperature, "temperature", positive=True)
        c["top_k"] = _integer(top_k, "top_k", 0)
        c["top_p"] = _finite(top_p, "top_p", positive=True, below=1.0)
        c["seed"] = _seed(seed)
        if mode == "ar":
            if self.g2p is None:
                raise RuntimeError("this VevoSing orchestrator has no G2P: it cannot run mode 'ar'")
            c["lyrics"] = None if lyrics is None else _text(lyrics, "lyrics")
            c["reference_text"] = None if reference_text is None else _text(reference_text, "reference_text")
            if not self.transcribes and (c["lyrics"] is None or c["reference_text"] is None):
                raise VevoSingInputError("mode 'ar' needs lyrics and reference_text here (no speech recognition "
                                         "is available to transcribe them)")
            c["language"] = _language_arg(language, "language")
            c["reference_language"] = c["language"] if reference_language is None else \
                _language_arg(reference_language, "reference_language")
        c["source"] = checked_audio(source, "source audio")
        if self.max_source_seconds is not None and c["source"].size > self.max_source_seconds * SAMPLE_RATE:
            raise InputTooLongError(f"source audio too long: {c['source'].size / SAMPLE_RATE:.1f} s, at most "
                                    f"{self.max_source_seconds:g} s")
        c["reference"] = checked_audio(reference, "reference audio", MAX_REFERENCE_SECONDS)
        return c

    def _phones(self, text: str, language: str, what: str) -> list[int]:
        code = _g2p_language(detect_language(text) if language == "auto" else language, what)
        ids = list(self.g2p.phone_ids(text, code))
        if not ids:
            raise VevoSingInputError(f"{what} has nothing to pronounce")
        return ids

    # --- the whole thing -----------------------------------------------------------------------

    async def convert(
        self,
        stages: VevoSingStages,
        source_wav_24k: np.ndarray,
        reference_wav_24k: np.ndarray,
        mode: str = "fm",
        *,
        use_shifted_src: bool = USE_SHIFTED_SRC,
        flow_matching_steps: int = FM_STEPS,
        lyrics: str | None = None,
        language: str = "auto",
        reference_text: str | None = None,
        reference_language: str | None = None,
        seed: int | None = None,
        on_progress: ProgressFn | None = None,
        cfg: float = DEFAULT_CFG,
        rescale_cfg: float = DEFAULT_RESCALE_CFG,
        temperature: float = AR_TEMPERATURE,
        top_k: int = AR_TOP_K,
        top_p: float = AR_TOP_P,
        prompts: PromptMemo | None = None,
    ) -> np.ndarray:
        """See :meth:`models.vevosing.pipeline.VevoSingPipeline.convert`. ``on_progress`` gets the stages
        this orchestration runs itself; the generating stages (``ar``, ``fm``) report their own steps.
        ``prompts``: where the reference's encodings (tokens, mel, transcript) are kept between requests."""
        c = await self.offload(self._checked, source_wav_24k, reference_wav_24k, mode, use_shifted_src,
                               flow_matching_steps, lyrics, language, reference_text, reference_language, seed,
                               cfg, rescale_cfg, temperature, top_k, top_p)
        c["prompts"] = prompts or PromptMemo()

        def progress(stage: str, step: int, total: int) -> None:
            if on_progress is not None:
                on_progress(stage, step, total)

        if c["mode"] == "fm":
            return await self._timbre(stages, c, progress)
        return await self._resing(stages, c, progress)

    async def _timbre(self, stages: VevoSingStages, c: dict, progress: ProgressFn) -> np.ndarray:
        """``inference_fm``: the source's content-style tokens rendered with the reference's timbre."""
        source, reference = c["source"], c["reference"]
        shift = 0
        if c["use_shifted_src"]:
            shift = await self.offload(key_shift, source, reference)
            progress("pitch", 1, 1)
        source_tokens = int64(await stages.content_style_tokens(source, shift)).reshape(-1)
        progress("content_style", 1, 2)
        reference_tokens = int64(await c["prompts"].get(
            "content_style_tokens", lambda: stages.content_style_tokens(reference, 0))).reshape(-1)
        progress("content_style", 2, 2)
        return await self._render(stages, c, progress, reference_tokens, source_tokens,
                                  target_frames=mel_frames(source.shape[0]), rng=None)

    async def _texts(self, stages: VevoSingStages, c: dict, progress: ProgressFn) -> tuple[str, str, str, str]:
        """``(lyrics, their language, reference text, its language)``, transcribing what was not given."""
        lyrics, reference_text = c["lyrics"], c["reference_text"]
        language, reference_language = c["language"], c["reference_language"]
        source_windows = [] if lyrics is not None else _windows(c["source"], ASR_WINDOW_SECONDS, MIN_ASR_SECONDS)
        calls, done = len(source_windows) + (reference_text is None), 0
        if lyrics is None:
            heard_language = None if language == "auto" else language
            pieces = []
            for window in source_windows:
                heard = await stages.transcribe(window, heard_language)
                if heard_language is None:  # the first window's language holds for the rest
                    heard_language = _language_arg(str(heard["language"]), "the lyrics transcribed from the source "
                                                                           "(give lyrics and language)")
                pieces.append(str(heard["text"]).strip())
                done += 1
                progress("asr", done, calls)
            lyrics, language = " ".join(p for p in pieces if p), heard_language
            if not lyrics:
                raise VevoSingInputError("no lyrics were heard in the source audio; give lyrics")
        if reference_text is None:
            asked = None if reference_language == "auto" else reference_language
            heard = await c["prompts"].get(f"transcript:{asked}", lambda: stages.transcribe(c["reference"], asked))
            done += 1
            progress("asr", done, calls)
            reference_text = str(heard["text"]).strip()
            if not reference_text:
                raise VevoSingInputError("no words were heard in the reference audio; give reference_text")
            if reference_language == "auto":
                reference_language = _language_arg(str(heard["language"]), "the reference's transcript (give "
                                                                           "reference_text and reference_language)")
        return lyrics, language, reference_text, reference_language

    async def _resing(self, stages: VevoSingStages, c: dict, progress: ProgressFn) -> np.ndarray:
        """Recognition-synthesis: the lyrics re-sung on the source's melody in the reference's style."""
        source, reference = c["source"], c["reference"]
        melody = np.concatenate([reference, source])
        expected = content_style_count(source.shape[0])

        def check_budget(n_phones: int) -> None:
            """The AR's context must hold its prompt and the source's expected tokens."""
            needed = ar_prompt_length(n_phones, prosody_count(melody.shape[0]),
                                      content_style_count(reference.shape[0])) + expected
            if needed > AR_MAX_LENGTH:
                raise InputTooLongError(
                    f"mode 'ar': the reference ({reference.shape[0] / SAMPLE_RATE:.1f} s) with its transcript, the "
                    f"lyrics and the source ({source.shape[0] / SAMPLE_RATE:.1f} s) need about {needed} AR tokens, "
                    f"more than the model's {AR_MAX_LENGTH}; use a shorter source or reference, or mode 'fm'")

        check_budget(0)  # before any transcription
        lyrics, language, reference_text, reference_language = await self._texts(stages, c, progress)

        def phone_ids() -> list[int]:
            return (self._phones(reference_text, reference_language, "reference_text")
                    + self._phones(lyrics, language, "lyrics"))

        phones = await self.offload(phone_ids)
        progress("g2p", 1, 1)
        check_budget(len(phones))
        max_new = None
        if self.ar_length_bound is not None:
            max_new = max(1, math.ceil(self.ar_length_bound * expected))

        reference_tokens = int64(await c["prompts"].get(
            "content_style_tokens", lambda: stages.content_style_tokens(reference, 0))).reshape(-1)
        progress("content_style", 1, 1)
        style = int64(await stages.prosody_tokens(melody)).reshape(-1)
        progress("prosody", 1, 1)
        answer = await stages.ar({
            "phone_ids": int64(phones), "style_ids": style, "prompt_tokens": reference_tokens,
            "temperature": c["temperature"], "top_k": c["top_k"], "top_p": c["top_p"],
            "min_new_tokens": AR_MIN_NEW_TOKENS, "max_length": AR_MAX_LENGTH, "max_new_tokens": max_new,
            "progress_every": AR_PROGRESS_EVERY, "seed": c["seed"], "rng": None,
        })
        generated = int64(answer["tokens"]).reshape(-1)
        if generated.size == 0:
            raise RuntimeError("the VevoSing AR stage generated no content-style tokens")
        return await self._render(stages, c, progress, reference_tokens, generated, target_frames=None,
                                  rng=answer["rng"])

    async def _render(self, stages: VevoSingStages, c: dict, progress: ProgressFn, reference_tokens: np.ndarray,
                      tokens: np.ndarray, *, target_frames: int | None, rng) -> np.ndarray:
        """FM with the reference's timbre (condition ``[reference ‖ tokens]``, prompt its mel), then the
        vocoder."""
        prompt_mel = float32(await c["prompts"].get("mel", lambda: stages.mel(c["reference"])))
        progress("mel", 1, 1)
        answer = await stages.fm({
            "codes": np.concatenate([reference_tokens, tokens]), "prompt_mel": prompt_mel,
            "target_frames": target_frames, "n_timesteps": c["steps"], "cfg": c["cfg"],
            "rescale_cfg": c["rescale_cfg"], "seed": c["seed"], "rng": rng,
        })
        audio = float32(await stages.vocode(float32(answer["mel"]))).reshape(-1)
        progress("vocoder", 1, 1)
        return audio
