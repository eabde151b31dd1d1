"""The method registry: what each method consumes, where it starts, how it is selected.

Kept free of torch so that planning a DAG (Snakemake, DVC) stays fast; the
implementing class is imported when a run is built.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from tlrepro.registry import lookup


@dataclass(frozen=True)
class MethodSpec:
    cls: str
    """`module:Class` implementing `tlrepro.methods.base.Method`."""
    description: str
    streams: tuple[str, ...]
    """Labelled data streams `update` receives ("source", "target"); the first sets the epoch."""
    init: Literal["random", "source"]
    """"source": start from the source-pretrained checkpoint of the group's model (all but
    the head; the group's `source_model` must then be its `model`)."""
    uses_source_model: bool = False
    """The method receives the source-pretrained network itself, head included (as a
    frozen support net, a weight donor of another architecture, or a source head)."""
    selection: Literal["target_val", "source_val"] = "target_val"
    """The split the honest protocol selects on (UDA methods may not see target labels)."""
    needs_shared_labels: bool = False
    """Only meaningful when source and target share a label space (tested on the target)."""
    settings: dict[str, Any] = field(default_factory=dict)
    """Default hyper-parameters; the config may override exactly these keys."""


ERM = "tlrepro.methods.erm:ERM"

METHODS: dict[str, MethodSpec] = {
    "scratch": MethodSpec(ERM, "Target data only, random initialisation.", ("target",), "random"),
    "finetune": MethodSpec(
        ERM,
        "Source-pretrained network, new head, all layers trained on the target.",
        ("target",),
        "source",
    ),
    "linear_probe": MethodSpec(
        ERM,
        "Feature extraction: the source-pretrained body frozen (BN statistics too), a new head.",
        ("target",),
        "source",
        settings={"freeze_body": True},
    ),
    "spottune": MethodSpec(
        "tlrepro.methods.spottune:SpotTune",
        "SpotTune: per-image policy routes each ResNet-26 block to a frozen or fine-tuned copy.",
        ("target",),
        "source",
        settings={"tau": 5.0, "policy_lr_scale": 0.1, "policy_weight_decay": 0.001},
    ),
    "multitune": MethodSpec(
        "tlrepro.methods.multitune:MultiTune",
        "MultiTune: fine-tuned copies under different settings, integrated by a learned layer.",
        ("target",),
        "source",
        settings={
            "branches": [
                {"name": "finetune", "lr_scale": 1.0, "l2sp": 0.0, "reinit_blocks": 0},
                {"name": "l2sp_reinit", "lr_scale": 0.1, "l2sp": 0.01, "reinit_blocks": 1},
            ]
        },
    ),
    "source_only": MethodSpec(
        ERM,
        "Trained on labelled source data only, tested on the target.",
        ("source",),
        "random",
        selection="source_val",
        needs_shared_labels=True,
    ),
}


def method_spec(name: str) -> MethodSpec:
    return lookup(METHODS, "method", name)


def resolve_settings(name: str, overrides: dict[str, Any]) -> dict[str, Any]:
    """Defaults updated with `overrides`; an unknown key is an error naming it."""
    spec = method_spec(name)
    unknown = sorted(set(overrides) - set(spec.settings))
    if unknown:
        allowed = ", ".join(sorted(spec.settings)) or "none"
        raise KeyError(f"method {name!r} has no setting {unknown[0]!r} (its settings: {allowed})")
    return {**spec.settings, **overrides}
