"""CMKD, RST and FixMatch on CLIP: the loss against float64 hand computations, the RST
projection and checkpoint, the FixMatch mask, prompt order."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from pydantic import ValidationError

from tlrepro.config.training import Training
from tlrepro.methods.base import MethodContext
from tlrepro.methods.cmkd import (
    CMKD,
    RST_FILE,
    ClipAdaptation,
    cmkd_loss,
    fixmatch_loss,
    gini_impurity,
    load_adapted,
    load_rst,
    ramp,
)
from tlrepro.methods.cmkd_settings import CMKDSettings
from tlrepro.models.clip import ClipClassifier, tiny_clip
from tlrepro.training.trainer import TensorSet


def test_ramp_matches_the_paper_and_is_clamped():
    assert ramp(0, 10000) == 0.0
    assert ramp(5000, 10000) == pytest.approx(2 / (1 + math.exp(-0.5)) - 1, abs=1e-15)
    assert ramp(10000, 10000) == pytest.approx(2 / (1 + math.exp(-1)) - 1, abs=1e-15)
    assert ramp(50000, 10000) == ramp(10000, 10000)


def _hand_gini(p: list[list[float]], w: list[float]) -> float:
    mass = [sum(row[c] for row in p) for c in range(len(p[0]))]
    return sum(
        w_i * (1 - sum(row[c] ** 2 / mass[c] for c in range(len(row))))
        for w_i, row in zip(w, p, strict=True)
    )


def _softmax(row: list[float]) -> list[float]:
    exps = [math.exp(v) for v in row]
    return [e / sum(exps) for e in exps]


def test_cmkd_loss_terms_match_a_float64_hand_computation():
    head_t = [[2.0, 0.5, -1.0], [0.1, 0.2, 0.3], [-1.0, 1.5, 0.0], [0.0, 0.0, 3.0]]
    zs_t = [[1.0, 1.0, -2.0], [0.5, -0.5, 0.0], [-2.0, 2.5, 0.5], [1.0, 0.0, 1.0]]
    head_s = [[1.0, 0.0, 0.0], [0.0, 2.0, 1.0]]
    zs_s = [[0.2, 0.1, 0.0], [0.0, 0.5, 1.5]]
    labels = [0, 2]
    l1, l2, l3, r, smooth = 0.25, 0.1, 0.025, 0.3, 0.1
    as64 = lambda v: torch.tensor(v, dtype=torch.float64)  # noqa: E731
    terms = cmkd_loss(
        as64(head_s), as64(zs_s), torch.tensor(labels), as64(head_t), as64(zs_t),
        r, l1, l2, l3, smooth,
    )  # fmt: skip

    p_h = [_softmax(row) for row in head_t]
    p_g = [_softmax(row) for row in zs_t]
    alpha = [
        math.exp(-sum(g * (math.log(g) - math.log(h)) for g, h in zip(gr, hr, strict=True)))
        for gr, hr in zip(p_g, p_h, strict=True)
    ]
    p_m = [
        [0.5 * (h + g) for h, g in zip(hr, gr, strict=True)]
        for hr, gr in zip(p_h, p_g, strict=True)
    ]
    gi_student = _hand_gini(p_h, alpha) + _hand_gini(p_m, [1 - a for a in alpha])
    gi_teacher = _hand_gini(p_g, [1.0] * 4)

    def ce(logits: list[list[float]], smoothing: float) -> float:
        total = 0.0
        for row, y in zip(logits, labels, strict=True):
            log_p = [math.log(p) for p in _softmax(row)]
            total += -(1 - smoothing) * log_p[y] - smoothing * sum(log_p) / len(row)
        return total / len(labels)

    expected = {
        "ce_head": ce(head_s, smooth),
        "ce_zeroshot": ce(zs_s, 0.0),
        "gi_student": gi_student,
        "gi_teacher": gi_teacher,
    }
    for name, value in expected.items():
        assert terms[name].item() == pytest.approx(value, rel=1e-12), name
    total = (
        expected["ce_head"]
        + l1 * r * gi_student
        + l2 * expected["ce_zeroshot"]
        + l3 * r * gi_teacher
    )
    assert terms["loss"].item() == pytest.approx(total, rel=1e-12)


def test_detached_parts_receive_no_gradient():
    """alpha, the teacher inside p_m and the class masses are constants: with l2 = l3 = 0 the
    zero-shot logits get no gradient at all, and the GI gradient equals the one with the
    class mass and alpha frozen by hand."""
    torch.manual_seed(0)
    head_t = torch.randn(6, 4, dtype=torch.float64, requires_grad=True)
    zs_t = torch.randn(6, 4, dtype=torch.float64, requires_grad=True)
    head_s = torch.randn(2, 4, dtype=torch.float64)
    terms = cmkd_loss(head_s, head_s, torch.tensor([0, 1]), head_t, zs_t, 1.0, 1.0, 0.0, 0.0, 0.0)
    terms["loss"].backward()
    assert zs_t.grad is None or torch.count_nonzero(zs_t.grad) == 0
    assert torch.count_nonzero(head_t.grad) > 0

    p = torch.softmax(torch.randn(5, 3, dtype=torch.float64), 1).requires_grad_(True)
    w = torch.rand(5, dtype=torch.float64)
    gini_impurity(p, w).backward()
    mass = p.detach().sum(0)
    expected = -2 * w[:, None] * p.detach() / mass  # d/dP of -w P^2 / const
    torch.testing.assert_close(p.grad, expected)


def test_fixmatch_masks_exactly_the_samples_under_the_threshold():
    weak = torch.log(torch.tensor([[0.96, 0.02, 0.02], [0.94, 0.03, 0.03], [0.05, 0.95, 0.0]]))
    weak = torch.nan_to_num(weak, neginf=-50.0)
    strong = torch.randn(3, 3, requires_grad=True)
    loss, mask = fixmatch_loss(weak, strong, 0.95)
    assert mask.tolist() == [1.0, 0.0, 1.0]
    ce = F.cross_entropy(strong, torch.tensor([0, 0, 1]), reduction="none")
    assert loss.item() == pytest.approx((ce[0] + ce[2]).item() / 3, rel=1e-6)
    loss.backward()
    assert torch.count_nonzero(strong.grad[1]) == 0


def test_prompts_follow_the_datasets_label_order():
    network = tiny_clip(3)
    classes = ("banana", "Apple", "cherry")  # sorted(str.lower) would put Apple first
    assert network.prompts(classes) == [
        "a photo of a banana.",
        "a photo of a Apple.",
        "a photo of a cherry.",
    ]
    network.set_class_names(classes)
    text = network.text_embeddings(classes).detach()
    torch.testing.assert_close(network.head.weight, network.logit_scale * text)
    assert not torch.allclose(network.head.weight[0], network.head.weight[1])


SETTINGS = CMKDSettings(rst_tau=1e-3, fixmatch=True, ramp_steps=5, head_lr_scale=10.0)


def _rst_method(seed: int = 0) -> CMKD:
    torch.manual_seed(seed)
    network = tiny_clip(3)
    network.set_class_names(("0", "1", "2"))
    return CMKD(MethodContext(network, ("source", "target"), SETTINGS, 0.1))


def _stream(seed: int, labels: torch.Tensor) -> TensorSet:
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (len(labels), 3, 32, 32), dtype=torch.uint8, generator=g)
    return TensorSet.create(images, labels, [0.5] * 3, [0.25] * 3, torch.device("cpu"))


SOURCE = _stream(0, torch.arange(8) % 3)
TARGET = _stream(1, torch.full((8,), -1))


def _batches(step: int) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """What the trainer gives CMKD with FixMatch: both streams and the target's strong view."""
    g = torch.Generator().manual_seed(step)
    index = torch.arange(8)
    return {
        "source": SOURCE.batch(index, "shift", g),
        "target": TARGET.batch(index, "shift", g),
        "target_strong": TARGET.batch(index, "shift", g, strong=True),
    }


