"""Amphion's text-to-audio model end to end: :class:`AmphionAudioLDM`.

text -> T5 embeddings (uncond first) -> PNDM sampling with classifier-free guidance on a 4 x 5 x 39
latent -> VAE decode to an 80 x 624 mel -> HiFi-GAN -> 159 744 samples at 16 kHz (9.984 s), cut to
the length asked for. Build it with :meth:`AmphionAudioLDM.from_weights` (``"pretrained"`` /
``"tiny"`` / ``"auto"``) or :meth:`AmphionAudioLDM.from_files`; run :meth:`AmphionAudioLDM.generate`.
Requests the model cannot serve raise :class:`AmphionAudioLDMInputError` (user-safe messages).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from models.audioldm import configs as C
from models.audioldm.official import (
    OFFICIAL,
    PART_FILES,
    PARTS,
    T5_CONFIG_FILE,
    T5_TOKENIZER_FILE,
    T5_WEIGHTS_FILE,
    UNET_FILE,
    VAE_FILE,
    VOCODER_CONFIG_FILE,
    VOCODER_FILE,
)
from models.audioldm.sampler import StepCallback, denoise
from models.audioldm.text_encoder import (
    T5TextEncoder,
    build_t5_encoder,
    load_t5_encoder,
    load_tokenizer,
    tiny_tokenizer,
    tiny_vocab_size,
)
from models.audioldm.unet import AudioLDMUNet
from models.audioldm.vae import MelVAE
from models.audioldm.vocoder import TTAVocoder
from models.core import checks
from models.core.checkpoints import load_exact, load_state_dict_file
from models.core.configs import read_json
from models.core.random_init import conv2d_and_groupnorm, init_random_weights
from models.weights import resolve_parts

__all__ = [
    "AmphionAudioLDM",
    "AmphionAudioLDMInputError",
    "AudioTooLongError",
    "DEFAULT_GUIDANCE_SCALE",
    "DEFAULT_STEPS",
    "EmptyTextError",
    "MAX_STEPS",
    "TTAOutput",
    "load_text_encoder",
    "load_unet",
    "load_vae",
    "load_vocoder",
]

#: ``--num_steps`` and ``--guidance_scale`` defaults of the reference's inference script.
DEFAULT_STEPS = 200
DEFAULT_GUIDANCE_SCALE = 4.0
#: PNDM cannot take more steps than its 1000 training timesteps.
MAX_STEPS = 1000


# ---------------------------------------------------------------------------------------------
# errors


class AmphionAudioLDMInputError(ValueError):
    """A request Amphion's AudioLDM cannot serve as given (a client error); the message is user-safe."""


class EmptyTextError(AmphionAudioLDMInputError):
    """The text prompt is empty."""


class AudioTooLongError(AmphionAudioLDMInputError):
    """More audio asked for than the model makes in one call (it names the maximum)."""


# ---------------------------------------------------------------------------------------------
# components: built from configs + files (the product loading path, also the parity adapters')


def load_unet(config: C.UNetConfig, weights: str | os.PathLike) -> AudioLDMUNet:
    """The UNet of ``config`` with the ``unet.``-prefixed state dict of ``weights`` (strict)."""
    model = AudioLDMUNet(config)
    load_exact(model, load_state_dict_file(weights), f"UNet checkpoint {Path(weights).name}")
    return model.eval().requires_grad_(False)


def load_vae(config: C.VAEConfig, weights: str | os.PathLike) -> MelVAE:
    """diffusers' AutoencoderKL with Amphion's VAE checkpoint ``weights`` mapped onto it (strict)."""
    vae = MelVAE(config)
    vae.load_amphion_state_dict(load_state_dict_file(weights), f"VAE checkpoint {Path(weights).name}")
    return vae.eval().requires_grad_(False)


