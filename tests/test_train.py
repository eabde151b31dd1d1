"""The trainer: bit-for-bit determinism, resume after SIGKILL, and a clean stop on NaN."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tlrepro.config.training import Training
from tlrepro.data.prepare import class_subset
from tlrepro.methods.base import MethodContext
from tlrepro.methods.erm import ERM
from tlrepro.methods.erm_settings import ERMSettings
from tlrepro.models.registry import build_model
from tlrepro.training.trainer import (
    CHECKPOINT,
    NonFiniteLossError,
    StreamSampler,
    TensorSet,
    fit,
    read_checkpoint,
)

CPU = torch.device("cpu")


def random_set(n: int, seed: int) -> TensorSet:
    generator = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 3, 16, 16), generator=generator, dtype=torch.uint8)
    labels = torch.arange(n) % 4
    images[labels == 1, 0] //= 4  # something learnable
    return TensorSet.create(images, labels, [0.5] * 3, [0.25] * 3, CPU)


def train_with(
    run_dir: Path, seed: int, method_class: type = ERM, log=print, **overrides
) -> tuple[list[dict], dict]:
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)
    network = build_model("small_vgg", 4, widths=(8, 16))
    method = method_class(MethodContext(network, ("target",), ERMSettings()))
    training = Training.model_validate(
        {"epochs": 2, "batch_size": 16, "lr": 0.05, "augment": "shift_flip", **overrides}
    )
    history = fit(
        method,
        {"target": random_set(96, 1)},
        {"val": random_set(32, 2), "test": random_set(32, 3)},
        training,
        run_dir,
        seed,
        "fingerprint",
        progress=False,
        log=log,
    )
    return history, method.state_dict()


def train_once(run_dir: Path, seed: int, **overrides) -> tuple[list[dict], dict]:
    return train_with(run_dir, seed, ERM, **overrides)


def without_timing(history: list[dict]) -> list[dict]:
    return [
        {k: v for k, v in row.items() if k not in ("seconds", "images_per_second")}
        for row in history
    ]


def test_same_seed_gives_identical_weights_and_history(tmp_path):
    history_a, state_a = train_once(tmp_path / "a", seed=3)
    history_b, state_b = train_once(tmp_path / "b", seed=3)
    assert without_timing(history_a) == without_timing(history_b)
    assert all(torch.equal(state_a[k], state_b[k]) for k in state_a)
    _history_c, state_c = train_once(tmp_path / "c", seed=4)
    assert not all(torch.equal(state_a[k], state_c[k]) for k in state_a)


class Interrupted(Exception):
    pass


class ERMInterruptedAt(ERM):
    """Dies in the middle of a step, as a killed process would."""

    stop_step = -1

    def update(self, batches, step):
        if step == self.stop_step:
            raise Interrupted
        return super().update(batches, step)


def test_resume_from_a_checkpoint_equals_an_uninterrupted_run(tmp_path, monkeypatch):
    full, state_full = train_once(tmp_path / "full", seed=0, epochs=3)
    monkeypatch.setattr(ERMInterruptedAt, "stop_step", 8)  # 6 steps an epoch: inside epoch 2
    with pytest.raises(Interrupted):
        train_with(tmp_path / "resumed", 0, ERMInterruptedAt, epochs=3)
    assert read_checkpoint(tmp_path / "resumed" / CHECKPOINT)["epoch"] == 1
    resumed, state_resumed = train_once(tmp_path / "resumed", seed=0, epochs=3)
    assert without_timing(resumed) == without_timing(full)
    assert all(torch.equal(state_full[k], state_resumed[k]) for k in state_full)


def test_nan_loss_stops_with_a_clear_error_and_no_checkpoint(tmp_path):
    with pytest.raises(NonFiniteLossError, match="epoch 1"):
        train_once(tmp_path / "nan", seed=0, lr=1e12, augment="none")
    assert not (tmp_path / "nan" / CHECKPOINT).exists()


def test_sampler_visits_every_example_once_per_pass():
    sampler = StreamSampler(size=10, batch_size=4, seed=0, device=CPU)
    seen = torch.cat([sampler.indices(step) for step in range(5)])  # 20 = two passes
    assert sorted(seen[:10].tolist()) == list(range(10))
    assert sorted(seen[10:].tolist()) == list(range(10))
    assert not torch.equal(seen[:10], seen[10:])


def test_few_shot_subset_is_seeded_balanced_and_not_the_first_files():
    labels = torch.arange(200) % 10
    picked = class_subset(labels, per_class=5, fraction=None, seed=0)
    assert torch.bincount(labels[picked]).tolist() == [5] * 10
    assert torch.equal(picked, class_subset(labels, 5, None, seed=0))
    assert not torch.equal(picked, class_subset(labels, 5, None, seed=1))
    assert picked.max() >= 50


def test_fraction_subset_keeps_at_least_one_image_per_class():
    labels = torch.cat([torch.zeros(300, dtype=torch.long), torch.ones(20, dtype=torch.long)])
    picked = class_subset(labels, per_class=None, fraction=0.01, seed=0)
    assert torch.bincount(labels[picked]).tolist() == [3, 1]


def test_resuming_a_finished_checkpoint_rewrites_the_deleted_log(tmp_path):
    """Killed after the last checkpoint: the runner deleted log.csv, the rerun restores it."""
    full, _ = train_once(tmp_path / "run", seed=0)
    (tmp_path / "run" / "log.csv").unlink()
    resumed, _ = train_once(tmp_path / "run", seed=0)
    assert without_timing(resumed) == without_timing(full)
    assert (tmp_path / "run" / "log.csv").read_text().count("\n") == 1 + len(full)
