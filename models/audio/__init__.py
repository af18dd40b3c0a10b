"""Audio front ends shared by the vocoders and the acoustic models (mel spectrogram, F0)."""

from models.audio.mel import MelConfig, log_mel_spectrogram, slaney_mel_filterbank

__all__ = ["MelConfig", "log_mel_spectrogram", "slaney_mel_filterbank"]
