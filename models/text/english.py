"""English text normalisation and phone-string clean-up of MaskGCT's G2P.

Before espeak-ng sees English text, MaskGCT expands a fixed list of abbreviations and spells out
numbers (currency, fractions, decimals, percentages, ordinals, years) with ``inflect``. After
phonemisation it marks an open word end with ``_`` and folds a few espeak phones into the symbols
of its 363-entry vocabulary. Behaviour (not code) follows Amphion's
``models/tts/maskgct/g2p/g2p/english.py``.
"""

from __future__ import annotations

import functools
import re

__all__ = ["normalize_english", "finish_english_phones"]


@functools.lru_cache(maxsize=1)
def _inflect():
    import inflect

    return inflect.engine()


# Whole-word abbreviations, case-insensitive, replaced in this order (so "mrs" wins over "mr").
_ABBREVIATIONS = tuple(
    (re.compile(rf"\b{short}\b", re.IGNORECASE), long)
    for short, long in (
        ("mrs", "misess"),
        ("mr", "mister"),
        ("dr", "doctor"),
        ("st", "saint"),
        ("co", "company"),
        ("jr", "junior"),
        ("maj", "major"),
        ("gen", "general"),
        ("drs", "doctors"),
        ("rev", "reverend"),
        ("lt", "lieutenant"),
        ("hon", "honorable"),
        ("sgt", "sergeant"),
        ("capt", "captain"),
        ("esq", "esquire"),
        ("ltd", "limited"),
        ("col", "colonel"),
        ("ft", "fort"),
        ("etc", "et cetera"),
        ("btw", "by the way"),
    )
)

_GROUPED_NUMBER = re.compile(r"([0-9][0-9,]+[0-9])")
_POUNDS = re.compile(r"£([0-9,]*[0-9]+)")
_DOLLARS = re.compile(r"\$([0-9.,]*[0-9]+)")
_FRACTION = re.compile(r"([0-9]+)/([0-9]+)")
_DECIMAL = re.compile(r"([0-9]+\.[0-9]+)")
_PERCENT = re.compile(r"([0-9.,]*[0-9]+%)")
_ORDINAL = re.compile(r"[0-9]+(st|nd|rd|th)")
_INTEGER = re.compile(r"[0-9]+")


def _plural(n: int, one: str, many: str) -> str:
    return one if n == 1 else many


def _dollars(m: re.Match) -> str:
    amount = m.group(1)
    pieces = amount.split(".")
    if len(pieces) > 2:
        return f" {amount} dollars "
    whole = int(pieces[0]) if pieces[0] else 0
    cents = int(pieces[1]) if len(pieces) == 2 and pieces[1] else 0
    if whole and cents:
        return f" {whole} {_plural(whole, 'dollar', 'dollars')}, {cents} {_plural(cents, 'cent', 'cents')} "
    if whole:
        return f" {whole} {_plural(whole, 'dollar', 'dollars')} "
    if cents:
        return f" {cents} {_plural(cents, 'cent', 'cents')} "
    return " zero dollars "


def _fraction(m: re.Match) -> str:
    num, den = int(m.group(1)), int(m.group(2))
    words = _inflect().number_to_words
    if (num, den) == (1, 2):
        return " one half "
    if (num, den) == (1, 4):
        return " one quarter "
    if den == 2:
        return f" {words(num)} halves "
    if den == 4:
        return f" {words(num)} quarters "
    return f" {words(num)} {_inflect().ordinal(words(den))} "


def _integer(m: re.Match) -> str:
    n = int(m.group(0))
    words = _inflect().number_to_words
    if 1000 < n < 3000:  # read like a year
        if n == 2000:
            return " two thousand "
        if 2000 < n < 2010:
            return f" two thousand {words(n % 100)} "
        if n % 100 == 0:
            return f" {words(n // 100)} hundred "
        return " " + words(n, andword="", zero="oh", group=2).replace(", ", " ") + " "
    return " " + words(n, andword="") + " "


def _spell_numbers(text: str) -> str:
    text = _GROUPED_NUMBER.sub(lambda m: m.group(1).replace(",", ""), text)
    text = _POUNDS.sub(r"\1 pounds", text)
    text = _DOLLARS.sub(_dollars, text)
    text = _FRACTION.sub(_fraction, text)
    text = _DECIMAL.sub(lambda m: m.group(1).replace(".", " point "), text)
    text = _PERCENT.sub(lambda m: m.group(1).replace("%", " percent "), text)
    text = _ORDINAL.sub(lambda m: " " + _inflect().number_to_words(m.group(0)) + " ", text)
    return _INTEGER.sub(_integer, text)


def normalize_english(text: str) -> str:
    """Abbreviations expanded, then numbers spelled out (the text espeak-ng will read)."""
    for pattern, replacement in _ABBREVIATIONS:
        text = pattern.sub(replacement, text)
    return _spell_numbers(text)


# A phone string whose last character is one of these ends inside a word (no punctuation after it).
_OPEN_END = set("p⁼ʰmftnlkxʃs`ɹaoəɛɪeɑʊŋiuɥwæjː")

# espeak phones (or phone pairs, "|"-joined) and the vocabulary symbol they become, in order.
_PHONE_FOLDS = (
    ("t|ɹ", "tɹ"),
    ("d|ɹ", "dɹ"),
    ("t|s", "ts"),
    ("d|z", "dz"),
    ("ɪ|ɹ", "ɪɹ"),
    ("ɐ", "ɚ"),
    ("ᵻ", "ɪ"),
    ("əl", "l"),
    ("x", "k"),
    ("ɬ", "l"),
    ("ʔ", "t"),
    ("n̩", "n"),
    ("oː|ɹ", "oːɹ"),
)
# Each fold applies only to whole phones: bounded by the string ends, "|" or "_".
_FOLD_PATTERNS = tuple(
    (re.compile(r"(?<![^_|])" + re.escape(src) + r"(?![^_|])"), dst) for src, dst in _PHONE_FOLDS
)


def finish_english_phones(phones: str) -> str:
    """Append the open-word marker ``|_`` where needed, then fold phones into vocabulary symbols."""
    if phones and phones[-1] in _OPEN_END:
        phones += "|_"
    for pattern, replacement in _FOLD_PATTERNS:
        while True:
            folded = pattern.sub(replacement, phones)
            if folded == phones:
                break
            phones = folded
    return phones
