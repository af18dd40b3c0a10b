"""PicoAudio: the timestamp front end, the CLAP key mapping, the official file layout and the tiny
pipeline end to end. (The reference's numbers: tests/parity_adapters/picoaudio.py.)"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from models.core.checkpoints import CheckpointError
from models.core.weight_norm import WeightNormConv
from models.picoaudio import (
    EVENT_CLASSES,
    MAX_SECONDS,
    PicoAudioInputError,
    PicoAudioPipeline,
    TimedEvent,
    TimestampError,
    UnknownEventError,
    decode_timestamps,
    events,
    onset_matrix,
    parse_text,
)
from models.picoaudio import configs as C
from models.picoaudio.clap import ClapTextEncoder, build_clap_text_model, laion_text_state_dict, tiny_tokenizer
from models.picoaudio.clap import _tiny_bpe
from models.picoaudio.decoder import ldm_vae_to_diffusers, split_vae_checkpoint
from models.picoaudio.diffusion import ddpm_step, make_scheduler, unet_state_dict
from models.picoaudio.official import (
    CLAP_FILE,
    DIFFUSION_FILE,
    OFFICIAL_FILES,
    TOKENIZER_FILES,
    VAE_CONFIG_FILE,
    VAE_FILE,
)

PARITY = Path(__file__).resolve().parents[1].parent / "shared" / "parity"


def row(name: str) -> int:
    return EVENT_CLASSES.index(name)


# ---------------------------------------------------------------------------------------------
# events and timestamps


def test_event_classes_are_the_references():
    assert events() == EVENT_CLASSES and len(EVENT_CLASSES) == 18
    assert EVENT_CLASSES[0] == "burping_belching" and EVENT_CLASSES[4] == "dog_barking"
    assert EVENT_CLASSES[16:] == ("duck_quacking", "whistling")


def test_structured_form_with_spaces_or_underscores():
    want = [TimedEvent("dog_barking", ((0.5, 2.0), (4.0, 5.0))), TimedEvent("cat_meowing", ((6.0, 7.5),))]
    assert parse_text("dog barking__0.5-2.0_4.0-5.0--cat meowing__6.0-7.5") == want
    assert parse_text("dog_barking__0.5-2.0_4.0-5.0--Cat_Meowing__6.0-7.5") == want
    # a repeated event merges; a segment without times spans the clip
    assert parse_text("dog_barking__1-2--whistling--dog_barking__3-4") == [
        TimedEvent("dog_barking", ((1.0, 2.0), (3.0, 4.0))), TimedEvent("whistling", ())]


def test_structured_onsets_equal_the_reference_decoder():
    for text in ("cat_meowing__0.5-2.0_3.0-4.5--whistling__5.0-6.5--explosion__7.0-8.0_8.5-9.5",
                 "dog_barking__0.0-1.23", "door_knocking__1.111-2.999_3.0-3.2--woman_laughing__4.0-10.2",
                 "sneeze__0.3-0.7_0.2-0.28"):
        matrix, event_string = decode_timestamps(text)
        found = parse_text(text)
        assert np.array_equal(onset_matrix(found), matrix), text
        assert " and ".join(e.name for e in found) == event_string


def test_reference_decoder_quirks():
    matrix, text = decode_timestamps("door_knocking__1.111-2.999_9.9-10.5_3.0-3.2")
    r = matrix[row("door_knocking")]
    assert text == "door_knocking"
    assert r[27:74].all() and not r[:27].any() and not r[74:].any()  # int(t*25): 27.775 -> 27, 74.975 -> 74
    # 10.5 s is frame 262 > 255: that interval and every later one of the event are dropped
    assert not r[75:].any()
    assert matrix.dtype == np.float32 and matrix.shape == (32, 256)
    with pytest.raises(UnknownEventError):
        decode_timestamps("rain__1-2")
    with pytest.raises(TimestampError):
        decode_timestamps("dog_barking__1")


def test_caption_form():
    found = parse_text("a dog barks at 0.5-2.0 and 4-5 seconds, a cat meows at 6-7.5")
    assert found == [TimedEvent("dog_barking", ((0.5, 2.0), (4.0, 5.0))), TimedEvent("cat_meowing", ((6.0, 7.5),))]
    assert parse_text("From 1 to 2.5 s a door slams; a woman laughs from 3s to 4s") == [
        TimedEvent("door_slamming", ((1.0, 2.5),)), TimedEvent("woman_laughing", ((3.0, 4.0),))]
    assert parse_text("Gunshot at 2-3, then an explosion at 5–6.5") == [
        TimedEvent("gunshot", ((2.0, 3.0),)), TimedEvent("explosion", ((5.0, 6.5),))]


def test_event_without_times_spans_the_whole_clip():
    found = parse_text("a dog barks at 1-2 while a duck quacks")
    assert found[1] == TimedEvent("duck_quacking", ())
    matrix = onset_matrix(found, duration=4.0)
    assert matrix[row("duck_quacking"), :100].all() and not matrix[row("duck_quacking"), 100:].any()
    full = onset_matrix(parse_text("whistling"), duration=MAX_SECONDS)
    assert full[row("whistling")].all() and full.sum() == 256


def test_unknown_events_list_the_classes():
    for text in ("Sound of rain falling", "wind__1-2", "thunder at 1-2"):
        with pytest.raises(UnknownEventError) as err:
            parse_text(text)
        assert all(name in str(err.value) for name in EVENT_CLASSES)
        assert err.value.known == EVENT_CLASSES
        assert isinstance(err.value, PicoAudioInputError)


@pytest.mark.parametrize(("text", "duration", "match"), [
    ("a dog barks 3 times", 10.0, "not a time range"),
    ("a dog barks at 4-3", 10.0, "start < end"),
    ("a dog barks at 9-11", 10.0, "10.24"),
    ("a dog barks at 4-5", 3.0, "starts after the end of the clip"),
    ("a dog barks at 1-1.01", 10.0, "shorter than one onset frame"),
    ("", 10.0, "empty"),
])
def test_bad_times_are_input_errors(text, duration, match):
    with pytest.raises(PicoAudioInputError, match=match):
        PicoAudioPipeline.parse(text, duration)


# ---------------------------------------------------------------------------------------------
# the sampler's step equals diffusers'


def test_ddpm_step_matches_diffusers():
    scheduler = make_scheduler()
    scheduler.set_timesteps(7)
    x = torch.randn(2, 8, 16, 4, generator=torch.Generator().manual_seed(0))
    v = torch.randn(2, 8, 16, 4, generator=torch.Generator().manual_seed(1))
    for t in scheduler.timesteps:
        want = scheduler.step(v, t, x, generator=torch.Generator().manual_seed(int(t))).prev_sample
        noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(int(t)))
        assert torch.equal(ddpm_step(scheduler, v, t, x, noise), want)


# ---------------------------------------------------------------------------------------------
# CLAP: LAION layout -> transformers


def _laion_text_tower(config: dict, seed: int) -> tuple[nn.Module, nn.Module]:
    """What laion_clap builds for its text branch: transformers' RobertaModel (with pooler) and a
    Linear-ReLU-Linear projection."""
    from transformers import RobertaConfig, RobertaModel

    torch.manual_seed(seed)
    roberta = RobertaModel(RobertaConfig(**{k: v for k, v in config.items() if k not in (
        "projection_dim", "projection_hidden_act")})).eval()
    projection = nn.Sequential(nn.Linear(config["hidden_size"], config["projection_dim"]), nn.ReLU(),
                               nn.Linear(config["projection_dim"], config["projection_dim"])).eval()
    return roberta, projection


def _laion_state_dict(roberta: nn.Module, projection: nn.Module, *, prefix: str = "module.") -> dict:
    sd = {f"{prefix}text_branch.{k}": v.clone() for k, v in roberta.state_dict().items()}
    sd[f"{prefix}text_branch.embeddings.position_ids"] = torch.arange(roberta.config.max_position_embeddings)[None]
    sd.update({f"{prefix}text_projection.{k}": v.clone() for k, v in projection.state_dict().items()})
    # the rest of a LAION-CLAP checkpoint: skipped
    sd.update({f"{prefix}audio_branch.spectrogram_extractor.stft.conv_real.weight": torch.zeros(3, 1, 4),
               f"{prefix}audio_projection.0.weight": torch.zeros(2, 2),
               f"{prefix}text_transform.sequential.0.weight": torch.zeros(2, 2),
               f"{prefix}logit_scale_a": torch.tensor(1.0), f"{prefix}logit_scale_t": torch.tensor(1.0)})
    return sd


def test_clap_mapping_gives_laions_text_embedding():
    config = C.TINY_CLAP_TEXT_CONFIG
    roberta, projection = _laion_text_tower(config, seed=3)
    from models.core.checkpoints import strip_prefixes

    encoder = ClapTextEncoder(build_clap_text_model(config).eval(), tiny_tokenizer(config["vocab_size"]))
    encoder.load_laion(strip_prefixes(_laion_state_dict(roberta, projection)))
    texts = ["dog_barking and cat_meowing", "", "whistling"]
    tokens = encoder.tokenizer(texts, padding="max_length", truncation=True, max_length=77, return_tensors="pt")
    assert tokens["input_ids"].shape == (3, 77)
    with torch.inference_mode():
        pooled = roberta(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"]).pooler_output
        direct = F.normalize(projection(pooled), dim=-1)
    got = encoder(texts)
    assert got.shape == (3, config["projection_dim"])
    torch.testing.assert_close(got, direct, rtol=0, atol=1e-6)


def test_clap_mapping_is_strict():
    roberta, projection = _laion_text_tower(C.TINY_CLAP_TEXT_CONFIG, seed=0)
    sd = _laion_state_dict(roberta, projection, prefix="")
    with pytest.raises(CheckpointError, match="outside the LAION-CLAP layout"):
        laion_text_state_dict({**sd, "text_head.weight": torch.zeros(1)})
    encoder = ClapTextEncoder(build_clap_text_model(C.TINY_CLAP_TEXT_CONFIG), tiny_tokenizer(320))
    missing = {k: v for k, v in sd.items() if "pooler" not in k}
    with pytest.raises(CheckpointError, match="missing keys"):
        encoder.load_laion(missing)
    # laion_clap.CLAP_Module's own state dict nests everything under "model."
    encoder.load_laion({f"model.{k}": v for k, v in sd.items()})


def test_clap_layout_at_official_size():
    """RoBERTa-base + 768->512->512 projection (LAION's layout) maps onto transformers' official-size
    CLAP text model key for key and shape for shape."""
    from transformers import RobertaConfig, RobertaModel

    cfg = C.OFFICIAL_CLAP_TEXT_CONFIG
    with torch.device("meta"):
        roberta = RobertaModel(RobertaConfig(**{k: v for k, v in cfg.items() if not k.startswith("projection")}))
        projection = nn.Sequential(nn.Linear(768, 512), nn.ReLU(), nn.Linear(512, 512))
        ours = build_clap_text_model(cfg)
    laion = {f"text_branch.{k}": v for k, v in roberta.state_dict().items()}
    laion.update({f"text_projection.{k}": v for k, v in projection.state_dict().items()})
    mapped = {k: tuple(v.shape) for k, v in laion_text_state_dict(laion).items()}
    own = {k: tuple(v.shape) for k, v in ours.state_dict().items()
           if not k.endswith(("position_ids", "token_type_ids"))}
    assert mapped == own


def test_tiny_tokenizer_is_made_offline_and_deterministic():
    a, b = _tiny_bpe(["dog_barking and cat_meowing"], 10), _tiny_bpe(["dog_barking and cat_meowing"], 10)
    assert a == b
    tok = tiny_tokenizer(C.TINY_CLAP_TEXT_CONFIG["vocab_size"])
    assert len(tok) <= C.TINY_CLAP_TEXT_CONFIG["vocab_size"]
    ids = tok("rain on a tin roof")["input_ids"]
    assert ids[0] == 0 and ids[-1] == 2 and 3 not in ids  # byte-level: no <unk>


# ---------------------------------------------------------------------------------------------
# the official layout at official size (key names and shapes from the fixtures' official_keys.json)


def _official_keys(folder: str) -> dict[str, list[int]]:
    path = PARITY / folder / "official_keys.json"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    return next(iter(json.loads(path.read_text()).values()))


def test_official_diffusion_layout_maps_onto_the_unet():
    from diffusers import UNet2DConditionModel

    keys = _official_keys("tta_picoaudio_diffusion")
    with torch.device("meta"):
        unet = UNet2DConditionModel.from_config(C.parse_unet_config(C.OFFICIAL_UNET_CONFIG))
        mapped = unet_state_dict({k: torch.empty(s) for k, s in keys.items()})
    assert {k: tuple(v.shape) for k, v in mapped.items()} == {k: tuple(v.shape) for k, v in unet.state_dict().items()}


def test_official_vae_layout_maps_onto_diffusers_and_the_vocoder():
    from diffusers import AutoencoderKL

    from models.core.checkpoints import adapt_weight_norm_keys
    from models.vocoders.hifigan import HiFiGANGenerator

    keys = _official_keys("tta_picoaudio_vae")
    official_vae = {**C.TINY_VAE_CONFIG, "ddconfig": {**C.TINY_VAE_CONFIG["ddconfig"], "ch": 128, "ch_mult": [1, 2, 4],
                                                       "num_res_blocks": 2}}
    with torch.device("meta"):
        vae = AutoencoderKL(**C.parse_vae_config(official_vae).diffusers_kwargs())
        vocoder = HiFiGANGenerator(C.parse_vocoder(C.OFFICIAL_VOCODER_CONFIG).generator)
        vae_sd, vocoder_sd = split_vae_checkpoint({k: torch.empty(s) for k, s in keys.items()})
        mapped = ldm_vae_to_diffusers(vae_sd, 3)
        vocoder_sd = adapt_weight_norm_keys(vocoder, vocoder_sd)
    assert {k: tuple(v.shape) for k, v in mapped.items()} == {k: tuple(v.shape) for k, v in vae.state_dict().items()}
    assert {k: tuple(v.shape) for k, v in vocoder_sd.items()} == {
        k: tuple(v.shape) for k, v in vocoder.state_dict().items()}


# ---------------------------------------------------------------------------------------------
# the official file layout, small, loaded through the product loader


_LDM_FROM_DIFFUSERS = [
    (r"^(encoder|decoder)\.mid_block\.resnets\.(\d)\.", lambda m: f"{m[1]}.mid.block_{int(m[2]) + 1}."),
    (r"^(encoder|decoder)\.mid_block\.attentions\.0\.(group_norm|to_q|to_k|to_v|to_out\.0)\.",
     lambda m: f"{m[1]}.mid.attn_1." + {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v",
                                         "to_out.0": "proj_out"}[m[2]] + "."),
    (r"^encoder\.down_blocks\.(\d+)\.resnets\.(\d+)\.", lambda m: f"encoder.down.{m[1]}.block.{m[2]}."),
    (r"^encoder\.down_blocks\.(\d+)\.downsamplers\.0\.", lambda m: f"encoder.down.{m[1]}.downsample."),
    (r"^decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\.", lambda m: f"decoder.up.{2 - int(m[1])}.block.{m[2]}."),
    (r"^decoder\.up_blocks\.(\d+)\.upsamplers\.0\.", lambda m: f"decoder.up.{2 - int(m[1])}.upsample."),
    (r"\.conv_shortcut\.", lambda m: ".nin_shortcut."),
    (r"\.conv_norm_out\.", lambda m: ".norm_out."),
]


def _to_ldm(sd: dict) -> dict:
    """A diffusers AutoencoderKL state dict written the way AudioLDM's LDM AutoencoderKL names it
    (3 levels), attention projections as 1x1 convs."""
    out = {}
    for key, value in sd.items():
        new = key
        for pattern, repl in _LDM_FROM_DIFFUSERS:
            new = re.sub(pattern, repl, new)
        if ".mid.attn_1." in new and new.endswith(".weight") and value.ndim == 2:
            value = value[:, :, None, None]
        out[new] = value.clone()
    return out


def _plain_vocoder_state(vocoder: nn.Module) -> dict:
    """The vocoder as AudioLDM saves it: weight norm removed (plain ``weight``)."""
    out = {}
    for name, module in vocoder.named_modules():
        if isinstance(module, WeightNormConv):
            out[f"vocoder.{name}.weight"] = module.weight.detach().clone()
            out[f"vocoder.{name}.bias"] = module.bias.detach().clone()
    return out


@pytest.fixture(scope="module")
def tiny():
    return PicoAudioPipeline.from_weights("tiny")


@pytest.fixture(scope="module")
def official_folder(tmp_path_factory, tiny):
    """A folder laid out like the amphion/PicoAudio Space (tiny sizes), written from the tiny
    pipeline's weights, and one with roberta-style tokenizer files."""
    root = tmp_path_factory.mktemp("picoaudio")
    (root / DIFFUSION_FILE).parent.mkdir(parents=True)
    (root / VAE_FILE).parent.mkdir(parents=True)
    (root / CLAP_FILE).parent.mkdir(parents=True)
    diffusion = {f"unet.{k}": v.clone() for k, v in tiny.unet.state_dict().items()}
    diffusion["class_emb.weight"] = torch.zeros(24, 1024)
    torch.save(diffusion, root / DIFFUSION_FILE)
    torch.save({**_to_ldm(tiny.decoder.vae.state_dict()), **_plain_vocoder_state(tiny.decoder.vocoder)},
               root / VAE_FILE)
    (root / VAE_CONFIG_FILE).write_text(json.dumps(C.TINY_VAE_CONFIG))
    clap = {}
    for key, value in tiny.clap.model.state_dict().items():
        if key.endswith(("position_ids", "token_type_ids")):
            continue
        key = key.replace("text_model.", "text_branch.").replace("linear1.", "0.").replace("linear2.", "2.")
        clap[f"module.{key}"] = value.clone()
    clap["module.text_branch.embeddings.position_ids"] = torch.arange(80)[None]
    clap["module.logit_scale_a"] = torch.tensor(2.0)
    # LAION's files keep training metadata (numpy scalars) next to the state dict
    torch.save({"epoch": 45, "name": "630k-audioset", "best": np.float64(0.5), "state_dict": clap}, root / CLAP_FILE)
    tokenizer_dir = tmp_path_factory.mktemp("roberta")
    vocab, merges = _tiny_bpe([" and ".join(EVENT_CLASSES), " ".join(n.replace("_", " ") for n in EVENT_CLASSES)],
                              C.TINY_CLAP_TEXT_CONFIG["vocab_size"] - 261)
    (tokenizer_dir / TOKENIZER_FILES[0]).write_text(json.dumps(vocab))
    (tokenizer_dir / TOKENIZER_FILES[1]).write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))
    return root, tokenizer_dir


