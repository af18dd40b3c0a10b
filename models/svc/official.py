"""Where the Amphion SVC models' weights live (for ``models.weights.resolve`` / ``download``).

* MultipleContentsSVC has an official release, HF ``amphion/singing_voice_conversion`` (MIT): the Amphion
  experiment folder ``vocalist_l1_contentvec+whisper/`` (:data:`MULTIPLECONTENTS_FILES`). Only the
  model's files are fetched: ``args.json``, ``singers.json`` and the model of the accelerate state
  folder (``pytorch_model.bin``, 125 MB), not its optimiser / scheduler / RNG states or ``log/``.
  The per-singer statistics under ``data/`` (mel extrema, F0 medians) are a separate entry
  (:data:`MULTIPLECONTENTS_STATS_FILES`).
* DiffComoSVC, TransformerSVC and VitsSVC have none: :data:`LOCAL_RUNS` names where an operator puts a folder laid out like an Amphion
  training run (``args.json``, ``singers.json``, ``checkpoint/<epoch-..._step-..._loss-...>/``), and
  :func:`find_run_folder` finds it or raises WeightsUnavailable saying which folder is missing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from models.weights import WEIGHTS_DIR_ENV, HubFiles, WeightsUnavailable

__all__ = [
    "LOCAL_RUNS",
    "LocalRun",
    "MULTIPLECONTENTS_DIR",
    "MULTIPLECONTENTS_FILES",
    "MULTIPLECONTENTS_STATS_FILES",
    "RUN_PATTERNS",
    "SVC_REPO",
    "find_run_folder",
]

SVC_REPO = "amphion/singing_voice_conversion"
#: The experiment folder of the release inside :data:`SVC_REPO`.
MULTIPLECONTENTS_DIR = "vocalist_l1_contentvec+whisper"
#: Accelerate names the first prepared model ``pytorch_model.bin`` (``model.safetensors`` with safe
#: serialisation); ``*model.*`` matches those two and not ``optimizer.bin`` or a second model's ``model_1.*``.
_ACCELERATE_MODEL = "checkpoint/*/*model.*"
#: What an Amphion experiment folder must hold for the acoustic model to load.
RUN_PATTERNS: tuple[str, ...] = ("args.json", "singers.json", _ACCELERATE_MODEL)

MULTIPLECONTENTS_FILES = HubFiles(
    repo_id=SVC_REPO,
    patterns=tuple(f"{MULTIPLECONTENTS_DIR}/{p}" for p in RUN_PATTERNS),
    local_dir_env="AMPHION_SVC_DIR",
)
MULTIPLECONTENTS_STATS_FILES = HubFiles(
    repo_id=SVC_REPO,
    patterns=(f"{MULTIPLECONTENTS_DIR}/data/*",),
    local_dir_env="AMPHION_SVC_DIR",
)


@dataclass(frozen=True)
class LocalRun:
    """An unpublished model's training-run folder: ``$<env>`` if set, else ``$AMPHION_WEIGHTS_DIR/<subdir>``."""

    label: str
    env: str
    subdir: str


#: The SVC recipes without published weights that load from a local training run.
LOCAL_RUNS: dict[str, LocalRun] = {
    "diffcomosvc": LocalRun("DiffComoSVC", "AMPHION_DIFFCOMOSVC_DIR", "svc/DiffComoSVC"),
    "transformersvc": LocalRun("TransformerSVC", "AMPHION_TRANSFORMERSVC_DIR", "svc/TransformerSVC"),
    "vitssvc": LocalRun("VitsSVC", "AMPHION_VITSSVC_DIR", "svc/VitsSVC"),
}


def find_run_folder(name: str) -> Path:
    """The training-run folder of :data:`LOCAL_RUNS` ``[name]``, checked for :data:`RUN_PATTERNS`.

    WeightsUnavailable otherwise; its message names the environment variable or the folder under
    ``$AMPHION_WEIGHTS_DIR`` and the missing files, never a path of the server."""
    run = LOCAL_RUNS[name]
    explicit = os.environ.get(run.env, "").strip()
    base = os.environ.get(WEIGHTS_DIR_ENV, "").strip()
    if explicit:
        folder, where = Path(explicit).expanduser(), f"${run.env}"
    elif base:
        folder, where = Path(base).expanduser() / run.subdir, f"${WEIGHTS_DIR_ENV}/{run.subdir}"
    else:
        raise WeightsUnavailable(
            f"{run.label} has no published weights: put an Amphion training run ({', '.join(RUN_PATTERNS)}) "
            f"in ${WEIGHTS_DIR_ENV}/{run.subdir} or point ${run.env} at one")
    if not folder.is_dir():
        raise WeightsUnavailable(f"{run.label} has no published weights and the folder {where} does not exist; "
                                 f"it must hold an Amphion training run ({', '.join(RUN_PATTERNS)})")
    missing = [p for p in RUN_PATTERNS if not _matches(folder, p)]
    if missing:
        raise WeightsUnavailable(f"{run.label}: the training run in {where} lacks {', '.join(missing)}")
    return folder


def _matches(folder: Path, pattern: str) -> bool:
    return any(p.is_file() for p in folder.glob(pattern))
