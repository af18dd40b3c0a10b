"""Vevo's four tasks end to end with the tiny profile (CPU, offline): output contract, durations,
progress, seeding, the orchestration over threaded separately-loaded stages, input errors, parts
and weights resolution.

Tiny AR weights practically never sample the output EOS; the tiny AR limits cap the new tokens at
one per source frame (conversions) and four per text phone (TTS). The clips and texts here keep
that cap under the 50-token minimum length (EOS masked), so every tiny duration is exact."""

from __future__ import annotations

import asyncio
import math
import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from models.text import DATA_DIR_ENV, UnsupportedLanguage, espeak_version
from models.vevo.flow_matching import build_fm_model
from models.vevo.fm_ar_configs import TINY_AR_LIMITS, ARLimits, FMConfig
from models.vevo.official import HUBERT_DIR_ENV
from models.vevo.orchestration import (
    STAGES,
    AudioInputError,
    AudioTooShortError,
    EmptyTextError,
    InlineStages,
    InputTooLongError,
    LocalStages,
    ReferenceTextRequired,
    SilentAudioError,
    UnsupportedLanguageError,
    VevoInputError,
    VevoOrchestrator,
)
from models.vevo.pipeline import VevoPipeline, resolve_parts
from models.weights import WeightsUnavailable

G2P_DATA = Path(os.environ.get(DATA_DIR_ENV) or Path(__file__).resolve().parents[2] / "shared" / "data" / "maskgct_g2p")

pytestmark = [
    pytest.mark.skipif(not (G2P_DATA / "vocab.json").is_file(), reason=f"G2P data not found at {G2P_DATA}"),
    pytest.mark.skipif(espeak_version() is None, reason="espeak-ng cannot be loaded here (English G2P)"),
]

SR = 24000
HOP = 480
STEPS = 3
SHORT_TEXT, LONG_TEXT = "Hi.", "Hello there."   # 3 and 8 phones: 12 and 32 tiny AR tokens
REF_TEXT = "A short one."


def _voice(seconds: float, seed: int, f0: float = 120.0) -> np.ndarray:
    """A voiced-sounding test signal: harmonics of ``f0`` under a 3 Hz syllable envelope, plus noise."""
    n = int(round(seconds * SR))
    t = np.arange(n) / SR
    harmonics = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 8))
    noise = np.random.default_rng(seed).standard_normal(n)
    return (0.3 * np.sin(2 * np.pi * 3 * t) ** 2 * harmonics + 0.01 * noise).astype(np.float32)


@pytest.fixture(scope="module")
def pipe() -> VevoPipeline:
    return VevoPipeline.from_weights("tiny", g2p_data=G2P_DATA)


@pytest.fixture(scope="module")
def source() -> np.ndarray:
    return _voice(0.81, seed=1, f0=160.0)   # 19440 samples: 40.5 frames


@pytest.fixture(scope="module")
def reference() -> np.ndarray:
    return _voice(1.0, seed=2)


def _run(pipe: VevoPipeline, task: str, source, reference, **kw) -> np.ndarray:
    kw.setdefault("flow_matching_steps", STEPS)
    if task == "timbre":
        return pipe.timbre(source, reference, **kw)
    if task == "style":
        return pipe.style(source, reference, **kw)
    if task == "voice_ar":
        return pipe.voice(source, reference, "ar", **kw)
    if task == "voice_fm":
        return pipe.voice(source, reference, "fm", **kw)
    if task == "tts_fm":
        return pipe.tts(LONG_TEXT, reference, "fm", **kw)
    if task == "tts_ar":
        return pipe.tts(LONG_TEXT, reference, "ar", reference_text=REF_TEXT, **kw)
    raise AssertionError(task)


TASKS = ("timbre", "style", "voice_ar", "voice_fm", "tts_fm", "tts_ar")


# --- the output ----------------------------------------------------------------------------------


def test_pipeline_facts(pipe):
    assert pipe.weights_kind == "tiny" and pipe.ar_limits == TINY_AR_LIMITS
    assert (pipe.sample_rate, pipe.frame_rate, pipe.hop_length, pipe.codebook_size) == (SR, 50, HOP, 8192)
    assert pipe.parts == ("tokenizer", "ar_vc", "ar_tts", "fm", "vocoder", "g2p")


