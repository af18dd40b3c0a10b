"""The serving API of FACodec: 16 kHz waveforms <-> factorised codes + a timbre vector.

:meth:`FACodec.encode` gives per clip prosody (1 codebook), content (2) and acoustic-detail (3)
codes at 80 frames/s plus a 256-dim timbre vector; :meth:`FACodec.decode` turns codes (possibly
recombined across clips) back into ``T * 200`` samples. A clip's results never depend on what else
is in its batch: the timbre encoder gives every item its single-clip positional encoding, and clips
of different lengths are never padded together. ``L`` samples give ``num_frames(L)`` frames. Why, and
the length arithmetic: ``models/facodec/README.md``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn as nn

from models.facodec.checkpoints import (
    CheckpointError,
    build_facodec_decoder,
    build_facodec_encoder,
    load_state_dict_file,
)
from models.facodec.configs import (
    FACODEC_SAMPLE_RATE,
    FACodecConfig,
    official_facodec_config,
    tiny_facodec_config,
)
from models.facodec.decoder import FACodecDecoder
from models.facodec.encoder import FACodecEncoder
from models.facodec.official import FACODEC_DECODER_FILE, FACODEC_ENCODER_FILE, FACODEC_HUB_FILES

__all__ = ["FACodec", "load_facodec"]

_CODE_GROUPS = ("prosody", "content", "acoustic")


def _groups(lengths: Sequence[int]) -> dict[int, list[int]]:
    """Batch indices by length, in order of first appearance."""
    groups: dict[int, list[int]] = {}
    for index, length in enumerate(lengths):
        groups.setdefault(length, []).append(index)
    return groups


def _per_item(values: Sequence[int] | torch.Tensor | None, batch: int, full: int, what: str) -> list[int]:
    if values is None:
        return [full] * batch
    items = [int(v) for v in (values.tolist() if isinstance(values, torch.Tensor) else values)]
    if len(items) != batch:
        raise ValueError(f"{what}: expected {batch} values, got {len(items)}")
    if any(v < 1 or v > full for v in items):
        raise ValueError(f"{what} must lie in [1, {full}], got {items}")
    return items


class FACodec(nn.Module):
    """FACodec encoder + decoder. Sample rate 16 000 Hz, hop :attr:`hop_length` (200: 80 frames/s)."""

    sample_rate: int = FACODEC_SAMPLE_RATE

    def __init__(self, encoder: FACodecEncoder, decoder: FACodecDecoder) -> None:
        super().__init__()
        if encoder.config != decoder.config.encoder:
            raise ValueError("encoder and decoder were built from different FACodec configurations")
        self.config: FACodecConfig = decoder.config
        self.encoder = encoder
        self.decoder = decoder
        self.eval()  # inference only: nothing here has a training behaviour

    # ---- construction ------------------------------------------------------------------------

    @classmethod
    def from_files(
        cls,
        encoder_file: str | os.PathLike,
        decoder_file: str | os.PathLike,
        config: FACodecConfig | None = None,
        *,
        device: str | torch.device = "cpu",
    ) -> FACodec:
        """Load two state-dict files (``.bin`` / ``.pt`` / ``.safetensors``) strictly; ``config`` None:
        the official configuration."""
        config = official_facodec_config() if config is None else config
        encoder = build_facodec_encoder(
            config, load_state_dict_file(encoder_file), device=device, source=str(encoder_file)
        )
        decoder = build_facodec_decoder(
            config, load_state_dict_file(decoder_file), device=device, source=str(decoder_file)
        )
        return cls(encoder, decoder)

    @classmethod
    def from_folder(
        cls, root: str | os.PathLike, config: FACodecConfig | None = None, *, device: str | torch.device = "cpu"
    ) -> FACodec:
        """Load a folder laid out like ``amphion/naturalspeech3_facodec`` (a resolved weights root)."""
        root = Path(root)
        paths = [root / name for name in (FACODEC_ENCODER_FILE, FACODEC_DECODER_FILE)]
        missing = [p.name for p in paths if not p.is_file()]
        if missing:
            raise CheckpointError(f"{root} is not laid out like {FACODEC_HUB_FILES.repo_id}: missing {missing}")
        return cls.from_files(*paths, config, device=device)

    @classmethod
    def tiny(
        cls, seed: int = 0, *, config: FACodecConfig | None = None, device: str | torch.device = "cpu"
    ) -> FACodec:
        """Seeded random weights (default: :func:`tiny_facodec_config`, same interface as the official model)."""
        config = tiny_facodec_config() if config is None else config
        encoder = build_facodec_encoder(config, seed=seed, device=device)
        decoder = build_facodec_decoder(config, seed=seed + 1, device=device)
        return cls(encoder, decoder)

    # ---- sizes -------------------------------------------------------------------------------

    @property
    def device(self) -> torch.device:
        return self.decoder.timbre_linear.weight.device

    @property
    def hop_length(self) -> int:
        return self.config.hop_length

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.hop_length

    @property
    def timbre_dim(self) -> int:
        return self.config.width

    @property
    def codebooks(self) -> dict[str, int]:
        """Codebooks per group, e.g. ``{"prosody": 1, "content": 2, "acoustic": 3}``."""
        return dict(zip(_CODE_GROUPS, self.decoder.group_sizes))

    @property
    def codebook_size(self) -> dict[str, int]:
        """Entries per codebook of each group (1024 officially)."""
        dec = self.config.decoder
        sizes = (dec.codebook_size_prosody, dec.codebook_size_content, dec.codebook_size_residual)
        return {group: 2**size for group, size in zip(_CODE_GROUPS, sizes)}

    def num_frames(self, num_samples: int) -> int:
        """Code frames for a clip of ``num_samples`` (0: too short). See the module docstring."""
        return self.encoder.num_frames(num_samples)

    def min_samples(self) -> int:
        """The shortest clip that gives one frame (152 samples officially)."""
        return self.encoder.min_samples()

    # ---- codec -------------------------------------------------------------------------------

    @torch.inference_mode()
    def encode(
        self, wav: torch.Tensor, lengths: Sequence[int] | torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """``wav`` ``[B, 1, L]`` 16 kHz float (unnormalised, as ``librosa.load`` gives it) ->
        ``{"prosody": [B, 1, T], "content": [B, 2, T], "acoustic": [B, 3, T]`` (int64 codes),
        ``"timbre": [B, 256]`` (float32), ``"frames": [B]`` (int64 valid frames per item)``}``.

        ``lengths``: valid samples per item of a right-padded batch (default: all ``L``). Item ``b``'s
        codes are ``[..., :frames[b]]``; frames beyond that are 0 (padding, not codes to decode).
        """
        if wav.dim() != 3 or wav.shape[1] != 1:
            raise ValueError(f"FACodec.encode expects a waveform [B, 1, L], got {tuple(wav.shape)}")
        if not wav.dtype.is_floating_point:
            raise TypeError(f"FACodec.encode expects float samples, got {wav.dtype}")
        wav = wav.to(self.device, torch.float32)
        batch = wav.shape[0]
        lengths = _per_item(lengths, batch, wav.shape[-1], "lengths")
        frames = [self.num_frames(n) for n in lengths]
        if min(frames, default=1) < 1:
            raise ValueError(f"clips shorter than {self.min_samples()} samples give no frames: lengths {lengths}")

        n_codes = sum(self.decoder.group_sizes)
        codes = torch.zeros(n_codes, batch, max(frames, default=0), dtype=torch.long, device=self.device)
        timbre = torch.zeros(batch, self.timbre_dim, device=self.device)
        for length, items in _groups(lengths).items():
            index = torch.tensor(items, device=self.device)
            _, vq_id, _, group_timbre = self.decoder(self.encoder(wav[index, :, :length]))
            codes[:, index, : vq_id.shape[-1]] = vq_id
            timbre[index] = group_timbre

        per_group = codes.transpose(0, 1).split(self.decoder.group_sizes, dim=1)
        out = {name: group.contiguous() for name, group in zip(_CODE_GROUPS, per_group)}
        out["timbre"] = timbre
        out["frames"] = torch.tensor(frames, dtype=torch.long, device=self.device)
        return out

    @torch.inference_mode()
    def decode(
        self,
        prosody: torch.Tensor,
        content: torch.Tensor,
        acoustic: torch.Tensor | None,
        timbre: torch.Tensor,
        frames: Sequence[int] | torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Codes ``[B, n_group, T]`` (as :meth:`encode` gives them) + timbre ``[B, 256]`` -> waveform
        ``[B, 1, T * hop]`` at 16 kHz in [-1, 1].

        ``acoustic=None`` decodes prosody + content only (the reference's ``use_residual_code=False``).
        ``frames``: valid frames per item (default: all ``T``); item ``b``'s audio is
        ``[..., :frames[b] * hop]``, zeros after that.
        """
        groups = [prosody, content] + ([] if acoustic is None else [acoustic])
        expected = self.decoder.group_sizes
        batch, length = prosody.shape[0], prosody.shape[-1]
        for name, group, count in zip(_CODE_GROUPS, groups, expected):
            if group.dim() != 3 or group.shape != (batch, count, length):
                raise ValueError(f"{name} codes must be [{batch}, {count}, {length}], got {tuple(group.shape)}")
        if timbre.shape != (batch, self.timbre_dim):
            raise ValueError(f"timbre must be [{batch}, {self.timbre_dim}], got {tuple(timbre.shape)}")
        vq_id = torch.cat(groups, dim=1).transpose(0, 1).to(self.device)  # [n, B, T], quantiser-major
        timbre = timbre.to(self.device, torch.float32)
        frames = _per_item(frames, batch, length, "frames")

        wav = torch.zeros(batch, 1, length * self.hop_length, device=self.device)
        for count, items in _groups(frames).items():
            index = torch.tensor(items, device=self.device)
            emb = self.decoder.vq2emb(vq_id[:, index, :count], use_residual_code=acoustic is not None)
            wav[index, :, : count * self.hop_length] = self.decoder.inference(emb, timbre[index])
        return wav


def load_facodec(
    weights: str = "auto",
    *,
    device: str | torch.device = "cpu",
    cache_dir: str | os.PathLike | None = None,
    local_dir: str | os.PathLike | None = None,
    seed: int = 0,
) -> tuple[FACodec, str]:
    """FACodec through ``models.weights.resolve``: ``"pretrained"`` (official files, or
    WeightsUnavailable), ``"tiny"`` (tiny config, seeded random weights) or ``"auto"`` (official files
    if already present, else tiny). Returns ``(codec, note)``; the note is safe to show users."""
    from models.weights import resolve

    resolved = resolve(FACODEC_HUB_FILES, weights, cache_dir=cache_dir, local_dir=local_dir)
    if resolved.pretrained:
        codec = FACodec.from_folder(resolved.root, device=device)  # type: ignore[arg-type]
    else:
        codec = FACodec.tiny(seed, device=device)
    codec.weights_kind = resolved.kind
    return codec, resolved.note
