"""The papers' claims: paired statistics, the claims file's checks, the Claims sections.

Intervals are checked against Student-t quantiles from printed tables, not against
scipy's own interval function.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tlrepro.cli import group_tables
from tlrepro.config.load import load_config
from tlrepro.errors import TlreproError
from tlrepro.plan.runs import build_plan
from tlrepro.reporting.aggregate import load_reported
from tlrepro.reporting.claims import (
    INCONCLUSIVE,
    NOT_CONVERGED,
    REVERSED,
    Claim,
    ClaimsFormatError,
    compare,
    detectable_difference,
    evaluate,
    load_claims,
    paired_differences,
    seeds_needed,
)
from tlrepro.reporting.markdown import Header, render_markdown
from tlrepro.reporting.results import FRAME_COLUMNS, GroupTable
from tlrepro.training.selection import PROTOCOLS

REPO = Path(__file__).resolve().parents[1]
T_975 = {2: 4.3027, 3: 3.1824}
"""Two-sided 95 % Student-t quantiles by degrees of freedom (printed tables)."""
REPORTED = {"paper_x": {"rows": {"A": {"t": 60.0, "u": 70.0}, "B": {"t": 58.0}}}}


def frame(rows: list[tuple[str, str, str, int, float]], protocol: str = "best_val"):
    """The tables' long frame from (group, method_key, task, seed, test_acc) rows."""
    records = [
        dict.fromkeys(FRAME_COLUMNS)
        | {"group": g, "method_key": m, "task": t, "seed": s, "protocol": protocol}
        | {"test_acc": a, "converged": True}
        for g, m, t, s, a in rows
    ]
    return pd.DataFrame(records, columns=FRAME_COLUMNS)


def claim(relation: str = "better", margin: float | None = None, **fields) -> Claim:
    return Claim("c", "a", "b", relation, ("paper_x",), margin, **fields)


def t_interval(values: list[float]) -> tuple[float, float]:
    n = len(values)
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = T_975[n - 1] * sd / math.sqrt(n)
    return mean - half, mean + half


@pytest.mark.parametrize(
    ("differences", "relation", "verdict"),
    [
        ([3.0, 4.0, 5.0], "better", "holds"),  # [1.52, 6.48]
        ([-3.0, -4.0, -5.0], "better", "reversed"),
        ([1.0, 2.0, 3.0], "better", "inconclusive"),  # [-0.48, 4.48] contains 0
        ([0.1, -0.1, 0.2, 0.0], "within", "holds"),  # [-0.16, 0.26] inside ±1
        ([3.0, 3.5, 4.0], "within", "reversed"),  # [2.26, 4.74] wholly above +1
        ([-3.0, -3.5, -4.0], "within", "reversed"),  # wholly below -1
        ([0.5, 1.5, 1.0], "within", "inconclusive"),  # [-0.24, 2.24] straddles +1
    ],
)
def test_verdicts_read_the_t_interval(differences, relation, verdict) -> None:
    result = compare(differences, relation, 1.0 if relation == "within" else None)
    low, high = t_interval(differences)
    assert result.n == len(differences)
    assert result.mean == pytest.approx(sum(differences) / len(differences))
    assert (result.low, result.high) == pytest.approx((low, high), abs=1e-3)
    assert result.verdict == verdict


def test_fewer_than_two_pairs_is_inconclusive_without_interval() -> None:
    one = compare([5.0], "better")
    assert (one.n, one.mean, one.verdict) == (1, 5.0, INCONCLUSIVE)
    assert math.isnan(one.low) and math.isnan(one.high)
    none = compare([], "within", 1.0)
    assert (none.n, none.verdict) == (0, INCONCLUSIVE) and math.isnan(none.mean)


def test_zero_spread_gives_a_point_interval() -> None:
    same = compare([0.5, 0.5, 0.5], "better")
    assert (same.low, same.high, same.verdict) == (0.5, 0.5, "holds")
    assert compare([0.0, 0.0], "better").verdict == INCONCLUSIVE  # the point 0 contains 0
    assert compare([1.0, 1.0], "within", 1.0).verdict == "holds"  # the bounds belong to ±m


