"""MaskGCT's text front end: text -> phone ids over the 363-symbol vocabulary.

:class:`G2P` converts ``zh``/``en`` (one mixed route), ``fr``, ``de`` and ``ko`` as the reference's
``g2p_`` does (:meth:`G2P.phone_ids`); :func:`detect_language`, :func:`normalize_language` and
:func:`split_sentences` serve the orchestrators. A language it cannot convert is an
:class:`UnsupportedLanguage` (Japanese: :class:`LanguageUnavailable`, since its dictionary is not
shipped). The data files live in one folder, found by :func:`g2p_data_dir`. The route, and where we
differ from the reference: ``models/text/README.md``.
"""

from __future__ import annotations

import json
import os
import re
import threading
from pathlib import Path

from .english import finish_english_phones, normalize_english
from .espeak import EspeakPhonemizer, EspeakUnavailable
from .mandarin import MANDARIN_DATA_FILES, Mandarin
from .normalizers import normalize_french, normalize_german, normalize_korean

__all__ = [
    "G2P",
    "G2PDataUnavailable",
    "LanguageUnavailable",
    "UnsupportedLanguage",
    "SUPPORTED_LANGUAGES",
    "KNOWN_LANGUAGES",
    "DATA_DIR_ENV",
    "DATA_FILES",
    "REFERENCE_COMMIT",
    "g2p_data_dir",
    "normalize_language",
    "detect_language",
    "split_sentences",
    "segment_zh_en",
]

#: Environment variable naming the G2P data folder.
DATA_DIR_ENV = "AMPHION_G2P_DATA"
#: Amphion commit the data files (and the behaviour) come from.
REFERENCE_COMMIT = "d3de90f02e7f1c7dbc24b04d52fe1b8ef438effe"
#: Data folder file -> its path in the Amphion repository (under ``models/tts/maskgct/g2p/``).
DATA_FILES = {"vocab.json": "g2p/vocab.json", **{f: f for f in MANDARIN_DATA_FILES}}

#: Languages this front end converts.
SUPPORTED_LANGUAGES = ("zh", "en", "fr", "de", "ko")
#: Languages MaskGCT knows (Japanese included, which needs pyopenjtalk's dictionary).
KNOWN_LANGUAGES = ("zh", "en", "ja", "ko", "fr", "de")

_ESPEAK_VOICES = {"en": "en-us", "fr": "fr-fr", "de": "de", "ko": "ko"}

_ALIASES = {
    "zh": "zh", "zh-cn": "zh", "zh-hans": "zh", "zh-sg": "zh", "cmn": "zh", "chinese": "zh", "mandarin": "zh",
    "en": "en", "en-us": "en", "en-gb": "en", "english": "en",
    "fr": "fr", "fr-fr": "fr", "french": "fr",
    "de": "de", "de-de": "de", "german": "de",
    "ko": "ko", "ko-kr": "ko", "korean": "ko",
    "ja": "ja", "ja-jp": "ja", "jp": "ja", "japanese": "ja",
}  # fmt: skip


class UnsupportedLanguage(ValueError):
    """A language the G2P cannot convert; the message names the supported ones."""

    def __init__(self, language: object, detail: str | None = None) -> None:
        self.language = language
        message = detail or f"unsupported language {language!r}"
        super().__init__(f"{message}; supported languages: {', '.join(SUPPORTED_LANGUAGES)}")


class LanguageUnavailable(UnsupportedLanguage):
    """A language MaskGCT knows but this installation cannot convert (Japanese)."""


class G2PDataUnavailable(RuntimeError):
    """The G2P data folder (vocabulary, Mandarin lexicon and polyphone model) was not found."""


