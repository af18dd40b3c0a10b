"""The OpenAI-compatible speech API through the official `openai` client against the running
application (tiny weights): model list, speech in several formats with a built-in and a saved voice,
`speed` as a time-stretch, and errors in OpenAI's shape as the client's own exception types."""

from __future__ import annotations

import io

import httpx
import numpy as np
import openai
import pytest
import soundfile as sf

from serve_app.routes.openai_speech import SPEECH_MODELS
from tests.conftest import G2P_DATA, VOICE_DATA
from tests.test_integration import wav_bytes

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not G2P_DATA.is_dir() or not VOICE_DATA.is_dir(),
                                 reason="G2P data or the built-in voice not found in ../shared/data")]

TEXT = "Hello there, this is a short test."


def client(served, key: str) -> openai.OpenAI:
    # The client sends the key as Authorization: Bearer; no retries, so each test sees each answer.
    return openai.OpenAI(base_url=served.base_url + "/v1", api_key=key, max_retries=0, timeout=120)


def speak(c: openai.OpenAI, **kwargs):
    raw = c.audio.speech.with_raw_response.create(**{"model": "vevo", "voice": "default", "input": TEXT, **kwargs})
    return raw.headers, raw.parse().content


def test_models_are_listed(served):
    models = client(served, served.fresh_key()).models.list()
    assert {m.id for m in models.data} == set(SPEECH_MODELS)
    assert all(m.owned_by == "amphion" for m in models.data)


def test_speech_in_wav_mp3_and_pcm_with_the_builtin_voice(served):
    c = client(served, served.fresh_key())
    headers, wav = speak(c, response_format="wav", extra_body={"seed": 7})
    samples, rate = sf.read(io.BytesIO(wav), dtype="float32")
    assert headers["content-type"] == "audio/wav" and rate == int(headers["x-sample-rate"]) == 24000
    assert headers["x-amphion-weights"] == "tiny" and len(samples) > rate // 4
    assert np.isfinite(samples).all() and np.abs(samples).max() > 0

    headers, mp3 = speak(c, extra_body={"seed": 7})                       # OpenAI's default format: mp3
    assert headers["content-type"] == "audio/mpeg"
    decoded, _ = sf.read(io.BytesIO(mp3), dtype="float32")
    assert abs(len(decoded) - len(samples)) < 0.1 * rate                  # the same speech, encoded

    headers, pcm = speak(c, response_format="pcm", extra_body={"seed": 7})
    assert headers["content-type"] == "audio/pcm"
    assert np.array_equal(np.frombuffer(pcm, "<i2"), (sf.read(io.BytesIO(wav), dtype="int16")[0]))


def test_speed_time_stretches_the_same_speech(served):
    c = client(served, served.fresh_key())
    _, normal = speak(c, response_format="wav", extra_body={"seed": 11})
    _, fast = speak(c, response_format="wav", speed=2.0, extra_body={"seed": 11})
    n, f = sf.info(io.BytesIO(normal)).frames, sf.info(io.BytesIO(fast)).frames
    assert abs(f / n - 0.5) < 0.05, (n, f)


def test_a_saved_voice_speaks_through_the_openai_route(served):
    key = served.fresh_key()
    r = httpx.post(served.base_url + "/api/voices", headers={"X-API-Key": key}, timeout=60,
                   files={"audio": ("me.wav", wav_bytes(2.0))}, data={"text": "A reference sentence."})
    assert r.status_code == 201, r.text
    headers, wav = speak(client(served, key), voice=r.json()["voice_id"], response_format="wav")
    assert sf.info(io.BytesIO(wav)).frames > 0 and headers["x-task-id"]


def test_errors_are_the_clients_own_exceptions_in_openai_shape(served):
    c = client(served, served.fresh_key())
    with pytest.raises(openai.NotFoundError) as raised:
        speak(c, model="tts-1")
    assert raised.value.body["type"] == "invalid_request_error" and "tts-1" in raised.value.body["message"]
    with pytest.raises(openai.NotFoundError, match="voice"):
        speak(c, voice="voice_doesnotexist0000")
    with pytest.raises(openai.UnprocessableEntityError) as raised:
        speak(c, speed=9.0)
    assert raised.value.body["param"] == "speed"
    with pytest.raises(openai.AuthenticationError) as raised:
        speak(client(served, "not-a-key"))
    assert raised.value.body["code"] == "invalid_api_key"
    # X-API-Key works as well as the Bearer token, on the same route
    r = httpx.get(served.base_url + "/v1/models", headers={"X-API-Key": served.fresh_key()}, timeout=30)
    assert r.status_code == 200 and r.json()["object"] == "list"