def test_pairs_by_task_and_seed() -> None:
    """Only (task, seed) pairs both methods ran count; pairing removes the seeds' shared
    spread (unpaired, 60 ± 10 against 58 ± 10 would prove nothing)."""
    runs = frame(
        [
            ("g", "a", "t", 0, 0.50),
            ("g", "a", "t", 1, 0.60),
            ("g", "a", "t", 2, 0.70),
            ("g", "a", "u", 0, 0.90),  # no partner: b lacks (u, 0)
            ("g", "b", "t", 0, 0.48),
            ("g", "b", "t", 1, 0.58),
            ("g", "b", "t", 2, 0.68),
            ("g", "b", "t", 3, 0.10),  # no partner: a lacks seed 3
            ("other", "b", "t", 1, 0.99),  # another group's run
        ]
    )
    row = evaluate(runs, "g", [claim()], REPORTED, ["best_val"]).iloc[0]
    assert row["n"] == 3
    assert row["mean_diff"] == pytest.approx(2.0)
    assert row["ci_low"] == pytest.approx(2.0) and row["ci_high"] == pytest.approx(2.0)
    assert row["verdict"] == "holds"


def test_each_protocol_is_tested_on_its_own_accuracies() -> None:
    best = frame([("g", "a", "t", s, 0.6 + 0.01 * s) for s in range(3)])
    best = pd.concat([best, frame([("g", "b", "t", s, 0.5) for s in range(3)])])
    last = frame([("g", key, "t", s, 0.5) for key in "ab" for s in range(3)], protocol="last")
    rows = evaluate(pd.concat([best, last]), "g", [claim()], REPORTED, ["best_val", "last"])
    assert list(rows["protocol"]) == ["best_val", "last"]
    assert rows["mean_diff"].tolist() == pytest.approx([11.0, 0.0])
    assert rows["verdict"].tolist() == ["holds", INCONCLUSIVE]


def test_an_unconverged_run_of_either_method_overrules_the_verdict() -> None:
    runs = frame(
        [
            ("g", key, "t", s, 0.6 if key == "a" else 0.5 + 0.01 * s)
            for key in "ab"
            for s in range(3)
        ]
    )
    judged = evaluate(runs, "g", [claim()], REPORTED, ["best_val"]).iloc[0]
    assert (judged["verdict"], judged["unconverged"], judged["note"]) == ("holds", 0, "")
    runs.loc[(runs["method_key"] == "b") & (runs["seed"] == 2), "converged"] = False
    row = evaluate(runs, "g", [claim()], REPORTED, ["best_val"]).iloc[0]
    assert (row["verdict"], row["unconverged"]) == (NOT_CONVERGED, 1)
    assert row["note"] == "1 of the 6 paired runs did not converge"
    # the evidence stays: a − b = 10, 9, 8 points
    assert (row["mean_diff"], row["ci_low"]) == (judged["mean_diff"], judged["ci_low"])
    assert row["mean_diff"] == pytest.approx(9.0)


def power(effect: float, n: int) -> float:
    """The chance that n pairs' 95 % t-interval lies above 0 at standardised effect
    `effect`, from the noncentral t directly, not through statsmodels."""
    from scipy import stats

    df = n - 1
    return float(stats.nct.sf(stats.t.ppf(0.975, df), df, effect * math.sqrt(n)))


@pytest.mark.parametrize(("n", "sd"), [(3, 2.0), (6, 1.5), (12, 0.5)])
def test_the_detectable_difference_has_80_percent_power(n: int, sd: float) -> None:
    detectable = detectable_difference(n, sd)
    assert power(detectable / sd, n) == pytest.approx(0.80, abs=1e-4)
    assert power(0.9 * detectable / sd, n) < 0.80


