"""Vevo (amphion/Vevo): HuBERT front end, vq32 / vq8192 tokenizers, the AR content-style transformer,
the flow-matching acoustic transformer, Vevo's mel and its Vocos vocoder.

Import the submodules directly (``models.vevo.<module>``); this package keeps no re-exports so that
each part can be loaded (and deployed) on its own.
"""
