"""GradMF, PCGrad and joint training: the vector algebra against float64 references, and the
update reaching every parameter of a real network."""

from __future__ import annotations

import copy
import csv

import numpy as np
import pytest
import torch
from pydantic import ValidationError
from torch import nn

from tlrepro.config.training import Training
from tlrepro.methods import gradient_algebra
from tlrepro.methods.base import MethodContext
from tlrepro.methods.gradient_algebra import EPS
from tlrepro.methods.gradmf import GradMF, ReleaseSchedule
from tlrepro.methods.gradmf_settings import GradMFSettings
from tlrepro.methods.pcgrad import PCGrad
from tlrepro.methods.settings import Settings
from tlrepro.methods.two_stream import Joint, gradient_buffer
from tlrepro.models.small import SmallVGG
from tlrepro.training.trainer import TensorSet, fit

STREAMS = ("target", "source")


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(a @ b / (a.norm() * b.norm()))


def apply(rule, g_s: torch.Tensor, g_t: torch.Tensor, **settings) -> torch.Tensor:
    """G (and drawn's step count) as the methods form it: Gram matrix, coefficients, combine."""
    grads = torch.stack([g_s, g_t])
    result = rule(gradient_algebra.gram(grads), **settings)
    coefficients, steps = result if isinstance(result, tuple) else (result, None)
    update = gradient_algebra.combine(grads, coefficients)
    return update if steps is None else (update, steps)


def gradmf_coded(g_s, g_t):
    return apply(gradient_algebra.coded, g_s, g_t)


def gradmf_drawn(g_s, g_t, tau, max_steps, project):
    return apply(gradient_algebra.drawn, g_s, g_t, tau=tau, max_steps=max_steps, project=project)


def pcgrad(g_s, g_t):
    return apply(gradient_algebra.pcgrad, g_s, g_t)


def vectors(seed: int, n: int = 1000) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(n, generator=generator), torch.randn(n, generator=generator)


def orthogonal_pair() -> tuple[torch.Tensor, torch.Tensor]:
    g_s, g_t = torch.zeros(6), torch.zeros(6)
    g_s[:3] = torch.tensor([1.0, -2.0, 0.5])
    g_t[3:] = torch.tensor([3.0, 1.0, -1.0])
    return g_s, g_t


def reference_coded(g_s: np.ndarray, g_t: np.ndarray) -> np.ndarray:
    return g_s + g_t - (g_t @ g_s) / (np.linalg.norm(g_s) + EPS) ** 2 * g_s


def authors_altering_step(grad_i: torch.Tensor, grad_j: torch.Tensor) -> torch.Tensor:
    """`comput_gradients_1` of the authors' iterated code
    (finetune_AlexNet_ResNet/Vector_Projection_circulate.py), transcribed line by line:
    i = the current update, j = the target gradient."""
    eps = 1e-5
    mo_i = grad_i.norm() + eps
    moj_cos = float(grad_j.dot(grad_i)) / float(mo_i)
    gradj_i = moj_cos * (1.0 / mo_i) * grad_i
    gradj_x = grad_j - gradj_i
    return grad_i + gradj_x


def authors_iterated(g_s: torch.Tensor, g_t: torch.Tensor, n: int) -> torch.Tensor:
    """The authors' `pc_backward(loss_s, loss_t, n)`: n altering steps, no test, no projection."""
    grad = g_s
    for _ in range(n):
        grad = authors_altering_step(grad, g_t)
    return grad


def reference_drawn(g_s, g_t, tau, max_steps, project):
    """The paper's loop written plainly, with a Python break, in float64, each step the
    authors' own; the projection puts eps where their (unused) projection does."""

    def cos(a, b):
        return a @ b / (np.linalg.norm(a) * np.linalg.norm(b))

    update, steps = g_s.copy(), 0
    while steps < max_steps and cos(update, g_t) < tau:
        update = authors_altering_step(torch.from_numpy(update), torch.from_numpy(g_t)).numpy()
        steps += 1
    if project:
        update = (update @ g_t) / (np.linalg.norm(g_t) + EPS) ** 2 * g_t
    return update, steps


