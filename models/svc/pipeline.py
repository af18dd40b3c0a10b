"""Singing voice conversion with one of Amphion's four SVC recipes, end to end, for
``/api/svc/{multiplecontentssvc,diffcomosvc,transformersvc,vitssvc}``: a source song -> 24 kHz singing
in the voice of one of the checkpoint's singers.

:class:`SVCPipeline` runs the reference's inference (Amphion ``d3de90f``: ``bins/svc/inference.py``
with ``SVCTestDataset`` and the recipe's ``*Inference``) as three stages with numpy at their borders,
so a serving layer can put each on its own deployment:

1. :meth:`SVCPipeline.front_ends`: the source mixed down to mono and resampled to 24 kHz, cut into
   segments of :data:`SEGMENT_SECONDS` overlapping by :data:`SEGMENT_OVERLAP_SECONDS`
   (``utils/audio_slicer.split_audio``), each raised to peak :data:`OUTPUT_PEAK` unless silent (the
   reference saves its segments that way before extracting anything); per segment the energy, Praat's
   F0 track, Whisper and ContentVec features on the mel frames (:mod:`models.svc.frontends`); the
   voiced median F0 of the whole source and of the reference recording.
2. :meth:`SVCPipeline.acoustic`: the target singer (by name, else the closest median F0), the key
   shift, the acoustic model per segment; a de-normalised log-mel per segment (MultipleContentsSVC,
   DiffComoSVC, TransformerSVC) or the merged waveform (VitsSVC, which decodes audio itself).
3. :meth:`SVCPipeline.vocode`: Amphion's singing BigVGAN per segment, each segment raised to peak
   0.9 unless silent, merged with the reference's crossfade (``merge_segments_encodec``).

:meth:`SVCPipeline.convert` runs all three in process; :meth:`SVCPipeline.singers` lists the singers.
:meth:`SVCPipeline.from_weights` builds it from the official / operator files or the tiny profile.
Request errors are :class:`SVCInputError` (a ValueError; a step count the sampler cannot run is
:class:`SVCStepsError`, also a :class:`~models.svc.diffusion.DiffusionStepsError`, for a 422).
Decisions and differences from the reference: ``models/svc/README.md`` ("Pipeline").
"""

from __future__ import annotations

import logging
import numbers
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from models.audio.resample import to_rate
from models.core import checks
from models.core.configs import ConfigError, read_json
from models.core.stages import ProgressFn, float32, step_reporter
from models.svc import comosvc, multiplecontents, transformer_svc, vits_svc
from models.svc.contentvec import ContentVec, build_contentvec, load_contentvec
from models.svc.diffusion import DiffusionStepsError
from models.svc.frontends import (
    KEY_SHIFT_MODES,
    SVCFrontendConfig,
    align_content,
    content_hops,
    frame_pitch_and_uv,
    mel_and_energy,
    parse_frontend_config,
    praat_f0,
    shift_f0,
    voiced_median,
)
from models.svc.official import (
    LOCAL_RUNS,
    MULTIPLECONTENTS_DIR,
    PIPELINE_FILES,
    SVC_REPO,
    find_run_folder,
)
from models.svc.singers import SingerTable, load_singer_table, tiny_singer_table
from models.svc.svc_vocoder import build_singing_vocoder, load_singing_vocoder
from models.svc.whisper_features import SVCWhisper, build_svc_whisper, load_svc_whisper
from models.vocoders.vocoder import Vocoder
from models.weights import TINY_NOTE, WEIGHTS_DIR_ENV, WEIGHTS_MODES, WeightsUnavailable
from models.weights import resolve_parts as resolve_pipeline_parts

__all__ = [
    "DEFAULT_KEY_SHIFT",
    "KEY_SHIFT_RANGE",
    "KINDS",
    "MODELS",
    "OUTPUT_PEAK",
    "PARTS",
    "SAMPLE_RATE",
    "SEGMENT_OVERLAP_SECONDS",
    "SEGMENT_SECONDS",
    "STAGES",
    "SVCInputError",
    "SVCPipeline",
    "SVCResult",
    "SVCStepsError",
    "is_silence",
    "merge_segments",
    "model_parts",
    "parse_key_shift",
    "resolve_parts",
    "split_segments",
    "to_mono_24k",
    "turn_up",
]

logger = logging.getLogger("amphion.svc")

#: Input (after resampling) and output sample rate: the recipes' ``preprocess.sample_rate``.
SAMPLE_RATE = 24000
#: Content features are computed at this rate (Whisper and ContentVec both read 16 kHz).
CONTENT_SAMPLE_RATE = 16000

#: ``key_shift`` when a request gives none: to the target singer's median F0, the recipes' default.
DEFAULT_KEY_SHIFT = "autoshift"
#: Semitones a request may shift by (two octaves either way).
KEY_SHIFT_RANGE = (-24, 24)

