"""TLVFC's and DPIAT's transfer toolkit and the TLVFC method, on small hand-built nets."""

from __future__ import annotations

import pytest
import torch
import torchvision
from pydantic import ValidationError
from torch import nn

from tlrepro import storage
from tlrepro.config.load import load_config
from tlrepro.methods.base import MethodContext
from tlrepro.methods.tlvfc import TLVFC
from tlrepro.methods.tlvfc_settings import DPIATSettings, HeInitSettings, TLVFCSettings
from tlrepro.models.base import BlockClassifier, Classifier
from tlrepro.models.registry import build_model, model_spec
from tlrepro.models.small import SmallVGG, small_resnet_deep
from tlrepro.models.torchvision_nets import TorchvisionVGG, resnet18
from tlrepro.plan.layout import REPO_ROOT
from tlrepro.plan.runs import build_plan
from tlrepro.transfer.layer_transfer import (
    SELECTIONS,
    pick_indices,
    rank_positions,
    resize_kernel,
    variance_transfer,
)
from tlrepro.transfer.match import dp_match, index_match, shape_score
from tlrepro.transfer.recipes import _mean_std, dpiat_transfer, tlvfc_transfer
from tlrepro.transfer.standardize import blocks, flatten

VGG16_CONVS = [f"features.{i}" for i in (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)]
# j -> round(j * 13 / 20) (half to even), worked out by hand: 6.5 -> 6 at j = 10.
RESNET18_PAIRING = {
    "conv1": 0,
    "layer1.0.conv1": 1,
    "layer1.0.conv2": 1,
    "layer1.1.conv1": 2,
    "layer1.1.conv2": 3,
    "layer2.0.conv1": 3,
    "layer2.0.conv2": 4,
    "layer2.0.downsample.0": 5,
    "layer2.1.conv1": 5,
    "layer2.1.conv2": 6,
    "layer3.0.conv1": 6,
    "layer3.0.conv2": 7,
    "layer3.0.downsample.0": 8,
    "layer3.1.conv1": 8,
    "layer3.1.conv2": 9,
    "layer4.0.conv1": 10,
    "layer4.0.conv2": 10,
    "layer4.0.downsample.0": 11,
    "layer4.1.conv1": 12,
    "layer4.1.conv2": 12,
}


def test_index_matching_pairs_vgg16_with_resnet18_as_documented():
    with torch.device("meta"):  # names and order only: no 138M random weights
        source = flatten(torchvision.models.vgg16(), (nn.Conv2d,))
        target = flatten(torchvision.models.resnet18(), (nn.Conv2d,))
    assert [name for name, _ in source] == VGG16_CONVS
    assert [name for name, _ in target] == list(RESNET18_PAIRING)
    assert index_match(len(source), len(target)) == list(RESNET18_PAIRING.values())
    assert index_match(3, 1) == [0] and index_match(2, 5) == [0, 0, 1, 1, 1]
    with pytest.raises(ValueError, match="layers on both sides"):
        index_match(0, 3)


def test_kernel_padding_and_pooling_keep_the_source_values():
    kernel = torch.randn(2, 3, 3, 3)
    padded = resize_kernel(kernel, (7, 7))
    assert torch.equal(padded[:, :, 2:5, 2:5], kernel)
    padded[:, :, 2:5, 2:5] = 0
    assert not padded.any()  # the border is zero
    odd = resize_kernel(kernel, (4, 4))
    assert torch.equal(odd[:, :, :3, :3], kernel) and odd[:, :, 3].abs().sum() == 0
    # float32 tolerances (an unseeded kernel can put a mean near 0, where allclose's atol
    # of 1e-8 failed on summation order)
    torch.testing.assert_close(resize_kernel(kernel, (1, 1))[..., 0, 0], kernel.mean(dim=(2, 3)))
    big = torch.randn(2, 3, 5, 5)
    pooled = resize_kernel(big, (3, 3))
    assert pooled.shape == (2, 3, 3, 3)
    torch.testing.assert_close(pooled[:, :, 0, 0], big[:, :, :3, :3].mean(dim=(2, 3)))
    torch.testing.assert_close(pooled[:, :, 2, 1], big[:, :, 2:5, 1:4].mean(dim=(2, 3)))
    # Same channel counts: the transferred kernel sits in the centre, in source order.
    new, written = variance_transfer(kernel, torch.randn(2, 3, 7, 7))
    assert torch.equal(new[:, :, 2:5, 2:5], kernel) and bool(written.all())


