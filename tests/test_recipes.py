"""The papers' recipe pieces: CMKD's lr schedule, CLIP's preprocessing, FixMatch's per-image
strong view, Rebuffi's ResNet-26 checkpoint, and their use by the paper profile."""

from __future__ import annotations

import dataclasses
import pickle
import struct
import sys
import types
from typing import ClassVar

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml
from torch import nn
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

from tests.conftest import REPO
from tlrepro.config.load import ConfigError, load_config, validate
from tlrepro.config.training import Training
from tlrepro.methods.base import Method, MethodContext
from tlrepro.methods.erm_settings import ERMSettings, LinearProbeSettings
from tlrepro.methods.settings import Settings
from tlrepro.models.registry import build_model, model_spec
from tlrepro.models.resnet26_import import (
    export_published,
    load_rebuffi_state,
    our_name,
    read_published,
)
from tlrepro.plan.runs import PretrainJob, build_plan
from tlrepro.training.augment import per_image, strong_view
from tlrepro.training.trainer import TensorSet, fit, lr_lambda

CPU = torch.device("cpu")

# --------------------------------------------------------------------------- lr schedule


@pytest.mark.parametrize("step", [0, 1, 500, 3333, 10000])
def test_inv_schedule_is_cmkds_per_iteration_decay(step):
    factor = lr_lambda(Training(schedule="inv"), total_steps=10000)(step)
    assert factor == pytest.approx((1 + 0.0003 * step) ** -0.75, rel=1e-12)


def test_inv_schedule_counts_optimiser_steps():
    """The first step runs at the configured lr, step t at lr (1 + 0.0003 t)^-0.75."""
    parameter = nn.Parameter(torch.zeros(()))
    optimizer = torch.optim.SGD([parameter], lr=3e-7)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lr_lambda(Training(schedule="inv"), total_steps=100)
    )
    seen = []
    for _ in range(4):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert seen == pytest.approx([3e-7 * (1 + 0.0003 * t) ** -0.75 for t in range(4)])
    assert seen[0] == 3e-7


# --------------------------------------------------------------------------- CLIP preprocessing

CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]


def coordinate_images(n: int, size: int) -> torch.Tensor:
    """uint8 images whose channel 0 is the row, channel 1 the column, channel 2 the image."""
    rows = torch.arange(size).view(size, 1).expand(size, size)
    images = torch.stack([rows, rows.t(), torch.zeros(size, size, dtype=torch.long)])
    images = images.expand(n, -1, -1, -1).clone()
    images[:, 2] = torch.arange(n).view(n, 1, 1)
    return images.to(torch.uint8)


def clip_set(images: torch.Tensor) -> TensorSet:
    labels = torch.zeros(len(images), dtype=torch.long)
    return TensorSet.create(images, labels, [0.5] * 3, [0.25] * 3, CPU, augment="clip")


def unnormalise(x: torch.Tensor) -> torch.Tensor:
    mean, std = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1), torch.tensor(CLIP_STD).view(1, 3, 1, 1)
    return ((x * std + mean) * 255).round().long()


def test_clip_preprocessing_uses_clips_statistics_not_the_datasets():
    data = clip_set(torch.full((2, 3, 8, 8), 200, dtype=torch.uint8))
    assert torch.equal(data.mean.flatten(), torch.tensor(CLIP_MEAN))  # float32, as published
    assert torch.equal(data.std.flatten(), torch.tensor(CLIP_STD))
    x, _ = data.batch(torch.arange(2))
    expected = (200 / 255 - torch.tensor(CLIP_MEAN)) / torch.tensor(CLIP_STD)
    torch.testing.assert_close(x[0, :, 0, 0], expected)
    images, labels = torch.zeros(1, 3, 8, 8, dtype=torch.uint8), torch.zeros(1, dtype=torch.long)
    plain = TensorSet.create(images, labels, [0.5] * 3, [0.25] * 3, CPU, augment="shift")
    assert plain.mean.flatten().tolist() == [0.5] * 3 and plain.eval_size is None


