"""SpotTune, MultiTune, the linear probe and the ResNet-26 they share (hand-built tiny nets)."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from pydantic import ValidationError
from torch import nn

from tlrepro.methods.base import MethodContext
from tlrepro.methods.erm import ERM
from tlrepro.methods.erm_settings import LinearProbeSettings
from tlrepro.methods.multitune import MultiTune, reinitialise
from tlrepro.methods.multitune_settings import Branch, MultiTuneSettings
from tlrepro.methods.registry import method_spec
from tlrepro.methods.spottune import SpotTune, budget_loss
from tlrepro.methods.spottune_settings import SpotTuneSettings
from tlrepro.models.resnet26 import ResidualBranch, ResNet26
from tlrepro.models.small import SmallVGG
from tlrepro.training.trainer import TensorSet, random_crop

CLASSES = 5


def tiny_resnet26(seed: int = 0) -> ResNet26:
    """26 layers at width 4-8: the real layout, milliseconds per step."""
    torch.manual_seed(seed)
    net = ResNet26(CLASSES, widths=(4, 6, 8), stem_width=4)
    with torch.no_grad():  # non-trivial BN statistics, as a pretrained net has
        for layer in net.modules():
            if isinstance(layer, nn.BatchNorm2d):
                layer.running_mean.uniform_(-0.2, 0.2)
                layer.running_var.uniform_(0.5, 2.0)
    return net


def batch(n: int = 8, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, 16, 16, generator=generator), torch.randint(
        0, CLASSES, (n,), generator=generator
    )


def spottune(net: ResNet26 | None = None, **overrides) -> SpotTune:
    settings = SpotTuneSettings.model_validate(overrides)
    return SpotTune(MethodContext(net or tiny_resnet26(), ("target",), settings))


def sgd(method: nn.Module) -> torch.optim.Optimizer:
    groups = [{k: v for k, v in g.items() if k != "lr_scale"} for g in method.parameter_groups()]
    return torch.optim.SGD(groups, lr=0.1, momentum=0.9, weight_decay=5e-4)


def train_steps(method, steps: int = 3) -> dict[str, torch.Tensor]:
    optimizer = sgd(method)
    method.train()
    for step in range(steps):
        optimizer.zero_grad(set_to_none=True)
        stats = method.update({"target": batch(seed=step)}, step)
        optimizer.step()
    return stats


def plain(blocks: nn.ModuleList, like: ResNet26) -> ResNet26:
    """A plain ResNet-26 with `like`'s stem, final BN and head and the given blocks."""
    net = copy.deepcopy(like)
    net.blocks = copy.deepcopy(blocks)
    return net.eval()


def test_resnet26_layout():
    net = ResNet26(10)
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) + 1 == 26  # 25 convolutions and the head
    assert [b.conv1.stride[0] for b in net.blocks] == [2, 1, 1, 1] * 3
    assert net.features(torch.randn(2, 3, 64, 64)).shape == (2, 256)
    # Parameter-free shortcuts: every parameter belongs to a conv, a BN or the head.
    layers = [m for m in net.modules() if isinstance(m, nn.Conv2d | nn.BatchNorm2d)]
    counted = sum(p.numel() for m in layers for p in m.parameters())
    assert counted + sum(p.numel() for p in net.head.parameters()) == sum(
        p.numel() for p in net.parameters()
    )


def test_frozen_branch_gets_no_gradient_and_stays_bit_identical():
    method = spottune(frozen_bn="frozen")
    before = {k: v.clone() for k, v in method.network.frozen.state_dict().items()}
    tuned_before = copy.deepcopy(method.network.backbone.blocks.state_dict())
    train_steps(method)
    assert all(p.grad is None for p in method.network.frozen.parameters())
    after = method.network.frozen.state_dict()
    for key, value in before.items():  # weights and BN running statistics alike
        assert torch.equal(value, after[key]), key
    moved = method.network.backbone.blocks.state_dict()
    assert any(not torch.equal(tuned_before[k], moved[k]) for k in tuned_before)