#: The reference's segmenting for audio files (``bins/svc/inference.py`` sets ``segments_max_duration``
#: 10 s and ``segments_overlap_duration`` 1 s): segment ``i`` starts at ``i * 9 s``; the last one ends
#: with the audio. Every segment is computed alone (see the README for the reference's batching).
SEGMENT_SECONDS = 10.0
SEGMENT_OVERLAP_SECONDS = 1.0
SEGMENT_SAMPLES = int(SEGMENT_SECONDS * SAMPLE_RATE)
SEGMENT_OVERLAP_SAMPLES = int(SEGMENT_OVERLAP_SECONDS * SAMPLE_RATE)
#: Shortest source: 0.1 s gives a few mel frames and more than ContentVec's receptive field.
MIN_SOURCE_SECONDS = 0.1
#: Most channels a recording may have (a mixdown of more is not a song).
MAX_CHANNELS = 8

#: ``utils/io.save_audio``'s ``volume_peak``: every segment, in and out, is scaled to this peak unless
#: silent, and so is the merged output of more than one segment.
OUTPUT_PEAK = 0.9
#: ``utils/audio_slicer.is_silence``: silent when every 10 ms frame's RMS (window 300 samples at
#: 24 kHz) is below -40 dBFS, or when the audio has at most ``SILENCE_MIN_FRAMES`` samples (the
#: reference compares a frame count with the sample count; kept).
SILENCE_THRESHOLD_DB = -40.0
SILENCE_HOP_MS = 10
SILENCE_MIN_INTERVAL = 300
SILENCE_MIN_LENGTH_MS = 5000

#: The four recipes, by route name.
MODELS = ("multiplecontentssvc", "diffcomosvc", "transformersvc", "vitssvc")
#: What :meth:`SVCPipeline.from_weights` can load (``parts``), one deployment each when served.
PARTS = ("front_ends", "acoustic", "vocoder")
#: ``on_step`` stage names, in order: per source segment for the front ends and the vocoder; per
#: denoiser call (diffusion models) or per segment (the others) for the acoustic model.
STAGES = ("f0", "whisper", "contentvec", "acoustic", "vocoder")


class SVCInputError(ValueError):
    """A request the pipeline cannot run (bad audio, unknown singer, key shift out of range, ...); the
    message is safe to show users."""


class SVCStepsError(SVCInputError, DiffusionStepsError):
    """A ``diffusion_steps`` the model's sampler cannot run (the route answers 422)."""


# ---------------------------------------------------------------------------------------------
# The four recipes, as data
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelKind:
    """What differs between the recipes. ``load(folder, device)`` / ``build(config=None, seed=, device=)``
    make the acoustic model; ``tiny_args``: its tiny args.json (the tiny front end's ``preprocess``);
    ``predicts_audio``: VitsSVC decodes the waveform itself (no mel statistics, no vocoder);
    ``whole_source_median``: ``autoshift`` divides by the whole source's median F0 (False: each
    segment's own, VitsSVC's reference inference does not pass it on); ``has_steps``: takes
    ``diffusion_steps``."""

    label: str
    load: Callable[..., torch.nn.Module]
    build: Callable[..., torch.nn.Module]
    tiny_args: Mapping[str, Any]
    predicts_audio: bool = False
    whole_source_median: bool = True
    has_steps: bool = False


KINDS: dict[str, ModelKind] = {
    "multiplecontentssvc": ModelKind("MultipleContentsSVC", multiplecontents.load_multiplecontents,
                                     multiplecontents.build_multiplecontents, multiplecontents.TINY_ARGS,
                                     has_steps=True),
    "diffcomosvc": ModelKind("DiffComoSVC", comosvc.load_comosvc, comosvc.build_comosvc,
                             comosvc.TINY_ARGS["teacher"], has_steps=True),
    "transformersvc": ModelKind("TransformerSVC", transformer_svc.load_transformer_svc,
                                transformer_svc.build_transformer_svc, transformer_svc.TINY_ARGS),
    "vitssvc": ModelKind("VitsSVC", vits_svc.load_vits_svc, vits_svc.build_vits_svc, vits_svc.TINY_ARGS,
                         predicts_audio=True, whole_source_median=False),
}


def _kind(model: str) -> ModelKind:
    if model not in KINDS:
        raise ValueError(f"unknown SVC model {model!r}; expected one of {', '.join(MODELS)}")
    return KINDS[model]


def model_parts(model: str) -> tuple[str, ...]:
    """The parts ``model`` has (VitsSVC has no vocoder)."""
    return tuple(p for p in PARTS if not (p == "vocoder" and _kind(model).predicts_audio))


# ---------------------------------------------------------------------------------------------
# Audio in and out: mono 24 kHz, silence, peak, segments
# ---------------------------------------------------------------------------------------------


