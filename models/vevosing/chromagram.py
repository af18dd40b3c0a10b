"""Vevo1.5's 24-bin chromagram: librosa's ``feature.chroma_stft`` with its automatic tuning estimate,
re-implemented in NumPy (no librosa at run time), at the reference's float32 precision.

:class:`Chromagram` maps 24 kHz audio to ``[frames, 24]`` float32 at 50 Hz (n_fft 1920, hop 480), cut
(or edge-padded in time) to ``frame_len`` when given; :meth:`Chromagram.compute_with_details` exposes
the intermediates. A configuration it cannot use is a :class:`ConfigError`. The steps and the one
reference quirk not reproduced: ``models/vevosing/README.md``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from models.core.configs import ConfigError

__all__ = [
    "ChromaDetails",
    "Chromagram",
    "ChromagramConfig",
    "chroma_filterbank",
    "estimate_tuning",
    "parse_chromagram_config",
    "power_spectrogram",
]

# piptrack's defaults (librosa.core.pitch.piptrack), used by estimate_tuning.
PITCH_FMIN = 150.0
PITCH_FMAX = 4000.0
PEAK_THRESHOLD = 0.1
TUNING_RESOLUTION = 0.01
# filters.chroma defaults.
CENTER_OCTAVE = 5.0
OCTAVE_WIDTH = 2.0
A440_OCTS_REF = 440.0 / 16  # hz_to_octs: octave 0 is A440 / 16 (~27.5 Hz)


@dataclass(frozen=True)
class ChromagramConfig:
    sample_rate: int = 24000
    n_fft: int = 1920
    hop_size: int = 480
    win_size: int = 1920
    n_chroma: int = 24  # hard-coded by get_chromagram

    def __post_init__(self) -> None:
        for name in ("sample_rate", "n_fft", "hop_size", "win_size", "n_chroma"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"ChromagramConfig.{name} must be a positive integer, got {value!r}")
        if self.win_size > self.n_fft:
            raise ConfigError(f"win_size {self.win_size} exceeds n_fft {self.n_fft}")
        if self.n_chroma % 12:
            raise ConfigError(f"n_chroma must be a multiple of 12, got {self.n_chroma}")

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.hop_size


def parse_chromagram_config(raw: dict) -> ChromagramConfig:
    """From the ``preprocess`` block of a Vevo1.5 FM / AR config (or the block itself)."""
    block = raw.get("preprocess", raw) if isinstance(raw, dict) else None
    if not isinstance(block, dict):
        raise ConfigError("chromagram config: expected a 'preprocess' object")
    values = {}
    for ours, theirs in (("sample_rate", "sample_rate"), ("n_fft", "n_fft"), ("hop_size", "hop_size"),
                         ("win_size", "win_size")):
        value = block.get(theirs)
        if value is None:
            raise ConfigError(f"chromagram config: missing required key {theirs!r}")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or float(value) != int(value):
            raise ConfigError(f"chromagram config: {theirs!r} must be an integer, got {value!r}")
        values[ours] = int(value)
    return ChromagramConfig(**values)


# ---------------------------------------------------------------------------------------------
# The steps
# ---------------------------------------------------------------------------------------------


def power_spectrogram(y: np.ndarray, n_fft: int, hop: int, win: int) -> np.ndarray:
    """``|STFT|^2`` ``[1 + n_fft // 2, 1 + N // hop]`` float32, librosa's ``stft`` numerics (see step 1)."""
    y = np.asarray(y, dtype=np.float32)
    padded = np.pad(y, n_fft // 2).astype(np.float64)
    # Periodic Hann of `win` samples, centred in n_fft (scipy's get_window(..., fftbins=True) + pad_center).
    window = np.zeros(n_fft)
    start = (n_fft - win) // 2
    window[start : start + win] = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(win) / win)
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop]
    spectrum = np.fft.rfft(frames * window, axis=-1).astype(np.complex64).T
    return np.abs(spectrum) ** 2


