"""The config file's typed model: every key, its type, its range and its default, once.

`ConfigFile` is the file as written (the short form, tlrepro.config.expand); `Training`
is a complete training block. config/schema.yaml is generated from these models
(`tlrepro schema`; a test fails when it is stale) for editors and for anyone who checks
the file with `snakemake.utils.validate`; the pipeline itself checks it once, with these
models (tlrepro.config.load). A method's own settings are its `Settings` model, beside
the method (tlrepro.methods.*_settings): the loader validates a method entry's
`settings` against it once its method is known.

An optional key written as `x: int = absent(...)` may be left out but not given as
null; `x: int | None` takes null too (where null means something). An absent training
key that has no default (`precision`) stays out of what a run records, so adding such a
key never changes an existing run's identity. Torch-free.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import Discriminator, Field, SerializeAsAny, Tag, model_validator

from tlrepro.config.training import Fraction, Training
from tlrepro.methods.settings import Settings
from tlrepro.plan.layout import REPO_ROOT
from tlrepro.typed import Distinct, Strict, absent

SCHEMA_FILE = REPO_ROOT / "config" / "schema.yaml"


def name_or(model: Any, description: str) -> Any:
    """A named piece (a string) or the model itself; an error names only the branch that
    the value's kind takes."""
    return Annotated[
        Annotated[str, Tag("name")] | Annotated[model, Tag("block")],
        Discriminator(lambda v: "name" if isinstance(v, str) else "block"),
        Field(description=description),
    ]


TaskName = Annotated[str, Field(pattern=r"^[a-z0-9_]+-to-[a-z0-9_]+$")]
KEY_PATTERN = r"^[a-z0-9_]+$"


class TrainingBlock(Training):
    """A training block as written: the keys it gives (over the block beneath it) and the
    recipe it extends. A block that names a recipe starts from the defaults (then the
    profile's group_defaults.training for groups and methods) plus the recipe; one that
    names none starts from the block above it (a method's: its group's; a pretrained
    model's: pretrain.training). Applied by tlrepro.config.expand, not by Snakemake's
    validate: filling the defaults into every block would override what a method inherits
    from its group (check with set_default=False)."""

    recipe: str = absent(description="The recipe this block extends (`recipes`).")


TrainingEntry = name_or(TrainingBlock, "A recipe's name (`recipes`), or a training block.")
MinAccuracy = Annotated[
    float,
    Field(
        ge=0,
        le=1,
        description="Quality bar of a source pretraining: the least accuracy (a fraction) its "
        "final model must reach on the source validation split (CLIP models: zero-shot "
        "accuracy). Below it the pretraining fails and no transfer run starts from it. Not "
        "part of the pretraining's identity: changing it never retrains a model.",
    ),
]


class DatasetPart(Strict):
    n_images: int = absent(ge=10)
    seed: int = absent(ge=0)
    root: str | None = None
    train_per_class: int = absent(ge=1)


class Standin(Strict):
    """Prepare generated images instead of the dataset's files (tlrepro.data.standin): the
    same classes, channels and official splits, `train_per_class` training images of every
    class and `eval_images` (default: one per class; the classes in turn) in each official
    val/test split. The rehearsal profile sets it; the other options (fractions, seed,
    image_size) still apply."""

    train_per_class: int = Field(ge=1)
    eval_images: int = absent(ge=1)


class Dataset(Strict):
    n_images: int = absent(ge=10, description="Images to render (synthetic sets only).")
    val_fraction: Fraction = absent()
    test_fraction: Fraction = absent()
    seed: int = absent(ge=0)
    image_size: int = absent(ge=8)
    resize: Literal["squash", "shorter_side_crop"] = absent(
        description="How images reach image_size x image_size at preparation "
        "(torchvision-downloaded sets): squash (resize both sides, aspect ratio lost; the "
        "default) or shorter_side_crop (shorter side to image_size, aspect ratio kept, then a "
        "centre crop: the Visual Decathlon's Resize(72) + CenterCrop(72))."
    )
    train_per_class: int = absent(
        ge=1, description="Keep a seeded random subset of the builder's training split, per class."
    )
    test_per_class: int = absent(
        ge=1, description="Likewise for its official test split (e.g. Fashion-MNIST's 10,000)."
    )
    parts: dict[str, DatasetPart | None] = absent(
        min_length=1,
        description="caption_mix only: the datasets it combines, name -> that dataset's own "
        "options (tlrepro.data.caption_mix).",
    )
    root: str | None = Field(
        None, description="Folder of a manually placed dataset, or of the downloads."
    )
    url: str | None = None
    sha256: Annotated[str, Field(pattern="^[0-9a-f]{64}$")] | None = None
    standin: Standin | None = None