def _load(root, tokenizer_dir):
    return PicoAudioPipeline.from_official_folder(root, tokenizer_dir, unet_config=C.TINY_UNET_CONFIG,
                                                  clap_config=C.TINY_CLAP_TEXT_CONFIG,
                                                  vocoder_config=C.TINY_VOCODER_CONFIG)


def test_official_layout_loads_strictly(official_folder, tiny):
    root, tokenizer_dir = official_folder
    loaded = _load(root, tokenizer_dir)
    assert loaded.weights_kind == "pretrained"
    for mine, theirs in ((loaded.unet, tiny.unet), (loaded.clap.model, tiny.clap.model), (loaded.decoder.vae,
                                                                                          tiny.decoder.vae)):
        a, b = mine.state_dict(), theirs.state_dict()
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    torch.testing.assert_close(loaded.clap(["dog_barking"]), tiny.clap(["dog_barking"]), rtol=0, atol=0)
    mel = torch.randn(1, 1, 24, 64, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(loaded.decoder.vocode(mel), tiny.decoder.vocode(mel), rtol=0, atol=1e-6)
    text = dict(text="dog_barking__0.5-1.0", duration=1.0, num_inference_steps=2, seed=3)
    np.testing.assert_allclose(loaded.generate(**text), tiny.generate(**text), rtol=0, atol=1e-5)


def test_official_layout_refuses_other_keys(official_folder, tmp_path):
    root, tokenizer_dir = official_folder
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(root, broken)
    sd = torch.load(broken / DIFFUSION_FILE, weights_only=True)
    sd["unet.extra.weight"] = torch.zeros(1)
    torch.save(sd, broken / DIFFUSION_FILE)
    with pytest.raises(CheckpointError, match="extra.weight"):
        _load(broken, tokenizer_dir)
    shutil.copy(root / DIFFUSION_FILE, broken / DIFFUSION_FILE)
    sd = torch.load(broken / VAE_FILE, weights_only=True)
    sd.pop("decoder.mid.attn_1.q.weight")
    torch.save(sd, broken / VAE_FILE)
    with pytest.raises(CheckpointError, match="missing keys"):
        _load(broken, tokenizer_dir)


def test_pretrained_without_files_is_unavailable(tmp_path, monkeypatch):
    from models.weights import WeightsUnavailable

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(WeightsUnavailable):
        PicoAudioPipeline.from_weights("pretrained", local_dirs={"picoaudio": tmp_path, "tokenizer": tmp_path})
    assert set(OFFICIAL_FILES) == {"picoaudio", "tokenizer"}
    # auto never downloads and never mixes: a missing file makes the whole pipeline tiny
    fallback = PicoAudioPipeline.from_weights("auto", local_dirs={"picoaudio": tmp_path, "tokenizer": tmp_path})
    assert fallback.weights_kind == "tiny" and "amphion/PicoAudio" in fallback.note


# ---------------------------------------------------------------------------------------------
# the tiny pipeline end to end


def test_tiny_pipeline_generates_exact_length_reproducibly(tiny):
    steps = []
    args = dict(duration=1.234, num_inference_steps=3, guidance_scale=3.0, seed=11)
    audio = tiny.generate("a dog barks at 0.2-0.8, a cat meows", on_step=lambda s, n: steps.append((s, n)), **args)
    assert audio.dtype == np.float32 and audio.shape == (round(1.234 * 16000),)
    assert np.isfinite(audio).all() and np.abs(audio).max() <= 1.0 and np.abs(audio).max() > 0
    assert steps == [(1, 3), (2, 3), (3, 3)]
    assert np.array_equal(tiny.generate("a dog barks at 0.2-0.8, a cat meows", **args), audio)
    assert not np.array_equal(tiny.generate("a dog barks at 0.2-0.8, a cat meows", **{**args, "seed": 12}), audio)
    longest = tiny.generate("whistling", duration=MAX_SECONDS, num_inference_steps=1, guidance_scale=1.0, seed=0)
    assert longest.shape == (163840,)
    assert tiny.sample_rate == 16000 and tiny.max_seconds == MAX_SECONDS and tiny.events() == EVENT_CLASSES


@pytest.mark.parametrize(("kwargs", "match"), [
    (dict(duration=10.5), "at most 10.24"),
    (dict(duration=0), "positive"),
    (dict(num_inference_steps=0), "num_inference_steps"),
    (dict(guidance_scale=float("nan")), "guidance_scale"),
    (dict(seed=-1), "seed"),
])
def test_bad_settings_are_input_errors(tiny, kwargs, match):
    with pytest.raises(PicoAudioInputError, match=match):
        tiny.generate("a dog barks", **kwargs)


# ---------------------------------------------------------------------------------------------
# batches: every item gets what it gets alone

#: (text, duration, guidance, seed): different events, lengths, seeds, and a mix of guided (> 1) and
#: unguided items, so that the batch's unconditional rows are not one per item.
BATCH = [("a dog barks at 0.2-0.8, a cat meows", 1.234, 3.0, 11),
         ("whistling__0.1-0.5--explosion__1.0-1.5", 2.0, 1.0, 5),
         ("a door slams at 0.3-0.9", 0.75, 2.5, 7)]


def _worst_relative_difference(a: np.ndarray, b: np.ndarray) -> float:
    assert a.shape == b.shape
    return float(np.abs(a - b).max() / np.abs(a).max())


def test_a_batch_gives_each_item_what_it_gets_alone(tiny):
    steps = 3
    alone = [tiny.generate(text, duration=d, guidance_scale=g, seed=s, num_inference_steps=steps)
             for text, d, g, s in BATCH]
    reported = []
    together = tiny.generate([b[0] for b in BATCH], duration=[b[1] for b in BATCH],
                             guidance_scale=[b[2] for b in BATCH], seed=[b[3] for b in BATCH],
                             num_inference_steps=steps, on_step=lambda s, n: reported.append((s, n)))
    assert isinstance(together, list) and len(together) == len(BATCH)
    assert reported == [(1, steps), (2, steps), (3, steps)]  # each step once for the whole batch
    worst = 0.0
    for (_, d, _, _), a, b in zip(BATCH, alone, together):
        assert b.dtype == np.float32 and b.shape == (round(d * 16000),)
        worst = max(worst, _worst_relative_difference(a, b))
    # measured: 1.5e-7 of the peak on CPU (one float32 rounding in the UNet's batched kernels)
    assert worst <= 1e-5, worst
    assert not np.allclose(together[0][:12000], together[2][:12000])
    # the order in the batch does not matter either
    backwards = tiny.generate([b[0] for b in BATCH][::-1], duration=[b[1] for b in BATCH][::-1],
                              guidance_scale=[b[2] for b in BATCH][::-1], seed=[b[3] for b in BATCH][::-1],
                              num_inference_steps=steps)
    for a, b in zip(alone, backwards[::-1]):
        assert _worst_relative_difference(a, b) <= 1e-5


def test_a_batch_takes_one_value_for_all_or_one_per_item(tiny):
    args = dict(duration=0.5, num_inference_steps=1, guidance_scale=2.0, seed=3)
    pair = tiny.generate(["whistling", "whistling"], **args)
    assert len(pair) == 2 and np.array_equal(pair[0], pair[1])  # same settings and seed: the same audio
    one = tiny.generate(["whistling"], **args)
    assert isinstance(one, list) and _worst_relative_difference(tiny.generate("whistling", **args), one[0]) <= 1e-5
    items, steps = tiny.check(["a dog barks at 1-2", "whistling"], duration=[3.0, None], seed=[4, None],
                              num_inference_steps=7)
    assert steps == 7 and [i.duration for i in items] == [3.0, 10.0] and items[0].seed == 4
    assert isinstance(items[1].seed, int) and items[0].event_string == "dog_barking"
    assert items[1].guidance_scale == 3.0 and items[0].samples == 48000


@pytest.mark.parametrize(("text", "kwargs", "match"), [
    (["whistling", "whistling"], dict(seed=[1]), "seed: got 1 values for 2 texts"),
    (["whistling"], dict(duration=(1.0, 2.0)), "duration: got 2 values for 1 texts"),
    ([], {}, "no text given"),
    (b"whistling", {}, "text must be a string or a list of strings"),
    (["whistling", "a spaceship hums"], {}, "no event PicoAudio can generate"),
    (["whistling", "whistling"], dict(duration=[1.0, 11.0]), "at most 10.24"),
])
def test_one_bad_item_refuses_the_call_before_any_model_runs(tiny, text, kwargs, match):
    reported = []
    with pytest.raises(PicoAudioInputError, match=match):
        tiny.generate(text, num_inference_steps=1, on_step=lambda s, n: reported.append(s), **kwargs)
    assert reported == []


# ---------------------------------------------------------------------------------------------
# the served entry (deployments.tta.PicoAudioService, without Ray)


class _Events:
    def __init__(self):
        self.events: list[dict] = []

    def publish(self, event: dict) -> None:
        self.events.append(event)


@pytest.fixture(scope="module")
def service():
    from deployments.tta import PicoAudioService

    return PicoAudioService(weights="tiny", store=_Events())


def _request(text: str, seed: int, steps: int = 3, **extra) -> dict:
    return {"text": text, "duration": 1.0, "num_inference_steps": steps, "seed": seed, "subtype": "FLOAT",
            "task_id": f"task-{seed}", **extra}


def _samples(result: dict) -> np.ndarray:
    import io

    import soundfile as sf

    return sf.read(io.BytesIO(result["wav"]), dtype="float32")[0]


def test_service_batch_refuses_bad_items_alone_and_groups_by_step_count(service):
    import asyncio

    service.store.events.clear()
    requests = [_request("a dog barks at 0.2-0.8", 1), _request("a spaceship hums", 2),
                _request("whistling__0.1-0.5", 3, duration=0.5, guidance_scale=1.0),
                _request("a cat meows at 0.1-0.4", 4, steps=2), _request("whistling", 5, duration=12.0)]
    results = asyncio.run(service._generate_batch.__wrapped__(service, requests))
    assert "no event" in results[1]["error"] and "dog_barking" in results[1]["error"]  # the classes listed
    assert "at most 10.24" in results[4]["error"]
    assert [r.get("batch_size") for r in results] == [2, None, 2, 1, None]
    assert [len(_samples(results[i])) for i in (0, 2, 3)] == [16000, 8000, 16000]
    for i in (0, 2, 3):
        alone = service._run([requests[i]])[0]
        assert alone["batch_size"] == 1
        assert _worst_relative_difference(_samples(alone), _samples(results[i])) <= 1e-5
    # progress: every step once for each request of a batch, none for a refused one
    by_task: dict[str, list] = {}
    for event in service.store.events:
        by_task.setdefault(event["task_id"], []).append((event["step"], event["total_steps"]))
    assert "task-2" not in by_task and "task-5" not in by_task
    assert by_task["task-1"][:3] == by_task["task-3"][:3] == [(1, 3), (2, 3), (3, 3)]
    assert by_task["task-4"][:2] == [(1, 2), (2, 2)]


def test_service_outside_serve_runs_one_at_a_time(service):
    import asyncio

    from deployments.errors import InvalidModelInput

    assert service.batched is False  # no Serve replica here: no @serve.batch
    out = asyncio.run(service.generate(_request("whistling__0.1-0.5", 6, steps=1)))
    assert out["batch_size"] == 1 and len(_samples(out)) == 16000 and out["weights"] == "tiny"
    with pytest.raises(InvalidModelInput, match="seed"):
        asyncio.run(service.generate(_request("whistling", -1, steps=1)))
    with pytest.raises(InvalidModelInput, match="text"):
        asyncio.run(service.generate({"duration": 1.0}))


def test_service_reconfigure_sets_the_batching_knobs(service):
    from deployments.tta import DEFAULT_BATCH_WAIT_S, DEFAULT_MAX_BATCH_SIZE

    batch = service._generate_batch
    try:
        service.reconfigure({"max_batch_size": 8, "batch_wait_timeout_s": 0.05})
        assert batch._get_max_batch_size() == 8 and batch._get_batch_wait_timeout_s() == 0.05
    finally:
        service.reconfigure({"max_batch_size": DEFAULT_MAX_BATCH_SIZE, "batch_wait_timeout_s": DEFAULT_BATCH_WAIT_S})


def test_laion_checkpoint_with_numpy_metadata_reads(tmp_path):
    """LAION's files were written with numpy 1.x: their scalars pickle as numpy.core.multiarray.scalar."""
    import zipfile

    from models.picoaudio.clap import read_laion_checkpoint

    modern = tmp_path / "modern.pt"
    torch.save({"epoch": np.int64(45), "best": np.float64(0.5),
                "state_dict": {"module.text_branch.pooler.dense.bias": torch.ones(3)}}, modern)
    legacy = tmp_path / "legacy.pt"
    with zipfile.ZipFile(modern) as src, zipfile.ZipFile(legacy, "w", zipfile.ZIP_STORED) as out:
        for info in src.infolist():
            data = src.read(info.filename)
            if info.filename.endswith("data.pkl"):
                data = data.replace(b"numpy._core.multiarray\nscalar", b"numpy.core.multiarray\nscalar")
            out.writestr(info, data)
    assert "numpy.core.multiarray.scalar" in torch.serialization.get_unsafe_globals_in_checkpoint(legacy)
    for path in (modern, legacy):
        assert list(read_laion_checkpoint(path)) == ["text_branch.pooler.dense.bias"]
