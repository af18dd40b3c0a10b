"""TransformerSVC and VitsSVC (models/svc/transformer_svc.py, vits_svc.py, conformer.py): tiny builds,
determinism, loading Amphion experiment folders with strict key checks, the recipes' layouts."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from models.core.checkpoints import CheckpointError
from models.core.configs import ConfigError
from models.core.random_init import init_random_weights
from models.svc import transformer_svc as ts
from models.svc import vits_svc as vs
from models.svc.conformer import Conformer, ConformerConfig, conformer_init_rule, parse_conformer_config
from models.svc.transformer_svc import TransformerSVC, build_transformer_svc, load_transformer_svc
from models.svc.vits_svc import DEFAULT_NOISE_SCALE, REFERENCE_SEED, VitsSVC, build_vits_svc, load_vits_svc

PARITY = Path(__file__).resolve().parents[2] / "shared" / "parity"
STATE_DIR = "epoch-0003_step-0000120_loss-1.000000"
OFFICIAL_FILE = "checkpoint/<epoch-..>/model.safetensors"


@pytest.fixture(scope="module")
def transformer() -> TransformerSVC:
    return build_transformer_svc(seed=3)


@pytest.fixture(scope="module")
def vits() -> VitsSVC:
    return build_vits_svc(seed=3)


def _features(model, batch: int = 2, frames: int = 12, seed: int = 0) -> dict[str, torch.Tensor]:
    cfg = model.config.condition_encoder
    g = torch.Generator().manual_seed(seed)
    f0 = torch.rand(batch, frames, generator=g) * 500
    f0[:, ::4] = 0.0
    return {
        "frame_pitch": f0,
        "frame_uv": (f0 == 0).long(),  # 1 = unvoiced
        "frame_energy": torch.rand(batch, frames, generator=g) * 1.4,
        "whisper_feat": torch.randn(batch, frames, cfg.whisper_dim, generator=g),
        "contentvec_feat": torch.randn(batch, frames, cfg.contentvec_dim, generator=g),
        "spk_id": torch.arange(batch, dtype=torch.int32).view(batch, 1) % cfg.singer_table_size,
    }


def _experiment(tmp_path: Path, args: dict, state: dict[str, torch.Tensor], *, name: str = "model.safetensors",
                singers: dict | None = None) -> Path:
    """A folder laid out like an Amphion training run."""
    folder = tmp_path / "exp"
    state_dir = folder / "checkpoint" / STATE_DIR
    state_dir.mkdir(parents=True)
    (folder / "args.json").write_text(json.dumps(args))
    state = {k: v.contiguous() for k, v in state.items()}
    if name.endswith(".safetensors"):
        save_file(state, str(state_dir / name))
    else:
        torch.save(state, state_dir / name)
    if singers is not None:
        (folder / "singers.json").write_text(json.dumps(singers))
    return folder


# ---------------------------------------------------------------------------------------------
# Determinism
# ---------------------------------------------------------------------------------------------


def test_transformer_same_seed_same_output(transformer: TransformerSVC) -> None:
    again = build_transformer_svc(seed=3)
    other = build_transformer_svc(seed=4)
    feats = _features(transformer)
    mel = transformer(**feats)
    assert mel.shape == (2, 12, 100) and torch.isfinite(mel).all()
    assert torch.equal(mel, again(**feats))
    assert not torch.allclose(mel, other(**feats))


def test_transformer_padding_leaves_real_frames_alone(transformer: TransformerSVC) -> None:
    long = _features(transformer, batch=1, frames=12, seed=1)
    short = {k: (v[:, :7] if k != "spk_id" else v) for k, v in long.items()}
    padded = {k: (torch.cat([v[:, :7], torch.zeros_like(v[:, 7:])], dim=1) if k != "spk_id" else v)
              for k, v in long.items()}
    mask = torch.zeros(1, 12, 1, dtype=torch.int64)
    mask[:, :7] = 1
    alone = transformer(**short)
    in_padding = transformer(**padded, mask=mask)
    torch.testing.assert_close(in_padding[:, :7], alone, atol=1e-5, rtol=1e-5)


def test_vits_default_noise_is_the_reference_seed_per_item(vits: VitsSVC) -> None:
    feats = _features(vits, batch=2, frames=10)
    audio = vits.infer(**feats)
    assert audio.shape == (2, 1, 10 * 256) and audio.abs().max() < 1
    assert torch.equal(audio, vits.infer(**feats))  # reseeded per call, like the reference
    # Each item gets the first draws after seeding REFERENCE_SEED, whatever it is batched with.
    alone = vits.infer(**{k: v[1:] for k, v in feats.items()})
    torch.testing.assert_close(audio[1:], alone, atol=1e-6, rtol=0)
    eps = torch.randn((1, vits.config.inter_channels, 10), generator=torch.Generator().manual_seed(REFERENCE_SEED))
    replayed = vits.infer(**feats, prior_noise=eps.expand(2, -1, -1))
    assert torch.equal(replayed, audio)


def test_vits_noise_scale_and_injected_randomness(vits: VitsSVC) -> None:
    feats = _features(vits, batch=1, frames=8)
    z = torch.zeros(1, vits.config.inter_channels, 8)
    other = torch.randn(1, vits.config.inter_channels, 8, generator=torch.Generator().manual_seed(9))
    # noise_scale 0: the prior mean only, whatever eps is.
    assert torch.equal(vits.infer(**feats, noise_scale=0.0, prior_noise=z),
                       vits.infer(**feats, noise_scale=0.0, prior_noise=other))
    assert not torch.equal(vits.infer(**feats, prior_noise=z), vits.infer(**feats, prior_noise=other))
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    assert torch.equal(vits.infer(**feats, generator=g1), vits.infer(**feats, generator=g2))
    assert DEFAULT_NOISE_SCALE == 0.667
    with pytest.raises(ValueError, match="prior_noise"):
        vits.infer(**feats, prior_noise=torch.zeros(1, 3, 8))
    with pytest.raises(ValueError, match="noise_scale"):
        vits.infer(**feats, noise_scale=float("nan"))


def test_conformer_short_sequences_and_seeded_init() -> None:
    cfg = ConformerConfig(input_dim=8, output_dim=5, n_heads=2, n_layers=1, filter_channels=12)
    a, b = Conformer(cfg), Conformer(cfg)
    init_random_weights(a, 7, rules=(conformer_init_rule,))
    init_random_weights(b, 7, rules=(conformer_init_rule,))
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)
    for frames in (1, 3, 5, 6, 20):  # around the relative window (4): sliced vs padded tables in the reference
        y = a(torch.randn(2, frames, 8), torch.ones(2, frames, 1, dtype=torch.int64))
        assert y.shape == (2, frames, 5) and torch.isfinite(y).all()
    assert parse_conformer_config({"input_dim": 8, "output_dim": 5, "n_heads": 2, "n_layers": 1,
                                   "filter_channels": 12, "P_mean": -1.2}, "model.comosvc") == cfg


# ---------------------------------------------------------------------------------------------
# Loading: experiment folders, strict keys
# ---------------------------------------------------------------------------------------------


def test_transformer_loads_an_experiment_folder(tmp_path: Path, transformer: TransformerSVC) -> None:
    state = {f"module.{k}": v for k, v in transformer.state_dict().items()}  # multi-GPU accelerate run
    folder = _experiment(tmp_path, ts.TINY_ARGS, state, name="pytorch_model.bin", singers={"alice": 0, "bob": 1})
    loaded = load_transformer_svc(folder)
    feats = _features(transformer)
    assert torch.equal(loaded(**feats), transformer(**feats))
    assert loaded.singers == {"alice": 0, "bob": 1}


def test_vits_loads_an_experiment_folder(tmp_path: Path, vits: VitsSVC) -> None:
    folder = _experiment(tmp_path, vs.TINY_ARGS, vits.state_dict())
    # The discriminator of the same run must not be picked.
    save_file({"x": torch.zeros(1)}, str(folder / "checkpoint" / STATE_DIR / "model_1.safetensors"))
    loaded = load_vits_svc(folder)
    feats = _features(vits, batch=1, frames=6)
    assert torch.equal(loaded.infer(**feats), vits.infer(**feats))
    assert loaded.singers == {}


def test_wrong_keys_are_refused_by_name(tmp_path: Path, transformer: TransformerSVC, vits: VitsSVC) -> None:
    state = dict(transformer.state_dict())
    state["1.conformer_encoder.attn_layers.9.conv_q.weight"] = state.pop("1.conformer_encoder.attn_layers.0.conv_q.weight")
    folder = _experiment(tmp_path / "ts", ts.TINY_ARGS, state)
    with pytest.raises(CheckpointError) as err:
        load_transformer_svc(folder)
    assert "missing keys (1): 1.conformer_encoder.attn_layers.0.conv_q.weight" in str(err.value)
    assert "unexpected keys (1): 1.conformer_encoder.attn_layers.9.conv_q.weight" in str(err.value)

    state = dict(vits.state_dict())
    state["flow.flows.2.post.bias"] = torch.zeros(7)
    del state["enc_q.proj.weight"]
    folder = _experiment(tmp_path / "vits", vs.TINY_ARGS, state)
    with pytest.raises(CheckpointError) as err:
        load_vits_svc(folder)
    assert "enc_q.proj.weight" in str(err.value) and "flow.flows.2.post.bias (7,)" in str(err.value)


def test_folder_errors_name_what_is_missing(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="args.json"):
        load_transformer_svc(tmp_path)
    (tmp_path / "args.json").write_text(json.dumps(ts.TINY_ARGS))
    with pytest.raises(CheckpointError, match="checkpoint/"):
        load_transformer_svc(tmp_path)


def test_configs_refuse_what_is_not_supported() -> None:
    args = copy.deepcopy(ts.TINY_ARGS)
    args["model"]["transformer"]["type"] = "transformer"
    with pytest.raises(ConfigError, match="'transformer' is not supported"):
        ts.parse_transformer_svc_config(args)
    args = copy.deepcopy(ts.TINY_ARGS)
    args["model"]["transformer"]["input_dim"] = 24
    with pytest.raises(ConfigError, match="condition encoder outputs 16"):
        ts.parse_transformer_svc_config(args)
    with pytest.raises(ConfigError, match="'VitsSVC' experiment"):
        ts.parse_transformer_svc_config(vs.TINY_ARGS)
    args = copy.deepcopy(vs.TINY_ARGS)
    args["model"]["generator"] = "hifigan"
    with pytest.raises(ConfigError, match="nsfhifigan"):
        vs.parse_vits_svc_config(args)
    args = copy.deepcopy(vs.TINY_ARGS)
    args["preprocess"]["hop_size"] = 200
    with pytest.raises(ConfigError, match="upsamples by 256"):
        vs.parse_vits_svc_config(args)


# ---------------------------------------------------------------------------------------------
# The recipes' full-size layouts (no published checkpoint: the fixtures derive them from the recipes)
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("folder", "cls", "recipe"), [
    ("svc_transformer", TransformerSVC, ts.recipe_config),
    ("svc_vits", VitsSVC, vs.recipe_config),
])
def test_recipe_layouts_match_the_reference(folder: str, cls, recipe) -> None:
    keys_file = PARITY / folder / "official_keys.json"
    if not keys_file.is_file():
        pytest.skip(f"{keys_file} not found")
    official = json.loads(keys_file.read_text())["files"][OFFICIAL_FILE]
    with torch.device("meta"):
        model = cls(recipe())
    shapes = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert shapes == official["keys"]
    assert sum(v.numel() for v in model.state_dict().values()) == official["elements"]