def test_release_frozen_branch_trains_only_its_batch_norm():
    """The release's frozen copies: convolutions fixed, batch-norm affine parameters trained,
    running statistics updated in training mode."""
    method = spottune()
    assert method.settings.frozen_bn == "release"
    frozen = method.network.frozen
    before = {k: v.clone() for k, v in frozen.state_dict().items()}
    trained = {id(p) for group in method.parameter_groups() for p in group["params"]}
    train_steps(method)
    assert frozen[0].bn1.training and not method.eval().network.frozen[0].bn1.training
    after = frozen.state_dict()
    for name, layer in frozen.named_modules():
        if isinstance(layer, nn.Conv2d):
            assert layer.weight.grad is None and id(layer.weight) not in trained
            assert torch.equal(before[f"{name}.weight"], after[f"{name}.weight"]), name
        elif isinstance(layer, nn.BatchNorm2d):
            assert {id(layer.weight), id(layer.bias)} <= trained
            for key in ("weight", "bias", "running_mean", "running_var"):
                assert not torch.equal(before[f"{name}.{key}"], after[f"{name}.{key}"]), name


def test_policy_sees_the_images_as_the_stem_does():
    """A stem that standardises each image (the narrow ResNet-26) makes the policy do so too:
    both are then blind to an image's brightness and contrast."""
    torch.manual_seed(0)
    net = ResNet26(CLASSES, widths=(4, 6, 8), stem_width=4, standardize_input=True)
    policy = spottune(net).network.policy.eval()
    assert policy.standardize_input and not spottune().network.policy.standardize_input
    x = batch()[0]
    torch.testing.assert_close(policy(3 * x + 1), policy(x))