def test_clip_training_view_is_a_random_224_crop_of_256_with_flips():
    data = clip_set(coordinate_images(16, 256))
    x, _ = data.batch(torch.arange(16), "clip", torch.Generator().manual_seed(0))
    assert x.shape == (16, 3, 224, 224)
    pixels = unnormalise(x)
    flipped = []
    for image in pixels:
        rows, cols = image[0, :, 0], image[1, 0, :]
        top = int(rows[0])
        assert torch.equal(rows, torch.arange(top, top + 224)) and 0 <= top <= 32
        assert torch.equal(image[0], rows.view(-1, 1).expand(224, 224))  # a rectangle
        is_flipped = bool(cols[0] > cols[-1])
        left = int(cols[-1] if is_flipped else cols[0])
        window = torch.arange(left, left + 224)
        assert torch.equal(cols, window.flip(0) if is_flipped else window) and left <= 32
        flipped.append(is_flipped)
    assert any(flipped) and not all(flipped)  # drawn per image
    assert len({int(image[0, 0, 0]) for image in pixels}) > 1  # offsets drawn per image


def test_clip_views_of_other_sizes_are_resized_first():
    """Stored images of another size (32 px digits, 72 px) go through Resize(256, 256) before
    the crop, and through Resize(224, 224) for evaluation."""
    images = torch.randint(0, 256, (3, 3, 32, 32), dtype=torch.uint8)
    data = clip_set(images)
    train, _ = data.batch(torch.arange(3), "clip", torch.Generator().manual_seed(1))
    evaluation, _ = data.batch(torch.arange(3))
    assert train.shape[-2:] == (224, 224) and evaluation.shape[-2:] == (224, 224)
    resized = TF.resize(images, [224, 224], antialias=True)
    torch.testing.assert_close(unnormalise(evaluation), resized.long(), rtol=0, atol=1)


def test_clip_evaluation_view_is_resize_224():
    images = torch.randint(0, 256, (2, 3, 256, 256), dtype=torch.uint8)
    evaluation, _ = clip_set(images).batch(torch.arange(2))
    expected = TF.resize(images, [224, 224], antialias=True)
    assert evaluation.shape == (2, 3, 224, 224)
    torch.testing.assert_close(unnormalise(evaluation), expected.long(), rtol=0, atol=1)


# --------------------------------------------------------------------------- TLVFC's crop

TLVFC_MEAN, TLVFC_STD = [0.5372, 0.4363, 0.3366], [0.2749, 0.2743, 0.2764]  # its Food-101's


def tlvfc_set(images: torch.Tensor) -> TensorSet:
    labels = torch.zeros(len(images), dtype=torch.long)
    return TensorSet.create(images, labels, TLVFC_MEAN, TLVFC_STD, CPU, augment="tlvfc_crop")


def release_candidates(image: torch.Tensor) -> dict[tuple[int, int, bool], torch.Tensor]:
    """Every view torchvision's Resize(S + 2) + RandomCrop(S, padding=4) + flip can give of
    one uint8 image, by (top, left, flipped) in the padded image."""
    size = image.shape[-1]
    padded = TF.pad(TF.resize(image, [size + 2, size + 2], antialias=True), [4], fill=0)
    views = {}
    for top in range(11):
        for left in range(11):
            crop = TF.crop(padded, top, left, size, size)
            views[(top, left, False)] = crop
            views[(top, left, True)] = crop.flip(-1)
    return views


@pytest.mark.parametrize("size", [32, 224])
def test_tlvfc_crop_moves_at_most_5_px_at_every_size(size):
    """Each training view is one of the release's: a crop at (top, left) in [0, 10]^2 of the
    (S + 2) px image padded by 4, i.e. within 5 px of the centred crop at 32 px as at 224 px
    (our `shift_flip` moves by S / 8: 28 px at 224)."""
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (24, 3, size, size), dtype=torch.uint8, generator=generator)
    x, _ = tlvfc_set(images).batch(torch.arange(24), "tlvfc_crop", torch.Generator().manual_seed(1))
    assert x.shape == images.shape
    mean, std = torch.tensor(TLVFC_MEAN).view(3, 1, 1), torch.tensor(TLVFC_STD).view(3, 1, 1)
    offsets, flips = set(), set()
    for image, view in zip(images, x, strict=True):
        pixels = ((view * std + mean) * 255).round().to(torch.uint8)
        found = [k for k, c in release_candidates(image).items() if torch.equal(c, pixels)]
        assert found, "not a view the release's transforms can give"
        (top, left, flipped) = found[0]
        assert max(abs(top - 5), abs(left - 5)) <= 5
        offsets.add((top, left))
        flips.add(flipped)
    assert len(offsets) > 5 and flips == {False, True}  # drawn per image


