"""`tlrepro`: the one command line every Snakemake rule and DVC stage calls.

Each pipeline step is a subcommand that names its job the way the paths do
(dataset, model, group/method/task/seed), reads the same config, and writes its
outputs atomically. Heavy imports happen inside the subcommands.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from tlrepro import storage
from tlrepro.config.load import DEFAULT_CONFIG, load_config
from tlrepro.config.model import SCHEMA_FILE
from tlrepro.errors import MissingFileError, TlreproError
from tlrepro.plan.jobs import Jobs, parse_seeds, plan_jobs
from tlrepro.plan.layout import (
    active_tables,
    figures_dir,
    prepared_dir,
    profile_tables,
    raw_dir,
    report_dir,
)
from tlrepro.plan.runs import Plan, paper_file

if TYPE_CHECKING:
    from tlrepro.reporting.results import GroupTable, SourceModel


def _jobs(args: argparse.Namespace) -> Jobs:
    config = load_config(args.config, args.profile)
    return plan_jobs(config, None if args.seeds is None else parse_seeds(args.seeds))


def _plan(args: argparse.Namespace) -> Plan:
    return _jobs(args).plan


def _progress(args: argparse.Namespace, plan: Plan) -> bool:
    return not args.no_progress and plan.profile.get("runtime", {}).get("progress", True)


def cmd_validate(args: argparse.Namespace) -> None:
    plan = _plan(args)
    print(
        f"{args.config}: valid. Profile {plan.profile_name!r}: "
        f"{len(plan.needed_datasets())} datasets, {len(plan.pretrains)} source pretrainings, "
        f"{len(plan.runs)} runs in {len(plan.groups())} groups."
    )


def cmd_schema(args: argparse.Namespace) -> None:
    from tlrepro.config.model import write_schema

    print(f"wrote {write_schema(args.output)}")


def cmd_plan(args: argparse.Namespace) -> None:
    """List the jobs and outputs the config implies (scripts and the DVC parity test use it)."""
    plan = _plan(args)
    listing = {
        "datasets": [str(prepared_dir(plan.profile_name, d)) for d in plan.needed_datasets()],
        "pretrain": [str(job.checkpoint) for job in plan.pretrains.values()],
        "runs": [str(run.metrics) for run in plan.runs],
    }
    if args.json:
        print(json.dumps(listing, indent=2))
    else:
        for kind, paths in listing.items():
            print(f"# {kind}")
            print("\n".join(paths))


def cmd_dvc_plan(args: argparse.Namespace) -> None:
    from tlrepro.runners.dvc_stages import DVC_FILE, PARAMS_FILE, render

    dvc_text, params_text = render(_jobs(args), args.config)
    storage.write_text(DVC_FILE, dvc_text)
    storage.write_text(PARAMS_FILE, params_text)
    print(f"wrote {DVC_FILE} and {PARAMS_FILE}")


def cmd_estimate(args: argparse.Namespace) -> None:
    from tlrepro.plan.estimate import calibration_of, render

    page = render(_jobs(args), calibration_of(args.config), args.gpu)
    if args.write:
        storage.write_text(args.write, page)
        print(f"wrote {args.write}")
    print(page, end="")


def cmd_list(args: argparse.Namespace) -> None:
    from tlrepro.data.registry import DATASETS
    from tlrepro.methods.registry import METHODS
    from tlrepro.models.registry import MODELS

    if args.what == "datasets":
        rows = {name: spec.description for name, spec in DATASETS.items()}
    elif args.what == "methods":
        rows = {name: spec.description for name, spec in METHODS.items()}
    else:
        rows = {name: spec.target for name, spec in MODELS.items()}
    width = max(map(len, rows))
    for name, text in rows.items():
        print(f"{name:<{width}}  {text}")


def cmd_prepare(args: argparse.Namespace) -> None:
    from tlrepro.data.prepare import prepare_dataset

    plan = _plan(args)
    options = plan.dataset_options(args.dataset)
    manifest = prepare_dataset(
        args.dataset,
        options,
        plan.image_size(args.dataset),
        prepared_dir(plan.profile_name, args.dataset),
        raw_dir(),
    )
    counts = ", ".join(f"{split} {entry['n']}" for split, entry in manifest["splits"].items())
    print(f"prepared {args.dataset}: {len(manifest['classes'])} classes; {counts}")


def _report(kind: str, metrics: dict) -> None:
    best = metrics["protocols"]["best_val"]
    print(
        f"{kind} done: test accuracy {best['test_acc']:.4f} at the best validation epoch "
        f"{best['epoch']}/{metrics['epochs']} ({metrics['timing']['train_seconds']:.1f} s)"
    )


def cmd_pretrain(args: argparse.Namespace) -> None:
    from tlrepro.training.experiment import run_pretrain

    plan = _plan(args)
    job = plan.pretrain(args.model, args.dataset)
    with storage.exclusive(job.folder):
        _report("pretraining", run_pretrain(plan, job, _progress(args, plan)))


def cmd_transfer(args: argparse.Namespace) -> None:
    from tlrepro.training.experiment import run_transfer

    jobs = _jobs(args)
    plan = jobs.plan
    seeds = args.run_seeds or jobs.own(args.group)
    runs = [plan.run(args.group, args.method, args.task, seed) for seed in seeds]
    # One process for all seeds: torch's start-up (~6 s of CPU with its first optimiser
    # step) is paid once per job, not once per seed.
    for run in runs:
        with storage.exclusive(run.folder):
            _report("run", run_transfer(plan, run, _progress(args, plan)))


def _commit() -> str:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{head}-dirty" if dirty else head


def _source_models(plan: Plan, group: str) -> tuple[SourceModel, ...]:
    """The source models a group's runs start from or read, each once, in first-use order."""
    from tlrepro.data.registry import same_source_files
    from tlrepro.models.registry import model_spec
    from tlrepro.plan.runs import METRICS_FILE
    from tlrepro.reporting.results import SourceModel

    found: dict[tuple[str, str], SourceModel] = {}
    for run in plan.runs:
        if run.group != group:
            continue
        if run.pretrain is not None:
            job = run.pretrain
            zero_shot = model_spec(job.model).pretraining.zero_shot
            parts = tuple(plan.dataset_options(job.dataset).get("parts", {}))
            seen = None
            if parts:
                sources_of = {same_source_files(part) for part in parts}
                targets = dict.fromkeys(r.task.target for r in plan.runs if r.group == group)
                seen = tuple(t for t in targets if same_source_files(t) in sources_of)
            source = SourceModel(
                job.model, job.dataset, job.folder / METRICS_FILE, zero_shot, parts, seen
            )
            found.setdefault((job.model, job.dataset), source)
        elif run.zoo_source_model is not None:
            key = (run.zoo_source_model, run.task.source)
            found.setdefault(key, SourceModel(*key))
    return tuple(found.values())


