#!/usr/bin/env bash
# Runs the whole suite. Ray is started once, by the integration tests' session fixture.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1
.venv/bin/python -m pytest -q "$@"
rc=$?
# pytest exits 5 when it collected no test at all: that is a failure of the suite, not a pass.
exit $rc
