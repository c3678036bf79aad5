# The two commands of the README. Each creates the virtual environment when it is missing.
VENV := .venv
PY := $(VENV)/bin/python
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export DVC_NO_ANALYTICS := 1

# PROFILE=quick|gpu runs the study as a DVC experiment with that params profile (params.yaml `profiles`).
PROFILE ?=

.PHONY: study test venv ui

$(PY): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e .
	touch $(PY)

venv: $(PY)

study: $(PY)
	$(if $(PROFILE),dvc exp run -S profile=$(PROFILE),dvc repro)
	$(PY) -m bindlab.cli report --readme README.md

# The UI: local Prefect server on 127.0.0.1:4200 (home .prefect/) serving the study's deployments.
ui: $(PY)
	$(PY) -m flows.serve --port 4200

test: $(PY)
	$(PY) -m pytest -q
