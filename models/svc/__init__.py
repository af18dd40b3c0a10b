"""The Amphion SVC recipes (MultipleContentsSVC, DiffComoSVC, TransformerSVC, VitsSVC): their shared
front ends (mel, energy, F0, Whisper and ContentVec features), the ConditionEncoder they all use, and
the acoustic models. See ``models/svc/README.md``.

Import from the submodules; this package imports nothing itself.
"""
