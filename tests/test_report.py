"""Snakemake's own HTML report: every group a category with its results, claims and
figures, checked in a real headless Chromium (its DOM after the page's scripts ran, and
a screenshot)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from .conftest import BIN, run

pytestmark = pytest.mark.slow
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def chromium(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
    return subprocess.run(
        [*command, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=True
    )


@pytest.mark.skipif(
    CHROMIUM is None and not os.environ.get("CI"),
    reason="needs Debian's chromium (`apt-get install chromium`; .ci/run installs it)",
)
def test_report_shows_every_group_in_a_browser(built, tmp_path):
    root = tmp_path / "repo"
    shutil.copytree(built, root, symlinks=True)
    run([str(BIN / "snakemake"), "--cores", "2"], root)  # the default target adds the pages
    folder = root / "results" / "report" / "quick"
    pages = sorted(p.relative_to(folder) for p in folder.rglob("*.*") if p.name[0] != ".")
    assert [str(p) for p in pages] == [
        "baselines/1_results.html",
        "baselines/2_claims.html",
        "baselines/3_learning_curves.png",
        "baselines/4_training_statistics.png",
    ]
    results = (root / "results/report/quick/baselines/1_results.html").read_text()
    assert "Tiny baselines" in results and "±" in results
    run([str(BIN / "snakemake"), "--report", "results/report.html"], root)
    report = root / "results" / "report.html"
    assert report.stat().st_size > 10_000
    dom = chromium("--virtual-time-budget=15000", "--dump-dom", report.as_uri(), cwd=root).stdout
    assert "baselines" in dom  # the group's category, drawn by the report's scripts
    shot = tmp_path / "report.png"
    chromium(
        "--virtual-time-budget=15000",
        "--window-size=1280,900",
        f"--screenshot={shot}",
        report.as_uri(),
        cwd=root,
    )
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
    keep = os.environ.get("TLREPRO_REPORT_SCREENSHOT")
    if keep:
        shutil.copy(shot, keep)
