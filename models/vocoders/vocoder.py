"""The serving-facing vocoder: numpy in, numpy out, batched, weights loaded once.

:class:`Vocoder` wraps one generator together with its mel (and, for NSF, F0) front end.
:func:`build_vocoder` makes one from a parsed config and state dict, or a tiny seeded random one;
:func:`load_vocoder` goes through ``models.weights.resolve`` to find the official files first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn

from models.audio.f0 import align_to_frames, parselmouth_f0
from models.audio.mel import LOG_MEL_FLOOR, MelConfig, log_mel_spectrogram
from models.blocks.alias_free import Snake, SnakeBeta
from models.core.checkpoints import load_generator_state
from models.core.random_init import Draws, init_random_weights
from models.core.weight_norm import fold_weight_norm
from models.vocoders.bigvgan import BigVGANGenerator
from models.vocoders.checkpoints import load_official
from models.vocoders.configs import (
    VOCODER_NAMES,
    BigVGANConfig,
    HiFiGANConfig,
    NSFHiFiGANConfig,
    VocoderConfig,
    tiny_config,
)
from models.vocoders.hifigan import HiFiGANGenerator
from models.vocoders.nsf_hifigan import NSFHiFiGANGenerator
from models.vocoders.official import OFFICIAL


@dataclass(frozen=True)
class VocoderKind:
    """What differs between the vocoders, as data: the generator class, the generator config it
    takes, and whether it needs an F0 track besides the mel (NSF's source excitation)."""

    generator: type[nn.Module]
    config: type
    needs_f0: bool = False


KINDS: dict[str, VocoderKind] = {
    "bigvgan": VocoderKind(BigVGANGenerator, BigVGANConfig),
    "hifigan": VocoderKind(HiFiGANGenerator, HiFiGANConfig),
    "nsf_hifigan": VocoderKind(NSFHiFiGANGenerator, NSFHiFiGANConfig, needs_f0=True),
}


def make_generator(config: VocoderConfig) -> nn.Module:
    """An untrained generator of the right class for ``config``."""
    kind = KINDS.get(config.name)
    if kind is None:
        raise ValueError(f"unknown vocoder {config.name!r}; expected one of {VOCODER_NAMES}")
    if not isinstance(config.generator, kind.config):
        raise TypeError(f"{config.name} needs a {kind.config.__name__}")
    return kind.generator(config.generator)


def snake_near_one(module: nn.Module, draws: Draws) -> bool:
    """Tiny builds' Snake / SnakeBeta parameters: near 1 (log-scale: near 0), spread 0.1
    (a :data:`models.core.random_init.Rule`)."""
    if not isinstance(module, (Snake, SnakeBeta)):
        return False
    for p in module.parameters():
        spread = draws.randn(p.shape) * 0.1
        p.copy_(spread if module.alpha_logscale else 1.0 + spread)
    return True


class Vocoder:
    """A loaded vocoder, ready for inference. Thread-safe for concurrent calls (no mutable state)."""

    def __init__(
        self,
        config: VocoderConfig,
        generator: nn.Module,
        *,
        weights_kind: str,
        device: str | torch.device = "cpu",
        note: str = "",
    ) -> None:
        self.name: str = config.name
        self.config = config
        self.mel_config: MelConfig = config.mel
        self.sample_rate: int = config.mel.sample_rate
        self.n_mels: int = config.mel.n_mels
        self.hop_length: int = config.mel.hop_length
        self.needs_f0: bool = KINDS[config.name].needs_f0
        self.weights_kind: str = weights_kind
        self.note: str = note
        self.device = torch.device(device)
        factor = getattr(generator, "upsample_factor", None)
        if factor != self.hop_length:
            # The generator emits prod(upsample_rates) samples per frame; anything but the hop
            # would make every output length (and the mel / audio alignment) wrong.
            raise ValueError(
                f"{self.name}: upsampling factor {factor} differs from the mel hop {self.hop_length}"
            )
        generator.eval().requires_grad_(False)
        self.generator = fold_weight_norm(generator.to(self.device))

    def __repr__(self) -> str:
        return (
            f"Vocoder(name={self.name!r}, weights_kind={self.weights_kind!r}, sample_rate={self.sample_rate}, "
            f"n_mels={self.n_mels}, hop_length={self.hop_length}, device={str(self.device)!r})"
        )

    @property
    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.generator.parameters())

    # ----- analysis ------------------------------------------------------------------------------

    @staticmethod
    def _as_wave(wave: np.ndarray) -> np.ndarray:
        arr = np.asarray(wave, dtype=np.float32)
        if arr.ndim != 1:
            raise ValueError(f"expected a mono waveform of shape [L], got {arr.shape}")
        if not arr.flags.writeable:
            # Arrays that crossed a Ray handle are read-only views of shared memory; torch wants
            # to own writable memory, so copy once here (cheap next to the model).
            arr = arr.copy()
        return arr

    def analyse(self, wave: np.ndarray) -> np.ndarray:
        """Mono float waveform ``[L]`` at :attr:`sample_rate` -> log-mel ``[n_mels, L // hop]`` (float32)."""
        arr = self._as_wave(wave)
        with torch.inference_mode():
            x = torch.from_numpy(arr).to(self.device)
            mel = log_mel_spectrogram(x, self.mel_config)[0]
            return mel.float().cpu().numpy()

    def pitch(self, wave: np.ndarray) -> np.ndarray:
        """F0 in Hz ``[frames]`` (0 = unvoiced), aligned to :meth:`analyse`'s frames (NSF's F0 input)."""
        arr = self._as_wave(wave)
        frames = max(self.mel_config.num_frames(arr.shape[0]), 0)
        return parselmouth_f0(
            arr,
            self.sample_rate,
            self.hop_length,
            f0_min=self.config.f0_min,
            f0_max=self.config.f0_max,
            num_frames=frames,
        )

    # ----- synthesis -----------------------------------------------------------------------------

    def _check_mels(self, mels: Sequence[np.ndarray]) -> list[np.ndarray]:
        out = []
        for i, mel in enumerate(mels):
            arr = np.asarray(mel, dtype=np.float32)
            if arr.ndim != 2 or arr.shape[0] != self.n_mels or arr.shape[1] < 1:
                raise ValueError(f"mel #{i}: expected shape [{self.n_mels}, T>=1], got {arr.shape}")
            if not np.isfinite(arr).all():
                raise ValueError(f"mel #{i}: contains NaN or infinite values")
            out.append(arr)
        return out

    def vocode(
        self, mels: Sequence[np.ndarray], f0s: Sequence[np.ndarray] | None = None
    ) -> list[np.ndarray]:
        """Log-mels ``[n_mels, T_i]`` -> waveforms ``[T_i * hop]`` (float32), one batched forward pass.

        Shorter items are padded at the end with the log-mel floor ln(1e-5) (what silence looks
        like) and their outputs trimmed back; a padded item differs from its unbatched output only
        in the last few hundred samples, where the generator's receptive field sees the padding.
        ``f0s`` (NSF only, ignored otherwise): per item F0 in Hz at the mel frame rate, cropped or
        zero-padded to its mel length as Amphion does; ``None`` means zeros. (Amphion's NSF-HiFiGAN
        only uses F0's length, see nsf_hifigan.py.)
        """
        arrays = self._check_mels(mels)
        if not arrays:
            return []
        lengths = [a.shape[1] for a in arrays]
        longest = max(lengths)
        batch = np.full((len(arrays), self.n_mels, longest), LOG_MEL_FLOOR, dtype=np.float32)
        for i, a in enumerate(arrays):
            batch[i, :, : a.shape[1]] = a

        f0_batch = None
        if self.needs_f0:
            f0_batch = np.zeros((len(arrays), longest), dtype=np.float32)
            if f0s is not None:
                if len(f0s) != len(arrays):
                    raise ValueError(f"got {len(f0s)} F0 tracks for {len(arrays)} mels")
                for i, (f0, n) in enumerate(zip(f0s, lengths)):
                    track = np.asarray(f0, dtype=np.float32).reshape(-1)
                    f0_batch[i, :n] = align_to_frames(track, n)

        with torch.inference_mode():
            x = torch.from_numpy(batch).to(self.device)
            if f0_batch is not None:
                audio = self.generator(x, torch.from_numpy(f0_batch).to(self.device))
            else:
                audio = self.generator(x)
            audio = audio[:, 0].float().cpu().numpy()
        return [audio[i, : n * self.hop_length].copy() for i, n in enumerate(lengths)]


