"""Noro on tiny sizes: determinism, strict loading, the official layout, request checks, the k-means
reader, the HuBERT key mapping and the pieces of the pipeline. (The reference's numbers:
tests/parity_adapters/noro.py.)"""

from __future__ import annotations

import json
import os
import pickle
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from models.core.checkpoints import CheckpointError
from models.core.configs import ConfigError
from models.noro import (
    DEFAULT_SIGMA,
    DEFAULT_STEPS,
    SIGMA_RANGE,
    STEPS_RANGE,
    NoroInputError,
    NoroPipeline,
    build_noro_model,
    missing_files,
    official_config,
    parse_noro_config,
    tiny_config,
)
from models.noro.configs import OFFICIAL_CONFIG, TINY_CONFIG
from models.noro.frontends import SOURCE_MULTIPLE, min_reference_samples, pad_source, quantise_content
from models.noro.hubert import load_hubert, tiny_hubert_params
from models.noro.kmeans import KMeansQuantizer, read_cluster_centres
from models.noro.mel import pad_reference, reference_log_mel
from models.noro.model import load_noro_model, noro_state_shapes
from models.noro.official import OFFICIAL_FILES
from models.noro.pitch import fill_unvoiced, normalise_pitch
from models.noro.vocoder import TINY_VOCODER_CONFIG, check_vocoder_fits
from models.vocoders.configs import VocoderConfig

PARITY = Path(os.environ.get("AMPHION_PARITY_DIR") or Path(__file__).resolve().parents[2] / "shared" / "parity")
SR = 16000


@pytest.fixture(scope="module")
def pipeline() -> NoroPipeline:
    return NoroPipeline.tiny(seed=0)


def _tone(seconds: float, hz: float) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (0.3 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def _inputs(model, frames: int = 12, batch: int = 1, seed: int = 0):
    cfg = model.cfg
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(batch, frames, cfg.content_dim, generator=g), torch.randn(batch, frames, generator=g),
            torch.randn(batch, 20, cfg.n_mels, generator=g), torch.ones(batch, 20, dtype=torch.bool),
            torch.randn(batch, frames, cfg.n_mels, generator=g))


# ---------------------------------------------------------------------------------------------
# model: seeds, strict loading, layout


def test_same_seed_same_weights_and_output():
    a, b = build_noro_model(tiny_config(), seed=3), build_noro_model(tiny_config(), seed=3)
    c = build_noro_model(tiny_config(), seed=4)
    sa, sc = a.state_dict(), c.state_dict()
    assert all(torch.equal(v, b.state_dict()[k]) for k, v in sa.items())
    assert not torch.equal(sa["diffusion.diff_estimator.in_proj.weight"], sc["diffusion.diff_estimator.in_proj.weight"])
    args = _inputs(a)
    out_a = a.generate(*args, steps=3, temperature=1.2)
    assert torch.equal(out_a, b.generate(*args, steps=3, temperature=1.2))
    assert torch.isfinite(out_a).all() and out_a.shape == (1, 12, 80)


def test_tiny_build_leaves_the_global_rng_alone():
    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    build_noro_model(tiny_config(), seed=0)
    assert torch.equal(torch.rand(3), expected)


def test_strict_load_names_the_keys(tmp_path):
    model = build_noro_model(tiny_config(), seed=0)
    state = dict(model.state_dict())
    state.pop("diffusion.diff_estimator.layers.0.film.gain.weight")
    state["diffusion.extra.weight"] = torch.zeros(1)
    state["content_f0_enc.2.weight"] = torch.zeros(64, 32, 3)
    with pytest.raises(CheckpointError) as err:
        build_noro_model(tiny_config(), state)
    msg = str(err.value)
    assert "missing keys (1): diffusion.diff_estimator.layers.0.film.gain.weight" in msg
    assert "unexpected keys (1): diffusion.extra.weight" in msg
    assert "content_f0_enc.2.weight (64, 32, 3) vs expected (64, 33, 3)" in msg
    # A complete file round-trips exactly, through the loader the deployment uses.
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp_path / "model.safetensors"))
    loaded = load_noro_model(tmp_path / "model.safetensors", tiny_config())
    args = _inputs(model)
    assert torch.equal(loaded.generate(*args, steps=2, temperature=1.0), model.generate(*args, steps=2, temperature=1.0))
    with pytest.raises(CheckpointError, match="Noro checkpoint not found"):
        load_noro_model(tmp_path / "absent.safetensors", tiny_config())


def test_official_layout_matches_official_keys():
    path = PARITY / "noro_model" / "official_keys.json"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    entry = json.loads(path.read_text())["files"]["model.safetensors"]
    want = {k: tuple(v) for k, v in entry["keys"].items()}
    got = noro_state_shapes(official_config())
    assert sorted(set(want) - set(got)) == [] and sorted(set(got) - set(want)) == []
    assert got == want
    assert sum(int(np.prod(s)) for s in got.values()) == entry["elements"]


