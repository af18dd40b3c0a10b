"""MaskGCT zero-shot TTS, end to end: text + a reference recording -> 24 kHz speech in its voice.

:class:`MaskGCTPipeline` holds the components (possibly only some: ``parts=``) and runs one stage
per method: :meth:`~MaskGCTPipeline.semantic_tokens`, :meth:`~MaskGCTPipeline.acoustic_codes`,
:meth:`~MaskGCTPipeline.phone_ids`, :meth:`~MaskGCTPipeline.text_to_semantic`,
:meth:`~MaskGCTPipeline.semantic_to_acoustic`, :meth:`~MaskGCTPipeline.decode` (24 kHz float32).
:meth:`~MaskGCTPipeline.generate` runs :class:`~models.maskgct.orchestration.MaskGCTOrchestrator`
over them; input errors are :class:`MaskGCTInputError` and :class:`models.text.UnsupportedLanguage`,
raised before any model runs.

:meth:`~MaskGCTPipeline.from_weights` builds it from the official files (``"pretrained"``), small
seeded stand-ins (``"tiny"``) or whichever is on this machine (``"auto"``; never a mix). Stages,
defaults, lengths and weights: ``models/maskgct/README.md``.
"""


from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch

from models.core import checks
from models.core.stages import ProgressFn, run_inline
from models.maskgct.acoustic_codec import AcousticCodec
from models.maskgct.checkpoints import (
    build_acoustic_codec,
    build_semantic_codec,
    load_acoustic_codec,
    load_semantic_codec,
)
from models.maskgct.configs import (
    SEMANTIC_SAMPLE_RATE,
    tiny_acoustic_codec_config,
    tiny_semantic_codec_config,
)
from models.maskgct.generation_configs import tiny_s2a_config, tiny_t2s_config
from models.maskgct.official import OFFICIAL_PIPELINE_FILES
from models.maskgct.orchestration import (  # noqa: F401  (re-exported: the pipeline's public names)
    CFG,
    DEFAULT_MAX_CHARS,
    DEFAULT_MAX_TARGET_SECONDS,
    FALLBACK_MAX_CHARS,
    FILTER_THRES,
    FRAME_RATE,
    JOIN_FADE_SECONDS,
    MIN_REFERENCE_SECONDS,
    RESCALE_CFG,
    S2A_TEMPERATURE,
    SAMPLE_RATE,
    SILENCE_RMS,
    STAGES,
    T2S_STEPS,
    T2S_TEMPERATURE,
    EmptyTextError,
    InlineStages,
    LocalStages,
    MaskGCTInputError,
    MaskGCTOrchestrator,
    ReferenceAudioError,
    TargetLengthError,
    resample_to_16k,
)
from models.maskgct.orchestration import s2a_steps as _s2a_steps
from models.maskgct.s2a import MaskGCTS2A, build_s2a_model, load_s2a_model, semantic_to_acoustic
from models.maskgct.semantic_codec import SemanticCodec
from models.maskgct.semantic_encoder import STATS_FILE, SemanticEncoder, build_semantic_encoder, load_semantic_encoder
from models.maskgct.t2s import MaskGCTT2S, build_t2s_model, load_t2s_model
from models.text import G2P
from models.weights import ResolvedWeights
from models.weights import resolve_parts as resolve_pipeline_parts

__all__ = [
    "FRAME_RATE",
    "PARTS",
    "SAMPLE_RATE",
    "STAGES",
    "EmptyTextError",
    "MaskGCTInputError",
    "MaskGCTPipeline",
    "ReferenceAudioError",
    "TargetLengthError",
    "resolve_parts",
]

#: What :meth:`MaskGCTPipeline.from_weights` can load (``parts``): each model component (one
#: deployment each when served) and the G2P.
PARTS = ("semantic", "acoustic", "t2s", "s2a", "g2p")
#: The entries of :data:`OFFICIAL_PIPELINE_FILES` each model part needs.
PART_FILES: dict[str, tuple[str, ...]] = {
    "semantic": ("w2v_bert", "semantic_stats", "semantic_codec"),
    "acoustic": ("acoustic_codec",),
    "t2s": ("t2s",),
    "s2a": ("s2a",),
}


