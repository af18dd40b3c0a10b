"""MaskGCT composed from separately loaded components (tiny weights), without Ray.

* the shared orchestrator over coroutine stages that really suspend (worker threads), each stage a
  separately loaded part: the same audio and progress as ``MaskGCTPipeline.generate``;
* the deployment classes wired as Serve would wire them (component services behind handle-like
  adapters that check what crosses them): the same audio bytes, per-step progress published by the
  T2S and S2A services for the request's task id, 503 when a component has no weights.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from models.core.stages import in_thread
from models.maskgct.orchestration import LocalStages, MaskGCTOrchestrator
from models.maskgct.pipeline import MaskGCTPipeline
from models.text import DATA_DIR_ENV, espeak_version

G2P_DATA = Path(os.environ.get(DATA_DIR_ENV) or Path(__file__).resolve().parents[2] / "shared" / "data" / "maskgct_g2p")

pytestmark = [
    pytest.mark.skipif(not (G2P_DATA / "vocab.json").is_file(), reason=f"G2P data not found at {G2P_DATA}"),
    pytest.mark.skipif(espeak_version() is None, reason="espeak-ng cannot be loaded here (English G2P)"),
]

SR = 24000
REF_TEXT = "Hello there, this is a short reference sentence."
TEXT = "First sentence here. A second one follows."
SETTINGS = dict(target_len_s=1.2, n_timesteps=5, seed=11)
EXTRA = dict(s2a_timesteps=[3, 2, 1], max_chars=25)  # two text pieces: counts run on across them


def _reference(seconds: float = 2.0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    harmonics = sum(np.sin(2 * np.pi * 120 * k * t) / k for k in range(1, 8))
    noise = np.random.default_rng(0).standard_normal(len(t))
    return (0.3 * np.sin(2 * np.pi * 3 * t) ** 2 * harmonics + 0.01 * noise).astype(np.float32)


@pytest.fixture(scope="module")
def pipe() -> MaskGCTPipeline:
    return MaskGCTPipeline.from_weights("tiny", g2p_data=G2P_DATA)


@pytest.fixture(scope="module")
def in_process(pipe):
    calls = []
    audio = pipe.generate(TEXT, "en", _reference(), REF_TEXT, on_progress=lambda *a: calls.append(a),
                          **SETTINGS, **EXTRA)
    return audio, calls


class ThreadedStages:
    """Each stage a separately loaded part, called as a coroutine that suspends (a worker thread)."""

    def __init__(self, on_progress):
        load = lambda part: LocalStages(MaskGCTPipeline.from_weights("tiny", parts=(part,)))  # noqa: E731
        self.semantic, self.acoustic, self.t2s, self.s2a = (load(p) for p in ("semantic", "acoustic", "t2s", "s2a"))
        self.on_progress = on_progress

    async def semantic_tokens(self, wav16k):
        return await asyncio.to_thread(self.semantic.semantic_tokens, wav16k)

    async def acoustic_codes(self, wav24k):
        return await asyncio.to_thread(self.acoustic.acoustic_codes, wav24k)

    async def text_to_semantic(self, request):
        return await asyncio.to_thread(self.t2s.text_to_semantic, request, self.on_progress)

    async def semantic_to_acoustic(self, request):
        return await asyncio.to_thread(self.s2a.semantic_to_acoustic, request, self.on_progress)

    async def decode(self, codes):
        return await asyncio.to_thread(self.acoustic.decode, codes)


def test_parts_load_alone_and_refuse_the_rest():
    t2s = MaskGCTPipeline.from_weights("tiny", parts=("t2s",))
    assert t2s.parts == ("t2s",) and t2s.semantic_encoder is None and t2s.g2p is None
    with pytest.raises(RuntimeError, match="without its 'acoustic' part"):
        t2s.decode(torch.zeros(1, 3, 3, dtype=torch.long))
    with pytest.raises(ValueError):
        MaskGCTPipeline.from_weights("tiny", parts=("vocoder",))


def test_orchestrator_over_separate_parts_matches_the_pipeline(pipe, in_process):
    audio, calls = in_process
    got = []
    orchestrator = MaskGCTOrchestrator(pipe.g2p, pipe.num_quantizers, offload=in_thread)
    composed = asyncio.run(orchestrator.generate(
        ThreadedStages(lambda *a: got.append(a)), TEXT, "en", _reference(), REF_TEXT,
        on_progress=lambda *a: got.append(a), **SETTINGS, **EXTRA,
    ))
    assert composed.dtype == np.float32 and composed.shape == (60 * 480,)
    assert np.array_equal(composed, audio)
    assert got == calls
    t2s = [c for c in calls if c[0] == "t2s"]
    assert [c[1] for c in t2s] == list(range(1, t2s[0][2] + 1))


# --- the deployment classes, wired like Serve wires them -----------------------------------------


def _check_wire(value, path="value"):
    """What may cross a DeploymentHandle here: no torch tensors; arrays contiguous int64, float32 or uint8."""
    assert not isinstance(value, torch.Tensor), f"{path} is a torch tensor"
    if isinstance(value, np.ndarray):
        assert value.flags.c_contiguous and value.dtype in (np.int64, np.float32, np.uint8), (path, value.dtype)
    elif isinstance(value, dict):
        for k, v in value.items():
            _check_wire(v, f"{path}[{k!r}]")
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _check_wire(v, f"{path}[{i}]")


class LocalHandle:
    """``handle.method.remote(*args)`` on a service in this process, checking the arguments and answers."""

    def __init__(self, service):
        self.service = service

    def __getattr__(self, method):
        fn = getattr(self.service, method)

        class _Method:
            @staticmethod
            async def remote(*args):
                _check_wire(args, f"{method} args")
                out = await fn(*args)
                _check_wire(out, f"{method} answer")
                return out

        return _Method


@pytest.fixture(scope="module")
def services():
    from deployments.maskgct import COMPONENTS, MaskGCTAcousticCodecService, MaskGCTS2AService, MaskGCTService, \
        MaskGCTT2SService, W2VBertSemanticService
    from serve_app.state import LocalStateStore, StateCore

    store = LocalStateStore(StateCore())
    from deployments.asr import WhisperASRService

    classes = (W2VBertSemanticService, MaskGCTAcousticCodecService, MaskGCTT2SService, MaskGCTS2AService)
    components = {name: LocalHandle(cls(weights="tiny", store=store)) for name, cls in zip(COMPONENTS, classes)}
    components["WhisperASR"] = LocalHandle(WhisperASRService(weights="tiny"))
    old = os.environ.get(DATA_DIR_ENV)
    os.environ[DATA_DIR_ENV] = str(G2P_DATA)
    try:
        pipeline = MaskGCTService(components, weights="tiny", store=store)
    finally:
        if old is None:
            os.environ.pop(DATA_DIR_ENV, None)
        else:
            os.environ[DATA_DIR_ENV] = old
    return pipeline, components, store


def test_pipeline_deployment_matches_the_in_process_pipeline(pipe, services):
    from models.audio.wav import encode_wav

    pipeline, _, store = services
    payload = {"text": "Hello world, this is a test.", "language": "en", "reference": _reference(),
               "reference_text": REF_TEXT, "target_len": 1.0, "n_timesteps": 4, "cfg": 2.5, "temperature": 0.9,
               "seed": 5, "subtype": "PCM_16", "task_id": "composed-unit-0001"}

    async def scenario():
        info = await pipeline.info()
        result = await pipeline.synthesize(payload)
        events, _ = await store.wait_events(payload["task_id"], 0, 1.0)
        return info, result, events

    info, result, events = asyncio.run(scenario())
    assert info["status"] == "ready" and info["weights"] == "tiny"
    expected = pipe.generate(payload["text"], "en", payload["reference"], REF_TEXT, target_len_s=1.0, n_timesteps=4,
                             temperature=0.9, seed=5)
    assert result["weights"] == "tiny" and result["duration"] == 1.0
    assert result["wav"] == encode_wav(expected, SR, "PCM_16")
    t2s = [e for e in events if e["stage"] == "t2s"]
    s2a = [e for e in events if e["stage"] == "s2a"]
    assert [e["step"] for e in t2s] == list(range(1, t2s[0]["total_steps"] + 1))
    assert [e["step"] for e in s2a] == list(range(1, s2a[0]["total_steps"] + 1))
    stages = [e["stage"] for e in events]
    assert stages.index("semantic_prompt") < stages.index("t2s") < stages.index("s2a") < stages.index("decode")


def test_bad_input_is_a_400_from_the_pipeline_deployment(services):
    from deployments.errors import InvalidModelInput

    pipeline, _, _ = services
    payload = {"text": "Hello", "language": "en", "reference": np.zeros(SR, np.float32), "reference_text": "Hi",
               "target_len": 1.0}
    with pytest.raises(InvalidModelInput, match="silent"):
        asyncio.run(pipeline.synthesize(payload))
    with pytest.raises(InvalidModelInput, match="language"):
        asyncio.run(pipeline.synthesize({**payload, "reference": _reference(), "language": "xx"}))


def test_a_component_without_weights_makes_the_pipeline_unavailable(services, monkeypatch, tmp_path):
    from deployments.errors import ModelUnavailable
    from deployments.maskgct import S2A, MaskGCTS2AService, MaskGCTService

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("AMPHION_HF_CACHE", str(tmp_path / "hf"))
    monkeypatch.delenv("AMPHION_WEIGHTS_DIR", raising=False)
    monkeypatch.setenv(DATA_DIR_ENV, str(G2P_DATA))
    missing = MaskGCTS2AService(weights="pretrained")
    info = asyncio.run(missing.info())
    assert info["status"] == "unavailable" and "no weights" in info["detail"]
    with pytest.raises(ModelUnavailable):
        asyncio.run(missing.generate("semantic_to_acoustic", {}))

    _, components, _ = services
    pipeline = MaskGCTService({**components, S2A: LocalHandle(missing)}, weights="tiny")
    info = asyncio.run(pipeline.info())
    assert info["status"] == "unavailable" and S2A in info["detail"]
    with pytest.raises(ModelUnavailable):
        asyncio.run(pipeline.describe())


def test_without_reference_text_the_prompt_is_transcribed_and_cut(pipe, services):
    """Whisper's transcript, language and cut are what the pipeline then runs with: the same audio as
    the in-process pipeline given that cut reference, transcript and language."""
    from deployments.asr import WhisperASRService
    from models.audio.wav import encode_wav

    pipeline, _, store = services
    reference = _reference(seconds=6.0)
    heard = asyncio.run(WhisperASRService(weights="tiny").prompt(reference, SR, 4.0))
    payload = {"text": "Hello world.", "language": "en", "reference": reference, "reference_text": None,
               "target_len": 1.0, "n_timesteps": 3, "seed": 2, "subtype": "PCM_16", "task_id": "composed-asr-0001"}

    async def scenario():
        result = await pipeline.synthesize(payload)
        events, _ = await store.wait_events(payload["task_id"], 0, 1.0)
        return result, events

    result, events = asyncio.run(scenario())
    cut = reference[: int(round(heard["seconds"] * SR))]
    expected = pipe.generate("Hello world.", "en", cut, heard["text"], reference_language=heard["language"],
                             target_len_s=1.0, n_timesteps=3, seed=2)
    assert result["wav"] == encode_wav(expected, SR, "PCM_16")
    assert [e["stage"] for e in events][0] == "asr"


def test_transcribed_language_the_g2p_lacks_is_a_400(services, monkeypatch):
    from deployments.errors import InvalidModelInput

    pipeline, components, _ = services

    class Heard:
        def __init__(self, answer):
            self.answer = answer

        def __getattr__(self, method):
            answer = self.answer

            class _Method:
                @staticmethod
                async def remote(*args):
                    return answer

            return _Method

    payload = {"text": "Hello", "language": "en", "reference": _reference(), "reference_text": None,
               "target_len": 1.0}
    monkeypatch.setitem(pipeline.components, "WhisperASR", Heard({"text": "hola", "language": "es", "seconds": 2.0}))
    with pytest.raises(InvalidModelInput, match="'es'.*reference_text"):
        asyncio.run(pipeline.synthesize(payload))
    monkeypatch.setitem(pipeline.components, "WhisperASR", Heard({"text": " ", "language": "en", "seconds": 2.0}))
    with pytest.raises(InvalidModelInput, match="no speech"):
        asyncio.run(pipeline.synthesize(payload))


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_half_precision_components_still_speak(dtype):
    """The GPU default (float16) and bfloat16: the T2S deployment loads its model in that type, and a
    pipeline with the generators and the semantic encoder in half precision (codecs in float32) gives
    finite audio of the requested length."""
    from deployments.maskgct import MaskGCTT2SService

    want = getattr(torch, dtype)
    assert next(MaskGCTT2SService(weights="tiny", dtype=dtype).pipeline.t2s.parameters()).dtype == want
    half = MaskGCTPipeline.from_weights("tiny", dtype=want, g2p_data=G2P_DATA)
    assert next(half.s2a_full.parameters()).dtype == want
    assert next(half.acoustic_codec.parameters()).dtype == torch.float32
    audio = half.generate("Hello world.", "en", _reference(), REF_TEXT, target_len_s=0.6, n_timesteps=3, seed=1)
    assert audio.dtype == np.float32 and audio.shape == (30 * 480,) and np.isfinite(audio).all()


def test_semantic_deployment_serves_raw_hidden_states_for_other_models():
    """DualCodec shares the w2v-bert deployment: the raw layer features, which the MaskGCT path
    normalises with its own statistics."""
    from deployments.errors import InvalidModelInput
    from deployments.maskgct import W2VBertSemanticService

    service = W2VBertSemanticService(weights="tiny")
    wav16k = _reference(seconds=1.0)[::3].copy()
    raw = asyncio.run(service.hidden_states(wav16k))
    encoder = service.pipeline.semantic_encoder
    assert raw.dtype == np.float32 and raw.shape == (encoder.num_frames(len(wav16k)), encoder.hidden_size)
    normalised = encoder.encode(wav16k)[0].numpy()
    np.testing.assert_allclose((raw - encoder.mean.numpy()) / encoder.std.numpy(), normalised, rtol=1e-5, atol=1e-5)
    with pytest.raises(InvalidModelInput, match="too short"):
        asyncio.run(service.hidden_states(np.zeros(100, np.float32)))
