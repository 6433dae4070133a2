# The two commands a new user needs: `make demo` builds LeNet-5 on the embedded digits,
# `make test` runs the suite. Both create .venv and install lenetc into it on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SPEC ?= specs/lenet5.yaml

.PHONY: demo test lint clean-build embed-deps

demo: $(VENV)/.installed
	$(BIN)/lenetc build $(SPEC)

test: $(VENV)/.installed
	$(BIN)/python -m pytest -q

lint: $(VENV)/.installed
	$(BIN)/ruff check lenetc tests benchmarks scripts examples
	$(BIN)/ruff format --check lenetc tests benchmarks scripts examples

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	touch $@

# The JavaScript and browser side of the parity proof and the report: headless Chromium (Debian's
# package; needs root or sudo) and the npm packages pinned in js/package-lock.json. onnxruntime-node's
# post-install would download CUDA files, so it is skipped: the CPU binaries ship in the package.
embed-deps:
	@command -v chromium >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	  else sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; fi; }
	cd js && ONNXRUNTIME_NODE_INSTALL=skip npm ci --no-audit --no-fund --ignore-scripts

clean-build:
	rm -rf build
