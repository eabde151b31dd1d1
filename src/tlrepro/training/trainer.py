"""One training loop for every method and for source pretraining.

Why it looks the way it does:
- Data lives on the device as uint8 tensors; a batch is an index into them, and
  normalisation and augmentation are batched tensor ops (no per-image Python,
  except FixMatch's strong view: see tlrepro.training.augment).
  Batches are channels_last (about 20% faster on this CPU too, and what cuDNN's
  bf16 kernels want); CUDA steps run under bf16 autocast unless the recipe says
  `precision: fp32`.
- The batch order and the augmentation of step k are pure functions of
  (seed, k), so a resumed run needs only the step number and the torch RNG
  state to continue exactly where the killed one stopped.
- Scalars stay on the device during an epoch; the host syncs once per epoch,
  where a non-finite loss stops the run before anything is checkpointed.
- Every epoch ends with an atomic checkpoint (model, optimiser, scheduler, RNG,
  history) and an atomic per-epoch log; the metrics file is written by the caller
  only after the last epoch.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from tlrepro import storage
from tlrepro.config.training import Precision, Training
from tlrepro.errors import DamagedFileError, TlreproError
from tlrepro.methods.base import Method
from tlrepro.plan.layout import CHECKPOINT, LOG_COLUMNS, LOG_FILE
from tlrepro.training.augment import (
    CLIP_AUGMENTS,
    CLIP_MEAN,
    CLIP_SIZE,
    CLIP_STD,
    clip_train_view,
    digits_train_view,
    random_crop,
    random_flip,
    random_shift,
    resize,
    strong_view,
    tlvfc_train_view,
    usps_source_view,
)


class NonFiniteLossError(TlreproError, RuntimeError):
    pass


@dataclass
class TensorSet:
    """A labelled split resident on the device (uint8), with the statistics it is normalised
    by and the size its evaluation views are resized to (None: as stored)."""

    images: Tensor
    labels: Tensor
    mean: Tensor
    std: Tensor
    eval_size: int | None = None
    view: str | None = None
    """This stream's training augmentation where it differs from the recipe's (the
    release's USPS-source view under clip_digits: `tlrepro.training.augment.stream_augment`)."""

    @classmethod
    def create(
        cls,
        images: Tensor,
        labels: Tensor,
        mean: list[float],
        std: list[float],
        device: torch.device,
        augment: str = "none",
        view: str | None = None,
    ) -> TensorSet:
        """`mean`/`std`: the dataset's statistics; with a CLIP `augment` ("clip",
        "clip_digits") the split is normalised by CLIP's instead and evaluated at CLIP's
        224 px (its preprocessing). `view`: the stream's own training augmentation."""
        eval_size = None
        if augment in CLIP_AUGMENTS:
            mean, std, eval_size = list(CLIP_MEAN), list(CLIP_STD), CLIP_SIZE

        def stat(values: list[float]) -> Tensor:
            return torch.tensor(values, device=device).view(1, -1, 1, 1)

        return cls(images.to(device), labels.to(device), stat(mean), stat(std), eval_size, view)

    def __len__(self) -> int:
        return len(self.labels)

    def batch(
        self,
        index: Tensor,
        augment: str = "none",
        generator: torch.Generator | None = None,
        strong: bool = False,
    ) -> tuple[Tensor, Tensor]:
        """The training view of `index` under `augment` (with `strong`, FixMatch's strong
        augmentation on top, drawn from `generator`); augment "none" is the evaluation view."""
        images = self.images[index]
        if augment != "none" and self.view is not None:
            augment = self.view
        if augment == "clip":
            images = clip_train_view(images, generator)
        elif augment == "tlvfc_crop":
            images = tlvfc_train_view(images, generator)
        elif augment in ("clip_digits", "clip_digits_usps"):
            if generator is None:
                raise ValueError(f"the {augment} view needs the step's generator")
            view = digits_train_view if augment == "clip_digits" else usps_source_view
            images = view(images, generator)
        elif augment == "none" and self.eval_size is not None:
            images = resize(images, self.eval_size)
        if strong:
            if generator is None:
                raise ValueError("a strong view needs the step's generator")
            images = strong_view(images, generator)
        x = (images.float().div_(255) - self.mean) / self.std
        if augment == "decathlon_crop":
            x = random_crop(x, round(x.shape[-1] * 8 / 9), generator)
        elif augment == "flip":
            x = random_flip(x, generator)
        elif augment in ("shift", "shift_flip"):
            x = random_shift(x, max(1, x.shape[-1] // 8), generator, flip=augment == "shift_flip")
        return x.contiguous(memory_format=torch.channels_last), self.labels[index]


class StreamSampler:
    """Batches from an endless sequence of seeded permutations of one stream."""

    def __init__(self, size: int, batch_size: int, seed: int, device: torch.device):
        self.size, self.batch_size, self.seed, self.device = size, batch_size, seed, device
        self._cache: dict[int, Tensor] = {}

    def _permutation(self, cycle: int) -> Tensor:
        if cycle not in self._cache:
            self._cache = {c: p for c, p in self._cache.items() if c >= cycle - 1}
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + cycle)
            self._cache[cycle] = torch.randperm(self.size, generator=generator).to(self.device)
        return self._cache[cycle]

    def indices(self, step: int) -> Tensor:
        start = step * self.batch_size
        stop = start + self.batch_size
        pieces = []
        for cycle in range(start // self.size, (stop - 1) // self.size + 1):
            low = max(start - cycle * self.size, 0)
            high = min(stop - cycle * self.size, self.size)
            pieces.append(self._permutation(cycle)[low:high])
        return pieces[0] if len(pieces) == 1 else torch.cat(pieces)


INV_GAMMA = 3e-4
INV_POWER = 0.75
"""The `inv` schedule's constants: CMKD's per-iteration decay lr (1 + 0.0003 t)^-0.75."""


def lr_lambda(training: Training, total_steps: int):
    """The factor of the configured lr at optimiser step t (0 for the first step)."""
    schedule = training.schedule
    if schedule == "constant":
        return lambda step: 1.0
    if schedule == "cosine":
        return lambda step: 0.5 * (1 + math.cos(math.pi * min(step, total_steps) / total_steps))
    if schedule == "inv":
        return lambda step: (1 + INV_GAMMA * step) ** -INV_POWER
    milestones = [round(f * total_steps) for f in training.milestones]
    gamma = training.gamma
    return lambda step: gamma ** sum(step >= m for m in milestones)


def build_optimizer(method: Method, training: Training) -> torch.optim.Optimizer:
    groups = []
    for group in method.parameter_groups():
        group = dict(group)
        group["lr"] = training.lr * group.pop("lr_scale", 1.0)
        groups.append(group)
    if training.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=training.lr, weight_decay=training.weight_decay)
    return torch.optim.SGD(
        groups,
        lr=training.lr,
        momentum=training.momentum,
        nesterov=training.nesterov and training.momentum > 0,
        weight_decay=training.weight_decay,
    )


@torch.no_grad()
def evaluate(method: Method, data: TensorSet, batch_size: int, autocast) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) on a split, with one host sync."""
    method.eval()
    loss_sum = torch.zeros((), device=data.labels.device)
    correct = torch.zeros((), device=data.labels.device, dtype=torch.long)
    for start in range(0, len(data), batch_size):
        index = torch.arange(start, min(start + batch_size, len(data)), device=data.labels.device)
        x, y = data.batch(index)
        with autocast():
            logits = method.predict(x).float()
        loss_sum += F.cross_entropy(logits, y, reduction="sum")
        correct += (logits.argmax(1) == y).sum()
    loss, hits = torch.stack([loss_sum, correct.float()]).tolist()
    return loss / len(data), hits / len(data)


def _autocast_for(device: torch.device, precision: Precision):
    """The context of a training or evaluation step: bf16 autocast on CUDA unless the
    recipe's `precision` is fp32 (the CMKD release's CLIP arithmetic); the CPU is fp32."""
    if device.type == "cuda" and precision == "bf16":
        return lambda: torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext


def _rng_state(device: torch.device) -> dict[str, Tensor]:
    state = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict[str, Tensor], device: torch.device) -> None:
    torch.set_rng_state(state["cpu"])
    if "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def write_log(path: Path, history: list[dict[str, float]]) -> None:
    """The fixed columns, then the method's `extra_stats` in the order it declares them."""
    columns = list(LOG_COLUMNS) + [
        k for k in (history[0] if history else {}) if k not in LOG_COLUMNS
    ]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(history)
    storage.write_text(path, buffer.getvalue())


