"""Unit tests of DualCodec-VALL-E (``models/valle``): tiny pipeline end to end, the official key
layout, strict loading of files laid out like ``amphion/dualcodec-tts``, sampling options,
progress and input errors. Numerical parity: tests/test_parity.py (valle_text, valle_ar, valle_nar).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from models.blocks.diff_llama import CheckpointKeyError
from models.core.checkpoints import load_state_dict_file
from models.valle.ar import ARSampling, ARTrace, ValleAR, build_valle_ar
from models.valle.configs import (
    OFFICIAL_AR_CONFIG,
    OFFICIAL_NAR_CONFIG,
    TINY_AR_CONFIG,
    TINY_NAR_CONFIG,
    ValleConfigError,
    parse_ar_config,
    parse_nar_config,
)
from models.valle.nar import ValleNAR, build_valle_nar
from models.valle.official import AR_FILE, NAR_FILE, TEXT_VOCAB_FILE
from models.valle.pipeline import ValleInputError, ValleTTS
from models.valle.text import chunk_text, load_text_tokenizer

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = REPO_ROOT.parent / "shared"
PARITY = Path(os.environ.get("AMPHION_PARITY_DIR") or SHARED / "parity")
VOCAB = SHARED / "data" / "valle_text" / TEXT_VOCAB_FILE


@pytest.fixture(scope="module")
def tts() -> ValleTTS:
    if not VOCAB.is_file():
        pytest.skip(f"needs {VOCAB}")
    return ValleTTS.from_weights("tiny", text_vocab=VOCAB)


def _prompt(frames: int = 8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 16384, frames, dtype=np.int64), rng.integers(0, 4096, (7, frames), dtype=np.int64))


SHORT = ARSampling(max_length=120, speech_only=True)


def test_tiny_pipeline_same_seed_same_codes(tts: ValleTTS) -> None:
    semantic, acoustic = _prompt()
    run = lambda seed: tts.synthesize("Hello there, nice to meet you.", "A short reference.", semantic, acoustic,
                                      sampling=SHORT, seed=seed)
    first, again, other = run(3), run(3), run(4)
    assert len(first.chunks) == 1 and first.texts == ["A short reference. hello there, nice to meet you."]
    codes = first.chunks[0]
    assert codes.dtype == np.int64 and codes.shape[0] == 8 and codes.shape[1] > 0
    assert codes[0].max() < 16384 and codes[1:].max() < 4096 and codes.min() >= 0
    np.testing.assert_array_equal(codes, again.chunks[0])
    assert not (codes.shape == other.chunks[0].shape and np.array_equal(codes, other.chunks[0]))


def test_tiny_pipeline_progress_and_generator(tts: ValleTTS) -> None:
    semantic, acoustic = _prompt(6, seed=1)
    events: list[tuple[str, int, int]] = []
    gen = torch.Generator().manual_seed(11)
    result = tts.synthesize("Good morning.", "Reference words.", semantic, acoustic, sampling=SHORT, generator=gen,
                            on_progress=lambda stage, step, total: events.append((stage, step, total)))
    ar = [e for e in events if e[0] == "ar"]
    nar = [e for e in events if e[0] == "nar"]
    assert [s for _, s, _ in ar] == list(range(1, len(ar) + 1))  # one event per token
    assert len(ar) == result.chunks[0].shape[1] + 1  # the dropped last token (EOS or the limit) counts too
    assert [s for _, s, _ in nar] == list(range(1, 8)) and all(t == 7 for _, _, t in nar)


def test_input_errors(tts: ValleTTS) -> None:
    semantic, acoustic = _prompt()
    with pytest.raises(ValleInputError, match="empty"):
        tts.synthesize("  ", "ref.", semantic, acoustic)
    with pytest.raises(ValleInputError, match="too short"):
        tts.synthesize("Hi.", "ref.", semantic[:4], acoustic[:, :4])
    with pytest.raises(ValleInputError, match="out of range"):
        tts.synthesize("Hi.", "ref.", semantic + 20000, acoustic)
    with pytest.raises(ValleInputError, match="acoustic"):
        tts.synthesize("Hi.", "ref.", semantic, acoustic[:3])
    with pytest.raises(ValleInputError, match="max_length"):
        tts.synthesize("Hi.", "ref.", semantic, acoustic, sampling=ARSampling(max_length=10))


def test_speech_only_sampling_and_kv_cache() -> None:
    model = build_valle_ar(TINY_AR_CONFIG, seed=5)
    text, prompt = torch.tensor([[50259, 1000, 13]]), torch.tensor([[5, 6, 7, 8, 9]])
    ids = model.layout(text, prompt)
    trace: list[ARTrace] = []
    new = model.continue_ids(ids, ARSampling(max_length=ids.shape[1] + 12, speech_only=True),
                             generator=torch.Generator().manual_seed(0), trace=trace)
    c = TINY_AR_CONFIG
    assert all(c.initial_offset <= t < c.text_offset or t == c.eos_token_id for t in new[0].tolist())
    # The cached step logits equal a full forward of the sequence.
    full = model.logits(torch.cat([ids, new[:, :-1]], dim=1))[0, ids.shape[1] - 1:]
    torch.testing.assert_close(torch.cat([s.logits for s in trace]), full, atol=1e-4, rtol=1e-4)


def test_nar_batch_rows_are_independent() -> None:
    nar = build_valle_nar(TINY_NAR_CONFIG, seed=2)
    g = torch.Generator().manual_seed(0)
    prompt = torch.cat([torch.randint(0, 16384, (1, 2, 6), generator=g), torch.randint(0, 4096, (7, 2, 6), generator=g)])
    target = torch.randint(0, 16384, (2, 5), generator=g)
    both = nar.generate(prompt, target)
    for b in range(2):
        torch.testing.assert_close(both[:, b], nar.generate(prompt[:, b:b + 1], target[b:b + 1])[:, 0])


def test_official_key_layout_matches_the_hub_files() -> None:
    keys_file = {AR_FILE: PARITY / "valle_ar" / "official_keys.json", NAR_FILE: PARITY / "valle_nar" / "official_keys.json"}
    with torch.device("meta"):
        models = {AR_FILE: ValleAR(OFFICIAL_AR_CONFIG), NAR_FILE: ValleNAR(OFFICIAL_NAR_CONFIG)}
    for name, model in models.items():
        shapes = {k: list(v.shape) for k, v in model.state_dict().items()}
        if keys_file[name].is_file():
            official = json.loads(keys_file[name].read_text())[name]
            assert shapes == official["keys"]
            assert sum(int(np.prod(s)) for s in shapes.values()) == official["elements"]
    assert models[AR_FILE].config.vocab_size == 68260 and models[NAR_FILE].config.vocab_size == 4107


def test_strict_loading_from_files_laid_out_like_the_hub(tmp_path: Path) -> None:
    ar, nar = build_valle_ar(TINY_AR_CONFIG, seed=1), build_valle_nar(TINY_NAR_CONFIG, seed=2)
    save_file({k: v.half().contiguous() for k, v in ar.state_dict().items()}, str(tmp_path / AR_FILE))
    save_file({k: v.half().contiguous() for k, v in nar.state_dict().items()}, str(tmp_path / NAR_FILE))
    ar2 = build_valle_ar(TINY_AR_CONFIG, load_state_dict_file(tmp_path / AR_FILE))
    nar2 = build_valle_nar(TINY_NAR_CONFIG, load_state_dict_file(tmp_path / NAR_FILE))
    for a, b in ((ar, ar2), (nar, nar2)):
        for (k, v), (k2, v2) in zip(a.state_dict().items(), b.state_dict().items()):
            assert k == k2 and v2.dtype == torch.float32
            torch.testing.assert_close(v2, v.half().float())
    broken = load_state_dict_file(tmp_path / NAR_FILE)
    broken["model.lm_head.7.weight"] = broken.pop("model.lm_head.6.weight")
    with pytest.raises(CheckpointKeyError, match="lm_head"):
        build_valle_nar(TINY_NAR_CONFIG, broken)
    # The official build refuses tiny files (mis-shaped keys), through the product's resolver.
    with pytest.raises(CheckpointKeyError):
        ValleTTS.from_weights("pretrained", local_dirs={"ar": tmp_path, "nar": tmp_path},
                              text_vocab=VOCAB if VOCAB.is_file() else tmp_path / "none")


def test_config_parsing() -> None:
    ar_yaml = {"vocab_size": 68260, "speech_vocab_size": 16384, "initial_offset": 10,
               "llama_cfg": {"vocab_size": "${..vocab_size}", "hidden_size": 1024, "intermediate_size": 4096,
                             "num_hidden_layers": 12, "num_attention_heads": 16, "pad_token_id": 0,
                             "bos_token_id": 1, "eos_token_id": 2},
               "model": {"speech_vocab_size": "${..speech_vocab_size}", "initial_offset": "${..initial_offset}",
                         "sep_token": 3}}
    assert parse_ar_config(ar_yaml) == OFFICIAL_AR_CONFIG
    nar_yaml = {"model": {"phone_vocab_size": 1, "first_layer_vocab_size": 16384, "target_vocab_size": 4096,
                          "pad_token_id": 4097, "bos_target_id": 4099, "eos_target_id": 4100, "bos_prompt_id": 4101,
                          "eos_prompt_id": 4102, "bos_phone_id": 4103, "eos_phone_id": 4104}}
    assert parse_nar_config(nar_yaml) == OFFICIAL_NAR_CONFIG
    with pytest.raises(ValleConfigError):
        parse_nar_config({"model": {"use_flash": True}})
    with pytest.raises(ValleConfigError):
        parse_ar_config({**ar_yaml, "llama_cfg": {**ar_yaml["llama_cfg"], "rope_scaling": {"type": "linear"}}})


def test_chunking_respects_the_byte_budget() -> None:
    text = "One two three. Four five six! Seven, eight; nine: ten? " * 4
    chunks = chunk_text(text, 40)
    assert " ".join(chunks).split() == text.split()
    assert all(len(c.encode()) <= 40 for c in chunks)
    assert chunk_text("你好。我们走吧！", 6) == ["你好。", "我们走吧！"]


def test_tokenizer_specials() -> None:
    if not VOCAB.is_file():
        pytest.skip(f"needs {VOCAB}")
    tok = load_text_tokenizer(VOCAB)
    assert (tok.n_vocab, tok.eot, tok.sot, tok.language_token("en"), tok.language_token("yue")) == \
        (51866, 50257, 50258, 50259, 50358)
    assert tok.decode(tok.encode("hello <|en|> world")) == "hello <|en|> world"
