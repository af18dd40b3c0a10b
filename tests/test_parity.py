"""Generic parity runner over the reference fixtures (see ../shared/parity/FORMAT.md).

One test per (fixture folder, case): ``test_parity[<folder>/<case>]``; ``pytest -k parity`` selects
them. The fixtures are read from ``$AMPHION_PARITY_DIR``, default ``../shared/parity`` next to the
repository. Per-family knowledge lives in ``tests/parity_adapters`` (registry ``ADAPTERS``); a folder
without an adapter is skipped with a reason that names it.

Required mode (``AMPHION_PARITY_REQUIRED=1``, which ``scripts/run_tests.sh`` sets under ``CI=true``):
a case of a BUILT family (its folder has an adapter) that would be skipped, for whatever reason
(unreadable ``cases.json``, its fixture folder is gone: case ``<folder>/missing``, a data folder or
library its adapter needs is missing), FAILS instead, and so does finding no fixtures at all; folders of families not built yet (no adapter) stay skips that
name the folder. The decision is taken in one place, :func:`_not_run`.

Comparison rules (FORMAT.md): integer and bool outputs exactly; float outputs elementwise
``|got - want| <= atol + rtol * |want|`` with the output's own atol/rtol overriding the case's;
shapes must match; non-tensor outputs (plain JSON values) must be equal. Cases marked
``"optional": true`` run like the others.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # tests/ holds the parity_adapters package

from parity_adapters import ADAPTERS  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
PARITY_DIR = Path(os.environ.get("AMPHION_PARITY_DIR") or REPO_ROOT.parent / "shared" / "parity")


# ---------------------------------------------------------------------------------------------
# Cases that cannot run: skip, or fail in required mode
# ---------------------------------------------------------------------------------------------


REQUIRED_ENV = "AMPHION_PARITY_REQUIRED"


class _NotRun:
    """Stands for a case that cannot run (the test decides what that means, see :func:`_not_run`)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def __repr__(self) -> str:
        return f"_NotRun({self.reason!r})"


def _required() -> bool:
    return os.environ.get(REQUIRED_ENV, "").strip() == "1"


def _outcome(folder: str | None, required: bool) -> str:
    """``"fail"`` or ``"skip"`` for a case that cannot run. ``folder`` None: no fixtures were found."""
    if not required:
        return "skip"
    if folder is None or folder in ADAPTERS:
        return "fail"
    return "skip"  # a family that is not built yet


def _not_run(folder: str | None, reason: str) -> None:
    """The one place where a parity case that cannot run is skipped, or failed in required mode."""
    if _outcome(folder, _required()) == "fail":
        why = "the parity fixtures must be present" if folder is None else f"{folder} has an adapter, so it must run"
        pytest.fail(f"{reason} [{REQUIRED_ENV}=1: {why}]", pytrace=False)
    pytest.skip(reason)


# ---------------------------------------------------------------------------------------------
# Collection
# ---------------------------------------------------------------------------------------------