def test_seeds_needed_are_the_fewest_with_80_percent_power() -> None:
    assert seeds_needed(2.0, 2.0, 3, 1) == 10  # d = 1: 10 pairs (Cohen's tables)
    for target, sd in ((3.0, 2.0), (-3.0, 2.0), (1.0, 3.0), (0.5, 0.2)):
        pairs = seeds_needed(target, sd, 3, 1)
        assert power(abs(target) / sd, pairs) >= 0.80 > power(abs(target) / sd, pairs - 1)
        assert seeds_needed(target, sd, 3, 2) == math.ceil(pairs / 2)  # pairs shared by tasks
    for huge in (9.0, 10.0, 11.0, 20.0, 50.0):  # around and past what 2 pairs detect
        pairs = seeds_needed(huge, 1.0, 3, 1)
        assert power(huge, pairs) >= 0.80 and (pairs == 2 or power(huge, pairs - 1) < 0.80)


@pytest.mark.parametrize(
    ("target", "sd", "n"), [(math.nan, 1.0, 3), (0.0, 1.0, 3), (2.0, 0.0, 3), (2.0, 1.0, 1)]
)
def test_power_figures_need_a_target_a_spread_and_two_pairs(target, sd, n) -> None:
    assert math.isnan(seeds_needed(target, sd, n, 1))
    if target == 0.0 or math.isnan(target):
        return
    assert math.isnan(detectable_difference(n, sd))


def test_evaluate_reports_the_power_figures() -> None:
    """`better`: the seeds to detect the paper's Δ; `within`: to detect the margin."""
    runs = frame(
        [("g", key, "t", s, 0.6 + (key == "a") * 0.01 * (s + 1)) for key in "ab" for s in range(3)]
    )
    claims = [claim(paper_rows=("A", "B")), claim("within", 0.5)]
    better, within = evaluate(runs, "g", claims, REPORTED, ["best_val"]).itertuples()
    # a − b = 1, 2, 3 points: sd 1; the paper's Δ is 2 points
    assert better.detectable == pytest.approx(detectable_difference(3, 1.0))
    assert better.seeds_needed == seeds_needed(2.0, 1.0, 3, 1)
    assert within.seeds_needed == seeds_needed(0.5, 1.0, 3, 1)


def test_paper_difference_uses_cells_with_both_rows() -> None:
    assert claim(paper_rows=("A", "B")).paper_difference(REPORTED) == (2.0, 1)
    diff, cells = claim().paper_difference(REPORTED)
    assert math.isnan(diff) and cells == 0


def test_target_labels_select_groups() -> None:
    keys = ["a", "b"]
    assert claim().applies_to(keys, few_target_labels=True)
    assert claim(target_labels="few").applies_to(keys, few_target_labels=True)
    assert not claim(target_labels="few").applies_to(keys, few_target_labels=False)
    assert claim(target_labels="full").applies_to(keys, few_target_labels=False)
    assert not claim().applies_to(["a", "c"], few_target_labels=False)


def test_label_spaces_keep_the_pairs_groups_and_cells_the_claim_is_made_for() -> None:
    scoped = claim(paper_rows=("A", "B"), label_spaces=("fgvc_aircraft",))
    air, cifar = "caltech256_decathlon-to-fgvc_aircraft", "caltech256_decathlon-to-cifar100"
    assert scoped.covers(air) and not scoped.covers(cifar)
    assert scoped.covers("fgvc_aircraft-avg") and not scoped.covers("cifar100-avg")
    assert scoped.applies_to(["a", "b"], False, [cifar, air])
    assert not scoped.applies_to(["a", "b"], False, [cifar])
    runs = frame(
        [("g", "a", air, s, 0.6) for s in range(2)]
        + [("g", "b", air, s, 0.5) for s in range(2)]
        + [("g", "a", cifar, s, 0.1) for s in range(2)]
        + [("g", "b", cifar, s, 0.9) for s in range(2)]
    )
    pairs = paired_differences(runs, "g", scoped)
    assert set(pairs["task"]) == {air} and pairs["diff"].round(6).tolist() == [10.0, 10.0]
    reported = {"paper_x": {"rows": {"A": {air: 63.9, cifar: 80.5}, "B": {air: 60.3, cifar: 82.1}}}}
    diff, cells = scoped.paper_difference(reported)
    assert cells == 1 and diff == pytest.approx(3.6)