def group_tables(plan: Plan) -> list[GroupTable]:
    """The results sections of the plan's profile, one per group, in the config's order."""
    from tlrepro.reporting.results import GroupTable

    return [
        GroupTable(
            name,
            group.title,
            list(group.tasks),
            [(key, entry.label) for key, entry in group.methods.items()],
            list(group.seeds),
            group.reported,
            few_target_labels=group.few_target_labels,
            sources=_source_models(plan, name),
            reference=group.reference,
            protocols=group.protocols,
            protocol=group.protocol,
        )
        for name, group in plan.groups().items()
    ]


def cmd_tables(args: argparse.Namespace) -> None:
    from tlrepro.reporting.markdown import Header
    from tlrepro.reporting.tables import write_tables
    from tlrepro.training.convergence import Criterion

    plan = _plan(args)
    groups = group_tables(plan)
    run_dirs = {(r.group, r.method_key, r.task.name, r.seed): r.folder for r in plan.runs}
    seeds = sorted({seed for group in groups for seed in group.seeds})
    header = Header(plan.profile_name, seeds, _commit(), time.strftime("%Y-%m-%d"))
    outputs = profile_tables(plan.profile_name)
    figures = figures_dir(plan.profile_name)
    write_tables(
        groups,
        run_dirs,
        paper_file(args.config, "reported.yaml"),
        paper_file(args.config, "claims.yaml"),
        header,
        outputs["md"],
        outputs["csv"],
        outputs["claims"],
        figures,
        Criterion.from_config(plan.profile.get("convergence")),
    )
    print(f"wrote {', '.join(map(str, outputs.values()))} and {figures}/")


