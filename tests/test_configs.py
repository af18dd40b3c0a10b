"""The Serve config files describe the application the code builds, and the local one fits one
small machine."""

from __future__ import annotations

import pytest

from pathlib import Path

import yaml


ROOT = Path(__file__).resolve().parents[1]
LOCAL_MACHINE_CORES = 2


def _app(name: str) -> dict:
    config = yaml.safe_load((ROOT / "config" / name).read_text())
    (app,) = config["applications"]
    assert app["import_path"] == "serve_app.application:build_app"
    return app


def _deployments(name: str) -> dict[str, dict]:
    return {d["name"]: d for d in _app(name)["deployments"]}


def _expected(name: str) -> set[str]:
    from serve_app.application import AppArgs, deployment_names

    return deployment_names(AppArgs(**_app(name)["args"]))


def test_both_configs_list_every_deployment():
    assert set(_deployments("serve.yaml")) == _expected("serve.yaml")
    assert set(_deployments("serve.local.yaml")) == _expected("serve.local.yaml")


def test_both_configs_give_replicas_the_environment_the_code_declares():
    """``REPLICA_ENV`` is what tests and benchmarks start replicas with; the config files must say
    the same (one list of settings, two places Ray reads it from)."""
    from serve_app.application import REPLICA_ENV

    for name in ("serve.yaml", "serve.local.yaml"):
        assert _app(name)["runtime_env"]["env_vars"] == REPLICA_ENV, name


def test_local_config_fits_a_two_core_machine():
    total = sum(d.get("num_replicas", 1) * d.get("ray_actor_options", {}).get("num_cpus", 1)
                for d in _deployments("serve.local.yaml").values())
    assert total <= LOCAL_MACHINE_CORES, f"local replicas ask for {total} CPUs"
    assert all("num_gpus" not in d.get("ray_actor_options", {}) for d in _deployments("serve.local.yaml").values())


def test_production_config_uses_gpus_autoscaling_and_pretrained_weights():
    config = yaml.safe_load((ROOT / "config" / "serve.yaml").read_text())
    (app,) = config["applications"]
    assert app["args"]["weights"] == "pretrained" and app["args"]["dev_mode"] is False
    for name, d in _deployments("serve.yaml").items():
        assert "autoscaling_config" in d and d["graceful_shutdown_timeout_s"] >= 300, name
        assert "max_queued_requests" in d and "health_check_period_s" in d, name
    gpu = {n for n, d in _deployments("serve.yaml").items() if d["ray_actor_options"].get("num_gpus")}
    assert {"BigVGAN", "HiFiGAN", "NSFHiFiGAN", "MaskGCTT2S", "MaskGCTS2A"} <= gpu
    assert all(0 < d["ray_actor_options"].get("num_gpus", 0) < 1 for n, d in _deployments("serve.yaml").items()
               if n in gpu)


def test_dtype_setting():
    import torch

    from deployments.runtime import select_dtype

    assert select_dtype("auto", "cuda") is torch.float16 and select_dtype(None, "cuda:1") is torch.float16
    assert select_dtype("auto", "cpu") is torch.float32 and select_dtype("bfloat16", "cpu") is torch.bfloat16
    with pytest.raises(ValueError):
        select_dtype("float8", "cpu")


def test_a_subset_config_lists_exactly_its_deployments():
    """scripts/serve_config.py (what `AMPHION_MODELS=... make serve` runs) keeps only the deployments the
    builder creates for args.models; an entry another family's entry uses comes along (VALL-E's DualCodec)."""
    import sys

    sys.path.insert(0, str(ROOT / "scripts"))
    from serve_config import for_models, parse_models

    from serve_app.application import AppArgs, deployed_entries, deployment_names

    assert parse_models(" vocoders, codecs ,") == ["vocoders", "codecs"] and parse_models("") is None
    for name in ("serve.yaml", "serve.local.yaml"):
        config = yaml.safe_load((ROOT / "config" / name).read_text())
        assert for_models(config, None) == config  # no subset asked: the file as it is
        for models in (["vocoders"], ["valle"], ["metis", "tta"]):
            (app,) = for_models(config, models)["applications"]
            assert app["args"]["models"] == models
            assert {d["name"] for d in app["deployments"]} == deployment_names(AppArgs(**app["args"])), (name, models)
        (app,) = for_models(config, ["vocoders"])["applications"]
        assert {d["name"] for d in app["deployments"]} == {"AmphionIngress", "BigVGAN", "HiFiGAN", "NSFHiFiGAN"}
    valle = AppArgs(models=["valle"])
    assert deployed_entries(valle) == ["DualCodecVALLE", "DualCodec"]
    assert deployment_names(valle) == {"AmphionIngress", "DualCodecVALLE", "DualCodec", "W2VBertSemantic", "WhisperASR"}
    with pytest.raises(ValueError, match="unknown model families"):
        AppArgs(models=["vocoder"])
    with pytest.raises(ValueError, match="at least one"):
        AppArgs(models=[])


def test_compose_binds_only_the_chosen_families():
    from serve_app.application import AppArgs, compose

    app = compose(AppArgs(models=["vocoders"], weights="tiny"))
    handles, _settings = app._bound_deployment.init_args
    assert set(handles) == {"BigVGAN", "HiFiGAN", "NSFHiFiGAN"}


COMPOSE_LOCAL_CHECK = """
from deployments.topology import LocalHandle
from serve_app.application import AppArgs, compose_local, deployed_entries

args = AppArgs(models=["valle"], weights="tiny", torch_threads=1)
services = compose_local(args)
assert set(services) == set(deployed_entries(args)) == {"DualCodecVALLE", "DualCodec"}, set(services)
codec = services["DualCodecVALLE"].components["DualCodec"]
assert isinstance(codec, LocalHandle) and codec.service is services["DualCodec"]
assert services["DualCodec"].components["W2VBertSemantic"].service.weights_kind == "tiny"
print("ok")
"""


def test_compose_local_builds_the_same_composition_in_process():
    """The no-Ray baseline of scripts/bench_overhead.py: the same entries as compose, each part built
    once and shared (VALL-E calls the very DualCodec entry that serves the codec routes). In a child
    process: the models it builds would otherwise stay in this one's memory for the whole suite,
    next to the integration application's replicas."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-c", COMPOSE_LOCAL_CHECK], cwd=root, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stderr[-2000:]
