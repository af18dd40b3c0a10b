"""AudioLDM through diffusers' components: the default path of ``/api/tta/audioldm``.

The weights are a diffusers-format AudioLDM repository (default :data:`DIFFUSERS_DEFAULT_REPO`; any
``cvssp/audioldm-*`` repo, or a folder laid out like one): CLAP's text branch
(``ClapTextModelWithProjection``) and its RoBERTa tokenizer, ``UNet2DConditionModel``,
``AutoencoderKL``, ``SpeechT5HifiGan`` and the scheduler named in ``scheduler/scheduler_config.json``.
:class:`DiffusersAudioLDM` loads them with diffusers' ``AudioLDMPipeline`` (which also writes them,
:meth:`DiffusersAudioLDM.save_pretrained`) and runs its own denoising loop over those components,
step for step the pipeline's arithmetic, so that each request of a batch has its own noise,
scheduler state, guidance and negative prompt (a batch never changes a result), progress is
reported per step, and the audio is exactly the length asked for. How, and what differs from the
pipeline's ``__call__``: ``models/audioldm/README.md``.

Weights (:func:`resolve_diffusers`): ``pretrained`` (a folder ``$AMPHION_WEIGHTS_DIR/<org>/<name>``, else
the Hugging Face cache, else the hub), ``tiny`` (:func:`build_tiny_pipeline`: the same classes, small,
seeded random weights, a tokenizer built in memory; no file is read or downloaded) or ``auto``
(pretrained when already on this machine, else tiny with a warning). The cvssp weights are licensed
CC-BY-NC-SA-4.0 (:data:`CVSSP_WEIGHTS_LICENSE`): non-commercial use only.
"""

from __future__ import annotations

import copy
import inspect
import json
import logging
import math
import re
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from models.core import checks
from models.weights import (
    TINY_NOTE,
    WEIGHTS_MODES,
    HubFiles,
    ResolvedWeights,
    WeightsUnavailable,
    download,
    find_local,
    resolve,
)

__all__ = [
    "AUDIO_LENGTH_RANGE_S",
    "AudioLDMInputError",
    "CVSSP_WEIGHTS_LICENSE",
    "DEFAULT_AUDIO_LENGTH_S",
    "DEFAULT_GUIDANCE_SCALE",
    "DEFAULT_NUM_INFERENCE_STEPS",
    "DIFFUSERS_DEFAULT_REPO",
    "DIFFUSERS_LICENSE_NOTE",
    "DiffusersAudioLDM",
    "MAX_GUIDANCE_SCALE",
    "MAX_INFERENCE_STEPS",
    "MAX_TEXT_CHARS",
    "COMPONENT_WEIGHTS",
    "CONFIG_FILES",
    "WEIGHT_FORMATS",
    "build_tiny_pipeline",
    "diffusers_files",
    "download_diffusers",
    "resolve_diffusers",
    "weights_license",
]

logger = logging.getLogger("amphion.audioldm")

# ----------------------------------------------------------------------------------------------------
# constants

DIFFUSERS_DEFAULT_REPO = "cvssp/audioldm-s-full-v2"
#: Licence of every ``cvssp/audioldm*`` repository (their model cards): non-commercial, share-alike.
CVSSP_WEIGHTS_LICENSE = "CC-BY-NC-SA-4.0"
DIFFUSERS_LICENSE_NOTE = (
    f"cvssp AudioLDM weights are licensed {CVSSP_WEIGHTS_LICENSE} (non-commercial use, share-alike, "
    "attribution); other repositories carry their own model card's licence"
)

#: ``audio_length_in_s`` accepted by :meth:`DiffusersAudioLDM.generate` (the API's range). AudioLDM was
#: trained on 10.24 s clips; its UNet is convolutional with self-attention over the whole clip, so other
#: lengths run (quality is best near the training length; attention memory grows with the square).
AUDIO_LENGTH_RANGE_S = (1.0, 30.0)
DEFAULT_AUDIO_LENGTH_S = 5.0
DEFAULT_NUM_INFERENCE_STEPS = 50
#: The most denoising steps a request may ask for (also bounded by the scheduler's training steps).
MAX_INFERENCE_STEPS = 1000
MAX_GUIDANCE_SCALE = 20.0
#: Longest prompt (and negative prompt) in characters; the tokenizer keeps its first
#: ``model_max_length`` tokens (512 for CLAP) and logs what it cut.
MAX_TEXT_CHARS = 2000


