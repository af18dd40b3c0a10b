"""The DualCodec-VALL-E pipeline on codes: text -> AR semantic codes -> NAR acoustic codes.

:class:`ValleTTS` takes the reference's DualCodec 12hz_v1 codes (the codec runs in the DualCodec
deployment) and returns the codes of each text chunk; the caller decodes every chunk and joins the
waveforms (the reference cross-fades 0.15 s between chunks).
"""

from __future__ import annotations

import math

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from models.core.checkpoints import load_state_dict_file
from models.valle.ar import ARSampling, ValleAR, build_valle_ar
from models.valle.configs import (
    NUM_QUANTIZERS,
    OFFICIAL_AR_CONFIG,
    OFFICIAL_NAR_CONFIG,
    TINY_AR_CONFIG,
    TINY_NAR_CONFIG,
)
from models.valle.nar import MIN_PROMPT_FRAMES, ValleNAR, build_valle_nar
from models.valle.official import AR_FILE, NAR_FILE, OFFICIAL_FILES, TEXT_VOCAB_FILE
from models.valle.text import MAX_REFERENCE_SECONDS, WhisperTextTokenizer, load_text_tokenizer, plan_text
from models.weights import WeightsUnavailable, resolve, resolve_parts

__all__ = ["FRAME_RATE", "ValleInputError", "ValleResult", "ValleTTS", "nar_inputs"]

#: DualCodec 12hz_v1 frames per second (24 kHz / 1920).
FRAME_RATE = 12.5
ProgressCallback = Callable[[str, int, int], None]


class ValleInputError(ValueError):
    """A request DualCodec-VALL-E cannot serve (empty text, prompt codes of the wrong shape or range,
    too short a prompt, no room left under max_length): the message is safe to show users."""


