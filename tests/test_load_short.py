"""The short load test (16 clients x 30 s over vocoders, a codec, a TTS and a VC, several keys, progress
sockets open): only 200 / 429 with Retry-After / 503 with a reason; every accepted request gets its
final progress event; the ingress replicas' memory stays bounded. The generator is scripts/load_test.py."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from tests.conftest import INTEGRATION_ARGS

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

from load_test import format_report, run_load  # noqa: E402

pytestmark = pytest.mark.integration

#: An ingress replica is a FastAPI app on a Ray worker: ~0.4-0.6 GiB idle here; more than this means a leak.
RSS_BOUND_MIB = 1536
GROWTH_BOUND_MIB = 256


def test_short_load(served):
    keys = [served.fresh_key() for _ in range(6)]
    report = asyncio.run(run_load(served.base_url, keys, clients=16, duration_s=30,
                                  max_upload_s=INTEGRATION_ARGS["max_content_seconds"], progress_fraction=0.5,
                                  progress_timeout_s=60, request_timeout_s=120))
    print(format_report(report))
    assert report["ok"], report["problems"]
    assert report["statuses"].get("200", 0) > 0
    assert report["progress_checked"] > 0 and report["progress_final_completed"] == report["progress_checked"]
    rss = report["ingress_rss"]
    assert rss["sampled"], rss
    assert rss["peak_mib"] < RSS_BOUND_MIB, rss
    assert all(p["growth_mib"] < GROWTH_BOUND_MIB for p in rss["per_pid"].values()), rss
