"""AudioLDM through diffusers' components (models/audioldm/diffusers_pipeline.py): the tiny offline
pipeline end to end, the pretrained path from a folder laid out like the hub repo, the weights
errors and the input errors. Everything runs offline on the CPU."""

from __future__ import annotations

import inspect
import json
import shutil

import numpy as np
import pytest
import torch

from models.audioldm import diffusers_pipeline as dp
from models.audioldm.diffusers_pipeline import (
    AudioLDMInputError,
    DiffusersAudioLDM,
    build_tiny_pipeline,
    diffusers_files,
)
from models.weights import HubFiles, WeightsUnavailable

# the batched UNet's float rounding (BLAS / oneDNN kernels differ by batch size), far below what a
# different seed changes (about 0.1 here)
BATCH_ATOL = 2e-5


@pytest.fixture(scope="module")
def tiny() -> DiffusersAudioLDM:
    return DiffusersAudioLDM.from_weights(mode="tiny")


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No hub, an empty private HF cache, no weights folder unless a test sets one."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("AMPHION_HF_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.delenv("AMPHION_WEIGHTS_DIR", raising=False)
    return tmp_path


@pytest.fixture(scope="module")
def saved_repo(tmp_path_factory, tiny):
    """The tiny pipeline written with save_pretrained as <weights dir>/<org>/<name>."""
    base = tmp_path_factory.mktemp("weights")
    tiny.save_pretrained(base / "tiny-org" / "audioldm-tiny")
    return base


def _copy_repo(saved_repo, tmp_path, name="broken"):
    base = tmp_path / "weights"
    shutil.copytree(saved_repo / "tiny-org" / "audioldm-tiny", base / "tiny-org" / name)
    return base, base / "tiny-org" / name


# ------------------------------------------------------------------------------------------------------
# constants and files


def test_constants_and_file_list():
    assert dp.DIFFUSERS_DEFAULT_REPO == "cvssp/audioldm-s-full-v2"
    assert dp.CVSSP_WEIGHTS_LICENSE == "CC-BY-NC-SA-4.0"
    assert dp.weights_license("cvssp/audioldm-l-full") == "CC-BY-NC-SA-4.0"
    assert dp.weights_license("someone/else") is None
    from diffusers import AudioLDMPipeline

    pipeline_default = inspect.signature(AudioLDMPipeline.__call__).parameters["guidance_scale"].default
    assert dp.DEFAULT_GUIDANCE_SCALE == pipeline_default == 2.5
    files = diffusers_files("cvssp/audioldm-m-full")
    assert isinstance(files, HubFiles) and files.repo_id == "cvssp/audioldm-m-full"
    for pattern in ("model_index.json", "scheduler/scheduler_config.json", "text_encoder/config.json",
                    "text_encoder/model.safetensors", "tokenizer/tokenizer_config.json", "unet/config.json",
                    "unet/diffusion_pytorch_model.safetensors", "vae/config.json",
                    "vae/diffusion_pytorch_model.safetensors", "vocoder/config.json", "vocoder/model.safetensors"):
        assert pattern in files.patterns
    assert "unet/diffusion_pytorch_model.bin" in diffusers_files(weights_format="bin").patterns
    assert not any(p.endswith((".bin", ".safetensors")) for p in diffusers_files(weights_format=None).patterns)
    assert diffusers_files(weights_format="bin", component="vocoder").patterns == ("vocoder/pytorch_model.bin",)
    with pytest.raises(ValueError):
        diffusers_files(weights_format="ckpt")


# ------------------------------------------------------------------------------------------------------
# the tiny pipeline end to end


@pytest.mark.parametrize("seconds", [1.0, 1.003, 1.23456, 2.0])
def test_exact_length(tiny, seconds):
    audio = tiny.generate("a dog barking in the park", audio_length_in_s=seconds, num_inference_steps=2, seed=0)
    assert isinstance(audio, np.ndarray) and audio.dtype == np.float32 and audio.ndim == 1
    assert audio.shape[0] == round(seconds * 16000) == tiny.num_samples(seconds)
    assert np.isfinite(audio).all() and audio.std() > 1e-3  # tiny weights, but not silence
    frames = tiny.mel_frames(seconds)
    assert frames % tiny.vae_scale_factor == 0 and frames * tiny.hop_length >= audio.shape[0]
    assert tiny.sample_rate == 16000 and tiny.hop_length == 160


