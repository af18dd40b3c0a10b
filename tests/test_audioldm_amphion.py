"""Amphion's own text-to-audio model (models/audioldm, ``model=amphion``): the tiny pipeline end to
end, the official checkpoint layout through ``from_weights("pretrained")``, the VAE key mapping and
the official key layouts. Numerical parity with the reference: tests/test_parity.py
(``tta_audioldm_amphion_*``)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from models.audioldm import configs as C
from models.core.checkpoints import load_state_dict_file as read_state_dict
from models.audioldm.official import (
    OFFICIAL,
    T5_REPO_ID,
    TTA_REPO_ID,
    UNET_FILE,
    VAE_FILE,
    VOCODER_CONFIG_FILE,
    VOCODER_FILE,
)
from models.audioldm.pipeline import (
    AmphionAudioLDM,
    AmphionAudioLDMInputError,
    AudioTooLongError,
    EmptyTextError,
    load_text_encoder,
)
from models.audioldm.text_encoder import EOS_ID, PAD_ID, tiny_tokenizer
from models.audioldm.unet import AudioLDMUNet
from models.audioldm.vae import MelVAE, amphion_to_diffusers, diffusers_to_amphion
from models.audioldm.vocoder import TTAVocoder
from models.core.checkpoints import CheckpointError

REPO_ROOT = Path(__file__).resolve().parents[1]
PARITY_DIR = Path(os.environ.get("AMPHION_PARITY_DIR") or REPO_ROOT.parent / "shared" / "parity")
STEPS = 4  # PNDM steps in these tests (5 UNet calls)


@pytest.fixture(scope="module")
def tiny() -> AmphionAudioLDM:
    return AmphionAudioLDM.tiny(seed=0)


def _official_keys(folder: str) -> dict:
    path = PARITY_DIR / folder / "official_keys.json"
    if not path.is_file():
        pytest.skip(f"parity fixtures not found at {PARITY_DIR}")
    return json.loads(path.read_text())


def _entry(keys: dict, prefix: str) -> dict:
    return next(v for k, v in keys.items() if k.startswith(prefix))


# ---------------------------------------------------------------------------------------------
# the tiny pipeline end to end


def test_tiny_facts(tiny: AmphionAudioLDM) -> None:
    assert tiny.weights_kind == "tiny"
    assert tiny.sample_rate == 16000
    assert tiny.latent_shape == (1, 4, 5, 39)  # the official latent: five VAE levels
    assert tiny.max_samples == 624 * 256 == 159744
    assert tiny.max_seconds == pytest.approx(9.984)


def test_generate_length_is_exact_and_seeded(tiny: AmphionAudioLDM) -> None:
    steps: list[tuple[int, int]] = []
    a = tiny.generate("A dog barking in the park", audio_length_in_s=1.5, num_inference_steps=STEPS, seed=7,
                      on_step=lambda i, n: steps.append((i, n)))
    assert a.dtype == np.float32 and a.shape == (24000,)
    assert np.isfinite(a).all() and np.abs(a).max() <= 1.0 and np.abs(a).max() > 0
    assert steps == [(i, STEPS + 1) for i in range(1, STEPS + 2)]  # PNDM with skip_prk: steps + 1 UNet calls
    b = tiny.generate("A dog barking in the park", audio_length_in_s=1.5, num_inference_steps=STEPS, seed=7)
    np.testing.assert_array_equal(a, b)
    c = tiny.generate("A dog barking in the park", audio_length_in_s=1.5, num_inference_steps=STEPS, seed=8)
    assert not np.allclose(a, c)
    # a shorter request is the start of the same audio
    d = tiny.generate("A dog barking in the park", audio_length_in_s=0.25, num_inference_steps=STEPS, seed=7)
    np.testing.assert_array_equal(d, a[:4000])


def test_generate_full_length_and_too_long(tiny: AmphionAudioLDM) -> None:
    full = tiny.generate("rain", audio_length_in_s=tiny.max_seconds, num_inference_steps=1, seed=1)
    assert full.shape == (159744,)
    assert tiny.generate("rain", num_inference_steps=1, seed=1).shape == (159744,)  # None: everything
    with pytest.raises(AudioTooLongError, match=r"at most 9\.984 s"):
        tiny.generate("rain", audio_length_in_s=10.0, num_inference_steps=1, seed=1)
    assert issubclass(AudioTooLongError, AmphionAudioLDMInputError)
    assert issubclass(AmphionAudioLDMInputError, ValueError)


@pytest.mark.parametrize("kwargs", [
    dict(text=""), dict(text="   "), dict(audio_length_in_s=0.0), dict(audio_length_in_s=float("nan")),
    dict(audio_length_in_s=1e-6), dict(num_inference_steps=0), dict(num_inference_steps=1001),
    dict(num_inference_steps=2.5), dict(guidance_scale=float("inf")), dict(seed=-1), dict(negative_prompt=3),
])
def test_generate_rejects_bad_requests(tiny: AmphionAudioLDM, kwargs: dict) -> None:
    args = dict(text="a cat", audio_length_in_s=1.0, num_inference_steps=1, seed=0) | kwargs
    text = args.pop("text")
    with pytest.raises(AmphionAudioLDMInputError) as info:
        tiny.generate(text, **args)
    if not text.strip():
        assert isinstance(info.value, EmptyTextError)


def test_negative_prompt(tiny: AmphionAudioLDM) -> None:
    base = dict(audio_length_in_s=0.5, num_inference_steps=STEPS, seed=3)
    plain = tiny.generate("birds", **base)
    assert np.array_equal(plain, tiny.generate("birds", negative_prompt="", **base))  # "" is the default
    other = tiny.generate("birds", negative_prompt="wind", **base)
    assert not np.allclose(plain, other)
    # longer than the prompt: kept whole, the two halves of the guidance run separately
    longer = tiny.generate("birds", negative_prompt="loud traffic noise and wind", **base)
    assert longer.shape == plain.shape and np.isfinite(longer).all()


def test_guidance_is_cfg_around_the_unconditional_prediction(tiny: AmphionAudioLDM) -> None:
    # guidance 0 is the unconditional model: the prompt no longer matters, except through its
    # length ("" is padded to it and the pads are attended, as in the reference)
    base = dict(audio_length_in_s=0.5, num_inference_steps=STEPS, seed=5, guidance_scale=0.0)
    a, b = tiny.generate("birds", **base), tiny.generate("cats!", **base)  # same number of tokens
    np.testing.assert_allclose(a, b, atol=1e-6)
    assert not np.allclose(a, tiny.generate("a jet engine", **base), atol=1e-6)


def test_generate_a_list_is_each_item_alone(tiny: AmphionAudioLDM) -> None:
    steps: list[tuple[int, int]] = []
    waves = tiny.generate(["birds", "a loud jet engine"], audio_length_in_s=[0.5, 0.25], num_inference_steps=2,
                          seed=[1, 2], negative_prompt=None, on_step=lambda i, n: steps.append((i, n)))
    assert [w.shape for w in waves] == [(8000,), (4000,)]
    np.testing.assert_array_equal(waves[0], tiny.generate("birds", audio_length_in_s=0.5, num_inference_steps=2, seed=1))
    np.testing.assert_array_equal(waves[1], tiny.generate("a loud jet engine", audio_length_in_s=0.25,
                                                          num_inference_steps=2, seed=2))
    assert steps == [(i, 6) for i in range(1, 7)]
    with pytest.raises(AmphionAudioLDMInputError, match="2 values for 3 texts"):
        tiny.generate(["a", "b", "c"], seed=[1, 2], num_inference_steps=1)
    with pytest.raises(AudioTooLongError):
        tiny.generate(["a", "b"], audio_length_in_s=[1.0, 12.0], num_inference_steps=1)


def test_tiny_tokenizer_is_t5_shaped(tiny: AmphionAudioLDM) -> None:
    cond, uncond = tiny.text_encoder.token_ids("A dog, barking!")
    assert cond.shape == uncond.shape and cond[0, -1] == EOS_ID
    assert uncond[0].tolist() == [EOS_ID] + [PAD_ID] * (cond.shape[1] - 1)
    assert int(cond.max()) < tiny.text_encoder.vocab_size
    tok = tiny_tokenizer()
    assert tok([""]).input_ids == [[EOS_ID]]
    assert tok(["x" * 2000], truncation=True, max_length=512).input_ids[0][-1] == EOS_ID


def test_from_weights_tiny_and_auto_without_files(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("AMPHION_WEIGHTS_DIR", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    tiny = AmphionAudioLDM.from_weights("tiny")
    assert tiny.weights_kind == "tiny"
    auto = AmphionAudioLDM.from_weights("auto", cache_dir=tmp_path)
    assert auto.weights_kind == "tiny" and "not present" in auto.note
    from models.weights import WeightsUnavailable

    with pytest.raises(WeightsUnavailable):
        AmphionAudioLDM.from_weights("pretrained", cache_dir=tmp_path)


# ---------------------------------------------------------------------------------------------
# the official checkpoint layout, written from the tiny model


def _write_official_layout(root: Path, pipe: AmphionAudioLDM) -> None:
    """``root/amphion/text_to_audio`` and ``root/google-t5/t5-base`` as the hub lays them out."""
    from safetensors.torch import save_file

    tta = root / TTA_REPO_ID
    for rel in (UNET_FILE, VAE_FILE, VOCODER_FILE):
        (tta / rel).parent.mkdir(parents=True, exist_ok=True)
    # Amphion's trainer: {"model": ..., "optimizer": ..., ...}; the optimiser state is never read
    torch.save({"model": pipe.unet.state_dict(), "optimizer": {"state": {}, "param_groups": [{"lr": 5e-5}]},
                "step": 570000}, tta / UNET_FILE)
    torch.save({"model": pipe.vae.amphion_state_dict(), "step": 445000}, tta / VAE_FILE)
    (tta / VOCODER_CONFIG_FILE).write_text(json.dumps(C.tiny_vocoder_config()))
    torch.save({"generator": pipe.vocoder.generator.state_dict(), "steps": 1250000}, tta / VOCODER_FILE)

    t5_dir = root / T5_REPO_ID
    t5_dir.mkdir(parents=True)
    config = dict(pipe.text_encoder.model.config.to_dict(), is_encoder_decoder=True, architectures=["T5ForConditionalGeneration"])
    (t5_dir / "config.json").write_text(json.dumps(config))
    encoder = pipe.text_encoder.model.state_dict()
    tensors = {k: v.clone().contiguous() for k, v in encoder.items() if k != "encoder.embed_tokens.weight"}
    # the hub file is the whole T5: decoder and head too
    tensors["decoder.final_layer_norm.weight"] = torch.ones(pipe.text_encoder.width)
    tensors["lm_head.weight"] = torch.zeros(pipe.text_encoder.vocab_size, pipe.text_encoder.width)
    save_file(tensors, str(t5_dir / "model.safetensors"))
    pipe.text_encoder.tokenizer.backend_tokenizer.save(str(t5_dir / "tokenizer.json"))


def test_official_layout_loads_strictly_through_from_weights(tiny: AmphionAudioLDM, tmp_path: Path, monkeypatch) -> None:
    _write_official_layout(tmp_path, tiny)
    monkeypatch.setenv("AMPHION_WEIGHTS_DIR", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    loaded = AmphionAudioLDM.from_weights("pretrained", exp_config=C.tiny_exp_config())
    assert loaded.weights_kind == "pretrained" and "AMPHION_WEIGHTS_DIR" in loaded.note
    args = dict(audio_length_in_s=0.75, num_inference_steps=STEPS, seed=11)
    np.testing.assert_allclose(loaded.generate("thunder and rain", **args), tiny.generate("thunder and rain", **args),
                               atol=1e-6)
    # auto finds the same folder
    assert AmphionAudioLDM.from_weights("auto", exp_config=C.tiny_exp_config()).weights_kind == "pretrained"
    # local_dirs per entry work too
    monkeypatch.delenv("AMPHION_WEIGHTS_DIR")
    dirs = {"unet": tmp_path / TTA_REPO_ID, "vae": tmp_path / TTA_REPO_ID, "vocoder": tmp_path / TTA_REPO_ID,
            "text_encoder": tmp_path / T5_REPO_ID}
    assert AmphionAudioLDM.from_weights("pretrained", exp_config=C.tiny_exp_config(),
                                        local_dirs=dirs).weights_kind == "pretrained"
    # a config these files were not trained with: the strict load names the mismatch
    wider = C.tiny_exp_config()
    wider["model"]["audioldm"]["model_channels"] = 64
    with pytest.raises(CheckpointError, match="UNet checkpoint step-0570000_loss-0.2521.pt does not match"):
        AmphionAudioLDM.from_weights("pretrained", local_dirs=dirs, exp_config=wider)


def test_read_state_dict_unwraps_model_and_generator(tmp_path: Path) -> None:
    sd = {"a.weight": torch.ones(2), "module.b.bias": torch.zeros(1)}
    torch.save({"model": sd, "optimizer": {"state": {}}}, tmp_path / "m.pt")
    torch.save({"generator": sd}, tmp_path / "g_00000001")
    for name in ("m.pt", "g_00000001"):
        assert sorted(read_state_dict(tmp_path / name)) == ["a.weight", "b.bias"]
    with pytest.raises(CheckpointError):
        read_state_dict(tmp_path / "missing.pt")


def test_text_encoder_loading_is_strict(tiny: AmphionAudioLDM, tmp_path: Path) -> None:
    from safetensors.torch import save_file

    config = tiny.text_encoder.model.config.to_dict()
    full = {k: v.clone().contiguous() for k, v in tiny.text_encoder.model.state_dict().items()
            if k != "shared.weight"}  # the other half of the tied pair is enough
    save_file(full, str(tmp_path / "ok.safetensors"))
    loaded = load_text_encoder(config, tmp_path / "ok.safetensors")
    ids = torch.tensor([[5, 6, 7, EOS_ID]])
    torch.testing.assert_close(loaded.encode(ids), tiny.text_encoder.encode(ids))

    missing = dict(full)
    missing.pop("encoder.final_layer_norm.weight")
    save_file(missing, str(tmp_path / "missing.safetensors"))
    with pytest.raises(CheckpointError, match="missing keys.*final_layer_norm"):
        load_text_encoder(config, tmp_path / "missing.safetensors")
    stray = dict(full, **{"encoder.extra.weight": torch.zeros(1)})
    save_file(stray, str(tmp_path / "stray.safetensors"))
    with pytest.raises(CheckpointError, match="unexpected keys.*encoder.extra.weight"):
        load_text_encoder(config, tmp_path / "stray.safetensors")


# ---------------------------------------------------------------------------------------------
# VAE key mapping


def test_vae_key_mapping_round_trip_and_names() -> None:
    cfg = C.parse_exp_config(C.tiny_exp_config()).vae
    vae = MelVAE(cfg)
    levels = len(cfg.ch_mult)
    diffusers_sd = vae.model.state_dict()
    amphion_sd = diffusers_to_amphion(diffusers_sd, levels)
    assert amphion_to_diffusers(amphion_sd, levels).keys() == diffusers_sd.keys()
    # the names Amphion's classes use, and where they land in diffusers
    expected = {
        "encoder.down.0.block.0.conv1.weight": "encoder.down_blocks.0.resnets.0.conv1.weight",
        "encoder.down.3.downsample.conv.bias": "encoder.down_blocks.3.downsamplers.0.conv.bias",
        "encoder.mid.block_2.norm2.weight": "encoder.mid_block.resnets.1.norm2.weight",
        "encoder.norm_out.bias": "encoder.conv_norm_out.bias",
        "decoder.up.4.block.1.conv2.weight": "decoder.up_blocks.0.resnets.1.conv2.weight",
        "decoder.up.1.upsample.conv.weight": "decoder.up_blocks.3.upsamplers.0.conv.weight",
        "decoder.up.0.block.0.norm1.weight": "decoder.up_blocks.4.resnets.0.norm1.weight",
        "decoder.mid.block_1.conv1.bias": "decoder.mid_block.resnets.0.conv1.bias",
        "quant_conv.weight": "quant_conv.weight",
        "post_quant_conv.bias": "post_quant_conv.bias",
    }
    for amphion_key, diffusers_key in expected.items():
        assert amphion_key in amphion_sd
        assert amphion_to_diffusers({amphion_key: torch.zeros(1)}, levels) == {diffusers_key: torch.zeros(1)}
    assert amphion_to_diffusers({"decoder.up.0.block.0.nin_shortcut.weight": torch.zeros(1)}, 5) == \
        {"decoder.up_blocks.4.resnets.0.conv_shortcut.weight": torch.zeros(1)}
    # a key Amphion's VAE does not have survives the mapping and fails the strict load
    other = MelVAE(cfg)
    with pytest.raises(CheckpointError, match="unexpected keys.*encoder.down.0.attn.0.q.weight"):
        other.load_amphion_state_dict(dict(amphion_sd, **{"encoder.down.0.attn.0.q.weight": torch.zeros(1)}))
    other.load_amphion_state_dict(amphion_sd)
    z = torch.randn(1, 4, 5, 39, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        torch.testing.assert_close(other.decode(z), vae.decode(z), rtol=0, atol=0)


def test_official_vae_keys_map_onto_diffusers() -> None:
    keys = _entry(_official_keys("tta_audioldm_amphion_vae"), "autoencoder_kl_debug")
    cfg = C.parse_exp_config(C.OFFICIAL_EXP_CONFIG).vae
    with torch.device("meta"):
        vae = MelVAE(cfg)
    mapped = amphion_to_diffusers({k: torch.empty(s, device="meta") for k, s in keys.items()}, len(cfg.ch_mult))
    assert {k: list(v.shape) for k, v in mapped.items()} == {k: list(v.shape) for k, v in vae.model.state_dict().items()}


# ---------------------------------------------------------------------------------------------
# official configurations give the official key layouts


def test_official_unet_keys() -> None:
    keys = _entry(_official_keys("tta_audioldm_amphion_unet"), "audioldm_debug_latent_size_4_5_39")
    with torch.device("meta"):
        unet = AudioLDMUNet(C.parse_exp_config(C.OFFICIAL_EXP_CONFIG).unet)
    assert {k: list(v.shape) for k, v in unet.state_dict().items()} == keys
    assert all(k.startswith("unet.") for k in keys)
    assert sum(p.numel() for p in unet.parameters()) == pytest.approx(400.1e6, rel=1e-3)


def test_official_vocoder_keys_and_config() -> None:
    keys = _entry(_official_keys("tta_audioldm_amphion_vae"), "hifigan_checkpoints")
    official = dict(C.tiny_vocoder_config(), upsample_initial_channel=512, num_mels=64)
    cfg = C.parse_vocoder_config(official)
    assert cfg.generator.n_mels == 80  # jik876 hard-codes conv_pre's 80 input channels
    with torch.device("meta"):
        voc = TTAVocoder(cfg)
    assert {k: list(v.shape) for k, v in voc.generator.state_dict().items()} == keys
    assert voc.hop_length == 256 and voc.sample_rate == 16000


def test_official_t5_keys() -> None:
    keys = _entry(_official_keys("tta_audioldm_amphion_unet"), "t5-base")
    from models.audioldm.text_encoder import build_t5_encoder

    with torch.device("meta"):
        model = build_t5_encoder(C.OFFICIAL_T5_REPO_CONFIG)
    assert {k: list(v.shape) for k, v in model.state_dict().items()} == keys


def test_official_table() -> None:
    assert OFFICIAL["unet"].repo_id == OFFICIAL["vae"].repo_id == OFFICIAL["vocoder"].repo_id == "amphion/text_to_audio"
    assert OFFICIAL["text_encoder"].repo_id == "google-t5/t5-base"
    assert UNET_FILE.startswith("tta/audioldm_debug_latent_size_4_5_39/")
    exp = C.parse_exp_config(C.OFFICIAL_EXP_CONFIG)
    assert exp.vae.latent_size == (5, 39) and exp.vae.mel_size == (80, 624)
    assert exp.unet.context_dim == C.OFFICIAL_T5_REPO_CONFIG["d_model"]


def test_exp_config_parsing_errors() -> None:
    with pytest.raises(C.ConfigError):
        C.parse_exp_config({"model": {}})
    raw = C.tiny_exp_config()
    raw["model"]["audioldm"]["use_spatial_transformer"] = False
    with pytest.raises(C.ConfigError, match="use_spatial_transformer"):
        C.parse_exp_config(raw)
    raw = C.tiny_exp_config()
    raw["model"]["autoencoderkl"]["double_z"] = False
    with pytest.raises(C.ConfigError, match="double_z"):
        C.parse_exp_config(raw)
    # json5 with comments, as Amphion writes its exp_config files
    from models.core.configs import loads_lenient

    text = json.dumps(C.OFFICIAL_EXP_CONFIG).replace('"model": {', '"model": { // the model\n', 1)
    assert C.parse_exp_config(loads_lenient(text)).unet.model_channels == 256
