"""What a profile will cost before it runs, and what each training job asks its executor for.

Images are counted from the plan (epochs x steps x batch x the method's streams; a null
`steps_per_epoch` is one pass over the method's first stream), evaluation from the
splits each epoch evaluates. Seconds and memory come from the calibration file
(config/calibration.csv, written by bench/calibrate.py): per (model, image size, method
key, device) the milliseconds per training and evaluation image, peak memory and the
checkpoints' sizes, each row naming the machine and commit it was measured on. Nothing
is guessed: a size the manifests and `tlrepro.data.sizes` do not know is "unknown", a
cost without a row "unmeasured". The requests (`Requests`) are the estimate times a
safety factor, never below a floor; without a measurement, the profile's fixed values.
Imports no torch: the rules call it while Snakemake builds its DAG.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from tabulate import tabulate

from tlrepro import storage
from tlrepro.data.sizes import KNOWN
from tlrepro.models.registry import model_spec
from tlrepro.plan.jobs import Job, Jobs
from tlrepro.plan.layout import MANIFEST, prepared_dir
from tlrepro.plan.runs import Plan, PretrainJob, RunJob, paper_file

CALIBRATION_FILE = "calibration.csv"
KEY = ["model", "image_size", "method_key", "device"]
COLUMNS = [
    *KEY,
    "batch_size",
    "train_ms_per_image",
    "eval_ms_per_image",
    "peak_host_mb",
    "peak_accelerator_mb",
    "model_mb",
    "resume_mb",
    "machine",
    "commit",
    "source",
]
CPU = "CPU"
REFERENCE_GPU = "NVIDIA H200"
UNMEASURED = "unmeasured"
UNKNOWN = "unknown"


def read_calibration(path: Path) -> pd.DataFrame:
    """The calibration rows indexed by `KEY` (none when the file does not exist)."""
    frame = pd.read_csv(path) if Path(path).exists() else pd.DataFrame(columns=COLUMNS)
    return frame.astype({"image_size": int}).set_index(KEY).sort_index()


def calibration_of(config_file: Path) -> pd.DataFrame:
    return read_calibration(paper_file(config_file, CALIBRATION_FILE))


def split_sizes(plan: Plan, dataset: str) -> dict[str, int] | None:
    """Images per split as prepared: the manifest's when prepared, else carved from the
    known official splits the way `tlrepro.data.prepare` carves them; None if unknown."""
    manifest = prepared_dir(plan.profile_name, dataset) / MANIFEST
    if manifest.exists():
        return {split: entry["n"] for split, entry in storage.read_json(manifest)["splits"].items()}
    options = plan.dataset_options(dataset)
    known = KNOWN.get(dataset)
    if known is None or options.get("standin") is not None or "parts" in options:
        return None
    splits = dict(known.splits)
    if known.size_option is not None:
        splits["train"] = options[known.size_option]
    if not splits:
        return None
    for split in ("train", "test"):
        if (per_class := options.get(f"{split}_per_class")) is not None and split in splits:
            splits[split] = per_class * known.classes
    for split in ("test", "val"):
        if split not in splits:
            fraction = options.get(f"{split}_fraction", 0.0)
            splits[split] = round(fraction * splits["train"])
            splits["train"] -= splits[split]
    return splits


def _train_size(plan: Plan, run: RunJob, stream: str) -> float:
    dataset = run.task.target if stream == "target" else run.task.source
    sizes = split_sizes(plan, dataset)
    if sizes is None:
        return math.nan
    if stream == "target" and run.target_train_per_class is not None:
        return run.target_train_per_class * KNOWN[dataset].classes
    if stream == "target" and run.target_train_fraction is not None:
        return max(KNOWN[dataset].classes, round(run.target_train_fraction * sizes["train"]))
    if run.protocol == "transductive":  # tlrepro.data.protocol.run_splits
        kept = ("train", "val", "test") if stream == "target" else ("train", "test")
        return sum(sizes[split] for split in kept)
    return sizes["train"]


def images(plan: Plan, run: RunJob) -> tuple[float, float]:
    """(training, evaluation) images of one run; NaN where a split size is unknown."""
    training = run.training
    streams = run.spec.streams
    batch = training.batch_size
    steps = training.epoch_steps(_train_size(plan, run, streams[0]))
    selection = run.task.source if run.spec.selection == "source_val" else run.task.target
    chosen, target = split_sizes(plan, selection), split_sizes(plan, run.task.target)
    if chosen is None or target is None:
        evaluated = math.nan
    else:  # the transductive protocol tests on every target image
        tested = sum(target.values()) if run.protocol == "transductive" else target["test"]
        evaluated = chosen["val"] + tested
    return training.epochs * steps * batch * len(streams), training.epochs * evaluated


def data_mb(plan: Plan, run: RunJob) -> float:
    """The prepared images a run holds in memory (every split of every dataset it reads,
    as 3-channel uint8: an upper bound for grey datasets); NaN when a size is unknown."""
    return sum(_dataset_mb(plan, dataset) for dataset in run.datasets)


def _dataset_mb(plan: Plan, dataset: str) -> float:
    sizes = split_sizes(plan, dataset)
    if sizes is None:
        return math.nan
    return sum(sizes.values()) * 3 * plan.image_size(dataset) ** 2 / 2**20


def _row(calibration: pd.DataFrame, plan: Plan, run: RunJob, device: str) -> pd.Series | None:
    key = (run.model, plan.image_size(run.task.target), run.method_key, device)
    return calibration.loc[key] if key in calibration.index else None


def run_costs(plan: Plan, calibration: pd.DataFrame, gpu: str = REFERENCE_GPU) -> pd.DataFrame:
    """One row per run: its images, seconds on the reference GPU and on the CPU, peak
    memory and disk; NaN where unknown or unmeasured."""
    rows = []
    for run in plan.runs:
        train, evaluated = images(plan, run)
        on_gpu, on_cpu = (_row(calibration, plan, run, device) for device in (gpu, CPU))
        rows.append(
            {
                "group": run.group,
                "run": run.folder,
                "train_images": train,
                "eval_images": evaluated,
                "gpu_train_s": _seconds(on_gpu, "train", train),
                "gpu_eval_s": _seconds(on_gpu, "eval", evaluated),
                "cpu_s": _seconds(on_cpu, "train", train) + _seconds(on_cpu, "eval", evaluated),
                # the data lives on the device too (tlrepro.training.trainer.TensorSet)
                "peak_accelerator_mb": _value(on_gpu, "peak_accelerator_mb") + data_mb(plan, run),
                "peak_host_mb": _value(on_cpu, "peak_host_mb") + data_mb(plan, run),
                # sizes do not depend on the device: whichever row has them
                "model_mb": _either(on_gpu, on_cpu, "model_mb"),
                "resume_mb": _either(on_gpu, on_cpu, "resume_mb"),
            }
        )
    return pd.DataFrame(rows)


def _value(row: pd.Series | None, column: str) -> float:
    return math.nan if row is None or pd.isna(row[column]) else float(row[column])


def _either(first: pd.Series | None, second: pd.Series | None, column: str) -> float:
    value = _value(first, column)
    return _value(second, column) if math.isnan(value) else value


def _seconds(row: pd.Series | None, kind: str, count: float) -> float:
    return _value(row, f"{kind}_ms_per_image") * count / 1000


@dataclass(frozen=True)
class Rule:
    """How a job's request follows from its estimate: `safety` x estimate, at least the
    floor; the profile's fixed value (resources.train) when nothing is measured."""

    safety: float
    min_runtime: int
    """minutes"""
    min_mem_mb: int
    device: str
    """The calibration rows that size the requests: the CPU's, or the reference GPU's."""

    @classmethod
    def of(cls, plan: Plan) -> Rule:
        """The profile's `resources.requests`, with the schema's defaults."""
        given = plan.profile.get("resources", {}).get("requests", {})
        cuda = plan.profile.get("runtime", {}).get("device") == "cuda"
        return cls(
            given.get("safety", 2.0),
            given.get("min_runtime", 15),
            given.get("min_mem_mb", 2000),
            given.get("reference_gpu", REFERENCE_GPU) if cuda else CPU,
        )