def _train(method: CMKD, steps: int) -> None:
    groups = [{**g, "lr": 0.01 * g.pop("lr_scale", 1.0)} for g in method.parameter_groups()]
    optimizer = torch.optim.SGD(groups, momentum=0.9)
    method.train()
    initial = [w.clone() for w in method._initial_weights()]
    for step in range(steps):
        optimizer.zero_grad()
        method.update(_batches(step), step)
        optimizer.step()
        method.after_step()
        for p, w0 in zip(method.network.encoder.parameters(), initial, strict=True):
            gap = (p - w0).abs()
            assert not torch.any((gap <= method.tau) & (gap > 0)), "an element sits within tau"


def test_rst_keeps_every_encoder_element_at_w0_or_beyond_tau():
    method = _rst_method()
    _train(method, 3)
    encoder = method.network.encoder
    changed = sum(
        int(torch.count_nonzero(p != w0))
        for p, w0 in zip(encoder.parameters(), method._initial_weights(), strict=True)
    )
    assert 0 < changed < sum(p.numel() for p in encoder.parameters())


def test_encoder_batchnorm_statistics_stay_frozen():
    method = _rst_method()
    bn = next(m for m in method.network.encoder.modules() if isinstance(m, torch.nn.BatchNorm2d))
    before = bn.running_mean.clone()
    _train(method, 1)
    torch.testing.assert_close(bn.running_mean, before)
    assert method.network.head[0].training


