"""`stream=true` on the TTS routes through the running application (tiny weights): sentence chunks
arrive one by one before the response completes (through Ray Serve's proxy), the streamed WAV
decodes and the PCM is its frames, seeds make a stream reproducible, progress has a step per
sentence, a stream cannot be mp3 (422), and a sentence failing after audio was sent cuts the
transfer off."""

from __future__ import annotations

import io
import time
from dataclasses import dataclass

import numpy as np
import pytest
import requests
import soundfile as sf

from tests.conftest import G2P_DATA, VALLE_TEXT

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not G2P_DATA.is_dir(), reason=f"G2P reference data not found at {G2P_DATA}")]

SR = 24000
TEXT = ("The first sentence is here. The second one follows it! Is this the third sentence? "
        "And this is the fourth.")
REFERENCE_TEXT = "A reference sentence spoken here."
# Each route with settings that keep tiny weights quick.
ROUTES = {
    "/api/tts/maskgct": {"reference_text": REFERENCE_TEXT, "language": "en", "n_timesteps": "4"},
    "/api/tts/vevo": {"language": "en", "flow_matching_steps": "2"},
    "/api/tts/metis": {"reference_text": REFERENCE_TEXT, "language": "en", "n_timesteps": "4"},
    "/api/tts/dualcodec-valle": {"reference_text": REFERENCE_TEXT},
}


def voice_wav(seconds: float = 2.0, f0: float = 170, sr: int = SR) -> bytes:
    t = np.arange(int(seconds * sr)) / sr
    x = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 6)) * 0.2 * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))
    buf = io.BytesIO()
    sf.write(buf, x.astype(np.float32), sr, format="WAV")
    return buf.getvalue()


@dataclass
class Streamed:
    response: requests.Response
    arrivals: list[float]        # seconds from the request to each chunk
    total_s: float               # seconds until the body ended
    body: bytes


def stream(served, path, key, task_id=None, **fields) -> Streamed:
    data = {"text": TEXT, "seed": "11", "stream": "true", **ROUTES[path], **fields}
    headers = {"X-API-Key": key, **({"X-Task-ID": task_id} if task_id else {})}
    started = time.monotonic()
    arrivals, body = [], b""
    with requests.post(served.base_url + path, headers=headers, data=data, stream=True, timeout=300,
                       files={"reference_audio": ("ref.wav", voice_wav())}) as r:
        for chunk in r.iter_content(chunk_size=None):
            arrivals.append(time.monotonic() - started)
            body += chunk
    return Streamed(r, arrivals, time.monotonic() - started, body)


@pytest.mark.parametrize("path", list(ROUTES))
def test_stream_sends_sentences_as_they_are_ready(served, path):
    if path == "/api/tts/dualcodec-valle" and not VALLE_TEXT.is_dir():
        pytest.skip(f"VALL-E text vocabulary not found at {VALLE_TEXT}")
    s = stream(served, path, served.fresh_key())
    r = s.response
    assert r.status_code == 200, s.body
    assert r.headers["content-type"] == "audio/wav" and r.headers["transfer-encoding"] == "chunked"
    assert r.headers["x-sample-rate"] == str(SR) and r.headers["x-amphion-weights"] == "tiny"
    assert r.headers["x-amphion-sentences"] == "4" and r.headers["x-task-id"]
    assert len(s.arrivals) > 1
    assert s.arrivals[0] < s.arrivals[-1] and s.arrivals[0] < s.total_s
    audio, rate = sf.read(io.BytesIO(s.body), dtype="float32")
    assert rate == SR and len(audio) == (len(s.body) - 44) // 2 and np.isfinite(audio).all()
    assert np.sqrt(np.mean(audio ** 2)) > 1e-4


def test_pcm_stream_is_the_wav_streams_frames_reproducibly_with_progress(served):
    key = served.fresh_key()
    task_id = f"it-stream-{time.time_ns()}"
    wav, events = served.with_progress(key, task_id, lambda: stream(served, "/api/tts/maskgct", key, task_id))
    pcm = stream(served, "/api/tts/maskgct", key, response_format="pcm")
    assert pcm.response.status_code == 200 and pcm.response.headers["content-type"] == "audio/pcm"
    assert pcm.response.headers["content-disposition"] == 'attachment; filename="maskgct_output.pcm"'
    assert len(pcm.body) % 2 == 0 and len(pcm.body) > 0
    assert pcm.body == wav.body[44:]                 # same seed, same sentences: the same frames
    sentences = [e for e in events if e["stage"] == "sentence"]
    assert [(e["step"], e["total_steps"]) for e in sentences] == [(i, 4) for i in range(1, 5)]
    assert events[0]["status"] == "queued" and events[-1]["status"] == "completed"


def test_stream_in_mp3_is_422(served):
    r = requests.post(served.base_url + "/api/tts/vevo", headers={"X-API-Key": served.fresh_key()},
                      data={"text": TEXT, "stream": "true", "response_format": "mp3"},
                      files={"reference_audio": ("ref.wav", voice_wav())}, timeout=60)
    assert r.status_code == 422
    assert "cannot be streamed" in r.json()["detail"][0]["msg"]


def test_a_sentence_failing_after_audio_was_sent_cuts_the_transfer(served):
    """With language=auto each sentence is detected on its own: the Japanese one has no G2P here,
    which a whole request would have refused with 400 at once; streamed, the first sentence has
    been sent already, so the client sees a broken transfer, and the task ends failed."""
    key = served.fresh_key()
    task_id = f"it-stream-cut-{time.time_ns()}"
    text = "This first sentence is fine. これは日本語の文です。"

    def call():
        received = []
        with pytest.raises(requests.exceptions.ChunkedEncodingError):
            with requests.post(served.base_url + "/api/tts/vevo", headers={"X-API-Key": key, "X-Task-ID": task_id},
                               data={"text": text, "language": "auto", "flow_matching_steps": "2", "seed": "1",
                                     "stream": "true", "response_format": "pcm"},
                               files={"reference_audio": ("ref.wav", voice_wav())}, stream=True, timeout=300) as r:
                assert r.status_code == 200
                for chunk in r.iter_content(chunk_size=None):
                    received.append(chunk)
        return b"".join(received)

    received, events = served.with_progress(key, task_id, call)
    assert len(received) > 0 and len(received) % 2 == 0
    assert events[-1]["status"] == "failed"
