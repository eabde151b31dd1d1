"""The rehearsal profile: derived from the paper profile, offline, and (marker `rehearsal`)
run end to end through Snakemake."""

from __future__ import annotations

import copy
import os

import pytest
import torch
import yaml

from tlrepro.config import rehearsal
from tlrepro.config.load import ConfigError, load_config, validate
from tlrepro.data import standin
from tlrepro.data.prepare import load_prepared, prepare_dataset
from tlrepro.data.registry import dataset_spec
from tlrepro.plan.layout import RST_FILE
from tlrepro.plan.runs import build_plan

from .conftest import BIN, REPO, make_workspace, run

CONFIG = REPO / "config" / "config.yaml"


def raw_config() -> dict:
    return yaml.safe_load(CONFIG.read_text())


@pytest.fixture(scope="module")
def profiles() -> tuple[dict, dict]:
    config = load_config(CONFIG, "rehearsal")
    return config["profiles"]["paper"], config["profiles"]["rehearsal"]


def test_same_groups_methods_models_and_recipes_as_the_paper(profiles):
    _, derived = profiles
    paper = load_config(CONFIG, "paper")["profiles"]["paper"]
    assert list(derived["groups"]) == list(paper["groups"])
    recipe_keys = (
        "optimizer",
        "lr",
        "schedule",
        "milestones",
        "augment",
        "label_smoothing",
        "precision",
    )
    same = ("model", "source_model", "source_weights", "reported", "title", "protocol", "prompts")
    for name, group in paper["groups"].items():
        ours = derived["groups"][name]
        for key in same:
            assert getattr(ours, key) == getattr(group, key), (name, key)
        assert ours.seeds == group.seeds[:1]
        assert list(ours.methods) == list(group.methods)
        for key, entry in group.methods.items():
            mine = ours.methods[key]
            assert (mine.method, mine.settings) == (entry.method, entry.settings), (name, key)
            for task in ours.tasks:
                training = mine.training_for(task)
                for field in recipe_keys:
                    wanted = getattr(entry.training_for(task), field)
                    assert getattr(training, field) == wanted, (name, key, field)
                assert training.epochs == 1 and training.steps_per_epoch <= 2
                assert training.batch_size <= rehearsal.TRAINING_CAPS["batch_size"]
    assert derived["pretrain"]["models"]["clip_rn50"]["weights"] == "openai"
    assert derived["pretrain"]["models"]["clip_rn50"]["training"].augment == "clip"


def test_kept_tasks_read_every_dataset_of_their_group(profiles):
    paper, derived = profiles
    for name, group in paper["groups"].items():
        kept = derived["groups"][name].tasks
        assert set(kept) <= set(group["tasks"]) and kept
        datasets = {d for task in group["tasks"] for d in task.split("-to-")}
        assert datasets == {d for task in kept for d in task.split("-to-")}, name
    office_home = derived["groups"]["cmkd_office_home_rn50"].tasks
    assert len(office_home) == 3  # 4 domains need 3 of the 12 tasks


def test_every_dataset_is_a_standin_with_enough_images(profiles):
    paper, derived = profiles
    for name, options in derived["datasets"].items():
        assert options["standin"]["train_per_class"] >= rehearsal.MIN_TRAIN_PER_CLASS
        assert options.get("image_size", 32) <= rehearsal.IMAGE_SIZE_KEPT
        if paper["datasets"][name].get("image_size") == 72:
            assert options["image_size"] == 72  # the Decathlon resolution stays
    # adaptive_n20 keeps 20 images per class of fgvc_aircraft (official val/test, none carved)
    assert derived["datasets"]["fgvc_aircraft"]["standin"]["train_per_class"] == 20
    # cifar100_decathlon: 20 kept after carving one val image per class (its test is official)
    assert derived["datasets"]["cifar100_decathlon"]["standin"]["train_per_class"] == 21


def test_downloads_are_switched_off_and_clip_towers_shrunk(profiles):
    _, derived = profiles
    options = derived["model_options"]
    assert options["vgg16_imagenet"] == {"download": False}
    assert options["resnet50_imagenet"] == {"download": False}
    assert options["clip_vit_b16"] == {"download": False, "image_size": 32}
    plan = build_plan(load_config(CONFIG, "rehearsal"))
    zoo_run = next(r for r in plan.runs if r.zoo_source_model == "vgg16_imagenet")
    assert zoo_run.identity["model_options"] == {"vgg16_imagenet": {"download": False}}
    clip_pretrain = plan.pretrain("clip_rn50", "office_home_art")
    assert clip_pretrain.identity["model_options"] == {"download": False, "image_size": 32}


