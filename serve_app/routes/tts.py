"""Text-to-speech routes: MaskGCT, Vevo, Metis and DualCodec-VALL-E."""

from __future__ import annotations

from typing import Literal, Optional

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile

from models.maskgct.orchestration import CFG, T2S_STEPS, T2S_TEMPERATURE
from models.metis.tasks import STAGE1_SETTINGS
from models.valle.ar import ARSampling
from models.vevo.orchestration import FM_STEPS
from models.voices import DEFAULT_VOICE
from serve_app.routes.common import (
    AUDIO_RESPONSES, RESPONSE_FORMAT_DOC, STREAM_DOC, SUBTYPES, ResponseFormat, ServerTiming, audio_model_route,
    audio_response, check_upload_sizes, entry_deployment, read_audio, reference_prompt_key, run_task, stream_speech,
    with_prompt_timing,
)
from serve_app.streaming import check_streamable
from serve_app.voices import VOICE_ERRORS, reference_from, voice_id_form

router = APIRouter(prefix="/api/tts", tags=["TTS"], dependencies=[Depends(check_upload_sizes)],
                   responses=VOICE_ERRORS)  # every route takes voice_id

TEXT_MAX = 2000
#: DualCodec-VALL-E's sampling defaults (the reference CLI's).
VALLE = ARSampling()
#: Metis TTS's stage-1 defaults (the reference's).
METIS_TTS = STAGE1_SETTINGS["tts"]
TEXT = Form(..., min_length=1, max_length=TEXT_MAX, description="Text to synthesize")
SEED = Form(None, ge=0, le=2**31 - 1, description="Makes sampling reproducible for the same inputs")
VOICE_ID = voice_id_form()
STREAM = Form(False, description=STREAM_DOC)


@router.post("/maskgct", responses=AUDIO_RESPONSES,
             summary="Speech from text with MaskGCT (Masked Generative Codec Transformer), cloning a reference voice")
async def maskgct(
    request: Request,
    text: str = TEXT,
    reference_audio: Optional[UploadFile] = File(None, description="Reference audio for voice cloning (at most 60 s "
                                                                   "are used); or send `voice_id`"),
    voice_id: Optional[str] = VOICE_ID,
    language: str = Form("en", min_length=2, max_length=16,
                         description="Language of `text`: en, zh (mixed zh/en too), fr, de, ko"),
    temperature: float = Form(T2S_TEMPERATURE, gt=0.0, le=2.0, description="Sampling temperature of the text-to-semantic stage"),
    reference_text: Optional[str] = Form(None, min_length=1, max_length=TEXT_MAX,
                                         description="Transcript of the reference audio (its language is taken "
                                                     "as `language`). When absent, Whisper transcribes the "
                                                     "reference, detects its language, and the prompt is cut "
                                                     "to whole segments covering about its first 4 s"),
    target_len: Optional[float] = Form(None, gt=0.0, le=60.0,
                                       description="Length of the generated speech in seconds; estimated from "
                                                   "the text and the reference's speaking rate when absent"),
    n_timesteps: int = Form(T2S_STEPS, ge=1, le=100, description="Masked generative decoding steps of the T2S stage"),
    cfg: float = Form(CFG, ge=0.0, le=10.0, description="Classifier-free guidance scale"),
    seed: Optional[int] = SEED,
    response_format: ResponseFormat = Form("wav", description=RESPONSE_FORMAT_DOC),
    stream: bool = STREAM,
):
    if stream:
        check_streamable(response_format)
    ref = await reference_from(request, reference_audio, voice_id)
    deployment = entry_deployment("maskgct")
    spec = await request.app.state.backend.describe(deployment)
    timing = ServerTiming()
    uploads = {"reference_audio": (ref.upload, "reference")}
    with timing("decode"):
        reference = await read_audio(request, ref.upload, "reference_audio", spec["sample_rate"])
        key = await reference_prompt_key(uploads, {"reference": reference}, spec["sample_rate"])
    payload = {"text": text, "language": language, "reference": reference, **key,
               "reference_text": reference_text or ref.text,
               "target_len": target_len, "n_timesteps": n_timesteps, "cfg": cfg, "temperature": temperature,
               "seed": seed, "subtype": SUBTYPES[response_format]}
    if stream:
        return await stream_speech(request, deployment, "synthesize", payload, response_format, timing, "maskgct_output")
    with timing("model"):
        result = await run_task(request, deployment, "synthesize", payload)
    response = await audio_response(result, "maskgct_output", response_format, timing)
    response.headers["Server-Timing"] = with_prompt_timing(timing.header(), result)
    return response


