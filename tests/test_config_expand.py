"""The short form expands into the full form: axes, named pieces, defaults, and errors that
name the short form's key."""

from __future__ import annotations

import pytest

from tlrepro.config.expand import expand_config
from tlrepro.config.load import ConfigError, load_config, validate
from tlrepro.config.training import Training

from .conftest import REPO, tiny_config

DEFAULTS = Training().record()


def expand(profile: dict, **shared: dict) -> dict:
    """The expanded groups of a one-profile config."""
    base = {"pretrain": {"training": {}, "min_accuracy": 0.0}}
    config = {"profile": "p", "profiles": {"p": {**base, **profile}}, **shared}
    expanded, _ = expand_config(config, DEFAULTS)
    return expanded["profiles"]["p"]["groups"]


GROUP = {"model": "small_vgg", "tasks": ["a-to-b"], "seeds": [0], "methods": {"scratch": {}}}


def test_list_valued_axes_make_one_group_per_value_with_placeholders_filled():
    groups = expand(
        {
            "groups": {
                "shots": {
                    **GROUP,
                    "title": "{n} per class, {model}",
                    "reported": "table_n{n}",
                    "target_train_per_class": ["full", 5],
                },
                "depth": {
                    **GROUP,
                    "title": "into {model}",
                    "reported": "table_{model}",
                    "model": {"resnet34": "ResNet-34"},
                },
                "grid": {**GROUP, "model": ["lenet", "small_vgg"], "target_train_per_class": [2]},
            }
        }
    )
    assert list(groups) == [
        "shots_full",
        "shots_n5",
        "depth_resnet34",
        "grid_lenet_n2",
        "grid_small_vgg_n2",
    ]
    assert "target_train_per_class" not in groups["shots_full"]
    assert groups["shots_n5"]["target_train_per_class"] == 5
    assert groups["shots_n5"]["title"] == "5 per class, small_vgg"
    assert groups["shots_full"]["reported"] == "table_nfull"
    assert groups["depth_resnet34"]["model"] == "resnet34"
    assert groups["depth_resnet34"]["title"] == "into ResNet-34"
    assert groups["depth_resnet34"]["reported"] == "table_resnet34"  # a key: the model's name
    assert groups["grid_lenet_n2"]["model"] == "lenet"


def test_a_scalar_axis_keeps_the_entry_name():
    groups = expand({"groups": {"g": {**GROUP, "target_train_per_class": 10}}})
    assert list(groups) == ["g"] and groups["g"]["target_train_per_class"] == 10


def test_training_layers_defaults_group_defaults_recipes_and_overrides():
    groups = expand(
        {
            "group_defaults": {"seeds": [1], "training": {"augment": "shift", "lr": 0.5}},
            "recipes": {"base": {"epochs": 7, "lr": 0.1}, "short": {"recipe": "base", "epochs": 2}},
            "groups": {
                "named": {**GROUP, "seeds": [0], "training": "short"},
                "extended": {
                    **{key: value for key, value in GROUP.items() if key != "seeds"},
                    "training": {"recipe": "base", "batch_size": 8},
                },
                "plain": {
                    **GROUP,
                    "training": {"epochs": 3},
                    "methods": {
                        "scratch": {"training": {"lr": 0.2}},
                        "finetune": {"training": {"recipe": "base", "lr": 0.3}},
                    },
                },
            },
        }
    )
    named, extended, plain = groups["named"], groups["extended"], groups["plain"]
    assert named["seeds"] == [0] and extended["seeds"] == [1]
    assert named["training"] == {**DEFAULTS, "augment": "shift", "lr": 0.1, "epochs": 2}
    assert extended["training"] == {
        **DEFAULTS,
        "augment": "shift",
        "lr": 0.1,
        "epochs": 7,
        "batch_size": 8,
    }
    assert plain["training"] == {**DEFAULTS, "augment": "shift", "lr": 0.5, "epochs": 3}
    # a method's plain block overrides its group's (the plan merges them); one that names a
    # recipe starts from the defaults plus that recipe instead
    assert plain["methods"]["scratch"]["training"] == {"lr": 0.2}
    assert plain["methods"]["finetune"]["training"] == {
        **DEFAULTS,
        "augment": "shift",
        "epochs": 7,
        "lr": 0.3,
    }


def test_method_sets_take_added_and_replaced_methods_and_task_sets_resolve():
    groups = expand(
        {
            "method_sets": {"mine": {"finetune": {"label": "mine"}}},
            "task_sets": {"pair": ["a-to-b", "b-to-a"]},
            "groups": {
                "g": {
                    **GROUP,
                    "tasks": "pair",
                    "methods": {"set": "shared", "finetune": {}, "joint": {}},
                },
                "h": {**GROUP, "methods": "mine"},
            },
        },
        method_sets={"shared": {"scratch": {}, "finetune": {"label": "FT"}}},
    )
    assert groups["g"]["methods"] == {"scratch": {}, "finetune": {}, "joint": {}}
    assert groups["g"]["tasks"] == ["a-to-b", "b-to-a"]
    assert groups["h"]["methods"] == {"finetune": {"label": "mine"}}


