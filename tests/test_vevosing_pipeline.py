"""VevoSing (``/api/svc/vevosing``) end to end with the tiny profile (CPU, offline): the ``"fm"`` and
``"ar"`` modes, the key shift, progress, seeding, the orchestrator over separately loaded parts in
worker threads (with a transcribing stage), part loading and input errors."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from models.core.stages import in_thread
from models.text import DATA_DIR_ENV, UnsupportedLanguage, espeak_version
from models.vevosing.orchestration import LocalStages, VevoSingOrchestrator, key_shift
from models.vevosing.pipeline import (
    STAGES,
    InputTooLongError,
    UnsupportedLanguageError,
    VevoSingInputError,
    VevoSingPipeline,
    pitch_shift,
    resolve_parts,
)

G2P_DATA = Path(os.environ.get(DATA_DIR_ENV) or Path(__file__).resolve().parents[2] / "shared" / "data" / "maskgct_g2p")

pytestmark = [
    pytest.mark.skipif(not (G2P_DATA / "vocab.json").is_file(), reason=f"G2P data not found at {G2P_DATA}"),
    pytest.mark.skipif(espeak_version() is None, reason="espeak-ng cannot be loaded here (English G2P)"),
]

SR = 24000
HOP = 480
LYRICS = "Let it be, let it be."
REF_TEXT = "Hello there, la la la."
FM = dict(flow_matching_steps=3, seed=7)


def _voice(seconds: float, f0: float, seed: int) -> np.ndarray:
    """A sung-sounding test signal: harmonics of ``f0`` under a 2 Hz note envelope, plus a little noise."""
    t = np.arange(int(seconds * SR)) / SR
    harmonics = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 6))
    noise = np.random.default_rng(seed).standard_normal(len(t))
    return (0.3 * np.sin(2 * np.pi * 2 * t) ** 2 * harmonics + 0.01 * noise).astype(np.float32)


SOURCE = _voice(1.31, 220.0, 0)      # not a whole number of frames: 65 frames + 240 samples
REFERENCE = _voice(1.1, 150.0, 1)    # 6.6 semitones below the source


@pytest.fixture(scope="module")
def pipe() -> VevoSingPipeline:
    return VevoSingPipeline.from_weights("tiny", g2p_data=G2P_DATA)


def _run(pipe, mode="fm", **kwargs):
    calls: list[tuple[str, int, int]] = []
    audio = pipe.convert(SOURCE, REFERENCE, mode, on_progress=lambda *a: calls.append(a), **kwargs)
    return audio, calls


@pytest.fixture(scope="module")
def fm_run(pipe):
    return _run(pipe, use_shifted_src=False, **FM)


@pytest.fixture(scope="module")
def ar_run(pipe):
    return _run(pipe, "ar", lyrics=LYRICS, reference_text=REF_TEXT, language="en", **FM)


# --- fm ------------------------------------------------------------------------------------------


def test_fm_gives_the_source_duration_at_24k(pipe, fm_run):
    audio, calls = fm_run
    assert pipe.weights_kind == "tiny" and pipe.sample_rate == SR and pipe.hop_length == HOP
    assert isinstance(audio, np.ndarray) and audio.dtype == np.float32 and audio.ndim == 1
    assert audio.shape == ((len(SOURCE) // HOP) * HOP,) and abs(len(audio) - len(SOURCE)) < HOP
    assert np.isfinite(audio).all()
    assert calls == [("content_style", 1, 2), ("content_style", 2, 2), ("mel", 1, 1), ("fm", 1, 3), ("fm", 2, 3),
                     ("fm", 3, 3), ("vocoder", 1, 1)]


def test_fm_with_shifted_source_moves_its_melody_to_the_reference_key(pipe):
    assert key_shift(SOURCE, REFERENCE) == -7                 # round(12 log2(150 / 220)) = round(-6.63)
    assert key_shift(SOURCE, np.random.default_rng(2).standard_normal(SR).astype(np.float32) * 0.1) == 0  # unvoiced
    audio, calls = _run(pipe, use_shifted_src=True, **FM)
    assert audio.dtype == np.float32 and audio.shape == ((len(SOURCE) // HOP) * HOP,) and np.isfinite(audio).all()
    assert calls[0] == ("pitch", 1, 1) and [c[0] for c in calls[1:3]] == ["content_style"] * 2
    shifted = pipe.content_style_tokens(SOURCE, -7)
    assert shifted.shape == pipe.content_style_tokens(SOURCE).shape == (17,)  # ceil(ceil(65 / 2) / 2)


def test_pitch_shift_keeps_the_length_and_moves_the_pitch():
    t = np.arange(2 * SR) / SR
    tone = torch.from_numpy((0.5 * np.sin(2 * np.pi * 220 * t)).astype(np.float32))
    for semitones in (3, -5):
        shifted = pitch_shift(tone, SR, semitones).numpy()
        assert shifted.shape == tone.shape
        spectrum = np.abs(np.fft.rfft(shifted[SR // 2: SR // 2 + SR] * np.hanning(SR)))  # 1 Hz bins
        assert abs(int(np.argmax(spectrum)) - 220 * 2 ** (semitones / 12)) <= 1
    assert pitch_shift(tone, SR, 0) is tone


# --- ar ------------------------------------------------------------------------------------------


def test_ar_resings_the_lyrics_and_reports_token_blocks(pipe, ar_run):
    audio, calls = ar_run
    assert audio.dtype == np.float32 and audio.ndim == 1 and audio.size % HOP == 0 and np.isfinite(audio).all()
    stages = [c[0] for c in calls]
    assert stages[:3] == ["g2p", "content_style", "prosody"] and stages[-1] == "vocoder"
    assert [STAGES.index(s) for s in stages] == sorted(STAGES.index(s) for s in stages)  # in STAGES' order
    ar = [c for c in calls if c[0] == "ar"]
    # Tiny weights: at most the source's 17 expected tokens, reported every 10 and when decoding stops.
    assert ar[0] == ("ar", 10, 17) and ar[-1][1] == ar[-1][2] and len(ar) >= 2
    made = ar[-1][1]
    reference_tokens = 14                                   # ceil(ceil(55 / 2) / 2)
    assert audio.size == (4 * (reference_tokens + made) - len(REFERENCE) // HOP) * HOP
    assert [c for c in calls if c[0] == "fm"] == [("fm", s, 3) for s in (1, 2, 3)]


def test_same_seed_same_audio(pipe, fm_run, ar_run):
    assert np.array_equal(_run(pipe, use_shifted_src=False, **FM)[0], fm_run[0])
    assert np.array_equal(_run(pipe, "ar", lyrics=LYRICS, reference_text=REF_TEXT, language="en", **FM)[0], ar_run[0])
    other = _run(pipe, flow_matching_steps=3, seed=8)[0]
    assert other.shape == fm_run[0].shape and not np.array_equal(other, fm_run[0])


# --- the orchestrator over separately loaded parts -----------------------------------------------


class ThreadedStages:
    """Each stage a separately loaded part, called as a coroutine that suspends (a worker thread);
    ``transcribe`` answers like the ASR deployment, from a script."""

    def __init__(self, on_progress, heard: dict[int, dict]):
        load = lambda part: LocalStages(VevoSingPipeline.from_weights("tiny", parts=(part,)))  # noqa: E731
        self.cs, self.prosody_part, self.ar_part, self.fm_part, self.voc = (
            load(p) for p in ("content_style", "prosody", "ar", "fm", "vocoder"))
        self.on_progress = on_progress
        self.heard = heard
        self.shifts: list[int] = []

    async def transcribe(self, wav24k, language):
        assert wav24k.dtype == np.float32 and language in (None, "en")
        return self.heard[len(wav24k)]

    async def content_style_tokens(self, wav24k, shift_semitones=0):
        self.shifts.append(shift_semitones)
        return await asyncio.to_thread(self.cs.content_style_tokens, wav24k, shift_semitones)

    async def prosody_tokens(self, wav24k):
        return await asyncio.to_thread(self.prosody_part.prosody_tokens, wav24k)

    async def mel(self, wav24k):
        return await asyncio.to_thread(self.voc.mel, wav24k)

    async def ar(self, request):
        return await asyncio.to_thread(self.ar_part.ar, request, self.on_progress)

    async def fm(self, request):
        return await asyncio.to_thread(self.fm_part.fm, request, self.on_progress)

    async def vocode(self, mel):
        return await asyncio.to_thread(self.voc.vocode, mel)


def test_orchestrator_over_separate_parts_matches_the_pipeline(pipe, ar_run):
    got: list[tuple] = []
    heard = {len(SOURCE): {"text": LYRICS, "language": "en"}, len(REFERENCE): {"text": REF_TEXT, "language": "en"}}
    stages = ThreadedStages(lambda *a: got.append(a), heard)
    orchestrator = VevoSingOrchestrator(pipe.g2p, ar_length_bound=1.0, offload=in_thread)
    composed = asyncio.run(orchestrator.convert(stages, SOURCE, REFERENCE, "ar", on_progress=lambda *a: got.append(a),
                                                **FM))
    audio, calls = ar_run
    assert composed.dtype == np.float32 and np.array_equal(composed, audio)
    assert got == [("asr", 1, 2), ("asr", 2, 2)] + calls

    got.clear()
    shifted = asyncio.run(orchestrator.convert(stages, SOURCE, REFERENCE, use_shifted_src=True, **FM))
    assert stages.shifts[-2:] == [-7, 0]
    assert np.array_equal(shifted, pipe.convert(SOURCE, REFERENCE, use_shifted_src=True, **FM))


class Scripted:
    """Stages that answer ``transcribe`` from a script, record what reaches them, and stop the run at the
    ``stop_at``-th content-style call."""

    class Stop(Exception):
        pass

    def __init__(self, heard: dict, stop_at: int = 1):
        self.heard = heard
        self.stop_at = stop_at
        self.seen: list[tuple[str, int, object]] = []

    async def transcribe(self, wav24k, language):
        self.seen.append(("transcribe", len(wav24k), language))
        return self.heard

    async def content_style_tokens(self, wav24k, shift_semitones=0):
        self.seen.append(("content_style", len(wav24k), shift_semitones))
        if sum(kind == "content_style" for kind, _, _ in self.seen) == self.stop_at:
            raise self.Stop
        return np.zeros(4, np.int64)


def test_transcription_windows_languages_and_failures(pipe):
    orchestrator = VevoSingOrchestrator(pipe.g2p)
    long_source = np.tile(SOURCE, 47)                       # 61.6 s: windows of 30 s, 30 s and 1.6 s
    stages, calls = Scripted({"text": "la la", "language": "en"}), []
    with pytest.raises(Scripted.Stop):
        asyncio.run(orchestrator.convert(stages, long_source, REFERENCE, "ar", reference_text=REF_TEXT,
                                         on_progress=lambda *a: calls.append(a)))
    assert stages.seen[:3] == [("transcribe", 30 * SR, None), ("transcribe", 30 * SR, "en"),
                               ("transcribe", len(long_source) - 60 * SR, "en")]
    assert calls[:4] == [("asr", 1, 3), ("asr", 2, 3), ("asr", 3, 3), ("g2p", 1, 1)]

    with pytest.raises(UnsupportedLanguageError, match="'es'"):
        asyncio.run(orchestrator.convert(Scripted({"text": "hola", "language": "es"}), SOURCE, REFERENCE, "ar",
                                         reference_text=REF_TEXT))
    with pytest.raises(VevoSingInputError, match="no lyrics were heard"):
        asyncio.run(orchestrator.convert(Scripted({"text": " ", "language": "en"}), SOURCE, REFERENCE, "ar",
                                         reference_text=REF_TEXT))
    with pytest.raises(VevoSingInputError, match="no words were heard in the reference"):
        asyncio.run(orchestrator.convert(Scripted({"text": "", "language": "en"}), SOURCE, REFERENCE, "ar",
                                         lyrics=LYRICS))

    stages = Scripted({}, stop_at=2)       # fm: a 31.9 s reference is cut to its first 30 s, a source is not
    with pytest.raises(Scripted.Stop):
        asyncio.run(orchestrator.convert(stages, np.tile(REFERENCE, 29), np.tile(REFERENCE, 29), "fm"))
    assert stages.seen == [("content_style", 29 * len(REFERENCE), 0), ("content_style", 30 * SR, 0)]


def test_parts_load_alone_and_refuse_the_rest():
    fm = VevoSingPipeline.from_weights("tiny", parts=("fm",))
    assert fm.parts == ("fm",) and fm.vocoder is None and fm.g2p is None
    with pytest.raises(RuntimeError, match="without its 'vocoder' part"):
        fm.vocode(torch.zeros(3, 128))
    with pytest.raises(ValueError, match="unknown"):
        VevoSingPipeline.from_weights("tiny", parts=("whisper",))


def test_pretrained_parts_resolve_their_official_files(tmp_path):
    """Folders laid out like the official repos: each part finds its files (AR and FM of the variant)."""
    from models.vevosing.official import OFFICIAL_FILES

    layout = {"whisper": "whisper", "whisper_stats": "amphion_config"}
    local_dirs = {key: tmp_path / layout.get(key, "vevo1.5") for key in OFFICIAL_FILES}
    for key, files in OFFICIAL_FILES.items():
        for pattern in files.patterns:
            (local_dirs[key] / pattern).parent.mkdir(parents=True, exist_ok=True)
            (local_dirs[key] / pattern).touch()
    kind, found, _ = resolve_parts("pretrained", ("content_style", "ar", "fm", "vocoder"), variant="sing0.4k",
                                   local_dirs=local_dirs)
    assert kind == "pretrained"
    assert set(found) == {"whisper", "whisper_stats", "contentstyle_tokenizer", "ar_sing0.4k", "fm_sing0.4k",
                          "vocoder"}
    assert found["whisper"].root == tmp_path / "whisper" and found["fm_sing0.4k"].root == tmp_path / "vevo1.5"
    with pytest.raises(ValueError, match="variant"):
        resolve_parts("tiny", variant="sing7k")


def test_auto_without_official_files_is_tiny_for_every_part(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("AMPHION_HF_CACHE", str(tmp_path / "hf"))
    monkeypatch.delenv("AMPHION_WEIGHTS_DIR", raising=False)
    monkeypatch.delenv("AMPHION_VEVOSING_CONFIG_DIR", raising=False)
    for parts in (("fm",), ("vocoder", "prosody")):
        kind, found, note = resolve_parts("auto", parts)
        assert kind == "tiny" and found == {} and note


# --- bad inputs ----------------------------------------------------------------------------------


def test_bad_inputs_raise_before_any_model(pipe):
    silent = np.zeros(SR, np.float32)
    cases = [
        (dict(source_wav_24k=np.zeros(0, np.float32)), "source audio is empty"),
        (dict(source_wav_24k=SOURCE[: SR // 4]), "source audio is too short"),
        (dict(source_wav_24k=silent), "source audio is silent"),
        (dict(reference_wav_24k=silent), "reference audio is silent"),
        (dict(reference_wav_24k=np.stack([REFERENCE, REFERENCE])), "mono"),
        (dict(source_wav_24k=np.full(SR, np.nan, np.float32)), "NaN"),
        (dict(mode="xx"), "mode"),
        (dict(flow_matching_steps=0), "flow_matching_steps"),
        (dict(flow_matching_steps=129), "flow_matching_steps"),
        (dict(seed=-1), "seed"),
        (dict(mode="ar", lyrics="  ", reference_text=REF_TEXT), "lyrics is empty"),
        (dict(mode="ar", lyrics=LYRICS, reference_text=""), "reference_text is empty"),
        (dict(mode="ar", lyrics=" - ", reference_text=REF_TEXT, language="en"), "lyrics has nothing to pronounce"),
        (dict(mode="ar", lyrics=LYRICS, reference_text=REF_TEXT, language="xx"), "unsupported language"),
        (dict(mode="ar", lyrics="こんにちは", reference_text=REF_TEXT), "'ja' cannot be converted"),
        (dict(mode="ar", reference_text=REF_TEXT), "needs lyrics"),
    ]
    for overrides, message in cases:
        args = {"source_wav_24k": SOURCE, "reference_wav_24k": REFERENCE, **overrides}
        with pytest.raises(VevoSingInputError, match=message):
            pipe.convert(**args)
    with pytest.raises(UnsupportedLanguageError) as caught:
        pipe.convert(SOURCE, REFERENCE, "ar", lyrics=LYRICS, reference_text=REF_TEXT, language="ja")
    assert isinstance(caught.value, UnsupportedLanguage)


def test_too_long_inputs_are_refused(pipe):
    short_limit = VevoSingPipeline(fm=pipe.fm, max_source_seconds=1.0)
    with pytest.raises(InputTooLongError, match="at most 1 s"):
        short_limit.convert(SOURCE, REFERENCE)
    long_source = np.tile(SOURCE, 130)  # 170 s: 2129 expected tokens, beyond the AR's 2000
    with pytest.raises(InputTooLongError, match="AR tokens"):
        pipe.convert(long_source, REFERENCE, "ar", lyrics=LYRICS, reference_text=REF_TEXT)
