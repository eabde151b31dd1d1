"""Turn the config's short form into the full form that every other layer reads.

A profile may name reusable pieces (`recipes`, `method_sets`, `task_sets`), give its
groups defaults (`group_defaults`), and let one group entry list several models or
target regimes. Resolving them here, once, means the plan, the Snakemake rules and the
DVC stages all see one complete dict per table, as if the config had spelled each out.
Torch-free, like the rest of config loading.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Iterator, Mapping
from typing import Any

from tlrepro.errors import ConfigError

SHARED_KEYS = ("recipes", "method_sets", "task_sets")
"""Named pieces: at the top level (every profile's) or in a profile (its own)."""
SHORT_FORM_KEYS = ("group_defaults", *SHARED_KEYS)
"""Profile keys that only the short form has; the full form drops them (and SHARED_KEYS
at the top level)."""
REQUIRED_GROUP_KEYS = ("model", "tasks", "seeds", "methods")
FULL = "full"
"""The `target_train_per_class` value for the whole labelled training split."""
PLACEHOLDERS = ("{model}", "{n}")
"""Filled in `title` and `reported` per expanded group: the model and the images per class
(a number, or `full`). A title shows the text a mapping axis gives the value; `reported`,
a key of config/reported.yaml, always gets the value itself (`tlvfc_depth_{model}`:
`tlvfc_depth_resnet34`)."""


def expand_config(
    config: Mapping[str, Any], defaults: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, dict[str, str]]]:
    """The full form of every profile, and where each expanded group was written
    (profile -> group -> its short-form key), for messages about a group."""
    expanded = {k: copy.deepcopy(v) for k, v in config.items() if k not in SHARED_KEYS}
    origins: dict[str, dict[str, str]] = {}
    for name, profile in config["profiles"].items():
        pieces = _Pieces(config, profile, f"profiles.{name}")
        expanded["profiles"][name], origins[name] = _profile(
            copy.deepcopy(profile), pieces, dict(defaults)
        )
    return expanded, origins


class _Pieces:
    """A profile's named pieces (its own over the config's shared top-level ones), looked
    up with messages that list what exists."""

    def __init__(self, config: Mapping[str, Any], profile: dict[str, Any], where: str) -> None:
        self.where = where
        self.own = {kind: profile.get(kind, {}) for kind in SHARED_KEYS}
        self.named = {kind: {**config.get(kind, {}), **self.own[kind]} for kind in SHARED_KEYS}

    def at(self, kind: str, name: str) -> str:
        """Where a piece is written: in the profile, else at the top level."""
        return f"{self.where}.{kind}.{name}" if name in self.own[kind] else f"{kind}.{name}"

    def get(self, kind: str, name: str, where: str) -> Any:
        known = self.named[kind]
        if name not in known:
            raise ConfigError(
                f"at '{where}': unknown {kind[:-1].replace('_', ' ')} {name!r}; "
                f"'{kind}' and '{self.where}.{kind}' define: {', '.join(known) or 'none'}"
            )
        return copy.deepcopy(known[name])

    def recipe(self, name: str, where: str, seen: tuple[str, ...] = ()) -> dict[str, Any]:
        """A recipe with the recipes it extends (`recipe: OTHER`) resolved beneath it."""
        if name in seen:
            raise ConfigError(
                f"at '{self.at('recipes', name)}': recipes extend each other in a cycle "
                f"({' -> '.join([*seen, name])})"
            )
        body = self.get("recipes", name, where)
        own = {"recipe": body} if isinstance(body, str) else body
        base = own.pop("recipe", None)
        if base is None:
            return own
        return {**self.recipe(base, f"{self.at('recipes', name)}.recipe", (*seen, name)), **own}

    def training(
        self, block: str | dict[str, Any], above: dict[str, Any], base: dict[str, Any], where: str
    ) -> dict[str, Any]:
        """A training block over the one above it; one that names a recipe starts instead
        from `base` (the defaults) plus that recipe. Its own keys override either."""
        own = {"recipe": block} if isinstance(block, str) else dict(block)
        name = own.pop("recipe", None)
        if name is None:
            return {**above, **own}
        return {
            **base,
            **self.recipe(name, where if isinstance(block, str) else f"{where}.recipe"),
            **own,
        }

    def methods(self, value: str | dict[str, Any], where: str, seen: tuple[str, ...] = ()):
        """A methods mapping: a method set's name, or entries over an optional `set:`."""
        own = {"set": value} if isinstance(value, str) else dict(value)
        name = own.pop("set", None)
        if name is None:
            return own
        at = where if isinstance(value, str) else f"{where}.set"
        if name in seen:
            raise ConfigError(f"at '{at}': method sets include each other in a cycle")
        included = self.methods(
            self.get("method_sets", name, at), self.at("method_sets", name), (*seen, name)
        )
        return {**included, **own}

    def tasks(self, value: str | list[str], where: str) -> list[str]:
        return self.get("task_sets", value, where) if isinstance(value, str) else list(value)