def g2p_data_dir(path: str | os.PathLike | None = None) -> Path:
    """The G2P data folder: ``path`` if given, else ``$AMPHION_G2P_DATA``.

    The folder holds ``vocab.json`` and ``sources/...`` as listed in :data:`DATA_FILES`. Raises
    :class:`G2PDataUnavailable` when neither is set or the folder has no ``vocab.json``.
    """
    chosen = path if path is not None else os.environ.get(DATA_DIR_ENV)
    if not chosen:
        raise G2PDataUnavailable(
            f"MaskGCT G2P data folder not configured: pass its path or set {DATA_DIR_ENV} to a folder "
            f"holding {', '.join(DATA_FILES)} (Amphion models/tts/maskgct/g2p/ at {REFERENCE_COMMIT[:10]})"
        )
    folder = Path(chosen).expanduser()
    if not (folder / "vocab.json").is_file():
        raise G2PDataUnavailable(f"MaskGCT G2P data folder {folder} has no vocab.json")
    return folder


def normalize_language(language: str) -> str:
    """Canonical code (``zh en ja ko fr de``) of a code or name such as ``"en-US"`` or ``"Mandarin"``.

    Raises :class:`UnsupportedLanguage` for anything else. ``ja`` is returned (the caller decides).
    """
    if not isinstance(language, str):
        raise UnsupportedLanguage(language)
    key = language.strip().lower().replace("_", "-")
    if key not in _ALIASES:
        raise UnsupportedLanguage(language)
    return _ALIASES[key]


# --- language detection ------------------------------------------------------------------------


def _is_han(ch: str) -> bool:
    return "\u4e00" <= ch <= "\u9fff" or "\u3400" <= ch <= "\u4dbf"


def _is_kana(ch: str) -> bool:
    return "\u3040" <= ch <= "\u30ff" or "\u31f0" <= ch <= "\u31ff"


def _is_hangul(ch: str) -> bool:
    return "\uac00" <= ch <= "\ud7a3" or "\u1100" <= ch <= "\u11ff" or "\u3130" <= ch <= "\u318f"


_FR_LETTERS = set("éèêëàâçîïôûùœÿæ")
_DE_LETTERS = set("äöüß")
_FR_WORDS = frozenset(
    "le la les un une des du de et est je tu il elle nous vous ils sont pas que qui dans pour avec "
    "sur ce cette mais au aux très bonjour merci oui".split()
)
_DE_WORDS = frozenset(
    "der die das ein eine und ist ich du er sie wir ihr nicht mit auf für zu den dem von sind "
    "auch aber heute guten danke ja nein".split()
)
_EN_WORDS = frozenset(
    "the a an and is are i you he she we they not with on for to of in it this that be was "
    "hello thank yes no".split()
)
_WORD = re.compile(r"[^\W\d_]+")


def detect_language(text: str, default: str = "en") -> str:
    """Best guess among :data:`KNOWN_LANGUAGES` from the script (and, for Latin text, a few
    letters and function words). Kana -> ``ja``; Hangul -> ``ko``; Han -> ``zh`` (whose route
    also reads embedded English); Latin -> ``fr``/``de`` when their cues win, else ``en``.
    ``default`` when the text has no letters at all."""
    han = kana = hangul = latin = 0
    for ch in text:
        if _is_kana(ch):
            kana += 1
        elif _is_hangul(ch):
            hangul += 1
        elif _is_han(ch):
            han += 1
        elif ch.isalpha():
            latin += 1
    if kana:
        return "ja"
    if hangul and hangul >= han:
        return "ko"
    if han:
        return "zh"
    if not latin:
        return default
    lowered = text.lower()
    scores = {"en": 0, "fr": 0, "de": 0}
    scores["fr"] += 2 * sum(ch in _FR_LETTERS for ch in lowered)
    scores["de"] += 2 * sum(ch in _DE_LETTERS for ch in lowered)
    for word in _WORD.findall(lowered):
        scores["en"] += word in _EN_WORDS
        scores["fr"] += word in _FR_WORDS
        scores["de"] += word in _DE_WORDS
    best = max(scores, key=lambda k: (scores[k], k == "en"))
    return best


# --- sentence splitting ------------------------------------------------------------------------

