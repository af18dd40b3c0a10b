"""MaskGCT zero-shot TTS, end to end: text + a reference recording -> 24 kHz speech in its voice.

The stages, as Amphion's ``MaskGCT_Inference_Pipeline.maskgct_inference`` runs them (each one a
method, so that a serving layer can put each on its own deployment):

===================  ========================================  =========================================
stage (progress)     method                                    what
===================  ========================================  =========================================
``semantic_prompt``  :meth:`MaskGCTPipeline.semantic_tokens`   16 kHz reference -> w2v-bert-2.0 layer 17,
                                                               normalised -> semantic codec -> ``[1, P]``
``acoustic_prompt``  :meth:`MaskGCTPipeline.acoustic_codes`    24 kHz reference -> codec encoder + RVQ
                                                               -> ``[1, P, nq]``
``g2p``              :meth:`MaskGCTPipeline.phone_ids`         reference text and text -> phone ids
``t2s``              :meth:`MaskGCTPipeline.text_to_semantic`  masked decoding of ``T`` semantic tokens
``s2a``              :meth:`MaskGCTPipeline.semantic_to_acoustic`  layer 0 (1-layer model), then layers
                                                               1.. (full model) -> ``[1, T, nq]``
``decode``           :meth:`MaskGCTPipeline.decode`            codes -> Vocos -> ``T * 480`` samples
===================  ========================================  =========================================

Defaults are the reference's: T2S 25 steps, CFG 2.5 with rescale 0.75, temperature 0.9; S2A steps
``[25, 10, 1, ...]``, temperature 1.5, CFG 2.5 / 0.75; top-k threshold 0.98 for both; decoding with
every codec layer (12).

**Target length** in 50 Hz frames: ``floor(target_len_s * 50)`` (the reference's ``int``, made
robust to float noise so that 2.3 s gives 115 frames), else the reference's estimate
``int(samples_16k * n_text_phones / n_reference_phones / 16000 * 50)``. The output has exactly
``frames * 480`` samples: the reference's semantic and acoustic prompts are cut to their common
length (the w2v-bert front end usually yields one frame fewer than the codec; the reference leaves
them unequal, which makes its S2A produce one frame fewer than asked, shifted by a frame).

**Long texts** are cut with :func:`models.text.split_sentences` (``max_chars`` per piece, by default
80 for Mandarin, 120 for Korean, 240 otherwise). Every piece is generated against the same
reference: all T2S passes first, then all S2A passes, then decoding, so that the progress stages
run in order; step counters and totals are cumulative over the pieces. A given ``target_len_s``
is shared out by phone count (the pieces' frames add up to exactly the target); otherwise each
piece gets its own estimate. Pieces are joined end to end with 10 ms fades at the seams.

**Randomness**: ``seed`` seeds one ``torch.Generator`` on the pipeline's device that feeds every
draw of the call (same seed, same device -> same audio); ``None`` draws from torch's global RNG.

**Errors** the caller should turn into 4xx responses are :class:`MaskGCTInputError` (a
``ValueError``; :class:`EmptyTextError`, :class:`ReferenceAudioError`, :class:`TargetLengthError`)
and :class:`models.text.UnsupportedLanguage` (also a ``ValueError``); their messages are safe to
show. Input checks run before any model does.

**Weights**: :meth:`MaskGCTPipeline.from_weights` resolves the six entries of
:data:`models.maskgct.official.OFFICIAL_PIPELINE_FILES`. ``"tiny"`` builds every component small
with seeded weights and matching sizes (64 semantic codes, 3 x 32 acoustic codes, 32-d features,
same sample and frame rates as the official models). Components are never mixed: in ``"auto"`` mode
one missing official file makes the whole pipeline tiny.
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch

from models.blocks.masked_generation import executed_steps
from models.maskgct.acoustic_codec import AcousticCodec
from models.maskgct.checkpoints import (
    build_acoustic_codec,
    build_semantic_codec,
    load_acoustic_codec,
    load_semantic_codec,
)
from models.maskgct.configs import (
    ACOUSTIC_SAMPLE_RATE,
    SEMANTIC_SAMPLE_RATE,
    tiny_acoustic_codec_config,
    tiny_semantic_codec_config,
)
from models.maskgct.generation_configs import tiny_s2a_config, tiny_t2s_config
from models.maskgct.official import OFFICIAL_PIPELINE_FILES
from models.maskgct.s2a import DEFAULT_STEPS as S2A_DEFAULT_STEPS
from models.maskgct.s2a import MaskGCTS2A, build_s2a_model, load_s2a_model, semantic_to_acoustic
from models.maskgct.semantic_codec import SemanticCodec
from models.maskgct.semantic_encoder import STATS_FILE, SemanticEncoder, build_semantic_encoder, load_semantic_encoder
from models.maskgct.t2s import MaskGCTT2S, build_t2s_model, load_t2s_model
from models.text import (
    G2P,
    SUPPORTED_LANGUAGES,
    LanguageUnavailable,
    detect_language,
    normalize_language,
    split_sentences,
)
from models.weights import WEIGHTS_MODES, ResolvedWeights, resolve

__all__ = [
    "FRAME_RATE",
    "SAMPLE_RATE",
    "STAGES",
    "EmptyTextError",
    "MaskGCTInputError",
    "MaskGCTPipeline",
    "ReferenceAudioError",
    "TargetLengthError",
]

SAMPLE_RATE = ACOUSTIC_SAMPLE_RATE     # output and acoustic-prompt rate (24 kHz)
FRAME_RATE = 50                        # semantic and acoustic token rate
#: Progress stages, in the order they run.
STAGES = ("semantic_prompt", "acoustic_prompt", "g2p", "t2s", "s2a", "decode")

# Reference defaults (maskgct_inference / maskgct_utils).
T2S_STEPS = 25
T2S_TEMPERATURE = 0.9
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

ProgressFn = Callable[[str, int, int], None]


class MaskGCTInputError(ValueError):
    """A request the pipeline cannot serve as given (a client error); the message is user-safe."""


class EmptyTextError(MaskGCTInputError):
    """The text (or the reference text) is empty or has nothing to pronounce."""


class ReferenceAudioError(MaskGCTInputError):
    """The reference recording is unusable: not mono, not finite, too short or silent."""


class TargetLengthError(MaskGCTInputError):
    """The requested (or estimated) target length is invalid or too long."""


def _nonneg_float(value, name: str, *, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(float(value)):
        raise MaskGCTInputError(f"{name} must be a finite number, got {value!r}")
    value = float(value)
    if value < 0 or (positive and value == 0):
        raise MaskGCTInputError(f"{name} must be {'positive' if positive else 'non-negative'}, got {value}")
    return value


def _count(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or int(value) < 1:
        raise MaskGCTInputError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


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


def _as_mono_float(wav, name: str) -> np.ndarray:
    if isinstance(wav, torch.Tensor):
        wav = wav.detach().cpu().numpy()
    arr = np.asarray(wav)
    if arr.ndim == 2 and 1 in arr.shape:
        arr = arr.reshape(-1)
    if arr.ndim != 1:
        raise ReferenceAudioError(f"{name} must be mono audio (one channel), got an array of shape {arr.shape}")
    if np.issubdtype(arr.dtype, np.integer):
        arr = arr.astype(np.float32) / float(np.iinfo(arr.dtype).max)
    elif not np.issubdtype(arr.dtype, np.floating):
        raise ReferenceAudioError(f"{name} must hold audio samples, got dtype {arr.dtype}")
    arr = arr.astype(np.float32, copy=False)
    if not np.isfinite(arr).all():
        raise ReferenceAudioError(f"{name} contains NaN or infinite samples")
    return arr


class MaskGCTPipeline:
    """All MaskGCT components plus the G2P. Build with :meth:`from_weights`; run :meth:`generate`."""

    def __init__(
        self,
        *,
        semantic_encoder: SemanticEncoder,
        semantic_codec: SemanticCodec,
        acoustic_codec: AcousticCodec,
        t2s: MaskGCTT2S,
        s2a_1layer: MaskGCTS2A,
        s2a_full: MaskGCTS2A,
        g2p: G2P,
        device: str | torch.device = "cpu",
        weights_kind: str = "custom",
        note: str = "",
        max_target_seconds: float | None = DEFAULT_MAX_TARGET_SECONDS,
    ) -> None:
        self.semantic_encoder = semantic_encoder
        self.semantic_codec = semantic_codec
        self.acoustic_codec = acoustic_codec
        self.t2s = t2s
        self.s2a_1layer = s2a_1layer
        self.s2a_full = s2a_full
        self.g2p = g2p
        self.device = torch.device(device)
        self.weights_kind = weights_kind
        """``"pretrained"``, ``"tiny"`` or ``"custom"`` (built by hand)."""
        self.note = note
        """Where the weights come from; user-safe."""
        self.max_target_seconds = max_target_seconds
        self._check_consistency()

    def _check_consistency(self) -> None:
        enc, sem, aco = self.semantic_encoder, self.semantic_codec, self.acoustic_codec
        problems = []
        if enc.hidden_size != sem.hidden_size:
            problems.append(f"semantic encoder width {enc.hidden_size} != semantic codec width {sem.hidden_size}")
        if sem.num_quantizers != 1:
            problems.append(f"the semantic codec must have one quantizer, has {sem.num_quantizers}")
        for name, model in (("t2s", self.t2s), ("s2a_1layer", self.s2a_1layer), ("s2a_full", self.s2a_full)):
            if model.config.cond_codebook_size != sem.codebook_size:
                problems.append(f"{name} reads {model.config.cond_codebook_size} semantic codes, "
                                f"the codec makes {sem.codebook_size}")
        for name, model in (("s2a_1layer", self.s2a_1layer), ("s2a_full", self.s2a_full)):
            if model.config.codebook_size != aco.decoder.codebook_size:
                problems.append(f"{name} predicts {model.config.codebook_size} acoustic codes, "
                                f"the codec has {aco.decoder.codebook_size}")
        if self.s2a_1layer.num_quantizer != 1:
            problems.append(f"s2a_1layer must predict one layer, predicts {self.s2a_1layer.num_quantizer}")
        if self.s2a_full.num_quantizer != aco.num_quantizers:
            problems.append(f"s2a_full predicts {self.s2a_full.num_quantizer} layers, "
                            f"the codec has {aco.num_quantizers}")
        if enc.sample_rate != SEMANTIC_SAMPLE_RATE or enc.frame_rate != FRAME_RATE:
            problems.append(f"semantic encoder runs at {enc.sample_rate} Hz -> {enc.frame_rate} frames/s, "
                            f"expected {SEMANTIC_SAMPLE_RATE} Hz -> {FRAME_RATE}")
        if SAMPLE_RATE / aco.hop_length != FRAME_RATE:
            problems.append(f"acoustic codec hop {aco.hop_length} gives {SAMPLE_RATE / aco.hop_length} frames/s at "
                            f"{SAMPLE_RATE} Hz, expected {FRAME_RATE}")
        if problems:
            raise ValueError("MaskGCT components do not fit together: " + "; ".join(problems))

    # ------------------------------------------------------------------------------------------
    # construction

    @classmethod
    def from_weights(
        cls,
        mode: str = "auto",
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        *,
        g2p_data: str | os.PathLike | G2P | None = None,
        cache_dir: str | os.PathLike | None = None,
        local_dirs: Mapping[str, str | os.PathLike] | None = None,
        seed: int = 0,
        max_target_seconds: float | None = DEFAULT_MAX_TARGET_SECONDS,
    ) -> "MaskGCTPipeline":
        """Every component through ``models.weights.resolve`` (``mode``: ``"pretrained"``, ``"tiny"``
        or ``"auto"``; see the module docstring).

        ``dtype`` applies to w2v-bert, T2S and the S2A models; the two codecs stay float32 (the
        ISTFT and the VQ distances want it). ``g2p_data``: a :class:`~models.text.G2P` or its data
        folder (None: ``$AMPHION_G2P_DATA``). ``local_dirs``: component key (see
        :data:`~models.maskgct.official.OFFICIAL_PIPELINE_FILES`) -> a folder laid out like its repo.
        ``seed`` seeds the tiny weights.
        """
        if mode not in WEIGHTS_MODES:
            raise ValueError(f"unknown weights mode {mode!r}; expected one of {', '.join(WEIGHTS_MODES)}")
        g2p = g2p_data if isinstance(g2p_data, G2P) else G2P(g2p_data)
        local_dirs = dict(local_dirs or {})
        unknown = set(local_dirs) - set(OFFICIAL_PIPELINE_FILES)
        if unknown:
            raise ValueError(f"local_dirs: unknown components {sorted(unknown)}; "
                             f"known: {', '.join(OFFICIAL_PIPELINE_FILES)}")
        options = dict(g2p=g2p, device=device, max_target_seconds=max_target_seconds)
        if mode != "tiny":
            found: dict[str, ResolvedWeights] = {}
            for key, files in OFFICIAL_PIPELINE_FILES.items():
                found[key] = resolve(files, mode, cache_dir=cache_dir, local_dir=local_dirs.get(key))
                if not found[key].pretrained:  # auto mode: one missing component makes it all tiny
                    return cls._tiny(seed=seed, dtype=dtype, weights_kind="tiny", note=found[key].note, **options)
            return cls._official(found, dtype=dtype, **options)
        return cls._tiny(seed=seed, dtype=dtype, weights_kind="tiny", note="tiny profile: seeded random weights",
                         **options)

    @classmethod
    def _tiny(cls, *, seed: int, dtype: torch.dtype, device, **options) -> "MaskGCTPipeline":
        return cls(
            semantic_encoder=build_semantic_encoder(seed=seed, device=device, dtype=dtype),
            semantic_codec=build_semantic_codec(tiny_semantic_codec_config(), seed=seed + 1, device=device),
            acoustic_codec=build_acoustic_codec(tiny_acoustic_codec_config(), seed=seed + 2, device=device),
            t2s=build_t2s_model(tiny_t2s_config(), seed=seed + 3, device=device, dtype=dtype),
            s2a_1layer=build_s2a_model(tiny_s2a_config("1layer"), seed=seed + 4, device=device, dtype=dtype),
            s2a_full=build_s2a_model(tiny_s2a_config("full"), seed=seed + 5, device=device, dtype=dtype),
            device=device,
            **options,
        )

    @classmethod
    def _official(cls, found: Mapping[str, ResolvedWeights], *, dtype: torch.dtype, device,
                  **options) -> "MaskGCTPipeline":
        def root(key: str):
            return found[key].root

        return cls(
            semantic_encoder=load_semantic_encoder(
                root("w2v_bert"), found["semantic_stats"].file(STATS_FILE), device=device, dtype=dtype
            ),
            semantic_codec=load_semantic_codec(root("semantic_codec"), device=device),
            acoustic_codec=load_acoustic_codec(root("acoustic_codec"), device=device),
            t2s=load_t2s_model(root("t2s"), device=device, dtype=dtype),
            s2a_1layer=load_s2a_model(root("s2a"), "1layer", device=device, dtype=dtype),
            s2a_full=load_s2a_model(root("s2a"), "full", device=device, dtype=dtype),
            device=device,
            weights_kind="pretrained",
            note=found["t2s"].note,
            **options,
        )

    # ------------------------------------------------------------------------------------------
    # properties

    @property
    def sample_rate(self) -> int:
        """Output sample rate (24 kHz)."""
        return SAMPLE_RATE

    @property
    def frame_rate(self) -> int:
        return FRAME_RATE

    @property
    def hop_length(self) -> int:
        """Output samples per token frame (480)."""
        return self.acoustic_codec.hop_length

    @property
    def num_quantizers(self) -> int:
        return self.acoustic_codec.num_quantizers

    def s2a_steps(self, n_timesteps: Sequence[int] | None = None) -> list[int]:
        """The per-layer S2A step counts: the given ones (one per codec layer) or the reference's."""
        if n_timesteps is None:
            steps = list(S2A_DEFAULT_STEPS[: self.num_quantizers])
            return steps + [1] * (self.num_quantizers - len(steps))
        steps = [_count(n, "s2a n_timesteps entries") for n in n_timesteps]
        if len(steps) != self.num_quantizers:
            raise MaskGCTInputError(f"s2a n_timesteps needs {self.num_quantizers} entries (one per codec layer), "
                                    f"got {len(steps)}")
        return steps

    # ------------------------------------------------------------------------------------------
    # stages

    def phone_ids(self, text: str, language: str) -> list[int]:
        """G2P: phone ids of ``text`` (UnsupportedLanguage for a language the G2P cannot convert)."""
        return self.g2p.phone_ids(text, language)

    @torch.inference_mode()
    def semantic_tokens(self, wav16k: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Mono 16 kHz waveform -> semantic tokens ``[1, P]`` (int64, 50 Hz) on the pipeline's device."""
        wav = _as_mono_float(wav16k, "the 16 kHz reference")
        if len(wav) < self.semantic_encoder.min_samples:
            raise ReferenceAudioError("the reference audio is too short")
        features = self.semantic_encoder.encode(wav)
        codes, _ = self.semantic_codec.quantize(features.to(self.device, torch.float32))
        return codes.reshape(1, -1)

    @torch.inference_mode()
    def acoustic_codes(self, wav24k: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Mono 24 kHz waveform -> acoustic codes ``[1, P, nq]`` (int64, 50 Hz) on the pipeline's device."""
        wav = _as_mono_float(wav24k, "the 24 kHz reference")
        if len(wav) < self.hop_length:
            raise ReferenceAudioError("the reference audio is too short")
        x = torch.from_numpy(np.ascontiguousarray(wav)).to(self.device).view(1, 1, -1)
        return self.acoustic_codec.encode(x)

    @torch.inference_mode()
    def text_to_semantic(
        self,
        prompt_semantic: torch.Tensor,
        phone_ids: Sequence[int] | torch.Tensor,
        target_len: int,
        *,
        n_timesteps: int = T2S_STEPS,
        cfg: float = CFG,
        rescale_cfg: float = RESCALE_CFG,
        temperature: float = T2S_TEMPERATURE,
        filter_thres: float = FILTER_THRES,
        seed: int | None = None,
        generator: torch.Generator | None = None,
        on_step: Callable[[int, int], None] | None = None,
    ) -> torch.Tensor:
        """T2S: ``target_len`` semantic tokens ``[1, T]`` for the prompt's tokens ``[1, P]`` and the phone
        ids of reference text + text. ``on_step(step, total)`` after each executed step."""
        phones = torch.as_tensor(phone_ids, dtype=torch.long, device=self.device).reshape(1, -1)
        return self.t2s.generate(
            prompt_semantic.to(self.device).reshape(1, -1), phones, int(target_len),
            n_timesteps=n_timesteps, temp=temperature, filter_thres=filter_thres, cfg=cfg, rescale_cfg=rescale_cfg,
            seed=seed, generator=generator, on_step=on_step,
        )

    @torch.inference_mode()
    def semantic_to_acoustic(
        self,
        semantic: torch.Tensor,
        prompt_codes: torch.Tensor,
        *,
        n_timesteps: Sequence[int] | None = None,
        cfg: float = CFG,
        rescale_cfg: float = RESCALE_CFG,
        temperature: float = S2A_TEMPERATURE,
        filter_thres: float = FILTER_THRES,
        seed: int | None = None,
        generator: torch.Generator | None = None,
        on_step: Callable[[int, int], None] | None = None,
    ) -> torch.Tensor:
        """S2A: semantic tokens ``[1, P + T]`` (prompt then target) and the prompt's acoustic codes
        ``[1, P, nq]`` -> the target's acoustic codes ``[1, T, nq]`` (1-layer model for layer 0, full
        model for the rest). ``on_step(step, total)`` counts over both models."""
        _, codes = semantic_to_acoustic(
            self.s2a_1layer, self.s2a_full, semantic.to(self.device), prompt_codes.to(self.device),
            n_timesteps=self.s2a_steps(n_timesteps), temp=temperature, filter_thres=filter_thres, cfg=cfg,
            rescale_cfg=rescale_cfg, seed=seed, generator=generator, on_step=on_step,
        )
        return codes

    def s2a_planned_steps(self, target_len: int, n_timesteps: Sequence[int] | None = None) -> int:
        """How many S2A steps (both models) :meth:`semantic_to_acoustic` runs for ``target_len`` frames."""
        steps = self.s2a_steps(n_timesteps)
        return (self.s2a_1layer.planned_steps(steps[:1], target_len)
                + self.s2a_full.planned_steps(steps, target_len, first_layer=1))

    @torch.inference_mode()
    def decode(self, codes: torch.Tensor) -> np.ndarray:
        """Acoustic codes ``[1, T, nq]`` (or ``[T, nq]``) -> float32 waveform of ``T * 480`` samples at 24 kHz
        (every layer the codes hold is summed)."""
        if codes.dim() == 2:
            codes = codes.unsqueeze(0)
        if codes.dim() != 3 or codes.shape[0] != 1:
            raise ValueError(f"expected codes [1, T, n_quantizers], got {tuple(codes.shape)}")
        wav = self.acoustic_codec.decode(codes.to(self.device, torch.long))
        return wav.reshape(-1).float().cpu().numpy()

    # ------------------------------------------------------------------------------------------
    # checks

    def _language(self, language: str, text: str, what: str) -> str:
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
    def _text(text, what: str) -> str:
        if not isinstance(text, str):
            raise EmptyTextError(f"{what} must be a string")
        if not text.strip():
            raise EmptyTextError(f"{what} is empty")
        return text

    def _reference(self, wav24k) -> np.ndarray:
        wav = _as_mono_float(wav24k, "reference audio")
        if len(wav) < MIN_REFERENCE_SECONDS * SAMPLE_RATE:
            raise ReferenceAudioError(
                f"reference audio too short: {len(wav) / SAMPLE_RATE:.2f} s, at least {MIN_REFERENCE_SECONDS} s needed"
            )
        if float(np.sqrt(np.mean(np.square(wav, dtype=np.float64)))) < SILENCE_RMS:
            raise ReferenceAudioError("reference audio is silent")
        return wav

    def _check_total(self, frames: int) -> None:
        if self.max_target_seconds is not None and frames > self.max_target_seconds * FRAME_RATE:
            raise TargetLengthError(
                f"target too long: {frames / FRAME_RATE:.1f} s of speech, at most {self.max_target_seconds:g} s"
            )

    # ------------------------------------------------------------------------------------------
    # the whole thing

    def target_frames(self, target_len_s: float) -> int:
        """Frames for a target length in seconds (``floor(s * 50)``, tolerant to float noise)."""
        seconds = _nonneg_float(target_len_s, "target_len_s", positive=True)
        frames = int(math.floor(seconds * FRAME_RATE + 1e-6))
        if frames < 1:
            raise TargetLengthError(f"target_len_s must be at least {1 / FRAME_RATE} s, got {seconds}")
        return frames

    def generate(
        self,
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
    ) -> np.ndarray:
        """Speak ``text`` (in ``language``, or ``"auto"``) in the voice of ``reference_wav_24k`` (mono,
        24 kHz), whose transcript is ``reference_text`` (in ``reference_language``, default
        ``language``). Returns float32 samples at 24 kHz.

        ``n_timesteps``, ``cfg``, ``temperature``, ``rescale_cfg``: the T2S stage; ``s2a_*``: the S2A
        stage (``s2a_timesteps`` one count per codec layer); ``filter_thres`` both.
        ``on_progress(stage, step, total)``: once per T2S and per S2A step, once when each other
        stage is done (``decode``: per text piece); an exception it raises aborts the call.
        """
        # --- cheap checks first: nothing runs on a request that must fail
        text = self._text(text, "text")
        reference_text = self._text(reference_text, "reference_text")
        lang = self._language(language, text, "text")
        ref_lang = self._language(language if reference_language is None else reference_language,
                                  reference_text, "reference_text")
        if max_chars is None:
            max_chars = DEFAULT_MAX_CHARS.get(lang, FALLBACK_MAX_CHARS)
        pieces = split_sentences(text, lang, _count(max_chars, "max_chars"))
        if not pieces:
            raise EmptyTextError("text is empty")
        total_frames = None if target_len_s is None else self.target_frames(target_len_s)
        if total_frames is not None:
            self._check_total(total_frames)
        n_timesteps = _count(n_timesteps, "n_timesteps")
        s2a_steps = self.s2a_steps(s2a_timesteps)
        cfg, s2a_cfg = _nonneg_float(cfg, "cfg"), _nonneg_float(s2a_cfg, "s2a_cfg")
        rescale_cfg = _nonneg_float(rescale_cfg, "rescale_cfg")
        s2a_rescale_cfg = _nonneg_float(s2a_rescale_cfg, "s2a_rescale_cfg")
        temperature = _nonneg_float(temperature, "temperature", positive=True)
        s2a_temperature = _nonneg_float(s2a_temperature, "s2a_temperature", positive=True)
        filter_thres = _nonneg_float(filter_thres, "filter_thres")
        if filter_thres >= 1:
            raise MaskGCTInputError(f"filter_thres must be below 1, got {filter_thres}")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral)
                                 or not 0 <= int(seed) < 2**63):
            raise MaskGCTInputError(f"seed must be an integer in [0, 2**63), got {seed!r}")
        wav24 = self._reference(reference_wav_24k)

        def progress(stage: str, step: int, total: int) -> None:
            if on_progress is not None:
                on_progress(stage, step, total)

        with torch.inference_mode():
            # --- prompts
            wav16 = self._resample_to_16k(wav24)
            prompt_semantic = self.semantic_tokens(wav16)
            progress("semantic_prompt", 1, 1)
            prompt_codes = self.acoustic_codes(wav24)
            progress("acoustic_prompt", 1, 1)
            n_prompt = min(prompt_semantic.shape[1], prompt_codes.shape[1])
            if n_prompt < 1:
                raise ReferenceAudioError("the reference audio is too short")
            prompt_semantic, prompt_codes = prompt_semantic[:, :n_prompt], prompt_codes[:, :n_prompt]

            # --- text
            prompt_phones = self.phone_ids(reference_text, ref_lang)
            if not prompt_phones:
                raise EmptyTextError("reference_text has nothing to pronounce")
            piece_phones = [ids for ids in (self.phone_ids(p, lang) for p in pieces) if ids]
            if not piece_phones:
                raise EmptyTextError("text has nothing to pronounce")
            progress("g2p", 1, 1)
            if total_frames is not None:
                lengths = _share(total_frames, [len(ids) for ids in piece_phones])
            else:
                lengths = [max(1, int(len(wav16) * len(ids) / len(prompt_phones) / SEMANTIC_SAMPLE_RATE * FRAME_RATE))
                           for ids in piece_phones]
                self._check_total(sum(lengths))

            generator = None
            if seed is not None:
                generator = torch.Generator(device=self.device).manual_seed(int(seed))

            # --- T2S, every piece
            t2s_total = sum(executed_steps(n_timesteps, n) for n in lengths)
            semantics, done = [], 0
            for ids, n in zip(piece_phones, lengths):
                semantic = self.text_to_semantic(
                    prompt_semantic, list(prompt_phones) + list(ids), n, n_timesteps=n_timesteps, cfg=cfg,
                    rescale_cfg=rescale_cfg, temperature=temperature, filter_thres=filter_thres,
                    generator=generator, on_step=lambda step, _n, o=done: progress("t2s", o + step, t2s_total),
                )
                done += executed_steps(n_timesteps, n)
                semantics.append(semantic)

            # --- S2A, every piece
            s2a_total = sum(self.s2a_planned_steps(n, s2a_steps) for n in lengths)
            codes, done = [], 0
            for semantic, n in zip(semantics, lengths):
                codes.append(self.semantic_to_acoustic(
                    torch.cat([prompt_semantic, semantic], dim=1), prompt_codes, n_timesteps=s2a_steps,
                    cfg=s2a_cfg, rescale_cfg=s2a_rescale_cfg, temperature=s2a_temperature,
                    filter_thres=filter_thres, generator=generator,
                    on_step=lambda step, _n, o=done: progress("s2a", o + step, s2a_total),
                ))
                done += self.s2a_planned_steps(n, s2a_steps)

            # --- decode, every piece
            audio = []
            for i, piece_codes in enumerate(codes, start=1):
                audio.append(self.decode(piece_codes))
                progress("decode", i, len(codes))
        return _join(audio, int(JOIN_FADE_SECONDS * SAMPLE_RATE)).astype(np.float32, copy=False)

    @staticmethod
    def _resample_to_16k(wav24: np.ndarray) -> np.ndarray:
        """24 kHz -> 16 kHz (torchaudio's windowed-sinc resampler; the reference lets librosa load the
        file at 16 kHz instead, which differs only near the band edge)."""
        import torchaudio.functional as AF

        x = torch.from_numpy(np.ascontiguousarray(wav24)).view(1, -1)
        return AF.resample(x, SAMPLE_RATE, SEMANTIC_SAMPLE_RATE).view(-1).numpy()
