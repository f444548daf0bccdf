# Two commands do all the set-up on a fresh machine:
#   make demo   -> creates .venv, installs jaxnn, runs the main job (`jaxnn demo`)
#   make test   -> creates .venv, installs jaxnn with test extras, runs the whole suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo gradcheck test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/jaxnn demo

gradcheck: $(STAMP)
	$(BIN)/jaxnn gradcheck

test: $(STAMP)
	$(BIN)/python -m pytest -q -n 2

lint: $(STAMP)
	$(BIN)/ruff check jaxnn tests benchmarks
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run
	$(BIN)/python -m benchmarks.progress

clean:
	rm -rf $(VENV) build *.egg-info
