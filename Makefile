# Two entry points for a fresh machine: `make tables` and `make test`.
# Both create .venv and install the pinned environment first (once).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
CORES ?= $(shell nproc)
STAMP := $(VENV)/.installed
UV_VERSION := 0.13.9
IATRANSFER := iatransfer==1.0.3
export PATH := $(BIN):$(PATH)

.PHONY: setup tables test test-rehearsal lint dry-run dvc-plan pull

setup: $(STAMP)

# uv installs the ~5 GB torch stack in seconds from its cache (pip takes minutes);
# --compile-bytecode because with PYTHONDONTWRITEBYTECODE set (as here) every job
# would otherwise recompile torch from source, ~15 s per job.
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python -c constraints.txt -e '.[dev]'
	# The DPIAT baseline's own package, for the test that compares ours with it. Without
	# its dependencies: they are optional extras (gensim, karateclub...) the test avoids.
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps $(IATRANSFER)
	touch $@

## results/tables.md for the config's profile (quick by default)
tables: setup
	snakemake --cores $(CORES) results/tables.md

## the test suite (unit tests and the end-to-end pipeline tests)
test: setup
	pytest -q

## the paper profile's rehearsal (tlrepro.rehearsal) through Snakemake in a scratch copy;
## a part of it: make test-rehearsal REHEARSAL_TARGET=group_cmkd_office31_vit
test-rehearsal: setup
	TLREPRO_REHEARSAL_TARGET=$(REHEARSAL_TARGET) pytest -q -m rehearsal

lint: setup
	ruff check src tests bench

dry-run: setup
	snakemake -n results/tables.md

## regenerate dvc.yaml and dvc_params.yaml after editing the config or the imports of the code
dvc-plan: setup
	tlrepro dvc-plan

## fetch data, checkpoints and results from the DVC remote; once DVC confirms they
## match the pipeline, give them Snakemake's timestamps so it sees them as current
pull: setup
	dvc pull
	dvc status --quiet
	snakemake --touch --cores 1 results/tables.md
