# Two commands: `make demo` and `make test`. Both create .venv when it is missing.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
BACKENDS ?= tensorflow torch jax

.PHONY: install demo test bench lint samples clean

install: $(STAMP)

# torch==2.13.0 first: it is a CPU wheel on this disk; an unpinned torch pulls a multi-GB CUDA build.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev,jax,bench]'
	touch $(STAMP)

# The main job on the bundled synthetic samples: fraud with 15 epochs (the paper: 46), QQP on a tiny
# random-weight RoBERTa with learning rates raised for it (the report's 1e-6/1e-4 learn nothing
# there). The reports say both.
DEMO_BACKEND ?= tensorflow
demo: $(STAMP)
	KERAS_BACKEND=$(DEMO_BACKEND) $(PY) scripts/fraud.py --protocol all --epochs 15 --verbose 2 \
	  --out runs/demo/fraud
	KERAS_BACKEND=$(DEMO_BACKEND) $(PY) scripts/qqp.py --mode both --epochs 10 \
	  --lr-full 1e-3 --lr-lora 5e-3 --verbose 2 --out runs/demo/qqp
	@echo "reports: runs/demo/fraud/report.md runs/demo/qqp/report.md"

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
	$(PY) scripts/make_samples.py --out assets

clean:
	rm -rf runs .pytest_cache
