# The two commands a new user needs: `make demo` builds LeNet-5 on the embedded digits,
# `make test` runs the suite. Both create .venv and install lenetc into it on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SPEC ?= specs/lenet5.yaml

.PHONY: demo test lint clean-build

demo: $(VENV)/.installed
	$(BIN)/lenetc build $(SPEC)

test: $(VENV)/.installed
	$(BIN)/python -m pytest -q

lint: $(VENV)/.installed
	$(BIN)/ruff check lenetc tests benchmarks scripts
	$(BIN)/ruff format --check lenetc tests benchmarks scripts

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	touch $@

clean-build:
	rm -rf build
