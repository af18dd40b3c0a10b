"""Text-to-audio routes: AudioLDM (diffusers-format repos, or Amphion's own checkpoint) and PicoAudio
(timestamp-controlled). 16 kHz WAV of exactly the requested length; progress per denoising step."""

from __future__ import annotations

from typing import Optional

from fastapi import APIRouter, Depends, Form, Request

from models.audioldm.diffusers_pipeline import DEFAULT_AUDIO_LENGTH_S, DEFAULT_NUM_INFERENCE_STEPS
from serve_app.routes.common import (
    AUDIO_RESPONSES, ERROR_RESPONSES, RESPONSE_FORMAT_DOC, ResponseFormat, audio_model_route, check_upload_sizes,
    entry_deployment,
)

router = APIRouter(prefix="/api/tta", tags=["TTA"], dependencies=[Depends(check_upload_sizes)])

DESCRIPTION = Form(..., min_length=1, max_length=1000, description="Text description of the desired audio")
SEED = Form(None, ge=0, le=2**31 - 1, description="Makes sampling reproducible for the same inputs")


@router.post("/audioldm", responses=AUDIO_RESPONSES, summary="Audio from text with AudioLDM (latent diffusion)")
async def audioldm(
    request: Request,
    text: str = DESCRIPTION,
    model: Optional[str] = Form(
        None, min_length=1, max_length=200,
        description="Which AudioLDM: a diffusers-format repo this server holds (default `cvssp/audioldm-s-full-v2`, "
                    "weights CC-BY-NC-SA-4.0) or `amphion` (Amphion's MIT checkpoint, at most 9.98 s); "
                    "`/api/health` lists what is served"),
    num_inference_steps: int = Form(DEFAULT_NUM_INFERENCE_STEPS, ge=10, le=200, description="Diffusion steps"),
    audio_length_in_s: float = Form(DEFAULT_AUDIO_LENGTH_S, ge=1.0, le=30.0, description="Audio duration (s)"),
    guidance_scale: Optional[float] = Form(None, ge=0.0, le=20.0,
                                           description="Classifier-free guidance (default: the model's)"),
    negative_prompt: Optional[str] = Form(None, max_length=1000, description="What the audio should not sound like"),
    seed: Optional[int] = SEED,
    response_format: ResponseFormat = Form("wav", description=RESPONSE_FORMAT_DOC),
):
    return await audio_model_route(
        request, "audioldm", "generate", {},
        dict(text=text, model=model, num_inference_steps=num_inference_steps, audio_length_in_s=audio_length_in_s,
             guidance_scale=guidance_scale, negative_prompt=negative_prompt, seed=seed), response_format)


@router.post("/picoaudio", responses=AUDIO_RESPONSES,
             summary="Audio from text with PicoAudio (events at given times)")
async def picoaudio(
    request: Request,
    text: str = Form(..., min_length=1, max_length=1000,
                     description="Events with times: the structured form `dog barking__0.5-2.0_4.0-5.0--cat meowing__6.0-7.5`, "
                                 "or a caption such as `a dog barks at 0.5-2.0 and 4-5 seconds, a cat meows at 6-7.5`; an "
                                 "event named without times spans the clip. `GET /api/tta/picoaudio/events` lists the events"),
    duration: float = Form(3.0, ge=1.0, le=10.0, description="Audio duration (s)"),
    num_inference_steps: Optional[int] = Form(None, ge=1, le=1000, description="Diffusion steps (default: the model's)"),
    guidance_scale: Optional[float] = Form(None, ge=0.0, le=20.0,
                                           description="Classifier-free guidance (default: the model's)"),
    seed: Optional[int] = SEED,
    response_format: ResponseFormat = Form("wav", description=RESPONSE_FORMAT_DOC),
):
    return await audio_model_route(
        request, "picoaudio", "generate", {},
        dict(text=text, duration=duration, num_inference_steps=num_inference_steps, guidance_scale=guidance_scale,
             seed=seed), response_format)


@router.get("/picoaudio/events", summary="The sound events PicoAudio was trained on", responses=ERROR_RESPONSES)
async def picoaudio_events(request: Request):
    deployment = entry_deployment("picoaudio")
    return {"events": await request.app.state.backend.call(deployment, "events", {})}
