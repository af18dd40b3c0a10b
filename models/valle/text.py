"""DualCodec-VALL-E's text side: the reference transcript fix-up, chunking of the text to speak,
English normalisation and Whisper's multilingual BPE ids.

The served reference path (its CLI / gradio ``infer_process``) always normalises with its English
rules, whatever the language (also Chinese), and always starts the ids with ``<|en|>``: we do the
same (see ``models/valle/README.md``, "Text front end"). Ids come from ``tiktoken`` over Whisper's
``multilingual.tiktoken`` ranks (:func:`load_text_tokenizer`), exactly the encoding Whisper's
``get_tokenizer(multilingual=True, num_languages=100)`` builds.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

__all__ = [
    "LANGUAGE_CODES",
    "TextPlan",
    "WhisperTextTokenizer",
    "chunk_text",
    "fix_reference_text",
    "load_text_tokenizer",
    "max_chunk_bytes",
    "normalize_en",
    "normalize_punctuation",
    "plan_text",
]

#: Whisper's language codes in its token order (``<|en|>`` = sot + 1, ...), the 100 of ``num_languages=100``.
LANGUAGE_CODES: tuple[str, ...] = tuple(
    "en zh de es ru ko fr ja pt tr pl ca nl ar sv it id hi fi vi he uk el ms cs ro da hu ta no th ur hr bg lt "
    "la mi ml cy sk te fa lv bn sr az sl kn et mk br eu is hy ne mn bs kk sq sw gl mr pa si km sn yo so af oc "
    "ka be tg sd gu am yi lo uz fo ht ps tk nn mt sa lb my bo tl mg as tt haw ln ha ba jw su yue".split()
)
#: Whisper's pre-tokenisation pattern (GPT-2's, with ``\p{L}`` / ``\p{N}`` classes).
SPLIT_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
N_TIMESTAMPS = 1501
#: The reference prompt is clipped to this many seconds before anything else (its preprocessing).
MAX_REFERENCE_SECONDS = 12.0
#: ``max_chars`` budget: the reference's rate of text bytes per second over ``22 - ref_seconds`` seconds.
CHUNK_BUDGET_SECONDS = 22.0


# ---------------------------------------------------------------------------------------------
# Normalisation (the reference's ``normalize_en`` + ``normalize_punctuation``)
# ---------------------------------------------------------------------------------------------


def _punctuation_table() -> dict[int, str]:
    table: dict[int, str] = {0x3000: " "}  # ideographic space
    # Full-width ASCII forms U+FF01 (！) .. U+FF5D (｝) -> ASCII (the reference's table stops before ～).
    for code in range(0xFF01, 0xFF5E):
        table[code] = chr(code - 0xFEE0)
    for chars, ascii_form in (("。", "."), ("《》“”【】「」『』", '"'), ("‘’", "'"), ("、", ","), ("・", "-"),
                              ("—…", "...")):
        for ch in chars:
            table[ord(ch)] = ascii_form
    return table


_PUNCTUATION = _punctuation_table()
_WHITESPACE_RUN = re.compile(r"\s+")
_CLAUSE_MARKS = str.maketrans({"(": ",", ")": ",", ";": ",", ":": ","})
_ACRONYM = re.compile(r"\b[A-Z]{2,}\b")
_WORD = re.compile(r"\b[\w']+\b")
_INTEGER = re.compile(r"\b\d+\b")
_QUOTED_AFTER_SPACE = re.compile(r"(?<=\s)'([^']*)'")


def normalize_punctuation(text: str) -> str:
    """Full-width and CJK punctuation to ASCII, whitespace runs to one space, ``( ) ; :`` to ``,``."""
    text = text.translate(_PUNCTUATION)
    text = _WHITESPACE_RUN.sub(" ", text)
    return text.translate(_CLAUSE_MARKS)


@lru_cache(maxsize=1)
def _inflect_engine():
    import inflect

    return inflect.engine()


def normalize_en(text: str) -> str:
    """The reference's English normalisation (applied to every language by its served path)."""
    # Acronyms of 2+ ASCII capitals are spelled out; every other word is lowercased unless all of
    # its characters are capitals (so a lone "I" or a spelled-out letter stays).
    text = _ACRONYM.sub(lambda m: " ".join(m.group(0)), text)
    text = _WORD.sub(lambda m: m.group(0) if all(c.isupper() for c in m.group(0)) else m.group(0).lower(), text)
    text = normalize_punctuation(text).rstrip()
    engine = _inflect_engine()
    text = _INTEGER.sub(lambda m: engine.number_to_words(m.group(0)), text)
    text = _QUOTED_AFTER_SPACE.sub(lambda m: f'"{m.group(1)}"', text)
    return text.replace("'", "^").replace(";", ",").replace(":", ",")


# ---------------------------------------------------------------------------------------------
# Chunking and the reference transcript
# ---------------------------------------------------------------------------------------------

_SENTENCE_END = re.compile(r"[;:,.!?]\s+|[；：，。！？]")


def _sentences(text: str) -> list[str]:
    """Pieces ending after ``;:,.!?`` followed by whitespace (the whitespace dropped) or after a
    full-width ``；：，。！？`` (nothing dropped)."""
    pieces, start = [], 0
    for match in _SENTENCE_END.finditer(text):
        pieces.append(text[start:match.start() + 1])
        start = match.end()
    pieces.append(text[start:])
    return pieces


