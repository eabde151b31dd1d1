"""Load the pipeline config once: check the file against its typed model
(tlrepro.config.model), expand the short form (tlrepro.config.expand), derive the
rehearsal (tlrepro.config.rehearsal), then resolve the active profile's names against
the registries and make it typed.

What `load_config` returns is the full form, in which the active profile's groups are
`Group`s (every default filled in) whose `Method`s hold their complete `Training` (their
group's block under their own, and under that each task's own keys) and their method's
`Settings`, and every pretraining block is a complete `Training`: the plan only consumes
them. Every fault is one `ConfigError` naming the key as written
(`profiles.quick.groups.gradmf.training.epochs`). The CLI, the Snakemake rules and the
DVC stages all load the config here.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from tlrepro.config.expand import expand_config
from tlrepro.config.model import ConfigFile, Group, Method, Reference
from tlrepro.config.training import Training
from tlrepro.errors import ConfigError
from tlrepro.plan.layout import Task
from tlrepro.typed import problems_of

DEFAULT_CONFIG = Path("config/config.yaml")


def _check_file(config: dict[str, Any]) -> None:
    try:
        ConfigFile.model_validate(config)
    except ValidationError as error:
        lines = "\n  ".join(problems_of(error, config))
        raise ConfigError(
            f"config does not match its model (tlrepro.config.model):\n  {lines}"
        ) from None


def _training(block: dict[str, Any], where: str) -> Training:
    """A complete training block as a `Training` (the model's checks already passed for
    what was written; a derived block is checked here)."""
    try:
        return Training.model_validate(block)
    except ValidationError as error:
        lines = "\n  ".join(problems_of(error, block, tuple(where.split("."))))
        raise ConfigError(f"config has a bad training block:\n  {lines}") from None


def resolve(
    config: dict[str, Any], profile_name: str, origins: dict[str, str] | None = None
) -> None:
    """Check that everything the (expanded) profile names exists in a registry and that
    tasks use configured datasets, then make its pretraining blocks `Training` and its
    groups `Group`s, in place. `origins` gives the short-form key each group was written
    under. Every problem of the profile is reported at once."""
    profiles = config["profiles"]
    if profile_name not in profiles:
        raise ConfigError(
            f"at 'profile': unknown profile {profile_name!r}; defined profiles: "
            f"{', '.join(sorted(profiles))}"
        )
    profile = profiles[profile_name]
    base = f"profiles.{profile_name}"
    problems = [*_dataset_problems(profile, base), *_pretrain_problems(profile, base)]
    problems += _model_option_problems(profile, base)
    groups: dict[str, Group] = {}
    for name, group in profile["groups"].items():
        where = (origins or {}).get(name, f"{base}.groups.{name}")
        problems += _group_problems(group, where, profile, base)
        methods, method_problems = _methods(group, where)
        problems += method_problems
        if not method_problems:
            groups[name] = _group(name, group, methods)
    if problems:
        raise ConfigError(
            "config names something that does not exist, or a setting its method does not "
            "take:\n  " + "\n  ".join(problems)
        )
    pretrain = profile["pretrain"]
    pretrain["training"] = _training(pretrain["training"], f"{base}.pretrain.training")
    for entry in pretrain.get("models", {}).values():
        entry["training"] = pretrain["training"].updated(entry.get("training", {}))
    profile["groups"] = groups


def _unknown(kind: str, name: str, known: Any) -> str:
    return f"unknown {kind} {name!r}; known {kind}s: {', '.join(sorted(known))}"


def _dataset_problems(profile: dict[str, Any], base: str) -> list[str]:
    from tlrepro.data.registry import DATASETS

    problems = []
    for name, options in profile["datasets"].items():
        if name not in DATASETS:
            problems.append(f"at '{base}.datasets.{name}': {_unknown('dataset', name, DATASETS)}")
        for part in (options or {}).get("parts", {}):
            if part not in DATASETS:
                problems.append(
                    f"at '{base}.datasets.{name}.parts.{part}': "
                    + _unknown("dataset", part, DATASETS)
                )
    return problems


def _pretrain_problems(profile: dict[str, Any], base: str) -> list[str]:
    from tlrepro.models.registry import MODELS
    from tlrepro.plan.runs import weights_file

    problems = []
    for name, entry in profile["pretrain"].get("models", {}).items():
        at = f"{base}.pretrain.models.{name}"
        dataset = entry.get("dataset")
        if dataset is not None and dataset not in profile["datasets"]:
            problems.append(
                f"at '{at}.dataset': dataset {dataset!r} is not configured in this profile; "
                f"add it under '{base}.datasets'"
            )
        if name not in MODELS:
            problems.append(f"at '{at}': {_unknown('model', name, MODELS)}")
        path = entry.get("weights") and weights_file(entry["weights"])
        if path and not path.is_file():
            problems.append(
                f"at '{at}.weights': no file {str(path)!r} (relative paths start at the "
                "repository root; a tag such as 'openai' has no suffix)"
            )
    return problems


def _model_option_problems(profile: dict[str, Any], base: str) -> list[str]:
    from tlrepro.models.registry import MODELS

    problems = []
    for name, options in profile.get("model_options", {}).items():
        at = f"{base}.model_options.{name}"
        if name not in MODELS:
            problems.append(f"at '{at}': {_unknown('model', name, MODELS)}")
            continue
        accepted = MODELS[name].options
        for option in sorted(set(options) - set(accepted)):
            problems.append(
                f"at '{at}': model {name!r} takes no option {option!r}"
                + (f" (it takes: {', '.join(accepted)})" if accepted else " (it takes none)")
            )
    return problems


def _group_problems(group: dict[str, Any], where: str, profile: dict[str, Any], base: str):
    """The models, zoo source, task datasets and reference a group names."""
    from tlrepro.data.registry import DATASETS
    from tlrepro.models.registry import MODELS

    problems = []
    for key in ("model", "source_model"):
        if key in group and group[key] not in MODELS:
            problems.append(f"at '{where}.{key}': {_unknown('model', group[key], MODELS)}")
    zoo_source = group.get("source_weights") == "model"
    zoo_models = sorted(name for name, spec in MODELS.items() if spec.zoo)
    if zoo_source and group.get("source_model") not in zoo_models:
        problems.append(
            f"at '{where}.source_model': source_weights: model needs a model that brings "
            f"its own weights; choose one of {', '.join(zoo_models)}"
        )
    for task in group["tasks"]:
        source = Task.parse(task).source
        for dataset in task.split("-to-"):
            if zoo_source and dataset == source and dataset in DATASETS:
                continue  # only named: the weights come from the model zoo
            if dataset not in profile["datasets"]:
                hint = (
                    "it is not in the registry"
                    if dataset not in DATASETS
                    else f"add it under '{base}.datasets'"
                )
                problems.append(
                    f"at '{where}.tasks': task {task!r} uses dataset {dataset!r}, which this "
                    f"profile does not configure ({hint})"
                )
    reference = group.get("reference", {}).get("method")
    if reference is not None and reference not in group["methods"]:
        problems.append(
            f"at '{where}.reference.method': {reference!r} is not a method key of this "
            f"group; its methods: {', '.join(group['methods'])}"
        )
    return problems


def _methods(group: dict[str, Any], where: str) -> tuple[dict[str, Method], list[str]]:
    """A group's method entries with their complete training and typed settings, and the
    problems of those that cannot be built."""
    from tlrepro.methods.registry import METHODS, method_spec

    training = _training(group["training"], f"{where}.training")
    methods: dict[str, Method] = {}
    problems = []
    for key, entry in group["methods"].items():
        method = entry.get("method", key)
        if method not in METHODS:
            problems.append(f"at '{where}.methods.{key}': {_unknown('method', method, METHODS)}")
            continue
        settings = entry.get("settings", {})
        try:
            typed = method_spec(method).settings.model_validate(settings)
        except ValidationError as error:
            at = (*where.split("."), "methods", key, "settings")
            problems += [f"{line} (method {method!r})" for line in problems_of(error, settings, at)]
            continue
        own = training.updated(entry.get("training", {}))
        methods[key] = Method(
            method=method,
            label=entry.get("label", key),
            training=own,
            task_training={
                task: own.updated(keys) for task, keys in group.get("task_training", {}).items()
            },
            settings=typed,
        )
    return methods, problems


def _group(name: str, group: dict[str, Any], methods: dict[str, Method]) -> Group:
    """An expanded group with its defaults filled in (its title: its name; its source
    model: its model)."""
    optional = (
        "source_weights",
        "target_train_per_class",
        "target_train_fraction",
        "reported",
        "protocol",
        "prompts",
    )
    return Group(
        title=group.get("title", name),
        model=group["model"],
        source_model=group.get("source_model", group["model"]),
        tasks=list(group["tasks"]),
        seeds=list(group["seeds"]),
        methods=methods,
        reference=Reference(**group["reference"]) if "reference" in group else None,
        protocols=tuple(group.get("protocols", ())),
        **{key: group[key] for key in optional if key in group},
    )


def load_config(path: str | Path = DEFAULT_CONFIG, profile: str | None = None) -> dict[str, Any]:
    """Read, validate and return the config with `profile` (if given) made the active one."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(
            f"config file {path} not found (run from the repository root, or pass --config)"
        )
    config = yaml.safe_load(path.read_text())
    if not isinstance(config, dict):
        raise ConfigError(f"{path} is not a YAML mapping")
    return validate(config, profile)


def validate(config: dict[str, Any], profile: str | None = None) -> dict[str, Any]:
    """The full form of a config (a mapping as YAML reads it), its active profile resolved;
    the command line's `profile` replaces the file's."""
    from tlrepro.config.rehearsal import with_rehearsal

    config = copy.deepcopy(config)
    if profile is not None:
        config["profile"] = profile
    _check_file(config)
    expanded, origins = expand_config(config, Training().record())
    derived = with_rehearsal(expanded)
    if derived is not expanded:
        _check_file(derived)
    active = derived["profile"]
    resolve(derived, active, origins.get(active))
    return derived
