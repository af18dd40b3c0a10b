"""models.weights (the weights resolver) and scripts/download_weights.py, with no network.

The Hugging Face cache used here is written by huggingface_hub itself: a real ``snapshot_download``
runs against an in-process fake hub (an httpx MockTransport installed with the library's own
``set_client_factory``), so the layout (``models--org--name/snapshots/<sha>/...``, ``refs/main``,
``blobs/``, ``trees/``) is exactly the one the installed version writes. Every other test runs with a
transport that refuses all requests, so nothing can reach the real hub.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

import huggingface_hub
from huggingface_hub import constants as hf_constants
from huggingface_hub import scan_cache_dir, snapshot_download, try_to_load_from_cache

from models import weights
from models.weights import HubFiles, ResolvedWeights, WeightsUnavailable, resolve

REPO_ROOT = Path(__file__).resolve().parent.parent
SCRIPT = REPO_ROOT / "scripts" / "download_weights.py"

REPO_ID = "amphion-test/vocoders"
SHA = "3f1e2d4c5b6a79881726354453627180a9b8c7d6"
CKPT = "hifigan_speech/checkpoint/*/pytorch_model.bin"
REPO_FILES = {
    "README.md": b"# test vocoders\n",
    "hifigan_speech/args.json": b'{"model": {"hifigan": {"resblock": "1"}}}',
    "hifigan_speech/checkpoint/epoch-0100_step-0400000_loss-1.000/pytorch_model.bin": b"step-400k" * 10,
    "hifigan_speech/checkpoint/epoch-0050_step-0200000_loss-2.000/pytorch_model.bin": b"step-200k" * 10,
    "bigvgan/config.json": b'{"num_mels": 100}',
    "bigvgan/bigvgan_generator.pt": b"generator" * 10,
}
HIFIGAN = HubFiles(REPO_ID, ("hifigan_speech/args.json", CKPT), local_dir_env="TEST_HIFIGAN_DIR")
BIGVGAN = HubFiles(REPO_ID, ("bigvgan/config.json", "bigvgan/bigvgan_generator.pt"))

try:
    import httpx2 as _httpx  # huggingface_hub >= 2
except ImportError:  # pragma: no cover - 1.x
    import httpx as _httpx
from huggingface_hub.utils import _http as hf_http


# ------------------------------------------------------------------------------------------------
# the fake hub and the no-network guard


class FakeHub:
    """Answers the few endpoints snapshot_download uses; counts every request it sees."""

    def __init__(self, repos: dict[str, tuple[str, dict[str, bytes]]]):
        self.repos = repos
        self.requests: list[str] = []

    def __call__(self, request):
        self.requests.append(f"{request.method} {request.url.path}")
        path = request.url.path
        for repo_id, (sha, files) in self.repos.items():
            if path == f"/api/models/{repo_id}/revision/main" or path == f"/api/models/{repo_id}/revision/{sha}":
                return _httpx.Response(
                    200, json={"id": repo_id, "sha": sha, "siblings": [{"rfilename": f} for f in files]}
                )
            if path == f"/api/models/{repo_id}/tree/{sha}":
                return _httpx.Response(
                    200,
                    json=[
                        {"type": "file", "path": f, "size": len(c), "oid": hashlib.sha1(c).hexdigest()}
                        for f, c in files.items()
                    ],
                )
            prefix = f"/{repo_id}/resolve/{sha}/"
            if path.startswith(prefix) and path[len(prefix):] in files:
                content = files[path[len(prefix):]]
                headers = {
                    "X-Repo-Commit": sha,
                    "ETag": f'"{hashlib.sha1(content).hexdigest()}"',
                    "Content-Length": str(len(content)),
                }
                return _httpx.Response(200, headers=headers, content=b"" if request.method == "HEAD" else content)
        return _httpx.Response(404, json={"error": "Repository Not Found"}, headers={"X-Error-Code": "RepoNotFound"})


class NoNetwork:
    def __init__(self):
        self.requests: list[str] = []

    def __call__(self, request):
        self.requests.append(f"{request.method} {request.url}")
        raise _httpx.ConnectError("network access is disabled in tests", request=request)


def _install_transport(handler) -> None:
    # the library's own hook too, so that HF_HUB_OFFLINE is enforced as with the default client
    hook = getattr(hf_http, "hf_request_event_hook", None)
    hooks = {"request": [hook]} if hook else {}
    huggingface_hub.set_client_factory(
        lambda: _httpx.Client(transport=_httpx.MockTransport(handler), event_hooks=hooks, follow_redirects=True)
    )


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Every request huggingface_hub makes fails like an unreachable hub; env vars start clean."""
    for var in ("AMPHION_WEIGHTS_DIR", "AMPHION_HF_CACHE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE",
                "TEST_HIFIGAN_DIR", "TEST_NSF_DIR"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
    previous = getattr(hf_http, "_GLOBAL_CLIENT_FACTORY", None)
    guard = NoNetwork()
    _install_transport(guard)
    yield guard
    huggingface_hub.set_client_factory(previous or hf_http.default_client_factory)


@pytest.fixture
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)


