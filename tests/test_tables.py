"""tables.md / tables.csv / figures from a hand-made results tree.

The golden file pins the whole markdown layout; set UPDATE_GOLDEN=1 to rewrite
it after an intended change (and review the diff).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tlrepro import storage
from tlrepro.errors import TlreproError
from tlrepro.reporting.aggregate import (
    ReportedFormatError,
    UnknownReportedTableError,
    curves,
    frame_for_csv,
    load_reported,
)
from tlrepro.reporting.claims import load_claims
from tlrepro.reporting.figures import learning_curves
from tlrepro.reporting.markdown import Header, render_markdown
from tlrepro.reporting.results import GroupTable, Reference, SourceModel, collect, load_logs
from tlrepro.reporting.tables import write_tables

REPO = Path(__file__).resolve().parents[1]
GOLDEN = Path(__file__).parent / "golden" / "tables.md"
HEADER = Header(profile="quick", seeds=[0, 1, 2], commit="abc1234", date="2026-01-01")
METHODS = [("scratch", "target only"), ("finetune", "fine-tune"), ("source_only", "source only")]
GROUPS = [
    GroupTable("alpha", "Alpha transfers", ["a-to-b", "c-to-b"], METHODS, [0, 1, 2], "paper_x"),
    GroupTable("beta", "Beta transfers", ["a-to-d", "c-to-d"], METHODS, [0, 1, 2], None),
]
# Best-validation test accuracy per seed; last = -0.01, oracle = +0.01.
ACCURACY = {
    ("alpha", "scratch", "a-to-b"): [0.90, 0.92, 0.94],
    ("alpha", "scratch", "c-to-b"): [0.80, 0.81, 0.85],
    ("alpha", "finetune", "a-to-b"): [0.95, 0.96, 0.97],
    ("alpha", "finetune", "c-to-b"): [0.88, 0.86, 0.87],
    ("alpha", "source_only", "a-to-b"): [0.50, 0.55, 0.60],
    # ("alpha", "source_only", "c-to-b"): label spaces differ, no run
    ("beta", "scratch", "a-to-d"): [0.70, 0.72, 0.74],
    ("beta", "scratch", "c-to-d"): [0.60, 0.64, 0.65],
    ("beta", "finetune", "a-to-d"): [0.77],  # one seed only
    ("beta", "finetune", "c-to-d"): [0.68, 0.70, 0.72],
    ("beta", "source_only", "a-to-d"): [0.30, 0.31, 0.32],
    ("beta", "source_only", "c-to-d"): [0.20, 0.25, 0.30],
}
REPORTED_YAML = """\
paper_x:
  source: "Paper X (Venue 2024), Table 2"
  short: Paper X
  metric: test accuracy (%)
  protocol: oracle (test-selected)
  note: values read from a plot (~)
  rows:
    Method X: {a-to-b: 91.5, c-to-b: 84, z-to-q: 50}
    Method Y: {c-to-b: 88.25}
    Method Z: {z-to-q: 12}
"""
CLAIMS_YAML = """\
finetune_over_scratch:
  method: finetune
  baseline: scratch
  relation: better
  sources: [paper_x]
  paper_rows: [Method Y, Method X]
scratch_over_source_only:
  method: scratch
  baseline: source_only
  relation: better
  sources: [paper_x]
source_only_near_scratch:
  method: source_only
  baseline: scratch
  relation: within
  margin: 1.0
  sources: [paper_x]
source_only_over_finetune_few_labels:
  method: source_only
  baseline: finetune
  relation: better
  target_labels: few
  sources: [paper_x]
"""
SECONDS = {"scratch": 40.0, "finetune": 50.0, "source_only": 8000.0}
"""Each method's wall seconds per run (timing), for the cost column and claims."""
RISING = {("alpha", "finetune", "a-to-b", 1)}
"""Runs whose validation accuracy still rises at the end: not converged."""
# Source accuracies (val, test) of the groups' pretrainings.
SOURCES = {("small_vgg", "a"): (0.981, 0.975), ("tiny_clip", "c"): (0.271, 0.265)}


