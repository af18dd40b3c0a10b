"""Building blocks shared by Amphion's codecs and the models built on them (Vocos, factorized VQ,
DAC-style convs, DiffLlama, masked generation, alias-free activations), with the reference classes'
parameter names so that ``state_dict()`` keys line up with the official checkpoints.

Import from the submodules (``from models.blocks.vocos import VocosBackbone``); this package
imports nothing itself, so using one block never loads the others. Which model uses what, and the
reference behaviour each block reproduces: ``models/blocks/README.md``.
"""
