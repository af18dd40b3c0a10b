"""Where DualCodec-VALL-E's official files live (for ``models.weights.resolve`` / ``download``).

The AR and NAR checkpoints (fp16) are in ``amphion/dualcodec-tts``; the text vocabulary is Whisper's
``multilingual.tiktoken`` (MIT), pinned at the ``openai/whisper`` release 20250625 commit and
SHA-256-checked (``models.pinned``). The codec (``amphion/dualcodec`` 12hz_v1) is DualCodec's own
entry (``models.dualcodec.official``).
"""

from __future__ import annotations

from models.pinned import PinnedFile, PinnedSource
from models.weights import HubFiles

__all__ = ["AR_FILE", "NAR_FILE", "OFFICIAL_FILES", "OFFICIAL_REPO_ID", "TEXT_VOCAB", "TEXT_VOCAB_ENV",
           "TEXT_VOCAB_FILE", "WHISPER_COMMIT"]

OFFICIAL_REPO_ID = "amphion/dualcodec-tts"
AR_FILE = "dualcodec_valle_ar_12hzv1.safetensors"
NAR_FILE = "dualcodec_valle_nar_12hzv1.safetensors"

TEXT_VOCAB_FILE = "multilingual.tiktoken"
#: openai/whisper "Release 20250625" (the tag v20250625).
WHISPER_COMMIT = "c0d2f624c09dc18e709e37c2ad90c039a4eb72a2"
#: A local folder holding ``multilingual.tiktoken`` (instead of the pinned download).
TEXT_VOCAB_ENV = "AMPHION_VALLE_TEXT_DIR"
TEXT_VOCAB = PinnedSource(
    "valle_whisper_vocab",
    {TEXT_VOCAB_FILE: PinnedFile("whisper/assets/multilingual.tiktoken",
                                 "b34b360dbb493e781e479794586d661700670d65564001f23024971d1f2fa126", 816730)},
    commit=WHISPER_COMMIT,
    url_template="https://github.com/openai/whisper/raw/{commit}/{path}",
    repository="openai/whisper",
)

OFFICIAL_FILES: dict[str, HubFiles] = {
    "ar": HubFiles(repo_id=OFFICIAL_REPO_ID, patterns=(AR_FILE,)),
    "nar": HubFiles(repo_id=OFFICIAL_REPO_ID, patterns=(NAR_FILE,)),
    "text_vocab": HubFiles(repo_id=None, patterns=(TEXT_VOCAB_FILE,), local_dir_env=TEXT_VOCAB_ENV, pinned=TEXT_VOCAB),
}
