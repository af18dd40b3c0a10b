"""Where the Amphion SVC models' weights live (for ``models.weights.resolve`` / ``download``).

* MultipleContentsSVC has an official release, HF ``amphion/singing_voice_conversion`` (MIT): the Amphion
  experiment folder ``vocalist_l1_contentvec+whisper/`` (:data:`MULTIPLECONTENTS_FILES`). Only the
  model's files are fetched: ``args.json``, ``singers.json`` and the model of the accelerate state
  folder (``pytorch_model.bin``, 125 MB), not its optimiser / scheduler / RNG states or ``log/``.
  The per-singer statistics under ``data/`` (mel extrema, F0 medians) are separate entries, file by
  file (below).
* What the conversion pipeline (:mod:`models.svc.pipeline`) needs besides the acoustic model, by
  :data:`PIPELINE_FILES` key: the release's singer statistics file by file
  (:data:`MULTIPLECONTENTS_SINGER_STATS_FILES`), its ``args.json`` alone for a front-end deployment
  (:data:`MULTIPLECONTENTS_CONFIG_FILES`), Amphion's singing BigVGAN (:data:`SINGING_VOCODER_FILES`),
  Whisper-medium (VevoSing's entry, the same weights) and ContentVec (:data:`CONTENTVEC_FILES`: not on the
  hub, an operator's folder).
* DiffComoSVC, TransformerSVC and VitsSVC have none: :data:`LOCAL_RUNS` names where an operator puts a folder laid out like an Amphion
  training run (``args.json``, ``singers.json``, ``checkpoint/<epoch-..._step-..._loss-...>/``), and
  :func:`find_run_folder` finds it or raises WeightsUnavailable saying which folder is missing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from models.svc.contentvec import CONTENTVEC_FILE
from models.vevosing.official import OFFICIAL_FILES as _VEVOSING_FILES
from models.weights import WEIGHTS_DIR_ENV, HubFiles, WeightsUnavailable

__all__ = [
    "CONTENTVEC_DIR_ENV",
    "CONTENTVEC_FILES",
    "LOCAL_RUNS",
    "LocalRun",
    "MULTIPLECONTENTS_DIR",
    "MULTIPLECONTENTS_CONFIG_FILES",
    "MULTIPLECONTENTS_DATASET",
    "MULTIPLECONTENTS_FILES",
    "MULTIPLECONTENTS_SINGER_STATS_FILES",
    "PIPELINE_FILES",
    "RUN_PATTERNS",
    "SINGING_VOCODER_DIR",
    "SINGING_VOCODER_FILES",
    "SINGING_VOCODER_REPO",
    "SVC_REPO",
    "WHISPER_FILES",
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


#: The release's one training dataset (its singers.json names are ``vocalist_l1_<singer>``).
MULTIPLECONTENTS_DATASET = "vocalist_l1"
#: The files of the release's ``data/`` folder the pipeline reads (checked on the hub, Dec 2023 upload):
#: ``data/vocalist_l1/pitches/statistics.json`` (``{"vocalist_l1_<singer>": {"voiced_positions": {"median":
#: ...}, "total_positions": {...}}}``, what ``autoshift`` and the closest-F0 choice read) and
#: ``data/vocalist_l1/mel_min_max_stats/mel_{min,max}.npy`` (100 float32 values each, the per-bin
#: extrema the predicted mel is de-normalised with). Named one by one: ``data/*`` could also match the
#: training features if a later upload adds them (the folder also holds ``meta_info.json``, unused).
MULTIPLECONTENTS_SINGER_STATS_FILES = HubFiles(
    repo_id=SVC_REPO,
    patterns=tuple(f"{MULTIPLECONTENTS_DIR}/data/{MULTIPLECONTENTS_DATASET}/{name}" for name in (
        "pitches/statistics.json", "mel_min_max_stats/mel_min.npy", "mel_min_max_stats/mel_max.npy")),
    local_dir_env="AMPHION_SVC_DIR",
)
#: ``args.json`` alone: what a front-end deployment reads (the ``preprocess`` values), without the
#: 125 MB checkpoint.
MULTIPLECONTENTS_CONFIG_FILES = HubFiles(
    repo_id=SVC_REPO,
    patterns=(f"{MULTIPLECONTENTS_DIR}/args.json",),
    local_dir_env="AMPHION_SVC_DIR",
)

#: Amphion's singing BigVGAN ("Amphion Singing BigVGAN", MIT): NVIDIA's BigVGAN fine-tuned on over 120 h of
#: singing, the vocoder of every SVC recipe (``pretrained/bigvgan`` in Amphion, read by
#: ``BaseInference._parse_vocoder``: ``args.json`` and the ``<step>.pt`` with the highest step). The repo holds
#: ``bigvgan_singing/args.json`` (6 kB) and ``bigvgan_singing/400000.pt`` (1.85 GB, ``{"generator_state_dict",
#: ...}`` plus training states) and nothing else besides its README.
SINGING_VOCODER_REPO = "amphion/BigVGAN_singing_bigdata"
SINGING_VOCODER_DIR = "bigvgan_singing"
SINGING_VOCODER_FILES = HubFiles(
    repo_id=SINGING_VOCODER_REPO,
    patterns=(f"{SINGING_VOCODER_DIR}/args.json", f"{SINGING_VOCODER_DIR}/400000.pt"),
    local_dir_env="AMPHION_SINGING_BIGVGAN_DIR",
)

#: Whisper-medium: VevoSing's entry (``openai/whisper-medium``, the Hugging Face conversion of openai's
#: ``medium.pt``, which Amphion's SVC preprocessing loads): one download serves both families.
WHISPER_FILES = _VEVOSING_FILES["whisper"]

#: ContentVec ("ContentVec_legacy", 500 classes) is published on GitHub / Google Drive, not on the hub:
#: an operator puts ``checkpoint_best_legacy_500.pt`` in the folder this variable names.
CONTENTVEC_DIR_ENV = "AMPHION_CONTENTVEC_DIR"
CONTENTVEC_FILES = HubFiles(repo_id=None, patterns=(CONTENTVEC_FILE,), local_dir_env=CONTENTVEC_DIR_ENV)

#: Every hub / folder entry of the conversion pipeline, by the key :mod:`models.svc.pipeline` (and the
#: weights download script) use. The three unpublished acoustic models are :data:`LOCAL_RUNS`.
PIPELINE_FILES: dict[str, HubFiles] = {
    "multiplecontentssvc": MULTIPLECONTENTS_FILES,
    "multiplecontentssvc_stats": MULTIPLECONTENTS_SINGER_STATS_FILES,
    "multiplecontentssvc_config": MULTIPLECONTENTS_CONFIG_FILES,
    "singing_vocoder": SINGING_VOCODER_FILES,
    "whisper": WHISPER_FILES,
    "contentvec": CONTENTVEC_FILES,
}


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
        other = "" if explicit else f" (or point ${run.env} at one)"
        raise WeightsUnavailable(f"{run.label} has no published weights and the folder {where} does not exist; "
                                 f"it must hold an Amphion training run ({', '.join(RUN_PATTERNS)}){other}")
    missing = [p for p in RUN_PATTERNS if not _matches(folder, p)]
    if missing:
        raise WeightsUnavailable(f"{run.label}: the training run in {where} lacks {', '.join(missing)}")
    return folder


def _matches(folder: Path, pattern: str) -> bool:
    return any(p.is_file() for p in folder.glob(pattern))