def _parabolic_shift(s: np.ndarray) -> np.ndarray:
    """Peak offset of the parabola through each bin and its neighbours (0 when it would leave [-1, 1],
    and at both edges), with the reference's mixed float32 / float64 arithmetic."""
    upper, centre, lower = s[2:], s[1:-1], s[:-2]
    a = (upper + lower).astype(np.float64) - 2.0 * centre.astype(np.float64)
    b = (upper - lower).astype(np.float64) / 2.0
    with np.errstate(divide="ignore", invalid="ignore"):
        inner = np.where(np.abs(b) >= np.abs(a), 0.0, -b / a)
    shift = np.zeros_like(s)
    shift[1:-1] = inner.astype(np.float32)
    return shift


def _local_max(x: np.ndarray) -> np.ndarray:
    """librosa's ``util.localmax`` along axis 0: ``x[n] > x[n-1] and x[n] >= x[n+1]``; never the first bin,
    the last bin when it exceeds its neighbour."""
    out = np.zeros(x.shape, dtype=bool)
    out[1:-1] = (x[1:-1] > x[:-2]) & (x[1:-1] >= x[2:])
    out[-1] = x[-1] > x[-2]
    return out


def _peaks(power: np.ndarray, sr: int, n_fft: int) -> tuple[np.ndarray, np.ndarray]:
    """librosa's ``piptrack`` on a spectrogram: ``(pitches, magnitudes)``, zero where no peak."""
    s = np.abs(power)
    freqs = np.fft.rfftfreq(n_fft, d=1.0 / sr)
    avg = np.gradient(s, axis=0)
    shift = _parabolic_shift(s)
    dskew = 0.5 * avg * shift
    in_band = (PITCH_FMIN <= freqs) & (freqs < min(PITCH_FMAX, sr / 2))
    ref = PEAK_THRESHOLD * s.max(axis=0, keepdims=True)
    rows, cols = np.nonzero(in_band[:, None] & _local_max(s * (s > ref)))
    pitches = np.zeros_like(s)
    mags = np.zeros_like(s)
    pitches[rows, cols] = (rows + shift[rows, cols]) * float(sr) / n_fft
    mags[rows, cols] = s[rows, cols] + dskew[rows, cols]
    return pitches, mags


def estimate_tuning(power: np.ndarray, sr: int, n_fft: int, bins_per_octave: int) -> float:
    """librosa's ``estimate_tuning(S=power, ...)``: a deviation in fractional bins on a 0.01 grid."""
    pitches, mags = _peaks(power, sr, n_fft)
    voiced = pitches > 0
    threshold = np.median(mags[voiced]) if voiced.any() else 0.0
    freqs = pitches[(mags >= threshold) & voiced]
    freqs = freqs[freqs > 0]
    if not freqs.size:
        return 0.0
    residual = np.mod(bins_per_octave * np.log2(freqs / A440_OCTS_REF), 1.0)
    residual[residual >= 0.5] -= 1.0
    edges = np.linspace(-0.5, 0.5, int(np.ceil(1.0 / TUNING_RESOLUTION)) + 1)
    counts, _ = np.histogram(residual, edges)
    return float(edges[np.argmax(counts)])