def chunk_text(text: str, max_bytes: int) -> list[str]:
    """Greedy packing of sentences into chunks of at most ``max_bytes`` UTF-8 bytes (a chunk may
    exceed it when one sentence alone does); a space follows a sentence whose last character is one
    byte long. Chunks are stripped; empty ones are dropped."""
    chunks: list[str] = []
    current = ""
    for sentence in _sentences(text):
        piece = sentence + " " if sentence and len(sentence[-1].encode("utf-8")) == 1 else sentence
        if len(current.encode("utf-8")) + len(sentence.encode("utf-8")) <= max_bytes:
            current += piece
            continue
        if current:
            chunks.append(current.strip())
        current = piece
    if current:
        chunks.append(current.strip())
    return chunks


def fix_reference_text(ref_text: str) -> str:
    """The reference transcript as the reference's preprocessing leaves it: ". " appended unless it
    already ends with ". " or "。" (only " " when it ends with ".")."""
    if ref_text.endswith(". ") or ref_text.endswith("。"):
        return ref_text
    return ref_text + (" " if ref_text.endswith(".") else ". ")


def max_chunk_bytes(ref_text: str, ref_seconds: float) -> int:
    """``int(bytes(ref_text) / ref_seconds * (22 - ref_seconds))``: how much text one chunk may hold
    so that prompt + chunk stays near 22 s of speech at the reference's speaking rate."""
    if not ref_seconds > 0:
        raise ValueError(f"the reference must be longer than 0 s, got {ref_seconds}")
    return int(len(ref_text.encode("utf-8")) / ref_seconds * (CHUNK_BUDGET_SECONDS - ref_seconds))


# ---------------------------------------------------------------------------------------------
# Whisper BPE
# ---------------------------------------------------------------------------------------------


def _read_ranks(path: Path) -> dict[bytes, int]:
    ranks: dict[bytes, int] = {}
    for line in path.read_bytes().splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return ranks


class WhisperTextTokenizer:
    """Whisper's multilingual tokenizer (100 languages): plain text -> BPE ids, plus its specials."""

    def __init__(self, vocab_file: str | Path) -> None:
        import tiktoken

        ranks = _read_ranks(Path(vocab_file))
        self.n_bpe_ranks = len(ranks)
        specials = ["<|endoftext|>", "<|startoftranscript|>", *(f"<|{c}|>" for c in LANGUAGE_CODES),
                    "<|translate|>", "<|transcribe|>", "<|startoflm|>", "<|startofprev|>", "<|nospeech|>",
                    "<|notimestamps|>", *(f"<|{i * 0.02:.2f}|>" for i in range(N_TIMESTAMPS))]
        self.special_tokens = {token: self.n_bpe_ranks + i for i, token in enumerate(specials)}
        self.n_vocab = self.n_bpe_ranks + len(specials)
        self._encoding = tiktoken.Encoding(name=Path(vocab_file).name, pat_str=SPLIT_PATTERN, mergeable_ranks=ranks,
                                           special_tokens=self.special_tokens, explicit_n_vocab=self.n_vocab)

    @property
    def eot(self) -> int:
        return self.special_tokens["<|endoftext|>"]

    @property
    def sot(self) -> int:
        return self.special_tokens["<|startoftranscript|>"]

    def language_token(self, language: str) -> int:
        try:
            return self.special_tokens[f"<|{language}|>"]
        except KeyError:
            raise KeyError(f"Whisper has no language {language!r}") from None

    def encode(self, text: str) -> list[int]:
        """BPE ids of plain text (special-token strings in it are encoded as ordinary text)."""
        return self._encoding.encode(text, disallowed_special=())

    def decode(self, ids: list[int]) -> str:
        return self._encoding.decode(ids)


@lru_cache(maxsize=4)
def load_text_tokenizer(vocab_file: str | Path) -> WhisperTextTokenizer:
    return WhisperTextTokenizer(vocab_file)


# ---------------------------------------------------------------------------------------------
# The whole text side of one request
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TextPlan:
    ref_text: str
    """The reference transcript after the fix-up and the trailing space (what prefixes every chunk)."""
    max_bytes: int
    chunks: tuple[str, ...]
    final_texts: tuple[str, ...]
    """Normalised ``ref_text + chunk`` per chunk."""
    ids: tuple[tuple[int, ...], ...]
    """``<|en|>`` then the BPE ids of each final text (before the AR's offsets)."""


def plan_text(tokenizer: WhisperTextTokenizer, ref_text: str, text: str, ref_seconds: float) -> TextPlan:
    """Reference transcript + text to speak -> chunks and their id lists, as the reference's served path
    (``ref_seconds``: the duration of the (clipped) reference recording)."""
    fixed = fix_reference_text(ref_text)
    budget = max_chunk_bytes(fixed, ref_seconds)
    chunks = chunk_text(text, budget)
    prefix = fixed if fixed.endswith(" ") else fixed + " "
    finals = tuple(normalize_en(prefix + chunk) for chunk in chunks)
    lang = tokenizer.language_token("en")
    ids = tuple((lang, *tokenizer.encode(final)) for final in finals)
    return TextPlan(prefix, budget, tuple(chunks), finals, ids)