def test_same_seed_same_audio_different_seeds_differ(tiny):
    kw = dict(audio_length_in_s=1.0, num_inference_steps=3)
    a = tiny.generate("rain on a tin roof", seed=11, **kw)
    b = tiny.generate("rain on a tin roof", seed=11, **kw)
    c = tiny.generate("rain on a tin roof", seed=12, **kw)
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).max() > 1e-2
    # seed None draws a fresh seed each call
    d = tiny.generate("rain on a tin roof", **kw)
    e = tiny.generate("rain on a tin roof", **kw)
    assert np.abs(d - e).max() > 1e-2


def test_text_guidance_and_negative_prompt_matter(tiny):
    kw = dict(audio_length_in_s=1.0, num_inference_steps=3, seed=5)
    base = tiny.generate("a dog barking", **kw)
    assert np.abs(base - tiny.generate("a car engine", **kw)).max() > 1e-3
    assert np.abs(base - tiny.generate("a dog barking", guidance_scale=1.0, **kw)).max() > 1e-3
    assert np.abs(base - tiny.generate("a dog barking", negative_prompt="people talking", **kw)).max() > 1e-3
    # the default guidance is the pipeline's, and an empty negative prompt is the default one
    np.testing.assert_array_equal(base, tiny.generate("a dog barking", guidance_scale=2.5, negative_prompt="", **kw))


def test_batch_equals_each_alone(tiny):
    texts = ["a dog barking in the park", "rain", "music with a bird", "wind"]
    per_item = dict(seed=[1, 2, 3, 4], guidance_scale=[None, 1.0, 4.0, 2.5],
                    negative_prompt=[None, None, "people talking", ""], audio_length_in_s=[1.0, 1.0, 1.5, 1.0])
    batched = tiny.generate(texts, num_inference_steps=4, **per_item)
    assert isinstance(batched, list) and len(batched) == 4
    alone = [tiny.generate(t, num_inference_steps=4, **{k: v[i] for k, v in per_item.items()})
             for i, t in enumerate(texts)]
    for got, want in zip(batched, alone):
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=0, atol=BATCH_ATOL)
    # another batch composition and order: the same answers
    again = tiny.generate([texts[2], texts[0]], num_inference_steps=4,
                          **{k: [v[2], v[0]] for k, v in per_item.items()})
    np.testing.assert_allclose(again[0], alone[2], rtol=0, atol=BATCH_ATOL)
    np.testing.assert_allclose(again[1], alone[0], rtol=0, atol=BATCH_ATOL)
    # one scalar seed for two identical prompts: each as if alone, so both the same audio
    twins = tiny.generate(["rain", "rain"], audio_length_in_s=1.0, num_inference_steps=4, seed=2, guidance_scale=1.0)
    np.testing.assert_allclose(twins[0], alone[1], rtol=0, atol=BATCH_ATOL)
    np.testing.assert_allclose(twins[1], alone[1], rtol=0, atol=BATCH_ATOL)


def test_matches_the_diffusers_pipeline(tiny):
    """The loop is the pipeline's arithmetic: same seed (a CPU generator), same audio, bit for bit."""
    for kw in (dict(guidance_scale=2.5), dict(guidance_scale=3.0, negative_prompt="people talking"),
               dict(guidance_scale=1.0)):
        ours = tiny.generate("a dog barking in the park", audio_length_in_s=2.0, num_inference_steps=5, seed=7, **kw)
        theirs = tiny.pipe("a dog barking in the park", audio_length_in_s=2.0, num_inference_steps=5,
                           generator=torch.Generator("cpu").manual_seed(7), **kw).audios[0]
        np.testing.assert_array_equal(ours, theirs)


def test_progress_callback_counts_steps(tiny):
    calls = []
    tiny.generate("wind", audio_length_in_s=1.0, num_inference_steps=5, seed=0,
                  on_step=lambda s, t: calls.append((s, t)))
    assert calls == [(i, 5) for i in range(1, 6)]
    calls.clear()  # a batch (two lengths: two UNet groups) still reports once per step
    tiny.generate(["wind", "rain"], audio_length_in_s=[1.0, 1.5], num_inference_steps=3, seed=0,
                  on_step=lambda s, t: calls.append((s, t)))
    assert calls == [(1, 3), (2, 3), (3, 3)]


