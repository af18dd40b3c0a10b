"""Saved voices: reference recordings an API key stores once and names by id in later requests.

On disk, under ``settings.storage_dir`` (shared by every ingress replica; the folder IS the index,
nothing lives only in a process's memory)::

    voices/<key id>/<voice id>/audio      the uploaded bytes, as sent (WAV, MP3, FLAC or OGG)
    voices/<key id>/<voice id>/meta.json  {voice_id, name, text, duration, bytes, created, sha256, format}
    voices/<key id>/.lock                 held while a new voice is checked against the quotas and added

``<key id>`` is the digest prefix the gatekeeper identifies a key by (never the key). A voice
appears whole or not at all: both files are written in a temporary folder beside it, which is then
renamed into place (atomic on POSIX); deleting renames it away first. The quota check and the rename
happen under an exclusive ``flock`` on the key's lock file, so replicas adding voices at once cannot
overshoot a quota (``flock`` is per machine, or per NFSv4 server for a shared mount).

:func:`reference_from` is what routes call for a reference field that may instead be a ``voice_id``
(a saved voice or a built-in one, :data:`models.voices.BUILTIN_VOICES`); :func:`voice_reference`
resolves a voice id alone (the OpenAI-style ``voice``). Both answer an upload-like object that the
routes decode exactly as they decode an upload, plus the voice's transcript.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import io
import json
import os
import re
import secrets
import shutil
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import BinaryIO

from fastapi import Form, Request, UploadFile
from fastapi.exceptions import RequestValidationError

from models.voices import BUILTIN_VOICES, VoiceUnavailable, voice_folder
from serve_app.errors import APIError

VOICE_ID_PREFIX = "voice_"
VOICE_ID_RULE = re.compile(r"^voice_[A-Za-z0-9_-]{16}$")
_KEY_ID_RULE = re.compile(r"^[0-9a-f]{8,64}$")
NAME_MAX = 200
#: Temporary folders older than this were left by a process that died mid-write: removed.
_STALE_TMP_S = 3600
_COPY_CHUNK = 1024 * 1024


def new_voice_id() -> str:
    """``voice_`` + 16 random URL-safe characters (96 bits)."""
    return VOICE_ID_PREFIX + secrets.token_urlsafe(12)


def not_found(voice_id: str) -> APIError:
    """The one answer for a voice that does not exist and for another key's voice: nothing tells them apart."""
    shown = f" {voice_id}" if VOICE_ID_RULE.match(voice_id) or voice_id in BUILTIN_VOICES else ""
    return APIError(404, f"no voice{shown} for this API key (voices belong to the key that saved them; "
                         "GET /api/voices lists yours)")


def default_name(filename: str | None, voice_id: str) -> str:
    """The upload's file name without folders or extension, else the voice id."""
    if filename:
        stem = PurePosixPath(PureWindowsPath(filename).name).stem.strip()
        if stem:
            return stem[:NAME_MAX]
    return voice_id


# ---------------------------------------------------------------------------------------------
# the store


