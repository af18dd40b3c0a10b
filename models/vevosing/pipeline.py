"""VevoSing (Vevo1.5) singing voice conversion for ``/api/svc/vevosing``: a source song + a reference
voice -> 24 kHz singing in the reference's timbre (``"fm"``) or re-sung in its style (``"ar"``).

:class:`VevoSingPipeline` holds the components by part (``content_style``, ``prosody``, ``ar``,
``fm``, ``vocoder``, ``g2p``, ``asr``; possibly only some) and runs one stage per method, so that a
serving layer can put each part on its own deployment; :meth:`~VevoSingPipeline.convert` runs
:class:`~models.vevosing.orchestration.VevoSingOrchestrator` over them. ``ar_length_bound`` is its
AR's own cap (from the AR's config). :func:`pitch_shift` is the key shift of ``use_shifted_src``.

:meth:`~VevoSingPipeline.from_weights` builds it from the official files (``"pretrained"``; ``variant``
picks the AR and FM checkpoints), small seeded stand-ins (``"tiny"``) or whichever is on this machine
(``"auto"``; never a mix). Stages, modes and weights: ``models/vevosing/README.md``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from fractions import Fraction

import numpy as np
import torch

# The optional speech recognizer is the ASR family's Whisper model, shared.
from models.asr.whisper import WHISPER_FILES as ASR_FILES
from models.asr.whisper import Transcript, WhisperTranscriber, transcriber_from
from models.audio.resample import to_rate
from models.core.stages import ProgressFn, run_inline
from models.text import G2P
# Vevo1.5 reuses Vevo's models: the AR transformer, the AR / FM configs and the FM's defaults, the
# mel front end and the Vocos vocoder.
from models.vevo.ar_transformer import ContentStyleAR, build_ar_model, load_ar_model
from models.vevo.flow_matching import DEFAULT_CFG, DEFAULT_RESCALE_CFG, DEFAULT_STEPS
from models.vevo.fm_ar_configs import VevoSingARConfig, tiny_vevosing_ar_config, tiny_vevosing_fm_config
from models.vevo.mel import VevoMel
from models.vevo.vocoder import VevoVocoder, build_vocoder, load_vocoder
from models.vevosing.chromagram import Chromagram
from models.vevosing.flow_matching import VevoSingFlowMatching, build_vevosing_fm_model, load_vevosing_fm_model
from models.vevosing.official import OFFICIAL_FILES
from models.vevosing.orchestration import (  # noqa: F401  (re-exported: the pipeline's public names)
    AR_MAX_LENGTH,
    AR_MIN_NEW_TOKENS,
    AR_PROGRESS_EVERY,
    AR_TEMPERATURE,
    AR_TOP_K,
    AR_TOP_P,
    HOP,
    MODES,
    SAMPLE_RATE,
    STAGES,
    DEFAULT_MAX_SOURCE_SECONDS,
    FM_STEPS,
    USE_SHIFTED_SRC,
    InlineStages,
    InputTooLongError,
    LocalStages,
    UnsupportedLanguageError,
    VevoSingInputError,
    VevoSingOrchestrator,
    mono_audio,
)
from models.vevosing.tokenizers import CocoTokenizer, build_coco_tokenizer, load_coco_tokenizer, tiny_coco_config
from models.vevosing.whisper_features import (
    WHISPER_STATS_FILE,
    WhisperFeatures,
    build_whisper_features,
    load_whisper_features,
)
from models.weights import WEIGHTS_MODES, ResolvedWeights, resolve
from models.weights import resolve_parts as resolve_pipeline_parts

__all__ = [
    "DEFAULT_PARTS",
    "MODES",
    "PARTS",
    "SAMPLE_RATE",
    "STAGES",
    "VARIANTS",
    "InputTooLongError",
    "UnsupportedLanguageError",
    "VevoSingInputError",
    "VevoSingPipeline",
    "pitch_shift",
    "resolve_parts",
]

#: What :meth:`VevoSingPipeline.from_weights` can load (``parts``): each model component (one deployment
#: each when served), the G2P and the speech recognizer.
PARTS = ("content_style", "prosody", "ar", "fm", "vocoder", "g2p", "asr")
#: What it loads by default: everything but the speech recognizer (served by the shared ASR deployment).
DEFAULT_PARTS = ("content_style", "prosody", "ar", "fm", "vocoder", "g2p")
#: The AR / FM training-data variants of amphion/Vevo1.5 (the reference's scripts use singnet7k).
VARIANTS = ("singnet7k", "sing0.4k")

#: What Whisper (features and speech recognition) hears.
WHISPER_SAMPLE_RATE = 16000
#: librosa's ``effects.pitch_shift`` / ``time_stretch`` STFT.
SHIFT_N_FFT = 2048
SHIFT_HOP = 512
#: Largest denominator of the stretch ratio's fraction: the resampling kernel stays small.
SHIFT_MAX_DENOMINATOR = 128


def _part_files(variant: str) -> dict[str, tuple[str, ...]]:
    """The :data:`OFFICIAL_FILES` entries each model part needs."""
    return {
        "content_style": ("whisper", "whisper_stats", "contentstyle_tokenizer"),
        "prosody": ("prosody_tokenizer",),
        "ar": (f"ar_{variant}",),
        "fm": (f"fm_{variant}",),
        "vocoder": ("vocoder",),
    }


def resolve_parts(
    mode: str,
    parts: Sequence[str] = DEFAULT_PARTS,
    *,
    variant: str = "singnet7k",
    cache_dir: str | os.PathLike | None = None,
    local_dirs: Mapping[str, str | os.PathLike] | None = None,
) -> tuple[str, dict[str, ResolvedWeights], str]:
    """``(kind, found, note)`` for the model ``parts``: ``kind`` ``"pretrained"`` (``found``: the
    resolved files of those parts, by :data:`OFFICIAL_FILES` key) or ``"tiny"``.

    Separately loaded parts must never be mixed, so ``"auto"`` looks for EVERY model component's
    official files (of ``variant``; on this machine only, no network) and goes tiny as soon as one is
    missing, whichever parts are asked for: every deployment then comes to the same answer.
    ``"pretrained"`` resolves (and may download) only the parts' own files; WeightsUnavailable when
    one is missing.
    """
    if mode not in WEIGHTS_MODES:
        raise ValueError(f"unknown weights mode {mode!r}; expected one of {', '.join(WEIGHTS_MODES)}")
    if variant not in VARIANTS:
        raise ValueError(f"unknown Vevo1.5 variant {variant!r}; expected one of {', '.join(VARIANTS)}")
    return resolve_pipeline_parts(mode, OFFICIAL_FILES, _part_files(variant), parts, cache_dir=cache_dir,
                                  local_dirs=local_dirs)


def _load_parts(parts: Sequence[str], found: Mapping[str, ResolvedWeights] | None, *, variant: str, seed: int,
                device, dtype: torch.dtype) -> dict:
    """The model components of ``parts``: tiny (``found`` None; every part from the same tiny config
    functions and seeds, so separately built parts fit together) or the official files. ``dtype``
    applies to the Whisper encoder, the AR and the FM; the tokenizers and the vocoder stay float32."""
    out: dict = {}
    if "content_style" in parts or "prosody" in parts:
        out["chromagram"] = Chromagram()
    if "vocoder" in parts:
        out["mel_frontend"] = VevoMel()
    if found is None:
        if "content_style" in parts:
            whisper = build_whisper_features(seed=seed, device=device)
            whisper.encoder.to(dtype=dtype)
            out["whisper_features"] = whisper
            out["contentstyle_tokenizer"] = build_coco_tokenizer(tiny_coco_config("content_style", whisper.dim),
                                                                 seed=seed + 1, device=device)
        if "prosody" in parts:
            out["prosody_tokenizer"] = build_coco_tokenizer(tiny_coco_config("style"), seed=seed + 2, device=device)
        if "ar" in parts:
            out["ar"] = build_ar_model(tiny_vevosing_ar_config(), seed=seed + 3, device=device, dtype=dtype)
        if "fm" in parts:
            out["fm"] = build_vevosing_fm_model(tiny_vevosing_fm_config(), seed=seed + 4, device=device, dtype=dtype)
        if "vocoder" in parts:
            out["vocoder"] = build_vocoder(seed=seed + 5, device=device)
        return out

    def root(key: str):
        return found[key].root

    if "content_style" in parts:
        out["whisper_features"] = load_whisper_features(root("whisper"), root("whisper_stats") / WHISPER_STATS_FILE,
                                                        device=device, dtype=dtype)
        out["contentstyle_tokenizer"] = load_coco_tokenizer(root("contentstyle_tokenizer"), "content_style",
                                                            device=device)
    if "prosody" in parts:
        out["prosody_tokenizer"] = load_coco_tokenizer(root("prosody_tokenizer"), "style", device=device)
    if "ar" in parts:
        out["ar"] = load_ar_model(root(f"ar_{variant}"), checkpoint=f"ar_emilia101k_{variant}", device=device,
                                  dtype=dtype)
    if "fm" in parts:
        out["fm"] = load_vevosing_fm_model(root(f"fm_{variant}"), checkpoint=f"fm_emilia101k_{variant}",
                                           device=device, dtype=dtype)
    if "vocoder" in parts:
        out["vocoder"] = load_vocoder(root("vocoder"), device=device)
    return out


def pitch_shift(wav: torch.Tensor, sample_rate: int, semitones: int) -> torch.Tensor:
    """``wav`` ``[L]`` shifted by ``semitones`` (same length; librosa's ``effects.pitch_shift`` recipe,
    see :mod:`models.vevosing.orchestration`): time-stretched by ``2 ** (-semitones / 12)`` with a phase
    vocoder, then resampled back to ``L`` samples."""
    import torchaudio.functional as AF

    if semitones == 0:
        return wav
    length = wav.shape[-1]
    rate = 2.0 ** (-semitones / 12.0)
    window = torch.hann_window(SHIFT_N_FFT, device=wav.device, dtype=wav.dtype)
    spec = torch.stft(wav, SHIFT_N_FFT, SHIFT_HOP, window=window, center=True, pad_mode="constant",
                      return_complex=True)
    advance = torch.linspace(0, math.pi * SHIFT_HOP, SHIFT_N_FFT // 2 + 1, device=wav.device, dtype=wav.dtype)
    stretched = AF.phase_vocoder(spec, rate, advance[:, None])
    slowed = torch.istft(stretched, SHIFT_N_FFT, SHIFT_HOP, window=window, length=int(round(length / rate)))
    # Playing the stretched audio ``1 / rate`` times faster restores the length and moves the pitch.
    ratio = Fraction(rate).limit_denominator(SHIFT_MAX_DENOMINATOR)
    shifted = AF.resample(slowed, ratio.denominator, ratio.numerator)
    if shifted.shape[-1] >= length:
        return shifted[..., :length]
    return torch.nn.functional.pad(shifted, (0, length - shifted.shape[-1]))


class VevoSingPipeline:
    """The Vevo1.5 components, the G2P and (optionally) a speech recognizer. Build with
    :meth:`from_weights`; run :meth:`convert`.

    A pipeline may hold only some parts (``from_weights(..., parts=...)``, what a component deployment
    loads): the stage methods of the parts it holds work, the others raise.
    """

    def __init__(
        self,
        *,
        whisper_features: WhisperFeatures | None = None,
        contentstyle_tokenizer: CocoTokenizer | None = None,
        prosody_tokenizer: CocoTokenizer | None = None,
        chromagram: Chromagram | None = None,
        ar: ContentStyleAR | None = None,
        fm: VevoSingFlowMatching | None = None,
        vocoder: VevoVocoder | None = None,
        mel_frontend: VevoMel | None = None,
        g2p: G2P | None = None,
        transcriber: WhisperTranscriber | None = None,
        device: str | torch.device = "cpu",
        weights_kind: str = "custom",
        note: str = "",
        max_source_seconds: float | None = DEFAULT_MAX_SOURCE_SECONDS,
    ) -> None:
        if (whisper_features is None) != (contentstyle_tokenizer is None):
            raise ValueError("the Whisper features and the content-style tokenizer go together")
        if (whisper_features is not None or prosody_tokenizer is not None) and chromagram is None:
            chromagram = Chromagram()
        if vocoder is not None and mel_frontend is None:
            mel_frontend = VevoMel()
        self.whisper_features = whisper_features
        self.contentstyle_tokenizer = contentstyle_tokenizer
        self.prosody_tokenizer = prosody_tokenizer
        self.chromagram = chromagram
        self.ar = ar
        self.fm = fm
        self.vocoder = vocoder
        self.mel_frontend = mel_frontend
        self.g2p = g2p
        self.transcriber = transcriber
        self.device = torch.device(device)
        self.weights_kind = weights_kind
        """``"pretrained"``, ``"tiny"`` or ``"custom"`` (built by hand)."""
        self.note = note
        """Where the weights come from; user-safe."""
        self.max_source_seconds = max_source_seconds
        self._check_consistency()

    @property
    def parts(self) -> tuple[str, ...]:
        """The parts this pipeline holds (see :data:`PARTS`)."""
        held = {"content_style": self.contentstyle_tokenizer, "prosody": self.prosody_tokenizer, "ar": self.ar,
                "fm": self.fm, "vocoder": self.vocoder, "g2p": self.g2p, "asr": self.transcriber}
        return tuple(p for p in PARTS if held[p] is not None)

    def _part(self, part: str) -> None:
        if part not in self.parts:
            raise RuntimeError(f"this VevoSing pipeline was built without its {part!r} part "
                               f"(it holds: {', '.join(self.parts) or 'nothing'})")

    def _check_consistency(self) -> None:
        cs, pro, ar, fm = self.contentstyle_tokenizer, self.prosody_tokenizer, self.ar, self.fm
        problems = []
        if cs is not None:
            if cs.config.coco_type != "content_style" or cs.config.whisper_dim != self.whisper_features.dim:
                problems.append(f"the content-style tokenizer ({cs.config.coco_type}, Whisper width "
                                f"{cs.config.whisper_dim}) does not read the Whisper features (width "
                                f"{self.whisper_features.dim})")
            if cs.config.downsample_rate != 4:
                problems.append(f"the content-style tokenizer must run at 12.5 Hz (rate 4), not "
                                f"{cs.config.downsample_rate}")
        if pro is not None and (pro.config.coco_type != "style" or pro.config.downsample_rate != 8):
            problems.append("the prosody tokenizer must be a Coco style tokenizer at 6.25 Hz (rate 8)")
        if ar is not None and not isinstance(ar.config, VevoSingARConfig):
            problems.append("the AR model is not a Vevo1.5 AR (content, style and content-style streams)")
        if ar is not None and isinstance(ar.config, VevoSingARConfig):
            if cs is not None and ar.config.content_style_vocab_size != cs.config.codebook_size:
                problems.append(f"the AR makes {ar.config.content_style_vocab_size} content-style ids, the "
                                f"tokenizer {cs.config.codebook_size}")
            if pro is not None and ar.config.style_vocab_size != pro.config.codebook_size:
                problems.append(f"the AR reads {ar.config.style_vocab_size} style ids, the prosody tokenizer "
                                f"makes {pro.config.codebook_size}")
            if fm is not None and ar.config.content_style_vocab_size != fm.config.cond_codebook_size:
                problems.append(f"the AR makes {ar.config.content_style_vocab_size} ids, the FM reads "
                                f"{fm.config.cond_codebook_size}")
        if fm is not None:
            if fm.config.cond_scale_factor != 4:
                problems.append(f"the FM must upsample 12.5 Hz ids to 50 Hz (factor 4), not "
                                f"{fm.config.cond_scale_factor}")
            if cs is not None and fm.config.cond_codebook_size != cs.config.codebook_size:
                problems.append(f"the FM reads {fm.config.cond_codebook_size} ids, the tokenizer makes "
                                f"{cs.config.codebook_size}")
        if self.vocoder is not None:
            mel = self.mel_frontend.config
            if self.vocoder.n_mels != mel.num_mels or self.vocoder.config.hop_size != HOP or mel.hop_size != HOP \
                    or mel.sample_rate != SAMPLE_RATE:
                problems.append(f"the vocoder ({self.vocoder.n_mels} mels, hop {self.vocoder.config.hop_size}) "
                                f"and the mel ({mel.num_mels} mels, hop {mel.hop_size}, {mel.sample_rate} Hz) must "
                                f"be {SAMPLE_RATE} Hz with hop {HOP}")
            if fm is not None and fm.mel_dim != self.vocoder.n_mels:
                problems.append(f"the FM makes {fm.mel_dim} mels, the vocoder reads {self.vocoder.n_mels}")
        if problems:
            raise ValueError("VevoSing components do not fit together: " + "; ".join(problems))

    # ------------------------------------------------------------------------------------------
    # construction

    @classmethod
    def from_weights(
        cls,
        mode: str = "auto",
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        *,
        parts: Sequence[str] | None = None,
        variant: str = "singnet7k",
        g2p_data: str | os.PathLike | G2P | None = None,
        cache_dir: str | os.PathLike | None = None,
        local_dirs: Mapping[str, str | os.PathLike] | None = None,
        seed: int = 0,
        max_source_seconds: float | None = DEFAULT_MAX_SOURCE_SECONDS,
    ) -> "VevoSingPipeline":
        """Every component of ``parts`` through ``models.weights.resolve`` (``mode``: ``"pretrained"``,
        ``"tiny"`` or ``"auto"``; see the module docstring).

        ``parts``: see :data:`PARTS` (None: :data:`DEFAULT_PARTS`, everything but ``"asr"``).
        ``variant``: the AR and FM checkpoints (:data:`VARIANTS`). ``dtype`` applies to the Whisper
        encoder, the AR and the FM (the tokenizers, the vocoder and the ASR choose their own).
        ``g2p_data``: a :class:`~models.text.G2P` or its data folder (None: ``$AMPHION_G2P_DATA``).
        ``local_dirs``: :data:`~models.vevosing.official.OFFICIAL_FILES` key -> a folder laid out like its
        repo. ``seed`` seeds the tiny weights.
        """
        parts = DEFAULT_PARTS if parts is None else tuple(parts)
        unknown = set(parts) - set(PARTS)
        if unknown:
            raise ValueError(f"parts: unknown {sorted(unknown)}; known: {', '.join(PARTS)}")
        kind, found, note = resolve_parts(mode, parts, variant=variant, cache_dir=cache_dir, local_dirs=local_dirs)
        components = _load_parts(parts, found if kind == "pretrained" else None, variant=variant, seed=seed,
                                 device=device, dtype=dtype)
        g2p = None
        if "g2p" in parts:
            g2p = g2p_data if isinstance(g2p_data, G2P) else G2P(g2p_data)
        transcriber = None
        if "asr" in parts:
            transcriber = transcriber_from(resolve(ASR_FILES, mode, cache_dir=cache_dir), device=device)
        return cls(**components, g2p=g2p, transcriber=transcriber, device=device, weights_kind=kind, note=note,
                   max_source_seconds=max_source_seconds)

    # ------------------------------------------------------------------------------------------
    # properties

    @property
    def ar_length_bound(self) -> float | None:
        """The AR's cap on new tokens per expected source token, from its config (the tiny AR's 1.0;
        None: no cap beyond ``max_length``, or no AR here)."""
        return None if self.ar is None else self.ar.config.length_bound

    @property
    def sample_rate(self) -> int:
        """Input and output sample rate (24 kHz)."""
        return SAMPLE_RATE

    @property
    def hop_length(self) -> int:
        """Output samples per 50 Hz mel frame (480)."""
        return HOP

    # ------------------------------------------------------------------------------------------
    # stages

    def transcribe(self, wav24k: np.ndarray, language: str | None = None) -> Transcript:
        """Whisper ASR of (the first 30 s of) a 24 kHz recording; ``language`` None detects it."""
        self._part("asr")
        wav = mono_audio(wav24k, "the audio to transcribe")
        return self.transcriber.transcribe(to_rate(wav, SAMPLE_RATE, WHISPER_SAMPLE_RATE), language=language)

    @torch.inference_mode()
    def content_style_tokens(self, wav24k: np.ndarray, shift_semitones: int = 0) -> torch.Tensor:
        """A 24 kHz recording -> Coco content-style ids ``[ceil(ceil((L // 480) / 2) / 2)]`` (int64, 12.5 Hz):
        Whisper-medium features of its 16 kHz resampling and the 24-bin chromagram of the recording
        (pitch-shifted by ``shift_semitones`` first), both at ``L // 480`` frames (``extract_coco_codec``)."""
        self._part("content_style")
        wav = mono_audio(wav24k, "the 24 kHz recording")
        frames = wav.shape[0] // HOP
        if frames < 1:
            raise VevoSingInputError("the recording is too short for the content-style tokenizer")
        melody = wav
        if shift_semitones:
            melody = pitch_shift(torch.from_numpy(wav).to(self.device), SAMPLE_RATE, int(shift_semitones)).cpu().numpy()
        chroma = torch.from_numpy(self.chromagram(melody, frames)).unsqueeze(0)
        whisper = self.whisper_features([to_rate(wav, SAMPLE_RATE, WHISPER_SAMPLE_RATE)], [frames])
        codes, _ = self.contentstyle_tokenizer.tokenize(chroma, whisper)
        return codes.reshape(-1)

    @torch.inference_mode()
    def prosody_tokens(self, wav24k: np.ndarray) -> torch.Tensor:
        """A 24 kHz recording -> Coco style (prosody) ids ``[ceil((L // 480) / 8)]`` (int64, 6.25 Hz) of its
        chromagram."""
        self._part("prosody")
        wav = mono_audio(wav24k, "the 24 kHz recording")
        frames = wav.shape[0] // HOP
        if frames < 1:
            raise VevoSingInputError("the recording is too short for the prosody tokenizer")
        chroma = torch.from_numpy(self.chromagram(wav, frames)).unsqueeze(0)
        codes, _ = self.prosody_tokenizer.tokenize(chroma)
        return codes.reshape(-1)

    @torch.inference_mode()
    def mel(self, wav24k: np.ndarray) -> torch.Tensor:
        """A 24 kHz recording -> its normalised mel ``[L // 480, 128]`` (float32; the FM's prompt)."""
        self._part("vocoder")
        wav = mono_audio(wav24k, "the 24 kHz recording")
        if wav.shape[0] < self.mel_frontend.min_samples:
            raise VevoSingInputError("the recording is too short for the mel front end")
        x = torch.from_numpy(wav).to(self.device).view(1, -1)
        return self.mel_frontend(x)[0].float()

    @torch.inference_mode()
    def generate_content_style(
        self,
        phone_ids: torch.Tensor,
        style_ids: torch.Tensor,
        prompt_tokens: torch.Tensor,
        *,
        temperature: float = AR_TEMPERATURE,
        top_k: int = AR_TOP_K,
        top_p: float = AR_TOP_P,
        min_new_tokens: int = AR_MIN_NEW_TOKENS,
        max_length: int = AR_MAX_LENGTH,
        max_new_tokens: int | None = None,
        progress_every: int = AR_PROGRESS_EVERY,
        generator: torch.Generator | None = None,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> torch.Tensor:
        """The Vevo1.5 AR: content-style ids ``[M]`` continuing ``prompt_tokens`` ``[P]`` (the style
        reference's ids) for the phone ids ``[N]`` and the style (prosody) ids ``[S]``; sampled over the
        content-style ids and their EOS only. ``max_length`` bounds the whole sequence (the reference's
        2000), ``max_new_tokens`` (when given) the new ids. ``on_progress(done, limit)`` every
        ``progress_every`` ids and when decoding stops."""
        self._part("ar")
        device = self.ar.model.lm_head.weight.device

        def row(ids: torch.Tensor) -> torch.Tensor:
            return torch.as_tensor(ids, dtype=torch.long).reshape(1, -1).to(device)

        return self.ar.generate(
            row(phone_ids), row(prompt_tokens), style_ids=row(style_ids), temperature=temperature, top_k=top_k,
            top_p=top_p, min_new_tokens=min_new_tokens, max_length=max_length, max_new_tokens=max_new_tokens,
            output_only=True, generator=generator, on_progress=on_progress, progress_every=progress_every,
        ).reshape(-1)

    def flow_matching(
        self,
        codes: torch.Tensor,
        prompt_mel: torch.Tensor,
        *,
        target_frames: int | None = None,
        n_timesteps: int = DEFAULT_STEPS,
        cfg: float = DEFAULT_CFG,
        rescale_cfg: float = DEFAULT_RESCALE_CFG,
        generator: torch.Generator | None = None,
        on_step: Callable[[int, int], None] | None = None,
    ) -> torch.Tensor:
        """The FM: ids ``[K]`` = [timbre reference ‖ target] (12.5 Hz) and the reference's normalised mel
        ``[P, 128]`` -> the target's mel ``[T, 128]`` (float32): ``T = target_frames`` (the condition fitted
        to ``P + T``, ``inference_fm``), else ``4 K - P`` (``inference_ar_and_fm``). ``on_step(step, total)``
        after each Euler step."""
        self._part("fm")
        weight = self.fm.cond_emb.weight
        mel = self.fm.generate(
            torch.as_tensor(codes, dtype=torch.long).reshape(1, -1).to(weight.device),
            prompt_mel.reshape(1, -1, self.fm.mel_dim).to(weight.device, weight.dtype),
            target_frames=target_frames, n_timesteps=n_timesteps, cfg=cfg, rescale_cfg=rescale_cfg,
            generator=generator, on_step=on_step,
        )
        return mel[0].float()

    @torch.inference_mode()
    def vocode(self, mel: torch.Tensor) -> np.ndarray:
        """Normalised mel ``[T, 128]`` (or ``[1, T, 128]``) -> float32 waveform of ``T * 480`` samples at 24 kHz."""
        self._part("vocoder")
        mel = mel.reshape(1, -1, self.vocoder.n_mels)
        return self.vocoder.vocode(mel)[0].float().cpu().numpy()

    # ------------------------------------------------------------------------------------------
    # the whole thing

    def orchestrator(self) -> VevoSingOrchestrator:
        """The orchestration :meth:`convert` runs (the served pipeline runs the same one over its
        component deployments)."""
        return VevoSingOrchestrator(
            self.g2p, transcribes=self.transcriber is not None,
            ar_length_bound=self.ar_length_bound,
            max_source_seconds=self.max_source_seconds,
        )

    def convert(
        self,
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
    ) -> np.ndarray:
        """Sing ``source_wav_24k`` (mono, 24 kHz) with the voice of ``reference_wav_24k`` (mono, 24 kHz;
        its first 30 s are used). Returns float32 samples at 24 kHz.

        ``mode``: ``"fm"`` (timbre only; the output has the source's ``floor(samples / 480)`` frames)
        or ``"ar"`` (the lyrics re-sung on the source's melody in the reference's style and timbre).
        ``use_shifted_src`` (``"fm"``): shift the source to the reference's key before its melody
        features are taken. ``flow_matching_steps`` (1..128), ``cfg``, ``rescale_cfg``: the FM.
        ``"ar"`` only: ``lyrics`` (the source's words; None: transcribed) in ``language`` (``"auto"``:
        detected from the text, or Whisper's), ``reference_text`` (None: transcribed) in
        ``reference_language`` (None: as ``language``), AR sampling ``temperature``, ``top_k``, ``top_p``.
        ``seed``: same seed, same audio (None: torch's global RNG). ``on_progress(stage, step, total)``:
        see :data:`STAGES`; an exception it raises aborts the call.

        Raises :class:`VevoSingInputError` (user-safe message) for unusable inputs, before any model runs
        when no model is needed to tell.
        """
        stages = InlineStages(LocalStages(self), on_progress)
        return run_inline(self.orchestrator().convert(
            stages, source_wav_24k, reference_wav_24k, mode, use_shifted_src=use_shifted_src,
            flow_matching_steps=flow_matching_steps, lyrics=lyrics, language=language, reference_text=reference_text,
            reference_language=reference_language, seed=seed, on_progress=on_progress, cfg=cfg,
            rescale_cfg=rescale_cfg, temperature=temperature, top_k=top_k, top_p=top_p,
        ))
