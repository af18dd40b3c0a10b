"""Amphion SVC shared parts: the ConditionEncoder (config rules, quantisers, official layout), the front
ends (mel/energy, Praat F0, key shift, voicing, content alignment), the Whisper key mapping and loading,
and ContentVec (fairseq key mapping checked on a hand-built fairseq-layout state dict against an
independent re-statement of fairseq's HuBERT forward, including the zero-sample padding rule).

Numerical parity with the reference lives in tests/test_parity.py (svc_condition_encoder, svc_frontends).
"""

from __future__ import annotations

import argparse
import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from models.core.checkpoints import CheckpointError
from models.core.configs import ConfigError
from models.svc.condition_encoder import (
    OFFICIAL_CONDITION_ENCODER_JSON,
    ConditionEncoder,
    ConditionEncoderConfig,
    build_condition_encoder,
    config_dict,
    energy_bin_edges,
    energy_to_bins,
    f0_to_coarse,
    official_condition_encoder_config,
    parse_condition_encoder_config,
    sub_state_dict,
    tiny_condition_encoder_config,
)
from models.svc.contentvec import (
    TINY_CONTENTVEC_DIM,
    ContentVec,
    ContentVecConfig,
    build_contentvec,
    fairseq_padding_frames,
    fairseq_to_transformers,
    load_contentvec,
    read_fairseq_state,
    tiny_contentvec_config,
)
from models.svc.frontends import (
    SVCFrontendConfig,
    align_content,
    content_hops,
    frame_pitch_and_uv,
    mel_and_energy,
    parse_frontend_config,
    praat_f0,
    shift_f0,
    transpose_key,
    valid_content_frames,
    voiced_median,
)
from models.svc.whisper_features import (
    OFFICIAL_WHISPER_DIMS,
    TINY_WHISPER_DIM,
    batch_floor,
    build_svc_whisper,
    load_svc_whisper,
    openai_to_transformers_encoder,
    pad_or_trim,
    whisper_config_from_dims,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
PARITY_DIR = Path(os.environ.get("AMPHION_PARITY_DIR") or REPO_ROOT.parent / "shared" / "parity")


def _official_keys(folder: str) -> dict:
    path = PARITY_DIR / folder / "official_keys.json"
    if not path.is_file():
        pytest.skip(f"parity fixtures not found at {PARITY_DIR}")
    return json.loads(path.read_text())


def _args(section: dict, preprocess: dict | None = None) -> dict:
    return {"model": {"condition_encoder": section}, "preprocess": preprocess or {}}


def _sine(freq: float, seconds: float, sr: int = 24000, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# ConditionEncoder
# ---------------------------------------------------------------------------------------------


def test_config_rules_of_the_reference() -> None:
    section = dict(OFFICIAL_CONDITION_ENCODER_JSON, f0_min=10, f0_max=20)
    for key in ("use_f0", "use_uv", "use_energy"):
        section.pop(key, None)
    config = parse_condition_encoder_config(_args(section, {"f0_min": 60, "f0_max": 1000}))
    # Missing flags mean true; preprocess's f0 range wins over the section's.
    assert (config.use_f0, config.use_uv, config.use_energy) == (True, True, True)
    assert (config.f0_min, config.f0_max) == (60.0, 1000.0)
    assert config == ConditionEncoderConfig(f0_min=60.0, f0_max=1000.0)
    assert official_condition_encoder_config().output_dim == 384
    tiny = tiny_condition_encoder_config()
    assert parse_condition_encoder_config({"model": {"condition_encoder": config_dict(tiny)}}) == tiny
    assert parse_condition_encoder_config(_args(dict(section, use_uv=False))).use_uv is False


@pytest.mark.parametrize("change, message", [
    ({"use_mert": True}, "use_mert"),
    ({"use_conformer_for_content_features": True}, "use_conformer"),
    ({"output_singer_dim": 8}, "equal output dims"),
    ({"n_bins_melody": 0}, "quantised melody"),
    ({"merge_mode": "mul"}, "merge_mode"),
    ({"whisper_dim": None}, "missing keys"),
])
def test_config_errors(change: dict, message: str) -> None:
    section = {k: v for k, v in {**OFFICIAL_CONDITION_ENCODER_JSON, **change}.items() if v is not None}
    with pytest.raises(ConfigError, match=message):
        parse_condition_encoder_config(_args(section))


def test_quantisers() -> None:
    coarse = f0_to_coarse(torch.tensor([0.0, 20.0, 50.0, 1100.0, 3000.0], dtype=torch.float64))
    assert coarse.tolist() == [1, 1, 1, 255, 255] and coarse.dtype == torch.int64
    mid = f0_to_coarse(torch.tensor([200.0, 400.0]))
    assert 1 < int(mid[0]) < int(mid[1]) < 255
    edges = energy_bin_edges()
    assert edges.shape == (255,) and edges.dtype == torch.float32
    assert energy_to_bins(torch.tensor([0.0, 1e-31, 2.0]), edges).tolist() == [0, 0, 255]
    assert int(energy_to_bins(edges[10:11], edges)) == 10  # an edge itself is not strictly below


def test_official_layout_matches_the_checkpoint() -> None:
    keys = _official_keys("svc_condition_encoder")["keys"]
    with torch.device("meta"):
        model = ConditionEncoder(official_condition_encoder_config())
    assert {k: list(v.shape) for k, v in model.state_dict().items()} == sub_state_dict(keys, "0.")


def test_forward_parts_and_half_precision() -> None:
    model = build_condition_encoder(seed=3)
    assert model.output_dim == 16
    batch, frames = 2, 7
    gen = torch.Generator().manual_seed(0)
    inputs = dict(
        frame_pitch=torch.full((batch, frames), 220.0, dtype=torch.float64),
        frame_uv=torch.zeros(batch, frames, dtype=torch.long),
        frame_energy=torch.rand(batch, frames, generator=gen),
        whisper_feat=torch.randn(batch, frames, 32, generator=gen),
        contentvec_feat=torch.randn(batch, frames, TINY_CONTENTVEC_DIM, generator=gen),
        spk_id=torch.tensor([[0], [3]], dtype=torch.int32),
    )
    with torch.inference_mode():
        out = model(**inputs)
        unvoiced = model(**dict(inputs, frame_uv=torch.ones(batch, frames, dtype=torch.long)))
        other_singer = model(**dict(inputs, spk_id=torch.tensor([[1], [3]], dtype=torch.int32)))
    assert out.shape == (batch, frames, 16) and out.dtype == torch.float32
    uv = model.melody_encoder.uv_embedding.weight
    torch.testing.assert_close(unvoiced - out, (uv[1] - uv[0]).expand_as(out), atol=1e-5, rtol=0)
    assert torch.equal(other_singer[1], out[1]) and not torch.allclose(other_singer[0], out[0])
    with pytest.raises(ValueError, match="whisper_feat"):
        model(**dict(inputs, whisper_feat=None))
    # Reload strictly from the reference's key layout (prefix "0.").
    full = {f"0.{k}": v for k, v in model.state_dict().items()} | {"1.other.weight": torch.zeros(1)}
    again = build_condition_encoder(tiny_condition_encoder_config(), sub_state_dict(full, "0."))
    with torch.inference_mode():
        assert torch.equal(again(**inputs), out)
    edges = model.loudness_encoder.energy_bins.detach().clone()
    model.half()
    assert model.loudness_encoder.energy_bins.dtype == torch.float32
    assert torch.equal(model.loudness_encoder.energy_bins, edges)


# ---------------------------------------------------------------------------------------------
# Front ends
# ---------------------------------------------------------------------------------------------


def test_frontend_config_and_hops() -> None:
    config = parse_frontend_config({"preprocess": {"n_mel": 80, "hop_size": 256, "unused": 1}})
    assert config.n_mel == 80 and config.sample_rate == 24000
    assert content_hops(config, "whisper") == (15, 8) == content_hops(config, "contentvec")
    with pytest.raises(ConfigError, match="pitch_extractor"):
        SVCFrontendConfig(pitch_extractor="crepe")
    assert valid_content_frames(1.3, 0.02) == 65
    assert config.num_frames(24000) == 93


def test_mel_energy_f0_and_voicing() -> None:
    config = SVCFrontendConfig()
    wave = np.concatenate([_sine(220.0, 0.5), np.zeros(6000, np.float32)])
    mel, energy = mel_and_energy(wave, config)
    frames = config.num_frames(wave.shape[0])
    assert mel.shape == (100, frames) and energy.shape == (frames,)
    torch.testing.assert_close(energy, mel.exp().pow(2).sum(0).sqrt())
    f0 = praat_f0(wave, config)
    assert f0.dtype == np.float64 and 0 < frames - f0.shape[0] <= 8  # Praat's own frame count
    assert abs(voiced_median(f0) - 220.0) < 1.0
    pitch, uv = frame_pitch_and_uv(f0, frames)
    assert pitch.shape == uv.shape == (frames,) and uv.dtype == np.int64
    assert np.array_equal(uv, (pitch == 0).astype(np.int64)) and uv[-1] == 1  # 1 = unvoiced, tail too
    assert uv[10] == 0
    assert praat_f0(np.zeros(100, np.float32), config).shape == (0,)


def test_key_shift_modes() -> None:
    f0 = np.array([0.0, 200.0, 220.0, 0.0, 240.0])
    np.testing.assert_allclose(shift_f0(f0, 12), f0 * 2)
    np.testing.assert_allclose(shift_f0(f0, -3), transpose_key(f0, -3))
    np.testing.assert_allclose(shift_f0(f0, "autoshift", target_median=330.0), f0 * 1.5)
    np.testing.assert_allclose(shift_f0(f0, "reference", reference_median=110.0, source_median=220.0), f0 / 2)
    np.testing.assert_array_equal(shift_f0(f0, 0), f0)
    silent = np.zeros(4)
    np.testing.assert_array_equal(shift_f0(silent, "autoshift", target_median=300.0), silent)
    with pytest.raises(ValueError, match="key_shift"):
        shift_f0(f0, "up")


def test_align_content() -> None:
    content = np.random.default_rng(0).standard_normal((40, 3)).astype(np.float32)
    out = align_content(content, 75, 15, 8)
    assert out.shape == (75, 3) and out.dtype == np.float32
    np.testing.assert_allclose(out[0], content[0])  # the first 8 of 15 repeats of frame 0
    np.testing.assert_allclose(out[1], (7 * content[0] + content[1]) / 8, atol=1e-6)
    short = align_content(content[:2], 10, 15, 8)
    assert np.array_equal(short[3:], np.repeat(short[2:3], 7, axis=0))


# ---------------------------------------------------------------------------------------------
# Whisper
# ---------------------------------------------------------------------------------------------


def _openai_encoder_layout(dims: dict) -> dict[str, list[int]]:
    """openai-whisper's encoder keys and shapes for ``dims`` (written from its AudioEncoder)."""
    s, m = dims["n_audio_state"], dims["n_mels"]
    keys = {"encoder.conv1.weight": [s, m, 3], "encoder.conv1.bias": [s], "encoder.conv2.weight": [s, s, 3],
            "encoder.conv2.bias": [s], "encoder.positional_embedding": [dims["n_audio_ctx"], s]}
    for i in range(dims["n_audio_layer"]):
        b = f"encoder.blocks.{i}."
        for proj in ("query", "key", "value", "out"):
            keys[f"{b}attn.{proj}.weight"] = [s, s]
            if proj != "key":
                keys[f"{b}attn.{proj}.bias"] = [s]
        keys.update({f"{b}attn_ln.weight": [s], f"{b}attn_ln.bias": [s], f"{b}mlp.0.weight": [4 * s, s],
                     f"{b}mlp.0.bias": [4 * s], f"{b}mlp.2.weight": [s, 4 * s], f"{b}mlp.2.bias": [s],
                     f"{b}mlp_ln.weight": [s], f"{b}mlp_ln.bias": [s]})
    keys.update({"encoder.ln_post.weight": [s], "encoder.ln_post.bias": [s]})
    return keys


def test_whisper_official_layout_maps_onto_transformers() -> None:
    entry = _official_keys("svc_frontends")["whisper_medium_encoder"]
    assert entry["dims"] == OFFICIAL_WHISPER_DIMS
    assert entry["keys"] == _openai_encoder_layout(OFFICIAL_WHISPER_DIMS)
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    from models.core.checkpoints import load_exact

    with torch.device("meta"):
        encoder = WhisperEncoder(whisper_config_from_dims(OFFICIAL_WHISPER_DIMS))
        state = {k: torch.empty(shape) for k, shape in entry["keys"].items()}
    load_exact(encoder, openai_to_transformers_encoder(state), "medium.pt", assign=True)


def test_whisper_loads_openai_files(tmp_path: Path) -> None:
    dims = dict(OFFICIAL_WHISPER_DIMS, n_audio_state=16, n_audio_head=2, n_audio_layer=1)
    gen = torch.Generator().manual_seed(0)
    state = {k: torch.randn(shape, generator=gen) * 0.2 for k, shape in _openai_encoder_layout(dims).items()}
    state["decoder.token_embedding.weight"] = torch.zeros(4, 16)  # dropped
    torch.save({"dims": dims, "model_state_dict": state}, tmp_path / "medium.pt")
    whisper = load_svc_whisper(tmp_path)  # a folder holding medium.pt
    layer = whisper.features.encoder.layers[0]
    assert torch.equal(layer.self_attn.q_proj.weight, state["encoder.blocks.0.attn.query.weight"])
    assert layer.self_attn.k_proj.bias is None
    assert torch.equal(whisper.features.encoder.embed_positions.weight, state["encoder.positional_embedding"])
    with pytest.raises(CheckpointError, match="not understood"):
        openai_to_transformers_encoder({**state, "encoder.blocks.0.attn.rotary.weight": torch.zeros(1)})
    with pytest.raises(CheckpointError, match="missing keys"):
        torch.save({"dims": dims, "model_state_dict": {k: v for k, v in state.items() if "ln_post" not in k}},
                   tmp_path / "broken.pt")
        load_svc_whisper(tmp_path / "broken.pt")
    wave = torch.from_numpy(_sine(300.0, 1.0, 16000))
    (alone,) = whisper([wave])
    assert alone.shape == (50, 16)
    (batched,) = whisper.batch_like_reference(wave[None])
    torch.testing.assert_close(batched, alone, atol=1e-5, rtol=0)


def test_whisper_batch_floor_and_tiny() -> None:
    mel = torch.tensor([[[0.5, -3.0]], [[1.5, 0.0]]])  # after (x + 4) / 4: floor 2 below the batch max
    assert batch_floor(mel).tolist() == [[[0.5, -0.5]], [[1.5, 0.0]]]
    assert pad_or_trim(torch.ones(1, 10)).shape == (1, 480000)
    whisper = build_svc_whisper(seed=1)
    assert whisper.dim == TINY_WHISPER_DIM == tiny_condition_encoder_config().whisper_dim
    feats = whisper([np.zeros(8000, np.float32), _sine(200.0, 0.7, 16000)], durations=[0.5, 0.7])
    assert [f.shape for f in feats] == [(25, TINY_WHISPER_DIM), (35, TINY_WHISPER_DIM)]


# ---------------------------------------------------------------------------------------------
# ContentVec
# ---------------------------------------------------------------------------------------------


def _fairseq_layout(cfg: ContentVecConfig, layers: int, label_classes: int = 504) -> dict[str, list[int]]:
    """fairseq HubertModel's state dict layout (written from fairseq's module tree, not from ours)."""
    keys: dict[str, list[int]] = {}
    in_dim = 1
    for i, (dim, kernel) in enumerate(zip(cfg.conv_dim, cfg.conv_kernel)):
        keys[f"feature_extractor.conv_layers.{i}.0.weight"] = [dim, in_dim, kernel]
        in_dim = dim
    keys["feature_extractor.conv_layers.0.2.weight"] = [cfg.conv_dim[0]]
    keys["feature_extractor.conv_layers.0.2.bias"] = [cfg.conv_dim[0]]
    h, c, f = cfg.hidden_size, cfg.conv_dim[-1], cfg.ffn_dim
    keys.update({"layer_norm.weight": [c], "layer_norm.bias": [c], "post_extract_proj.weight": [h, c],
                 "post_extract_proj.bias": [h], "mask_emb": [h],
                 "encoder.pos_conv.0.weight_g": [1, 1, cfg.pos_conv_kernel],
                 "encoder.pos_conv.0.weight_v": [h, h // cfg.pos_conv_groups, cfg.pos_conv_kernel],
                 "encoder.pos_conv.0.bias": [h], "encoder.layer_norm.weight": [h], "encoder.layer_norm.bias": [h]})
    for i in range(layers):
        p = f"encoder.layers.{i}."
        for proj in ("k_proj", "v_proj", "q_proj", "out_proj"):
            keys[f"{p}self_attn.{proj}.weight"], keys[f"{p}self_attn.{proj}.bias"] = [h, h], [h]
        keys.update({f"{p}self_attn_layer_norm.weight": [h], f"{p}self_attn_layer_norm.bias": [h],
                     f"{p}fc1.weight": [f, h], f"{p}fc1.bias": [f], f"{p}fc2.weight": [h, f], f"{p}fc2.bias": [h],
                     f"{p}final_layer_norm.weight": [h], f"{p}final_layer_norm.bias": [h]})
    keys.update({"final_proj.weight": [cfg.final_dim, h], "final_proj.bias": [cfg.final_dim],
                 "label_embs_concat": [label_classes, cfg.final_dim]})
    return keys


def _fake_fairseq_state(cfg: ContentVecConfig, layers: int, seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in _fairseq_layout(cfg, layers).items():
        noise = torch.randn(shape, generator=gen)
        is_norm_gain = key.endswith(("norm.weight", "conv_layers.0.2.weight"))
        if is_norm_gain:
            state[key] = 1.0 + 0.1 * noise
        elif len(shape) > 1 and not key.endswith("weight_g"):
            state[key] = noise / math.sqrt(shape[-1] * (shape[1] if len(shape) == 3 else 1))
        else:
            state[key] = 0.1 * noise
    return state


def _fairseq_forward(sd: dict[str, torch.Tensor], cfg: ContentVecConfig, wav: torch.Tensor) -> torch.Tensor:
    """fairseq's HuBERT ``extract_features(padding_mask=wav == 0, output_layer)`` + ``final_proj``,
    re-stated with plain torch ops for one utterance ``[1, N]``."""
    x = wav[:, None]
    for i, stride in enumerate(cfg.conv_stride):
        x = F.conv1d(x, sd[f"feature_extractor.conv_layers.{i}.0.weight"], stride=stride)
        if i == 0:
            x = F.group_norm(x, x.shape[1], sd["feature_extractor.conv_layers.0.2.weight"],
                             sd["feature_extractor.conv_layers.0.2.bias"])
        x = F.gelu(x)
    x = F.layer_norm(x.transpose(1, 2), (x.shape[1],), sd["layer_norm.weight"], sd["layer_norm.bias"])
    frames = x.shape[1]
    zeros = wav == 0
    zeros = zeros[:, : zeros.shape[1] - zeros.shape[1] % frames]
    pad = zeros.view(1, frames, -1).all(-1)[0]
    x = F.linear(x, sd["post_extract_proj.weight"], sd["post_extract_proj.bias"])[0]
    x = torch.where(pad[:, None], torch.zeros_like(x), x)
    v, g = sd["encoder.pos_conv.0.weight_v"], sd["encoder.pos_conv.0.weight_g"]
    weight = v * (g / v.norm(dim=(0, 1), keepdim=True))  # weight norm over every dim but 2
    conv = F.conv1d(x.T[None], weight, sd["encoder.pos_conv.0.bias"], padding=cfg.pos_conv_kernel // 2,
                    groups=cfg.pos_conv_groups)[0, :, :frames]  # SamePad drops the extra last frame
    x = F.layer_norm(x + F.gelu(conv).T, (x.shape[1],), sd["encoder.layer_norm.weight"], sd["encoder.layer_norm.bias"])
    heads, h = cfg.num_heads, cfg.hidden_size
    for i in range(cfg.output_layer):
        p = f"encoder.layers.{i}."

        def lin(name, t):
            return F.linear(t, sd[f"{p}{name}.weight"], sd[f"{p}{name}.bias"])

        q = (lin("self_attn.q_proj", x) * (h // heads) ** -0.5).view(frames, heads, -1).transpose(0, 1)
        k = lin("self_attn.k_proj", x).view(frames, heads, -1).transpose(0, 1)
        val = lin("self_attn.v_proj", x).view(frames, heads, -1).transpose(0, 1)
        scores = (q @ k.transpose(1, 2)).masked_fill(pad[None, None, :], float("-inf"))
        attn = (scores.softmax(-1) @ val).transpose(0, 1).reshape(frames, h)
        x = F.layer_norm(x + lin("self_attn.out_proj", attn), (h,), sd[f"{p}self_attn_layer_norm.weight"],
                         sd[f"{p}self_attn_layer_norm.bias"])
        x = F.layer_norm(x + lin("fc2", F.gelu(lin("fc1", x))), (h,), sd[f"{p}final_layer_norm.weight"],
                         sd[f"{p}final_layer_norm.bias"])
    return F.linear(x, sd["final_proj.weight"], sd["final_proj.bias"])


def test_contentvec_fairseq_mapping_matches_fairseq_semantics() -> None:
    cfg = tiny_contentvec_config()
    state = _fake_fairseq_state(cfg, layers=cfg.num_layers + 1)  # a layer above output_layer: dropped
    model = build_contentvec(cfg, state)
    gen = torch.Generator().manual_seed(1)
    wav = torch.randn(1, 16000, generator=gen) * 0.3
    wav[0, 5000:9000] = 0.0  # digital silence inside the audio: padding, as in the reference
    want = _fairseq_forward(state, cfg, wav)
    got = model.extract(wav)[0]
    assert got.shape == (49, TINY_CONTENTVEC_DIM)
    torch.testing.assert_close(got, want, atol=2e-5, rtol=1e-5)
    mask = fairseq_padding_frames(wav == 0, 49)[0]
    assert 10 <= int(mask.sum()) <= 13 and not bool(mask[:10].any())
    (served,) = model([wav[0]])  # alone, cut to the valid frames (all 49 here)
    torch.testing.assert_close(served, got)
    silent = model.extract(torch.zeros(1, 4000))
    assert bool(silent.isfinite().all())


def test_contentvec_mapping_errors_and_official_layout() -> None:
    cfg = tiny_contentvec_config()
    state = _fake_fairseq_state(cfg, layers=cfg.num_layers)
    with pytest.raises(CheckpointError, match="not understood"):
        fairseq_to_transformers({**state, "encoder.layers.0.adapter.weight": torch.zeros(1)}, cfg.output_layer)
    with pytest.raises(CheckpointError, match="transformer layers"):
        fairseq_to_transformers(state, cfg.output_layer + 1)
    with pytest.raises(CheckpointError, match="missing keys"):
        build_contentvec(cfg, {k: v for k, v in state.items() if k != "final_proj.bias"})
    official = ContentVecConfig()
    with torch.device("meta"):
        model = ContentVec(official)
        fake = {k: torch.empty(shape) for k, shape in _fairseq_layout(official, 12).items()}
    mapped = fairseq_to_transformers(fake, official.output_layer)
    assert {k: list(v.shape) for k, v in mapped.items()} == {k: list(v.shape) for k, v in model.state_dict().items()}
    assert sum(p.numel() for p in model.parameters()) == 94_567_808  # HuBERT-base + final_proj


class _TrainingConfig:
    """Stands for fairseq's pickled config objects; unpickling it would run ``os.mkdir(marker)``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


def test_contentvec_reads_a_fairseq_checkpoint_without_running_pickled_code(tmp_path: Path) -> None:
    cfg = tiny_contentvec_config()
    state = _fake_fairseq_state(cfg, layers=cfg.num_layers)
    path = tmp_path / "checkpoint_best_legacy_500.pt"
    marker = tmp_path / "pickled_code_ran"
    torch.save({"args": argparse.Namespace(arch="hubert"), "cfg": _TrainingConfig(marker), "model": state}, path)
    read = read_fairseq_state(path)
    assert set(read) == set(state) and not marker.exists()
    model = load_contentvec(tmp_path, config=cfg)
    assert torch.equal(model.final_proj.weight, state["final_proj.weight"])
    assert model.dim == TINY_CONTENTVEC_DIM == tiny_condition_encoder_config().contentvec_dim
