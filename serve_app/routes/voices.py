"""Saved voices: ``POST /api/voices`` stores a reference recording (and its transcript) for the calling
API key, ``GET /api/voices[/{voice_id}]`` reads them, ``DELETE /api/voices/{voice_id}`` removes one.
A ``voice_id`` then stands in for ``reference_audio`` (or ``target_audio``) on every model route.
These routes run no model: no task id, no progress. Storage and quotas: ``serve_app.voices``."""

from __future__ import annotations

import asyncio
from typing import Optional

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import Response
from pydantic import BaseModel, Field

from models.maskgct.orchestration import MIN_REFERENCE_SECONDS
from models.voices import BUILTIN_VOICES
from serve_app.audio_io import decode_audio, sniff_format
from serve_app.errors import APIError
from serve_app.routes.common import ERROR_RESPONSES, field_limit
from serve_app.voices import NAME_MAX, builtin_audio, key_id, not_found, voice_store

router = APIRouter(prefix="/api/voices", tags=["Voices"])

#: The templates of these routes: the gate gives them no task id (they run no model).
PATHS = frozenset({"/api/voices", "/api/voices/{voice_id}"})
TEXT_MAX = 2000
#: Decoded once to check a new voice (any rate would do: only validity and duration are kept).
CHECK_RATE = 16000
MB = 1024 * 1024


class Voice(BaseModel):
    voice_id: str = Field(description="Send it as `voice_id` (or the OpenAI route's `voice`) instead of an upload")
    name: str
    text: Optional[str] = Field(None, description="The recording's transcript: used as `reference_text` where a "
                                                 "route takes one and the request sends none")
    duration: Optional[float] = Field(None, description="Seconds of audio the models use (a longer recording is "
                                                        "cut to max_reference_seconds, as a reference upload is)")
    bytes: Optional[int] = Field(None, description="Size of the stored recording (counts against the key's quota)")
    created: Optional[str] = Field(None, description="When it was saved (ISO 8601, UTC)")
    builtin: bool = Field(False, description="A voice that ships with the server (every key may use it)")


class Quota(BaseModel):
    count: int
    max_count: int
    bytes: int
    max_bytes: int


class VoiceList(BaseModel):
    voices: list[Voice] = Field(description="This API key's saved voices, newest first")
    builtin: list[Voice] = Field(description="Voices that ship with the server, usable by every key")
    quota: Quota = Field(description="This key's use of its voice quotas")


def _errors(*codes: int) -> dict:
    return {code: ERROR_RESPONSES[code] for code in (401, 429, 500, *codes)}


_DOCS_404 = {"description": "No such voice for this API key (another key's voices are not found either)",
             "content": ERROR_RESPONSES[400]["content"]}
_PUBLIC = ("voice_id", "name", "text", "duration", "bytes", "created")


def _voice(meta: dict) -> Voice:
    return Voice(**{k: meta.get(k) for k in _PUBLIC})


async def _builtin(request: Request, name: str) -> Voice:
    found = await builtin_audio(request, name)
    return Voice(voice_id=name, name=name, text=found.text, builtin=True, bytes=len(found.audio),
                 duration=await asyncio.to_thread(_seconds, found.audio, request.app.state.settings))


def _seconds(audio, settings) -> float:
    return len(decode_audio(audio, field="audio", target_sr=CHECK_RATE, max_seconds=settings.max_reference_seconds,
                            trim=True)) / CHECK_RATE


@router.post("", status_code=201, response_model=Voice,
             summary="Save a voice: a reference recording and its transcript",
             responses={**_errors(400, 408, 411, 413, 415),
                        409: {"description": "The key's voice count quota is reached (voice_max_count)",
                              "content": ERROR_RESPONSES[400]["content"]},
                        413: {"description": "The recording is over the reference limit (max_reference_mb), or the "
                                             "key's voice storage quota (voice_max_mb) would be exceeded",
                              "content": ERROR_RESPONSES[400]["content"]}})
async def create_voice(
    request: Request,
    # Named as the reference it is (``reference_audio``: the gate's body limit is the reference one),
    # sent as the form field ``audio``.
    reference_audio: UploadFile = File(..., alias="audio", description="The voice's recording: WAV, MP3, FLAC or "
                                                                      "OGG, at most max_reference_mb (50 MB)"),
    text: Optional[str] = Form(None, min_length=1, max_length=TEXT_MAX,
                               description="Its transcript (recommended: routes that need one then skip speech "
                                           "recognition)"),
    name: Optional[str] = Form(None, min_length=1, max_length=NAME_MAX,
                               description="A name for it (default: the file's name)"),
):
    settings = request.app.state.settings
    limit = field_limit(settings, "reference_audio")
    if reference_audio.size is not None and reference_audio.size > limit:
        raise APIError(413, f"audio: file is larger than the {limit // MB} MB allowed for a voice")
    upload = reference_audio.file
    upload.seek(0)
    kind = sniff_format(upload.read(64))
    upload.seek(0)
    seconds = await asyncio.to_thread(_seconds, upload, settings)   # 400 / 415 when it is not usable audio
    if seconds < MIN_REFERENCE_SECONDS:
        raise APIError(400, f"audio: {seconds:.2f} s of audio, a voice needs at least {MIN_REFERENCE_SECONDS:g} s")
    meta = await asyncio.to_thread(voice_store(request).create, key_id(request), upload, name=name, text=text,
                                   duration=seconds, audio_format=kind, filename=reference_audio.filename)
    return _voice(meta)


@router.get("", response_model=VoiceList, summary="List this API key's voices (and the built-in ones)",
            responses=_errors())
async def list_voices(request: Request):
    store = voice_store(request)
    owner = key_id(request)
    metas, usage = await asyncio.gather(asyncio.to_thread(store.list, owner), asyncio.to_thread(store.usage, owner))
    builtin = []
    for name in BUILTIN_VOICES:
        try:
            builtin.append(await _builtin(request, name))
        except APIError:  # its files are not here: listed without what only they tell
            builtin.append(Voice(voice_id=name, name=name, builtin=True))
    return VoiceList(voices=[_voice(m) for m in metas], builtin=builtin, quota=Quota(**usage))


@router.get("/{voice_id}", response_model=Voice, summary="One voice of this API key (or a built-in one)",
            responses={**_errors(503), 404: _DOCS_404})
async def get_voice(request: Request, voice_id: str):
    if voice_id in BUILTIN_VOICES:
        return await _builtin(request, voice_id)
    meta = await asyncio.to_thread(voice_store(request).get, key_id(request), voice_id)
    if meta is None:
        raise not_found(voice_id)
    return _voice(meta)


@router.delete("/{voice_id}", status_code=204, summary="Delete one of this API key's voices",
               responses={**_errors(), 404: _DOCS_404,
                          403: {"description": "Built-in voices cannot be deleted",
                                "content": ERROR_RESPONSES[400]["content"]}})
async def delete_voice(request: Request, voice_id: str):
    if voice_id in BUILTIN_VOICES:
        raise APIError(403, f"{voice_id} is a built-in voice: it cannot be deleted")
    if not await asyncio.to_thread(voice_store(request).delete, key_id(request), voice_id):
        raise not_found(voice_id)
    return Response(status_code=204)