def test_tlvfc_crop_pads_black_not_the_mean_colour():
    """RandomCrop(padding=4) fills the PIL image with black: after Normalize, (0 - mean) / std,
    where `shift` pads the normalised tensor with zeros (the mean colour). At most 4 rows
    (columns) of padding enter a view on either side."""
    images = torch.full((64, 3, 224, 224), 255, dtype=torch.uint8)
    x, _ = tlvfc_set(images).batch(torch.arange(64), "tlvfc_crop", torch.Generator().manual_seed(2))
    mean, std = torch.tensor(TLVFC_MEAN), torch.tensor(TLVFC_STD)
    black, white = (0 - mean) / std, (1 - mean) / std
    is_black = torch.isclose(x, black.view(1, 3, 1, 1)).all(dim=1)
    is_white = torch.isclose(x, white.view(1, 3, 1, 1)).all(dim=1)
    assert (is_black | is_white).all()
    assert is_black.any() and not (x.abs() < 1e-6).all(dim=1).any()  # no mean-colour pixel
    black_rows = is_black.all(dim=2)  # (image, row): the whole row is padding
    black_cols = is_black.all(dim=1)
    for lines in (black_rows, black_cols):
        assert not lines[:, 4:-4].any()  # no padding beyond 4 px of either edge
        assert lines[:, :4].any() and lines[:, -4:].any()
    shifted, _ = tlvfc_set(images).batch(torch.arange(8), "shift", torch.Generator())
    assert (shifted.abs() < 1e-6).all(dim=1).any()  # the old augmentation's mean-colour fill


def test_tlvfc_crop_evaluation_view_is_the_stored_image():
    images = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    data = tlvfc_set(images)
    x, _ = data.batch(torch.arange(2))
    assert data.eval_size is None
    mean, std = torch.tensor(TLVFC_MEAN).view(3, 1, 1), torch.tensor(TLVFC_STD).view(3, 1, 1)
    torch.testing.assert_close(x, (images.float() / 255 - mean) / std)


# --------------------------------------------------------------------------- FixMatch strong view


def same_image(n: int, size: int = 32) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    image = torch.randint(0, 256, (3, size, size), dtype=torch.uint8, generator=generator)
    return image.expand(n, -1, -1, -1).contiguous()


def distinct(images: torch.Tensor) -> int:
    return len({tuple(image.flatten().tolist()) for image in images})


def test_randaugment_is_drawn_per_image_not_per_batch():
    images = same_image(8)
    transform = v2.RandAugment(2, 10)
    torch.manual_seed(0)
    assert distinct(transform(images)) == 1  # v2 on a batch: one draw, the same ops for all
    per = per_image(transform, images, torch.Generator().manual_seed(0))
    assert per.shape == images.shape and per.dtype == torch.uint8
    assert distinct(per) > 1  # identical images, different operations


def test_strong_view_differs_per_image_and_is_a_function_of_the_generator():
    images = same_image(8)
    before = torch.get_rng_state()
    first = strong_view(images, torch.Generator().manual_seed(3))
    assert torch.equal(torch.get_rng_state(), before)  # torch's RNG is left as it was
    assert distinct(first) == 8
    assert torch.equal(first, strong_view(images, torch.Generator().manual_seed(3)))
    assert not torch.equal(first, strong_view(images, torch.Generator().manual_seed(4)))


class RecordingMethod(Method):
    """Plain ERM on the target that keeps the batches it was given."""

    strong_streams = ("target",)

    def __init__(self, context: MethodContext):
        super().__init__(context)
        self.seen: list[dict[str, tuple[torch.Tensor, torch.Tensor]]] = []

    def update(self, batches, step):
        self.seen.append(batches)
        return self.supervised_step(*batches["target"])