@pytest.mark.parametrize("task", ("timbre", "style", "voice_ar", "voice_fm"))
def test_conversions_give_24khz_audio_of_the_source_duration(pipe, source, reference, task):
    audio = _run(pipe, task, source, reference, seed=0)
    assert isinstance(audio, np.ndarray) and audio.dtype == np.float32 and audio.ndim == 1
    assert np.isfinite(audio).all() and np.abs(audio).max() > 0
    assert len(source) - HOP < audio.size <= len(source)
    assert audio.size == (len(source) // HOP) * HOP


@pytest.mark.parametrize("samples", (12000, 12001, 12479, 12480 + 80, 15999))
def test_timbre_conversion_keeps_the_duration_for_any_length(pipe, reference, samples):
    source = _voice(samples / SR, seed=3)
    audio = pipe.timbre(source, reference, flow_matching_steps=1, seed=0)
    assert audio.size == (samples // HOP) * HOP


@pytest.mark.parametrize("mode", ("fm", "ar"))
def test_tts_gives_24khz_audio_whose_duration_follows_the_text(pipe, reference, mode):
    kw = dict(flow_matching_steps=STEPS, seed=0, reference_text=REF_TEXT if mode == "ar" else None)
    short = pipe.tts(SHORT_TEXT, reference, mode, **kw)
    long = pipe.tts(LONG_TEXT, reference, mode, **kw)
    for audio, text in ((short, SHORT_TEXT), (long, LONG_TEXT)):
        assert audio.dtype == np.float32 and audio.ndim == 1 and np.isfinite(audio).all()
        frames = math.ceil(TINY_AR_LIMITS.frames_per_phone * len(pipe.g2p.phone_ids(text, "en")))
        assert frames < 50                       # under the AR's minimum length: no EOS, exact
        assert audio.size == frames * HOP
    assert long.size > short.size


def test_tts_detects_the_language_and_accepts_mandarin(pipe, reference):
    audio = pipe.tts("你好。", reference, flow_matching_steps=1, seed=0)
    assert audio.size == math.ceil(4 * len(pipe.g2p.phone_ids("你好。", "zh"))) * HOP


# --- progress ------------------------------------------------------------------------------------


def _events(pipe, task, source, reference, **kw):
    events: list[tuple[str, int, int]] = []
    _run(pipe, task, source, reference, seed=0, on_progress=lambda *e: events.append(e), **kw)
    return events


def test_progress_per_fm_step_per_ar_block_in_stage_order(pipe, reference):
    source = _voice(1.2, seed=4)              # 60 frames -> 60 AR tokens: one block of 50, then the end
    events = _events(pipe, "voice_ar", source, reference, flow_matching_steps=4)
    assert [e for e in events if e[0] == "fm"] == [("fm", i, 4) for i in range(1, 5)]
    assert [e for e in events if e[0] == "ar"] == [("ar", 50, 60), ("ar", 60, 60)]
    order = [STAGES.index(stage) for stage, _, _ in events]
    assert order == sorted(order)
    assert {e[0] for e in events} == {"content_tokens", "contentstyle_tokens", "ar", "mel", "fm", "vocode"}


@pytest.mark.parametrize("task, expected", [
    ("timbre", ["contentstyle_tokens", "contentstyle_tokens", "mel", "fm", "vocode"]),
    ("style", ["content_tokens", "contentstyle_tokens", "contentstyle_tokens", "ar", "mel", "fm", "vocode"]),
    ("tts_fm", ["g2p", "contentstyle_tokens", "ar", "mel", "fm", "vocode"]),
    ("tts_ar", ["g2p", "contentstyle_tokens", "ar", "mel", "fm", "vocode"]),
])
def test_progress_names_each_stage(pipe, source, reference, task, expected):
    events = _events(pipe, task, source, reference, flow_matching_steps=1)
    assert [stage for stage, _, _ in events] == expected
    tokenized = [e for e in events if e[0] == "contentstyle_tokens"]
    assert [(s, t) for _, s, t in tokenized] == [(i, len(tokenized)) for i in range(1, len(tokenized) + 1)]


# --- randomness ----------------------------------------------------------------------------------


@pytest.mark.parametrize("task", ("timbre", "voice_ar", "tts_fm"))
def test_same_seed_same_audio_other_seed_other_audio(pipe, source, reference, task):
    a = _run(pipe, task, source, reference, seed=7)
    b = _run(pipe, task, source, reference, seed=7)
    c = _run(pipe, task, source, reference, seed=8)
    assert np.array_equal(a, b)
    assert a.shape == c.shape and not np.array_equal(a, c)


# --- the orchestration over separately loaded, threaded stages -------------------------------------


class ThreadStages:
    """The stages as a serving layer runs them: each part in its own (separately loaded) pipeline,
    every call in a worker thread, requests and answers pickled on the way (as handles do)."""

    def __init__(self, parts: dict[str, VevoPipeline], emit=None) -> None:
        self.local = {name: LocalStages(p) for name, p in parts.items()}
        self.emit = emit

    async def _call(self, part: str, method: str, *args):
        args = pickle.loads(pickle.dumps(args))
        answer = await asyncio.to_thread(getattr(self.local[part], method), *args)
        return pickle.loads(pickle.dumps(answer))

    async def content_tokens(self, wav16k):
        return await self._call("tokenizer", "content_tokens", wav16k)

    async def contentstyle_tokens(self, wav16k):
        return await self._call("tokenizer", "contentstyle_tokens", wav16k)

    async def mel(self, wav24k):
        return await self._call("fm", "mel", wav24k)

    async def ar_vc(self, request):
        return await self._call("ar_vc", "ar_vc", request)

    async def ar_tts(self, request):
        return await self._call("ar_tts", "ar_tts", request)

    async def flow_matching(self, request):
        return await self._call("fm", "flow_matching", request)

    async def vocode(self, mel):
        return await self._call("vocoder", "vocode", mel)


@pytest.fixture(scope="module")
def served_parts() -> dict[str, VevoPipeline]:
    return {part: VevoPipeline.from_weights("tiny", parts=(part,))
            for part in ("tokenizer", "ar_vc", "ar_tts", "fm", "vocoder")}


@pytest.mark.parametrize("task", ("timbre", "style", "voice_ar", "tts_fm", "tts_ar"))
def test_threaded_separate_stages_give_the_in_process_audio(pipe, served_parts, source, reference, task):
    expected = _run(pipe, task, source, reference, seed=11)
    orchestrator = VevoOrchestrator(pipe.g2p, ar_limits=served_parts["ar_vc"].ar_limits)
    stages = ThreadStages(served_parts)
    kw = dict(flow_matching_steps=STEPS, seed=11)
    calls = {
        "timbre": lambda: orchestrator.timbre(stages, source, reference, **kw),
        "style": lambda: orchestrator.style(stages, source, reference, **kw),
        "voice_ar": lambda: orchestrator.voice(stages, source, reference, "ar", **kw),
        "tts_fm": lambda: orchestrator.tts(stages, LONG_TEXT, reference, "fm", **kw),
        "tts_ar": lambda: orchestrator.tts(stages, LONG_TEXT, reference, "ar", reference_text=REF_TEXT, **kw),
    }
    assert np.array_equal(asyncio.run(calls[task]()), expected)


def test_a_part_pipeline_refuses_what_it_does_not_hold(served_parts, source, reference):
    fm_only = served_parts["fm"]
    assert fm_only.parts == ("fm",)
    with pytest.raises(RuntimeError, match="'tokenizer'.*'vocoder'"):
        fm_only.timbre(source, reference)
    with pytest.raises(RuntimeError, match="'ar_vc'"):
        fm_only.content_style("vc", np.zeros(3, np.int64), np.zeros(3, np.int64))


# --- the reference's transcript from speech recognition --------------------------------------------


class FakeTranscript:
    def __init__(self, text: str, language: str, seconds: float) -> None:
        self.text, self.language, self.seconds = text, language, seconds

    def prompt(self, min_seconds: float) -> tuple[float, str]:
        return self.seconds, self.text


class FakeTranscriber:
    def __init__(self, text: str, language: str = "en", seconds: float = 0.6) -> None:
        self.answer = FakeTranscript(text, language, seconds)
        self.heard: list[int] = []

    def transcribe(self, wav16k):
        self.heard.append(len(wav16k))
        return self.answer


def _with_transcriber(pipe: VevoPipeline, transcriber) -> VevoPipeline:
    return VevoPipeline(hubert=pipe.hubert, content_tokenizer=pipe.content_tokenizer,
                        contentstyle_tokenizer=pipe.contentstyle_tokenizer, ar_vc=pipe.ar_vc, ar_tts=pipe.ar_tts,
                        fm=pipe.fm, vocoder=pipe.vocoder, g2p=pipe.g2p, transcriber=transcriber,
                        weights_kind="tiny", ar_limits=TINY_AR_LIMITS)


def test_tts_ar_transcribes_the_reference_when_no_text_is_given(pipe, reference):
    transcriber = FakeTranscriber(REF_TEXT, seconds=0.6)
    events: list[tuple[str, int, int]] = []
    audio = _with_transcriber(pipe, transcriber).tts(LONG_TEXT, reference, "ar", flow_matching_steps=1, seed=0,
                                                     on_progress=lambda *e: events.append(e))
    assert transcriber.heard == [16000]
    assert audio.size == math.ceil(4 * len(pipe.g2p.phone_ids(LONG_TEXT, "en"))) * HOP
    # the style prompt is the transcribed 0.6 s, the timbre prompt the whole reference: two tokenizations
    assert [e for e in events if e[0] in ("transcribe", "contentstyle_tokens")] == [
        ("transcribe", 1, 1), ("contentstyle_tokens", 1, 2), ("contentstyle_tokens", 2, 2)]


@pytest.mark.parametrize("text, language, error", [
    ("   ", "en", EmptyTextError),
    ("こんにちは", "ja", UnsupportedLanguageError),
])
def test_unusable_transcripts_are_input_errors(pipe, reference, text, language, error):
    with pytest.raises(error):
        _with_transcriber(pipe, FakeTranscriber(text, language)).tts(LONG_TEXT, reference, "ar")


# --- input errors --------------------------------------------------------------------------------


class NoStages:
    """Stages that must never run: input errors come before any model."""

    def __getattr__(self, name):
        raise AssertionError(f"stage {name} ran before the input checks")


def _silent(n: int = SR) -> np.ndarray:
    return np.zeros(n, np.float32)


@pytest.mark.parametrize("call, error, message", [
    (lambda o, s, src, ref: o.timbre(s, np.zeros(0, np.float32), ref), AudioTooShortError, "source audio is empty"),
    (lambda o, s, src, ref: o.timbre(s, None, ref), AudioTooShortError, "source audio is empty"),
    (lambda o, s, src, ref: o.voice(s, src, ref[:SR // 4]), AudioTooShortError, "reference audio is too short"),
    (lambda o, s, src, ref: o.style(s, _silent(), ref), SilentAudioError, "source audio is silent"),
    (lambda o, s, src, ref: o.timbre(s, src, _silent()), SilentAudioError, "reference audio is silent"),
    (lambda o, s, src, ref: o.timbre(s, np.stack([src, src]), ref), AudioInputError, "mono"),
    (lambda o, s, src, ref: o.timbre(s, np.full(SR, np.nan, np.float32), ref), AudioInputError, "NaN"),
    (lambda o, s, src, ref: o.tts(s, "", ref), EmptyTextError, "text is empty"),
    (lambda o, s, src, ref: o.tts(s, " \n", ref), EmptyTextError, "text is empty"),
    (lambda o, s, src, ref: o.tts(s, "- -", ref), EmptyTextError, "nothing to pronounce"),
    (lambda o, s, src, ref: o.tts(s, "Hello.", ref, "ar", reference_text=""), EmptyTextError, "reference_text"),
    (lambda o, s, src, ref: o.tts(s, "Hello.", ref, language="xx"), UnsupportedLanguageError, "'xx'"),
    (lambda o, s, src, ref: o.tts(s, "Hello.", ref, language="ja"), UnsupportedLanguageError, "'ja'"),
    (lambda o, s, src, ref: o.tts(s, "Hello.", ref, "ar"), ReferenceTextRequired, "reference_text"),
    (lambda o, s, src, ref: o.voice(s, src, ref, "xx"), VevoInputError, "mode"),
    (lambda o, s, src, ref: o.tts(s, "Hello.", ref, "xx"), VevoInputError, "mode"),
    (lambda o, s, src, ref: o.timbre(s, src, ref, flow_matching_steps=0), VevoInputError, "1..128"),
    (lambda o, s, src, ref: o.timbre(s, src, ref, flow_matching_steps=129), VevoInputError, "1..128"),
    (lambda o, s, src, ref: o.timbre(s, src, ref, seed=-1), VevoInputError, "seed"),
    (lambda o, s, src, ref: o.style(s, src, ref, top_p=1.5), VevoInputError, "top_p"),
    (lambda o, s, src, ref: o.style(s, src, ref, temperature=0), VevoInputError, "temperature"),
])
def test_input_errors_come_first_with_clear_messages(pipe, source, reference, call, error, message):
    with pytest.raises(error, match=message):
        asyncio.run(call(pipe.orchestrator(), NoStages(), source, reference))


def test_unsupported_language_is_also_the_g2p_error(pipe, reference):
    with pytest.raises(UnsupportedLanguage, match="supported languages"):
        pipe.tts("Hello.", reference, language="xx")


def test_inputs_too_long_for_the_ar_are_an_input_error(pipe, source, reference):
    orchestrator = VevoOrchestrator(pipe.g2p, ar_limits=ARLimits(max_length=40))
    stages = InlineStages(LocalStages(pipe))
    with pytest.raises(InputTooLongError, match="at most 40"):
        asyncio.run(orchestrator.voice(stages, source, reference, "ar", flow_matching_steps=1))


def test_ar_tokens_outside_the_codebook_are_dropped(pipe, source, reference):
    class Tampered(InlineStages):
        async def ar_vc(self, request):
            answer = await super().ar_vc(request)
            return {**answer, "tokens": np.concatenate([answer["tokens"], [8192, 9000]])}

    expected = pipe.voice(source, reference, "ar", flow_matching_steps=1, seed=0)
    got = asyncio.run(pipe.orchestrator().voice(Tampered(LocalStages(pipe)), source, reference, "ar",
                                                flow_matching_steps=1, seed=0))
    assert np.array_equal(got, expected)


# --- construction --------------------------------------------------------------------------------


def test_components_that_do_not_fit_are_refused(pipe):
    odd_fm = build_fm_model(FMConfig(family="vevo", mel_dim=128, hidden_size=16, num_layers=1, num_heads=2,
                                     cond_codebook_size=64))
    with pytest.raises(ValueError, match="codebooks differ"):
        VevoPipeline(ar_vc=pipe.ar_vc, fm=odd_fm)
    with pytest.raises(ValueError, match="go together"):
        VevoPipeline(hubert=pipe.hubert)
    with pytest.raises(ValueError, match="unknown"):
        VevoPipeline.from_weights("tiny", parts=("tokenizer", "nope"))


def test_weights_resolution(monkeypatch, tmp_path):
    monkeypatch.delenv(HUBERT_DIR_ENV, raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("AMPHION_HF_CACHE", str(tmp_path))
    kind, found, note = resolve_parts("auto", ("fm",))
    assert (kind, found) == ("tiny", {}) and "tiny" in note
    with pytest.raises(WeightsUnavailable):
        resolve_parts("pretrained", ("fm",))
    with pytest.raises(ValueError, match="unknown entries"):
        resolve_parts("tiny", local_dirs={"nope": tmp_path})
    assert VevoPipeline.from_weights("auto", parts=("vocoder",)).weights_kind == "tiny"