@pytest.mark.parametrize("mode", SELECTIONS)
def test_selection_modes_pick_distinct_indices_of_the_right_ranks(mode):
    generator = torch.Generator().manual_seed(0)
    for length in (1, 2, 5, 8, 13):
        rank = torch.randperm(length, generator=generator)
        variances = rank.float() * 0.5 + 1.0  # index i has variance rank rank[i]
        for n in range(1, length + 1):
            chosen = pick_indices(variances, n, mode, generator)
            assert len(chosen) == n and len(set(chosen.tolist())) == n
            assert chosen.min() >= 0 and chosen.max() < length
            assert torch.equal(chosen, chosen.sort().values)
            if mode == "random":
                continue
            ranks = set(rank[chosen].tolist())
            low = n // 2
            step = length // n
            assert (
                ranks
                == {
                    "maxVar": set(range(length - n, length)),
                    "minVar": set(range(n)),
                    "twoTailed": set(range(low)) | set(range(length - (n - low), length)),
                    "interLeaved": {(k + 1) * step - 1 for k in range(n)},
                }[mode]
            )
    # Row-wise selection, as for the input slices of every kept filter.
    rows = pick_indices(torch.randn(4, 9), 3, mode, generator)
    assert rows.shape == (4, 3)
    with pytest.raises(ValueError):
        pick_indices(torch.randn(3), 4, mode)


def test_random_selection_can_pick_the_last_index():
    generator = torch.Generator().manual_seed(0)
    picks = {int(pick_indices(torch.zeros(3), 1, "random", generator)) for _ in range(60)}
    assert picks == {0, 1, 2}  # the release's randint(0, len - 1) never returns 2
    assert rank_positions(4, 4, "interLeaved").tolist() == [0, 1, 2, 3]


class Source(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 8, 3)
        self.bn = nn.BatchNorm2d(8)
        self.b = nn.Conv2d(8, 6, 5)
        self.c = nn.Conv2d(6, 4, 3)
        self.fc = nn.Linear(4, 10)