def test_the_trainer_gives_strong_views_of_the_same_images(tmp_path):
    images = torch.randint(0, 256, (32, 3, 16, 16), dtype=torch.uint8)
    data = TensorSet.create(images, torch.arange(32) % 4, [0.5] * 3, [0.25] * 3, CPU)
    method = RecordingMethod(
        MethodContext(build_model("small_vgg", 4, widths=(8, 16)), ("target",))
    )
    training = Training(epochs=1, steps_per_epoch=2, batch_size=8)
    fit(method, {"target": data}, {"val": data, "test": data}, training, tmp_path, 0, "f", False)
    assert len(method.seen) == 2
    for batches in method.seen:
        (weak, labels), (strong, strong_labels) = batches["target"], batches["target_strong"]
        assert torch.equal(labels, strong_labels) and strong.shape == weak.shape
        assert not torch.equal(weak, strong)


# --------------------------------------------------------------------------- Rebuffi's ResNet-26

WIDTHS = (64, 128, 256)


def published_state(classes: int = 1000, seed: int = 0) -> dict[str, torch.Tensor]:
    """A random network in the layout of residual_adapters' models.py (plain mode, one task),
    without `num_batches_tracked`, as the checkpoints of that PyTorch era."""
    g = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}

    def conv_task(name: str, c_in: int, c_out: int) -> None:
        state[f"{name}.conv.weight"] = torch.randn(c_out, c_in, 3, 3, generator=g) / (3 * c_in**0.5)
        batch_norm(f"{name}.bns.0", c_out)

    def batch_norm(name: str, channels: int) -> None:
        state[f"{name}.weight"] = 1 + 0.1 * torch.randn(channels, generator=g)
        state[f"{name}.bias"] = 0.1 * torch.randn(channels, generator=g)
        state[f"{name}.running_mean"] = 0.1 * torch.randn(channels, generator=g)
        state[f"{name}.running_var"] = 0.5 + torch.rand(channels, generator=g)

    conv_task("pre_layers_conv", 3, 32)
    c_in = 32
    for stage, width in enumerate(WIDTHS, 1):
        for block in range(4):
            conv_task(f"layer{stage}.{block}.conv1", c_in, width)
            conv_task(f"layer{stage}.{block}.conv2.1", width, width)
            c_in = width
    batch_norm("end_bns.0.0", 256)
    state["linears.0.weight"] = torch.randn(classes, 256, generator=g)
    state["linears.0.bias"] = torch.randn(classes, generator=g)
    return state