def _write_run(
    run_dir: Path, group: str, method: str, task: str, seed: int, acc: float, rising: bool
) -> None:
    protocols = {
        "best_val": {
            "epoch": 2,
            "val_acc": acc + 0.02,
            "test_acc": acc,
            "selection_split": "target_val",
        },
        "last": {"epoch": 3, "val_acc": acc, "test_acc": acc - 0.01},
        "oracle_test": {"epoch": 1, "val_acc": acc - 0.02, "test_acc": acc + 0.01},
    }
    storage.write_json(
        run_dir / "metrics.json",
        {
            "run": {"group": group, "method_key": method, "task": task, "seed": seed},
            "protocols": protocols,
            "epochs": 3,
            "convergence": {"converged": True, "reason": "recorded"},
            "timing": {
                "train_seconds": SECONDS[method] - 5.0,
                "images_per_second": 100.0,
                "wall_seconds": SECONDS[method] + seed,
                "cpu_seconds": SECONDS[method],
                "accelerator_seconds": 0.0,
                "peak_host_mb": 900.0,
                "peak_accelerator_mb": None,
                "device": "CPU",
            },
        },
    )
    log = pd.DataFrame(
        {
            "epoch": [1, 2, 3, 4],
            "train_loss": [1.5, 1.0, 0.5, 0.4],
            "train_acc": [0.3, 0.5, 0.8, 0.9],
            "val_loss": [1.2, 0.9, 0.6, 0.6],
            # the convergence criterion's window is the last 2 epochs: rising, or flat
            "val_acc": (
                [acc - 0.06, acc - 0.04, acc - 0.02, acc + 0.02]
                if rising
                else [acc - 0.1, acc + 0.02, acc + 0.02, acc]
            ),
            "test_loss": [1.2, 0.9, 0.6, 0.6],
            "test_acc": [acc - 0.1, acc + 0.01, acc, acc - 0.01],
            "lr": [0.1, 0.1, 0.05, 0.0],
            "seconds": [1.0, 1.0, 1.0, 1.0],
        }
    )
    log.to_csv(run_dir / "log.csv", index=False)


@pytest.fixture
def run_dirs(tmp_path: Path) -> dict[tuple[str, str, str, int], Path]:
    dirs = {}
    for (group, method, task), accs in ACCURACY.items():
        for seed, acc in enumerate(accs):
            run_dir = tmp_path / "runs" / "quick" / group / method / task / f"seed{seed}"
            run_dir.mkdir(parents=True)
            rising = (group, method, task, seed) in RISING
            _write_run(run_dir, group, method, task, seed, acc, rising)
            dirs[(group, method, task, seed)] = run_dir
    return dirs


@pytest.fixture
def reported_path(tmp_path: Path) -> Path:
    path = tmp_path / "reported.yaml"
    path.write_text(REPORTED_YAML, encoding="utf-8")
    return path


@pytest.fixture
def claims_path(tmp_path: Path) -> Path:
    path = tmp_path / "claims.yaml"
    path.write_text(CLAIMS_YAML, encoding="utf-8")
    return path


@pytest.fixture
def groups(tmp_path: Path) -> list[GroupTable]:
    """GROUPS with their source models: alpha one pretrained net, beta a model-zoo net and
    a CLIP (zero-shot) pretrained here; alpha has few target labels: the few-label claim
    applies to it alone. Both name target only as their reference: alpha's (82 % at
    worst) clears its floor, beta's (63 % on c→d) does not."""
    sources = {}
    for (model, dataset), (val, test) in SOURCES.items():
        path = tmp_path / "pretrained" / "quick" / model / dataset / "metrics.json"
        best = {"epoch": 3, "val_acc": val, "test_acc": test, "selection_split": "source_val"}
        storage.write_json(
            path,
            {"protocols": dict.fromkeys(("best_val", "last", "oracle_test"), best), "epochs": 5},
        )
        sources[model] = SourceModel(model, dataset, path, zero_shot=model == "tiny_clip")
    alpha, beta = GROUPS
    return [
        dataclasses.replace(
            alpha,
            few_target_labels=True,
            sources=(sources["small_vgg"],),
            reference=Reference(method="scratch", floor=0.80),
        ),
        dataclasses.replace(
            beta,
            sources=(SourceModel("vgg16_imagenet", "imagenet"), sources["tiny_clip"]),
            reference=Reference(method="scratch", floor=0.65),
        ),
    ]


@pytest.fixture
def markdown(run_dirs, reported_path, claims_path, groups) -> str:
    frame = collect(groups, run_dirs)
    reported = load_reported(reported_path)
    return render_markdown(frame, groups, reported, HEADER, load_claims(claims_path, reported))