def test_tiny_weights_are_seeded_and_leave_the_global_rng_alone():
    state = torch.get_rng_state()
    a, b, c = build_tiny_pipeline(0), build_tiny_pipeline(0), build_tiny_pipeline(1)
    assert torch.equal(state, torch.get_rng_state())
    for name in ("unet", "vae", "vocoder", "text_encoder"):
        sa, sb, sc = (getattr(p, name).state_dict() for p in (a, b, c))
        assert all(torch.equal(sa[k], sb[k]) for k in sa)
        assert any(not torch.equal(sa[k], sc[k]) for k in sa if sa[k].is_floating_point() and sa[k].numel() > 1)
    # the tokenizer is built in memory: CLAP's special ids, byte-level BPE, padded to its maximum
    ids = a.tokenizer("a dog barking", padding="max_length", max_length=dp.TINY_MAX_TOKENS).input_ids
    assert ids[0] == 0 and 2 in ids and ids[-1] == 1 and len(ids) == dp.TINY_MAX_TOKENS


def test_bfloat16_runs(tiny):
    model = DiffusersAudioLDM.from_weights(mode="tiny", dtype="bfloat16")
    assert model.unet.dtype == torch.bfloat16 and model.vocoder.dtype == torch.float32
    audio = model.generate("rain", audio_length_in_s=1.0, num_inference_steps=2, seed=0)
    assert audio.dtype == np.float32 and audio.shape == (16000,) and np.isfinite(audio).all()


# ------------------------------------------------------------------------------------------------------
# weights


def test_pretrained_from_a_folder_laid_out_like_the_repo(tiny, saved_repo, offline, monkeypatch):
    monkeypatch.setenv("AMPHION_WEIGHTS_DIR", str(saved_repo))
    for mode in ("pretrained", "auto"):
        model = DiffusersAudioLDM.from_weights("tiny-org/audioldm-tiny", mode=mode)
        assert model.weights_kind == "pretrained" and "$AMPHION_WEIGHTS_DIR/tiny-org/audioldm-tiny" in model.note
        assert str(saved_repo) not in model.note  # no server path in what users may see
    kw = dict(audio_length_in_s=1.0, num_inference_steps=3, seed=4)
    np.testing.assert_array_equal(model.generate("a dog barking", **kw), tiny.generate("a dog barking", **kw))
    info = model.describe()
    assert info["weights"] == "pretrained" and info["license"] is None and info["sample_rate"] == 16000


def test_pretrained_accepts_bin_weights(tiny, offline, monkeypatch):
    base = offline / "weights"
    tiny.save_pretrained(base / "tiny-org" / "audioldm-bin", safe_serialization=False)
    assert (base / "tiny-org" / "audioldm-bin" / "unet" / "diffusion_pytorch_model.bin").is_file()
    monkeypatch.setenv("AMPHION_WEIGHTS_DIR", str(base))
    model = DiffusersAudioLDM.from_weights("tiny-org/audioldm-bin", mode="pretrained")
    kw = dict(audio_length_in_s=1.0, num_inference_steps=2, seed=4)
    np.testing.assert_array_equal(model.generate("rain", **kw), tiny.generate("rain", **kw))


def test_unknown_repo_is_unavailable(offline):
    with pytest.raises(WeightsUnavailable) as err:
        DiffusersAudioLDM.from_weights("nobody/no-such-audioldm", mode="pretrained")
    assert "nobody/no-such-audioldm" in str(err.value) and "AMPHION_WEIGHTS_DIR" in str(err.value)
    model = DiffusersAudioLDM.from_weights("nobody/no-such-audioldm", mode="auto")  # auto: tiny, saying why
    assert model.weights_kind == "tiny" and "nobody/no-such-audioldm" in model.note and model.license is None


@pytest.mark.parametrize("repo_id", ["audioldm", "a/b/c", "../etc", "org/../x", "org/name ", "", None])
def test_malformed_repo_id_is_unavailable(offline, repo_id):
    with pytest.raises(WeightsUnavailable, match="not a Hugging Face repo id"):
        DiffusersAudioLDM.from_weights(repo_id, mode="pretrained")