class Target(nn.Module):
    """Every case: fewer/more filters, fewer/more inputs, smaller/larger kernels."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 5, 7)
        self.bn = nn.BatchNorm2d(5)
        self.b = nn.Conv2d(5, 12, 3)
        self.c = nn.Conv2d(12, 2, 1)
        self.d = nn.Conv2d(2, 9, 3)
        self.fc = nn.Linear(9, 7)


def _randomised(module: nn.Module) -> nn.Module:
    with torch.no_grad():
        for p in module.parameters():
            p.normal_()
    return module


@pytest.mark.parametrize("recipe", ["tlvfc", "dpiat"])
def test_transferred_tensors_keep_shapes_and_the_reported_fractions(recipe):
    torch.manual_seed(0)
    source, target = _randomised(Source()), _randomised(Target())
    before = {k: v.clone() for k, v in target.state_dict().items()}
    if recipe == "tlvfc":
        report = tlvfc_transfer(source, target, "maxVar", "minVar")
    else:
        report = dpiat_transfer(source, target)
    after = target.state_dict()
    assert {k: v.shape for k, v in after.items()} == {k: v.shape for k, v in before.items()}
    changed_total = 0
    for record in report.layers:
        keys = ["weight"] if recipe == "tlvfc" else ["weight", "bias"]
        keys = [f"{record.target}.{k}" for k in keys if f"{record.target}.{k}" in after]
        changed = sum(int((after[k] != before[k]).sum()) for k in keys)
        total = sum(after[k].numel() for k in keys)
        if record.kind == "copy":
            assert record.fraction == pytest.approx(changed / total)
            changed_total += changed
        assert list(after[f"{record.target}.weight"].shape) == record.target_shape
    assert report.from_source == changed_total > 0
    n_params = sum(p.numel() for p in target.parameters())
    assert report.fraction == pytest.approx(changed_total / n_params)
    if recipe == "tlvfc":
        assert [(r.target, r.source) for r in report.layers] == [
            ("a", "a"),
            ("b", "b"),
            ("c", "c"),  # round(2 * 3 / 4) = round(1.5) = 2
            ("d", "c"),
            ("fc", "linear statistics"),
        ]
        assert torch.equal(after["fc.bias"], torch.zeros(7))
        weight = source.fc.weight
        assert _mean_std(weight) == pytest.approx((weight.mean().item(), weight.std().item()))


def test_linear_statistics_are_accumulated_in_float64():
    """A 10M-weight linear layer (VGG16's first has 102.8M): float32 sums leave its std
    about 3e-4 low (1 % at 10^8); the float64 ones agree with a float64 reference."""
    weight = torch.randn(2500, 4000, generator=torch.Generator().manual_seed(0)) * 0.01
    mean, std = _mean_std(weight)
    reference = weight.double()
    assert mean == pytest.approx(reference.mean().item(), rel=1e-9, abs=1e-15)
    assert std == pytest.approx(reference.std().item(), rel=1e-9)


def test_variance_transfer_grows_into_the_chosen_target_filters():
    source = torch.randn(2, 2, 3, 3)
    target = torch.randn(4, 3, 3, 3)
    new, written = variance_transfer(source, target, "maxVar", "maxVar")
    filter_var = target.reshape(4, -1).var(dim=1, correction=0)
    rows = filter_var.argsort()[-2:].sort().values
    assert written[:, 0].nonzero().flatten().tolist() == rows.tolist()
    for src_row, row in enumerate(rows.tolist()):
        slice_var = target[row].reshape(3, -1).var(dim=1, correction=0)
        cols = slice_var.argsort()[-2:].sort().values
        assert torch.equal(new[row, cols], source[src_row])
    untouched = ~written
    assert torch.equal(new[untouched], target[untouched])


def test_dpiat_shape_score_and_matching_on_hand_built_nets():
    assert shape_score(nn.Conv2d(3, 8, 3), nn.Conv2d(3, 16, 3)) == 0.5
    assert shape_score(nn.Conv2d(3, 8, 3), nn.Conv2d(6, 16, 3)) == 0.25
    assert shape_score(nn.Conv2d(4, 4, 1), nn.Linear(4, 4)) == 0.0
    source = nn.Sequential(
        nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.Conv2d(8, 16, 3), nn.BatchNorm2d(16),
        nn.Flatten(), nn.Linear(16, 10),
    )  # fmt: skip
    target = nn.Sequential(
        nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.Conv2d(8, 16, 3), nn.BatchNorm2d(16),
        nn.Conv2d(16, 16, 3), nn.BatchNorm2d(16), nn.Flatten(), nn.Linear(16, 10),
    )  # fmt: skip
    names = {id(m): n for n, m in source.named_modules()}
    pairs = [(names.get(id(s)), t) for s, t in dp_match(blocks(source), blocks(target))]
    # 1 + 1 + 1 + 1 for the aligned prefix, then source BN 3 feeding the run
    # [BN 3, conv 4, BN 5] scores (1 + 0 + 1) / sqrt(3) > 1: conv 4 is left alone.
    assert pairs == [
        ("0", target[0]), ("1", target[1]), ("2", target[2]), ("3", target[3]),
        (None, target[4]), ("3", target[5]), ("5", target[7]),
    ]  # fmt: skip


def test_dpiat_keeps_layers_without_weights_in_the_runs():
    """iatransfer's own example: the ReLU between the target convs is an item scoring 0, so
    the run [conv, ReLU, conv] would score (0.5 + 0 + 1) / sqrt(3) < 1 and only the second
    conv, the exact match, is fed (without the ReLU the run [conv, conv] scores 1.0607)."""
    source = nn.Sequential(nn.Conv2d(8, 16, 3))
    target = nn.Sequential(nn.Conv2d(8, 8, 3), nn.ReLU(), nn.Conv2d(8, 16, 3))
    assert [type(x).__name__ for x in blocks(target)] == ["Conv2d", "ReLU", "Conv2d"]
    assert dp_match(blocks(source), blocks(target)) == [(None, target[0]), (source[0], target[2])]
    report = dpiat_transfer(source, target)
    assert [(r.target, r.source) for r in report.layers] == [("0", None), ("2", "0")]
    assert torch.equal(target[2].weight, source[0].weight)


def test_block_standardization_groups_residual_blocks():
    vgg, resnet = blocks(SmallVGG(10)), blocks(small_resnet_deep(10))
    # Each conv-BN-ReLU joins the body; ReLU, pooling and flatten stay as items.
    assert [type(x).__name__ if not isinstance(x, list) else len(x) for x in vgg] == [23, "Linear"]
    shape = [type(x).__name__ if not isinstance(x, list) else len(x) for x in resnet]
    assert shape == [
        "Conv2d", "BatchNorm2d", "ReLU", 7, 7, 8, 7, 8, 7, "AdaptiveAvgPool2d", "Flatten", "Linear",
    ]  # fmt: skip
    # The VGG body feeds the residual blocks; the stem conv has no list to match.
    pairs = dp_match(vgg, resnet)
    assert pairs[0][0] is None and sum(s is not None for s, _ in pairs) > 20


def _method(p: float, transfer: str = "tlvfc") -> tuple[TLVFC, nn.Module]:
    torch.manual_seed(0)
    source = SmallVGG(10)
    settings = TLVFCSettings(transfer=transfer, crossover_p=p)
    context = MethodContext(small_resnet_deep(10), ("target",), settings, source_model=source)
    return TLVFC(context), source


def test_crossover_only_in_training_and_no_gradient_to_the_support_net(tmp_path):
    method, source = _method(0.5)
    x, y = torch.randn(6, 3, 32, 32), torch.randint(0, 10, (6,))
    method.eval()
    assert torch.equal(method.crossed_features(x), method.network.features(x))
    assert torch.equal(method.predict(x), method.network(x))
    stats_before = {k: v.clone() for k, v in source.state_dict().items()}
    method.train()
    torch.manual_seed(1)
    crossed = method.crossed_features(x)
    plain = method.network.features(x)
    with torch.no_grad():
        support = source.pooled_features(x)
    swapped = (crossed != plain).any(dim=0)
    assert swapped.any() and torch.equal(
        crossed[:, swapped], support[:, : plain.shape[1]][:, swapped]
    )
    method.update({"target": (x, y)}, 0)
    assert all(p.grad is None for p in source.parameters())
    assert all(p.grad is not None for p in method.network.parameters())
    assert not any(p is q for p in method.parameters() for q in source.parameters())
    assert not source.training  # its BatchNorm keeps its statistics
    assert all(torch.equal(v, stats_before[k]) for k, v in source.state_dict().items())
    assert method.export(tmp_path)["transferred_fraction"] > 0
    assert (tmp_path / "transfer_report.json").exists()


def test_variants_and_bad_settings(tmp_path):
    no_cross, _ = _method(0.0)
    assert no_cross._support == () and no_cross.export(tmp_path)["transferred_fraction"] > 0
    report = storage.read_json(tmp_path / "transfer_report.json")
    assert report["fraction"] == no_cross.export(tmp_path)["transferred_fraction"]
    he, _ = _method(0.0, transfer="none")
    assert he.export(tmp_path / "he") == {}
    with pytest.raises(ValidationError, match="transfer\n  Input should be 'none', 'tlvfc'"):
        _method(0.0, transfer="copy")
    with pytest.raises(ValidationError, match="crossover_p\n  Input should be less than 1"):
        _method(1)
    with pytest.raises(ValueError, match="need the source network"):
        TLVFC(MethodContext(small_resnet_deep(10), ("target",), DPIATSettings()))


def test_the_settings_offer_exactly_the_toolkit_selection_modes():
    from typing import get_args, get_type_hints

    hints = get_type_hints(TLVFCSettings)
    assert get_args(hints["keep"]) == get_args(hints["overwrite"]) == SELECTIONS
    with pytest.raises(ValidationError, match="keep\n  Input should be 'maxVar', 'minVar'"):
        TLVFCSettings.model_validate({"keep": "maxvar"})
    # he_init and dpiat record no selection rules; they use TLVFC's defaults.
    assert HeInitSettings().record() == {"transfer": "none", "crossover_p": 0.0}
    assert (HeInitSettings.keep, HeInitSettings.overwrite) == (
        TLVFCSettings().keep,
        TLVFCSettings().overwrite,
    )


LAST_CONV_STAGE = {
    TorchvisionVGG: lambda net: net.body.features,  # conv5 and its max-pool
    BlockClassifier: lambda net: net.final,  # Lite0's conv_head and its BN + activation
}
"""Where each kind of source network's last convolutional stage ends, read by hand."""


def _crossover_sources() -> set[tuple[str, bool]]:
    """(source model, whether it is a model-zoo entry) of every TLVFC run with crossover in
    every profile: the networks whose features the crossover reads."""
    sources = set()
    for profile in ("quick", "paper", "rehearsal"):
        config = load_config(REPO_ROOT / "config" / "config.yaml", profile)
        for run in build_plan(config).runs:
            if run.method == "tlvfc" and run.settings.crossover_p > 0:
                zoo = run.zoo_source_model
                sources.add((zoo or run.pretrain.model, zoo is not None))
    return sources


def _offline(name: str, zoo: bool) -> Classifier:
    """The source network with random weights where published ones would be downloaded."""
    options = {"download": False} if "download" in model_spec(name).options else {}
    return build_model(name, None if zoo else 10, **options).eval()


@pytest.mark.parametrize("name, zoo", sorted(_crossover_sources()))
def test_crossover_reads_the_sources_globally_pooled_last_conv_stage(name, zoo):
    """As the release's support VGG (avgpool made AdaptiveAvgPool2d(1), no classifier):
    512 pooled conv5 values for VGG, never its 4096-d fc7 output."""
    torch.manual_seed(0)
    net = _offline(name, zoo)
    kind = next((k for k in LAST_CONV_STAGE if isinstance(net, k)), None)
    assert kind is not None, f"{name}: say in LAST_CONV_STAGE where its last conv stage ends"
    stage = LAST_CONV_STAGE[kind](net)
    maps: list[torch.Tensor] = []
    hook = stage.register_forward_hook(lambda module, args, out: maps.append(out))
    x = torch.randn(2, 3, 64, 64)  # 64 px: a 2x2 conv5 map, whose mean is no copy
    with torch.no_grad():
        pooled = net.pooled_features(x)
    hook.remove()
    assert maps[-1].shape[-1] > 1
    assert pooled.shape == (2, maps[-1].shape[1])
    assert torch.allclose(pooled, maps[-1].mean(dim=(2, 3)), atol=1e-5)
    if isinstance(net, TorchvisionVGG):
        assert pooled.shape[1] == 512 and net.feature_dim == 4096


def test_crossover_sources_are_the_releases_vgg16_and_vgg19():
    """The ResNet-18 table from VGG16 (the README's, before commit 33c3e0e), the depth table
    from VGG19 (33c3e0e made the target selectable and the source and support net VGG19), so
    the pooled-feature test above covers both."""
    sources = _crossover_sources()
    assert {("vgg16_imagenet", True), ("vgg19_imagenet", True)} <= sources
    plan = build_plan(load_config(REPO_ROOT / "config" / "config.yaml", "paper"))
    by_group: dict[str, set[str]] = {}
    for run in plan.runs:
        if run.group.startswith("tlvfc_") and run.zoo_source_model is not None:
            by_group.setdefault(run.group, set()).add(run.zoo_source_model)
    assert by_group.pop("tlvfc_resnet18") == {"vgg16_imagenet"}
    assert sorted(by_group) == [f"tlvfc_depth_resnet{n}" for n in (101, 152, 34, 50)]
    assert all(models == {"vgg19_imagenet"} for models in by_group.values())


def test_vgg19_zoo_entry_is_torchvisions_imagenet_vgg19(monkeypatch):
    """`vgg19_imagenet` asks torchvision for VGG19's IMAGENET1K_V1 weights (none offline), and
    keeps the 1000-way head for a zoo source; its 16 convs feed TLVFC's index matching."""
    asked, real_vgg19 = [], torchvision.models.vgg19

    def fake_vgg19(weights=None):
        asked.append(weights)
        return real_vgg19(weights=None)

    monkeypatch.setattr(torchvision.models, "vgg19", fake_vgg19)
    net = build_model("vgg19_imagenet", None, download=False)
    build_model("vgg19_imagenet", None)
    assert asked == [None, "IMAGENET1K_V1"]
    assert model_spec("vgg19_imagenet").options == ("download",)
    assert isinstance(net, TorchvisionVGG) and net.head.out_features == 1000
    assert len(flatten(net, (nn.Conv2d,))) == 16


def test_crossover_mixes_vggs_pooled_conv5_into_a_resnet():
    torch.manual_seed(0)
    source = TorchvisionVGG("vgg11", 10, download=False)
    context = MethodContext(
        resnet18(10, download=False),
        ("target",),
        TLVFCSettings(crossover_p=0.5),
        source_model=source,
    )
    method = TLVFC(context).train()
    x = torch.randn(3, 3, 32, 32)
    crossed = method.crossed_features(x)
    plain = method.network.features(x)
    with torch.no_grad():
        support = source.pooled_features(x)
    swapped = (crossed != plain).any(dim=0)
    assert crossed.shape == plain.shape == support.shape == (3, 512)
    assert swapped.any() and torch.equal(crossed[:, swapped], support[:, swapped])
