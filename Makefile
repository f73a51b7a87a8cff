# Two commands: `make demo` and `make test`. Both create .venv when it is missing.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
BACKENDS ?= tensorflow torch jax

.PHONY: install demo test test-oldest bench lint samples clean

install: $(STAMP)

# torch==2.13.0 first: it is a CPU wheel on this disk; an unpinned torch pulls a multi-GB CUDA build.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev,jax,bench]'
	touch $(STAMP)

# The main job on the bundled synthetic samples: fraud with 15 epochs (the paper: 46), QQP on the
# tiny random-weight RoBERTa (whose default learning rates are raised, since the report's learn
# nothing there). The reports say both. A new demo replaces the previous one.
DEMO_BACKEND ?= tensorflow
demo: $(STAMP)
	rm -rf runs/demo
	KERAS_BACKEND=$(DEMO_BACKEND) $(PY) scripts/fraud.py --protocol all --epochs 15 --out runs/demo/fraud
	KERAS_BACKEND=$(DEMO_BACKEND) $(PY) scripts/qqp.py --mode both --epochs 10 --out runs/demo/qqp
	@echo "reports: runs/demo/fraud/report.md runs/demo/qqp/report.md"

# The suite once per backend, each on TEST_WORKERS processes (pytest-xdist; a file's tests stay
# on one worker, so module fixtures are built once; files go out in the order of
# tests/conftest.py's LONGEST_FIRST, not xdist's by-count reorder, so the workers finish
# together). Tests marked backend_independent (no Keras in them, packaging, or every backend in
# one run) and the docstring examples run under the first backend only.
TEST_WORKERS ?= 2
PYTEST := $(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder
test: $(STAMP)
	@set -e; first=1; for b in $(BACKENDS); do \
	  echo "=== KERAS_BACKEND=$$b ==="; \
	  if [ $$first = 1 ]; then \
	    KERAS_BACKEND=$$b $(PYTEST) tests --doctest-modules project benchmarks; \
	  else \
	    KERAS_BACKEND=$$b $(PYTEST) tests -m "not backend_independent"; \
	  fi; \
	  first=0; \
	done
	@$(MAKE) --no-print-directory test-oldest

# The oldest keras and keras-hub that pyproject.toml allows, tested on a focused subset (tests
# marked oldest_versions: the LoRA layer, merge / unmerge, save / reload, Hugging Face and PEFT
# parity, one short run of each experiment). make test runs it under torch (the backend with our
# own train step; its reload checks load under TensorFlow); `make test-oldest
# OLDEST_BACKENDS="tensorflow torch jax"` under each. Only those two wheels go into .venv-oldest,
# laid first on PYTHONPATH over .venv: no second TensorFlow.
OLDEST_KERAS     ?= 3.10.0
OLDEST_KERAS_HUB ?= 0.22.0
OLDEST_BACKENDS  ?= torch
OLDEST       := .venv-oldest
OLDEST_STAMP := $(OLDEST)/.keras-$(OLDEST_KERAS)-hub-$(OLDEST_KERAS_HUB)
OLDEST_PATH  := $(CURDIR)/$(OLDEST):$(CURDIR)

$(OLDEST_STAMP): $(STAMP)
	rm -rf $(OLDEST)
	$(PY) -m pip install -q --no-deps --target $(OLDEST) keras==$(OLDEST_KERAS) keras-hub==$(OLDEST_KERAS_HUB)
	touch $@

test-oldest: $(OLDEST_STAMP)
	@set -e; for b in $(OLDEST_BACKENDS); do \
	  echo "=== keras $(OLDEST_KERAS), keras-hub $(OLDEST_KERAS_HUB), KERAS_BACKEND=$$b ==="; \
	  PYTHONPATH=$(OLDEST_PATH) KERAS_BACKEND=$$b TF_CPP_MIN_LOG_LEVEL=3 $(PY) -c "import keras, keras_hub; \
	    v = (keras.__version__, keras_hub.__version__); \
	    assert v == ('$(OLDEST_KERAS)', '$(OLDEST_KERAS_HUB)'), v"; \
	  PYTHONPATH=$(OLDEST_PATH) KERAS_BACKEND=$$b $(PYTEST) tests -m oldest_versions; \
	done

bench: $(STAMP)
	$(PY) scripts/bench.py --suite all --json runs/bench.json

lint: $(STAMP)
	$(PY) -m ruff check project scripts tests benchmarks

samples: $(STAMP)
	$(PY) scripts/make_samples.py --out assets

clean:
	rm -rf runs .pytest_cache $(OLDEST)
