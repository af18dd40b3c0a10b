"""FACodec (models/facodec): configs, official key layout, strict loading from a folder laid out like
``amphion/naturalspeech3_facodec``, lengths, and batch independence of the serving API.

Numerical parity with the reference lives in tests/test_parity.py (fixture codec_facodec).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
import torch

from models.facodec import (
    FACODEC_HUB_FILES,
    CheckpointError,
    ConfigError,
    FACodec,
    FACodecConfig,
    FACodecDecoder,
    FACodecEncoder,
    load_facodec,
    official_facodec_config,
    parse_facodec_config,
    read_facodec_config,
    tiny_facodec_config,
)
from models.facodec.configs import OFFICIAL_FACODEC_KWARGS, training_only_prefixes
from models.facodec.official import FACODEC_DECODER_FILE, FACODEC_ENCODER_FILE
from models.facodec.timbre import sinusoid_table
from models.weights import resolve

REPO_ROOT = Path(__file__).resolve().parents[1]
PARITY_DIR = Path(os.environ.get("AMPHION_PARITY_DIR") or REPO_ROOT.parent / "shared" / "parity")
FIXTURE = PARITY_DIR / "codec_facodec"
HOP = 200


@pytest.fixture(scope="module")
def codec() -> FACodec:
    return FACodec.tiny(seed=0)


def _fixture(name: str) -> Path:
    path = FIXTURE / name
    if not path.is_file():
        pytest.skip(f"parity fixtures not found at {PARITY_DIR}")
    return path


def _state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone().contiguous() for k, v in module.state_dict().items()}


def _noise(length: int, seed: int) -> torch.Tensor:
    return 0.3 * torch.randn(1, 1, length, generator=torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------------------------


def test_official_config_is_the_readme_construction() -> None:
    config = official_facodec_config()
    assert config == FACodecConfig()  # dataclass defaults are the official values
    assert (config.hop_length, config.width, config.decoder.num_codebooks) == (200, 256, 6)
    assert config.decoder.upsample_initial_channel == 1024


def test_fixture_config_parses_and_missing_keys_take_the_class_defaults() -> None:
    config = read_facodec_config(_fixture("config.json"))
    assert config.encoder.up_ratios == (2, 5) and config.timbre_encoder.conv_filter_size == 64
    raw = json.loads(json.dumps(OFFICIAL_FACODEC_KWARGS))
    # Training-only decoder arguments are accepted and ignored.
    raw["decoder"]["quantizer_dropout"] = 0.5
    assert parse_facodec_config(raw) == official_facodec_config()
    # A key left out means the reference class default: out_channels 1024 no longer fits in_channels 256.
    del raw["encoder"]["out_channels"]
    with pytest.raises(ConfigError, match="widths must agree"):
        parse_facodec_config(raw)
    raw = json.loads(json.dumps(OFFICIAL_FACODEC_KWARGS))
    del raw["decoder"]["vq_dim"]  # class default 1024
    with pytest.raises(ConfigError, match="vq_dim"):
        parse_facodec_config(raw)
    raw = json.loads(json.dumps(OFFICIAL_FACODEC_KWARGS))
    raw["decoder"]["vq_num_q_x"] = 1
    with pytest.raises(ConfigError, match="unknown decoder arguments"):
        parse_facodec_config(raw)


# ---------------------------------------------------------------------------------------------
# Official key layout and strict loading
# ---------------------------------------------------------------------------------------------


def test_official_config_gives_the_official_keys_and_shapes() -> None:
    official = json.loads(_fixture("official_keys.json").read_text())
    config = official_facodec_config()
    skipped = training_only_prefixes(config.decoder)
    assert sorted(skipped) == sorted(official["training_only_prefixes"])
    with torch.device("meta"):
        encoder, decoder = FACodecEncoder(config.encoder), FACodecDecoder(config)
    files = official["files"]
    assert {k: list(v.shape) for k, v in encoder.state_dict().items()} == files[FACODEC_ENCODER_FILE]["keys"]
    decoder_keys = {k: s for k, s in files[FACODEC_DECODER_FILE]["keys"].items() if not k.startswith(skipped)}
    assert {k: list(v.shape) for k, v in decoder.state_dict().items()} == decoder_keys


def test_buffers_are_recomputed_as_stored() -> None:
    from safetensors.torch import load_file

    stored = load_file(str(_fixture("model_decoder.safetensors")))
    built = FACodecDecoder(read_facodec_config(_fixture("config.json"))).state_dict()
    buffers = [k for k in stored if k.endswith(("filter", ".pe"))]
    assert buffers and all(torch.equal(stored[k], built[k]) for k in buffers)
    # Row p: sin / cos of p * 10000^(-2i/D) interleaved; row 0 is (0, 1, 0, 1, ...).
    assert torch.equal(sinusoid_table(2, 4)[0, 0], torch.tensor([0.0, 1.0, 0.0, 1.0]))
    assert torch.allclose(sinusoid_table(2, 4)[1, 0], torch.tensor([0.841471, 0.540302, 0.0099998, 0.99995]), atol=1e-5)


def _write_official_layout(root: Path, codec: FACodec) -> None:
    decoder_state = _state(codec.decoder)
    # The official decoder file also holds training-only heads; the loader must skip them.
    decoder_state["x_timbre_predictor.1.heads.0.weight"] = torch.zeros(3, 16)
    decoder_state["f0_predictor.heads.1.bias"] = torch.zeros(1)
    torch.save(_state(codec.encoder), root / FACODEC_ENCODER_FILE)
    torch.save(decoder_state, root / FACODEC_DECODER_FILE)


def test_tiny_checkpoint_in_the_official_layout_loads_through_the_resolver(tmp_path: Path, codec: FACodec) -> None:
    _write_official_layout(tmp_path, codec)
    resolved = resolve(FACODEC_HUB_FILES, "pretrained", local_dir=tmp_path)
    assert resolved.pretrained and resolved.root == tmp_path
    loaded = FACodec.from_folder(resolved.root, tiny_facodec_config())
    wav = _noise(1000, seed=1)
    want, got = codec.encode(wav), loaded.encode(wav)
    for key in ("prosody", "content", "acoustic", "frames"):
        assert torch.equal(got[key], want[key]), key
    torch.testing.assert_close(got["timbre"], want["timbre"], atol=0, rtol=0)
    args = (want["prosody"], want["content"], want["acoustic"], want["timbre"])
    torch.testing.assert_close(loaded.decode(*args), codec.decode(*args), atol=0, rtol=0)


def test_loading_errors_are_readable(tmp_path: Path, codec: FACodec) -> None:
    config = tiny_facodec_config()
    _write_official_layout(tmp_path, codec)
    enc, dec = tmp_path / FACODEC_ENCODER_FILE, tmp_path / FACODEC_DECODER_FILE
    # Swapped files: both lists, and a hint naming the file the keys belong to.
    with pytest.raises(CheckpointError, match=r"(?s)missing keys.*unexpected keys.*" + re.escape(FACODEC_DECODER_FILE)):
        FACodec.from_files(dec, enc, config)
    # A missing key and an unexpected one (not under a training-only prefix).
    state = torch.load(dec, weights_only=True)
    del state["timbre_linear.bias"]
    state["timbre_encoder.extra"] = torch.zeros(1)
    torch.save(state, dec)
    with pytest.raises(CheckpointError, match=r"(?s)missing keys \(1\): timbre_linear\.bias.*unexpected keys \(1\)"):
        FACodec.from_folder(tmp_path, config)
    # Official shapes against tiny weights.
    with pytest.raises(CheckpointError, match="shape mismatches"):
        FACodec.from_files(enc, enc)
    dec.unlink()
    with pytest.raises(CheckpointError, match=FACODEC_DECODER_FILE):
        FACodec.from_folder(tmp_path, config)


def test_plain_weight_keys_of_weight_normed_linears_are_accepted(codec: FACodec) -> None:
    from models.facodec.checkpoints import build_facodec_decoder

    state = _state(codec.decoder)
    prefix = "quantizer.1.layers.0.in_proj."
    g, v = state.pop(prefix + "weight_g"), state.pop(prefix + "weight_v")
    state[prefix + "weight"] = v * (g / v.norm(dim=1, keepdim=True))
    loaded = build_facodec_decoder(codec.config, state)
    latent = torch.randn(1, codec.timbre_dim, 9, generator=torch.Generator().manual_seed(2))
    assert torch.equal(loaded(latent)[1], codec.decoder(latent)[1])


def test_load_facodec_tiny_mode() -> None:
    codec, note = load_facodec("tiny")
    assert codec.config == tiny_facodec_config() and "tiny" in note
    assert not codec.training and not any(p.requires_grad for p in codec.parameters())


def test_tiny_builds_are_deterministic(codec: FACodec) -> None:
    again = FACodec.tiny(seed=0)
    assert all(torch.equal(a, b) for a, b in zip(_state(codec).values(), _state(again).values()))
    assert not torch.equal(_state(FACodec.tiny(seed=5))["decoder.timbre_linear.weight"],
                           _state(codec)["decoder.timbre_linear.weight"])


# ---------------------------------------------------------------------------------------------
# Shapes and lengths
# ---------------------------------------------------------------------------------------------


def test_interface_and_lengths(codec: FACodec) -> None:
    assert (codec.sample_rate, codec.hop_length, codec.frame_rate) == (16000, HOP, 80.0)
    assert codec.codebooks == {"prosody": 1, "content": 2, "acoustic": 3}
    assert codec.codebook_size == {"prosody": 1024, "content": 1024, "acoustic": 1024}
    # Multiples of the hop map exactly; other lengths follow the strided convs (no padding).
    table = {16000: 80, 16100: 80, 16199: 81, 400: 2, 199: 1, 152: 1, 151: 0}
    assert {n: codec.num_frames(n) for n in table} == table
    assert codec.min_samples() == 152
    out = codec.encode(_noise(1999, seed=3))
    assert out["prosody"].shape == (1, 1, 10) and out["content"].shape == (1, 2, 10)
    assert out["acoustic"].shape == (1, 3, 10) and out["timbre"].shape == (1, codec.timbre_dim)
    assert out["prosody"].dtype == torch.long and out["frames"].tolist() == [10]
    assert int(out["content"].max()) < 1024
    wav = codec.decode(out["prosody"], out["content"], out["acoustic"], out["timbre"])
    assert wav.shape == (1, 1, 10 * HOP) and float(wav.abs().max()) <= 1.0
    with pytest.raises(ValueError, match="152 samples"):
        codec.encode(_noise(151, seed=3))


def test_decode_without_acoustic_codes_uses_prosody_and_content_only(codec: FACodec) -> None:
    out = codec.encode(_noise(2000, seed=4))
    wav = codec.decode(out["prosody"], out["content"], None, out["timbre"])
    vq_id = torch.cat([out["prosody"], out["content"], out["acoustic"]], dim=1).transpose(0, 1)
    with torch.inference_mode():
        emb = codec.decoder.vq2emb(vq_id, use_residual_code=False)
        torch.testing.assert_close(wav, codec.decoder.inference(emb, out["timbre"]), atol=0, rtol=0)


# ---------------------------------------------------------------------------------------------
# Batch independence (the reference's timbre encoder depends on the batch position)
# ---------------------------------------------------------------------------------------------


def test_reference_batch_position_quirk_is_reproduced_only_on_request(codec: FACodec) -> None:
    latents = torch.randn(3, codec.timbre_dim, 10, generator=torch.Generator().manual_seed(5))
    with torch.inference_mode():
        alone = codec.decoder.timbre(latents[1:2])
        quirk = codec.decoder.timbre(latents, reference_batch_positions=True)
        serving = codec.decoder.timbre(latents)
        first_alone = codec.decoder.timbre(latents[0:1])
    assert not torch.allclose(quirk[1:2], alone, atol=1e-4)  # item 1 got pe[1], not pe[0]
    torch.testing.assert_close(quirk[0:1], first_alone, atol=1e-6, rtol=1e-5)  # item 0 got pe[0] either way
    torch.testing.assert_close(serving[1:2], alone, atol=1e-6, rtol=1e-5)


def test_fixture_item_alone_equals_the_serving_mode_in_a_batch() -> None:
    from safetensors.torch import load_file

    cases = load_file(str(_fixture("cases.safetensors")))
    model = FACodec.from_files(_fixture("model_encoder.safetensors"), _fixture("model_decoder.safetensors"),
                               read_facodec_config(_fixture("config.json")))
    with torch.inference_mode():
        timbre = model.decoder.timbre(cases["decoder_quantize.in.enc_out"])
    want_alone = cases["decoder_quantize_second_item_alone.out.spk_embs"]
    torch.testing.assert_close(timbre[1:2], want_alone, atol=5e-6, rtol=1e-4)
    assert not torch.allclose(cases["decoder_quantize.out.spk_embs"][1:2], want_alone, atol=1e-3)


def test_serving_api_results_do_not_depend_on_the_batch(codec: FACodec) -> None:
    # X sits at index 1 next to a longer clip, a clip of the same length and a shorter one; the
    # padding is noise, to show it is never read.
    lengths = [2400, 1817, 1817, 1000]
    clips = [_noise(n, seed=10 + i) for i, n in enumerate(lengths)]
    batch = 0.3 * torch.randn(len(clips), 1, max(lengths), generator=torch.Generator().manual_seed(99))
    for i, clip in enumerate(clips):
        batch[i, :, : clip.shape[-1]] = clip
    together = codec.encode(batch, lengths=lengths)
    assert together["frames"].tolist() == [codec.num_frames(n) for n in lengths] == [12, 9, 9, 5]

    for i, clip in enumerate(clips):
        alone = codec.encode(clip)
        frames = int(alone["frames"][0])
        for key in ("prosody", "content", "acoustic"):
            assert torch.equal(together[key][i : i + 1, :, :frames], alone[key]), (i, key)
            assert not together[key][i, :, frames:].any()  # padding frames are zeros
        torch.testing.assert_close(together["timbre"][i : i + 1], alone["timbre"], atol=1e-6, rtol=1e-5)

    decoded = codec.decode(together["prosody"], together["content"], together["acoustic"], together["timbre"],
                           frames=together["frames"])
    for i in range(len(clips)):
        frames = int(together["frames"][i])
        alone = codec.decode(*(together[k][i : i + 1, :, :frames] for k in ("prosody", "content", "acoustic")),
                             together["timbre"][i : i + 1])
        torch.testing.assert_close(decoded[i : i + 1, :, : frames * HOP], alone, atol=1e-6, rtol=1e-5)
        assert not decoded[i, :, frames * HOP :].any()
