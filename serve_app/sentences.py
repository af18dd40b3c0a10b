"""Splitting a TTS text into sentences, the units a streamed answer is made of.

A sentence ends at ``.``, ``!``, ``?`` or ``…`` followed by white space (closing quotes and
brackets stay with it; "3.14" and "e.g.x" do not split), or at the CJK ``。``, ``！``, ``？``
(no space needed). Fragments shorter than :data:`MIN_SENTENCE_CHARS` letters ("Hi.", "Mr.",
"No!", "好的。") stay attached to the sentence after them (the last one to the sentence before),
so that no model call speaks a syllable alone. Every sentence is a slice of the text: together
they give it back, less the white space between them.
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["MIN_SENTENCE_CHARS", "split_sentences"]

#: Non-space characters a sentence needs to stand alone (a CJK character counts as a few).
MIN_SENTENCE_CHARS = 10
_WIDE_WEIGHT = 3

_CLOSERS = re.escape("\"'”’»)]}」』）】")
# Where a sentence ends (the match's end): Latin marks need white space (or the end) after them and
# their closing quotes/brackets; CJK marks end a sentence where they stand.
_SENTENCE_END = re.compile(rf"[.!?…][{_CLOSERS}]*(?=\s|$)|[。！？][{_CLOSERS}]*")


def _weight(piece: str) -> int:
    """Letters, with a CJK character (about a syllable) counted as :data:`_WIDE_WEIGHT` of them."""
    return sum(_WIDE_WEIGHT if unicodedata.east_asian_width(ch) in "WF" else 1
               for ch in piece if not ch.isspace())


def split_sentences(text: str, min_chars: int = MIN_SENTENCE_CHARS) -> list[str]:
    """The sentences of ``text`` in order, stripped, short fragments merged; ``[]`` for blank text.
    Merged fragments keep the text between them as it was (no space is added between CJK sentences)."""
    cuts = [m.end() for m in _SENTENCE_END.finditer(text)]
    spans = [(a, b) for a, b in zip([0] + cuts, cuts + [len(text)]) if text[a:b].strip()]

    merged: list[tuple[int, int]] = []
    pending: int | None = None                    # start of short fragments waiting for a sentence
    for a, b in spans:
        a = a if pending is None else pending
        if _weight(text[a:b]) < min_chars:
            pending = a
            continue
        merged.append((a, b))
        pending = None
    if pending is not None:
        if merged:
            merged[-1] = (merged[-1][0], len(text))
        else:
            merged.append((pending, len(text)))
    return [text[a:b].strip() for a, b in merged]
