"""Load and check the pipeline config: the JSON schema first, then the short form's
expansion (tlrepro.config.expand), then the registries.

Snakemake validates the same file with `snakemake.utils.validate`; the CLI and
the DVC stages call `load_config`, whose messages name the offending key and
say what would be accepted.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from tlrepro.config.expand import ExpandError, expand_config, training_defaults
from tlrepro.errors import ConfigError
from tlrepro.plan.layout import REPO_ROOT

DEFAULT_CONFIG = Path("config/config.yaml")
SCHEMA_NAME = "schema.yaml"


def schema_path(config_path: Path) -> Path:
    """The schema beside the config file, else the repository's own."""
    beside = Path(config_path).parent / SCHEMA_NAME
    return beside if beside.exists() else REPO_ROOT / "config" / SCHEMA_NAME


def _dotted(path: Any) -> str:
    """A key path as the config reads: `groups.x.tasks[2]`."""
    text = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in path)
    return text.lstrip(".") or "<top level>"


def default_training(schema_file: Path = REPO_ROOT / "config" / SCHEMA_NAME) -> dict[str, Any]:
    """Every training key with its default (the schema's), e.g. for a trainer built by hand."""
    return training_defaults(yaml.safe_load(Path(schema_file).read_text()))


def _format_schema_error(error: Any) -> str:
    where = _dotted(error.absolute_path)
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed))
        hint = f" (allowed keys: {', '.join(allowed)})" if allowed else ""
        return f"at '{where}': unknown key {', '.join(map(repr, extra))}{hint}"
    return f"at '{where}': {error.message}"


def check_schema(config: dict[str, Any], schema: dict[str, Any], schema_file: Path) -> None:
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        lines = "\n  ".join(_format_schema_error(e) for e in errors)
        raise ConfigError(f"config does not match {schema_file}:\n  {lines}")


def check_names(
    config: dict[str, Any], profile_name: str, origins: dict[str, str] | None = None
) -> None:
    """Everything the profile names must exist in a registry, and tasks use configured datasets.
    `origins` gives the short-form key each (expanded) group was written under."""
    from tlrepro.data.registry import DATASETS
    from tlrepro.methods.registry import METHODS, method_spec
    from tlrepro.methods.settings import SettingError
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
    for name, entry in profile["pretrain"].get("models", {}).items():
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
        for key, entry in group["methods"].items():
            method = entry.get("method", key)
            if method not in METHODS:
                problems.append(
                    f"at '{where}.methods.{key}': unknown method {method!r}; "
                    f"known methods: {', '.join(sorted(METHODS))}"
                )
                continue
            try:
                method_spec(method).settings.from_config(entry.get("settings", {}))
            except SettingError as error:
                problems.append(
                    f"at '{where}.methods.{key}.settings': method {method!r}: {error.args[0]}"
                )
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
    return validate(config, schema_path(path), profile)


def validate(
    config: dict[str, Any], schema_file: Path, profile: str | None = None
) -> dict[str, Any]:
    from tlrepro.config.rehearsal import NoBaseProfileError, with_rehearsal

    config = copy.deepcopy(config)
    if profile is not None:
        config["profile"] = profile
    schema = yaml.safe_load(Path(schema_file).read_text())
    check_schema(config, schema, schema_file)
    try:
        expanded, origins = expand_config(config, training_defaults(schema))
        derived = with_rehearsal(expanded)
    except (ExpandError, NoBaseProfileError) as error:
        raise ConfigError(str(error)) from None
    if derived is not expanded:
        check_schema(derived, schema, schema_file)
    active = derived["profile"]
    check_names(derived, active, origins.get(active))
    return derived