def test_stores_less_reads_the_paired_reduction_of_dsp() -> None:
    rows = [("g", key, "t", s, 0.5) for key in "ab" for s in range(3)]
    runs = frame(rows).assign(dsp_millions=[0.1, 0.11, 0.12, 38.0, 38.0, 38.0])
    less = claim("stores_less", reduction=99.0)
    pairs = paired_differences(runs, "g", less)
    expected = [(1 - d / 38.0) * 100 for d in (0.1, 0.11, 0.12)]
    assert pairs["diff"].tolist() == pytest.approx(expected)
    row = evaluate(runs, "g", [less], REPORTED, ["best_val"]).iloc[0]
    assert row["verdict"] == "holds" and row["reduction"] == 99.0
    assert compare([98.0, 98.5, 98.2], "stores_less", 99.0).verdict == "reversed"
    assert compare([98.0, 99.9, 99.5], "stores_less", 99.0).verdict == "inconclusive"


GOOD = "c: {method: a, baseline: b, relation: better, sources: [paper_x]}"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- a list", r"at '<top level>': Input should be a valid dictionary \(got \['a list'\]\)"),
        ("", r"at '<top level>': Input should be a valid dictionary \(got None\)"),
        ("{}", r"at '<top level>': Dictionary should have at least 1 item"),
        ("Bad-Key: {}", r"at 'Bad-Key': String should match pattern"),
        ("c: [a, b]", r"at 'c': Input should be a valid dictionary"),
        (GOOD.replace("better", "bigger"), r"at 'c\.relation': 'bigger' is not allowed"),
        (GOOD.replace("baseline: b, ", ""), r"at 'c': no `baseline` \(it is required\)"),
        (
            GOOD.replace("}", ", sauce: 1}"),
            r"at 'c': unknown key 'sauce' \(allowed keys: baseline,",
        ),
        (GOOD.replace("method: a", "method: ''"), r"at 'c\.method': String should have at least 1"),
        (GOOD.replace("method: a", "method: 3"), r"at 'c\.method': Input should be a valid string"),
        (GOOD.replace("[paper_x]", "[]"), r"at 'c\.sources': List should have at least 1 item"),
        (GOOD.replace("[paper_x]", "paper_x"), r"at 'c\.sources': Input should be a valid list"),
        (GOOD.replace("[paper_x]", "[paper_x, 2]"), r"at 'c\.sources\[1\]': .* valid string"),
        (GOOD.replace("[paper_x]", "[paper_x, paper_x]"), r"'paper_x' listed more than once"),
        (GOOD.replace("}", ", label_spaces: []}"), r"at 'c\.label_spaces': List should have"),
        (GOOD.replace("better", "within").replace("}", ", margin: '1'}"), r"at 'c\.margin'"),
        (GOOD.replace("better", "within").replace("}", ", margin: true}"), r"at 'c\.margin'"),
        (GOOD.replace("better", "within").replace("}", ", margin: 0}"), r"greater than 0"),
        (GOOD.replace("better", "within").replace("}", ", margin: null}"), r"at 'c\.margin'"),
        (GOOD.replace("better", "stores_less").replace("}", ", reduction: 100}"), r"less than 100"),
        (
            GOOD.replace("}", ", paper_rows: [A]}"),
            r"at 'c\.paper_rows': List should have at least 2",
        ),
        (GOOD.replace("better", "within"), r"at 'c': `margin` \(points\) is required"),
        (GOOD.replace("}", ", margin: 1}"), r"meaningless with the others"),
        (GOOD.replace("baseline: b", "baseline: a"), r"method and baseline are both 'a'"),
        (
            GOOD.replace("paper_x", "paper_q"),
            r"at 'c\.sources': 'paper_q' not in reported\.yaml; its tables: paper_x",
        ),
        (
            GOOD.replace("}", ", paper_rows: [A, C]}"),
            r"at 'c\.paper_rows': row 'C' is in none of the sources \(paper_x\); "
            r"their rows: A, B",
        ),
        (GOOD.replace("}", ", target_labels: some}"), r"at 'c\.target_labels'"),
        (GOOD.replace("better", "stores_less"), r"`reduction` \(percent\) is required"),
        (GOOD.replace("}", ", reduction: 99}"), r"`reduction` .*meaningless with the others"),
        (GOOD.replace("}", ", label_spaces: [digits]}"), r"'digits' is no dataset's label"),
    ],
)
def test_load_claims_rejects_malformed(tmp_path, text: str, message: str) -> None:
    path = tmp_path / "claims.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ClaimsFormatError, match=message) as error:
        load_claims(path, REPORTED)
    assert str(path) in str(error.value)


