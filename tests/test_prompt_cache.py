"""The prompt-encoding cache (models/core/prompt_cache.py): bounded, thread-safe, hands out copies;
and in the entries that encode prompts (MaskGCT, Vevo; tiny weights, parts behind local handles that
count their calls): a second request with the same reference skips the prompt encoders and the
transcription, and its audio equals bit for bit what the same seed gives without the cache. A
source recording is never kept under the reference's name."""

from __future__ import annotations

import asyncio
import io
import threading
from collections import Counter

import numpy as np
import pytest
import soundfile as sf

from models.core.prompt_cache import PromptCache, PromptMemo, prompt_key
from models.text import DATA_DIR_ENV, espeak_version
from serve_app.state import LocalStateStore, StateCore
from tests.test_vevo_served import G2P_DATA, SR, _voice

needs_text = pytest.mark.skipif(not (G2P_DATA / "vocab.json").is_file() or espeak_version() is None,
                                reason="G2P data or espeak-ng missing")


# --- the cache itself -----------------------------------------------------------------------------


def test_lru_bounds_by_entries_and_bytes():
    cache = PromptCache(max_entries=3, max_mb=1)
    for i in range(4):
        cache.put(("k", i), np.zeros(10, np.int64))
    assert len(cache) == 3 and cache.get(("k", 0)) is None            # the oldest went
    cache.get(("k", 1))                                                # now the most recent
    cache.put(("k", 4), np.zeros(10, np.int64))
    assert cache.get(("k", 1)) is not None and cache.get(("k", 2)) is None
    big = np.zeros(300_000, np.float32)                                # 1.2 MB: larger than the cache
    cache.put(("big",), big)
    assert cache.get(("big",)) is None
    for i in range(3):
        cache.put(("half", i), np.zeros(100_000, np.float32))          # 0.4 MB each: only two fit
    assert len(cache) == 2 and cache.size_bytes <= 1024 * 1024


def test_values_are_copies_both_ways():
    cache = PromptCache()
    value = {"codes": np.arange(6).reshape(2, 3), "text": "hi"}
    cache.put(("v",), value)
    value["codes"][0, 0] = 99                       # the caller changes what it kept
    got = cache.get(("v",))
    assert got["codes"][0, 0] == 0
    got["codes"][:] = -1                            # and what it got
    assert cache.get(("v",))["codes"][1, 2] == 5


def test_thread_safe_under_concurrent_use():
    cache = PromptCache(max_entries=50, max_mb=1)
    errors = []

    def work(n):
        try:
            for i in range(300):
                cache.put((n, i % 70), np.full(64, i, np.int32))
                found = cache.get((n, (i * 7) % 70))
                assert found is None or found.shape == (64,)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(cache) <= 50


def test_memo_keys_reports_and_cuts():
    cache = PromptCache()
    calls = Counter()

    async def encode(what):
        calls[what] += 1
        return np.array([len(what)])

    async def scenario(key, weights="tiny"):
        memo = PromptMemo(cache, key, weights=weights)
        await memo.get("tokens", lambda: encode("tokens"))
        await memo.cut(100).get("tokens", lambda: encode("cut tokens"))
        return memo.report()

    first = asyncio.run(scenario("abc"))
    assert first["misses"] == ["tokens", "tokens"] and not first["hits"] and first["seconds"] >= 0
    second = asyncio.run(scenario("abc"))
    assert second["hits"] == ["tokens", "tokens"] and not second["misses"] and second["seconds"] == 0
    assert calls == {"tokens": 1, "cut tokens": 1}
    asyncio.run(scenario("abc", weights="pretrained"))      # other weights: computed again
    assert calls == {"tokens": 2, "cut tokens": 2}
    no_key = PromptMemo(cache, None)
    asyncio.run(no_key.get("tokens", lambda: encode("tokens")))
    assert no_key.report() is None and calls["tokens"] == 3


def test_prompt_key_names_the_samples_and_rate():
    wave = _voice(0.5, 200)
    assert prompt_key(wave, SR) == prompt_key(wave.copy(), SR)
    assert prompt_key(wave, SR) != prompt_key(wave, 16000)
    changed = wave.copy()
    changed[100] += 1e-6
    assert prompt_key(changed, SR) != prompt_key(wave, SR)


# --- in the entries -------------------------------------------------------------------------------


class CountingHandle:
    """A part's handle in this process that counts the stages (and methods) it is asked to run."""

    def __init__(self, service, counts: Counter):
        self.service = service
        self.counts = counts

    def __getattr__(self, method):
        fn = getattr(self.service, method)
        counts = self.counts

        class _Method:
            @staticmethod
            async def remote(*args):
                stage = args[0] if method in ("run", "generate") else method
                counts[stage] += 1
                return await fn(*args)

        return _Method


def _run(method, payload):
    return asyncio.run(method(dict(payload)))


def _same_audio(*results) -> bool:
    """The float32 samples are equal bit for bit (the WAV bytes are not: a float WAV's PEAK chunk
    holds the time it was written)."""
    first, *others = [sf.read(io.BytesIO(r["wav"]), dtype="float32")[0] for r in results]
    return all(np.array_equal(first, other) for other in others)


