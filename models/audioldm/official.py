"""Where the official files of Amphion's text-to-audio model live (:data:`OFFICIAL`, for
``models.weights.resolve`` / ``resolve_parts`` / ``download``), and which entries each part of the
pipeline needs (:data:`PART_FILES`). The table with sizes and licences: ``models/audioldm/README.md``.

``amphion/text_to_audio`` (MIT) holds checkpoints only (no configs: the UNet / VAE sizes are
Amphion's ``egs/tta/audioldm/exp_config.json``, written out in :mod:`models.audioldm.configs`); the
text encoder is ``google-t5/t5-base`` (Apache-2.0), which the reference loads as ``"t5-base"``.
"""

from __future__ import annotations

from models.weights import HubFiles

__all__ = [
    "OFFICIAL",
    "PARTS",
    "PART_FILES",
    "T5_CONFIG_FILE",
    "T5_REPO_ID",
    "T5_TOKENIZER_FILE",
    "T5_WEIGHTS_FILE",
    "TTA_REPO_ID",
    "UNET_FILE",
    "VAE_FILE",
    "VOCODER_CONFIG_FILE",
    "VOCODER_FILE",
]

TTA_REPO_ID = "amphion/text_to_audio"
#: The AudioLDM UNet trained on the 4 x 5 x 39 latent (``egs/tta/audioldm/exp_config.json``).
UNET_FILE = "tta/audioldm_debug_latent_size_4_5_39/checkpoints/step-0570000_loss-0.2521.pt"
#: Its VAE (the exp_config's ``autoencoder_path``).
VAE_FILE = "tta/autoencoder_kl_debug/checkpoints/step-0445000_loss-0.3306.pt"
#: jik876 HiFi-GAN V1 at 16 kHz (``{"generator": state_dict}``) and its flat config.
VOCODER_FILE = "tta/hifigan_checkpoints/g_01250000"
VOCODER_CONFIG_FILE = "tta/hifigan_checkpoints/config.json"

T5_REPO_ID = "google-t5/t5-base"
T5_CONFIG_FILE = "config.json"
T5_WEIGHTS_FILE = "model.safetensors"
T5_TOKENIZER_FILE = "tokenizer.json"

#: One entry per separately downloadable component.
OFFICIAL: dict[str, HubFiles] = {
    "unet": HubFiles(repo_id=TTA_REPO_ID, patterns=(UNET_FILE,)),
    "vae": HubFiles(repo_id=TTA_REPO_ID, patterns=(VAE_FILE,)),
    "vocoder": HubFiles(repo_id=TTA_REPO_ID, patterns=(VOCODER_CONFIG_FILE, VOCODER_FILE)),
    "text_encoder": HubFiles(repo_id=T5_REPO_ID, patterns=(T5_CONFIG_FILE, T5_WEIGHTS_FILE, T5_TOKENIZER_FILE)),
}

#: The pipeline's parts and the :data:`OFFICIAL` entries each needs (all of them go together).
PART_FILES: dict[str, tuple[str, ...]] = {
    "text_encoder": ("text_encoder",),
    "unet": ("unet",),
    "vae": ("vae",),
    "vocoder": ("vocoder",),
}
PARTS: tuple[str, ...] = tuple(PART_FILES)