def _row(markdown: str, section: str, heading: str, label: str) -> list[str]:
    """Cells of the row `label` in the table under `heading` of group `section`."""
    part = markdown.split(f"## {section}")[1].split(f"### {heading}")[1].split("###")[0]
    for line in part.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[0] == label:
            return cells[1:]
    raise AssertionError(f"no row {label!r} under {section} / {heading}")


def test_markdown_matches_golden(markdown: str) -> None:
    if os.environ.get("UPDATE_GOLDEN") == "1":
        storage.write_text(GOLDEN, markdown)
    assert markdown == GOLDEN.read_text(encoding="utf-8")


def test_mean_std_and_single_seed(markdown: str) -> None:
    scratch = _row(markdown, "Alpha", "Best validation", "target only")
    assert scratch[0] == "92.00 ± 2.00 (3)"
    oracle = _row(markdown, "Alpha", "Oracle", "target only")
    assert oracle[0] == "93.00 ± 2.00 (3)"
    assert _row(markdown, "Beta", "Best validation", "fine-tune")[0] == "77.00 (1)"


def test_avg_needs_every_task(markdown: str) -> None:
    # (92 + 82) / 2 with both tasks present; source_only lacks c-to-b.
    assert _row(markdown, "Alpha", "Best validation", "target only")[2] == "87.00"
    source_only = _row(markdown, "Alpha", "Best validation", "source only")
    assert source_only[1:3] == ["—", "—"]


def test_each_method_shows_its_cost_and_each_claim_its_compute(markdown: str) -> None:
    # wall seconds 40, 41, 42 (seed added) on the CPU: mean 41 s; source only 8001 s = 2.22 h
    assert _row(markdown, "Alpha", "Best validation", "target only")[-1] == "41 s (CPU)"
    assert _row(markdown, "Alpha", "Best validation", "source only")[-1] == "2.22 h (CPU)"
    assert _row(markdown, "Alpha", "Best validation", "reported: Method X [Paper X]")[-1] == "—"
    # fine-tune (50-52 s) over target only (40-42 s) on the same pairs: 51 / 41
    claim = _row(markdown, "Alpha", "Claims", "fine-tune > target only")
    assert claim[0] == "+4.50 at 1.24x the compute"


def test_reported_rows_are_labelled(markdown: str) -> None:
    best_val = markdown.split("## Beta")[0].split("### Last")[0]
    assert _row(markdown, "Alpha", "Best validation", "reported: Method X [Paper X]") == [
        "91.5",
        "84",
        "—",
        "—",
    ]
    assert _row(markdown, "Alpha", "Best validation", "reported: Method Y [Paper X]") == [
        "—",
        "88.25",
        "—",
        "—",
    ]
    assert "Method Z" not in markdown  # none of its tasks are in the group
    assert "reported, not computed here" in best_val and "Paper X (Venue 2024)" in best_val
    assert "reported:" not in markdown.split("### Last")[1]  # only beside best-val
    assert "a→b" in markdown and "a-to-b" not in markdown


def write_all(tmp_path, run_dirs, reported_path, claims_path, groups) -> Path:
    """`write_tables` into tmp_path/results, the names a profile's tables use."""
    out = tmp_path / "results"
    write_tables(
        groups,
        run_dirs,
        reported_path,
        claims_path,
        HEADER,
        out / "tables.md",
        out / "tables.csv",
        out / "claims.csv",
        out / "figures",
    )
    return out


