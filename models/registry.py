"""Every model the API promises: its name, task, routes and output rate.

The ingress reads this table to build health entries and 503 details. Which models are built, and
the deployments that serve them, is declared by the families in ``deployments/`` (each ``FAMILY``;
``deployments.topology.entry_for``). Nothing in this module imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ModelInfo:
    key: str                      # stable id used in /api/health and logs
    display_name: str             # what users read in details and docs
    task: str                     # tts | vc | se | tse | svc | tta | codec | vocoder
    routes: tuple[str, ...]       # API paths served by this model
    sample_rate: int | None = None      # native output rate, where the model makes audio
    notes: str = ""


_MODELS: tuple[ModelInfo, ...] = (
    # Text to speech
    ModelInfo("maskgct", "MaskGCT", "tts", ("/api/tts/maskgct",), sample_rate=24000,
              notes="MaskGCT zero-shot TTS: w2v-bert-2.0 semantic prompt, T2S, S2A, acoustic codec; "
                    "Whisper transcribes prompts sent without reference_text"),
    ModelInfo("vevo_tts", "Vevo TTS", "tts", ("/api/tts/vevo",),
              sample_rate=24000, notes="Vevo TTS: phones -> AR PhoneToVq8192 -> flow matching -> Vocos"),
    ModelInfo("metis", "Metis", "tts", ("/api/tts/metis",), sample_rate=24000,
              notes="Metis TTS: MaskGCT's T2S with Metis' length rule, S2A with Metis' settings; built-in default voice"),
    ModelInfo("dualcodec_valle", "DualCodec-VALL-E", "tts", ("/api/tts/dualcodec-valle",), sample_rate=24000,
              notes="Llama AR + 7-layer NAR over DualCodec 12hz_v1 codes; Whisper tiktoken text front end"),
    # Voice conversion
    ModelInfo("noro", "Noro", "vc", ("/api/vc/noro",), sample_rate=16000,
              notes="Noro one-shot VC: HuBERT-base L9 + k-means content, WORLD F0, reference encoder + VP-SDE WaveNet "
                    "diffusion to a 16 kHz mel, the user's 16 kHz BigVGAN; user-supplied weights ($AMPHION_NORO_DIR); "
                    "one request at a time per replica"),
    ModelInfo("vevo_timbre", "Vevo timbre conversion", "vc", ("/api/vc/vevo-timbre",),
              sample_rate=24000,
              notes="Vevo flow matching with the reference's timbre"),
    ModelInfo("vevo_style", "Vevo style conversion", "vc", ("/api/vc/vevo-style",),
              sample_rate=24000,
              notes="Vevo AR with the reference's style; the source's timbre"),
    ModelInfo("vevo_voice", "Vevo voice conversion", "vc", ("/api/vc/vevo-voice",),
              sample_rate=24000,
              notes="Vevo AR (style) and flow matching (timbre) from the reference"),
    ModelInfo("metis_vc", "Metis voice conversion", "vc", ("/api/vc/metis",), sample_rate=24000,
              notes="Metis VC (extension): LoRA-merged stage 1 with the condition adapter, MaskGCT's S2A"),
    # Speech enhancement and target speaker extraction (Metis' extension tasks)
    ModelInfo("metis_se", "Metis speech enhancement", "se", ("/api/se/metis",), sample_rate=24000,
              notes="Metis SE: noisy speech in, clean speech out (no prompt)"),
    ModelInfo("metis_tse", "Metis target speaker extraction", "tse", ("/api/tse/metis",), sample_rate=24000,
              notes="Metis TSE: the enrolment speaker's speech out of a mixture"),
    # Singing voice conversion
    ModelInfo("vevosing", "VevoSing", "svc", ("/api/svc/vevosing",),
              sample_rate=24000,
              notes="Vevo1.5: Whisper + chromagram Coco tokens, AR, flow matching, Vocos"),
    ModelInfo("diffcomosvc", "DiffComoSVC", "svc", ("/api/svc/diffcomosvc", "/api/svc/diffcomosvc/singers"),
              sample_rate=24000, notes="Conformer + EDM teacher / consistency student; a user's training run"),
    ModelInfo("transformersvc", "TransformerSVC", "svc",
              ("/api/svc/transformersvc", "/api/svc/transformersvc/singers"), sample_rate=24000,
              notes="ConditionEncoder + Conformer to a mel; a user's training run"),
    ModelInfo("vitssvc", "VitsSVC", "svc", ("/api/svc/vitssvc", "/api/svc/vitssvc/singers"), sample_rate=24000,
              notes="VITS prior + flow + NSF-HiFiGAN decoder; a user's training run"),
    ModelInfo("multiplecontentssvc", "MultipleContentsSVC", "svc",
              ("/api/svc/multiplecontentssvc", "/api/svc/multiplecontentssvc/singers"), sample_rate=24000,
              notes="Whisper + ContentVec + F0 + energy -> DiffWaveNet (PNDM) -> singing BigVGAN; "
                    "amphion/singing_voice_conversion vocalist_l1_contentvec+whisper"),
    # Text to audio
    ModelInfo("audioldm", "AudioLDM", "tta", ("/api/tta/audioldm",)),
    ModelInfo("picoaudio", "PicoAudio", "tta", ("/api/tta/picoaudio",)),
    # Codecs
    ModelInfo("dualcodec", "DualCodec", "codec",
              ("/api/codec/dualcodec/encode", "/api/codec/dualcodec/decode"),
              sample_rate=24000,
              notes="DualCodec 12hz_v1 and 25hz_v1; semantic features from the shared w2v-bert deployment"),
    ModelInfo("facodec", "FACodec", "codec",
              ("/api/codec/facodec/encode", "/api/codec/facodec/decode"),
              sample_rate=16000,
              notes="NaturalSpeech 3 FACodec: prosody, content, acoustic-detail codes and a timbre embedding"),
    # Vocoders: built. The generic route serves all three.
    ModelInfo("bigvgan", "BigVGAN", "vocoder", ("/api/vocoder/bigvgan", "/api/vocoder/generic"),
              sample_rate=24000,
              notes="NVIDIA BigVGAN v2, 24 kHz, 100 mel bands, 256x upsampling"),
    ModelInfo("hifigan", "HiFi-GAN", "vocoder", ("/api/vocoder/hifigan", "/api/vocoder/generic"),
              sample_rate=24000,
              notes="Amphion HiFi-GAN trained on speech, 24 kHz, 100 mel bands"),
    ModelInfo("nsf_hifigan", "NSF-HiFiGAN", "vocoder", ("/api/vocoder/generic",),
              sample_rate=24000,
              notes="Amphion NSF-HiFiGAN; F0 is extracted from the input audio"),
)

MODELS: dict[str, ModelInfo] = {m.key: m for m in _MODELS}


def get(key: str) -> ModelInfo:
    return MODELS[key]


def official_weights() -> dict:
    """Model key -> `models.weights.HubFiles` for every model whose loading code is built.

    Imported lazily: the file table lives next to each model's loading code.
    """
    from models.asr.whisper import WHISPER_FILES
    from models.audioldm.official import OFFICIAL as amphion_tta_files
    from models.picoaudio.official import OFFICIAL_FILES as picoaudio_files
    from models.dualcodec.official import OFFICIAL as dualcodec_files
    from models.facodec.official import FACODEC_HUB_FILES
    from models.maskgct.official import OFFICIAL_PIPELINE_FILES
    from models.metis.official import STAGE1_FILES as metis_files
    from models.noro.official import OFFICIAL_FILES as noro_files
    from models.svc.official import PIPELINE_FILES as svc_files
    from models.valle.official import OFFICIAL_FILES as valle_files
    from models.voices import VOICE_FILES
    from models.vevo.official import OFFICIAL_FILES as vevo_files
    from models.vevosing.official import OFFICIAL_FILES as vevosing_files
    from models.vocoders import OFFICIAL as vocoder_files

    return {**vocoder_files, **{f"maskgct/{name}": files for name, files in OFFICIAL_PIPELINE_FILES.items()},
            # Prompt transcripts for the TTS pipelines (requests without reference_text).
            "maskgct/asr": WHISPER_FILES,
            **{f"dualcodec/{name}": files for name, files in dualcodec_files.items()},
            "dualcodec/w2v_bert": OFFICIAL_PIPELINE_FILES["w2v_bert"],
            "facodec": FACODEC_HUB_FILES,
            # Metis runs on MaskGCT's parts: "metis" downloads them with its own stage-1 files.
            **{f"metis/maskgct_{name}": files for name, files in OFFICIAL_PIPELINE_FILES.items()},
            **{f"metis/{task}": files for task, files in metis_files.items() if task in ("vc", "se", "tse")},
            "metis/asr": WHISPER_FILES,
            "metis/voice": VOICE_FILES,
            **{f"dualcodec_valle/{name}": files for name, files in valle_files.items()},
            "dualcodec_valle/asr": WHISPER_FILES,
            **{f"vevo/{name}": files for name, files in vevo_files.items()},
            **{f"vevosing/{name}": files for name, files in vevosing_files.items()},
            # AudioLDM with model=amphion; the default diffusers repo downloads with
            # models.audioldm.diffusers_pipeline.download_diffusers (its weight formats vary per repo).
            **{f"audioldm/amphion_{name}": files for name, files in amphion_tta_files.items()},
            **{f"picoaudio/{name}": files for name, files in picoaudio_files.items()},
            # Noro: its own folder (no release) and HuBERT-base from the hub.
            **{f"noro/{name}": files for name, files in noro_files.items()},
            # MultipleContentsSVC (the one SVC recipe with a release) and what the four share.
            **{f"multiplecontentssvc/{name}": files for name, files in svc_files.items()}}