class MethodEntry(Strict):
    method: str = absent(
        description="Registry name; defaults to the entry's key (use it for variants)."
    )
    label: str = absent(description="Row name in the tables.")
    training: TrainingEntry = absent()
    settings: dict[str, Any] = absent(
        description="The method's own hyper-parameters: its settings model (checked when its "
        "method is known)."
    )


class MethodsBlock(Strict):
    """Method entries by key (the table's rows) over an optional `set: NAME`, which includes
    that `method_sets` entry; the other entries add or replace methods."""

    model_config = Strict.model_config | {
        "extra": "allow",
        "json_schema_extra": {"minProperties": 1, "propertyNames": {"pattern": KEY_PATTERN}},
    }
    __pydantic_extra__: dict[str, MethodEntry]

    set: str = absent()

    @model_validator(mode="before")
    @classmethod
    def _keys(cls, value: Any) -> Any:
        if isinstance(value, dict):
            if not value:
                raise ValueError("no methods")
            bad = [key for key in value if not re.fullmatch(KEY_PATTERN, str(key))]
            if bad:
                raise ValueError(f"method keys are names of [a-z0-9_], not {bad!r}")
        return value


Methods = name_or(
    MethodsBlock, "Method entries by key, or the name of a `method_sets` entry (`set: NAME`)."
)
Tasks = name_or(
    Annotated[list[TaskName], Field(min_length=1), Distinct],
    "A list of `source-to-target` tasks, or the name of one in `task_sets`.",
)
Regime = Annotated[int, Field(ge=1)] | None | str


class Reference(Strict):
    """The group's healthy-training check, a reporting setting (never part of a run's
    identity): the reference baseline's mean test accuracy over seeds at the best
    validation epoch must reach `floor` on every task of the group, else the tables
    withhold every verdict of its claims and say why. Without it the claims are judged
    and the Claims section says no floor is set."""

    method: str = Field(description="A method key of the group (e.g. scratch).")
    floor: float = Field(ge=0, le=1, description="The least accuracy, a fraction.")


class GroupEntry(Strict):
    """One table, or one per value of a list-valued axis (`model`, `target_train_per_class`:
    a list, or a mapping value -> the text its placeholder shows); each expanded group is
    named <entry>_<model> and/or <entry>_n<N> / <entry>_full. `{model}` and `{n}` in the
    title and `reported` are filled per group. Keys missing here come from the profile's
    group_defaults; model, tasks, seeds and methods must be given in one of the two."""

    title: str = absent()
    model: (
        str
        | Annotated[list[str], Field(min_length=1)]
        | Annotated[dict[str, str], Field(min_length=1)]
    ) = absent()
    source_model: str = absent(
        description="Architecture pretrained on the source when it differs from `model` "
        "(cross-architecture transfer); defaults to `model`."
    )
    source_weights: Literal["pretrain", "model"] = absent(
        description="pretrain (default): the pipeline trains `source_model` on each task's "
        "source dataset. model: `source_model` comes with its own weights (a model zoo entry "
        "such as vgg16_imagenet) and nothing is pretrained; the task's source names where "
        "those weights come from (e.g. imagenet) and is never prepared. Methods that start "
        "from the source weights (finetune, linear_probe, spottune, multitune) then need "
        "`model` to be that zoo entry too: they start from its weights with a new head."
    )
    tasks: Tasks = absent()
    seeds: Annotated[list[Annotated[int, Field(ge=0)]], Distinct] = absent(min_length=1)
    target_train_per_class: Regime | list[Regime] | dict[str, str] = absent(
        description="Keep a seeded random subset of this many labelled target images per "
        "class (`full` or null: all of them); a list or mapping gives one group per value."
    )
    target_train_fraction: Annotated[float, Field(gt=0, le=1)] | None = absent(
        description="Keep a seeded random fraction of every class's labelled target images (at "
        "least one per class); an alternative to target_train_per_class."
    )
    protocol: Literal["held_out", "transductive"] = absent(
        description="Which splits a run trains, selects and tests on (tlrepro/data/protocol.py). "
        "held_out (absent: the default): the datasets' train splits train, the selection "
        "dataset's val split chooses the epoch, the target's test split (never trained on) "
        "tests. transductive (the standard UDA protocol of the CMKD release): the whole source "
        "domain but its val carve-out is the labelled training data, the source val split "
        "chooses the epoch, and every target image (train + val + test, labels unread) is both "
        "the unlabelled training data and the test set. Only for methods that select on the "
        "source val split, without target_train_per_class/_fraction."
    )
    prompts: Literal["default", "release"] = absent(
        description='CLIP models\' class prompts. default (absent): "a photo of a {class}." of '
        "each class name; release: the CMKD release's per-dataset prompts of the target's "
        'label space (tlrepro/data/registry.py, RELEASE_PROMPTS: Office-Home "an image of a '
        '{name}", Office-31 its cleaned names, digits \'a photo of the number: "{d}"\').'
    )
    training: TrainingEntry = absent()
    task_training: dict[TaskName, TrainingBlock] = absent(
        description="Task name -> training keys for that task's runs only, applied after the "
        "group's and the method's (a release's per-dataset weight decay, e.g. CIFAR-100's 0)."
    )
    protocols: Annotated[list[Literal["max_val"]], Distinct] = absent(
        description="Reporting protocols beyond the three every group has "
        "(tlrepro.training.selection): max_val, the highest validation accuracy over epochs "
        "(MultiTune's number), shown as validation accuracy; in a group with "
        "target_train_per_class N it also cuts the target validation split to N seeded images "
        "per class, as that release did.",
    )
    methods: Methods = absent()
    reported: str | None = absent(
        description="Key of the paper-reported table in config/reported.yaml shown beside ours."
    )
    reference: Reference = absent()

    @model_validator(mode="after")
    def _one_regime(self) -> GroupEntry:
        if {"target_train_per_class", "target_train_fraction"} <= self.model_fields_set:
            raise ValueError("both target_train_per_class and target_train_fraction; keep one")
        return self


