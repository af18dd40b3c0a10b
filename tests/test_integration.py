"""The application on a local Ray (two ingress replicas, tiny weights), over real HTTP and WebSockets."""

from __future__ import annotations

import asyncio
import io
import json
import time

import httpx
import numpy as np
import psutil
import pytest
import soundfile as sf
import websockets

from models import registry
from tests.conftest import G2P_DATA, INGRESS_REPLICAS, VALLE_TEXT, VOICE_DATA

pytestmark = pytest.mark.integration


def wav_bytes(seconds=1.0, sr=24000, channels=1, freq=220.0):
    t = np.arange(int(seconds * sr)) / sr
    x = (0.4 * np.sin(2 * np.pi * freq * t) + 0.05 * np.sin(2 * np.pi * 3 * freq * t)).astype(np.float32)
    data = np.stack([x] * channels, axis=1) if channels > 1 else x
    buf = io.BytesIO()
    sf.write(buf, data, sr, format="WAV", subtype="PCM_16")
    return buf.getvalue()


MULTIPART_HEAD = (b'--x\r\nContent-Disposition: form-data; name="audio"; filename="a.wav"\r\n'
                  b"Content-Type: audio/wav\r\n\r\nRIFF")


def endless_upload(megabytes: int):
    """A well-formed multipart body whose one file never ends before `megabytes` MB."""
    yield MULTIPART_HEAD
    for _ in range(megabytes):
        yield b"1" * (1 << 20)


def post(served, path, key=None, **kwargs):
    headers = kwargs.pop("headers", {})
    headers.setdefault("X-API-Key", key or served.fresh_key())
    return httpx.post(served.base_url + path, headers=headers, timeout=120, **kwargs)