@dataclass(frozen=True)
class Requests:
    runtime: int
    """minutes"""
    mem_mb: int
    gpu_mem_mb: int
    """0 where not measured: no request."""
    estimated: bool


def job_seconds(plan: Plan, job: Job, calibration: pd.DataFrame, device: str) -> float:
    """A job's estimated seconds on `device`; NaN when a run of it is unmeasured. Where a
    row has no evaluation cost (the GPU rows from docs/measured), evaluation is bounded
    by the training cost per image: a forward pass without gradients costs less."""
    return sum(
        _training_seconds(_row(calibration, plan, run, device), *images(plan, run))
        for run in job.runs
    )


def _training_seconds(row: pd.Series | None, train: float, evaluated: float) -> float:
    """Seconds for `train` training and `evaluated` evaluation images at the row's costs,
    evaluation bounded by the training cost where the row has none."""
    eval_ms = _value(row, "eval_ms_per_image")
    if math.isnan(eval_ms):
        eval_ms = _value(row, "train_ms_per_image")
    return (_value(row, "train_ms_per_image") * train + eval_ms * evaluated) / 1000


def requests(plan: Plan, job: Job, calibration: pd.DataFrame) -> Requests:
    """What a transfer job asks for (`Rule`): runtime and host memory, GPU memory where
    measured."""
    rule = Rule.of(plan)
    seconds = job_seconds(plan, job, calibration, rule.device)
    rows = [(run, _row(calibration, plan, run, rule.device)) for run in job.runs]
    host, accelerator = (
        pd.Series([_value(row, column) + data_mb(plan, run) for run, row in rows]).max()
        for column in ("peak_host_mb", "peak_accelerator_mb")
    )
    return _sized(plan, rule, len(job.runs), seconds, host, accelerator)


