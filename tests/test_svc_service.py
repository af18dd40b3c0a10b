"""The SVC entry without Ray (tiny weights), over its part services through local handles: each of the
four models gives exactly the in-process pipeline's audio for a seed, says which singer it used, lists
its singers, reports progress per stage, and refuses bad input with a 400."""

from __future__ import annotations

import asyncio
import io

import numpy as np
import pytest
import soundfile as sf

from deployments.errors import InvalidModelInput
from deployments.topology import LocalHandle
from models.svc.pipeline import MODELS, SAMPLE_RATE, SVCPipeline

STEPS = {"multiplecontentssvc": 4, "diffcomosvc": 3}


def sung(seconds: float, freq: float) -> np.ndarray:
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    phase = 2 * np.pi * np.cumsum(freq * (1 + 0.01 * np.sin(2 * np.pi * 5 * t))) / SAMPLE_RATE
    noise = 0.003 * np.random.default_rng(int(freq)).standard_normal(t.size)
    return (0.3 * (np.sin(phase) + 0.3 * np.sin(2 * phase)) + noise).astype(np.float32)


@pytest.fixture(scope="module")
def entry_and_store():
    from deployments.svc import PARTS, SVCPartService, SVCService
    from serve_app.state import LocalStateStore, StateCore

    store = LocalStateStore(StateCore())
    parts = {p.name: LocalHandle(SVCPartService(**p.bind_args, weights="tiny", store=store)) for p in PARTS}
    return SVCService(parts, weights="tiny", store=store), store


@pytest.mark.parametrize("model", MODELS)
def test_each_model_matches_the_in_process_pipeline(entry_and_store, model):
    entry, store = entry_and_store
    source, reference = sung(2.0, 220.0), sung(1.5, 330.0)
    payload = {"model": model, "source": source, "reference": reference, "target_singer": None,
               "key_shift": "autoshift", "diffusion_steps": STEPS.get(model), "seed": 5, "subtype": "FLOAT",
               "task_id": f"svc-unit-{model}"}

    async def scenario():
        result = await entry.convert(payload)
        events, _ = await store.wait_events(payload["task_id"], 0, 1.0)
        return result, events

    result, events = asyncio.run(scenario())
    audio = sf.read(io.BytesIO(result["wav"]), dtype="float32")[0]
    expected = SVCPipeline.from_weights(model, "tiny").convert(source, SAMPLE_RATE, reference, SAMPLE_RATE,
                                                               diffusion_steps=STEPS.get(model), seed=5)
    assert np.array_equal(audio, expected.audio)
    assert result["singer"] == expected.singer and result["singer_chosen_by"] == expected.singer_chosen_by
    assert result["weights"] == "tiny" and result["sample_rate"] == SAMPLE_RATE
    assert {"f0", "whisper", "contentvec", "acoustic"} <= {e["stage"] for e in events}


def test_singers_and_target_singer(entry_and_store):
    entry, _ = entry_and_store
    singers = asyncio.run(entry.singers("transformersvc"))
    assert singers and all(set(s) == {"name", "f0_median"} for s in singers)
    name = singers[-1]["name"]
    result = asyncio.run(entry.convert({"model": "transformersvc", "source": sung(1.0, 200.0), "reference": None,
                                        "target_singer": name, "key_shift": 2, "seed": 1}))
    assert result["singer"] == name and result["singer_chosen_by"] == "request"


def test_bad_input_is_a_client_error(entry_and_store):
    entry, _ = entry_and_store
    with pytest.raises(InvalidModelInput, match="nobody"):
        asyncio.run(entry.convert({"model": "vitssvc", "source": sung(1.0, 200.0), "reference": None,
                                   "target_singer": "nobody"}))
    with pytest.raises(InvalidModelInput):
        asyncio.run(entry.convert({"model": "diffcomosvc", "source": sung(1.0, 200.0), "reference": sung(1.0, 250.0),
                                   "key_shift": "reference", "diffusion_steps": 2000}))


def test_missing_training_run_is_503_naming_the_folder(monkeypatch, tmp_path):
    from deployments.errors import ModelUnavailable
    from deployments.svc import SVCPartService

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("AMPHION_WEIGHTS_DIR", str(tmp_path))
    monkeypatch.delenv("AMPHION_VITSSVC_DIR", raising=False)
    service = SVCPartService("acoustic", "vitssvc", weights="pretrained")
    with pytest.raises(ModelUnavailable) as info:
        asyncio.run(service.describe())
    detail = info.value.detail
    assert "AMPHION_VITSSVC_DIR" in detail and str(tmp_path) not in detail