def chroma_filterbank(sr: int, n_fft: int, n_chroma: int, tuning: float) -> np.ndarray:
    """librosa's ``filters.chroma`` with its defaults: ``[n_chroma, 1 + n_fft // 2]`` float32."""
    freqs = np.linspace(0, sr, n_fft, endpoint=False)[1:]
    a440 = 440.0 * 2.0 ** (tuning / n_chroma)
    bins = n_chroma * np.log2(freqs / (a440 / 16))
    # The 0 Hz bin is placed 1.5 octaves below bin 1 (a broad, half-rotated bump).
    bins = np.concatenate(([bins[0] - 1.5 * n_chroma], bins))
    widths = np.concatenate((np.maximum(bins[1:] - bins[:-1], 1.0), [1.0]))
    dist = np.subtract.outer(bins, np.arange(n_chroma, dtype=np.float64)).T
    half = np.round(n_chroma / 2)
    dist = np.remainder(dist + half + 10 * n_chroma, n_chroma) - half
    weights = np.exp(-0.5 * (2 * dist / widths[None, :]) ** 2)
    norms = np.sqrt(np.sum(weights**2, axis=0, keepdims=True))
    norms[norms < np.finfo(np.float64).tiny] = 1.0
    weights = weights / norms
    weights *= np.exp(-0.5 * ((bins / n_chroma - CENTER_OCTAVE) / OCTAVE_WIDTH) ** 2)[None, :]
    weights = np.roll(weights, -3 * (n_chroma // 12), axis=0)  # start at C
    return np.ascontiguousarray(weights[:, : 1 + n_fft // 2], dtype=np.float32)


def _max_normalise(raw: np.ndarray) -> np.ndarray:
    """Each column divided by its maximum magnitude (float64 division, float32 result) unless that is tiny."""
    length = np.abs(raw).astype(np.float64).max(axis=0, keepdims=True)
    length[length < np.finfo(raw.dtype).tiny] = 1.0
    return (raw / length).astype(raw.dtype)


# ---------------------------------------------------------------------------------------------
# The front end
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChromaDetails:
    chroma_stft: np.ndarray
    """``chroma_stft`` output ``[n_chroma, 1 + N // hop]`` (before the transpose and cut)."""
    tuning: float
    filterbank: np.ndarray


class Chromagram:
    """24 kHz waveform -> chromagram ``[frames, n_chroma]`` at 50 Hz (frame ``t`` centred on sample ``t * hop``)."""

    def __init__(self, config: ChromagramConfig | None = None) -> None:
        self.config = ChromagramConfig() if config is None else config

    @property
    def sample_rate(self) -> int:
        return self.config.sample_rate

    def num_frames(self, num_samples: int) -> int:
        """``frame_len`` of the reference: whole hops in the waveform."""
        return num_samples // self.config.hop_size

    def compute_with_details(self, wav: np.ndarray, frame_len: int | None = None) -> tuple[np.ndarray, ChromaDetails]:
        """One mono waveform ``[N]`` -> ``(chromagram [frame_len, n_chroma] float32, intermediates)``;
        ``frame_len`` defaults to ``N // hop``."""
        wav = np.asarray(wav, dtype=np.float32)
        if wav.ndim != 1:
            raise ValueError(f"expected a mono waveform [N], got shape {wav.shape}")
        c = self.config
        power = power_spectrogram(wav, c.n_fft, c.hop_size, c.win_size)
        tuning = estimate_tuning(power, c.sample_rate, c.n_fft, c.n_chroma)
        filterbank = chroma_filterbank(c.sample_rate, c.n_fft, c.n_chroma, tuning)
        chroma = _max_normalise(filterbank @ power)
        frames = chroma.T
        frame_len = self.num_frames(len(wav)) if frame_len is None else int(frame_len)
        if frames.shape[0] >= frame_len:
            frames = frames[:frame_len]
        else:
            frames = np.pad(frames, ((0, frame_len - frames.shape[0]), (0, 0)), mode="edge")
        return np.ascontiguousarray(frames), ChromaDetails(chroma, tuning, filterbank)

    def __call__(self, wav: np.ndarray, frame_len: int | None = None) -> np.ndarray:
        return self.compute_with_details(wav, frame_len)[0]

    def batch(self, wavs: list[np.ndarray | torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Several waveforms (each analysed on its own, with its own tuning estimate, as the reference does
        per call) -> ``(chroma [B, T_max, n_chroma] float32, frame_lens [B])``, right-padded with zeros."""
        arrays = [w.detach().cpu().float().numpy() if isinstance(w, torch.Tensor) else np.asarray(w) for w in wavs]
        chromas = [torch.from_numpy(self(a)) for a in arrays]
        lengths = torch.tensor([c.shape[0] for c in chromas], dtype=torch.long)
        return torch.nn.utils.rnn.pad_sequence(chromas, batch_first=True), lengths