def test_write_tables_outputs(tmp_path, run_dirs, reported_path, claims_path, groups) -> None:
    out = write_all(tmp_path, run_dirs, reported_path, claims_path, groups)
    assert "[figures/alpha.png](figures/alpha.png)" in (out / "tables.md").read_text()
    for name in ("alpha", "beta"):
        assert (out / "figures" / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    csv = pd.read_csv(out / "tables.csv")
    cell = csv[
        (csv.group == "alpha")
        & (csv.protocol == "best_val")
        & (csv.method == "target only")
        & (csv.task == "a-to-b")
    ].iloc[0]
    assert (cell["mean"], cell["std"], cell["n"], cell["kind"]) == (92.0, 2.0, 3, "ours")
    theirs = csv[csv.kind == "reported"]
    assert set(theirs.method) == {"Method X", "Method Y"}
    assert set(theirs.source) == {"Paper X (Venue 2024), Table 2"}
    assert not list(out.rglob(".*.tmp"))  # atomic writes leave no temporaries


def test_claims_csv_matches_the_claims_sections(
    tmp_path, run_dirs, reported_path, claims_path, groups
):
    out = write_all(tmp_path, run_dirs, reported_path, claims_path, groups)
    claims = pd.read_csv(out / "claims.csv")
    # alpha: 4 claims (one only for few target labels), beta: 3; each for 3 protocols
    assert len(claims) == (4 + 3) * 3
    assert set(claims.protocol) == {"best_val", "last", "oracle_test"}
    markdown = (out / "tables.md").read_text()
    for group, title in (("alpha", "Alpha"), ("beta", "Beta")):
        section = markdown.split(f"## {title}")[1].split("### Claims")[1].split("## ")[0]
        best = claims[(claims.group == group) & (claims.protocol == "best_val")]
        lines = [x for x in section.splitlines() if x.startswith("| ")][1:]  # below the header
        assert len(lines) == len(best)
        for line, (_, row) in zip(lines, best.iterrows(), strict=True):
            cells = [c.strip() for c in line.strip("|").split("|")]
            assert cells[0].startswith(f"{row.method} ") and cells[0].endswith(f" {row.baseline}")
            diff, _, compute = cells[1].partition(" at ")
            assert float(compute.partition("x")[0]) == pytest.approx(row.cost_ratio, 0.01, 1e-4)
            assert [diff, *cells[2:5]] == [
                f"{row.mean_diff:+.2f}",
                f"[{row.ci_low:+.2f}, {row.ci_high:+.2f}]",
                str(row.n),
                row.verdict,
            ]


def test_missing_source_metrics_names_file(run_dirs, reported_path, groups) -> None:
    victim = groups[0].sources[0].metrics
    victim.unlink()
    with pytest.raises(FileNotFoundError, match=str(victim)):
        render_markdown(collect(groups, run_dirs), groups, load_reported(reported_path), HEADER)


def test_frame_for_csv_columns(run_dirs, reported_path) -> None:
    long = frame_for_csv(collect(GROUPS, run_dirs), GROUPS, load_reported(reported_path))
    assert list(long.columns) == [
        "group",
        "protocol",
        "method_key",
        "method",
        "task",
        "mean",
        "std",
        "n",
        "unconverged",
        "run_seconds",
        "device",
        "kind",
        "source",
    ]
    alpha_best = long[(long.group == "alpha") & (long.protocol == "best_val")]
    assert list(alpha_best.task) == ["a-to-b", "c-to-b", "avg", "a-to-b", "c-to-b", "avg", "a-to-b"]


def test_learning_curves_png(tmp_path, run_dirs) -> None:
    out = tmp_path / "fig" / "beta.png"
    learning_curves(GROUPS[1], curves(load_logs(GROUPS[1], run_dirs)), out)
    assert out.stat().st_size > 1000


def test_missing_metrics_names_file(run_dirs) -> None:
    victim = run_dirs[("beta", "scratch", "c-to-d", 2)] / "metrics.json"
    victim.unlink()
    with pytest.raises(FileNotFoundError, match=str(victim)):
        collect(GROUPS, run_dirs)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("paper_x: {metric: m, protocol: p, rows: {}}", r"at 'paper_x': no `source`"),
        (
            "paper_x: {source: s, metric: m, protocol: p, rows: {A: {a-to-b: high}}}",
            r"at 'paper_x\.rows\.A\.a-to-b': Input should be a valid number \(got 'high'\)",
        ),
        (
            "paper_x: {source: s, metric: m, protocol: p, rows: {A: {a-to-b: true}}}",
            r"at 'paper_x\.rows\.A\.a-to-b': Input should be a valid number \(got True\)",
        ),
        (
            "paper_x: {source: s, metric: m, protocol: p, rows: {A: {a-to-b: .nan}}}",
            r"at 'paper_x\.rows\.A\.a-to-b': Input should be a finite number",
        ),
        (
            "paper_x: {source: s, metric: m, protocol: p, rows: {A: [1, 2]}}",
            r"at 'paper_x\.rows\.A': Input should be a valid dictionary",
        ),
        (
            "paper_x: {source: s, metric: m, protocol: p, rows: {}, sauce: x}",
            r"at 'paper_x': unknown key 'sauce' \(allowed keys: average_of, metric, note,",
        ),
        (
            "paper_x: {source: s, metric: m, protocol: p, rows: [1]}",
            r"at 'paper_x\.rows': Input should be a valid dictionary",
        ),
        (
            "paper_x: {source: s, metric: 3, protocol: p, rows: {}}",
            r"at 'paper_x\.metric': Input should be a valid string \(got 3\)",
        ),
        (
            "paper_x: {source: s, metric: m, protocol: p, rows: {}, short: null}",
            r"at 'paper_x\.short': Input should be a valid string \(got None\)",
        ),
        ("paper_x: [1]", r"at 'paper_x': Input should be a valid dictionary"),
        ("- just a list", r"at '<top level>': Input should be a valid dictionary"),
        ("", r"at '<top level>': Input should be a valid dictionary \(got None\)"),
        (
            "paper_x: {source: s, metric: m, protocol: p, rows: {}, average_of: [1]}",
            r"at 'paper_x\.average_of\[0\]': Input should be a valid string \(got 1\)",
        ),
    ],
)
def test_load_reported_rejects_malformed(tmp_path, text: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ReportedFormatError, match=message) as error:
        load_reported(path)
    assert str(error.value).startswith(f"{path} is not valid:")