def test_task_head_batchnorm_bias_stays_at_zero_as_released():
    method = _rst_method()
    norm = method.network.head[0]
    trained = {id(p) for group in method.parameter_groups() for p in group["params"]}
    assert not norm.bias.requires_grad and id(norm.bias) not in trained
    assert id(norm.weight) in trained
    weight = norm.weight.detach().clone()
    _train(method, 2)
    assert torch.equal(norm.bias, torch.zeros_like(norm.bias)) and norm.bias.grad is None
    assert not torch.equal(norm.weight, weight)


def test_rst_checkpoint_reloads_to_identical_predictions_and_is_small(tmp_path):
    method = _rst_method()
    pretrained_state = {k: v.clone() for k, v in method.network.state_dict().items()}
    _train(method, 3)
    metrics = method.export(tmp_path)
    method.eval()
    x = torch.randn(16, 3, 32, 32)
    expected = method.predict(x)

    fresh = tiny_clip(3)
    fresh.head = torch.nn.Linear(fresh.feature_dim, 3)
    fresh.load_state_dict(
        {k: v for k, v in pretrained_state.items() if not k.startswith("head.")}, strict=False
    )
    rebuilt = load_rst(fresh, tmp_path / RST_FILE).eval()
    torch.testing.assert_close(rebuilt(x), expected, rtol=0, atol=0)

    full = sum(p.numel() * p.element_size() for p in method.network.encoder.parameters())
    assert (tmp_path / RST_FILE).stat().st_size < 0.25 * full
    assert metrics["dsp_millions"] * 1e6 == pytest.approx(
        metrics["rst"]["changed_encoder_elements"]
        + sum(p.numel() for p in method.network.head.parameters())
    )
    rst = metrics["rst"]
    assert rst["encoder_elements"] == sum(p.numel() for p in method.network.encoder.parameters())
    assert rst["density"] == rst["changed_encoder_elements"] / rst["encoder_elements"]
    assert 0 < rst["density"] < 1


def test_a_clip_run_saves_its_image_tower_and_head_and_reloads_onto_its_source():
    method = _rst_method()
    pretrained_state = {k: v.clone() for k, v in method.network.state_dict().items()}
    _train(method, 2)
    saved = method.saved_state()
    assert saved and all(k.startswith(("clip.visual.", "head.")) for k in saved)
    assert any(k.startswith("clip.transformer.") for k in pretrained_state)  # left out
    method.eval()
    x = torch.randn(4, 3, 32, 32)

    source = tiny_clip(3)  # the source model: CLIP with its zero-shot head
    source.load_state_dict(
        {k: v for k, v in pretrained_state.items() if not k.startswith("head.")}, strict=False
    )
    rebuilt = load_adapted(source, saved).eval()
    torch.testing.assert_close(rebuilt(x), method.predict(x), rtol=0, atol=0)
    with pytest.raises(ValueError, match="does not fit"):
        load_adapted(tiny_clip(3), {**saved, "clip.visual.nonsense": torch.zeros(1)})


def test_clip_methods_refuse_a_non_clip_network():
    from tlrepro.models.small import SmallVGG

    with pytest.raises(TypeError, match="CLIP model"):
        ClipAdaptation(MethodContext(SmallVGG(3), ("source",), SETTINGS))
    assert isinstance(tiny_clip(2), ClipClassifier)


