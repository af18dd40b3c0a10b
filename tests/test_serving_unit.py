"""Unit tests of the serving layer (no Ray): auth, limits, uploads, errors, task ids, OpenAPI."""

from __future__ import annotations

import io
import itertools

import numpy as np
import pytest
import soundfile as sf
from fastapi.testclient import TestClient

from serve_app.settings import DEV_API_KEY, ConfigurationError, keys_from_environment, load_settings
from tests.serving_fakes import KEYS, FakeVocoder, make_app

_keys = itertools.cycle(KEYS)


def wav_bytes(seconds=0.5, sr=24000, channels=1, freq=220.0):
    t = np.arange(int(seconds * sr)) / sr
    x = 0.4 * np.sin(2 * np.pi * freq * t).astype(np.float32)
    data = np.stack([x] * channels, axis=1) if channels > 1 else x
    buf = io.BytesIO()
    sf.write(buf, data, sr, format="WAV", subtype="PCM_16")
    return buf.getvalue()


@pytest.fixture
def client():
    app, services = make_app()
    with TestClient(app) as c:
        c.services = services
        yield c


def key():
    return {"X-API-Key": next(_keys)}


def test_vocoder_route_returns_wav_with_headers(client):
    r = client.post("/api/vocoder/hifigan", headers=key(), files={"audio": ("x.wav", wav_bytes(), "audio/wav")})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "audio/wav"
    assert r.headers["x-sample-rate"] == "24000"
    assert r.headers["x-amphion-weights"] == "tiny"
    assert len(r.headers["x-task-id"]) == 32
    data, sr = sf.read(io.BytesIO(r.content))
    assert sr == 24000 and len(data) == (12000 // 256) * 256
    # the route passed decoded mono audio at the model's rate to the deployment
    sent = client.services["HiFiGAN"].calls[-1]
    assert sent["audio"].dtype == np.float32 and sent["audio"].shape == (12000,)


def test_stereo_44k_is_mixed_down_and_resampled(client):
    r = client.post("/api/vocoder/bigvgan", headers=key(),
                    files={"audio": ("x.flac", wav_bytes(1.0, 44100, channels=2), "audio/flac")})
    assert r.status_code == 200
    assert client.services["BigVGAN"].calls[-1]["audio"].shape == (24000,)


def test_missing_and_wrong_key_are_401_before_anything_else(client):
    r = client.post("/api/vocoder/hifigan")
    assert r.status_code == 401 and "X-API-Key" in r.json()["detail"]
    r = client.post("/api/vocoder/hifigan", headers={"X-API-Key": "nope"})
    assert r.status_code == 401
    assert "x-ratelimit-limit" not in r.headers  # unauthenticated requests are not counted


def test_dev_key_only_in_dev_mode():
    app, _ = make_app()
    with TestClient(app) as c:
        assert c.post("/api/tts/maskgct", headers={"X-API-Key": DEV_API_KEY}).status_code == 401
    app, _ = make_app(dev_mode=True)
    with TestClient(app) as c:
        assert c.post("/api/tts/maskgct", headers={"X-API-Key": DEV_API_KEY}).status_code == 422


def test_exempt_routes_need_no_key(client):
    assert client.get("/api/health").status_code == 200
    assert client.get("/api/openapi.json").status_code == 200
    assert client.get("/api/docs").status_code == 200


def test_production_refuses_to_start_without_keys(tmp_path):
    with pytest.raises(ConfigurationError):
        load_settings({"dev_mode": False}, env={})
    assert load_settings({"dev_mode": True}, env={}).api_keys == []
    f = tmp_path / "keys"
    f.write_text("# comment\nfile-key-1\n\nfile-key-2\n")
    keys = keys_from_environment({"AMPHION_API_KEYS": "a, b", "AMPHION_API_KEYS_FILE": str(f)})
    assert keys == ["a", "b", "file-key-1", "file-key-2"]
    assert load_settings({"api_keys": ["from-config"]}, env={"AMPHION_API_KEYS": "env"}).api_keys == ["env"]


def test_rate_limit_per_endpoint_with_headers():
    app, _ = make_app(rate_limit_per_minute=3, rate_limit_per_hour=100)
    with TestClient(app) as c:
        h = key()
        remaining = []
        for _ in range(3):
            r = c.post("/api/tts/maskgct", headers=h, data={"text": "hi"})
            assert r.status_code == 422  # counted whatever the outcome
            remaining.append(int(r.headers["x-ratelimit-remaining"]))
            assert r.headers["x-ratelimit-limit"] == "3"
        assert remaining == [2, 1, 0]
        r = c.post("/api/tts/maskgct", headers=h, data={"text": "hi"})
        assert r.status_code == 429
        assert 1 <= int(r.headers["retry-after"]) <= 60
        assert "rate limit" in r.json()["detail"]
        # another endpoint has its own per-minute budget
        assert c.post("/api/tts/vevo", headers=h, data={"text": "hi"}).status_code == 422


def test_hourly_limit_spans_endpoints():
    app, _ = make_app(rate_limit_per_minute=10, rate_limit_per_hour=4)
    with TestClient(app) as c:
        h = key()
        codes = [c.post(p, headers=h).status_code
                 for p in ("/api/tts/maskgct", "/api/tts/vevo", "/api/tts/metis", "/api/vc/noro", "/api/vc/vevo-style")]
        assert codes == [422, 422, 422, 422, 429]


def test_content_length_over_limit_is_413_without_reading():
    app, services = make_app()
    with TestClient(app) as c:
        body = b"x" * (4 * 1024 * 1024)
        r = c.post("/api/vocoder/hifigan", headers={**key(), "Content-Type": "multipart/form-data; boundary=b"},
                   content=body)
        assert r.status_code == 413
        assert services["HiFiGAN"].calls == []


def test_streamed_body_over_limit_is_413():
    app, _ = make_app()

    def chunks():
        yield (b'--b\r\nContent-Disposition: form-data; name="audio"; filename="a.wav"\r\n\r\nRIFF')
        for _ in range(64):
            yield b"y" * 65536

    with TestClient(app) as c:
        r = c.post("/api/vocoder/hifigan", headers={**key(), "Content-Type": "multipart/form-data; boundary=b"},
                   content=chunks())
        assert r.status_code == 413


def test_field_limit_applies_per_field():
    app, _ = make_app(max_content_mb=3, max_reference_mb=0.5)
    big = wav_bytes(30.0)  # ~1.4 MB: fine for content, too big for a reference
    with TestClient(app) as c:
        r = c.post("/api/vocoder/hifigan", headers=key(), files={"audio": ("a.wav", big, "audio/wav")})
        assert r.status_code == 400 and "longer than" in r.json()["detail"]  # duration limit 20 s
        r = c.post("/api/vc/noro", headers=key(), files={"source_audio": ("a.wav", wav_bytes(), "audio/wav"),
                                                          "target_audio": ("b.wav", big, "audio/wav")})
        assert r.status_code == 413


def test_format_from_bytes_not_name(client):
    r = client.post("/api/vocoder/hifigan", headers=key(), files={"audio": ("song.wav", b"hello world" * 20, "audio/wav")})
    assert r.status_code == 415
    r = client.post("/api/vocoder/hifigan", headers=key(), files={"audio": ("notes.txt", wav_bytes(), "text/plain")})
    assert r.status_code == 200


def test_corrupt_and_empty_audio_are_400_naming_the_field(client):
    good = wav_bytes()
    r = client.post("/api/vocoder/hifigan", headers=key(), files={"audio": ("a.wav", good[:30], "audio/wav")})
    assert r.status_code == 400 and r.json()["detail"].startswith("audio")
    empty = io.BytesIO()
    sf.write(empty, np.zeros((0,), np.float32), 24000, format="WAV")
    r = client.post("/api/vocoder/hifigan", headers=key(), files={"audio": ("a.wav", empty.getvalue(), "audio/wav")})
    assert r.status_code == 400 and "audio" in r.json()["detail"]


def test_npy_mel_input(client):
    mel = (np.random.default_rng(0).standard_normal((100, 20)) - 4).astype(np.float32)
    buf = io.BytesIO()
    np.save(buf, mel)
    r = client.post("/api/vocoder/generic", headers=key(), data={"vocoder_name": "nsf_hifigan"},
                    files={"audio": ("m.npy", buf.getvalue(), "application/octet-stream")})
    assert r.status_code == 200
    assert client.services["NSFHiFiGAN"].calls[-1]["mel"].shape == (100, 20)
    bad = io.BytesIO()
    np.save(bad, np.zeros((80, 20), np.float32))
    r = client.post("/api/vocoder/generic", headers=key(), data={"vocoder_name": "bigvgan"},
                    files={"audio": ("m.npy", bad.getvalue(), "application/octet-stream")})
    assert r.status_code == 400 and "100" in r.json()["detail"]


def test_generic_rejects_unknown_vocoder_name(client):
    r = client.post("/api/vocoder/generic", headers=key(), data={"vocoder_name": "wavenet"},
                    files={"audio": ("a.wav", wav_bytes(), "audio/wav")})
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["body", "vocoder_name"]
    assert "input" not in r.json()["detail"][0]


def test_ranges_are_enforced_with_422(client):
    r = client.post("/api/tta/audioldm", headers=key(), data={"text": "rain", "num_inference_steps": "5"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "num_inference_steps"]
    r = client.post("/api/tta/picoaudio", headers=key(), data={"text": "rain", "duration": "11"})
    assert r.status_code == 422


def test_route_whose_deployment_is_absent_is_503_naming_it(client):
    # this app holds the vocoders only (as args.models: [vocoders] builds it)
    r = client.post("/api/svc/transformersvc", headers=key(), data={"target_singer": "x"},
                    files={"content_audio": ("s.wav", wav_bytes())})
    assert r.status_code == 503 and r.json()["detail"] == "SVC is not deployed here (args.models)"
    health = client.get("/api/health").json()
    assert health["models"]["transformersvc"]["status"] == "not_deployed"
    assert health["models"]["transformersvc"]["detail"] == "SVC is not deployed here (args.models)"
    assert health["models"]["hifigan"]["status"] == "ready"
    assert health["status"] == "healthy"  # families left out on purpose do not degrade the application


def test_unexpected_error_is_500_with_request_id_and_no_leak():
    app, services = make_app({"HiFiGAN": FakeVocoder(fail_with=RuntimeError("boom at /srv/secret/model.pt")),
                              "BigVGAN": FakeVocoder(), "NSFHiFiGAN": FakeVocoder()})
    with TestClient(app, raise_server_exceptions=False) as c:
        r = c.post("/api/vocoder/hifigan", headers=key(), files={"audio": ("a.wav", wav_bytes(), "audio/wav")})
        assert r.status_code == 500
        detail = r.json()["detail"]
        assert "secret" not in detail and "boom" not in detail and "Traceback" not in r.text
        assert r.headers["x-request-id"] in detail
        # and the server keeps serving
        assert c.post("/api/vocoder/bigvgan", headers=key(),
                      files={"audio": ("a.wav", wav_bytes(), "audio/wav")}).status_code == 200


def test_model_without_weights_is_503():
    app, _ = make_app({"HiFiGAN": FakeVocoder(unavailable=True), "BigVGAN": FakeVocoder(), "NSFHiFiGAN": FakeVocoder()})
    with TestClient(app) as c:
        r = c.post("/api/vocoder/hifigan", headers=key(), files={"audio": ("a.wav", wav_bytes(), "audio/wav")})
        assert r.status_code == 503 and "no weights" in r.json()["detail"]


def test_client_task_id_is_used_and_validated(client):
    h = {**key(), "X-Task-ID": "my-task-0001"}
    r = client.post("/api/vocoder/hifigan", headers=h, files={"audio": ("a.wav", wav_bytes(), "audio/wav")})
    assert r.headers["x-task-id"] == "my-task-0001"
    assert client.services["HiFiGAN"].calls[-1]["task_id"] == "my-task-0001"
    r = client.post("/api/vocoder/hifigan", headers={**key(), "X-Task-ID": "bad id!"},
                    files={"audio": ("a.wav", wav_bytes(), "audio/wav")})
    assert r.status_code == 400 and "X-Task-ID" in r.json()["detail"]


def test_progress_socket_sees_events_and_final_event_after_end(client):
    h = {**key(), "X-Task-ID": "task-progress-1"}
    assert client.post("/api/vocoder/hifigan", headers=h,
                       files={"audio": ("a.wav", wav_bytes(), "audio/wav")}).status_code == 200
    with client.websocket_connect("/ws/progress/task-progress-1", headers=key()) as ws:
        event = ws.receive_json()
        assert event["status"] == "completed" and event["progress"] == 1.0
        assert set(event) == {"task_id", "status", "stage", "step", "total_steps", "progress", "detail", "timestamp"}


def test_progress_socket_bad_key_closes_1008(client):
    from starlette.websockets import WebSocketDisconnect

    with client.websocket_connect("/ws/progress/task-xyz-123?api_key=wrong") as ws:
        with pytest.raises(WebSocketDisconnect) as info:
            ws.receive_json()
        assert info.value.code == 1008


def test_openapi_lists_all_routes_with_fields_and_security(client):
    spec = client.get("/api/openapi.json").json()
    model_paths = [p for p in spec["paths"]
                   if p.startswith("/api/") and "post" in spec["paths"][p] and p != "/api/voices"]  # voices: no model
    # the spec's 22, plus Metis' extension tasks (decisions.md)
    extensions = {"/api/vc/metis", "/api/se/metis", "/api/tse/metis"}
    assert len(model_paths) == 25 and extensions <= set(model_paths)
    assert spec["components"]["securitySchemes"]["APIKeyHeader"] == {"type": "apiKey", "in": "header", "name": "X-API-Key"}
    op = spec["paths"]["/api/tta/audioldm"]["post"]
    assert op["security"] == [{"APIKeyHeader": []}, {"BearerAuth": []}]     # either one
    assert spec["components"]["securitySchemes"]["BearerAuth"] == {
        "type": "http", "scheme": "bearer", "description": "The same key as X-API-Key"}
    assert "audio/wav" in op["responses"]["200"]["content"]
    ref = op["requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"]["$ref"].split("/")[-1]
    props = spec["components"]["schemas"][ref]["properties"]
    assert props["num_inference_steps"]["minimum"] == 10 and props["num_inference_steps"]["maximum"] == 200
    assert props["audio_length_in_s"]["default"] == 5.0
    assert "GET" not in {m.upper() for m in spec["paths"]["/api/tts/maskgct"]}


def test_get_on_post_route_is_405_and_unknown_path_404(client):
    assert client.get("/api/tts/maskgct", headers=key()).status_code == 405
    assert client.post("/api/nope", headers=key()).status_code == 404
