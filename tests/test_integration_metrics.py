"""Our metrics on Ray's metrics endpoint: after a vocoder call, a MaskGCT TTS and a key run past its
per-minute limit, the node's Prometheus endpoint shows them with their tags and plausible values.

Ray exports what replicas record every few seconds, so the test polls until the counts have moved
(with a deadline) instead of sleeping a fixed time."""

from __future__ import annotations

import io
import time
import urllib.request
from collections import defaultdict

import httpx
import numpy as np
import pytest
import soundfile as sf

from deployments.metrics import SECONDS_BUCKETS
from tests.conftest import G2P_DATA

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not G2P_DATA.is_dir(), reason=f"G2P reference data not found at {G2P_DATA}")]

# Labels Ray adds to every series (which process recorded it): summed over.
RAY_LABELS = frozenset({"Component", "NodeAddress", "SessionName", "Version", "WorkerId", "JobId",
                        "otel_scope_name", "otel_scope_schema_url", "otel_scope_version"})
EXPORT_DEADLINE_S = 90
VOCODER = "/api/vocoder/hifigan"
TTS = "/api/tts/maskgct"


def wav_bytes(seconds=1.0, sr=24000):
    t = np.arange(int(seconds * sr)) / sr
    f0 = 150 + 20 * np.sin(2 * np.pi * 0.5 * t)
    x = 0.3 * np.sin(2 * np.pi * np.cumsum(f0) / sr)
    buf = io.BytesIO()
    sf.write(buf, x.astype(np.float32), sr, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def metrics_url() -> str:
    import ray

    node = next(n for n in ray.nodes() if n["Alive"])
    return f"http://{node['NodeManagerAddress']}:{node['MetricsExportPort']}/metrics"


class Scrape:
    """Our series on the endpoint, summed over Ray's per-process labels: (name, tags) -> value."""

    def __init__(self, url: str):
        from prometheus_client.parser import text_string_to_metric_families

        text = urllib.request.urlopen(url, timeout=10).read().decode()
        self.values: dict[tuple[str, frozenset], float] = defaultdict(float)
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name.startswith("ray_amphion_"):
                    tags = frozenset((k, v) for k, v in sample.labels.items() if k not in RAY_LABELS)
                    self.values[(sample.name, tags)] += sample.value

    def total(self, name: str, **tags) -> float:
        want = {(k, str(v)) for k, v in tags.items()}
        return sum(v for (n, t), v in self.values.items() if n == name and want <= t)

    def series(self, name: str, **tags) -> list[dict]:
        want = {(k, str(v)) for k, v in tags.items()}
        return [dict(t) for (n, t) in self.values if n == name and want <= t]


def test_requests_stages_rtf_batches_and_refusals_reach_rays_metrics_endpoint(served):
    url = metrics_url()
    before = Scrape(url)

    # A vocoder call.
    vocoder_key = served.fresh_key()
    upload = wav_bytes(1.0)
    r = httpx.post(served.base_url + VOCODER, headers={"X-API-Key": vocoder_key},
                   files={"audio": ("voice.wav", upload, "audio/wav")}, timeout=120)
    assert r.status_code == 200, r.text
    upload_bytes = int(r.request.headers["content-length"])

    # A TTS whose stages run in MaskGCT's part deployments.
    tts_key = served.fresh_key()
    task_id = f"it-metrics-{time.time_ns()}"
    r = httpx.post(served.base_url + TTS, headers={"X-API-Key": tts_key, "X-Task-ID": task_id},
                   data={"text": "Metrics, please.", "reference_text": "A reference sentence.", "language": "en",
                         "target_len": "1.0", "n_timesteps": "4", "seed": "3"},
                   files={"reference_audio": ("ref.wav", wav_bytes(2.0))}, timeout=300)
    assert r.status_code == 200, r.text

    # A fresh key past its per-minute limit on one endpoint (10 allowed): undecodable uploads, so
    # no model runs; the eleventh is refused with 429.
    limited_key = served.fresh_key()
    codes = [httpx.post(served.base_url + VOCODER, headers={"X-API-Key": limited_key},
                        files={"audio": ("a.wav", upload[:30], "audio/wav")}, timeout=60).status_code
             for _ in range(11)]
    assert codes == [400] * 10 + [429]

    def moved(after: Scrape, name: str, **tags) -> float:
        return after.total(name, **tags) - before.total(name, **tags)

    checks = {
        "vocoder 200": lambda a: moved(a, "ray_amphion_http_requests_total", route=VOCODER, method="POST",
                                       status=200) >= 1,
        "vocoder 400s": lambda a: moved(a, "ray_amphion_http_requests_total", route=VOCODER, status=400) >= 10,
        "429 by status": lambda a: moved(a, "ray_amphion_http_requests_total", route=VOCODER, status=429) >= 1,
        "429 counted": lambda a: moved(a, "ray_amphion_rate_limited_requests_total", route=VOCODER) >= 1,
        "tts 200": lambda a: moved(a, "ray_amphion_http_requests_total", route=TTS, status=200) >= 1,
        "latency samples": lambda a: moved(a, "ray_amphion_http_request_duration_seconds_count",
                                           route=VOCODER) >= 12,
        "upload bytes": lambda a: moved(a, "ray_amphion_http_upload_bytes_total", route=VOCODER) >= upload_bytes,
        "upload sizes": lambda a: moved(a, "ray_amphion_http_request_body_bytes_count", route=VOCODER) >= 12,
        "server-timing stages": lambda a: moved(a, "ray_amphion_http_stage_duration_seconds_count",
                                                route=TTS, stage="model") >= 1,
        "t2s stage": lambda a: moved(a, "ray_amphion_stage_duration_seconds_count", deployment="MaskGCTT2S",
                                     stage="text_to_semantic") >= 1,
        "s2a stage": lambda a: moved(a, "ray_amphion_stage_duration_seconds_count", deployment="MaskGCTS2A",
                                     stage="semantic_to_acoustic") >= 1,
        "t2s steps": lambda a: moved(a, "ray_amphion_generation_steps_total", deployment="MaskGCTT2S",
                                     stage="t2s") >= 1,
        "tts request": lambda a: moved(a, "ray_amphion_deployment_requests_total", deployment="MaskGCT",
                                       method="synthesize", outcome="ok") >= 1,
        "tts rtf": lambda a: moved(a, "ray_amphion_realtime_factor_count", deployment="MaskGCT") >= 1,
        "tts audio seconds": lambda a: moved(a, "ray_amphion_audio_seconds_total", deployment="MaskGCT",
                                             method="synthesize") >= 1.0,
        "vocoder rtf": lambda a: moved(a, "ray_amphion_realtime_factor_count", deployment="HiFiGAN",
                                       method="vocode") >= 1,
        "vocoder batch": lambda a: moved(a, "ray_amphion_batch_size_count", deployment="HiFiGAN",
                                         stage="vocode") >= 1,
        "queue gauges": lambda a: bool(a.series("ray_amphion_deployment_ongoing_requests", deployment="MaskGCT")
                                       and a.series("ray_amphion_ingress_pending_calls", deployment="HiFiGAN")),
    }
    deadline = time.monotonic() + EXPORT_DEADLINE_S
    while True:
        after = Scrape(url)
        failing = [name for name, check in checks.items() if not check(after)]
        if not failing or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert not failing, f"not on {url} within {EXPORT_DEADLINE_S} s: {failing}"

    # Plausible values, in seconds per sample. (Ray reports a histogram's sum from its bucket
    # midpoints: estimates. The T2S stage is not compared with the request's latency: the first
    # scrape may predate the export of an earlier test's T2S samples, which then count here.)
    def mean(name: str, **tags) -> float:
        return moved(after, f"{name}_sum", **tags) / moved(after, f"{name}_count", **tags)

    assert SECONDS_BUCKETS[0] / 2 < mean("ray_amphion_http_request_duration_seconds", route=TTS) < 600
    assert 0 < mean("ray_amphion_stage_duration_seconds", deployment="MaskGCTT2S", stage="text_to_semantic") < 600
    assert moved(after, "ray_amphion_realtime_factor_sum", deployment="MaskGCT") > 0
    # The exact sums (at least this test's second of speech); their ratio is the RTF.
    audio_s = moved(after, "ray_amphion_audio_seconds_total", deployment="MaskGCT", method="synthesize")
    compute_s = moved(after, "ray_amphion_compute_seconds_total", deployment="MaskGCT", method="synthesize")
    assert audio_s >= 1.0 - 1e-6 and compute_s > 0 and audio_s / compute_s > 0
    # Batch sizes have a bucket per size: a lone request's batch counts exactly 1.
    assert moved(after, "ray_amphion_batch_size_sum", deployment="HiFiGAN", stage="vocode") >= 1
    # Histogram buckets are cumulative: the +Inf bucket holds every sample.
    inf = after.total("ray_amphion_http_request_duration_seconds_bucket", route=VOCODER, le="+Inf")
    assert inf == after.total("ray_amphion_http_request_duration_seconds_count", route=VOCODER)
    # Tags are the declared ones, low-cardinality: templates, never keys, task ids or paths with ids.
    for tags in after.series("ray_amphion_http_requests_total", route=VOCODER):
        assert set(tags) == {"route", "method", "status"}
    for (name, tags) in after.values:
        for _, value in tags:
            assert value not in (vocoder_key, tts_key, limited_key) and task_id not in value, (name, dict(tags))
