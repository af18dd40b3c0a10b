"""Whisper prompt transcription: timestamp parsing, the demo's trimming rule, the tiny profile, the
official folder layout through the pretrained path, and the deployment class (no Ray)."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from models.asr.segments import Segment, parse_segments, trim_at_segment
from models.asr.whisper import WHISPER_FILES, Transcript, build_tiny_transcriber, transcriber_from
from models.weights import WeightsUnavailable, resolve

TS = 100  # timestamp_begin in the hand-made sequences below; text tokens are 0..9, 50 is a special


def _decode(tokens):
    return "".join(chr(ord("a") + t) for t in tokens)


def _parse(tokens):
    return parse_segments(tokens, TS, lambda t: t < 10, _decode)


def test_segments_are_read_between_timestamp_pairs():
    seq = [TS + 0, 1, 2, TS + 100, TS + 100, 3, TS + 210, 50]
    assert _parse(seq) == [Segment(0.0, 2.0, "bc"), Segment(2.0, 4.2, "d")]


def test_text_without_closing_timestamp_is_kept():
    assert _parse([TS + 10, 0, 1]) == [Segment(0.2, float("inf"), "ab")]
    assert _parse([0, 50, 1]) == [Segment(0.0, float("inf"), "ab")]     # no timestamps at all
    assert _parse([TS, TS + 5, TS + 5, TS + 9]) == []                      # empty segments dropped


def test_trim_keeps_whole_segments_until_one_reaches_the_minimum():
    segs = [Segment(0.0, 1.5, "one"), Segment(1.5, 3.9, "two"), Segment(3.9, 5.2, "three"), Segment(5.2, 9, "four")]
    assert trim_at_segment(segs, 4.0) == (5.2, "one two three")
    assert trim_at_segment(segs[:2], 4.0) == (None, "one two")
    assert trim_at_segment([Segment(0.0, float("inf"), "x")], 4.0) == (None, "x")


def test_transcript_prompt_never_cuts_past_the_audio():
    t = Transcript("one two", "en", [Segment(0.0, 2.0, "one"), Segment(2.0, 12.0, "two")], covered_seconds=6.0)
    assert t.prompt(4.0) == (6.0, "one two")
    t = Transcript("one two", "en", [Segment(0.0, 4.5, "one"), Segment(4.5, 6.0, "two")], covered_seconds=6.0)
    assert t.prompt(4.0) == (4.5, "one")


@pytest.fixture(scope="module")
def tiny():
    return build_tiny_transcriber()


def _speechlike(seconds=3.0, sr=16000, seed=0):
    t = np.arange(int(seconds * sr)) / sr
    rng = np.random.default_rng(seed)
    return (0.3 * np.sin(2 * np.pi * 140 * t) * np.sin(2 * np.pi * 2 * t) ** 2
            + 0.01 * rng.standard_normal(len(t))).astype(np.float32)


def test_tiny_transcriber_is_seeded_and_reads_text(tiny):
    wav = _speechlike()
    a, b = tiny.transcribe(wav), build_tiny_transcriber().transcribe(wav)
    assert a == b
    assert a.text and a.language in tiny.languages and a.covered_seconds == 3.0
    assert tiny.transcribe(wav, language="de").language == "de"
    with pytest.raises(ValueError):
        tiny.transcribe(wav, language="xx")


def test_only_one_window_is_transcribed(tiny):
    assert tiny.transcribe(_speechlike(seconds=31.0)).covered_seconds == 30.0


def test_official_layout_loads_through_the_pretrained_path(tiny, tmp_path, monkeypatch):
    folder = tmp_path / "openai" / "whisper-large-v3-turbo"
    tiny.model.save_pretrained(folder)
    tiny.feature_extractor.save_pretrained(folder)
    tiny.tokenizer.save_pretrained(folder)
    monkeypatch.setenv(WHISPER_FILES.local_dir_env, str(folder))
    resolved = resolve(WHISPER_FILES, "pretrained")
    loaded = transcriber_from(resolved)
    assert loaded.weights_kind == "pretrained"
    wav = _speechlike()
    assert loaded.transcribe(wav) == tiny.transcribe(wav)


def test_official_files_are_the_turbo_release():
    assert WHISPER_FILES.repo_id == "openai/whisper-large-v3-turbo"
    assert {"model.safetensors", "tokenizer.json", "preprocessor_config.json"} <= set(WHISPER_FILES.patterns)


def test_service_resamples_and_trims(tiny):
    from deployments.asr import WhisperASRService

    service = WhisperASRService(weights="tiny")
    wav24k = _speechlike(sr=24000)
    heard = asyncio.run(service.transcribe(wav24k, 24000))
    assert heard["text"] and heard["covered_seconds"] == pytest.approx(3.0)
    prompt = asyncio.run(service.prompt(wav24k, 24000, 4.0))
    assert prompt["text"] and prompt["language"] == heard["language"] and 0 < prompt["seconds"] <= 3.0


def test_service_without_weights_answers_503(monkeypatch, tmp_path):
    from deployments.asr import WhisperASRService
    from deployments.errors import InvalidModelInput, ModelUnavailable

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("AMPHION_HF_CACHE", str(tmp_path))
    monkeypatch.delenv(WHISPER_FILES.local_dir_env, raising=False)
    monkeypatch.delenv("AMPHION_WEIGHTS_DIR", raising=False)
    with pytest.raises(WeightsUnavailable):
        resolve(WHISPER_FILES, "pretrained")
    service = WhisperASRService(weights="pretrained")
    with pytest.raises(ModelUnavailable, match="Whisper"):
        asyncio.run(service.prompt(_speechlike(), 16000, 4.0))
    assert asyncio.run(service.info())["status"] == "unavailable"
    tiny_service = WhisperASRService(weights="tiny")
    with pytest.raises(InvalidModelInput, match="too short"):
        asyncio.run(tiny_service.prompt(np.zeros(100, np.float32), 16000, 4.0))
