"""Bad configs fail early with a message that names the key and says what is allowed."""

from __future__ import annotations

import copy

import pytest
import yaml

from tlrepro.config.load import ConfigError, load_config, validate
from tlrepro.plan.runs import PlanError, build_plan

from .conftest import BIN, REPO, make_workspace, run, tiny_config


def check(config: dict) -> dict:
    return validate(config)


def test_repository_config_is_valid_for_both_profiles():
    for profile in ("quick", "paper"):
        plan = build_plan(load_config(REPO / "config" / "config.yaml", profile))
        assert plan.runs, profile


def test_typo_in_a_training_key_names_the_key_and_the_allowed_ones():
    config = tiny_config()
    config["profiles"]["quick"]["groups"]["baselines"]["training"]["epoch"] = 3
    with pytest.raises(ConfigError) as error:
        check(config)
    message = str(error.value)
    assert "'epoch'" in message
    assert "profiles.quick.groups.baselines.training" in message
    assert "epochs" in message  # the allowed spelling is suggested


def test_unknown_method_names_the_method_and_lists_known_ones():
    config = tiny_config()
    config["profiles"]["quick"]["groups"]["baselines"]["methods"]["finetun"] = {}
    with pytest.raises(ConfigError) as error:
        check(config)
    message = str(error.value)
    assert "methods.finetun" in message and "'finetun'" in message
    assert "finetune" in message and "scratch" in message


def test_a_groups_reference_reaches_its_table_and_must_name_one_of_its_methods():
    """group_defaults may set it; a key that is not the group's method is named."""
    from tlrepro.cli import group_tables
    from tlrepro.reporting.results import Reference

    config = tiny_config()
    quick = config["profiles"]["quick"]
    quick["group_defaults"] = {"reference": {"method": "scratch", "floor": 0.5}}
    tables = group_tables(build_plan(check(config)))
    assert {table.reference for table in tables} == {Reference(method="scratch", floor=0.5)}
    quick["groups"]["baselines"]["reference"] = {"method": "scratchy", "floor": 0.5}
    with pytest.raises(ConfigError) as error:
        check(config)
    message = str(error.value)
    assert "groups.baselines.reference.method" in message and "'scratchy'" in message
    assert "scratch" in message.split("its methods:")[1]
    quick["groups"]["baselines"]["reference"] = {"method": "scratch", "floor": 50}
    with pytest.raises(ConfigError, match=r"reference\.floor"):
        check(config)


def test_a_group_without_a_reference_has_none():
    from tlrepro.cli import group_tables

    tables = group_tables(build_plan(check(tiny_config())))
    assert tables and all(table.reference is None for table in tables)


def test_unknown_dataset_in_a_task_is_reported():
    config = tiny_config()
    config["profiles"]["quick"]["groups"]["baselines"]["tasks"] = ["digits_syn-to-digits_ucl"]
    with pytest.raises(ConfigError, match="digits_ucl"):
        check(config)


def test_unknown_dataset_entry_and_unknown_model_are_reported():
    config = tiny_config()
    config["profiles"]["quick"]["datasets"]["mnits"] = {}
    config["profiles"]["quick"]["groups"]["baselines"]["model"] = "resnet_tiny"
    with pytest.raises(ConfigError) as error:
        check(config)
    assert "mnits" in str(error.value) and "resnet_tiny" in str(error.value)


def test_unknown_method_setting_is_reported():
    config = tiny_config()
    config["profiles"]["quick"]["groups"]["baselines"]["methods"]["scratch"] = {
        "settings": {"temperature": 2}
    }
    with pytest.raises(ConfigError, match="temperature"):
        check(config)


def test_method_settings_are_checked_against_their_model_with_the_key_named():
    """Every wrong setting of the profile is reported at once, each at its own key."""
    config = tiny_config()
    methods = config["profiles"]["quick"]["groups"]["baselines"]["methods"]
    methods["gradmf_drawn"] = {"method": "gradmf", "settings": {"variant": "drawn", "tau": 1.5}}
    methods["multitune"] = {"settings": {"branches": [{"name": "a"}]}}
    with pytest.raises(ConfigError) as error:
        check(config)
    message = str(error.value)
    where = "at 'profiles.quick.groups.baselines.methods"
    assert (
        f"{where}.gradmf_drawn.settings.tau': Input should be less than or equal to 1 (got 1.5) "
        "(method 'gradmf')" in message
    )
    assert (
        f"{where}.multitune.settings.branches[0]': no `lr_scale` (it is required); or no "
        "`l2sp` (it is required); or no `reinit_blocks` (it is required) (method 'multitune')"
        in message
    )


def test_unknown_profile_is_reported():
    with pytest.raises(ConfigError, match="unknown profile 'papre'"):
        check({**copy.deepcopy(tiny_config()), "profile": "papre"})


