"""Metrics without Ray: the ingress middleware over the real app (fake models), the model replicas'
request, stage, step and batch hooks over real services, and the Grafana dashboard's queries.

Samples are captured in process (``deployments.metrics.capture``); on Ray the same calls go to
Ray's metrics API (tests/test_integration_metrics.py scrapes them)."""

from __future__ import annotations

import asyncio
import io
import itertools
import json
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from fastapi.testclient import TestClient

from deployments import metrics
from deployments.base import Loaded, ModelService
from deployments.errors import InvalidModelInput
from deployments.progress import ProgressReporter
from serve_app import metrics as ingress_metrics
from serve_app.metrics import UNMATCHED, server_timing
from tests.serving_fakes import KEYS, make_app

DASHBOARD = Path(__file__).resolve().parents[1] / "config" / "grafana" / "amphion.json"
_keys = itertools.cycle(KEYS)


def wav_bytes(seconds=0.5, sr=24000):
    t = np.arange(int(seconds * sr)) / sr
    buf = io.BytesIO()
    sf.write(buf, (0.4 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), sr, format="WAV", subtype="PCM_16")
    return buf.getvalue()


# -- the ingress ---------------------------------------------------------------------------------

def test_middleware_counts_answers_and_refusals_by_route_template():
    app, services = make_app(rate_limit_per_minute=2, rate_limit_per_hour=100)
    key = {"X-API-Key": next(_keys)}
    with metrics.capture() as got, TestClient(app) as c:
        ok = c.post("/api/vocoder/hifigan", headers=key, files={"audio": ("a.wav", wav_bytes(), "audio/wav")})
        assert ok.status_code == 200, ok.text
        assert c.post("/api/vocoder/hifigan").status_code == 401               # no key: the gate's refusal
        assert c.post("/api/vocoder/hifigan", headers=key).status_code == 422  # second of 2 allowed
        assert c.post("/api/vocoder/hifigan", headers=key).status_code == 429
        too_big = c.post("/api/vocoder/bigvgan", content=b"x" * (4 << 20),
                         headers={**key, "Content-Type": "multipart/form-data; boundary=b"})
        assert too_big.status_code == 413
        assert c.get("/api/voices/some-voice-id", headers=key).status_code == 404   # no such voice
        assert c.get("/no/such/page/123", headers=key).status_code == 404
        assert c.get("/api/health").status_code == 200

    route = "/api/vocoder/hifigan"
    requests = ingress_metrics.HTTP_REQUESTS.name
    assert got.of(requests, route=route, method="POST", status="200") == [1.0]
    assert got.of(requests, route=route, method="POST", status="401") == [1.0]
    assert got.of(requests, route=route, method="POST", status="429") == [1.0]
    assert got.of(requests, route="/api/vocoder/bigvgan", status="413") == [1.0]
    assert got.of(ingress_metrics.RATE_LIMITED.name, route=route) == [1.0]
    # Templates, never paths: an id in the path and an unknown path make no series of their own.
    assert got.of(requests, route="/api/voices/{voice_id}", method="GET")
    assert got.of(requests, route=UNMATCHED, status="404") == [1.0]
    assert got.of(requests, route="/api/health", status="200") == [1.0]
    assert all("some-voice-id" not in v and "/123" not in v for s in got for v in s.tags.values())
    assert all(key["X-API-Key"] not in v for s in got for v in s.tags.values())

    latency = got.of(ingress_metrics.HTTP_SECONDS.name, route=route, method="POST")
    assert len(latency) == 4 and all(0 < s < 30 for s in latency)
    # The body bytes the ingress took in: the whole multipart upload of the 200.
    declared = int(ok.request.headers["content-length"])
    assert declared > len(wav_bytes())
    assert max(got.of(ingress_metrics.UPLOAD_BYTES.name, route=route)) == declared
    assert max(got.of(ingress_metrics.BODY_BYTES.name, route=route)) == declared
    # The stages the route reported in Server-Timing, by name.
    stages = {s.tags["stage"] for s in got if s.name == ingress_metrics.HTTP_STAGE_SECONDS.name
              and s.tags["route"] == route}
    assert {"decode", "model"} <= stages
    # The backend's calls waiting on the deployment: up while the call ran, back to 0 after.
    assert got.of(ingress_metrics.PENDING_CALLS.name, deployment="HiFiGAN") == [1.0, 0.0]
    assert len(services["HiFiGAN"].calls) == 1


def test_server_timing_parsing():
    assert server_timing("decode;dur=12.5, model;dur=1000.0, prompt;desc=hit;dur=3") == [
        ("decode", 0.0125), ("model", 1.0), ("prompt", 0.003)]
    assert server_timing("") == [] and server_timing("garbage, x;desc=1") == []


def test_nothing_is_recorded_or_imported_outside_ray_and_capture():
    """The plain-FastAPI app and scripts: recording is a flag check, the Ray metric is never made."""
    import ray

    if ray.is_initialized():
        pytest.skip("this process runs the integration app's Ray")
    app, _ = make_app()
    with TestClient(app) as c:
        assert c.get("/api/health").status_code == 200
    assert ingress_metrics.HTTP_REQUESTS._ray is None


