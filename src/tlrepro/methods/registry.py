"""The method registry: what each method consumes, where it starts, how it is selected.

Kept free of torch so that planning a DAG (Snakemake, DVC) stays fast; the
implementing class is imported when a run is built.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from tlrepro.layout import RST_FILE, TRANSFER_REPORT
from tlrepro.registry import lookup


def no_exports(settings: Mapping[str, Any]) -> tuple[str, ...]:
    return ()


@dataclass(frozen=True)
class MethodSpec:
    cls: str
    """`module:Class` implementing `tlrepro.methods.base.Method`."""
    description: str
    streams: tuple[str, ...]
    """Labelled data streams `update` receives ("source", "target"); the first sets the epoch."""
    init: Literal["random", "source"]
    """"source": start from the source-pretrained checkpoint of the group's model (all but
    the head; the group's `source_model` must then be its `model`), or, in a group with
    `source_weights: model`, from that zoo model's own weights with a new head."""
    uses_source_model: bool = False
    """The method receives the source-pretrained network itself, head included (as a
    frozen support net, a weight donor of another architecture, or a source head)."""
    selection: Literal["target_val", "source_val"] = "target_val"
    """The split the honest protocol selects on (UDA methods may not see target labels)."""
    needs_shared_labels: bool = False
    """Only meaningful when source and target share a label space (tested on the target)."""
    settings: dict[str, Any] = field(default_factory=dict)
    """Default hyper-parameters; the config may override exactly these keys, with values
    of the default's type."""
    choices: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    """Settings that take one of a few values (checked when the plan is built)."""
    exports: Callable[[Mapping[str, Any]], tuple[str, ...]] = no_exports
    """The files `Method.export` writes into the run folder, given the settings: outputs
    of the run for both runners."""


def _transfer_report(settings: Mapping[str, Any]) -> tuple[str, ...]:
    return (TRANSFER_REPORT,) if settings["transfer"] != "none" else ()


def _rst_checkpoint(settings: Mapping[str, Any]) -> tuple[str, ...]:
    return (RST_FILE,) if settings["rst_tau"] is not None else ()