def _profile(
    profile: dict[str, Any], pieces: _Pieces, defaults: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, str]]:
    where = pieces.where
    full = {key: value for key, value in profile.items() if key not in SHORT_FORM_KEYS}
    pretrain = full["pretrain"]
    pretrain["training"] = pieces.training(
        pretrain["training"], defaults, defaults, f"{where}.pretrain.training"
    )
    for model, entry in pretrain.get("models", {}).items():
        if "training" in entry:
            at = f"{where}.pretrain.models.{model}.training"
            entry["training"] = pieces.training(entry["training"], {}, defaults, at)
    group_defaults = profile.get("group_defaults", {})
    base = pieces.training(
        group_defaults.get("training", {}), defaults, defaults, f"{where}.group_defaults.training"
    )
    groups: dict[str, dict[str, Any]] = {}
    origins: dict[str, str] = {}
    for entry_name, entry in profile["groups"].items():
        at = f"{where}.groups.{entry_name}"
        for name, group in _groups(entry_name, {**group_defaults, **entry}, at, pieces, base):
            if name in groups:
                raise ConfigError(
                    f"at '{at}': expands to group {name!r}, which {origins[name]!r} also makes"
                )
            groups[name], origins[name] = group, at
    full["groups"] = groups
    return full, origins


def _groups(
    entry_name: str, entry: dict[str, Any], where: str, pieces: _Pieces, base: dict[str, Any]
) -> Iterator[tuple[str, dict[str, Any]]]:
    """The groups one entry stands for: one per model and regime it lists."""
    for key in REQUIRED_GROUP_KEYS:
        if key not in entry:
            raise ConfigError(
                f"at '{where}': no `{key}`; give it here or under "
                f"'{where.rsplit('.groups.', 1)[0]}.group_defaults'"
            )
    if "target_train_per_class" in entry and "target_train_fraction" in entry:
        raise ConfigError(
            f"at '{where}': both target_train_per_class and target_train_fraction (with "
            "group_defaults); keep one"
        )
    group = {key: value for key, value in entry.items() if key != "target_train_per_class"}
    group["tasks"] = pieces.tasks(entry["tasks"], f"{where}.tasks")
    group["training"] = pieces.training(entry.get("training", {}), base, base, f"{where}.training")
    methods = pieces.methods(entry["methods"], f"{where}.methods")
    if not methods:
        raise ConfigError(f"at '{where}.methods': no methods")
    group["methods"] = {
        key: {
            **method,
            "training": pieces.training(
                method["training"], {}, base, f"{where}.methods.{key}.training"
            ),
        }
        if "training" in method
        else method
        for key, method in methods.items()
    }
    if "task_training" in entry:
        unknown = sorted(set(entry["task_training"]) - set(group["tasks"]))
        if unknown:
            raise ConfigError(
                f"at '{where}.task_training': {', '.join(unknown)} not among the group's tasks"
            )
        group["task_training"] = {
            task: pieces.training(block, {}, base, f"{where}.task_training.{task}")
            for task, block in entry["task_training"].items()
        }
    models = _axis(entry["model"], f"{where}.model", _model_value)
    regimes = _axis(entry.get("target_train_per_class"), f"{where}.target_train_per_class", _regime)
    for (model_suffix, model, model_text), (regime_suffix, per_class, n_text) in itertools.product(
        models, regimes
    ):
        expanded = copy.deepcopy(group)
        expanded["model"] = model
        if per_class is not None:
            expanded["target_train_per_class"] = per_class
        n_value = FULL if per_class is None else str(per_class)
        fills = {"title": (model_text, n_text), "reported": (model, n_value)}
        for key, (model_fill, n_fill) in fills.items():
            if isinstance(expanded.get(key), str):
                expanded[key] = expanded[key].replace("{model}", model_fill).replace("{n}", n_fill)
        suffixes = [s for s in (model_suffix, regime_suffix) if s]
        yield "_".join([entry_name, *suffixes]), expanded


Choice = tuple[str, Any, str]
"""One value of an axis: the suffix it adds to the group's name ('' for a scalar axis),
the value, and the text its placeholder shows."""


def _axis(value: Any, where: str, parse: Any) -> list[Choice]:
    """A scalar (one group, no suffix), a list, or a mapping value -> placeholder text."""
    if isinstance(value, list):
        if not value:
            raise ConfigError(f"at '{where}': an empty list; give at least one value")
        return [parse(item, f"{where}[{index}]", None, True) for index, item in enumerate(value)]
    if isinstance(value, dict):
        if not value:
            raise ConfigError(f"at '{where}': an empty mapping; give at least one value")
        return [parse(key, f"{where}.{key}", text, True) for key, text in value.items()]
    return [parse(value, where, None, False)]


def _model_value(value: Any, where: str, text: str | None, listed: bool) -> Choice:
    if not isinstance(value, str):
        raise ConfigError(f"at '{where}': {value!r} is not a model name")
    return (value if listed else "", value, text or value)


def _regime(value: Any, where: str, text: str | None, listed: bool) -> Choice:
    if value is None or value == FULL:
        return (FULL if listed else "", None, text or FULL)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return (f"n{value}" if listed else "", value, text or str(value))
    raise ConfigError(
        f"at '{where}': {value!r} is neither a number of images per class (an integer >= 1) "
        f"nor {FULL!r} (the whole training split)"
    )