def test_coded_keeps_orthogonal_gradients_whole():
    g_s, g_t = orthogonal_pair()
    torch.testing.assert_close(gradmf_coded(g_s, g_t), g_s + g_t)


def test_coded_drops_a_parallel_target_gradient():
    g_s, _ = vectors(0)
    for scale in (0.5, -3.0):
        torch.testing.assert_close(gradmf_coded(g_s, scale * g_s), g_s, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("seed", range(5))
def test_coded_matches_float64(seed: int):
    g_s, g_t = vectors(seed)
    expected = reference_coded(g_s.double().numpy(), g_t.double().numpy())
    np.testing.assert_allclose(gradmf_coded(g_s, g_t).numpy(), expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(("tau", "max_steps"), [(0.5, 5), (0.9, 5), (0.99, 2), (0.999, 1)])
@pytest.mark.parametrize("seed", range(4))
def test_drawn_stops_when_aligned_or_at_the_step_limit(seed: int, tau: float, max_steps: int):
    g_s, g_t = vectors(seed, 200)
    g_s = g_s - 0.8 * g_t  # a conflicting pair, so that altering has work to do
    update, steps = gradmf_drawn(g_s, g_t, tau, max_steps, project=False)
    steps = int(steps)
    assert 0 < steps <= max_steps
    assert cosine(update, g_t) >= tau or steps == max_steps
    expected, expected_steps = reference_drawn(
        g_s.double().numpy(), g_t.double().numpy(), tau, max_steps, project=False
    )
    assert steps == expected_steps
    np.testing.assert_allclose(update.numpy(), expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("scale", [1.0, 1e-3])
@pytest.mark.parametrize("seed", range(3))
def test_one_untested_drawn_step_is_coded_exactly(seed: int, scale: float):
    g_s, g_t = vectors(seed, 200)
    g_s, g_t = scale * (g_s - 0.5 * g_t) / g_s.norm(), scale * g_t / g_t.norm()
    update, steps = gradmf_drawn(g_s, g_t, tau=2.0, max_steps=1, project=False)
    assert int(steps) == 1
    assert torch.equal(update, gradmf_coded(g_s, g_t))


@pytest.mark.parametrize("max_steps", [1, 2, 5])
@pytest.mark.parametrize("seed", range(3))
def test_drawn_iterates_the_authors_step_at_small_gradient_norms(seed: int, max_steps: int):
    """Norms near 1e-3, where eps on the norm and eps on its square differ by more than half."""
    g_s, g_t = (v.double() for v in vectors(seed, 50))
    g_s, g_t = 1e-3 * (g_s - 0.7 * g_t) / g_s.norm(), 1.2e-3 * g_t / g_t.norm()
    update, steps = gradmf_drawn(g_s, g_t, tau=2.0, max_steps=max_steps, project=False)
    assert int(steps) == max_steps
    torch.testing.assert_close(update, authors_iterated(g_s, g_t, max_steps), rtol=1e-10, atol=0)


def test_drawn_does_nothing_when_already_aligned():
    g_s, g_t = vectors(1)
    update, steps = gradmf_drawn(g_s, g_s + 0.01 * g_t, tau=0.9, max_steps=5, project=False)
    assert int(steps) == 0
    torch.testing.assert_close(update, g_s)


def test_drawn_projection_is_collinear_with_the_target_gradient():
    g_s, g_t = vectors(2)
    update, _ = gradmf_drawn(g_s, g_t, tau=0.9, max_steps=5, project=True)
    assert cosine(update, g_t) == pytest.approx(1.0, abs=1e-5)
    expected, _ = reference_drawn(g_s.double().numpy(), g_t.double().numpy(), 0.9, 5, True)
    np.testing.assert_allclose(update.numpy(), expected, rtol=1e-4, atol=1e-5)


def test_pcgrad_leaves_agreeing_gradients_alone():
    g_s, g_t = vectors(3)
    g_t = g_t + 2 * g_s  # positive dot product
    assert float(g_s @ g_t) > 0
    torch.testing.assert_close(pcgrad(g_s, g_t), g_s + g_t)


def test_pcgrad_projects_both_sides_of_a_conflict():
    g_s, g_t = vectors(4)
    g_t = g_t - 2 * g_s
    assert float(g_s @ g_t) < 0
    s, t = g_s.double().numpy(), g_t.double().numpy()
    expected = (s - (s @ t) / (t @ t) * t) + (t - (t @ s) / (s @ s) * s)
    np.testing.assert_allclose(pcgrad(g_s, g_t).numpy(), expected, rtol=1e-4, atol=1e-4)


def tiny_net(num_classes: int) -> SmallVGG:
    return SmallVGG(num_classes, widths=(4, 8), convs_per_stage=1)


class TwoGroupGradMF(GradMF):
    """The head in its own optimiser group (as a user might, for a larger head lr)."""

    def parameter_groups(self):
        head = list(self.network.head.parameters())
        others = [p for p in self.parameters() if all(p is not h for h in head)]
        return [{"params": others}, {"params": head, "lr_scale": 10.0}]


def make_batches(seed: int, classes: int = 3) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(seed)
    return {
        name: (torch.randn(8, 3, 8, 8, generator=generator), torch.arange(8) % classes)
        for name in STREAMS
    }


def logical_gradient(loss: torch.Tensor, params: list) -> torch.Tensor:
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    pairs = zip(grads, params, strict=True)
    return torch.cat([(g if g is not None else torch.zeros_like(p)).reshape(-1) for g, p in pairs])


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize("shared_labels", [True, False])
def test_every_parameter_of_every_group_receives_its_part_of_the_update(
    shared_labels: bool, memory_format: torch.memory_format
):
    torch.manual_seed(0)
    source_model = tiny_net(3)
    method = TwoGroupGradMF(
        MethodContext(
            tiny_net(3),
            STREAMS,
            GradMFSettings(),
            source_model=source_model,
            shared_labels=shared_labels,
        )
    ).to(memory_format=memory_format)
    assert (method.source_head is None) == shared_labels
    if shared_labels:
        torch.testing.assert_close(method.network.head.weight, source_model.head.weight)
    reference = copy.deepcopy(method)  # same weights and running statistics
    batches = make_batches(1)
    stats = method.update(batches, step=0)

    params = reference.trainable()
    source_loss, target_loss, _ = reference.losses(batches)
    g_s, g_t = logical_gradient(source_loss, params), logical_gradient(target_loss, params)
    expected = gradmf_coded(g_s, g_t)
    got = torch.cat([p.grad.reshape(-1) for p in method.trainable()])
    for param in method.trainable():  # the optimiser gets gradients laid out like the weights
        assert param.grad.stride() == param.stride()
    assert all(p.grad is not None for p in method.parameters())
    assert len(method.trainable()) == len(list(method.parameters()))
    torch.testing.assert_close(got, expected)
    assert float(stats["cos_source_target"]) == pytest.approx(cosine(g_s, g_t), abs=1e-5)
    assert float(stats["cos_update_target"]) == pytest.approx(cosine(expected, g_t), abs=1e-5)
    assert float(stats["cos_update_source"]) == pytest.approx(cosine(expected, g_s), abs=1e-5)


@pytest.mark.parametrize(
    ("method_class", "settings"),
    [(GradMF, GradMFSettings()), (GradMF, GradMFSettings(variant="drawn")), (PCGrad, Settings())],
)
def test_a_float64_model_gets_a_float64_update(method_class, settings: Settings):
    torch.manual_seed(0)
    context = MethodContext(
        tiny_net(3), STREAMS, settings, source_model=tiny_net(3), shared_labels=True
    )
    method = method_class(context).double()
    batches = {key: (x.double(), y) for key, (x, y) in make_batches(3).items()}
    stats = method.update(batches, step=0)
    assert all(p.grad.dtype == torch.float64 for p in method.trainable())
    assert all(torch.isfinite(value).all() for value in stats.values())


@pytest.mark.parametrize(
    ("method_class", "settings"),
    [(GradMF, GradMFSettings()), (GradMF, GradMFSettings(variant="drawn")), (PCGrad, Settings())],
)
def test_under_bf16_autocast_the_update_is_combined_in_the_parameters_dtype(
    method_class, settings: Settings
):
    """The trainer calls `update` under bf16 autocast on CUDA (here: on the CPU, the same
    casting rules): the Gram matrix and the combination stay float32, like the gradients;
    a bf16 matmul there made the update bf16, which torch refuses as a float32 gradient."""
    torch.manual_seed(0)
    context = MethodContext(
        tiny_net(3), STREAMS, settings, source_model=tiny_net(3), shared_labels=True
    )
    method = method_class(context)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        stats = method.update(make_batches(4), step=0)
    assert all(p.grad.dtype == torch.float32 for p in method.trainable())
    assert all(torch.isfinite(value).all() for value in stats.values())


def test_mixed_parameter_dtypes_are_refused_with_a_remedy():
    params = [nn.Parameter(torch.zeros(3)), nn.Parameter(torch.zeros(2, dtype=torch.float64))]
    with pytest.raises(ValueError, match=r"one dtype on one device.*\.to\(dtype, device\)"):
        gradient_buffer(params)


def test_source_forward_leaves_the_running_statistics_to_the_target():
    torch.manual_seed(0)
    method = Joint(MethodContext(tiny_net(3), STREAMS, source_model=tiny_net(5)))
    target_only = copy.deepcopy(method.network)
    batches = make_batches(2)
    method.update(batches, step=0)
    target_only(batches["target"][0])
    for got, want in zip(method.network.modules(), target_only.modules(), strict=True):
        if isinstance(got, nn.BatchNorm2d):
            torch.testing.assert_close(got.running_mean, want.running_mean)
            torch.testing.assert_close(got.running_var, want.running_var)
    assert method.source_head.weight.grad is not None
    assert method.source_head.out_features == 5


def fit_two_streams(method, training, folder, images: int, classes: int) -> list:
    """`fit` on seeded random 8 px target and source streams of `images` each."""

    def data(seed: int) -> TensorSet:
        generator = torch.Generator().manual_seed(seed)
        pixels = torch.randint(0, 256, (images, 3, 8, 8), generator=generator, dtype=torch.uint8)
        labels = torch.arange(images) % classes
        return TensorSet.create(pixels, labels, [0.5] * 3, [0.25] * 3, "cpu")

    return fit(
        method,
        {"target": data(0), "source": data(1)},
        {"val": data(2), "test": data(3)},
        training,
        folder,
        seed=0,
        fingerprint="f",
        progress=False,
    )


def test_the_trainer_logs_the_cosines(tmp_path):
    method = tiny_gradmf(GradMFSettings(variant="drawn"), classes=2, shared_labels=True)
    training = Training(epochs=2, batch_size=8, steps_per_epoch=3)
    fit_two_streams(method, training, tmp_path, images=32, classes=2)
    with open(tmp_path / "log.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 2
    for row in rows:
        assert 0 <= float(row["altering_steps"]) <= 5
        assert float(row["cos_update_target"]) == pytest.approx(1.0, abs=1e-4)  # projected
        assert -1 <= float(row["cos_source_target"]) <= 1


def test_settings_are_checked_against_their_dataclass():
    with pytest.raises(ValidationError, match="variant\n  Input should be 'coded' or 'drawn'"):
        GradMFSettings.model_validate({"variant": "codded"})
    with pytest.raises(ValidationError, match="project\n  Input should be a valid boolean"):
        GradMFSettings.model_validate({"project": 1})
    with pytest.raises(ValidationError, match="tau\n  Input should be greater than 0"):
        GradMFSettings.model_validate({"tau": 0})
    with pytest.raises(ValidationError, match="max_steps\n  Input should be a valid integer"):
        GradMFSettings.model_validate({"max_steps": 2.0})
    with pytest.raises(ValidationError, match="unknown key 'steps' \\(allowed keys: max_steps"):
        GradMFSettings.model_validate({"steps": 2})
    # YAML's int for a float is kept as written: the recorded settings are the config's.
    assert GradMFSettings.model_validate({"tau": 1}).record() == {
        "variant": "coded",
        "tau": 1,
        "max_steps": 5,
        "project": True,
        "schedule": "joint",
        "release_period": 3,
    }
    with pytest.raises(ValidationError, match="release_period\n  Input should be greater than or"):
        GradMFSettings.model_validate({"release_period": 1})
    with pytest.raises(ValidationError, match="schedule\n  Input should be 'joint' or 'release'"):
        GradMFSettings.model_validate({"schedule": "alternate"})


# The release schedule (docs/gradmf.md, "Schedules").


@pytest.mark.parametrize(("period", "gradmf_epochs"), [(3, [3, 6, 9]), (2, [2, 4, 6, 8])])
def test_the_release_schedule_names_the_scripts_gradmf_epochs(period: int, gradmf_epochs):
    """`ep % period != 0 or ep == 0` trains on the source in the released scripts."""
    schedule = ReleaseSchedule(period, steps_per_epoch=4)
    assert [e for e in range(10) if schedule.is_gradmf(e)] == gradmf_epochs
    assert [schedule.epoch(step) for step in (0, 3, 4, 9)] == [
        (0, True),
        (0, False),
        (1, True),
        (2, False),
    ]


def test_the_release_schedule_needs_the_epoch_length():
    context = MethodContext(
        tiny_net(3), STREAMS, GradMFSettings(schedule="release"), source_model=tiny_net(3)
    )
    with pytest.raises(ValueError, match="steps_per_epoch"):
        GradMF(context)


def tiny_gradmf(settings: GradMFSettings, classes: int, **context) -> GradMF:
    """GradMF on a seeded tiny target and source net of `classes` classes."""
    torch.manual_seed(0)
    net, source = tiny_net(classes), tiny_net(classes)
    return GradMF(MethodContext(net, STREAMS, settings, source_model=source, **context))


def release_method(shared_labels: bool, steps_per_epoch: int = 2) -> GradMF:
    return tiny_gradmf(
        GradMFSettings(schedule="release"),
        classes=3,
        shared_labels=shared_labels,
        steps_per_epoch=steps_per_epoch,
    )


def parameters_of(module: nn.Module) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in module.named_parameters()}


@pytest.mark.parametrize("shared_labels", [True, False])
def test_a_gradmf_epoch_restarts_from_the_best_source_state_and_reuses_one_source_gradient(
    shared_labels: bool,
):
    """Epochs 0-2 train on the source (2 steps each); the first is the best (its counted
    hits are set by hand: 8/8, then 0/8 and 4/8); GradMF epoch 3 starts from the end of
    epoch 0 and combines every target gradient with g_s of its first step's source batch."""
    method = release_method(shared_labels)
    optimizer = torch.optim.SGD([p for p in method.parameters() if p.requires_grad], lr=0.1)
    hits = {0: (8.0, 8.0), 1: (0.0, 8.0), 2: (4.0, 8.0)}
    ends = {}
    for step in range(6):
        optimizer.zero_grad(set_to_none=True)
        stats = method.update(make_batches(10 + step), step)
        assert float(stats["gradmf_epoch"]) == 0.0
        assert torch.isnan(stats["cos_update_target"])
        assert method.network.head.weight.grad is not None or not shared_labels
        optimizer.step()
        if step % 2 == 1:
            epoch = step // 2
            method.source_hits.copy_(torch.tensor(hits[epoch]))
            ends[epoch] = copy.deepcopy(method)  # the state this source epoch ended in
    assert not torch.equal(
        ends[0].network.head.weight if shared_labels else ends[0].source_head.weight,
        ends[2].network.head.weight if shared_labels else ends[2].source_head.weight,
    )

    source_forwards = []
    source_logits = method.source_logits
    method.source_logits = lambda x: source_forwards.append(len(x)) or source_logits(x)

    best = ends[0]
    params = best.trainable()
    first, second = make_batches(16), make_batches(17)
    x_s, y_s = first["source"]
    g_s = logical_gradient(best.criterion(best.source_logits(x_s), y_s), params)
    for step, batches in ((6, first), (7, second)):
        optimizer.zero_grad(set_to_none=True)
        if step == 6:
            before = {n: p.detach().clone() for n, p in method.named_parameters()}
        stats = method.update(batches, step)
        if step == 6:  # restarted from the best source state (epoch 0's end), heads included
            for name, want in parameters_of(best).items():
                if not name.startswith("best_source."):
                    torch.testing.assert_close(dict(method.named_parameters())[name].detach(), want)
            assert any(
                not torch.equal(before[n], p) for n, p in method.named_parameters()
            )  # epoch 2 ended elsewhere
        x_t, y_t = batches["target"]
        reference = copy.deepcopy(method)
        g_t = logical_gradient(
            reference.criterion(reference.network(x_t), y_t), reference.trainable()
        )
        got = torch.cat([p.grad.reshape(-1) for p in method.trainable()])
        torch.testing.assert_close(got, gradmf_coded(g_s, g_t))
        assert float(stats["gradmf_epoch"]) == 1.0
        optimizer.step()
    assert source_forwards == [8]  # one source loss for the whole GradMF epoch
    assert float(method.best_source_accuracy) == 1.0


def test_the_best_source_state_is_judged_by_the_source_epochs_counted_hits():
    method = release_method(shared_labels=True, steps_per_epoch=1)
    first = method.update(make_batches(0), 0)
    assert method.source_hits.tolist() == [float(first["correct"]), 8.0]
    second = method.update(make_batches(1), 1)  # epoch 1 begins: epoch 0 is the best so far
    assert float(method.best_source_accuracy) == float(first["correct"]) / 8
    assert method.source_hits.tolist() == [float(second["correct"]), 8.0]


def release_fit(tmp_path, epochs: int, method: GradMF | None = None) -> tuple[GradMF, list]:
    method = method or release_method(shared_labels=False, steps_per_epoch=3)
    # constant: a shorter run then is the longer one stopped early
    training = Training(epochs=epochs, batch_size=8, steps_per_epoch=3, schedule="constant")
    return method, fit_two_streams(method, training, tmp_path, images=24, classes=3)


def test_the_trainer_logs_which_epochs_are_gradmf_epochs(tmp_path):
    release_fit(tmp_path, epochs=7)
    with open(tmp_path / "log.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [float(row["gradmf_epoch"]) for row in rows] == [0, 0, 0, 1, 0, 0, 1]
    for row in rows:
        combined = float(row["gradmf_epoch"]) == 1
        assert np.isnan(float(row["cos_source_target"])) != combined
        assert np.isnan(float(row["altering_steps"])) != combined


def test_a_resumed_release_run_keeps_its_best_source_state(tmp_path):
    whole, _ = release_fit(tmp_path / "whole", epochs=5)
    release_fit(tmp_path / "resumed", epochs=2)
    resumed, history = release_fit(tmp_path / "resumed", epochs=5)
    assert len(history) == 5
    for (name, want), got in zip(
        whole.state_dict().items(), resumed.state_dict().values(), strict=True
    ):
        torch.testing.assert_close(got, want, msg=name)
