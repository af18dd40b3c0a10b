"""Unit tests of the MaskGCT text front end (models.text): errors, sentence splitting, empty text,
determinism, data-folder resolution. Exact phone ids are checked by the parity fixture
(tests/test_parity.py -k maskgct_g2p)."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from models.text import (
    DATA_DIR_ENV,
    G2P,
    SUPPORTED_LANGUAGES,
    G2PDataUnavailable,
    LanguageUnavailable,
    UnsupportedLanguage,
    detect_language,
    espeak_version,
    g2p_data_dir,
    normalize_language,
    segment_zh_en,
    split_sentences,
)

DATA_DIR = Path(os.environ.get(DATA_DIR_ENV) or Path(__file__).resolve().parents[2] / "shared" / "data" / "maskgct_g2p")
needs_data = pytest.mark.skipif(not (DATA_DIR / "vocab.json").is_file(), reason=f"G2P data not found at {DATA_DIR}")
needs_espeak = pytest.mark.skipif(espeak_version() is None, reason="espeak-ng cannot be loaded here")


@pytest.fixture(scope="module")
def g2p() -> G2P:
    if not (DATA_DIR / "vocab.json").is_file():
        pytest.skip(f"G2P data not found at {DATA_DIR}")
    return G2P(DATA_DIR)


# --- languages ---------------------------------------------------------------------------------


def test_unsupported_language_names_the_supported_ones():
    with pytest.raises(UnsupportedLanguage) as info:
        normalize_language("xx")
    assert isinstance(info.value, ValueError)
    for code in SUPPORTED_LANGUAGES:
        assert code in str(info.value)
    with pytest.raises(UnsupportedLanguage):
        normalize_language(None)  # type: ignore[arg-type]


def test_language_aliases():
    assert normalize_language("en-US") == "en"
    assert normalize_language("zh_CN") == "zh"
    assert normalize_language(" Mandarin ") == "zh"
    assert normalize_language("FR") == "fr"
    assert normalize_language("ko-KR") == "ko"
    assert normalize_language("ja") == "ja"


@needs_data
def test_g2p_rejects_unknown_and_japanese(g2p):
    with pytest.raises(UnsupportedLanguage, match="supported languages: zh, en"):
        g2p.phone_ids("hello", "klingon")
    with pytest.raises(LanguageUnavailable, match="pyopenjtalk") as info:
        g2p.phone_ids("こんにちは", "ja")
    assert isinstance(info.value, UnsupportedLanguage) and isinstance(info.value, ValueError)


def test_detect_language():
    assert detect_language("你好，世界") == "zh"
    assert detect_language("我喜欢用Python写code") == "zh"
    assert detect_language("こんにちは、世界") == "ja"
    assert detect_language("안녕하세요") == "ko"
    assert detect_language("Hello, how are you?") == "en"
    assert detect_language("Bonjour, je suis très content.") == "fr"
    assert detect_language("Guten Morgen, ich bin müde und das ist gut.") == "de"
    assert detect_language("1234 !!", default="zh") == "zh"


def test_segment_zh_en():
    assert segment_zh_en("……嗯，好吧Hi 你") == [("……嗯，好吧", "zh"), ("Hi ", "en"), ("你", "zh")]
    assert segment_zh_en("2024!") == [("2024!", "other")]
    assert segment_zh_en("") == []


# --- sentence splitting ------------------------------------------------------------------------


def test_split_sentences_packs_whole_sentences():
    text = "The first sentence is here. The second one follows! Is this the third? Yes, it is."
    chunks = split_sentences(text, "en", 60)
    assert all(len(c) <= 60 for c in chunks)
    assert " ".join(chunks) == text
    assert chunks[0] == "The first sentence is here. The second one follows!"
    assert split_sentences(text, "en", 1000) == [text]


def test_split_sentences_keeps_decimals_and_splits_long_sentences():
    assert split_sentences("It costs 3.50 dollars. Really.", "en", 25) == ["It costs 3.50 dollars.", "Really."]
    assert split_sentences("Back in 2020. Then 1,000 more, later.", "en", 20) == ["Back in 2020.", "Then 1,000 more,", "later."]
    long = "word " * 40
    chunks = split_sentences(long, "en", 23)
    assert all(0 < len(c) <= 23 for c in chunks)
    assert " ".join(chunks).split() == long.split()


def test_split_sentences_chinese():
    text = "今天天气很好，我们去公园散步吧！明天呢？" + "很长的句子没有标点" * 5 + "。"
    chunks = split_sentences(text, "zh", 16)
    assert chunks[0] == "今天天气很好，我们去公园散步吧！"
    assert chunks[1] == "明天呢？"
    assert all(len(c) <= 16 for c in chunks)
    assert "".join(chunks) == text
    # ASCII marks end Chinese sentences too, but a decimal point does not; no chunk starts with
    # punctuation after a hard cut.
    assert split_sentences("买了3.5斤苹果.好吃!", "zh", 9) == ["买了3.5斤苹果.", "好吃!"]
    assert split_sentences("一二三四五六七八。", "zh", 8) == ["一二三四五六七", "八。"]


def test_split_sentences_edge_cases():
    assert split_sentences("", "en", 10) == []
    assert split_sentences("   \n ", "zh", 10) == []
    assert split_sentences("One.\n\nTwo.", "auto", 100) == ["One. Two."]
    with pytest.raises(UnsupportedLanguage):
        split_sentences("hi", "xx", 10)
    with pytest.raises(ValueError):
        split_sentences("hi", "en", 0)


# --- conversion --------------------------------------------------------------------------------


@needs_data
def test_empty_text_gives_no_phones(g2p):
    for lang in ("zh", "en", "fr", "de", "ko"):
        assert g2p.phone_ids("", lang) == []
        assert g2p.phones("  \n", lang) == ""


@needs_data
@needs_espeak
def test_deterministic_and_in_vocabulary(g2p):
    samples = [("他的女儿在银行工作，长得很漂亮。", "zh"), ("我喜欢用Python写code，你呢？", "zh"),
               ("Dr. Smith paid $3.50 on March 3rd, 2021.", "en"), ("Guten Morgen!", "de")]  # fmt: skip
    first = [g2p.phone_ids(t, lang) for t, lang in samples]
    again = [g2p.phone_ids(t, lang) for t, lang in samples]
    fresh = G2P(DATA_DIR)
    assert first == again == [fresh.phone_ids(t, lang) for t, lang in samples]
    for ids in first:
        assert ids and all(0 <= i <= 362 for i in ids)
    # Concurrent callers get the same answers (espeak-ng and the ONNX session are serialised).
    results: list = [None] * 8

    def work(k: int) -> None:
        results[k] = [g2p.phone_ids(t, lang) for t, lang in samples]

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r == first for r in results)


@needs_data
@needs_espeak
def test_zh_and_en_share_one_route_and_auto(g2p):
    text = "他说English的时候很fluent。"
    assert g2p.g2p(text, "zh") == g2p.g2p(text, "en") == g2p.g2p(text, "auto")
    # Digits only: read in the requested language (the reference raises here).
    assert g2p.phones("2024", "en").startswith("t|w")
    zh_ids = g2p.phone_ids("2024", "zh")
    assert zh_ids and zh_ids != g2p.phone_ids("2024", "en")


# --- data folder -------------------------------------------------------------------------------


def test_g2p_data_dir(tmp_path, monkeypatch):
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    with pytest.raises(G2PDataUnavailable, match=DATA_DIR_ENV):
        g2p_data_dir()
    with pytest.raises(G2PDataUnavailable, match="vocab.json"):
        g2p_data_dir(tmp_path)
    (tmp_path / "vocab.json").write_text('{"vocab": {"a": 0}}', encoding="utf-8")
    assert g2p_data_dir(tmp_path) == tmp_path
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path))
    assert g2p_data_dir() == tmp_path
    # Mandarin data missing in that folder: a clear error that a route can turn into a 4xx/5xx.
    with pytest.raises(LanguageUnavailable, match="Mandarin G2P unavailable"):
        G2P().phone_ids("你好", "zh")