CHECKPOINT_MAGIC = b"tlrepro-checkpoint sha256="
"""A checkpoint is this line with the sha256 of what follows, then torch.save's bytes: torch
reads a zip whose stored tensors can be corrupt without it noticing."""


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    payload = buffer.getvalue()
    digest = hashlib.sha256(payload).hexdigest().encode()
    with storage.atomic_output(path) as tmp, open(tmp, "wb") as handle:
        handle.write(CHECKPOINT_MAGIC + digest + b"\n")
        handle.write(payload)


def read_checkpoint(path: Path) -> dict[str, Any]:
    """The state in `path`; any file that is not a whole checkpoint of ours raises."""
    header, _, payload = path.read_bytes().partition(b"\n")
    if header != CHECKPOINT_MAGIC + hashlib.sha256(payload).hexdigest().encode():
        raise DamagedFileError(path, "truncated, corrupt or not a tlrepro checkpoint")
    state = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
    if not isinstance(state, dict):
        raise DamagedFileError(path, "not a tlrepro checkpoint")
    return state


def _load_checkpoint(path: Path, fingerprint: str, log) -> dict[str, Any] | None:
    """The resume state, if `path` holds one of this run. One that cannot be loaded is moved
    aside (kept for inspection) and the run starts again from its first epoch: a rerun,
    unattended or on a cluster, must never be stuck on it."""
    if not path.exists():
        return None
    try:
        state = read_checkpoint(path)
    except Exception as error:  # whatever the bytes make torch raise, the way on is the same
        aside = path.with_name(f"{path.name}.unreadable-{time.strftime('%Y%m%dT%H%M%S')}")
        path.rename(aside)
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        log(
            f"warning: {path} cannot be loaded ({reason}); kept as {aside}, "
            "training again from the first epoch"
        )
        return None
    if state.get("fingerprint") != fingerprint:
        log(f"ignoring {path}: it belongs to a different configuration of this run")
        return None
    return state


