"""DualCodec (``jiaqili3/DualCodec``, ``dualcodec/model_codec/dualcodec_model.py``), inference only.

:meth:`DualCodec.encode`: 24 kHz audio ``[B, 1, L]`` and the semantic input ``[B, 1024, T]`` ->
semantic codes ``[B, 1, T]`` and acoustic codes ``[B, nq - 1, T]``; :meth:`DualCodec.decode`: codes
(any number of acoustic stages) -> ``[B, 1, output_length(T)]``. An out-of-range ``num_quantizers``
or mismatched streams are a ``ValueError``. State-dict keys are the official ones. The two streams,
what is kept from the reference and how we differ: ``models/dualcodec/README.md``.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from models.blocks.dac import DacDecoder, DacEncoder
from models.blocks.quantizers import ResidualVQ
from models.blocks.vocos import ConvNeXtBlock
from models.core.weight_norm import WNConv1d
from models.dualcodec.configs import CONVNEXT_INTERMEDIATE_DIM, DualCodecConfig

#: DAC's VQ module names for the projections (Amphion's FactorizedVQ calls them in/out_project).
_VQ_PROJECTIONS = ("in_proj", "out_proj")
#: Largest allowed ``T_dac - T`` (the reference's assert).
MAX_FRAME_SURPLUS = 2


def _convnext_blocks(config: DualCodecConfig) -> list[nn.Module]:
    # No layer scale (layer_scale_init_value 0 in the reference), hence no ``gamma`` keys.
    return [
        ConvNeXtBlock(config.convnext_dim, CONVNEXT_INTERMEDIATE_DIM, None, causal=config.is_causal)
        for _ in range(config.convnext_layers)
    ]


class DacCodec(nn.Module):
    """DualCodec's ``DAC`` submodule: ``encoder`` / ``quantizer`` / ``decoder`` (no distillation head)."""

    def __init__(self, config: DualCodecConfig) -> None:
        super().__init__()
        width = config.latent_width
        self.hop_length = config.hop_length
        self.encoder = DacEncoder(config.encoder_dim, config.encoder_rates, width)
        self.quantizer = ResidualVQ(
            width, config.n_codebooks, config.codebook_size, config.codebook_dim,
            projection_names=_VQ_PROJECTIONS, always_project=True,
        )
        self.decoder = DacDecoder(width, config.decoder_dim, config.decoder_rates)

    def encode_latent(self, audio: torch.Tensor) -> torch.Tensor:
        """``[B, 1, L]`` -> ``[B, width, ceil(L / hop)]`` (zeros appended up to a multiple of the hop)."""
        length = audio.shape[-1]
        audio = F.pad(audio, (0, math.ceil(length / self.hop_length) * self.hop_length - length))
        return self.encoder(audio)