@pytest.fixture
def fake_hub():
    hub = FakeHub({REPO_ID: (SHA, REPO_FILES)})
    _install_transport(hub)
    return hub


def populate_cache(cache_dir: Path, allow_patterns: list[str]) -> Path:
    """Fill ``cache_dir`` through huggingface_hub's own snapshot_download against the fake hub."""
    hub = FakeHub({REPO_ID: (SHA, REPO_FILES)})
    _install_transport(hub)
    offline_before = hf_constants.HF_HUB_OFFLINE
    hf_constants.HF_HUB_OFFLINE = False
    try:
        path = snapshot_download(REPO_ID, cache_dir=str(cache_dir), allow_patterns=allow_patterns)
    finally:
        hf_constants.HF_HUB_OFFLINE = offline_before
        _install_transport(NoNetwork())
    assert hub.requests, "the fake hub was not used"
    return Path(path)


@pytest.fixture
def hf_cache(tmp_path) -> Path:
    """An HF cache holding the hifigan and bigvgan files of REPO_ID (not the README)."""
    cache = tmp_path / "hf-cache"
    populate_cache(cache, list(HIFIGAN.patterns + BIGVGAN.patterns))
    return cache


def write_repo_folder(root: Path, names) -> Path:
    for name in names:
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(REPO_FILES[name])
    return root


def assert_safe(message: str, *paths: Path) -> None:
    """A user-facing message names no folder of the server."""
    for p in paths:
        assert str(p) not in message
    assert "/tmp" not in message and str(Path.home()) not in message


# ------------------------------------------------------------------------------------------------
# the fake cache is the real layout


def test_fake_cache_has_the_hf_layout(hf_cache):
    repo_dir = hf_cache / "models--amphion-test--vocoders"
    assert (repo_dir / "refs" / "main").read_text() == SHA
    snap = repo_dir / "snapshots" / SHA
    ckpt = snap / "hifigan_speech/checkpoint/epoch-0100_step-0400000_loss-1.000/pytorch_model.bin"
    assert ckpt.is_symlink() and ckpt.read_bytes() == REPO_FILES[str(ckpt.relative_to(snap))]
    assert Path(os.path.realpath(ckpt)).parent == repo_dir / "blobs"
    assert not (snap / "README.md").exists()  # allow_patterns honoured

    info = scan_cache_dir(hf_cache)
    (repo,) = info.repos
    assert repo.repo_id == REPO_ID and {r.commit_hash for r in repo.revisions} == {SHA}
    cached = try_to_load_from_cache(REPO_ID, "bigvgan/config.json", cache_dir=str(hf_cache))
    assert isinstance(cached, str) and Path(cached) == snap / "bigvgan/config.json"


# ------------------------------------------------------------------------------------------------
# mode "pretrained"