def test_batch_position_quirk_is_reproduced():
    """Item 0 of a batch equals the same item alone; item 1 does not (it carries pe[1])."""
    model = build_noro_model(tiny_config(), seed=1)
    content, pitch, mel, mask, noise = _inputs(model, batch=2)
    with torch.inference_mode():
        both = model.speaker(mel, mask)
        first = model.speaker(mel[:1], mask[:1])
        second = model.speaker(mel[1:], mask[1:])
    assert torch.allclose(both[0], first[0], atol=1e-6)
    assert not torch.allclose(both[1], second[0], atol=1e-3)


# ---------------------------------------------------------------------------------------------
# configs


def test_config_parsing_and_refusals():
    cfg = official_config()
    assert (cfg.reference_encoder.query_heads, cfg.diffusion.estimator.layers, cfg.diffusion.sigma) == (8, 47, 1.0)
    assert (cfg.mel.win_length, cfg.mel.fmax, cfg.f0.frame_period_ms) == (800, 8000.0, 12.5)
    for path, value, pattern in [
        (("model", "diffusion", "ode_solve_method"), "midpoint", "ode_solve_method"),
        (("model", "diffusion", "diff_model_type"), "Transformer", "diff_model_type"),
        (("model", "reference_encoder", "ref_in_dim"), 64, "ref_in_dim"),
        (("model", "vc_feature", "hidden_dim"), 32, "hidden_dim"),
        (("n_mel",), 100, "n_mel"),
    ]:
        raw = json.loads(json.dumps(TINY_CONFIG))
        node = raw
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
        with pytest.raises(ConfigError, match=pattern):
            parse_noro_config(raw)
    raw = json.loads(json.dumps(OFFICIAL_CONFIG))
    del raw["model"]["diffusion"]["beta_max"]
    with pytest.raises(ConfigError, match="beta_max"):
        parse_noro_config(raw)


# ---------------------------------------------------------------------------------------------
# front ends


def test_padding_rules():
    assert pad_source(np.ones(1600, np.float32)).shape == (3200,)  # a full block when already aligned
    assert pad_source(np.ones(1601, np.float32)).shape == (3200,)
    assert pad_reference(np.ones(400, np.float32)).shape == (600,)
    assert pad_reference(np.ones(401, np.float32)).shape == (600,)
    assert min_reference_samples(official_config()) == 400
    mel = reference_log_mel(torch.from_numpy(pad_reference(_tone(0.5, 200))), official_config().mel)
    assert mel.shape == (1, 41, 80)


def test_pitch_filling_and_normalisation():
    f0 = np.array([0, 0, 100, 0, 200, 0], dtype=np.float64)
    assert fill_unvoiced(f0).tolist() == [100, 100, 100, 150, 200, 200]
    assert fill_unvoiced(np.zeros(4)).tolist() == [0, 0, 0, 0]
    assert torch.equal(normalise_pitch(torch.zeros(1, 5)), torch.zeros(1, 5))
    x = torch.tensor([[1.0, 2.0, 3.0]])
    assert torch.allclose(normalise_pitch(x), torch.tensor([[-1.0, 0.0, 1.0]]) / (1 + 1e-6))


def test_content_is_upsampled_then_snapped_to_centres():
    centres = torch.tensor([[0.0, 0.0], [10.0, 10.0]])
    feats = torch.tensor([[[0.1, 0.2], [9.0, 9.5], [0.3, -0.1], [11.0, 10.0], [0.0, 1.0]]])
    ids, vectors = quantise_content(feats, KMeansQuantizer(centres))
    assert ids.tolist() == [[0, 0, 1, 1, 0, 1, 1, 0]]  # 5 frames -> 8, frame i <- floor(i / 1.6)
    assert torch.equal(vectors[0, 2], centres[1])


# ---------------------------------------------------------------------------------------------
# user-supplied files


def _fake_sklearn(monkeypatch):
    names = ["sklearn", "sklearn.cluster", "sklearn.cluster._kmeans"]
    for name in names:
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))

    class MiniBatchKMeans:
        pass

    MiniBatchKMeans.__module__ = "sklearn.cluster._kmeans"
    MiniBatchKMeans.__qualname__ = "MiniBatchKMeans"
    sys.modules["sklearn.cluster._kmeans"].MiniBatchKMeans = MiniBatchKMeans
    return MiniBatchKMeans


