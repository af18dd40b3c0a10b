"""Mandarin G2P of MaskGCT: Chinese text -> IPA-like phones with tone arrows.

Steps (behaviour of Amphion's ``models/tts/maskgct/g2p/g2p/mandarin.py``, our own code):

1. Arabic numerals -> Chinese numerals (``cn2an.transform(..., "an2cn")``).
2. Punctuation -> ASCII, whitespace and everything that is neither a CJK ideograph nor one of
   ``_,.?!;:'…`` removed.
3. jieba word segmentation, then 一 / 不 / 儿 merged with their neighbours.
4. Per word: the lexicon's pinyin (whole word) unless the word is a single polyphonic character;
   otherwise per character: polyphonic characters through the ONNX BERT, the rest through the
   lexicon. Pinyin -> bopomofo with tone marks, then third-tone, 不, 一 and 儿 sandhi.
5. Bopomofo -> IPA-like symbols, tones as arrows after the final (→ ↑ ↓↑ ↓), ``|`` between phones.

The reference's quirks are kept on purpose (they decide the ids the T2S model was trained on).
"""

from __future__ import annotations

import re
import threading
from pathlib import Path

from .espeak import PUNCTUATION_TO_ASCII
from .polyphone import PolyphoneBert

__all__ = ["Mandarin", "MANDARIN_DATA_FILES"]

#: Files (relative to the G2P data folder) the Mandarin front end reads.
MANDARIN_DATA_FILES = (
    "sources/chinese_lexicon.txt",
    "sources/pinyin_2_bpmf.txt",
    "sources/g2p_chinese_model/polychar.txt",
    "sources/g2p_chinese_model/polydict.json",
    "sources/g2p_chinese_model/vocab.txt",
    "sources/g2p_chinese_model/poly_bert_model.onnx",
)

# Tone digit of the lexicon -> bopomofo tone mark (tone 1 gets its mark "ˉ" at the very end).
_TONE_MARKS = {"0": "˙", "5": "˙", "1": "", "2": "ˊ", "3": "ˇ", "4": "ˋ"}
_TONES = "˙ˊˇˋ"

# Words ending in 儿 that keep the full tone on 儿.
_KEEP_ER = frozenset({"女儿", "老儿", "男儿", "少儿", "小儿"})
_DIGITS_AFTER_YI = frozenset("零一二三四五六七八九十")
_YI_STOP = frozenset("：，；。？！“”‘’':,;.?!()（）{}【】[]-~`、 ")

# Full-width and multi-dot punctuation -> the ASCII marks the phone set knows (shared with espeak).
_FULLWIDTH = PUNCTUATION_TO_ASCII
_WHITESPACE = re.compile(r"\s+")
_NOT_KEPT = re.compile(r"[^\u4e00-\u9fff\s_,.?!;:'…]")
_AROUND_MARK = re.compile(r"\s*([,.?!;:'…])\s*")
_HAN = re.compile(r"[\u4e00-\u9fff]")
_ENDS_IN_BOPOMOFO = re.compile(r"([\u3105-\u3129])$")

# Latin letters spelled in bopomofo (only reachable when a Latin letter survives normalisation).
_LATIN_BOPOMOFO = {
    "a": "ㄟˉ", "b": "ㄅㄧˋ", "c": "ㄙㄧˉ", "d": "ㄉㄧˋ", "e": "ㄧˋ", "f": "ㄝˊㄈㄨˋ", "g": "ㄐㄧˋ",
    "h": "ㄝˇㄑㄩˋ", "i": "ㄞˋ", "j": "ㄐㄟˋ", "k": "ㄎㄟˋ", "l": "ㄝˊㄛˋ", "m": "ㄝˊㄇㄨˋ",
    "n": "ㄣˉ", "o": "ㄡˉ", "p": "ㄆㄧˉ", "q": "ㄎㄧㄡˉ", "r": "ㄚˋ", "s": "ㄝˊㄙˋ", "t": "ㄊㄧˋ",
    "u": "ㄧㄡˉ", "v": "ㄨㄧˉ", "w": "ㄉㄚˋㄅㄨˋㄌㄧㄡˋ", "x": "ㄝˉㄎㄨˋㄙˋ", "y": "ㄨㄞˋ", "z": "ㄗㄟˋ",
}  # fmt: skip
_LATIN = re.compile(r"[A-Za-z]")

