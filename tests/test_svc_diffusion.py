"""Fast checks of the diffusion SVC models (tiny sizes): MultipleContentsSVC (PNDM) and DiffComoSVC
(EDM teacher, consistency student). Numerical parity with the reference is tests/test_parity.py's
(``svc_multiplecontents``, ``svc_diffcomo``); these cover determinism, step limits, strict loading,
the official layouts and the training-run folders."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from models.core.checkpoints import CheckpointError
from models.core.configs import ConfigError
from models.svc import official
from models.svc.comosvc import (
    DiffComoSVC,
    build_comosvc,
    karras_sigmas,
    load_comosvc,
    parse_comosvc_config,
    recipe_config,
    tiny_config as tiny_como_config,
)
from models.svc.diffusion import (
    DEFAULT_PNDM_STEPS,
    MIN_PNDM_STEPS,
    DiffusionStepsError,
    PNDMSettings,
    check_pndm_steps,
    pndm_calls,
    pndm_timesteps,
)
from models.svc.multiplecontents import (
    OFFICIAL_ARGS,
    TINY_ARGS,
    MultipleContentsSVC,
    build_multiplecontents,
    load_multiplecontents,
    official_config,
    parse_multiplecontents_config,
)
from models.weights import WeightsUnavailable

PARITY = Path(__file__).resolve().parents[2] / "shared" / "parity"
FRAMES = 12


def _features(model, batch: int = 1, frames: int = FRAMES, seed: int = 0) -> list[torch.Tensor]:
    """Random frame features that fit ``model``'s condition encoder."""
    cfg = model.config.condition_encoder
    g = torch.Generator().manual_seed(seed)
    f0 = torch.rand(batch, frames, generator=g, dtype=torch.float64) * 400 + 100
    f0[:, :2] = 0
    return [
        f0,
        (f0 == 0).long(),  # 1 = unvoiced
        torch.rand(batch, frames, generator=g) * 2,
        torch.randn(batch, frames, cfg.whisper_dim, generator=g),
        torch.randn(batch, frames, cfg.contentvec_dim, generator=g),
        torch.zeros(batch, 1, dtype=torch.int32),
    ]


@pytest.fixture(scope="module")
def mcsvc() -> MultipleContentsSVC:
    return build_multiplecontents(seed=0)


@pytest.fixture(scope="module")
def teacher() -> DiffComoSVC:
    return build_comosvc(tiny_como_config("teacher"), seed=0)


@pytest.fixture(scope="module")
def student() -> DiffComoSVC:
    return build_comosvc(tiny_como_config("student"), seed=0)


# ---------------------------------------------------------------------------------------------
# determinism and progress


def test_multiplecontents_same_seed_same_output(mcsvc):
    feats = _features(mcsvc)
    calls: list[tuple[int, int]] = []
    a = mcsvc(*feats, n_steps=4, seed=7, on_step=lambda s, t: calls.append((s, t)))
    b = mcsvc(*feats, n_steps=4, seed=7)
    c = mcsvc(*feats, n_steps=4, seed=8)
    assert a.shape == (1, FRAMES, 100) and torch.equal(a, b) and not torch.equal(a, c)
    assert a.abs().max() <= 1.0  # clamped every step
    assert calls == [(i, 13) for i in range(1, 14)] and mcsvc.denoiser_calls(4) == 13
    # saved noise is the seed's draw: the same tensor replays the run
    noise = torch.randn(1, FRAMES, 100, generator=torch.Generator().manual_seed(7))
    assert torch.equal(mcsvc(*feats, n_steps=4, noise=noise), a)


@pytest.mark.parametrize("kind", ["teacher", "student"])
def test_comosvc_same_seed_same_output(kind, teacher, student):
    model = teacher if kind == "teacher" else student
    feats = _features(model, batch=2)
    mask = torch.ones(2, FRAMES, 1, dtype=torch.long)
    mask[1, -3:] = 0
    steps = 3 if kind == "teacher" else None
    calls: list[tuple[int, int]] = []
    a = model(*feats, mask, n_steps=steps, seed=3, on_step=lambda s, t: calls.append((s, t)))
    b = model(*feats, mask, n_steps=steps, seed=3)
    assert a.shape == (2, FRAMES, 100) and torch.equal(a, b)
    assert not torch.equal(a, model(*feats, mask, n_steps=steps, seed=4))
    total = 4 if kind == "teacher" else 1
    assert calls == [(i, total) for i in range(1, total + 1)] and model.denoiser_calls(steps) == total
    # the noise is drawn channel-first [B, n_mel, T], as the reference draws it
    noise = torch.randn(2, 100, FRAMES, generator=torch.Generator().manual_seed(3))
    assert torch.equal(model(*feats, mask, n_steps=steps, noise=noise), a)


def test_pndm_timesteps_and_calls():
    for n in (4, 5, 10, 100, 1000):
        assert len(pndm_timesteps(n)) == n + 9 == pndm_calls(n)
    assert pndm_timesteps(4).tolist() == [750, 625, 625, 500, 500, 375, 375, 250, 250, 125, 125, 0, 0]
    assert DEFAULT_PNDM_STEPS == 1000 and MIN_PNDM_STEPS == 4