@pytest.mark.parametrize("path,data", [
    ("/api/vocoder/bigvgan", {}),
    ("/api/vocoder/hifigan", {}),
    ("/api/vocoder/generic", {"vocoder_name": "bigvgan"}),
    ("/api/vocoder/generic", {"vocoder_name": "hifigan"}),
    ("/api/vocoder/generic", {"vocoder_name": "nsf_hifigan"}),
])
def test_vocoder_success(served, path, data):
    source = wav_bytes(1.0, sr=44100, channels=2)
    r = post(served, path, data=data, files={"audio": ("voice.wav", source, "audio/wav")})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "audio/wav"
    assert r.headers["x-sample-rate"] == "24000"
    assert r.headers["x-amphion-weights"] == "tiny"
    out, sr = sf.read(io.BytesIO(r.content), dtype="float32")
    assert sr == 24000
    assert len(out) == (24000 // 256) * 256                      # frames * hop of the 24 kHz analysis
    assert abs(float(r.headers["x-audio-duration"]) - len(out) / sr) < 1e-3
    assert np.isfinite(out).all()
    assert np.sqrt(np.mean(out ** 2)) > 1e-3                     # not silence
    ref, _ = sf.read(io.BytesIO(wav_bytes(1.0)), dtype="float32")
    assert not np.allclose(out, ref[: len(out)], atol=1e-2)      # not the input echoed back


def test_npy_mel_input(served):
    mel = (np.random.default_rng(0).standard_normal((100, 40)) * 1.5 - 5).astype(np.float32)
    buf = io.BytesIO()
    np.save(buf, mel)
    r = post(served, "/api/vocoder/bigvgan", data={"response_format": "wav_float"},
             files={"audio": ("mel.npy", buf.getvalue(), "application/octet-stream")})
    assert r.status_code == 200, r.text
    out, sr = sf.read(io.BytesIO(r.content), dtype="float32")
    info = sf.info(io.BytesIO(r.content))
    assert info.subtype == "FLOAT" and len(out) == 40 * 256 and np.isfinite(out).all()


def test_same_input_same_output(served):
    source = wav_bytes(0.5)
    a = post(served, "/api/vocoder/hifigan", files={"audio": ("a.wav", source, "audio/wav")})
    b = post(served, "/api/vocoder/hifigan", files={"audio": ("a.wav", source, "audio/wav")})
    assert a.status_code == b.status_code == 200
    assert a.content == b.content


@pytest.mark.parametrize("case", ["no_key", "bad_key", "not_audio", "corrupt", "too_short", "missing_field",
                                  "bad_vocoder_name", "out_of_range", "bad_task_id", "content_length", "streamed",
                                  "wrong_method"])
def test_error_codes(served, case):
    good = wav_bytes(0.5)
    expect = {"no_key": 401, "bad_key": 401, "not_audio": 415, "corrupt": 400, "too_short": 400,
              "missing_field": 422, "bad_vocoder_name": 422, "out_of_range": 422, "bad_task_id": 400,
              "content_length": 413, "streamed": 411, "wrong_method": 405}[case]
    url = served.base_url + "/api/vocoder/hifigan"
    key = {"X-API-Key": served.fresh_key()}
    if case == "no_key":
        r = httpx.post(url, files={"audio": ("a.wav", good)})
    elif case == "bad_key":
        r = httpx.post(url, headers={"X-API-Key": "it-key-999"}, files={"audio": ("a.wav", good)})
    elif case == "not_audio":
        r = httpx.post(url, headers=key, files={"audio": ("a.wav", b"<html>not audio</html>" * 10, "audio/wav")})
    elif case == "corrupt":
        r = httpx.post(url, headers=key, files={"audio": ("a.wav", good[:30], "audio/wav")})
    elif case == "too_short":
        r = httpx.post(url, headers=key, files={"audio": ("a.wav", wav_bytes(0.01), "audio/wav")})
    elif case == "missing_field":
        r = httpx.post(url, headers=key, data={"x": "1"})
    elif case == "bad_vocoder_name":
        r = httpx.post(served.base_url + "/api/vocoder/generic", headers=key, data={"vocoder_name": "melgan"},
                       files={"audio": ("a.wav", good)})
    elif case == "out_of_range":
        r = httpx.post(served.base_url + "/api/tta/audioldm", headers=key,
                       data={"text": "rain", "audio_length_in_s": "31"})
    elif case == "bad_task_id":
        r = httpx.post(url, headers={**key, "X-Task-ID": "../etc"}, files={"audio": ("a.wav", good)})
    elif case == "content_length":
        r = httpx.post(url, headers={**key, "Content-Type": "multipart/form-data; boundary=x"},
                       content=b"0" * (6 * 1024 * 1024))
    elif case == "streamed":
        r = httpx.post(url, headers={**key, "Content-Type": "multipart/form-data; boundary=x"},
                       content=endless_upload(6))
    elif case == "wrong_method":
        r = httpx.get(url, headers=key)
    assert r.status_code == expect, r.text
    body = r.json()
    assert "detail" in body
    if expect != 422:
        detail = body["detail"]
        assert isinstance(detail, str) and "Traceback" not in detail and ".py" not in detail and "/tmp" not in detail


def test_rate_limit_shared_by_two_ingress_replicas(served):
    from ray import serve

    ingress = serve.status().applications["amphion"].deployments["AmphionIngress"]
    assert ingress.replica_states.get("RUNNING") == 2
    key = served.fresh_key()

    async def one(client):
        # Refused after the limiter counts it and before any model runs (an undecodable upload: 400).
        return await client.post(served.base_url + "/api/vocoder/hifigan", headers={"X-API-Key": key},
                                 files={"audio": ("a.wav", wav_bytes(0.3)[:30], "audio/wav")})

    async def burst():
        # Concurrent requests spread over both replicas; the count must still be global.
        async with httpx.AsyncClient(timeout=60) as client:
            return await asyncio.gather(*[one(client) for _ in range(14)])

    responses = asyncio.run(burst())
    codes = sorted(r.status_code for r in responses)
    assert codes.count(400) == 10 and codes.count(429) == 4
    remaining = sorted(int(r.headers["x-ratelimit-remaining"]) for r in responses if r.status_code == 400)
    assert remaining == list(range(10))
    limited = [r for r in responses if r.status_code == 429][0]
    assert 1 <= int(limited.headers["retry-after"]) <= 60
    assert limited.headers["x-ratelimit-limit"] == "10"


async def _collect(served, task_id, key):
    events = []
    async with websockets.connect(f"{served.ws_url}/ws/progress/{task_id}",
                                  additional_headers={"X-API-Key": key}) as ws:
        async for message in ws:
            events.append(json.loads(message))
        code = ws.close_code
    return events, code


def test_progress_events_over_the_socket(served):
    key = served.fresh_key()
    task_id = f"it-progress-{time.time_ns()}"

    async def scenario():
        listener = asyncio.create_task(_collect(served, task_id, key))
        await asyncio.sleep(0.5)  # connected before the request starts
        async with httpx.AsyncClient(timeout=60) as client:
            r = await client.post(served.base_url + "/api/vocoder/generic",
                                  headers={"X-API-Key": key, "X-Task-ID": task_id},
                                  data={"vocoder_name": "nsf_hifigan"},
                                  files={"audio": ("a.wav", wav_bytes(0.5))})
        return r, await asyncio.wait_for(listener, 30)

    r, (events, code) = asyncio.run(scenario())
    assert r.status_code == 200 and r.headers["x-task-id"] == task_id
    statuses = [e["status"] for e in events]
    assert statuses[0] == "queued" and "running" in statuses and statuses[-1] == "completed"
    assert all(e["task_id"] == task_id for e in events)
    assert events[-1]["progress"] == 1.0 and code == 1000


def test_socket_on_a_finished_task_gets_the_final_event(served):
    key = served.fresh_key()
    r = post(served, "/api/vocoder/hifigan", key=key, files={"audio": ("a.wav", wav_bytes(0.5))})
    assert r.status_code == 200
    events, code = asyncio.run(_collect(served, r.headers["x-task-id"], key))
    assert [e["status"] for e in events] == ["completed"] and code == 1000


def test_failed_task_reports_failed(served):
    key = served.fresh_key()
    task_id = f"it-failed-{time.time_ns()}"
    r = post(served, "/api/vocoder/hifigan", key=key, headers={"X-Task-ID": task_id},
             files={"audio": ("a.wav", wav_bytes(0.01))})
    assert r.status_code == 400
    events, _ = asyncio.run(_collect(served, task_id, key))
    assert events[-1]["status"] == "failed" and "too short" in events[-1]["detail"]


def test_socket_with_bad_key_closes_1008(served):
    async def scenario():
        async with websockets.connect(f"{served.ws_url}/ws/progress/some-task-123?api_key=wrong") as ws:
            with pytest.raises(websockets.ConnectionClosed):
                await ws.recv()
            return ws.close_code

    assert asyncio.run(scenario()) == 1008


def test_health_reports_models_and_weights(served):
    r = httpx.get(served.base_url + "/api/health")
    assert r.status_code == 200
    body = r.json()
    assert body["version"] == "1.0.0"
    assert body["models"]["hifigan"] == {**body["models"]["hifigan"], "status": "ready", "running": True,
                                         "weights": "tiny"}
    # every promised model is built: none is "not_implemented"; with its data here, each is ready
    statuses = {key: m["status"] for key, m in body["models"].items()}
    assert set(statuses) == set(registry.MODELS) and "not_implemented" not in statuses.values()
    if G2P_DATA.is_dir() and VOICE_DATA.is_dir() and VALLE_TEXT.is_dir():
        assert body["status"] == "healthy" and set(statuses.values()) == {"ready"}, statuses
    assert any("tiny" in w for w in body["warnings"])


def _ingress_processes():
    """This session's ingress replicas (not those of another Ray on the machine)."""
    import ray._private.worker as ray_worker

    raylet = ray_worker._global_node.all_processes["raylet"][0].process.pid
    return [p for p in psutil.Process(raylet).children(recursive=True)
            if any("AmphionIngress" in part for part in (p.cmdline() or []))]


def test_oversized_upload_refused_without_the_ingress_holding_it(served):
    procs = _ingress_processes()
    assert len(procs) == INGRESS_REPLICAS
    before = {p.pid: p.memory_info().rss for p in procs}
    body = MULTIPART_HEAD + b"1" * (64 << 20)   # 64 MB declared in Content-Length; the route allows ~5 MB
    r = httpx.post(served.base_url + "/api/vocoder/hifigan",
                   headers={"X-API-Key": served.fresh_key(), "Content-Type": "multipart/form-data; boundary=x"},
                   content=body, timeout=120)
    assert r.status_code == 413 and "larger than" in r.json()["detail"]
    grown = max(p.memory_info().rss - before[p.pid] for p in procs)
    # Holding the body would cost at least its 64 MB (twice, with Serve's transfer); allow for noise.
    assert grown < 32 * 1024 * 1024, f"an ingress replica grew by {grown / 2**20:.1f} MB"


def test_openapi_served_by_the_application(served):
    spec = httpx.get(served.base_url + "/api/openapi.json").json()
    posts = {p for p in spec["paths"] if p.startswith("/api/") and "post" in spec["paths"][p]}
    # the spec's 22 model routes, plus Metis' extension tasks, plus saving a voice
    assert len(posts) == 26 and {"/api/vc/metis", "/api/se/metis", "/api/tse/metis", "/api/voices"} <= posts
    # and the OpenAI-compatible speech route
    assert "post" in spec["paths"]["/v1/audio/speech"] and "get" in spec["paths"]["/v1/models"]
    assert httpx.get(served.base_url + "/api/docs").status_code == 200

