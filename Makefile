# Two commands do all the set-up on a fresh machine:
#   make demo   -> creates .venv, installs jaxnn, runs the main job (`jaxnn demo`)
#   make test   -> creates .venv, installs jaxnn with test extras, runs the whole suite
#   make lab    -> adds JupyterLab + jupytext (the `lab` extra) and opens notebooks/ (see notebooks/README.md)
#   make docs   -> builds the docs site into site/ (mkdocs build --strict, notebooks executed)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo gradcheck test docs lint bench lab clean

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
	$(BIN)/python -m pytest -q -n 2 --dist worksteal

docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

lint: $(STAMP)
	$(BIN)/ruff check jaxnn tests benchmarks docs
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run
	$(BIN)/python -m benchmarks.progress
	$(BIN)/python -m benchmarks.small_fits
	$(BIN)/python -m benchmarks.many

# JupyterLab on notebooks/ (the kernels run .venv's python). jupytext's server extension serves the
# percent-format .py files as notebooks; notebooks/.jupyter/labconfig (added to JUPYTER_CONFIG_PATH)
# makes "Jupytext Notebook" their default viewer, so a double click opens them as notebooks.
# Nothing is written to ~/.jupyter. Run as root (common in containers), it passes --allow-root.
# Extra flags: make lab LAB_ARGS="--no-browser --port 8899".
LAB_STAMP := $(VENV)/.lab-installed
LAB_ARGS ?=

$(LAB_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -e '.[lab]'
	touch $(LAB_STAMP)

lab: $(LAB_STAMP)
	JUPYTER_CONFIG_PATH="$(CURDIR)/notebooks/.jupyter$${JUPYTER_CONFIG_PATH:+:$$JUPYTER_CONFIG_PATH}" \
	JUPYTER_PATH="$(CURDIR)/$(VENV)/share/jupyter$${JUPYTER_PATH:+:$$JUPYTER_PATH}" \
	$(BIN)/jupyter lab notebooks/ $$([ "$$(id -u)" = 0 ] && echo --allow-root) $(LAB_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info site .cache