#: Classifier-free guidance when a request gives none: ``AudioLDMPipeline.__call__``'s default (a test
#: checks it against the installed diffusers; importing diffusers here would load it into the ingress).
#: ``<= 1`` disables guidance, as in the pipeline.
DEFAULT_GUIDANCE_SCALE = 2.5


class AudioLDMInputError(ValueError):
    """A request AudioLDM cannot serve as given (empty text, length or step count out of range, ...):
    the message says what to change and is safe to show users (the deployment answers 400)."""


# ----------------------------------------------------------------------------------------------------
# files

#: Weight formats looked for, per component, in this order (older diffusers and transformers wrote
#: ``.bin`` pickles, newer ones ``.safetensors``, and a repo may mix them; ``.bin`` is read with
#: ``torch.load(weights_only=True)``, no pickled code). Single files: sharded weights are not looked for.
WEIGHT_FORMATS = ("safetensors", "bin")

#: Each model component's weights file, per format.
COMPONENT_WEIGHTS: dict[str, dict[str, str]] = {
    "text_encoder": {"safetensors": "text_encoder/model.safetensors", "bin": "text_encoder/pytorch_model.bin"},
    "unet": {"safetensors": "unet/diffusion_pytorch_model.safetensors", "bin": "unet/diffusion_pytorch_model.bin"},
    "vae": {"safetensors": "vae/diffusion_pytorch_model.safetensors", "bin": "vae/diffusion_pytorch_model.bin"},
    "vocoder": {"safetensors": "vocoder/model.safetensors", "bin": "vocoder/pytorch_model.bin"},
}

#: Everything but the weights.
CONFIG_FILES = (
    "model_index.json",
    "scheduler/scheduler_config.json",
    "text_encoder/config.json",
    # the tokenizer: tokenizer_config.json plus vocab.json + merges.txt (older transformers) and/or
    # tokenizer.json (newer): the whole folder
    "tokenizer/tokenizer_config.json",
    "tokenizer/*",
    "unet/config.json",
    "vae/config.json",
    "vocoder/config.json",
)

# Hugging Face repo ids as this layout needs them: exactly <org>/<name>, the hub's characters.
_REPO_PART = r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?"
_REPO_ID = re.compile(rf"^{_REPO_PART}/{_REPO_PART}$")


def weights_license(repo_id: str) -> str | None:
    """The licence of ``repo_id``'s weights when known (:data:`CVSSP_WEIGHTS_LICENSE` for ``cvssp/``),
    else None (see the repository's model card)."""
    return CVSSP_WEIGHTS_LICENSE if str(repo_id).lower().startswith("cvssp/") else None


def diffusers_files(repo_id: str = DIFFUSERS_DEFAULT_REPO, weights_format: str | None = "safetensors",
                    *, component: str | None = None, revision: str | None = None) -> HubFiles:
    """The files of a diffusers-format AudioLDM repo as a :class:`~models.weights.HubFiles` entry:
    :data:`CONFIG_FILES` plus the four components' weights in ``weights_format`` (one of
    :data:`WEIGHT_FORMATS`); ``weights_format=None``: the configs alone; ``component``: that
    component's weights file alone. :func:`resolve_diffusers` resolves these entries, each component's
    weights in whichever format the repo has."""
    if weights_format is not None and weights_format not in WEIGHT_FORMATS:
        raise ValueError(f"weights_format must be one of {', '.join(WEIGHT_FORMATS)}, got {weights_format!r}")
    if component is not None:
        if component not in COMPONENT_WEIGHTS or weights_format is None:
            raise ValueError(f"component must be one of {', '.join(COMPONENT_WEIGHTS)}, with a weights_format")
        return HubFiles(repo_id=repo_id, patterns=(COMPONENT_WEIGHTS[component][weights_format],), revision=revision)
    weights = () if weights_format is None else tuple(w[weights_format] for w in COMPONENT_WEIGHTS.values())
    return HubFiles(repo_id=repo_id, patterns=CONFIG_FILES + weights, revision=revision)


