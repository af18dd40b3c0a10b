"""The CLAP text tower PicoAudio conditions on: transformers' ``ClapTextModelWithProjection``
loaded from LAION-CLAP's checkpoint layout, with RoBERTa's tokenizer.

The reference computes ``laion_clap.CLAP_Module.get_text_embedding([event_string, ""])[0]``: the
RoBERTa tokenizer (padding to 77 tokens, truncating), RoBERTa's pooled output (tanh dense on
``<s>``), the 2-layer ReLU projection, L2 normalisation. transformers' CLAP text model is the same
network under other names, so :func:`laion_text_state_dict` renames (``text_branch.`` ->
``text_model.``, ``text_projection.0/2`` -> ``linear1/2``) and checks that every tensor of the
text tower is accounted for. The audio tower and the contrastive heads are skipped.

The tiny profile's tokenizer is generated here (byte-level BPE over the event names, a few dozen
merges): tiny-only, nothing is downloaded.
"""

from __future__ import annotations

import json
import re
import tempfile
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from models.core.checkpoints import CheckpointError, load_exact, unwrap_state_dict
from models.picoaudio.configs import CLAP_TEXT_MAX_LENGTH

__all__ = [
    "ClapTextEncoder",
    "LAION_SKIPPED_PREFIXES",
    "build_clap_text_model",
    "laion_text_state_dict",
    "read_laion_checkpoint",
    "roberta_tokenizer",
    "tiny_tokenizer",
]

#: Parts of a LAION-CLAP checkpoint that are not the text tower (the audio tower, the MLPs of the
#: contrastive loss, the logit scales).
LAION_SKIPPED_PREFIXES = ("audio_branch.", "audio_projection.", "audio_transform.", "text_transform.",
                          "logit_scale_a", "logit_scale_t")
# Constant buffers of transformers' model (arange / zeros), not weights: never taken from a file.
_CONSTANT_BUFFERS = ("text_model.embeddings.position_ids", "text_model.embeddings.token_type_ids")
_RENAMES = ((r"^text_branch\.", "text_model."), (r"^text_projection\.0\.", "text_projection.linear1."),
            (r"^text_projection\.2\.", "text_projection.linear2."))


def build_clap_text_model(config: Mapping[str, Any]) -> nn.Module:
    """An untrained ``ClapTextModelWithProjection`` of ``config`` (``ClapTextConfig`` fields)."""
    from transformers import ClapTextConfig, ClapTextModelWithProjection

    return ClapTextModelWithProjection(ClapTextConfig(**config))


def laion_text_state_dict(state_dict: Mapping[str, torch.Tensor], source: str = "CLAP checkpoint"
                          ) -> dict[str, torch.Tensor]:
    """LAION-CLAP keys (``text_branch.*``, ``text_projection.{0,2}.*``; ``module.`` / ``model.``
    prefixes already or here removed) -> ``ClapTextModelWithProjection`` keys.

    The audio tower and contrastive heads (:data:`LAION_SKIPPED_PREFIXES`) and RoBERTa's constant
    ``position_ids`` / ``token_type_ids`` buffers are dropped; any other key is a CheckpointError,
    so a checkpoint of another layout never loads half-mapped."""
    sd = dict(state_dict)
    if sd and all(k.startswith("model.") for k in sd):  # saved from laion_clap.CLAP_Module
        sd = {k[len("model."):]: v for k, v in sd.items()}
    out: dict[str, torch.Tensor] = {}
    unknown = []
    for key, value in sd.items():
        if key.startswith(LAION_SKIPPED_PREFIXES):
            continue
        if key in ("text_branch.embeddings.position_ids", "text_branch.embeddings.token_type_ids"):
            continue
        new = key
        for pattern, repl in _RENAMES:
            new = re.sub(pattern, repl, new)
        if new == key:
            unknown.append(key)
        else:
            out[new] = value
    if unknown:
        raise CheckpointError(f"{source}: keys outside the LAION-CLAP layout: {sorted(unknown)[:20]}")
    if not out:
        raise CheckpointError(f"{source}: no CLAP text tower (text_branch.* / text_projection.*) found")
    return out


def _numpy_safe_globals() -> list:
    """What LAION's pickles hold besides tensors (numpy scalars in the training metadata)."""
    try:
        from numpy._core.multiarray import scalar
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import scalar  # type: ignore[no-redef]
    dtype_classes = {type(np.dtype(code)) for code in "?bhilqBHILQefdgFDGUSO"}
    return [(scalar, "numpy.core.multiarray.scalar"), (scalar, "numpy._core.multiarray.scalar"),
            (np.dtype, "numpy.dtype"), *dtype_classes]


