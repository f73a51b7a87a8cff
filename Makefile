# Two commands: `make demo` and `make test`. Both create .venv when it is missing.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
BACKENDS ?= tensorflow torch

.PHONY: install demo test bench lint samples clean

install: $(STAMP)

# torch==2.13.0 first: it is a CPU wheel on this disk; an unpinned torch pulls a multi-GB CUDA build.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev,jax,bench]'
	touch $(STAMP)

demo: $(STAMP)
	$(PY) scripts/demo.py

test: $(STAMP)
	@set -e; for b in $(BACKENDS); do \
	  echo "=== KERAS_BACKEND=$$b ==="; \
	  KERAS_BACKEND=$$b $(PY) -m pytest tests; \
	done

bench: $(STAMP)
	$(PY) scripts/bench.py --suite all --json runs/bench.json

lint: $(STAMP)
	$(PY) -m ruff check project scripts tests benchmarks

samples: $(STAMP)
	$(PY) scripts/make_samples.py

clean:
	rm -rf runs .pytest_cache
