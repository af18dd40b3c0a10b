"""Generic parity runner over the reference fixtures (see ../shared/parity/FORMAT.md).

One test per (fixture folder, case): ``test_parity[<folder>/<case>]``; ``pytest -k parity`` selects
them. The fixtures are read from ``$AMPHION_PARITY_DIR``, default ``../shared/parity`` next to the
repository. Per-family knowledge lives in ``tests/parity_adapters`` (registry ``ADAPTERS``); a folder
without an adapter is skipped with a reason that names it.

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
# Collection
# ---------------------------------------------------------------------------------------------


def _collect() -> list:
    if not PARITY_DIR.is_dir():
        return [pytest.param(None, None, id="no-fixtures", marks=pytest.mark.skip(reason=f"parity fixtures not found at {PARITY_DIR}"))]
    folders = sorted(p for p in PARITY_DIR.iterdir() if p.is_dir() and not p.name.startswith("."))
    params = []
    for folder in folders:
        cases_file = folder / "cases.json"
        try:
            cases = json.loads(cases_file.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            reason = f"{folder.name}: cannot read cases.json ({type(exc).__name__})"
            params.append(pytest.param(folder.name, None, id=f"{folder.name}/cases.json", marks=pytest.mark.skip(reason=reason)))
            continue
        for case in cases:
            marks = []
            if folder.name not in ADAPTERS:
                marks.append(pytest.mark.skip(reason=f"no implementation registered for {folder.name} yet"))
            params.append(pytest.param(folder.name, case, id=f"{folder.name}/{case['name']}", marks=marks))
    if not params:
        return [pytest.param(None, None, id="no-fixtures", marks=pytest.mark.skip(reason=f"no fixture folders in {PARITY_DIR}"))]
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
        bad = (got_t.to(torch.int64) != want.to(torch.int64))
        n_bad = int(bad.sum())
        if n_bad:
            first = tuple(int(i) for i in bad.nonzero()[0])
            return (
                f"{name}: {n_bad}/{want.numel()} values differ (exact match required); first at {first}: "
                f"got {got_t[first].item()}, want {want[first].item()}",
                f"{name}: {n_bad} mismatches",
            )
        return None, f"{name}: exact"

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
def test_parity(folder: str, case: dict, record_property) -> None:
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
