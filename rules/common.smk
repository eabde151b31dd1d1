# Config validation, the run plan, and helpers shared by the rules.
import re
from pathlib import Path

import yaml

from tlrepro.plan import codebase
from tlrepro.config.load import ConfigError
from tlrepro.config.load import validate as check_config
from tlrepro.plan.estimate import calibration_of, pretrain_requests
from tlrepro.plan.jobs import label, parse_seeds, plan_jobs
from tlrepro.plan.layout import (
    LOG_FILE,
    MANIFEST,
    METRICS_FILE,
    MODEL_FILE,
    SPLIT_FILES,
    active_tables,
    figures_dir,
    prepared_dir,
    pretrained_dir,
    profile_tables,
    report_dir,
    runs_dir,
    seed_folder,
)
from tlrepro.plan.runs import fingerprint, report_code_files, tables_code_files

if len(workflow.configfiles) > 1:
    raise ConfigError(
        f"pass one config file, not {len(workflow.configfiles)} "
        f"({', '.join(map(str, workflow.configfiles))}): copy config/config.yaml, edit the "
        "copy, and pass only it with --configfile"
    )
CONFIG_FILE = Path(workflow.configfiles[0])

# The CLI reads CONFIG_FILE itself, so the only command-line overrides it can
# follow are those it takes too, the profile and the seeds (tlrepro.plan.jobs): refuse
# others instead of silently ignoring them.
OVERRIDES = ("profile", "seeds")
_from_file = yaml.safe_load(CONFIG_FILE.read_text())
_overridden = sorted(
    k
    for k in set(config) | set(_from_file)
    if k not in OVERRIDES and config.get(k) != _from_file.get(k)
)
if _overridden:
    raise ConfigError(
        f"--config may only set `profile` and `seeds`; put changes to "
        f"{', '.join(_overridden)} in a copy of {CONFIG_FILE} and pass it with --configfile"
    )
# Not the file's key (the schema refuses that one): the command line's.
SEEDS = (
    parse_seeds(config.pop("seeds")) if "seeds" not in _from_file and "seeds" in config else None
)
# Checked once, by the typed model (tlrepro.config.model) that also generates
# config/schema.yaml: its errors name the key as written.
JOBS = plan_jobs(check_config(config), SEEDS)
PLAN = JOBS.plan
PROFILE = PLAN.profile_name
RUNTIME = PLAN.profile.get("runtime", {})
TORCH_THREADS = RUNTIME.get("torch_threads", 1)
# `snakemake --lint` asks for CLI to be a param: it is not on purpose. Params and the
# shell text are rerun triggers, and CLI holds the config file's path, which must not
# make jobs stale (a copy of the config elsewhere plans the same jobs); what does
# make them stale is in the params `identity` and `code`.
# It passes on the seeds that --config adds: the transfer jobs name the seeds they train.
CLI = " ".join(
    ["tlrepro", "--config", str(CONFIG_FILE), "--profile", PROFILE, *JOBS.seeds_option()]
)
# What training jobs ask for follows from the calibrated estimate (tlrepro.plan.estimate).
CALIBRATION = calibration_of(CONFIG_FILE)
PROFILE_TABLES = {kind: str(path) for kind, path in profile_tables(PROFILE).items()}
ACTIVE_TABLES = {kind: str(path) for kind, path in active_tables().items()}


def resource(kind, key, default):
    return PLAN.profile.get("resources", {}).get(kind, {}).get(key, default)


def pretrain_request(w):
    """What a source pretraining asks for: its calibrated estimate (docs/cost.md)."""
    return pretrain_requests(PLAN, PLAN.pretrain(w.model, w.dataset), CALIBRATION)


def prepared(dataset):
    return str(prepared_dir(PROFILE, dataset) / MANIFEST)


def code(files):
    """The code a job runs, as a param: editing it makes exactly its jobs stale."""
    return codebase.fingerprint(files)


wildcard_constraints:
    profile=re.escape(PROFILE),
    dataset=r"[a-z0-9_]+",
    model=r"[a-z0-9_]+",


# Before a Slurm run submits anything, check that the cluster has a node for every job:
# Slurm would reject some impossible requests and leave others pending for ever.
onstart:
    if workflow.executor_plugin.name == "slurm":
        from tlrepro.runners.slurm import check_jobs

        check_jobs(workflow.dag.needrun_jobs())
