"""The ground floor every model family builds on: pure PyTorch, no serving code.

* :mod:`models.core.checkpoints`: reading state-dict files and loading them strictly, with errors
  that name the offending keys.
* :mod:`models.core.configs`: lenient (json5-style) JSON and the configuration error.
* :mod:`models.core.weight_norm`: weight-normalised convolutions with the checkpoints' parameter names.
* :mod:`models.core.random_init`: seeded random weights for the tiny builds.
* :mod:`models.core.stages`: what a family's orchestration shares (arrays across handles, the random
  state across stages, running stages inline).
* :mod:`models.core.checks`: checks of a request's plain values and recordings.
* :mod:`models.core.prompt_cache`: prompt encodings kept per reference recording between requests.

Import from the submodules; this package imports nothing itself.
"""
