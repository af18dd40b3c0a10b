"""DualCodec-VALL-E text to speech: the ``DualCodecVALLE`` entry runs the AR and NAR
(``models.valle``) and composes the ``DualCodec`` deployment (the reference's 12hz_v1 codes in, the
generated codes out to audio) and the shared ``WhisperASR`` (the reference's transcript when a
request has none). Long text is chunked as the reference does; the chunks' audio is joined with
the reference's cross-fade. A progress event per AR token and NAR layer. See ``FAMILY``.
"""

from __future__ import annotations

import asyncio
import io
import time

import numpy as np
from ray import serve

from deployments.base import Loaded, Loading, ModelService
from deployments.components import ASR, ENTRY_DEPLOYMENT_DEFAULTS, PartHandles
from deployments.errors import InvalidModelInput, ModelUnavailable
from deployments.topology import Entry, Family
from models.audio.wav import encode_wav
from models.core.prompt_cache import PromptCache, PromptMemo

SAMPLE_RATE = 24000
CODEC = "DualCodec"
#: The DualCodec model VALL-E was trained on, and its codebooks (semantic + 7 acoustic).
CODEC_MODEL = "12hz_v1"
NUM_QUANTIZERS = 8
#: The reference joins chunk audio with this much cross-fade.
CROSSFADE_S = 0.15


def crossfade_join(waves: list[np.ndarray], overlap: int) -> np.ndarray:
    """Concatenate with a linear cross-fade of ``overlap`` samples at each seam (shorter when a piece is)."""
    out = np.asarray(waves[0], np.float32)
    for wave in waves[1:]:
        wave = np.asarray(wave, np.float32)
        n = min(overlap, len(out), len(wave))
        if n == 0:
            out = np.concatenate([out, wave])
            continue
        ramp = np.linspace(0.0, 1.0, n, dtype=np.float32)
        seam = out[-n:] * (1.0 - ramp) + wave[:n] * ramp
        out = np.concatenate([out[:-n], seam, wave[n:]])
    return out


class ValleService(ModelService):
    """``synthesize(payload)``: text, reference (float32 24 kHz), reference_text (None: transcribed),
    temperature, top_k, top_p, repetition_penalty, seed, subtype, task_id, prompt_key (names the
    reference: its transcript and codes are kept for the next request with it)."""

    label = "DualCodec-VALL-E"

    def __init__(self, components=None, **loading):
        self.components = dict(components or {})
        self.prompt_cache = PromptCache()
        super().__init__(**loading)

    def _load(self, loading: Loading) -> Loaded:
        from models.valle.pipeline import ValleTTS

        model = ValleTTS.from_weights(loading.weights, device=loading.device, dtype=loading.dtype,
                                      cache_dir=loading.cache_dir)
        return Loaded(model, model.weights_kind)

    def _facts(self) -> dict:
        return {"sample_rate": SAMPLE_RATE}

    async def _call(self, deployment: str, method: str, *args):
        return await PartHandles(self.components, {}, frozenset(), None, self.label).call(deployment, method, *args)

    async def synthesize(self, payload: dict) -> dict:
        from models.valle.ar import ARSampling
        from models.valle.pipeline import ValleInputError

        model = self._require()
        if CODEC not in self.components:
            raise ModelUnavailable(f"{self.label} needs the {CODEC} deployment, which is not part of this application")
        reporter = self.reporter(payload.get("task_id"))
        started = time.perf_counter()
        reference = np.ascontiguousarray(payload["reference"], np.float32)
        prompts = PromptMemo(self.prompt_cache, payload.get("prompt_key"), weights=self.weights_kind)
        ref_text = payload.get("reference_text")
        if ref_text is None:
            heard = await prompts.get("transcript", lambda: self._call(ASR, "transcribe", reference, SAMPLE_RATE, None))
            if not heard["text"].strip():
                raise InvalidModelInput("reference_audio: no speech was recognised in it; send `reference_text`")
            ref_text = heard["text"]
            reporter.step("asr", 1, 1)
        prompt = await prompts.get(f"codes:{CODEC_MODEL}:{NUM_QUANTIZERS}", lambda: self._call(
            CODEC, "encode", {"audio": reference, "model": CODEC_MODEL, "num_quantizers": NUM_QUANTIZERS}))
        codes = np.asarray(prompt["tokens"], np.int64)
        reporter.step("prompt", 1, 1)
        knobs = {k: payload[k] for k in ("temperature", "top_k", "top_p") if payload.get(k) is not None}
        if payload.get("repetition_penalty") is not None:
            knobs["repeat_penalty"] = payload["repetition_penalty"]
        try:
            sampling = ARSampling(**knobs, speech_only=True)
            result = await asyncio.to_thread(
                model.synthesize, payload["text"], ref_text, codes[0], codes[1:], ref_seconds=len(reference) / SAMPLE_RATE,
                sampling=sampling, seed=payload.get("seed"), on_progress=reporter.emitter())
        except (ValleInputError, ValueError) as exc:
            raise InvalidModelInput(str(exc)) from None
        waves = []
        for chunk in result.chunks:
            decoded = await self._call(CODEC, "decode", {"tokens": np.ascontiguousarray(chunk, np.int64),
                                                         "model": CODEC_MODEL, "subtype": "FLOAT"})
            waves.append(await asyncio.to_thread(_samples, decoded["wav"]))
        wave = crossfade_join(waves, int(CROSSFADE_S * SAMPLE_RATE))
        wav = await asyncio.to_thread(encode_wav, wave, SAMPLE_RATE, payload.get("subtype", "PCM_16"))
        result = {"wav": wav, "sample_rate": SAMPLE_RATE, "duration": len(wave) / SAMPLE_RATE,
                  "weights": self.weights_kind, "compute_s": time.perf_counter() - started}
        if prompts.report() is not None:
            result["prompt"] = prompts.report()
        return result


def _samples(wav: bytes) -> np.ndarray:
    import soundfile as sf

    return sf.read(io.BytesIO(wav), dtype="float32")[0]


ValleDeployment = serve.deployment(ValleService, name="DualCodecVALLE", **ENTRY_DEPLOYMENT_DEFAULTS)

FAMILY = Family("valle", entries=(
    # The codec is the codecs family's DualCodec entry, shared: VALL-E speaks in its 12hz_v1 codes.
    Entry("DualCodecVALLE", ValleDeployment, models=("dualcodec_valle",), uses=(CODEC, ASR)),
))
