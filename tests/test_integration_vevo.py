"""The Vevo family through the application (tiny weights): 24 kHz audio from all five routes,
conversions of the source's duration, TTS length following the text, per-step progress, the same
seed giving the same audio, and 4xx on bad input."""

from __future__ import annotations

import io
import time

import httpx
import numpy as np
import pytest
import soundfile as sf

from tests.conftest import G2P_DATA

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not G2P_DATA.is_dir(), reason=f"G2P reference data not found at {G2P_DATA}")]


def voice_wav(seconds: float, f0: float, sr: int = 24000) -> bytes:
    t = np.arange(int(seconds * sr)) / sr
    x = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 6)) * 0.2 * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))
    buf = io.BytesIO()
    sf.write(buf, x.astype(np.float32), sr, format="WAV")
    return buf.getvalue()


def post(served, path, key, data, files, task_id=None):
    headers = {"X-API-Key": key, **({"X-Task-ID": task_id} if task_id else {})}
    return httpx.post(served.base_url + path, headers=headers, data=data, files=files, timeout=300)


def audio_of(r) -> np.ndarray:
    assert r.status_code == 200, r.text
    out, sr = sf.read(io.BytesIO(r.content), dtype="float32")
    assert sr == 24000 and np.isfinite(out).all() and r.headers["x-amphion-weights"] == "tiny"
    return out


@pytest.mark.parametrize("path,field,extra", [
    ("/api/vc/vevo-timbre", "source_audio", {}),
    ("/api/vc/vevo-style", "source_audio", {}),
    ("/api/vc/vevo-voice", "source_audio", {"mode": "ar"}),
    ("/api/vc/vevo-voice", "source_audio", {"mode": "fm"}),
    ("/api/svc/vevosing", "content_audio", {"mode": "fm", "use_shifted_src": "true"}),
])
def test_conversions_return_the_source_duration(served, path, field, extra):
    key = served.fresh_key()
    seconds = 1.4
    files = {field: ("src.wav", voice_wav(seconds, 150)), "reference_audio": ("ref.wav", voice_wav(1.0, 230))}
    data = {"flow_matching_steps": "3", "seed": "4", **extra}
    out = audio_of(post(served, path, key, data, files))
    assert abs(len(out) - seconds * 24000) < 480
    again = post(served, path, key, data, {field: ("src.wav", voice_wav(seconds, 150)),
                                           "reference_audio": ("ref.wav", voice_wav(1.0, 230))})
    assert again.content == post(served, path, key, data, files).content  # same seed, same audio


def test_vevosing_ar_with_lyrics(served):
    files = {"content_audio": ("src.wav", voice_wav(1.2, 200)), "reference_audio": ("ref.wav", voice_wav(1.0, 260))}
    out = audio_of(post(served, "/api/svc/vevosing", served.fresh_key(),
                        {"mode": "ar", "lyrics": "la la la", "flow_matching_steps": "2", "seed": "1"}, files))
    assert len(out) > 0


def test_vevo_tts_length_follows_the_text_with_progress(served):
    key = served.fresh_key()
    task_id = f"it-vevo-tts-{time.time_ns()}"

    def tts(text, task=None):
        return post(served, "/api/tts/vevo", key, {"text": text, "language": "en", "flow_matching_steps": "3",
                                                    "seed": "2"}, {"reference_audio": ("ref.wav", voice_wav(1.5, 180))},
                    task)

    r, events = served.with_progress(key, task_id, lambda: tts("Hello there.", task_id))
    short = audio_of(r)
    long = audio_of(tts("Hello there, this sentence is a good deal longer than the first one."))
    assert len(long) > len(short)
    fm = [e for e in events if e["stage"] == "fm"]
    assert [e["step"] for e in fm] == [1, 2, 3] and any(e["stage"] == "ar" for e in events)
    assert events[-1]["status"] == "completed"


@pytest.mark.parametrize("path,data,files,status", [
    ("/api/vc/vevo-timbre", {"flow_matching_steps": "129"}, "both", 422),
    ("/api/vc/vevo-voice", {"mode": "xx"}, "both", 422),
    ("/api/vc/vevo-style", {}, "silent", 400),
    ("/api/tts/vevo", {"text": "Hello", "language": "xx"}, "ref", 400),
    ("/api/tts/vevo", {"text": ""}, "ref", 422),
    ("/api/svc/vevosing", {}, "garbage", 415),
])
def test_bad_input(served, path, data, files, status):
    silent = io.BytesIO()
    sf.write(silent, np.zeros(24000, np.float32), 24000, format="WAV")
    src_field = "content_audio" if "svc" in path else "source_audio"
    upload = {
        "both": {src_field: ("s.wav", voice_wav(1.0, 150)), "reference_audio": ("r.wav", voice_wav(1.0, 220))},
        "silent": {src_field: ("s.wav", silent.getvalue()), "reference_audio": ("r.wav", voice_wav(1.0, 220))},
        "ref": {"reference_audio": ("r.wav", voice_wav(1.0, 220))},
        "garbage": {src_field: ("s.wav", b"not audio at all" * 10), "reference_audio": ("r.wav", voice_wav(1.0, 220))},
    }[files]
    r = post(served, path, served.fresh_key(), data, upload)
    assert r.status_code == status, r.text
    assert "detail" in r.json()
