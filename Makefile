# One-command set-up: `make train` (main job) and `make test` (test suite) work on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup train test test-slow bench clean

$(STAMP): pyproject.toml scripts/setup.sh
	bash scripts/setup.sh $(PYTHON) $(VENV)
	touch $(STAMP)

setup: $(STAMP)

# Main job: the class-conditional DCGAN on real Fashion-MNIST, a few minutes on a CPU.
train: $(STAMP)
	$(BIN)/gauguin train dcgan --config configs/dcgan_fashion.yaml

# pytest-xdist: up to 4 workers (one per core), a test file per worker so that module fixtures are built once;
# each worker takes its share of the cores (tests/conftest.py). TEST_WORKERS=0 runs the suite in one process.
TEST_WORKERS ?= $(shell n=$$(nproc 2>/dev/null || echo 1); echo $$(( n < 4 ? n : 4 )))
PYTEST := $(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile

test: $(STAMP)
	$(PYTEST) $(PYTEST_ARGS)

# The learning tests (real training runs, marked slow): CI runs them after `make test`.
test-slow: $(STAMP)
	$(PYTEST) -m slow $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python bench/dcgan.py --quick
	$(BIN)/python bench/eval.py --quick
	$(BIN)/python bench/spade.py --quick
	$(BIN)/python bench/image_to_image.py --quick
	$(BIN)/python bench/pggan.py --quick
	$(BIN)/python bench/serve.py --quick
	$(BIN)/python bench/srgan.py --quick

clean:
	rm -rf $(VENV) runs
