"""A run's usage record (metrics.json `timing`): what the tables' cost column reads."""

from __future__ import annotations

import torch

from tlrepro.training.usage import Meter


def test_meter_records_wall_cpu_and_peak_memory_on_the_cpu():
    meter = Meter(torch.device("cpu"))
    torch.randn(256, 256) @ torch.randn(256, 256)
    usage = meter.record()
    assert usage["wall_seconds"] > 0 and usage["cpu_seconds"] > 0
    assert usage["accelerator_seconds"] == 0.0 and usage["peak_accelerator_mb"] is None
    assert usage["peak_host_mb"] > 10 and usage["device"] == "CPU"


def test_a_run_records_the_cpu_model_and_threads_that_every_figure_names():
    from tlrepro.reporting.figures import trained_on
    from tlrepro.training.usage import cpu_model

    torch.set_num_threads(1)
    machine = Meter(torch.device("cpu")).record()["machine"]
    assert machine == f"{cpu_model()}, 1 torch thread" and cpu_model() not in ("", "unknown CPU")
    assert trained_on([machine, machine, "EPYC, 2 torch threads"]) == (
        f"trained on EPYC, 2 torch threads; {machine}"
    )
    assert "did not record" in trained_on([])
