"""The codec deployment classes without Ray (tiny weights): encode/decode round trips of the input's
duration, results independent of what shares a batch, token-shape checks, the w2v-bert pairing."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from deployments.codec import DualCodecService, FACodecService, covering_length
from deployments.errors import InvalidModelInput, ModelUnavailable
from tests.test_maskgct_composed import LocalHandle


def _tone(seconds: float, sr: int, seed: int = 0) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    noise = np.random.default_rng(seed).standard_normal(len(t))
    return (0.3 * np.sin(2 * np.pi * (150 + 40 * seed) * t) + 0.01 * noise).astype(np.float32)


@pytest.fixture(scope="module")
def facodec():
    return FACodecService(weights="tiny")


@pytest.fixture(scope="module")
def dualcodec():
    from deployments.maskgct import W2VBertSemanticService

    return DualCodecService({"W2VBertSemantic": LocalHandle(W2VBertSemanticService(weights="tiny"))}, weights="tiny")


def test_facodec_round_trip_keeps_the_duration(facodec):
    audio = _tone(1.0, 16000)
    codes = asyncio.run(facodec.encode({"audio": audio}))
    frames = codes["prosody"].shape[-1]
    assert codes["prosody"].shape == (1, frames) and codes["content"].shape == (2, frames)
    assert codes["acoustic"].shape == (3, frames) and codes["timbre"].shape == (facodec.codec.timbre_dim,)
    assert frames == 80 and codes["weights"] == "tiny"
    out = asyncio.run(facodec.decode({**codes, "subtype": "FLOAT"}))
    assert out["sample_rate"] == 16000 and abs(out["duration"] - 1.0) <= 1 / 80


def test_facodec_batch_does_not_change_a_result(facodec):
    a, b, c = _tone(0.5, 16000, 1), _tone(0.8, 16000, 2), _tone(0.5, 16000, 3)
    alone = facodec._encode_items([{"audio": a}])[0]
    batched = facodec._encode_items([{"audio": b}, {"audio": a}, {"audio": c}])[1]
    for key in ("prosody", "content", "acoustic"):
        assert np.array_equal(alone[key], batched[key])
    np.testing.assert_allclose(alone["timbre"], batched["timbre"], atol=1e-6)
    wave_alone = facodec._decode_items([alone])[0]
    wave_batched = facodec._decode_items([facodec._encode_items([{"audio": b}])[0], alone])[1]
    np.testing.assert_allclose(wave_alone, wave_batched, atol=1e-5)


def test_facodec_refuses_too_short_audio(facodec):
    with pytest.raises(InvalidModelInput, match="too short"):
        asyncio.run(facodec.encode({"audio": np.zeros(100, np.float32)}))


@pytest.mark.parametrize("model,hop", [("12hz_v1", 1920), ("25hz_v1", 960)])
def test_dualcodec_round_trip_within_one_frame(dualcodec, model, hop):
    audio = _tone(1.3, 24000)
    enc = asyncio.run(dualcodec.encode({"audio": audio, "model": model, "num_quantizers": None}))
    codec = dualcodec.codec[model].codec
    assert enc["tokens"].dtype == np.int64 and enc["tokens"].shape[0] == codec.max_quantizers
    assert enc["tokens"].shape[1] == -(-len(audio) // hop) and enc["model"] == model
    out = asyncio.run(dualcodec.decode({"tokens": enc["tokens"], "model": model}))
    assert abs(out["duration"] * 24000 - len(audio)) < hop


def test_dualcodec_fewer_quantizers_and_semantic_only(dualcodec):
    audio = _tone(0.7, 24000)
    three = asyncio.run(dualcodec.encode({"audio": audio, "model": "12hz_v1", "num_quantizers": 3}))
    one = asyncio.run(dualcodec.encode({"audio": audio, "model": "12hz_v1", "num_quantizers": 1}))
    assert three["tokens"].shape[0] == 3 and one["tokens"].shape[0] == 1
    assert np.array_equal(three["tokens"][0], one["tokens"][0])
    assert asyncio.run(dualcodec.decode({"tokens": one["tokens"], "model": "12hz_v1"}))["duration"] > 0
    with pytest.raises(InvalidModelInput, match="num_quantizers"):
        asyncio.run(dualcodec.encode({"audio": audio, "model": "12hz_v1", "num_quantizers": 9}))


def test_dualcodec_batch_does_not_change_a_result(dualcodec):
    a, b = _tone(0.9, 24000, 1), _tone(0.9, 24000, 2)
    ea, eb = (asyncio.run(dualcodec.encode({"audio": x, "model": "25hz_v1", "num_quantizers": None})) for x in (a, b))
    item = lambda e: {"tokens": e["tokens"], "model": "25hz_v1"}  # noqa: E731
    alone = dualcodec._decode_items([item(ea)])[0]
    together = dualcodec._decode_items([item(eb), item(ea)])[1]
    np.testing.assert_allclose(alone, together, atol=1e-5)


def test_dualcodec_refuses_codes_beyond_the_deployed_codebooks(dualcodec):
    codes = np.zeros((2, 5), np.int64)
    codes[1, 2] = dualcodec.codec["25hz_v1"].codec.acoustic_codebook_size
    with pytest.raises(InvalidModelInput, match="codebook 1"):
        asyncio.run(dualcodec.decode({"tokens": codes, "model": "25hz_v1"}))


def test_dualcodec_needs_matching_w2v_bert_features():
    class WideFeatures:
        class hidden_states:
            @staticmethod
            async def remote(wav16k):
                return np.zeros((100, 1024), np.float32)

    service = DualCodecService({"W2VBertSemantic": WideFeatures()}, weights="tiny")
    with pytest.raises(ModelUnavailable, match="1024"):
        asyncio.run(service.encode({"audio": _tone(0.5, 24000), "model": "12hz_v1"}))
    bare = DualCodecService({}, weights="tiny")
    with pytest.raises(ModelUnavailable, match="W2VBertSemantic"):
        asyncio.run(bare.encode({"audio": _tone(0.5, 24000), "model": "12hz_v1"}))


def test_covering_length_gives_whole_frames():
    from models.dualcodec.configs import official_config
    from models.dualcodec.semantic import frame_counts

    for name in ("12hz_v1", "25hz_v1"):
        config = official_config(name)
        for n in (1, 959, 960, 1920, 24000, 24001, 50000):
            length = covering_length(n, config)
            frames, dac = frame_counts(length, config)
            assert length >= n and frames == -(-n // config.hop_length) and 0 <= dac - frames <= 2
