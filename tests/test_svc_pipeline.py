"""The SVC conversion pipeline (models/svc/pipeline.py) on the tiny profile: each of the four recipes end
to end on 2 s of synthetic singing, determinism by seed, the singer choice, the key-shift modes, step
limits, stereo / 48 kHz input, long input in overlapping segments, the stage split a serving layer
uses, the singer statistics of a checkpoint folder and where the weights come from.

The building blocks (front ends, models, vocoder) have their own tests and parity fixtures; these check
how the pipeline puts them together, against the reference's inference as models/svc/README.md
("Pipeline") describes it."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from models.core.configs import ConfigError
from models.svc import official, transformer_svc
from models.svc.diffusion import DiffusionStepsError
from models.svc.frontends import frame_pitch_and_uv, voiced_median
from models.svc.pipeline import (
    MODELS,
    OUTPUT_PEAK,
    SAMPLE_RATE,
    SEGMENT_OVERLAP_SAMPLES,
    SEGMENT_SAMPLES,
    SVCInputError,
    SVCPipeline,
    SVCStepsError,
    is_silence,
    merge_segments,
    parse_key_shift,
    resolve_parts,
    split_segments,
    to_mono_24k,
    turn_up,
)
from models.svc.singers import (
    CHOSEN_BY_CLOSEST_F0,
    CHOSEN_BY_REQUEST,
    TINY_SINGER_NAMES,
    load_singer_table,
    singer_dataset,
    tiny_singer_table,
)
from models.weights import WeightsUnavailable

STEPS = {"multiplecontentssvc": 4, "diffcomosvc": 3}  # few steps: the tiny models only need to run


def sung(seconds: float, freq: float = 220.0, sr: int = SAMPLE_RATE, amp: float = 0.3) -> np.ndarray:
    """A vibrato tone with a little breath noise: Praat finds it voiced at about ``freq``."""
    t = np.arange(int(seconds * sr)) / sr
    inst = freq * (1 + 0.01 * np.sin(2 * np.pi * 5 * t))
    phase = 2 * np.pi * np.cumsum(inst) / sr
    tone = np.sin(phase) + 0.3 * np.sin(2 * phase) + 0.1 * np.sin(3 * phase)
    noise = np.random.default_rng(0).standard_normal(t.shape[0]) * amp * 0.03
    return (amp * tone / 1.4 + noise).astype(np.float32)


@pytest.fixture(scope="module")
def pipes() -> dict[str, SVCPipeline]:
    return {model: SVCPipeline.from_weights(model, "tiny") for model in MODELS}


@pytest.fixture(scope="module")
def features(pipes) -> dict:
    """The front ends of 2 s at 220 Hz with a 300 Hz reference (every tiny pipeline's front ends are the same)."""
    return pipes["transformersvc"].front_ends(sung(2.0), SAMPLE_RATE, sung(1.0, 300.0), SAMPLE_RATE)


class Recorder:
    """Stands in for an acoustic model and keeps the inputs of every call."""

    def __init__(self, model):
        self.model, self.config, self.calls = model, model.config, []
        self.infer = self._recorded(model.infer) if hasattr(model, "infer") else None

    def _recorded(self, fn):
        def call(*args, **kwargs):
            self.calls.append(args)
            return fn(*args, **kwargs)
        return call

    def __call__(self, *args, **kwargs):
        return self._recorded(self.model)(*args, **kwargs)


def recorded(pipe: SVCPipeline) -> Recorder:
    recorder = Recorder(pipe.acoustic_model)
    pipe.acoustic_model = recorder
    return recorder


@pytest.fixture
def restore(pipes):
    saved = {m: p.acoustic_model for m, p in pipes.items()}
    yield
    for m, p in pipes.items():
        p.acoustic_model = saved[m]


# ---------------------------------------------------------------------------------------------
# end to end


@pytest.mark.parametrize("model", MODELS)
def test_end_to_end_and_seeded(pipes, model):
    pipe = pipes[model]
    events = []
    src, ref = sung(2.0), sung(1.0, 300.0)
    kwargs = dict(target_singer="vocalist_l1_Adele", diffusion_steps=STEPS.get(model), seed=7)
    a = pipe.convert(src, SAMPLE_RATE, ref, SAMPLE_RATE, on_step=lambda *e: events.append(e), **kwargs)
    b = pipe.convert(src, SAMPLE_RATE, ref, SAMPLE_RATE, **kwargs)
    frames = src.shape[0] // 256
    assert a.sample_rate == 24000 and a.audio.dtype == np.float32 and a.audio.shape == (frames * 256,)
    assert np.isfinite(a.audio).all() and math.isclose(np.abs(a.audio).max(), OUTPUT_PEAK, rel_tol=1e-5)
    assert (a.singer, a.singer_chosen_by) == ("vocalist_l1_Adele", CHOSEN_BY_REQUEST)
    assert np.array_equal(a.audio, b.audio)  # same seed, same audio
    stages = [s for s, _, _ in events]
    expected = ["f0", "whisper", "contentvec", "acoustic"] + ([] if model == "vitssvc" else ["vocoder"])
    assert list(dict.fromkeys(stages)) == expected
    acoustic = [(step, total) for s, step, total in events if s == "acoustic"]
    calls = pipe.calls_per_segment(STEPS.get(model))
    assert acoustic == [(i, calls) for i in range(1, calls + 1)]
    if model in STEPS:  # a diffusion model draws noise: another seed, another audio
        c = pipe.convert(src, SAMPLE_RATE, ref, SAMPLE_RATE, **{**kwargs, "seed": 8})
        assert not np.array_equal(a.audio, c.audio)


def test_stages_split_like_deployments(pipes, features):
    # Front ends, acoustic model and vocoder built separately (as three deployments would) give
    # what the whole pipeline gives.
    front = SVCPipeline.from_weights("multiplecontentssvc", "tiny", parts=("front_ends",))
    middle = SVCPipeline.from_weights("multiplecontentssvc", "tiny", parts=("acoustic",))
    back = SVCPipeline.from_weights("multiplecontentssvc", "tiny", parts=("vocoder",))
    assert (front.parts, middle.parts, back.parts) == (("front_ends",), ("acoustic",), ("vocoder",))
    src, ref = sung(2.0), sung(1.0, 300.0)
    feats = front.front_ends(src, SAMPLE_RATE, ref, SAMPLE_RATE)
    out = middle.acoustic(feats, key_shift=2, diffusion_steps=4, seed=3)
    audio = back.vocode(out["mels"])
    whole = pipes["multiplecontentssvc"].convert(src, SAMPLE_RATE, ref, SAMPLE_RATE, key_shift=2,
                                                 diffusion_steps=4, seed=3)
    assert np.array_equal(audio, whole.audio) and out["singer"] == whole.singer
    mel = out["mels"][0]
    assert mel.dtype == np.float32 and mel.shape == (src.shape[0] // 256, 100)
    with pytest.raises(RuntimeError, match="without its 'front_ends' part"):
        middle.front_ends(src)
    with pytest.raises(RuntimeError, match="without its 'vocoder' part"):
        front.vocode(out["mels"])


def test_front_end_features(features):
    assert len(features["segments"]) == 1
    seg = features["segments"][0]
    frames = sung(2.0).shape[0] // 256
    assert seg["energy"].shape == (frames,) and seg["energy"].dtype == np.float32
    assert seg["whisper"].shape == (frames, 32) and seg["contentvec"].shape == (frames, 16)
    assert seg["f0"].dtype == np.float64 and frames - 8 <= seg["f0"].shape[0] <= frames
    assert abs(features["source_f0_median"] - 220) < 5 and abs(features["reference_f0_median"] - 300) < 5
    assert features["num_samples"] == 48000


# ---------------------------------------------------------------------------------------------
# singers and key shift


def test_singers_listing_and_choice(pipes, features):
    pipe = pipes["transformersvc"]
    listing = pipe.singers()
    assert [s["name"] for s in listing] == list(TINY_SINGER_NAMES)
    medians = [s["f0_median"] for s in listing]
    assert medians == sorted(medians) and 150 < medians[0] < medians[-1] < 400
    # No target singer: the one whose median is nearest the reference's 300 Hz (on a log scale).
    out = pipe.acoustic(features)
    best = min(listing, key=lambda s: abs(math.log(s["f0_median"] / features["reference_f0_median"])))
    assert (out["singer"], out["singer_chosen_by"]) == (best["name"], CHOSEN_BY_CLOSEST_F0)
    # The part after the dataset names a singer too; unknown names are refused with the list.
    assert pipe.acoustic(features, target_singer="Beyonce")["singer"] == "vocalist_l1_Beyonce"
    with pytest.raises(SVCInputError, match="unknown target_singer 'Nobody'.*vocalist_l1_Adele"):
        pipe.acoustic(features, target_singer="Nobody")
    no_ref = {**features, "reference_f0_median": None}
    with pytest.raises(SVCInputError, match="give target_singer"):
        pipe.acoustic(no_ref)
    with pytest.raises(SVCInputError, match="give target_singer"):
        pipe.convert(sung(1.0))


def _ratios(calls: list, features: dict) -> list[float]:
    """Per call (one per segment, in order): the shifted frame_pitch over the unshifted track, on voiced frames."""
    out = []
    for call, seg in zip(calls, features["segments"]):
        pitch = call[0][0].cpu().numpy()
        plain, _ = frame_pitch_and_uv(seg["f0"], seg["energy"].shape[0])
        voiced = plain > 0
        ratio = pitch[voiced] / plain[voiced]
        assert np.allclose(ratio, ratio[0], rtol=1e-9) and np.array_equal(pitch == 0, ~voiced)
        out.append(float(ratio[0]))
    return out


def test_key_shift_modes(pipes, features, restore):
    pipe = pipes["transformersvc"]
    rec = recorded(pipe)
    table = pipe.singer_table
    pipe.acoustic(features, target_singer="vocalist_l1_Adele")  # autoshift, the default
    pipe.acoustic(features, target_singer="vocalist_l1_Adele", key_shift="reference")
    pipe.acoustic(features, target_singer="vocalist_l1_Adele", key_shift=-5)
    pipe.acoustic(features, target_singer="vocalist_l1_Adele", key_shift="0")
    got = [_ratios([call], features)[0] for call in rec.calls]
    src = features["source_f0_median"]
    assert got[0] == pytest.approx(table.f0_median("vocalist_l1_Adele") / src, rel=1e-9)
    assert got[1] == pytest.approx(features["reference_f0_median"] / src, rel=1e-9)
    assert got[2] == pytest.approx(2 ** (-5 / 12), rel=1e-12) and got[3] == 1.0
    for bad in (25, -25, "up", 1.5, True):
        with pytest.raises(SVCInputError, match="key_shift"):
            pipe.acoustic(features, key_shift=bad)
    with pytest.raises(SVCInputError, match="reference_audio with voiced frames"):
        pipe.acoustic({**features, "reference_f0_median": None}, target_singer="Adele", key_shift="reference")
    assert parse_key_shift(None) == "autoshift" and parse_key_shift(" Reference ") == "reference"
    assert parse_key_shift("-3") == -3 and parse_key_shift(np.int64(24)) == 24


def test_steps_refused(pipes, features):
    with pytest.raises(SVCStepsError, match="diffusion_steps") as info:
        pipes["multiplecontentssvc"].acoustic(features, target_singer="Adele", diffusion_steps=3)
    assert isinstance(info.value, DiffusionStepsError) and isinstance(info.value, ValueError)
    with pytest.raises(SVCStepsError):
        pipes["diffcomosvc"].convert(sung(1.0), target_singer="Adele", diffusion_steps=0)
    with pytest.raises(SVCInputError, match="no diffusion steps") as info:
        pipes["transformersvc"].acoustic(features, target_singer="Adele", diffusion_steps=10)
    assert not isinstance(info.value, DiffusionStepsError)
    assert pipes["multiplecontentssvc"].default_steps == 1000 and pipes["diffcomosvc"].default_steps == 40
    assert pipes["vitssvc"].default_steps is None
    with pytest.raises(SVCInputError, match="seed"):
        pipes["transformersvc"].acoustic(features, target_singer="Adele", seed=-1)


# ---------------------------------------------------------------------------------------------
# input audio, segments


def test_stereo_48k_and_pcm_input(pipes):
    mono = sung(1.0, sr=48000)
    stereo = np.stack([mono, 0.5 * mono])  # [channels, samples]
    expect = to_mono_24k(0.75 * mono, 48000, "x")
    assert expect.shape == (24000,)
    assert np.allclose(to_mono_24k(stereo, 48000, "x"), expect, atol=1e-6)
    assert np.allclose(to_mono_24k(stereo.T, 48000, "x"), expect, atol=1e-6)  # [samples, channels]
    pcm = (sung(1.0) * 32767).astype(np.int16)
    assert np.allclose(to_mono_24k(pcm, 24000, "x"), pcm / 32767, atol=1e-6)
    pipe = pipes["transformersvc"]
    a = pipe.convert(stereo, 48000, target_singer="Adele")
    b = pipe.convert(to_mono_24k(stereo, 48000, "x"), 24000, target_singer="Adele")
    assert np.array_equal(a.audio, b.audio) and a.audio.shape == (24000 // 256 * 256,)
    for bad, match in ((np.zeros((3, 4, 5)), "mono"), (np.full(4800, np.nan), "NaN"),
                       (np.zeros((16, 48000)), "channels"), (sung(0.05), "too short")):
        with pytest.raises(SVCInputError, match=match):
            pipe.front_ends(bad, 24000)
    with pytest.raises(SVCInputError, match="sample rate"):
        pipe.front_ends(sung(1.0), 0)


def test_long_input_in_overlapping_segments(pipes, restore):
    # 12 s: 9 s at 200 Hz, then 300 Hz -> segments [0, 10 s) and [9 s, 12 s).
    audio = np.concatenate([sung(9.0, 200.0), sung(3.0, 300.0)])
    feats = pipes["transformersvc"].front_ends(audio, SAMPLE_RATE, None, on_step=None)
    segs = feats["segments"]
    assert [s["energy"].shape[0] for s in segs] == [SEGMENT_SAMPLES // 256, 3 * SAMPLE_RATE // 256]
    whole = voiced_median(np.concatenate([s["f0"] for s in segs]))
    assert feats["source_f0_median"] == whole and feats["reference_f0_median"] is None
    # autoshift: by the whole source's median (the reference's statistics over all segments) ...
    mc = recorded(pipes["transformersvc"])
    mc_out = pipes["transformersvc"].acoustic(feats, target_singer="Adele")
    adele = pipes["transformersvc"].singer_table.f0_median("vocalist_l1_Adele")
    assert _ratios(mc.calls, feats) == pytest.approx([adele / whole] * 2, rel=1e-9)
    assert [m.shape[0] for m in mc_out["mels"]] == [s["energy"].shape[0] for s in segs]
    # ... except VitsSVC, whose reference inference shifts each segment by its own median.
    vits = recorded(pipes["vitssvc"])
    out = pipes["vitssvc"].acoustic(feats, target_singer="Adele")
    own = [voiced_median(s["f0"]) for s in segs]
    assert _ratios(vits.calls, feats) == pytest.approx([adele / m for m in own], rel=1e-9)
    lengths = [s["energy"].shape[0] * 256 for s in segs]
    assert out["audio"].shape == (sum(lengths) - SEGMENT_OVERLAP_SAMPLES,)
    assert math.isclose(np.abs(out["audio"]).max(), OUTPUT_PEAK, rel_tol=1e-5)


def test_split_merge_silence_helpers():
    n = 2 * SEGMENT_SAMPLES
    wave = np.arange(n, dtype=np.float32)
    segs = split_segments(wave)
    stride = SEGMENT_SAMPLES - SEGMENT_OVERLAP_SAMPLES
    assert [s[0] for s in segs] == [0, stride, 2 * stride] and segs[-1][-1] == n - 1
    assert split_segments(wave[:SEGMENT_SAMPLES])[0].shape == (SEGMENT_SAMPLES,)
    assert len(split_segments(wave[:SEGMENT_SAMPLES + 1])) == 2
    # Equal segments crossfade into the same constant, then raised to the peak.
    merged = merge_segments([np.full(30000, 0.2, np.float32), np.full(40000, 0.2, np.float32)])
    assert merged.shape == (70000 - SEGMENT_OVERLAP_SAMPLES,)
    assert np.allclose(merged, OUTPUT_PEAK, atol=1e-6)
    one = np.full(1000, 0.1, np.float32)
    assert np.array_equal(merge_segments([one]), one)  # a single segment is left as is
    # The crossfade weights: each segment's triangle, normalised where they overlap.
    a, b = np.ones(SEGMENT_OVERLAP_SAMPLES + 10, np.float32), -np.ones(SEGMENT_OVERLAP_SAMPLES + 10, np.float32)
    mid = merge_segments([a, b])
    assert mid[0] > 0 and mid[-1] < 0 and mid.shape == (SEGMENT_OVERLAP_SAMPLES + 20,)
    assert is_silence(np.zeros(48000)) and is_silence(sung(0.02)) and not is_silence(sung(1.0))
    assert is_silence(sung(1.0, amp=0.005)) and not is_silence(sung(1.0, amp=0.02))
    assert np.abs(turn_up(sung(1.0, amp=0.01))).max() == pytest.approx(OUTPUT_PEAK, rel=1e-6)
    assert np.array_equal(turn_up(np.zeros(5)), np.zeros(5))


# ---------------------------------------------------------------------------------------------
# singer statistics of a checkpoint folder, weights


def _stats(folder: Path, dataset: str, medians: dict[str, float], n_mel: int, low: float, skip: str = "") -> None:
    pitches = folder / "data" / dataset / "pitches"
    pitches.mkdir(parents=True, exist_ok=True)
    stats = {name: {"voiced_positions": {"mean": m + 5, "std": 20.0, "median": m, "min": 60.0, "max": 900.0},
                    "total_positions": {"mean": m / 2, "std": 90.0, "median": m - 30, "min": 0.0, "max": 900.0}}
             for name, m in medians.items()}
    (pitches / "statistics.json").write_text(json.dumps(stats))
    mel_dir = folder / "data" / dataset / "mel_min_max_stats"
    mel_dir.mkdir(parents=True, exist_ok=True)
    for name, values in (("mel_min.npy", np.full(n_mel, low)), ("mel_max.npy", np.linspace(2, -1, n_mel))):
        if name != skip:
            np.save(mel_dir / name, values.astype(np.float32))


def _transformer_run(root: Path) -> Path:
    singers = {"opencpop_female1": 0, "vocalist_l1_Adele": 1}
    state_dir = root / "checkpoint" / "epoch-0001_step-0000010_loss-0.5"
    state_dir.mkdir(parents=True)
    (root / "args.json").write_text(json.dumps(transformer_svc.TINY_ARGS))
    (root / "singers.json").write_text(json.dumps(singers))
    model = transformer_svc.build_transformer_svc(seed=5)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(state_dir / "model.safetensors"))
    _stats(root, "opencpop", {"opencpop_female1": 410.5}, 100, -9.0)
    _stats(root, "vocalist_l1", {"vocalist_l1_Adele": 332.9}, 100, -11.0)
    return root


def test_training_run_with_statistics(tmp_path, monkeypatch, features):
    run = _transformer_run(tmp_path / "run")
    monkeypatch.setenv("AMPHION_TRANSFORMERSVC_DIR", str(run))
    pipe = SVCPipeline.from_weights("transformersvc", "pretrained", parts=("acoustic",))
    assert pipe.weights_kind == "pretrained" and str(tmp_path) not in pipe.note
    assert pipe.singers() == [{"name": "opencpop_female1", "f0_median": 410.5},
                              {"name": "vocalist_l1_Adele", "f0_median": 332.9}]
    out = pipe.acoustic(features, target_singer="vocalist_l1_Adele", key_shift=0)
    # The normalised mel, de-normalised with the target singer's dataset's extrema.
    seg = features["segments"][0]
    pitch, uv = frame_pitch_and_uv(seg["f0"], seg["energy"].shape[0])
    model = transformer_svc.build_transformer_svc(seed=5)
    norm = model(torch.from_numpy(pitch)[None], torch.from_numpy(uv)[None], torch.from_numpy(seg["energy"])[None],
                 torch.from_numpy(seg["whisper"])[None], torch.from_numpy(seg["contentvec"])[None],
                 torch.tensor([[1]]))[0].numpy()
    low, high = np.float32(-11.0), np.linspace(2, -1, 100).astype(np.float32)
    assert np.allclose(out["mels"][0], (norm + 1) / 2 * (high - low + 1e-12) + low, atol=1e-5)
    assert pipe.acoustic(features)["singer"] == "vocalist_l1_Adele"  # the reference sings at 300 Hz
    assert pipe.acoustic({**features, "reference_f0_median": 390.0})["singer"] == "opencpop_female1"
    # A missing statistics file is named relative to the run, never by its server path.
    (run / "data" / "opencpop" / "mel_min_max_stats" / "mel_min.npy").unlink()
    with pytest.raises(WeightsUnavailable, match="data/opencpop/mel_min_max_stats/mel_min.npy") as info:
        SVCPipeline.from_weights("transformersvc", "pretrained", parts=("acoustic",))
    assert str(tmp_path) not in str(info.value) and "$AMPHION_TRANSFORMERSVC_DIR" in str(info.value)


def test_singer_table_readers(tmp_path):
    _stats(tmp_path, "vocalist_l1", {"vocalist_l1_Adele": 330.0, "vocalist_l1_Beyonce": 318.0}, 4, -11.0)
    singers = {"vocalist_l1_Adele": 0, "vocalist_l1_Beyonce": 1}
    table = load_singer_table(tmp_path, singers, {"preprocess": {}}, n_mel=4, where="here")
    assert table.listing() == [{"name": "vocalist_l1_Adele", "f0_median": 330.0},
                               {"name": "vocalist_l1_Beyonce", "f0_median": 318.0}]
    assert table.closest(320.0) == "vocalist_l1_Beyonce" and table.closest(400.0) == "vocalist_l1_Adele"
    assert table.denormalise(np.full((2, 4), -1.0), "vocalist_l1_Adele") == pytest.approx(-11.0)
    # A model predicting audio needs no mel extrema; a singer missing from the statistics is refused.
    assert not load_singer_table(tmp_path, singers, {}, n_mel=None, where="here").mel_extrema
    with pytest.raises(ConfigError, match="vocalist_l1_Cher"):
        load_singer_table(tmp_path, {**singers, "vocalist_l1_Cher": 2}, {}, n_mel=None, where="here")
    with pytest.raises(ConfigError, match="100 finite values"):
        load_singer_table(tmp_path, singers, {}, n_mel=100, where="here")
    with pytest.raises(WeightsUnavailable, match="here: .*data/opencpop/pitches/statistics.json"):
        load_singer_table(tmp_path, {"opencpop_female1": 0}, {}, n_mel=None, where="here")
    # The folder names come from args.json's preprocess, as in the reference.
    (tmp_path / "data" / "vocalist_l1" / "pitches").rename(tmp_path / "data" / "vocalist_l1" / "f0s")
    assert load_singer_table(tmp_path, singers, {"preprocess": {"pitch_dir": "f0s"}}, n_mel=None, where="x")
    assert singer_dataset("vocalist_l1_Adele") == "vocalist_l1" and singer_dataset("solo") == "solo"
    tiny = tiny_singer_table()
    assert len(tiny.names) == 15 and tiny.mel_extrema["vocalist_l1"][0].shape == (100,)


def test_where_the_weights_come_from(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("AMPHION_HF_CACHE", str(tmp_path / "cache"))
    for name in ("AMPHION_WEIGHTS_DIR", "AMPHION_TRANSFORMERSVC_DIR", "AMPHION_SVC_DIR",
                 "AMPHION_CONTENTVEC_DIR", "AMPHION_SINGING_BIGVGAN_DIR"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(WeightsUnavailable, match=r"\$AMPHION_WEIGHTS_DIR/svc/TransformerSVC"):
        resolve_parts("transformersvc", "pretrained")
    assert resolve_parts("transformersvc", "auto")[0] == "tiny"
    assert resolve_parts("multiplecontentssvc", "auto")[0] == "tiny"
    # ContentVec is not on the hub: an operator's folder, named by its variable.
    whisper = tmp_path / "whisper"
    whisper.mkdir()
    for name in ("config.json", "model.safetensors"):
        (whisper / name).write_text("{}")
    with pytest.raises(WeightsUnavailable, match="AMPHION_CONTENTVEC_DIR"):
        resolve_parts("multiplecontentssvc", "pretrained", ("front_ends",), local_dirs={"whisper": whisper})
    with pytest.raises(ValueError, match="unknown"):
        resolve_parts("vitssvc", "tiny", ("vocoder",))  # VitsSVC decodes audio itself
    with pytest.raises(ValueError, match="unknown SVC model"):
        SVCPipeline.from_weights("nosuchsvc", "tiny")
    assert official.SINGING_VOCODER_FILES.repo_id == "amphion/BigVGAN_singing_bigdata"
    assert official.PIPELINE_FILES["whisper"].repo_id == "openai/whisper-medium"
    assert set(official.MULTIPLECONTENTS_SINGER_STATS_FILES.patterns) == {
        f"vocalist_l1_contentvec+whisper/data/vocalist_l1/{p}" for p in (
            "pitches/statistics.json", "mel_min_max_stats/mel_min.npy", "mel_min_max_stats/mel_max.npy")}