def test_pretrained_from_cache_offline(hf_cache, offline, no_network):
    got = resolve(HIFIGAN, "pretrained", cache_dir=str(hf_cache))
    snap = hf_cache / "models--amphion-test--vocoders" / "snapshots" / SHA
    assert got.kind == "pretrained" and got.root == snap
    assert REPO_ID in got.note and SHA[:10] in got.note
    assert_safe(got.note, hf_cache)
    assert [p.relative_to(snap).as_posix() for p in got.files(CKPT)] == [
        "hifigan_speech/checkpoint/epoch-0050_step-0200000_loss-2.000/pytorch_model.bin",
        "hifigan_speech/checkpoint/epoch-0100_step-0400000_loss-1.000/pytorch_model.bin",
    ]
    assert got.file("hifigan_speech/args.json") == snap / "hifigan_speech/args.json"
    assert no_network.requests == []


def test_cache_without_tree_listing(hf_cache, offline):
    # caches written by older huggingface_hub releases (or copied by hand) have no trees/<sha>.json
    # (copied to a new folder: huggingface_hub also keeps tree listings in memory, keyed by path)
    import shutil

    cache = hf_cache.parent / "old-cache"
    shutil.copytree(hf_cache, cache, symlinks=True)
    shutil.rmtree(cache / "models--amphion-test--vocoders" / "trees")
    got = resolve(HIFIGAN, "pretrained", cache_dir=str(cache))
    assert got.kind == "pretrained" and len(got.files(CKPT)) == 2
    assert got.files(CKPT)[0].is_symlink()
    with pytest.raises(WeightsUnavailable, match="no file matches 'README.md'"):
        resolve(HubFiles(REPO_ID, ("README.md",)), "pretrained", cache_dir=str(cache))


def test_pretrained_cache_dir_from_env(hf_cache, offline, monkeypatch):
    monkeypatch.setenv("AMPHION_HF_CACHE", str(hf_cache))
    got = resolve(BIGVGAN, "pretrained")
    assert got.kind == "pretrained"
    assert got.file("bigvgan/config.json").read_bytes() == REPO_FILES["bigvgan/config.json"]


def test_pretrained_downloads_when_online(tmp_path, fake_hub):
    cache = tmp_path / "cache"
    got = resolve(BIGVGAN, "pretrained", cache_dir=str(cache))
    assert got.kind == "pretrained"
    assert got.file("bigvgan/bigvgan_generator.pt").read_bytes() == REPO_FILES["bigvgan/bigvgan_generator.pt"]
    assert any("/resolve/" in r for r in fake_hub.requests)
    assert not (got.root / "hifigan_speech").exists()  # only the patterns were fetched


def test_pretrained_from_local_dir_argument(tmp_path, offline, no_network):
    folder = write_repo_folder(tmp_path / "ckpt", [n for n in REPO_FILES if n.startswith("hifigan_speech/")])
    got = resolve(HIFIGAN, "pretrained", local_dir=str(folder))
    assert got.kind == "pretrained" and got.root == folder
    assert len(got.files(CKPT)) == 2
    assert_safe(got.note, folder)
    assert no_network.requests == []


def test_pretrained_from_model_env_var(tmp_path, offline, monkeypatch, hf_cache):
    folder = write_repo_folder(tmp_path / "mine", [n for n in REPO_FILES if n.startswith("hifigan_speech/")])
    monkeypatch.setenv("TEST_HIFIGAN_DIR", str(folder))
    got = resolve(HIFIGAN, "pretrained", cache_dir=str(hf_cache))  # the env var wins over the cache
    assert got.root == folder and "$TEST_HIFIGAN_DIR" in got.note
    assert_safe(got.note, folder)
    # and the explicit argument wins over the env var
    other = write_repo_folder(tmp_path / "arg", [n for n in REPO_FILES if n.startswith("hifigan_speech/")])
    assert resolve(HIFIGAN, "pretrained", local_dir=other).root == other