def test_kmeans_joblib_read_without_sklearn_or_code(tmp_path, monkeypatch):
    import joblib

    estimator = _fake_sklearn(monkeypatch)()
    estimator.cluster_centers_ = np.random.default_rng(0).standard_normal((6, 4)).astype(np.float32)
    estimator.random_state = np.random.RandomState(0)
    estimator.n_clusters = 6
    joblib.dump(estimator, tmp_path / "kmeans.joblib", compress=3)
    for name in ["sklearn", "sklearn.cluster", "sklearn.cluster._kmeans"]:
        monkeypatch.delitem(sys.modules, name)
    centres = read_cluster_centres(tmp_path / "kmeans.joblib")
    assert np.array_equal(centres.numpy(), estimator.cluster_centers_)

    class Evil:
        def __reduce__(self):
            return (os.system, ("true",))

    (tmp_path / "evil.pkl").write_bytes(pickle.dumps({"cluster_centers_": Evil()}))
    with pytest.raises(CheckpointError, match="refusing to load"):
        read_cluster_centres(tmp_path / "evil.pkl")
    np.save(tmp_path / "kmeans.npy", estimator.cluster_centers_)
    assert torch.equal(read_cluster_centres(tmp_path / "kmeans.npy"), centres)
    with pytest.raises(CheckpointError, match="k-means file not found"):
        read_cluster_centres(tmp_path / "absent.joblib")