def to_mono_24k(wav, sample_rate: int, what: str) -> np.ndarray:
    """A recording as float32 mono at 24 kHz: integer PCM scaled to [-1, 1], several channels averaged
    (the axis with fewer entries is the channels: ``[C, N]`` or ``[N, C]``), resampled. SVCInputError
    when it is not audio."""
    if isinstance(wav, torch.Tensor):
        wav = wav.detach().cpu().numpy()
    if wav is None:
        raise SVCInputError(f"{what} is missing")
    arr = np.asarray(wav)
    if np.issubdtype(arr.dtype, np.integer):
        arr = arr.astype(np.float32) / float(np.iinfo(arr.dtype).max)
    if arr.ndim == 2 and min(arr.shape) > 1:
        if min(arr.shape) > MAX_CHANNELS:
            raise SVCInputError(f"{what} must be audio [samples] or [channels, samples] with at most "
                                f"{MAX_CHANNELS} channels, got an array of shape {arr.shape}")
        arr = arr.mean(axis=0 if arr.shape[0] < arr.shape[1] else 1)
    arr = checks.mono(arr, what, SVCInputError)
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, numbers.Integral) or sample_rate <= 0:
        raise SVCInputError(f"{what}: the sample rate must be a positive integer, got {sample_rate!r}")
    return to_rate(arr, int(sample_rate), SAMPLE_RATE)