def test_clip_settings_are_checked_when_built():
    for bad, message in (
        ({"rst_tau": 0.0}, "rst_tau\n  Input should be greater than 0"),
        (
            {"fixmatch_threshold": 1.5},
            "fixmatch_threshold\n  Input should be less than or equal to 1",
        ),
        ({"ramp_steps": 0}, "ramp_steps\n  Input should be greater than or equal to 1"),
        ({"fixmatch": "yes"}, "fixmatch\n  Input should be a valid boolean"),
    ):
        with pytest.raises(ValidationError, match=message):
            CMKDSettings.model_validate(bad)
    assert CMKDSettings.model_validate({"rst_tau": None}).rst_tau is None


def test_zeroshot_changes_nothing():
    from tlrepro.methods.cmkd import ZeroShot

    network = tiny_clip(3)
    network.set_class_names(("0", "1", "2"))
    before = {k: v.clone() for k, v in network.state_dict().items()}
    method = ZeroShot(MethodContext(network, ("source",)))
    method.train()
    method.update(_batches(0), 0)
    for key, value in network.state_dict().items():
        torch.testing.assert_close(value, before[key], rtol=0, atol=0, msg=key)


def test_per_model_pretraining_settings_are_checked_and_used(tmp_path):
    from tests.conftest import tiny_config
    from tlrepro.config.load import ConfigError, validate
    from tlrepro.plan.runs import build_plan

    config = tiny_config()
    quick = config["profiles"]["quick"]
    weights = tmp_path / "w.pt"
    weights.write_bytes(b"weights")
    quick["pretrain"]["models"] = {
        "small_vgg": {"training": {"lr": 0.123}, "weights": str(weights)}
    }
    (job,) = build_plan(validate(config)).pretrains.values()
    assert job.training.lr == 0.123 and job.weights == str(weights)
    quick["pretrain"]["models"] = {"small_vgq": {}}
    with pytest.raises(ConfigError, match=r"pretrain\.models\.small_vgq"):
        validate(config)


# --------------------------------------------------------------------------- paper fidelity


def _prepared(name: str, label_space: str, sizes: dict[str, int], fill: int):
    """A prepared dataset whose images carry their split and position (pixel [0, 0, 0] =
    `fill` + index within the split; pixel [0, 0, 1] = split number)."""
    from tlrepro.data.prepare import PreparedDataset

    splits = {}
    for number, (split, n) in enumerate(sizes.items()):
        images = torch.zeros(n, 3, 4, 4, dtype=torch.uint8)
        images[:, 0, 0, 0] = torch.arange(n, dtype=torch.uint8) + fill
        images[:, 0, 0, 1] = number
        splits[split] = (images, torch.arange(n) % 3)
    return PreparedDataset(name, ["a", "b", "c"], label_space, [0.5] * 3, [0.25] * 3, splits)


def _ids(split) -> set[tuple[int, int]]:
    images = split[0]
    return {(int(i[0, 0, 0]), int(i[0, 0, 1])) for i in images}


def test_a_transductive_cmkd_split_trains_and_tests_on_every_target_image():
    """The release's protocol (main.py lines 101-106): every target image is unlabelled
    training data and test data; the source trains on all but its val carve-out, which
    chooses the epoch. held_out keeps the test images out of training."""
    from tlrepro.data.protocol import run_splits

    source = _prepared("office31_amazon", "office31", {"train": 12, "val": 3, "test": 6}, 0)
    target = _prepared("office31_webcam", "office31", {"train": 9, "val": 2, "test": 5}, 100)
    every_target = _ids(target.splits["train"]) | _ids(target.splits["val"])
    every_target |= _ids(target.splits["test"])
    assert len(every_target) == 16

    splits = run_splits(source, target, "transductive", "source_val")
    assert _ids(splits["target"]) == every_target and len(splits["target"][0]) == 16
    assert _ids(splits["test"]) == every_target and len(splits["test"][0]) == 16
    assert _ids(splits["source"]) == _ids(source.splits["train"]) | _ids(source.splits["test"])
    assert _ids(splits["val"]) == _ids(source.splits["val"])  # the honest selection split
    assert not _ids(splits["val"]) & _ids(splits["source"])
    # the labels travel with their images
    torch.testing.assert_close(
        splits["target"][1], torch.cat([target.splits[s][1] for s in ("train", "val", "test")])
    )

    held_out = run_splits(source, target, "held_out", "source_val")
    assert _ids(held_out["target"]) == _ids(target.splits["train"])
    assert _ids(held_out["test"]) == _ids(target.splits["test"])
    assert not _ids(held_out["target"]) & _ids(held_out["test"])
    assert _ids(held_out["source"]) == _ids(source.splits["train"])