def test_hubert_reads_hugging_face_state_dicts(tmp_path):
    transformers = pytest.importorskip("transformers")
    cfg = transformers.HubertConfig(
        hidden_size=32, num_hidden_layers=10, num_attention_heads=2, intermediate_size=64, conv_dim=(16,) * 7,
        num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4, feat_extract_norm="group",
        do_stable_layer_norm=False, conv_bias=False, feat_proj_layer_norm=True, hidden_dropout=0.0,
        attention_dropout=0.0, activation_dropout=0.0, feat_proj_dropout=0.0, layerdrop=0.0)
    torch.manual_seed(0)
    hf = transformers.HubertModel(cfg).eval()
    # The 2021 pytorch_model.bin stores the positional conv's weight norm under the old names.
    state = {k.replace("parametrizations.weight.original0", "weight_g").replace("parametrizations.weight.original1",
                                                                                 "weight_v"): v
             for k, v in hf.state_dict().items()}
    torch.save(state, tmp_path / "pytorch_model.bin")
    ours = load_hubert(tmp_path / "pytorch_model.bin", params=tiny_hubert_params(32))
    wav = torch.randn(1, 3280, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want = hf(wav, output_hidden_states=True).hidden_states[9]
    assert torch.allclose(ours(wav), want, atol=1e-5)
    state.pop("encoder.layers.3.attention.k_proj.weight")
    torch.save(state, tmp_path / "broken.bin")
    with pytest.raises(CheckpointError, match=r"encoder\.transformer\.layers\.3\.attention\.k_proj\.weight"):
        load_hubert(tmp_path / "broken.bin", params=tiny_hubert_params(32))


def test_hubert_base_layout_matches_hugging_face():
    """facebook/hubert-base-ls960's names and shapes (HubertConfig's defaults are that model) map onto
    ours up to layer 9 exactly (meta device: nothing is allocated)."""
    transformers = pytest.importorskip("transformers")
    from models.noro.hubert import HUBERT_BASE_PARAMS, NORO_LAYER, _model, _up_to_layer, torchaudio_keys

    with torch.device("meta"):
        hf = transformers.HubertModel(transformers.HubertConfig())
    mapped = _up_to_layer(torchaudio_keys(hf.state_dict()), NORO_LAYER, "hf")
    ours = _model(HUBERT_BASE_PARAMS, NORO_LAYER, "meta").state_dict()
    assert sorted(mapped) == sorted(ours)
    assert all(tuple(mapped[k].shape) == tuple(v.shape) for k, v in ours.items())


def test_missing_files_are_named(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"")
    missing = missing_files(tmp_path, tmp_path / "hubert")
    assert missing == ["kmeans.*", "vocoder/config.json", "vocoder/bigvgan_generator.pt",
                       "HuBERT-base (pytorch_model.bin of facebook/hubert-base-ls960)"]
    with pytest.raises(CheckpointError, match="missing kmeans"):
        NoroPipeline.from_folder(tmp_path, tmp_path / "hubert")
    assert OFFICIAL_FILES["noro"].local_dir_env == "AMPHION_NORO_DIR"


def test_vocoder_must_take_noros_mel():
    check_vocoder_fits(TINY_VOCODER_CONFIG, "tiny")
    from dataclasses import replace

    wrong = VocoderConfig(name="bigvgan", generator=TINY_VOCODER_CONFIG.generator,
                          mel=replace(TINY_VOCODER_CONFIG.mel, sample_rate=24000))
    with pytest.raises(CheckpointError, match="24000 Hz"):
        check_vocoder_fits(wrong, "user vocoder")


# ---------------------------------------------------------------------------------------------
# the pipeline


def test_request_ranges(pipeline):
    src, tgt = _tone(0.2, 150), _tone(0.1, 220)
    assert (DEFAULT_STEPS, DEFAULT_SIGMA, STEPS_RANGE, SIGMA_RANGE) == (200, 1.2, (50, 500), (0.9, 1.5))
    ok = pipeline.check(src, tgt, steps=50, sigma=0.9, seed=1)
    assert (ok.steps, ok.sigma, ok.seed) == (50, 0.9, 1)
    pipeline.check(src, tgt, steps=500, sigma=1.5, seed=0)
    for kwargs, pattern in [({"steps": 49}, "steps"), ({"steps": 501}, "steps"), ({"steps": 100.0}, "steps"),
                            ({"sigma": 0.89}, "sigma"), ({"sigma": 1.51}, "sigma"), ({"sigma": float("nan")}, "sigma"),
                            ({"seed": -1}, "seed")]:
        with pytest.raises(NoroInputError, match=pattern):
            pipeline.check(src, tgt, **kwargs)
    with pytest.raises(NoroInputError, match="too short"):
        pipeline.check(src, tgt[:399])
    with pytest.raises(NoroInputError, match="mono"):
        pipeline.check(np.zeros((2, 800), np.float32), tgt)
    with pytest.raises(NoroInputError, match="empty"):
        pipeline.check(np.zeros(0, np.float32), tgt)


def test_convert_end_to_end_is_seeded(pipeline):
    pytest.importorskip("pyworld")
    src, tgt = _tone(0.3, 150), _tone(0.1, 220)
    steps: list = []
    a = pipeline.convert(src, tgt, steps=50, seed=5, on_step=lambda s, n: steps.append((s, n)))
    assert a.dtype == np.float32 and a.shape == src.shape and np.isfinite(a).all()
    assert steps[0] == (1, 50) and steps[-1] == (50, 50) and len(steps) == 50
    assert np.array_equal(a, pipeline.convert(src, tgt, steps=50, seed=5))
    # The pieces: frames are the padded source's N' / 200; the mel is what the vocoder takes.
    features = pipeline.source_features(src)
    padded = (src.shape[0] // SOURCE_MULTIPLE + 1) * SOURCE_MULTIPLE
    assert features.frames == padded // 200 and features.pitch.shape == (1, padded // 200)
    reference = pipeline.reference_features(tgt)
    mel = pipeline.generate_mel(features, reference, steps=50, sigma=1.2, seed=5)
    assert mel.shape == (80, padded // 200)
    assert np.array_equal(pipeline.vocode(mel)[: src.shape[0]], a)
    other = pipeline.generate_mel(features, reference, steps=2, sigma=1.2, seed=6)
    assert not np.array_equal(other, pipeline.generate_mel(features, reference, steps=2, sigma=1.2, seed=5))


def test_from_folder_loads_every_user_file(tmp_path, pipeline):
    """A complete folder in the official layout (tiny sizes) loads strictly and converts like the
    pipeline whose weights it holds."""
    pytest.importorskip("pyworld")
    from dataclasses import asdict

    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in pipeline.model.state_dict().items()}, str(tmp_path / "model.safetensors"))
    (tmp_path / "args.json").write_text(json.dumps(TINY_CONFIG))
    np.save(tmp_path / "kmeans.npy", pipeline.kmeans.cluster_centers.numpy())
    gen, mel = TINY_VOCODER_CONFIG.generator, TINY_VOCODER_CONFIG.mel
    flat = {k: v for k, v in asdict(gen).items() if k != "n_mels"}
    flat.update(num_mels=mel.n_mels, sampling_rate=mel.sample_rate, hop_size=mel.hop_length, n_fft=mel.n_fft,
                win_size=mel.win_length, fmin=mel.fmin, fmax=mel.fmax)
    (tmp_path / "vocoder").mkdir()
    (tmp_path / "vocoder" / "config.json").write_text(json.dumps(flat))
    torch.save({"generator": pipeline.vocoder.generator.state_dict()}, tmp_path / "vocoder" / "bigvgan_generator.pt")
    torch.save(pipeline.hubert.model.state_dict(), tmp_path / "hubert.pth")
    loaded = NoroPipeline.from_folder(tmp_path, tmp_path / "hubert.pth", hubert_params=tiny_hubert_params(32))
    src, tgt = _tone(0.2, 150), _tone(0.1, 220)
    assert loaded.weights_kind == "pretrained"
    mels = [p.generate_mel(p.source_features(src), p.reference_features(tgt), steps=3, sigma=1.2, seed=2)
            for p in (loaded, pipeline)]
    assert np.array_equal(mels[0], mels[1])
    assert np.array_equal(loaded.vocode(mels[0]), pipeline.vocode(mels[1]))
