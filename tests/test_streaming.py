"""Streamed TTS without Ray: the sentence splitter, per-sentence payloads, and the streaming route
against a fake speech deployment (the real models stream in tests/test_integration_streaming.py).
A real uvicorn server shows what a client sees on the wire: chunks as sentences finish, and a cut
transfer when a later sentence fails."""

from __future__ import annotations

import asyncio
import io
import socket
import threading
import time

import numpy as np
import pytest
import requests
import soundfile as sf
import uvicorn
from fastapi.testclient import TestClient

from models.audio.wav import encode_wav
from serve_app import formats
from serve_app.errors import APIError
from serve_app.sentences import split_sentences
from serve_app.streaming import sentence_payloads
from tests.serving_fakes import KEYS, make_app

SR = 24000
TEXT = ("The first sentence is here. The second one follows it! Is this the third sentence? "
        "And this is the fourth.")


class FakeSpeech:
    """Answers like a TTS entry deployment: a tone whose length follows the text and whose pitch
    follows the seed; ``delay_s`` per call stands for the model's compute."""

    def __init__(self, delay_s: float = 0.0, fail_on: int | None = None, fail_with: Exception | None = None):
        self.delay_s = delay_s
        self.fail_on = fail_on
        self.fail_with = fail_with or RuntimeError("the model broke")
        self.calls: list[dict] = []

    async def describe(self):
        return {"sample_rate": SR}

    async def info(self, model=None):
        return {"status": "ready", "running": True, "weights": "tiny", "detail": "fake"}

    @staticmethod
    def wave_for(payload: dict) -> np.ndarray:
        t = np.arange(len(payload["text"]) * 240) / SR
        return (0.3 * np.sin(2 * np.pi * (200 + 10 * (payload.get("seed") or 0)) * t)).astype(np.float32)

    async def tts(self, payload):
        self.calls.append(payload)
        await asyncio.sleep(self.delay_s)
        if self.fail_on == len(self.calls) - 1:
            raise self.fail_with
        wave = self.wave_for(payload)
        return {"wav": encode_wav(wave, SR, payload.get("subtype", "PCM_16")), "sample_rate": SR,
                "duration": len(wave) / SR, "weights": "tiny"}


def reference():
    buf = io.BytesIO()
    sf.write(buf, (0.2 * np.sin(np.arange(SR) * 0.05)).astype(np.float32), SR, format="WAV")
    return buf.getvalue()


def app_with(speech: FakeSpeech):
    app, _ = make_app({"Vevo": speech})
    events: list[dict] = []
    publish = app.state.store.publish
    app.state.store.publish = lambda event: (events.append(event), publish(event))
    return app, events


def post(client_or_url, data, stream=False):
    files = {"reference_audio": ("ref.wav", reference())}
    headers = {"X-API-Key": KEYS[0]}
    if isinstance(client_or_url, str):
        return requests.post(client_or_url + "/api/tts/vevo", data=data, files=files, headers=headers, stream=stream,
                             timeout=30)
    return client_or_url.post("/api/tts/vevo", data=data, files=files, headers=headers)


# ---------------------------------------------------------------------------------------------
# Sentences


@pytest.mark.parametrize("text,sentences", [
    (TEXT, ["The first sentence is here.", "The second one follows it!", "Is this the third sentence?",
            "And this is the fourth."]),
    ("Hi. My name is Bob. Mr. Smith arrived at 3.14 pm.", ["Hi. My name is Bob.", "Mr. Smith arrived at 3.14 pm."]),
    ('He said "Stop it now!" Then he left the room.', ['He said "Stop it now!"', "Then he left the room."]),
    ("你好。今天天气很好！我们去公园吧？好的。", ["你好。今天天气很好！", "我们去公园吧？好的。"]),
    ("Hello world. 你好，世界。Bonjour à tous!", ["Hello world.", "你好，世界。", "Bonjour à tous!"]),
    ("No punctuation at all", ["No punctuation at all"]),
    ("Short. Tiny.", ["Short. Tiny."]),
    ("A long enough sentence. Ok.", ["A long enough sentence. Ok."]),
    ("  \n ", []),
])
def test_split_sentences(text, sentences):
    assert split_sentences(text) == sentences


def test_sentence_payloads_derive_seed_and_share_target_len():
    payload = {"text": "ignored", "seed": 2**31 - 2, "target_len": 6.0, "reference": object()}
    out = sentence_payloads(payload, ["abcd", "ab", "abcdef"])
    assert [p["text"] for p in out] == ["abcd", "ab", "abcdef"]
    assert [p["seed"] for p in out] == [2**31 - 2, 2**31 - 1, 0]
    assert [p["target_len"] for p in out] == pytest.approx([2.0, 1.0, 3.0])
    assert all(p["reference"] is payload["reference"] for p in out)     # the same prompt: caches hit
    unseeded = sentence_payloads({"text": "x", "seed": None, "target_len": None}, ["a", "b"])
    assert [(p["seed"], p["target_len"]) for p in unseeded] == [(None, None), (None, None)]


# ---------------------------------------------------------------------------------------------
# The route, in process


