"""PicoAudio, end to end: timestamped text -> 16 kHz audio with the events where the text puts them.

``PicoAudioPipeline.generate(text, duration=..., num_inference_steps=..., guidance_scale=...,
seed=..., on_step=...)``: parse the text (structured or caption form,
:mod:`models.picoaudio.timestamps`) -> onset matrix + event string -> CLAP text embedding ->
DDPM sampling of ``[B, 8, 256, 16]`` latents -> VAE -> HiFi-GAN -> the first ``duration`` seconds
of the 10.24 s the model makes. ``text`` may be a list: the texts share one denoising loop (the
UNet runs on the whole batch each step) while each keeps its own seeded generator, so an item's
audio is what it gets alone up to the float rounding of batched kernels. Input errors are
:class:`PicoAudioInputError`, raised before any model runs (:meth:`PicoAudioPipeline.check` runs
the same checks without generating). :meth:`PicoAudioPipeline.from_weights` builds it from the official files
(``"pretrained"``), seeded tiny stand-ins (``"tiny"``) or whichever is on this machine (``"auto"``).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from models.core import checks
from models.core.checkpoints import load_state_dict_file
from models.core.configs import read_json
from models.core.random_init import init_random_weights
from models.picoaudio import configs as C
from models.picoaudio.clap import (
    ClapTextEncoder,
    build_clap_text_model,
    read_laion_checkpoint,
    roberta_tokenizer,
    tiny_tokenizer,
)
from models.picoaudio.decoder import AudioDecoder, build_audio_decoder
from models.picoaudio.diffusion import build_unet, make_scheduler, sample_latents
from models.picoaudio.events import events
from models.picoaudio.official import (
    CLAP_FILE,
    DIFFUSION_FILE,
    OFFICIAL_FILES,
    PARTS,
    VAE_CONFIG_FILE,
    VAE_FILE,
)
from models.picoaudio.timestamps import (
    MAX_SECONDS,
    PicoAudioInputError,
    TimedEvent,
    event_text,
    onset_matrix,
    parse_text,
)
from models.weights import resolve_parts

__all__ = [
    "DEFAULT_DURATION",
    "DEFAULT_GUIDANCE_SCALE",
    "DEFAULT_STEPS",
    "MAX_SECONDS",
    "MAX_STEPS",
    "SAMPLE_RATE",
    "PicoAudioPipeline",
    "PicoAudioRequest",
]

SAMPLE_RATE = 16000
#: The reference's inference default (``--num_steps 200``; the Space's demo too).
DEFAULT_STEPS = 200
MAX_STEPS = 1000
#: The Space's demo (``guidance_scale=3.0``); the training repo's script defaults to 1 (no guidance).
DEFAULT_GUIDANCE_SCALE = 3.0
#: The reference writes ``wav[:160000]``: 10 s of the 10.24 s it generates.
DEFAULT_DURATION = 10.0

StepFn = Callable[[int, int], None]


@dataclass(frozen=True)
class PicoAudioRequest:
    """One checked item of a :meth:`PicoAudioPipeline.generate` call: its settings (``seed``
    resolved: a drawn one when none was given) and what the parser made of its text."""

    text: str
    duration: float
    guidance_scale: float
    seed: int
    events: list[TimedEvent]
    onsets: np.ndarray
    event_string: str

    @property
    def samples(self) -> int:
        return int(round(self.duration * SAMPLE_RATE))


def _per_item(value, n: int, name: str) -> list:
    """One value for every item, or a list / tuple of exactly one per item."""
    if not isinstance(value, (list, tuple)):
        return [value] * n
    if len(value) != n:
        raise PicoAudioInputError(f"{name}: got {len(value)} values for {n} texts")
    return list(value)


class PicoAudioPipeline:
    """The loaded model (CLAP text tower, UNet, VAE + vocoder). Calls may run concurrently: the
    modules are only read and every call builds its own scheduler and random generator."""

    def __init__(self, clap: ClapTextEncoder, unet: torch.nn.Module, decoder: AudioDecoder, *,
                 device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32,
                 scheduler_config: Mapping[str, Any] | None = None, weights_kind: str = "tiny",
                 note: str = "") -> None:
        problems = []
        if int(unet.config.cross_attention_dim) != 2 * clap.embedding_dim:
            problems.append(f"the UNet attends to {unet.config.cross_attention_dim} values, CLAP gives "
                            f"{clap.embedding_dim} (x2)")
        if int(unet.config.out_channels) != int(decoder.vae.config.latent_channels):
            problems.append(f"the UNet makes {unet.config.out_channels} latent channels, the VAE takes "
                            f"{decoder.vae.config.latent_channels}")
        if decoder.sample_rate != SAMPLE_RATE:
            problems.append(f"the vocoder makes {decoder.sample_rate} Hz, PicoAudio is {SAMPLE_RATE} Hz")
        if problems:
            raise ValueError("PicoAudio components do not fit together: " + "; ".join(problems))
        self.device = torch.device(device)
        self.dtype = dtype
        self.clap = clap.to(self.device).eval()
        self.unet = unet.to(self.device).eval()
        if dtype != torch.float32:
            self.clap.to(dtype)
            self.unet.to(dtype)
        self.decoder = decoder.to(self.device).eval()
        self.scheduler_config = dict(C.SCHEDULER_CONFIG if scheduler_config is None else scheduler_config)
        make_scheduler(self.scheduler_config)  # refuse an unsupported scheduler now, not per request
        self.weights_kind = weights_kind
        self.note = note

    # ------------------------------------------------------------------------------------------
    # construction

    @classmethod
    def from_weights(cls, mode: str = "auto", device: str | torch.device = "cpu",
                     dtype: torch.dtype = torch.float32, *, cache_dir: str | os.PathLike | None = None,
                     local_dirs: Mapping[str, str | os.PathLike] | None = None, seed: int = 0
                     ) -> "PicoAudioPipeline":
        """Through ``models.weights`` (``mode``: ``"pretrained"``, ``"tiny"`` or ``"auto"``; never a
        mix of official and tiny parts). ``dtype`` applies to the CLAP text tower and the UNet; the
        VAE and vocoder stay float32. ``local_dirs``: ``"picoaudio"`` / ``"tokenizer"`` -> a folder
        laid out like that repo. ``seed`` seeds the tiny weights."""
        kind, found, note = resolve_parts(mode, OFFICIAL_FILES, PARTS, tuple(PARTS), cache_dir=cache_dir,
                                          local_dirs=local_dirs)
        if kind == "pretrained":
            return cls.from_official_folder(found["picoaudio"].root, found["tokenizer"].root, device=device,
                                            dtype=dtype, note=note)
        return cls.tiny(device=device, dtype=dtype, seed=seed, note=note)

    @classmethod
    def from_official_folder(cls, root: str | os.PathLike, tokenizer_dir: str | os.PathLike, *,
                             device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32,
                             unet_config: Mapping[str, Any] = C.OFFICIAL_UNET_CONFIG,
                             clap_config: Mapping[str, Any] = C.OFFICIAL_CLAP_TEXT_CONFIG,
                             vocoder_config: Mapping[str, Any] = C.OFFICIAL_VOCODER_CONFIG,
                             note: str = "official weights") -> "PicoAudioPipeline":
        """From a folder laid out like the ``amphion/PicoAudio`` Space (``ckpts/...``) and one holding
        roberta-base's ``vocab.json`` / ``merges.txt``; every file loads strictly. The configs that
        are not in the Space default to the official values."""
        root, tokenizer_dir = Path(root), Path(tokenizer_dir)
        clap = ClapTextEncoder(build_clap_text_model(clap_config),
                               roberta_tokenizer(tokenizer_dir / "vocab.json", tokenizer_dir / "merges.txt"))
        clap.load_laion(read_laion_checkpoint(root / CLAP_FILE), CLAP_FILE)
        unet = build_unet(unet_config, load_state_dict_file(root / DIFFUSION_FILE), source=DIFFUSION_FILE)
        decoder = build_audio_decoder(C.parse_vae_config(read_json(root / VAE_CONFIG_FILE)),
                                      C.parse_vocoder(dict(vocoder_config)),
                                      load_state_dict_file(root / VAE_FILE), source=VAE_FILE)
        return cls(clap, unet, decoder, device=device, dtype=dtype, weights_kind="pretrained", note=note)

    @classmethod
    def tiny(cls, *, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32, seed: int = 0,
             note: str = "tiny profile: seeded random weights") -> "PicoAudioPipeline":
        """The tiny profile: the same architecture, small, seeded random weights, a tokenizer generated
        in code (no files needed, nothing downloaded)."""
        model = build_clap_text_model(C.TINY_CLAP_TEXT_CONFIG)
        init_random_weights(model, seed)
        tokenizer = tiny_tokenizer(C.TINY_CLAP_TEXT_CONFIG["vocab_size"])
        clap = ClapTextEncoder(model.eval().requires_grad_(False), tokenizer)
        unet = build_unet(C.TINY_UNET_CONFIG, seed=seed + 1)
        decoder = build_audio_decoder(C.parse_vae_config(C.TINY_VAE_CONFIG), C.parse_vocoder(C.TINY_VOCODER_CONFIG),
                                      seed=seed + 2)
        return cls(clap, unet, decoder, device=device, dtype=dtype, weights_kind="tiny", note=note)

    # ------------------------------------------------------------------------------------------
    # facts

    @property
    def sample_rate(self) -> int:
        return SAMPLE_RATE

    @property
    def max_seconds(self) -> float:
        """The longest clip (what the model generates: 256 latent frames of 40 ms)."""
        return MAX_SECONDS

    @staticmethod
    def events() -> tuple[str, ...]:
        """The event classes the model knows."""
        return events()

    # ------------------------------------------------------------------------------------------
    # generation

    @staticmethod
    def parse(text: str, duration: float = DEFAULT_DURATION) -> tuple[list[TimedEvent], np.ndarray, str]:
        """``text`` -> (events, onset matrix ``[32, 256]``, the event string for CLAP); input errors
        as :class:`PicoAudioInputError`."""
        found = parse_text(text)
        return found, onset_matrix(found, duration), event_text(found)

    def check(self, text: str | Sequence[str], *, duration: float | Sequence[float] = DEFAULT_DURATION,
              num_inference_steps: int = DEFAULT_STEPS,
              guidance_scale: float | Sequence[float] = DEFAULT_GUIDANCE_SCALE,
              seed: int | None | Sequence[int | None] = None) -> tuple[list[PicoAudioRequest], int]:
        """The input checks of :meth:`generate` (same arguments), run without generating: (the
        checked items, the step count), or :class:`PicoAudioInputError` saying what is refused."""
        E = PicoAudioInputError
        if isinstance(text, str):
            texts = [text]
        elif isinstance(text, (list, tuple)):
            texts = list(text)
            if not texts:
                raise E("no text given")
        else:
            raise E(f"text must be a string or a list of strings, got {type(text).__name__}")
        n = len(texts)
        durations = _per_item(duration, n, "duration")
        scales = _per_item(guidance_scale, n, "guidance_scale")
        seeds = _per_item(seed, n, "seed")
        items: list[PicoAudioRequest] = []
        steps = None
        for one_text, d, g, s in zip(texts, durations, scales, seeds):
            d = checks.finite(DEFAULT_DURATION if d is None else d, "duration", E, positive=True)
            if d > MAX_SECONDS:
                raise E(f"duration must be at most {MAX_SECONDS:g} s (what PicoAudio generates), got {d:g}")
            if steps is None:
                steps = checks.integer(num_inference_steps, "num_inference_steps", E, 1, MAX_STEPS)
            g = checks.finite(DEFAULT_GUIDANCE_SCALE if g is None else g, "guidance_scale", E)
            s = checks.seed(s, E)
            found, onsets, events_string = self.parse(one_text, d)
            items.append(PicoAudioRequest(text=one_text, duration=d, guidance_scale=g,
                                          seed=secrets.randbits(63) if s is None else s, events=found,
                                          onsets=onsets, event_string=events_string))
        return items, steps

    def generate(self, text: str | Sequence[str], *, duration: float | Sequence[float] = DEFAULT_DURATION,
                 num_inference_steps: int = DEFAULT_STEPS,
                 guidance_scale: float | Sequence[float] = DEFAULT_GUIDANCE_SCALE,
                 seed: int | None | Sequence[int | None] = None,
                 on_step: StepFn | None = None) -> np.ndarray | list[np.ndarray]:
        """Audio for ``text``: float32 mono at 16 kHz, exactly ``round(duration * 16000)`` samples;
        for a list of texts, a list of such arrays in order.

        ``duration`` in (0, 10.24] s; ``num_inference_steps`` 1..1000 DDPM steps; ``guidance_scale``
        >= 0 (classifier-free guidance above 1); ``seed``: the same seed and inputs give the same
        audio (None: a random seed). ``duration``, ``guidance_scale`` and ``seed`` are one value for
        every text or a list of one per text (None in it: the default); ``num_inference_steps`` is
        shared. The texts' UNet passes run as one batch per step, but each item draws its noise
        from its own generator: its audio never depends on what else is in the call (beyond the
        float rounding of batched kernels). ``on_step(step, total)`` after every denoising step
        (once per step for the whole batch)."""
        items, steps = self.check(text, duration=duration, num_inference_steps=num_inference_steps,
                                  guidance_scale=guidance_scale, seed=seed)
        waves = self._run(items, steps, on_step)
        return waves[0] if isinstance(text, str) else waves

    def _run(self, items: list[PicoAudioRequest], steps: int, on_step: StepFn | None) -> list[np.ndarray]:
        generators = [torch.Generator("cpu").manual_seed(item.seed) for item in items]

        def draw(shape: tuple[int, ...]) -> torch.Tensor:
            # Every item from its own generator, on the CPU whatever the device: the same seed gives
            # the same noise everywhere and in any batch.
            if shape[0] != len(generators):
                raise ValueError(f"noise for {shape[0]} items drawn from {len(generators)} generators")
            return torch.cat([torch.randn((1, *shape[1:]), generator=g, dtype=torch.float32) for g in generators])

        # CLAP pads every text to the same length, but one text per call keeps an item's embedding
        # independent of its batch-mates exactly.
        embeddings: dict[str, torch.Tensor] = {}
        for item in items:
            if item.event_string not in embeddings:
                embeddings[item.event_string] = self.clap([item.event_string])
        embedding = torch.cat([embeddings[item.event_string] for item in items]).to(self.device)
        onsets = torch.from_numpy(np.stack([item.onsets for item in items])).to(self.device)
        latents = sample_latents(self.unet, make_scheduler(self.scheduler_config), onsets, embedding,
                                 num_steps=steps, guidance_scale=[item.guidance_scale for item in items],
                                 draw=draw, on_step=on_step)
        waves = []
        for i, item in enumerate(items):
            audio = self.decoder.decode(latents[i:i + 1])[0]
            waves.append(np.ascontiguousarray(audio[:item.samples].float().cpu().numpy(), dtype=np.float32))
        return waves