def _check_repo_id(repo_id) -> str:
    if not isinstance(repo_id, str) or not _REPO_ID.match(repo_id) or ".." in repo_id or "--" in repo_id:
        raise WeightsUnavailable(
            f"{repo_id!r} is not a Hugging Face repo id of the form <org>/<name> "
            f"(for example {DIFFUSERS_DEFAULT_REPO})")
    return repo_id


def resolve_diffusers(repo_id: str = DIFFUSERS_DEFAULT_REPO, mode: str = "auto", *,
                      cache_dir: str | None = None, local_dir: str | None = None,
                      revision: str | None = None) -> ResolvedWeights:
    """:func:`models.weights.resolve` for a diffusers AudioLDM repo: its configs, then each component's
    weights as ``.safetensors``, else ``.bin``; a repo whose ``model_index.json`` is not an
    ``AudioLDMPipeline`` is refused. ``pretrained``: the repo's folder or WeightsUnavailable (a message
    safe to show users); ``auto``: the folder when everything is already on this machine, else tiny
    with a warning (never downloads); ``tiny``: no files."""
    if mode not in WEIGHTS_MODES:
        raise ValueError(f"unknown weights mode {mode!r}; expected one of {', '.join(WEIGHTS_MODES)}")
    if mode == "tiny":
        return ResolvedWeights("tiny", None, TINY_NOTE)
    if mode == "pretrained":
        return _resolve_parts(repo_id, lambda files: resolve(files, "pretrained", cache_dir=cache_dir,
                                                             local_dir=local_dir), revision)
    try:
        return _resolve_parts(repo_id, lambda files: find_local(files, cache_dir=cache_dir, local_dir=local_dir),
                              revision)
    except WeightsUnavailable as exc:
        reason = str(exc)
        if reason.startswith(f"{repo_id}: "):
            reason = reason[len(repo_id) + 2:]
        note = f"official weights for {repo_id} not present; serving tiny random weights ({reason})"
        logging.getLogger("amphion.weights").warning("%s", note)
        return ResolvedWeights("tiny", None, note)


def download_diffusers(repo_id: str = DIFFUSERS_DEFAULT_REPO, *, cache_dir: str | None = None,
                       progress: bool = True, revision: str | None = None) -> Path:
    """Fetch ``repo_id``'s files into the Hugging Face cache (each component's ``.safetensors``, else its
    ``.bin``); the snapshot folder, or WeightsUnavailable."""
    found = _resolve_parts(repo_id, lambda files: ResolvedWeights(
        "pretrained", download(files, cache_dir=cache_dir, progress=progress), f"{repo_id} (downloaded snapshot)"),
        revision)
    assert found.root is not None
    return found.root


def _resolve_parts(repo_id, look: Callable[[HubFiles], ResolvedWeights], revision) -> ResolvedWeights:
    """``look`` up the configs, then every component's weights in the first format present; one folder."""
    _check_repo_id(repo_id)
    configs = look(diffusers_files(repo_id, None, revision=revision))
    assert configs.root is not None
    _check_model_index(configs.root, repo_id)
    absent: list[str] = []
    for component, files in COMPONENT_WEIGHTS.items():
        errors: list[WeightsUnavailable] = []
        for fmt in WEIGHT_FORMATS:
            try:
                found = look(diffusers_files(repo_id, fmt, component=component, revision=revision))
            except WeightsUnavailable as exc:
                errors.append(exc)
                continue
            if found.root != configs.root:  # the repo moved on between two look-ups
                raise WeightsUnavailable(f"{repo_id}: the repository changed while its files were looked up; "
                                         "try again")
            break
        else:
            if not all("no file matches" in str(e) for e in errors):  # not a missing file: the hub, the network
                raise next(e for e in errors if "no file matches" not in str(e))
            absent.append(f"{component} (neither {' nor '.join(repr(files[fmt]) for fmt in WEIGHT_FORMATS)})")
    if absent:
        hint = "" if configs.root is None or "folder given by" in configs.note else \
            "; run scripts/download_weights.py where the hub is reachable"
        raise WeightsUnavailable(f"{repo_id}: weights missing for {', '.join(absent)}; the rest found: "
                                 f"{configs.note}{hint}")
    return configs