def test_policy_gets_gradient_through_straight_through_estimator():
    method = spottune()
    method.train()
    # Before the tuned copies move, both copies of a block (in training mode, as released)
    # compute the same function: the routing cannot matter, its gradient is exactly zero.
    method.update({"target": batch()}, 0)
    assert all(not p.grad.any() for p in method.network.policy.parameters())
    method.zero_grad(set_to_none=True)
    with torch.no_grad():
        for p in method.network.backbone.blocks.parameters():
            p.add_(0.05 * torch.randn_like(p))
    method.update({"target": batch()}, 1)
    grads = [p.grad for p in method.network.policy.parameters()]
    assert all(g is not None for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0
    # The training routing is hard (0/1): the gradient can only come from straight-through.
    _, actions = method.network.route(batch()[0])
    assert set(actions.unique().tolist()) <= {0.0, 1.0}


def test_test_time_routing_is_deterministic_argmax():
    method = spottune()
    method.eval()
    x = batch()[0]
    torch.manual_seed(0)
    first = method.predict(x)
    actions = method.network.actions(x)
    torch.manual_seed(123)
    assert torch.equal(first, method.predict(x))
    logits = method.network.policy(x).view(len(x), -1, 2)
    assert torch.equal(actions, logits.argmax(-1).float())
    # In training the same images are routed by sampling: it varies with the noise.
    method.train()
    samples = {tuple(method.network.actions(x).flatten().tolist()) for _ in range(5)}
    assert len(samples) > 1


def test_forced_routing_equals_plain_resnet26():
    net = tiny_resnet26()
    pretrained = copy.deepcopy(net)
    method = spottune(net)
    with torch.no_grad():  # make the tuned copies differ from the frozen ones
        for p in method.network.backbone.blocks.parameters():
            p.add_(0.05 * torch.randn_like(p))
    method.eval()
    x = batch()[0]
    n, blocks = len(x), method.network.num_blocks
    head = method.network.head
    all_frozen = head(method.network.route(x, torch.zeros(n, blocks))[0])
    all_tuned = head(method.network.route(x, torch.ones(n, blocks))[0])
    reference = method.network.backbone
    with torch.no_grad():
        torch.testing.assert_close(all_frozen, plain(pretrained.blocks, reference)(x))
        torch.testing.assert_close(all_tuned, plain(reference.blocks, reference)(x))
    assert not torch.allclose(all_frozen, all_tuned)


def test_usage_statistics_are_per_block_fractions():
    method = spottune()
    stats = train_steps(method, steps=1)
    usage = torch.stack([stats[f"usage_block{i}"] for i in range(12)])
    assert method.extra_stats == tuple(f"usage_block{i}" for i in range(12))
    assert ((usage >= 0) & (usage <= 1)).all()
    assert torch.all(usage * 8 == (usage * 8).round())  # a fraction of the 8 images


def test_spottune_rejects_other_architectures():
    with pytest.raises(TypeError, match="network of blocks"):
        SpotTune(MethodContext(SmallVGG(CLASSES), ("target",), SpotTuneSettings()))


def test_spottune_global_routes_every_image_alike_whatever_the_input():
    method = spottune(policy="global")
    policy = method.network.policy
    assert [p.shape for p in policy.parameters()] == [torch.Size([24])]  # 2 logits per block
    x, other = batch(seed=1)[0], 10 * batch(seed=2)[0]
    method.train()
    torch.manual_seed(5)
    sampled = method.network.actions(x)
    torch.manual_seed(5)
    assert torch.equal(sampled, method.network.actions(other))  # the input is not looked at
    assert torch.equal(sampled, sampled[:1].expand_as(sampled))  # one sample for the batch
    with torch.no_grad():
        policy.logits.copy_(torch.randn(24))
    method.eval()
    actions = method.network.actions(x)
    expected = (policy.logits.view(12, 2).argmax(-1) == 1).float()
    assert torch.equal(actions, expected.expand(len(x), -1))
    assert torch.equal(actions, method.network.actions(other))
    # Training moves the logits (straight-through gradient) and reports the usage.
    before = policy.logits.detach().clone()
    stats = train_steps(method, steps=2)
    assert not torch.equal(before, policy.logits.detach())
    usage = torch.stack([stats[f"usage_block{i}"] for i in range(12)])
    assert set(usage.tolist()) <= {0.0, 1.0}  # all the batch's images, or none


def test_budget_loss_is_squared_distance_to_k_blocks():
    actions = torch.tensor([[1.0, 0.0, 1.0, 1.0], [1.0, 0.0, 0.0, 1.0]])  # usage 1, 0, .5, 1
    assert float(budget_loss(actions, 1)) == pytest.approx((2.5 - 1) ** 2)
    assert float(budget_loss(actions, 4)) == pytest.approx((2.5 - 4) ** 2)
    grads, losses = [], []
    for budget in (None, 3):
        method = spottune(policy="global", budget_blocks=budget, budget_weight=0.5).train()
        torch.manual_seed(7)  # the same Gumbel sample for both
        stats = method.update({"target": batch()}, 0)
        grads.append(method.network.policy.logits.grad.clone())
        losses.append(float(stats["loss"]))
    assert method.extra_stats[-1] == "budget_loss"
    used = sum(float(stats[f"usage_block{i}"]) for i in range(12))
    assert float(stats["budget_loss"]) == pytest.approx((used - 3) ** 2)
    assert losses[0] == losses[1]  # the logged loss stays the cross-entropy
    assert not torch.allclose(grads[0], grads[1])  # the budget reaches the policy


def test_budget_loss_pulls_the_global_policy_towards_k_blocks():
    """Trained on the budget loss alone, the expected number of fine-tuned blocks moves from
    12 (logits favouring the tuned path) to k."""
    method = spottune(policy="global", budget_blocks=3)
    logits = method.network.policy.logits
    with torch.no_grad():
        logits.copy_(torch.tensor([-1.0, 1.0] * 12))
    optimizer = torch.optim.SGD([logits], lr=0.05)
    x = batch()[0]
    method.train()
    torch.manual_seed(0)

    def expected_blocks() -> float:
        return float(torch.softmax(logits.detach().view(12, 2), -1)[:, 1].sum())

    start = expected_blocks()
    for _ in range(200):
        optimizer.zero_grad()
        budget_loss(method.network.actions(x), 3).backward()
        optimizer.step()
    assert start > 10 and abs(expected_blocks() - 3) < 1.5


def test_spottune_checks_its_policy_and_budget():
    assert method_spec("spottune").settings is SpotTuneSettings
    assert SpotTuneSettings().policy == "per_image"
    with pytest.raises(ValidationError, match="policy\n  Input should be 'per_image' or 'global'"):
        SpotTuneSettings.model_validate({"policy": "blockwise"})
    for bad in (-1, 2.5, True, "6"):  # checked with the settings, when the config is loaded
        with pytest.raises(ValidationError, match="budget_blocks"):
            SpotTuneSettings.model_validate({"budget_blocks": bad})
    with pytest.raises(ValueError, match="budget_blocks is 13, more than the network's 12"):
        spottune(budget_blocks=13)  # depends on the network: checked when the method is built
    with pytest.raises(ValidationError, match="budget_weight"):
        SpotTuneSettings(budget_blocks=3, budget_weight=-1.0)


def test_policy_has_its_own_lr_and_weight_decay():
    groups = spottune().parameter_groups()
    policy = groups[1]
    assert policy["lr_scale"] == 0.1 and policy["weight_decay"] == 0.001
    assert len(policy["params"]) == len(list(spottune().network.policy.parameters()))


def test_linear_probe_trains_the_head_only():
    net = tiny_resnet26()
    method = ERM(MethodContext(net, ("target",), LinearProbeSettings()))
    body = {k: v.clone() for k, v in net.state_dict().items() if not k.startswith("head.")}
    head = net.head.weight.clone()
    train_steps(method)
    state = net.state_dict()
    assert all(torch.equal(value, state[key]) for key, value in body.items())
    assert not torch.equal(head, net.head.weight)


def multitune(net: ResNet26 | None = None, **overrides) -> MultiTune:
    settings = MultiTuneSettings.model_validate(overrides)
    return MultiTune(MethodContext(net or tiny_resnet26(), ("target",), settings))


def test_multitune_branches_differ_in_the_named_settings():
    pretrained = tiny_resnet26()
    method = multitune(copy.deepcopy(pretrained))
    finetune, l2sp_reinit = method.branch_settings
    assert finetune == Branch(name="finetune", lr_scale=1.0, l2sp=0.0, reinit_blocks=0)
    assert (l2sp_reinit.l2sp, l2sp_reinit.reinit_blocks) == (0.01, 1)
    plain_branch, special = method.network.branches
    reference = pretrained.state_dict()
    # Branch 0 starts exactly at the pretrained weights; branch 1 too, except its last block.
    for name, value in plain_branch.state_dict().items():
        assert torch.equal(value, reference[name]), name
    changed = {k for k, v in special.state_dict().items() if not torch.equal(v, reference[k])}
    assert {"blocks.11.conv1.weight", "blocks.11.conv2.weight"} <= changed
    assert all(name.startswith("blocks.11.") for name in changed)
    # Learning rates and weight decay per group, as named: per branch its conv weights, its
    # batch norm, its re-initialised block; then the integration layer.
    groups = method.parameter_groups()
    assert [g.get("lr_scale", 1.0) for g in groups] == [1.0, 1.0, 0.1, 0.1, 1.0, 1.0]
    assert [g.get("weight_decay") for g in groups] == [None, None, 0.0, None, None, None]
    assert len(groups[4]["params"]) == len(list(special.blocks[11].parameters()))
    convs = [m.weight for m in special.modules() if isinstance(m, nn.Conv2d)]
    assert {id(p) for p in groups[2]["params"]} == {id(p) for p in convs[:-2]}


def test_multitune_reinitialises_blocks_as_the_release():
    """He-normal convolutions (fan-out), batch norm gamma = 1, beta = 0, statistics kept."""
    torch.manual_seed(0)
    block = ResidualBranch(128, 128, 1)
    with torch.no_grad():
        for layer in (block.bn1, block.bn2):
            for tensor in (layer.weight, layer.bias, layer.running_mean):
                tensor.uniform_(0.5, 1.5)
    statistics = {k: v.clone() for k, v in block.state_dict().items() if "running" in k}
    reinitialise(block)
    expected = math.sqrt(2 / (3 * 3 * 128))
    for conv in (block.conv1, block.conv2):
        weight = conv.weight.detach()
        assert float(weight.std()) == pytest.approx(expected, rel=0.01)
        assert abs(float(weight.mean())) < 0.01 * expected
    for layer in (block.bn1, block.bn2):
        assert torch.equal(layer.weight, torch.ones(128))
        assert torch.equal(layer.bias, torch.zeros(128))
    state = block.state_dict()
    assert all(torch.equal(value, state[key]) for key, value in statistics.items())


def test_multitune_l2sp_pulls_only_its_branch_towards_the_pretrained_weights():
    method = multitune()
    assert float(method.add_l2sp_gradient()) == 0.0
    method.zero_grad(set_to_none=True)
    with torch.no_grad():
        for branch in method.network.branches:
            for p in branch.parameters():
                p.add_(0.1)
    plain_branch, special = method.network.branches
    split = method.splits[1]
    penalty = method.add_l2sp_gradient()
    torch.testing.assert_close(
        penalty, torch.tensor(0.5 * 0.01 * 0.01 * sum(p.numel() for p in split.anchored))
    )
    assert all(p.grad is None for p in plain_branch.parameters())
    stem = special.stem[0].weight
    torch.testing.assert_close(stem.grad, 0.01 * (stem - method.anchor.stem[0].weight))
    # Conv weights only: batch norm (and biases, which ResNet-26 has nowhere else) get none.
    assert special.stem[1].weight.grad is None and special.stem[1].bias.grad is None
    assert all(p.grad is None for p in split.other) and len(split.other) > 0
    assert special.blocks[11].conv1.weight.grad is None  # re-initialised: no anchor
    assert {id(p) for p in split.fresh} == {id(p) for p in special.blocks[11].parameters()}


def test_multitune_trains_and_checks_its_settings():
    stats = train_steps(multitune(), steps=2)
    assert torch.isfinite(stats["loss"]) and float(stats["l2sp"]) > 0
    good = {"name": "a", "lr_scale": 1, "l2sp": 0.0, "reinit_blocks": 0}  # an int for a float
    assert MultiTuneSettings.model_validate({"branches": [good, good]}).record() == {
        "branches": [good, good]
    }
    with pytest.raises(ValidationError, match="at least two"):
        multitune(branches=[good])
    with pytest.raises(ValidationError, match=r"branches\.0\.lr_scale\n  Field required"):
        multitune(branches=[{"name": "a"}, {"name": "b"}])
    with pytest.raises(ValidationError, match=r"branches\.1\n  unknown key 'lr'"):
        multitune(branches=[{**good, "name": "b"}, {**good, "lr": 0.1}])
    with pytest.raises(ValidationError, match=r"branches\.1\.l2sp\n  Input should be greater"):
        multitune(branches=[good, {**good, "l2sp": -0.1}])
    with pytest.raises(ValidationError, match=r"reinit_blocks\n  Input should be a valid integer"):
        multitune(branches=[good, {**good, "reinit_blocks": True}])
    with pytest.raises(ValidationError, match=r"branches\n  Input should be a valid list"):
        multitune(branches={"name": "a"})
    bad = {"name": "a", "lr_scale": 1.0, "l2sp": 0.0, "reinit_blocks": 13}
    with pytest.raises(ValueError, match="re-initialises 13 blocks"):
        multitune(branches=[bad, bad])


def test_decathlon_crop_cuts_windows_of_eight_ninths():
    images = torch.arange(2 * 3 * 72 * 72).view(2, 3, 72, 72).float()
    generator = torch.Generator().manual_seed(0)
    crops = random_crop(images, 64, generator)
    assert crops.shape == (2, 3, 64, 64)
    for image, crop in zip(images, crops, strict=True):
        top = int((crop[0, 0, 0] - image[0, 0, 0]) // 72)
        left = int((crop[0, 0, 0] - image[0, 0, 0]) % 72)
        assert torch.equal(crop, image[:, top : top + 64, left : left + 64])
    data = TensorSet.create(
        torch.zeros(4, 3, 72, 72, dtype=torch.uint8),
        torch.zeros(4, dtype=torch.long),
        [0.0] * 3,
        [1.0] * 3,
        torch.device("cpu"),
    )
    x, _ = data.batch(torch.arange(4), "decathlon_crop", generator)
    assert x.shape[-2:] == (64, 64) and data.batch(torch.arange(4))[0].shape[-2:] == (72, 72)


def test_block_usage_figure(tmp_path):
    from tlrepro.reporting.figures_blocks import last_epoch_usage, usage_bars

    runs = []
    for group, seed in (("adaptive_full", 0), ("adaptive_full", 1), ("adaptive_n5", 0)):
        run = tmp_path / group / "spottune" / "a-to-b" / f"seed{seed}"
        run.mkdir(parents=True)
        usage = ",".join(str(0.1 * (i % 10)) for i in range(12))
        header = ",".join(f"usage_block{i}" for i in range(12))
        (run / "log.csv").write_text(f"epoch,{header}\n1,{usage}\n2,{usage}\n")
        runs.append(run)
    frame = last_epoch_usage(runs)
    assert list(frame["group"]) == ["adaptive_full", "adaptive_full", "adaptive_n5"]
    assert frame["usage_block3"].tolist() == pytest.approx([0.3] * 3)
    usage_bars(runs, tmp_path / "usage.png")
    assert (tmp_path / "usage.png").stat().st_size > 0
    (runs[0] / "log.csv").write_text("epoch,train_loss\n1,0.5\n")
    with pytest.raises(ValueError, match="no usage_block"):
        last_epoch_usage(runs)


def paper_runs() -> list:
    from tlrepro.config.load import load_config
    from tlrepro.plan.runs import build_plan

    return [
        run
        for run in build_plan(load_config(profile="paper"), "paper").runs
        if run.group.startswith("adaptive") and run.seed == 0
    ]


def test_paper_profile_trains_cifar100_without_weight_decay_as_both_releases():
    """SpotTune's main.py and MultiTune's give CIFAR-100 weight decay 0, Aircraft 5e-4."""
    runs = paper_runs()
    for run in runs:
        expected = 0.0 if run.task.target == "cifar100_decathlon" else 0.0005
        assert run.training.weight_decay == expected, (run.group, run.method_key)
    assert {run.task.target for run in runs} == {"cifar100_decathlon", "fgvc_aircraft"}


def test_paper_profile_runs_multitune_under_its_own_recipe_and_spottune_under_its():
    for run in paper_runs():
        epochs = run.training.epochs
        decays = [round(m * epochs) for m in run.training.milestones]
        if run.method == "multitune":
            # batch 120, CenterCrop(72) + flip, lr x0.1 at epochs 20, 50 and 80 of 110
            assert (run.training.batch_size, run.training.augment) == (120, "flip")
            assert decays == [20, 50, 80]
        else:
            assert (run.training.batch_size, run.training.augment) == (
                128,
                "decathlon_crop",
            )
            assert decays == [40, 60, 80]


def test_paper_profile_reports_max_val_and_cuts_the_n_shot_val_split():
    runs = paper_runs()
    assert all(run.protocols == ("max_val",) for run in runs)
    for run in runs:
        assert run.target_val_per_class == run.target_train_per_class
        if run.target_val_per_class is None:
            assert "target_val_per_class" not in run.identity
        else:
            assert run.identity["target_val_per_class"] == run.target_val_per_class
    assert {run.target_val_per_class for run in runs} == {None, 5, 10, 15, 20}


def test_flip_augment_mirrors_some_images_and_moves_no_pixel_otherwise():
    from tlrepro.training.augment import random_flip

    x = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).reshape(2, 3, 4, 5).repeat(8, 1, 1, 1)
    out = random_flip(x, torch.Generator().manual_seed(0))
    same = [torch.equal(o, i) for o, i in zip(out, x, strict=True)]
    mirrored = [torch.equal(o, i.flip(-1)) for o, i in zip(out, x, strict=True)]
    assert all(s or m for s, m in zip(same, mirrored, strict=True))
    assert any(same) and any(mirrored)


def test_shorter_side_resize_crops_a_wide_image_instead_of_squashing_it():
    """The Decathlon's Resize(72) + CenterCrop(72): a 2:1 image keeps its middle half."""
    from tlrepro.data.prepare import resize_image

    image = torch.zeros(3, 50, 100, dtype=torch.uint8)
    image[0, :, :25] = 255  # red left quarter
    image[2, :, 75:] = 255  # blue right quarter
    image[1, :, 25:75] = 255  # green middle half
    cropped = resize_image(image, 72, "shorter_side_crop")
    squashed = resize_image(image, 72, "squash")
    assert cropped.shape == squashed.shape == (3, 72, 72)
    assert cropped[0].max() < 40 and cropped[2].max() < 40  # only the green middle is left
    assert cropped[1].float().mean() > 250
    assert squashed[0, :, :10].float().mean() > 250  # squashed: the red quarter is still there
    with pytest.raises(ValueError, match="unknown resize mode"):
        resize_image(image, 72, "stretch")


def test_paper_profile_prepares_aircraft_by_its_shorter_side():
    from tlrepro.config.load import load_config

    datasets = load_config(profile="paper")["profiles"]["paper"]["datasets"]
    assert datasets["fgvc_aircraft"]["resize"] == "shorter_side_crop"
    assert "resize" not in load_config(profile="quick")["profiles"]["quick"]["datasets"].get(
        "fashion_mnist", {}
    )


def test_the_n_shot_val_cut_keeps_at_most_n_per_class_seeded():
    from tlrepro.data.prepare import class_subset

    labels = torch.tensor([0] * 30 + [1] * 3 + [2] * 12)
    kept = class_subset(labels, 10, None, seed=1, at_most=True)
    assert torch.bincount(labels[kept]).tolist() == [10, 3, 10]
    assert torch.equal(kept, class_subset(labels, 10, None, seed=1, at_most=True))
    assert not torch.equal(kept, class_subset(labels, 10, None, seed=2, at_most=True))
    with pytest.raises(ValueError, match="fewer than"):
        class_subset(labels, 10, None, seed=1)  # the training subset stays strict