def test_load_claims_names_every_faulty_key_of_the_real_claims(tmp_path) -> None:
    """The repository's claims, one with a misspelt key and another with a number given
    as text: one line per faulty key, each named as written, nothing about the others."""
    data = yaml.safe_load((REPO / "config" / "claims.yaml").read_text(encoding="utf-8"))
    near = next(key for key, entry in data.items() if entry["relation"] == "within")
    misspelt = next(key for key in data if key != near)
    data[misspelt]["sauces"] = data[misspelt].pop("sources")
    data[near]["margin"] = str(data[near]["margin"])
    path = tmp_path / "claims.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    with pytest.raises(ClaimsFormatError) as error:
        load_claims(path, load_reported(REPO / "config" / "reported.yaml"))
    assert isinstance(error.value, TlreproError)
    assert sorted(str(error.value).splitlines()[1:]) == sorted(
        [
            f"  at '{misspelt}': unknown key 'sauces' (allowed keys: baseline, label_spaces, "
            "margin, method, paper_rows, reduction, relation, sources, target_labels)",
            f"  at '{near}.margin': Input should be a valid number (got {data[near]['margin']!r})",
        ]
    )


def test_load_claims_reads_every_field(tmp_path) -> None:
    path = tmp_path / "claims.yaml"
    path.write_text(
        "near: {method: a, baseline: b, relation: within, margin: 0.5, target_labels: few,"
        " sources: [paper_x], paper_rows: [A, B]}",
        encoding="utf-8",
    )
    assert load_claims(path, REPORTED) == [
        Claim("near", "a", "b", "within", ("paper_x",), 0.5, "few", ("A", "B"))
    ]
    path.write_text(
        "less: {method: a, baseline: b, relation: stores_less, reduction: 99,"
        " label_spaces: [office_home, office31], sources: [paper_x]}",
        encoding="utf-8",
    )
    (less,) = load_claims(path, REPORTED)
    assert less == Claim(
        "less",
        "a",
        "b",
        "stores_less",
        ("paper_x",),
        None,
        None,
        None,
        99,
        ("office_home", "office31"),
    )
    assert type(less.reduction) is int


@pytest.fixture(scope="module")
def repository_claims() -> list[Claim]:
    return load_claims(
        REPO / "config" / "claims.yaml", load_reported(REPO / "config" / "reported.yaml")
    )


def test_repository_claims_agree_with_the_papers_numbers(repository_claims) -> None:
    """Where the cited tables give numbers, they say what the claim says (a claim typed
    the wrong way round, or citing the wrong table, fails here)."""
    reported = load_reported(REPO / "config" / "reported.yaml")
    with_numbers = 0
    for entry in repository_claims:
        diff, cells = entry.paper_difference(reported)
        if entry.paper_rows is None:
            continue
        with_numbers += 1
        assert cells > 0, entry.key
        if entry.relation == "better":
            assert diff > 0, entry.key
        else:
            assert abs(diff) <= entry.margin, entry.key
    assert with_numbers >= 9


@pytest.mark.parametrize("profile", ["quick", "paper"])
def test_every_repository_claim_applies_where_it_is_made(repository_claims, profile) -> None:
    """The paper profile tests every claim; the quick one every claim not tied to
    benchmarks (`label_spaces`) that it does not run, nor to full target splits (its
    adaptive group trains on 30 images per class, MultiTune's few-shot setting)."""
    groups = group_tables(build_plan(load_config(REPO / "config" / "config.yaml", profile)))
    tested = {entry.key for group in groups for entry in group.claims(repository_claims)}
    scoped = {e.key for e in repository_claims if e.label_spaces is not None}
    full = {e.key for e in repository_claims if e.target_labels == "full"}
    everywhere = {entry.key for entry in repository_claims} - scoped
    assert tested == (everywhere | scoped if profile == "paper" else everywhere - full)


