"""The sound-event classes PicoAudio was trained on, and the words that name them in a caption.

:data:`EVENT_CLASSES` is data copied from the reference, in its order: the list returned by
``get_event_list()`` in ``picoaudio/data/filter_data.py`` of zeyuxie29/PicoAudio (commit 0fbeb85;
the same file is in Amphion's ``models/tta/picoaudio/``). A class's position is its row in the
onset matrix (32 rows, 18 used). The released training captions (``data/meta_data/train.json``)
spell the same classes with spaces ("door slamming", "thump thud").

:data:`CAPTION_WORDS` is ours: for each class, the words that identify it in a free caption
("a dog barks", "someone sneezes"), used by :func:`models.picoaudio.timestamps.parse_text`.
"""

from __future__ import annotations

import re

__all__ = ["CAPTION_WORDS", "EVENT_CLASSES", "canonical_event", "events", "event_id"]

#: PicoAudio's event classes, in the reference order (index = onset-matrix row).
EVENT_CLASSES: tuple[str, ...] = (
    "burping_belching",
    "car_horn_honking",
    "cat_meowing",
    "cow_mooing",
    "dog_barking",
    "door_knocking",
    "door_slamming",
    "explosion",
    "gunshot",
    "sheep_goat_bleating",
    "sneeze",
    "spraying",
    "thump_thud",
    "train_horn",
    "tapping_clicking_clanking",
    "woman_laughing",
    "duck_quacking",
    "whistling",
)

#: Regular expressions (word-initial, case-insensitive) that name each class in a caption.
CAPTION_WORDS: dict[str, str] = {
    "burping_belching": r"burp\w*|belch\w*",
    "car_horn_honking": r"car[\s_-]+horns?|honk\w*",
    "cat_meowing": r"cats?\b|kittens?\b|meow\w*|miaow\w*",
    "cow_mooing": r"cows?\b|cattle\b|moo(?:s|ing|ed)?\b",
    "dog_barking": r"dogs?\b|pupp(?:y|ies)\b|bark\w*|woof\w*",
    "door_knocking": r"knock\w*",
    "door_slamming": r"slam\w*",
    "explosion": r"explo(?:sions?|des?|ding|ded)\b|blasts?\b|bombs?\b|boom\w*",
    "gunshot": r"gun\w*|shots?\b|shooting\b|fires? a gun",
    "sheep_goat_bleating": r"sheep\b|goats?\b|bleat\w*|lambs?\b",
    "sneeze": r"sneez\w*",
    "spraying": r"spray\w*",
    "thump_thud": r"thump\w*|thud\w*",
    "train_horn": r"train[\s_-]+horns?|trains?\b",
    "tapping_clicking_clanking": r"tap(?:s|ping|ped)?\b|click\w*|clank\w*|clink\w*",
    "woman_laughing": r"laugh\w*|giggl\w*|chuckl\w*",
    "duck_quacking": r"ducks?\b|quack\w*",
    "whistling": r"whistl\w*",
}

_IDS = {name: i for i, name in enumerate(EVENT_CLASSES)}


def events() -> tuple[str, ...]:
    """The event classes the model knows (PicoAudio's names, e.g. ``"dog_barking"``)."""
    return EVENT_CLASSES


def canonical_event(name: str) -> str | None:
    """The class a name spells (case, spaces, hyphens and underscores ignored), or None."""
    key = re.sub(r"[\s_-]+", "_", name.strip().lower())
    return key if key in _IDS else None


def event_id(name: str) -> int:
    """The onset-matrix row of a canonical class name (KeyError for any other name)."""
    return _IDS[name]