# Sentence ends. Closing quotes/brackets stay with their sentence, and so does the whitespace
# after it. Full-width marks end a sentence anywhere; in Chinese/Japanese text ASCII marks do too
# (a "." only when no digit follows: "3.5斤"); elsewhere ASCII marks only before whitespace, a
# closing mark or the end (so "3.50" and "e.g" stay whole). Line breaks always end a sentence.
_CLOSERS = "\"'”’）)\\]」』"
_SENTENCE_END_CJK = re.compile(rf"(?:[。！？；!?;…]+|\.+(?!\d))[{_CLOSERS}]*\s*|\n+")
_SENTENCE_END_SPACED = re.compile(rf"(?:[。！？；]+|[.!?;…]+(?=[\s{_CLOSERS}]|$))[{_CLOSERS}]*\s*|\n+")
_CLAUSE_END = re.compile(rf"(?:[，、：]+|[,:](?!\d))[{_CLOSERS}]*\s*")
_SPACE = re.compile(r"\s+")
_NO_LEADING = frozenset("。！？；，、：.!?;,:…" + _CLOSERS)


def _cut(text: str, pattern: re.Pattern) -> list[str]:
    pieces, start = [], 0
    for m in pattern.finditer(text):
        if m.end() > start:
            pieces.append(text[start : m.end()])
            start = m.end()
    if start < len(text):
        pieces.append(text[start:])
    return [p for p in pieces if p.strip()]


def _hard_split(piece: str, max_chars: int) -> list[str]:
    # At whitespace where possible, else every max_chars characters.
    out: list[str] = []
    current = ""
    for token in re.findall(r"\S+\s*", piece):
        while len(token.rstrip()) > max_chars:
            if current.strip():
                out.append(current)
                current = ""
            cut = max_chars
            while cut > 1 and token[cut] in _NO_LEADING:  # no piece starts with punctuation
                cut -= 1
            out.append(token[:cut])
            token = token[cut:]
        if current and len((current + token).rstrip()) > max_chars:
            out.append(current)
            current = ""
        current += token
    if current.strip():
        out.append(current)
    return out


def _pack(pieces: list[str], max_chars: int) -> list[str]:
    chunks: list[str] = []
    current = ""
    for piece in pieces:
        if current and len((current + piece).strip()) > max_chars:
            chunks.append(current)
            current = ""
        current += piece
    if current.strip():
        chunks.append(current)
    return chunks


def split_sentences(text: str, language: str, max_chars: int) -> list[str]:
    """Cut a long text into chunks of at most ``max_chars`` characters, each to be synthesised
    on its own.

    Sentences are kept whole and packed greedily; a sentence longer than ``max_chars`` is cut at
    clause punctuation, then at spaces, then (for scripts without spaces) every ``max_chars``
    characters. Chunks are stripped; empty text gives ``[]``. ``language`` is validated
    (:class:`UnsupportedLanguage`); ``"auto"`` is accepted.
    """
    lang = detect_language(text) if language == "auto" else normalize_language(language)
    if not isinstance(max_chars, int) or max_chars < 1:
        raise ValueError(f"max_chars must be a positive integer, got {max_chars!r}")
    pieces: list[str] = []
    sentence_end = _SENTENCE_END_CJK if lang in ("zh", "ja") else _SENTENCE_END_SPACED
    for sentence in _cut(text, sentence_end):
        if len(sentence.strip()) <= max_chars:
            pieces.append(sentence)
            continue
        for clause in _cut(sentence, _CLAUSE_END):
            if len(clause.strip()) <= max_chars:
                pieces.append(clause)
            else:
                pieces.extend(_hard_split(clause, max_chars))
    chunks = [_SPACE.sub(" ", c).strip() if "\n" in c else c.strip() for c in _pack(pieces, max_chars)]
    return [c for c in chunks if c]


# --- mixed Mandarin / English runs -------------------------------------------------------------


def _char_class(ch: str) -> str:
    if "\u4e00" <= ch <= "\u9fa5":
        return "zh"
    if "A" <= ch <= "Z" or "a" <= ch <= "z":
        return "en"
    return "other"


def segment_zh_en(text: str) -> list[tuple[str, str]]:
    """Runs ``(text, "zh" | "en" | "other")`` as the zh/en route cuts them ("other" only when the
    whole text has no CJK ideograph and no ASCII letter)."""
    runs: list[tuple[str, str]] = []
    current, kind = "", ""
    for ch in text:
        cls = _char_class(ch)
        if not current:
            current, kind = ch, cls
        elif kind == "other":
            current += ch
            if cls != "other":
                kind = cls
        elif cls in (kind, "other"):
            current += ch
        else:
            runs.append((current, kind))
            current, kind = ch, cls
    if current:
        runs.append((current, kind))
    return runs