def _check_model_index(root: Path, repo_id: str) -> None:
    try:
        index = json.loads((root / "model_index.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise WeightsUnavailable(f"{repo_id}: model_index.json cannot be read ({type(exc).__name__})") from None
    name = index.get("_class_name") if isinstance(index, dict) else None
    if name != "AudioLDMPipeline":
        raise WeightsUnavailable(
            f"{repo_id}: not a diffusers AudioLDM repository (model_index.json names {name!r}, expected "
            "'AudioLDMPipeline'; AudioLDM 2 and other pipelines are not served here)")


# ----------------------------------------------------------------------------------------------------
# the tiny profile

#: Tiny tokenizer's longest input, also the tiny CLAP's projection size (the real ones: both 512; the
#: pipeline pads a negative prompt to the projection size, so they are kept equal).
TINY_MAX_TOKENS = 32
# Words whose left-to-right merges the tiny BPE vocabulary holds (any other text falls back to bytes).
_TINY_WORDS = ("dog", "bark", "barking", "the", "a", "in", "park", "rain", "music", "bird", "car",
               "engine", "water", "wind", "people", "talking")


def _tiny_tokenizer(model_max_length: int = TINY_MAX_TOKENS):
    """A byte-level BPE RoBERTa tokenizer built in memory: RoBERTa's special tokens, the 256 byte
    symbols and the merges that spell :data:`_TINY_WORDS` (with and without a leading space)."""
    from tokenizers import pre_tokenizers
    from transformers import RobertaTokenizer

    vocab: dict[str, int] = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
    for symbol in sorted(pre_tokenizers.ByteLevel.alphabet()):
        vocab[symbol] = len(vocab)
    merges: list[tuple[str, str]] = []
    space = "\u0120"  # the byte-level symbol of " "
    for word in _TINY_WORDS:
        for spelled in (word, space + word):
            left = spelled[0]
            for ch in spelled[1:]:
                if (left, ch) not in merges:
                    merges.append((left, ch))
                left += ch
                vocab.setdefault(left, len(vocab))
    vocab["<mask>"] = len(vocab)
    return RobertaTokenizer(vocab=vocab, merges=merges, model_max_length=model_max_length)


def build_tiny_pipeline(seed: int = 0):
    """An ``AudioLDMPipeline`` with AudioLDM's architecture in small (CLAP text branch, a 3-level UNet
    with class-embedding conditioning, a 4x VAE over 64 mel bins, a HiFi-GAN with AudioLDM's hop of 160
    at 16 kHz, AudioLDM's DDIM schedule) and weights drawn from ``seed`` (the global RNG is left as it
    was). Built in memory: nothing is read or downloaded."""
    from diffusers import AudioLDMPipeline, AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import ClapTextConfig, ClapTextModelWithProjection, SpeechT5HifiGan, SpeechT5HifiGanConfig

    tokenizer = _tiny_tokenizer()
    projection_dim = TINY_MAX_TOKENS
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        text_encoder = ClapTextModelWithProjection(ClapTextConfig(
            vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
            intermediate_size=64, max_position_embeddings=TINY_MAX_TOKENS + 2, projection_dim=projection_dim,
            pad_token_id=1, bos_token_id=0, eos_token_id=2, layer_norm_eps=1e-5))
        unet = UNet2DConditionModel(
            sample_size=32, in_channels=8, out_channels=8, layers_per_block=1,
            block_out_channels=(16, 32, 32), cross_attention_dim=(16, 32, 32), attention_head_dim=8,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
            norm_num_groups=8, class_embed_type="simple_projection",
            projection_class_embeddings_input_dim=projection_dim, class_embeddings_concat=True)
        vae = AutoencoderKL(
            in_channels=1, out_channels=1, latent_channels=8, block_out_channels=(8, 16, 16),
            down_block_types=("DownEncoderBlock2D",) * 3, up_block_types=("UpDecoderBlock2D",) * 3,
            layers_per_block=1, norm_num_groups=4, sample_size=128, scaling_factor=0.94)
        vocoder = SpeechT5HifiGan(SpeechT5HifiGanConfig(
            model_in_dim=64, sampling_rate=16000, upsample_initial_channel=64,
            upsample_rates=[5, 4, 2, 2, 2], upsample_kernel_sizes=[16, 16, 8, 4, 4],
            resblock_kernel_sizes=[3, 7], resblock_dilation_sizes=[[1, 3, 5], [1, 3, 5]],
            normalize_before=False, initializer_range=0.12))  # audible, unclipped: peaks near 0.4
    scheduler = DDIMScheduler(num_train_timesteps=1000, beta_start=0.0015, beta_end=0.0195,
                              beta_schedule="scaled_linear", clip_sample=False, set_alpha_to_one=False,
                              steps_offset=1, prediction_type="epsilon")
    pipe = AudioLDMPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                            scheduler=scheduler, vocoder=vocoder)
    pipe.set_progress_bar_config(disable=True)
    return pipe


# ----------------------------------------------------------------------------------------------------
# the model


@dataclass
class _Item:
    """One prompt of a :meth:`DiffusersAudioLDM.generate` call, checked."""

    text: str
    negative: str
    guidance: float
    seed: int
    samples: int
    frames: int

    @property
    def cfg(self) -> bool:
        return self.guidance > 1.0  # as the pipeline: guidance_scale <= 1 runs the text branch only


def _per_item(value, n: int, name: str) -> list:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        return [value] * n
    value = list(value)
    if len(value) != n:
        raise AudioLDMInputError(f"{name}: got {len(value)} values for {n} prompts")
    return value


def _text(value, name: str, *, allow_empty: bool) -> str:
    """``value`` unchanged (the pipeline encodes the text as given), once checked."""
    if not isinstance(value, str):
        raise AudioLDMInputError(f"{name} must be a string, got {type(value).__name__}")
    if not value.strip() and not allow_empty:
        raise AudioLDMInputError(f"{name} is empty: describe the audio to generate")
    if len(value) > MAX_TEXT_CHARS:
        raise AudioLDMInputError(f"{name} is {len(value)} characters long; at most {MAX_TEXT_CHARS} are accepted")
    return value


class DiffusersAudioLDM:
    """Text to 16 kHz audio with a diffusers-format AudioLDM. Build it with :meth:`from_weights`."""

    def __init__(self, pipe, *, repo_id: str = DIFFUSERS_DEFAULT_REPO, kind: str = "pretrained",
                 note: str = "", device: str | torch.device = "cpu", dtype: torch.dtype | None = None):
        self.device = torch.device(device)
        self.dtype = dtype or torch.float32
        self.repo_id = repo_id
        self.weights_kind = kind
        self.note = note or repo_id
        self.pipe = pipe
        pipe.set_progress_bar_config(disable=True)
        # The text encoder and the UNet (every step) in ``dtype``; the VAE decoder and the vocoder run once
        # per request and stay float32, as the house's vocoders do.
        self.text_encoder = _placed(pipe.text_encoder, self.device, self.dtype)
        self.unet = _placed(pipe.unet, self.device, self.dtype)
        self.vae = _placed(pipe.vae, self.device, torch.float32)
        self.vocoder = _placed(pipe.vocoder, self.device, torch.float32)
        self.tokenizer = pipe.tokenizer
        self.scheduler = pipe.scheduler
        # a fast tokenizer's padding/truncation settings live in one Rust object: concurrent calls collide
        self._tokenizer_lock = threading.Lock()
        self._check_layout()

    # -- construction ---------------------------------------------------------------------------------

    @classmethod
    def from_weights(cls, repo_id: str = DIFFUSERS_DEFAULT_REPO, mode: str = "auto", *,
                     device: str | torch.device = "cpu", dtype: torch.dtype | str | None = None,
                     cache_dir: str | None = None, local_dir: str | None = None, seed: int = 0
                     ) -> "DiffusersAudioLDM":
        """Resolve ``repo_id`` for ``mode`` (:func:`resolve_diffusers`) and build the model on ``device``.
        ``dtype``: the text encoder's and UNet's (None / ``"auto"``: float16 on CUDA, float32 elsewhere; a
        ``torch.dtype`` or its name). ``seed``: the tiny weights'. WeightsUnavailable (a message safe to
        show users) when pretrained weights cannot be had or loaded."""
        device = torch.device(device)
        dtype = _dtype(dtype, device)
        resolved = resolve_diffusers(repo_id, mode, cache_dir=cache_dir, local_dir=local_dir)
        if not resolved.pretrained:
            return cls(build_tiny_pipeline(seed), repo_id=str(repo_id), kind="tiny", note=resolved.note,
                       device=device, dtype=dtype)
        pipe = _load_pipeline(resolved.root, repo_id, dtype)
        try:
            return cls(pipe, repo_id=repo_id, kind="pretrained", note=resolved.note, device=device, dtype=dtype)
        except ValueError as exc:  # an AudioLDM layout this loop cannot run (see _check_layout)
            raise WeightsUnavailable(f"{repo_id}: {exc}") from None

    def save_pretrained(self, path, *, safe_serialization: bool = True) -> None:
        """Write the pipeline in the diffusers layout (what :meth:`from_weights` reads back)."""
        self.pipe.save_pretrained(path, safe_serialization=safe_serialization)

    # -- facts ------------------------------------------------------------------------------------------

    @property
    def sample_rate(self) -> int:
        return int(self.vocoder.config.sampling_rate)

    @property
    def hop_length(self) -> int:
        """Audio samples per mel frame (the vocoder's total upsampling: 160 for AudioLDM)."""
        return int(np.prod(self.vocoder.config.upsample_rates))

    @property
    def vae_scale_factor(self) -> int:
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def mel_bins(self) -> int:
        return int(self.vocoder.config.model_in_dim)

    @property
    def max_text_tokens(self) -> int:
        """Tokens of a prompt the text encoder sees (longer prompts are cut, as the pipeline does)."""
        positions = int(self.text_encoder.config.max_position_embeddings) - 2  # RoBERTa's offset
        return max(1, min(int(self.tokenizer.model_max_length), positions))

    @property
    def max_inference_steps(self) -> int:
        return min(MAX_INFERENCE_STEPS, int(self.scheduler.config.num_train_timesteps))

    @property
    def license(self) -> str | None:
        return weights_license(self.repo_id) if self.weights_kind == "pretrained" else None

    def describe(self) -> dict:
        """What the health endpoint may show (no server paths)."""
        return {"repo_id": self.repo_id, "weights": self.weights_kind, "note": self.note, "license": self.license,
                "sample_rate": self.sample_rate, "device": str(self.device),
                "dtype": str(self.dtype).replace("torch.", ""), "scheduler": type(self.scheduler).__name__}

    def num_samples(self, audio_length_in_s: float) -> int:
        """Samples of the answer: ``round(audio_length_in_s * sample_rate)``."""
        return int(round(float(audio_length_in_s) * self.sample_rate))

    def mel_frames(self, audio_length_in_s: float) -> int:
        """Mel frames generated for ``audio_length_in_s``: enough for every sample
        (``ceil(samples / hop)``), rounded up to a multiple of the VAE's downsampling."""
        need = math.ceil(self.num_samples(audio_length_in_s) / self.hop_length)
        r = self.vae_scale_factor
        return max(r, math.ceil(need / r) * r)

    # -- generation -------------------------------------------------------------------------------------

    @torch.inference_mode()
    def generate(self, texts: str | Sequence[str], *,
                 audio_length_in_s: float | Sequence[float] = DEFAULT_AUDIO_LENGTH_S,
                 num_inference_steps: int = DEFAULT_NUM_INFERENCE_STEPS,
                 guidance_scale: float | None | Sequence[float | None] = None,
                 negative_prompt: str | None | Sequence[str | None] = None,
                 seed: int | None | Sequence[int | None] = None,
                 on_step: Callable[[int, int], None] | None = None) -> np.ndarray | list[np.ndarray]:
        """Audio for one prompt (a float32 array) or several (a list of them, in order), 16 kHz mono,
        each exactly ``round(audio_length_in_s * 16000)`` samples.

        ``audio_length_in_s``, ``guidance_scale``, ``negative_prompt`` and ``seed`` are one value for
        every prompt or one per prompt; ``num_inference_steps`` is shared (one denoising loop). An item's
        audio depends only on its own text, length, guidance, negative prompt and seed, never on what
        else is in the call; ``seed`` None draws a fresh one. ``on_step(step, total)`` after each step.
        AudioLDMInputError for a request that cannot be served as given."""
        items, steps = self._items(texts, audio_length_in_s, guidance_scale, negative_prompt, seed,
                                   num_inference_steps)
        waves = self._run(items, steps, on_step)
        return waves[0] if isinstance(texts, str) else waves

    def _items(self, texts, lengths, guidance, negatives, seeds, steps) -> tuple[list[_Item], int]:
        E = AudioLDMInputError
        if isinstance(texts, str):
            texts = [texts]
        elif not isinstance(texts, Sequence) or isinstance(texts, bytes):
            raise E(f"text must be a string or a list of strings, got {type(texts).__name__}")
        texts = list(texts)
        if not texts:
            raise E("no text given")
        n = len(texts)
        steps = checks.integer(steps, "num_inference_steps", E, 1, self.max_inference_steps)
        low, high = AUDIO_LENGTH_RANGE_S
        items = []
        for text, length, g, neg, s in zip(texts, _per_item(lengths, n, "audio_length_in_s"),
                                           _per_item(guidance, n, "guidance_scale"),
                                           _per_item(negatives, n, "negative_prompt"), _per_item(seeds, n, "seed")):
            length = checks.finite(length, "audio_length_in_s", E, positive=True, below=high)
            if length < low:
                raise E(f"audio_length_in_s must be at least {low:g}, got {length:g}")
            g = DEFAULT_GUIDANCE_SCALE if g is None else checks.finite(g, "guidance_scale", E, below=MAX_GUIDANCE_SCALE)
            neg = "" if neg is None else _text(neg, "negative_prompt", allow_empty=True)
            s = checks.seed(s, E)
            items.append(_Item(text=_text(text, "text", allow_empty=False), negative=neg, guidance=g,
                               seed=secrets.randbits(63) if s is None else s,
                               samples=self.num_samples(length), frames=self.mel_frames(length)))
        return items, steps

    def _embed(self, text: str) -> torch.Tensor:
        """CLAP's normalised text embedding ``[1, D]`` of one string, as the pipeline computes it (padded
        to the tokenizer's maximum length, so that it never depends on other prompts)."""
        length = self.max_text_tokens
        with self._tokenizer_lock:
            tokens = self.tokenizer(text, padding="max_length", max_length=length, truncation=True,
                                    return_tensors="pt")
            full = len(self.tokenizer(text)["input_ids"])
        if full > length:
            logger.warning("prompt cut to its first %d tokens (CLAP's limit): %.60r...", length, text)
        out = self.text_encoder(tokens.input_ids.to(self.device),
                                attention_mask=tokens.attention_mask.to(self.device)).text_embeds
        return F.normalize(out, dim=-1).to(self.dtype)

    def _run(self, items: list[_Item], steps: int, on_step) -> list[np.ndarray]:
        cache: dict[str, torch.Tensor] = {}

        def embed(text: str) -> torch.Tensor:
            if text not in cache:
                cache[text] = self._embed(text)
            return cache[text]

        cond = [embed(it.text) for it in items]
        uncond = [embed(it.negative) if it.cfg else None for it in items]

        template = copy.deepcopy(self.scheduler)
        template.set_timesteps(steps, device=self.device)
        timesteps = template.timesteps
        step_params = set(inspect.signature(template.step).parameters)
        schedulers, latents, generators = [], [], []
        channels = int(self.unet.config.in_channels)
        width = self.mel_bins // self.vae_scale_factor
        for it in items:
            gen = torch.Generator(device=self.device).manual_seed(it.seed)
            shape = (1, channels, it.frames // self.vae_scale_factor, width)
            noise = torch.randn(shape, generator=gen, device=self.device, dtype=torch.float32)
            sched = copy.deepcopy(template)
            schedulers.append(sched)
            latents.append(noise * sched.init_noise_sigma)
            generators.append(gen)

        # prompts of the same length share the UNet's batch; every other operation is per prompt
        groups: dict[int, list[int]] = {}
        for i, it in enumerate(items):
            groups.setdefault(it.frames, []).append(i)

        total = len(timesteps)
        for k, t in enumerate(timesteps):
            for members in groups.values():
                scaled = {i: schedulers[i].scale_model_input(latents[i], t) for i in members}
                guided = [i for i in members if items[i].cfg]
                sample = torch.cat([scaled[i] for i in guided] + [scaled[i] for i in members])
                labels = torch.cat([uncond[i] for i in guided] + [cond[i] for i in members])
                out = self.unet(sample.to(self.dtype), t, encoder_hidden_states=None,
                                class_labels=labels).sample.float()
                uncond_out = dict(zip(guided, out[: len(guided)].split(1)))
                for i, eps in zip(members, out[len(guided):].split(1)):
                    if items[i].cfg:
                        eps = uncond_out[i] + items[i].guidance * (eps - uncond_out[i])
                    kwargs = {}
                    if "eta" in step_params:
                        kwargs["eta"] = 0.0
                    if "generator" in step_params:
                        kwargs["generator"] = generators[i]
                    latents[i] = schedulers[i].step(eps, t, latents[i], **kwargs).prev_sample
            if on_step is not None:
                on_step(k + 1, total)

        return [self._decode(latents[i], items[i].samples) for i in range(len(items))]

    def _decode(self, latents: torch.Tensor, samples: int) -> np.ndarray:
        mel = self.vae.decode(1 / self.vae.config.scaling_factor * latents).sample  # [1, 1, frames, bins]
        wave = self.vocoder(mel.squeeze(1)).reshape(-1).float()
        if wave.numel() < samples:  # never with AudioLDM's vocoder (frames * hop >= samples): defensive
            wave = F.pad(wave, (0, samples - wave.numel()))
        return np.ascontiguousarray(wave[:samples].cpu().numpy(), dtype=np.float32)

    def _check_layout(self) -> None:
        """The components fit together as AudioLDM's do (a foreign repo otherwise fails mid-request)."""
        r = self.vae_scale_factor
        if self.mel_bins % r:
            raise ValueError(f"the vocoder's {self.mel_bins} mel bins are not divisible by the VAE's factor {r}")
        if int(self.unet.config.in_channels) != int(self.vae.config.latent_channels):
            raise ValueError("the UNet's input channels differ from the VAE's latent channels")
        if self.unet.config.class_embed_type != "simple_projection":
            raise ValueError("the UNet is not conditioned on a CLAP embedding (class_embed_type simple_projection)")


def _dtype(dtype, device: torch.device) -> torch.dtype:
    if dtype is None or dtype == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    if isinstance(dtype, str) and dtype in ("float32", "float16", "bfloat16"):
        return getattr(torch, dtype)
    raise ValueError(f"dtype must be auto, float32, float16 or bfloat16, got {dtype!r}")


def _placed(module: torch.nn.Module, device: torch.device, dtype: torch.dtype) -> torch.nn.Module:
    current = next(module.parameters())
    if current.dtype != dtype:
        module = module.to(dtype=dtype)
    if current.device != device:
        module = module.to(device)
    return module.eval()


def _load_pipeline(root: Path | None, repo_id: str, dtype: torch.dtype):
    from diffusers import AudioLDMPipeline

    # read straight into the dtypes they run in (no float32 copy of the UNet on the way)
    dtypes = {"unet": dtype, "text_encoder": dtype, "default": torch.float32}
    try:
        pipe = AudioLDMPipeline.from_pretrained(str(root), dtype=dtypes, local_files_only=True,
                                                low_cpu_mem_usage=False)
    except Exception as exc:  # noqa: BLE001 - any reading error: these weights cannot be served
        logger.warning("loading %s failed", repo_id, exc_info=exc)
        raise WeightsUnavailable(
            f"{repo_id}: the files could not be loaded as an AudioLDM pipeline ({type(exc).__name__}); "
            "check that the folder is a complete diffusers-format AudioLDM repository") from None
    return pipe