def nar_inputs(combine_semantic: torch.Tensor, prompt_acoustic: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The reference's NAR glue: ``combine_semantic`` (1, P + T) = [prompt semantic | AR output] and
    ``prompt_acoustic`` (1, 7, P) -> prompt codes (8, 1, P) and target semantic codes (1, T)."""
    prompt_len = prompt_acoustic.shape[-1]
    prompt = torch.cat([combine_semantic[:, :prompt_len][None], prompt_acoustic.permute(1, 0, 2)])
    return prompt, combine_semantic[:, prompt_len:]


@dataclass
class ValleResult:
    chunks: list[np.ndarray]
    """int64 (8, T_i) per text chunk: semantic codes then 7 acoustic layers."""
    texts: list[str]
    """The normalised text of each chunk (reference transcript + chunk)."""


class ValleTTS:
    def __init__(self, ar: ValleAR, nar: ValleNAR, tokenizer: WhisperTextTokenizer, *,
                 device: str | torch.device = "cpu", weights_kind: str = "tiny") -> None:
        self.ar, self.nar, self.tokenizer = ar, nar, tokenizer
        self.device = torch.device(device)
        self.weights_kind = weights_kind

    @classmethod
    def from_weights(cls, mode: str = "auto", device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32,
                     cache_dir: str | os.PathLike | None = None, *,
                     local_dirs: Mapping[str, str | os.PathLike] | None = None,
                     text_vocab: str | os.PathLike | None = None, seed: int = 0) -> "ValleTTS":
        """AR and NAR through ``models.weights.resolve_parts`` (``mode``: pretrained / tiny / auto;
        the tiny profile is seeded random weights). The text vocabulary is needed either way:
        ``text_vocab`` (the file), else the pinned copy (downloaded in ``pretrained`` mode only)."""
        kind, found, _ = resolve_parts(mode, OFFICIAL_FILES, {"ar": ("ar",), "nar": ("nar",)}, ("ar", "nar"),
                                       cache_dir=cache_dir, local_dirs=local_dirs)
        if kind == "pretrained":
            ar_path, nar_path = found["ar"].file(AR_FILE), found["nar"].file(NAR_FILE)
            ar = build_valle_ar(OFFICIAL_AR_CONFIG, load_state_dict_file(ar_path), source=AR_FILE, device=device,
                                dtype=dtype)
            nar = build_valle_nar(OFFICIAL_NAR_CONFIG, load_state_dict_file(nar_path), source=NAR_FILE,
                                  device=device, dtype=dtype)
        else:
            ar = build_valle_ar(TINY_AR_CONFIG, seed=seed, device=device, dtype=dtype)
            nar = build_valle_nar(TINY_NAR_CONFIG, seed=seed + 1, device=device, dtype=dtype)
        if text_vocab is None:
            vocab_mode = "pretrained" if mode == "pretrained" else "auto"
            resolved = resolve(OFFICIAL_FILES["text_vocab"], vocab_mode, cache_dir=cache_dir)
            if not resolved.pretrained:
                raise WeightsUnavailable("DualCodec-VALL-E's text vocabulary (Whisper multilingual.tiktoken) "
                                         "is not present; download it with the pretrained weights")
            text_vocab = resolved.file(TEXT_VOCAB_FILE)
        return cls(ar, nar, load_text_tokenizer(Path(text_vocab)), device=device, weights_kind=kind)

    # -- checks -----------------------------------------------------------------------------

    def _prompt(self, semantic: np.ndarray, acoustic: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        semantic, acoustic = np.asarray(semantic), np.asarray(acoustic)
        if semantic.ndim != 1 or acoustic.ndim != 2 or acoustic.shape != (NUM_QUANTIZERS - 1, semantic.shape[0]):
            raise ValleInputError(f"prompt codes must be semantic (P,) and acoustic ({NUM_QUANTIZERS - 1}, P); "
                                  f"got {semantic.shape} and {acoustic.shape}")
        if not (np.issubdtype(semantic.dtype, np.integer) and np.issubdtype(acoustic.dtype, np.integer)):
            raise ValleInputError("prompt codes must be integers")
        if semantic.shape[0] < MIN_PROMPT_FRAMES:
            raise ValleInputError(f"the reference is too short: {semantic.shape[0]} code frames, at least "
                                  f"{MIN_PROMPT_FRAMES} ({MIN_PROMPT_FRAMES / FRAME_RATE:.1f} s) are needed")
        sem_max, ac_max = self.ar.config.speech_vocab_size, self.nar.config.target_vocab_size
        if semantic.min() < 0 or semantic.max() >= sem_max or acoustic.min() < 0 or acoustic.max() >= ac_max:
            raise ValleInputError(f"prompt codes out of range: semantic must lie in [0, {sem_max}), "
                                  f"acoustic in [0, {ac_max})")
        to = dict(dtype=torch.long, device=self.device)
        return torch.as_tensor(semantic, **to)[None], torch.as_tensor(acoustic, **to)[None]

    # -- inference --------------------------------------------------------------------------

    def _capped(self, sampling: ARSampling, n_text: int, n_prompt: int) -> ARSampling:
        """``sampling`` with ``max_length`` lowered to the AR config's cap on new tokens, if it has one."""
        per_token = self.ar.config.frames_per_text_token
        if per_token is None:
            return sampling
        cap = n_text + 1 + n_prompt + max(1, math.ceil(per_token * n_text))
        return replace(sampling, max_length=min(sampling.max_length, cap))

    def synthesize(self, text: str, ref_text: str, prompt_semantic: np.ndarray, prompt_acoustic: np.ndarray, *,
                   ref_seconds: float | None = None, sampling: ARSampling = ARSampling(speech_only=True),
                   generator: torch.Generator | None = None, seed: int | None = None,
                   on_progress: ProgressCallback | None = None) -> ValleResult:
        """Codes for ``text`` spoken like the reference (its transcript ``ref_text`` and its DualCodec
        codes: semantic (P,), acoustic (7, P)). ``ref_seconds``: the reference's duration (default
        P / 12.5, at most 12 s), which sets the chunk size. Randomness from ``generator`` (else one
        seeded with ``seed``). ``on_progress(stage, step, total)``: ``"ar"`` after every token,
        ``"nar"`` after every layer, per chunk ``"ar 2/3"`` / ``"nar 2/3"`` when there are several."""
        if not text or not text.strip():
            raise ValleInputError("text is empty")
        if not ref_text or not ref_text.strip():
            raise ValleInputError("ref_text (the reference's transcript) is empty")
        semantic, acoustic = self._prompt(prompt_semantic, prompt_acoustic)
        seconds = min(ref_seconds if ref_seconds is not None else semantic.shape[1] / FRAME_RATE, MAX_REFERENCE_SECONDS)
        if not seconds > 0:
            raise ValleInputError("ref_seconds must be > 0")
        plan = plan_text(self.tokenizer, ref_text, text, seconds)
        if not plan.chunks:
            raise ValleInputError("text has nothing to speak")
        if generator is None:
            generator = torch.Generator(device=self.device)
            generator.manual_seed(0 if seed is None else int(seed))
        chunks: list[np.ndarray] = []
        n = len(plan.ids)
        for i, ids in enumerate(plan.ids):
            label = "" if n == 1 else f" {i + 1}/{n}"
            text_ids = torch.tensor([ids], dtype=torch.long, device=self.device)
            if text_ids.shape[1] + 1 + semantic.shape[1] >= sampling.max_length:
                raise ValleInputError(f"text and reference take {text_ids.shape[1] + 1 + semantic.shape[1]} AR "
                                      f"tokens, which leaves no room under max_length {sampling.max_length}")
            ar_progress = None if on_progress is None else (lambda s, t, lab=label: on_progress("ar" + lab, s, t))
            out = self.ar.generate(text_ids, semantic, self._capped(sampling, text_ids.shape[1], semantic.shape[1]),
                                   generator=generator, on_progress=ar_progress)
            bad = (out < 0) | (out >= self.ar.config.speech_vocab_size)
            if bool(bad.any()):
                raise ValleInputError("the AR sampled ids outside the semantic code range (sample with speech_only)")
            if out.shape[1] == 0:
                chunks.append(np.zeros((NUM_QUANTIZERS, 0), dtype=np.int64))
                continue
            prompt, target = nar_inputs(torch.cat([semantic, out], dim=1), acoustic)
            nar_progress = None if on_progress is None else (lambda s, t, lab=label: on_progress("nar" + lab, s, t))
            codes = self.nar.generate(prompt, target, on_progress=nar_progress)
            chunks.append(np.ascontiguousarray(codes[:, 0].cpu().numpy().astype(np.int64)))
        return ValleResult(chunks, list(plan.final_texts))
