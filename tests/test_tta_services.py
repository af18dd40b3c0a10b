"""The text-to-audio deployment classes without Ray (tiny weights): model choice and its errors, a
batch giving each request what it gets alone, a bad request not failing its batch-mates."""

from __future__ import annotations

import asyncio
import io

import numpy as np
import pytest
import soundfile as sf

from deployments.errors import InvalidModelInput, ModelUnavailable
from deployments.tta import AMPHION, AudioLDMService, PicoAudioService
from models.audioldm.diffusers_pipeline import DIFFUSERS_DEFAULT_REPO


@pytest.fixture(scope="module")
def audioldm():
    return AudioLDMService(weights="tiny")


def _samples(result: dict) -> np.ndarray:
    return sf.read(io.BytesIO(result["wav"]), dtype="float32")[0]


def _request(text: str, seed: int, **extra) -> dict:
    return {"text": text, "audio_length_in_s": 1.0, "num_inference_steps": 4, "seed": seed, "subtype": "FLOAT",
            **extra}


def test_both_models_are_served_by_default(audioldm):
    facts = asyncio.run(audioldm.describe())
    assert facts["models"] == sorted([DIFFUSERS_DEFAULT_REPO, AMPHION]) and facts["sample_rate"] == 16000
    for model in (None, AMPHION):
        out = asyncio.run(audioldm.generate({**_request("rain", 1), "model": model}))
        assert out["sample_rate"] == 16000 and len(_samples(out)) == 16000 and out["weights"] == "tiny"


def test_a_batch_gives_each_request_its_own_audio(audioldm):
    model = audioldm.models[DIFFUSERS_DEFAULT_REPO]
    requests = [_request("rain on a roof", 1), _request("a car horn", 2, guidance_scale=1.5)]
    alone = [_samples(audioldm._run(model, [r])[0]) for r in requests]
    together = [_samples(out) for out in audioldm._run(model, requests)]
    for a, b in zip(alone, together):
        np.testing.assert_allclose(a, b, atol=1e-4)
    assert not np.allclose(together[0], together[1])


def test_a_refused_request_does_not_fail_its_batch_mates(audioldm):
    good, bad = _request("birds", 3, model=DIFFUSERS_DEFAULT_REPO), _request("  ", 4, model=DIFFUSERS_DEFAULT_REPO)
    results = asyncio.run(audioldm._generate_batch.__wrapped__(audioldm, [good, bad]))
    assert "wav" in results[0] and "error" in results[1]


def test_model_choice_errors(audioldm):
    with pytest.raises(InvalidModelInput, match="amphion"):
        asyncio.run(audioldm.generate({**_request("rain", 1), "model": "someone/else"}))
    with pytest.raises(InvalidModelInput, match="9.98"):
        asyncio.run(audioldm.generate({**_request("rain", 1), "model": AMPHION, "audio_length_in_s": 12.0}))


def test_a_model_without_weights_answers_503_and_the_rest_serve(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("AMPHION_HF_CACHE", str(tmp_path / "hf"))
    monkeypatch.delenv("AMPHION_WEIGHTS_DIR", raising=False)
    service = AudioLDMService(models=(DIFFUSERS_DEFAULT_REPO, "cvssp/audioldm-m-full"), weights="tiny")
    service.loading = service.loading.__class__("pretrained", "cpu", service.loading.dtype, None)
    service._load_models(["cvssp/audioldm-l-full"])
    assert "cvssp/audioldm-l-full" in service.missing
    with pytest.raises(ModelUnavailable, match="audioldm-l-full"):
        asyncio.run(service.generate({**_request("rain", 1), "model": "cvssp/audioldm-l-full"}))
    assert "wav" in asyncio.run(service.generate(_request("rain", 1)))


def test_picoaudio_service():
    service = PicoAudioService(weights="tiny")
    events = asyncio.run(service.events())
    out = asyncio.run(service.generate({"text": f"{events[0]}__0.2-0.8", "duration": 1.5, "num_inference_steps": 3,
                                        "seed": 2}))
    assert len(_samples(out)) == 24000 and out["weights"] == "tiny"
    with pytest.raises(InvalidModelInput, match=events[1]):
        asyncio.run(service.generate({"text": "a spaceship hums", "duration": 1.0, "num_inference_steps": 3}))