def test_karras_sigmas():
    s = karras_sigmas(4)
    assert s.dtype == torch.float32 and len(s) == 6
    assert s[0].item() == pytest.approx(80.0, rel=1e-5) and s[-2].item() == pytest.approx(0.002, rel=1e-4)
    assert s[-1].item() == 0.0 and bool((s[:-1].diff() < 0).all())


# ---------------------------------------------------------------------------------------------
# step limits


@pytest.mark.parametrize("bad", [0, 1, 2, 3, 1001, -4, True, 4.0, "10", None])
def test_pndm_refuses_step_counts_it_cannot_run(bad):
    if bad is None:  # None means the default, not an error
        assert check_pndm_steps(DEFAULT_PNDM_STEPS) == DEFAULT_PNDM_STEPS
        return
    with pytest.raises(DiffusionStepsError, match="diffusion_steps"):
        check_pndm_steps(bad)
    assert issubclass(DiffusionStepsError, ValueError)


def test_models_refuse_bad_steps_before_any_work(mcsvc, teacher, student):
    feats = _features(mcsvc)
    called = []
    for n in (1, 2, 3):
        with pytest.raises(DiffusionStepsError, match="4..1000"):
            mcsvc(*feats, n_steps=n, seed=0, on_step=lambda s, t: called.append(s))
    assert not called
    assert mcsvc.check_steps(None) == 1000 and teacher.check_steps(None) == 40 and student.check_steps(None) == 1
    with pytest.raises(DiffusionStepsError):
        teacher.check_steps(0)
    with pytest.raises(DiffusionStepsError, match="one step"):
        student.check_steps(40)
    assert student.check_steps(1) == 1


# ---------------------------------------------------------------------------------------------
# strict loading


def test_strict_key_checks_name_the_keys(mcsvc):
    sd = dict(mcsvc.state_dict())
    good = build_multiplecontents(mcsvc.config, {f"module.{k}": v for k, v in sd.items()})  # accelerate prefix
    assert all(torch.equal(a, b) for a, b in zip(good.state_dict().values(), sd.values()))
    missing = {k: v for k, v in sd.items() if k != "1.neural_network.out_proj.2.bias"}
    with pytest.raises(CheckpointError, match=r"missing keys \(1\): 1.neural_network.out_proj.2.bias"):
        build_multiplecontents(mcsvc.config, missing)
    with pytest.raises(CheckpointError, match=r"unexpected keys \(1\): 1.extra"):
        build_multiplecontents(mcsvc.config, {**sd, "1.extra": torch.zeros(1)})
    shaped = {**sd, "1.diff_encoder.out.0.bias": torch.zeros(3)}
    with pytest.raises(CheckpointError, match=r"1.diff_encoder.out.0.bias \(3,\) vs expected"):
        build_multiplecontents(mcsvc.config, shaped)


def test_student_needs_its_ema_denoiser(teacher, student):
    # a teacher checkpoint given to a student config names the two missing denoiser copies
    with pytest.raises(CheckpointError, match="1.decoder.denoise_fn_ema"):
        build_comosvc(student.config, teacher.state_dict())
    with pytest.raises(CheckpointError, match="unexpected keys"):
        build_comosvc(teacher.config, student.state_dict())


# ---------------------------------------------------------------------------------------------
# configurations and official layouts


def _official_keys(folder: str) -> dict:
    path = PARITY / folder / "official_keys.json"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    return json.loads(path.read_text())


def _meta_shapes(model_cls, config) -> dict[str, list[int]]:
    with torch.device("meta"):
        model = model_cls(config)
    return {k: list(v.shape) for k, v in model.state_dict().items()}


def test_official_multiplecontents_layout():
    entry = _official_keys("svc_multiplecontents")
    assert _meta_shapes(MultipleContentsSVC, official_config()) == entry["keys"]
    with torch.device("meta"):
        assert sum(p.numel() for p in MultipleContentsSVC(official_config()).parameters()) == entry["n_params"]


@pytest.mark.parametrize("kind", ["teacher", "student"])
def test_recipe_comosvc_layouts(kind):
    entry = next(v for k, v in _official_keys("svc_diffcomo").items() if k.startswith(kind))
    assert _meta_shapes(DiffComoSVC, recipe_config(kind)) == entry["keys"]


def test_official_args_parse_without_the_newer_flags():
    # The official args.json predates use_f0 / use_uv / use_energy: absent means true.
    args = json.loads(json.dumps(OFFICIAL_ARGS))
    for key in ("use_f0", "use_uv", "use_energy"):
        args["model"]["condition_encoder"].pop(key)
    cfg = parse_multiplecontents_config(args)
    assert cfg == official_config() and cfg.denoiser.bidilconv.base_channel == 384
    assert cfg.scheduler == PNDMSettings()


