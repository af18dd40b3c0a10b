"""Vevo / Vevo1.5 front ends, tokenizers and vocoder: official key layouts, loading from folders laid out like
the official releases (through models.weights), safe reading of the vq32 pickle, batching and windowing.

Numerical parity with the reference lives in tests/test_parity.py (fixtures vevo_mel, vevo_vocoder,
vevo_content_tokenizer, vevo_contentstyle_tokenizer, vevosing_tokenizers).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from models.core.checkpoints import CheckpointError
from models.core.configs import read_config
from models.maskgct.semantic_codec import SemanticCodec
from models.vevo import official as vevo_official
from models.vevo.configs import (
    OFFICIAL_CONTENT_TOKENIZER_YAML,
    OFFICIAL_VOCODER_JSON,
    ConfigError,
    VocosVocoderConfig,
    official_content_tokenizer_config,
    official_contentstyle_tokenizer_config,
    official_mel_config,
    official_vocoder_config,
    parse_content_tokenizer_config,
    parse_contentstyle_tokenizer_config,
    parse_mel_config,
    parse_vocoder_config,
)
from models.vevo.content_tokenizer import (
    CONTENT_TOKENIZER_FILE,
    VevoRepCodec,
    build_content_tokenizer,
    collapse_repeats,
    load_content_tokenizer,
    read_content_tokenizer_state,
    tiny_content_tokenizer_config,
)
from models.vevo.contentstyle_tokenizer import (
    CONTENTSTYLE_TOKENIZER_FILE,
    HUBERT_STATS_FILE,
    build_contentstyle_tokenizer,
    load_contentstyle_tokenizer,
    tiny_contentstyle_tokenizer_config,
)
from models.vevo.hubert import HUBERT_FILE, build_hubert, load_hubert, tiny_hubert_params
from models.vevo.mel import VevoMel
from models.vevo.vocoder import VOCODER_WEIGHTS_FILE, VevoVocoder, build_vocoder, load_vocoder, tiny_vocoder_config
from models.vevosing import official as sing_official
from models.vevosing.chromagram import Chromagram
from models.vevosing.tokenizers import (
    OFFICIAL_COCO_CONTENT_STYLE,
    OFFICIAL_COCO_STYLE,
    CocoTokenizer,
    build_coco_tokenizer,
    load_coco_tokenizer,
    official_coco_config,
    parse_coco_config,
    tiny_coco_config,
)
from models.vevosing.whisper_features import (
    WHISPER_STATS_FILE,
    WINDOW_SAMPLES,
    build_whisper_features,
    load_whisper_features,
    postprocess_whisper_features,
)
from models.weights import resolve

REPO_ROOT = Path(__file__).resolve().parents[1]
PARITY_DIR = Path(os.environ.get("AMPHION_PARITY_DIR") or REPO_ROOT.parent / "shared" / "parity")


def _official_keys(folder: str) -> dict[str, dict[str, list[int]]]:
    path = PARITY_DIR / folder / "official_keys.json"
    if not path.is_file():
        pytest.skip(f"parity fixtures not found at {PARITY_DIR}")
    return {name: entry["keys"] for name, entry in json.loads(path.read_text())["files"].items()}


def _shapes(module: torch.nn.Module) -> dict[str, list[int]]:
    return {k: list(v.shape) for k, v in module.state_dict().items()}


def _state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone().contiguous() for k, v in module.state_dict().items()}


def _pattern(key: str) -> str:
    return re.sub(r"\.\d+(?=\.)", ".N", key)


# ---------------------------------------------------------------------------------------------
# Official sizes: keys and shapes against the reference's (built on the meta device)
# ---------------------------------------------------------------------------------------------


def test_official_configs_give_the_official_keys_and_shapes() -> None:
    vocoder_keys = _official_keys("vevo_vocoder")
    vq32_keys = _official_keys("vevo_content_tokenizer")[CONTENT_TOKENIZER_FILE]
    vq8192_keys = _official_keys("vevo_contentstyle_tokenizer")[CONTENTSTYLE_TOKENIZER_FILE]
    coco_keys = _official_keys("vevosing_tokenizers")
    with torch.device("meta"):
        vocoder = VevoVocoder(official_vocoder_config())
        vq32 = VevoRepCodec(official_content_tokenizer_config())
        vq8192 = SemanticCodec(official_contentstyle_tokenizer_config())
        content_style = CocoTokenizer(official_coco_config("content_style"))
        prosody = CocoTokenizer(official_coco_config("style"))
    for file_name, keys in vocoder_keys.items():  # amphion/Vevo and amphion/Vevo1.5: same architecture
        assert file_name.endswith(VOCODER_WEIGHTS_FILE)
        assert _shapes(vocoder) == keys, file_name
    assert _shapes(vq32) == vq32_keys
    assert _shapes(vq8192) == vq8192_keys
    assert _shapes(content_style) == coco_keys["tokenizer/contentstyle_fvq16384_12.5hz/model.safetensors"]
    assert _shapes(prosody) == coco_keys["tokenizer/prosody_fvq512_6.25hz/model.safetensors"]


def test_official_file_table_matches_the_modules() -> None:
    files = vevo_official.OFFICIAL_FILES
    assert files["content_tokenizer"].patterns == (CONTENT_TOKENIZER_FILE,)
    assert files["vocoder"].repo_id == "amphion/Vevo" and files["vocoder"].patterns == (VOCODER_WEIGHTS_FILE,)
    assert {k for k in files if k.startswith(("ar_", "fm"))} == {"ar_vc", "ar_tts", "fm"}
    sing = sing_official.OFFICIAL_FILES
    assert sing["vocoder"].repo_id == "amphion/Vevo1.5" and sing["vocoder"].patterns == (VOCODER_WEIGHTS_FILE,)
    assert {"ar_singnet7k", "ar_sing0.4k", "fm_singnet7k", "fm_sing0.4k"} <= set(sing)
    assert all(f.repo_id or f.local_dir_env for f in [*files.values(), *sing.values()])


# ---------------------------------------------------------------------------------------------
# Configs
# ---------------------------------------------------------------------------------------------


def test_configs_parse_the_reference_files(tmp_path: Path) -> None:
    mel, voc = official_mel_config(), official_vocoder_config()
    assert (mel.sample_rate, mel.n_fft, mel.hop_size, mel.num_mels, mel.fmax) == (24000, 1920, 480, 128, 12000)
    assert (voc.dim, voc.num_layers, voc.n_fft, voc.hop_size) == (1024, 30, 1920, 480)
    assert official_content_tokenizer_config().codebook_size == 32
    assert official_contentstyle_tokenizer_config().codebook_size == 8192
    # Amphion writes json5 (comments, trailing commas); the vq32 config is YAML.
    (tmp_path / "Vocoder.json").write_text('{"preprocess": {"hop_size": 4, "sample_rate": 24000, "n_fft": 16, '
                                           '"num_mels": 8, "win_size": 16, "fmin": 0, "fmax": 12000, // x\n'
                                           '"mel_var": 8.14, "mel_mean": -4.92,}, "model": {"vocos": {"dim": 16}}}')
    raw = read_config(tmp_path / "Vocoder.json")
    assert parse_mel_config(raw).n_fft == 16
    assert parse_vocoder_config(raw).dim == 16 and parse_vocoder_config(raw).num_layers == 8  # constructor default
    import yaml

    (tmp_path / "c32.yaml").write_text(yaml.safe_dump(OFFICIAL_CONTENT_TOKENIZER_YAML))
    assert parse_content_tokenizer_config(read_config(tmp_path / "c32.yaml")) == official_content_tokenizer_config()
    ar_config = {"model": {"output_repcodec": {"codebook_size": 8192, "hidden_size": 1024, "codebook_dim": 8}}}
    assert parse_contentstyle_tokenizer_config(ar_config).codebook_size == 8192
    both = {"model": {"coco_style": OFFICIAL_COCO_STYLE, "coco_content_style": OFFICIAL_COCO_CONTENT_STYLE}}
    assert parse_coco_config(both["model"]["coco_style"]).num_codes(50) == 7  # 6.25 Hz: ceil(50 / 8)
    assert official_coco_config("content_style").num_codes(37) == 10


def test_config_errors_are_readable() -> None:
    with pytest.raises(ConfigError, match="missing required key 'mel_var'"):
        parse_mel_config({"preprocess": {k: v for k, v in OFFICIAL_VOCODER_JSON["preprocess"].items() if k != "mel_var"}})
    with pytest.raises(ConfigError, match="unknown keys"):
        parse_content_tokenizer_config({**OFFICIAL_CONTENT_TOKENIZER_YAML, "dropout": 0.1})
    with pytest.raises(ConfigError, match="stride-1"):
        parse_content_tokenizer_config({**OFFICIAL_CONTENT_TOKENIZER_YAML, "enc_strides": [2, 1]})
    with pytest.raises(ConfigError, match="encoder"):
        parse_coco_config({"coco_type": "style", "chromagram_dim": 24})
    with pytest.raises(ConfigError, match="whisper_dim"):
        parse_coco_config({**OFFICIAL_COCO_CONTENT_STYLE, "whisper_dim": None})


# ---------------------------------------------------------------------------------------------
# Mel, vocoder
# ---------------------------------------------------------------------------------------------


def test_mel_shapes_and_normalisation_round_trip() -> None:
    mel = VevoMel()
    wav = 0.1 * torch.randn(2, 24000)
    raw, norm = mel.raw(wav), mel(wav)
    assert raw.shape == (2, 128, 50) and norm.shape == (2, 50, 128)
    assert mel.num_frames(24000) == 50 and mel.num_frames(12345) == 25
    assert mel.frame_lengths(torch.tensor([24000, 12345])).tolist() == [50, 25]
    torch.testing.assert_close(mel.denormalise(norm), raw)


def test_tiny_vocoder_makes_24khz_audio_and_loads_from_both_official_layouts(tmp_path: Path) -> None:
    vocoder = build_vocoder(seed=0)
    mel = torch.randn(2, 7, 128)
    wav = vocoder.vocode(mel)
    assert wav.shape == (2, 7 * 480) and torch.isfinite(wav).all() and vocoder.sample_rate == 24000
    assert torch.equal(wav, build_vocoder(seed=0).vocode(mel))
    assert not torch.equal(wav, build_vocoder(seed=1).vocode(mel))
    (tmp_path / VOCODER_WEIGHTS_FILE).parent.mkdir(parents=True)
    save_file(_state(vocoder), str(tmp_path / VOCODER_WEIGHTS_FILE))
    for files in (vevo_official.OFFICIAL_FILES["vocoder"], sing_official.OFFICIAL_FILES["vocoder"]):
        root = resolve(files, "pretrained", local_dir=tmp_path).root
        assert torch.equal(load_vocoder(root, tiny_vocoder_config()).vocode(mel), wav)
    with pytest.raises(CheckpointError, match="shape mismatches"):
        load_vocoder(tmp_path, VocosVocoderConfig(input_channels=128, dim=32, intermediate_dim=32,
                                                       num_layers=2, n_fft=1920, hop_size=480))


# ---------------------------------------------------------------------------------------------
# vq32 content tokenizer
# ---------------------------------------------------------------------------------------------


def test_collapse_repeats_follows_the_reference() -> None:
    assert collapse_repeats(torch.tensor([3, 3, 5, 5, 5, 3, 7, 7])).tolist() == [3, 5, 3, 7]
    assert collapse_repeats(torch.tensor([4])).tolist() == [4]
    # n_gram 2: a window is kept only when both of its tokens differ from the previous window's.
    assert collapse_repeats(torch.tensor([1, 2, 1, 2, 3, 4]), n_gram=2).tolist() == [1, 2, 1, 2, 3, 4]
    # ... so windows sharing any position with the previous one are dropped (the reference's all(!=)).
    assert collapse_repeats(torch.tensor([1, 1, 2, 2, 3]), n_gram=2).tolist() == [1, 1]


def test_content_tokenizer_batches_with_lengths() -> None:
    tok = build_content_tokenizer(seed=0)
    feats = torch.randn(2, 30, tok.feature_dim)
    out = tok.tokenize(feats, torch.tensor([30, 21]))
    assert out.codes.shape == (2, 30) and out.codes.dtype == torch.int64 and int(out.codes.max()) < 32
    assert out.codes_mask.sum(1).tolist() == [30, 21]
    for i, n in enumerate((30, 21)):
        row = collapse_repeats(out.codes[i, :n])
        assert out.reduced[i, : len(row)].tolist() == row.tolist()
        assert out.reduced_lengths[i] == len(row)
    assert tok.reconstruct(out.codes).shape == (2, 30, tok.config.output_channels)


class _ShouldNeverRun:
    """A pickled object whose unpickling would call `_mark_if_run` (as a foreign class in a pickle could)."""

    def __reduce__(self):
        return (_mark_if_run, ("ran",))


_RAN: list[str] = []


def _mark_if_run(value: str) -> str:
    _RAN.append(value)
    return value


def test_vq32_pickle_is_read_without_running_its_code(tmp_path: Path) -> None:
    tok = build_content_tokenizer(seed=3)
    path = tmp_path / CONTENT_TOKENIZER_FILE
    path.parent.mkdir(parents=True)
    # Like the official file: the state dict under ["model"]["repcodec"], next to training bookkeeping.
    torch.save({"model": {"repcodec": _state(tok)}, "trainer": _ShouldNeverRun(), "step": 1000}, path)
    state = read_content_tokenizer_state(path)
    assert not _RAN
    assert state.keys() == tok.state_dict().keys()
    resolved = resolve(vevo_official.OFFICIAL_FILES["content_tokenizer"], "pretrained", local_dir=tmp_path)
    loaded = load_content_tokenizer(resolved.root, tiny_content_tokenizer_config())
    feats = torch.randn(1, 12, tok.feature_dim)
    assert torch.equal(loaded.tokenize(feats).codes, tok.tokenize(feats).codes)
    assert not _RAN
    # A bare state dict and a safetensors file (the reference's re-trained variant) load too.
    torch.save(_state(tok), tmp_path / "bare.pt")
    save_file(_state(tok), str(tmp_path / "vq32.safetensors"))
    for other in ("bare.pt", "vq32.safetensors"):
        assert torch.equal(load_content_tokenizer(tmp_path / other, tiny_content_tokenizer_config()).tokenize(feats).codes,
                           tok.tokenize(feats).codes)
    bad = _state(tok)
    del bad["quantizer.codebook.layers.0.embed"]
    with pytest.raises(CheckpointError, match=r"missing keys \(1\): quantizer\.codebook\.layers\.0\.embed"):
        build_content_tokenizer(tiny_content_tokenizer_config(), bad)


# ---------------------------------------------------------------------------------------------
# vq8192 content-style tokenizer, HuBERT
# ---------------------------------------------------------------------------------------------


def test_contentstyle_tokenizer_loads_from_the_official_layout(tmp_path: Path) -> None:
    tok = build_contentstyle_tokenizer(seed=0)
    weights_dir, stats_dir = tmp_path / "Vevo", tmp_path / "config"
    (weights_dir / CONTENTSTYLE_TOKENIZER_FILE).parent.mkdir(parents=True)
    stats_dir.mkdir()
    save_file(_state(tok.codec), str(weights_dir / CONTENTSTYLE_TOKENIZER_FILE))
    np.savez(stats_dir / HUBERT_STATS_FILE, mean=tok.mean.numpy(), std=tok.std.numpy())
    files = vevo_official.OFFICIAL_FILES
    root = resolve(files["contentstyle_tokenizer"], "pretrained", local_dir=weights_dir).root
    stats_root = resolve(files["hubert_stats"], "pretrained", local_dir=stats_dir).root
    loaded = load_contentstyle_tokenizer(root, stats_root / HUBERT_STATS_FILE, tiny_contentstyle_tokenizer_config())
    feats = torch.randn(2, 16, tok.feature_dim)
    codes, quantized = loaded.tokenize(feats)
    assert codes.shape == (2, 16) and quantized.shape == (2, 16, tok.feature_dim)
    assert torch.equal(codes, tok.tokenize(feats)[0])


def test_hubert_features_are_batch_invariant_and_load_from_the_torchaudio_file(tmp_path: Path) -> None:
    hubert = build_hubert(seed=0)
    assert hubert.layer == 18 and len(hubert.model.encoder.transformer.layers) == 18
    wav = 0.1 * torch.randn(2, 16000)
    feats, lengths = hubert(wav, torch.tensor([16000, 9000]))
    assert feats.shape == (2, 49, 32) and lengths.tolist() == [49, hubert.num_frames(9000)]
    single, _ = hubert(wav[1:, :9000])
    torch.testing.assert_close(feats[1, : lengths[1]], single[0], atol=1e-4, rtol=1e-4)
    # torchaudio's file may hold the positional conv under the old weight-norm names and 24 layers.
    state = {}
    for key, value in _state(hubert.model).items():
        state[key.replace("parametrizations.weight.original0", "weight_g")
                 .replace("parametrizations.weight.original1", "weight_v")] = value
    state.update({k.replace(".layers.17.", ".layers.18."): v for k, v in state.items() if ".layers.17." in k})
    (tmp_path / "hub").mkdir()
    torch.save(state, tmp_path / "hub" / HUBERT_FILE)
    root = resolve(vevo_official.OFFICIAL_FILES["hubert"], "pretrained", local_dir=tmp_path / "hub").root
    loaded = load_hubert(root, params=tiny_hubert_params())
    torch.testing.assert_close(loaded(wav, torch.tensor([16000, 9000]))[0], feats, atol=0, rtol=0)
    with pytest.raises(ValueError, match="too short"):
        hubert(torch.zeros(1, 399))


# ---------------------------------------------------------------------------------------------
# Vevo1.5: chromagram, Coco tokenizers, Whisper features
# ---------------------------------------------------------------------------------------------


def test_chromagram_frames_and_batch() -> None:
    chroma = Chromagram()
    t = np.arange(24000 + 300) / 24000
    wav = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    out = chroma(wav)
    assert out.shape == (50, 24) and out.dtype == np.float32 and float(out.max()) == 1.0
    assert int(out.argmax(1)[10]) == 18  # A with C at row 0 and 2 rows per semitone
    batch, lengths = chroma.batch([wav, wav[:12000]])
    assert batch.shape == (2, 50, 24) and lengths.tolist() == [50, 25]
    assert torch.equal(batch[0], torch.from_numpy(out))


def test_coco_tokenizers_load_from_the_official_layout_dropping_reconstruction_keys(tmp_path: Path) -> None:
    for coco_type, name, rate in (("content_style", "contentstyle_tokenizer", 4), ("style", "prosody_tokenizer", 8)):
        tok = build_coco_tokenizer(tiny_coco_config(coco_type), seed=1)
        state = _state(tok)
        state["decoder.1.weight"] = torch.zeros(2, 2)  # the official files carry the reconstruction side too
        rel = sing_official.OFFICIAL_FILES[name].patterns[0]
        (tmp_path / rel).parent.mkdir(parents=True)
        save_file(state, str(tmp_path / rel))
        root = resolve(sing_official.OFFICIAL_FILES[name], "pretrained", local_dir=tmp_path).root
        loaded = load_coco_tokenizer(root, coco_type, tiny_coco_config(coco_type))
        chroma = torch.rand(2, 37, 24)
        whisper = torch.randn(2, 37, 32) if coco_type == "content_style" else None
        codes, quantized = loaded.tokenize(chroma, whisper)
        assert codes.shape == (2, -(-37 // rate)) and quantized.shape == (2, codes.shape[1], 32)
        assert torch.equal(codes, tok.tokenize(chroma, whisper)[0])
        state["encoder.9.weight"] = torch.zeros(1)
        save_file(state, str(tmp_path / rel))
        with pytest.raises(CheckpointError, match=r"unexpected keys \(1\): encoder\.9\.weight"):
            load_coco_tokenizer(root, coco_type, tiny_coco_config(coco_type))


def test_whisper_postprocessing_follows_the_reference() -> None:
    encoded = torch.arange(2 * 6 * 2, dtype=torch.float32).view(2, 6, 2)
    out = postprocess_whisper_features(encoded, torch.tensor([3, 5]))
    assert out.shape == (2, 5, 2)
    assert torch.equal(out[0, 3:], torch.zeros(2, 2)) and torch.equal(out[1], encoded[1, :5])
    longer = postprocess_whisper_features(encoded, torch.tensor([8, 2]))  # past the encoder output: repeat the last
    assert longer.shape == (2, 8, 2) and torch.equal(longer[0, 6:], encoded[0, 5:6].expand(2, 2))


def test_whisper_features_window_long_inputs_and_load_from_the_hf_layout(tmp_path: Path) -> None:
    features = build_whisper_features(seed=0)
    long_wav = 0.1 * torch.randn(WINDOW_SAMPLES + 16000 * 5)  # 35 s: two windows, not refused
    short_wav = long_wav[:WINDOW_SAMPLES]
    out = features([long_wav, short_wav], [35 * 50, 30 * 50])
    assert out.shape == (2, 35 * 50, 32)
    torch.testing.assert_close(out[0, :1500], out[1, :1500], atol=1e-5, rtol=1e-5)  # same first window
    # A folder laid out like openai/whisper-medium: the full model's keys, of which the encoder's are read.
    folder = tmp_path / "whisper"
    folder.mkdir()
    features.encoder.config.to_json_file(str(folder / "config.json"))
    state = {f"model.encoder.{k}": v for k, v in _state(features.encoder).items()}
    state["model.decoder.embed_tokens.weight"] = torch.zeros(4, 32)
    save_file(state, str(folder / "model.safetensors"))
    stats_dir = tmp_path / "config"
    stats_dir.mkdir()
    torch.save({"mean": features.mean.clone(), "std": features.std.clone()}, stats_dir / WHISPER_STATS_FILE)
    files = sing_official.OFFICIAL_FILES
    root = resolve(files["whisper"], "pretrained", local_dir=folder).root
    stats_root = resolve(files["whisper_stats"], "pretrained", local_dir=stats_dir).root
    loaded = load_whisper_features(root, stats_root / WHISPER_STATS_FILE)
    torch.testing.assert_close(loaded([short_wav], [100]), out[1:, :100], atol=1e-5, rtol=1e-5)


def test_tiny_components_fit_together() -> None:
    """The tiny profiles keep the official I/O contracts, so the pieces chain like the official ones."""
    hubert, _ = vevo_official.load_component("hubert", "tiny")
    vq32, _ = vevo_official.load_component("content_tokenizer", "tiny")
    vq8192, _ = vevo_official.load_component("contentstyle_tokenizer", "tiny")
    feats, lengths = hubert(0.1 * torch.randn(1, 8000))
    assert vq32.tokenize(feats, lengths).codes.shape == (1, 24)
    assert vq8192.tokenize(feats)[0].shape == (1, 24) and vq8192.codebook_size == 8192
    whisper, _ = sing_official.load_component("whisper_features", "tiny")
    coco, _ = sing_official.load_component("contentstyle_tokenizer", "tiny")
    prosody, _ = sing_official.load_component("prosody_tokenizer", "tiny")
    chroma = torch.rand(1, 25, 24)
    w = whisper([0.1 * torch.randn(8000)], [25])
    assert coco.tokenize(chroma, w)[0].shape == (1, 7) and prosody.tokenize(chroma)[0].shape == (1, 4)
    assert isinstance(vevo_official.load_component("vocoder", "tiny")[0], VevoVocoder)
