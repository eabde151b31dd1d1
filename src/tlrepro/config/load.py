"""Load the pipeline config once: check the file against its typed model
(tlrepro.config.model), expand the short form (tlrepro.config.expand), derive the
rehearsal (tlrepro.config.rehearsal), then resolve the active profile's names against
the registries and make its training blocks and method settings typed objects.

What `load_config` returns is the full form, in which every method entry of the active
profile's groups holds its complete `Training` (its group's block under its own), one per
task that has its own keys (`task_training`), and its method's `Settings`, and every
pretraining block its complete `Training`: the plan only consumes them. Every fault is
one `ConfigError` naming the key as written (`profiles.quick.groups.gradmf.training.epochs`).
The CLI, the Snakemake rules and the DVC stages all load the config here.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from tlrepro.config.expand import expand_config
from tlrepro.config.model import ConfigFile, Training
from tlrepro.errors import ConfigError
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
    tasks use configured datasets; make its training blocks `Training` and its method
    entries' settings their method's `Settings`, in place. `origins` gives the short-form
    key each group was written under."""
    from tlrepro.data.registry import DATASETS
    from tlrepro.methods.registry import METHODS, method_spec
    from tlrepro.models.registry import MODELS
    from tlrepro.plan.runs import weights_file

    zoo_models = sorted(name for name, spec in MODELS.items() if spec.zoo)

    profiles = config["profiles"]
    if profile_name not in profiles:
        raise ConfigError(
            f"at 'profile': unknown profile {profile_name!r}; defined profiles: "
            f"{', '.join(sorted(profiles))}"
        )
    profile = profiles[profile_name]
    base = f"profiles.{profile_name}"
    problems = []
    for name in profile["datasets"]:
        if name not in DATASETS:
            problems.append(
                f"at '{base}.datasets.{name}': unknown dataset {name!r}; "
                f"known datasets: {', '.join(sorted(DATASETS))}"
            )
        for part in (profile["datasets"][name] or {}).get("parts", {}):
            if part not in DATASETS:
                problems.append(
                    f"at '{base}.datasets.{name}.parts.{part}': unknown dataset {part!r}; "
                    f"known datasets: {', '.join(sorted(DATASETS))}"
                )
    pretrain = profile["pretrain"]
    pretrain["training"] = _training(pretrain["training"], f"{base}.pretrain.training")
    for name, entry in pretrain.get("models", {}).items():
        entry["training"] = pretrain["training"].updated(entry.get("training", {}))
        dataset = entry.get("dataset")
        if dataset is not None and dataset not in profile["datasets"]:
            problems.append(
                f"at '{base}.pretrain.models.{name}.dataset': dataset {dataset!r} is not "
                f"configured in this profile; add it under '{base}.datasets'"
            )
        if name not in MODELS:
            problems.append(
                f"at '{base}.pretrain.models.{name}': unknown model {name!r}; "
                f"known models: {', '.join(sorted(MODELS))}"
            )
        path = entry.get("weights") and weights_file(entry["weights"])
        if path and not path.is_file():
            problems.append(
                f"at '{base}.pretrain.models.{name}.weights': no file {str(path)!r} (relative "
                "paths start at the repository root; a tag such as 'openai' has no suffix)"
            )
    for name, options in profile.get("model_options", {}).items():
        if name not in MODELS:
            problems.append(
                f"at '{base}.model_options.{name}': unknown model {name!r}; "
                f"known models: {', '.join(sorted(MODELS))}"
            )
            continue
        accepted = MODELS[name].options
        for option in sorted(set(options) - set(accepted)):
            problems.append(
                f"at '{base}.model_options.{name}': model {name!r} takes no option {option!r}"
                + (f" (it takes: {', '.join(accepted)})" if accepted else " (it takes none)")
            )
    for group_name, group in profile["groups"].items():
        where = (origins or {}).get(group_name, f"{base}.groups.{group_name}")
        for model_key in ("model", "source_model"):
            if model_key in group and group[model_key] not in MODELS:
                problems.append(
                    f"at '{where}.{model_key}': unknown model {group[model_key]!r}; "
                    f"known models: {', '.join(sorted(MODELS))}"
                )
        zoo_source = group.get("source_weights") == "model"
        if zoo_source and group.get("source_model") not in zoo_models:
            problems.append(
                f"at '{where}.source_model': source_weights: model needs a model that brings "
                f"its own weights; choose one of {', '.join(zoo_models)}"
            )
        for task in group["tasks"]:
            source, _, _ = task.partition("-to-")
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
                        f"at '{where}.tasks': task {task!r} uses dataset "
                        f"{dataset!r}, which this profile does not configure ({hint})"
                    )
        reference = group.get("reference", {}).get("method")
        if reference is not None and reference not in group["methods"]:
            problems.append(
                f"at '{where}.reference.method': {reference!r} is not a method key of this "
                f"group; its methods: {', '.join(group['methods'])}"
            )
        group["training"] = _training(group["training"], f"{where}.training")
        for key, entry in group["methods"].items():
            method = entry.get("method", key)
            if method not in METHODS:
                problems.append(
                    f"at '{where}.methods.{key}': unknown method {method!r}; "
                    f"known methods: {', '.join(sorted(METHODS))}"
                )
                continue
            entry["training"] = group["training"].updated(entry.get("training", {}))
            entry["task_training"] = {
                task: entry["training"].updated(keys)
                for task, keys in group.get("task_training", {}).items()
            }
            settings = entry.get("settings", {})
            try:
                entry["settings"] = method_spec(method).settings.model_validate(settings)
            except ValidationError as error:
                at = (*where.split("."), "methods", key, "settings")
                problems += [
                    f"{line} (method {method!r})" for line in problems_of(error, settings, at)
                ]
    if problems:
        raise ConfigError("config names something that does not exist:\n  " + "\n  ".join(problems))


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