def test_the_transductive_protocol_refuses_target_selection_and_target_subsets():
    from tlrepro.data.protocol import run_splits

    source = _prepared("s", "office31", {"train": 6, "val": 3, "test": 3}, 0)
    target = _prepared("t", "office31", {"train": 6, "val": 3, "test": 3}, 50)
    with pytest.raises(ValueError, match="source validation"):
        run_splits(source, target, "transductive", "target_val")
    with pytest.raises(ValueError, match="target_train_per_class"):
        run_splits(source, target, "transductive", "source_val", torch.arange(3))
    with pytest.raises(ValueError, match="unknown protocol"):
        run_splits(source, target, "inductive", "source_val")


# The release's class prompts (models/backbone.py lines 17, 21 and 23 of Wenlve-Zhou/VLP-UDA).
RELEASE_OFFICE_HOME = [
    f"an image of a {name}"
    for name in [
        "alarm clock",
        "backpack",
        "batteries",
        "bed",
        "bike",
        "bottle",
        "bucket",
        "calculator",
        "calendar",
        "candles",
        "chair",
        "clipboards",
        "computer",
        "couch",
        "curtains",
        "desk lamp",
        "drill",
        "eraser",
        "exit sign",
        "fan",
        "file cabinet",
        "flipflops",
        "flowers",
        "folder",
        "fork",
        "glasses",
        "hammer",
        "helmet",
        "kettle",
        "keyboard",
        "knives",
        "lamp shade",
        "laptop",
        "marker",
        "monitor",
        "mop",
        "mouse",
        "mug",
        "notebook",
        "oven",
        "pan",
        "paper clip",
        "pen",
        "pencil",
        "postit notes",
        "printer",
        "push pin",
        "radio",
        "refrigerator",
        "ruler",
        "scissors",
        "screwdriver",
        "shelf",
        "sink",
        "sneakers",
        "soda",
        "speaker",
        "spoon",
        "tv",
        "table",
        "telephone",
        "toothbrush",
        "toys",
        "trash can",
        "webcam",
    ]
]
RELEASE_OFFICE31 = [
    f"a photo of a {name}"
    for name in [
        "backpack",
        "bike",
        "bike helmet",
        "bookcase",
        "bottle",
        "calculator",
        "desk chair",
        "desk lamp",
        "desktop computer",
        "file cabinet",
        "headphones",
        "keyboard",
        "laptop computer",
        "letter tray",
        "mobile phone",
        "monitor",
        "mouse",
        "mug",
        "paper notebook",
        "pen",
        "phone",
        "printer",
        "projector",
        "punchers",
        "ring binder",
        "ruler",
        "scissors",
        "speaker",
        "stapler",
        "tape dispenser",
        "trash can",
    ]
]
RELEASE_DIGITS = [f'a photo of the number: "{d}"' for d in range(10)]


def test_release_prompts_are_the_releases_lists_in_our_label_order():
    """Our classes are ImageFolder's (sorted folder names, as the release's loader): the
    release's prompt lists must come out of them, prompt for prompt."""
    from tlrepro.data.registry import DIGITS, class_prompts
    from tlrepro.data.standin import OFFICE31, OFFICE_HOME

    assert class_prompts("office_home", sorted(OFFICE_HOME), "release") == RELEASE_OFFICE_HOME
    assert class_prompts("office31", sorted(OFFICE31), "release") == RELEASE_OFFICE31
    assert class_prompts("digits10", DIGITS, "release") == RELEASE_DIGITS
    assert class_prompts("office31", sorted(OFFICE31), "default") is None
    with pytest.raises(ValueError, match="no prompts for label space"):
        class_prompts("letters_a_to_j", list("ABC"), "release")


