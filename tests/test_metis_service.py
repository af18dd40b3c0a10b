"""The Metis entry without Ray (tiny weights), over MaskGCT's part services and Metis' stage-1 parts
through local handles: each task gives exactly the in-process pipeline's audio for a seed (one
orchestration), the built-in voice speaks when no reference is sent, health is per task, and
missing files answer 503 naming them."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from deployments.errors import InvalidModelInput, ModelUnavailable
from deployments.topology import LocalHandle
from models.text import espeak_version

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
G2P_DATA, VOICE_DATA = SHARED / "maskgct_g2p", SHARED / "default_voice"
needs_text = pytest.mark.skipif(not (G2P_DATA / "vocab.json").is_file() or espeak_version() is None,
                                reason="G2P data or espeak-ng missing")
SR = 24000


def _voice(seconds: float, f0: float) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    wave = 0.2 * sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 6))
    return (wave + 0.01 * np.random.default_rng(int(f0)).standard_normal(t.size)).astype(np.float32)


def _audio(result: dict) -> np.ndarray:
    return sf.read(io.BytesIO(result["wav"]), dtype="float32")[0]


def _entry(store=None):
    from deployments.maskgct import (
        MaskGCTAcousticCodecService, MaskGCTS2AService, MaskGCTT2SService, W2VBertSemanticService,
    )
    from deployments.metis import PARTS, MetisService, MetisStage1Service

    parts = {"W2VBertSemantic": W2VBertSemanticService(weights="tiny", store=store),
             "MaskGCTAcousticCodec": MaskGCTAcousticCodecService(weights="tiny", store=store),
             "MaskGCTT2S": MaskGCTT2SService(weights="tiny", store=store),
             "MaskGCTS2A": MaskGCTS2AService(weights="tiny", store=store)}
    for part in PARTS:
        parts[part.name] = MetisStage1Service(**part.bind_args, weights="tiny", store=store)
    return MetisService({name: LocalHandle(s) for name, s in parts.items()}, weights="tiny", store=store)


@pytest.fixture(scope="module")
def served_and_local():
    from models.metis.pipeline import MetisPipeline
    from serve_app.state import LocalStateStore, StateCore

    mp = pytest.MonkeyPatch()
    mp.setenv("AMPHION_G2P_DATA", str(G2P_DATA))
    mp.setenv("AMPHION_VOICE_DATA", str(VOICE_DATA))
    store = LocalStateStore(StateCore())
    entry = _entry(store)
    g2p = G2P_DATA if (G2P_DATA / "vocab.json").is_file() and espeak_version() is not None else None
    local = MetisPipeline.from_weights("tiny", tasks=("tts", "vc", "se", "tse") if g2p else ("vc", "se", "tse"),
                                       g2p_data=g2p)
    yield entry, local, store
    mp.undo()


def test_conversions_match_the_in_process_pipeline(served_and_local):
    entry, local, _ = served_and_local
    source, reference = _voice(1.2, 140), _voice(1.0, 210)
    cases = {
        "vc": (entry.vc, {"source": source, "reference": reference}, lambda: local.vc(source, reference, seed=4)),
        "tse": (entry.tse, {"audio": source, "reference": reference}, lambda: local.tse(source, reference, seed=4)),
        "se": (entry.se, {"audio": source}, lambda: local.se(source, seed=4)),
    }
    for task, (method, payload, in_process) in cases.items():
        result = asyncio.run(method({**payload, "seed": 4, "subtype": "FLOAT"}))
        assert result["weights"] == "tiny" and result["sample_rate"] == SR
        assert np.array_equal(_audio(result), in_process()), task


@needs_text
def test_tts_matches_in_process_and_reports_progress(served_and_local):
    entry, local, store = served_and_local
    reference = _voice(1.5, 180)
    payload = {"text": "Good morning to you.", "reference": reference, "reference_text": "Hello there, my friend.",
               "language": "en", "seed": 7, "subtype": "FLOAT", "task_id": "metis-unit-0001"}

    async def scenario():
        result = await entry.tts(payload)
        events, _ = await store.wait_events(payload["task_id"], 0, 1.0)
        return result, events

    result, events = asyncio.run(scenario())
    expected = local.tts("Good morning to you.", reference, "Hello there, my friend.", language="en", seed=7)
    assert np.array_equal(_audio(result), expected)
    stages = {e["stage"] for e in events}
    assert {"semantic_prompt", "g2p", "t2s", "s2a", "decode"} <= stages


@needs_text
def test_tts_without_reference_speaks_with_the_builtin_voice(served_and_local):
    from models.metis.tasks import tts_target_len
    from models.voices import load_builtin_voice

    entry, local, _ = served_and_local
    voice = load_builtin_voice()
    text = "The built in voice reads this sentence."
    result = asyncio.run(entry.tts({"text": text, "reference": None, "reference_text": None, "seed": 1,
                                    "subtype": "FLOAT"}))
    expected = local.tts(text, voice.audio, voice.text, seed=1)
    assert np.array_equal(_audio(result), expected)
    n_prompt = int(voice.audio.size // 480)   # 3.02 s -> 151 frames (semantic and acoustic agree or cut to the shorter)
    assert abs(_audio(result).size / 480 - tts_target_len(n_prompt, text, voice.text)) <= 2


def test_bad_input_is_a_client_error(served_and_local):
    entry, _, _ = served_and_local
    with pytest.raises(InvalidModelInput, match="too short"):
        asyncio.run(entry.se({"audio": np.zeros(100, np.float32)}))
    with pytest.raises(InvalidModelInput, match="silent"):
        asyncio.run(entry.vc({"source": _voice(1.0, 150), "reference": np.zeros(SR, np.float32)}))


def test_health_per_task_and_missing_data(monkeypatch, tmp_path):
    """Without G2P data and the built-in voice, TTS is unavailable (saying why) while VC / SE / TSE
    stay ready; a TTS request without a reference answers 503 naming the voice files."""
    monkeypatch.setenv("AMPHION_G2P_DATA", str(tmp_path / "no_g2p"))
    monkeypatch.setenv("AMPHION_VOICE_DATA", str(tmp_path / "no_voice"))
    entry = _entry()
    tts = asyncio.run(entry.info("metis"))
    assert tts["status"] == "unavailable" and "default.wav" in tts["detail"]
    for model in ("metis_vc", "metis_se", "metis_tse"):
        assert asyncio.run(entry.info(model))["status"] == "ready", model
    with pytest.raises(ModelUnavailable):
        asyncio.run(entry.tts({"text": "Hi.", "reference": None}))


def test_missing_official_files_are_named(monkeypatch, tmp_path):
    from deployments.metis import MetisStage1Service

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("AMPHION_HF_CACHE", str(tmp_path / "hf"))
    service = MetisStage1Service(part="se", weights="pretrained")
    with pytest.raises(ModelUnavailable) as info:
        asyncio.run(service.describe())
    assert "amphion/metis" in info.value.detail and "metis_se_lora_32" in info.value.detail