# Bopomofo (and tone marks) -> IPA-like symbols; applied in this order, each to the whole string.
_BOPOMOFO_IPA = (
    ("ㄅㄛ", "p⁼wo"), ("ㄆㄛ", "pʰwo"), ("ㄇㄛ", "mwo"), ("ㄈㄛ", "fwo"),
    ("ㄧㄢ", "|jɛn"), ("ㄩㄢ", "|ɥæn"), ("ㄧㄣ", "|in"), ("ㄩㄣ", "|ɥn"), ("ㄧㄥ", "|iŋ"),
    ("ㄨㄥ", "|ʊŋ"), ("ㄩㄥ", "|jʊŋ"), ("ㄧㄚ", "|ia"), ("ㄧㄝ", "|iɛ"), ("ㄧㄠ", "|iɑʊ"),
    ("ㄧㄡ", "|ioʊ"), ("ㄧㄤ", "|iɑŋ"), ("ㄨㄚ", "|ua"), ("ㄨㄛ", "|uo"), ("ㄨㄞ", "|uaɪ"),
    ("ㄨㄟ", "|ueɪ"), ("ㄨㄢ", "|uan"), ("ㄨㄣ", "|uən"), ("ㄨㄤ", "|uɑŋ"), ("ㄩㄝ", "|ɥɛ"),
    ("ㄅ", "p⁼"), ("ㄆ", "pʰ"), ("ㄇ", "m"), ("ㄈ", "f"), ("ㄉ", "t⁼"), ("ㄊ", "tʰ"), ("ㄋ", "n"),
    ("ㄌ", "l"), ("ㄍ", "k⁼"), ("ㄎ", "kʰ"), ("ㄏ", "x"), ("ㄐ", "tʃ⁼"), ("ㄑ", "tʃʰ"), ("ㄒ", "ʃ"),
    ("ㄓ", "ts`⁼"), ("ㄔ", "ts`ʰ"), ("ㄕ", "s`"), ("ㄖ", "ɹ`"), ("ㄗ", "ts⁼"), ("ㄘ", "tsʰ"),
    ("ㄙ", "|s"), ("ㄚ", "|a"), ("ㄛ", "|o"), ("ㄜ", "|ə"), ("ㄝ", "|ɛ"), ("ㄞ", "|aɪ"),
    ("ㄟ", "|eɪ"), ("ㄠ", "|ɑʊ"), ("ㄡ", "|oʊ"), ("ㄢ", "|an"), ("ㄣ", "|ən"), ("ㄤ", "|ɑŋ"),
    ("ㄥ", "|əŋ"), ("ㄦ", "əɹ"), ("ㄧ", "|i"), ("ㄨ", "|u"), ("ㄩ", "|ɥ"),
    ("ˉ", "→|"), ("ˊ", "↑|"), ("ˇ", "↓↑|"), ("ˋ", "↓|"), ("˙", "|"),
)  # fmt: skip

# Syllabic-consonant vowel "ɹ" after retroflex and dental sibilants with no written final.
_RETROFLEX_BARE = re.compile(r"([sɹ]`[⁼ʰ]?)([→↓↑ ]+|$)")
_DENTAL_BARE = re.compile(r"([s][⁼ʰ]?)([→↓↑ ]+|$)")
_STRAY = re.compile(r"^\||[^\w\s_,.?!;:'…|→↓↑⁼ʰ`]")
_PUNCT = re.compile(r"([,.?!;:'…])")
_BARS = re.compile(r"\|+")


def _retone(syllable: str, mark: str) -> str:
    """Replace the syllable's tone mark (or add one when it has none)."""
    if syllable[-1] in _TONES:
        return syllable[:-1] + mark
    return syllable + mark