def test_load_reported_names_every_faulty_key_of_the_real_tables(tmp_path) -> None:
    """The repository's tables, one with a misspelt key and another with a value given as
    text: one line per faulty key, each named as written, nothing about the others."""
    data = yaml.safe_load((REPO / "config" / "reported.yaml").read_text(encoding="utf-8"))
    data["multitune"]["protcol"] = data["multitune"].pop("protocol")
    data["tlvfc_resnet18"]["rows"]["TLVFC"]["imagenet-to-cifar10"] = "77.24 %"
    path = tmp_path / "reported.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    with pytest.raises(ReportedFormatError) as error:
        load_reported(path)
    assert isinstance(error.value, TlreproError)
    assert str(error.value).splitlines()[1:] == [
        "  at 'multitune': unknown key 'protcol' (allowed keys: average_of, metric, note, "
        "protocol, protocol_key, rows, short, source)",
        "  at 'tlvfc_resnet18.rows.TLVFC.imagenet-to-cifar10': Input should be a valid number "
        "(got '77.24 %')",
    ]


def test_unknown_reported_key_is_an_error(run_dirs, reported_path) -> None:
    group = GroupTable("alpha", "Alpha", ["a-to-b"], METHODS, [0], "paper_q")
    with pytest.raises(UnknownReportedTableError, match="paper_q"):
        render_markdown(collect([group], run_dirs), [group], load_reported(reported_path), HEADER)


def test_real_reported_config_loads() -> None:
    reported = load_reported(REPO / "config" / "reported.yaml")
    assert reported["gradmf"]["rows"] == {}
    assert reported["tlvfc_resnet18"]["rows"]["TLVFC"]["imagenet-to-cifar10"] == 77.24
    for key in (
        "tlvfc_depth_resnet34",
        "tlvfc_depth_resnet152",
        "cmkd_digits_rn50",
        "multitune",
        "spottune_decathlon",
        "cmkd_office_home_rn50",
        "cmkd_office_home_vit",
        "cmkd_office31_rn50",
        "cmkd_visda_vit",
    ):
        assert reported[key]["rows"], key


def test_a_papers_average_over_all_of_a_datasets_tasks_stands_in_the_avg_column() -> None:
    """`office31-avg` (the CMKD paper's average over the 6 Office-31 tasks) is shown in the
    avg column of a group that runs those 6 tasks, and nowhere for a group with fewer."""
    from tlrepro.reporting.aggregate import _reported

    domains = ("amazon", "webcam", "dslr")
    every = [f"office31_{a}-to-office31_{b}" for a in domains for b in domains if a != b]
    table = {"protocol": "oracle", "source": "CMKD", "rows": {"CMKD": {"office31-avg": 88.5}}}
    full = GroupTable("g", "G", every, [("cmkd", "CMKD")], [0], "cmkd_office31_rn50")
    assert _reported(table, full)[["label", "task", "mean"]].values.tolist() == [
        ["CMKD", "avg", 88.5]
    ]
    part = GroupTable("g", "G", every[:3], [("cmkd", "CMKD")], [0], "cmkd_office31_rn50")
    assert _reported(table, part).empty


