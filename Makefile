# Two commands do all the set-up on a fresh machine:
#   make demo   -> creates .venv, installs jaxnn, runs the main job (`jaxnn demo`)
#   make test   -> creates .venv, installs jaxnn with test extras, runs the whole suite
#   make docs   -> builds the docs site into site/ (mkdocs build --strict, notebooks executed)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo gradcheck test docs lint bench clean

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

docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

lint: $(STAMP)
	$(BIN)/ruff check jaxnn tests benchmarks docs
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run
	$(BIN)/python -m benchmarks.progress

clean:
	rm -rf $(VENV) build *.egg-info site .cache
