# Two commands do everything on a fresh machine (see README.md):
#   make main [DATA_DIR=folder]   the main job: every experiment, results and report under results/
#   make test                     lint and the test suite
# Both create .venv on first use and reinstall when setup.cfg changes.

VENV ?= .venv
PYTHON ?= python3
STAMP := $(VENV)/.installed

.PHONY: main test

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

main: $(STAMP)
	$(VENV)/bin/tapelab all --out results $(if $(DATA_DIR),--data-dir $(DATA_DIR))

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/python -m pytest
