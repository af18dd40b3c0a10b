"""Building blocks shared by Amphion's codecs and the models built on them.

* :mod:`models.blocks.vocos`: the Vocos ConvNeXt backbone (optionally with adaptive LayerNorm) and
  the ISTFT head with its "same"-padding inverse STFT.
* :mod:`models.blocks.quantizers`: factorized vector quantization (weight-normed 1x1 projections,
  cosine matching against the codebook, raw-row lookup) and residual VQ over such stages.
* :mod:`models.blocks.snake_conv`: DAC-style Snake activation, residual units and strided encoder
  blocks made of weight-normed convolutions.

MaskGCT's semantic codec (RepCodec) and acoustic codec use them; Vevo, Metis and DualCodec reuse
them. The modules keep the parameter names of the reference classes, so ``state_dict()`` keys line
up with the official checkpoints.

Import from the submodules (``from models.blocks.vocos import VocosBackbone``); this package
imports nothing itself, so using one block never loads the others.
"""