def resolve_parts(
    mode: str,
    parts=("semantic", "acoustic", "t2s", "s2a"),
    *,
    cache_dir: str | os.PathLike | None = None,
    local_dirs: Mapping[str, str | os.PathLike] | None = None,
) -> tuple[str, dict[str, ResolvedWeights], str]:
    """``(kind, found, note)`` for the model ``parts``: ``kind`` ``"pretrained"`` (``found``: the
    resolved files of those parts) or ``"tiny"``.

    Separately loaded parts must never be mixed, so ``"auto"`` looks for EVERY component's official
    files (on this machine only, no network) and goes tiny as soon as one is missing, whichever
    parts are asked for: every deployment of the pipeline then comes to the same answer.
    ``"pretrained"`` resolves (and may download) only the parts' own files; WeightsUnavailable
    when one is missing.
    """
    return resolve_pipeline_parts(mode, OFFICIAL_PIPELINE_FILES, PART_FILES, parts, cache_dir=cache_dir,
                                  local_dirs=local_dirs)


def _load_parts(parts, found: Mapping[str, ResolvedWeights] | None, *, seed: int, device,
                dtype: torch.dtype) -> dict:
    """The components of ``parts``: tiny (``found`` None; every part from the same tiny config
    functions and seeds, so separately built parts fit together) or the official files."""
    out: dict = {}
    if found is None:
        if "semantic" in parts:
            out["semantic_encoder"] = build_semantic_encoder(seed=seed, device=device, dtype=dtype)
            out["semantic_codec"] = build_semantic_codec(tiny_semantic_codec_config(), seed=seed + 1, device=device)
        if "acoustic" in parts:
            out["acoustic_codec"] = build_acoustic_codec(tiny_acoustic_codec_config(), seed=seed + 2, device=device)
        if "t2s" in parts:
            out["t2s"] = build_t2s_model(tiny_t2s_config(), seed=seed + 3, device=device, dtype=dtype)
        if "s2a" in parts:
            out["s2a_1layer"] = build_s2a_model(tiny_s2a_config("1layer"), seed=seed + 4, device=device, dtype=dtype)
            out["s2a_full"] = build_s2a_model(tiny_s2a_config("full"), seed=seed + 5, device=device, dtype=dtype)
        return out

    def root(key: str):
        return found[key].root

    if "semantic" in parts:
        out["semantic_encoder"] = load_semantic_encoder(
            root("w2v_bert"), found["semantic_stats"].file(STATS_FILE), device=device, dtype=dtype
        )
        out["semantic_codec"] = load_semantic_codec(root("semantic_codec"), device=device)
    if "acoustic" in parts:
        out["acoustic_codec"] = load_acoustic_codec(root("acoustic_codec"), device=device)
    if "t2s" in parts:
        out["t2s"] = load_t2s_model(root("t2s"), device=device, dtype=dtype)
    if "s2a" in parts:
        out["s2a_1layer"] = load_s2a_model(root("s2a"), "1layer", device=device, dtype=dtype)
        out["s2a_full"] = load_s2a_model(root("s2a"), "full", device=device, dtype=dtype)
    return out


