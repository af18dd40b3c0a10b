"""Where the official vocoder files live (consumed by ``models.weights.resolve``).

Patterns are fnmatch-style, relative to the repo root, and each must match at least one file; only
matching files are downloaded, so they name the generator and its config and nothing else (the
repos also hold discriminator / optimizer states of several hundred MB to GB).
"""

from __future__ import annotations

from models.weights import HubFiles

# Accelerate names the first prepared model (Amphion's generator) ``pytorch_model.bin``, or
# ``model.safetensors`` with safe serialisation. ``*model.*`` matches exactly those two and not the
# discriminators (``pytorch_model_1.bin``, ``model_1.safetensors``, ...).
_ACCELERATE_GENERATOR = "checkpoint/*/*model.*"

OFFICIAL: dict[str, HubFiles] = {
    # NVIDIA BigVGAN v2, 24 kHz / 100 mels / hop 256 (112 M parameters, MIT).
    "bigvgan": HubFiles(
        repo_id="nvidia/bigvgan_v2_24khz_100band_256x",
        patterns=("config.json", "bigvgan_generator.pt"),
    ),
    # Amphion's speech HiFi-GAN (685 h of LibriTTS, VCTK, LJSpeech; MIT): everything in hifigan_speech/.
    "hifigan": HubFiles(
        repo_id="amphion/hifigan_speech_bigdata",
        patterns=("hifigan_speech/args.json", f"hifigan_speech/{_ACCELERATE_GENERATOR}"),
    ),
    # No official NSF-HiFiGAN release: a local Amphion experiment folder (args.json + checkpoint/).
    "nsf_hifigan": HubFiles(
        repo_id=None,
        local_dir_env="AMPHION_NSF_HIFIGAN_DIR",
        patterns=("args.json", _ACCELERATE_GENERATOR),
    ),
}