def build_vocoder(
    name: str,
    *,
    config: VocoderConfig | None = None,
    state_dict: dict[str, torch.Tensor] | None = None,
    seed: int = 0,
    device: str | torch.device = "cpu",
    note: str | None = None,
) -> Vocoder:
    """A vocoder from a parsed config (None: the tiny config) and a state dict (None: seeded random).

    With a state dict the weights kind is ``"pretrained"`` and the load is strict (CheckpointError
    names missing / unexpected / mis-shaped keys); without one it is ``"tiny"``.
    """
    if name not in VOCODER_NAMES:
        raise ValueError(f"unknown vocoder {name!r}; expected one of {VOCODER_NAMES}")
    config = tiny_config(name) if config is None else config
    if config.name != name:
        raise ValueError(f"config is for {config.name!r}, not {name!r}")
    generator = make_generator(config)
    if state_dict is None:
        init_random_weights(generator, seed, rules=(snake_near_one,))
        kind = "tiny"
        note = note or f"seeded random weights (seed {seed})"
    else:
        load_generator_state(generator, state_dict, source=note or f"{name} state dict")
        kind = "pretrained"
        note = note or "weights from a state dict"
    return Vocoder(config, generator, weights_kind=kind, device=device, note=note)


def load_vocoder(
    name: str,
    weights: str = "auto",
    *,
    device: str | torch.device = "cpu",
    cache_dir: str | None = None,
    local_dir: str | None = None,
) -> Vocoder:
    """Resolve the official files (``models.weights.resolve``) and build the vocoder from them.

    ``weights``: ``"pretrained"`` (official files or WeightsUnavailable), ``"tiny"`` (seeded random),
    ``"auto"`` (official files if already present, else tiny).
    """
    from models.weights import resolve

    if name not in VOCODER_NAMES:
        raise ValueError(f"unknown vocoder {name!r}; expected one of {VOCODER_NAMES}")
    resolved = resolve(OFFICIAL[name], weights, cache_dir=cache_dir, local_dir=local_dir)
    if resolved.kind != "pretrained":
        return build_vocoder(name, device=device, note=resolved.note)
    config, state_dict, where = load_official(name, resolved.root)
    vocoder = build_vocoder(name, config=config, state_dict=state_dict, device=device, note=where)
    vocoder.note = resolved.note  # user-safe (no server paths), unlike ``where``
    return vocoder
