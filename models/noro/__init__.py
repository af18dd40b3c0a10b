"""Noro (Amphion's noise-robust one-shot voice conversion), plain PyTorch.

Deployments use :class:`NoroPipeline` (``from_weights`` / ``from_folder`` / ``tiny``; ``convert`` or
its pieces). The modules: ``models/noro/README.md``.
"""

from models.noro.configs import (
    DEFAULT_SIGMA,
    DEFAULT_STEPS,
    SIGMA_RANGE,
    STEPS_RANGE,
    NoroConfig,
    official_config,
    parse_noro_config,
    tiny_config,
)
from models.noro.model import NoroVC, build_noro_model, load_noro_model
from models.noro.official import OFFICIAL_FILES
from models.noro.pipeline import SAMPLE_RATE, NoroInputError, NoroPipeline, missing_files

__all__ = [
    "DEFAULT_SIGMA",
    "DEFAULT_STEPS",
    "OFFICIAL_FILES",
    "SAMPLE_RATE",
    "SIGMA_RANGE",
    "STEPS_RANGE",
    "NoroConfig",
    "NoroInputError",
    "NoroPipeline",
    "NoroVC",
    "build_noro_model",
    "load_noro_model",
    "missing_files",
    "official_config",
    "parse_noro_config",
    "tiny_config",
]
