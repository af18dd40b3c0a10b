"""The Noro deployment class without Ray (tiny weights): 16 kHz audio as long as the source, the same
seed the same audio (the pipeline's own result), progress per front end and sampler step, bad input
refused before the model runs, 503 naming the user's missing files (and never a server folder), and
requests that arrive together converted one at a time."""

from __future__ import annotations

import asyncio
import io
import threading
import time

import numpy as np
import pytest
import soundfile as sf

from deployments.errors import InvalidModelInput, ModelUnavailable

SR = 16000
STEPS = 50  # the smallest the API allows: keeps the tests fast


def _voice(seconds: float, f0: float, seed: int = 0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    rng = np.random.default_rng(seed)
    wave = 0.2 * sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 6)) + 0.003 * rng.standard_normal(t.shape)
    return wave.astype(np.float32)


def _samples(wav: bytes) -> tuple[np.ndarray, int]:
    return sf.read(io.BytesIO(wav), dtype="float32")


@pytest.fixture(scope="module")
def noro():
    from deployments.noro import NoroService
    from serve_app.state import LocalStateStore, StateCore

    store = LocalStateStore(StateCore())
    return NoroService(weights="tiny", store=store), store


def _payload(**overrides) -> dict:
    return {"source": _voice(1.3, 140, seed=1), "target": _voice(0.8, 210, seed=2), "inference_steps": STEPS,
            "sigma": 1.2, "seed": 7, "subtype": "FLOAT", **overrides}


async def _events(store, task_id: str) -> list[dict]:
    events, _ = await store.wait_events(task_id, 0, 0.1)
    return events


def test_facts_and_health(noro):
    service, _ = noro
    facts = asyncio.run(service.describe())
    assert facts["sample_rate"] == SR and facts["weights"] == "tiny" and facts["min_target_samples"] > 0
    health = asyncio.run(service.info())
    assert health["status"] == "ready" and health["weights"] == "tiny"


def test_conversion_seeded_with_progress(noro):
    service, store = noro
    payload = _payload(task_id="noro-unit-0001")

    async def scenario():
        result = await service.convert(payload)
        return result, await _events(store, payload["task_id"])

    result, events = asyncio.run(scenario())
    audio, sr = _samples(result["wav"])
    assert sr == SR and result["sample_rate"] == SR and result["weights"] == "tiny"
    assert audio.shape == payload["source"].shape and np.isfinite(audio).all() and np.abs(audio).max() > 0
    assert result["duration"] == pytest.approx(len(payload["source"]) / SR) and result["compute_s"] > 0

    stages = [e["stage"] for e in events]
    assert stages[:2] == ["content", "reference"] and stages[-1] == "vocoding", stages
    diffusion = [(e["step"], e["total_steps"]) for e in events if e["stage"] == "diffusion"]
    assert diffusion == [(i, STEPS) for i in range(1, STEPS + 1)]
    assert all(e["status"] == "running" for e in events)

    # Same seed, same audio: and exactly what the pipeline itself answers (float WAV keeps float32).
    again, _ = _samples(asyncio.run(service.convert({**payload, "task_id": None}))["wav"])
    assert np.array_equal(again, audio)
    direct = service.loaded.model.convert(payload["source"], payload["target"], steps=STEPS, sigma=1.2, seed=7)
    assert np.array_equal(direct, audio)
    other, _ = _samples(asyncio.run(service.convert({**payload, "seed": 8, "task_id": None}))["wav"])
    assert not np.array_equal(other, audio)
    # 16-bit PCM is the default subtype.
    pcm = asyncio.run(service.convert({k: v for k, v in payload.items() if k not in ("subtype", "task_id")}))
    assert sf.info(io.BytesIO(pcm["wav"])).subtype == "PCM_16"


def test_defaults_apply_when_fields_are_absent(noro):
    service, store = noro
    payload = {"source": _voice(0.4, 150), "target": _voice(0.5, 220), "seed": 1, "task_id": "noro-unit-defaults"}

    async def scenario():
        await service.convert(payload)
        return await _events(store, payload["task_id"])

    events = asyncio.run(scenario())
    assert {e["total_steps"] for e in events if e["stage"] == "diffusion"} == {200}


@pytest.mark.parametrize("change,words", [
    ({"target": _voice(0.01, 200)}, "too short"),
    ({"target": None}, "target audio"),
    ({"source": np.zeros(0, np.float32)}, "empty"),
    ({"source": np.zeros((2, 4000), np.float32)}, "mono"),
    ({"inference_steps": 49}, "steps"),
    ({"inference_steps": 501}, "steps"),
    ({"sigma": 0.8}, "sigma"),
    ({"sigma": 1.6}, "sigma"),
    ({"seed": -1}, "seed"),
])
def test_bad_input_is_refused_before_the_model_runs(noro, change, words):
    service, store = noro
    task_id = f"noro-unit-bad-{abs(hash(str(change))) % 10**8}"
    with pytest.raises(InvalidModelInput) as caught:
        asyncio.run(service.convert(_payload(task_id=task_id, **change)))
    assert words in caught.value.detail, caught.value.detail
    assert asyncio.run(_events(store, task_id)) == []


