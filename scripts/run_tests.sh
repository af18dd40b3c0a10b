#!/usr/bin/env bash
# Runs the whole suite. Ray is started once, by the integration tests' session fixture.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1
# One intra-op thread unless told otherwise: on a small shared machine torch's default pool makes the
# tiny test models several times slower (CPU spent spinning), not faster.
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
# In CI a parity case of a built family may not skip (tests/test_parity.py): set it unless told otherwise.
if [ "${CI:-}" = "true" ] || [ "${CI:-}" = "1" ]; then
  export AMPHION_PARITY_REQUIRED="${AMPHION_PARITY_REQUIRED:-1}"
fi
.venv/bin/python -m pytest -q "$@"
rc=$?
# pytest exits 5 when it collected no test at all: that is a failure of the suite, not a pass.
exit $rc