@pytest.fixture(scope="module")
def maskgct():
    from deployments.asr import WhisperASRService
    from deployments.maskgct import (
        COMPONENTS, MaskGCTAcousticCodecService, MaskGCTS2AService, MaskGCTService, MaskGCTT2SService,
        W2VBertSemanticService,
    )

    store = LocalStateStore(StateCore())
    counts: Counter = Counter()
    classes = (W2VBertSemanticService, MaskGCTAcousticCodecService, MaskGCTT2SService, MaskGCTS2AService)
    components = {name: CountingHandle(cls(weights="tiny", store=store), counts)
                  for name, cls in zip(COMPONENTS, classes)}
    components["WhisperASR"] = CountingHandle(WhisperASRService(weights="tiny"), counts)
    mp = pytest.MonkeyPatch()
    mp.setenv(DATA_DIR_ENV, str(G2P_DATA))
    entry = MaskGCTService(components, weights="tiny", store=store)
    yield entry, counts
    mp.undo()


@needs_text
@pytest.mark.parametrize("transcribed", [False, True], ids=["with_text", "transcribed"])
def test_maskgct_second_request_skips_the_prompt_encoders(maskgct, transcribed):
    entry, counts = maskgct
    reference = _voice(5.0 if transcribed else 2.0, 150, 1)
    payload = {"text": "Hello world.", "language": "en", "reference": reference,
               "reference_text": None if transcribed else "A short reference.", "target_len": 1.0,
               "n_timesteps": 2, "seed": 3, "subtype": "FLOAT"}
    uncached = _run(entry.synthesize, payload)
    assert "prompt" not in uncached                     # no prompt key: nothing kept, nothing reported
    keyed = {**payload, "prompt_key": prompt_key(reference, SR)}
    counts.clear()
    first = _run(entry.synthesize, keyed)
    encoders = {"semantic_tokens": 1, "acoustic_codes": 1, **({"prompt": 1} if transcribed else {})}
    assert {k: counts[k] for k in encoders} == encoders
    assert not first["prompt"]["hits"] and len(first["prompt"]["misses"]) == len(encoders)
    counts.clear()
    second = _run(entry.synthesize, keyed)
    assert not any(counts[k] for k in encoders), counts           # no encoder, no Whisper
    assert counts["text_to_semantic"] == 1 and counts["semantic_to_acoustic"] == 1
    assert second["prompt"]["hits"] == first["prompt"]["misses"] and second["prompt"]["seconds"] == 0
    assert _same_audio(uncached, first, second)                    # bit for bit, with and without the cache


@pytest.fixture(scope="module")
def vevo():
    from deployments.asr import WhisperASRService
    from deployments.vevo import PARTS, VevoPartService, VevoService

    store = LocalStateStore(StateCore())
    counts: Counter = Counter()
    parts = {p.name: CountingHandle(VevoPartService(**p.bind_args, weights="tiny", store=store), counts)
             for p in PARTS}
    asr = CountingHandle(WhisperASRService(weights="tiny"), counts)
    mp = pytest.MonkeyPatch()
    mp.setenv(DATA_DIR_ENV, str(G2P_DATA))
    entry = VevoService({**parts, "WhisperASR": asr}, weights="tiny", store=store)
    yield entry, counts
    mp.undo()


@needs_text
def test_vevo_tts_keeps_transcript_style_timbre_and_mel(vevo):
    entry, counts = vevo
    reference = _voice(1.5, 180, 5)
    payload = {"text": "Hello.", "reference": reference, "language": "en", "mode": "ar", "flow_matching_steps": 2,
               "seed": 2, "subtype": "FLOAT"}
    uncached = _run(entry.tts, payload)
    keyed = {**payload, "prompt_key": prompt_key(reference, SR)}
    first = _run(entry.tts, keyed)
    counts.clear()
    second = _run(entry.tts, keyed)
    assert not counts["contentstyle_tokens"] and not counts["mel"] and not counts["prompt"], counts
    assert counts["ar_tts"] == 1 and counts["flow_matching"] == 1
    assert set(second["prompt"]["hits"]) >= {"transcript", "contentstyle_tokens", "mel"}
    assert _same_audio(uncached, first, second)


def test_vevo_style_never_keeps_the_source(vevo):
    """Style conversion: the reference gives the style, the SOURCE the timbre: a second source with
    the same reference must be tokenized (and its mel taken) afresh."""
    entry, counts = vevo
    reference = _voice(1.2, 220, 8)
    key = prompt_key(reference, SR)
    _run(entry.style, {"source": _voice(1.0, 100, 11), "reference": reference, "flow_matching_steps": 2,
                       "prompt_key": key})       # the reference's style tokens are now kept
    for n, source in enumerate((_voice(1.0, 130, 9), _voice(1.0, 300, 10))):
        payload = {"source": source, "reference": reference, "flow_matching_steps": 2, "seed": 4, "subtype": "FLOAT"}
        uncached = _run(entry.style, payload)
        counts.clear()
        cached = _run(entry.style, {**payload, "prompt_key": key})
        assert _same_audio(cached, uncached), f"source {n}"
        assert counts["contentstyle_tokens"] == 1 and counts["mel"] == 1   # the source's, every time
