"""DualCodec (models/dualcodec): official key layout, config parsing, tiny builds, the encode/decode
contract, frame-count arithmetic, and loading a checkpoint laid out like ``amphion/dualcodec``.

Numerical parity with the reference lives in tests/test_parity.py (fixture codec_dualcodec).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from models.core.checkpoints import load_state_dict_file
from models.core.weight_norm import WeightNormConv
from models.dualcodec import (
    MODEL_IDS,
    CheckpointError,
    ConfigError,
    DualCodec,
    SemanticNormPool,
    build_dualcodec,
    build_tiny_dualcodec,
    frame_counts,
    load_dualcodec,
    load_dualcodec_model,
    load_dualcodec_stats,
    official_config,
    parse_dualcodec_config,
    read_dualcodec_config,
    resample_for_w2v_bert,
    tiny_config,
)
from models.dualcodec.configs import OFFICIAL_DUALCODEC_CONFIGS, config_to_reference
from models.dualcodec.official import CHECKPOINT_FILES, OFFICIAL, STATS_FILE
from models.dualcodec.semantic import w2v_bert_frames
from models.weights import resolve

REPO_ROOT = Path(__file__).resolve().parents[1]
PARITY_DIR = Path(os.environ.get("AMPHION_PARITY_DIR") or REPO_ROOT.parent / "shared" / "parity")
FIXTURE = PARITY_DIR / "codec_dualcodec"


def _fixture() -> Path:
    if not (FIXTURE / "official_keys.json").is_file():
        pytest.skip(f"parity fixtures not found at {PARITY_DIR}")
    return FIXTURE


@pytest.fixture(scope="module", params=MODEL_IDS)
def tiny(request: pytest.FixtureRequest) -> DualCodec:
    return build_tiny_dualcodec(request.param)


def _state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}


def _inputs(codec: DualCodec, batch: int = 2, seconds: float = 1.0, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    length = int(seconds * codec.sample_rate)
    frames, _ = frame_counts(length, codec.config)
    audio = 0.3 * torch.randn(batch, 1, length, generator=gen)
    return audio, torch.randn(batch, codec.semantic_dim, frames, generator=gen)


# ---------------------------------------------------------------------------------------------
# Official layout
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("model_id", MODEL_IDS)
def test_official_config_gives_the_official_keys_and_shapes(model_id: str) -> None:
    files = json.loads((_fixture() / "official_keys.json").read_text())["files"]
    with torch.device("meta"):
        model = DualCodec(official_config(model_id))
    got = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert got == files[CHECKPOINT_FILES[model_id]]["keys"]


def test_official_configs_and_contract() -> None:
    c12, c25 = official_config("12hz_v1"), official_config("25hz_v1")
    assert (c12.hop_length, c12.frame_rate, c12.max_quantizers, c12.codebook_size) == (1920, 12.5, 8, 4096)
    assert (c25.hop_length, c25.frame_rate, c25.max_quantizers, c25.codebook_size) == (960, 25.0, 12, 1024)
    assert c12.semantic_downsample_factor == 4 and c25.semantic_downsample_factor == 2
    for cfg in (c12, c25):
        assert cfg.sample_rate == 24000 and cfg.latent_width == 1024 and cfg.is_causal
        assert cfg.semantic_codebook_size == 16384 and cfg.convnext_dim == 768 and cfg.convnext_layers == 4
        with torch.device("meta"):
            model = DualCodec(cfg)
        # Odd upsampling rates lose one sample each (reference quirk): T * hop - 4 for both.
        assert model.output_length(10) == 10 * cfg.hop_length - 4
    assert OFFICIAL["12hz_v1"].patterns == (CHECKPOINT_FILES["12hz_v1"], STATS_FILE)
    assert {f.repo_id for f in OFFICIAL.values()} == {"amphion/dualcodec"}


# ---------------------------------------------------------------------------------------------
# Configs
# ---------------------------------------------------------------------------------------------


def test_config_parsing_follows_the_reference(tmp_path: Path) -> None:
    fixture_cfg = parse_dualcodec_config(read_dualcodec_config(_fixture() / "config.json"))
    assert fixture_cfg.encoder_rates == (2, 3) and fixture_cfg.hop_length == 6
    # Keys the file leaves out take the class defaults.
    assert fixture_cfg.semantic_codebook_dim == 8 and fixture_cfg.decode_semantic_for_codec
    # The model section alone; latent_dim None means encoder_dim * 2**len(rates).
    bare = parse_dualcodec_config({"encoder_dim": 64, "encoder_rates": [4, 5, 6, 8]})
    assert bare.latent_width == 1024 and bare.sample_rate == 44100 and bare.n_codebooks == 9
    # The yaml itself, with Hydra's interpolation.
    text = "SAMPLE_RATE: 24000\nmodel:\n  _target_: dualcodec.model_codec.DualCodec\n" \
           "  sample_rate: ${..SAMPLE_RATE}\n  encoder_rates: [4,5,6,8]\n  decoder_rates: [8,6,5,4]\n" \
           "  n_codebooks: 11\n  quantizer_dropout: 1.0\n  codebook_size: 1024\n" \
           "  semantic_codebook_size: 16384\n  is_causal: true\n"
    (tmp_path / "c.yaml").write_text(text)
    assert parse_dualcodec_config(read_dualcodec_config(tmp_path / "c.yaml")) == official_config("25hz_v1")
    for cfg in (fixture_cfg, official_config("12hz_v1"), tiny_config("25hz_v1")):
        assert parse_dualcodec_config(config_to_reference(cfg)) == cfg
    model = dict(OFFICIAL_DUALCODEC_CONFIGS["12hz_v1"]["model"], sample_rate=24000)
    with pytest.raises(ConfigError, match="unknown keys"):
        parse_dualcodec_config({**model, "n_codebook": 3})
    with pytest.raises(ConfigError, match="per-codebook"):
        parse_dualcodec_config({**model, "codebook_dim": [8] * 7})
    with pytest.raises(ConfigError, match="hard-codes 1024"):
        parse_dualcodec_config({**model, "encoder_dim": 16})
    with pytest.raises(ConfigError, match="_target_"):
        parse_dualcodec_config({**model, "_target_": "dualcodec.model_codec.Discriminator"})
    with pytest.raises(ConfigError, match="SAMPLE_RATE"):
        parse_dualcodec_config({"model": {"sample_rate": "${..SAMPLE_RATE}"}})


def test_tiny_keeps_the_official_contract() -> None:
    for model_id in MODEL_IDS:
        tiny_cfg, official = tiny_config(model_id), official_config(model_id)
        for name in ("sample_rate", "hop_length", "frame_rate", "max_quantizers", "codebook_size",
                     "semantic_codebook_size", "semantic_downsample_factor", "latent_width", "is_causal"):
            assert getattr(tiny_cfg, name) == getattr(official, name), name


# ---------------------------------------------------------------------------------------------
# Tiny builds and the encode / decode contract
# ---------------------------------------------------------------------------------------------


def test_tiny_builds_are_deterministic_and_ready(tiny: DualCodec) -> None:
    model_id = next(m for m in MODEL_IDS if tiny_config(m) == tiny.config)
    again, other = build_tiny_dualcodec(model_id), build_tiny_dualcodec(model_id, seed=1)
    a, b, c = _state(tiny), _state(again), _state(other)
    assert all(torch.equal(a[k], b[k]) for k in a) and any(not torch.equal(a[k], c[k]) for k in a)
    assert not tiny.training and not any(p.requires_grad for p in tiny.parameters())
    assert all(m.is_folded for m in tiny.modules() if isinstance(m, WeightNormConv))


def test_encode_decode_shapes(tiny: DualCodec) -> None:
    audio, semantic_repr = _inputs(tiny)
    frames = semantic_repr.shape[-1]
    sem, ac = tiny.encode(audio, semantic_repr, sample_rate=24000)
    assert sem.shape == (2, 1, frames) and sem.dtype == torch.int64
    assert ac is not None and ac.shape == (2, tiny.max_quantizers - 1, frames) and ac.dtype == torch.int64
    assert int(sem.max()) < tiny.semantic_codebook_size and int(ac.max()) < tiny.acoustic_codebook_size
    # Fewer quantizers: a prefix of the same RVQ; one quantizer: semantic only.
    sem3, ac3 = tiny.encode(audio, semantic_repr, 3)
    assert torch.equal(sem3, sem) and torch.equal(ac3, ac[:, :2])
    sem1, ac1 = tiny.encode(audio, semantic_repr, 1)
    assert torch.equal(sem1, sem) and ac1 is None
    assert torch.equal(tiny.semantic_quantize(semantic_repr), sem[:, 0])
    # Decoding: any number of leading acoustic stages; the length is output_length(T) = T * hop - 4.
    length = tiny.output_length(frames)
    assert length == frames * tiny.hop_length - 4
    full, part, only = tiny.decode(sem, ac), tiny.decode(sem, ac[:, :2]), tiny.decode(sem, None)
    for out in (full, part, only):
        assert out.shape == (2, 1, length) and torch.isfinite(out).all() and out.abs().max() < 1
    assert torch.equal(tiny.decode(sem, ac[:, :0]), only)
    assert not torch.allclose(full, only)
    # Batched = one at a time.
    torch.testing.assert_close(tiny.decode(sem[1:], ac[1:]), full[1:], atol=1e-6, rtol=0)
    assert torch.equal(tiny.encode(audio[1:], semantic_repr[1:])[1], ac[1:])


def test_encode_decode_reject_bad_input(tiny: DualCodec) -> None:
    audio, semantic_repr = _inputs(tiny)
    frames = semantic_repr.shape[-1]
    with pytest.raises(ValueError, match="num_quantizers"):
        tiny.encode(audio, semantic_repr, tiny.max_quantizers + 1)
    with pytest.raises(ValueError, match="num_quantizers"):
        tiny.encode(audio, semantic_repr, 0)
    with pytest.raises(ValueError, match="24000 Hz"):
        tiny.encode(audio, semantic_repr, sample_rate=16000)
    with pytest.raises(ValueError, match="semantic_repr"):
        tiny.encode(audio, semantic_repr[:, :512])
    # The acoustic stream may be 0-2 frames longer than the semantic one, never shorter.
    with pytest.raises(ValueError, match="0 to 2 frames longer"):
        tiny.encode(audio[..., : (frames - 1) * tiny.hop_length], semantic_repr)
    with pytest.raises(ValueError, match="0 to 2 frames longer"):
        tiny.encode(audio, semantic_repr[..., : frames - 3])
    sem, ac = tiny.encode(audio, semantic_repr, 2)
    with pytest.raises(ValueError, match="codes must lie in"):
        tiny.decode(torch.full_like(sem, tiny.semantic_codebook_size), ac)
    with pytest.raises(ValueError, match="do not match"):
        tiny.decode(sem, ac[..., :-1])
    with pytest.raises(ValueError, match=r"\[B, 1, T\]"):
        tiny.decode(torch.cat([sem, sem], dim=1), ac)


def test_fixture_intermediates() -> None:
    """The latents the reference records inside encode (optional checks of cases.json)."""
    from safetensors.torch import load_file

    folder = _fixture()
    config = parse_dualcodec_config(read_dualcodec_config(folder / "config.json"))
    codec = build_dualcodec(config, load_state_dict_file(folder / "model.safetensors"))
    tensors = load_file(str(folder / "cases.safetensors"))
    case = next(c for c in json.loads((folder / "cases.json").read_text()) if c["name"] == "encode_full")
    mids = case["intermediates"]
    with torch.inference_mode():
        _, latent = codec.encode_semantic(tensors["encode_full.in.semantic_repr"])
        dac_z = codec.dac.encode_latent(tensors["encode_full.in.audio"])
    for name, got in (("semantic_latent", latent), ("dac_z", dac_z)):
        spec = mids[name]
        torch.testing.assert_close(got, tensors[spec["tensor"]], atol=spec["atol"], rtol=spec["rtol"])


# ---------------------------------------------------------------------------------------------
# Semantic features and frame counts
# ---------------------------------------------------------------------------------------------


def test_semantic_norm_pool() -> None:
    gen = torch.Generator().manual_seed(0)
    hidden = torch.randn(2, 11, 1024, generator=gen)
    mean, var = torch.randn(1024, generator=gen), 0.5 + torch.rand(1024, generator=gen)
    out = SemanticNormPool(mean, var, 4)(hidden)
    want = ((hidden - mean) / var.sqrt())[:, :8].reshape(2, 2, 4, 1024).mean(2).transpose(1, 2)
    assert out.shape == (2, 1024, 2)
    torch.testing.assert_close(out, want, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="fewer than one pooling window"):
        SemanticNormPool(mean, var, 4)(hidden[:, :3])
    with pytest.raises(ValueError, match="positive"):
        SemanticNormPool(mean, -var, 4)


def test_frame_counts_match_the_front_end() -> None:
    from transformers import SeamlessM4TFeatureExtractor

    extractor = SeamlessM4TFeatureExtractor(feature_size=80, num_mel_bins=80, sampling_rate=16000,
                                            padding_value=1.0, stride=2)
    for length in (2039, 4000, 5879, 5880, 24000):
        wav16 = resample_for_w2v_bert(torch.zeros(1, length).uniform_(-0.5, 0.5))
        assert wav16.shape[-1] == -(-2 * length // 3)
        feats = extractor(wav16[0].numpy(), sampling_rate=16000, return_tensors="np")["input_features"]
        assert feats.shape[1] == w2v_bert_frames(length), length
    for model_id in MODEL_IDS:
        cfg = official_config(model_id)
        hop = cfg.hop_length
        # Whole hops give one code frame fewer than hops: the last DAC frame is always cut.
        assert frame_counts(10 * hop, cfg) == (9, 10)
        # T = (L - 119) // hop for both models, and T_dac - T is 1 or 2.
        lengths = np.arange(hop + 119, 20 * hop, 7)
        counts = [frame_counts(int(n), cfg) for n in lengths]
        assert all(t == (n - 119) // hop and 1 <= d - t <= 2 for n, (t, d) in zip(lengths, counts))
        assert frame_counts(hop + 118, cfg)[0] == 0


# ---------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------


def _write_official_layout(root: Path, model_id: str, codec: DualCodec) -> None:
    save_file(_state(codec), str(root / CHECKPOINT_FILES[model_id]))
    gen = torch.Generator().manual_seed(3)
    stats = {"mean": torch.randn(1024, generator=gen), "var": 1 + torch.rand(1024, generator=gen)}
    torch.save(stats, root / STATS_FILE)


def test_tiny_checkpoint_in_the_official_layout_loads(tmp_path: Path, tiny: DualCodec) -> None:
    model_id = next(m for m in MODEL_IDS if tiny_config(m) == tiny.config)
    _write_official_layout(tmp_path, model_id, tiny)
    keys = json.loads((_fixture() / "official_keys.json").read_text())["files"][CHECKPOINT_FILES[model_id]]["keys"]

    def pattern(key: str) -> str:
        return re.sub(r"\.\d+(?=\.)", ".N", key)

    assert {pattern(k) for k in _state(tiny)} == {pattern(k) for k in keys}
    resolved = resolve(OFFICIAL[model_id], "pretrained", local_dir=tmp_path)
    assert resolved.pretrained
    loaded = load_dualcodec(resolved.root, model_id, tiny_config(model_id))
    mean, var = load_dualcodec_stats(resolved.root)
    assert mean.shape == var.shape == (1024,) and mean.dtype == torch.float32
    audio, semantic_repr = _inputs(tiny, batch=1)
    sem, ac = loaded.encode(audio, semantic_repr)
    ref_sem, ref_ac = tiny.encode(audio, semantic_repr)
    assert torch.equal(sem, ref_sem) and torch.equal(ac, ref_ac)
    torch.testing.assert_close(loaded.decode(sem, ac), tiny.decode(sem, ac), atol=0, rtol=0)
    # The official configuration does not fit a tiny file: a readable strict-load error.
    with pytest.raises(CheckpointError, match="shape mismatches"):
        load_dualcodec_model(model_id, "pretrained", local_dir=tmp_path)


def test_loading_errors_are_readable(tmp_path: Path) -> None:
    codec = build_tiny_dualcodec("12hz_v1")
    state = _state(codec)
    del state["semantic_vq.quantizers.0.codebook.weight"]
    with pytest.raises(CheckpointError, match=r"missing keys \(1\): semantic_vq\.quantizers\.0\.codebook\.weight"):
        build_dualcodec(tiny_config("12hz_v1"), state)
    # The other model's file is named as such.
    with pytest.raises(CheckpointError, match="looks like the official 12hz_v1"):
        build_dualcodec(tiny_config("25hz_v1"), _state(codec))
    with pytest.raises(CheckpointError, match="dualcodec_25hz_16384_1024.safetensors is missing"):
        load_dualcodec(tmp_path, "25hz_v1")
    # Stats: tensors only, the right width.
    (tmp_path / STATS_FILE).write_bytes(b"not a pickle")
    with pytest.raises(CheckpointError, match="cannot read"):
        load_dualcodec_stats(tmp_path)
    torch.save({"mean": torch.zeros(32), "var": torch.ones(32)}, tmp_path / STATS_FILE)
    with pytest.raises(CheckpointError, match=r"must both be \[1024\]"):
        load_dualcodec_stats(tmp_path)


def test_load_dualcodec_model_tiny_mode() -> None:
    loaded = load_dualcodec_model("25hz_v1", "tiny")
    assert not loaded.pretrained and "tiny" in loaded.note
    assert loaded.codec.config == tiny_config("25hz_v1")
    assert loaded.semantic_norm_pool.downsample_factor == 2
    hidden = torch.randn(1, 9, 1024)
    assert loaded.semantic_norm_pool(hidden).shape == (1, 1024, 4)
    with pytest.raises(ValueError, match="unknown DualCodec model"):
        load_dualcodec_model("50hz", "tiny")
