# xcrop's two entry points on a fresh machine (see README):
#   make demo   runs the main job on the embedded demo data
#   make test   lint + format check + type check (mypy) + the test suite
# Both create .venv and install what they need (torch pinned by constraints.txt).

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.xcrop-installed

.PHONY: install demo test lint format clean

# pip's own output shows what it does; its progress bars only on a terminal (in a log
# each bar would be hundreds of carriage-return updates).
PIP_PROGRESS = $$(test -t 1 || echo --progress-bar off)

$(STAMP): pyproject.toml constraints.txt
	@echo "==> Creating $(VENV) and installing xcrop with its dev extra (only the first time):"
	@echo "    about 2 GB on disk, PyTorch (CPU build) included; a few minutes."
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install $(PIP_PROGRESS) --upgrade pip
	$(PY) -m pip install $(PIP_PROGRESS) -c constraints.txt -e ".[dev]"
	touch $(STAMP)
	@echo "==> $(VENV) is ready."

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/xcrop demo --out xcrop-demo

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

test: lint
	$(PY) -m pytest

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build dist *.egg-info
