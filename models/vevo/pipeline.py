"""Vevo end to end (amphion/Vevo): timbre, style and voice conversion, and TTS, 24 kHz in and out.

:class:`VevoPipeline` holds the components by part (``tokenizer``, ``ar_vc``, ``ar_tts``, ``fm``,
``vocoder``, ``g2p``; possibly only some) and runs one stage per method, numpy in and out, so that a
serving layer can put each part on its own deployment. The tasks (:meth:`~VevoPipeline.timbre`,
:meth:`~VevoPipeline.style`, :meth:`~VevoPipeline.voice`, :meth:`~VevoPipeline.tts`) run
:class:`~models.vevo.orchestration.VevoOrchestrator` over its own stages. ``ar_limits`` is its ARs'
own (from their configs).

:meth:`~VevoPipeline.from_weights` builds it from the official files (``"pretrained"``), small seeded
stand-ins (``"tiny"``) or whichever is on this machine (``"auto"``; never a mix). Parts, tasks and
weights: ``models/vevo/README.md``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch

from models.audio.resample import to_rate
from models.core.stages import ProgressFn, run_inline
from models.text import G2P
from models.vevo.ar_transformer import ContentStyleAR, build_ar_model, load_ar_model
from models.vevo.content_tokenizer import VevoRepCodec, build_content_tokenizer, load_content_tokenizer
from models.vevo.contentstyle_tokenizer import (
    HUBERT_STATS_FILE,
    VevoContentStyleTokenizer,
    build_contentstyle_tokenizer,
    load_contentstyle_tokenizer,
)
from models.vevo.flow_matching import VevoFlowMatching, build_fm_model, load_fm_model
from models.vevo.fm_ar_configs import AR_LIMITS, ARLimits, tiny_vevo_ar_config, tiny_vevo_fm_config
from models.vevo.hubert import HubertFeatures, build_hubert, load_hubert
from models.vevo.mel import VevoMel
from models.vevo.official import OFFICIAL_FILES
from models.vevo.orchestration import (  # noqa: F401  (re-exported: the pipeline's public names)
    AR_MAX_LENGTH,
    AR_MIN_NEW_TOKENS,
    AR_PROGRESS_EVERY,
    AR_TEMPERATURE,
    AR_TOP_K,
    AR_TOP_P,
    FM_CFG,
    FM_RESCALE_CFG,
    FM_STEPS,
    HOP,
    HUBERT_SAMPLE_RATE,
    SAMPLE_RATE,
    STAGES,
    AudioTooShortError,
    InlineStages,
    LocalStages,
    TranscribeFn,
    VevoInputError,
    VevoOrchestrator,
)
from models.vevo.vocoder import VevoVocoder, build_vocoder, load_vocoder
from models.weights import ResolvedWeights
from models.weights import resolve_parts as resolve_pipeline_parts

__all__ = [
    "PARTS",
    "PART_FILES",
    "SAMPLE_RATE",
    "STAGES",
    "VevoInputError",
    "VevoPipeline",
    "resolve_parts",
]

FRAME_RATE = SAMPLE_RATE // HOP
#: What the speech recogniser hears (Whisper).
ASR_SAMPLE_RATE = 16000
#: What :meth:`VevoPipeline.from_weights` can load (``parts``).
PARTS = ("tokenizer", "ar_vc", "ar_tts", "fm", "vocoder", "g2p")
#: The entries of :data:`OFFICIAL_FILES` each model part needs.
PART_FILES: dict[str, tuple[str, ...]] = {
    "tokenizer": ("hubert", "hubert_stats", "content_tokenizer", "contentstyle_tokenizer"),
    "ar_vc": ("ar_vc",),
    "ar_tts": ("ar_tts",),
    "fm": ("fm",),
    "vocoder": ("vocoder",),
}
#: The parts each task needs.
TASK_PARTS: dict[str, tuple[str, ...]] = {
    "timbre": ("tokenizer", "fm", "vocoder"),
    "style": ("tokenizer", "ar_vc", "fm", "vocoder"),
    "voice": ("tokenizer", "ar_vc", "fm", "vocoder"),
    "tts": ("tokenizer", "ar_tts", "fm", "vocoder", "g2p"),
}


def resolve_parts(
    mode: str,
    parts: Sequence[str] = tuple(PART_FILES),
    *,
    cache_dir: str | os.PathLike | None = None,
    local_dirs: Mapping[str, str | os.PathLike] | None = None,
) -> tuple[str, dict[str, ResolvedWeights], str]:
    """``(kind, found, note)`` for the model ``parts``: ``kind`` ``"pretrained"`` (``found``: the
    resolved files of those parts, by :data:`OFFICIAL_FILES` key) or ``"tiny"``.

    ``"auto"`` looks for EVERY entry's official files (on this machine only) and goes tiny as soon
    as one is missing, whichever parts are asked for, so that every deployment of the pipeline
    comes to the same answer. ``"pretrained"`` resolves (and may download) only the parts' own
    files; WeightsUnavailable when one is missing. ``local_dirs``: entry key -> a folder laid out
    like its repo."""
    return resolve_pipeline_parts(mode, OFFICIAL_FILES, PART_FILES, parts, cache_dir=cache_dir, local_dirs=local_dirs)


def _load_parts(parts: Sequence[str], found: Mapping[str, ResolvedWeights] | None, *, seed: int, device,
                dtype: torch.dtype) -> dict:
    """The components of ``parts``: tiny (``found`` None; fixed seeds per component, so separately
    built parts fit together) or the official files. ``dtype`` applies to the AR and FM models."""
    out: dict = {}
    if found is None:
        if "tokenizer" in parts:
            out["hubert"] = build_hubert(seed=seed, device=device)
            out["content_tokenizer"] = build_content_tokenizer(seed=seed + 1, device=device)
            out["contentstyle_tokenizer"] = build_contentstyle_tokenizer(seed=seed + 2, device=device)
        if "ar_vc" in parts:
            out["ar_vc"] = build_ar_model(tiny_vevo_ar_config("Vq32ToVq8192"), seed=seed + 3, device=device,
                                          dtype=dtype)
        if "ar_tts" in parts:
            out["ar_tts"] = build_ar_model(tiny_vevo_ar_config("PhoneToVq8192"), seed=seed + 4, device=device,
                                           dtype=dtype)
        if "fm" in parts:
            out["fm"] = build_fm_model(tiny_vevo_fm_config(), seed=seed + 5, device=device, dtype=dtype)
        if "vocoder" in parts:
            out["vocoder"] = build_vocoder(seed=seed + 6, device=device)
        return out

    def root(key: str):
        return found[key].root

    if "tokenizer" in parts:
        out["hubert"] = load_hubert(root("hubert"), device=device)
        out["content_tokenizer"] = load_content_tokenizer(root("content_tokenizer"), device=device)
        out["contentstyle_tokenizer"] = load_contentstyle_tokenizer(
            root("contentstyle_tokenizer"), found["hubert_stats"].file(HUBERT_STATS_FILE), device=device)
    if "ar_vc" in parts:
        out["ar_vc"] = load_ar_model(root("ar_vc"), checkpoint="Vq32ToVq8192", device=device, dtype=dtype)
    if "ar_tts" in parts:
        out["ar_tts"] = load_ar_model(root("ar_tts"), checkpoint="PhoneToVq8192", device=device, dtype=dtype)
    if "fm" in parts:
        out["fm"] = load_fm_model(root("fm"), device=device, dtype=dtype)
    if "vocoder" in parts:
        out["vocoder"] = load_vocoder(root("vocoder"), device=device)
    return out


def _samples(wav, what: str, minimum: int) -> torch.Tensor:
    arr = np.ascontiguousarray(np.asarray(wav, dtype=np.float32).reshape(-1))
    if arr.size < minimum:
        raise AudioTooShortError(f"{what} is too short: {arr.size} samples, at least {minimum} needed")
    return torch.from_numpy(arr)


class VevoPipeline:
    """Vevo's components, the G2P and (optionally) a speech recogniser. Build with
    :meth:`from_weights`; run :meth:`timbre`, :meth:`style`, :meth:`voice` or :meth:`tts`.

    A pipeline may hold only some parts (``from_weights(..., parts=...)``): the stage methods of
    the parts it holds work, the others raise. ``transcriber``: an object with
    ``transcribe(wav16k) -> Transcript`` (:class:`models.asr.whisper.WhisperTranscriber`), used by
    :meth:`tts` in ``"ar"`` mode when no reference text is given.
    """

    def __init__(
        self,
        *,
        hubert: HubertFeatures | None = None,
        content_tokenizer: VevoRepCodec | None = None,
        contentstyle_tokenizer: VevoContentStyleTokenizer | None = None,
        ar_vc: ContentStyleAR | None = None,
        ar_tts: ContentStyleAR | None = None,
        fm: VevoFlowMatching | None = None,
        vocoder: VevoVocoder | None = None,
        g2p: G2P | None = None,
        transcriber=None,
        mel: VevoMel | None = None,
        device: str | torch.device = "cpu",
        weights_kind: str = "custom",
        note: str = "",
        ar_limits: ARLimits | None = None,
    ) -> None:
        tokenizer = (hubert, content_tokenizer, contentstyle_tokenizer)
        if any(c is None for c in tokenizer) and any(c is not None for c in tokenizer):
            raise ValueError("HuBERT and the two tokenizers go together (the 'tokenizer' part)")
        self.hubert = hubert
        self.content_tokenizer = content_tokenizer
        self.contentstyle_tokenizer = contentstyle_tokenizer
        self.ar_vc = ar_vc
        self.ar_tts = ar_tts
        self.fm = fm
        self.vocoder = vocoder
        self.g2p = g2p
        self.transcriber = transcriber
        self.mel_frontend = VevoMel() if mel is None else mel
        self.device = torch.device(device)
        self.weights_kind = weights_kind
        """``"pretrained"``, ``"tiny"`` or ``"custom"`` (built by hand)."""
        self.note = note
        """Where the weights come from; user-safe."""
        self.ar_limits: ARLimits | None = ar_limits if ar_limits is not None else self._held_ar_limits()
        """How long the AR may run: the AR models' own (their configs'), unless given; None without an AR."""
        self._check_consistency()

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
        g2p_data: str | os.PathLike | G2P | None = None,
        transcriber=None,
        cache_dir: str | os.PathLike | None = None,
        local_dirs: Mapping[str, str | os.PathLike] | None = None,
        seed: int = 0,
    ) -> "VevoPipeline":
        """Every part of ``parts`` (default: all of :data:`PARTS`) through ``models.weights.resolve``
        (``mode``: ``"pretrained"``, ``"tiny"`` or ``"auto"``, see :func:`resolve_parts`).

        ``dtype`` applies to the AR and FM models; HuBERT, the tokenizers and the vocoder stay
        float32. ``g2p_data``: a :class:`~models.text.G2P` or its data folder (None:
        ``$AMPHION_G2P_DATA``); only read when ``"g2p"`` is among the parts. ``local_dirs``:
        :data:`OFFICIAL_FILES` key -> a folder laid out like its repo. ``seed`` seeds the tiny weights.
        """
        parts = PARTS if parts is None else tuple(parts)
        unknown = set(parts) - set(PARTS)
        if unknown:
            raise ValueError(f"parts: unknown {sorted(unknown)}; known: {', '.join(PARTS)}")
        kind, found, note = resolve_parts(mode, parts, cache_dir=cache_dir, local_dirs=local_dirs)
        g2p = None
        if "g2p" in parts:
            g2p = g2p_data if isinstance(g2p_data, G2P) else G2P(g2p_data)
        components = _load_parts(parts, found if kind == "pretrained" else None, seed=seed, device=device,
                                 dtype=dtype)
        return cls(**components, g2p=g2p, transcriber=transcriber, device=device, weights_kind=kind, note=note)

    @property
    def parts(self) -> tuple[str, ...]:
        """The parts this pipeline holds (see :data:`PARTS`)."""
        held = {"tokenizer": self.hubert, "ar_vc": self.ar_vc, "ar_tts": self.ar_tts, "fm": self.fm,
                "vocoder": self.vocoder, "g2p": self.g2p}
        return tuple(p for p in PARTS if held[p] is not None)

    def _part(self, *parts: str) -> None:
        missing = [p for p in parts if p not in self.parts]
        if missing:
            raise RuntimeError(f"this Vevo pipeline was built without its {', '.join(map(repr, missing))} part "
                               f"(it holds: {', '.join(self.parts) or 'nothing'})")

    def _held_ar_limits(self) -> ARLimits | None:
        held = [ar.config.limits for ar in (self.ar_vc, self.ar_tts) if ar is not None]
        return held[0] if held else None

    def _check_consistency(self) -> None:
        problems = []
        if self.ar_vc is not None and self.ar_tts is not None and self.ar_vc.config.limits != self.ar_tts.config.limits:
            problems.append("ar_vc and ar_tts carry different AR limits (one tiny, one official?)")
        mel = self.mel_frontend
        if mel.sample_rate != SAMPLE_RATE or mel.hop_size != HOP:
            problems.append(f"the mel runs at {mel.sample_rate} Hz with hop {mel.hop_size}, "
                            f"expected {SAMPLE_RATE} Hz and {HOP}")
        n_mels = mel.config.num_mels
        codebooks = []
        if self.hubert is not None:
            dims = {self.hubert.dim, self.content_tokenizer.feature_dim, self.contentstyle_tokenizer.feature_dim}
            if len(dims) != 1:
                problems.append(f"HuBERT ({self.hubert.dim}-d) and the tokenizers "
                                f"({self.content_tokenizer.feature_dim}-d, {self.contentstyle_tokenizer.feature_dim}-d) "
                                f"disagree on the feature width")
            if self.hubert.sample_rate != HUBERT_SAMPLE_RATE:
                problems.append(f"HuBERT runs at {self.hubert.sample_rate} Hz, expected {HUBERT_SAMPLE_RATE}")
            codebooks.append(("the vq8192 tokenizer", self.contentstyle_tokenizer.codebook_size))
            if self.ar_vc is not None and self.ar_vc.config.vc_input_vocab_size != self.content_tokenizer.codebook_size:
                problems.append(f"ar_vc reads {self.ar_vc.config.vc_input_vocab_size} content ids, "
                                f"the vq32 tokenizer makes {self.content_tokenizer.codebook_size}")
        for name, ar in (("ar_vc", self.ar_vc), ("ar_tts", self.ar_tts)):
            if ar is not None:
                codebooks.append((name, ar.config.output_vocab_size))
        if self.fm is not None:
            codebooks.append(("fm", self.fm.config.cond_codebook_size))
            if self.fm.mel_dim != n_mels:
                problems.append(f"fm makes {self.fm.mel_dim}-bin mels, the mel front end {n_mels}")
        if self.vocoder is not None:
            if self.vocoder.n_mels != n_mels:
                problems.append(f"the vocoder reads {self.vocoder.n_mels}-bin mels, the mel front end makes {n_mels}")
            if self.vocoder.config.hop_size != HOP:
                problems.append(f"the vocoder's hop is {self.vocoder.config.hop_size}, expected {HOP}")
        if len({size for _, size in codebooks}) > 1:
            problems.append("content-style codebooks differ: " + ", ".join(f"{n} {s}" for n, s in codebooks))
        if self.ar_tts is not None and self.g2p is not None and len(self.g2p.vocab) > self.ar_tts.config.input_vocab_size:
            problems.append(f"the G2P has {len(self.g2p.vocab)} phones, ar_tts reads "
                            f"{self.ar_tts.config.input_vocab_size}")
        if problems:
            raise ValueError("Vevo components do not fit together: " + "; ".join(problems))

    # ------------------------------------------------------------------------------------------
    # facts

    @property
    def sample_rate(self) -> int:
        """Input and output sample rate (24 kHz)."""
        return SAMPLE_RATE

    @property
    def frame_rate(self) -> int:
        """Tokens and mel frames per second (50)."""
        return FRAME_RATE

    @property
    def hop_length(self) -> int:
        """Output samples per frame (480)."""
        return HOP

    @property
    def codebook_size(self) -> int:
        """The content-style (vq8192) codebook size."""
        for model, size in ((self.fm, lambda m: m.config.cond_codebook_size),
                            (self.contentstyle_tokenizer, lambda m: m.codebook_size),
                            (self.ar_vc, lambda m: m.config.output_vocab_size),
                            (self.ar_tts, lambda m: m.config.output_vocab_size)):
            if model is not None:
                return int(size(model))
        return 8192

    # ------------------------------------------------------------------------------------------
    # stages

    @torch.inference_mode()
    def _hubert(self, wav16k) -> tuple[torch.Tensor, torch.Tensor]:
        self._part("tokenizer")
        wav = _samples(wav16k, "the 16 kHz audio", self.hubert.min_samples).to(self.hubert.device)
        return self.hubert(wav.view(1, -1))

    @torch.inference_mode()
    def content_tokens(self, wav16k: np.ndarray) -> np.ndarray:
        """Mono 16 kHz audio -> vq32 content ids int64 [N] (consecutive repeats collapsed)."""
        feats, lengths = self._hubert(wav16k)
        tokens = self.content_tokenizer.tokenize(feats, lengths)
        return tokens.reduced[0, : tokens.reduced_lengths[0]].cpu().numpy()

    @torch.inference_mode()
    def contentstyle_tokens(self, wav16k: np.ndarray) -> np.ndarray:
        """Mono 16 kHz audio -> vq8192 content-style ids int64 [T] at 50 Hz."""
        feats, lengths = self._hubert(wav16k)
        codes, _ = self.contentstyle_tokenizer.tokenize(feats)
        return codes[0, : int(lengths[0])].cpu().numpy()

    @torch.inference_mode()
    def mel(self, wav24k: np.ndarray) -> np.ndarray:
        """Mono 24 kHz audio -> the normalised mel float32 [L // 480, 128] (FM prompt, vocoder input)."""
        wav = _samples(wav24k, "the 24 kHz audio", self.mel_frontend.min_samples).to(self.device)
        return self.mel_frontend(wav.view(1, -1))[0].float().cpu().numpy()

    @torch.inference_mode()
    def content_style(
        self,
        task: str,
        input_ids: np.ndarray,
        prompt_ids: np.ndarray,
        *,
        max_new_tokens: int | None = None,
        max_length: int = AR_MAX_LENGTH,
        temperature: float = AR_TEMPERATURE,
        top_k: int = AR_TOP_K,
        top_p: float = AR_TOP_P,
        min_new_tokens: int = AR_MIN_NEW_TOKENS,
        output_only: bool = False,
        generator: torch.Generator | None = None,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> np.ndarray:
        """The AR stage: ``task`` ``"vc"`` (Vq32ToVq8192; ``input_ids`` vq32 ids, shifted here by the
        model's VC offset) or ``"tts"`` (PhoneToVq8192; phone ids); ``prompt_ids`` the style
        reference's vq8192 ids (may be empty). Returns the generated ids int64 [T].
        ``on_progress(done, limit)`` every :data:`AR_PROGRESS_EVERY` tokens and at the end."""
        if task not in ("vc", "tts"):
            raise ValueError(f"task must be 'vc' or 'tts', got {task!r}")
        self._part(f"ar_{task}")
        model = self.ar_vc if task == "vc" else self.ar_tts
        device = model.model.lm_head.weight.device
        ids = torch.as_tensor(np.asarray(input_ids, dtype=np.int64), device=device).view(1, -1)
        if task == "vc":
            ids = ids + model.config.vc_input_ids_offset
        prompt = torch.as_tensor(np.asarray(prompt_ids, dtype=np.int64), device=device).view(1, -1)
        out = model.generate(ids, prompt, temperature=temperature, top_k=top_k, top_p=top_p,
                             min_new_tokens=min_new_tokens, max_length=max_length, max_new_tokens=max_new_tokens,
                             output_only=output_only, generator=generator, on_progress=on_progress,
                             progress_every=AR_PROGRESS_EVERY)
        return out[0].cpu().numpy()

    @torch.inference_mode()
    def flow_matching(
        self,
        codes: np.ndarray,
        prompt_mel: np.ndarray,
        *,
        n_timesteps: int = FM_STEPS,
        cfg: float = FM_CFG,
        rescale_cfg: float = FM_RESCALE_CFG,
        generator: torch.Generator | None = None,
        on_step: Callable[[int, int], None] | None = None,
    ) -> np.ndarray:
        """The FM stage: ``codes`` int64 [P + T] (timbre reference ‖ target, vq8192) and the timbre
        reference's normalised mel float32 [P, 128] -> the target's mel float32 [T, 128].
        ``on_step(step, n_timesteps)`` after each Euler step."""
        self._part("fm")
        device = self.fm.cond_emb.weight.device
        codes_t = torch.as_tensor(np.asarray(codes, dtype=np.int64), device=device).view(1, -1)
        prompt = torch.as_tensor(np.asarray(prompt_mel, dtype=np.float32), device=device)
        mel = self.fm.generate(codes_t, prompt.view(1, -1, self.fm.mel_dim), n_timesteps=n_timesteps, cfg=cfg,
                               rescale_cfg=rescale_cfg, generator=generator, on_step=on_step)
        return mel[0].float().cpu().numpy()

    @torch.inference_mode()
    def vocode(self, mel: np.ndarray) -> np.ndarray:
        """Normalised mel float32 [T, 128] -> float32 audio [T * 480] at 24 kHz."""
        self._part("vocoder")
        mel_t = torch.as_tensor(np.asarray(mel, dtype=np.float32)).view(1, -1, self.vocoder.n_mels)
        return self.vocoder.vocode(mel_t)[0].float().cpu().numpy()

    # ------------------------------------------------------------------------------------------
    # the tasks

    def orchestrator(self) -> VevoOrchestrator:
        """The orchestration the tasks run (the same one the served pipeline runs over its
        component deployments)."""
        limits = AR_LIMITS if self.ar_limits is None else self.ar_limits  # no AR here: unused
        return VevoOrchestrator(self.g2p, ar_limits=limits, codebook_size=self.codebook_size)

    def _stages(self, task: str, on_progress: ProgressFn | None) -> InlineStages:
        self._part(*TASK_PARTS[task])
        return InlineStages(LocalStages(self), on_progress)

    def timbre(self, source_wav_24k: np.ndarray, reference_wav_24k: np.ndarray, *,
               flow_matching_steps: int = FM_STEPS, cfg: float = FM_CFG, rescale_cfg: float = FM_RESCALE_CFG,
               seed: int | None = None, on_progress: ProgressFn | None = None) -> np.ndarray:
        """Timbre conversion (``/api/vc/vevo-timbre``): FM only. float32 24 kHz audio of the source's
        length rounded down to a whole 480-sample frame. ``flow_matching_steps`` in 1..128."""
        return run_inline(self.orchestrator().timbre(
            self._stages("timbre", on_progress), source_wav_24k, reference_wav_24k,
            flow_matching_steps=flow_matching_steps, cfg=cfg, rescale_cfg=rescale_cfg, seed=seed,
            on_progress=on_progress))

    def style(self, source_wav_24k: np.ndarray, reference_wav_24k: np.ndarray, *,
              flow_matching_steps: int = FM_STEPS, cfg: float = FM_CFG, rescale_cfg: float = FM_RESCALE_CFG,
              temperature: float = AR_TEMPERATURE, top_k: int = AR_TOP_K, top_p: float = AR_TOP_P,
              seed: int | None = None, on_progress: ProgressFn | None = None) -> np.ndarray:
        """Style conversion (``/api/vc/vevo-style``): the reference's style, the source's timbre."""
        return run_inline(self.orchestrator().style(
            self._stages("style", on_progress), source_wav_24k, reference_wav_24k,
            flow_matching_steps=flow_matching_steps, cfg=cfg, rescale_cfg=rescale_cfg, temperature=temperature,
            top_k=top_k, top_p=top_p, seed=seed, on_progress=on_progress))

    def voice(self, source_wav_24k: np.ndarray, reference_wav_24k: np.ndarray, mode: str = "ar", *,
              flow_matching_steps: int = FM_STEPS, cfg: float = FM_CFG, rescale_cfg: float = FM_RESCALE_CFG,
              temperature: float = AR_TEMPERATURE, top_k: int = AR_TOP_K, top_p: float = AR_TOP_P,
              seed: int | None = None, on_progress: ProgressFn | None = None) -> np.ndarray:
        """Voice conversion (``/api/vc/vevo-voice``): ``"ar"`` style and timbre of the reference,
        ``"fm"`` its timbre only."""
        return run_inline(self.orchestrator().voice(
            self._stages("voice" if mode == "ar" else "timbre", on_progress), source_wav_24k, reference_wav_24k,
            mode, flow_matching_steps=flow_matching_steps, cfg=cfg, rescale_cfg=rescale_cfg,
            temperature=temperature, top_k=top_k, top_p=top_p, seed=seed, on_progress=on_progress))

    def tts(self, text: str, reference_wav_24k: np.ndarray, mode: str = "fm", *,
            reference_text: str | None = None, language: str = "auto", reference_language: str | None = None,
            flow_matching_steps: int = FM_STEPS, cfg: float = FM_CFG, rescale_cfg: float = FM_RESCALE_CFG,
            temperature: float = AR_TEMPERATURE, top_k: int = AR_TOP_K, top_p: float = AR_TOP_P,
            seed: int | None = None, on_progress: ProgressFn | None = None) -> np.ndarray:
        """Vevo TTS (``/api/tts/vevo``): ``"fm"`` the reference's timbre only, ``"ar"`` also its
        style, with ``reference_text`` or, when None, this pipeline's ``transcriber``."""
        return run_inline(self.orchestrator().tts(
            self._stages("tts", on_progress), text, reference_wav_24k, mode, reference_text=reference_text,
            language=language, reference_language=reference_language, transcribe=self._transcribe_fn(),
            flow_matching_steps=flow_matching_steps, cfg=cfg, rescale_cfg=rescale_cfg, temperature=temperature,
            top_k=top_k, top_p=top_p, seed=seed, on_progress=on_progress))

    def _transcribe_fn(self) -> TranscribeFn | None:
        """The transcriber as the orchestrator's ``transcribe``: the whole reference (up to
        Whisper's 30 s window) and its transcript."""
        if self.transcriber is None:
            return None
        transcriber = self.transcriber

        async def transcribe(wav24k: np.ndarray) -> dict:
            heard = transcriber.transcribe(to_rate(wav24k, SAMPLE_RATE, ASR_SAMPLE_RATE))
            seconds, text = heard.prompt(wav24k.size / SAMPLE_RATE)
            return {"text": text, "language": heard.language, "seconds": seconds}

        return transcribe