def test_source_only_is_skipped_where_label_spaces_differ():
    plan = build_plan(load_config(REPO / "config" / "config.yaml", "quick"))
    assert "source_only" in plan.groups()["gradmf"].methods
    # letters -> digits and MNIST 5-9 -> 0-4: the same label indices, other classes
    assert not {run.task.name for run in plan.runs if run.method == "source_only"}
    paper = build_plan(load_config(REPO / "config" / "config.yaml", "paper"))
    source_only = {run.task.name for run in paper.runs if run.method == "source_only"}
    assert "mnist-to-svhn" in source_only and "mnist_5to9-to-mnist_0to4" not in source_only


def test_cli_and_snakemake_reject_the_typo_with_the_key_named(tmp_path):
    config = tiny_config()
    config["profiles"]["quick"]["pretrain"]["trainig"] = {}
    root = make_workspace(tmp_path / "repo", config)
    cli = run([str(BIN / "tlrepro"), "validate"], root, check=False)
    assert cli.returncode == 2 and "trainig" in cli.stderr
    smk = run([str(BIN / "snakemake"), "-n", "results/tables.md"], root, check=False)
    assert smk.returncode != 0 and "trainig" in smk.stdout + smk.stderr


def test_snakemake_refuses_overrides_the_cli_would_not_see(tmp_path):
    root = make_workspace(tmp_path / "repo", tiny_config())
    result = run(
        [str(BIN / "snakemake"), "-n", "--config", "profiles={quick: {description: edited}}"],
        root,
        check=False,
    )
    assert result.returncode != 0 and "--configfile" in result.stdout + result.stderr
    assert yaml.safe_load((root / "config" / "config.yaml").read_text())["profile"] == "quick"


def zoo_group(methods: dict) -> dict:
    config = tiny_config()
    config["profiles"]["quick"]["groups"] = {
        "zoo": {
            "model": "small_resnet",
            "source_model": "vgg16_imagenet",
            "source_weights": "model",
            "tasks": ["imagenet-to-digits_uci"],  # imagenet is named, never prepared
            "seeds": [0],
            "methods": methods,
        }
    }
    return config


def test_a_model_zoo_source_plans_no_pretraining_and_no_source_data():
    config = zoo_group({"tlvfc": {}, "he_init": {}})
    plan = build_plan(check(config))
    assert not plan.pretrains
    assert plan.needed_datasets() == ["digits_uci"]
    by_method = {run.method: run for run in plan.runs}
    assert by_method["tlvfc"].zoo_source_model == "vgg16_imagenet"
    assert by_method["he_init"].zoo_source_model is None


def test_a_model_zoo_source_refuses_what_it_cannot_provide():
    config = zoo_group({"tlvfc": {}})
    config["profiles"]["quick"]["groups"]["zoo"]["source_model"] = "small_vgg"
    with pytest.raises(ConfigError, match="brings its own weights"):
        check(config)
    for method in ("finetune", "joint"):
        with pytest.raises(PlanError, match="source_weights: model"):
            build_plan(check(zoo_group({method: {}})))


def test_zoo_weights_are_the_source_of_methods_that_start_from_source_weights():
    """With the zoo entry as the group's model, fine-tuning and its kin start from its own
    weights: no pretraining job, no source data, and the run records the zoo source."""
    methods = {"finetune": {}, "linear_probe": {}, "spottune": {}, "multitune": {}}
    config = zoo_group(methods)
    group = config["profiles"]["quick"]["groups"]["zoo"]
    group["model"] = group["source_model"] = "efficientnet_lite0_imagenet"
    plan = build_plan(check(config))
    assert not plan.pretrains and plan.needed_datasets() == ["digits_uci"]
    assert {run.method: run.zoo_source_model for run in plan.runs} == dict.fromkeys(
        methods, "efficientnet_lite0_imagenet"
    )


def test_a_mix_and_a_pretraining_dataset_must_be_configured_datasets():
    config = tiny_config()
    quick = config["profiles"]["quick"]
    quick["datasets"]["caption_mix"] = {"parts": {"digits_syn": {}, "no_such_set": {}}}
    quick["pretrain"]["models"] = {"small_vgg": {"dataset": "letters_syn"}}
    with pytest.raises(ConfigError) as error:
        check(config)
    assert "datasets.caption_mix.parts.no_such_set': unknown dataset" in str(error.value)
    assert "pretrain.models.small_vgg.dataset': dataset 'letters_syn'" in str(error.value)


def test_a_model_pretrained_on_its_own_dataset_is_one_job_for_every_task():
    config = tiny_config()
    quick = config["profiles"]["quick"]
    quick["datasets"]["caption_mix"] = {"parts": {"digits_syn": {}}, "val_fraction": 0.2}
    quick["pretrain"]["models"] = {"small_vgg": {"dataset": "caption_mix"}}
    plan = build_plan(check(config))
    assert list(plan.pretrains) == [("small_vgg", "caption_mix")]
    assert {run.pretrain.dataset for run in plan.runs if run.pretrain} == {"caption_mix"}
    assert any(path.name == "synthetic.py" for path in plan.prepare_code_files("caption_mix"))


PAPER_CMKD = (
    "cmkd_office_home_rn50",
    "cmkd_office_home_vit",
    "cmkd_office31_rn50",
    "cmkd_office31_vit",
    "cmkd_digits",
    "cmkd_digits_vit",
)


