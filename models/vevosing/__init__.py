"""Vevo1.5 / VevoSing (amphion/Vevo1.5): Whisper and chromagram front ends, the Coco content-style
and prosody tokenizers, and the flow-matching transformer with resampling layers.

Import the submodules directly (``models.vevosing.<module>``); shared parts (DiffLlama, Vocos, the
mel) come from ``models.blocks`` and ``models.vevo``.
"""
