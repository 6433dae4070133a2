# The two commands a new user needs: `make demo` builds LeNet-5 on the embedded digits,
# `make test` runs the suite. Both create .venv and install lenetc into it on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SPEC ?= specs/lenet5.yaml

.PHONY: demo test lint clean-build deps embed-deps

demo: $(VENV)/.installed
	$(BIN)/lenetc build $(SPEC)

# Two processes: the tests that fork (DataLoader workers, torchrun ranks, subprocess slices of the
# suite) run apart from those that load every runtime in-process. A fork of one process that had
# loaded them all (OpenVINO, jax under litert-torch, ExecuTorch, ONNX Runtime, each with its own
# thread pools) crashed late in a single-process run on 2 cores; split, each half is a fresh process.
FORKING := tests/test_datasets.py tests/test_device.py tests/test_distributed.py \
	tests/test_streaming.py tests/test_tools.py tests/test_train.py

test: $(VENV)/.installed
	$(BIN)/python -m pytest -q $(FORKING)
	$(BIN)/python -m pytest -q $(addprefix --ignore=,$(FORKING))

lint: $(VENV)/.installed
	$(BIN)/ruff check lenetc tests benchmarks scripts examples
	$(BIN)/ruff format --check lenetc tests benchmarks scripts examples

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	touch $@

# Every system and npm package of the full proof (clang, clang-format, chromium, the Arm cross
# toolchain and QEMU, node/npm, js/node_modules): idempotent, as root or through sudo. `make demo` and
# `make test` need none of them; the tests that do skip without them, naming this target.
deps:
	bash scripts/deps.sh

embed-deps: deps  # its name before the cross toolchain joined

clean-build:
	rm -rf build
