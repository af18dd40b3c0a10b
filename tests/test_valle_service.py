"""The DualCodec-VALL-E deployment class without Ray (tiny weights): the reference encoded by the
DualCodec service, codes generated, decoded and joined into 24 kHz speech; the same seed the same
audio; progress per AR token; bad input refused."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from deployments.errors import InvalidModelInput
from deployments.topology import LocalHandle

VALLE_TEXT = Path(__file__).resolve().parents[2] / "shared" / "data" / "valle_text"
pytestmark = pytest.mark.skipif(not VALLE_TEXT.is_dir(), reason=f"VALL-E text vocabulary not found at {VALLE_TEXT}")


def _voice(seconds: float, f0: float, sr: int = 24000) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (0.2 * sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 6))).astype(np.float32)


@pytest.fixture(scope="module")
def valle():
    from deployments.codec import DualCodecService
    from deployments.maskgct import W2VBertSemanticService
    from deployments.valle import ValleService
    from serve_app.state import LocalStateStore, StateCore

    mp = pytest.MonkeyPatch()
    mp.setenv("AMPHION_VALLE_TEXT_DIR", str(VALLE_TEXT))
    store = LocalStateStore(StateCore())
    codec = DualCodecService({"W2VBertSemantic": LocalHandle(W2VBertSemanticService(weights="tiny"))}, weights="tiny")
    service = ValleService({"DualCodec": LocalHandle(codec)}, weights="tiny", store=store)
    yield service, store
    mp.undo()


def test_speech_from_text_seeded_with_progress(valle):
    service, store = valle
    payload = {"text": "Hello there, how are you today?", "reference": _voice(2.0, 160),
               "reference_text": "This is the reference.", "seed": 3, "subtype": "FLOAT", "task_id": "valle-unit-0001"}

    async def scenario():
        result = await service.synthesize(payload)
        events, _ = await store.wait_events(payload["task_id"], 0, 1.0)
        return result, events

    result, events = asyncio.run(scenario())
    audio = sf.read(io.BytesIO(result["wav"]), dtype="float32")[0]
    assert result["sample_rate"] == 24000 and result["weights"] == "tiny" and len(audio) > 0
    assert np.isfinite(audio).all()
    assert any(e["stage"] == "ar" for e in events) and any(e["stage"] == "prompt" for e in events)
    again = asyncio.run(service.synthesize({**payload, "task_id": None}))
    again_audio = sf.read(io.BytesIO(again["wav"]), dtype="float32")[0]
    assert again_audio.shape == audio.shape, (again_audio.shape, audio.shape)
    d = np.abs(again_audio - audio)
    assert d.max() == 0, (d.max(), int(d.argmax()), len(audio))


def test_bad_input_is_refused(valle):
    service, _ = valle
    with pytest.raises(InvalidModelInput):
        asyncio.run(service.synthesize({"text": "Hello.", "reference": _voice(2.0, 160), "reference_text": "Hi.",
                                        "top_p": 0.0}))
