"""Text normalisation of MaskGCT's French, German and Korean G2P, before espeak-ng.

Behaviour follows Amphion's ``models/tts/maskgct/g2p/g2p/{french,german,korean}.py``: French
expands a list of abbreviations; French and German map CJK/typographic punctuation to ASCII (an
ellipsis becomes a full stop), drop brackets and quotes, turn ``;``/``:`` into commas and hyphens
into spaces; Korean drops Han characters and reads a few upper-case Latin words and letters in
Hangul.
"""

from __future__ import annotations

import re

__all__ = ["normalize_french", "normalize_german", "normalize_korean"]


# --- French and German -------------------------------------------------------------------------

# The patterns are regular expressions as written (so the "." inside "N.B" or "p.c.q" matches any
# character): the first group needs a full stop after the abbreviation and ignores case, the
# second matches the bare title, case-sensitively. Applied in this order.
_FR_DOTTED = (
    ("M", "monsieur"),
    ("Mlle", "mademoiselle"),
    ("Mlles", "mesdemoiselles"),
    ("Mme", "Madame"),
    ("Mmes", "Mesdames"),
    ("N.B", "nota bene"),
    ("M", "monsieur"),
    ("p.c.q", "parce que"),
    ("Pr", "professeur"),
    ("qqch", "quelque chose"),
    ("rdv", "rendez-vous"),
    ("max", "maximum"),
    ("min", "minimum"),
    ("no", "numéro"),
    ("adr", "adresse"),
    ("dr", "docteur"),
    ("st", "saint"),
    ("co", "companie"),
    ("jr", "junior"),
    ("sgt", "sergent"),
    ("capt", "capitain"),
    ("col", "colonel"),
    ("av", "avenue"),
    ("av. J.-C", "avant Jésus-Christ"),
    ("apr. J.-C", "après Jésus-Christ"),
    ("art", "article"),
    ("boul", "boulevard"),
    ("c.-à-d", "c’est-à-dire"),
    ("etc", "et cetera"),
    ("ex", "exemple"),
    ("excl", "exclusivement"),
    ("boul", "boulevard"),
)
_FR_BARE = (
    ("Mlle", "mademoiselle"),
    ("Mlles", "mesdemoiselles"),
    ("Mme", "Madame"),
    ("Mmes", "Mesdames"),
)
_FR_ABBREVIATIONS = tuple((re.compile(rf"\b{a}\.", re.IGNORECASE), b) for a, b in _FR_DOTTED) + tuple(
    (re.compile(rf"\b{a}"), b) for a, b in _FR_BARE
)

# Punctuation and typography -> ASCII punctuation (or nothing). One pass, longest key first where
# keys share a prefix ("..." is the only multi-character key).
_PUNCT_MAP = {
    "：": ",",
    "；": ",",
    "，": ",",
    "。": ".",
    "！": "!",
    "？": "?",
    "\n": ".",
    "·": ",",
    "、": ",",
    "...": ".",
    "…": ".",
    "$": ".",
    "“": "",
    "”": "",
    "‘": "",
    "’": "",
    "（": "",
    "）": "",
    "(": "",
    ")": "",
    "《": "",
    "》": "",
    "【": "",
    "】": "",
    "[": "",
    "]": "",
    "—": "",
    "～": "-",
    "~": "-",
    "「": "",
    "」": "",
    "¿": "",
    "¡": "",
}
_PUNCT_RE = re.compile("|".join(re.escape(k) for k in _PUNCT_MAP))
_AUX_SYMBOLS = re.compile(r"[<>()\[\]\"«»]+")
_LEADING_PUNCT = re.compile(r"^[,.!?]+")
_WHITESPACE = re.compile(r"\s+")


def _normalize_european(text: str, symbol_map: tuple[tuple[str, str], ...]) -> str:
    text = _PUNCT_RE.sub(lambda m: _PUNCT_MAP[m.group(0)], text)
    for src, dst in symbol_map:
        text = text.replace(src, dst)
    text = _AUX_SYMBOLS.sub("", text)
    text = _LEADING_PUNCT.sub("", text)
    return _WHITESPACE.sub(" ", text).strip()


_DE_SYMBOLS = ((";", ","), ("-", " "), (":", ","))
_FR_SYMBOLS = _DE_SYMBOLS + (("&", " et "),)


def normalize_french(text: str) -> str:
    for pattern, replacement in _FR_ABBREVIATIONS:
        text = pattern.sub(replacement, text)
    return _normalize_european(text, _FR_SYMBOLS)


def normalize_german(text: str) -> str:
    return _normalize_european(text, _DE_SYMBOLS)


# --- Korean ------------------------------------------------------------------------------------

# Han ideographs and CJK radicals/marks (the same code point ranges as the reference's class).
_HAN = re.compile(
    "["
    "\u2e80-\u2e99\u2e9b-\u2ef3\u2f00-\u2fd5\u3005\u3007\u3021-\u3029\u3038-\u303a\u303b"
    "\u3400-\u4db5\u4e00-\u9fc3\u8c48-\u9db4\u4fae-\u983b\u4e26-\u9f8e"
    "]"
)
# Upper-case Latin words (and single letters) read in Hangul; other Latin words stay as they are.
_KO_LATIN = {
    "KOREA": "코리아",
    "IDOL": "아이돌",
    "IT": "아이티",
    "IQ": "아이큐",
    "UP": "업",
    "DOWN": "다운",
    "PC": "피씨",
    "CCTV": "씨씨티비",
    "SNS": "에스엔에스",
    "AI": "에이아이",
    "CEO": "씨이오",
    "A": "에이",
    "B": "비",
    "C": "씨",
    "D": "디",
    "E": "이",
    "F": "에프",
    "G": "지",
    "H": "에이치",
    "I": "아이",
    "J": "제이",
    "K": "케이",
    "L": "엘",
    "M": "엠",
    "N": "엔",
    "O": "오",
    "P": "피",
    "Q": "큐",
    "R": "알",
    "S": "에스",
    "T": "티",
    "U": "유",
    "V": "브이",
    "W": "더블유",
    "X": "엑스",
    "Y": "와이",
    "Z": "제트",
}
_LATIN_WORD = re.compile(r"[A-Za-z]+")


def normalize_korean(text: str) -> str:
    text = _HAN.sub("", text.strip())
    text = _LATIN_WORD.sub(lambda m: _KO_LATIN.get(m.group(0), m.group(0)), text)
    return text.lower()
