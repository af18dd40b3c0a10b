"""Vocoders (models/vocoders): tiny builds, batching, and loading the official checkpoint layouts."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from models.core.checkpoints import CheckpointError
from models.core.configs import ConfigError, loads_lenient
from models.core.weight_norm import WeightNormConv
from models.vocoders import (
    OFFICIAL,
    VOCODER_NAMES,
    build_vocoder,
    load_vocoder,
    parse_config,
    tiny_config,
)
from models.vocoders.checkpoints import load_official
from models.weights import HubFiles, WeightsUnavailable

HOP = 256


@pytest.fixture(scope="module")
def tiny() -> dict:
    return {name: build_vocoder(name, seed=0) for name in VOCODER_NAMES}


def _mel(frames: int, seed: int = 0) -> np.ndarray:
    return (np.random.RandomState(seed).randn(100, frames) * 2 - 4).astype(np.float32)


def _tone(freq: float, seconds: float, sr: int = 24000) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# Tiny builds
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", VOCODER_NAMES)
def test_tiny_config_keeps_the_official_io_contract(name: str) -> None:
    cfg = tiny_config(name)
    assert (cfg.mel.sample_rate, cfg.mel.n_mels, cfg.mel.hop_length) == (24000, 100, HOP)
    assert cfg.generator.upsample_factor == HOP
    assert 32 <= cfg.generator.upsample_initial_channel <= 64


@pytest.mark.parametrize("name", VOCODER_NAMES)
def test_tiny_build_is_deterministic(name: str) -> None:
    torch.manual_seed(1)
    a = build_vocoder(name, seed=7).generator.state_dict()
    torch.manual_seed(2)  # the global RNG must not matter
    b = build_vocoder(name, seed=7).generator.state_dict()
    c = build_vocoder(name, seed=8).generator.state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a if k.endswith("weight_v"))


@pytest.mark.parametrize("name", VOCODER_NAMES)
def test_attributes_and_folded_weight_norm(tiny: dict, name: str) -> None:
    voc = tiny[name]
    assert voc.name == name and voc.weights_kind == "tiny"
    assert (voc.sample_rate, voc.n_mels, voc.hop_length) == (24000, 100, HOP)
    assert voc.needs_f0 is (name == "nsf_hifigan")
    assert voc.mel_config == voc.config.mel
    convs = [m for m in voc.generator.modules() if isinstance(m, WeightNormConv)]
    assert convs and all(m.is_folded for m in convs)
    assert not voc.generator.training
    # Folding must not change the state-dict names the checkpoints use.
    keys = voc.generator.state_dict().keys()
    assert "conv_pre.weight_g" in keys and "conv_pre.weight_v" in keys and "conv_pre.weight" not in keys


@pytest.mark.parametrize("name", VOCODER_NAMES)
def test_vocode_shapes_and_values(tiny: dict, name: str) -> None:
    out = tiny[name].vocode([_mel(20)])
    assert len(out) == 1 and out[0].shape == (20 * HOP,) and out[0].dtype == np.float32
    assert np.isfinite(out[0]).all() and np.abs(out[0]).max() <= 1.0 and out[0].std() > 1e-4
    assert tiny[name].vocode([]) == []


@pytest.mark.parametrize("name", VOCODER_NAMES)
def test_batching_different_lengths(tiny: dict, name: str) -> None:
    voc = tiny[name]
    mels = [_mel(130, 1), _mel(100, 2), _mel(111, 3)]
    batched = voc.vocode(mels)
    for mel, got in zip(mels, batched):
        alone = voc.vocode([mel])[0]
        assert got.shape == alone.shape == (mel.shape[1] * HOP,)
        keep = int(0.8 * len(alone))  # the tail may hear the padding through the receptive field
        np.testing.assert_allclose(got[:keep], alone[:keep], atol=1e-5, rtol=0)
    np.testing.assert_allclose(batched[0], voc.vocode([mels[0]])[0], atol=1e-5, rtol=0)  # the longest: no padding


@pytest.mark.parametrize("name", VOCODER_NAMES)
def test_invalid_mels_are_rejected(tiny: dict, name: str) -> None:
    with pytest.raises(ValueError):
        tiny[name].vocode([np.zeros((80, 10), np.float32)])
    with pytest.raises(ValueError):
        tiny[name].vocode([np.full((100, 10), np.nan, np.float32)])


def test_analyse_frames_and_pitch(tiny: dict) -> None:
    wave = _tone(220.0, 1.0)
    for voc in tiny.values():
        mel = voc.analyse(wave)
        assert mel.shape == (100, len(wave) // HOP) and mel.dtype == np.float32
    f0 = tiny["nsf_hifigan"].pitch(wave)
    assert f0.shape == (len(wave) // HOP,)
    voiced = f0[f0 > 0]
    assert len(voiced) > 0.8 * len(f0)
    np.testing.assert_allclose(voiced, 220.0, atol=1.0)


def test_nsf_output_ignores_f0_values_but_not_f0_length(tiny: dict) -> None:
    voc = tiny["nsf_hifigan"]
    mels = [_mel(40, 4), _mel(30, 5)]
    f0s = [np.full(40, 220.0, np.float32), np.linspace(100, 400, 25).astype(np.float32)]
    with_f0 = voc.vocode(mels, f0s)
    without = voc.vocode(mels)
    for a, b, mel in zip(with_f0, without, mels):
        assert a.shape == (mel.shape[1] * HOP,)
        np.testing.assert_array_equal(a, b)  # Amphion's x = 2x quirk: the source never reaches the output
    with torch.inference_mode():  # the raw generator crops to the F0 length, like the reference
        out = voc.generator(torch.from_numpy(mels[0])[None], torch.zeros(1, 30))
    assert out.shape == (1, 1, 30 * HOP)
    with pytest.raises(ValueError):
        voc.vocode(mels, f0s[:1])


# ---------------------------------------------------------------------------------------------
# Official layouts: a tiny checkpoint written exactly as the official files are, loaded back
# ---------------------------------------------------------------------------------------------


def _json5_like(obj: dict) -> str:
    """JSON as Amphion writes args.json (json5.dump with indent: trailing commas)."""
    return re.sub(r'([^\s{\[,])(\n\s*[}\]])', r"\1,\2", json.dumps(obj, indent=4))


def _nvidia_config() -> dict:
    return {  # key names of NVIDIA's configs/bigvgan_v2_24khz_100band_256x.json, tiny sizes
        "resblock": "1", "num_gpus": 0, "batch_size": 4, "learning_rate": 0.0001, "adam_b1": 0.8,
        "adam_b2": 0.99, "lr_decay": 0.9999996, "seed": 1234,
        "upsample_rates": [4, 4, 2, 2, 2, 2], "upsample_kernel_sizes": [8, 8, 4, 4, 4, 4],
        "upsample_initial_channel": 128, "resblock_kernel_sizes": [3, 7, 11],
        "resblock_dilation_sizes": [[1, 3, 5], [1, 3, 5], [1, 3, 5]],
        "use_tanh_at_final": False, "use_bias_at_final": False,
        "activation": "snakebeta", "snake_logscale": True,
        "use_cqtd_instead_of_mrd": True, "mpd_reshapes": [2, 3, 5, 7, 11], "use_spectral_norm": False,
        "segment_size": 65536, "num_mels": 100, "num_freq": 1025, "n_fft": 1024, "hop_size": 256,
        "win_size": 1024, "sampling_rate": 24000, "fmin": 0, "fmax": None, "fmax_for_loss": None,
        "num_workers": 4, "dist_config": {"dist_backend": "nccl", "dist_url": "tcp://localhost:54321", "world_size": 1},
    }  # fmt: skip


def _amphion_args(generator: str, **extra_pre) -> dict:
    block = {
        "resblock": "1", "upsample_rates": [8, 4, 2, 2, 2], "upsample_kernel_sizes": [16, 8, 4, 4, 4],
        "upsample_initial_channel": 32, "resblock_kernel_sizes": [3, 5, 7],
        "resblock_dilation_sizes": [[1, 3, 5], [1, 3, 5], [1, 3, 5]],
    }  # fmt: skip
    if generator == "nsfhifigan":
        block["harmonic_num"] = 8
    if generator == "bigvgan":
        block.update(upsample_rates=[4, 4, 2, 2, 2, 2], upsample_kernel_sizes=[8, 8, 4, 4, 4, 4],
                     upsample_initial_channel=64, activation="snakebeta", snake_logscale=True)  # fmt: skip
    return {
        "model_type": "GANVocoder", "task_type": "vocoder", "log_dir": "ckpts/vocoder",
        "preprocess": {"sample_rate": 24000, "n_mel": 100, "n_fft": 1024, "hop_size": 256, "win_size": 1024,
                       "fmin": 0, "fmax": 12000, "extract_mel": True, "use_mel": True, **extra_pre},
        "model": {"generator": generator, "discriminators": ["msd", "mpd", "mssbcqtd", "msstftd"], generator: block},
        "train": {"batch_size": 32, "criterions": ["feature", "discriminator", "generator", "mel"]},
        "inference": {"batch_size": 1},
    }  # fmt: skip


def _source(name: str, raw: dict, seed: int = 3):
    return build_vocoder(name, config=parse_config(name, raw), seed=seed)


def _same_audio(a, b, atol: float = 0.0) -> None:
    mels = [_mel(33, 9), _mel(21, 10)]
    for x, y in zip(a.vocode(mels), b.vocode(mels)):
        np.testing.assert_allclose(x, y, atol=atol, rtol=0)


def _prefixed(sd: dict, prefix: str = "module.") -> dict:
    return {prefix + k: v for k, v in sd.items()}


def test_bigvgan_nvidia_layout_round_trip(tmp_path: Path) -> None:
    raw = _nvidia_config()
    src = _source("bigvgan", raw)
    (tmp_path / "config.json").write_text(json.dumps(raw, indent=2))
    torch.save({"generator": src.generator.state_dict()}, tmp_path / "bigvgan_generator.pt")
    loaded = load_vocoder("bigvgan", "pretrained", local_dir=str(tmp_path))
    assert loaded.weights_kind == "pretrained"
    gen = loaded.config.generator
    assert (gen.use_tanh_at_final, gen.use_bias_at_final, gen.upsample_initial_channel) == (False, False, 128)
    assert "conv_post.bias" not in loaded.generator.state_dict()
    assert loaded.mel_config.fmax is None and loaded.mel_config.fmax_hz == 12000.0
    _same_audio(src, loaded)


def test_bigvgan_accepts_plain_weight_keys(tmp_path: Path) -> None:
    # A generator saved after remove_weight_norm(): NVIDIA's loader retries with plain weights.
    raw = _nvidia_config()
    src = _source("bigvgan", raw)
    plain = {}
    for key, value in src.generator.state_dict().items():
        if key.endswith("weight_v"):
            plain[key[: -len("_v")]] = src.generator.get_submodule(key[: -len(".weight_v")]).weight.clone()
        elif not key.endswith("weight_g"):
            plain[key] = value
    (tmp_path / "config.json").write_text(json.dumps(raw))
    torch.save({"generator": plain}, tmp_path / "bigvgan_generator.pt")
    _same_audio(src, load_vocoder("bigvgan", "pretrained", local_dir=str(tmp_path)), atol=1e-5)


def test_bigvgan_amphion_layout(tmp_path: Path) -> None:
    raw = _amphion_args("bigvgan")
    src = _source("bigvgan", raw)
    folder = tmp_path / "bigvgan_singing"
    folder.mkdir()
    (folder / "args.json").write_text(_json5_like(raw))
    torch.save({"generator_state_dict": _prefixed(src.generator.state_dict()), "step": 400000}, folder / "400000.pt")
    config, state_dict, _ = load_official("bigvgan", tmp_path)
    assert config.generator.use_tanh_at_final and config.generator.use_bias_at_final  # Amphion's class
    _same_audio(src, build_vocoder("bigvgan", config=config, state_dict=state_dict))


def test_hifigan_amphion_layout_round_trip(tmp_path: Path) -> None:
    raw = _amphion_args("hifigan")
    src = _source("hifigan", raw)
    exp = tmp_path / "hifigan_speech"
    latest = exp / "checkpoint" / "epoch-0001_step-0000100_loss-1.000000"
    older = exp / "checkpoint" / "epoch-0000_step-0000050_loss-2.000000"
    latest.mkdir(parents=True)
    older.mkdir(parents=True)
    (exp / "args.json").write_text(_json5_like(raw))
    torch.save(_prefixed(src.generator.state_dict()), latest / "pytorch_model.bin")
    torch.save({"discriminator": torch.zeros(3)}, latest / "pytorch_model_1.bin")  # ignored
    stale = _source("hifigan", raw, seed=99).generator.state_dict()
    torch.save(_prefixed(stale), older / "pytorch_model.bin")
    loaded = load_vocoder("hifigan", "pretrained", local_dir=str(tmp_path))
    assert loaded.weights_kind == "pretrained" and loaded.config.mel.fmax == 12000.0
    _same_audio(src, loaded)


def test_nsf_hifigan_amphion_layout_via_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from safetensors.torch import save_file

    raw = _amphion_args("nsfhifigan", f0_min=60, f0_max=900, use_frame_pitch=True)
    src = _source("nsf_hifigan", raw)
    state_dir = tmp_path / "checkpoint" / "epoch-0002_step-0000200_loss-0.500000"
    state_dir.mkdir(parents=True)
    (tmp_path / "args.json").write_text(_json5_like(raw))
    save_file(_prefixed(src.generator.state_dict()), str(state_dir / "model.safetensors"))
    monkeypatch.setenv(OFFICIAL["nsf_hifigan"].local_dir_env, str(tmp_path))
    loaded = load_vocoder("nsf_hifigan", "pretrained")
    assert loaded.weights_kind == "pretrained" and loaded.needs_f0
    assert (loaded.config.f0_min, loaded.config.f0_max) == (60.0, 900.0)
    assert "m_source.l_linear.weight" in loaded.generator.state_dict()
    _same_audio(src, loaded)


def test_official_table() -> None:
    assert set(OFFICIAL) == set(VOCODER_NAMES)
    assert all(isinstance(files, HubFiles) for files in OFFICIAL.values())
    assert OFFICIAL["bigvgan"].repo_id == "nvidia/bigvgan_v2_24khz_100band_256x"
    assert OFFICIAL["hifigan"].repo_id == "amphion/hifigan_speech_bigdata"
    assert OFFICIAL["nsf_hifigan"].repo_id is None and OFFICIAL["nsf_hifigan"].local_dir_env


def test_tiny_mode_and_missing_weights(tmp_path: Path) -> None:
    voc = load_vocoder("hifigan", "tiny")
    assert voc.weights_kind == "tiny"
    with pytest.raises(WeightsUnavailable):
        load_vocoder("hifigan", "pretrained", local_dir=str(tmp_path))


def test_strict_load_names_the_bad_keys() -> None:
    src = build_vocoder("hifigan", seed=1)
    sd = dict(src.generator.state_dict())
    sd.pop("conv_post.bias")
    sd["extra.weight"] = torch.zeros(1)
    sd["conv_pre.bias"] = torch.zeros(3)
    with pytest.raises(CheckpointError) as info:
        build_vocoder("hifigan", config=src.config, state_dict=sd)
    msg = str(info.value)
    assert "conv_post.bias" in msg and "extra.weight" in msg and "conv_pre.bias (3,)" in msg


def test_config_errors() -> None:
    with pytest.raises(ConfigError, match="model.generator"):
        parse_config("hifigan", _amphion_args("bigvgan"))
    with pytest.raises(ConfigError):
        parse_config("nsf_hifigan", _nvidia_config())
    broken = _amphion_args("hifigan")
    del broken["model"]["hifigan"]["upsample_rates"]
    with pytest.raises(ConfigError, match="upsample_rates"):
        parse_config("hifigan", broken)


def test_lenient_json() -> None:
    text = '{\n  // a comment\n  "url": "http://x//y", /* block */\n  "a": [1, 2,],\n  "b": {"c": "d,]",},\n}'
    assert loads_lenient(text) == {"url": "http://x//y", "a": [1, 2], "b": {"c": "d,]"}}


def test_hop_must_equal_the_upsampling_factor() -> None:
    cfg = tiny_config("hifigan")
    bad = dataclasses.replace(cfg, mel=dataclasses.replace(cfg.mel, hop_length=300))
    with pytest.raises(ValueError, match="upsampling factor"):
        build_vocoder("hifigan", config=bad)
