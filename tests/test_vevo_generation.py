"""Unit tests of the Vevo / Vevo1.5 AR and flow-matching transformers (tiny builds, CPU).

Numerical parity with the reference is checked by tests/test_parity.py (folders vevo_ar, vevo_fmt,
vevosing_fmt); this file covers what the fixtures do not: the official key layout at full size,
loading files laid out like the official repos through ``models.weights``, config parsing, the KV
cache against a full forward, seeding, progress callbacks, limits and the Vevo1.5 AR layout.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from models.blocks.diff_llama import CheckpointKeyError
from models.core.checkpoints import CheckpointError
from models.vevo.ar_transformer import (
    ARStep,
    ContentStyleAR,
    SamplingConfig,
    build_ar_model,
    inverse_cdf_sample,
    load_ar_model,
)
from models.vevo.flow_matching import FlowStep, VevoFlowMatching, build_fm_model, load_fm_model
from models.vevo.fm_ar_configs import (
    OFFICIAL_CHECKPOINTS,
    FMConfig,
    VevoARConfig,
    VevoConfigError,
    VevoSingARConfig,
    parse_ar_config,
    parse_fm_config,
    read_config_file,
    tiny_vevo_ar_config,
    tiny_vevo_fm_config,
    tiny_vevosing_ar_config,
    tiny_vevosing_fm_config,
)
from models.vevosing.flow_matching import (
    VevoSingFlowMatching,
    build_vevosing_fm_model,
    load_vevosing_fm_model,
)
from models.weights import HubFiles, resolve

REPO_ROOT = Path(__file__).resolve().parents[1]
PARITY_DIR = Path(os.environ.get("AMPHION_PARITY_DIR") or REPO_ROOT.parent / "shared" / "parity")


@pytest.fixture(scope="module")
def ar() -> ContentStyleAR:
    return build_ar_model(tiny_vevo_ar_config("Vq32ToVq8192"), seed=1)


@pytest.fixture(scope="module")
def fm() -> VevoFlowMatching:
    return build_fm_model(tiny_vevo_fm_config(), seed=2)


@pytest.fixture(scope="module")
def sing_fm() -> VevoSingFlowMatching:
    return build_vevosing_fm_model(tiny_vevosing_fm_config(), seed=3)


def _ar_inputs(n_in: int = 12, n_prompt: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    vq32 = torch.randint(0, 32, (1, n_in), generator=g) + tiny_vevo_ar_config().vc_input_ids_offset
    prompt = torch.randint(0, 8192, (1, n_prompt), generator=g)
    return vq32, prompt


def _build(name: str, device: str = "meta") -> torch.nn.Module:
    config = OFFICIAL_CHECKPOINTS[name].config
    with torch.device(device):
        if isinstance(config, (VevoARConfig, VevoSingARConfig)):
            return ContentStyleAR(config)
        return VevoSingFlowMatching(config) if config.family == "vevosing" else VevoFlowMatching(config)


# ---------------------------------------------------------------------------------------------
# Official layout and loading
# ---------------------------------------------------------------------------------------------


def _official_key_files() -> list:
    params = []
    for folder in ("vevo_ar", "vevo_fmt", "vevosing_fmt"):
        path = PARITY_DIR / folder / "official_keys.json"
        if not path.is_file():
            params.append(pytest.param(None, None, marks=pytest.mark.skip(reason=f"{path} not found"), id=folder))
            continue
        for weights_file, entry in json.loads(path.read_text())["files"].items():
            params.append(pytest.param(weights_file, entry, id=weights_file))
    return params


@pytest.mark.parametrize(("weights_file", "entry"), _official_key_files())
def test_official_size_keys_and_shapes(weights_file, entry):
    names = [n for n, c in OFFICIAL_CHECKPOINTS.items() if c.weights_file == weights_file]
    assert names, f"{weights_file} is not in OFFICIAL_CHECKPOINTS"
    model = _build(names[0])
    got = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert got == entry["keys"]
    assert sum(v.numel() for v in model.state_dict().values()) == entry["elements"]


def test_vevosing_ar_official_size():
    # No fixture lists its keys: same key layout as Vevo's AR, 776.7 M parameters (research note).
    model = _build("ar_emilia101k_singnet7k")
    sd = model.state_dict()
    assert sd["model.model.embed_tokens.weight"].shape == (16384 + 512 + 1024 + 20, 1920)
    assert sd["model.lm_head.weight"].shape == (17940, 1920)
    assert sum(v.numel() for v in sd.values()) == 776_726_400
    vevo_keys = set(_build("PhoneToVq8192").state_dict())
    assert set(sd) == vevo_keys


@pytest.mark.parametrize("name, tiny, loader", [
    ("Vq32ToVq8192", lambda: tiny_vevo_ar_config("Vq32ToVq8192"), load_ar_model),
    ("PhoneToVq8192", lambda: tiny_vevo_ar_config("PhoneToVq8192"), load_ar_model),
    ("ar_emilia101k_singnet7k", tiny_vevosing_ar_config, load_ar_model),
    ("Vq8192ToMels", tiny_vevo_fm_config, load_fm_model),
    ("fm_emilia101k_sing0.4k", tiny_vevosing_fm_config, load_vevosing_fm_model),
])
def test_tiny_checkpoint_in_official_layout_loads_through_weights_resolver(tmp_path, name, tiny, loader):
    from safetensors.torch import save_file

    entry = OFFICIAL_CHECKPOINTS[name]
    config = tiny()
    if isinstance(config, FMConfig):
        builder = build_vevosing_fm_model if config.family == "vevosing" else build_fm_model
        source = builder(config, seed=5)
    else:
        source = build_ar_model(config, seed=5)
    target = tmp_path / entry.weights_file
    target.parent.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(target))

    resolved = resolve(HubFiles(repo_id=entry.repo_id, patterns=(entry.weights_file,)), "pretrained",
                       local_dir=tmp_path)
    kwargs = {} if loader is load_fm_model else {"checkpoint": name}
    loaded = loader(resolved.root, config, **kwargs)
    for key, value in source.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key


def test_strict_loading_names_missing_and_unexpected_keys():
    config = tiny_vevo_ar_config()
    sd = build_ar_model(config, seed=0).state_dict()
    sd.pop("model.lm_head.weight")
    sd["model.extra.weight"] = torch.zeros(1)
    with pytest.raises(CheckpointKeyError, match=r"missing keys \(1\): model.lm_head.weight") as info:
        build_ar_model(config, sd)
    assert "model.extra.weight" in str(info.value)
    fm_sd = build_vevosing_fm_model(tiny_vevosing_fm_config(), seed=0).state_dict()
    with pytest.raises(CheckpointKeyError, match="resampling_layers.0.weight"):
        build_fm_model(tiny_vevo_fm_config(), fm_sd)  # a Vevo1.5 checkpoint into Vevo's model


def test_missing_weights_file_is_a_readable_error(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_ar_model(tmp_path, tiny_vevo_ar_config())


# ---------------------------------------------------------------------------------------------
# Config parsing
# ---------------------------------------------------------------------------------------------

# The official files' relevant parts, in their json5 form (comments, trailing commas).
_VQ32_JSON5 = """{
    "model": {
        "autoregressive_transformer": {
            "input_vocab_size": 1056, "output_vocab_size": 8192, "hidden_size": 1536,
            "intermediate_size": 6144, "num_hidden_layers": 12, "num_attention_heads": 16,
            "use_global_style_encoder": false
        },
        "train_both_vc_and_tts": true,
        "vc_input_vocab_size": 32,
        "tts_input_vocab_size": 1024,
        "output_repcodec": {"codebook_size": 8192, // VQ Codebook Size
        },
    },
}"""
_VEVOSING_FM_JSON5 = """{
    "model": {
        "flow_matching_transformer": {
            "mel_dim": 128, "hidden_size": 1024, "num_layers": 16, "num_heads": 16, "cfg_scale": 0.2,
            "use_cond_code": true, // false means Hidden features
            // "cond_dim": 1024,
            "cond_codebook_size": 16384, "cond_scale_factor": 4, "use_pretrained_model": false,
            "sigma": 1e-5, "time_scheduler": "cos", "whisper_perturb": false,
        },
    },
}"""
_VEVOSING_AR_JSON5 = """{"model": {"autoregressive_transformer": {
    "content_vocab_size": 1024, // Only Synthesis: 1024
    "style_vocab_size": 512, "content_style_vocab_size": 16384, "hidden_size": 1920,
    "intermediate_size": 7680, "num_hidden_layers": 12, "num_attention_heads": 16,
}}}"""


def test_official_json5_configs_parse_to_the_official_constants(tmp_path):
    cases = [(_VQ32_JSON5, "Vq32ToVq8192", parse_ar_config),
             (_VEVOSING_AR_JSON5, "ar_emilia101k_singnet7k", parse_ar_config),
             (_VEVOSING_FM_JSON5, "fm_emilia101k_singnet7k", lambda o: parse_fm_config(o, "vevosing"))]
    for text, name, parse in cases:
        path = tmp_path / f"{name}.json"
        path.write_text(text)
        assert parse(read_config_file(path)) == OFFICIAL_CHECKPOINTS[name].config


def test_fixture_configs_parse():
    if not (PARITY_DIR / "vevo_ar" / "config.json").is_file():
        pytest.skip("parity fixtures not found")
    ar_cfg = parse_ar_config(read_config_file(PARITY_DIR / "vevo_ar" / "config.json"))
    assert isinstance(ar_cfg, VevoARConfig) and ar_cfg.vocab_size == 116 and ar_cfg.vc_input_ids_offset == 24
    fm_cfg = parse_fm_config(read_config_file(PARITY_DIR / "vevo_fmt" / "config.json"), "vevo")
    assert (fm_cfg.mel_dim, fm_cfg.cond_codebook_size, fm_cfg.resampling_doublings) == (8, 16, 0)
    sing = parse_fm_config(read_config_file(PARITY_DIR / "vevosing_fmt" / "config.json"), "vevosing")
    assert sing.resampling_doublings == 2


def test_config_errors_are_readable():
    with pytest.raises(VevoConfigError, match="missing key 'hidden_size'"):
        parse_fm_config({"flow_matching_transformer": {"mel_dim": 8}}, "vevo")
    with pytest.raises(VevoConfigError, match="global style encoder"):
        parse_ar_config({"autoregressive_transformer": {"num_hidden_layers": 1, "use_global_style_encoder": True}})
    with pytest.raises(VevoConfigError, match="power of 2"):
        FMConfig("vevosing", 8, 32, 1, 2, 16, cond_scale_factor=3)
    with pytest.raises(VevoConfigError, match="no model.flow_matching_transformer"):
        parse_fm_config({"model": {}}, "vevo")


# ---------------------------------------------------------------------------------------------
# AR
# ---------------------------------------------------------------------------------------------


def test_ar_vocabulary_layouts():
    vevo = ContentStyleAR(tiny_vevo_ar_config("Vq32ToVq8192")).vocab
    assert (vevo.pad_id, vevo.input.bos_id, vevo.input.eos_id, vevo.output.bos_id, vevo.output.eos_id) == \
        (9248, 9249, 9250, 9251, 9252)
    assert vevo.size == 9268 and vevo.input.offset == 8192
    sing_model = ContentStyleAR(tiny_vevosing_ar_config())
    sing = sing_model.vocab
    assert sing.pad_id == 17920 and sing.size == 17940
    assert (sing.input.offset, sing.style.offset) == (16384 + 512, 16384)
    ids = sing_model.prompt_ids(torch.tensor([[5, 6]]), torch.tensor([[7]]), style_ids=torch.tensor([[3]]))
    assert ids.tolist() == [[17921, 5 + 16896, 6 + 16896, 17922, 17923, 3 + 16384, 17924, 17925, 7]]
    # Vevo1.5 may run without a prompt (only the output BOS); Vevo may not.
    assert sing_model.prompt_ids(torch.tensor([[5]])).tolist() == [[17921, 5 + 16896, 17922, 17925]]
    with pytest.raises(ValueError, match="prompt_output_ids"):
        ContentStyleAR(tiny_vevo_ar_config()).prompt_ids(torch.tensor([[5]]))


def test_ar_rejects_ids_outside_their_stream(ar):
    with pytest.raises(ValueError, match=r"input ids must lie in \[0, 1056\)"):
        ar.prompt_ids(torch.tensor([[1056]]), torch.tensor([[0]]))
    with pytest.raises(ValueError, match="output ids"):
        ar.prompt_ids(torch.tensor([[0]]), torch.tensor([[8192]]))
    with pytest.raises(ValueError, match="no style stream"):
        ar.prompt_ids(torch.tensor([[0]]), torch.tensor([[0]]), style_ids=torch.tensor([[0]]))


def test_kv_cache_decoding_matches_full_forward(ar):
    vq32, prompt = _ar_inputs()
    ids = ar.prompt_ids(vq32, prompt)
    trace: list[ARStep] = []
    new = ar.continue_ids(ids, SamplingConfig(do_sample=False, min_new_tokens=0, max_new_tokens=12), trace=trace)
    full = ar.logits(torch.cat([ids, new[:, :-1]], dim=1))[0, ids.shape[1] - 1:]
    torch.testing.assert_close(torch.cat([s.logits for s in trace]), full, atol=1e-5, rtol=1e-5)
    assert torch.equal(new[0], full.argmax(-1))


def test_ar_generate_is_seeded_and_reports_progress(ar):
    vq32, prompt = _ar_inputs()
    kwargs = dict(min_new_tokens=5, max_new_tokens=40)
    a = ar.generate(vq32, prompt, seed=11, **kwargs)
    b = ar.generate(vq32, prompt, generator=torch.Generator().manual_seed(11), **kwargs)
    assert torch.equal(a, b) and a.dtype == torch.long
    others = [ar.generate(vq32, prompt, seed=s, **kwargs) for s in (1, 2, 3)]
    assert any(o.shape != a.shape or not torch.equal(o, a) for o in others)
    calls: list[tuple[int, int]] = []
    trace: list[ARStep] = []
    ar.generate(vq32, prompt, seed=11, on_progress=lambda d, n: calls.append((d, n)), progress_every=10,
                trace=trace, **kwargs)
    steps = len(trace)
    expected = [(d, 40) for d in range(10, steps + 1, 10)]
    if steps % 10:
        expected.append((steps, 40))
    assert calls == expected


def test_ar_min_and_max_length(ar):
    vq32, prompt = _ar_inputs()
    eos = ar.vocab.output.eos_id
    trace: list[ARStep] = []
    out = ar.generate(vq32, prompt, seed=0, min_new_tokens=30, max_new_tokens=30, trace=trace)
    assert out.shape == (1, 30) and int(eos) not in out[0].tolist()
    assert all(float(s.probs[0, eos]) == 0.0 for s in trace)
    n_prompt = ar.prompt_ids(vq32, prompt).shape[1]
    assert ar.generate(vq32, prompt, seed=0, max_length=n_prompt + 7).shape[1] == 7
    with pytest.raises(ValueError, match="no room under max_length"):
        ar.generate(vq32, prompt, max_length=n_prompt)


def test_ar_output_only_keeps_ids_embeddable(ar):
    vq32, prompt = _ar_inputs()
    out = ar.generate(vq32, prompt, seed=4, max_new_tokens=60, min_new_tokens=0, output_only=True,
                      temperature=5.0, top_k=0, top_p=1.0)
    assert out.numel() and int(out.max()) < 8192


def test_sampling_filters_and_inverse_cdf():
    probs = torch.tensor([[0.25, 0.0, 0.5, 0.25]])
    picks = [int(inverse_cdf_sample(probs, torch.tensor([u]))) for u in (0.0, 0.2499, 0.25, 0.74, 0.75, 1.0)]
    assert picks == [0, 0, 2, 2, 3, 3]
    with pytest.raises(ValueError):
        SamplingConfig(top_p=0.0)
    with pytest.raises(ValueError):
        SamplingConfig(temperature=0.0)


# ---------------------------------------------------------------------------------------------
# Flow matching
# ---------------------------------------------------------------------------------------------


def test_fm_seeding_progress_and_trace(fm):
    g = torch.Generator().manual_seed(0)
    codes = torch.randint(0, 8192, (1, 20), generator=g)
    prompt = torch.randn(1, 6, 128, generator=g)
    calls: list[tuple[int, int]] = []
    trace: list[FlowStep] = []
    a = fm.generate(codes, prompt, n_timesteps=5, seed=9, on_step=lambda s, n: calls.append((s, n)), trace=trace)
    b = fm.generate(codes, prompt, n_timesteps=5, generator=torch.Generator().manual_seed(9))
    c = fm.generate(codes, prompt, n_timesteps=5, seed=10)
    assert a.shape == (1, 14, 128)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert calls == [(i, 5) for i in range(1, 6)]
    assert [round(float(s.t[0]), 6) for s in trace] == [0.1, 0.3, 0.5, 0.7, 0.9]


def test_fm_cfg0_skips_the_unconditional_pass(fm):
    g = torch.Generator().manual_seed(1)
    codes = torch.randint(0, 8192, (2, 9), generator=g)
    prompt = torch.randn(2, 3, 128, generator=g)
    noise = torch.randn(2, 6, 128, generator=g)
    calls = []
    handle = fm.diff_estimator.register_forward_hook(lambda *_: calls.append(1))
    try:
        fm.generate(codes, prompt, n_timesteps=3, cfg=0.0, noise=noise)
        assert len(calls) == 3
        fm.generate(codes, prompt, n_timesteps=3, cfg=1.0, noise=noise)
        assert len(calls) == 3 + 6
    finally:
        handle.remove()


def test_fm_argument_checks(fm):
    codes = torch.zeros(1, 8, dtype=torch.long)
    prompt = torch.zeros(1, 3, 128)
    with pytest.raises(ValueError, match="1..128"):
        fm.generate(codes, prompt, n_timesteps=0)
    with pytest.raises(ValueError, match="1..128"):
        fm.generate(codes, prompt, n_timesteps=129)
    with pytest.raises(ValueError, match="noise has shape"):
        fm.generate(codes, prompt, n_timesteps=2, noise=torch.zeros(1, 4, 128))
    with pytest.raises(ValueError, match="longer than the prompt"):
        fm.generate(codes[:, :3], prompt, n_timesteps=2)
    with pytest.raises(ValueError, match=r"\[0, 8192\)"):
        fm.generate(codes + 8192, prompt, n_timesteps=2)


def test_vevosing_condition_rate_and_fitting(sing_fm):
    codes = torch.randint(0, 16384, (1, 5), generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        cond = sing_fm.embed_codes(codes)
    assert cond.shape == (1, 20, 32)  # 12.5 Hz -> 50 Hz
    padded = sing_fm.fit_condition(cond, 23)
    assert padded.shape == (1, 23, 32) and torch.equal(padded[:, 20:], cond[:, -1:].expand(-1, 3, -1))
    assert torch.equal(sing_fm.fit_condition(cond, 11), cond[:, :11])
    prompt = torch.randn(1, 7, 128)
    assert sing_fm.generate(codes, prompt, target_frames=9, n_timesteps=2, seed=0).shape == (1, 9, 128)
    assert sing_fm.generate(codes, prompt, n_timesteps=2, seed=0).shape == (1, 20 - 7, 128)