def read_laion_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """A LAION-CLAP ``.pt`` (``{"state_dict": ..., "epoch": ..., ...}``, keys under ``module.``)
    -> its state dict. Read with ``weights_only=True``, numpy scalars allowed (LAION's files hold
    some next to the tensors), memory-mapped where the file format allows (the 630k-audioset file
    is 1.9 GB with the optimizer state; only the text tower is kept by the caller)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint file not found: {path}")
    with torch.serialization.safe_globals(_numpy_safe_globals()):
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError:  # legacy (non-zip) file: no memory map
            try:
                obj = torch.load(path, map_location="cpu", weights_only=True)
            except Exception as exc:
                raise CheckpointError(f"cannot read {path}: {exc}") from exc
        except Exception as exc:
            raise CheckpointError(f"cannot read {path}: {exc}") from exc
    if isinstance(obj, Mapping) and "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
        obj = obj["state_dict"]
    if isinstance(obj, Mapping):  # keep the tensors only; LAION keeps a few scalars beside them
        obj = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    return unwrap_state_dict(obj, str(path))


# ---------------------------------------------------------------------------------------------
# tokenizers


def roberta_tokenizer(vocab_file: str | Path, merges_file: str | Path):
    """transformers' RoBERTa tokenizer from a ``vocab.json`` and ``merges.txt`` (roberta-base's for
    the official model: what ``laion_clap`` loads)."""
    from transformers import RobertaTokenizer

    return RobertaTokenizer(str(vocab_file), str(merges_file))


_SPECIALS = ("<s>", "<pad>", "</s>", "<unk>")


def _tiny_bpe(corpus: Sequence[str], n_merges: int) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """A byte-level BPE vocabulary learnt from ``corpus`` by the textbook algorithm (most frequent
    adjacent pair first, ties broken alphabetically), so the same corpus gives the same files."""
    from tokenizers.pre_tokenizers import ByteLevel

    words: Counter[tuple[str, ...]] = Counter()
    for text in corpus:
        for word, _ in ByteLevel(add_prefix_space=False).pre_tokenize_str(text):
            words[tuple(word)] += 1
    vocab = {tok: i for i, tok in enumerate(_SPECIALS)}
    for ch in sorted(ByteLevel.alphabet()):
        vocab[ch] = len(vocab)
    merges: list[tuple[str, str]] = []
    for _ in range(n_merges):
        pairs: Counter[tuple[str, str]] = Counter()
        for word, count in words.items():
            for pair in zip(word, word[1:]):
                pairs[pair] += count
        if not pairs:
            break
        best = min(pairs, key=lambda p: (-pairs[p], p))
        merges.append(best)
        vocab["".join(best)] = len(vocab)
        merged: Counter[tuple[str, ...]] = Counter()
        for word, count in words.items():
            out, i = [], 0
            while i < len(word):
                if i + 1 < len(word) and (word[i], word[i + 1]) == best:
                    out.append(word[i] + word[i + 1])
                    i += 2
                else:
                    out.append(word[i])
                    i += 1
            merged[tuple(out)] += count
        words = merged
    vocab["<mask>"] = len(vocab)
    return vocab, merges


def tiny_tokenizer(vocab_size: int):
    """The tiny profile's RoBERTa-style tokenizer (tiny-only): byte-level BPE learnt from the event
    class names, ``vocab_size`` entries at most (specials, the 256 byte symbols, merges, ``<mask>``)."""
    from models.picoaudio.events import EVENT_CLASSES

    n_merges = vocab_size - len(_SPECIALS) - 256 - 1
    if n_merges < 0:
        raise ValueError(f"a byte-level vocabulary needs at least {len(_SPECIALS) + 257} entries")
    corpus = [" and ".join(EVENT_CLASSES), " ".join(n.replace("_", " ") for n in EVENT_CLASSES)]
    vocab, merges = _tiny_bpe(corpus, n_merges)
    with tempfile.TemporaryDirectory() as folder:
        vocab_file, merges_file = Path(folder) / "vocab.json", Path(folder) / "merges.txt"
        vocab_file.write_text(json.dumps(vocab), encoding="utf-8")
        merges_file.write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges), encoding="utf-8")
        return roberta_tokenizer(vocab_file, merges_file)


# ---------------------------------------------------------------------------------------------
# the encoder


class ClapTextEncoder(nn.Module):
    """Texts -> L2-normalised CLAP text embeddings ``[B, projection_dim]`` (the reference's
    ``get_text_embedding``)."""

    def __init__(self, model: nn.Module, tokenizer, *, max_length: int = CLAP_TEXT_MAX_LENGTH) -> None:
        super().__init__()
        self.model = model
        self.tokenizer = tokenizer
        self.max_length = max_length
        vocab = len(tokenizer)
        if vocab > model.config.vocab_size:
            raise ValueError(f"the tokenizer has {vocab} tokens, the CLAP text model {model.config.vocab_size}")

    @property
    def embedding_dim(self) -> int:
        return int(self.model.config.projection_dim)

    def load_laion(self, state_dict: Mapping[str, torch.Tensor], source: str = "CLAP checkpoint") -> None:
        """Load a LAION-CLAP state dict strictly (see :func:`laion_text_state_dict`)."""
        mapped = laion_text_state_dict(state_dict, source)
        own = self.model.state_dict()
        for name in _CONSTANT_BUFFERS:
            mapped[name] = own[name]
        load_exact(self.model, mapped, source)

    @torch.inference_mode()
    def forward(self, texts: Sequence[str]) -> torch.Tensor:
        tokens = self.tokenizer(list(texts), padding="max_length", truncation=True, max_length=self.max_length,
                                return_tensors="pt")
        device = next(self.model.parameters()).device
        out = self.model(input_ids=tokens["input_ids"].to(device), attention_mask=tokens["attention_mask"].to(device))
        return F.normalize(out.text_embeds.float(), dim=-1)
