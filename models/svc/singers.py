"""The target singers of an SVC checkpoint: their ids (``singers.json``), the median F0 of each one's
training data (what ``autoshift`` and the closest-F0 choice read) and the mel extrema of each
training dataset (what a predicted mel is de-normalised with).

Where the reference finds them (Amphion ``d3de90f``, ``SVCTestDataset``): under
``preprocess.processed_dir``, one folder per training dataset, the dataset being the singer name
without its last ``_<singer>`` part (``vocalist_l1_Adele`` -> ``vocalist_l1``):

* ``<dataset>/<pitch_dir>/statistics.json`` (``pitch_dir`` default ``pitches``), written by
  ``cal_pitch_statistics_svc``: ``{"<dataset>_<singer>": {"voiced_positions": {"mean", "std", "median",
  "min", "max"}, "total_positions": {...}}}``; the reference's target median is
  ``[name]["voiced_positions"]["median"]`` (Hz, over the singer's voiced Praat frames).
* ``<dataset>/<mel_min_max_stats_dir>/mel_min.npy`` and ``mel_max.npy`` (default dir
  ``mel_min_max_stats``): ``[n_mel]`` per-bin extrema over the dataset's log-mels.

A checkpoint folder here (the official release, or a training run) keeps that tree in a ``data/``
sub-folder, as the official release does (``vocalist_l1_contentvec+whisper/data/vocalist_l1/...``).
:func:`load_singer_table` reads it; :func:`tiny_singer_table` is the tiny profile's deterministic
stand-in. Choosing a singer (:meth:`SingerTable.choose`) raises the error class its caller names, as
:mod:`models.core.checks` does, so the pipeline keeps one input-error type.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from models.core.configs import ConfigError
from models.weights import WeightsUnavailable

__all__ = [
    "CHOSEN_BY_CLOSEST_F0",
    "CHOSEN_BY_REQUEST",
    "MEL_MAX_FILE",
    "MEL_MIN_FILE",
    "MEL_NORM_EPS",
    "PITCH_STATISTICS_FILE",
    "STATS_DIR",
    "SingerTable",
    "TINY_SINGER_NAMES",
    "load_singer_table",
    "singer_dataset",
    "stats_paths",
    "tiny_singer_table",
]

#: The sub-folder of a checkpoint folder that holds the training-data statistics (the release's layout).
STATS_DIR = "data"
#: ``preprocess`` keys naming the statistics' folders, and the reference's defaults for them.
PITCH_DIR_KEY, DEFAULT_PITCH_DIR = "pitch_dir", "pitches"
MEL_STATS_DIR_KEY, DEFAULT_MEL_STATS_DIR = "mel_min_max_stats_dir", "mel_min_max_stats"
PITCH_STATISTICS_FILE = "statistics.json"
MEL_MIN_FILE, MEL_MAX_FILE = "mel_min.npy", "mel_max.npy"
#: Added to the mel range when de-normalising (the reference's ``EPS``; it keeps a flat bin finite).
MEL_NORM_EPS = 1.0e-12

#: How the target singer was picked (what the response reports).
CHOSEN_BY_REQUEST = "request"
CHOSEN_BY_CLOSEST_F0 = "closest_f0"

#: The tiny profile's singers: the official MultipleContentsSVC release's names, in its id order.
TINY_SINGER_NAMES = tuple(f"vocalist_l1_{name}" for name in (
    "Adele", "Beyonce", "BrunoMars", "JohnMayer", "MichaelJackson", "TaylorSwift", "张学友", "李健", "汪峰",
    "王菲", "石倚洁", "蔡琴", "那英", "陈奕迅", "陶喆"))
#: Their synthetic F0 medians: one semitone apart from this lowest one (160-360 Hz, a singing range),
#: so that every reference picks exactly one of them.
TINY_LOWEST_MEDIAN = 160.0
#: The tiny mel extrema: flat floor ln(1e-5) (the mel's clamp) and a ceiling falling from low to high bins.
TINY_MEL_FLOOR = math.log(1e-5)
TINY_MEL_CEILING = (2.5, -1.5)


def singer_dataset(name: str) -> str:
    """The training dataset of a singer name, the reference's way: the name without its last
    ``_<singer>`` part (a name without ``_`` is its own dataset)."""
    return name.rsplit("_", 1)[0] if "_" in name else name


def _short_name(name: str) -> str:
    """The singer part of a name (after the dataset): ``vocalist_l1_Adele`` -> ``Adele``."""
    return name.rsplit("_", 1)[-1]


@dataclass(frozen=True)
class SingerTable:
    """A checkpoint's singers. ``ids``: name -> ``spk_id`` (``singers.json``); ``f0_medians``: name -> the
    voiced median F0 of the singer's training data (Hz); ``mel_extrema``: dataset -> ``(mel_min, mel_max)``
    float32 ``[n_mel]`` (empty for a model that predicts audio); ``source``: where they came from
    (safe to show users)."""

    ids: Mapping[str, int]
    f0_medians: Mapping[str, float]
    mel_extrema: Mapping[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    source: str = ""

    def __post_init__(self) -> None:
        if not self.ids:
            raise ConfigError(f"{self.source or 'singer table'}: no singers")
        missing = [name for name in self.ids if name not in self.f0_medians]
        if missing:
            raise ConfigError(f"{self.source or 'singer table'}: no F0 median for {missing[:5]}")

    @property
    def names(self) -> list[str]:
        """Singer names in ``spk_id`` order."""
        return sorted(self.ids, key=lambda name: (self.ids[name], name))

    def listing(self) -> list[dict[str, Any]]:
        """``[{"name", "f0_median"}]`` in ``spk_id`` order (what ``GET /api/svc/{model}/singers`` shows)."""
        return [{"name": name, "f0_median": float(self.f0_medians[name])} for name in self.names]

    def lookup(self, requested: str, error: type[Exception]) -> str:
        """The table's name for ``requested``: the exact name, else the one name whose singer part (after
        the dataset) it is (``Adele`` for ``vocalist_l1_Adele``); ``error`` listing the names otherwise."""
        if requested in self.ids:
            return requested
        matches = [name for name in self.names if _short_name(name) == requested]
        if len(matches) == 1:
            return matches[0]
        known = ", ".join(self.names)
        if matches:
            raise error(f"target_singer {requested!r} is ambiguous: say one of {', '.join(matches)}")
        raise error(f"unknown target_singer {requested!r}; this model's singers are: {known}")

    def closest(self, f0_median: float) -> str:
        """The singer whose median F0 is nearest ``f0_median`` on a log scale (semitones, how pitch is
        heard); a tie goes to the lower ``spk_id``."""
        return min(self.names, key=lambda name: abs(math.log2(self.f0_medians[name] / f0_median)))

    def choose(self, target_singer: str | None, reference_median: float | None,
               error: type[Exception]) -> tuple[str, str]:
        """``(name, chosen_by)``: ``target_singer`` (:meth:`lookup`), else the singer closest to the
        reference recording's voiced median F0 (``error`` when there is none: no reference, or nothing
        voiced in it)."""
        if target_singer is not None:
            if not isinstance(target_singer, str) or not target_singer.strip():
                raise error(f"target_singer must be a singer name, got {target_singer!r}")
            return self.lookup(target_singer.strip(), error), CHOSEN_BY_REQUEST
        if reference_median is None:
            raise error("without target_singer the singer is chosen by the reference audio's median F0, "
                        "but there is no reference audio with voiced frames; give target_singer "
                        f"(one of: {', '.join(self.names)}) or a sung reference_audio")
        return self.closest(reference_median), CHOSEN_BY_CLOSEST_F0

    def spk_id(self, name: str) -> int:
        return int(self.ids[name])

    def f0_median(self, name: str) -> float:
        return float(self.f0_medians[name])

    def denormalise(self, mel: np.ndarray, name: str) -> np.ndarray:
        """A min-max normalised mel ``[T, n_mel]`` (about [-1, 1]) -> log-mel with the extrema of ``name``'s
        training dataset: ``(mel + 1) / 2 * (max - min + eps) + min``, float32 as the reference computes it."""
        dataset = singer_dataset(name)
        if dataset not in self.mel_extrema:
            raise ConfigError(f"{self.source}: no mel extrema for the dataset {dataset!r} of {name!r}")
        low, high = self.mel_extrema[dataset]
        mel = np.asarray(mel, dtype=np.float32)
        if mel.ndim != 2 or mel.shape[1] != low.shape[0]:
            raise ValueError(f"expected a mel [T, {low.shape[0]}], got {mel.shape}")
        return (mel + np.float32(1.0)) / np.float32(2.0) * (high - low + np.float32(MEL_NORM_EPS)) + low


# ---------------------------------------------------------------------------------------------
# Reading a checkpoint folder's statistics
# ---------------------------------------------------------------------------------------------


def _folder_name(preprocess: Mapping[str, Any], key: str, default: str) -> str:
    value = preprocess.get(key, default)
    if not isinstance(value, str) or not value or "/" in value or "\\" in value or value in (".", ".."):
        raise ConfigError(f"preprocess.{key} must be a plain folder name, got {value!r}")
    return value


def stats_paths(args: Mapping[str, Any], dataset: str) -> dict[str, str]:
    """The statistics files of ``dataset``, relative to the checkpoint folder (``pitch``, ``mel_min``,
    ``mel_max``), with the folder names of ``args.json``'s ``preprocess`` (reference defaults otherwise)."""
    preprocess = args.get("preprocess") if isinstance(args.get("preprocess"), Mapping) else {}
    pitch_dir = _folder_name(preprocess, PITCH_DIR_KEY, DEFAULT_PITCH_DIR)
    mel_dir = _folder_name(preprocess, MEL_STATS_DIR_KEY, DEFAULT_MEL_STATS_DIR)
    base = f"{STATS_DIR}/{dataset}"
    return {"pitch": f"{base}/{pitch_dir}/{PITCH_STATISTICS_FILE}",
            "mel_min": f"{base}/{mel_dir}/{MEL_MIN_FILE}",
            "mel_max": f"{base}/{mel_dir}/{MEL_MAX_FILE}"}