def test_pcm_stream_is_the_sentences_audio_in_order_with_progress():
    speech = FakeSpeech()
    app, events = app_with(speech)
    with TestClient(app) as client:
        r = post(client, {"text": TEXT, "seed": "3", "stream": "true", "response_format": "pcm"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "audio/pcm" and r.headers["x-sample-rate"] == str(SR)
    assert r.headers["x-amphion-sentences"] == "4" and r.headers["x-amphion-weights"] == "tiny"
    assert "x-audio-duration" not in r.headers and r.headers["content-disposition"].endswith('.pcm"')
    assert [c["seed"] for c in speech.calls] == [3, 4, 5, 6]
    assert all(c["reference"] is speech.calls[0]["reference"] for c in speech.calls)   # one decode, one prompt
    expected = b"".join(formats.pcm16(FakeSpeech.wave_for(c)) for c in speech.calls)
    assert r.content == expected
    statuses = [(e["status"], e["stage"], e["step"]) for e in events]
    assert statuses[0][0] == "queued" and statuses[-1][0] == "completed"
    assert [s for s in statuses if s[1] == "sentence"] == [("running", "sentence", i) for i in range(1, 5)]


def test_wav_stream_decodes_whole_and_one_sentence_equals_the_whole_answer():
    speech = FakeSpeech()
    app, _ = app_with(speech)
    with TestClient(app) as client:
        streamed = post(client, {"text": TEXT, "seed": "1", "stream": "true"})
        single_streamed = post(client, {"text": "Only one sentence here.", "seed": "9", "stream": "true"})
        single_whole = post(client, {"text": "Only one sentence here.", "seed": "9"})
    assert streamed.headers["content-type"] == "audio/wav"
    audio, rate = sf.read(io.BytesIO(streamed.content), dtype="float32")
    assert rate == SR and len(audio) == sum(len(FakeSpeech.wave_for(c)) for c in speech.calls[:4])
    one, _ = sf.read(io.BytesIO(single_streamed.content), dtype="int16")
    whole, _ = sf.read(io.BytesIO(single_whole.content), dtype="int16")
    assert np.array_equal(one, whole)


@pytest.mark.parametrize("data,needle", [
    ({"stream": "true", "response_format": "mp3"}, "cannot be streamed"),
    ({"stream": "true", "response_format": "wav_float"}, "cannot be streamed"),
    ({"response_format": "m4a"}, "response_format"),
])
def test_unstreamable_and_unknown_formats_are_422(data, needle):
    speech = FakeSpeech()
    app, _ = app_with(speech)
    with TestClient(app) as client:
        r = post(client, {"text": TEXT, **data})
    assert r.status_code == 422 and needle in r.text
    assert speech.calls == []


def test_first_sentence_failure_is_an_ordinary_error_response():
    speech = FakeSpeech(fail_on=0, fail_with=APIError(400, "text: no speakable words"))
    app, events = app_with(speech)
    with TestClient(app) as client:
        r = post(client, {"text": TEXT, "stream": "true"})
    assert r.status_code == 400 and r.json() == {"detail": "text: no speakable words"}
    assert events[-1]["status"] == "failed" and len(speech.calls) == 1


# ---------------------------------------------------------------------------------------------
# On the wire (uvicorn)


@pytest.fixture
def serve():
    """serve(app) -> base URL of a uvicorn server running ``app`` in a thread (stopped after the test)."""
    servers = []

    def start(app):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        servers.append((server, thread))
        deadline = time.monotonic() + 10
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        return f"http://127.0.0.1:{port}"

    yield start
    for server, thread in servers:
        server.should_exit = True
        thread.join(5)


def test_chunks_arrive_as_sentences_finish(serve):
    speech = FakeSpeech(delay_s=0.3)
    app, _ = app_with(speech)
    base = serve(app)
    started = time.monotonic()
    with post(base, {"text": TEXT, "stream": "true", "response_format": "pcm"}, stream=True) as r:
        assert r.status_code == 200 and r.headers["transfer-encoding"] == "chunked"
        arrivals = []
        for chunk in r.iter_content(chunk_size=None):
            arrivals.append((time.monotonic() - started, len(chunk)))
    total = arrivals[-1][0]
    assert total >= 4 * 0.3 and len(arrivals) >= 4
    # The first sentence was on the wire while the other three (at least 0.3 s each) were computed;
    # a margin of one sentence for a loaded machine.
    assert arrivals[0][0] <= total - 2 * 0.3
    assert sum(n for _, n in arrivals) == sum(2 * len(FakeSpeech.wave_for(c)) for c in speech.calls)


def test_failure_after_audio_was_sent_cuts_the_transfer(serve):
    speech = FakeSpeech(fail_on=2)
    app, events = app_with(speech)
    base = serve(app)
    received = b""
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        with post(base, {"text": TEXT, "stream": "true", "response_format": "pcm"}, stream=True) as r:
            assert r.status_code == 200
            for chunk in r.iter_content(chunk_size=None):
                received += chunk
    assert received == b"".join(formats.pcm16(FakeSpeech.wave_for(c)) for c in speech.calls[:2])
    assert events[-1]["status"] == "failed" and len(speech.calls) == 3
