"""What the four SVC models share around their networks: the ``[condition_encoder, acoustic_mapper]``
layout of three of them (:class:`ConditionedSVC`, the checkpoint's ``0.`` / ``1.`` keys), building one
in eval mode from a strict state dict or seeded random weights (:func:`build_svc_model`), and loading
an Amphion experiment folder with its singer table (:func:`load_svc_run`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import torch
import torch.nn as nn

from models.core.checkpoints import load_generator_state, load_state_dict_file
from models.core.random_init import init_random_weights
from models.svc.condition_encoder import ConditionEncoder
from models.svc.experiment import check_singer_table, read_amphion_run

__all__ = ["ConditionedSVC", "build_svc_model", "load_svc_run"]

M = TypeVar("M", bound=nn.Module)


class ConditionedSVC(nn.ModuleList):
    """``[condition_encoder, acoustic_mapper]`` as a ModuleList (the checkpoint's ``0.`` / ``1.`` keys).
    ``config.condition_encoder`` builds the first; ``singers`` (name -> spk_id) is the checkpoint's
    ``singers.json``, filled by :func:`load_svc_run`."""

    def __init__(self, config: Any, acoustic_mapper: nn.Module) -> None:
        super().__init__([ConditionEncoder(config.condition_encoder), acoustic_mapper])
        self.config = config
        self.singers: dict[str, int] = {}

    @property
    def condition_encoder(self) -> ConditionEncoder:
        return self[0]

    @property
    def acoustic_mapper(self) -> nn.Module:
        return self[1]


def build_svc_model(model: M, state_dict: Mapping[str, torch.Tensor] | None, *, seed: int, source: str,
                    device: str | torch.device, init_rules: Sequence = (),
                    after_load: Callable[[M], None] | None = None) -> M:
    """``model`` in eval mode on ``device``: with a ``state_dict`` loaded strictly (missing, unexpected and
    mis-shaped keys named; ``module.`` prefixes dropped), else seeded random weights (``init_rules``);
    then ``after_load`` (VitsSVC folds its weight norm)."""
    if state_dict is None:
        init_random_weights(model, seed, rules=tuple(init_rules))
    else:
        load_generator_state(model, state_dict, source=source)
    if after_load is not None:
        after_load(model)
    return model.eval().to(device)


def load_svc_run(folder: str | Path, parse_config: Callable[[Mapping[str, Any]], Any],
                 build: Callable[..., M], singer_table_size: Callable[[Any], int],
                 device: str | torch.device = "cpu") -> M:
    """An Amphion experiment folder (``args.json``, the newest ``checkpoint/*/`` model file, ``singers.json``)
    -> ``build(config, state_dict, source=, device=)`` with its singer table checked against the
    model's (``singer_table_size(config)``) and kept on ``model.singers``."""
    run = read_amphion_run(folder)
    config = parse_config(run.args)
    check_singer_table(run.singers, singer_table_size(config), str(run.folder))
    model = build(config, load_state_dict_file(run.weights), source=str(run.weights), device=device)
    model.singers = dict(run.singers)
    return model
