"""MaskGCT codecs (models/maskgct) and the shared blocks (models/blocks): tiny builds, shapes,
config parsing, and loading a checkpoint laid out like the official ``amphion/MaskGCT`` repo.

Numerical parity with the reference lives in tests/test_parity.py (fixtures maskgct_*_codec).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from models.blocks.vocos import ISTFT
from models.core.weight_norm import WeightNormConv
from models.maskgct import (
    AcousticCodec,
    CheckpointError,
    ConfigError,
    SemanticCodec,
    build_acoustic_codec,
    build_semantic_codec,
    load_acoustic_codec,
    load_maskgct_codecs,
    load_semantic_codec,
    parse_acoustic_codec_config,
    parse_semantic_codec_config,
    tiny_acoustic_codec_config,
    tiny_semantic_codec_config,
)
from models.maskgct.checkpoints import ACOUSTIC_DECODER_FILE, ACOUSTIC_ENCODER_FILE, SEMANTIC_CODEC_FILE
from models.maskgct.configs import (
    OFFICIAL_MASKGCT_CODECS,
    acoustic_codec_to_reference,
    official_acoustic_codec_config,
    official_semantic_codec_config,
    read_codec_config,
    semantic_codec_to_reference,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
PARITY_DIR = Path(os.environ.get("AMPHION_PARITY_DIR") or REPO_ROOT.parent / "shared" / "parity")
HOP = 480


@pytest.fixture(scope="module")
def semantic() -> SemanticCodec:
    return build_semantic_codec(seed=0)


@pytest.fixture(scope="module")
def acoustic() -> AcousticCodec:
    return build_acoustic_codec(seed=0)


def _features(batch: int = 2, frames: int = 12, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(batch, frames, tiny_semantic_codec_config().hidden_size, generator=gen)


def _wave(batch: int = 2, frames: int = 4, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    t = torch.arange(frames * HOP) / 24000
    freqs = 100 + 400 * torch.rand(batch, 1, generator=gen)
    return (0.5 * torch.sin(2 * torch.pi * freqs * t)).unsqueeze(1)


def _state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}


def _pattern(key: str) -> str:
    return re.sub(r"\.\d+(?=\.)", ".N", key)


# ---------------------------------------------------------------------------------------------
# Tiny builds
# ---------------------------------------------------------------------------------------------


def test_tiny_builds_are_deterministic(semantic: SemanticCodec, acoustic: AcousticCodec) -> None:
    for build, model in ((build_semantic_codec, semantic), (build_acoustic_codec, acoustic)):
        again, other = build(seed=0), build(seed=1)
        a, b, c = _state(model), _state(again), _state(other)
        assert a.keys() == b.keys() == c.keys()
        assert all(torch.equal(a[k], b[k]) for k in a)
        assert any(not torch.equal(a[k], c[k]) for k in a)
    x = _features()
    assert torch.equal(semantic(x)[0], build_semantic_codec(seed=0)(x)[0])


def test_tiny_builds_are_ready_for_inference(semantic: SemanticCodec, acoustic: AcousticCodec) -> None:
    for model in (semantic, acoustic):
        assert not model.training
        assert not any(p.requires_grad for p in model.parameters())
        convs = [m for m in model.modules() if isinstance(m, WeightNormConv)]
        assert convs and all(m.is_folded for m in convs)


def test_semantic_codec_shapes(semantic: SemanticCodec) -> None:
    cfg = tiny_semantic_codec_config()
    x = _features(2, 12)
    with torch.inference_mode():
        codes, quantized = semantic.quantize(x)
        x_rec, all_codes = semantic(x)
        latent = semantic.encode(x)
        emb = semantic.vq2emb(codes)
        decoded = semantic.decode_codes(codes)
    assert codes.shape == (2, 12) and codes.dtype == torch.int64
    assert 0 <= int(codes.min()) and int(codes.max()) < cfg.codebook_size
    assert quantized.shape == x_rec.shape == decoded.shape == (2, 12, cfg.hidden_size)
    assert latent.shape == emb.shape == (2, cfg.hidden_size, 12)
    assert torch.equal(all_codes, codes.unsqueeze(0))
    # codes -> vectors reproduces what quantize returned, and the decoder path equals forward's.
    torch.testing.assert_close(emb.transpose(1, 2), quantized, atol=1e-5, rtol=0)
    torch.testing.assert_close(decoded, x_rec, atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="expected features"):
        semantic.quantize(torch.zeros(2, 12, cfg.hidden_size + 1))
    with pytest.raises(ValueError, match="codes must lie in"):
        semantic.vq2emb(torch.full((1, 3), cfg.codebook_size))


def test_acoustic_codec_shapes(acoustic: AcousticCodec) -> None:
    cfg = tiny_acoustic_codec_config()
    nq = cfg.decoder.num_quantizers
    wav = _wave(2, 4)
    with torch.inference_mode():
        latent = acoustic.encoder(wav)
        quantized, codes_nq = acoustic.decoder.quantize(latent)
        codes = acoustic.encode(wav)
        out = acoustic.decode(codes)
        out_1q = acoustic.decode(codes, n_quantizers=1)
        emb_all = acoustic.decoder.vq2emb(codes_nq)
        emb_1q = acoustic.decoder.vq2emb(codes_nq, n_quantizers=1)
        _, codes_2 = acoustic.decoder.quantize(latent, n_quantizers=2)
    assert latent.shape == quantized.shape == emb_all.shape == (2, 256, 4)
    assert codes.shape == (2, 4, nq) and codes.dtype == torch.int64
    assert torch.equal(codes, codes_nq.permute(1, 2, 0))
    assert torch.equal(codes_2, codes_nq[:2])
    assert out.shape == out_1q.shape == wav.shape
    assert torch.isfinite(out).all()
    torch.testing.assert_close(emb_all, quantized, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(emb_1q, acoustic.decoder.quantizer.quantizers[0].vq2emb(codes_nq[0]))
    assert not torch.allclose(out, out_1q)
    with pytest.raises(ValueError, match="n_quantizers"):
        acoustic.decoder.vq2emb(codes_nq, n_quantizers=nq + 1)


def test_same_padding_istft_inverts_a_matching_stft() -> None:
    n_fft, hop, frames = 32, 8, 10
    istft = ISTFT(n_fft, hop, padding="same")
    x = torch.randn(2, frames * hop, dtype=torch.float64)
    pad = (n_fft - hop) // 2
    spec = torch.stft(
        torch.nn.functional.pad(x, (pad, pad)), n_fft, hop, window=istft.window.double(), center=False,
        return_complex=True,
    )
    assert spec.shape[-1] == frames
    istft.double()
    torch.testing.assert_close(istft(spec), x)


# ---------------------------------------------------------------------------------------------
# Configs
# ---------------------------------------------------------------------------------------------


def test_configs_parse_the_reference_shapes() -> None:
    full = {"model": OFFICIAL_MASKGCT_CODECS}
    assert parse_semantic_codec_config(full) == official_semantic_codec_config()
    assert parse_acoustic_codec_config(full) == official_acoustic_codec_config()
    assert parse_semantic_codec_config(OFFICIAL_MASKGCT_CODECS["semantic_codec"]) == official_semantic_codec_config()
    official = official_acoustic_codec_config()
    assert official.encoder.hop_length == official.decoder.hop_size == 480
    assert official.encoder.width == 1536 and official.decoder.in_channels == 256
    # Round trip through the reference's JSON shape.
    for cfg in (tiny_semantic_codec_config(), official_semantic_codec_config()):
        assert parse_semantic_codec_config(semantic_codec_to_reference(cfg)) == cfg
    for cfg in (tiny_acoustic_codec_config(), official):
        assert parse_acoustic_codec_config(acoustic_codec_to_reference(cfg)) == cfg


def test_config_quirks_follow_the_reference(tmp_path: Path) -> None:
    section = json.loads(json.dumps(OFFICIAL_MASKGCT_CODECS["acoustic_codec"]))
    # The misspelt "in_channel" is never read: the width stays 256 whatever it says.
    section["decoder"]["in_channel"] = 512
    assert parse_acoustic_codec_config(section).decoder.in_channels == 256
    # "in_channels" is read, and must then match the encoder.
    section["decoder"]["in_channels"] = 512
    with pytest.raises(ConfigError, match="out_channels"):
        parse_acoustic_codec_config(section)
    del section["decoder"]["in_channels"]
    section["decoder"]["quantizer_type"] = "lfq"
    with pytest.raises(ConfigError, match="quantizer_type"):
        parse_acoustic_codec_config(section)
    section["decoder"]["quantizer_type"] = "fvq"
    del section["encoder"]["use_tanh"]
    with pytest.raises(ConfigError, match="use_tanh"):
        parse_acoustic_codec_config(section)
    # RepCodec reads the Vocos sizes only when vocos_dim is given.
    assert parse_semantic_codec_config({"codebook_size": 16, "vocos_num_layers": 3}).vocos_num_layers == 12
    with pytest.raises(ConfigError, match="vocos_dim"):
        parse_semantic_codec_config({"codebook_size": 16, "vocos_dim": 8})
    # Amphion's configs are json5: comments and trailing commas.
    path = tmp_path / "maskgct.json"
    path.write_text('{"model": {"semantic_codec": {"codebook_size": 16, // tiny\n "hidden_size": 8,},},}')
    assert parse_semantic_codec_config(read_codec_config(path)).codebook_size == 16


# ---------------------------------------------------------------------------------------------
# Official layout and strict loading
# ---------------------------------------------------------------------------------------------


def _official_keys(folder: str) -> dict[str, dict[str, list[int]]]:
    path = PARITY_DIR / folder / "official_keys.json"
    if not path.is_file():
        pytest.skip(f"parity fixtures not found at {PARITY_DIR}")
    return {name: entry["keys"] for name, entry in json.loads(path.read_text())["files"].items()}


def test_official_configs_give_the_official_keys_and_shapes() -> None:
    keys = _official_keys("maskgct_semantic_codec") | _official_keys("maskgct_acoustic_codec")
    with torch.device("meta"):
        semantic = SemanticCodec(official_semantic_codec_config())
        acoustic = AcousticCodec.from_config(official_acoustic_codec_config())
    for file_name, module in (
        (SEMANTIC_CODEC_FILE, semantic), (ACOUSTIC_ENCODER_FILE, acoustic.encoder),
        (ACOUSTIC_DECODER_FILE, acoustic.decoder),
    ):
        assert {k: list(v.shape) for k, v in module.state_dict().items()} == keys[file_name], file_name


def _write_official_layout(root: Path, semantic: SemanticCodec, acoustic: AcousticCodec) -> None:
    for rel, module in (
        (SEMANTIC_CODEC_FILE, semantic), (ACOUSTIC_ENCODER_FILE, acoustic.encoder),
        (ACOUSTIC_DECODER_FILE, acoustic.decoder),
    ):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        save_file(_state(module), str(root / rel))


def test_tiny_checkpoint_in_the_official_layout_loads_strictly(
    tmp_path: Path, semantic: SemanticCodec, acoustic: AcousticCodec
) -> None:
    _write_official_layout(tmp_path, semantic, acoustic)
    official = _official_keys("maskgct_semantic_codec") | _official_keys("maskgct_acoustic_codec")
    for rel in (SEMANTIC_CODEC_FILE, ACOUSTIC_ENCODER_FILE, ACOUSTIC_DECODER_FILE):
        from safetensors import safe_open

        with safe_open(str(tmp_path / rel), "pt") as f:
            saved = set(f.keys())
        # Same key names as the official file once layer / block indices are abstracted.
        assert {_pattern(k) for k in saved} == {_pattern(k) for k in official[rel]}, rel

    sem = load_semantic_codec(tmp_path, tiny_semantic_codec_config())
    aco = load_acoustic_codec(tmp_path, tiny_acoustic_codec_config())
    x, wav = _features(), _wave()
    with torch.inference_mode():
        assert torch.equal(sem.quantize(x)[0], semantic.quantize(x)[0])
        torch.testing.assert_close(sem(x)[0], semantic(x)[0], atol=0, rtol=0)
        codes = aco.encode(wav)
        assert torch.equal(codes, acoustic.encode(wav))
        torch.testing.assert_close(aco.decode(codes), acoustic.decode(codes), atol=0, rtol=0)
    # A file given directly works for the semantic codec too.
    load_semantic_codec(tmp_path / SEMANTIC_CODEC_FILE, tiny_semantic_codec_config())


def test_loading_errors_are_readable(tmp_path: Path, semantic: SemanticCodec, acoustic: AcousticCodec) -> None:
    _write_official_layout(tmp_path, semantic, acoustic)
    tiny_aco = tiny_acoustic_codec_config()
    # Encoder and decoder files swapped.
    enc, dec = tmp_path / ACOUSTIC_ENCODER_FILE, tmp_path / ACOUSTIC_DECODER_FILE
    enc.rename(tmp_path / "tmp"), dec.rename(enc), (tmp_path / "tmp").rename(dec)
    with pytest.raises(CheckpointError, match=r"(?s)missing keys.*block\.0\.weight_v.*unexpected keys.*model\.backbone\..*"
                       + re.escape(ACOUSTIC_DECODER_FILE)):
        load_acoustic_codec(tmp_path, tiny_aco)
    # A key missing, and a wrong size.
    state = _state(semantic)
    del state["quantizer.quantizers.0.codebook.weight"]
    with pytest.raises(CheckpointError, match=r"missing keys \(1\): quantizer\.quantizers\.0\.codebook\.weight"):
        build_semantic_codec(tiny_semantic_codec_config(), state)
    with pytest.raises(CheckpointError, match="shape mismatches"):
        build_semantic_codec(official_semantic_codec_config(), _state(semantic))
    # Not laid out like the official repo.
    (tmp_path / ACOUSTIC_DECODER_FILE).unlink()
    with pytest.raises(CheckpointError, match=re.escape(ACOUSTIC_DECODER_FILE)):
        load_acoustic_codec(tmp_path, tiny_aco)


def test_plain_weight_keys_are_accepted(semantic: SemanticCodec) -> None:
    # A model saved after remove_weight_norm stores the effective weight as ``<conv>.weight``.
    state = _state(semantic)
    for prefix in ("quantizer.quantizers.0.in_project.", "quantizer.quantizers.0.out_project."):
        g, v = state.pop(prefix + "weight_g"), state.pop(prefix + "weight_v")
        state[prefix + "weight"] = v * (g / v.flatten(1).norm(dim=1).view(-1, 1, 1))
    loaded = build_semantic_codec(tiny_semantic_codec_config(), state)
    x = _features()
    with torch.inference_mode():
        assert torch.equal(loaded.quantize(x)[0], semantic.quantize(x)[0])
        torch.testing.assert_close(loaded(x)[0], semantic(x)[0], atol=1e-5, rtol=1e-5)


def test_load_maskgct_codecs_tiny_mode() -> None:
    sem, aco, note = load_maskgct_codecs("tiny")
    assert sem.config == tiny_semantic_codec_config()
    assert aco.config == tiny_acoustic_codec_config()
    assert "tiny" in note
