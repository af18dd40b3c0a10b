"""Unit tests of MaskGCT's generation models and the shared blocks they use (tiny builds, CPU).

The numerical parity with the reference is checked by tests/test_parity.py (folders maskgct_t2s,
maskgct_s2a); this file covers what the fixtures do not: seeding, progress callbacks, loading files
laid out with the official names, config parsing, and the official key layout.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from models.blocks.diff_llama import CheckpointKeyError, DiffLlama, DiffLlamaPrefix
from models.blocks.masked_generation import (
    GeneratorNoise,
    SavedNoise,
    apply_cfg,
    executed_steps,
    mask_count,
    masked_decode,
    step_times,
    top_k_keep,
)
from models.maskgct.generation_configs import (
    OFFICIAL_S2A_1LAYER,
    OFFICIAL_S2A_FULL,
    OFFICIAL_T2S,
    GenerationConfigError,
    parse_s2a_config,
    parse_t2s_config,
    tiny_s2a_config,
    tiny_t2s_config,
)
from models.maskgct.s2a import (
    S2A_WEIGHTS_FILES,
    MaskGCTS2A,
    build_s2a_model,
    load_s2a_model,
    semantic_to_acoustic,
)
from models.maskgct.t2s import T2S_WEIGHTS_FILE, MaskGCTT2S, build_t2s_model, load_t2s_model

REPO_ROOT = Path(__file__).resolve().parents[1]
PARITY_DIR = Path(os.environ.get("AMPHION_PARITY_DIR") or REPO_ROOT.parent / "shared" / "parity")


@pytest.fixture(scope="module")
def t2s() -> MaskGCTT2S:
    return build_t2s_model(tiny_t2s_config(), seed=1)


@pytest.fixture(scope="module")
def s2a_full() -> MaskGCTS2A:
    return build_s2a_model(tiny_s2a_config("full"), seed=2)


@pytest.fixture(scope="module")
def s2a_1layer() -> MaskGCTS2A:
    return build_s2a_model(tiny_s2a_config("1layer"), seed=3)


def _t2s_inputs(batch: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    prompt = torch.randint(0, tiny_t2s_config().cond_codebook_size, (batch, 6), generator=g)
    phones = torch.randint(0, 300, (batch, 9), generator=g)
    return prompt, phones


def _s2a_inputs(n_prompt: int = 5, n_target: int = 11) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    cfg = tiny_s2a_config("full")
    semantic = torch.randint(0, cfg.cond_codebook_size, (1, n_prompt + n_target), generator=g)
    prompt = torch.randint(0, cfg.codebook_size, (1, n_prompt, cfg.num_quantizer), generator=g)
    return semantic, prompt


# ---------------------------------------------------------------------------------------------
# The decoding loop's pieces
# ---------------------------------------------------------------------------------------------


def test_top_k_and_schedule_arithmetic():
    # ceil((1 - 0.98) * V) in double precision: 0.020000000000000018 * 100 -> 3, not 2.
    assert top_k_keep(0.98, 100) == 3
    assert top_k_keep(0.98, 8192) == 164
    assert top_k_keep(0.98, 1024) == 21
    assert top_k_keep(0.98, 50) == 2
    assert step_times(25)[8] == 1.0 - 8 * (1.0 / 25)  # 0.6799999999999999, not 0.68
    assert step_times(3)[-1] == 0.0
    assert mask_count(1.0, 15) == 15 and mask_count(0.0, 15) == 0
    assert executed_steps(25, 15) == 24  # the pipeline's default stops one step early for short targets
    assert executed_steps(4, 12) == 4 and executed_steps(1, 8) == 1


def test_apply_cfg_rescale():
    c = torch.randn(2, 5, 8)
    u = torch.randn(2, 5, 8)
    assert torch.equal(apply_cfg(c, u, 0.0, 0.75), c)
    assert torch.equal(apply_cfg(c, None, 2.5, 0.75), c)
    g = c + 2.0 * (c - u)
    # rescale 1: the guided tensor scaled to the conditional's whole-tensor std
    out = apply_cfg(c, u, 2.0, 1.0)
    torch.testing.assert_close(out, g * c.std() / g.std())
    torch.testing.assert_close(out.std(), c.std())


def test_saved_noise_checks_shapes_and_count():
    noise = SavedNoise([torch.rand(1, 3)], name="n")
    with pytest.raises(RuntimeError, match="shape"):
        noise.uniform("choice", (1, 4), torch.device("cpu"))
    assert noise.uniform("choice", (1, 3), torch.device("cpu")).shape == (1, 3)
    with pytest.raises(RuntimeError, match="only 1"):
        noise.uniform("choice", (1, 3), torch.device("cpu"))


def test_generator_noise_is_seeded():
    a = GeneratorNoise(seed=7).uniform("sample", (2, 3, 4), torch.device("cpu"))
    b = GeneratorNoise(seed=7).uniform("sample", (2, 3, 4), torch.device("cpu"))
    c = GeneratorNoise(seed=8).uniform("sample", (2, 3, 4), torch.device("cpu"))
    assert torch.equal(a, b) and not torch.equal(a, c)
    with pytest.raises(ValueError):
        GeneratorNoise(generator=torch.Generator(), seed=1)


def test_masked_decode_fills_every_position_and_reports_progress():
    vocab, length = 7, 10
    target = torch.arange(length) % vocab
    calls = []

    def logits_fn(seq, mask, t):
        # A model that knows the answer: decoding must converge to it whatever the schedule.
        return torch.nn.functional.one_hot(target, vocab).float()[None] * 20.0

    out = masked_decode(logits_fn, 1, length, n_steps=6, temp=0.9, filter_thres=0.5,
                        noise=GeneratorNoise(seed=0), on_step=lambda s, n: calls.append((s, n)))
    assert torch.equal(out[0], target)
    total = executed_steps(6, length)
    assert calls == [(i, total) for i in range(1, total + 1)]


# ---------------------------------------------------------------------------------------------
# DiffLlama
# ---------------------------------------------------------------------------------------------


def test_diff_llama_padding_does_not_leak():
    torch.manual_seed(0)
    net = DiffLlama(16, 2, 2).eval()
    x, cond = torch.randn(1, 7, 16), torch.randn(1, 7, 16)
    mask = torch.tensor([[1, 1, 1, 1, 1, 0, 0]])
    x2 = x.clone()
    x2[:, 5:] += 3.0  # change only the padded frames
    with torch.no_grad():
        a = net(x, torch.tensor([0.3]), cond, mask)
        b = net(x2, torch.tensor([0.3]), cond, mask)
        c = net(x[:, :5], torch.tensor([0.3]), cond[:, :5], None)
    torch.testing.assert_close(a[:, :5], b[:, :5])
    torch.testing.assert_close(a[:, :5], c, atol=1e-5, rtol=1e-5)


def test_diff_llama_prefix_empty_prefix_is_no_prefix():
    torch.manual_seed(0)
    net = DiffLlamaPrefix(16, 2, 1).eval()
    x = torch.randn(2, 5, 16)
    with torch.no_grad():
        a = net(x, 0.5, None, prefix=torch.zeros(2, 0, 16), prefix_mask=torch.zeros(2, 0))
        b = net(x, 0.5)
        c = net(x, 0.5, prefix=torch.randn(2, 3, 16))
    assert torch.equal(a, b)
    assert c.shape == x.shape and not torch.allclose(b, c)


# ---------------------------------------------------------------------------------------------
# Models: seeding, progress, shapes
# ---------------------------------------------------------------------------------------------


def test_t2s_generate_is_deterministic_with_seed(t2s):
    prompt, phones = _t2s_inputs(batch=2)
    a = t2s.generate(prompt, phones, 12, n_timesteps=6, seed=123)
    b = t2s.generate(prompt, phones, 12, n_timesteps=6, seed=123)
    gen = torch.Generator().manual_seed(123)
    c = t2s.generate(prompt, phones, 12, n_timesteps=6, generator=gen)
    assert a.shape == (2, 12) and a.dtype == torch.long
    assert int(a.min()) >= 0 and int(a.max()) < t2s.vocab_size
    assert torch.equal(a, b) and torch.equal(a, c)
    others = [t2s.generate(prompt, phones, 12, n_timesteps=6, seed=s) for s in (1, 2, 3)]
    assert any(not torch.equal(a, o) for o in others)


def test_t2s_progress_callback_once_per_step(t2s):
    prompt, phones = _t2s_inputs()
    calls, trace = [], []
    t2s.generate(prompt, phones, 15, n_timesteps=25, seed=0, on_step=lambda s, n: calls.append((s, n)), trace=trace)
    assert calls == [(i, 24) for i in range(1, 25)]  # 25 steps planned, the loop stops after 24
    assert len(trace) == 24
    assert int(trace[-1].mask_in.sum()) == 1


def test_s2a_generate_layers_gt_code_and_progress(s2a_full):
    semantic, prompt = _s2a_inputs()
    n_target = semantic.shape[1] - prompt.shape[1]
    gt = torch.randint(0, 32, (1, n_target, 1))
    calls = []
    steps = [4, 3, 1]
    out = s2a_full.generate(semantic, prompt, n_timesteps=steps, gt_code=gt, seed=5,
                            on_step=lambda s, n: calls.append((s, n)))
    assert out.shape == (1, n_target, 3)
    assert torch.equal(out[..., :1], gt)
    total = executed_steps(3, n_target) + executed_steps(1, n_target)
    assert calls == [(i, total) for i in range(1, total + 1)]
    again = s2a_full.generate(semantic, prompt, n_timesteps=steps, gt_code=gt, seed=5)
    assert torch.equal(out, again)
    with pytest.raises(ValueError, match="one entry per quantizer"):
        s2a_full.generate(semantic, prompt, n_timesteps=[4, 3], seed=5)


def test_semantic_to_acoustic_chain(s2a_1layer, s2a_full):
    semantic, prompt = _s2a_inputs()
    calls = []
    layer0, full = semantic_to_acoustic(s2a_1layer, s2a_full, semantic, prompt, n_timesteps=[5, 2, 1], seed=9,
                                        on_step=lambda s, n: calls.append((s, n)))
    assert layer0.shape == (1, 11, 1) and full.shape == (1, 11, 3)
    assert torch.equal(full[..., :1], layer0)
    assert [s for s, _ in calls] == list(range(1, len(calls) + 1)) and all(n == len(calls) for _, n in calls)
    layer0_b, full_b = semantic_to_acoustic(s2a_1layer, s2a_full, semantic, prompt, n_timesteps=[5, 2, 1], seed=9)
    assert torch.equal(layer0, layer0_b) and torch.equal(full, full_b)


# ---------------------------------------------------------------------------------------------
# Checkpoints laid out like amphion/MaskGCT
# ---------------------------------------------------------------------------------------------


def _save(sd: dict[str, torch.Tensor], path: Path) -> None:
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in sd.items()}, str(path))


def test_official_layout_loads_strictly(tmp_path, t2s, s2a_1layer, s2a_full):
    assert T2S_WEIGHTS_FILE == "t2s_model/model.safetensors"
    assert S2A_WEIGHTS_FILES == {"1layer": "s2a_model/s2a_model_1layer/model.safetensors",
                                 "full": "s2a_model/s2a_model_full/model.safetensors"}
    _save(t2s.state_dict(), tmp_path / T2S_WEIGHTS_FILE)
    # The reference's S2A state dicts carry an empty embed_tokens leftover: accept it present...
    full_sd = dict(s2a_full.state_dict())
    full_sd["diff_estimator.embed_tokens.weight"] = torch.zeros(0, 256)
    _save(full_sd, tmp_path / S2A_WEIGHTS_FILES["full"])
    # ... or absent
    _save(s2a_1layer.state_dict(), tmp_path / S2A_WEIGHTS_FILES["1layer"])
    maskgct_json = {"model": {"t2s_model": tiny_t2s_config().to_dict(),
                              "s2a_model": {"s2a_1layer": tiny_s2a_config("1layer").to_dict(),
                                            "s2a_full": tiny_s2a_config("full").to_dict()}}}
    (tmp_path / "maskgct.json").write_text(json.dumps(maskgct_json))

    t2s_loaded = load_t2s_model(tmp_path, tmp_path / "maskgct.json")
    full_loaded = load_s2a_model(tmp_path, "full", tmp_path / "maskgct.json")
    one_loaded = load_s2a_model(tmp_path, "1layer", maskgct_json)
    for a, b in ((t2s, t2s_loaded), (s2a_full, full_loaded), (s2a_1layer, one_loaded)):
        sa, sb = a.state_dict(), b.state_dict()
        assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
        assert not b.training
    prompt, phones = _t2s_inputs()
    assert torch.equal(t2s.generate(prompt, phones, 8, n_timesteps=3, seed=4),
                       t2s_loaded.generate(prompt, phones, 8, n_timesteps=3, seed=4))


def test_strict_loading_names_the_bad_keys(tmp_path, t2s, s2a_full):
    sd = dict(t2s.state_dict())
    sd.pop("diff_estimator.layers.1.mlp.up_proj.weight")
    sd["diff_estimator.extra.weight"] = torch.zeros(2)
    sd["to_logit.bias"] = torch.zeros(5)
    path = tmp_path / "bad" / T2S_WEIGHTS_FILE
    _save(sd, path)
    with pytest.raises(CheckpointKeyError) as err:
        load_t2s_model(path, tiny_t2s_config())
    msg = str(err.value)
    assert "missing keys (1): diff_estimator.layers.1.mlp.up_proj.weight" in msg
    assert "unexpected keys (1): diff_estimator.extra.weight" in msg
    assert f"to_logit.bias (5,) vs expected ({tiny_t2s_config().cond_codebook_size},)" in msg
    # A non-empty embed_tokens is not a leftover: it is reported.
    full_sd = dict(s2a_full.state_dict())
    full_sd["diff_estimator.embed_tokens.weight"] = torch.zeros(3, 256)
    _save(full_sd, tmp_path / "bad2" / "model.safetensors")
    with pytest.raises(CheckpointKeyError, match="unexpected keys .*embed_tokens"):
        load_s2a_model(tmp_path / "bad2" / "model.safetensors", "full", tiny_s2a_config("full"))
    with pytest.raises(FileNotFoundError):
        load_t2s_model(tmp_path / "nowhere", tiny_t2s_config())


def _official_keys(folder: str) -> dict:
    path = PARITY_DIR / folder / "official_keys.json"
    if not path.is_file():
        pytest.skip(f"parity fixtures not found at {PARITY_DIR}")
    return json.loads(path.read_text())["files"]


@pytest.mark.parametrize(("folder", "file", "config"), [
    ("maskgct_t2s", "t2s_model/model.safetensors", OFFICIAL_T2S),
    ("maskgct_s2a", "s2a_model/s2a_model_1layer/model.safetensors", OFFICIAL_S2A_1LAYER),
    ("maskgct_s2a", "s2a_model/s2a_model_full/model.safetensors", OFFICIAL_S2A_FULL),
])
def test_official_configs_match_official_keys(folder, file, config):
    want = {k: tuple(v) for k, v in _official_keys(folder)[file]["keys"].items()}
    want = {k: v for k, v in want.items() if k != "diff_estimator.embed_tokens.weight"}  # empty leftover
    with torch.device("meta"):
        model = MaskGCTT2S(config) if folder == "maskgct_t2s" else MaskGCTS2A(config)
    got = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert got == want


# ---------------------------------------------------------------------------------------------
# Config parsing
# ---------------------------------------------------------------------------------------------


def test_config_parsing_accepts_every_level():
    section = {"hidden_size": 32, "num_layers": 2, "num_heads": 2, "cfg_scale": 0.15,
               "cond_codebook_size": 100, "cond_dim": 32}
    s2a = {"s2a_1layer": {**tiny_s2a_config("1layer").to_dict()}, "s2a_full": {**tiny_s2a_config("full").to_dict()}}
    full = {"model": {"t2s_model": section, "s2a_model": s2a}}
    for obj in (section, {"t2s_model": section}, full["model"], full):
        cfg = parse_t2s_config(obj)
        assert (cfg.hidden_size, cfg.num_layers, cfg.num_heads, cfg.cond_codebook_size) == (32, 2, 2, 100)
        assert cfg.phone_vocab_size == 1024 and cfg.phone_padding_idx == 1023
    for obj in (s2a, full["model"], full):
        assert parse_s2a_config(obj, "full") == tiny_s2a_config("full")
        assert parse_s2a_config(obj, "1layer") == tiny_s2a_config("1layer")
    assert parse_s2a_config(s2a["s2a_full"], "full").num_quantizer == 3
    with pytest.raises(GenerationConfigError, match="S2A section"):
        parse_t2s_config(s2a["s2a_full"])
    with pytest.raises(GenerationConfigError, match="missing key 'num_heads'"):
        parse_t2s_config({k: v for k, v in section.items() if k != "num_heads"})
    with pytest.raises(GenerationConfigError, match="even-sized heads"):
        parse_t2s_config({**section, "num_heads": 3})
    with pytest.raises(GenerationConfigError, match="no model.s2a_model"):
        parse_s2a_config(section, "full")


def test_fixture_configs_parse():
    if not (PARITY_DIR / "maskgct_s2a" / "config.json").is_file():
        pytest.skip(f"parity fixtures not found at {PARITY_DIR}")
    from models.maskgct.generation_configs import read_config_file

    t2s_cfg = parse_t2s_config(read_config_file(PARITY_DIR / "maskgct_t2s" / "config.json"))
    assert t2s_cfg.cond_codebook_size == 100
    s2a_obj = read_config_file(PARITY_DIR / "maskgct_s2a" / "config.json")
    assert parse_s2a_config(s2a_obj, "1layer").num_quantizer == 1
    assert parse_s2a_config(s2a_obj, "full").num_quantizer == 3


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_generate_is_seeded():
    dev = torch.device("cuda")
    model = build_t2s_model(tiny_t2s_config(), seed=1, device=dev)
    prompt, phones = _t2s_inputs()
    a = model.generate(prompt.to(dev), phones.to(dev), 10, n_timesteps=5, seed=3)
    b = model.generate(prompt.to(dev), phones.to(dev), 10, n_timesteps=5, seed=3)
    assert a.device.type == "cuda" and torch.equal(a, b)
    half = build_t2s_model(tiny_t2s_config(), seed=1, device=dev, dtype=torch.bfloat16)
    c = half.generate(prompt.to(dev), phones.to(dev), 10, n_timesteps=5, seed=3)
    assert c.shape == (1, 10)
