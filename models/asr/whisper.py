"""Whisper speech recognition (transformers) for prompt transcripts: what was said, in which language,
and where the segments end, so that a TTS prompt can be cut at a segment boundary.

The official model is ``openai/whisper-large-v3-turbo``, the transformers release of the openai-whisper
"turbo" model the MaskGCT demo transcribes prompts with. One 30 s window is transcribed (a prompt
never needs more; callers cut the audio to :attr:`Transcript.covered_seconds`). Language detection is
transformers' own (one decoder step over the language tokens); decoding is greedy with timestamps.

The tiny profile is a 2-layer Whisper with a 28-symbol alphabet, the real special-token layout
(languages, tasks, 1501 timestamps) and seeded random weights; it "recognises" a few letters, which
is all the pipelines need to run end to end on CPU.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from models.asr.segments import Segment, parse_segments, trim_at_segment
from models.weights import HubFiles, ResolvedWeights

log = logging.getLogger("amphion.asr")

__all__ = ["WHISPER_FILES", "Transcript", "WhisperTranscriber", "load_transcriber"]

WHISPER_FILES = HubFiles(
    "openai/whisper-large-v3-turbo",
    ("config.json", "generation_config.json", "model.safetensors", "preprocessor_config.json",
     "tokenizer.json", "tokenizer_config.json"),
    local_dir_env="AMPHION_WHISPER_DIR",
)

SAMPLE_RATE = 16000
WINDOW_SECONDS = 30.0

#: The tiny profile's alphabet and languages (the languages MaskGCT's G2P serves, so a detected
#: language is always usable by the tiny pipelines).
TINY_ALPHABET = [chr(c) for c in range(ord("a"), ord("z") + 1)] + ["Ġ", "."]
TINY_LANGUAGES = ("en", "zh", "de", "fr", "ko")
TINY_SEED = 7


@dataclass(frozen=True)
class Transcript:
    text: str
    language: str
    segments: list[Segment] = field(default_factory=list)
    covered_seconds: float = 0.0
    """How much of the audio was transcribed (at most one 30 s window)."""

    def prompt(self, min_seconds: float) -> tuple[float, str]:
        """(seconds of audio to keep, their transcript) under the demo's rule: whole segments up to
        the first that ends at or after ``min_seconds``; all that was transcribed otherwise."""
        cut, text = trim_at_segment(self.segments, min_seconds)
        if cut is None or cut > self.covered_seconds:
            return self.covered_seconds, self.text
        return cut, text


class WhisperTranscriber:
    """A ``WhisperForConditionalGeneration`` with its feature extractor and tokenizer."""

    sample_rate = SAMPLE_RATE

    def __init__(self, model, feature_extractor, tokenizer, *, max_new_tokens: int | None = None,
                 weights_kind: str = "pretrained") -> None:
        self.model = model.eval()
        self.feature_extractor = feature_extractor
        self.tokenizer = tokenizer
        self.weights_kind = weights_kind
        gen = model.generation_config
        self.timestamp_begin = int(gen.no_timestamps_token_id) + 1
        self.end_of_text = int(tokenizer.convert_tokens_to_ids("<|endoftext|>"))
        self.language_ids = {str(tok)[2:-2]: int(i) for tok, i in gen.lang_to_id.items()}
        self._language_of_id = {i: code for code, i in self.language_ids.items()}
        # The decoder's positions bound prompt + output; 4 prompt tokens (sot, language, task, first timestamp).
        limit = int(model.config.max_target_positions) - 4
        self.max_new_tokens = min(limit, max_new_tokens) if max_new_tokens else limit

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def languages(self) -> tuple[str, ...]:
        return tuple(self.language_ids)

    def _features(self, wav16k: np.ndarray) -> torch.Tensor:
        feats = self.feature_extractor(np.asarray(wav16k, dtype=np.float32), sampling_rate=SAMPLE_RATE,
                                       return_tensors="pt").input_features
        return feats.to(self.device, next(self.model.parameters()).dtype)

    @torch.inference_mode()
    def transcribe(self, wav16k: np.ndarray | Sequence[float], language: str | None = None) -> Transcript:
        """Transcribe the first 30 s of mono 16 kHz audio; ``language`` None detects it."""
        wav = np.asarray(wav16k, dtype=np.float32)[: int(WINDOW_SECONDS * SAMPLE_RATE)]
        feats = self._features(wav)
        if language is None:
            detected = self.model.detect_language(feats)
            language = self._language_of_id[int(detected.reshape(-1)[0])]
        elif language not in self.language_ids:
            raise ValueError(f"Whisper has no language {language!r}")
        ids = self.model.generate(feats, task="transcribe", language=language, return_timestamps=True,
                                  max_new_tokens=self.max_new_tokens)
        tokens = [int(t) for t in ids[0].tolist()]
        segments = parse_segments(tokens, self.timestamp_begin, lambda t: t < self.end_of_text,
                                  lambda toks: self.tokenizer.decode(toks, skip_special_tokens=True))
        text = " ".join(s.text for s in segments).strip()
        return Transcript(text=text, language=language, segments=segments, covered_seconds=len(wav) / SAMPLE_RATE)


def _place(model, device: str | torch.device, dtype: torch.dtype | None):
    if dtype is None:  # fp16 on GPU (how the turbo model is published and run); fp32 on CPU
        dtype = torch.float16 if torch.device(device).type == "cuda" else torch.float32
    return model.to(device=device, dtype=dtype)


def load_transcriber(folder: str | Path, *, device: str | torch.device = "cpu",
                     dtype: torch.dtype | None = None) -> WhisperTranscriber:
    """The official release (or any folder laid out like it): config, generation config, weights,
    feature extractor and tokenizer files."""
    from transformers import WhisperFeatureExtractor, WhisperForConditionalGeneration, WhisperTokenizerFast

    folder = Path(folder)
    model = WhisperForConditionalGeneration.from_pretrained(folder, local_files_only=True)
    return WhisperTranscriber(
        _place(model, device, dtype),
        WhisperFeatureExtractor.from_pretrained(folder, local_files_only=True),
        WhisperTokenizerFast.from_pretrained(folder, local_files_only=True),
    )


def _tiny_tokenizer():
    from transformers import WhisperTokenizerFast

    specials = (["<|endoftext|>", "<|startoftranscript|>"] + [f"<|{code}|>" for code in TINY_LANGUAGES]
                + ["<|translate|>", "<|transcribe|>", "<|startoflm|>", "<|startofprev|>", "<|nospeech|>",
                   "<|notimestamps|>"] + [f"<|{i * 0.02:.2f}|>" for i in range(1501)])
    vocab = {symbol: i for i, symbol in enumerate(TINY_ALPHABET + specials)}
    tokenizer = WhisperTokenizerFast(vocab=vocab, merges=[])
    tokenizer.add_special_tokens({"additional_special_tokens": specials[1:]})
    return tokenizer, vocab


def build_tiny_transcriber(*, device: str | torch.device = "cpu", seed: int = TINY_SEED) -> WhisperTranscriber:
    """The tiny profile (see the module docstring)."""
    from transformers import GenerationConfig, WhisperConfig, WhisperFeatureExtractor, WhisperForConditionalGeneration

    tokenizer, vocab = _tiny_tokenizer()
    eot, sot = vocab["<|endoftext|>"], vocab["<|startoftranscript|>"]
    config = WhisperConfig(
        vocab_size=len(vocab), num_mel_bins=128, d_model=64, encoder_layers=2, decoder_layers=2,
        encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=128, decoder_ffn_dim=128,
        max_source_positions=1500, max_target_positions=64, pad_token_id=eot, bos_token_id=eot,
        eos_token_id=eot, decoder_start_token_id=sot,
    )
    torch.manual_seed(seed)
    model = WhisperForConditionalGeneration(config)
    with torch.no_grad():
        # Random weights put nearly all probability on the 1501 timestamp tokens; larger letter
        # embeddings (the output projection is tied to them) let some text through.
        model.model.decoder.embed_tokens.weight[: len(TINY_ALPHABET)] *= 4
    # A trained model never emits language or task tokens mid-transcript; a random one would.
    never = [i for s, i in vocab.items() if s.startswith("<|") and not s[2].isdigit() and i not in (eot,)]
    model.generation_config = GenerationConfig(
        decoder_start_token_id=sot, eos_token_id=eot, pad_token_id=eot, max_length=64,
        lang_to_id={f"<|{code}|>": vocab[f"<|{code}|>"] for code in TINY_LANGUAGES},
        task_to_id={"transcribe": vocab["<|transcribe|>"], "translate": vocab["<|translate|>"]},
        no_timestamps_token_id=vocab["<|notimestamps|>"], is_multilingual=True, max_initial_timestamp_index=50,
        begin_suppress_tokens=[vocab["Ġ"], eot], suppress_tokens=never,
    )
    return WhisperTranscriber(_place(model, device, torch.float32), WhisperFeatureExtractor(feature_size=128),
                              tokenizer, weights_kind="tiny")


def transcriber_from(resolved: ResolvedWeights, *, device: str | torch.device = "cpu",
                     dtype: torch.dtype | None = None) -> WhisperTranscriber:
    """Build what :func:`models.weights.resolve` found for :data:`WHISPER_FILES`."""
    if not resolved.pretrained:
        return build_tiny_transcriber(device=device)
    return load_transcriber(resolved.root, device=device, dtype=dtype)
