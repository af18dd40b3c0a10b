"""Weights ``auto`` in a real Ray Serve replica: the replica is up (its app RUNNING, its methods
answering) while it downloads BigVGAN's official files from a local hub-compatible server, then it
serves them. One extra application next to the suite's (which keeps its tiny weights)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from tests.local_hub import LocalHub
from tests.test_weights_startup_download import BIGVGAN_REPO, _bigvgan_repo

pytestmark = pytest.mark.integration

APP = "weights-download-check"


def test_a_replica_serves_while_it_downloads_then_serves_official_weights(served, tmp_path):
    from ray import serve

    from deployments.vocoder import VocoderDeployment

    files, _ = _bigvgan_repo()
    with LocalHub() as hub:
        hub.add_repo(BIGVGAN_REPO, files)
        hub.held = {"bigvgan_generator.pt"}
        env = {"HF_ENDPOINT": hub.url, "AMPHION_DATA_CACHE": str(tmp_path / "data")}
        deployment = VocoderDeployment.options(name="BigVGANDownload", ray_actor_options={
            "num_cpus": 0.1, "runtime_env": {"env_vars": env}})
        started = time.monotonic()
        serve.run(deployment.bind(vocoder_name="bigvgan", weights="auto", cache_dir=str(tmp_path / "hf")),
                  name=APP, route_prefix=None, blocking=False)
        try:
            handle = serve.get_app_handle(APP)
            info = handle.info.remote().result(timeout_s=60)
            assert info["status"] == "downloading", info  # up and answering, the weights on their way
            assert serve.status().applications[APP].status == "RUNNING"
            assert time.monotonic() - started < 60
            hub.release.set()
            deadline = time.monotonic() + 60
            while info["status"] == "downloading" and time.monotonic() < deadline:
                time.sleep(0.2)
                info = handle.info.remote().result(timeout_s=10)
            assert info["status"] == "ready" and info["weights"] == "pretrained", info
            mel = np.random.default_rng(1).standard_normal((100, 16)).astype(np.float32)
            result = handle.vocode.remote({"mel": mel, "subtype": "FLOAT"}).result(timeout_s=60)
            assert result["weights"] == "pretrained"
        finally:
            serve.delete(APP)
    assert any(r.startswith("GET /nvidia/") for r in hub.requests)