class Method(Strict):
    """A method entry of a loaded config: its registry name, its row's label, its complete
    training (its group's block under its own; per task where the group's `task_training`
    adds keys) and its method's typed settings. Built by tlrepro.config.load."""

    method: str
    label: str
    training: Training
    task_training: dict[str, Training]
    settings: SerializeAsAny[Settings]

    def training_for(self, task: str) -> Training:
        """A task's own keys (a release's per-dataset weight decay) come last."""
        return self.task_training.get(task, self.training)


class Group(Strict):
    """One table of a loaded config: an expanded group with every default filled in, the
    one shape the plan and the tables read. Built by tlrepro.config.load."""

    title: str
    model: str
    source_model: str
    """The architecture pretrained on the source (the group's `model` unless it differs)."""
    source_weights: Literal["pretrain", "model"] = "pretrain"
    tasks: list[str]
    seeds: list[int]
    target_train_per_class: int | None = None
    target_train_fraction: float | None = None
    methods: dict[str, Method]
    reported: str | None = None
    reference: Reference | None = None
    protocol: Literal["held_out", "transductive"] = "held_out"
    prompts: Literal["default", "release"] = "default"
    protocols: tuple[Literal["max_val"], ...] = ()

    @property
    def few_target_labels(self) -> bool:
        """Trained on a subset of the target's labelled images."""
        return self.target_train_per_class is not None or self.target_train_fraction is not None


class Resources(Strict):
    gpu: int = absent(ge=0)
    mem_mb: int = absent(ge=100)
    runtime: int = absent(ge=1, description="Minutes.")


class Requests(Strict):
    """How a training job's request follows from `tlrepro estimate` (docs/cost.md): runtime
    and mem_mb = safety x the estimate, at least the floors; resources.train's runtime (per
    seed) and mem_mb where config/calibration.csv has no row for the job."""

    safety: float = Field(2.0, ge=1)
    min_runtime: int = Field(15, ge=1, description="Minutes.")
    min_mem_mb: int = Field(2000, ge=100)
    reference_gpu: str = Field(
        "NVIDIA H200",
        description="The calibration rows that size the requests of a profile on cuda.",
    )


class ProfileResources(Strict):
    prepare: Resources = absent()
    train: Resources = absent()
    tables: Resources = absent()
    requests: Requests = absent()


class Runtime(Strict):
    device: Literal["auto", "cpu", "cuda"] = absent()
    torch_threads: int = absent(
        ge=1,
        description="Intra-op threads of every training job. Fixed here, not taken from "
        "--cores, so that results do not depend on how jobs are scheduled.",
    )
    progress: bool = absent()


class Convergence(Strict):
    """When a run counts as converged (tlrepro.training.convergence): the best validation
    accuracy of the later half of its last `window` of epochs (a fraction, at least
    `min_window` epochs) is at most `tolerance` above the best of the earlier half. A
    reporting setting, not part of a run's identity: the tables judge every run again
    against it."""

    window: float = Field(0.25, gt=0, lt=1)
    """The final window, as a fraction of the run's epochs."""
    min_window: int = Field(2, ge=1)
    """The window's least number of epochs."""
    tolerance: float = Field(0.01, ge=0, le=1)
    """The largest gain in accuracy (a fraction) the final window may still bring."""


