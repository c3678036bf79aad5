# The two commands of the README. Each creates the virtual environment when it is missing.
VENV := .venv
PY := $(VENV)/bin/python
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export DVC_NO_ANALYTICS := 1

.PHONY: study test venv

$(PY): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e .
	touch $(PY)

venv: $(PY)

study: $(PY)
	dvc repro

test: $(PY)
	$(PY) -m pytest -q