def test_an_unconverged_seed_marks_its_cells_and_its_claims(
    tmp_path, run_dirs, reported_path, claims_path, groups
) -> None:
    """fine-tune's seed 1 on a→b still rises: its cell and avg carry †, tables.csv counts
    it, and alpha's claims on fine-tune say `not converged` (beside their Δ and interval)."""
    out = write_all(tmp_path, run_dirs, reported_path, claims_path, groups)
    fine_tune = _row((out / "tables.md").read_text(), "Alpha", "Best validation", "fine-tune")
    assert fine_tune == ["96.00† ± 1.00 (3)", "87.00 ± 1.00 (3)", "91.50†", "51 s (CPU)"]
    assert "did not converge: fine-tune on a→b: 1 of 3." in (out / "tables.md").read_text()
    csv = pd.read_csv(out / "tables.csv")
    ours = csv[(csv.kind == "ours") & (csv.group == "alpha") & (csv.protocol == "best_val")]
    counts = ours.set_index(["method_key", "task"])["unconverged"]
    assert counts[("finetune", "a-to-b")] == 1 and counts[("finetune", "avg")] == 1
    assert counts.drop([("finetune", "a-to-b"), ("finetune", "avg")]).eq(0).all()
    assert csv.loc[csv.kind == "reported", "unconverged"].isna().all()
    claims = pd.read_csv(out / "claims.csv", keep_default_na=False, na_values=[""])
    alpha = claims[(claims.group == "alpha") & (claims.protocol == "best_val")]
    verdicts = dict(zip(alpha.claim, alpha.verdict, strict=True))
    assert verdicts == {
        "finetune_over_scratch": "not converged",
        "scratch_over_source_only": "holds",
        "source_only_near_scratch": "reversed",
        "source_only_over_finetune_few_labels": "not converged",
    }
    row = alpha[alpha.claim == "finetune_over_scratch"].iloc[0]
    assert (row.mean_diff, row.n, row.unconverged) == (4.5, 6, 1)
    assert row.note == "1 of the 12 paired runs did not converge"


def test_a_reference_below_its_floor_withholds_the_groups_verdicts(
    tmp_path, run_dirs, reported_path, claims_path, groups
) -> None:
    """beta's target only reaches 63 % on c→d, below its floor of 65 %."""
    out = write_all(tmp_path, run_dirs, reported_path, claims_path, groups)
    beta = (out / "tables.md").read_text().split("## Beta")[1]
    message = (
        "Verdicts withheld: the reference baseline target only (`scratch`) reached 63.00 % "
        "on c→d (mean test accuracy over seeds at the best validation epoch), below its "
        "floor of 65.00 %."
    )
    assert message in beta
    claims = pd.read_csv(out / "claims.csv")
    withheld = claims[claims.group == "beta"]
    assert set(withheld.verdict) == {"withheld"} and len(withheld) == 3 * 3
    assert withheld.note.str.startswith(message).all()
    assert withheld.mean_diff.notna().all()  # the evidence stays visible
    assert "withheld" not in set(claims[claims.group == "alpha"].verdict)


def test_without_a_reference_the_claims_are_judged_and_the_section_says_so(
    run_dirs, reported_path, claims_path, groups
) -> None:
    unchecked = [dataclasses.replace(group, reference=None) for group in groups]
    reported = load_reported(reported_path)
    markdown = render_markdown(
        collect(unchecked, run_dirs),
        unchecked,
        reported,
        HEADER,
        load_claims(claims_path, reported),
    )
    beta = markdown.split("## Beta")[1]
    assert "No reference floor is set for this group" in beta
    assert "withheld" not in beta.split("### Claims")[1]
    assert "| holds " in beta


