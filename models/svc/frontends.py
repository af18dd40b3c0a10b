"""The SVC recipes' frame features of a source segment, as Amphion's preprocessing computes them.

Contract (everything at the 24 kHz mel frame rate, ``T = mel frames`` of the segment):

* :class:`SVCFrontendConfig` / :func:`parse_frontend_config`: the ``preprocess`` values read here,
  from the whole merged ``args.json`` dict.
* :func:`mel_and_energy`: 24 kHz mono -> natural-log mel ``[n_mel, T]`` (the vocoders' recipe,
  :mod:`models.audio.mel`) and energy ``[T]`` = ``sqrt(sum_f exp(mel)^2)``.
* :func:`praat_f0`: Praat's F0 track (float64 Hz, 0 = unvoiced, Praat's own frame count).
* Key shift on that track: :func:`transpose_key` (semitones), :func:`pitch_shift_to_target` (to a
  median F0), :func:`shift_f0` picking one by a request's ``key_shift`` (an int, ``"autoshift"`` to
  the target singer's median, ``"reference"`` to a reference recording's); :func:`voiced_median`.
* :func:`frame_pitch_and_uv`: the shifted track cut or zero-padded to ``T`` (float64) and the model's
  voicing input, **1 = UNVOICED** (int64).
* :func:`valid_content_frames` and :func:`align_content`: a 50 Hz content feature (Whisper,
  ContentVec) cut to the segment and mapped onto the ``T`` mel frames.

Whisper and ContentVec themselves: :mod:`models.svc.whisper_features`, :mod:`models.svc.contentvec`.
How this follows the reference and where it differs: ``models/svc/README.md`` ("Front ends").
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from models.audio.f0 import align_to_frames, praat_track
from models.audio.mel import MelConfig, log_mel_spectrogram
from models.core.configs import ConfigError

__all__ = [
    "KEY_SHIFT_MODES",
    "SVCFrontendConfig",
    "align_content",
    "content_hops",
    "energy_from_mel",
    "frame_pitch_and_uv",
    "mel_and_energy",
    "parse_frontend_config",
    "pitch_shift_to_target",
    "praat_f0",
    "shift_f0",
    "transpose_key",
    "valid_content_frames",
    "voiced_median",
]

#: The named key shifts; any other ``key_shift`` is a number of semitones.
KEY_SHIFT_MODES = ("autoshift", "reference")


@dataclass(frozen=True)
class SVCFrontendConfig:
    """The ``preprocess`` values the SVC front ends read (same key names; official values as defaults)."""

    sample_rate: int = 24000
    n_fft: int = 1024
    hop_size: int = 256
    win_size: int = 1024
    n_mel: int = 100
    fmin: float = 0.0
    fmax: float = 12000.0
    f0_min: float = 50.0
    f0_max: float = 1100.0
    pitch_extractor: str = "parselmouth"
    whisper_sample_rate: int = 16000
    whisper_frameshift: float = 0.01
    whisper_downsample_rate: int = 2
    contentvec_sample_rate: int = 16000
    contentvec_frameshift: float = 0.02

    def __post_init__(self) -> None:
        if self.pitch_extractor != "parselmouth":
            raise ConfigError(f"preprocess.pitch_extractor {self.pitch_extractor!r} is not supported "
                              "(only 'parselmouth')")
        if not 0 < self.f0_min < self.f0_max:
            raise ConfigError(f"preprocess: need 0 < f0_min < f0_max, got {self.f0_min}, {self.f0_max}")

    @property
    def mel(self) -> MelConfig:
        return MelConfig(sample_rate=self.sample_rate, n_fft=self.n_fft, hop_length=self.hop_size,
                         win_length=self.win_size, n_mels=self.n_mel, fmin=float(self.fmin), fmax=float(self.fmax))

    @property
    def whisper_frame_seconds(self) -> float:
        """Seconds per Whisper encoder frame (10 ms mel hop x the encoder's stride 2 = 20 ms)."""
        return self.whisper_frameshift * self.whisper_downsample_rate

    def num_frames(self, num_samples: int) -> int:
        """Mel frames ``T`` of a 24 kHz segment of ``num_samples``."""
        return self.mel.num_frames(num_samples)


_FRONTEND_KEYS = tuple(SVCFrontendConfig.__dataclass_fields__)


def parse_frontend_config(args: Mapping[str, Any]) -> SVCFrontendConfig:
    """The front ends' config from a whole (merged) ``args.json`` dict: its ``preprocess`` section,
    official values for keys it leaves out (base configs supply them in the reference)."""
    section = args.get("preprocess")
    if not isinstance(section, Mapping):
        raise ConfigError("args.json: no preprocess section")
    try:
        return SVCFrontendConfig(**{k: section[k] for k in _FRONTEND_KEYS if k in section})
    except TypeError as exc:
        raise ConfigError(f"preprocess: {exc}") from exc


# ---------------------------------------------------------------------------------------------
# Mel and energy
# ---------------------------------------------------------------------------------------------


def energy_from_mel(mel: torch.Tensor) -> torch.Tensor:
    """Frame energy of a natural-log mel ``[..., n_mel, T]`` -> ``[..., T]`` (``energy_extract_mode: from_mel``)."""
    return mel.exp().square().sum(dim=-2).sqrt()


def mel_and_energy(wave24k: torch.Tensor | np.ndarray, config: SVCFrontendConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """24 kHz mono ``[N]`` -> (log-mel ``[n_mel, T]``, energy ``[T]``), float32, ``T = config.num_frames(N)``."""
    wave = torch.as_tensor(np.asarray(wave24k) if not isinstance(wave24k, torch.Tensor) else wave24k)
    mel = log_mel_spectrogram(wave.float().reshape(1, -1), config.mel)[0]
    return mel, energy_from_mel(mel)


# ---------------------------------------------------------------------------------------------
# F0, key shift, voicing
# ---------------------------------------------------------------------------------------------


def praat_f0(wave: np.ndarray | torch.Tensor, config: SVCFrontendConfig) -> np.ndarray:
    """Praat's autocorrelation F0 of a mono wave at ``config.sample_rate``: float64 Hz per Praat frame
    (0 = unvoiced), one frame per mel hop but Praat's own count (a few short of ``T``); empty when
    the wave is shorter than Praat's window (the reference fails there)."""
    if isinstance(wave, torch.Tensor):
        wave = wave.detach().cpu().numpy()
    return praat_track(wave, config.sample_rate, config.hop_size, f0_min=config.f0_min, f0_max=config.f0_max)


def voiced_median(f0: np.ndarray) -> float | None:
    """Median of the voiced (non-zero) values; None when nothing is voiced."""
    f0 = np.asarray(f0).reshape(-1)
    voiced = f0[f0 != 0]
    return float(np.median(voiced)) if voiced.size else None


def transpose_key(f0: np.ndarray, semitones: float) -> np.ndarray:
    """F0 moved by ``semitones`` (``f0 * 2^(k/12)``; 0 Hz stays unvoiced)."""
    return f0 * 2 ** (semitones / 12)


def pitch_shift_to_target(f0: np.ndarray, target_median: float, source_median: float | None = None) -> np.ndarray:
    """F0 scaled so that its voiced median becomes ``target_median``. ``source_median`` None: this
    track's own voiced median (the reference passes the whole input file's). A track with nothing
    voiced is returned unchanged (the reference would divide by NaN)."""
    if source_median is None:
        source_median = voiced_median(f0)
    if not source_median:
        return np.array(f0, copy=True)
    return f0 * (target_median / source_median)


def shift_f0(f0: np.ndarray, key_shift: int | float | str, *, source_median: float | None = None,
             target_median: float | None = None, reference_median: float | None = None) -> np.ndarray:
    """A request's key shift on an F0 track: a number of semitones, ``"autoshift"`` (to the target
    singer's voiced median F0, ``target_median``, as the reference's default) or ``"reference"`` (to a
    reference recording's, ``reference_median``). ``source_median``: the whole source's voiced median
    (None: this track's). A median that is None (nothing voiced) leaves the track unshifted."""
    if isinstance(key_shift, str):
        if key_shift not in KEY_SHIFT_MODES:
            raise ValueError(f"key_shift must be a number of semitones or one of {KEY_SHIFT_MODES}, got {key_shift!r}")
        goal = target_median if key_shift == "autoshift" else reference_median
        if goal is None:
            return np.array(f0, copy=True)
        return pitch_shift_to_target(f0, goal, source_median)
    if not key_shift:
        return np.array(f0, copy=True)
    return transpose_key(f0, key_shift)


def frame_pitch_and_uv(f0: np.ndarray, num_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """A (shifted) Praat track -> the model's ``frame_pitch`` (float64, cut or zero-padded at the end to
    ``num_frames``) and ``frame_uv`` (int64, **1 = unvoiced**: the reference stores ``f0 != 0`` and its
    dataset inverts it; the padded tail counts as unvoiced)."""
    pitch = align_to_frames(np.asarray(f0, dtype=np.float64), num_frames)
    uv = (pitch == 0).astype(np.int64)
    return pitch, uv


# ---------------------------------------------------------------------------------------------
# Content features onto mel frames
# ---------------------------------------------------------------------------------------------


def content_hops(config: SVCFrontendConfig, kind: str) -> tuple[int, int]:
    """(source, target) hops of a content feature against the mel frames, both divided by their gcd:
    Whisper and ContentVec (20 ms = 480 samples at 24 kHz) against hop 256 give (15, 8)."""
    if kind == "whisper":
        seconds = config.whisper_frame_seconds
    elif kind == "contentvec":
        seconds = config.contentvec_frameshift
    else:
        raise ValueError(f"unknown content feature {kind!r} (whisper, contentvec)")
    source = int(seconds * config.sample_rate)  # int() as the reference: 480.00000000000006 -> 480
    common = math.gcd(source, config.hop_size)
    return source // common, config.hop_size // common


def valid_content_frames(duration: float, frame_seconds: float) -> int:
    """Content frames kept for a segment of ``duration`` seconds (``ceil((d - s) / s) + 1``, the
    reference's ``get_valid_features``); the rest of the 30 s window is padding."""
    return int(math.ceil((duration - frame_seconds) / frame_seconds)) + 1


def align_content(content: np.ndarray | torch.Tensor, target_len: int, source_hop: int, target_hop: int) -> np.ndarray:
    """Content features ``[S, D]`` -> ``[target_len, D]`` float32 on the mel frames.

    Each source frame is repeated ``source_hop`` times and consecutive groups of ``target_hop`` are
    averaged, using only the source frames the target span needs (``target_len * target_hop //
    source_hop + 1``); a result short of ``target_len`` repeats its last row. Float32 numpy means, as
    the reference computes them.
    """
    if isinstance(content, torch.Tensor):
        content = content.detach().cpu().numpy()
    content = np.asarray(content, dtype=np.float32)
    if content.ndim != 2 or content.shape[0] == 0:
        raise ValueError(f"expected content features [S > 0, D], got {content.shape}")
    if target_len <= 0:
        raise ValueError(f"target_len must be positive, got {target_len}")
    used = min(target_len * target_hop // source_hop + 1, content.shape[0])
    kept = used * source_hop // target_hop * target_hop
    upsampled = np.repeat(content[:used], source_hop, axis=0)[:kept]
    out = upsampled.reshape(-1, target_hop, content.shape[1]).mean(axis=1)
    if out.shape[0] < target_len:
        out = np.concatenate([out, np.repeat(out[-1:], target_len - out.shape[0], axis=0)])
    return np.ascontiguousarray(out[:target_len])
