"""Noro end to end: source speech + target speaker's speech (16 kHz) -> the source's words in the
target's voice (16 kHz).

``NoroPipeline.convert(source, target, steps=200, sigma=1.2, seed=None, on_step=None)`` runs the
pieces, each also public: :meth:`~NoroPipeline.source_features` (HuBERT-base layer 9 -> k-means
centres, WORLD F0; :mod:`models.noro.frontends`), :meth:`~NoroPipeline.reference_features` (the
reference mel), :meth:`~NoroPipeline.generate_mel` (reference encoder + diffusion sampler,
:mod:`models.noro.model`) and :meth:`~NoroPipeline.vocode` (BigVGAN at 16 kHz / hop 200).

One request at a time: the reference encoder adds the positional vector of the BATCH position to
every frame (:class:`models.noro.reference_encoder.BatchIndexedSinusoid`), so only batch position 0
gives what the official inference gives; the pipeline never batches requests.

:meth:`NoroPipeline.from_weights` builds it from the user's files (``"pretrained"``; layout in
:mod:`models.noro.official`), a tiny seeded stand-in (``"tiny"``) or whichever is on this machine
(``"auto"``; never a mix). Input errors are :class:`NoroInputError`, raised before any model runs.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from models.core import checks
from models.core.checkpoints import CheckpointError
from models.core.configs import read_json
from models.noro import configs as C
from models.noro.frontends import (
    ReferenceFeatures,
    SourceFeatures,
    min_reference_samples,
    reference_features,
    source_features,
)
from models.noro.hubert import HubertLayerFeatures, build_hubert, load_hubert, tiny_hubert_params
from models.noro.kmeans import KMeansQuantizer, random_centres, read_cluster_centres
from models.noro.model import NoroVC, build_noro_model, load_noro_model
from models.noro.official import (
    CONFIG_FILE,
    HUBERT_FILE,
    KMEANS_PATTERN,
    MODEL_FILE,
    OFFICIAL_FILES,
    PARTS,
    VOCODER_DIR,
    VOCODER_FILES,
)
from models.noro.sampler import StepFn
from models.noro.vocoder import build_noro_vocoder, check_vocoder_fits, load_noro_vocoder
from models.vocoders.vocoder import Vocoder
from models.weights import resolve_parts

__all__ = ["SAMPLE_RATE", "TINY_CLUSTERS", "NoroInputError", "NoroPipeline", "NoroRequest", "missing_files"]

#: Noro's audio rate, in and out.
SAMPLE_RATE = 16000
#: k-means size of the tiny profile (the real one is the user's: 500 or 1000 are usual).
TINY_CLUSTERS = 16


class NoroInputError(ValueError):
    """A request Noro refuses (the deployment answers 400 with this message)."""


@dataclass(frozen=True)
class NoroRequest:
    """A checked :meth:`NoroPipeline.convert` request (``seed`` resolved: drawn when none was given)."""

    source: np.ndarray
    target: np.ndarray
    steps: int
    sigma: float
    seed: int


def missing_files(noro_dir: str | os.PathLike, hubert_path: str | os.PathLike) -> list[str]:
    """What :meth:`NoroPipeline.from_folder` needs and does not find (paths relative to their folder)."""
    root, missing = Path(noro_dir), []
    if not (root / MODEL_FILE).is_file():
        missing.append(MODEL_FILE)
    if not [p for p in root.glob(KMEANS_PATTERN) if p.is_file()]:
        missing.append(KMEANS_PATTERN)
    missing += [f for f in VOCODER_FILES if not (root / f).is_file()]
    hubert = Path(hubert_path)
    if not (hubert.is_file() or (hubert.is_dir() and (hubert / HUBERT_FILE).is_file())):
        missing.append(f"HuBERT-base ({HUBERT_FILE} of {OFFICIAL_FILES['hubert'].repo_id})")
    return missing


def _kmeans_file(root: Path) -> Path:
    found = sorted(p for p in root.glob(KMEANS_PATTERN) if p.is_file())
    if len(found) != 1:
        names = ", ".join(p.name for p in found) or "none"
        raise CheckpointError(f"{root}: expected exactly one k-means file {KMEANS_PATTERN}, found {names}")
    return found[0]


class NoroPipeline:
    """The loaded parts. Calls may run concurrently: the modules are only read, and every call has its
    own random generator."""

    def __init__(self, model: NoroVC, hubert: HubertLayerFeatures, kmeans: KMeansQuantizer, vocoder: Vocoder, *,
                 device: str | torch.device = "cpu", weights_kind: str = "tiny", note: str = "") -> None:
        cfg = model.cfg
        problems = []
        if kmeans.dim != cfg.content_dim:
            problems.append(f"the k-means centres are {kmeans.dim}-d, the model takes {cfg.content_dim}-d content")
        if hubert.dim != kmeans.dim:
            problems.append(f"HuBERT gives {hubert.dim}-d features, the k-means centres are {kmeans.dim}-d")
        if cfg.mel.sample_rate != SAMPLE_RATE:
            problems.append(f"the model's mel is at {cfg.mel.sample_rate} Hz, Noro's audio at {SAMPLE_RATE} Hz")
        if problems:
            raise ValueError("Noro parts do not fit together: " + "; ".join(problems))
        check_vocoder_fits(vocoder.config, "Noro vocoder")
        self.device = torch.device(device)
        self.model = model.to(self.device)
        self.hubert = hubert.to(self.device)
        self.kmeans = kmeans.to(self.device)
        self.vocoder = vocoder
        self.weights_kind = weights_kind
        self.note = note

    # ------------------------------------------------------------------------------------------
    # construction

    @classmethod
    def from_weights(cls, mode: str = "auto", device: str | torch.device = "cpu", *,
                     cache_dir: str | os.PathLike | None = None,
                     local_dirs: Mapping[str, str | os.PathLike] | None = None, seed: int = 0) -> "NoroPipeline":
        """Through ``models.weights`` (``mode``: ``"pretrained"``, ``"tiny"`` or ``"auto"``; the Noro
        folder and HuBERT are resolved together). ``local_dirs``: ``"noro"`` / ``"hubert"`` -> folder."""
        kind, found, note = resolve_parts(mode, OFFICIAL_FILES, PARTS, tuple(PARTS), cache_dir=cache_dir,
                                          local_dirs=local_dirs)
        if kind == "pretrained":
            return cls.from_folder(found["noro"].root, found["hubert"].root, device=device, note=note)
        return cls.tiny(seed=seed, device=device, note=note)

    @classmethod
    def from_folder(cls, noro_dir: str | os.PathLike, hubert_path: str | os.PathLike, *,
                    device: str | torch.device = "cpu", note: str = "user-supplied Noro weights",
                    hubert_params: Mapping[str, Any] | None = None) -> "NoroPipeline":
        """From the user's folder (layout: :mod:`models.noro.official`) and HuBERT-base (a file, or a
        folder holding ``pytorch_model.bin``); every file loads strictly. :class:`CheckpointError`
        naming every missing file at once. ``hubert_params``: HuBERT's ``wav2vec2_model`` parameters
        (default HuBERT-base's)."""
        root = Path(noro_dir)
        missing = missing_files(root, hubert_path)
        if missing:
            raise CheckpointError(f"Noro weights incomplete: missing {', '.join(missing)}")
        cfg = C.parse_noro_config(read_json(root / CONFIG_FILE)) if (root / CONFIG_FILE).is_file() else C.official_config()
        hubert = Path(hubert_path)
        return cls(
            load_noro_model(root / MODEL_FILE, cfg),
            load_hubert(hubert / HUBERT_FILE if hubert.is_dir() else hubert, params=hubert_params),
            KMeansQuantizer(read_cluster_centres(_kmeans_file(root))),
            load_noro_vocoder(root / VOCODER_DIR, device=str(device)),
            device=device, weights_kind="pretrained", note=note,
        )

    @classmethod
    def tiny(cls, *, seed: int = 0, device: str | torch.device = "cpu",
             note: str = "tiny profile: seeded random weights") -> "NoroPipeline":
        """The tiny profile: Noro's structure and front end (16 kHz, 80 mels, hop 200), few channels,
        seeded random weights; no files needed."""
        cfg = C.tiny_config()
        return cls(
            build_noro_model(cfg, seed=seed),
            build_hubert(tiny_hubert_params(cfg.content_dim), seed=seed + 1),
            KMeansQuantizer(random_centres(TINY_CLUSTERS, cfg.content_dim, seed=seed + 2)),
            build_noro_vocoder(seed=seed + 3, device=str(device)),
            device=device, weights_kind="tiny", note=note,
        )

    # ------------------------------------------------------------------------------------------
    # facts

    @property
    def config(self) -> C.NoroConfig:
        return self.model.cfg

    @property
    def sample_rate(self) -> int:
        return SAMPLE_RATE

    @property
    def min_target_samples(self) -> int:
        return min_reference_samples(self.config)

    # ------------------------------------------------------------------------------------------
    # the pieces

    def check(self, source, target, *, steps: int = C.DEFAULT_STEPS, sigma: float = C.DEFAULT_SIGMA,
              seed: int | None = None) -> NoroRequest:
        """The input checks of :meth:`convert` (same arguments) without running anything."""
        E = NoroInputError
        src = checks.mono(source, "source audio", E)
        tgt = checks.mono(target, "target audio", E)
        if src.shape[0] < 1:
            raise E("source audio is empty")
        if tgt.shape[0] < self.min_target_samples:
            raise E(f"target audio is too short: {tgt.shape[0]} samples at {SAMPLE_RATE} Hz, "
                    f"needs at least {self.min_target_samples}")
        steps = checks.integer(steps, "steps", E, *C.STEPS_RANGE)
        sigma = checks.finite(sigma, "sigma", E)
        low, high = C.SIGMA_RANGE
        if not low <= sigma <= high:
            raise E(f"sigma must be in [{low:g}, {high:g}], got {sigma:g}")
        seed = checks.seed(seed, E)
        return NoroRequest(src, tgt, steps, sigma, secrets.randbits(63) if seed is None else seed)

    def source_features(self, source: np.ndarray) -> SourceFeatures:
        """16 kHz source -> content (k-means centres) and normalised pitch, batch 1."""
        return source_features(source, self.hubert, self.kmeans, self.config)

    def reference_features(self, target: np.ndarray) -> ReferenceFeatures:
        """16 kHz target speaker's speech -> reference mel and mask, batch 1."""
        return reference_features(target, self.config, self.device)

    def generate_mel(self, source: SourceFeatures, reference: ReferenceFeatures, *, steps: int, sigma: float,
                     seed: int, on_step: StepFn | None = None) -> np.ndarray:
        """The converted mel ``[n_mels, T]`` (natural log, 16 kHz / hop 200), T = the source's frames.

        The start noise is drawn on the CPU from a generator seeded with ``seed`` (the same seed gives
        the same noise on any device)."""
        shape = (1, source.frames, self.model.n_mels)
        noise = torch.randn(shape, generator=torch.Generator("cpu").manual_seed(int(seed)))
        mel = self.model.generate(source.content, source.pitch, reference.mel, reference.mask, noise.to(self.device),
                                  steps=steps, temperature=sigma, on_step=on_step)
        return np.ascontiguousarray(mel[0].T.float().cpu().numpy(), dtype=np.float32)

    def vocode(self, mel: np.ndarray) -> np.ndarray:
        """Mel ``[n_mels, T]`` -> 16 kHz float32 waveform of ``T * 200`` samples."""
        return self.vocoder.vocode([mel])[0]

    # ------------------------------------------------------------------------------------------
    # end to end

    def convert(self, source, target, *, steps: int = C.DEFAULT_STEPS, sigma: float = C.DEFAULT_SIGMA,
                seed: int | None = None, on_step: StepFn | None = None) -> np.ndarray:
        """``source`` spoken in ``target``'s voice: mono float32 at 16 kHz, as long as ``source``.

        ``source`` / ``target``: mono 16 kHz audio (float in [-1, 1] or integer PCM); ``steps``: Euler
        steps of the sampler, 50..500 (200 as the reference); ``sigma``: temperature of the starting
        noise, 0.9..1.5 (1.2); ``seed``: same seed and inputs, same audio (None: drawn);
        ``on_step(step, total)`` after every sampler step. The source is zero-padded to a multiple of
        1600 samples for the model (as the reference does); the output is cut back to its length."""
        request = self.check(source, target, steps=steps, sigma=sigma, seed=seed)
        features = self.source_features(request.source)
        reference = self.reference_features(request.target)
        mel = self.generate_mel(features, reference, steps=request.steps, sigma=request.sigma, seed=request.seed,
                                on_step=on_step)
        return self.vocode(mel)[: request.source.shape[0]]
