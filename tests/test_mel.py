"""Mel and F0 front ends (models/audio)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models.audio.f0 import align_to_frames, parselmouth_f0
from models.audio.mel import LOG_MEL_FLOOR, MelConfig, log_mel_spectrogram, slaney_mel_filterbank

CFG = MelConfig(sample_rate=24000, n_fft=1024, hop_length=256, win_length=1024, n_mels=100, fmin=0, fmax=12000)


def _tone(freq: float, seconds: float, sr: int = 24000, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.mark.parametrize("length", [385, 1000, 12000, 12345, 24000])
def test_frames_are_length_over_hop(length: int) -> None:
    wave = torch.randn(length) * 0.1
    mel = log_mel_spectrogram(wave, CFG)
    assert mel.shape == (1, 100, length // 256)
    assert CFG.num_frames(length) == length // 256


def test_batch_matches_single_items() -> None:
    waves = torch.randn(3, 6000) * 0.1
    batch = log_mel_spectrogram(waves, CFG)
    for i in range(3):
        torch.testing.assert_close(batch[i], log_mel_spectrogram(waves[i], CFG)[0], atol=1e-5, rtol=0)


def test_silence_sits_at_the_log_floor() -> None:
    mel = log_mel_spectrogram(torch.zeros(4096), CFG)
    # sqrt(1e-9) per bin stays far below 1e-5 after the mel weights: every value is clamped.
    assert torch.allclose(mel, torch.full_like(mel, LOG_MEL_FLOOR))


def test_tone_energy_lands_in_the_right_band() -> None:
    mel = log_mel_spectrogram(torch.from_numpy(_tone(1000.0, 0.5)), CFG)[0]
    basis = slaney_mel_filterbank(24000, 1024, 100, 0, 12000)
    bin_1k = int(round(1000 * 1024 / 24000))
    assert int(mel.mean(dim=1).argmax()) == int(basis[:, bin_1k].argmax())


def test_filterbank_matches_torchaudio_slaney() -> None:
    torchaudio = pytest.importorskip("torchaudio")
    ours = slaney_mel_filterbank(24000, 1024, 100, 0.0, 12000.0)
    theirs = torchaudio.functional.melscale_fbanks(
        513, 0.0, 12000.0, 100, 24000, norm="slaney", mel_scale="slaney"
    ).T.numpy()
    assert ours.shape == (100, 513) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, theirs, atol=1e-6, rtol=0)


def test_fmax_none_means_nyquist() -> None:
    a = slaney_mel_filterbank(22050, 1024, 80, 0.0, None)
    b = slaney_mel_filterbank(22050, 1024, 80, 0.0, 11025.0)
    np.testing.assert_array_equal(a, b)


def test_too_short_input_is_rejected() -> None:
    with pytest.raises(ValueError, match="too short"):
        log_mel_spectrogram(torch.zeros(384), CFG)


def test_f0_of_a_220_hz_tone() -> None:
    wave = _tone(220.0, 1.0)
    f0 = parselmouth_f0(wave, 24000, 256, f0_min=50, f0_max=1100)
    assert f0.shape == (24000 // 256,) and f0.dtype == np.float32
    voiced = f0[f0 > 0]
    assert len(voiced) > 0.8 * len(f0)
    np.testing.assert_allclose(voiced, 220.0, atol=1.0)


def test_f0_of_silence_is_unvoiced_and_sized_to_the_frames() -> None:
    f0 = parselmouth_f0(np.zeros(12000, np.float32), 24000, 256, num_frames=50)
    assert f0.shape == (50,) and not f0.any()
    # Shorter than Praat's analysis window: no error, just unvoiced frames.
    assert not parselmouth_f0(np.zeros(600, np.float32), 24000, 256).any()


def test_align_to_frames_crops_or_zero_pads_at_the_end() -> None:
    track = np.array([1.0, 2.0, 3.0], np.float32)
    np.testing.assert_array_equal(align_to_frames(track, 2), [1.0, 2.0])
    np.testing.assert_array_equal(align_to_frames(track, 5), [1.0, 2.0, 3.0, 0.0, 0.0])