@router.post("/vevo", responses=AUDIO_RESPONSES, summary="Speech from text with Vevo TTS")
async def vevo(
    request: Request,
    text: str = TEXT,
    reference_audio: Optional[UploadFile] = File(None, description="Reference audio for the voice; or send `voice_id`"),
    voice_id: Optional[str] = VOICE_ID,
    mode: Literal["fm", "ar"] = Form(
        "fm", description="`fm`: take only the timbre from the reference; `ar`: also prompt the AR stage with its style"),
    reference_text: Optional[str] = Form(None, min_length=1, max_length=TEXT_MAX,
                                         description="Transcript of the reference (ar mode); transcribed when absent"),
    language: str = Form("auto", min_length=2, max_length=16,
                         description="Language of `text`: en, zh (mixed zh/en too), fr, de, ko, or auto (detected)"),
    flow_matching_steps: int = Form(FM_STEPS, ge=1, le=128, description="Number of flow-matching steps (1 to 128)"),
    seed: Optional[int] = SEED,
    response_format: ResponseFormat = Form("wav", description=RESPONSE_FORMAT_DOC),
    stream: bool = STREAM,
):
    ref = await reference_from(request, reference_audio, voice_id)
    return await audio_model_route(
        request, "vevo_tts", "tts", {"reference_audio": (ref.upload, "reference")},
        dict(text=text, mode=mode, reference_text=reference_text or ref.text, language=language,
             flow_matching_steps=flow_matching_steps, seed=seed), response_format, stream=stream)


@router.post("/metis", responses=AUDIO_RESPONSES, summary="Speech from text with Metis (its TTS recipe over MaskGCT's models)")
async def metis(
    request: Request,
    text: str = TEXT,
    reference_audio: Optional[UploadFile] = File(
        None, description=f"Reference audio for the voice; without it the built-in voice `{DEFAULT_VOICE}` speaks "
                          "(a LibriTTS recording, CC BY 4.0); or send `voice_id`"),
    voice_id: Optional[str] = VOICE_ID,
    reference_text: Optional[str] = Form(None, min_length=1, max_length=TEXT_MAX,
                                         description="Transcript of the reference audio; Whisper transcribes it "
                                                     "when absent (ignored without reference_audio)"),
    language: str = Form("auto", min_length=2, max_length=16,
                         description="Language of `text` (and of reference_text): en, zh, fr, de, ko, or auto "
                                     "(detected per text; Metis' rule: anything else counts as en)"),
    target_len: Optional[float] = Form(None, gt=0.0, le=60.0,
                                       description="Length of the generated speech in seconds; otherwise Metis' "
                                                   "rule: the prompt's length scaled by the UTF-8 bytes of the "
                                                   "text over those of the reference text"),
    n_timesteps: int = Form(METIS_TTS.n_timesteps, ge=1, le=100, description="Masked generative decoding steps of stage 1"),
    cfg: float = Form(METIS_TTS.cfg, ge=0.0, le=10.0, description="Classifier-free guidance scale of stage 1"),
    seed: Optional[int] = SEED,
    response_format: ResponseFormat = Form("wav", description=RESPONSE_FORMAT_DOC),
    stream: bool = STREAM,
):
    ref = await reference_from(request, reference_audio, voice_id, required=False)
    uploads = {} if ref is None else {"reference_audio": (ref.upload, "reference")}
    return await audio_model_route(
        request, "metis", "tts", uploads,
        dict(text=text, reference=None, reference_text=(reference_text or ref.text) if ref is not None else None,
             language=language, target_len=target_len, n_timesteps=n_timesteps, cfg=cfg, seed=seed),
        response_format, stream=stream)


@router.post("/dualcodec-valle", responses=AUDIO_RESPONSES, summary="Speech from text with DualCodec-VALL-E")
async def dualcodec_valle(
    request: Request,
    text: str = TEXT,
    reference_audio: Optional[UploadFile] = File(None, description="Reference audio for the voice (at most 12 s are "
                                                                   "used); or send `voice_id`"),
    voice_id: Optional[str] = VOICE_ID,
    reference_text: Optional[str] = Form(None, min_length=1, max_length=TEXT_MAX,
                                         description="Transcript of the reference; transcribed when absent"),
    temperature: float = Form(VALLE.temperature, gt=0.0, le=2.0, description="AR sampling temperature"),
    top_k: int = Form(VALLE.top_k, ge=0, le=1000, description="AR top-k (0: off)"),
    top_p: float = Form(VALLE.top_p, gt=0.0, le=1.0, description="AR nucleus sampling mass"),
    repetition_penalty: float = Form(VALLE.repeat_penalty, ge=1.0, le=2.0,
                                     description="AR repetition penalty over the whole context"),
    seed: Optional[int] = SEED,
    response_format: ResponseFormat = Form("wav", description=RESPONSE_FORMAT_DOC),
    stream: bool = STREAM,
):
    ref = await reference_from(request, reference_audio, voice_id)
    return await audio_model_route(
        request, "dualcodec_valle", "synthesize", {"reference_audio": (ref.upload, "reference")},
        dict(text=text, reference_text=reference_text or ref.text, temperature=temperature, top_k=top_k, top_p=top_p,
             repetition_penalty=repetition_penalty, seed=seed), response_format, stream=stream)