def fit(
    method: Method,
    streams: dict[str, TensorSet],
    eval_sets: dict[str, TensorSet],
    training: Training,
    run_dir: Path,
    seed: int,
    fingerprint: str,
    progress: bool = True,
    log=print,
) -> list[dict[str, float]]:
    """Train `method` for `training.epochs`, resuming from `run_dir` if it holds a checkpoint.

    `streams` maps the method's stream names to training data, `eval_sets` holds
    "val" (the selection split) and "test". Returns the per-epoch history.
    """
    device = next(iter(eval_sets.values())).labels.device
    autocast = _autocast_for(device, training.autocast)
    batch_size = training.batch_size
    samplers = {
        name: StreamSampler(len(streams[name]), batch_size, seed * 31 + index, device)
        for index, name in enumerate(method.streams)
    }
    steps_per_epoch = training.epoch_steps(len(streams[method.streams[0]]))
    epochs = training.epochs
    optimizer = build_optimizer(method, training)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lr_lambda(training, max(1, epochs * steps_per_epoch))
    )

    checkpoint_path = Path(run_dir) / CHECKPOINT
    history: list[dict[str, float]] = []
    start_epoch = 0
    state = _load_checkpoint(checkpoint_path, fingerprint, log)
    if state is not None:
        method.load_state_dict(state["method"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        _set_rng_state(state["rng"], device)
        history, start_epoch = state["history"], state["epoch"]
        log(f"resuming from {checkpoint_path} after epoch {start_epoch}/{epochs}")

    from tqdm.auto import tqdm

    bar = tqdm(
        total=epochs * steps_per_epoch,
        initial=start_epoch * steps_per_epoch,
        disable=not progress,
        desc=str(run_dir),
        unit="step",
        mininterval=2,
        leave=True,
    )
    for epoch in range(start_epoch + 1, epochs + 1):
        method.train()
        began = time.perf_counter()
        sums = torch.zeros(3 + len(method.extra_stats), device=device)
        for step in range((epoch - 1) * steps_per_epoch, epoch * steps_per_epoch):
            generator = torch.Generator().manual_seed(seed * 1_000_003 + step)
            indices = {name: samplers[name].indices(step) for name in method.streams}
            batches = {
                name: streams[name].batch(indices[name], training.augment, generator)
                for name in method.streams
            }
            for name in method.strong_streams:
                batches[f"{name}_strong"] = streams[name].batch(
                    indices[name], training.augment, generator, strong=True
                )
            optimizer.zero_grad(set_to_none=True)
            with autocast():
                stats = method.update(batches, step)
            optimizer.step()
            scheduler.step()
            method.after_step()
            sums += torch.stack(
                [stats["loss"].float() * stats["count"], stats["correct"], stats["count"]]
                + [stats[name] for name in method.extra_stats]
            ).float()
            bar.update()
        loss_sum, correct, count, *extra_sums = sums.tolist()
        if not math.isfinite(loss_sum):
            bar.close()
            raise NonFiniteLossError(
                f"{run_dir}: the training loss became {loss_sum} in epoch {epoch}; "
                "stopped without writing metrics. Lower the learning rate or check the data."
            )
        seconds = time.perf_counter() - began
        row = {"epoch": epoch, "train_loss": loss_sum / count, "train_acc": correct / count}
        for split in ("val", "test"):
            row[f"{split}_loss"], row[f"{split}_acc"] = evaluate(
                method, eval_sets[split], training.eval_batch_size, autocast
            )
        row["lr"] = scheduler.get_last_lr()[0]
        row["seconds"] = seconds
        row["images_per_second"] = steps_per_epoch * batch_size * len(method.streams) / seconds
        for name, total in zip(method.extra_stats, extra_sums, strict=True):
            row[name] = total / steps_per_epoch
        history.append(row)
        bar.set_postfix(loss=f"{row['train_loss']:.3f}", val=f"{row['val_acc']:.3f}")
        save_checkpoint(
            checkpoint_path,
            {
                "epoch": epoch,
                "fingerprint": fingerprint,
                "method": method.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "rng": _rng_state(device),
                "history": history,
            },
        )
        write_log(Path(run_dir) / LOG_FILE, history)
    bar.close()
    # Again after the loop: a run killed after its last checkpoint resumes with no
    # epoch left to train, and its runner has deleted the incomplete log.
    write_log(Path(run_dir) / LOG_FILE, history)
    return history
