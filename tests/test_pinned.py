"""Files pinned in a code repository (not on the hub) through the weights resolver: downloaded from
the pinned location (a file:// mirror here), hash-checked, never half-written, never fetched by
mode auto or offline."""

from __future__ import annotations

import pytest

from models.pinned import PinnedFile, PinnedSource, sha256_of
from models.weights import HubFiles, WeightsUnavailable, download, resolve

CONTENT = b"mean and var, say" * 10


@pytest.fixture
def source(tmp_path, monkeypatch):
    upstream = tmp_path / "mirror" / "models" / "x" / "stats.pt"
    upstream.parent.mkdir(parents=True)
    upstream.write_bytes(CONTENT)
    monkeypatch.setenv("AMPHION_DATA_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    pin = PinnedFile("models/x/stats.pt", sha256_of(upstream), len(CONTENT))
    pinned = PinnedSource("test_stats", {"stats.pt": pin}, url_template=f"file://{tmp_path / 'mirror'}/{{path}}")
    return HubFiles(None, ("stats.pt",), local_dir_env="TEST_STATS_DIR", pinned=pinned), upstream


def test_auto_never_downloads_and_pretrained_does(source):
    files, _ = source
    assert resolve(files, "auto").kind == "tiny"
    resolved = resolve(files, "pretrained")
    assert resolved.pretrained and resolved.file("stats.pt").read_bytes() == CONTENT
    assert "open-mmlab/Amphion@d3de90f02e" in resolved.note
    assert resolve(files, "auto").pretrained          # now in the cache


def test_offline_refuses_with_what_to_do(source, monkeypatch):
    files, _ = source
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(WeightsUnavailable, match="stats.pt not downloaded yet.*download_weights.py.*TEST_STATS_DIR"):
        resolve(files, "pretrained")


def test_tampered_upstream_is_refused_and_nothing_is_left(source):
    files, upstream = source
    upstream.write_bytes(b"x" * len(CONTENT))
    with pytest.raises(WeightsUnavailable, match="SHA-256"):
        download(files, progress=False)
    folder = files.pinned.cache_folder()
    assert not folder.exists() or list(folder.iterdir()) == []


def test_local_folder_wins(source, tmp_path, monkeypatch):
    files, _ = source
    local = tmp_path / "mine"
    local.mkdir()
    (local / "stats.pt").write_bytes(b"local")
    monkeypatch.setenv("TEST_STATS_DIR", str(local))
    assert resolve(files, "pretrained").file("stats.pt").read_bytes() == b"local"


def test_maskgct_stats_are_pinned_to_the_reference_commit():
    from models.maskgct.semantic_encoder import SEMANTIC_STATS_FILES

    pin = SEMANTIC_STATS_FILES.pinned.files["wav2vec2bert_stats.pt"]
    assert SEMANTIC_STATS_FILES.pinned.commit.startswith("d3de90f0")
    assert pin.upstream == "models/tts/maskgct/ckpt/wav2vec2bert_stats.pt" and pin.size == 9343
    assert SEMANTIC_STATS_FILES.label.startswith("maskgct_stats")
