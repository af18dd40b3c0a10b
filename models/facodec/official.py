"""Where the official FACodec weights live (for ``models.weights.resolve`` / ``download``).

Hugging Face ``amphion/naturalspeech3_facodec`` holds, among others, ``ns3_facodec_encoder.bin``
(16.9 MB) and ``ns3_facodec_decoder.bin`` (398 MB, of which about 250 MB are training-only heads the
loader skips): plain ``torch.save`` state dicts, no wrapper key, old-style weight norm
(``weight_g`` / ``weight_v``). Only those two are fetched: ``ns3_facodec_redecoder.bin`` and the
``*_v2.bin`` pair belong to other classes.
"""

from __future__ import annotations

from models.weights import HubFiles

__all__ = ["FACODEC_DECODER_FILE", "FACODEC_ENCODER_FILE", "FACODEC_HUB_FILES", "FACODEC_REPO_ID"]

FACODEC_REPO_ID = "amphion/naturalspeech3_facodec"
FACODEC_ENCODER_FILE = "ns3_facodec_encoder.bin"
FACODEC_DECODER_FILE = "ns3_facodec_decoder.bin"

FACODEC_HUB_FILES = HubFiles(
    repo_id=FACODEC_REPO_ID,
    patterns=(FACODEC_ENCODER_FILE, FACODEC_DECODER_FILE),
    local_dir_env="AMPHION_FACODEC_DIR",
)
