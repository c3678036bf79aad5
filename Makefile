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
# Outputs are hard links into that cache (copies across file systems): a clone restores the 2.7 GB
# of a study without copying it. DVC makes linked outputs read-only; every stage writes a new file
# and renames it into place (bindlab/io.py), so no stage ever writes through a link into the cache.
BINDLAB_DVC_CACHE ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/bindlab/dvc

.PHONY: study test venv ui cache datadocs

$(PY): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e .
	touch $(PY)

venv: $(PY)

# The scripts and styles GX's Data Docs pages load, from the npm registry into .venv/share, so the
# audit's validation pages open offline (bindlab/datadocs.py). A no-op once there; without npm the
# pages keep their CDN links and the study runs all the same.
datadocs: $(PY)
	$(PY) -m bindlab.datadocs install

cache: $(PY)
	dvc config --local cache.dir "$(BINDLAB_DVC_CACHE)"
	dvc config --local cache.type hardlink,copy

# In a fresh clone (no data/ yet) the committed dvc.lock's outputs are first checked out of the cache
# in one pass (as hard links; what the cache lacks is skipped): `dvc repro` alone would restore them
# stage by stage from the run-cache, rewriting the 12,000-line dvc.lock after each of 136 stages,
# which was 94% of a second clone's 400 s. Then `dvc repro` runs only what is stale.
# tasks.restore then forgets, in dvc.lock, the outputs this cache lacks (a lock written on another
# machine, or by a clone whose outputs never reached this cache), so that `dvc repro` restores those
# stages from the run-cache of any clone that ran them instead of running them again.
# PROFILE=P runs a DVC experiment (tasks/experiment.py, without Prefect): a profile with run_variants (quick)
# runs the stages of those variants only (and what they need). Its report goes to data/report, and
# params.yaml is put back afterwards: a plain `make study` is always the default study, which alone
# writes the README's results.
study: $(PY) cache datadocs
	$(if $(PROFILE),$(PY) -m tasks.experiment --experiment $(PROFILE),[ -d data ] || dvc checkout --allow-missing; $(PY) -m tasks.restore && dvc repro && $(PY) -m bindlab.cli report --readme README.md)

# The UI: local Prefect server on 127.0.0.1:4200 (home .prefect/) serving the study's deployments,
# and data/ (reports, audit pages, plots) on 127.0.0.1:4201 for the links in the runs' artifacts.
ui: $(PY) datadocs
	$(PY) -m flows.serve --port 4200

test: $(PY) datadocs
	$(PY) -m pytest -q

# A speed benchmark (benchmarks/), e.g. make bench WHAT=render ARGS="-n 2000"; without WHAT, the list.
.PHONY: bench
bench: $(PY)
	$(PY) -m $(if $(WHAT),benchmarks.$(WHAT) $(ARGS),benchmarks)
