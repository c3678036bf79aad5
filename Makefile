# The two commands of the README. Each creates the virtual environment when it is missing.
VENV := .venv
PY := $(VENV)/bin/python
export PATH := $(abspath $(VENV))/bin:$(PATH)
export DVC_NO_ANALYTICS := 1

# PROFILE=quick|gpu runs the study as a DVC experiment with that params profile (params.yaml `profiles`).
PROFILE ?=

# DVC's cache, and with it DVC's run-cache, is shared by every clone of the project on this machine:
# a second clone restores each stage's outputs instead of recomputing them. Set BINDLAB_DVC_CACHE to
# put it elsewhere; it is written to .dvc/config.local (git-ignored), never to the committed config.
BINDLAB_DVC_CACHE ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/bindlab/dvc

.PHONY: study test venv ui cache

$(PY): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e .
	touch $(PY)

venv: $(PY)

cache: $(PY)
	dvc config --local cache.dir "$(BINDLAB_DVC_CACHE)"

study: $(PY) cache
	$(if $(PROFILE),dvc exp run -S profile=$(PROFILE),dvc repro)
	$(PY) -m bindlab.cli report --readme README.md

# The UI: local Prefect server on 127.0.0.1:4200 (home .prefect/) serving the study's deployments,
# and data/ (reports, audit pages, plots) on 127.0.0.1:4201 for the links in the runs' artifacts.
ui: $(PY)
	$(PY) -m flows.serve --port 4200

test: $(PY)
	$(PY) -m pytest -q