def test_pretrained_from_amphion_weights_dir(tmp_path, offline, monkeypatch):
    base = tmp_path / "weights"
    write_repo_folder(base / REPO_ID, ["bigvgan/config.json", "bigvgan/bigvgan_generator.pt"])
    monkeypatch.setenv("AMPHION_WEIGHTS_DIR", str(base))
    got = resolve(BIGVGAN, "pretrained")
    assert got.root == base / REPO_ID and "AMPHION_WEIGHTS_DIR" in got.note
    assert_safe(got.note, base)


def test_missing_pattern_in_local_folder(tmp_path, offline, monkeypatch):
    folder = write_repo_folder(tmp_path / "partial", ["hifigan_speech/args.json"])
    monkeypatch.setenv("TEST_HIFIGAN_DIR", str(folder))
    with pytest.raises(WeightsUnavailable) as err:
        resolve(HIFIGAN, "pretrained")
    msg = str(err.value)
    assert REPO_ID in msg and CKPT in msg and "$TEST_HIFIGAN_DIR" in msg
    assert "hifigan_speech/args.json'" not in msg  # only the missing pattern is named
    assert_safe(msg, folder, tmp_path)


def test_local_folder_that_does_not_exist(tmp_path, offline, monkeypatch):
    monkeypatch.setenv("TEST_HIFIGAN_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(WeightsUnavailable, match=r"\$TEST_HIFIGAN_DIR does not exist") as err:
        resolve(HIFIGAN, "pretrained")
    assert_safe(str(err.value), tmp_path)


def test_pattern_absent_from_the_repo(hf_cache, offline):
    files = HubFiles(REPO_ID, ("bigvgan/config.json", "bigvgan/*.safetensors"))
    with pytest.raises(WeightsUnavailable) as err:
        resolve(files, "pretrained", cache_dir=str(hf_cache))
    msg = str(err.value)
    assert REPO_ID in msg and "'bigvgan/*.safetensors'" in msg and "no file matches" in msg
    assert "bigvgan/config.json'" not in msg
    assert_safe(msg, hf_cache)


def test_repo_file_not_downloaded_yet(tmp_path, offline):
    # the cache holds the bigvgan files only; the README exists in the repo but was never fetched
    cache = tmp_path / "cache"
    populate_cache(cache, list(BIGVGAN.patterns))
    with pytest.raises(WeightsUnavailable) as err:
        resolve(HubFiles(REPO_ID, ("README.md",)), "pretrained", cache_dir=str(cache))
    msg = str(err.value)
    assert REPO_ID in msg and "HF_HUB_OFFLINE=1" in msg and "download_weights.py" in msg
    assert_safe(msg, cache)


def test_not_in_cache_offline(tmp_path, offline, no_network):
    with pytest.raises(WeightsUnavailable) as err:
        resolve(HIFIGAN, "pretrained", cache_dir=str(tmp_path / "empty"))
    msg = str(err.value)
    assert msg.startswith(f"{REPO_ID} ({', '.join(HIFIGAN.patterns)}): official weights not found in the cache and "
                          "the hub is unreachable")
    assert "HF_HUB_OFFLINE=1" in msg and "scripts/download_weights.py" in msg and "$TEST_HIFIGAN_DIR" in msg
    assert_safe(msg, tmp_path)
    assert no_network.requests == []


def test_not_in_cache_hub_unreachable(tmp_path, no_network):
    with pytest.raises(WeightsUnavailable) as err:
        resolve(HIFIGAN, "pretrained", cache_dir=str(tmp_path / "empty"))
    msg = str(err.value)
    assert "hub is unreachable" in msg and "HF_HUB_OFFLINE=0" in msg
    assert_safe(msg, tmp_path)
    assert no_network.requests, "pretrained mode should have tried the hub"


def test_repo_not_found_on_hub(tmp_path, fake_hub):
    with pytest.raises(WeightsUnavailable, match="amphion-test/nope: repository not found"):
        resolve(HubFiles("amphion-test/nope", ("x.bin",)), "pretrained", cache_dir=str(tmp_path))


def test_no_official_release(tmp_path, offline, monkeypatch):
    nsf = HubFiles(None, ("nsf/checkpoint/*/pytorch_model.bin",), local_dir_env="TEST_NSF_DIR")
    with pytest.raises(WeightsUnavailable) as err:
        resolve(nsf, "pretrained")
    assert "TEST_NSF_DIR" in str(err.value) and "no official" in str(err.value)

    folder = tmp_path / "nsf"
    (folder / "nsf/checkpoint/step1").mkdir(parents=True)
    (folder / "nsf/checkpoint/step1/pytorch_model.bin").write_bytes(b"w")
    monkeypatch.setenv("TEST_NSF_DIR", str(folder))
    got = resolve(nsf, "pretrained")
    assert got.kind == "pretrained" and got.root == folder
    assert resolve(nsf, "auto").kind == "pretrained"


# ------------------------------------------------------------------------------------------------
# mode "auto", "tiny", and bad modes


@pytest.fixture(params=["online", "offline"])
def hub_mode(request, monkeypatch):
    """Auto mode is checked both with and without HF_HUB_OFFLINE: it must stay off the network either way."""
    if request.param == "offline":
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
        monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    return request.param


def test_auto_uses_cached_weights_without_network(hf_cache, hub_mode, no_network, caplog):
    with caplog.at_level(logging.WARNING, logger="amphion.weights"):
        got = resolve(HIFIGAN, "auto", cache_dir=str(hf_cache))
    assert got.kind == "pretrained" and len(got.files(CKPT)) == 2
    assert no_network.requests == []
    assert not [r for r in caplog.records if r.name == "amphion.weights"]


def test_auto_falls_back_to_tiny_with_warning(tmp_path, hub_mode, no_network, caplog):
    with caplog.at_level(logging.WARNING, logger="amphion.weights"):
        got = resolve(HIFIGAN, "auto", cache_dir=str(tmp_path / "empty"))
    assert got.kind == "tiny" and got.root is None
    assert got.note.startswith(f"official weights for {REPO_ID} not present; serving tiny random weights")
    assert_safe(got.note, tmp_path)
    warnings = [r for r in caplog.records if r.name == "amphion.weights" and r.levelno == logging.WARNING]
    assert len(warnings) == 1 and REPO_ID in warnings[0].getMessage()
    assert no_network.requests == [], "auto mode must never download"


def test_auto_falls_back_when_a_pattern_is_missing(tmp_path, caplog, monkeypatch):
    folder = write_repo_folder(tmp_path / "partial", ["hifigan_speech/args.json"])
    monkeypatch.setenv("TEST_HIFIGAN_DIR", str(folder))
    with caplog.at_level(logging.WARNING, logger="amphion.weights"):
        got = resolve(HIFIGAN, "auto")
    assert got.kind == "tiny" and CKPT in got.note
    assert any(r.name == "amphion.weights" for r in caplog.records)


def test_auto_without_release_or_folder_is_tiny():
    got = resolve(HubFiles(None, ("a.bin",), local_dir_env="TEST_NSF_DIR"), "auto")
    assert got.kind == "tiny" and "TEST_NSF_DIR" in got.note


def test_tiny_mode(hf_cache, no_network):
    got = resolve(HIFIGAN, "tiny", cache_dir=str(hf_cache))
    assert got == ResolvedWeights("tiny", None, "tiny profile: seeded random weights")
    assert no_network.requests == []
    with pytest.raises(WeightsUnavailable):
        got.files("*")


@pytest.mark.parametrize("mode", ["", "Pretrained", "random", None])
def test_bad_mode(mode):
    with pytest.raises(ValueError, match="unknown weights mode"):
        resolve(HIFIGAN, mode)


def test_modes_constant():
    assert weights.WEIGHTS_MODES == ("pretrained", "tiny", "auto")


# ------------------------------------------------------------------------------------------------
# glob patterns


def test_glob_patterns_follow_allow_patterns_semantics(tmp_path):
    root = write_repo_folder(tmp_path / "repo", list(REPO_FILES))
    (root / ".cache/huggingface").mkdir(parents=True)  # what snapshot_download(local_dir=...) leaves
    (root / ".cache/huggingface/README.md.metadata").write_text("x")
    got = ResolvedWeights("pretrained", root, "test")
    rel = lambda paths: [p.relative_to(root).as_posix() for p in paths]  # noqa: E731
    assert rel(got.files(CKPT)) == sorted(n for n in REPO_FILES if n.endswith("pytorch_model.bin"))
    assert rel(got.files("hifigan_speech/checkpoint/*step-0400000*/pytorch_model.bin")) == [
        "hifigan_speech/checkpoint/epoch-0100_step-0400000_loss-1.000/pytorch_model.bin"
    ]
    # like huggingface_hub's allow_patterns, `*` crosses folders and a trailing `/` means "everything below"
    assert rel(got.files("*.json")) == ["bigvgan/config.json", "hifigan_speech/args.json"]
    assert rel(got.files("bigvgan/")) == ["bigvgan/bigvgan_generator.pt", "bigvgan/config.json"]
    assert rel(got.files("*.md")) == ["README.md"]  # .cache metadata is not part of the repo
    assert got.files("nothing/*") == []
    with pytest.raises(WeightsUnavailable, match="exactly one"):
        got.file(CKPT)


def test_hubfiles_patterns():
    assert HubFiles("a/b", ["x", "y"]).patterns == ("x", "y")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        HubFiles("a/b", "x.bin")  # type: ignore[arg-type]
    assert hash(HIFIGAN) == hash(HubFiles(REPO_ID, HIFIGAN.patterns, local_dir_env="TEST_HIFIGAN_DIR"))


# ------------------------------------------------------------------------------------------------
# download()


def test_download(tmp_path, fake_hub):
    from huggingface_hub.utils import are_progress_bars_disabled

    before = are_progress_bars_disabled()
    root = weights.download(HIFIGAN, cache_dir=str(tmp_path / "c"), progress=False)
    assert root == tmp_path / "c" / "models--amphion-test--vocoders" / "snapshots" / SHA
    assert len(ResolvedWeights("pretrained", root, "").files(CKPT)) == 2
    assert are_progress_bars_disabled() == before  # progress=False does not leak


def test_download_failures(tmp_path, no_network):
    with pytest.raises(WeightsUnavailable, match="download failed"):
        weights.download(HIFIGAN, cache_dir=str(tmp_path))
    with pytest.raises(WeightsUnavailable, match="TEST_NSF_DIR"):
        weights.download(HubFiles(None, ("a",), local_dir_env="TEST_NSF_DIR"))


# ------------------------------------------------------------------------------------------------
# scripts/download_weights.py

TABLE = {
    "bigvgan": BIGVGAN,
    "hifigan": HIFIGAN,
    "nsf_hifigan": HubFiles(None, ("nsf_hifigan/checkpoint/*/pytorch_model.bin",), local_dir_env="TEST_NSF_DIR"),
}


@pytest.fixture
def script(monkeypatch):
    """The script as a module, with models.registry.official_weights() replaced by TABLE."""
    fake_registry = types.ModuleType("models.registry")
    fake_registry.official_weights = lambda: dict(TABLE)
    monkeypatch.setitem(sys.modules, "models.registry", fake_registry)
    spec = importlib.util.spec_from_file_location("download_weights_under_test", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_script_list(script, hf_cache, capsys):
    assert script.main(["--list", "--cache-dir", str(hf_cache)]) == 0
    out = capsys.readouterr().out.splitlines()
    rows = {line.split()[0]: line for line in out[1:]}
    assert set(rows) == {"bigvgan", "hifigan", "nsf_hifigan"}
    assert "present" in rows["bigvgan"] and REPO_ID in rows["bigvgan"]
    assert "missing" in rows["nsf_hifigan"] and "$TEST_NSF_DIR" in rows["nsf_hifigan"]


def test_script_list_reports_missing(script, tmp_path, capsys):
    assert script.main(["--list", "--cache-dir", str(tmp_path / "empty")]) == 0
    out = capsys.readouterr().out
    assert "present" not in out and out.count("missing") == 3


def test_script_unknown_model(script, capsys, monkeypatch):
    calls = []
    monkeypatch.setattr(huggingface_hub, "snapshot_download", lambda *a, **k: calls.append(a))
    assert script.main(["bigvgan", "wavenet"]) == 2
    err = capsys.readouterr().err
    assert "unknown model(s): wavenet" in err and "bigvgan, hifigan, nsf_hifigan" in err
    assert calls == []  # nothing downloaded before the names were checked
    assert script.main([]) == 2


def test_script_download_with_patched_hub(script, tmp_path, capsys, monkeypatch):
    """snapshot_download is replaced: it writes the files and draws a tqdm bar, as the real one does."""
    from tqdm.auto import tqdm

    calls = []

    def fake_snapshot_download(repo_id, *, cache_dir=None, allow_patterns=None, revision=None,
                               local_files_only=False, **kwargs):
        calls.append((repo_id, allow_patterns, local_files_only))
        snap = Path(cache_dir) / f"models--{repo_id.replace('/', '--')}" / "snapshots" / SHA
        names = [n for n in REPO_FILES if any(
            __import__("fnmatch").fnmatchcase(n, p) for p in allow_patterns)]
        for name in tqdm(names, desc=f"Fetching {len(names)} files"):
            (snap / name).parent.mkdir(parents=True, exist_ok=True)
            (snap / name).write_bytes(REPO_FILES[name])
        return str(snap)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    cache = tmp_path / "dl"
    assert script.main(["--cache-dir", str(cache), "hifigan", "nsf_hifigan"]) == 0
    captured = capsys.readouterr()
    assert calls == [(REPO_ID, list(HIFIGAN.patterns), False)]
    assert f"[hifigan] {REPO_ID} -> {cache / 'models--amphion-test--vocoders'}" in captured.out
    assert "[hifigan] ok: 3 file(s)" in captured.out
    assert "[nsf_hifigan] no official release: provide it as a local folder via $TEST_NSF_DIR" in captured.out
    assert "Fetching 3 files" in captured.err and "100%" in captured.err  # the progress bar


def test_script_download_through_fake_hub(script, tmp_path, capsys, fake_hub):
    cache = tmp_path / "dl"
    assert script.main(["--cache-dir", str(cache), "--all"]) == 0
    captured = capsys.readouterr()
    assert f"[bigvgan] {REPO_ID} -> {cache / 'models--amphion-test--vocoders'}" in captured.out and "[bigvgan] ok: 2 file(s)" in captured.out
    assert "[hifigan] ok: 3 file(s)" in captured.out
    from huggingface_hub.utils import are_progress_bars_disabled

    if not are_progress_bars_disabled():  # (HF_HUB_DISABLE_PROGRESS_BARS=1 turns them off)
        assert "Fetching" in captured.err  # huggingface_hub's own progress bar
    # what was downloaded is what the server then finds offline
    assert resolve(HIFIGAN, "auto", cache_dir=str(cache)).kind == "pretrained"


def test_script_download_failure(script, tmp_path, capsys, no_network):
    assert script.main(["--cache-dir", str(tmp_path), "bigvgan"]) == 1
    err = capsys.readouterr().err
    assert f"[bigvgan] error: {REPO_ID} (bigvgan/config.json, bigvgan/bigvgan_generator.pt): download failed" in err
    assert "Traceback" not in err and "failed: bigvgan" in err


def test_script_table_unavailable(monkeypatch, capsys):
    broken = types.ModuleType("models.registry")

    def official_weights():
        raise ImportError("models.vocoders is not written yet")

    broken.official_weights = official_weights
    monkeypatch.setitem(sys.modules, "models.registry", broken)
    spec = importlib.util.spec_from_file_location("download_weights_broken", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--list"]) == 1
    assert "cannot read the model table" in capsys.readouterr().err


def test_script_runs_as_a_file():
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True,
                          cwd="/", env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "--all" in proc.stdout and "--list" in proc.stdout and "--cache-dir" in proc.stdout