class VoiceStore:
    """The voices of every key under ``root`` (``<storage_dir>/voices``); quotas per key. Blocking
    file I/O: call it from a worker thread (``asyncio.to_thread``)."""

    def __init__(self, root: str | os.PathLike, max_count: int, max_bytes: int):
        self.root = Path(root)
        self.max_count = int(max_count)
        self.max_bytes = int(max_bytes)

    @classmethod
    def from_settings(cls, settings) -> VoiceStore:
        return cls(Path(settings.storage_dir) / "voices", settings.voice_max_count, settings.voice_bytes())

    def _owner(self, key_id: str) -> Path:
        if not _KEY_ID_RULE.match(key_id or ""):
            raise ValueError("not a key id")  # the gatekeeper's digests only: never a path from a client
        return self.root / key_id

    def _voice(self, key_id: str, voice_id: str) -> Path | None:
        """The voice's folder, or None for an id that cannot be one (no path is built from it)."""
        if not VOICE_ID_RULE.match(voice_id):
            return None
        return self._owner(key_id) / voice_id

    # -- reading -----------------------------------------------------------------------------------
    def list(self, key_id: str) -> list[dict]:
        """The key's voices' meta, newest first."""
        owner = self._owner(key_id)
        metas = []
        try:
            folders = list(owner.iterdir())
        except FileNotFoundError:
            return []
        for folder in folders:
            if VOICE_ID_RULE.match(folder.name):
                meta = _read_meta(folder)
                if meta is not None:
                    metas.append(meta)
        return sorted(metas, key=lambda m: (m["created"], m["voice_id"]), reverse=True)

    def usage(self, key_id: str) -> dict:
        voices = self.list(key_id)
        return {"count": len(voices), "max_count": self.max_count,
                "bytes": sum(v["bytes"] for v in voices), "max_bytes": self.max_bytes}

    def get(self, key_id: str, voice_id: str) -> dict | None:
        folder = self._voice(key_id, voice_id)
        return None if folder is None else _read_meta(folder)

    def read(self, key_id: str, voice_id: str) -> tuple[dict, bytes] | None:
        """(meta, audio bytes), or None when the key has no such voice (or it was just deleted)."""
        folder = self._voice(key_id, voice_id)
        meta = None if folder is None else _read_meta(folder)
        if meta is None:
            return None
        try:
            return meta, (folder / "audio").read_bytes()
        except FileNotFoundError:
            return None

    # -- writing -----------------------------------------------------------------------------------
    def create(self, key_id: str, audio: BinaryIO, *, name: str | None, text: str | None, duration: float,
               audio_format: str, filename: str | None = None) -> dict:
        """Copy ``audio`` (from its start) into a new voice and answer its meta; 409 / 413 (APIError)
        when the key's count or bytes quota would be exceeded."""
        owner = self._owner(key_id)
        owner.mkdir(parents=True, exist_ok=True)
        self._remove_stale(owner)
        voice_id = new_voice_id()
        staging = owner / f".tmp-{voice_id}"
        staging.mkdir()
        try:
            digest, size = hashlib.sha256(), 0
            audio.seek(0)
            with open(staging / "audio", "wb") as out:
                while chunk := audio.read(_COPY_CHUNK):
                    digest.update(chunk)
                    size += len(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            meta = {"voice_id": voice_id, "name": name or default_name(filename, voice_id), "text": text,
                    "duration": round(float(duration), 3), "bytes": size, "format": audio_format,
                    "created": datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                    "sha256": digest.hexdigest()}
            _write_json(staging / "meta.json", meta)
            with _locked(owner):
                self._check_quota(key_id, size)
                os.replace(staging, owner / voice_id)
            return meta
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)

    def _check_quota(self, key_id: str, new_bytes: int) -> None:
        usage = self.usage(key_id)
        if usage["count"] + 1 > self.max_count:
            raise APIError(409, f"voice quota reached: this API key has {usage['count']} saved voices, the most "
                                f"allowed is {self.max_count}; delete some (DELETE /api/voices/{{voice_id}})")
        if usage["bytes"] + new_bytes > self.max_bytes:
            mb = 1024 * 1024
            raise APIError(413, f"voice storage quota exceeded: this API key's voices hold {usage['bytes'] / mb:.1f} "
                                f"MB, this one {new_bytes / mb:.1f} MB, the most allowed is {self.max_bytes / mb:g} "
                                "MB; delete some voices (DELETE /api/voices/{voice_id})")

    def delete(self, key_id: str, voice_id: str) -> bool:
        """Remove the voice; False when the key has none by that id."""
        folder = self._voice(key_id, voice_id)
        if folder is None or _read_meta(folder) is None:
            return False
        doomed = folder.with_name(f".del-{voice_id}-{secrets.token_hex(4)}")
        try:
            os.replace(folder, doomed)  # gone for every reader at once; the files go after
        except FileNotFoundError:
            return False  # deleted by another request meanwhile
        shutil.rmtree(doomed, ignore_errors=True)
        return True

    @staticmethod
    def _remove_stale(owner: Path) -> None:
        now = time.time()
        for pattern in (".tmp-*", ".del-*"):  # left by a process that died mid-write or mid-delete
            for leftover in owner.glob(pattern):
                try:
                    if now - leftover.stat().st_mtime > _STALE_TMP_S:
                        shutil.rmtree(leftover, ignore_errors=True)
                except FileNotFoundError:
                    pass


def _read_meta(folder: Path) -> dict | None:
    try:
        return json.loads((folder / "meta.json").read_text(encoding="utf-8"))
    except (FileNotFoundError, NotADirectoryError):
        return None