def _merge_yi(words: list[str]) -> list[str]:
    # "X 一 X" (e.g. 看一看) becomes one word. The merged word is written at position i-1 of the
    # output list, which only equals the previous word while no merge has shortened the list yet.
    merged: list[str] = []
    n = len(words)
    for i, word in enumerate(words):
        if word == "一" and 0 < i < n - 1 and words[i - 1] == words[i + 1]:
            if i - 1 < len(merged):
                merged[i - 1] = merged[i - 1] + "一" + merged[i - 1]
            else:
                merged.extend((word, words[i + 1]))
        elif i >= 2 and words[i - 1] == "一" and words[i - 2] == word:
            continue
        else:
            merged.append(word)
    # A lone 一 is glued to the word after it.
    out: list[str] = []
    for word in merged:
        if out and out[-1] == "一":
            out[-1] += word
        else:
            out.append(word)
    return out


def _merge_bu(words: list[str]) -> list[str]:
    # 不 is glued to the word after it (a trailing 不 is dropped, runs of 不 collapse into one).
    out: list[str] = []
    previous = ""
    for word in words:
        if word != "不":
            if previous == "不":
                word = "不" + word
            out.append(word)
        previous = word
    return out


def _merge_er(words: list[str]) -> list[str]:
    out: list[str] = []
    for i, word in enumerate(words):
        if i > 0 and word == "儿":
            out[-1] += word
        else:
            out.append(word)
    return out


def _bu_sandhi(word: str, syl: list[str]) -> None:
    if set(word) == {"不"} or word == "不字":
        return
    if len(word) == 3 and word[1] == "不" and syl[1][:-1] == "ㄅㄨ":
        syl[1] = syl[1][:-1] + "˙"
        return
    for i, ch in enumerate(word):
        if ch == "不" and i + 1 < len(syl) and i + 1 < len(word) and syl[i + 1] and syl[i + 1][-1] == "ˋ":
            syl[i] = syl[i][:-1] + "ˊ"


def _yi_sandhi(word: str, syl: list[str]) -> None:
    if "一" in word and any(ch.isnumeric() for ch in word if ch != "一"):
        # 一 inside a number: tone 1, except a leading 一 before a non-digit.
        for i, ch in enumerate(word):
            if i == 0 and ch == "一" and len(word) > 1 and word[1] not in _DIGITS_AFTER_YI:
                falling_next = bool(syl[0]) and syl[1][-1] in ("ˋ", "˙")
                syl[0] = _retone(syl[0], "ˊ" if falling_next else "ˋ")
            elif ch == "一":
                syl[i] = _retone(syl[i], "")
    elif len(word) == 3 and word[1] == "一" and word[0] == word[-1]:
        syl[1] = _retone(syl[1], "˙")
    elif word.startswith("第一"):
        syl[1] = _retone(syl[1], "")
    elif word.startswith(("一月", "一日", "一号")):
        syl[0] = _retone(syl[0], "")
    else:
        for i, ch in enumerate(word):
            if ch != "一" or i + 1 >= len(word):
                continue
            if len(syl) > i + 1 and syl[i + 1] and syl[i + 1][-1] == "ˋ":
                syl[i] = _retone(syl[i], "ˊ")
            elif word[i + 1] not in _YI_STOP:
                syl[i] = _retone(syl[i], "ˋ")


def _er_sandhi(word: str, syl: list[str]) -> None:
    if len(word) > 1 and word[-1] == "儿" and word not in _KEEP_ER:
        syl[-1] = _retone(syl[-1], "˙")


def _normalize(text: str) -> str:
    for src, dst in _FULLWIDTH:
        text = text.replace(src, dst)
    text = _WHITESPACE.sub("", text)
    text = _NOT_KEPT.sub("", text)
    return _AROUND_MARK.sub(r"\1", text)