class DualCodec(nn.Module):
    def __init__(self, config: DualCodecConfig) -> None:
        super().__init__()
        self.config = config
        self.dac = DacCodec(config)
        self.convnext_encoder = nn.Sequential(
            WNConv1d(config.semantic_dim, config.convnext_dim, kernel_size=1), *_convnext_blocks(config)
        )
        self.semantic_vq = ResidualVQ(
            config.convnext_dim, 1, config.semantic_codebook_size, config.semantic_codebook_dim,
            projection_names=_VQ_PROJECTIONS, always_project=True,
        )
        # Built even when decode_semantic_for_codec is false: the checkpoints hold it either way.
        self.convnext_decoder = nn.Sequential(
            *_convnext_blocks(config), WNConv1d(config.convnext_dim, config.semantic_dim, kernel_size=1)
        )

    # -- what a caller needs to know -----------------------------------------------------------

    @property
    def sample_rate(self) -> int:
        """Waveform rate in and out (24000 for the official models)."""
        return self.config.sample_rate

    @property
    def hop_length(self) -> int:
        """Waveform samples per code frame (1920 / 960)."""
        return self.config.hop_length

    @property
    def frame_rate(self) -> float:
        """Code frames per second (12.5 / 25)."""
        return self.config.frame_rate

    @property
    def semantic_downsample_factor(self) -> int:
        """w2v-bert frames (50 Hz) averaged into one semantic frame (4 / 2)."""
        return self.config.semantic_downsample_factor

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def semantic_dim(self) -> int:
        """Channels of ``semantic_repr`` (1024 officially)."""
        return self.config.semantic_dim

    @property
    def semantic_codebook_size(self) -> int:
        return self.config.semantic_codebook_size

    @property
    def acoustic_codebook_size(self) -> int:
        return self.config.codebook_size

    @property
    def max_quantizers(self) -> int:
        """Largest ``num_quantizers`` (8 / 12): the semantic codebook plus every acoustic stage."""
        return self.config.max_quantizers

    def output_length(self, frames: int) -> int:
        """Samples :meth:`decode` makes from ``frames`` code frames (``frames * hop - 4`` officially)."""
        return self.dac.decoder.output_length(frames)

    # -- semantic stream -----------------------------------------------------------------------

    def _check_semantic_repr(self, semantic_repr: torch.Tensor) -> None:
        if semantic_repr.dim() != 3 or semantic_repr.shape[1] != self.semantic_dim or semantic_repr.shape[-1] < 1:
            raise ValueError(f"semantic_repr must be [B, {self.semantic_dim}, T>=1], got {tuple(semantic_repr.shape)}")

    def encode_semantic(self, semantic_repr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``[B, 1024, T]`` -> ``(semantic codes [B, 1, T], semantic latent [B, 1024, T])``; the latent is
        what encode subtracts from the DAC latent."""
        self._check_semantic_repr(semantic_repr)
        quantized, codes = self.semantic_vq(self.convnext_encoder(semantic_repr))
        if self.config.decode_semantic_for_codec:
            quantized = self.convnext_decoder(quantized)
        return codes.transpose(0, 1), quantized

    @torch.inference_mode()
    def semantic_quantize(self, semantic_repr: torch.Tensor) -> torch.Tensor:
        """Semantic codes only, ``[B, T]``."""
        self._check_semantic_repr(semantic_repr)
        return self.semantic_vq(self.convnext_encoder(semantic_repr))[1][0]

    # -- encode / decode -----------------------------------------------------------------------

    def _acoustic_stages(self, num_quantizers: int | None) -> int:
        if num_quantizers is None:
            return self.config.n_codebooks
        n = int(num_quantizers)
        if not 1 <= n <= self.max_quantizers:
            raise ValueError(f"num_quantizers must be in [1, {self.max_quantizers}], got {num_quantizers}")
        return n - 1

    @torch.inference_mode()
    def encode(
        self,
        audio: torch.Tensor,
        semantic_repr: torch.Tensor,
        num_quantizers: int | None = None,
        *,
        sample_rate: int | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """24 kHz ``audio`` ``[B, 1, L]`` and its ``semantic_repr`` ``[B, 1024, T]`` ->
        ``(semantic_codes [B, 1, T], acoustic_codes [B, num_quantizers - 1, T])`` int64;
        acoustic codes are None for ``num_quantizers == 1``, all stages are used for None.

        The DAC latent has ``ceil(L / hop)`` frames and must be ``T`` to ``T + 2`` long."""
        if sample_rate is not None and int(sample_rate) != self.sample_rate:
            raise ValueError(f"audio must be at {self.sample_rate} Hz, got {sample_rate}")
        stages = self._acoustic_stages(num_quantizers)
        if audio.dim() != 3 or audio.shape[1] != 1:
            raise ValueError(f"audio must be a waveform [B, 1, L], got {tuple(audio.shape)}")
        self._check_semantic_repr(semantic_repr)
        if audio.shape[0] != semantic_repr.shape[0]:
            raise ValueError(f"audio has {audio.shape[0]} items but semantic_repr {semantic_repr.shape[0]}")
        semantic_codes, semantic_latent = self.encode_semantic(semantic_repr)
        if stages == 0:
            return semantic_codes, None
        z = self.dac.encode_latent(audio)
        frames, dac_frames = semantic_latent.shape[-1], z.shape[-1]
        if not 0 <= dac_frames - frames <= MAX_FRAME_SURPLUS:
            raise ValueError(
                f"{audio.shape[-1]} samples give {dac_frames} acoustic frames (hop {self.hop_length}) but the "
                f"semantic features have {frames}; the acoustic stream may be 0 to {MAX_FRAME_SURPLUS} frames longer"
            )
        _, acoustic_codes = self.dac.quantizer(z[..., :frames] - semantic_latent, n_quantizers=stages)
        return semantic_codes, acoustic_codes.transpose(0, 1)

    def _check_codes(self, codes: torch.Tensor, what: str) -> None:
        if codes.dim() != 3 or codes.shape[-1] < 1:
            raise ValueError(f"{what} must be [B, n, T>=1], got {tuple(codes.shape)}")

    @torch.inference_mode()
    def decode(self, semantic_codes: torch.Tensor, acoustic_codes: torch.Tensor | None = None) -> torch.Tensor:
        """``semantic_codes`` ``[B, 1, T]`` and the first ``n`` acoustic stages ``[B, n, T]`` (None or
        ``n = 0``: semantic only) -> waveform ``[B, 1, output_length(T)]`` at 24 kHz."""
        self._check_codes(semantic_codes, "semantic_codes")
        if semantic_codes.shape[1] != 1:
            raise ValueError(f"semantic_codes must be [B, 1, T], got {tuple(semantic_codes.shape)}")
        z = self.semantic_vq.vq2emb(semantic_codes.transpose(0, 1))
        if self.config.decode_semantic_for_codec:
            z = self.convnext_decoder(z)
        no_stages = acoustic_codes is not None and acoustic_codes.dim() == 3 and acoustic_codes.shape[1] == 0
        if acoustic_codes is not None and not no_stages:
            self._check_codes(acoustic_codes, "acoustic_codes")
            batch, frames = semantic_codes.shape[0], semantic_codes.shape[-1]
            if acoustic_codes.shape[0] != batch or acoustic_codes.shape[-1] != frames:
                raise ValueError(f"acoustic_codes {tuple(acoustic_codes.shape)} do not match semantic_codes "
                                 f"{tuple(semantic_codes.shape)} in batch size or length")
            n = acoustic_codes.shape[1]
            if n > self.config.n_codebooks:
                raise ValueError(f"{n} acoustic codebooks given, the model has {self.config.n_codebooks}")
            z = self.dac.quantizer.vq2emb(acoustic_codes.transpose(0, 1), n_quantizers=n) + z
        return self.dac.decoder(z)