def test_report_pages_show_the_marks_and_verdicts(
    tmp_path, run_dirs, reported_path, claims_path, groups
) -> None:
    from tlrepro.reporting.report_pages import write_report_pages

    out = write_all(tmp_path, run_dirs, reported_path, claims_path, groups)
    titles = {"alpha": "Alpha transfers", "beta": "Beta transfers"}
    write_report_pages(
        out / "tables.csv", out / "claims.csv", out / "figures", titles, tmp_path / "report"
    )
    alpha = (tmp_path / "report" / "alpha" / "1_results.html").read_text()
    assert "96.0† ± 1.0 (3)" in alpha
    claims = (tmp_path / "report" / "alpha" / "2_claims.html").read_text()
    assert "<td>not converged</td>" in claims and "seeds_needed" in claims
    beta = (tmp_path / "report" / "beta" / "2_claims.html").read_text()
    assert beta.count("<td>withheld</td>") == 3 and "below its floor of 65.00 %" in beta


@pytest.mark.parametrize("profile", ["quick", "paper", "rehearsal"])
def test_every_reported_table_a_group_names_shows_in_its_section(profile: str) -> None:
    """A table with rows that match none of its group's columns is never shown (the depth
    table keyed `unstated` was): each contributes a cell. A table without rows says the
    paper gives no numbers. The rehearsal keeps some of a benchmark's tasks, so a paper's
    average over all of them has no column there: only such tables may show nothing."""
    from tlrepro.cli import group_tables
    from tlrepro.config.load import load_config
    from tlrepro.plan.runs import build_plan
    from tlrepro.reporting.aggregate import _reported

    config = REPO / "config" / "config.yaml"
    reported = load_reported(REPO / "config" / "reported.yaml")
    paper = {g.name: g for g in group_tables(build_plan(load_config(config, "paper")))}
    for group in group_tables(build_plan(load_config(config, profile))):
        table = reported.get(group.reported or "", {"rows": {}})
        if not table["rows"] or not _reported(table, group).empty:
            continue
        tasks = [task for cells in table["rows"].values() for task in cells]
        assert profile == "rehearsal", (group.name, group.reported)
        assert all(task.endswith("-avg") for task in tasks), (group.name, group.reported)
        assert group.tasks != paper[group.name].tasks, group.name


def test_a_papers_average_over_named_tasks_stands_in_the_avg_column() -> None:
    """`average_of` names the tasks a paper averages (CMKD's digits: three of the pairs of
    the digits label space): the avg column only of a group that runs exactly those."""
    from tlrepro.reporting.aggregate import _reported

    tasks = ["svhn-to-mnist", "usps-to-mnist", "mnist-to-usps"]
    table = {
        "protocol": "oracle",
        "source": "CMKD",
        "average_of": tasks,
        "rows": {"CMKD": {"digits-avg": 97.1}},
    }
    group = GroupTable("g", "G", tasks, [("cmkd", "CMKD")], [0], "cmkd_digits_rn50")
    assert _reported(table, group)[["task", "mean"]].values.tolist() == [["avg", 97.1]]
    fewer = GroupTable("g", "G", tasks[:2], [("cmkd", "CMKD")], [0], "cmkd_digits_rn50")
    assert _reported(table, fewer).empty


def test_dsp_is_shown_per_run_and_summed_over_the_groups_tasks() -> None:
    """A paper's DSP for a benchmark sums its tasks (CMKD's Office-Home: 12 of them); ours
    is per run, so the table adds that sum, only where every task has a value."""
    from tlrepro.reporting.markdown import DSP, DSP_SUM, _dsp_line, _with_dsp

    group = GroupTable("g", "G", ["a-to-b", "b-to-a"], [("r", "RST"), ("c", "CMKD")], [0, 1])
    records = [
        {"group": "g", "label": "RST", "task": task, "protocol": protocol, "dsp_millions": dsp}
        for task, dsps in (("a-to-b", (0.1, 0.3)), ("b-to-a", (0.5, 0.5)))
        for dsp in dsps
        for protocol in ("best_val", "oracle")
    ] + [
        {
            "group": "g",
            "label": "CMKD",
            "task": "a-to-b",
            "protocol": "best_val",
            "dsp_millions": 38.0,
        }
    ]
    body = pd.DataFrame(index=["RST", "CMKD"], columns=["a-to-b", "b-to-a"])
    table = _with_dsp(body, pd.DataFrame(records), group)
    assert table[DSP].tolist() == ["0.35", "38"]
    assert table[DSP_SUM].tolist() == ["0.7", "—"]  # CMKD ran one of the two tasks
    assert "summed over this group's tasks" in _dsp_line(table)
    assert _dsp_line(body) is None