@pytest.mark.parametrize(
    ("group", "message"),
    [
        (
            {"target_train_per_class": [5, 10, "ten"]},
            "at 'profiles.p.groups.g.target_train_per_class[2]': 'ten' is neither",
        ),
        ({"target_train_per_class": {5: "five", "x": "ex"}}, "target_train_per_class.x'"),
        ({"training": "fast"}, "at 'profiles.p.groups.g.training': unknown recipe 'fast'; "),
        ({"training": {"recipe": "fast"}}, "groups.g.training.recipe': unknown recipe"),
        ({"methods": {"set": "none_such"}}, "groups.g.methods.set': unknown method set"),
        ({"tasks": "office"}, "groups.g.tasks': unknown task set 'office'"),
        ({"model": []}, "groups.g.model': an empty list"),
    ],
)
def test_errors_name_the_short_form_key(group, message):
    with pytest.raises(ConfigError) as error:
        expand({"recipes": {"slow": {"epochs": 9}}, "groups": {"g": {**GROUP, **group}}})
    assert message in str(error.value)


def test_unknown_pieces_list_what_exists():
    with pytest.raises(ConfigError, match=r"define: slow, steady$"):
        expand({"recipes": {"slow": {}, "steady": {}}, "groups": {"g": {**GROUP, "training": "x"}}})


def test_missing_keys_collisions_and_cycles_are_refused():
    without_seeds = {key: value for key, value in GROUP.items() if key != "seeds"}
    with pytest.raises(
        ConfigError, match=r"no `seeds`; give it here or under 'profiles.p.group_defaults'"
    ):
        expand({"groups": {"g": without_seeds}})
    with pytest.raises(ConfigError, match="expands to group 'g_n5'"):
        expand({"groups": {"g": {**GROUP, "target_train_per_class": [5]}, "g_n5": GROUP}})
    with pytest.raises(ConfigError, match=r"in a cycle \(a -> b -> a\)"):
        expand(
            {
                "recipes": {"a": {"recipe": "b"}, "b": "a"},
                "groups": {"g": {**GROUP, "training": "a"}},
            }
        )


def test_schema_errors_in_the_short_form_name_list_items():
    config = tiny_config()
    config["profiles"]["quick"]["groups"]["baselines"]["target_train_per_class"] = [5, 0]
    with pytest.raises(ConfigError, match=r"groups\.baselines\.target_train_per_class\[1\]"):
        validate(config)


def test_short_form_errors_surface_as_config_errors():
    config = tiny_config()
    config["profiles"]["quick"]["groups"]["baselines"]["training"] = "nonesuch"
    with pytest.raises(ConfigError, match="unknown recipe 'nonesuch'"):
        validate(config)


def test_registry_errors_name_the_entry_an_expanded_group_came_from():
    config = tiny_config()
    config["profiles"]["quick"]["groups"]["baselines"]["model"] = ["small_vgg", "small_vgx"]
    with pytest.raises(ConfigError, match=r"at 'profiles\.quick\.groups\.baselines\.model'"):
        validate(config)


def test_repository_config_expands_its_axes():
    paper = load_config(REPO / "config" / "config.yaml", "paper")["profiles"]["paper"]["groups"]
    depth = [name for name in paper if name.startswith("tlvfc_depth_")]
    assert depth == [f"tlvfc_depth_resnet{n}" for n in (34, 50, 101, 152)]
    assert paper["tlvfc_depth_resnet101"].title == (
        "TLVFC: ImageNet VGG19 into ResNet-101 (depth table, CIFAR-10)"
    )
    assert paper["tlvfc_depth_resnet101"].reported == "tlvfc_depth_resnet101"
    assert paper["adaptive_n15"].reported == "multitune_n15"
    assert paper["adaptive_n15"].target_train_per_class == 15
    assert "spottune_global" in paper["adaptive_full"].methods
    assert "spottune_global" not in paper["adaptive_n15"].methods


def test_task_training_resolves_per_task_and_must_name_the_groups_tasks():
    groups = expand(
        {"groups": {"g": {**GROUP, "task_training": {"a-to-b": {"weight_decay": 0.0}}}}}
    )
    assert groups["g"]["task_training"] == {"a-to-b": {"weight_decay": 0.0}}
    with pytest.raises(ConfigError, match=r"task_training.*c-to-d not among"):
        expand({"groups": {"g": {**GROUP, "task_training": {"c-to-d": {"weight_decay": 0.0}}}}})