class Mandarin:
    """Loads the lexicon, the pinyin->bopomofo table and the polyphone BERT from the data folder."""

    def __init__(self, data_dir: str | Path) -> None:
        import cn2an  # noqa: F401 - fail early when a dependency is missing
        import jieba

        data_dir = Path(data_dir)
        missing = [f for f in MANDARIN_DATA_FILES if not (data_dir / f).is_file()]
        if missing:
            raise FileNotFoundError(f"Mandarin G2P data missing under {data_dir}: {', '.join(missing)}")
        sources = data_dir / "sources"
        self._lexicon = self._read_table(sources / "chinese_lexicon.txt")
        self._bopomofo = self._read_table(sources / "pinyin_2_bpmf.txt")
        with open(sources / "g2p_chinese_model" / "polychar.txt", encoding="utf-8") as f:
            self._polyphonic = frozenset(line.rstrip("\n") for line in f)
        self._bert = PolyphoneBert(sources / "g2p_chinese_model")
        # A tokenizer of our own with jieba's default dictionary (the global one could be altered
        # by other code in the process).
        jieba.setLogLevel(60)
        self._jieba = jieba.Tokenizer()
        self._jieba_lock = threading.Lock()
        with self._jieba_lock:
            self._jieba.initialize()

    @staticmethod
    def _read_table(path: Path) -> dict[str, str]:
        table: dict[str, str] = {}
        with open(path, encoding="utf-8") as f:
            for line in f:
                key, value = line.strip().split("\t")
                table[key] = value
        return table

    def _syllable(self, pinyin: str) -> str:
        return self._bopomofo[pinyin[:-1]] + _TONE_MARKS[pinyin[-1]]

    def _word_bopomofo(self, word: str, sentence: str, offset: int) -> list[str]:
        syl: list[str] = []
        if word in self._lexicon and word not in self._polyphonic:
            for py in self._lexicon[word].split(" "):
                if py[:-1] in self._bopomofo and py[-1] in _TONE_MARKS:
                    syl.append(self._syllable(py))
                else:  # not in the table: pypinyin reads the whole word (again for each miss)
                    from pypinyin import Style, lazy_pinyin

                    syl.extend(lazy_pinyin(word, Style.BOPOMOFO))
            return syl
        for i, ch in enumerate(word):
            if ch in self._polyphonic:
                syl.append(self._syllable(self._bert.pinyin(sentence, offset + i)))
            elif ch in self._lexicon:
                syl.append(self._syllable(self._lexicon[ch]))
            else:
                syl.append(ch)
        return syl

    def _to_bopomofo(self, sentence: str) -> str:
        with self._jieba_lock:
            words = self._jieba.lcut(sentence, cut_all=False, HMM=True)
        words = _merge_er(_merge_bu(_merge_yi(words)))
        out = ""
        offset = 0
        for word in words:
            syl = self._word_bopomofo(word, sentence, offset)
            offset += len(word)
            if len(syl) >= 2 and syl[0][-1:] == "ˇ" and syl[1][-1:] == "ˇ":
                if len(word) == 3 and syl[-1][-1:] == "ˇ":
                    # The mark is appended, not substituted (as the reference does).
                    syl[0] += "ˊ"
                    syl[1] += "ˊ"
            if len(word) == 2 and syl and syl[0][-1:] == "ˇ" and syl[-1][-1:] == "ˇ":
                syl[0] = syl[0][:-1] + "ˊ"
            _bu_sandhi(word, syl)
            _yi_sandhi(word, syl)
            _er_sandhi(word, syl)
            if not _HAN.search(word):
                out += "|" + word
                continue
            syl = [_ENDS_IN_BOPOMOFO.sub(r"\1ˉ", s) for s in syl]
            if out:
                out += "|"
            out += "|".join(syl)
        return out

    def phones(self, text: str) -> str:
        """The ``|``-separated phone string of a Mandarin text run (no trailing ``|``)."""
        import cn2an

        text = cn2an.transform(text.strip(), "an2cn")
        text = _normalize(text)
        text = self._to_bopomofo(text)
        text = _LATIN.sub(lambda m: _LATIN_BOPOMOFO[m.group(0).lower()], text)
        for src, dst in _BOPOMOFO_IPA:
            text = text.replace(src, dst)
        text = _RETROFLEX_BARE.sub(r"\1ɹ\2", text)
        text = _DENTAL_BARE.sub(r"\1ɹ\2", text)
        text = _STRAY.sub("", text)
        text = _PUNCT.sub(r"|\1|", text)
        return _BARS.sub("|", text).rstrip("|")