def test_tags_must_match_the_declaration():
    with metrics.capture(), pytest.raises(ValueError, match="takes tags"):
        ingress_metrics.RATE_LIMITED.inc(route="/x", key="k")


# -- the model replicas --------------------------------------------------------------------------

class _NoStore:
    def publish(self, event):
        pass


class EchoService(ModelService):
    """A service with a request that calls another of its methods, and one that refuses its input."""

    label = "echo"

    def _load(self, loading):
        return Loaded(object(), "tiny")

    async def speak(self, payload: dict) -> dict:
        await self.helper()
        return {"duration": 2.0, "compute_s": 0.5}

    async def helper(self) -> int:
        return 1

    async def refuse(self, payload: dict) -> dict:
        raise InvalidModelInput("no")


def test_service_requests_are_counted_once_with_outcome_duration_queue_and_rtf():
    service = EchoService(weights="tiny", device="cpu", store=_NoStore())
    with metrics.capture() as got:
        asyncio.run(service.speak({}))
        with pytest.raises(InvalidModelInput):
            asyncio.run(service.refuse({}))
        asyncio.run(service.describe())
    deployment = metrics.LOCAL
    assert got.of(metrics.REQUESTS.name, deployment=deployment, method="speak", outcome="ok") == [1.0]
    assert got.of(metrics.REQUESTS.name, method="refuse", outcome="invalid_input") == [1.0]
    assert got.of(metrics.REQUESTS.name, method="helper") == []       # inside `speak`: the same request
    assert got.of(metrics.REQUESTS.name, method="describe") == []     # static facts are not requests
    assert got.of(metrics.REALTIME_FACTOR.name, method="speak") == [4.0]
    assert got.of(metrics.AUDIO_SECONDS.name, method="speak") == [2.0]
    assert got.of(metrics.COMPUTE_SECONDS.name, method="speak") == [0.5]
    assert len(got.of(metrics.REQUEST_SECONDS.name, method="speak")) == 1
    assert got.of(metrics.ONGOING.name, deployment=deployment) == [1.0, 0.0, 1.0, 0.0]


def test_stage_steps_and_batches():
    with metrics.capture() as got:
        with metrics.stage("text_to_semantic"):
            pass
        with pytest.raises(RuntimeError), metrics.stage("refused"):
            raise RuntimeError("bad input")
        metrics.record_stage("vocode", 0.25, batch_size=3)
        reporter = ProgressReporter(None, None)
        reporter.step("vocoding", 0, 1)            # an announcement, not a step
        for step in range(1, 4):
            reporter.step("t2s", step, 3)
    assert len(got.of(metrics.STAGE_SECONDS.name, stage="text_to_semantic")) == 1
    assert got.of(metrics.STAGE_SECONDS.name, stage="refused") == []
    assert got.of(metrics.STAGE_SECONDS.name, stage="vocode") == [0.25]
    assert got.of(metrics.BATCH_SIZE.name, stage="vocode") == [3.0]
    assert got.of(metrics.STEPS.name, stage="t2s") == [1.0, 1.0, 1.0]
    assert got.of(metrics.STEPS.name, stage="vocoding") == []


def test_a_real_vocoder_reports_its_batch_and_realtime_factor():
    from deployments.vocoder import VocoderService

    service = VocoderService("hifigan", weights="tiny", device="cpu", store=_NoStore())
    audio = np.sin(np.linspace(0, 400, 24000)).astype(np.float32) * 0.3
    with metrics.capture() as got:
        result = asyncio.run(service.vocode({"audio": audio}))
    assert result["duration"] > 0
    assert got.of(metrics.REQUESTS.name, method="vocode", outcome="ok") == [1.0]
    assert got.of(metrics.BATCH_SIZE.name, stage="vocode") == [1.0]
    assert len(got.of(metrics.STAGE_SECONDS.name, stage="vocode")) == 1
    rtf = got.of(metrics.REALTIME_FACTOR.name, method="vocode")
    assert len(rtf) == 1 and rtf[0] == pytest.approx(result["duration"] / result["compute_s"])


# -- the dashboard -------------------------------------------------------------------------------

def _exprs(dashboard: dict) -> list[str]:
    return [t["expr"] for p in dashboard["panels"] if p["type"] != "row" for t in p["targets"]]


def test_grafana_dashboard_queries_only_metrics_we_export_and_shows_them_all():
    dashboard = json.loads(DASHBOARD.read_text())
    exported = metrics.exported_names()
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert panels and len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    for panel in panels:
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            named = set(re.findall(r"\bray_amphion_\w+", target["expr"]))
            assert named, f"{panel['title']}: {target['expr']}"
            assert named <= exported, f"{panel['title']} queries metrics we do not export: {named - exported}"
    shown = {name for expr in _exprs(dashboard) for name in re.findall(r"\bray_amphion_\w+", expr)}
    missing = [m.name for m in metrics.DECLARED if not set(m.exported) & shown]
    assert not missing, f"metrics without a panel: {missing}"
    for variable in ("route", "deployment"):
        assert set(re.findall(r"\bray_amphion_\w+", variables[variable]["definition"])) <= exported
