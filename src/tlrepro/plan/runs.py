"""Expand a validated config into jobs and their paths: the one list both runners use.

Snakemake's rules, DVC's stages and the CLI all ask this module where a run
lives and what it needs, so the two DAGs cannot drift apart. It imports no
torch, which keeps `snakemake -n` fast.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from tlrepro import storage
from tlrepro.config.model import Group
from tlrepro.config.training import Training
from tlrepro.data.protocol import DEFAULT_PROTOCOL, check_protocol
from tlrepro.data.registry import DEFAULT_PROMPTS, builder_for, dataset_spec
from tlrepro.errors import TlreproError
from tlrepro.methods.registry import MethodSpec, method_spec
from tlrepro.methods.settings import Settings
from tlrepro.models.registry import model_spec
from tlrepro.plan import codebase
from tlrepro.plan.layout import (
    LOG_FILE,
    METRICS_FILE,
    MODEL_FILE,
    REPO_ROOT,
    Task,
    pretrained_dir,
    run_dir,
)
from tlrepro.registry import module_of

RUN_MACHINERY = "tlrepro.training.experiment"
"""The shared run code (data loading, model building, trainer, selection) of every
training job; its imports bring in the rest."""


class PlanError(TlreproError, ValueError):
    """The config asks for a job the plan does not have, or a combination it cannot run."""


def fingerprint(payload: dict[str, Any]) -> str:
    """A stable text of what determines a job's result (Snakemake reruns when it changes)."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":"))


def identity_digest(payload: dict[str, Any]) -> str:
    """A short hash of `fingerprint(payload)`: where a value is stored and compared often
    (a run's resume state, DVC's params and lock), not read by a person."""
    return hashlib.sha256(fingerprint(payload).encode()).hexdigest()[:16]


def weights_file(weights: str) -> Path | None:
    """The file a `weights` value names, or None for a tag its library resolves ("openai"):
    a value with a folder or a suffix is a path."""
    path = Path(weights)
    return path if path.suffix or len(path.parts) > 1 else None


@dataclass(kw_only=True)
class PretrainJob:
    """Training the group's model on a source dataset, once per profile, model and dataset."""

    profile: str
    model: str
    dataset: str
    seed: int
    training: Training
    weights: str | None = None
    """Pretrained weights the model starts from (a tag such as "openai", or a file path)."""
    min_accuracy: float = 0.0
    """The quality bar on the source validation split; not part of `identity`, so changing
    it never retrains a model (see tlrepro.training.source_bar.judge_source)."""
    options: dict[str, Any] = field(default_factory=dict)
    """The model's construction options (the profile's `model_options` for it)."""

    @property
    def folder(self) -> Path:
        return pretrained_dir(self.profile, self.model, self.dataset)

    @property
    def checkpoint(self) -> Path:
        return self.folder / MODEL_FILE

    @property
    def outputs(self) -> list[Path]:
        return [self.folder / name for name in (MODEL_FILE, METRICS_FILE, LOG_FILE)]

    @property
    def code_files(self) -> tuple[Path, ...]:
        return codebase.closure(
            [
                RUN_MACHINERY,
                model_spec(self.model).module,
                module_of(model_spec(self.model).pretraining.cls),
            ]
        )

    @property
    def identity(self) -> dict[str, Any]:
        identity = {
            "kind": "pretrain",
            "profile": self.profile,
            "model": self.model,
            "dataset": self.dataset,
            "seed": self.seed,
            "training": self.training.record(),
        }
        if self.weights is not None:  # only then: existing pretrainings keep their identity
            identity["weights"] = self.weights
            if weights_file(self.weights) is not None:  # new weights at the same path
                identity["weights_sha256"] = storage.sha256_file(self.weights)
        if self.options:  # likewise
            identity["model_options"] = self.options
        return identity


