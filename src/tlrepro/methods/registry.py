"""The method registry: what each method consumes, where it starts, how it is selected.

Kept free of torch so that planning a DAG (Snakemake, DVC) stays fast; the
implementing class is imported when a run is built. A method's settings are the
pydantic model its entry names (`tlrepro.methods.settings`), in a torch-free module beside it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from tlrepro.methods.cmkd_settings import ClipAdaptationSettings, CMKDSettings
from tlrepro.methods.erm_settings import ERMSettings, LinearProbeSettings
from tlrepro.methods.gradmf_settings import GradMFSettings
from tlrepro.methods.multitune_settings import MultiTuneSettings
from tlrepro.methods.settings import Settings
from tlrepro.methods.spottune_settings import SpotTuneSettings
from tlrepro.methods.tlvfc_settings import (
    DPIATSettings,
    HeInitSettings,
    LayerTransferSettings,
    TLVFCSettings,
)
from tlrepro.plan.layout import RST_FILE, TRANSFER_REPORT
from tlrepro.registry import lookup


def no_exports(settings: Settings) -> tuple[str, ...]:
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
    settings: type[Settings] = Settings
    """The method's settings: their defaults, types and ranges; the config may override
    its fields (validated against it when the config is loaded, tlrepro.config.load)."""
    exports: Callable[[Settings], tuple[str, ...]] = no_exports
    """The files `Method.export` writes into the run folder, given the settings: outputs
    of the run for both runners."""


def _transfer_report(settings: Settings) -> tuple[str, ...]:
    assert isinstance(settings, LayerTransferSettings)
    return (TRANSFER_REPORT,) if settings.transfer != "none" else ()


def _rst_checkpoint(settings: Settings) -> tuple[str, ...]:
    assert isinstance(settings, ClipAdaptationSettings)
    return (RST_FILE,) if settings.rst_tau is not None else ()


ERM = "tlrepro.methods.erm:ERM"
TLVFC = "tlrepro.methods.tlvfc:TLVFC"
CLIP = "tlrepro.methods.cmkd"

METHODS: dict[str, MethodSpec] = {
    "scratch": MethodSpec(
        ERM,
        "Target data only, random initialisation.",
        ("target",),
        "random",
        settings=ERMSettings,
    ),
    "finetune": MethodSpec(
        ERM,
        "Source-pretrained network, new head, all layers trained on the target.",
        ("target",),
        "source",
        settings=ERMSettings,
    ),
    "linear_probe": MethodSpec(
        ERM,
        "Feature extraction: the source-pretrained body frozen (BN statistics too), a new head.",
        ("target",),
        "source",
        settings=LinearProbeSettings,
    ),
    "spottune": MethodSpec(
        "tlrepro.methods.spottune:SpotTune",
        "SpotTune: per-image policy routes each ResNet-26 block to a frozen or fine-tuned copy "
        "(policy: global, SpotTune-Global: one learned routing for all images; budget_blocks k "
        "adds the budget loss budget_weight * (blocks fine-tuned - k)^2).",
        ("target",),
        "source",
        settings=SpotTuneSettings,
    ),
    "multitune": MethodSpec(
        "tlrepro.methods.multitune:MultiTune",
        "MultiTune: fine-tuned copies under different settings, integrated by a learned layer.",
        ("target",),
        "source",
        settings=MultiTuneSettings,
    ),
    "source_only": MethodSpec(
        ERM,
        "Trained on labelled source data only, tested on the target.",
        ("source",),
        "random",
        selection="source_val",
        needs_shared_labels=True,
        settings=ERMSettings,
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
        "max_steps and project; schedule release: the released scripts' source epochs with "
        "a GradMF epoch every release_period-th).",
        ("target", "source"),
        "source",
        uses_source_model=True,
        settings=GradMFSettings,
    ),
    # TLVFC (docs/tlvfc.md): the target network (the group's `model`) starts from He init,
    # then weights from the source network of another architecture (`source_model`).
    "he_init": MethodSpec(
        TLVFC,
        "He (Kaiming-normal) initialisation of the target network, trained on the target.",
        ("target",),
        "random",
        settings=HeInitSettings,
        exports=_transfer_report,
    ),
    "dpiat": MethodSpec(
        TLVFC,
        "DPIAT: blocks, shape-score DP matching, clip transfer from the source network.",
        ("target",),
        "random",
        uses_source_model=True,
        settings=DPIATSettings,
        exports=_transfer_report,
    ),
    "tlvfc": MethodSpec(
        TLVFC,
        "TLVFC: index-matched variance transfer, then feature crossover with the frozen "
        "source network while training (transfer: none / crossover_p: 0 for the ablations).",
        ("target",),
        "random",
        uses_source_model=True,
        settings=TLVFCSettings,
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
        settings=ClipAdaptationSettings,
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
        settings=CMKDSettings,
        exports=_rst_checkpoint,
    ),
}


def method_spec(name: str) -> MethodSpec:
    return lookup(METHODS, "method", name)