@pytest.fixture
def no_weights(monkeypatch, tmp_path):
    """A server where nothing of Noro's is on disk and the hub is not asked."""
    for name in ("AMPHION_NORO_DIR", "AMPHION_NORO_HUBERT_DIR", "AMPHION_WEIGHTS_DIR", "AMPHION_HF_CACHE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cache = tmp_path / "hf-cache"
    cache.mkdir()
    return tmp_path, str(cache)


def _unavailable(service, secret: str) -> str:
    from deployments.noro import NoroService

    assert isinstance(service, NoroService) and service.loaded is None
    with pytest.raises(ModelUnavailable) as caught:
        asyncio.run(service.convert(_payload()))
    with pytest.raises(ModelUnavailable):
        asyncio.run(service.describe())
    health = asyncio.run(service.info())
    assert health["status"] == "unavailable" and health["weights"] is None
    detail = caught.value.detail
    assert detail.startswith("Noro has no weights: "), detail
    assert secret not in detail and secret not in health["detail"], detail
    return detail


ALL_FILES = ("model.safetensors", "kmeans.*", "vocoder/config.json", "vocoder/bigvgan_generator.pt")


@pytest.mark.parametrize("how", ["unset", "env", "local_dirs"])
def test_missing_weights_answer_503_naming_the_files(no_weights, monkeypatch, how):
    from deployments.noro import NoroService

    root, cache = no_weights
    folder = root / "noro-empty"
    folder.mkdir()
    if how == "env":
        monkeypatch.setenv("AMPHION_NORO_DIR", str(folder))
    local_dirs = {"noro": str(folder)} if how == "local_dirs" else None
    service = NoroService(local_dirs=local_dirs, weights="pretrained", cache_dir=cache)
    detail = _unavailable(service, str(root))
    assert "$AMPHION_NORO_DIR" in detail and all(name in detail for name in ALL_FILES), detail


def test_partial_folder_names_only_what_is_missing(no_weights, monkeypatch):
    from deployments.noro import NoroService

    root, cache = no_weights
    folder = root / "noro-partial"
    (folder / "vocoder").mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(b"not yet")
    (folder / "vocoder" / "config.json").write_text("{}")
    monkeypatch.setenv("AMPHION_NORO_DIR", str(folder))
    detail = _unavailable(NoroService(weights="pretrained", cache_dir=cache), str(root))
    assert "kmeans.*" in detail and "vocoder/bigvgan_generator.pt" in detail, detail
    assert "model.safetensors" not in detail and "vocoder/config.json" not in detail, detail


def test_hubert_missing_is_named(no_weights, monkeypatch):
    from deployments.noro import NoroService

    root, cache = no_weights
    folder = root / "noro-complete"
    (folder / "vocoder").mkdir(parents=True)
    for name in ("model.safetensors", "kmeans.npy", "vocoder/config.json", "vocoder/bigvgan_generator.pt"):
        (folder / name).write_bytes(b"x")
    monkeypatch.setenv("AMPHION_NORO_DIR", str(folder))
    detail = _unavailable(NoroService(weights="pretrained", cache_dir=cache), str(root))
    assert "facebook/hubert-base-ls960" in detail, detail


def test_unreadable_files_answer_503_without_server_paths(no_weights, monkeypatch):
    from deployments.noro import NoroService

    root, cache = no_weights
    folder, hubert = root / "noro-broken", root / "hubert"
    (folder / "vocoder").mkdir(parents=True)
    hubert.mkdir()
    for name in ("model.safetensors", "kmeans.npy", "vocoder/config.json", "vocoder/bigvgan_generator.pt"):
        (folder / name).write_bytes(b"not a checkpoint")
    (hubert / "pytorch_model.bin").write_bytes(b"not a checkpoint")
    monkeypatch.setenv("AMPHION_NORO_DIR", str(folder))
    monkeypatch.setenv("AMPHION_NORO_HUBERT_DIR", str(hubert))
    detail = _unavailable(NoroService(weights="pretrained", cache_dir=cache), str(root))
    assert "could not be loaded" in detail, detail


def test_server_paths_are_named_as_configured():
    from deployments.noro import without_server_paths

    folders = {"/srv/models/noro": "$AMPHION_NORO_DIR"}
    assert without_server_paths("cannot read /srv/models/noro/vocoder/config.json: bad", folders) == \
        "cannot read $AMPHION_NORO_DIR/vocoder/config.json: bad"
    assert without_server_paths("/elsewhere/deep/file.pt: truncated; vocoder/config.json", {}) == \
        "file.pt: truncated; vocoder/config.json"


def test_concurrent_requests_run_one_at_a_time(noro, monkeypatch):
    """Three requests sent together: each runs alone from its first front end to its vocoder, and
    each gets what it gets alone."""
    service, store = noro
    pipeline = service.loaded.model
    lock, active, most = threading.Lock(), [0], [0]
    source_features, vocode = pipeline.source_features, pipeline.vocode

    def entering(wave):
        with lock:
            active[0] += 1
            most[0] = max(most[0], active[0])
        time.sleep(0.2)  # room for another request to slip in, were it allowed to
        return source_features(wave)

    def leaving(mel):
        try:
            return vocode(mel)
        finally:
            with lock:
                active[0] -= 1

    monkeypatch.setattr(pipeline, "source_features", entering)
    monkeypatch.setattr(pipeline, "vocode", leaving)
    payloads = [_payload(source=_voice(0.5 + 0.2 * i, 120 + 30 * i), seed=i, task_id=f"noro-unit-conc-{i}")
                for i in range(3)]

    async def scenario():
        results = await asyncio.gather(*(service.convert(p) for p in payloads))
        health = await service.info()  # answered without waiting for the worker
        return results, health, [await _events(store, p["task_id"]) for p in payloads]

    results, health, events = asyncio.run(scenario())
    assert most[0] == 1 and active[0] == 0 and health["status"] == "ready"
    spans = sorted((e[0]["timestamp"], e[-1]["timestamp"]) for e in events)
    assert all(earlier[1] <= later[0] for earlier, later in zip(spans, spans[1:])), spans
    for payload, result in zip(payloads, results):
        audio, _ = _samples(result["wav"])
        alone = pipeline.convert(payload["source"], payload["target"], steps=STEPS, sigma=1.2, seed=payload["seed"])
        assert np.array_equal(audio, alone)