def _read_medians(path: Path, rel: str, names: list[str], where: str) -> dict[str, float]:
    try:
        stats = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{where}: {rel} is not a readable JSON file ({type(exc).__name__})") from None
    out, missing = {}, []
    for name in names:
        entry = stats.get(name) if isinstance(stats, dict) else None
        voiced = entry.get("voiced_positions") if isinstance(entry, dict) else None
        median = voiced.get("median") if isinstance(voiced, dict) else None
        if isinstance(median, bool) or not isinstance(median, (int, float)) or not math.isfinite(median) \
                or median <= 0:
            missing.append(name)
        else:
            out[name] = float(median)
    if missing:
        raise ConfigError(f"{where}: {rel} has no positive voiced_positions.median for {missing[:5]}")
    return out


def _read_extremum(path: Path, rel: str, n_mel: int, where: str) -> np.ndarray:
    try:
        values = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{where}: {rel} is not a readable .npy file ({type(exc).__name__})") from None
    values = np.asarray(values, dtype=np.float32).reshape(-1)
    if values.shape[0] != n_mel or not np.isfinite(values).all():
        raise ConfigError(f"{where}: {rel} must hold {n_mel} finite values (one per mel bin), "
                          f"got shape {values.shape}")
    return values


def load_singer_table(folder: str | Path, singers: Mapping[str, int], args: Mapping[str, Any], *,
                      n_mel: int | None, where: str) -> SingerTable:
    """The singer table of a checkpoint folder: ``singers`` (its ``singers.json``) with each singer's F0
    median and, when ``n_mel`` is given (a model predicting a normalised mel), the mel extrema of each
    dataset, read from ``folder/data/<dataset>/...`` (:func:`stats_paths`).

    ``where`` names the folder in messages (a repo id or an environment variable: never a server
    path). A missing file is :class:`~models.weights.WeightsUnavailable` naming it relative to the
    folder; a malformed one, or a singer without a median, ConfigError."""
    folder = Path(folder)
    if not singers:
        raise WeightsUnavailable(f"{where}: singers.json is missing or empty (the singers this model converts to)")
    by_dataset: dict[str, list[str]] = {}
    for name in sorted(singers, key=lambda n: (singers[n], n)):
        by_dataset.setdefault(singer_dataset(name), []).append(name)
    files = {dataset: stats_paths(args, dataset) for dataset in by_dataset}
    wanted = [rel for paths in files.values() for kind, rel in paths.items() if kind == "pitch" or n_mel]
    missing = [rel for rel in wanted if not (folder / rel).is_file()]
    if missing:
        raise WeightsUnavailable(f"{where}: the training-data statistics {', '.join(missing)} are missing "
                                 "(per-singer F0 medians and mel extrema, written by Amphion's preprocessing)")
    medians: dict[str, float] = {}
    extrema: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for dataset, names in by_dataset.items():
        paths = files[dataset]
        medians.update(_read_medians(folder / paths["pitch"], paths["pitch"], names, where))
        if n_mel:
            low = _read_extremum(folder / paths["mel_min"], paths["mel_min"], n_mel, where)
            high = _read_extremum(folder / paths["mel_max"], paths["mel_max"], n_mel, where)
            extrema[dataset] = (low, high)
    return SingerTable(dict(singers), medians, extrema, source=where)


def tiny_singer_table(n_mel: int | None = 100) -> SingerTable:
    """The tiny profile's deterministic table: :data:`TINY_SINGER_NAMES` (ids 0..14), F0 medians one
    semitone apart from :data:`TINY_LOWEST_MEDIAN`, and (``n_mel`` given) extrema from the mel floor to a
    falling ceiling. Synthetic numbers, not the release's statistics."""
    ids = {name: i for i, name in enumerate(TINY_SINGER_NAMES)}
    medians = {name: round(TINY_LOWEST_MEDIAN * 2 ** (i / 12), 3) for name, i in ids.items()}
    extrema = {}
    if n_mel:
        low = np.full(n_mel, TINY_MEL_FLOOR, dtype=np.float32)
        high = np.linspace(*TINY_MEL_CEILING, n_mel, dtype=np.float32)
        extrema = {singer_dataset(TINY_SINGER_NAMES[0]): (low, high)}
    return SingerTable(ids, medians, extrema, source="tiny profile: synthetic singer statistics")