def load_vocoder(config: Mapping, weights: str | os.PathLike) -> TTAVocoder:
    """The jik876 HiFi-GAN of the flat ``config`` with the generator of ``weights`` (strict, folded)."""
    vocoder = TTAVocoder(C.parse_vocoder_config(config))
    vocoder.load_generator(load_state_dict_file(weights), f"vocoder checkpoint {Path(weights).name}")
    return vocoder.eval().requires_grad_(False)


def load_text_encoder(config: Mapping, weights: str | os.PathLike,
                      tokenizer_file: str | os.PathLike | None = None) -> T5TextEncoder:
    """T5 encoder of the transformers ``config`` with ``weights``; the tokenizer when given."""
    tokenizer = load_tokenizer(tokenizer_file) if tokenizer_file is not None else None
    return T5TextEncoder(load_t5_encoder(config, weights), tokenizer)


# ---------------------------------------------------------------------------------------------
# tiny weights


def _tiny_components(seed: int) -> dict[str, nn.Module]:
    exp = C.parse_exp_config(C.tiny_exp_config())
    unet = AudioLDMUNet(exp.unet)
    init_random_weights(unet, seed, rules=(conv2d_and_groupnorm,))
    vae = MelVAE(exp.vae)
    init_random_weights(vae, seed + 1, rules=(conv2d_and_groupnorm,))
    vocoder = TTAVocoder(C.parse_vocoder_config(C.tiny_vocoder_config()))
    init_random_weights(vocoder, seed + 2)
    vocoder.load_generator(vocoder.generator.state_dict(), "tiny vocoder")  # folds weight norm
    t5 = build_t5_encoder(C.tiny_t5_config(tiny_vocab_size()))
    init_random_weights(t5, seed + 3)
    return {"unet": unet, "vae": vae, "vocoder": vocoder, "text_encoder": T5TextEncoder(t5, tiny_tokenizer())}


# ---------------------------------------------------------------------------------------------
# the pipeline


@dataclass(frozen=True)
class TTAOutput:
    latents: torch.Tensor
    """``[1, z, h, w]`` after the last scheduler step."""
    mel: torch.Tensor
    """``[1, 1, 80, 624]``: the VAE's decode of the latents."""
    audio: torch.Tensor
    """``[1, 1, 624 * hop]`` float32 in (-1, 1): the vocoder's output, uncut."""


