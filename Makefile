# The two commands of the README.
#   make serve  installs everything and starts the whole application on this machine
#   make test   installs everything and runs the test suite
#   make test-fast  the inner loop: the suite without Ray and without `slow` tests (under 2 minutes)
.PHONY: install serve test test-fast parity bench status

install:
	bash scripts/install.sh

# AMPHION_MODELS=vocoders,codecs make serve  serves those families only (scripts/serve_config.py)
serve: install
	.venv/bin/python scripts/serve_config.py config/serve.local.yaml --run

test: install
	bash scripts/run_tests.sh

test-fast: install
	bash scripts/run_tests.sh -m "not integration and not slow"

parity: install
	.venv/bin/python -m pytest -k parity -q

bench: install
	.venv/bin/python scripts/bench_overhead.py
	.venv/bin/python scripts/bench_batching.py
	.venv/bin/python scripts/bench_upload_memory.py

status:
	RAY_AUTH_MODE=token .venv/bin/serve status