def test_config_errors_name_the_problem():
    args = json.loads(json.dumps(TINY_ARGS))
    args["inference"]["diffusion"]["scheduler"] = "ddim"
    with pytest.raises(ConfigError, match="ddim"):
        parse_multiplecontents_config(args)
    args = json.loads(json.dumps(TINY_ARGS))
    args["inference"]["diffusion"]["scheduler_settings"]["skip_prk_steps"] = True
    with pytest.raises(ConfigError, match="skip_prk_steps"):
        parse_multiplecontents_config(args)
    args = json.loads(json.dumps(TINY_ARGS))
    args["model"]["diffusion"]["bidilconv"]["conditioner_size"] = 7
    with pytest.raises(ConfigError, match="conditioner_size"):
        parse_multiplecontents_config(args)
    args = json.loads(json.dumps(TINY_ARGS))
    args["model_type"] = "DiffComoSVC"
    with pytest.raises(ConfigError, match="DiffComoSVC"):
        parse_multiplecontents_config(args)
    como = _como_args()
    como["model"]["comosvc"]["output_dim"] = 80
    with pytest.raises(ConfigError, match="equal mel widths"):
        parse_comosvc_config(como)


def _como_args(kind: str = "teacher") -> dict:
    from models.svc.comosvc import TINY_ARGS as COMO_TINY

    return json.loads(json.dumps(COMO_TINY[kind]))


def test_official_files_entry():
    entry = official.MULTIPLECONTENTS_FILES
    assert entry.repo_id == "amphion/singing_voice_conversion"
    assert set(entry.patterns) == {"vocalist_l1_contentvec+whisper/args.json",
                                   "vocalist_l1_contentvec+whisper/singers.json",
                                   "vocalist_l1_contentvec+whisper/checkpoint/*/*model.*"}


# ---------------------------------------------------------------------------------------------
# training-run folders


def _write_run(root: Path, args: dict, state: dict[str, torch.Tensor], *, bin_file: bool = False) -> Path:
    state_dir = root / "checkpoint" / "epoch-0002_step-0000020_loss-0.5"
    state_dir.mkdir(parents=True)
    (root / "args.json").write_text(json.dumps(args))
    (root / "singers.json").write_text(json.dumps({"vocalist_l1_Adele": 0, "vocalist_l1_Beyonce": 1}))
    if bin_file:  # the official release's accelerate pickle, with a multi-GPU prefix
        torch.save({f"module.{k}": v.clone() for k, v in state.items()}, state_dir / "pytorch_model.bin")
    else:
        save_file({k: v.contiguous() for k, v in state.items()}, str(state_dir / "model.safetensors"))
    # an older state folder must not be picked
    (root / "checkpoint" / "epoch-0001_step-0000010_loss-0.9").mkdir()
    return root


def test_load_multiplecontents_folder(tmp_path, mcsvc):
    run = _write_run(tmp_path / "run", TINY_ARGS, mcsvc.state_dict(), bin_file=True)
    model = load_multiplecontents(run)
    assert model.singers == {"vocalist_l1_Adele": 0, "vocalist_l1_Beyonce": 1}
    feats = _features(model)
    assert torch.equal(model(*feats, n_steps=4, seed=1), mcsvc(*feats, n_steps=4, seed=1))


def test_comosvc_run_folder_resolution(tmp_path, monkeypatch, student):
    monkeypatch.delenv("AMPHION_DIFFCOMOSVC_DIR", raising=False)
    monkeypatch.delenv("AMPHION_WEIGHTS_DIR", raising=False)
    with pytest.raises(WeightsUnavailable, match=r"\$AMPHION_WEIGHTS_DIR/svc/DiffComoSVC"):
        official.find_run_folder("diffcomosvc")
    monkeypatch.setenv("AMPHION_WEIGHTS_DIR", str(tmp_path))
    with pytest.raises(WeightsUnavailable, match="does not exist"):
        official.find_run_folder("diffcomosvc")
    run = tmp_path / "svc" / "DiffComoSVC"
    run.mkdir(parents=True)
    (run / "args.json").write_text(json.dumps(_como_args("student")))
    with pytest.raises(WeightsUnavailable, match=r"lacks singers.json, checkpoint/\*/\*model.\*") as info:
        official.find_run_folder("diffcomosvc")
    assert str(tmp_path) not in str(info.value)  # never a server path
    (run / "args.json").unlink()
    run.rmdir()
    _write_run(run, _como_args("student"), student.state_dict())
    assert official.find_run_folder("diffcomosvc") == run
    model = load_comosvc(run)
    assert model.is_student and model.singers["vocalist_l1_Beyonce"] == 1
    feats = _features(model)
    assert torch.equal(model(*feats, seed=2), student(*feats, seed=2))
    # an explicit folder wins over $AMPHION_WEIGHTS_DIR
    monkeypatch.setenv("AMPHION_DIFFCOMOSVC_DIR", str(tmp_path / "elsewhere"))
    with pytest.raises(WeightsUnavailable, match=r"\$AMPHION_DIFFCOMOSVC_DIR does not exist"):
        official.find_run_folder("diffcomosvc")