def test_each_rst_runs_density_is_shown_under_its_groups_table() -> None:
    from tlrepro.reporting.markdown import _rst_density_line

    group = GroupTable(
        "uda", "UDA", ["a-to-b"], [("cmkd", "CMKD"), ("cmkd_rst", "CMKD+RST")], [0, 1]
    )
    frame = pd.DataFrame(
        {
            "group": "uda",
            "protocol": ["best_val", "best_val", "best_val", "last"],
            "label": ["CMKD", "CMKD+RST", "CMKD+RST", "CMKD+RST"],
            "seed": [0, 0, 1, 0],
            "rst_density": [float("nan"), 0.0036, 0.0040, 0.0036],
        }
    )
    line = _rst_density_line(frame, group)
    assert line is not None and "CMKD+RST 0.380% (seeds 0: 0.360%, 1: 0.400%)" in line
    assert "CMKD " not in line
    assert _rst_density_line(frame.assign(rst_density=float("nan")), group) is None


def test_the_max_val_protocol_shows_validation_accuracy_beside_the_papers_maxima(
    tmp_path, run_dirs, groups
) -> None:
    """A group asking for max_val gets a section of validation accuracies (not test), and a
    reported table measured that way (`protocol_key: max_val`) stands under it, not under
    the best validation epoch's test accuracies."""
    for (group, method, task, seed), run_dir in run_dirs.items():
        metrics = storage.read_json(run_dir / "metrics.json")
        acc = ACCURACY[(group, method, task)][seed]
        metrics["protocols"]["max_val"] = {
            "epoch": 2,
            "val_acc": acc + 0.02,
            "test_acc": acc,
            "selection_split": "target_val",
        }
        storage.write_json(run_dir / "metrics.json", metrics)
    path = tmp_path / "reported_max_val.yaml"
    path.write_text(REPORTED_YAML.replace("  rows:", "  protocol_key: max_val\n  rows:"))
    reported = load_reported(path)
    alpha = dataclasses.replace(groups[0], protocols=("max_val",))
    frame = collect([alpha], run_dirs)
    text = render_markdown(frame, [alpha], reported, HEADER, [])
    heading = "Max validation accuracy over epochs"
    # fine-tune on a→b: test 95/96/97 % at the picked epochs, validation 97/98/99 %
    assert _row(text, "Alpha", heading, "fine-tune")[0].startswith("98.00")
    assert _row(text, "Alpha", "Best validation epoch", "fine-tune")[0].startswith("96.00")
    assert _row(text, "Alpha", heading, "reported: Method X [Paper X]")[0] == "91.5"
    with pytest.raises(AssertionError, match="no row"):
        _row(text, "Alpha", "Best validation epoch", "reported: Method X [Paper X]")
    # the other groups' tables are as before: no max-val section
    beta_frame = collect([groups[1]], run_dirs)
    assert heading not in render_markdown(beta_frame, [groups[1]], reported, HEADER, [])


def test_a_run_without_its_groups_extra_protocol_is_named(run_dirs, groups) -> None:
    alpha = dataclasses.replace(groups[0], protocols=("max_val",))
    with pytest.raises(ValueError, match=r"no protocol 'max_val'.*rerun"):
        collect([alpha], run_dirs)


def test_a_reported_tables_protocol_key_must_be_a_protocol(tmp_path) -> None:
    path = tmp_path / "reported.yaml"
    path.write_text(REPORTED_YAML.replace("  rows:", "  protocol_key: max_test\n  rows:"))
    with pytest.raises(
        ReportedFormatError,
        match=r"at 'paper_x\.protocol_key': 'max_test' is not a protocol \(best_val, last, ",
    ):
        load_reported(path)


def test_a_transductive_group_says_how_its_splits_differ() -> None:
    """The CMKD office groups train and test on every target image (the release's
    protocol): their section says so; a held-out group's says nothing."""
    from tlrepro.reporting.markdown import _protocol_line

    held_out = GroupTable("g", "G", ["a-to-b"], [("cmkd", "CMKD")], [0])
    assert _protocol_line(held_out) is None
    transductive = GroupTable(
        "g", "G", ["a-to-b"], [("cmkd", "CMKD")], [0], protocol="transductive"
    )
    line = _protocol_line(transductive)
    assert "transductive" in line and "every target image" in line and "validation" in line