def test_a_runs_prompts_make_its_zero_shot_head():
    torch.manual_seed(0)
    default, release = tiny_clip(3), tiny_clip(3)
    release.load_state_dict(default.state_dict())
    classes = ("0", "1", "2")
    prompts = [f'a photo of the number: "{d}"' for d in classes]
    default.set_class_names(classes)
    release.set_class_names(classes, prompts)
    assert release.prompts(classes) == prompts
    tokens = release.tokenizer(prompts)
    with torch.no_grad():
        text = F.normalize(release.clip.encode_text(tokens), dim=-1)
    torch.testing.assert_close(release.head.weight, release.logit_scale * text)
    assert not torch.allclose(release.head.weight, default.head.weight)
    with pytest.raises(ValueError, match="2 prompts for 3 classes"):
        release.set_class_names(classes, prompts[:2])


def test_fp32_precision_turns_cuda_autocast_off():
    """The CLIP paper groups run CUDA steps in fp32 (the release's CLIP); other recipes keep
    bf16 autocast, and the CPU is fp32 either way."""
    import contextlib

    from tlrepro.training.trainer import _autocast_for

    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert _autocast_for(cuda, "fp32") is contextlib.nullcontext
    assert _autocast_for(cpu, "bf16") is contextlib.nullcontext
    bf16 = _autocast_for(cuda, "bf16")
    assert bf16 is not contextlib.nullcontext
    with pytest.warns(UserWarning) if not torch.cuda.is_available() else contextlib.nullcontext():
        context = bf16()
    assert isinstance(context, torch.autocast) and context.fast_dtype == torch.bfloat16
    with pytest.raises(ValidationError, match="precision\n  Input should be 'bf16' or 'fp32'"):
        Training(precision="fp16")


def test_digits_views_are_the_releases_random_resized_crop_and_usps_source_view():
    """clip_digits: RandomResizedCrop(224, scale 0.75-1.2) per image, no flip, CLIP's
    statistics, 224 px evaluation; a USPS source stream gets the USPS view."""
    from tlrepro.training.augment import CLIP_MEAN, DIGITS_VIEW, USPS_SOURCE_VIEW, stream_augment

    assert DIGITS_VIEW.scale == (0.75, 1.2) and tuple(DIGITS_VIEW.size) == (224, 224)
    names = [type(t).__name__ for t in USPS_SOURCE_VIEW.transforms]
    assert names == ["Resize", "Pad", "RandomCrop", "RandomRotation", "Resize"]
    assert stream_augment("clip_digits", "source", "usps") == "clip_digits_usps"
    assert stream_augment("clip_digits", "target", "usps") == "clip_digits"
    assert stream_augment("clip_digits", "source", "svhn") == "clip_digits"
    assert stream_augment("clip", "source", "usps") == "clip"

    # a left-right asymmetric image: a flip would move the bright column to the right
    images = torch.zeros(16, 3, 32, 32, dtype=torch.uint8)
    images[..., :4] = 255
    labels = torch.arange(16) % 10
    stream = TensorSet.create(
        images, labels, [0.5] * 3, [0.25] * 3, torch.device("cpu"), "clip_digits"
    )
    torch.testing.assert_close(stream.mean.flatten(), torch.tensor(CLIP_MEAN))
    x, _ = stream.batch(torch.arange(16), "clip_digits", torch.Generator().manual_seed(0))
    assert x.shape == (16, 3, 224, 224)
    again, _ = stream.batch(torch.arange(16), "clip_digits", torch.Generator().manual_seed(0))
    torch.testing.assert_close(x, again)  # a pure function of the step's generator
    bright = x[:, 0] > 0
    # the stripe (at most 4 of >= 24 columns a crop spans) never reaches the right quarter,
    # where a flip would put it; it stays on the left in the crops that keep it
    assert bright[:, :, -56:].sum() == 0 and bright[:, :, :56].sum((1, 2)).gt(0).sum() > 8
    left_edge = bright.float().mean((1, 2))
    assert len(set(left_edge.tolist())) > 1  # crops drawn per image
    assert stream.batch(torch.arange(2))[0].shape[-1] == 224  # evaluation: Resize(224)

    usps = TensorSet.create(
        images,
        labels,
        [0.5] * 3,
        [0.25] * 3,
        torch.device("cpu"),
        "clip_digits",
        "clip_digits_usps",
    )
    y, _ = usps.batch(torch.arange(16), "clip_digits", torch.Generator().manual_seed(0))
    assert y.shape == (16, 3, 224, 224) and not torch.allclose(x, y)
    # the Pad(4) + RandomCrop(28) shows black borders that RandomResizedCrop never makes
    assert (y[:, 0, :, -1] < 0).any()
