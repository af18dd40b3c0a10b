"""Metis (models/metis): the stage-1 model per task on tiny weights, the LoRA merge and its strict
key checks, the official layouts, the TTS front-end rules and the pipeline over MaskGCT's tiny parts."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from models.blocks.diff_llama import CheckpointKeyError
from models.metis.configs import (
    MetisConfigError,
    official_stage1_config,
    parse_stage1_config,
    tiny_stage1_config,
)
from models.metis.lora import (
    LoraMergeError,
    expected_adapter_keys,
    expected_base_keys,
    expected_lora_keys,
    merge_lora_state,
)
from models.metis.official import LORA_RELEASES, STAGE1_FILES
from models.metis.stage1 import MetisStage1, build_stage1, load_stage1
from models.metis.tasks import (
    STAGE1_SETTINGS,
    metis_language,
    stage2_steps,
    target_len_from_seconds,
    tts_target_len,
)

PARITY = Path(os.environ.get("AMPHION_PARITY_DIR") or Path(__file__).resolve().parents[2] / "shared" / "parity")


def _tiny(task: str, seed: int = 0) -> MetisStage1:
    return build_stage1(tiny_stage1_config(task, lora=False), task, seed=seed)


def _run(model: MetisStage1, task: str, seed: int, p: int = 5, t: int = 8) -> torch.Tensor:
    s = STAGE1_SETTINGS["vc" if task == "omni" else task]
    g = torch.Generator().manual_seed(123)
    prompt = torch.randint(0, model.vocab_size, (1, 0 if task == "se" else p), generator=g)
    kwargs = dict(n_timesteps=s.n_timesteps, cfg=s.cfg, rescale_cfg=s.rescale_cfg, temp=s.temp,
                  filter_thres=s.filter_thres, seed=seed)
    if task == "tts":
        phones = torch.randint(0, 1000, (1, 12), generator=g)
        return model.generate(prompt, phones, t, **kwargs)
    cond = torch.randn(1, prompt.shape[1] + t, model.metis_config.cond_dim, generator=g)
    return model.generate(prompt, None, t, finetune_cond=cond, **kwargs)


# ---------------------------------------------------------------------------------------------
# the model, per task


@pytest.mark.parametrize("task", ["vc", "se", "tse", "omni", "tts"])
def test_tiny_stage1_same_seed_same_tokens(task):
    model = _tiny(task)
    a = _run(model, task, seed=7)
    b = _run(_tiny(task), task, seed=7)
    assert a.shape == (1, 8) and a.dtype == torch.int64
    assert torch.equal(a, b)
    assert int(a.min()) >= 0 and int(a.max()) < model.vocab_size
    others = [_run(model, task, seed=s) for s in range(8, 12)]
    assert any(not torch.equal(a, o) for o in others)


def test_tiny_weights_are_seeded_and_gate_is_on():
    a, b, c = _tiny("vc", 0), _tiny("vc", 0), _tiny("vc", 1)
    for k, v in a.state_dict().items():
        assert torch.equal(v, b.state_dict()[k]), k
    assert not torch.equal(a.cond_emb.weight, c.cond_emb.weight)
    assert abs(a.cond_adapter.gate_scale.detach().item() - 1.0) < 0.5  # the reference's 0 would switch it off


def test_layouts_without_phones_have_no_phone_keys():
    keys = set(_tiny("vc").state_dict())
    assert not any(k.startswith("phone_emb") or ".cond_mlp." in k for k in keys)
    assert {"cond_adapter.gate_scale", "cond_adapter.in_linear.weight"} <= keys
    omni = set(_tiny("omni").state_dict())
    assert "phone_emb.weight" in omni and "diff_estimator.cond_mlp.0.weight" in omni
    assert not any(k.startswith("cond_adapter") for k in _tiny("tts").state_dict())


def test_condition_checks():
    model = _tiny("vc")
    prompt = torch.zeros(1, 3, dtype=torch.long)
    with pytest.raises(ValueError, match="frames"):
        model.generate(prompt, None, 4, finetune_cond=torch.zeros(1, 6, model.metis_config.cond_dim))
    with pytest.raises(ValueError, match="phone"):
        model.generate(prompt, torch.zeros(1, 2, dtype=torch.long), 4,
                       finetune_cond=torch.zeros(1, 7, model.metis_config.cond_dim))
    with pytest.raises(ValueError, match="condition"):
        model.generate(prompt, None, 4)
    with pytest.raises(MetisConfigError):
        _tiny("tts").adapt(torch.zeros(1, 3, 32))


def test_strict_load_names_keys():
    model = _tiny("vc")
    sd = model.state_dict()
    sd.pop("cond_adapter.gate_scale")
    sd["cond_adapter.gate"] = torch.zeros(1)
    with pytest.raises(CheckpointKeyError, match="cond_adapter.gate_scale"):
        load_stage1(sd, tiny_stage1_config("vc", lora=False), "vc")


# ---------------------------------------------------------------------------------------------
# LoRA


def _release(task: str = "tse", seed: int = 0):
    cfg = tiny_stage1_config(task)
    g = torch.Generator().manual_seed(seed)
    base = {k: torch.randn(s, generator=g) for k, s in expected_base_keys(cfg, task).items()}
    lora = {k: torch.randn(s, generator=g) * 0.1 for k, s in expected_lora_keys(cfg, task).items()}
    adapter = {k: torch.randn(s, generator=g) for k, s in expected_adapter_keys(cfg, task).items()}
    return cfg, base, lora, adapter


def test_lora_merge_arithmetic():
    cfg, base, lora, adapter = _release()
    merged = merge_lora_state(base, lora, adapter, cfg, "tse")
    key = "diff_estimator.layers.1.mlp.down_proj.weight"
    a = lora["model." + key.replace(".weight", ".lora_A.default.weight")]
    b = lora["model." + key.replace(".weight", ".lora_B.default.weight")]
    assert torch.allclose(merged[key], base[key] + (cfg.lora_alpha / cfg.lora_r) * (b @ a), atol=1e-6)
    assert torch.equal(merged["cond_adapter.gate_scale"], adapter["model.cond_adapter.gate_scale"])
    assert torch.equal(merged["cond_emb.weight"], base["cond_emb.weight"])
    n_changed = sum(not torch.equal(merged[k], base[k]) for k in base)
    assert n_changed == 7 * cfg.num_layers
    model = build_stage1(cfg, "tse", merged)
    assert set(model.state_dict()) == set(merged)


@pytest.mark.parametrize("what", ["lora_renamed", "lora_missing", "lora_extra", "lora_rank", "adapter_renamed",
                                  "adapter_no_prefix", "base_with_adapter", "base_missing"])
def test_lora_merge_refuses_wrong_keys(what):
    cfg, base, lora, adapter = _release()
    named = None
    if what == "lora_renamed":  # e.g. a file saved without peft's adapter name: the reference ignores it
        k = next(iter(lora))
        lora[k.replace(".default", "")] = lora.pop(k)
        named = k
    elif what == "lora_missing":
        named = sorted(lora)[-1]
        lora.pop(named)
    elif what == "lora_extra":
        named = "model.diff_estimator.layers.0.input_layernorm.to_weight.lora_A.default.weight"
        lora[named] = torch.zeros(cfg.lora_r, cfg.hidden_size)
    elif what == "lora_rank":
        cfg = type(cfg)(**{**cfg.to_dict(), "lora_r": cfg.lora_r * 2, "lora_alpha": cfg.lora_alpha * 2})
        named = "mis-shaped"
    elif what == "adapter_renamed":
        named = "model.cond_adapter.gate_scale"
        adapter["model.cond_adapter.gate"] = adapter.pop(named)
    elif what == "adapter_no_prefix":
        adapter = {k[len("model."):]: v for k, v in adapter.items()}
        named = "cond_adapter.in_linear.weight"
    elif what == "base_with_adapter":
        named = "cond_adapter.in_linear.weight"
        base[named] = torch.zeros(4 * cfg.hidden_size, cfg.cond_dim)
    elif what == "base_missing":
        named = "to_logit.bias"
        base.pop(named)
    with pytest.raises(LoraMergeError, match=named.replace(".", r"\.")):
        merge_lora_state(base, lora, adapter, cfg, "tse")


def test_lora_needs_lora_config():
    cfg, base, lora, adapter = _release()
    with pytest.raises(LoraMergeError, match="use_lora"):
        merge_lora_state(base, lora, adapter, tiny_stage1_config("tse", lora=False), "tse")
    with pytest.raises(LoraMergeError, match="omni"):
        merge_lora_state(base, lora, adapter, cfg, "omni")


# ---------------------------------------------------------------------------------------------
# configurations and official layouts


def _official_keys(folder: str) -> dict:
    path = PARITY / folder / "official_keys.json"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    return json.loads(path.read_text())


def _keys(entry) -> dict[str, list[int]]:
    ks = entry["keys"]
    return {k: list(v) for k, v in (ks.items() if isinstance(ks, dict) else ks)}


def _meta_shapes(cfg, ft_type) -> dict[str, list[int]]:
    with torch.device("meta"):
        model = MetisStage1(cfg, ft_type)
    return {k: list(v.shape) for k, v in model.state_dict().items()}


@pytest.mark.parametrize(("name", "task", "ft_type"), [
    ("metis_vc/metis_vc.safetensors", "vc", "vc"),
    ("metis_omni/metis_omni.safetensors", "omni", "omni"),
    ("metis_l2s/metis_l2s.safetensors", "l2s", "l2s"),
    ("t2s_model/model.safetensors", "tts", "tts"),
])
def test_official_stage1_layouts(name, task, ft_type):
    entries = _official_keys("metis_stage1")
    entry = next(v for k, v in entries.items() if name in k)
    assert _meta_shapes(official_stage1_config(task, lora=False), ft_type) == _keys(entry)


@pytest.mark.parametrize("task", ["vc", "se", "tse"])
def test_official_lora_layouts(task):
    entries = _official_keys("metis_lora")
    cfg = official_stage1_config(task)
    lora_file, adapter_file = LORA_RELEASES[task]
    base = next(v for k, v in entries.items() if "metis_base/model.safetensors" in k)
    assert {k: list(s) for k, s in expected_base_keys(cfg, task).items()} == _keys(base)
    lora = next(v for k, v in entries.items() if k.endswith(lora_file))
    assert {k: list(s) for k, s in expected_lora_keys(cfg, task).items()} == _keys(lora)
    adapter = next(v for k, v in entries.items() if k.endswith(adapter_file))
    assert {k: list(s) for k, s in expected_adapter_keys(cfg, task).items()} == _keys(adapter)
    assert cfg.lora_scaling == 2.0
    assert STAGE1_FILES[task].repo_id == "amphion/metis"
    assert set(STAGE1_FILES[task].patterns) == {"metis_base/model.safetensors", lora_file, adapter_file}


def test_parse_fixture_configs():
    path = PARITY / "metis_lora" / "config.json"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    cfg = parse_stage1_config(json.loads(path.read_text()))
    assert (cfg.use_lora, cfg.lora_r, cfg.lora_alpha, cfg.use_phone_cond, cfg.cond_dim) == (True, 4, 8.0, False, 24)
    assert parse_stage1_config({"model": {"t2s_model": cfg.to_dict()}}) == cfg
    with pytest.raises(MetisConfigError, match="num_heads"):
        parse_stage1_config({"hidden_size": 32, "num_layers": 2, "cond_codebook_size": 10})
    with pytest.raises(MetisConfigError, match="lora"):
        parse_stage1_config({**cfg.to_dict(), "lora_r": None})


# ---------------------------------------------------------------------------------------------
# front end and settings


def test_tts_front_end_rules():
    assert tts_target_len(250, "That's true. But times have changed.",
                          "Well, a growing number of people from ethnic backgrounds are getting bored of all these "
                          "white male superheroes.") == 81
    assert tts_target_len(120, "这是一个中英混合的句子, with some English.", "Hello there, this is the prompt.") == 198
    assert target_len_from_seconds(2.5) == 125 and target_len_from_seconds(2.3) == 115
    assert metis_language("ja") == "ja" and metis_language("it") == "en"
    with pytest.raises(ValueError):
        tts_target_len(10, "a", "")
    assert stage2_steps(12) == ([40], [40, 16] + [1] * 10)
    assert stage2_steps(3) == ([40], [40, 16, 1])
    assert {t: (s.n_timesteps, s.cfg) for t, s in STAGE1_SETTINGS.items()} == {
        "tts": (25, 2.5), "vc": (20, 1.0), "tse": (10, 0.0), "se": (10, 0.0)}


def test_language_detection_agrees_with_langid_on_fixture():
    from models.text import detect_language

    path = PARITY / "metis_stage1" / "cases.json"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    case = next(c for c in json.loads(path.read_text()) if c["name"] == "tts_frontend_rules")
    for ex in case["inputs"]["examples"]:
        assert metis_language(detect_language(ex["prompt_text"])) == ex["prompt_language"]
        assert metis_language(detect_language(ex["text"])) == ex["target_language"]