def published_features(state: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """The published network's pooled features, computed from its own parameter names."""

    def bn(name: str, h: torch.Tensor) -> torch.Tensor:
        return F.batch_norm(
            h,
            state[f"{name}.running_mean"],
            state[f"{name}.running_var"],
            state[f"{name}.weight"],
            state[f"{name}.bias"],
            training=False,
        )

    def conv_task(name: str, h: torch.Tensor, stride: int) -> torch.Tensor:
        return bn(f"{name}.bns.0", F.conv2d(h, state[f"{name}.conv.weight"], None, stride, 1))

    h = conv_task("pre_layers_conv", x, 1)
    for stage in (1, 2, 3):
        for block in range(4):
            stride = 2 if block == 0 else 1
            y = conv_task(f"layer{stage}.{block}.conv1", h, stride)
            y = conv_task(f"layer{stage}.{block}.conv2.1", F.relu(y), 1)
            if block == 0:
                pooled = F.avg_pool2d(h, 2)
                h = torch.cat([pooled, pooled * 0], 1)
            h = F.relu(y + h)
    return F.relu(bn("end_bns.0.0", h)).mean(dim=(2, 3))


def test_rebuffi_checkpoint_converts_to_the_same_network(tmp_path):
    state = published_state()
    path = tmp_path / "resnet26_imagenet.pt"
    torch.save(state, path)
    network = build_model("resnet26", 7, weights=str(path)).eval()
    assert network.head.out_features == 7  # ImageNet's head is not carried over
    mapped = network.state_dict()
    for name, tensor in state.items():
        if not name.startswith("linears."):
            assert torch.equal(mapped[our_name(name)], tensor), name
    body = {k for k in mapped if not k.startswith("head.") and "num_batches_tracked" not in k}
    assert {our_name(k) for k in state if not k.startswith("linears.")} == body
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(network.features(x), published_features(state, x))
    converted = load_rebuffi_state(path)
    assert torch.equal(converted["head.weight"], state["linears.0.weight"])
    # Without weights the architecture is built at random (what every run does).
    fresh = build_model("resnet26", 7).state_dict()
    assert not torch.equal(fresh["stem.0.weight"], mapped["stem.0.weight"])


def test_rebuffi_names_map_to_ours():
    assert our_name("pre_layers_conv.conv.weight") == "stem.0.weight"
    assert our_name("pre_layers_conv.bns.0.running_var") == "stem.1.running_var"
    assert our_name("layer1.0.conv1.conv.weight") == "blocks.0.conv1.weight"
    assert our_name("layer2.3.conv2.1.bns.0.bias") == "blocks.7.bn2.bias"
    assert our_name("layer3.1.conv2.1.conv.weight") == "blocks.9.conv2.weight"
    assert our_name("end_bns.0.0.weight") == "final.0.weight"
    assert our_name("linears.0.bias") == "head.bias"
    assert our_name("layer3.4.conv1.conv.weight") is None  # four blocks per stage
    assert our_name("layer1.0.conv1.bns.0.0.conv.1.weight") is None  # a series adapter


def test_rebuffi_loader_refuses_other_files_with_a_way_out(tmp_path):
    pickled = tmp_path / "resnet26_pretrained.t7"
    torch.save({"net": nn.Linear(2, 2), "acc": 1.0}, pickled)
    with pytest.raises(ValueError, match=r"pickled objects.*state_dict\(\)"):
        load_rebuffi_state(pickled)
    adapters = published_state(classes=3)
    adapters["layer1.0.conv1.bns.0.0.conv.1.weight"] = torch.zeros(64, 64, 1, 1)
    torch.save({"net": adapters}, tmp_path / "adapters.pt")
    with pytest.raises(ValueError, match="series adapters"):
        load_rebuffi_state(tmp_path / "adapters.pt")
    narrow = {k: v[..., :1] if v.dim() == 4 else v for k, v in published_state(3).items()}
    torch.save(narrow, tmp_path / "narrow.pt")
    with pytest.raises(ValueError, match=r"narrow\.pt does not fit ResNet26"):
        build_model("resnet26", 3, weights=str(tmp_path / "narrow.pt"))


def pretraining_settings(job: PretrainJob) -> Settings:
    return model_spec(job.model).pretraining.settings_for(job.weights)


def resnet26_pretraining(weights: str) -> PretrainJob:
    """The Visual Decathlon's ResNet-26 pretraining, from `weights`."""
    return PretrainJob(
        profile="paper",
        model="resnet26",
        dataset="caltech256_decathlon",
        seed=0,
        training=Training(),
        weights=weights,
    )


def test_given_weights_are_kept_by_the_source_pretraining():
    job = resnet26_pretraining("w.pt")
    assert pretraining_settings(job) == LinearProbeSettings(freeze_body=True)
    job.weights = None
    assert pretraining_settings(job) == ERMSettings() and not ERMSettings().freeze_body
    clip = dataclasses.replace(job, model="clip_rn50", dataset="office31_amazon", weights="openai")
    assert pretraining_settings(clip) == Settings()  # zero-shot: nothing trains anyway


def test_a_weights_file_is_part_of_the_pretrainings_identity(tmp_path, monkeypatch):
    """New weights exported to the same path make the source pretraining (and so its runs)
    stale in both runners; a missing file is a config error; a tag is no file."""
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "resnet26_imagenet.pt"
    path.write_bytes(b"first export")
    job = resnet26_pretraining(str(path))
    before = job.identity
    path.write_bytes(b"second export")
    assert job.identity != before and job.identity["weights"] == before["weights"]
    tagged = dataclasses.replace(job, model="clip_rn50", weights="openai")
    assert "weights_sha256" not in tagged.identity
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["profiles"]["paper"]["pretrain"]["models"]["resnet26"]["weights"] = "missing.pt"
    with pytest.raises(ConfigError, match=r"weights': no file 'missing\.pt'"):
        validate(config, "paper")


# --------------------------------------------------------------------------- the paper profile


@pytest.fixture(scope="module")
def paper_plan():
    return build_plan(load_config(REPO / "config" / "config.yaml", profile="paper"), "paper")


def test_paper_clip_groups_use_the_cmkd_recipe(paper_plan):
    clip_runs = [r for r in paper_plan.runs if r.model in ("clip_rn50", "clip_vit_b16")]
    assert {r.group for r in clip_runs} >= {"cmkd_office_home_rn50", "cmkd_office31_vit"}
    for run in clip_runs:
        # the digits groups take the release's digits views (tests/test_cmkd.py)
        expected = "clip_digits" if run.group.startswith("cmkd_digits") else "clip"
        assert run.training.augment == expected, run.group
        assert run.training.schedule == "inv", run.group
    assert any(r.settings.record().get("fixmatch") for r in clip_runs)
    for job in paper_plan.pretrains.values():
        if job.model.startswith("clip_"):
            assert job.training.augment == "clip"
    office_home = paper_plan.profile["datasets"]["office_home_art"]
    assert office_home["image_size"] == 256  # Resize(256, 256) happens once, at preparation


def test_paper_adaptive_groups_name_rebuffis_weights_and_spottune_global(paper_plan):
    resnet26 = [j for j in paper_plan.pretrains.values() if j.model == "resnet26"]
    assert resnet26 and all(j.weights is None for j in resnet26)  # until a file is given
    assert "weights" in paper_plan.profile["pretrain"]["models"]["resnet26"]
    spottune = {
        r.method_key: r.settings.record()
        for r in paper_plan.runs
        if r.group == "adaptive_full" and r.method == "spottune"
    }
    assert spottune["spottune"]["policy"] == "per_image"
    assert spottune["spottune_global"]["policy"] == "global"
    assert spottune["spottune_global"]["budget_blocks"] is not None


def test_paper_tlvfc_groups_follow_the_releases_train_py(paper_plan):
    """TLVFC's train.py as published: Resize(S + 2) + RandomCrop(S, padding 4) + flip, and a
    constant lr (its MultiStep needs --lr-scheduler, off by default and passed by no published
    command); Food-101's validation is 10 % of each class (dataset_utils.py's split_data_dir
    call), CIFAR's and PetImages' 20 %."""
    runs = [r for r in paper_plan.runs if r.group.startswith("tlvfc_")]
    assert {r.group for r in runs} >= {"tlvfc_resnet18", "tlvfc_depth_resnet152"}
    for run in runs:
        assert run.training.augment == "tlvfc_crop", run.group
        assert run.training.schedule == "constant", run.group
        assert (run.training.optimizer, run.training.lr) == ("adamw", 1e-4)
        assert (run.training.epochs, run.training.batch_size) == (200, 128)
    datasets = paper_plan.profile["datasets"]
    assert datasets["food101"]["val_fraction"] == 0.1
    assert "test_fraction" not in datasets["food101"]  # Food-101's official test split
    for name in ("cifar10", "cifar100", "pet_images"):
        assert datasets[name]["val_fraction"] == 0.2, name


def test_paper_gradmf_resnet50_groups_draw_no_augmentation(paper_plan):
    """GradMF's ResNet-50 scripts (Office31.py, Grad_train_caltech256.py) only resize."""
    runs = [r for r in paper_plan.runs if r.group in ("gradmf_caltech", "gradmf_office31")]
    assert {r.group for r in runs} == {"gradmf_caltech", "gradmf_office31"}
    assert {r.training.augment for r in runs} == {"none"}
    assert {r.model for r in runs} == {"resnet50_imagenet"}


def test_quick_profile_keeps_its_augmentations():
    """The new views are paper-profile options: no quick run uses them."""
    plan = build_plan(load_config(REPO / "config" / "config.yaml", profile="quick"), "quick")
    assert {r.training.augment for r in plan.runs} == {"shift"}
    assert {j.training.augment for j in plan.pretrains.values()} <= {"shift"}


class Py2Pickler(pickle._Pickler):
    """Writes what Python 2's cPickle wrote: every str (and bytes) as a Python 2 byte string
    (SHORT_BINSTRING / BINSTRING, latin-1 bytes), NumPy's rebuilder under numpy.core."""

    dispatch: ClassVar[dict] = dict(pickle._Pickler.dispatch)

    def save_py2_str(self, obj) -> None:
        data = obj.encode("latin-1") if isinstance(obj, str) else bytes(obj)
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(data)) + data)
        self.memoize(obj)

    dispatch[str] = save_py2_str
    dispatch[bytes] = save_py2_str

    def save_global(self, obj, name=None) -> None:
        if getattr(obj, "__module__", "").startswith("numpy._core"):
            self.write(pickle.GLOBAL + b"numpy.core.multiarray\n" + obj.__name__.encode() + b"\n")
            self.memoize(obj)
        else:
            super().save_global(obj, name)