def _write_json(path: Path, value: dict) -> None:
    """Written whole or not at all: a temporary file beside it, then renamed over it."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    with open(tmp, "w", encoding="utf-8") as out:
        json.dump(value, out, ensure_ascii=False)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)


class _locked:
    """An exclusive flock on the owner's lock file, across processes (and threads: one fd each)."""

    def __init__(self, owner: Path):
        self.path = owner / ".lock"

    def __enter__(self):
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)


def voice_store(request: Request) -> VoiceStore:
    """The application's store (made from its settings on first use)."""
    state = request.app.state
    store = getattr(state, "voice_store", None)
    if store is None:
        store = state.voice_store = VoiceStore.from_settings(state.settings)
    return store


def key_id(request: Request) -> str:
    return request.scope["state"]["key_id"]


# ---------------------------------------------------------------------------------------------
# built-in voices, as the ingress reads them


@dataclass(frozen=True)
class BuiltinAudio:
    audio: bytes      # default.wav as shipped
    text: str


@lru_cache(maxsize=len(BUILTIN_VOICES))
def _builtin_audio(name: str, mode: str) -> BuiltinAudio:
    folder = voice_folder(mode)  # raises VoiceUnavailable (then nothing is cached)
    return BuiltinAudio((folder / f"{name}.wav").read_bytes(),
                        (folder / f"{name}.txt").read_text(encoding="utf-8").strip())


async def builtin_audio(request: Request, name: str) -> BuiltinAudio:
    """A built-in voice's recording and transcript; 503 naming what to do when its files are not here."""
    try:
        return await asyncio.to_thread(_builtin_audio, name, request.app.state.settings.weights)
    except VoiceUnavailable as exc:
        raise APIError(503, f"the built-in voice {name} is not available: {exc}") from None


# ---------------------------------------------------------------------------------------------
# a reference field, or a voice in its place


@dataclass(frozen=True)
class Reference:
    """What a route decodes as its reference: ``upload`` (the client's file, or a voice's recording as
    an upload), with ``text`` its transcript when the voice has one, ``voice_id`` when it is a voice."""

    upload: UploadFile
    text: str | None = None
    voice_id: str | None = None


async def voice_reference(request: Request, voice_id: str) -> Reference:
    """A voice id (one of the caller's saved voices, or a built-in name) as a reference; 404 when the
    caller has no such voice (another key's voice included)."""
    if voice_id in BUILTIN_VOICES:
        found = await builtin_audio(request, voice_id)
        audio, text = found.audio, found.text
    else:
        stored = await asyncio.to_thread(voice_store(request).read, key_id(request), voice_id)
        if stored is None:
            raise not_found(voice_id)
        meta, audio = stored
        text = meta.get("text")
    # In memory: at most one reference's size (max_reference_mb), and nothing to close afterwards.
    upload = UploadFile(io.BytesIO(audio), size=len(audio), filename=f"{voice_id}.audio")
    return Reference(upload, text, voice_id)


async def reference_from(request: Request, upload: UploadFile | None, voice_id: str | None, *,
                         field: str = "reference_audio", required: bool = True) -> Reference | None:
    """The request's reference: the upload in ``field`` or the voice ``voice_id``, never both (422);
    neither is 422 when ``required``, else None."""
    if upload is not None and voice_id is not None:
        raise RequestValidationError([{"type": "value_error", "loc": ("body", "voice_id"),
                                       "msg": f"send either `{field}` or `voice_id`, not both"}])
    if voice_id is not None:
        return await voice_reference(request, voice_id)
    if upload is not None:
        return Reference(upload)
    if required:
        raise RequestValidationError([{"type": "missing", "loc": ("body", field),
                                       "msg": f"send `{field}` (an audio file) or `voice_id` (a saved or "
                                              "built-in voice)"}])
    return None


#: The answer a route that takes ``voice_id`` adds to its documented ones.
VOICE_ERRORS = {404: {"description": "`voice_id` names no voice of this API key (nor a built-in one)",
                      "content": {"application/json": {"schema": {"type": "object",
                                                                  "properties": {"detail": {"type": "string"}}}}}}}


def voice_id_form(field: str = "reference_audio"):
    """The ``voice_id`` form field of a route whose reference field is ``field``."""
    return Form(None, min_length=1, max_length=64,
                description=f"Instead of `{field}`: a saved voice's id (`POST /api/voices`) or a built-in voice "
                            f"({', '.join(f'`{n}`' for n in BUILTIN_VOICES)}). Its transcript is used as "
                            "`reference_text` where the route takes one and none is sent")
