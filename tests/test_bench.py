"""Every script in bench/ runs, as a user runs it: its `--short` mode (a couple of steps, one
round, the smallest sizes, on the CPU) as a subprocess from the repository root, exit status
0, its ratio line(s) printed and its machine-readable summary written. The ratios' values are
not judged here (two steps time nothing); that the code under them still runs is."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import REPO

pytestmark = pytest.mark.long  # about 80 s on 2 cores: `make test-long` and CI run it

RATIO = r"\d+\.\d\d"
SCRIPTS = {
    "cmkd_speed": (["bench/cmkd_speed.py"], [rf"cmkd / source_only.*: {RATIO}", "cmkd_rst / cmkd"]),
    "pretrain_seeds": (["bench/pretrain_seeds.py"], [r"lenet on mnist_5to9: min \d", "all seeds"]),
    "adaptive_step_time": (
        ["bench/adaptive_step_time.py"],
        [rf"spottune .* x{RATIO} finetune", rf"multitune .* x{RATIO} finetune"],
    ),
    "tlvfc_transfer": (
        ["bench/tlvfc_transfer.py"],
        [r"TLVFC transfer: \d", rf"crossover / without .*: {RATIO}"],
    ),
    "gradient_combination": (
        ["bench/gradient_combination.py"],
        [rf"pcgrad\s+\d+\.\d+\s+{RATIO}", rf"gradmf \(coded\)\s+\d+\.\d+\s+{RATIO}"],
    ),
    "gpu_check_paths": (["bench/gpu_check.py", "paths"], ["PASS  a run resumes on the device"]),
    "gpu_check_methods": (
        ["bench/gpu_check.py", "methods"],
        [rf"gradmf_coded .* x{RATIO} finetune"],
    ),
    "calibrate": (
        ["bench/calibrate.py", "measure"],
        [r"small_vgg 32 px finetune on CPU: [\d.]+ ms/image training"],
    ),
    "trainer_overhead": (
        ["bench/trainer_overhead.py"],
        [rf"trainer \(none \) .* ratio {RATIO}", rf"trainer \(shift\) .* ratio {RATIO}"],
    ),
}


def run_short(args: list[str], summary: Path) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO / "src"),
        "CUDA_VISIBLE_DEVICES": "",
        "OMP_NUM_THREADS": "1",
    }
    command = [sys.executable, *args, "--short", "--json", str(summary)]
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def summaries(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("bench")


@pytest.mark.parametrize("name", list(SCRIPTS))
def test_short_mode_runs_and_prints_its_ratios(name, summaries):
    args, patterns = SCRIPTS[name]
    result = run_short(args, summaries / f"{name}.json")
    assert result.returncode == 0, result.stdout + result.stderr
    for pattern in patterns:
        assert re.search(pattern, result.stdout), (pattern, result.stdout)
    summary = json.loads((summaries / f"{name}.json").read_text())
    assert summary["short"] is True
    assert summary["machine"]["device"] == "CPU" and summary["machine"]["commit"]
    assert summary["ratios"] or summary["figures"]


def test_summaries_render_into_the_measured_page(summaries, tmp_path):
    if len(list(summaries.glob("*.json"))) < len(SCRIPTS):
        pytest.skip("needs every script's summary (run the whole module)")
    (summaries / "parts.tsv").write_text("4\trehearsal-on-cuda\tFAILED (1)\t3\tsnakemake x\n")
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    for command in (
        ["collect", str(summaries)],
        ["render", str(summaries / "summary.json"), str(tmp_path / "measured.md")],
        ["render", str(summaries / "summary.json"), str(tmp_path / "measured.md")],
    ):
        subprocess.run(
            [sys.executable, "bench/measured.py", *command], cwd=REPO, env=env, check=True
        )
    page = (tmp_path / "measured.md").read_text()
    assert page.count("<!-- measured:gpu_check begin -->") == 1  # rendered in place
    assert "unmeasured: FAILED (1)" in page
    assert "**trainer_overhead** (CPU" in page and "short mode, not a measurement" in page
