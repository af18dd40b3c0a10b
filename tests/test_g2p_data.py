"""G2P data fetching: the pinned files download (here from a file:// mirror of the public
layout), are hash-checked, and resolve in each weights mode."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from models.text.data import G2P_DATA, download_g2p_data, missing_files, resolve_g2p_data
from models.text.g2p import G2PDataUnavailable

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "maskgct_g2p"
pytestmark = pytest.mark.skipif(not SHARED.is_dir(), reason=f"G2P reference data not found at {SHARED}")


@pytest.fixture
def mirror(tmp_path):
    """A folder laid out like Amphion's repository at the pinned commit."""
    for name, (path, _, _) in G2P_DATA.items():
        dest = tmp_path / "mirror" / "models" / "tts" / "maskgct" / path
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(SHARED / name, dest)
    return "file://" + str(tmp_path / "mirror") + "/models/tts/maskgct/{path}"


def test_download_verifies_and_resolves(tmp_path, mirror, monkeypatch):
    monkeypatch.delenv("AMPHION_G2P_DATA", raising=False)
    cache = tmp_path / "cache"
    with pytest.raises(G2PDataUnavailable, match="download_weights.py maskgct"):
        resolve_g2p_data("auto", cache=cache)
    download_g2p_data(cache, base_url=mirror.replace("{commit}", "x"), progress=False)
    assert missing_files(cache, verify=True) == []
    assert resolve_g2p_data("auto", cache=cache) == cache


def test_tampered_file_is_refused(tmp_path, mirror, monkeypatch):
    root = Path(mirror.removeprefix("file://").split("/models/")[0])
    (root / "models/tts/maskgct/g2p/vocab.json").write_text('{"tampered": 1}' + " " * 5787)
    with pytest.raises(G2PDataUnavailable, match="SHA-256"):
        download_g2p_data(tmp_path / "cache", base_url=mirror, progress=False)
    assert not (tmp_path / "cache" / "vocab.json").exists()  # nothing half-written


def test_env_folder_wins(tmp_path, monkeypatch):
    monkeypatch.setenv("AMPHION_G2P_DATA", str(SHARED))
    assert resolve_g2p_data("tiny", cache=tmp_path) == SHARED