class AmphionAudioLDM:
    """Amphion's TTA model (``amphion/text_to_audio`` + ``t5-base``). Thread-safe: calls share no
    mutable state (each makes its own scheduler and random generator)."""

    def __init__(self, *, unet: AudioLDMUNet, vae: MelVAE, vocoder: TTAVocoder, text_encoder: T5TextEncoder,
                 device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32,
                 scheduler_config: C.SchedulerConfig = C.SchedulerConfig(), weights_kind: str = "custom",
                 note: str = "") -> None:
        self.device = torch.device(device)
        self.unet = unet.to(self.device, dtype).eval().requires_grad_(False)
        self.vae = vae.to(self.device).eval().requires_grad_(False)
        self.vocoder = vocoder.to(self.device).eval().requires_grad_(False)
        self.text_encoder = text_encoder.to(self.device).eval().requires_grad_(False)
        self.scheduler_config = scheduler_config
        self.weights_kind = weights_kind
        """``"pretrained"``, ``"tiny"`` or ``"custom"`` (built from files by hand)."""
        self.note = note
        """Where the weights come from; user-safe."""
        self._check_consistency()

    # ----- construction ------------------------------------------------------------------------

    @classmethod
    def from_files(cls, *, exp_config: Mapping, unet_weights, vae_weights, vocoder_config: Mapping, vocoder_weights,
                   t5_config: Mapping, t5_weights, tokenizer_file=None, device: str | torch.device = "cpu",
                   dtype: torch.dtype = torch.float32, weights_kind: str = "custom", note: str = "") -> "AmphionAudioLDM":
        """From an experiment config (with ``model.audioldm`` and ``model.autoencoderkl``), the UNet and
        VAE checkpoints, the jik876 vocoder config + checkpoint, and the T5 config + weights (+ its
        ``tokenizer.json``; without one, :meth:`generate` is unavailable and :meth:`run` takes ids)."""
        exp = C.parse_exp_config(exp_config)
        if exp.unet is None or exp.vae is None:
            raise C.ConfigError("the experiment config must hold both model.audioldm and model.autoencoderkl")
        return cls(
            unet=load_unet(exp.unet, unet_weights),
            vae=load_vae(exp.vae, vae_weights),
            vocoder=load_vocoder(vocoder_config, vocoder_weights),
            text_encoder=load_text_encoder(t5_config, t5_weights, tokenizer_file),
            device=device, dtype=dtype, scheduler_config=exp.scheduler, weights_kind=weights_kind, note=note,
        )

    @classmethod
    def tiny(cls, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32, *, seed: int = 0,
             note: str = "tiny profile: seeded random weights") -> "AmphionAudioLDM":
        """The tiny profile: official structure, small sizes, seeded random weights, offline tokenizer."""
        return cls(**_tiny_components(seed), device=device, dtype=dtype, weights_kind="tiny", note=note)

    @classmethod
    def from_weights(cls, mode: str = "auto", device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32,
                     *, cache_dir: str | os.PathLike | None = None,
                     local_dirs: Mapping[str, str | os.PathLike] | None = None, seed: int = 0,
                     exp_config: Mapping | None = None) -> "AmphionAudioLDM":
        """Every part through ``models.weights.resolve_parts`` (``mode``: ``"pretrained"``, ``"tiny"``
        or ``"auto"``; the parts are never mixed). ``dtype`` applies to the UNet (T5, VAE and vocoder
        stay float32). ``local_dirs``: :data:`models.audioldm.official.OFFICIAL` key -> a folder laid
        out like its repo. ``seed`` seeds the tiny weights. ``exp_config``: the experiment config
        the UNet and VAE checkpoints were trained with (default :data:`configs.OFFICIAL_EXP_CONFIG`;
        the hub repo ships none); the vocoder's and T5's configs come with their files."""
        kind, found, note = resolve_parts(mode, OFFICIAL, PART_FILES, PARTS, cache_dir=cache_dir,
                                          local_dirs=local_dirs)
        if kind != "pretrained":
            return cls.tiny(device, dtype, seed=seed, note=note)
        unet, vae, voc, t5 = found["unet"], found["vae"], found["vocoder"], found["text_encoder"]
        return cls.from_files(
            exp_config=C.OFFICIAL_EXP_CONFIG if exp_config is None else exp_config,
            unet_weights=unet.file(UNET_FILE),
            vae_weights=vae.file(VAE_FILE),
            vocoder_config=read_json(voc.file(VOCODER_CONFIG_FILE)),
            vocoder_weights=voc.file(VOCODER_FILE),
            t5_config=read_json(t5.file(T5_CONFIG_FILE)),
            t5_weights=t5.file(T5_WEIGHTS_FILE),
            tokenizer_file=t5.file(T5_TOKENIZER_FILE),
            device=device, dtype=dtype, weights_kind="pretrained", note=note,
        )

    def _check_consistency(self) -> None:
        problems = []
        unet, vae = self.unet.cfg, self.vae.cfg
        if unet.context_dim != self.text_encoder.width:
            problems.append(f"the UNet attends to {unet.context_dim}-wide text, T5 makes {self.text_encoder.width}")
        if not unet.in_channels == unet.out_channels == vae.z_channels:
            problems.append(f"the UNet maps {unet.in_channels} -> {unet.out_channels} channels, "
                            f"the VAE's latent has {vae.z_channels}")
        if vae.out_ch != 1 or vae.mel_size[0] != self.vocoder.n_mels:
            problems.append(f"the VAE makes {vae.out_ch} x {vae.mel_size[0]}-bin mels, "
                            f"the vocoder reads 1 x {self.vocoder.n_mels}")
        if self.vocoder.sample_rate != C.SAMPLE_RATE:
            problems.append(f"the vocoder runs at {self.vocoder.sample_rate} Hz, expected {C.SAMPLE_RATE}")
        if problems:
            raise ValueError("Amphion AudioLDM components do not fit together: " + "; ".join(problems))

    # ----- facts -------------------------------------------------------------------------------

    @property
    def sample_rate(self) -> int:
        """Output rate: 16 kHz."""
        return C.SAMPLE_RATE

    @property
    def latent_shape(self) -> tuple[int, int, int, int]:
        """The initial noise's shape: ``(1, z_channels, 80 // 2**(L-1), 624 // 2**(L-1))``, officially (1, 4, 5, 39)."""
        h, w = self.vae.cfg.latent_size
        return (1, self.vae.cfg.z_channels, h, w)

    @property
    def max_samples(self) -> int:
        """Samples made per call (159 744 at the official and tiny sizes)."""
        return C.max_samples(self.vae.cfg, self.vocoder.hop_length)

    @property
    def max_seconds(self) -> float:
        """The longest ``audio_length_in_s`` served: :attr:`max_samples` / 16 kHz (9.984 s)."""
        return self.max_samples / self.sample_rate

    @property
    def num_parameters(self) -> int:
        return sum(sum(p.numel() for p in m.parameters())
                   for m in (self.unet, self.vae, self.vocoder, self.text_encoder))

    def __repr__(self) -> str:
        return (f"AmphionAudioLDM(weights_kind={self.weights_kind!r}, device={str(self.device)!r}, "
                f"sample_rate={self.sample_rate}, max_seconds={self.max_seconds:g})")

    # ----- stages ------------------------------------------------------------------------------

    def initial_noise(self, generator: torch.Generator) -> torch.Tensor:
        """The starting latent, drawn on the CPU from ``generator`` (same seed, same noise on any device)."""
        return torch.randn(self.latent_shape, generator=generator, dtype=torch.float32)

    def run(self, cond_ids: torch.Tensor, uncond_ids: torch.Tensor, noise: torch.Tensor, *, num_inference_steps: int,
            guidance_scale: float, on_step: StepCallback | None = None) -> TTAOutput:
        """The reference's ``inference()`` from token ids and the initial noise: embeddings, sampling,
        VAE decode, vocoder on ``mel[:, 0]``."""
        uncond, cond = self.text_encoder.embed_pair(cond_ids, uncond_ids)
        latents = denoise(self.unet, uncond, cond, noise.to(self.device), num_inference_steps=num_inference_steps,
                          guidance_scale=guidance_scale, scheduler_config=self.scheduler_config, on_step=on_step)
        with torch.inference_mode():
            mel = self.vae.decode(latents)
            audio = self.vocoder(mel[:, 0])
        return TTAOutput(latents=latents, mel=mel, audio=audio.float())

    # ----- the request -------------------------------------------------------------------------

    def _samples_for(self, audio_length_in_s) -> int:
        if audio_length_in_s is None:
            return self.max_samples
        seconds = checks.finite(audio_length_in_s, "audio_length_in_s", AmphionAudioLDMInputError, positive=True)
        samples = int(round(seconds * self.sample_rate))
        if samples > self.max_samples:
            raise AudioTooLongError(
                f"audio_length_in_s is at most {self.max_seconds:g} s for Amphion's AudioLDM (it always generates "
                f"{self.max_samples} samples at {self.sample_rate} Hz), got {seconds:g}")
        if samples < 1:
            raise AmphionAudioLDMInputError(f"audio_length_in_s is too short for one sample at {self.sample_rate} Hz, "
                                            f"got {seconds:g}")
        return samples

    @dataclass(frozen=True)
    class _Item:
        text: str
        negative_prompt: str | None
        samples: int
        guidance_scale: float
        seed: int

    def _check_item(self, text, audio_length_in_s, guidance_scale, negative_prompt, seed) -> "_Item":
        if not isinstance(text, str) or not text.strip():
            raise EmptyTextError("text must be a non-empty string")
        if negative_prompt is not None and not isinstance(negative_prompt, str):
            raise AmphionAudioLDMInputError("negative_prompt must be a string")
        samples = self._samples_for(audio_length_in_s)
        scale = checks.finite(guidance_scale, "guidance_scale", AmphionAudioLDMInputError)
        seed = checks.seed(seed, AmphionAudioLDMInputError)
        return self._Item(text, negative_prompt, samples, scale, secrets.randbits(63) if seed is None else seed)

    def generate(self, text: str | Sequence[str], *, audio_length_in_s=None, num_inference_steps: int = DEFAULT_STEPS,
                 guidance_scale=DEFAULT_GUIDANCE_SCALE, negative_prompt=None, seed=None,
                 on_step: Callable[[int, int], None] | None = None) -> np.ndarray | list[np.ndarray]:
        """Audio for ``text``: float32 ``[round(audio_length_in_s * 16000)]`` at 16 kHz (the first
        samples of the model's 9.984 s; None: all of it).

        ``num_inference_steps`` PNDM steps (``num_inference_steps + 1`` UNet calls), classifier-free
        guidance ``guidance_scale`` against ``negative_prompt`` (default ``""``, as the reference),
        initial noise from ``torch.Generator().manual_seed(seed)`` (a random seed when None).
        ``on_step(step, total)`` after each UNet call. AmphionAudioLDMInputError for a request out of range.

        A list of texts gives a list of arrays: ``audio_length_in_s``, ``guidance_scale``,
        ``negative_prompt`` and ``seed`` are then one value for all or a list of one per text. Every item
        is checked before any is computed, and each runs on its own (the unconditional text is padded
        to each prompt's length, so items of different lengths cannot share a UNet batch without
        changing their results): item i's audio is exactly what ``generate(text[i], ...)`` gives. The
        progress total is then the items' UNet calls together."""
        steps = checks.integer(num_inference_steps, "num_inference_steps", AmphionAudioLDMInputError, 1, MAX_STEPS)
        if self.text_encoder.tokenizer is None:
            raise RuntimeError("this pipeline was built without a tokenizer (from_files without tokenizer_file)")
        single = isinstance(text, str)
        texts = [text] if single else list(text)
        if not texts:
            raise AmphionAudioLDMInputError("no text given")

        def per_item(name: str, value) -> list:
            if single or isinstance(value, str) or not isinstance(value, (list, tuple)):
                return [value] * len(texts)
            if len(value) != len(texts):
                raise AmphionAudioLDMInputError(f"{name}: {len(value)} values for {len(texts)} texts")
            return list(value)

        items = [self._check_item(*args) for args in zip(
            texts, per_item("audio_length_in_s", audio_length_in_s), per_item("guidance_scale", guidance_scale),
            per_item("negative_prompt", negative_prompt), per_item("seed", seed))]
        calls, total = steps + 1, len(items) * (steps + 1)
        waves = []
        for n, item in enumerate(items):
            report = None if on_step is None else (lambda i, _t, base=n * calls: on_step(base + i, total))
            cond_ids, uncond_ids = self.text_encoder.token_ids(item.text, item.negative_prompt)
            noise = self.initial_noise(torch.Generator().manual_seed(item.seed))
            out = self.run(cond_ids, uncond_ids, noise, num_inference_steps=steps, guidance_scale=item.guidance_scale,
                           on_step=report)
            waves.append(np.ascontiguousarray(out.audio.reshape(-1)[: item.samples].cpu().numpy(), dtype=np.float32))
        return waves[0] if single else waves