def pretrain_requests(plan: Plan, job: PretrainJob, calibration: pd.DataFrame) -> Requests:
    """What a source pretraining asks for, sized like a transfer job's from the calibrated
    cost of the method it resembles (its model spec's `pretraining.costs_like`)."""
    rule = Rule.of(plan)
    proxy = model_spec(job.model).pretraining.costs_like
    key = (job.model, plan.image_size(job.dataset), proxy, rule.device)
    row = calibration.loc[key] if key in calibration.index else None
    sizes = split_sizes(plan, job.dataset)
    if sizes is None:
        return _sized(plan, rule, 1, math.nan, math.nan, math.nan)
    training = job.training
    batch = training.batch_size
    steps = training.epoch_steps(sizes["train"])
    train, evaluated = training.epochs * steps * batch, training.epochs * sizes["val"]
    seconds = _training_seconds(row, train, evaluated)
    data = _dataset_mb(plan, job.dataset)
    host, accelerator = (
        _value(row, column) + data for column in ("peak_host_mb", "peak_accelerator_mb")
    )
    return _sized(plan, rule, 1, seconds, host, accelerator)


def _sized(
    plan: Plan, rule: Rule, runs: int, seconds: float, host: float, accelerator: float
) -> Requests:
    """`safety` x the estimate, at least the floor; the profile's fixed `resources.train`
    (per run) where the estimate is unmeasured."""
    train = plan.profile.get("resources", {}).get("train", {})
    runtime = (
        train.get("runtime", 60) * runs
        if math.isnan(seconds)
        else max(rule.min_runtime, math.ceil(rule.safety * seconds / 60))
    )
    mem_mb = (
        train.get("mem_mb", 4000)
        if math.isnan(host)
        else max(rule.min_mem_mb, math.ceil(rule.safety * host))
    )
    gpu_mem_mb = 0 if math.isnan(accelerator) else math.ceil(rule.safety * accelerator)
    return Requests(runtime, mem_mb, gpu_mem_mb, not math.isnan(seconds))


def downloads(plan: Plan, datasets: Iterable[str]) -> float:
    """MB that preparing these datasets downloads, each shared download once; NaN if any
    is unknown."""
    sizes: dict[str, float | None] = {}
    for name in datasets:
        known = KNOWN.get(name)
        standin = plan.dataset_options(name).get("standin") is not None
        sizes[known.collection or name if known else name] = (
            0.0 if standin else (known.download_mb if known else None)
        )
    return math.nan if None in sizes.values() else sum(sizes.values())


