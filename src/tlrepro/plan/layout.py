"""Where everything the pipeline writes lives: the one home of file and folder names.

Both runners, the CLI and the tests take paths from here, so a name is spelled
once. Paths are relative to the repository root, where every command runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tlrepro.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parents[3]
"""The repository this package was installed from (editable), for the files it ships
beside the code (config/schema.yaml, the papers' numbers) when run elsewhere."""
DATA_DIR = Path("data")
RESULTS_DIR = Path("results")

MANIFEST = "manifest.json"
SPLIT_FILES = ("train.safetensors", "val.safetensors", "test.safetensors")

MODEL_FILE = "model.safetensors"
METRICS_FILE = "metrics.json"
LOG_FILE = "log.csv"
LOG_COLUMNS = (
    "epoch",
    "train_loss",
    "train_acc",
    "val_loss",
    "val_acc",
    "test_loss",
    "test_acc",
    "lr",
    "seconds",
    "images_per_second",
)
"""log.csv's fixed columns; a method's `extra_stats` follow them."""
CHECKPOINT = "checkpoints/last.pt"
"""Resume state inside a run folder, removed once metrics.json is written."""
TRANSFER_REPORT = "transfer_report.json"
RST_FILE = "rst.safetensors"

TABLE_FILES = {"md": "tables.md", "csv": "tables.csv", "claims": "claims.csv"}
"""What `tlrepro tables` writes per profile; the active profile's copies keep these names."""
GROUP_FIGURES = {"curves": "{group}.png", "stats": "{group}-stats.png"}
"""A group's figures in its profile's figures folder: the learning curves, and the statistics
its methods log (only where they log any); `.format(group=...)` names one."""


TASK_SEPARATOR = "-to-"


@dataclass(frozen=True)
class Task:
    """A transfer task, `<source>-to-<target>` in the config, the folders and the tables."""

    source: str
    target: str

    @classmethod
    def parse(cls, name: str) -> Task:
        source, separator, target = name.partition(TASK_SEPARATOR)
        if not separator or not source or not target:
            raise ConfigError(f"task {name!r} is not of the form <source>{TASK_SEPARATOR}<target>")
        return cls(source, target)

    @classmethod
    def is_task(cls, name: str) -> bool:
        """Whether `name` names a task (not, say, a paper's `<space>-avg` cell)."""
        return TASK_SEPARATOR in name

    @property
    def name(self) -> str:
        return f"{self.source}{TASK_SEPARATOR}{self.target}"


def raw_dir() -> Path:
    return DATA_DIR / "raw"


def prepared_dir(profile: str, dataset: str) -> Path:
    return DATA_DIR / "prepared" / profile / dataset


def pretrained_dir(profile: str, model: str, dataset: str) -> Path:
    return RESULTS_DIR / "pretrained" / profile / model / dataset


def runs_dir(profile: str) -> Path:
    return RESULTS_DIR / "runs" / profile


def seed_folder(seed: int | str) -> str:
    return f"seed{seed}"


def run_dir(profile: str, group: str, method_key: str, task: str, seed: int) -> Path:
    return runs_dir(profile) / group / method_key / task / seed_folder(seed)


def profile_tables(profile: str) -> dict[str, Path]:
    """Each profile's tables side by side in results/, so that their figure links (to
    figures/<profile>/) hold for the active profile's copies too."""
    return {
        kind: RESULTS_DIR / f"{Path(name).stem}-{profile}{Path(name).suffix}"
        for kind, name in TABLE_FILES.items()
    }


def active_tables() -> dict[str, Path]:
    """results/tables.md etc.: the tables of the profile the last run asked for."""
    return {kind: RESULTS_DIR / name for kind, name in TABLE_FILES.items()}


def figures_dir(profile: str) -> Path:
    return RESULTS_DIR / "figures" / profile


def report_dir(profile: str) -> Path:
    """Per-group pages that Snakemake's HTML report files under each group's category."""
    return RESULTS_DIR / "report" / profile