def test_other_profiles_keep_their_identities():
    """model_options enters a job's identity only where set: no existing run goes stale."""
    for profile in ("quick", "paper"):
        plan = build_plan(load_config(CONFIG, profile))
        assert all("model_options" not in run.identity for run in plan.runs)
        assert all("model_options" not in job.identity for job in plan.pretrains.values())


def test_derivation_follows_the_paper_profile_and_needs_it():
    config = raw_config()
    config["profiles"]["paper"]["groups"]["gradmf_digits"]["training"]["lr"] = 0.5
    derived = validate(config, "rehearsal")["profiles"]["rehearsal"]
    methods = derived["groups"]["gradmf_digits"].methods.values()
    assert {method.training.lr for method in methods} == {0.5}
    del config["profiles"]["paper"]
    with pytest.raises(ConfigError, match="derived from the 'paper' profile"):
        validate(config, "rehearsal")


def test_a_config_that_defines_a_rehearsal_profile_keeps_its_own():
    config = raw_config()
    config["profiles"]["rehearsal"] = copy.deepcopy(config["profiles"]["quick"])
    kept = validate(config, "rehearsal")["profiles"]["rehearsal"]
    assert kept == validate(config, "quick")["profiles"]["quick"]


def test_model_options_a_model_does_not_take_are_refused():
    config = raw_config()
    config["profiles"]["quick"]["model_options"] = {"small_vgg": {"download": False}}
    with pytest.raises(ConfigError, match="'small_vgg' takes no option 'download'"):
        validate(config)


PAPER_DATASETS = sorted(raw_config()["profiles"]["paper"]["datasets"])


@pytest.mark.parametrize("name", PAPER_DATASETS)
def test_standin_has_the_classes_channels_and_splits_of_the_real_builder(name, tmp_path):
    spec = dataset_spec(name)
    options = {"seed": 0, "standin": {"train_per_class": 3}, "val_fraction": 0.3}
    options["test_fraction"] = 0.3
    raw = standin.build(options, 16, tmp_path, **spec.kwargs)
    kind = spec.kwargs.get("name") or spec.kwargs["archive"]
    assert set(raw.splits) == set(standin.official_splits(kind))
    images, labels = raw.splits["train"]
    assert images.dtype == torch.uint8
    assert images.shape[1] == (1 if kind in ("MNIST", "USPS") else 3)
    assert torch.bincount(labels).tolist() == [3] * len(raw.classes)
    manifest = prepare_dataset(name, options, 16, tmp_path / "prepared", tmp_path)
    if spec.classes is not None:
        assert tuple(manifest["classes"]) == spec.classes
    data = load_prepared(tmp_path / "prepared")
    assert data.splits["train"][0].shape[1:] == (3, 16, 16)
    assert all(len(data.splits[s][1]) > 0 for s in ("train", "val", "test"))


def test_standin_class_counts_and_domains():
    counts = {k: len(v) for k, v in standin.CLASSES.items()}
    assert counts["CIFAR100"] == 100 and counts["FGVCAircraft"] == 100
    assert counts["Food101"] == 101 and counts["Caltech256"] == 257
    assert counts["office31"] == 31 and counts["office_home"] == 65
    assert standin.CLASSES["Caltech256"][-1] == "257.clutter"
    options = {"seed": 0, "standin": {"train_per_class": 2}}
    art = standin.build(options, 16, None, archive="office_home", domain="Art")
    clipart = standin.build(options, 16, None, archive="office_home", domain="Clipart")
    again = standin.build(options, 16, None, archive="office_home", domain="Art")
    assert torch.equal(art.splits["train"][0], again.splits["train"][0])
    assert not torch.equal(art.splits["train"][0], clipart.splits["train"][0])


def test_standin_official_eval_splits_take_the_classes_in_turn():
    options = {"seed": 0, "standin": {"train_per_class": 1, "eval_images": 5}}
    raw = standin.build(options, 8, None, name="FGVCAircraft")
    assert raw.splits["val"][1].tolist() == [0, 1, 2, 3, 4]
    options["standin"]["eval_images"] = 150
    labels = standin.build(options, 8, None, name="FGVCAircraft").splits["test"][1]
    assert torch.bincount(labels).tolist() == [2] * 50 + [1] * 50


def test_standin_classes_differ_more_than_images_of_a_class():
    """The stand-in carries a learnable class signal (a class's images share a grating)."""
    images, labels = standin.render(4, 6, 32, 3, torch.Generator().manual_seed(0))
    # the grating's phase varies per image, so compare amplitude spectra (phase-free)
    spectra = torch.fft.rfft2(images.float() - 127.5).abs().flatten(1)
    spectra = spectra / spectra.norm(dim=1, keepdim=True)
    similarity = spectra @ spectra.T
    same = labels[:, None] == labels[None, :]
    off_diagonal = ~torch.eye(len(labels), dtype=torch.bool)
    assert similarity[same & off_diagonal].mean() > similarity[~same].mean() + 0.1