# --- the front end -----------------------------------------------------------------------------


class G2P:
    """Text -> phones / phone ids, as MaskGCT's ``g2p_(text, language)``.

    Thread-safe. Backends (espeak voices, the Mandarin lexicon and BERT) load on first use.
    """

    def __init__(self, data_dir: str | os.PathLike | None = None) -> None:
        self.data_dir = g2p_data_dir(data_dir)
        with open(self.data_dir / "vocab.json", encoding="utf-8") as f:
            self.vocab: dict[str, int] = json.load(f)["vocab"]
        self._lock = threading.Lock()
        self._espeak: dict[str, EspeakPhonemizer] = {}
        self._mandarin: Mandarin | None = None

    # backends

    def _voice(self, language: str) -> EspeakPhonemizer:
        with self._lock:
            if language not in self._espeak:
                try:
                    self._espeak[language] = EspeakPhonemizer(_ESPEAK_VOICES[language])
                except EspeakUnavailable as exc:
                    raise LanguageUnavailable(language, f"language {language!r} unavailable: {exc}") from exc
            return self._espeak[language]

    def mandarin(self) -> Mandarin:
        with self._lock:
            if self._mandarin is None:
                try:
                    self._mandarin = Mandarin(self.data_dir)
                except (FileNotFoundError, ImportError) as exc:
                    raise LanguageUnavailable("zh", f"Mandarin G2P unavailable: {exc}") from exc
            return self._mandarin

    def warm_up(self, languages=SUPPORTED_LANGUAGES) -> None:
        """Loads the backends of ``languages`` now instead of on the first request."""
        for language in languages:
            if language == "zh":
                self.mandarin()
            else:
                self._voice(language)

    # per-language phone strings (no trailing "|")

    def _english(self, text: str) -> str:
        return finish_english_phones(self._voice("en")(normalize_english(text)))

    def _run_phones(self, text: str, language: str) -> str:
        if language == "zh":
            return self.mandarin().phones(text)
        if language == "en":
            return self._english(text)
        if language == "fr":
            return self._voice("fr")(normalize_french(text))
        if language == "de":
            return self._voice("de")(normalize_german(text))
        if language == "ko":
            return self._voice("ko")(normalize_korean(text))
        raise UnsupportedLanguage(language)  # pragma: no cover - callers normalise first

    def ids_of(self, phones: str) -> list[int]:
        """Vocabulary ids of a phone string (pieces not in the vocabulary are dropped)."""
        return [self.vocab[p] for p in phones.split("\t")[0].split("|") if p in self.vocab]

    # public API

    def g2p(self, text: str, language: str) -> tuple[str, list[int]]:
        """``(phone string, phone ids)``: the two return values of the reference's ``g2p_``."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        lang = detect_language(text) if language == "auto" else normalize_language(language)
        if lang == "ja":
            raise LanguageUnavailable(
                "ja",
                "Japanese G2P needs pyopenjtalk and its OpenJTalk dictionary, which this server does not have",
            )
        if not text.strip():
            return "", []
        if lang not in ("zh", "en"):
            phones = self._run_phones(text, lang)
            return phones, self.ids_of(phones)

        phones, ids = "", []
        runs = segment_zh_en(text)
        for index, (run, kind) in enumerate(runs):
            run_phones = self._run_phones(run, lang if kind == "other" else kind)
            phones += run_phones + "|"
            ids += self.ids_of(run_phones)
            if kind == "en" and index == len(runs) - 1 and phones[-2:-1] == "_":
                phones = phones[:-2]
                ids = ids[:-1]
        return phones, ids

    def phones(self, text: str, language: str) -> str:
        """The ``|``-separated phone string (``_`` marks English word ends)."""
        return self.g2p(text, language)[0]

    def phone_ids(self, text: str, language: str) -> list[int]:
        """Phone ids in 0..362 (the T2S phone embedding's rows)."""
        return self.g2p(text, language)[1]
