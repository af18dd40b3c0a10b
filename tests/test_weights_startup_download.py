"""Weights ``auto`` at start-up (deployments/fetching.py), without the internet: services download the
official files they miss from a local hub-compatible HTTP server (tests/local_hub.py, reached through
``HF_ENDPOINT``) in the background, answer 503 "downloading weights: N%" and show the progress in
health meanwhile, then serve the official weights; with the hub unreachable they serve tiny weights
with the resolver's warning; with HF_HUB_OFFLINE they never try. Small checkpoints laid out like the
official ones (as tests/test_vocoders.py and tests/test_audioldm_amphion.py write them)."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
import logging
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from fastapi.testclient import TestClient

from deployments.errors import ModelUnavailable
from models.download_progress import DownloadProgress
from models.weights import FilesNotFound, HubFiles, download, plan_download
from tests.local_hub import UNREACHABLE, LocalHub, use_hub
from tests.serving_fakes import KEYS, make_app

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
BIGVGAN_REPO = "nvidia/bigvgan_v2_24khz_100band_256x"


@pytest.fixture
def hub(monkeypatch, tmp_path):
    """A running local hub the client talks to, and empty caches (HF and pinned files)."""
    for var in ("AMPHION_WEIGHTS_DIR", "AMPHION_HF_CACHE", "AMPHION_G2P_DATA", "AMPHION_VOICE_DATA"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AMPHION_DATA_CACHE", str(tmp_path / "data-cache"))
    with LocalHub() as server:
        use_hub(monkeypatch, server.url)
        yield server


def _bigvgan_repo() -> tuple[dict[str, bytes], object]:
    """BigVGAN's two official files (NVIDIA's layout) for a small generator, and that vocoder."""
    from tests.test_vocoders import _nvidia_config, _source

    raw = _nvidia_config()
    source = _source("bigvgan", raw)
    weights = io.BytesIO()
    torch.save({"generator": source.generator.state_dict()}, weights)
    return {"config.json": json.dumps(raw).encode(), "bigvgan_generator.pt": weights.getvalue(),
            "README.md": b"not asked for"}, source


def _wait_settled(service, timeout: float = 120) -> None:
    fetching = service.fetching
    if fetching is not None:
        fetching.thread.join(timeout)
    assert service.fetching is None, "the start-up download did not finish"


def asyncio_run(coro):
    return asyncio.run(coro)


def _wav(seconds: float = 0.5, sr: int = 24000) -> bytes:
    t = np.arange(int(seconds * sr)) / sr
    buf = io.BytesIO()
    sf.write(buf, (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), sr, format="WAV")
    return buf.getvalue()


# -----------------------------------------------------------------------------------------------
# the one fetching path: plan, download, count bytes (hub repos and pinned files alike)


def test_download_plans_and_counts_hub_and_pinned_bytes(hub, tmp_path):
    from models.pinned import PinnedFile, PinnedSource, sha256_of

    files, _ = _bigvgan_repo()
    hub.add_repo(BIGVGAN_REPO, files)
    official = HubFiles(BIGVGAN_REPO, ("config.json", "bigvgan_generator.pt"))
    cache = str(tmp_path / "hf")
    size = len(files["config.json"]) + len(files["bigvgan_generator.pt"])
    assert plan_download(official, cache_dir=cache) == size
    progress = DownloadProgress("test", stream=io.StringIO())
    progress.plan(size)
    root = download(official, cache_dir=cache, progress=progress)
    assert (root / "bigvgan_generator.pt").read_bytes() == files["bigvgan_generator.pt"]
    assert progress.done == size and progress.summary().startswith("100% (")
    assert plan_download(official, cache_dir=cache) == 0  # all here now
    assert not any(r.endswith("README.md") for r in hub.requests)  # only the patterns are fetched

    stats = b"pinned statistics " * 100
    (tmp_path / "stats.bin").write_bytes(stats)
    hub.raw["abc123/egs/stats.bin"] = stats
    pinned = PinnedSource("test_stats", {"stats.bin": PinnedFile("egs/stats.bin", sha256_of(tmp_path / "stats.bin"),
                                                                 len(stats))},
                          commit="abc123", url_template=hub.url + "/raw/{commit}/{path}")
    pinned_files = HubFiles(None, ("stats.bin",), pinned=pinned)
    assert plan_download(pinned_files) == len(stats)
    progress = DownloadProgress("pinned", stream=io.StringIO())
    progress.plan(len(stats))
    assert (download(pinned_files, progress=progress) / "stats.bin").read_bytes() == stats
    assert progress.done == len(stats) and plan_download(pinned_files) == 0

    with pytest.raises(FilesNotFound, match="no file matches"):  # the repo lacks it: not an unreachable hub
        download(HubFiles(BIGVGAN_REPO, ("model.safetensors",)), cache_dir=cache, progress=False)


# -----------------------------------------------------------------------------------------------
# a vocoder: downloading (503 + health progress), then pretrained


def test_vocoder_downloads_in_the_background_then_serves_official_weights(hub, tmp_path):
    from deployments.vocoder import VocoderService

    files, source = _bigvgan_repo()
    hub.add_repo(BIGVGAN_REPO, files)
    hub.held = {"bigvgan_generator.pt"}  # the big file waits until the test has looked
    started = time.perf_counter()
    service = VocoderService("bigvgan", weights="auto", cache_dir=str(tmp_path / "hf"))
    assert time.perf_counter() - started < 10, "the constructor must not wait for the download"
    assert service.fetching is not None
    app, _ = make_app({"BigVGAN": service})
    headers = {"X-API-Key": KEYS[0]}
    with TestClient(app) as client:
        total = len(files["config.json"]) + len(files["bigvgan_generator.pt"])
        deadline = time.monotonic() + 8
        while True:  # the plan is known once the hub has answered; config.json then arrives, the rest waits
            health = client.get("/api/health").json()["models"]["bigvgan"]
            progress = health.get("progress") or {}
            if progress.get("done_bytes") or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert health["status"] == "downloading" and health["running"] is True and health["weights"] is None
        assert progress == {"done_bytes": len(files["config.json"]), "total_bytes": total,
                            "percent": round(100 * len(files["config.json"]) / total, 1)}, health
        assert health["detail"] == f"downloading weights: 0% ({len(files['config.json'])} B of {total / 1e6:.1f} MB)"
        r = client.post("/api/vocoder/bigvgan", headers=headers, files={"audio": ("a.wav", _wav(), "audio/wav")})
        assert r.status_code == 503
        assert r.json()["detail"].startswith("BigVGAN: downloading weights: ") and "%" in r.json()["detail"]

        hub.release.set()
        _wait_settled(service)
        health = client.get("/api/health").json()["models"]["bigvgan"]
        assert health["status"] == "ready" and health["weights"] == "pretrained" and "progress" not in health
        assert BIGVGAN_REPO in health["detail"]
        r = client.post("/api/vocoder/bigvgan", headers=headers, files={"audio": ("a.wav", _wav(), "audio/wav")})
        assert r.status_code == 200, r.text
        assert r.headers["x-amphion-weights"] == "pretrained"
    # the served generator is the one published: same output as the source model
    mel = np.random.default_rng(0).standard_normal((100, 20)).astype(np.float32)
    np.testing.assert_allclose(service.vocoder.vocode([mel])[0], source.vocode([mel])[0], atol=1e-5)


def test_unreachable_hub_falls_back_to_tiny_with_the_warning(monkeypatch, tmp_path, caplog):
    from deployments.vocoder import VocoderService

    monkeypatch.delenv("AMPHION_WEIGHTS_DIR", raising=False)
    use_hub(monkeypatch, UNREACHABLE)
    with caplog.at_level(logging.WARNING):
        service = VocoderService("bigvgan", weights="auto", cache_dir=str(tmp_path / "hf"))
        _wait_settled(service)
    info = asyncio_run(service.info())
    assert info["status"] == "ready" and info["weights"] == "tiny"
    assert "serving tiny random weights" in info["detail"] and BIGVGAN_REPO in info["detail"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("serving tiny random weights" in w for w in warnings)  # the resolver's, as without downloads
    assert any("official files cannot be downloaded" in w for w in warnings)


def test_offline_never_tries(monkeypatch, tmp_path):
    from deployments.vocoder import VocoderService

    use_hub(monkeypatch, UNREACHABLE)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    service = VocoderService("hifigan", weights="auto", cache_dir=str(tmp_path / "hf"))
    assert service.fetching is None and service.weights_kind == "tiny"


# -----------------------------------------------------------------------------------------------
# a family of several repos and files; an entry's pinned data


def test_a_family_of_several_repos_downloads_then_serves_official_weights(hub, tmp_path, monkeypatch):
    from deployments.tta import AudioLDMService
    from models.audioldm import configs as C
    from models.audioldm.official import T5_REPO_ID, TTA_REPO_ID
    from models.audioldm.pipeline import AmphionAudioLDM
    from tests.test_audioldm_amphion import _write_official_layout

    tiny = AmphionAudioLDM.tiny(seed=0)
    layout = tmp_path / "layout"
    _write_official_layout(layout, tiny)
    for repo in (TTA_REPO_ID, T5_REPO_ID):
        hub.add_repo(repo, {p.relative_to(layout / repo).as_posix(): p.read_bytes()
                            for p in (layout / repo).rglob("*") if p.is_file()})
    # the official files of this test are small: their configuration is the tiny one
    monkeypatch.setattr(C, "OFFICIAL_EXP_CONFIG", C.tiny_exp_config())
    hub.held = {"model.safetensors"}
    service = AudioLDMService(models=("amphion",), weights="auto", cache_dir=str(tmp_path / "hf"))
    assert asyncio_run(service.info())["status"] == "downloading"
    with pytest.raises(ModelUnavailable, match=r"^AudioLDM: downloading weights: "):
        asyncio_run(service.generate({"text": "rain", "model": "amphion"}))
    hub.release.set()
    _wait_settled(service)
    info = asyncio_run(service.info())
    assert info["status"] == "ready" and info["weights"] == "pretrained", info
    fetched = {r.split("/resolve/", 1)[0] for r in hub.requests if r.startswith("GET /") and "/resolve/" in r}
    assert fetched == {f"GET /{TTA_REPO_ID}", f"GET /{T5_REPO_ID}"}
    args = dict(audio_length_in_s=0.75, num_inference_steps=4, seed=11)
    result = asyncio_run(service.generate({"text": "thunder and rain", "model": "amphion", **args}))
    assert result["weights"] == "pretrained"
    served, _ = sf.read(io.BytesIO(result["wav"]), dtype="float32")
    np.testing.assert_allclose(served, tiny.generate("thunder and rain", **args), atol=1e-4)


@pytest.mark.skipif(not (SHARED / "default_voice").is_dir() or not (SHARED / "maskgct_g2p").is_dir(),
                    reason=f"reference data not found under {SHARED}")
def test_an_entry_downloads_its_pinned_data(hub, monkeypatch):
    """Metis' entry reads the G2P data and the built-in voice, pinned in code repositories: fetched the
    same way (from the local server standing in for GitHub), hash-checked, then served."""
    from deployments.metis import MetisService
    from models import voices
    from models.text import data

    mirror = hub.url + "/raw/{commit}/{path}"
    for module, name, source, folder in ((data, "G2P_FILES", data.G2P_SOURCE, SHARED / "maskgct_g2p"),
                                         (voices, "VOICE_FILES", voices.VOICE_SOURCE, SHARED / "default_voice")):
        official = getattr(module, name)
        monkeypatch.setattr(module, name, dataclasses.replace(
            official, pinned=dataclasses.replace(source, url_template=mirror)))
        for local, pin in source.files.items():
            hub.raw[f"{source.commit}/{pin.upstream}"] = (folder / local).read_bytes()
    hub.held = {"default.wav"}
    service = MetisService({}, weights="auto")
    info = asyncio_run(service.info("metis"))
    assert info["status"] == "downloading" and "Metis: downloading" in info["detail"], info
    hub.release.set()
    _wait_settled(service)
    assert asyncio_run(service.info("metis"))["status"] == "ready"
    assert service.default_voice is not None and service.g2p_or_none is not None
    assert data.missing_files(data.default_cache(), verify=True) == []



def test_an_entry_whose_parts_download_says_downloading_with_their_progress():
    from deployments.components import summarize_info

    infos = {"T2S": {"status": "downloading", "weights": None, "detail": "downloading weights: 50% (1 of 2 MB)",
                     "progress": {"done_bytes": 1_000_000, "total_bytes": 2_000_000, "percent": 50.0}},
             "S2A": {"status": "downloading", "weights": None, "detail": "downloading weights: checking the hub",
                     "progress": {"done_bytes": 0, "total_bytes": 2_000_000, "percent": 0.0}},
             "Codec": {"status": "ready", "weights": "pretrained", "detail": ""}}
    summary = summarize_info(infos)
    assert summary["status"] == "downloading" and "T2S: downloading" in summary["detail"]
    assert summary["progress"] == {"done_bytes": 1_000_000, "total_bytes": 4_000_000, "percent": 25.0}
    infos["S2A"]["progress"]["total_bytes"] = None  # still planning: no total yet
    assert summarize_info(infos)["progress"]["percent"] is None
    infos["Codec"] = {"status": "unavailable", "weights": None, "detail": "no weights"}
    assert summarize_info(infos)["status"] == "downloading"  # it may still change: not given up yet
    assert summarize_info({"Codec": infos["Codec"]})["status"] == "unavailable"


def test_an_auto_lookup_of_a_pipeline_notes_every_missing_part(tmp_path, monkeypatch):
    """resolve_parts in auto mode looks up every part (not only until the first missing one), so a
    service's download fetches them all in one round; a local folder is never noted."""
    from models.weights import noting_missing, resolve_parts

    monkeypatch.delenv("AMPHION_WEIGHTS_DIR", raising=False)
    monkeypatch.setenv("TEST_LOCAL_DIR", str(tmp_path / "nowhere"))
    official = {"a": HubFiles("org/a", ("a.bin",)), "b": HubFiles("org/b", ("b.bin",)),
                "c": HubFiles(None, ("c.bin",), local_dir_env="TEST_LOCAL_DIR")}
    with noting_missing() as noted:
        kind, found, note = resolve_parts("auto", official, {"x": ("a",), "y": ("b", "c")}, ("x",),
                                          cache_dir=str(tmp_path / "hf"))
    assert kind == "tiny" and found == {} and "org/a" in note
    assert sorted(files.repo_id for files in noted.values()) == ["org/a", "org/b"]
    with noting_missing() as noted:  # tiny mode looks nothing up
        assert resolve_parts("tiny", official, {"x": ("a",)}, ("x",))[0] == "tiny"
    assert noted == {}
