"""MaskGCT end to end with the tiny profile (CPU, offline): output contract, exact lengths, seeding,
progress, input errors, the stage methods, weights resolution, and the semantic encoder's loading
path (a w2v-bert folder saved locally, with Amphion-style stats)."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from models.blocks.masked_generation import executed_steps
from models.maskgct.official import OFFICIAL_PIPELINE_FILES
from models.maskgct.pipeline import (
    STAGES,
    EmptyTextError,
    MaskGCTInputError,
    MaskGCTPipeline,
    ReferenceAudioError,
    TargetLengthError,
)
from models.maskgct.semantic_encoder import (
    STATS_DIR_ENV,
    STATS_FILE,
    build_semantic_encoder,
    load_semantic_encoder,
    official_feature_extractor_values,
    tiny_w2v_bert_config,
)
from models.text import DATA_DIR_ENV, LanguageUnavailable, UnsupportedLanguage, espeak_version, split_sentences
from models.weights import WeightsUnavailable

G2P_DATA = Path(os.environ.get(DATA_DIR_ENV) or Path(__file__).resolve().parents[2] / "shared" / "data" / "maskgct_g2p")

pytestmark = [
    pytest.mark.skipif(not (G2P_DATA / "vocab.json").is_file(), reason=f"G2P data not found at {G2P_DATA}"),
    pytest.mark.skipif(espeak_version() is None, reason="espeak-ng cannot be loaded here (English G2P)"),
]

SR = 24000
REF_TEXT = "Hello there, this is a short reference sentence."
TEXT = "The quick brown fox jumps over the lazy dog."


def _reference(seconds: float = 3.0, seed: int = 0) -> np.ndarray:
    """A voiced-sounding test signal: harmonics of 120 Hz under a 3 Hz syllable envelope, plus noise."""
    n = int(seconds * SR)
    t = np.arange(n) / SR
    harmonics = sum(np.sin(2 * np.pi * 120 * k * t) / k for k in range(1, 8))
    noise = np.random.default_rng(seed).standard_normal(n)
    return (0.3 * np.sin(2 * np.pi * 3 * t) ** 2 * harmonics + 0.01 * noise).astype(np.float32)


@pytest.fixture(scope="module")
def pipe() -> MaskGCTPipeline:
    return MaskGCTPipeline.from_weights("tiny", g2p_data=G2P_DATA)


@pytest.fixture(scope="module")
def ref() -> np.ndarray:
    return _reference()


@pytest.fixture(scope="module")
def first_run(pipe, ref):
    calls: list[tuple[str, int, int]] = []
    audio = pipe.generate(TEXT, "en", ref, REF_TEXT, target_len_s=3.0, seed=0, on_progress=lambda *a: calls.append(a))
    return audio, calls


# --- the output ----------------------------------------------------------------------------------


def test_output_contract_and_exact_length(pipe, first_run):
    audio, _ = first_run
    assert pipe.weights_kind == "tiny" and pipe.sample_rate == SR and pipe.hop_length == 480
    assert isinstance(audio, np.ndarray) and audio.dtype == np.float32 and audio.ndim == 1
    assert audio.shape == (150 * 480,)  # 3.0 s -> 150 frames of 480 samples
    assert np.isfinite(audio).all()
    assert float(np.sqrt(np.mean(audio.astype(np.float64) ** 2))) > 1e-4


@pytest.mark.parametrize("seconds, frames", [(2.3, 115), (1.0, 50), (0.99, 49)])
def test_target_frames(pipe, seconds, frames):
    assert pipe.target_frames(seconds) == frames


def test_progress_once_per_step_in_stage_order(pipe, first_run):
    _, calls = first_run
    t2s = [c for c in calls if c[0] == "t2s"]
    s2a = [c for c in calls if c[0] == "s2a"]
    t2s_steps = executed_steps(25, 150)
    s2a_steps = sum(executed_steps(n, 150) for n in (25, 10, 1))  # tiny codec: 3 layers
    assert len(t2s) == t2s_steps == 25 and len(s2a) == s2a_steps == 36
    assert [c[1] for c in t2s] == list(range(1, t2s_steps + 1)) and {c[2] for c in t2s} == {t2s_steps}
    assert [c[1] for c in s2a] == list(range(1, s2a_steps + 1)) and {c[2] for c in s2a} == {s2a_steps}
    assert pipe.s2a_planned_steps(150) == s2a_steps
    counts = Counter(c[0] for c in calls)
    assert all(counts[s] == 1 for s in ("semantic_prompt", "acoustic_prompt", "g2p", "decode"))
    order = [c[0] for c in calls]
    assert sorted(order, key=STAGES.index) == order


def test_seeding(pipe, ref, first_run):
    audio, _ = first_run
    same = pipe.generate(TEXT, "en", ref, REF_TEXT, target_len_s=3.0, seed=0)
    other = pipe.generate(TEXT, "en", ref, REF_TEXT, target_len_s=3.0, seed=1)
    assert np.array_equal(audio, same)
    assert other.shape == audio.shape and not np.array_equal(audio, other)


def test_estimated_length_follows_the_phone_ratio(pipe, ref):
    audio = pipe.generate(TEXT, "en", ref, REF_TEXT, seed=0, n_timesteps=4, s2a_timesteps=[4, 2, 1])
    n_text, n_ref = len(pipe.phone_ids(TEXT, "en")), len(pipe.phone_ids(REF_TEXT, "en"))
    frames = int(len(ref) * 2 // 3 * n_text / n_ref / 16000 * 50)  # reference samples at 16 kHz
    assert audio.shape == (frames * 480,)


def test_long_text_is_split_and_keeps_the_exact_length(pipe, ref):
    text = "First sentence here. A second one follows. And then a third, the last."
    calls = []
    audio = pipe.generate(text, "en", ref, REF_TEXT, target_len_s=2.0, seed=3, max_chars=25, n_timesteps=5,
                          s2a_timesteps=[3, 2, 1], on_progress=lambda *a: calls.append(a))
    assert audio.shape == (100 * 480,) and np.isfinite(audio).all()
    n_pieces = len(split_sentences(text, "en", 25))
    assert n_pieces > 1
    decode = [c for c in calls if c[0] == "decode"]
    assert decode == [("decode", i, n_pieces) for i in range(1, n_pieces + 1)]
    t2s = [c for c in calls if c[0] == "t2s"]
    assert [c[1] for c in t2s] == list(range(1, len(t2s) + 1)) and t2s[-1][2] == len(t2s)


# --- input errors --------------------------------------------------------------------------------


@pytest.mark.parametrize("language, error", [("xx", UnsupportedLanguage), ("ja", LanguageUnavailable)])
def test_unsupported_language(pipe, ref, language, error):
    calls = []
    with pytest.raises(error):
        pipe.generate(TEXT, language, ref, REF_TEXT, target_len_s=1.0, on_progress=lambda *a: calls.append(a))
    with pytest.raises(UnsupportedLanguage):
        pipe.generate(TEXT, "en", ref, REF_TEXT, target_len_s=1.0, reference_language=language)
    assert calls == []  # refused before any model ran


@pytest.mark.parametrize("text", ["", "   \n", None])
def test_empty_text(pipe, ref, text):
    with pytest.raises(EmptyTextError) as info:
        pipe.generate(text, "en", ref, REF_TEXT, target_len_s=1.0)
    assert isinstance(info.value, ValueError)
    with pytest.raises(EmptyTextError):
        pipe.generate(TEXT, "en", ref, text, target_len_s=1.0)


@pytest.mark.parametrize("audio, message", [
    (np.zeros(3 * SR, np.float32), "silent"),
    (_reference(0.2), "too short"),
    (np.full(SR, np.nan, np.float32), "NaN"),
    (np.zeros((2, SR), np.float32), "mono"),
])
def test_bad_reference(pipe, audio, message):
    with pytest.raises(ReferenceAudioError, match=message):
        pipe.generate(TEXT, "en", audio, REF_TEXT, target_len_s=1.0)


@pytest.mark.parametrize("kwargs, error", [
    (dict(target_len_s=0), MaskGCTInputError),
    (dict(target_len_s=float("nan")), MaskGCTInputError),
    (dict(target_len_s=0.01), TargetLengthError),
    (dict(target_len_s=1e6), TargetLengthError),
    (dict(n_timesteps=0), MaskGCTInputError),
    (dict(temperature=0.0), MaskGCTInputError),
    (dict(seed=-1), MaskGCTInputError),
    (dict(s2a_timesteps=[25, 10]), MaskGCTInputError),
])
def test_bad_settings(pipe, ref, kwargs, error):
    kwargs = {"target_len_s": 1.0, **kwargs}
    with pytest.raises(error):
        pipe.generate(TEXT, "en", ref, REF_TEXT, **kwargs)


# --- the stages on their own ---------------------------------------------------------------------


def test_stage_methods_compose(pipe, ref):
    import torchaudio.functional as AF

    wav16 = AF.resample(torch.from_numpy(ref), SR, 16000).numpy()
    semantic = pipe.semantic_tokens(wav16)
    codes = pipe.acoustic_codes(ref)
    assert semantic.shape == (1, 149) and semantic.dtype == torch.long  # 298 fbank frames, stacked by 2
    assert codes.shape == (1, 150, pipe.num_quantizers) and codes.dtype == torch.long
    assert int(semantic.max()) < pipe.semantic_codec.codebook_size
    prompt_codes = codes[:, :149]
    phones = pipe.phone_ids(REF_TEXT, "en") + pipe.phone_ids(TEXT, "en")
    target = pipe.text_to_semantic(semantic, phones, 20, n_timesteps=4, seed=0)
    assert target.shape == (1, 20)
    acoustic = pipe.semantic_to_acoustic(torch.cat([semantic, target], 1), prompt_codes, n_timesteps=[4, 2, 1], seed=0)
    assert acoustic.shape == (1, 20, pipe.num_quantizers)
    wav = pipe.decode(acoustic)
    assert wav.shape == (20 * 480,) and wav.dtype == np.float32


# --- weights ------------------------------------------------------------------------------------


def test_official_table():
    assert set(OFFICIAL_PIPELINE_FILES) == {"w2v_bert", "semantic_stats", "semantic_codec", "acoustic_codec", "t2s", "s2a"}
    assert OFFICIAL_PIPELINE_FILES["w2v_bert"].repo_id == "facebook/w2v-bert-2.0"
    assert OFFICIAL_PIPELINE_FILES["semantic_stats"].local_dir_env == STATS_DIR_ENV
    patterns = {p for key in ("semantic_codec", "acoustic_codec", "t2s", "s2a") for p in OFFICIAL_PIPELINE_FILES[key].patterns}
    assert patterns == {
        "semantic_codec/model.safetensors", "acoustic_codec/model.safetensors", "acoustic_codec/model_1.safetensors",
        "t2s_model/model.safetensors", "s2a_model/s2a_model_1layer/model.safetensors",
        "s2a_model/s2a_model_full/model.safetensors",
    }
    assert all(OFFICIAL_PIPELINE_FILES[k].repo_id == "amphion/MaskGCT" for k in ("semantic_codec", "acoustic_codec", "t2s", "s2a"))


@pytest.fixture
def empty_hub(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("AMPHION_HF_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("AMPHION_DATA_CACHE", str(tmp_path / "data"))
    for name in ("AMPHION_WEIGHTS_DIR", STATS_DIR_ENV):
        monkeypatch.delenv(name, raising=False)


def test_auto_without_files_is_tiny_and_pretrained_fails(pipe, empty_hub):
    auto = MaskGCTPipeline.from_weights("auto", g2p_data=pipe.g2p)
    assert auto.weights_kind == "tiny" and "facebook/w2v-bert-2.0" in auto.note
    with pytest.raises(WeightsUnavailable):
        MaskGCTPipeline.from_weights("pretrained", g2p_data=pipe.g2p)
    with pytest.raises(ValueError):
        MaskGCTPipeline.from_weights("bogus", g2p_data=pipe.g2p)


def test_mismatched_components_are_refused(pipe):
    from models.maskgct.checkpoints import build_semantic_codec
    from models.maskgct.configs import SemanticCodecConfig

    codec = build_semantic_codec(SemanticCodecConfig(codebook_size=128, hidden_size=32, codebook_dim=4, vocos_dim=16,
                                                     vocos_intermediate_dim=32, vocos_num_layers=1))
    with pytest.raises(ValueError, match="semantic codes"):
        MaskGCTPipeline(semantic_encoder=pipe.semantic_encoder, semantic_codec=codec, acoustic_codec=pipe.acoustic_codec,
                        t2s=pipe.t2s, s2a_1layer=pipe.s2a_1layer, s2a_full=pipe.s2a_full, g2p=pipe.g2p)


# --- the semantic encoder -------------------------------------------------------------------------


def test_semantic_encoder_matches_transformers_and_loads_a_local_folder(tmp_path):
    from transformers import SeamlessM4TFeatureExtractor, Wav2Vec2BertModel

    config = tiny_w2v_bert_config()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(7)
        model = Wav2Vec2BertModel(config).eval()
    model.save_pretrained(tmp_path)
    extractor = SeamlessM4TFeatureExtractor(**official_feature_extractor_values())
    extractor.save_pretrained(tmp_path)
    mean, var = torch.randn(config.hidden_size) * 0.1, torch.rand(config.hidden_size) + 0.5
    torch.save({"mean": mean, "var": var}, tmp_path / STATS_FILE)

    encoder = load_semantic_encoder(tmp_path, tmp_path / STATS_FILE, layer=2)
    assert len(encoder.model.encoder.layers) == 2  # the layer above is never built
    wav = np.random.default_rng(0).standard_normal(16160).astype(np.float32) * 0.1  # odd fbank count: padded
    inputs = extractor(wav, sampling_rate=16000, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**inputs, output_hidden_states=True).hidden_states[2]
    expected = (hidden - mean) / var.sqrt()
    got = encoder.encode(wav)
    assert got.shape == (1, encoder.num_frames(len(wav)), config.hidden_size) == expected.shape
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)
    assert encoder.frame_rate == 50


def test_tiny_semantic_encoder_is_seeded():
    wav = np.random.default_rng(1).standard_normal(8000).astype(np.float32) * 0.1
    a, b = build_semantic_encoder(seed=3), build_semantic_encoder(seed=3)
    assert torch.equal(a.encode(wav), b.encode(wav))
    assert not torch.equal(a.encode(wav), build_semantic_encoder(seed=4).encode(wav))