def cmd_publish_tables(args: argparse.Namespace) -> None:
    """Copy the profile's tables to results/tables.md etc. (same folder: the figure links
    hold), for users and tools that look for one fixed name."""
    plan = _plan(args)
    sources = profile_tables(plan.profile_name)
    for kind, target in active_tables().items():
        if not sources[kind].exists():
            raise MissingFileError(
                f"{sources[kind]} does not exist: build the tables of profile "
                f"{plan.profile_name!r} first (`tlrepro tables` or snakemake)"
            )
        with storage.atomic_output(target) as tmp:
            shutil.copyfile(sources[kind], tmp)
        print(f"{sources[kind]} -> {target}")


def cmd_report_pages(args: argparse.Namespace) -> None:
    from tlrepro.reporting.report_pages import write_report_pages

    plan = _plan(args)
    tables = profile_tables(plan.profile_name)
    titles = {name: group.title for name, group in plan.groups().items()}
    written = write_report_pages(
        tables["csv"],
        tables["claims"],
        figures_dir(plan.profile_name),
        titles,
        report_dir(plan.profile_name),
    )
    print(f"wrote {len(written)} report pages under {report_dir(plan.profile_name)}/")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tlrepro",
        description=__doc__.split("\n\n")[0],
        epilog="Run from the repository root. Snakemake (`snakemake --cores 2 results/tables.md`)"
        " and DVC (`dvc repro`) call these steps for you.",
    )
    parser.add_argument(
        "--config", type=Path, default=DEFAULT_CONFIG, help="pipeline config (default: %(default)s)"
    )
    parser.add_argument("--profile", help="profile to use instead of the config's `profile`")
    parser.add_argument(
        "--seeds",
        metavar="N|GROUP=N,...",
        help="give every group (or the groups named) at least N seeds: its own, then the "
        "smallest it does not list; each added seed is a job of its own (docs/running.md, "
        '"Raising the seeds")',
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, handler, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.set_defaults(handler=handler)
        return sub

    command("validate", cmd_validate, "check the config against its model and the registries")
    sub = command(
        "schema", cmd_schema, "write config/schema.yaml (for editors) from the config's model"
    )
    sub.add_argument("--output", type=Path, default=SCHEMA_FILE, help="default: %(default)s")
    sub = command("plan", cmd_plan, "list the datasets, pretrainings and runs the config implies")
    sub.add_argument("--json", action="store_true", help="machine-readable output")
    sub = command(
        "estimate",
        cmd_estimate,
        "the profile's bill before it runs: jobs, runs, images, GPU- and CPU-hours, memory, "
        "disk and downloads per group and in total, from config/calibration.csv",
    )
    sub.add_argument("--gpu", default="NVIDIA H200", help="reference GPU (default: %(default)s)")
    sub.add_argument("--write", type=Path, help="also write the bill to this markdown file")
    command("dvc-plan", cmd_dvc_plan, "write dvc.yaml and dvc_params.yaml from the config")
    sub = command("list", cmd_list, "list the registered datasets, models or methods")
    sub.add_argument("what", choices=["datasets", "models", "methods"])
    sub = command("prepare", cmd_prepare, "download/render a dataset and write its splits")
    sub.add_argument("dataset", help="a dataset of the profile (see `tlrepro list datasets`)")
    sub = command("pretrain", cmd_pretrain, "train a source model on a source dataset")
    sub.add_argument("model")
    sub.add_argument("dataset")
    sub = command(
        "transfer",
        cmd_transfer,
        "train a method of a group on a task, for the given seeds or the seeds the config "
        "lists for the group, one after the other (each resumes if killed)",
    )
    sub.add_argument("group")
    sub.add_argument("method", help="the method's key in the group")
    sub.add_argument("task", help="<source>-to-<target>, e.g. digits_syn-to-digits_uci")
    sub.add_argument(
        "run_seeds",
        metavar="seed",
        type=int,
        nargs="*",
        help="default: the group's seeds in the config (name the ones --seeds adds)",
    )
    command(
        "tables",
        cmd_tables,
        "aggregate every run into results/tables-<profile>.{md,csv}, the claims into "
        "results/claims-<profile>.csv, and figures/<profile>/",
    )
    command(
        "publish-tables",
        cmd_publish_tables,
        "copy the profile's tables and claims to results/tables.{md,csv}, results/claims.csv",
    )
    command(
        "report-pages",
        cmd_report_pages,
        "per-group pages for Snakemake's HTML report, from the profile's tables and figures",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.handler(args)
    except TlreproError as error:  # a fault the user can fix; anything else is a bug
        if os.environ.get("TLREPRO_DEBUG"):
            raise
        print(f"tlrepro {args.command}: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
