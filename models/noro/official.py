"""Where Noro's files come from (:data:`OFFICIAL_FILES`, for ``models.weights.resolve``).

Noro's checkpoint is published only on Google Drive (the Amphion README's link), and its k-means
model and BigVGAN vocoder not at all: the user supplies them in one folder, ``$AMPHION_NORO_DIR``::

    model.safetensors            Noro_VCmodel's state dict (the release file, loaded strictly)
    kmeans.<ext>                 the k-means over HuBERT-base layer 9 (.joblib / .pkl / .bin, .npy,
                                 .safetensors or .pt; preprocess.kmeans_model_path in Amphion)
    vocoder/config.json          the 16 kHz / 80-band / hop-200 BigVGAN's NVIDIA-style config
    vocoder/bigvgan_generator.pt its generator ({"generator": state_dict}, NVIDIA's layout)
    args.json                    optional: Amphion's merged config; without it the recipe's values

HuBERT-base is public: ``facebook/hubert-base-ls960`` (``pytorch_model.bin``, a plain state dict of
tensors) from the hub, or a folder laid out like that repo (``$AMPHION_NORO_HUBERT_DIR``).
:func:`models.noro.hubert.load_hubert` also reads torchaudio's ``hubert_fairseq_base_ls960.pth``
when given that file directly.
"""

from __future__ import annotations

from models.weights import HubFiles

__all__ = [
    "CONFIG_FILE",
    "HUBERT_FILE",
    "HUBERT_REPO",
    "KMEANS_PATTERN",
    "MODEL_FILE",
    "NORO_DIR_ENV",
    "OFFICIAL_FILES",
    "PARTS",
    "VOCODER_DIR",
    "VOCODER_FILES",
]

NORO_DIR_ENV = "AMPHION_NORO_DIR"
HUBERT_DIR_ENV = "AMPHION_NORO_HUBERT_DIR"

MODEL_FILE = "model.safetensors"
KMEANS_PATTERN = "kmeans.*"
VOCODER_DIR = "vocoder"
VOCODER_FILES = (f"{VOCODER_DIR}/config.json", f"{VOCODER_DIR}/bigvgan_generator.pt")
CONFIG_FILE = "args.json"

HUBERT_REPO = "facebook/hubert-base-ls960"
HUBERT_FILE = "pytorch_model.bin"

OFFICIAL_FILES: dict[str, HubFiles] = {
    # No hub release: a local folder only (models.weights names the variable and the patterns when
    # something is missing, which the deployment turns into its 503).
    "noro": HubFiles(repo_id=None, patterns=(MODEL_FILE, KMEANS_PATTERN, *VOCODER_FILES), local_dir_env=NORO_DIR_ENV),
    "hubert": HubFiles(repo_id=HUBERT_REPO, patterns=(HUBERT_FILE,), local_dir_env=HUBERT_DIR_ENV),
}

#: Noro is served as one part made of both entries: resolved together, never mixed with tiny ones.
PARTS: dict[str, tuple[str, ...]] = {"noro": ("noro", "hubert")}