def is_silence(wave: np.ndarray, sample_rate: int = SAMPLE_RATE) -> bool:
    """``utils/audio_slicer.is_silence``: every frame's RMS below -40 dBFS (frames of 300 samples every
    10 ms over the audio zero-padded by 150 each side), or no more samples than the reference's
    minimum length."""
    wave = np.asarray(wave, dtype=np.float64).reshape(-1)
    hop = round(sample_rate * SILENCE_HOP_MS / 1000)
    window = min(round(SILENCE_MIN_INTERVAL), 4 * hop)
    if wave.shape[0] <= round(sample_rate * SILENCE_MIN_LENGTH_MS / 1000 / hop):
        return True
    padded = np.pad(wave, (window // 2, window // 2))
    frames = np.lib.stride_tricks.sliding_window_view(padded, window)[::hop]
    rms = np.sqrt(np.mean(np.square(frames), axis=-1))
    return bool((rms < 10 ** (SILENCE_THRESHOLD_DB / 20)).all())


def turn_up(wave: np.ndarray, peak: float = OUTPUT_PEAK) -> np.ndarray:
    """``wave`` scaled so that its largest magnitude is ``peak`` (all-zero audio is returned as is)."""
    wave = np.asarray(wave, dtype=np.float32)
    top = float(max(wave.max(initial=0.0), -wave.min(initial=0.0)))
    if top == 0.0:
        return wave.copy()
    return (wave * np.float32(peak / top)).astype(np.float32)


def split_segments(wave: np.ndarray) -> list[np.ndarray]:
    """``split_audio``: windows of :data:`SEGMENT_SAMPLES` every ``SEGMENT_SAMPLES - SEGMENT_OVERLAP_SAMPLES``,
    the last one ending with the audio (so every segment after the first is longer than the overlap)."""
    stride = SEGMENT_SAMPLES - SEGMENT_OVERLAP_SAMPLES
    segments = []
    for start in range(0, wave.shape[0], stride):
        segments.append(wave[start:start + SEGMENT_SAMPLES])
        if start + SEGMENT_SAMPLES >= wave.shape[0]:
            break
    return segments


def merge_segments(segments: Sequence[np.ndarray], overlap: int = SEGMENT_OVERLAP_SAMPLES) -> np.ndarray:
    """``merge_segments_encodec``: consecutive segments overlap by ``overlap`` samples; each is weighted by
    a triangle peaking at its middle (``0.5 - |t - 0.5|``, ``t`` strictly inside (0, 1)) and the sum is
    divided by the summed weights; the result is raised to :data:`OUTPUT_PEAK` (the reference saves it
    with ``turn_up``). One segment is returned as is."""
    segments = [np.asarray(s, dtype=np.float32).reshape(-1) for s in segments]
    if not segments:
        raise ValueError("no segments to merge")
    if len(segments) == 1:
        return segments[0].copy()
    total = sum(s.shape[0] for s in segments) - overlap * (len(segments) - 1)
    out = np.zeros(total, dtype=np.float32)
    weights = np.zeros(total, dtype=np.float32)
    offset = 0
    for seg in segments:
        n = seg.shape[0]
        t = np.linspace(0.0, 1.0, n + 2, dtype=np.float32)[1:-1]
        weight = np.float32(0.5) - np.abs(t - np.float32(0.5))
        out[offset:offset + n] += seg * weight
        weights[offset:offset + n] += weight
        offset += n - overlap
    return turn_up(out / weights)


def parse_key_shift(value) -> int | str:
    """A request's ``key_shift``: None -> :data:`DEFAULT_KEY_SHIFT`; ``"autoshift"`` / ``"reference"``; an
    integer (or its text) of semitones in :data:`KEY_SHIFT_RANGE`. SVCInputError otherwise."""
    if value is None:
        return DEFAULT_KEY_SHIFT
    low, high = KEY_SHIFT_RANGE
    if isinstance(value, str):
        text = value.strip().lower()
        if text in KEY_SHIFT_MODES:
            return text
        try:
            value = int(text)
        except ValueError:
            raise SVCInputError(f"key_shift must be one of {', '.join(KEY_SHIFT_MODES)} or an integer number of "
                                f"semitones in {low}..{high}, got {text!r}") from None
    return checks.integer(value, "key_shift (semitones)", SVCInputError, low, high)


# ---------------------------------------------------------------------------------------------
# Weights
# ---------------------------------------------------------------------------------------------


def _hub_part_files(model: str) -> dict[str, tuple[str, ...]]:
    """The :data:`~models.svc.official.PIPELINE_FILES` entries each part of ``model`` reads from the hub or
    an operator's folder (the unpublished models' training runs are :data:`~models.svc.official.LOCAL_RUNS`)."""
    files = {"front_ends": ("whisper", "contentvec"), "acoustic": (), "vocoder": ("singing_vocoder",)}
    if model == "multiplecontentssvc":
        files["front_ends"] += ("multiplecontentssvc_config",)
        files["acoustic"] = ("multiplecontentssvc", "multiplecontentssvc_stats")
    return {part: keys for part, keys in files.items() if part in model_parts(model)}


def _run_label(model: str) -> str:
    """How messages name a local training run's folder: its environment variable (never its path)."""
    run = LOCAL_RUNS[model]
    return f"${run.env}" if os.environ.get(run.env, "").strip() else f"${WEIGHTS_DIR_ENV}/{run.subdir}"


def resolve_parts(
    model: str,
    mode: str,
    parts: Sequence[str] | None = None,
    *,
    cache_dir: str | os.PathLike | None = None,
    local_dirs: Mapping[str, str | os.PathLike] | None = None,
) -> tuple[str, dict[str, Path], str]:
    """``(kind, roots, note)`` for ``parts`` of ``model``: ``kind`` ``"pretrained"`` (``roots``: entry key ->
    folder, plus ``"run"`` -> the experiment folder holding ``args.json``, ``singers.json``, ``checkpoint/``
    and ``data/``) or ``"tiny"`` (no roots). ``note`` is safe to show users.

    As :func:`models.weights.resolve_parts`: ``"auto"`` looks for every part's files on this machine and
    goes tiny when one is missing (every deployment of the model comes to the same answer);
    ``"pretrained"`` resolves (and may download) the asked parts' files, WeightsUnavailable naming what
    is missing. ``local_dirs``: :data:`~models.svc.official.PIPELINE_FILES` key -> a folder laid out like
    its repo (the unpublished models' runs come from their environment variables)."""
    kind = _kind(model)
    if mode not in WEIGHTS_MODES:
        raise ValueError(f"unknown weights mode {mode!r}; expected one of {', '.join(WEIGHTS_MODES)}")
    parts = model_parts(model) if parts is None else tuple(parts)
    unknown = set(parts) - set(model_parts(model))
    if unknown:
        raise ValueError(f"parts: unknown {sorted(unknown)} for {kind.label}; known: {', '.join(model_parts(model))}")
    if mode == "tiny":
        return "tiny", {}, TINY_NOTE
    run_folder = None
    needs_run = any(p in ("front_ends", "acoustic") for p in parts)
    if model in LOCAL_RUNS and (needs_run or mode == "auto"):
        try:
            run_folder = find_run_folder(model)
        except WeightsUnavailable as exc:
            if mode == "pretrained":
                raise
            note = f"{kind.label}: serving tiny random weights ({exc})"
            logger.warning("%s", note)
            return "tiny", {}, note
    weights_kind, found, note = resolve_pipeline_parts(mode, PIPELINE_FILES, _hub_part_files(model), parts,
                                                       cache_dir=cache_dir, local_dirs=local_dirs)
    if weights_kind == "tiny":
        return "tiny", {}, note
    roots = {key: resolved.root for key, resolved in found.items()}
    if model in found:  # the acoustic model's origin says most; the front ends' files are standard
        note = found[model].note
    if run_folder is not None and needs_run:
        roots["run"] = run_folder
        note = f"{kind.label} from the training run in {_run_label(model)}"
    elif model == "multiplecontentssvc" and needs_run:
        hub_root = roots.get("multiplecontentssvc") or roots["multiplecontentssvc_config"]
        roots["run"] = hub_root / MULTIPLECONTENTS_DIR
    return "pretrained", roots, note


def _where(model: str) -> str:
    """A user-safe name of the experiment folder, for messages."""
    if model in LOCAL_RUNS:
        return f"{KINDS[model].label} training run ({_run_label(model)})"
    return f"{SVC_REPO} {MULTIPLECONTENTS_DIR}"


def _uses_min_max_mel(args: Mapping[str, Any]) -> bool:
    """``preprocess.use_min_max_norm_mel`` (true in the SVC base config): the model predicts a min-max
    normalised mel that needs the dataset's extrema."""
    preprocess = args.get("preprocess") if isinstance(args.get("preprocess"), Mapping) else {}
    value = preprocess.get("use_min_max_norm_mel", True)
    if not isinstance(value, bool):
        raise ConfigError(f"preprocess.use_min_max_norm_mel must be true or false, got {value!r}")
    return value


# ---------------------------------------------------------------------------------------------
# The pipeline
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SVCResult:
    """A conversion: ``audio`` float32 mono at ``sample_rate`` (24 kHz); ``singer``: the target singer's
    name; ``singer_chosen_by``: ``"request"`` or ``"closest_f0"`` (the route's ``X-Amphion-Target-Singer``)."""

    audio: np.ndarray
    sample_rate: int
    singer: str
    singer_chosen_by: str


class SVCPipeline:
    """One SVC recipe's conversion. Build with :meth:`from_weights`; run :meth:`convert`, or the stages.

    A pipeline may hold only some parts (``from_weights(..., parts=...)``, what one deployment loads):
    ``front_ends`` (Whisper, ContentVec, the front-end config), ``acoustic`` (the model and its singer
    table), ``vocoder`` (the singing BigVGAN; none for VitsSVC). The stages of the parts it holds work,
    the others raise.
    """

    def __init__(
        self,
        model: str,
        *,
        frontend_config: SVCFrontendConfig,
        whisper: SVCWhisper | None = None,
        contentvec: ContentVec | None = None,
        acoustic_model: torch.nn.Module | None = None,
        singer_table: SingerTable | None = None,
        vocoder: Vocoder | None = None,
        device: str | torch.device = "cpu",
        weights_kind: str = "custom",
        note: str = "",
    ) -> None:
        self.model = model
        self.kind = _kind(model)
        self.frontend_config = frontend_config
        self.whisper = whisper
        self.contentvec = contentvec
        self.acoustic_model = acoustic_model
        self.singer_table = singer_table
        self.vocoder = vocoder
        self.device = torch.device(device)
        self.weights_kind = weights_kind
        """``"pretrained"``, ``"tiny"`` or ``"custom"`` (built by hand)."""
        self.note = note
        """Where the weights come from; user-safe."""
        self._check_consistency()

    # ------------------------------------------------------------------------------------------
    # construction

    @classmethod
    def from_weights(
        cls,
        model: str,
        mode: str = "auto",
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        *,
        parts: Sequence[str] | None = None,
        cache_dir: str | os.PathLike | None = None,
        local_dirs: Mapping[str, str | os.PathLike] | None = None,
        seed: int = 0,
    ) -> "SVCPipeline":
        """``model`` (one of :data:`MODELS`) with the weights of ``mode`` (``"pretrained"``, ``"tiny"``,
        ``"auto"``; :func:`resolve_parts`). ``parts``: a subset of :data:`PARTS` (None: all the model has).
        ``dtype`` applies to the Whisper-medium encoder, the largest part (a 30 s window per segment);
        ContentVec, the acoustic models (their samplers mix in float32 tensors, and the reference runs
        them in float32) and the vocoder stay float32. ``seed`` seeds the tiny weights (every part from
        the same tiny configs, so parts built by separate deployments fit together)."""
        kind = _kind(model)
        parts = model_parts(model) if parts is None else tuple(parts)
        weights_kind, roots, note = resolve_parts(model, mode, parts, cache_dir=cache_dir, local_dirs=local_dirs)
        pretrained = weights_kind == "pretrained"
        if not pretrained:
            args: Mapping[str, Any] = kind.tiny_args
        elif "run" in roots:
            args = read_json(roots["run"] / "args.json")
        else:  # a vocoder alone: no experiment folder to read; the recipes' official front-end values
            args = {"preprocess": {}}
        built: dict[str, Any] = {"frontend_config": parse_frontend_config(args)}
        if "front_ends" in parts:
            if pretrained:
                built["whisper"] = load_svc_whisper(roots["whisper"], device=device, dtype=dtype)
                built["contentvec"] = load_contentvec(roots["contentvec"], device=device)
            else:
                whisper = build_svc_whisper(seed=seed, device=device)
                whisper.features.encoder.to(dtype=dtype)
                built["whisper"] = whisper
                built["contentvec"] = build_contentvec(seed=seed + 1, device=device)
        if "acoustic" in parts:
            if pretrained:
                acoustic = kind.load(roots["run"], device=device)
                n_mel = None if kind.predicts_audio or not _uses_min_max_mel(args) else acoustic.config.n_mel
                table = load_singer_table(roots["run"], acoustic.singers, args, n_mel=n_mel, where=_where(model))
            else:
                acoustic = kind.build(None, seed=seed + 2, device=device)
                table = tiny_singer_table(None if kind.predicts_audio else acoustic.config.n_mel)
                acoustic.singers = dict(table.ids)
            built["acoustic_model"] = acoustic
            built["singer_table"] = table
        if "vocoder" in parts:
            if pretrained:
                built["vocoder"] = load_singing_vocoder(roots["singing_vocoder"], device=device, note=note)
            else:
                built["vocoder"] = build_singing_vocoder(seed=seed + 3, device=device)
        return cls(model, **built, device=device, weights_kind=weights_kind, note=note)

    def _check_consistency(self) -> None:
        cfg = self.frontend_config
        problems = []
        if cfg.sample_rate != SAMPLE_RATE:
            problems.append(f"the front ends run at {cfg.sample_rate} Hz, the pipeline at {SAMPLE_RATE} Hz")
        if (self.whisper is None) != (self.contentvec is None):
            problems.append("Whisper and ContentVec go together (the front-end part)")
        if self.acoustic_model is not None:
            if self.singer_table is None:
                problems.append("the acoustic model needs its singer table")
            condition = self.acoustic_model.config.condition_encoder
            if self.whisper is not None and (self.whisper.dim, self.contentvec.dim) != \
                    (condition.whisper_dim, condition.contentvec_dim):
                problems.append(f"the front ends give Whisper / ContentVec widths {self.whisper.dim} / "
                                f"{self.contentvec.dim}, the model reads {condition.whisper_dim} / "
                                f"{condition.contentvec_dim}")
            if self.singer_table is not None:
                size = getattr(self.acoustic_model.config, "n_speakers", condition.singer_table_size)
                too_big = [n for n in self.singer_table.names if self.singer_table.spk_id(n) >= size]
                if too_big:
                    problems.append(f"singers {too_big[:3]} have ids beyond the model's table of {size}")
        if self.vocoder is not None:
            if self.kind.predicts_audio:
                problems.append(f"{self.kind.label} decodes audio itself and takes no vocoder")
            mel = self.vocoder.mel_config
            if (self.vocoder.sample_rate, mel.hop_length, mel.n_mels) != (SAMPLE_RATE, cfg.hop_size, cfg.n_mel):
                problems.append(f"the vocoder ({self.vocoder.sample_rate} Hz, hop {mel.hop_length}, {mel.n_mels} "
                                f"mels) does not fit the front ends ({SAMPLE_RATE} Hz, hop {cfg.hop_size}, "
                                f"{cfg.n_mel} mels)")
        if problems:
            raise ValueError(f"{self.kind.label} pipeline parts do not fit together: " + "; ".join(problems))

    @property
    def parts(self) -> tuple[str, ...]:
        """The parts this pipeline holds (see :data:`PARTS`)."""
        held = {"front_ends": self.whisper, "acoustic": self.acoustic_model, "vocoder": self.vocoder}
        return tuple(p for p in PARTS if held[p] is not None)

    def _part(self, part: str) -> None:
        if part not in self.parts:
            raise RuntimeError(f"this {self.kind.label} pipeline was built without its {part!r} part "
                               f"(it holds: {', '.join(self.parts) or 'nothing'})")

    @property
    def sample_rate(self) -> int:
        """Output sample rate (24 kHz)."""
        return SAMPLE_RATE

    @property
    def has_steps(self) -> bool:
        """Whether requests may give ``diffusion_steps``."""
        return self.kind.has_steps

    @property
    def default_steps(self) -> int | None:
        """The step count a request without ``diffusion_steps`` runs (the reference's; None: no steps)."""
        if not self.kind.has_steps:
            return None
        self._part("acoustic")
        return int(self.acoustic_model.default_steps)

    # ------------------------------------------------------------------------------------------
    # singers

    def singers(self) -> list[dict[str, Any]]:
        """``[{"name", "f0_median"}]`` in ``spk_id`` order (F0 medians in Hz, from the training data)."""
        self._part("acoustic")
        return self.singer_table.listing()

    # ------------------------------------------------------------------------------------------
    # stage 1: front ends

    @torch.inference_mode()
    def front_ends(self, content_wav, content_sr: int = SAMPLE_RATE, reference_wav=None,
                   reference_sr: int = SAMPLE_RATE, *, on_step: ProgressFn | None = None) -> dict[str, Any]:
        """Source (and optional reference) recordings -> the features :meth:`acoustic` reads.

        Recordings: numpy / torch, ``[N]`` or two-dimensional with up to :data:`MAX_CHANNELS` channels
        (averaged), integer PCM or float, at any sample rate (resampled to 24 kHz). Returns::

            {"segments": [{"f0": float64 [P] Hz (Praat's own frames, 0 = unvoiced, not shifted),
                           "energy": float32 [T], "whisper": float32 [T, Dw],
                           "contentvec": float32 [T, Dc]}, ...],   # one per 10 s segment, T mel frames
             "source_f0_median": float | None,     # voiced median over all segments (None: nothing voiced)
             "reference_f0_median": float | None,  # the reference's (None: no reference / nothing voiced)
             "num_samples": int}                   # the 24 kHz source's length

        ``on_step(stage, segment, segments)`` for the stages ``f0``, ``whisper``, ``contentvec``."""
        self._part("front_ends")
        cfg = self.frontend_config
        source = to_mono_24k(content_wav, content_sr, "content_audio")
        if source.shape[0] < MIN_SOURCE_SECONDS * SAMPLE_RATE:
            raise SVCInputError(f"content_audio is too short: {source.shape[0] / SAMPLE_RATE:.2f} s, at least "
                                f"{MIN_SOURCE_SECONDS:g} s needed")
        reference_median = None
        if reference_wav is not None:
            reference = to_mono_24k(reference_wav, reference_sr, "reference_audio")
            if reference.shape[0] == 0:
                raise SVCInputError("reference_audio is empty")
            reference_median = voiced_median(praat_f0(reference, cfg))
        # Amphion extracts every feature from its saved segment files, raised to the output peak.
        segments = [seg if is_silence(seg) else turn_up(seg) for seg in split_segments(source)]
        total = len(segments)
        f0_report, whisper_report, contentvec_report = (step_reporter(s, on_step) for s in STAGES[:3])
        items = []
        for i, seg in enumerate(segments):
            _, energy = mel_and_energy(seg, cfg)
            items.append({"f0": praat_f0(seg, cfg), "energy": float32(energy)})
            if f0_report:
                f0_report(i + 1, total)
        # Both content models read the segment resampled to 16 kHz; valid frames count from the 24 kHz length.
        wavs16k = [to_rate(seg, SAMPLE_RATE, CONTENT_SAMPLE_RATE) for seg in segments]
        durations = [seg.shape[0] / SAMPLE_RATE for seg in segments]
        for name, extractor, report in (("whisper", self.whisper, whisper_report),
                                        ("contentvec", self.contentvec, contentvec_report)):
            source_hop, target_hop = content_hops(cfg, name)
            for i, (wav, duration, item) in enumerate(zip(wavs16k, durations, items)):
                # One segment per call: Whisper pads every item to a 30 s window.
                feature = extractor([wav], [duration])[0]
                item[name] = align_content(feature, item["energy"].shape[0], source_hop, target_hop)
                if report:
                    report(i + 1, total)
        return {
            "segments": items,
            "source_f0_median": voiced_median(np.concatenate([item["f0"] for item in items])),
            "reference_f0_median": reference_median,
            "num_samples": int(source.shape[0]),
        }

    # ------------------------------------------------------------------------------------------
    # stage 2: the acoustic model

    def _check_features(self, features: Mapping[str, Any]) -> list[Mapping[str, np.ndarray]]:
        condition = self.acoustic_model.config.condition_encoder
        segments = features.get("segments") if isinstance(features, Mapping) else None
        if not isinstance(segments, Sequence) or not segments:
            raise ValueError("features must be front_ends()'s dict with at least one segment")
        for i, seg in enumerate(segments):
            frames = np.asarray(seg["energy"]).shape[0]
            shapes = {"whisper": (frames, condition.whisper_dim), "contentvec": (frames, condition.contentvec_dim)}
            for name, shape in shapes.items():
                if tuple(np.asarray(seg[name]).shape) != shape:
                    raise ValueError(f"segment {i}: {name} features are {np.asarray(seg[name]).shape}, "
                                     f"the model reads {shape}")
        return list(segments)

    def _check_steps(self, diffusion_steps) -> int | None:
        if not self.kind.has_steps:
            if diffusion_steps is not None:
                raise SVCInputError(f"{self.kind.label} has no diffusion steps; leave diffusion_steps out")
            return None
        try:
            return self.acoustic_model.check_steps(diffusion_steps)
        except DiffusionStepsError as exc:
            raise SVCStepsError(str(exc)) from None

    def calls_per_segment(self, diffusion_steps: int | None = None) -> int:
        """Acoustic model calls per segment (``on_step``'s unit for the acoustic stage): the denoiser calls
        of a diffusion model, else 1."""
        self._part("acoustic")
        if not self.kind.has_steps:
            return 1
        return int(self.acoustic_model.denoiser_calls(self._check_steps(diffusion_steps)))

    @torch.inference_mode()
    def acoustic(
        self,
        features: Mapping[str, Any],
        *,
        target_singer: str | None = None,
        key_shift: int | str | None = DEFAULT_KEY_SHIFT,
        diffusion_steps: int | None = None,
        seed: int | None = None,
        on_step: ProgressFn | None = None,
    ) -> dict[str, Any]:
        """:meth:`front_ends`' features -> ``{"singer", "singer_chosen_by"}`` plus ``"mels"``: a de-normalised
        log-mel float32 ``[T_i, n_mel]`` per segment (mel models), or ``"audio"``: the merged float32
        waveform at 24 kHz (VitsSVC).

        ``target_singer``: a name of :meth:`singers` (or its part after the dataset, ``Adele``); None:
        the singer whose median F0 is closest to the reference's. ``key_shift``: ``"autoshift"`` (the
        source's median F0 moved to the singer's), ``"reference"`` (to the reference's), or semitones
        (:func:`parse_key_shift`). ``diffusion_steps``: None for the reference's count
        (:attr:`default_steps`); only for models that have steps. ``seed``: the same seed gives the same
        output (None: torch's global RNG; VitsSVC then draws as the reference does, a fixed seed per
        segment). ``on_step("acoustic", call, total)`` over all segments' calls."""
        self._part("acoustic")
        key = parse_key_shift(key_shift)
        steps = self._check_steps(diffusion_steps)
        seed = checks.seed(seed, SVCInputError)
        segments = self._check_features(features)
        table = self.singer_table
        reference_median = features.get("reference_f0_median")
        singer, chosen_by = table.choose(target_singer, reference_median, SVCInputError)
        if key == "reference" and reference_median is None:
            raise SVCInputError("key_shift 'reference' needs a reference_audio with voiced frames")
        source_median = features.get("source_f0_median") if self.kind.whole_source_median else None
        spk_id = torch.tensor([[table.spk_id(singer)]], dtype=torch.long, device=self.device)
        generator = None if seed is None else torch.Generator(device=self.device).manual_seed(seed)

        per_segment = self.calls_per_segment(steps)
        total, done = per_segment * len(segments), 0
        report = step_reporter(STAGES[3], on_step)

        def call_done(step: int, _total: int) -> None:
            if report:
                report(done + step, total)

        outputs = []
        for seg in segments:
            frames = np.asarray(seg["energy"]).shape[0]
            f0 = shift_f0(np.asarray(seg["f0"], dtype=np.float64), key, source_median=source_median,
                          target_median=table.f0_median(singer), reference_median=reference_median)
            pitch, uv = frame_pitch_and_uv(f0, frames)
            inputs = (torch.from_numpy(pitch)[None], torch.from_numpy(uv)[None],
                      torch.from_numpy(np.asarray(seg["energy"], dtype=np.float32))[None],
                      torch.from_numpy(np.asarray(seg["whisper"], dtype=np.float32))[None],
                      torch.from_numpy(np.asarray(seg["contentvec"], dtype=np.float32))[None])
            inputs = tuple(x.to(self.device) for x in inputs) + (spk_id,)
            outputs.append(self._run_model(inputs, steps, generator, call_done, frames))
            done += per_segment
            if report and not self.kind.has_steps:
                report(done, total)
        result = {"singer": singer, "singer_chosen_by": chosen_by}
        if self.kind.predicts_audio:
            result["audio"] = merge_segments([wav if is_silence(wav) else turn_up(wav) for wav in outputs])
        else:
            result["mels"] = [table.denormalise(mel, singer) for mel in outputs]
        return result

    def _run_model(self, inputs: tuple[torch.Tensor, ...], steps: int | None, generator: torch.Generator | None,
                   on_call: Callable[[int, int], None], frames: int) -> np.ndarray:
        """One segment through the acoustic model: its normalised mel ``[T, n_mel]`` or its audio ``[T * hop]``."""
        model = self.acoustic_model
        if self.kind.predicts_audio:
            return float32(model.infer(*inputs, generator=generator)[0, 0])
        if self.kind.has_steps:
            mel = model(*inputs, n_steps=steps, generator=generator, on_step=on_call)
        else:
            mel = model(*inputs)
        return float32(mel[0, :frames])

    # ------------------------------------------------------------------------------------------
    # stage 3: the vocoder

    def vocode(self, mels: Sequence[np.ndarray], *, on_step: ProgressFn | None = None) -> np.ndarray:
        """:meth:`acoustic`'s ``"mels"`` (log-mel ``[T_i, n_mel]`` per segment) -> the merged float32 waveform
        at 24 kHz: each segment vocoded alone (``T_i * 256`` samples), raised to peak 0.9 unless silent,
        crossfaded (:func:`merge_segments`). ``on_step("vocoder", segment, segments)``."""
        self._part("vocoder")
        if not mels:
            raise ValueError("no mels to vocode")
        report = step_reporter(STAGES[4], on_step)
        waves = []
        for i, mel in enumerate(mels):
            wav = self.vocoder.vocode([np.asarray(mel, dtype=np.float32).T])[0]
            waves.append(wav if is_silence(wav) else turn_up(wav))
            if report:
                report(i + 1, len(mels))
        return merge_segments(waves)

    # ------------------------------------------------------------------------------------------
    # everything

    def convert(
        self,
        content_wav,
        content_sr: int = SAMPLE_RATE,
        reference_wav=None,
        reference_sr: int = SAMPLE_RATE,
        *,
        target_singer: str | None = None,
        key_shift: int | str | None = DEFAULT_KEY_SHIFT,
        diffusion_steps: int | None = None,
        seed: int | None = None,
        on_step: ProgressFn | None = None,
    ) -> SVCResult:
        """The three stages in process (arguments as theirs). The request's own arguments are checked
        before any audio is processed."""
        for part in model_parts(self.model):
            self._part(part)
        parse_key_shift(key_shift)
        self._check_steps(diffusion_steps)
        checks.seed(seed, SVCInputError)
        if target_singer is not None:
            self.singer_table.lookup(str(target_singer).strip(), SVCInputError)
        elif reference_wav is None:
            raise SVCInputError("give target_singer, or a reference_audio to pick the singer with the closest "
                                "median F0")
        features = self.front_ends(content_wav, content_sr, reference_wav, reference_sr, on_step=on_step)
        out = self.acoustic(features, target_singer=target_singer, key_shift=key_shift,
                            diffusion_steps=diffusion_steps, seed=seed, on_step=on_step)
        audio = out["audio"] if self.kind.predicts_audio else self.vocode(out["mels"], on_step=on_step)
        return SVCResult(audio, SAMPLE_RATE, out["singer"], out["singer_chosen_by"])
