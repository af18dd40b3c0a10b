"""The text front end: transformers' ``T5EncoderModel`` (official: ``t5-base``) and its tokenizer,
called the way ``AudioLDMInference.get_text_embedding`` calls them.

* The prompt is tokenised without padding (truncated at 512 tokens, ``</s>`` = 1 appended); the
  unconditional text (``""``, or the negative prompt) is padded with ``<pad>`` = 0 to the prompt's
  length. Both go through the encoder **without an attention mask**, so the pads are attended, as
  in the reference. A negative prompt longer than the prompt keeps its own length (see
  :meth:`T5TextEncoder.token_ids`).
* Official weights: ``config.json`` + ``model.safetensors`` of ``google-t5/t5-base`` (the full
  encoder-decoder checkpoint; only ``shared`` and ``encoder.*`` are read), tokenizer
  ``tokenizer.json`` used exactly as the file defines it (the fast tokenizer the reference's
  ``AutoTokenizer.from_pretrained("t5-base")`` loads).
* Tiny: a small T5 built from :func:`models.audioldm.configs.tiny_t5_config` with seeded weights
  and :func:`tiny_tokenizer`, a character-level tokenizer generated in code (T5's special ids, a
  lower-casing normaliser, letters, digits and a little punctuation; anything else is ``<unk>``).
  It exists so the tiny profile runs offline; it is not T5's vocabulary.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from models.core.checkpoints import CheckpointError, load_exact

__all__ = [
    "MODEL_MAX_LENGTH",
    "PAD_ID",
    "EOS_ID",
    "T5TextEncoder",
    "build_t5_encoder",
    "load_t5_encoder",
    "load_tokenizer",
    "tiny_tokenizer",
]

#: ``AutoTokenizer.from_pretrained("t5-base", model_max_length=512)`` in the reference.
MODEL_MAX_LENGTH = 512
PAD_ID, EOS_ID, UNK_ID = 0, 1, 2
PAD_TOKEN, EOS_TOKEN, UNK_TOKEN = "<pad>", "</s>", "<unk>"
#: The two keys of T5's tied input embedding; a checkpoint may store either or both.
_TIED = ("shared.weight", "encoder.embed_tokens.weight")

TINY_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789.,'!?-"


# ---------------------------------------------------------------------------------------------
# tokenizers
# ---------------------------------------------------------------------------------------------


def _wrap(tokenizer_object=None, tokenizer_file: str | None = None):
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer_object,
        tokenizer_file=tokenizer_file,
        pad_token=PAD_TOKEN,
        eos_token=EOS_TOKEN,
        unk_token=UNK_TOKEN,
        model_max_length=MODEL_MAX_LENGTH,
    )


def load_tokenizer(path: str | Path):
    """The fast tokenizer defined by ``path`` (a ``tokenizer.json``), with T5's special tokens."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"tokenizer file not found: {path}")
    return _wrap(tokenizer_file=str(path))