def py2_pickle_module() -> types.ModuleType:
    module = types.ModuleType("py2_pickle")
    module.Pickler = Py2Pickler
    module.dump = lambda obj, file, protocol=2: Py2Pickler(file, protocol).dump(obj)
    return module


RAN_AUTHORS_CODE = []


def save_as_python2(obj, path) -> None:
    """`obj` in the published `.t7` layout: legacy format, protocol 2, Python 2 strings."""
    torch.save(
        obj,
        path,
        pickle_module=py2_pickle_module(),
        pickle_protocol=2,
        _use_new_zipfile_serialization=False,
    )


def published_network(state: dict[str, torch.Tensor]) -> nn.Module:
    """The state under the authors' module tree (classes of a stand-in `models` module, as
    their models.py; a __setstate__ that would record being run on unpickling)."""
    authors = types.ModuleType("models")

    def setstate(self, state):
        RAN_AUTHORS_CODE.append(type(self).__name__)
        nn.Module.__setstate__(self, state)

    for name in ("ResNet", "conv_task", "BasicBlock", "Sequential"):
        cls = type(name, (nn.Module,), {"__module__": "models", "__setstate__": setstate})
        setattr(authors, name, cls)
    root = authors.ResNet()
    for dotted, tensor in state.items():
        *path, leaf = dotted.split(".")
        module = root
        for part in path:
            if part not in module._modules:
                module.add_module(part, authors.conv_task())
            module = module._modules[part]
        if leaf.startswith("running_"):
            module.register_buffer(leaf, tensor.clone())
        else:
            module.register_parameter(leaf, nn.Parameter(tensor.clone()))
    return authors, root


