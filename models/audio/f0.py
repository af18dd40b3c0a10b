"""Frame-level F0 the way Amphion's NSF-HiFiGAN recipes extract it.

Amphion (``utils/f0.py::get_f0_features_using_parselmouth``, ``pitch_extractor: "parselmouth"``) runs
Praat's autocorrelation pitch tracker with a time step of one mel hop, voicing threshold 0.6 and the
config's pitch floor / ceiling (50 / 1100 Hz in the vocoder recipes), and keeps Praat's frequency
track as is: 0 Hz marks an unvoiced frame. Praat's frames do not line up one-to-one with the mel
frames (its first frame sits half an analysis window in), and Amphion does not try to: its datasets
crop the track, or zero-pad it at the end, to the mel frame count (``utils/data_utils.align_length``).
We do exactly the same so that the vocoder sees F0 the way it saw it in training.
"""

from __future__ import annotations

import numpy as np

DEFAULT_F0_MIN = 50.0
DEFAULT_F0_MAX = 1100.0
VOICING_THRESHOLD = 0.6


def align_to_frames(track: np.ndarray, num_frames: int) -> np.ndarray:
    """Crop, or zero-pad at the end, a frame track to ``num_frames`` (Amphion's ``align_length``)."""
    track = np.asarray(track)
    if track.shape[0] >= num_frames:
        return track[:num_frames]
    return np.pad(track, (0, num_frames - track.shape[0]), constant_values=0)


def praat_track(wave: np.ndarray, sample_rate: int, hop_length: int, *, f0_min: float = DEFAULT_F0_MIN,
                f0_max: float = DEFAULT_F0_MAX) -> np.ndarray:
    """Praat's autocorrelation F0 track as is: float64 Hz per Praat frame (0 = unvoiced), one frame per
    hop but Praat's own count (a few short of the mel frames); empty for a sound shorter than its
    analysis window (3 periods of the pitch floor), which has no measurable pitch."""
    import parselmouth  # imported lazily: only the models that read F0 need Praat

    wave = np.asarray(wave, dtype=np.float64).reshape(-1)
    if wave.shape[0] == 0:
        return np.zeros(0, dtype=np.float64)
    try:
        pitch = parselmouth.Sound(wave, sampling_frequency=sample_rate).to_pitch_ac(
            time_step=hop_length / sample_rate,
            voicing_threshold=VOICING_THRESHOLD,
            pitch_floor=f0_min,
            pitch_ceiling=f0_max,
        )
    except parselmouth.PraatError:
        return np.zeros(0, dtype=np.float64)
    return np.nan_to_num(np.asarray(pitch.selected_array["frequency"], dtype=np.float64), nan=0.0)


def parselmouth_f0(
    wave: np.ndarray,
    sample_rate: int,
    hop_length: int,
    *,
    f0_min: float = DEFAULT_F0_MIN,
    f0_max: float = DEFAULT_F0_MAX,
    num_frames: int | None = None,
) -> np.ndarray:
    """F0 in Hz (float32, 0 = unvoiced) at the mel frame rate, ``num_frames`` long (default ``L // hop``)."""
    wave = np.asarray(wave).reshape(-1)
    if num_frames is None:
        num_frames = wave.shape[0] // hop_length
    if num_frames <= 0:
        return np.zeros(max(num_frames, 0), dtype=np.float32)
    track = praat_track(wave, sample_rate, hop_length, f0_min=f0_min, f0_max=f0_max)
    return align_to_frames(track, num_frames).astype(np.float32)