def test_missing_weights_file(saved_repo, offline, monkeypatch):
    base, repo = _copy_repo(saved_repo, offline)
    (repo / "vocoder" / "model.safetensors").unlink()
    monkeypatch.setenv("AMPHION_WEIGHTS_DIR", str(base))
    with pytest.raises(WeightsUnavailable) as err:
        DiffusersAudioLDM.from_weights("tiny-org/broken", mode="pretrained")
    message = str(err.value)
    assert "vocoder" in message and "vocoder/model.safetensors" in message and "vocoder/pytorch_model.bin" in message
    assert str(base) not in message
    assert DiffusersAudioLDM.from_weights("tiny-org/broken", mode="auto").weights_kind == "tiny"


def test_missing_config_file(saved_repo, offline, monkeypatch):
    base, repo = _copy_repo(saved_repo, offline)
    (repo / "scheduler" / "scheduler_config.json").unlink()
    monkeypatch.setenv("AMPHION_WEIGHTS_DIR", str(base))
    with pytest.raises(WeightsUnavailable, match="scheduler/scheduler_config.json"):
        DiffusersAudioLDM.from_weights("tiny-org/broken", mode="pretrained")


def test_not_an_audioldm_repo(saved_repo, offline, monkeypatch):
    base, repo = _copy_repo(saved_repo, offline)
    index = json.loads((repo / "model_index.json").read_text())
    index["_class_name"] = "AudioLDM2Pipeline"
    (repo / "model_index.json").write_text(json.dumps(index))
    monkeypatch.setenv("AMPHION_WEIGHTS_DIR", str(base))
    with pytest.raises(WeightsUnavailable, match="not a diffusers AudioLDM repository"):
        DiffusersAudioLDM.from_weights("tiny-org/broken", mode="pretrained")


def test_unreadable_weights(saved_repo, offline, monkeypatch):
    base, repo = _copy_repo(saved_repo, offline)
    (repo / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(b"not a safetensors file")
    monkeypatch.setenv("AMPHION_WEIGHTS_DIR", str(base))
    with pytest.raises(WeightsUnavailable, match="could not be loaded"):
        DiffusersAudioLDM.from_weights("tiny-org/broken", mode="pretrained")


# ------------------------------------------------------------------------------------------------------
# input errors


@pytest.mark.parametrize("texts, kwargs, fragment", [
    ("", {}, "text is empty"),
    ("   ", {}, "text is empty"),
    ([], {}, "no text"),
    (["rain", ""], {}, "text is empty"),
    (7, {}, "text must be"),
    (["rain", 7], {}, "text must be a string"),
    ("x" * (dp.MAX_TEXT_CHARS + 1), {}, "at most"),
    ("rain", dict(audio_length_in_s=0.5), "at least 1"),
    ("rain", dict(audio_length_in_s=30.5), "at most 30"),
    ("rain", dict(audio_length_in_s=float("nan")), "finite"),
    ("rain", dict(audio_length_in_s=-1.0), "positive"),
    ("rain", dict(audio_length_in_s="5"), "finite"),
    ("rain", dict(num_inference_steps=0), "num_inference_steps"),
    ("rain", dict(num_inference_steps=1001), "num_inference_steps"),
    ("rain", dict(num_inference_steps=2.5), "num_inference_steps"),
    ("rain", dict(num_inference_steps=True), "num_inference_steps"),
    ("rain", dict(guidance_scale=-1.0), "guidance_scale"),
    ("rain", dict(guidance_scale=dp.MAX_GUIDANCE_SCALE + 1), "guidance_scale"),
    ("rain", dict(negative_prompt=3), "negative_prompt must be a string"),
    ("rain", dict(seed=-1), "seed"),
    ("rain", dict(seed=2**63), "seed"),
    (["rain", "wind"], dict(seed=[1, 2, 3]), "3 values for 2 prompts"),
    (["rain", "wind"], dict(audio_length_in_s=[1.0]), "1 values for 2 prompts"),
])
def test_bad_input(tiny, texts, kwargs, fragment):
    kwargs = {"audio_length_in_s": 1.0, "num_inference_steps": 2, **kwargs}
    with pytest.raises(AudioLDMInputError, match=fragment):
        tiny.generate(texts, **kwargs)
    assert issubclass(AudioLDMInputError, ValueError)
