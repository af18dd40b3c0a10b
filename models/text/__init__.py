"""Text front ends. :class:`G2P` is MaskGCT's: text -> phone ids over its 363-symbol vocabulary
(Mandarin with embedded English, English, French, German, Korean; Japanese is refused with
:class:`LanguageUnavailable`). Its data files are found by :func:`g2p_data_dir`.
"""

from models.text.espeak import EspeakUnavailable, espeak_version
from models.text.g2p import (
    DATA_DIR_ENV,
    DATA_FILES,
    G2P,
    KNOWN_LANGUAGES,
    REFERENCE_COMMIT,
    SUPPORTED_LANGUAGES,
    G2PDataUnavailable,
    LanguageUnavailable,
    UnsupportedLanguage,
    detect_language,
    g2p_data_dir,
    normalize_language,
    segment_zh_en,
    split_sentences,
)

__all__ = [
    "DATA_DIR_ENV",
    "DATA_FILES",
    "G2P",
    "KNOWN_LANGUAGES",
    "REFERENCE_COMMIT",
    "SUPPORTED_LANGUAGES",
    "EspeakUnavailable",
    "G2PDataUnavailable",
    "LanguageUnavailable",
    "UnsupportedLanguage",
    "detect_language",
    "espeak_version",
    "g2p_data_dir",
    "normalize_language",
    "segment_zh_en",
    "split_sentences",
]
