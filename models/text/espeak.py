"""espeak-ng phonemisation as MaskGCT's G2P does it (through ``phonemizer``).

The text is first normalised (CJK punctuation to ASCII, every character that is neither a word
character, whitespace nor one of the kept marks ``,.?!;:'…`` deleted, spaces around those marks
removed), then phonemised by espeak-ng with phones separated by ``|``, words by ``|_|``, no stress
marks, punctuation kept. Finally each kept mark becomes a phone of its own. Behaviour follows
Amphion's ``models/tts/maskgct/g2p/g2p/text_tokenizers.py``; espeak-ng itself is Debian's package.
"""

from __future__ import annotations

import re
import threading

__all__ = ["PUNCTUATION_MARKS", "PUNCTUATION_TO_ASCII", "EspeakUnavailable", "EspeakPhonemizer", "espeak_version"]

#: The punctuation marks that survive normalisation and become phones.
PUNCTUATION_MARKS = ",.?!;:'…"

PUNCTUATION_TO_ASCII = (
    ("，", ","),
    ("。", "."),
    ("！", "!"),
    ("？", "?"),
    ("；", ";"),
    ("：", ":"),
    ("、", ","),
    ("‘", "'"),
    ("’", "'"),
    ("⋯", "…"),
    ("···", "…"),
    ("・・・", "…"),
    ("...", "…"),
)
_DROP = re.compile(r"[^\w\s_,.?!;:'…]")
_TIGHTEN = re.compile(r"\s*([,.?!;:'…])\s*")
_SPACES = re.compile(r"\s+")
_MARK = re.compile(r"([,.?!;:'…])")
_BARS = re.compile(r"\|+")

# espeak-ng keeps global state: one phonemisation at a time in this process.
_ESPEAK_LOCK = threading.Lock()


class EspeakUnavailable(RuntimeError):
    """espeak-ng (the shared library that phonemizer drives) cannot be used here."""


def _normalize_line(line: str) -> str:
    line = line.strip()
    for src, dst in PUNCTUATION_TO_ASCII:
        line = line.replace(src, dst)
    line = _DROP.sub("", line)
    line = _TIGHTEN.sub(r"\1", line)
    return _SPACES.sub(" ", line)


class EspeakPhonemizer:
    """Phonemises text with one espeak-ng voice (``en-us``, ``fr-fr``, ``de``, ``ko``, ...)."""

    def __init__(self, voice: str) -> None:
        try:
            from phonemizer.backend import EspeakBackend
            from phonemizer.separator import Separator
        except ImportError as exc:  # pragma: no cover - dependency missing
            raise EspeakUnavailable(f"the phonemizer package is not installed ({exc})") from exc
        try:
            with _ESPEAK_LOCK:
                self._backend = EspeakBackend(
                    voice,
                    punctuation_marks=PUNCTUATION_MARKS,
                    preserve_punctuation=True,
                    with_stress=False,
                    tie=False,
                    language_switch="remove-flags",
                    words_mismatch="ignore",
                )
        except RuntimeError as exc:
            raise EspeakUnavailable(f"espeak-ng voice {voice!r} cannot be used: {exc}") from exc
        self._separator = Separator(word="|_|", syllable="-", phone="|")
        self.voice = voice

    def __call__(self, text: str) -> str:
        """The ``|``-separated phone string of ``text`` (``|_|`` between words)."""
        from phonemizer.utils import list2str, str2list

        lines = [_normalize_line(line) for line in str2list(text)]
        with _ESPEAK_LOCK:
            phonemized = self._backend.phonemize(lines, separator=self._separator, strip=True, njobs=1)
        joined = _MARK.sub(r"|\1|", list2str(phonemized))
        return _BARS.sub("|", joined).rstrip("|")


def espeak_version() -> str | None:
    """espeak-ng's version as phonemizer reports it (e.g. ``"1.51"``), or None when unusable."""
    try:
        from phonemizer.backend import EspeakBackend

        return ".".join(str(v) for v in EspeakBackend.version())
    except Exception:  # noqa: BLE001 - any failure means "not usable"
        return None