def test_zoo_models_and_clip_build_without_download(monkeypatch):
    import open_clip
    import torchvision

    from tlrepro.models import clip, torchvision_nets

    asked = {}

    def fake_vgg16(weights=None):
        asked["vgg16"] = weights
        return torchvision.models.vgg11(weights=None)

    monkeypatch.setattr(torchvision.models, "vgg16", fake_vgg16)
    torchvision_nets.vgg16_imagenet(num_classes=None, download=False)
    assert asked["vgg16"] is None
    torchvision_nets.vgg16_imagenet(num_classes=None)
    assert asked["vgg16"] == "IMAGENET1K_V1"

    def fake_create_model(arch, pretrained=None, force_image_size=None):
        asked["clip"] = (arch, pretrained, force_image_size)
        raise RuntimeError("stop")

    monkeypatch.setattr(open_clip, "create_model", fake_create_model)
    with pytest.raises(RuntimeError, match="stop"):
        clip.clip_rn50(3, weights="openai", download=False, image_size=32)
    assert asked["clip"] == ("RN50-quickgelu", None, 32)
    with pytest.raises(RuntimeError, match="stop"):
        clip.clip_rn50(3, weights="openai")
    assert asked["clip"] == ("RN50-quickgelu", "openai", None)


def test_a_shrunk_clip_tower_takes_clips_224_px_views():
    from tlrepro.models.clip import clip_vit_b16

    torch.manual_seed(0)
    model = clip_vit_b16(3, download=False, image_size=32)
    model.set_class_names(["cat", "dog", "bird"])
    with torch.no_grad():
        logits = model(torch.randn(2, 3, 224, 224))
    assert logits.shape == (2, 3) and torch.isfinite(logits).all()


# --- the whole rehearsal through Snakemake (marker `rehearsal`, tens of minutes) -----------

REHEARSAL_TARGET = "results/tables-rehearsal.md"


@pytest.mark.rehearsal
def test_rehearsal_runs_every_paper_group_through_snakemake(tmp_path):
    """`snakemake --config profile=rehearsal` on a fresh copy: every paper group's section
    with the reported rows, every planned run's metrics, the RST exports. A named part
    instead: TLREPRO_REHEARSAL_TARGET=group_cmkd_office31_vit (any Snakemake target)."""
    target = os.environ.get("TLREPRO_REHEARSAL_TARGET") or REHEARSAL_TARGET
    root = make_workspace(tmp_path / "repo")
    run(
        [str(BIN / "snakemake"), target, "--cores", "2", "--config", "profile=rehearsal"],
        root,
    )
    plan = build_plan(load_config(root / "config" / "config.yaml", "rehearsal"))
    if target != REHEARSAL_TARGET:
        return  # a named part: Snakemake's success is the check
    tables = (root / REHEARSAL_TARGET).read_text()
    for group in plan.groups().values():
        assert group["title"] in tables
    assert "TLVFC README" in tables  # a reported table beside ours
    assert all((root / r.metrics).is_file() for r in plan.runs)
    rst = [r for r in plan.runs if r.settings.record().get("rst_tau")]
    assert {r.model for r in rst} == {"clip_rn50", "clip_vit_b16"}
    for model in ("clip_rn50", "clip_vit_b16"):  # one reload per tower
        assert_rst_reloads(root, next(r for r in rst if r.model == model))


def assert_rst_reloads(root, run) -> None:
    """The run's sparse RST file on its source checkpoint predicts as its saved model."""
    from tlrepro import storage
    from tlrepro.methods.cmkd import load_adapted, load_rst
    from tlrepro.models.base import head_classes, split_head
    from tlrepro.models.registry import build_model
    from tlrepro.plan.layout import MODEL_FILE

    options = run.options_for(run.model)
    source = storage.load_tensors(root / run.pretrain.checkpoint)
    classes = head_classes(split_head(source)[1])
    pretrained = build_model(run.model, classes, **options)
    pretrained.load_state_dict(source)
    rebuilt = load_rst(pretrained, root / run.folder / RST_FILE).eval()
    state = storage.load_tensors(root / run.folder / MODEL_FILE)
    trained = build_model(run.model, classes, **options)
    trained.load_state_dict(source)
    trained = load_adapted(trained, state)
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(x), trained.eval()(x), rtol=0, atol=0)