def _total(values: pd.Series, digits: int, missing: str) -> str:
    """A column's sum: the number, `missing`, or the number and how many runs lack one."""
    lacking = int(values.isna().sum())
    if lacking == len(values):
        return missing
    text = f"{values.sum():,.{digits}f}"
    return text if not lacking else f"{text} + {lacking} runs {missing}"


def _peak(values: pd.Series, missing: str) -> str:
    return missing if values.isna().all() else f"{values.max() / 1024:,.2f}"


def bill(jobs: Jobs, calibration: pd.DataFrame, gpu: str = REFERENCE_GPU) -> pd.DataFrame:
    """Per group and in total: jobs, runs, images, GPU- and CPU-hours, peak memory (GB),
    disk (GB: the runs' models; one job's resume checkpoint) and downloads (GB)."""
    plan = jobs.plan
    costs = run_costs(plan, calibration, gpu)
    job_counts = pd.Series([job.first.group for job in jobs.jobs]).value_counts()
    datasets = {
        group: {d for run in plan.runs if run.group == group for d in run.datasets}
        for group in plan.groups()
    }
    rows = {}
    for group, part in [*costs.groupby("group", sort=False), ("total", costs)]:
        names = set().union(*datasets.values()) if group == "total" else datasets[group]
        download = downloads(plan, names)
        rows[group] = {
            "jobs": int(job_counts.sum() if group == "total" else job_counts[group]),
            "runs": len(part),
            "train images": _total(part["train_images"], 0, UNKNOWN),
            "eval images": _total(part["eval_images"], 0, UNKNOWN),
            f"GPU-h train ({gpu})": _total(part["gpu_train_s"] / 3600, 2, UNMEASURED),
            f"GPU-h eval ({gpu})": _total(part["gpu_eval_s"] / 3600, 2, UNMEASURED),
            "CPU-h": _total(part["cpu_s"] / 3600, 2, UNMEASURED),
            "peak GPU GB": _peak(part["peak_accelerator_mb"], UNMEASURED),
            "peak host GB (CPU)": _peak(part["peak_host_mb"], UNMEASURED),
            "results GB": _total(part["model_mb"] / 1024, 2, UNMEASURED),
            "resume GB (one job)": _peak(part["resume_mb"], UNMEASURED),
            "download GB": UNKNOWN if math.isnan(download) else f"{download / 1024:,.2f}",
        }
    return pd.DataFrame.from_dict(rows, orient="index")


def provenance(calibration: pd.DataFrame) -> list[str]:
    """Where the calibration rows were measured: one line per device."""
    frame = calibration.reset_index()
    return [
        f"- {device}: {', '.join(sorted(set(part['machine'])))} at commit(s) "
        f"{', '.join(sorted(set(part['commit'].astype(str))))} ({len(part)} rows; "
        f"{', '.join(sorted(set(part['source'])))})"
        for device, part in frame.groupby("device")
    ]


def missing_rows(plan: Plan, calibration: pd.DataFrame, device: str) -> list[str]:
    """The (model, image size, method key) a profile's runs need and `device` lacks."""
    needed = {(run.model, plan.image_size(run.task.target), run.method_key) for run in plan.runs}
    return sorted(
        f"{model} {size} px {method}"
        for model, size, method in needed
        if (model, size, method, device) not in calibration.index
    )


def render(jobs: Jobs, calibration: pd.DataFrame, gpu: str = REFERENCE_GPU) -> str:
    """The bill as markdown: the table, where its figures come from, what is missing."""
    plan = jobs.plan
    table = bill(jobs, calibration, gpu)
    lines = [
        f"# Cost of profile `{plan.profile_name}` (`tlrepro estimate`)",
        "",
        tabulate(table, headers=["group", *table.columns], tablefmt="github"),
        "",
        "Calibration (config/calibration.csv, bench/calibrate.py):",
        *(provenance(calibration) or ["- none"]),
    ]
    for device in (gpu, CPU):
        if missing := missing_rows(plan, calibration, device):
            lines += ["", f"No {device} row (its runs are unmeasured there): {'; '.join(missing)}."]
    return "\n".join(lines) + "\n"
