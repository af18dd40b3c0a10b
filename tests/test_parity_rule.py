"""The parity runner's skip-or-fail rule (tests/test_parity.py), on small fake fixture folders.

Without ``AMPHION_PARITY_REQUIRED=1`` a case that cannot run is skipped. With it, a case of a BUILT
family (an adapter is registered for its folder) that cannot run fails, and so does finding no
fixtures at all; a folder of a family without an adapter stays a skip that names the folder. None of
this reads the real fixtures: each test builds its own parity folder in ``tmp_path`` and its own
adapter registry.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import test_parity as runner
from parity_adapters.base import Adapter

REPO_ROOT = Path(__file__).resolve().parents[1]
BUILT, UNBUILT, BROKEN = "zz_rule_built", "zz_rule_unbuilt", "zz_rule_broken"


class _FakeAdapter(Adapter):
    """Needs ``model.safetensors`` in its folder (skips without it, like a real adapter whose data is
    missing); a case doubles its integer input ``x``."""

    def load(self, folder: Path) -> Any:
        if not (folder / "model.safetensors").is_file():
            pytest.skip(f"{folder.name}: model.safetensors is missing")
        return 2

    def run(self, component: Any, case_name: str, call: str, inputs: dict, args: dict, *, case: dict) -> dict:
        return {"y": component * inputs["x"]}


def _folder(root: Path, name: str, cases: Any, weights: bool = False) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}", encoding="utf-8")
    (folder / "cases.json").write_text(cases if isinstance(cases, str) else json.dumps(cases), encoding="utf-8")
    if weights:
        (folder / "model.safetensors").write_bytes(b"")  # the fake adapter only looks for the file
    return folder


def _case(name: str, x: int = 3) -> dict:
    return {"name": name, "call": "double", "inputs": {"x": x}, "outputs": {"y": 2 * x}}


@pytest.fixture
def fake(tmp_path, monkeypatch):
    """A parity dir with: a built family without its weights file, a family with no adapter, and a
    built family whose cases.json is unreadable. Returns (parity dir, {case id: (folder, case)})."""
    root = tmp_path / "parity"
    _folder(root, BUILT, [_case("one"), _case("two", 5)])
    _folder(root, UNBUILT, [_case("one")])
    _folder(root, BROKEN, "{not json")
    monkeypatch.setattr(runner, "ADAPTERS", {BUILT: _FakeAdapter(), BROKEN: _FakeAdapter()})
    monkeypatch.setattr(runner, "PARITY_DIR", root)
    monkeypatch.setattr(runner, "_components", {})
    monkeypatch.delenv(runner.REQUIRED_ENV, raising=False)
    return root


def _params(parity_dir: Path) -> dict[str, tuple]:
    return {p.id: tuple(p.values) for p in runner._collect(parity_dir)}


def _result(folder, case) -> tuple[str, str]:
    """Runs the parity test body on one collected case: ("passed" | "skipped" | "failed", message)."""
    try:
        runner.test_parity(folder, case, lambda *_: None)
    except pytest.skip.Exception as exc:
        return "skipped", exc.msg
    except pytest.fail.Exception as exc:
        return "failed", exc.msg
    return "passed", ""


def test_outcome_table(monkeypatch):
    monkeypatch.setattr(runner, "ADAPTERS", {BUILT: _FakeAdapter()})
    assert runner._outcome(BUILT, required=False) == "skip"
    assert runner._outcome(UNBUILT, required=False) == "skip"
    assert runner._outcome(None, required=False) == "skip"
    assert runner._outcome(BUILT, required=True) == "fail"
    assert runner._outcome(UNBUILT, required=True) == "skip"
    assert runner._outcome(None, required=True) == "fail"


@pytest.mark.parametrize("value, required", [("1", True), (" 1 ", True), ("", False), ("0", False), ("true", False)])
def test_required_reads_the_environment(monkeypatch, value, required):
    monkeypatch.setenv(runner.REQUIRED_ENV, value)
    assert runner._required() is required


def test_collection_names_each_case_and_folder(fake):
    params = _params(fake)
    assert sorted(params) == [f"{BROKEN}/cases.json", f"{BUILT}/one", f"{BUILT}/two", f"{UNBUILT}/one"]
    assert params[f"{BUILT}/one"] == (BUILT, _case("one"))
    folder, case = params[f"{UNBUILT}/one"]
    assert folder == UNBUILT and isinstance(case, runner._NotRun) and UNBUILT in case.reason


def test_without_required_everything_that_cannot_run_is_skipped(fake):
    results = {cid: _result(*values) for cid, values in _params(fake).items()}
    assert {cid: outcome for cid, (outcome, _) in results.items()} == {
        f"{BROKEN}/cases.json": "skipped",
        f"{BUILT}/one": "skipped",
        f"{BUILT}/two": "skipped",
        f"{UNBUILT}/one": "skipped",
    }
    assert "model.safetensors is missing" in results[f"{BUILT}/one"][1]
    assert results[f"{UNBUILT}/one"][1] == f"no implementation registered for {UNBUILT} yet"
    assert "cannot read cases.json" in results[f"{BROKEN}/cases.json"][1]


def test_required_fails_built_families_and_still_skips_unbuilt_ones(fake, monkeypatch):
    monkeypatch.setenv(runner.REQUIRED_ENV, "1")
    results = {cid: _result(*values) for cid, values in _params(fake).items()}
    assert {cid: outcome for cid, (outcome, _) in results.items()} == {
        f"{BROKEN}/cases.json": "failed",
        f"{BUILT}/one": "failed",
        f"{BUILT}/two": "failed",
        f"{UNBUILT}/one": "skipped",
    }
    assert "model.safetensors is missing" in results[f"{BUILT}/one"][1]
    assert runner.REQUIRED_ENV in results[f"{BUILT}/one"][1]
    assert results[f"{UNBUILT}/one"][1] == f"no implementation registered for {UNBUILT} yet"


def test_required_runs_and_checks_a_complete_built_folder(fake, monkeypatch):
    monkeypatch.setenv(runner.REQUIRED_ENV, "1")
    (fake / BUILT / "model.safetensors").write_bytes(b"")
    params = _params(fake)
    assert _result(*params[f"{BUILT}/one"]) == ("passed", "")
    assert _result(*params[f"{BUILT}/two"]) == ("passed", "")
    # A wrong output is still an assertion failure, as without the flag.
    folder, case = params[f"{BUILT}/one"]
    with pytest.raises(AssertionError, match="expected 7"):
        runner.test_parity(folder, {**case, "outputs": {"y": 7}}, lambda *_: None)


def test_required_fails_a_built_family_whose_folder_is_missing(fake, monkeypatch):
    monkeypatch.setattr(runner, "ADAPTERS", {**runner.ADAPTERS, "zz_rule_gone": _FakeAdapter()})
    params = _params(fake)
    assert "zz_rule_gone/missing" in params
    assert _result(*params["zz_rule_gone/missing"])[0] == "skipped"
    monkeypatch.setenv(runner.REQUIRED_ENV, "1")
    outcome, message = _result(*params["zz_rule_gone/missing"])
    assert outcome == "failed" and "zz_rule_gone" in message


@pytest.mark.parametrize("layout", ["absent", "empty", "only-dot-folders"])
def test_no_fixtures_skips_or_fails(tmp_path, monkeypatch, layout):
    root = tmp_path / "parity"
    if layout != "absent":
        root.mkdir()
    if layout == "only-dot-folders":
        (root / ".cache").mkdir()
    monkeypatch.setattr(runner, "ADAPTERS", {BUILT: _FakeAdapter()})
    monkeypatch.delenv(runner.REQUIRED_ENV, raising=False)
    params = _params(root)
    assert list(params) == ["no-fixtures"]
    assert _result(*params["no-fixtures"])[0] == "skipped"
    monkeypatch.setenv(runner.REQUIRED_ENV, "1")
    outcome, message = _result(*params["no-fixtures"])
    assert outcome == "failed" and str(root) in message


def test_required_end_to_end_through_the_environment(tmp_path):
    """The real runner, in a pytest subprocess, on a parity dir holding only a family without an
    adapter: that folder is a skip naming it, and every built family's folder is missing (failures)."""
    root = tmp_path / "parity"
    _folder(root, UNBUILT, [_case("one")])
    env = {**os.environ, "AMPHION_PARITY_DIR": str(root), runner.REQUIRED_ENV: "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider", "tests/test_parity.py"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "SKIPPED [1] tests/test_parity.py" in out and f"no implementation registered for {UNBUILT} yet" in out
    built = sorted(n for n in runner.ADAPTERS if not n.startswith("zz_rule"))
    assert built, "no parity adapter is registered"
    for name in built:
        assert f"FAILED tests/test_parity.py::test_parity[{name}/missing]" in out, out
    assert f"{len(built)} failed, 1 skipped" in out, out
