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

.PHONY: setup fashion-mnist tables test test-long test-cluster test-faults test-rehearsal lint dry-run dvc-plan pull estimate measured

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

## The quick profile's real Fashion-MNIST is Debian's dataset-fashion-mnist (no PyPI package
## ships it, and the quick profile downloads nothing): installed here when apt-get can.
FASHION_MNIST := /usr/share/datasets/fashion-mnist
fashion-mnist:
	@if [ ! -d $(FASHION_MNIST) ]; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist; \
		else \
			echo "make: the quick profile reads Fashion-MNIST from Debian's dataset-fashion-mnist" \
				"($(FASHION_MNIST)): run 'sudo apt-get install dataset-fashion-mnist', or set" \
				"profiles.quick.datasets.fashion_mnist.root to a folder holding its four .gz files" >&2; \
			exit 1; \
		fi; \
	fi

## results/tables.md for the config's profile (quick by default), and the pages of
## the HTML report (`snakemake --report results/report.html`)
tables: setup fashion-mnist
	snakemake --cores $(CORES)

## the test suite (unit tests and the end-to-end pipeline tests)
test: setup
	pytest -q

## the end-to-end suites that take a minute or more each (DVC push/clone/pull, killed
## runners resuming, one core against two, GPU-serialised jobs)
test-long: setup
	pytest -q -m long

## the pipeline on a single-node Slurm the tests start (Debian's slurmctld slurmd
## slurm-client munge installed; .ci/run installs them)
test-cluster: setup
	pytest -q -m cluster

## fault injection (runners killed again and again, damaged files, a full disk, a read-only
## results folder) and DVC over a real SSH remote; prints what it tried at the end. Needs
## root for its tmpfs mounts (else those tests skip, saying why) and Debian's openssh-server
test-faults: setup
	pytest -q -m faults

## the paper profile's rehearsal (tlrepro.config.rehearsal) through Snakemake in a scratch copy;
## a part of it: make test-rehearsal REHEARSAL_TARGET=group_cmkd_office31_vit
test-rehearsal: setup
	TLREPRO_REHEARSAL_TARGET=$(REHEARSAL_TARGET) pytest -q -m rehearsal

## ruff, snakefmt and snakemake's linter; of the latter's lints only the two justified in
## the Snakefile and rules/common.smk are accepted (no conda env per rule, CLI not a param)
JUSTIFIED_LINTS := Specify a conda environment or container for each rule|Shell command directly uses variable CLI from outside of the rule
lint: setup
	ruff check src tests bench
	ruff format --check src tests bench
	snakefmt --check Snakefile rules
	@out="$$(snakemake --lint 2>&1)"; status=$$?; \
	lints="$$(printf '%s\n' "$$out" | grep '^ *\* ')"; \
	other="$$(printf '%s\n' "$$lints" | grep -vE '$(JUSTIFIED_LINTS)')"; \
	if [ -n "$$other" ] || { [ $$status -ne 0 ] && [ -z "$$lints" ]; }; then \
		printf '%s\n' "$$out"; exit 1; \
	fi; \
	echo "snakemake --lint: $$(printf '%s\n' "$$lints" | grep -c .) justified lints, no other"

dry-run: setup
	snakemake -n results/tables.md

## regenerate dvc.yaml and dvc_params.yaml after editing the config or the imports of the code
dvc-plan: setup
	tlrepro dvc-plan

## the paper profile's bill before it runs (docs/cost.md): jobs, images, GPU- and CPU-hours,
## memory, disk and downloads per group, from config/calibration.csv (bench/calibrate.py)
estimate: setup
	tlrepro --profile paper estimate --write docs/cost-paper.md

## after `make tables`: the quick runs' machines, convergence, cost and verdicts into
## docs/measured.md (generated, never typed)
measured: setup
	python bench/measured.py results quick docs/measured.md

## fetch data, checkpoints and results from the DVC remote; once DVC confirms they
## match the pipeline, give them Snakemake's timestamps so it sees them as current
pull: setup
	dvc pull
	dvc status --quiet
	snakemake --touch --cores 1 results/tables.md