@pytest.fixture(scope="module")
def paper_plan():
    return build_plan(load_config(REPO / "config" / "config.yaml", "paper"))


def _runs(plan, group: str, method_key: str | None = None):
    runs = [r for r in plan.runs if r.group == group]
    assert runs, group
    return [r for r in runs if method_key in (None, r.method_key)]


def test_cmkd_paper_groups_follow_the_releases_protocol_prompts_and_precision(paper_plan):
    """Office groups: transductive (the whole target trains and tests); digits: the official
    splits (held_out). Every CMKD group: the release's prompts; CLIP in fp32 on the office
    benchmarks, mixed precision on digits (the release's use_amp)."""
    for group in PAPER_CMKD:
        runs = _runs(paper_plan, group)
        office = group.startswith("cmkd_office")
        assert {r.protocol for r in runs} == {"transductive" if office else "held_out"}, group
        assert {r.prompts for r in runs} == {"release"}, group
        precision = {r.training.precision for r in runs if r.method_key != "zeroshot"}
        assert precision == {"fp32" if office else "bf16"}, group
        assert all(r.identity["prompts"] == "release" for r in runs)
        assert all(("protocol" in r.identity) == office for r in runs)


def test_quick_runs_keep_their_identities_without_protocol_prompts_or_precision():
    plan = build_plan(load_config(REPO / "config" / "config.yaml", "quick"))
    for job in plan.runs:
        assert job.protocol == "held_out" and job.prompts == "default"
        assert not {"protocol", "prompts"} & set(job.identity)
        assert "precision" not in job.training.record()


def test_rst_tau_is_1e5_for_resnet_and_1e6_for_vit(paper_plan):
    for group in PAPER_CMKD:
        runs = _runs(paper_plan, group, "cmkd_rst")
        tau = 1e-6 if runs[0].model == "clip_vit_b16" else 1e-5
        assert {r.settings.rst_tau for r in runs} == {tau}, group


def test_office31_cmkd_drops_lambda2_and_lambda3_as_the_appendix_says(paper_plan):
    for group in PAPER_CMKD:
        for key in ("cmkd", "cmkd_rst", "cmkd_fixmatch"):
            for job in _runs(paper_plan, group, key):
                s = job.settings
                expected = (0.0, 0.0) if "office31" in group else (0.1, 0.025)
                assert (s.l1, s.l2, s.l3) == (0.25, *expected), (group, key)


def test_digits_groups_use_the_releases_digits_recipe(paper_plan):
    """configs/digits.yaml: 64 + 64 images, 20 x 1000 iterations, ViT lr 3e-6 with head
    x1000; the digits views (no flip)."""
    for group, lr, head in (("cmkd_digits_vit", 3e-6, 1000), ("cmkd_digits", 3e-7, 10000)):
        for job in _runs(paper_plan, group, "cmkd"):
            t = job.training
            assert (t.batch_size, t.epochs, t.steps_per_epoch) == (64, 20, 1000)
            assert t.augment == "clip_digits" and t.lr == lr and t.schedule == "inv"
            assert job.settings.head_lr_scale == head
    assert {r.model for r in _runs(paper_plan, "cmkd_digits_vit")} == {"clip_vit_b16"}
    groups = paper_plan.groups()
    assert groups["cmkd_digits_vit"].reported == "cmkd_digits_vit"


def test_a_transductive_group_refuses_methods_that_select_on_the_target():
    config = tiny_config()
    config["profiles"]["quick"]["groups"]["baselines"]["protocol"] = "transductive"
    loaded = check(config)
    with pytest.raises(PlanError, match="source validation split"):
        build_plan(loaded)


@pytest.mark.parametrize(
    ("where", "entry", "value", "key"),
    [
        # a linear probe that trains its body is fine-tuning under another name
        (
            "methods",
            "linear_probe",
            {"settings": {"freeze_body": False}},
            "groups.baselines.methods.linear_probe.settings",
        ),
        ("training", "epochs", 0, "groups.baselines.training.epochs"),
        ("group", "seeds", [0, -1], "groups.baselines.seeds[1]"),
        (
            "methods",
            "finetune",
            {"settings": {"freez_body": True}},
            "groups.baselines.methods.finetune.settings",
        ),
    ],
)
def test_a_config_that_would_run_something_else_is_refused_at_its_key(where, entry, value, key):
    config = tiny_config()
    group = config["profiles"]["quick"]["groups"]["baselines"]
    target = {"methods": group["methods"], "training": group["training"], "group": group}[where]
    target[entry] = value
    with pytest.raises(ConfigError) as error:
        check(config)
    assert f"profiles.quick.{key}" in str(error.value)


def test_the_cli_prints_a_users_error_and_shows_a_bugs_traceback(monkeypatch, capsys):
    from tlrepro import cli

    assert cli.main(["--config", "no/such/config.yaml", "plan"]) == 2
    assert "no/such/config.yaml" in capsys.readouterr().err

    def broken(args):
        raise KeyError("a bug")

    monkeypatch.setattr(cli, "cmd_validate", broken)
    with pytest.raises(KeyError, match="a bug"):
        cli.main(["--config", str(REPO / "config" / "config.yaml"), "validate"])
