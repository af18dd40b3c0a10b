"""MetisPipeline over MaskGCT's tiny parts: every task end to end, same seed same audio."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from models.audio.resample import to_rate
from models.metis.pipeline import MetisInputError, MetisPipeline
from models.metis.tasks import tts_target_len
from models.text import DATA_DIR_ENV, espeak_version

G2P_DATA = Path(os.environ.get(DATA_DIR_ENV) or Path(__file__).resolve().parents[2] / "shared" / "data" / "maskgct_g2p")
SR = 24000


def _audio(seconds: float, seed: int) -> np.ndarray:
    n = int(seconds * SR)
    t = np.arange(n) / SR
    harmonics = sum(np.sin(2 * np.pi * (110 + 20 * seed) * k * t) / k for k in range(1, 6))
    noise = np.random.default_rng(seed).standard_normal(n)
    return (0.3 * np.sin(2 * np.pi * 3 * t) ** 2 * harmonics + 0.01 * noise).astype(np.float32)


@pytest.fixture(scope="module")
def pipe() -> MetisPipeline:
    return MetisPipeline.from_weights("tiny", tasks=("vc", "se", "tse"))


def test_vc_se_tse_same_seed_same_audio(pipe):
    ref, src = _audio(1.0, 0), _audio(1.5, 1)
    for name, call in (("vc", lambda s: pipe.vc(src, ref, seed=s)), ("tse", lambda s: pipe.tse(src, ref, seed=s)),
                       ("se", lambda s: pipe.se(src, seed=s))):
        a, b = call(5), call(5)
        assert a.dtype == np.float32 and np.isfinite(a).all(), name
        assert np.array_equal(a, b), name
        # about the source's length (the prompt is not decoded), whole 50 Hz frames
        assert a.size % 480 == 0 and abs(a.size - src.size) <= 2 * 480, (name, a.size)


def test_progress_and_errors(pipe):
    seen = []
    pipe.vc(_audio(1.0, 2), _audio(1.0, 3), seed=1, on_step=lambda stage, step, total: seen.append((stage, step, total)))
    stages = list(dict.fromkeys(s for s, _, _ in seen))
    assert stages == ["semantic_prompt", "acoustic_prompt", "features", "semantic", "s2a", "decode"]
    assert all(step <= total for _, step, total in seen)
    with pytest.raises(ValueError, match="tts"):
        pipe.tts("Hello.", _audio(1.0, 2), "Hi.")
    with pytest.raises(MetisInputError):
        pipe.se(np.zeros(10, np.float32), seed=0)


@pytest.mark.skipif(not (G2P_DATA / "vocab.json").is_file(), reason=f"G2P data not found at {G2P_DATA}")
@pytest.mark.skipif(espeak_version() is None, reason="espeak-ng cannot be loaded here (English G2P)")
def test_tts_uses_metis_length_rule_and_is_seeded():
    pipe = MetisPipeline.from_weights("tiny", tasks=("tts",), g2p_data=G2P_DATA)
    assert pipe.tasks == ("tts",)
    ref, ref_text, text = _audio(1.0, 4), "Hello there, a short prompt.", "The quick brown fox jumps over the lazy dog."
    a = pipe.tts(text, ref, ref_text, language="en", seed=3)
    b = pipe.tts(text, ref, ref_text, language="en", seed=3)
    assert np.array_equal(a, b)
    m = pipe.maskgct
    n_prompt = min(m.semantic_tokens(to_rate(ref, SR, 16000)).shape[1], m.acoustic_codes(ref).shape[1])
    assert a.size == tts_target_len(n_prompt, text, ref_text) * 480
    c = pipe.tts(text, ref, ref_text, seed=3, target_len_s=0.5)
    assert c.size == 25 * 480


def test_omni_serves_every_task():
    g2p = G2P_DATA if (G2P_DATA / "vocab.json").is_file() and espeak_version() is not None else None
    tasks = ("tts", "vc", "se", "tse") if g2p else ("vc", "se", "tse")
    pipe = MetisPipeline.from_weights("tiny", tasks=tasks, g2p_data=g2p, omni=True)
    assert pipe.omni and pipe.tasks == tasks
    ref, src = _audio(1.0, 5), _audio(1.0, 6)
    assert np.array_equal(pipe.vc(src, ref, seed=2), pipe.vc(src, ref, seed=2))
    assert pipe.se(src, seed=2).size % 480 == 0
    if g2p:
        a = pipe.tts("Good morning to you.", ref, "Hello there, a short prompt.", language="en", seed=2)
        assert np.array_equal(a, pipe.tts("Good morning to you.", ref, "Hello there, a short prompt.", language="en", seed=2))