def test_the_published_python2_checkpoint_is_read_with_latin1_and_none_of_its_code(
    tmp_path, monkeypatch
):
    """Rebuffi's .t7 as PyTorch 0.4 wrote it under Python 2 (legacy format, protocol 2,
    byte strings, a NumPy array): a plain Python 3 load fails on its bytes; ours reads it as
    latin-1 into the published state dict, which the loader then converts."""
    state = published_state(classes=5)
    authors, net = published_network(state)
    monkeypatch.setitem(sys.modules, "models", authors)
    checkpoint = {
        "net": net,
        "acc": 71.5,
        "epoch": 60,
        "comment": "ImageNet 72 px, r\xe9sidus",  # latin-1, not UTF-8, on the wire
        "mean_std": np.array([0.485, 0.456, 0.406, 0.229, 0.224, 0.225]),
    }
    path = tmp_path / "resnet26_pretrained.t7"
    save_as_python2(checkpoint, path)
    assert b"\x55\x03net" in path.read_bytes()  # SHORT_BINSTRING 'net': a Python 2 str
    with pytest.raises(UnicodeDecodeError):  # what a plain load of such a file does
        torch.load(path, weights_only=False)
    RAN_AUTHORS_CODE.clear()

    read = read_published(path)
    assert RAN_AUTHORS_CODE == []  # their classes were never instantiated
    assert set(read) == set(state)
    for name, tensor in state.items():
        assert torch.equal(read[name], tensor), name
    out = export_published(path, tmp_path / "resnet26_imagenet.pt")
    converted = load_rebuffi_state(out)  # weights_only=True, as the config's `weights`
    assert torch.equal(converted["blocks.7.bn2.bias"], state["layer2.3.conv2.1.bns.0.bias"])
    network = build_model("resnet26", 7, weights=str(out)).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(network.features(x), published_features(state, x))


def test_a_published_checkpoint_without_the_plain_network_is_refused(tmp_path, monkeypatch):
    state = published_state(classes=3)
    state["layer1.0.conv1.bns.0.0.conv.1.weight"] = torch.zeros(64, 64, 1, 1)
    authors, net = published_network(state)
    monkeypatch.setitem(sys.modules, "models", authors)
    path = tmp_path / "adapters.t7"
    save_as_python2({"net": net}, path)
    with pytest.raises(ValueError, match="series adapters"):
        read_published(path)
    save_as_python2({"acc": 1.0}, path)
    with pytest.raises(ValueError, match="no 'net'"):
        read_published(path)
