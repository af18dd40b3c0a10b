"""G2P data fetching: the pinned files download (here from a file:// mirror of the public
layout), are hash-checked, and resolve in each weights mode."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest

from models.text import data
from models.text.data import G2P_SOURCE, download_g2p_data, missing_files, resolve_g2p_data
from models.text.g2p import G2PDataUnavailable

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "maskgct_g2p"
pytestmark = pytest.mark.skipif(not SHARED.is_dir(), reason=f"G2P reference data not found at {SHARED}")


@pytest.fixture
def mirror(tmp_path, monkeypatch):
    """A folder laid out like Amphion's repository at the pinned commit, as the download source."""
    root = tmp_path / "mirror"
    for name, pin in G2P_SOURCE.files.items():
        dest = root / pin.upstream
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(SHARED / name, dest)
    source = dataclasses.replace(G2P_SOURCE, url_template=f"file://{root}/{{path}}")
    monkeypatch.setattr(data, "G2P_FILES", dataclasses.replace(data.G2P_FILES, pinned=source))
    monkeypatch.setenv("AMPHION_DATA_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("AMPHION_G2P_DATA", raising=False)
    return root


def test_download_verifies_and_resolves(tmp_path, mirror):
    cache = G2P_SOURCE.cache_folder()
    assert cache.is_relative_to(tmp_path)
    with pytest.raises(G2PDataUnavailable, match="download_weights.py maskgct"):
        resolve_g2p_data("auto")
    download_g2p_data(progress=False)
    assert missing_files(cache, verify=True) == []
    assert resolve_g2p_data("auto") == cache


def test_an_auto_lookup_notes_the_missing_data_for_a_download(mirror):
    from models.weights import noting_missing

    with noting_missing() as noted, pytest.raises(G2PDataUnavailable):
        resolve_g2p_data("auto")
    assert [files.pinned.name for files in noted.values()] == ["maskgct_g2p"]


def test_tampered_file_is_refused(tmp_path, mirror):
    (mirror / "models/tts/maskgct/g2p/vocab.json").write_text('{"tampered": 1}' + " " * 5787)
    with pytest.raises(G2PDataUnavailable, match="SHA-256"):
        download_g2p_data(progress=False)
    assert not (G2P_SOURCE.cache_folder() / "vocab.json").exists()  # nothing half-written


def test_env_folder_wins(tmp_path, monkeypatch):
    monkeypatch.setenv("AMPHION_DATA_CACHE", str(tmp_path))
    monkeypatch.setenv("AMPHION_G2P_DATA", str(SHARED))
    assert resolve_g2p_data("tiny") == SHARED