def _collect(parity_dir: Path | None = None) -> list:
    """``(folder, case)`` params; a case that cannot run is a :class:`_NotRun` with its reason."""
    parity_dir = PARITY_DIR if parity_dir is None else parity_dir
    if not parity_dir.is_dir():
        return [pytest.param(None, _NotRun(f"parity fixtures not found at {parity_dir}"), id="no-fixtures")]
    folders = sorted(p for p in parity_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    params = []
    for folder in folders:
        cases_file = folder / "cases.json"
        try:
            cases = json.loads(cases_file.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            reason = f"{folder.name}: cannot read cases.json ({type(exc).__name__})"
            params.append(pytest.param(folder.name, _NotRun(reason), id=f"{folder.name}/cases.json"))
            continue
        if not isinstance(cases, list) or not cases or not all(isinstance(c, dict) and "name" in c for c in cases):
            reason = f"{folder.name}: cases.json is not a non-empty list of named cases"
            params.append(pytest.param(folder.name, _NotRun(reason), id=f"{folder.name}/cases.json"))
            continue
        for case in cases:
            case_id = f"{folder.name}/{case['name']}"
            if folder.name not in ADAPTERS:
                case = _NotRun(f"no implementation registered for {folder.name} yet")
            params.append(pytest.param(folder.name, case, id=case_id))
    if not params:
        return [pytest.param(None, _NotRun(f"no fixture folders in {parity_dir}"), id="no-fixtures")]
    # A built family whose fixture folder is gone would otherwise just have no test at all.
    present = {folder.name for folder in folders}
    for name in sorted(set(ADAPTERS) - present):
        params.append(pytest.param(name, _NotRun(f"{name}: no fixture folder in {parity_dir}"), id=f"{name}/missing"))
    return params


# ---------------------------------------------------------------------------------------------
# Fixture data
# ---------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def _case_tensors(folder: str) -> dict[str, torch.Tensor]:
    path = PARITY_DIR / folder / "cases.safetensors"
    if not path.is_file():
        return {}
    from safetensors.torch import load_file

    return load_file(str(path))


_components: dict[str, Any] = {}


def _component(folder: str) -> Any:
    # Built once per folder: the adapter goes through the product's loading code.
    if folder not in _components:
        _components[folder] = ADAPTERS[folder].load(PARITY_DIR / folder)
    return _components[folder]


def _is_tensor_spec(spec: Any) -> bool:
    return isinstance(spec, dict) and "tensor" in spec


def _inputs(folder: str, case: dict) -> dict[str, Any]:
    tensors = _case_tensors(folder)
    out = {}
    for name, spec in case.get("inputs", {}).items():
        if _is_tensor_spec(spec):
            if spec["tensor"] not in tensors:
                raise KeyError(f"{folder}: cases.safetensors has no {spec['tensor']!r}")
            out[name] = tensors[spec["tensor"]].clone()
        else:
            out[name] = spec  # a plain JSON value (text, language code, ...)
    return out


# ---------------------------------------------------------------------------------------------
# Comparison
# ---------------------------------------------------------------------------------------------


def _to_plain(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.tolist()
    if hasattr(value, "tolist"):  # numpy
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [_to_plain(v) for v in value]
    return value


def _compare(name: str, got: Any, want: Any, spec: Any, case: dict) -> tuple[str | None, str]:
    """Returns (failure message or None, one-line summary)."""
    if not _is_tensor_spec(spec):
        plain = _to_plain(got)
        if plain == spec:
            return None, f"{name}: equal"
        return f"{name}: expected {spec!r}, got {plain!r}", f"{name}: differs"

    got_t = torch.as_tensor(got) if not isinstance(got, torch.Tensor) else got
    got_t = got_t.detach().cpu()
    if tuple(got_t.shape) != tuple(want.shape):
        return f"{name}: shape {tuple(got_t.shape)} != expected {tuple(want.shape)}", f"{name}: shape mismatch"

    if not want.is_floating_point():
        if got_t.is_floating_point():
            return f"{name}: expected {want.dtype} values, got {got_t.dtype}", f"{name}: dtype mismatch"
        # Ids and codes match exactly; an integer output with its own atol (16-bit PCM samples
        # rounded from float audio) within it.
        int_atol = int(spec.get("atol") or 0)
        bad = (got_t.to(torch.int64) - want.to(torch.int64)).abs() > int_atol
        n_bad = int(bad.sum())
        if n_bad:
            first = tuple(int(i) for i in bad.nonzero()[0])
            rule = f"within {int_atol}" if int_atol else "exact match required"
            return (
                f"{name}: {n_bad}/{want.numel()} values differ ({rule}); first at {first}: "
                f"got {got_t[first].item()}, want {want[first].item()}",
                f"{name}: {n_bad} mismatches",
            )
        return None, f"{name}: exact" if not int_atol else f"{name}: within {int_atol}"

    atol = spec.get("atol", case.get("atol"))
    rtol = spec.get("rtol", case.get("rtol"))
    atol = 0.0 if atol is None else float(atol)
    rtol = 0.0 if rtol is None else float(rtol)
    g, w = got_t.double(), want.double()
    nan_ok = torch.isnan(g) == torch.isnan(w)
    diff = (g - w).abs().nan_to_num(nan=0.0)
    allowed = atol + rtol * w.abs().nan_to_num(nan=0.0)
    bad = (diff > allowed) | ~nan_ok
    max_err = float(diff.max()) if diff.numel() else 0.0
    summary = f"{name}: max abs err {max_err:.3e} (atol {atol:g}, rtol {rtol:g})"
    if bool(bad.any()):
        first = tuple(int(i) for i in bad.nonzero()[0])
        return (
            f"{summary}; {int(bad.sum())}/{w.numel()} elements out of tolerance, first at {first}: "
            f"got {g[first].item():.6g}, want {w[first].item():.6g}",
            summary,
        )
    return None, summary


# ---------------------------------------------------------------------------------------------
# The test
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("folder", "case"), _collect())
def test_parity(folder: str | None, case: dict | _NotRun, record_property) -> None:
    if isinstance(case, _NotRun):
        _not_run(folder, case.reason)
    try:
        _check_case(folder, case, record_property)
    except pytest.skip.Exception as exc:  # an adapter (or the loading code) skipped the case
        skipped = exc
    else:
        return
    _not_run(folder, skipped.msg)


def _check_case(folder: str, case: dict, record_property) -> None:
    adapter = ADAPTERS[folder]
    component = _component(folder)
    inputs = _inputs(folder, case)
    outputs = adapter.run(
        component, case["name"], case.get("call", ""), inputs, dict(case.get("args") or {}), case=case
    )

    tensors = _case_tensors(folder)
    failures, summaries = [], []
    for name, spec in case["outputs"].items():
        if name not in outputs:
            failures.append(f"{name}: not produced by the adapter")
            continue
        want = tensors[spec["tensor"]] if _is_tensor_spec(spec) else None
        failure, summary = _compare(name, outputs[name], want, spec, case)
        summaries.append(summary)
        if failure:
            failures.append(failure)
    record_property("parity", "; ".join(summaries))
    assert not failures, f"{folder}/{case['name']}:\n  " + "\n  ".join(failures)
