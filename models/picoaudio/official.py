"""Where PicoAudio's official files live (:data:`OFFICIAL_FILES`, for ``models.weights.resolve``).

The trained weights are published in the Hugging Face **Space** ``amphion/PicoAudio`` (the demo
of PicoAudio's authors; the model repo ``ZeyuXie/PicoAudio`` holds only code and metadata):

* ``ckpts/pico_model/diffusion.pt``: the UNet (``unet.*``, plus an unused ``class_emb.weight``);
* ``ckpts/ldm/pytorch_model_vae.bin`` + ``ckpts/ldm/vae_config.json``: AudioLDM-s-full's VAE with
  its HiFi-GAN (``vocoder.*``) and the VAE's arguments (``scale_factor`` included);
* ``ckpts/laion_clap/630k-audioset-best.pt``: LAION-CLAP (only its text tower is used).

Not in the Space: the UNet configuration (PicoAudio's ``utils/configs/frequency.json``, written
out in :mod:`models.picoaudio.configs`), the scheduler (Stable Diffusion 2.1's, likewise) and the
RoBERTa tokenizer that ``laion_clap`` loads from ``roberta-base`` (:data:`TOKENIZER_REPO`).

A Space is not a model repo: its files are fetched and found in the cache with ``repo_type="space"``
(:data:`PICOAUDIO_REPO_TYPE`); a folder laid out like the Space works too: ``$AMPHION_PICOAUDIO_DIR``
or ``$AMPHION_WEIGHTS_DIR/amphion/PicoAudio`` (README).
"""

from __future__ import annotations

from models.weights import HubFiles

__all__ = [
    "CLAP_FILE",
    "DIFFUSION_FILE",
    "LOCAL_DIR_ENV",
    "OFFICIAL_FILES",
    "PARTS",
    "PICOAUDIO_REPO",
    "PICOAUDIO_REPO_TYPE",
    "TOKENIZER_FILES",
    "TOKENIZER_REPO",
    "VAE_CONFIG_FILE",
    "VAE_FILE",
]

PICOAUDIO_REPO = "amphion/PicoAudio"
PICOAUDIO_REPO_TYPE = "space"
LOCAL_DIR_ENV = "AMPHION_PICOAUDIO_DIR"

DIFFUSION_FILE = "ckpts/pico_model/diffusion.pt"
VAE_FILE = "ckpts/ldm/pytorch_model_vae.bin"
VAE_CONFIG_FILE = "ckpts/ldm/vae_config.json"
CLAP_FILE = "ckpts/laion_clap/630k-audioset-best.pt"

TOKENIZER_REPO = "FacebookAI/roberta-base"
TOKENIZER_FILES = ("vocab.json", "merges.txt")

OFFICIAL_FILES: dict[str, HubFiles] = {
    "picoaudio": HubFiles(repo_id=PICOAUDIO_REPO, patterns=(DIFFUSION_FILE, VAE_FILE, VAE_CONFIG_FILE, CLAP_FILE),
                          local_dir_env=LOCAL_DIR_ENV, repo_type=PICOAUDIO_REPO_TYPE),
    "tokenizer": HubFiles(repo_id=TOKENIZER_REPO, patterns=TOKENIZER_FILES,
                          local_dir_env="AMPHION_PICOAUDIO_TOKENIZER_DIR"),
}

#: The pipeline is one part (one deployment) made of both entries: resolved together, never mixed.
PARTS: dict[str, tuple[str, ...]] = {"picoaudio": ("picoaudio", "tokenizer")}
