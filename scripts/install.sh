#!/usr/bin/env bash
# Installs everything the application and its tests need on a fresh Debian machine:
# system packages, then a virtual environment at .venv with the project and its test extras.
# Safe to run again: each step is skipped when already done.
set -euo pipefail
cd "$(dirname "$0")/.."

# g++ builds pyworld (Noro's F0), which PyPI ships as source only. chromium runs the playground
# page's browser tests (Playwright drives it; Playwright's own browser downloads are not used).
SYSTEM_PACKAGES=(espeak-ng libsndfile1 g++ chromium)
missing=()
for p in "${SYSTEM_PACKAGES[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi

PY=${PYTHON:-python3.11}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
# torch/torchaudio first, pinned: on x86_64 the PyPI wheels are CUDA builds of several GB, and
# an unpinned resolver would fetch other versions.
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -c constraints.txt torch torchaudio 2>&1 | grep -v "is ignored" || true
.venv/bin/python -m pip install -q -c constraints.txt -e ".[test]" 2>&1 | grep -v "is ignored" || true
.venv/bin/python -c "import torch, torchaudio, ray, soundfile, parselmouth, pyworld" \
  || { echo "install failed: see pip output above" >&2; exit 1; }
echo "installed: $(.venv/bin/python -c 'import torch, ray; print("torch", torch.__version__, "ray", ray.__version__)')"