ERM = "tlrepro.methods.erm:ERM"
TLVFC = "tlrepro.methods.tlvfc:TLVFC"
TLVFC_CHOICES: dict[str, tuple[str, ...]] = {
    "transfer": ("none", "tlvfc", "dpiat"),
    # tlrepro.transfer.layer_transfer.SELECTIONS (a test keeps the two equal; this module
    # stays free of torch)
    "keep": ("maxVar", "minVar", "twoTailed", "interLeaved", "random"),
    "overwrite": ("maxVar", "minVar", "twoTailed", "interLeaved", "random"),
}
CLIP = "tlrepro.methods.cmkd"
CLIP_ADAPTATION: dict[str, Any] = {"head_lr_scale": 10000.0, "rst_tau": None}
"""RN50's recipe (docs/clip_uda.md, "Recipe"); ViT-B/16 uses head_lr_scale 1000."""

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
        "SpotTune: per-image policy routes each ResNet-26 block to a frozen or fine-tuned copy "
        "(policy: global, SpotTune-Global: one learned routing for all images; budget_blocks k "
        "adds the budget loss budget_weight * (blocks fine-tuned - k)^2).",
        ("target",),
        "source",
        settings={
            "tau": 5.0,
            "policy_lr_scale": 0.1,
            "policy_weight_decay": 0.001,
            "policy": "per_image",
            "budget_blocks": None,
            "budget_weight": 0.1,
        },
        choices={"policy": ("per_image", "global")},
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
    # Two labelled streams on one shared model (docs/gradmf.md): GradMF and its peers.
    "joint": MethodSpec(
        "tlrepro.methods.two_stream:Joint",
        "Source-pretrained net trained on the sum of the source and target losses.",
        ("target", "source"),
        "source",
        uses_source_model=True,
    ),
    "pcgrad": MethodSpec(
        "tlrepro.methods.pcgrad:PCGrad",
        "Like joint, but each gradient loses its component along the other when they conflict.",
        ("target", "source"),
        "source",
        uses_source_model=True,
    ),
    "gradmf": MethodSpec(
        "tlrepro.methods.gradmf:GradMF",
        "Like joint, with the source gradient steered towards the target's direction "
        "(variant coded: the release's one step; drawn: the paper's figure, using tau, "
        "max_steps and project).",
        ("target", "source"),
        "source",
        uses_source_model=True,
        settings={"variant": "coded", "tau": 0.9, "max_steps": 5, "project": True},
        choices={"variant": ("coded", "drawn")},
    ),
    # TLVFC (docs/tlvfc.md): the target network (the group's `model`) starts from He init,
    # then weights from the source network of another architecture (`source_model`).
    "he_init": MethodSpec(
        TLVFC,
        "He (Kaiming-normal) initialisation of the target network, trained on the target.",
        ("target",),
        "random",
        settings={"transfer": "none", "crossover_p": 0.0},
        choices=TLVFC_CHOICES,
        exports=_transfer_report,
    ),
    "dpiat": MethodSpec(
        TLVFC,
        "DPIAT: blocks, shape-score DP matching, clip transfer from the source network.",
        ("target",),
        "random",
        uses_source_model=True,
        settings={"transfer": "dpiat", "crossover_p": 0.0},
        choices=TLVFC_CHOICES,
        exports=_transfer_report,
    ),
    "tlvfc": MethodSpec(
        TLVFC,
        "TLVFC: index-matched variance transfer, then feature crossover with the frozen "
        "source network while training (transfer: none / crossover_p: 0 for the ablations).",
        ("target",),
        "random",
        uses_source_model=True,
        settings={
            "transfer": "tlvfc",
            "crossover_p": 0.1,
            "keep": "interLeaved",
            "overwrite": "random",
        },
        choices=TLVFC_CHOICES,
        exports=_transfer_report,
    ),
    # CLIP UDA (docs/clip_uda.md): start from the (pretrained) CLIP of the group's model,
    # labelled source + unlabelled target, selected on the source validation split.
    "zeroshot": MethodSpec(
        f"{CLIP}:ZeroShot",
        "CLIP's zero-shot classifier of the target's class prompts; no training.",
        ("source",),
        "source",
        selection="source_val",
        needs_shared_labels=True,
    ),
    "clip_source_only": MethodSpec(
        f"{CLIP}:ClipSourceOnly",
        "CLIP encoder + task head fine-tuned on the labelled source only.",
        ("source",),
        "source",
        selection="source_val",
        needs_shared_labels=True,
        settings=CLIP_ADAPTATION,
        exports=_rst_checkpoint,
    ),
    "cmkd": MethodSpec(
        f"{CLIP}:CMKD",
        "CLIP knowledge distillation to a task head on the unlabelled target "
        "(+ RST with rst_tau, + FixMatch with fixmatch).",
        ("source", "target"),
        "source",
        selection="source_val",
        needs_shared_labels=True,
        settings={
            **CLIP_ADAPTATION,
            "l1": 0.25,
            "l2": 0.1,
            "l3": 0.025,
            "ramp_steps": 10000,
            "fixmatch": False,
            "fixmatch_threshold": 0.95,
            "fixmatch_weight": 0.5,
        },
        exports=_rst_checkpoint,
    ),
}


class SettingError(ValueError):
    """A method setting the config names does not exist, has the wrong type or value."""


def method_spec(name: str) -> MethodSpec:
    return lookup(METHODS, "method", name)


def _same_kind(value: Any, default: Any) -> bool:
    """YAML's types against the default's: an int may stand for a float, not for a bool."""
    if default is None:
        return True
    if isinstance(default, bool) or isinstance(value, bool):
        return type(value) is type(default)
    if isinstance(default, float):
        return isinstance(value, int | float)
    return isinstance(value, type(default))


def resolve_settings(name: str, overrides: dict[str, Any]) -> dict[str, Any]:
    """Defaults updated with `overrides`; an unknown key is an error naming it."""
    spec = method_spec(name)
    unknown = sorted(set(overrides) - set(spec.settings))
    if unknown:
        allowed = ", ".join(sorted(spec.settings)) or "none"
        raise SettingError(
            f"method {name!r} has no setting {unknown[0]!r} (its settings: {allowed})"
        )
    for key, value in overrides.items():
        default = spec.settings[key]
        if not _same_kind(value, default):
            raise SettingError(
                f"method {name!r}: setting {key!r} must be a {type(default).__name__}, "
                f"got {value!r}"
            )
        if key in spec.choices and value not in spec.choices[key]:
            raise SettingError(
                f"method {name!r}: setting {key!r} is {value!r}; choose one of "
                f"{', '.join(map(str, spec.choices[key]))}"
            )
    return {**spec.settings, **overrides}