def test_claims_reach_the_paper_groups_they_are_made_for(repository_claims) -> None:
    paper = {
        g.name: {c.key for c in g.claims(repository_claims)}
        for g in group_tables(build_plan(load_config(REPO / "config" / "config.yaml", "paper")))
    }
    gradmf = {"gradmf_coded_over_finetune", "gradmf_drawn_over_joint"}
    for name in ("gradmf_digits", "gradmf_mnist_split", "gradmf_caltech", "gradmf_office31"):
        assert gradmf <= paper[name], name  # few target labels or the full split
    assert {"spottune_over_finetune_aircraft", "finetune_over_spottune_cifar100"} <= paper[
        "adaptive_full"
    ]
    office = {"cmkd_rst_near_cmkd", "cmkd_fixmatch_over_cmkd"}
    assert office <= paper["cmkd_office31_vit"] and "cmkd_over_zero_shot" in paper["cmkd_digits"]
    assert not office & paper["cmkd_digits"]  # the paper has them reversed on digits
    assert "cmkd_rst_stores_less" in paper["cmkd_office_home_rn50"]
    assert "cmkd_rst_stores_less" not in paper["cmkd_office31_rn50"]
    assert "tlvfc_base_over_he_init" in paper["tlvfc_resnet18"]


def test_group_tables_name_source_models() -> None:
    quick = {
        g.name: g
        for g in group_tables(build_plan(load_config(REPO / "config" / "config.yaml", "quick")))
    }
    clip = quick["clip_uda"].sources
    assert [(s.model, s.dataset, s.zero_shot) for s in clip] == [("tiny_clip", "caption_mix", True)]
    assert clip[0].metrics == Path("results/pretrained/quick/tiny_clip/caption_mix/metrics.json")
    # the mix holds real MNIST (the task's source), not the target's digits_uci
    assert "mnist_5k" in clip[0].parts and clip[0].targets_seen == ()
    assert quick["gradmf"].sources[0].targets_seen is None  # pretrained on no mix
    assert quick["gradmf"].few_target_labels and not quick["clip_uda"].few_target_labels
    paper = group_tables(build_plan(load_config(REPO / "config" / "config.yaml", "paper")))
    zoo = {g.name: g for g in paper}["tlvfc_resnet18"].sources
    assert [(s.model, s.metrics) for s in zoo] == [("vgg16_imagenet", None)]


def test_every_group_gets_a_claims_section() -> None:
    runs = frame(
        [("g", key, "t", s, 0.5 + (key == "a") * 0.1 * (s + 1)) for key in "ab" for s in range(3)]
    )
    groups = [
        GroupTable("g", "Gee", ["t"], [("a", "Method A"), ("b", "Method B")], [0, 1, 2]),
        GroupTable("h", "Aitch", ["t"], [("a", "Method A")], [0]),
    ]
    claims = [claim(paper_rows=("A", "B")), claim("within", 1.0)]
    header = Header("quick", [0, 1, 2], "abc1234", "2026-01-01")
    runs = pd.concat([runs.assign(protocol=p) for p in PROTOCOLS])
    markdown = render_markdown(runs, groups, REPORTED, header, claims)
    g, h = markdown.split("## Gee")[1].split("## Aitch")
    assert markdown.count("### Claims") == 2
    assert "| Method A > Method B " in g and "| Method A within ±1 of Method B " in g
    # a − b = 10, 20, 30 points: [-4.84, 44.84] for both claims
    assert g.count("[-4.84, +44.84]") == 2 and "| inconclusive" in g and "+2.00 (1)" in g
    assert "No claim of config/claims.yaml compares two of this group's methods." in h
    assert "Source model: none" in h
    assert REVERSED not in g