class MaskGCTPipeline:
    """All MaskGCT components plus the G2P. Build with :meth:`from_weights`; run :meth:`generate`.

    A pipeline may hold only some components (``from_weights(..., parts=...)``, what a component
    deployment loads): the stage methods of the parts it holds work, the others raise.
    """

    def __init__(
        self,
        *,
        semantic_encoder: SemanticEncoder | None = None,
        semantic_codec: SemanticCodec | None = None,
        acoustic_codec: AcousticCodec | None = None,
        t2s: MaskGCTT2S | None = None,
        s2a_1layer: MaskGCTS2A | None = None,
        s2a_full: MaskGCTS2A | None = None,
        g2p: G2P | None = None,
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
        if (semantic_encoder is None) != (semantic_codec is None):
            raise ValueError("the semantic encoder and the semantic codec go together")
        if (s2a_1layer is None) != (s2a_full is None):
            raise ValueError("the two S2A models go together")
        self._check_consistency()

    @property
    def parts(self) -> tuple[str, ...]:
        """The parts this pipeline holds (see :data:`PARTS`)."""
        held = {"semantic": self.semantic_codec, "acoustic": self.acoustic_codec, "t2s": self.t2s,
                "s2a": self.s2a_full, "g2p": self.g2p}
        return tuple(p for p in PARTS if held[p] is not None)

    def _part(self, part: str):
        if part not in self.parts:
            raise RuntimeError(f"this MaskGCT pipeline was built without its {part!r} part "
                               f"(it holds: {', '.join(self.parts) or 'nothing'})")

    def _check_consistency(self) -> None:
        enc, sem, aco = self.semantic_encoder, self.semantic_codec, self.acoustic_codec
        s2a = [(n, m) for n, m in (("s2a_1layer", self.s2a_1layer), ("s2a_full", self.s2a_full)) if m is not None]
        problems = []
        if sem is not None:
            if enc.hidden_size != sem.hidden_size:
                problems.append(f"semantic encoder width {enc.hidden_size} != semantic codec width {sem.hidden_size}")
            if sem.num_quantizers != 1:
                problems.append(f"the semantic codec must have one quantizer, has {sem.num_quantizers}")
            generators = ([("t2s", self.t2s)] if self.t2s is not None else []) + s2a
            for name, model in generators:
                if model.config.cond_codebook_size != sem.codebook_size:
                    problems.append(f"{name} reads {model.config.cond_codebook_size} semantic codes, "
                                    f"the codec makes {sem.codebook_size}")
            if enc.sample_rate != SEMANTIC_SAMPLE_RATE or enc.frame_rate != FRAME_RATE:
                problems.append(f"semantic encoder runs at {enc.sample_rate} Hz -> {enc.frame_rate} frames/s, "
                                f"expected {SEMANTIC_SAMPLE_RATE} Hz -> {FRAME_RATE}")
        if aco is not None:
            for name, model in s2a:
                if model.config.codebook_size != aco.decoder.codebook_size:
                    problems.append(f"{name} predicts {model.config.codebook_size} acoustic codes, "
                                    f"the codec has {aco.decoder.codebook_size}")
            if self.s2a_full is not None and self.s2a_full.num_quantizer != aco.num_quantizers:
                problems.append(f"s2a_full predicts {self.s2a_full.num_quantizer} layers, "
                                f"the codec has {aco.num_quantizers}")
            if SAMPLE_RATE / aco.hop_length != FRAME_RATE:
                problems.append(f"acoustic codec hop {aco.hop_length} gives {SAMPLE_RATE / aco.hop_length} frames/s "
                                f"at {SAMPLE_RATE} Hz, expected {FRAME_RATE}")
        if self.s2a_1layer is not None and self.s2a_1layer.num_quantizer != 1:
            problems.append(f"s2a_1layer must predict one layer, predicts {self.s2a_1layer.num_quantizer}")
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
        parts: Sequence[str] | None = None,
    ) -> "MaskGCTPipeline":
        """Every component through ``models.weights.resolve`` (``mode``: ``"pretrained"``, ``"tiny"``
        or ``"auto"``; see the module docstring).

        ``dtype`` applies to w2v-bert, T2S and the S2A models; the two codecs stay float32 (the
        ISTFT and the VQ distances want it). ``g2p_data``: a :class:`~models.text.G2P` or its data
        folder (None: ``$AMPHION_G2P_DATA``). ``local_dirs``: component key (see
        :data:`~models.maskgct.official.OFFICIAL_PIPELINE_FILES`) -> a folder laid out like its repo.
        ``seed`` seeds the tiny weights. ``parts``: load only these (see :data:`PARTS` and
        :func:`resolve_parts`); None: all of them.
        """
        parts = PARTS if parts is None else tuple(parts)
        unknown_parts = set(parts) - set(PARTS)
        if unknown_parts:
            raise ValueError(f"parts: unknown {sorted(unknown_parts)}; known: {', '.join(PARTS)}")
        kind, found, note = resolve_parts(mode, parts, cache_dir=cache_dir, local_dirs=local_dirs)
        g2p = None
        if "g2p" in parts:
            g2p = g2p_data if isinstance(g2p_data, G2P) else G2P(g2p_data)
        components = _load_parts(parts, found if kind == "pretrained" else None, seed=seed, device=device,
                                 dtype=dtype)
        return cls(**components, g2p=g2p, device=device, weights_kind=kind, note=note,
                   max_target_seconds=max_target_seconds)

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
        self._part("acoustic")
        return self.acoustic_codec.hop_length

    @property
    def num_quantizers(self) -> int:
        if self.acoustic_codec is not None:
            return self.acoustic_codec.num_quantizers
        if self.s2a_full is not None:
            return self.s2a_full.num_quantizer
        self._part("acoustic")

    def s2a_steps(self, n_timesteps: Sequence[int] | None = None) -> list[int]:
        """The per-layer S2A step counts: the given ones (one per codec layer) or the reference's."""
        return _s2a_steps(self.num_quantizers, n_timesteps)

    # ------------------------------------------------------------------------------------------
    # stages

    def phone_ids(self, text: str, language: str) -> list[int]:
        """G2P: phone ids of ``text`` (UnsupportedLanguage for a language the G2P cannot convert)."""
        self._part("g2p")
        return self.g2p.phone_ids(text, language)

    @torch.inference_mode()
    def semantic_features(self, wav16k: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Mono 16 kHz waveform -> normalised w2v-bert-2.0 layer-17 features ``[1, F, hidden]`` (float32,
        50 Hz) on the pipeline's device."""
        self._part("semantic")
        wav = checks.mono(wav16k, "the 16 kHz reference", ReferenceAudioError)
        if len(wav) < self.semantic_encoder.min_samples:
            raise ReferenceAudioError("the reference audio is too short")
        return self.semantic_encoder.encode(wav).to(self.device, torch.float32)

    @torch.inference_mode()
    def semantic_tokens(self, wav16k: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Mono 16 kHz waveform -> semantic tokens ``[1, P]`` (int64, 50 Hz) on the pipeline's device."""
        codes, _ = self.semantic_codec.quantize(self.semantic_features(wav16k))
        return codes.reshape(1, -1)

    @torch.inference_mode()
    def acoustic_codes(self, wav24k: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Mono 24 kHz waveform -> acoustic codes ``[1, P, nq]`` (int64, 50 Hz) on the pipeline's device."""
        self._part("acoustic")
        wav = checks.mono(wav24k, "the 24 kHz reference", ReferenceAudioError)
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
        self._part("t2s")
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
        first_layer_cfg: float | None = None,
        seed: int | None = None,
        generator: torch.Generator | None = None,
        on_step: Callable[[int, int], None] | None = None,
    ) -> torch.Tensor:
        """S2A: semantic tokens ``[1, P + T]`` (prompt then target) and the prompt's acoustic codes
        ``[1, P, nq]`` -> the target's acoustic codes ``[1, T, nq]`` (1-layer model for layer 0, full
        model for the rest; ``first_layer_cfg``: the 1-layer model's guidance, default ``cfg``).
        ``on_step(step, total)`` counts over both models."""
        self._part("s2a")
        _, codes = semantic_to_acoustic(
            self.s2a_1layer, self.s2a_full, semantic.to(self.device), prompt_codes.to(self.device),
            n_timesteps=self.s2a_steps(n_timesteps), temp=temperature, filter_thres=filter_thres, cfg=cfg,
            rescale_cfg=rescale_cfg, first_layer_cfg=first_layer_cfg, seed=seed, generator=generator,
            on_step=on_step,
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
        self._part("acoustic")
        if codes.dim() == 2:
            codes = codes.unsqueeze(0)
        if codes.dim() != 3 or codes.shape[0] != 1:
            raise ValueError(f"expected codes [1, T, n_quantizers], got {tuple(codes.shape)}")
        wav = self.acoustic_codec.decode(codes.to(self.device, torch.long))
        return wav.reshape(-1).float().cpu().numpy()

    # ------------------------------------------------------------------------------------------
    # the whole thing

    def orchestrator(self) -> MaskGCTOrchestrator:
        """The orchestration :meth:`generate` runs (the same one the served pipeline runs over
        its component deployments)."""
        self._part("g2p")
        return MaskGCTOrchestrator(self.g2p, self.num_quantizers, max_target_seconds=self.max_target_seconds)

    def target_frames(self, target_len_s: float) -> int:
        """Frames for a target length in seconds (``floor(s * 50)``, tolerant to float noise)."""
        return MaskGCTOrchestrator.target_frames(target_len_s)

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

        The orchestration is :class:`~models.maskgct.orchestration.MaskGCTOrchestrator`'s, over this
        pipeline's own stages, run synchronously in the calling thread.
        """
        stages = InlineStages(LocalStages(self), on_progress)
        return run_inline(self.orchestrator().generate(
            stages, text, language, reference_wav_24k, reference_text, target_len_s, n_timesteps, cfg,
            temperature, seed, on_progress, reference_language=reference_language, rescale_cfg=rescale_cfg,
            s2a_timesteps=s2a_timesteps, s2a_cfg=s2a_cfg, s2a_rescale_cfg=s2a_rescale_cfg,
            s2a_temperature=s2a_temperature, filter_thres=filter_thres, max_chars=max_chars,
        ))

    @staticmethod
    def _resample_to_16k(wav24: np.ndarray) -> np.ndarray:
        return resample_to_16k(wav24)