class ModelOptions(Strict):
    """Construction options of a model, wherever it is built (pretraining, runs, source
    models). download: false builds random weights where published ones would be
    downloaded (model-zoo entries, CLIP tags); image_size: a CLIP image tower's input
    side. The rehearsal profile sets both."""

    download: bool = absent()
    image_size: int = absent(ge=32)


class PretrainModel(Strict):
    training: TrainingEntry = absent()
    min_accuracy: MinAccuracy = absent()
    dataset: str = absent(
        description="The dataset this model is pretrained on, whatever the task's source "
        "(default: each task's source): e.g. the tiny CLIP's caption_mix. Its quality bar is "
        "judged on this dataset's validation split."
    )
    weights: str | None = absent(
        description="Pretrained weights the model starts from: a tag its library downloads "
        '(CLIP: "openai") or the path of a local weights file (offline machines; resnet26: '
        "Rebuffi's ImageNet state dict, see tlrepro.models.resnet26_import). A supervised "
        "pretraining given weights keeps their body and batch-norm statistics and trains only "
        "a source head, so the runs start from exactly those weights."
    )


class Pretrain(Strict):
    seed: int = absent(ge=0)
    training: TrainingEntry
    min_accuracy: MinAccuracy = Field(
        description="Default quality bar of every source pretraining of the profile (a "
        "model's own `min_accuracy` overrides it)."
    )
    models: dict[str, PretrainModel] = absent(
        description="Per-model pretraining, by model name (overrides `training`)."
    )


Recipes = Annotated[
    dict[str, TrainingEntry],
    Field(description="Named training blocks, for `training` (`recipe: OTHER` extends another)."),
]
MethodSets = Annotated[
    dict[str, Methods], Field(description="Named methods mappings, for a group's `methods`.")
]
TaskSets = Annotated[
    dict[str, Annotated[list[TaskName], Field(min_length=1)]],
    Field(description="Named lists of tasks, for a group's `tasks`."),
]


class Profile(Strict):
    description: str = absent()
    image_size: int = Field(ge=8)
    runtime: Runtime = absent()
    seeds_per_job: Annotated[int, Field(ge=1)] | Literal["all"] = Field(
        "all",
        description="How many of a group's seeds one job (one process, Snakemake job or DVC "
        "stage) trains, one after the other: consecutive seeds of its `seeds`, this many at a "
        'time, or all ("all": torch\'s start-up is paid once per method and task). Seeds added '
        "on the command line (`--config seeds=N`) run one per job (tlrepro.plan.jobs).",
    )
    datasets: Annotated[dict[str, Dataset], Field(min_length=1)]
    convergence: Convergence = absent()
    model_options: dict[str, ModelOptions] = absent(
        description="Construction options by model name."
    )
    pretrain: Pretrain
    group_defaults: GroupEntry = absent(
        description="Every group's value of a key it does not set; its `training` lies "
        "beneath every group's training."
    )
    recipes: Recipes = absent()
    method_sets: MethodSets = absent()
    task_sets: TaskSets = absent()
    groups: Annotated[
        dict[Annotated[str, Field(pattern=KEY_PATTERN)], GroupEntry], Field(min_length=1)
    ]
    resources: ProfileResources = absent()


class ConfigFile(Strict):
    """tlrepro pipeline configuration: checked once, by tlrepro.config.load (for the CLI,
    the Snakemake rules and the DVC stages), which also checks the names of datasets,
    models and methods against the registries and names the offending key.
    config/schema.yaml is generated from this model (`tlrepro schema`) for editors."""

    profile: str = Field(
        description="Which entry of `profiles` to run (override with --config profile=paper). "
        "`rehearsal`, unless `profiles` defines it, is derived from `paper` by "
        "tlrepro.config.rehearsal."
    )
    profiles: Annotated[dict[str, Profile], Field(min_length=1)]
    recipes: Recipes = absent()
    method_sets: MethodSets = absent()
    task_sets: TaskSets = absent()


SCHEMA_HEADER = (
    "# GENERATED from tlrepro.config.model by `tlrepro schema`: do not edit (a test fails\n"
    "# when it lags behind the models). Snakemake's validate and editors read it.\n"
)


def json_schema() -> dict[str, Any]:
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        **ConfigFile.model_json_schema(),
    }


def schema_text() -> str:
    return SCHEMA_HEADER + yaml.safe_dump(json_schema(), sort_keys=False, width=100)


def write_schema(path: Path = SCHEMA_FILE) -> Path:
    path.write_text(schema_text())
    return path
