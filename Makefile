# Two commands do all set-up: `make run` (the main job) and `make test` (the whole suite).
# Both create and reuse a local virtual environment in .venv.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# The local Gutenberg mirror beside the checkout when there is one, gutenberg.org otherwise.
MIRROR ?= $(if $(wildcard ../shared/gutenberg/cache),../shared/gutenberg,https://www.gutenberg.org)
OUT ?= runs/latest
CONFIG ?=

.PHONY: run test clean

$(VENV)/.installed: pyproject.toml CMakeLists.txt $(wildcard csrc/*.cc csrc/*.h)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

run: $(VENV)/.installed
	$(VENV)/bin/jaxgram pipeline --mirror $(MIRROR) --out $(OUT) $(if $(CONFIG),--config $(CONFIG),)

# Lint first: a ruff finding fails `make test` (and so CI) exactly as a failing test does.
test: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) runs
