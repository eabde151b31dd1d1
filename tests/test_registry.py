"""Every registered method, built the way a transfer run builds it, takes one training step.

The parametrisation reads `METHODS`, so a method cannot be registered without
passing: its default settings must round-trip through their record (what runs
record is a config that rebuilds them), and it is built by `experiment.build_method`
from a `MethodContext` on a tiny model of the kind it needs, given one step of
batches as the trainer makes them (strong views included), stepped by the
trainer's optimiser, and asked to predict. Its
statistics must be the ones the trainer sums (loss, correct, count and its
declared `extra_stats`), each a finite scalar; the files its `export` writes must
be the ones its registry entry declares as outputs. Seconds on a CPU.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from tests.conftest import REPO
from tlrepro.config.training import Training
from tlrepro.methods.base import MethodContext
from tlrepro.methods.registry import METHODS, method_spec
from tlrepro.models.base import Classifier
from tlrepro.models.clip import tiny_clip
from tlrepro.models.resnet26 import ResNet26
from tlrepro.models.small import SmallResNet, SmallVGG
from tlrepro.registry import module_of
from tlrepro.training.experiment import build_method
from tlrepro.training.trainer import TensorSet, build_optimizer

TRAINING = Training()

CLASSES = ("0", "1", "2")
SOURCE_CLASSES = ("a", "b", "c", "d")
"""The source model's own label space, where it differs from the target's."""
BATCH = 6


def tiny_vgg(classes: int) -> Classifier:
    return SmallVGG(classes, widths=(4, 8), convs_per_stage=1)


def tiny_resnet(classes: int) -> Classifier:
    return SmallResNet(classes, widths=(4, 8))


def tiny_resnet26(classes: int) -> Classifier:
    """Rebuffi's ResNet-26 layout, which SpotTune and MultiTune route through, at width 4-8."""
    return ResNet26(classes, widths=(4, 6, 8), stem_width=4)


TARGET_MODELS: dict[str, Callable[[int], Classifier]] = {
    "tlrepro.methods.cmkd": tiny_clip,
    "tlrepro.methods.spottune": tiny_resnet26,
    "tlrepro.methods.multitune": tiny_resnet26,
    "tlrepro.methods.tlvfc": tiny_resnet,
}
"""The network a method's module needs, by module; any other method gets `tiny_vgg`."""
SOURCE_MODELS: dict[str, Callable[[int], Classifier]] = {"tlrepro.methods.tlvfc": tiny_vgg}
"""Source models of another architecture (TLVFC's and DPIAT's transfer between them); any
other method that reads a source model gets one like its target network."""


def batches(streams: tuple[str, ...], strong: tuple[str, ...], source_classes: int) -> dict:
    """One step's batches as the trainer makes them: each stream's images normalised by a
    `TensorSet`, and the strong view of the streams the method asks it for."""
    generator = torch.Generator().manual_seed(0)
    out = {}
    for name in streams:
        classes = source_classes if name == "source" else len(CLASSES)
        images = torch.randint(0, 256, (BATCH, 3, 32, 32), dtype=torch.uint8, generator=generator)
        labels = torch.arange(BATCH) % classes
        data = TensorSet.create(images, labels, [0.5] * 3, [0.25] * 3, torch.device("cpu"))
        index = torch.arange(BATCH)
        out[name] = data.batch(index, "none", generator)
        if name in strong:
            out[f"{name}_strong"] = data.batch(index, "none", generator, strong=True)
    return out


@pytest.mark.parametrize("name", sorted(METHODS))
def test_every_registered_method_builds_updates_and_predicts(name: str, tmp_path: Path):
    spec = method_spec(name)
    module = module_of(spec.cls)
    settings = spec.settings.model_validate({})
    assert spec.settings.model_validate(settings.record()) == settings, name
    shared_labels = spec.needs_shared_labels
    torch.manual_seed(0)
    network = TARGET_MODELS.get(module, tiny_vgg)(len(CLASSES))
    network.set_class_names(CLASSES)
    source_model = None
    source_classes = CLASSES if shared_labels else SOURCE_CLASSES
    if spec.uses_source_model:
        builder = SOURCE_MODELS.get(module, TARGET_MODELS.get(module, tiny_vgg))
        source_model = builder(len(source_classes))
        source_model.set_class_names(source_classes)
    context = MethodContext(
        network,
        spec.streams,
        settings,
        TRAINING.label_smoothing,
        source_model=source_model,
        shared_labels=shared_labels,
    )
    method = build_method(spec.cls, context, torch.device("cpu"))

    optimizer = build_optimizer(method, TRAINING)
    method.train()
    step = batches(method.streams, method.strong_streams, len(source_classes))
    optimizer.zero_grad(set_to_none=True)
    stats = method.update(step, 0)
    optimizer.step()
    method.after_step()

    assert set(stats) == {"loss", "correct", "count", *method.extra_stats}, name
    for key, value in stats.items():
        assert isinstance(value, torch.Tensor) and value.dim() == 0, (name, key, value)
        assert torch.isfinite(value.float()), (name, key, value)
        assert not value.requires_grad, f"{name}: statistic {key} is not detached"
    assert stats["count"] == BATCH and 0 <= stats["correct"] <= BATCH

    method.eval()
    logits = method.predict(step[spec.streams[0]][0])
    assert logits.shape == (BATCH, len(CLASSES)) and torch.isfinite(logits).all(), name

    method.export(tmp_path)
    written = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert written == sorted(spec.exports(settings)), name


def test_checking_settings_and_planning_import_no_torch():
    """The settings dataclasses live in torch-free modules: building the plan (which checks
    every method's settings) stays fast for Snakemake and DVC."""
    code = (
        "import sys; from tlrepro.config.load import load_config; "
        "from tlrepro.plan.runs import build_plan; "
        "assert build_plan(load_config('.test/config.yaml')).runs; "
        "assert 'torch' not in sys.modules, 'planning imported torch'"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, check=True)
