"""`response_format` through the running application (tiny weights): every format from a vocoder
route and from a TTS route, with the Content-Type, file name and X-Sample-Rate of what is sent,
bytes that decode to the same audio, and 422 for a format that does not exist."""

from __future__ import annotations

import io

import httpx
import numpy as np
import pytest
import soundfile as sf

from serve_app import formats
from tests.conftest import G2P_DATA
from tests.test_formats import SLACK, decode_bytes

pytestmark = pytest.mark.integration

SR = 24000


def voice_wav(seconds: float, f0: float, sr: int = SR) -> bytes:
    t = np.arange(int(seconds * sr)) / sr
    x = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 6)) * 0.2 * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))
    buf = io.BytesIO()
    sf.write(buf, x.astype(np.float32), sr, format="WAV")
    return buf.getvalue()


def check_format(r: httpx.Response, name: str, stem: str) -> np.ndarray:
    """The response is ``name`` as its headers say; returns its samples."""
    fmt = formats.FORMATS[name]
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == fmt.media_type
    assert r.headers["content-disposition"] == f'attachment; filename="{stem}.{fmt.extension}"'
    rate = int(r.headers["x-sample-rate"])
    assert rate == SR                       # 24 kHz: every codec here takes it as it is
    samples, decoded_rate = decode_bytes(r.content, name, rate)
    assert decoded_rate == rate
    expected = round(float(r.headers["x-audio-duration"]) * rate)
    assert expected <= len(samples) <= expected + SLACK[name] + 1
    assert np.isfinite(samples).all() and np.sqrt(np.mean(samples ** 2)) > 1e-4
    return samples


def test_every_format_from_a_vocoder_route(served):
    key = served.fresh_key()
    audio = voice_wav(1.0, 140)
    out = {}
    for name in formats.FORMATS:                 # 8 requests: within the 10 per minute per route
        r = httpx.post(served.base_url + "/api/vocoder/hifigan", headers={"X-API-Key": key},
                       data={"response_format": name}, files={"audio": ("speech.wav", audio)}, timeout=120)
        out[name] = check_format(r, name, "hifigan_output")
    # The lossless ones carry the very samples of the default WAV. (The lossy ones' fidelity is
    # tests/test_formats.py's: tiny random weights give a signal that is mostly DC, which Opus removes.)
    for name in ("flac", "pcm"):
        assert np.array_equal(out[name], out["wav"])
    assert np.abs(out["wav_float"] - out["wav"]).max() <= 1 / 32768 + 1e-6


@pytest.mark.skipif(not G2P_DATA.is_dir(), reason=f"G2P reference data not found at {G2P_DATA}")
def test_every_format_from_a_tts_route(served):
    key = served.fresh_key()
    data = {"text": "Hello there, how are you?", "language": "en", "flow_matching_steps": "2", "seed": "6"}
    out = {}
    for name in formats.FORMATS:
        r = httpx.post(served.base_url + "/api/tts/vevo", headers={"X-API-Key": key},
                       data={**data, "response_format": name},
                       files={"reference_audio": ("ref.wav", voice_wav(1.5, 180))}, timeout=300)
        out[name] = check_format(r, name, "vevo_tts_output")
    assert np.array_equal(out["flac"], out["wav"]) and np.array_equal(out["pcm"], out["wav"])


def test_unknown_format_is_422_and_the_formats_are_listed_in_openapi(served):
    r = httpx.post(served.base_url + "/api/vocoder/bigvgan", headers={"X-API-Key": served.fresh_key()},
                   data={"response_format": "m4a"}, files={"audio": ("speech.wav", voice_wav(0.5, 140))}, timeout=60)
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["body", "response_format"]
    spec = httpx.get(served.base_url + "/api/openapi.json", timeout=30).json()
    op = spec["paths"]["/api/vocoder/bigvgan"]["post"]
    schema = spec["components"]["schemas"][
        op["requestBody"]["content"]["multipart/form-data"]["schema"]["$ref"].split("/")[-1]]
    assert schema["properties"]["response_format"]["enum"] == list(formats.FORMATS)
    assert {"audio/wav", "audio/mpeg", "audio/flac", "audio/ogg", "audio/aac", "audio/pcm"} <= set(
        op["responses"]["200"]["content"])