@dataclass(kw_only=True)
class RunJob:
    """One (group, method, task, seed): the unit of work, of rerunning and of DVC caching."""

    profile: str
    group: str
    method_key: str
    method: str
    label: str
    task: Task
    seed: int
    model: str
    training: Training
    """The complete training block: its group's, under the method's, under the task's."""
    settings: Settings
    """The method's typed settings; identities and metrics record `settings.record()`."""
    target_train_per_class: int | None
    target_train_fraction: float | None
    pretrain: PretrainJob | None = None
    zoo_source_model: str | None = None
    """The source net when it comes with its own weights (`source_weights: model`)."""
    model_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Construction options of the models the run builds, by model name (from the
    profile's `model_options`; a model without options is absent)."""
    protocols: tuple[str, ...] = ()
    """Extra reporting protocols its metrics must hold (the group's `protocols`)."""
    target_val_per_class: int | None = None
    """Validation images kept per class (seeded, as the training subset): the N-shot groups'
    N under the max-val protocol, whose release cut its validation split alike."""
    protocol: str = DEFAULT_PROTOCOL
    """Which splits it trains, selects and tests on (`tlrepro.data.protocol`)."""
    prompts: str = DEFAULT_PROMPTS
    """How a CLIP model's class prompts are written (`tlrepro.data.registry.class_prompts`)."""

    def options_for(self, model: str) -> dict[str, Any]:
        return self.model_options.get(model, {})

    @property
    def spec(self) -> MethodSpec:
        return method_spec(self.method)

    @property
    def shared_labels(self) -> bool:
        return shares_labels(self.task)

    @property
    def folder(self) -> Path:
        return run_dir(self.profile, self.group, self.method_key, self.task.name, self.seed)

    @property
    def metrics(self) -> Path:
        return self.folder / METRICS_FILE

    @property
    def output_names(self) -> tuple[str, ...]:
        """Every file the run leaves in its folder: the model, the metrics, the curve and
        what the method exports (a transfer report, a sparse RST checkpoint...)."""
        return (MODEL_FILE, METRICS_FILE, LOG_FILE, *self.spec.exports(self.settings))

    @property
    def code_files(self) -> tuple[Path, ...]:
        entries = [RUN_MACHINERY, module_of(self.spec.cls), model_spec(self.model).module]
        source_model = self.zoo_source_model or (self.pretrain and self.pretrain.model)
        if self.spec.uses_source_model and source_model:
            entries.append(model_spec(source_model).module)
        return codebase.closure(entries)

    @property
    def datasets(self) -> list[str]:
        """Prepared datasets the run reads: always the target; the source when trained on."""
        both = [self.task.source, self.task.target]
        return both if reads_source_data(self.spec) else [self.task.target]

    @property
    def identity(self) -> dict[str, Any]:
        identity = {
            "kind": "run",
            "profile": self.profile,
            "group": self.group,
            "method_key": self.method_key,
            "method": self.method,
            "task": self.task.name,
            "seed": self.seed,
            "model": self.model,
            "training": self.training.record(),
            "settings": self.settings.record(),
            "target_train_per_class": self.target_train_per_class,
            "target_train_fraction": self.target_train_fraction,
            "zoo_source_model": self.zoo_source_model,
        }
        if self.model_options:  # only then: runs without options keep their identity
            identity["model_options"] = self.model_options
        if self.protocols:  # likewise
            identity["protocols"] = list(self.protocols)
        if self.target_val_per_class is not None:
            identity["target_val_per_class"] = self.target_val_per_class
        if self.protocol != DEFAULT_PROTOCOL:  # likewise
            identity["protocol"] = self.protocol
        if self.prompts != DEFAULT_PROMPTS:  # likewise
            identity["prompts"] = self.prompts
        return identity


@dataclass
class Plan:
    config: dict[str, Any]
    profile_name: str
    runs: list[RunJob] = field(default_factory=list)
    pretrains: dict[tuple[str, str], PretrainJob] = field(default_factory=dict)

    @property
    def profile(self) -> dict[str, Any]:
        return self.config["profiles"][self.profile_name]

    @cached_property
    def _runs_by_key(self) -> dict[tuple[str, str, str, int], RunJob]:
        return {(r.group, r.method_key, r.task.name, r.seed): r for r in self.runs}

    def run(self, group: str, method_key: str, task: str, seed: int) -> RunJob:
        try:
            return self._runs_by_key[(group, method_key, task, int(seed))]
        except KeyError:
            raise PlanError(
                f"no run {group}/{method_key}/{task}/seed{seed} in profile {self.profile_name!r}; "
                "`tlrepro plan` lists the runs the config defines"
            ) from None

    def seeds(self, group: str) -> list[int]:
        if group not in self.groups():
            raise PlanError(
                f"no group {group!r} in profile {self.profile_name!r}; its groups: "
                f"{', '.join(self.groups())}"
            )
        return list(self.groups()[group].seeds)

    def pretrain(self, model: str, dataset: str) -> PretrainJob:
        try:
            return self.pretrains[(model, dataset)]
        except KeyError:
            raise PlanError(
                f"no source pretraining of {model} on {dataset} in profile {self.profile_name!r}"
            ) from None

    def dataset_options(self, name: str) -> dict[str, Any]:
        try:
            return self.profile["datasets"][name]
        except KeyError:
            raise PlanError(
                f"dataset {name!r} is not configured in profile {self.profile_name!r}"
            ) from None

    def image_size(self, dataset: str) -> int:
        return self.dataset_options(dataset).get("image_size", self.profile["image_size"])

    def needed_datasets(self) -> list[str]:
        names = {d for run in self.runs for d in run.datasets}
        names |= {job.dataset for job in self.pretrains.values()}
        return sorted(names)

    def groups(self) -> dict[str, Group]:
        return self.profile["groups"]

    def batches(self) -> list[list[RunJob]]:
        """The runs grouped into jobs: one method of a group on one task, every seed (one
        process pays torch's start-up once for all of them)."""
        by_job: dict[tuple[str, str, str], list[RunJob]] = {}
        for run in self.runs:
            by_job.setdefault((run.group, run.method_key, run.task.name), []).append(run)
        return list(by_job.values())

    def batch(self, group: str, method_key: str, task: str) -> list[RunJob]:
        return [self.run(group, method_key, task, seed) for seed in self.seeds(group)]

    def tables_inputs(self, config_file: Path) -> list[Path]:
        """What the tables read: every run's metrics and curve, every source model's
        metrics, and the papers' numbers and claims beside the config."""
        files = [run.folder / name for run in self.runs for name in (METRICS_FILE, LOG_FILE)]
        files += [job.folder / METRICS_FILE for job in self.pretrains.values()]
        files += [paper_file(config_file, name) for name in PAPER_FILES]
        return files

    def prepare_code_files(self, dataset: str) -> tuple[Path, ...]:
        """The preparation's code: its builder's, and those of the datasets a mix combines
        (`parts`, which it loads by name)."""
        options = self.dataset_options(dataset)
        builders = [builder_for(dataset, options)]
        parts = options.get("parts", {})
        builders += [builder_for(name, part or {}) for name, part in parts.items()]
        return codebase.closure([PREPARE_MACHINERY, *map(module_of, builders)])


PAPER_FILES = ("reported.yaml", "claims.yaml")
"""The papers' reported numbers and claims: data files beside the config."""


def paper_file(config_file: Path, name: str) -> Path:
    """`name` beside the config file, else the repository's own (a user's edited copy of
    the config elsewhere still gets the papers' numbers): relative to the working
    directory where that is the repository, else by the package's location (a run in
    another directory, `snakemake --directory .test`)."""
    beside = Path(config_file).parent / name
    if beside.exists():
        return beside
    ours = Path("config") / name
    return ours if ours.exists() else REPO_ROOT / "config" / name


PREPARE_MACHINERY = "tlrepro.data.prepare"
TABLES_MACHINERY = "tlrepro.reporting.tables"


def tables_code_files() -> tuple[Path, ...]:
    return codebase.closure([TABLES_MACHINERY])


def report_code_files() -> tuple[Path, ...]:
    return codebase.closure(["tlrepro.reporting.report_pages"])


def shares_labels(task: Task) -> bool:
    """Whether the task's datasets share one label space (class meanings), as the dataset
    registry declares: methods that need it run only there, and a two-stream method then
    gives both streams one head."""
    return dataset_spec(task.source).label_space == dataset_spec(task.target).label_space


def reads_source_data(spec: MethodSpec) -> bool:
    """The method trains on the source dataset or selects its epoch on the source's
    validation split: its runs read the prepared source data."""
    return "source" in spec.streams or spec.selection == "source_val"


def _source_model(group_name: str, group: Group, method_key: str, spec: MethodSpec) -> str:
    if spec.init == "source" and group.source_model != group.model:
        raise PlanError(
            f"group {group_name!r}: method {method_key!r} starts from same-architecture source "
            f"weights, but the group pretrains {group.source_model!r} for a {group.model!r}; "
            "move it to a group without `source_model`"
        )
    return group.source_model


def _zoo_source_model(group_name: str, group: Group, method_key: str, spec: MethodSpec) -> str:
    where = f"group {group_name!r}, method {method_key!r}"
    if spec.init == "source" and group.model != group.source_model:
        raise PlanError(
            f"{where}: starts from source weights of the group's own architecture, but with "
            f"source_weights: model those are the zoo's {group.source_model!r}, not the "
            f"group's model {group.model!r}; make the zoo entry the group's `model` too"
        )
    if reads_source_data(spec):
        raise PlanError(
            f"{where}: reads the source dataset, which a group with source_weights: model "
            "only names"
        )
    return group.source_model


def build_plan(config: dict[str, Any], profile: str | None = None) -> Plan:
    """Enumerate every run of the active profile of a config that tlrepro.config.load
    loaded: its groups are `Group`s whose methods hold their complete `Training` and
    typed `Settings`, its pretrainings their complete `Training`."""
    plan = Plan(config, profile or config["profile"])
    model_options = plan.profile.get("model_options", {})
    for group_name, group in plan.groups().items():
        for method_key, entry in group.methods.items():
            spec = method_spec(entry.method)
            for task_name in group.tasks:
                task = Task.parse(task_name)
                if spec.needs_shared_labels and not shares_labels(task):
                    continue
                try:
                    check_protocol(group.protocol, spec.selection, group.few_target_labels)
                except ValueError as error:
                    raise PlanError(f"group {group_name}, method {method_key}: {error}") from None
                pretrain, zoo_source_model = None, None
                if spec.init == "source" or spec.uses_source_model:
                    if group.source_weights == "model":
                        zoo_source_model = _zoo_source_model(group_name, group, method_key, spec)
                    else:
                        source_model = _source_model(group_name, group, method_key, spec)
                        pretrain = _pretraining(plan, source_model, task)
                built = {group.model, zoo_source_model, pretrain and pretrain.model}
                plan.runs += [
                    RunJob(
                        profile=plan.profile_name,
                        group=group_name,
                        method_key=method_key,
                        method=entry.method,
                        label=entry.label,
                        task=task,
                        seed=seed,
                        model=group.model,
                        training=entry.training_for(task_name),
                        settings=entry.settings,
                        target_train_per_class=group.target_train_per_class,
                        target_train_fraction=group.target_train_fraction,
                        pretrain=pretrain,
                        zoo_source_model=zoo_source_model,
                        model_options={
                            m: model_options[m] for m in sorted(built & set(model_options))
                        },
                        protocols=group.protocols,
                        target_val_per_class=(
                            group.target_train_per_class if "max_val" in group.protocols else None
                        ),
                        protocol=group.protocol,
                        prompts=group.prompts,
                    )
                    for seed in group.seeds
                ]
    return plan


def _pretraining(plan: Plan, model: str, task: Task) -> PretrainJob:
    """The (shared) pretraining of `model` for a task: on the task's source, or on the
    model's own dataset whatever the source (the tiny CLIP on a captioned mix)."""
    pretrain = plan.profile["pretrain"]
    per_model = pretrain.get("models", {}).get(model, {})
    dataset = per_model.get("dataset", task.source)
    return plan.pretrains.setdefault(
        (model, dataset),
        PretrainJob(
            profile=plan.profile_name,
            model=model,
            dataset=dataset,
            seed=pretrain.get("seed", 0),
            training=per_model.get("training", pretrain["training"]),
            weights=per_model.get("weights"),
            min_accuracy=per_model.get("min_accuracy", pretrain["min_accuracy"]),
            options=plan.profile.get("model_options", {}).get(model, {}),
        ),
    )