def tiny_tokenizer():
    """The tiny profile's tokenizer (see the module docstring). Deterministic, no files."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    pieces = [(PAD_TOKEN, 0.0), (EOS_TOKEN, 0.0), (UNK_TOKEN, 0.0), ("\u2581", -2.0)]
    pieces += [(char, -3.0) for char in TINY_ALPHABET]
    tok = Tokenizer(models.Unigram(pieces, unk_id=UNK_ID, byte_fallback=False))
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always")
    tok.post_processor = processors.TemplateProcessing(single=f"$A {EOS_TOKEN}", special_tokens=[(EOS_TOKEN, EOS_ID)])
    tok.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always")
    return _wrap(tokenizer_object=tok)


def tiny_vocab_size() -> int:
    """Rows of the tiny T5's embedding: the tiny tokenizer's pieces, rounded up to a multiple of 8."""
    used = 4 + len(TINY_ALPHABET)
    return -(-used // 8) * 8


# ---------------------------------------------------------------------------------------------
# the encoder
# ---------------------------------------------------------------------------------------------


def build_t5_encoder(config: Mapping[str, Any]):
    """An untrained ``T5EncoderModel`` from a transformers T5 config dict (float32, eval mode)."""
    from transformers import T5Config, T5EncoderModel

    fields = {k: v for k, v in config.items() if k not in ("architectures", "transformers_version", "_name_or_path")}
    model = T5EncoderModel(T5Config(**fields))
    return model.eval().requires_grad_(False)


def _encoder_tensors(path: Path, wanted: set[str]) -> dict[str, torch.Tensor]:
    """The tensors of ``wanted`` in ``path``, reading nothing else (the decoder of a full T5 stays on disk)."""
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(path), framework="pt", device="cpu") as f:
            return {k: f.get_tensor(k) for k in f.keys() if k in wanted}
    from models.core.checkpoints import load_state_dict_file

    return {k: v for k, v in load_state_dict_file(path).items() if k in wanted}


def _checkpoint_keys(path: Path) -> list[str]:
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(path), framework="pt", device="cpu") as f:
            return list(f.keys())
    from models.core.checkpoints import load_state_dict_file

    return list(load_state_dict_file(path))


def load_t5_encoder(config: Mapping[str, Any], weights: str | Path):
    """``T5EncoderModel`` of ``config`` with the encoder weights of ``weights`` (a T5EncoderModel
    checkpoint, or a full T5 one whose ``decoder.*`` / ``lm_head.*`` are skipped). Strict: every
    encoder key must be there with its shape; other keys are errors unless they belong to the decoder."""
    path = Path(weights)
    if not path.is_file():
        raise CheckpointError(f"text encoder weights not found: {path}")
    model = build_t5_encoder(config)
    expected = set(model.state_dict())
    keys = _checkpoint_keys(path)
    stray = sorted(k for k in keys if k not in expected and not k.startswith(("decoder.", "lm_head.")))
    sd = _encoder_tensors(path, expected)
    # tied embedding: either name may be the one stored
    for a, b in (_TIED, _TIED[::-1]):
        if a not in sd and b in sd:
            sd[a] = sd[b]
    sd.update({k: torch.empty(0) for k in stray})  # so that load_exact lists them as unexpected
    load_exact(model, sd, f"text encoder {path.name}")
    return model.eval().requires_grad_(False)


class T5TextEncoder(torch.nn.Module):
    """The encoder (``model``) and, when present, its tokenizer; ``width`` = d_model = the UNet's context_dim."""

    def __init__(self, model, tokenizer=None) -> None:
        super().__init__()
        self.model = model
        self.tokenizer = tokenizer

    @property
    def width(self) -> int:
        return int(self.model.config.d_model)

    @property
    def vocab_size(self) -> int:
        return int(self.model.config.vocab_size)

    def token_ids(self, prompt: str, negative_prompt: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(cond_ids [1, L], uncond_ids [1, L'])``: the prompt unpadded (truncated at 512 tokens),
        the negative prompt (``""`` when None) padded to L. L' = L unless the negative prompt is
        longer than the prompt; it is then kept whole (truncated at 512), not cut."""
        if self.tokenizer is None:
            raise RuntimeError("this text encoder has no tokenizer; pass token ids instead")
        cond = self.tokenizer([prompt], max_length=MODEL_MAX_LENGTH, truncation=True, padding="do_not_pad",
                              return_tensors="pt").input_ids
        uncond = self.tokenizer([negative_prompt or ""], max_length=max(cond.shape[-1], 1), padding="max_length",
                                return_tensors="pt").input_ids
        if uncond.shape[-1] > MODEL_MAX_LENGTH:
            uncond = self.tokenizer([negative_prompt or ""], max_length=MODEL_MAX_LENGTH, truncation=True,
                                    padding="do_not_pad", return_tensors="pt").input_ids
        return cond, uncond

    def encode(self, ids: torch.Tensor) -> torch.Tensor:
        """``last_hidden_state`` of ``ids [B, L]`` (no attention mask), float32."""
        device = next(self.model.parameters()).device
        with torch.inference_mode():
            return self.model(input_ids=ids.to(device)).last_hidden_state.float()

    def embed_pair(self, cond_ids: torch.Tensor, uncond_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(uncond [1, L', d], cond [1, L, d])``, each encoded on its own as the reference does."""
        return self.encode(uncond_ids), self.encode(cond_ids)
