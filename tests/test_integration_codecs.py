"""Codecs through the application (tiny weights): encode then decode gives audio of the input's
duration within one frame, for both DualCodec models and FACodec; bad token JSON is a 400."""

from __future__ import annotations

import io
import json

import httpx
import numpy as np
import pytest
import soundfile as sf

pytestmark = pytest.mark.integration


def wav_bytes(seconds: float, sr: int) -> bytes:
    t = np.arange(int(seconds * sr)) / sr
    x = 0.3 * np.sin(2 * np.pi * 180 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 2 * t))
    buf = io.BytesIO()
    sf.write(buf, x.astype(np.float32), sr, format="WAV")
    return buf.getvalue()


def post(served, path, key, data=None, files=None):
    return httpx.post(served.base_url + path, headers={"X-API-Key": key}, data=data or {}, files=files, timeout=120)


@pytest.mark.parametrize("model,frame_rate", [("12hz_v1", 12.5), ("25hz_v1", 25.0)])
def test_dualcodec_encode_decode_keeps_the_duration(served, model, frame_rate):
    key = served.fresh_key()
    seconds = 1.7
    r = post(served, "/api/codec/dualcodec/encode", key, {"model": model},
             {"audio": ("in.wav", wav_bytes(seconds, 44100))})       # any rate: resampled to 24 kHz
    assert r.status_code == 200, r.text
    enc = r.json()
    assert enc["model"] == model and enc["frame_rate"] == frame_rate and enc["sample_rate"] == 24000
    assert len(enc["tokens"]) == enc["num_quantizers"] and len(enc["tokens"][0]) == int(np.ceil(seconds * frame_rate))
    r = post(served, "/api/codec/dualcodec/decode", key, {"tokens": json.dumps(enc)})
    assert r.status_code == 200, r.text
    out, sr = sf.read(io.BytesIO(r.content), dtype="float32")
    assert sr == 24000 and abs(len(out) / sr - seconds) < 1 / frame_rate
    assert np.isfinite(out).all()


def test_dualcodec_bad_tokens_are_400(served):
    key = served.fresh_key()
    for tokens, needle in (("not json", "JSON"), ("[[1, 2], [3]]", "different lengths"),
                           ("[[1.5, 2]]", "not an integer"), ("[[70000]]", "outside"),
                           (json.dumps({"prosody_tokens": [[1]]}), "'tokens' array")):
        r = post(served, "/api/codec/dualcodec/decode", key, {"tokens": tokens})
        assert r.status_code == 400 and needle in r.json()["detail"], (tokens, r.text)


def test_facodec_encode_decode_keeps_the_duration(served):
    key = served.fresh_key()
    seconds = 1.3
    r = post(served, "/api/codec/facodec/encode", key, files={"audio": ("in.wav", wav_bytes(seconds, 16000))})
    assert r.status_code == 200, r.text
    enc = r.json()
    frames = len(enc["prosody_tokens"][0])
    assert enc["sample_rate"] == 16000 and enc["frame_rate"] == 80 and frames == int(seconds * 80)
    assert [len(enc[k]) for k in ("prosody_tokens", "content_tokens", "acoustic_tokens")] == [1, 2, 3]
    r = post(served, "/api/codec/facodec/decode", key, {"tokens": json.dumps(enc)})
    assert r.status_code == 200, r.text
    out, sr = sf.read(io.BytesIO(r.content), dtype="float32")
    assert sr == 16000 and abs(len(out) / sr - seconds) < 1 / 80
    # a DualCodec response sent to FACodec is refused, not decoded
    r = post(served, "/api/codec/facodec/decode", key, {"tokens": json.dumps({"tokens": [[1, 2]], "model": "12hz_v1"})})
    assert r.status_code == 400 and "prosody_tokens" in r.json()["detail"]
