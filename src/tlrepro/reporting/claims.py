"""The papers' claims, checked against our runs: a paired test per claim and group.

A claim (config/claims.yaml) compares two method keys of a group. Its evidence
here is the paired difference `method − baseline` in test accuracy (percentage
points) over the (task, seed) pairs where both ran, summarised by its mean and
a 95 % Student-t interval. The verdict reads the interval, never the mean alone:

- `better`: holds when the interval lies above 0, reversed when below, else
  (it contains 0) inconclusive.
- `within` (margin m): holds when the whole interval lies inside [−m, m],
  reversed when it lies wholly outside it, else inconclusive.
- `stores_less` (reduction r %): the evidence is instead the paired reduction of the
  stored parameters, `100 (1 − DSP_method / DSP_baseline)` in percent (DSP: what a run
  stores beyond the shared pretrained weights); holds when the interval lies above r,
  reversed when below, else inconclusive.

A claim with `label_spaces` is made only for tasks whose target is in one of them (the
benchmarks where the paper shows it): only those pairs, and only those cells of its
tables, count.

Fewer than two pairs give no interval: inconclusive. Pairs that all differ by
the same amount have zero spread; their interval is that single value (the
t-interval's limit as the spread goes to 0).

Two verdicts overrule the interval: `not converged` when a run of the pairs (either
method's) did not converge (tlrepro.training.convergence), since its number is not the method's;
and `withheld` (set by `aggregate`) when the group's reference baseline is below its
floor. Either way Δ and the interval stay in the row.

Beside the verdict, the power of the paired t-test (the chance that the 95 % interval
excludes 0 on the effect's side, `POWER`): `detectable`, the smallest |Δ| in points
that these n pairs detect at their spread, and `seeds_needed`, the seeds that would
detect the paper's Δ at that spread (for a `within` claim, the margin: with fewer, a
difference as large as the margin would go unseen, so a `holds` says little).

This module only reads the long frame of runs that `results.collect` builds;
`aggregate` and `markdown` report what it returns. No torch, like the rest of the
tables job.
"""

from __future__ import annotations

import math
import os
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import pandas as pd
import yaml
from pydantic import Field, TypeAdapter, ValidationError

from tlrepro.errors import TlreproError
from tlrepro.plan.layout import Task
from tlrepro.typed import Distinct, Strict, absent, problems_of

CONFIDENCE = 0.95
POWER = 0.80
HOLDS, REVERSED, INCONCLUSIVE = "holds", "reversed", "inconclusive"
NOT_CONVERGED, WITHHELD = "not converged", "withheld"
Names = Annotated[list[str], Field(min_length=1), Distinct]
"""Names a claim pools over: one listed twice would count its pairs or cells twice."""


class ClaimEntry(Strict):
    """One claim of config/claims.yaml (its header comment says what each key means);
    what it names is checked against the reported tables in `load_claims`. An optional
    key may be left out but not written as null."""

    method: str = Field(min_length=1)
    baseline: str = Field(min_length=1)
    relation: Literal["better", "within", "stores_less"]
    margin: float = absent(gt=0)
    reduction: float = absent(gt=0, lt=100)
    label_spaces: Names = absent()
    target_labels: Literal["few", "full"] = absent()
    sources: Names
    paper_rows: list[str] = absent(min_length=2, max_length=2)


CLAIMS = TypeAdapter(
    Annotated[dict[Annotated[str, Field(pattern="^[a-z0-9_]+$")], ClaimEntry], Field(min_length=1)]
)
"""What config/claims.yaml may contain: claims by key (the `claim` column of claims.csv)."""

COLUMNS = [
    "claim",
    "method_key",
    "baseline_key",
    "relation",
    "margin",
    "reduction",
    "protocol",
    "n",
    "mean_diff",
    "cost_ratio",
    "ci_low",
    "ci_high",
    "verdict",
    "unconverged",
    "detectable",
    "seeds_needed",
    "paper_diff",
    "paper_cells",
    "sources",
    "note",
]
"""One row per (claim, protocol) of a group, as `evaluate` returns them."""


class ClaimsFormatError(TlreproError, ValueError):
    """config/claims.yaml is malformed or names something that does not exist."""


@dataclass(frozen=True)
class Claim:
    """`method` is `relation` to `baseline` (better, or within `margin` points of it)."""

    key: str
    method: str
    baseline: str
    relation: str
    sources: tuple[str, ...]
    """Keys of config/reported.yaml: the papers' tables the claim comes from."""
    margin: float | None = None
    target_labels: str | None = None
    """`few`/`full`: only groups trained on few target labels / the full split."""
    paper_rows: tuple[str, str] | None = None
    """Row labels of `method` and `baseline` in the source tables, where they give numbers."""
    reduction: float | None = None
    """`stores_less`: the least reduction of stored parameters claimed, in percent."""
    label_spaces: tuple[str, ...] | None = None
    """The target label spaces of the tasks the claim is made for; None: every task."""

    def covers(self, task: str) -> bool:
        """Whether the claim is made for `task` (ours, or a paper's `<space>-avg` cell)."""
        if self.label_spaces is None:
            return True
        if Task.is_task(task):
            return _label_space(Task.parse(task).target) in self.label_spaces
        return task.rpartition("-")[0] in self.label_spaces

    def applies_to(
        self, method_keys: Collection[str], few_target_labels: bool, tasks: Collection[str] = ()
    ) -> bool:
        """A group is tested when it runs both methods on the kind of target split named and
        (with `label_spaces`) one of its tasks is one the claim is made for."""
        if self.method not in method_keys or self.baseline not in method_keys:
            return False
        if self.label_spaces is not None and not any(self.covers(task) for task in tasks):
            return False
        return self.target_labels is None or (self.target_labels == "few") == few_target_labels

    def paper_difference(self, reported: Mapping[str, Any]) -> tuple[float, int]:
        """Mean `method − baseline` over the source tables' cells that have both rows, and
        how many cells; (nan, 0) where the papers give no numbers for them."""
        if self.paper_rows is None:
            return math.nan, 0
        ours, theirs = self.paper_rows
        cells = [
            rows[ours][task] - rows[theirs][task]
            for rows in (reported[key]["rows"] for key in self.sources)
            if ours in rows and theirs in rows
            for task in rows[ours]
            if task in rows[theirs] and self.covers(task)
        ]
        return (float(np.mean(cells)), len(cells)) if cells else (math.nan, 0)


@dataclass(frozen=True)
class Comparison:
    """The paired evidence for one claim: n pairs, mean difference, interval, verdict, and
    the pairs' sample std (the spread the power figures use)."""

    n: int
    mean: float
    low: float
    high: float
    verdict: str
    sd: float = math.nan


def compare(differences: Sequence[float], relation: str, margin: float | None = None) -> Comparison:
    """Mean, 95 % t-interval and verdict of paired differences (see the module docstring)."""
    from scipy import stats

    values = np.asarray(differences, dtype=float)
    n = len(values)
    if n == 0:
        return Comparison(0, math.nan, math.nan, math.nan, INCONCLUSIVE)
    mean = float(values.mean())
    if n < 2:
        return Comparison(n, mean, math.nan, math.nan, INCONCLUSIVE)
    sem = float(stats.sem(values))
    if sem == 0.0:
        low = high = mean
    else:
        low, high = (float(v) for v in stats.t.interval(CONFIDENCE, n - 1, loc=mean, scale=sem))
    sd = float(values.std(ddof=1))
    return Comparison(n, mean, low, high, _verdict(low, high, relation, margin), sd)


def _solve_power(**known: float) -> float:
    """statsmodels' paired t-test power, solved for the one quantity not given. Power here
    is the chance that the two-sided interval excludes 0 on the effect's side, as a
    `holds` needs: the one-sided test at half the α (a rejection on the wrong side detects
    nothing; leaving it out also avoids the NaN scipy gives for that tail's far end)."""
    from statsmodels.stats.power import TTestPower

    alpha = (1 - CONFIDENCE) / 2
    return float(TTestPower().solve_power(alpha=alpha, power=POWER, alternative="larger", **known))


def detectable_difference(n: int, sd: float) -> float:
    """The smallest |Δ| (points) that n pairs of std `sd` detect with `POWER`: the paired
    t-test's standardised effect times the spread; NaN below 2 pairs or without spread."""
    if n < 2 or not sd > 0:
        return math.nan
    return _solve_power(nobs=n) * sd


def seeds_needed(target: float, sd: float, n: int, tasks: int) -> float:
    """The seeds that would detect a true |Δ| of `target` points with `POWER` at spread
    `sd`: the t-test's pairs (at least 2), shared among the pairs' `tasks`, rounded up.
    NaN without a target, below 2 pairs or without spread."""
    if math.isnan(target) or target == 0 or n < 2 or not sd > 0:
        return math.nan
    effect = abs(target) / sd
    if effect >= _solve_power(nobs=2):
        return math.ceil(2 / tasks)  # the least n: the solver finds no root below it
    return math.ceil(_solve_power(effect_size=effect) / tasks)


def _label_space(dataset: str) -> str | None:
    from tlrepro.data.registry import DATASETS

    spec = DATASETS.get(dataset)
    return spec.label_space if spec is not None else None


def _verdict(low: float, high: float, relation: str, margin: float | None) -> str:
    if relation == "better":
        return HOLDS if low > 0 else REVERSED if high < 0 else INCONCLUSIVE
    if relation == "stores_less":
        assert margin is not None  # the claim's reduction (load_claims requires it)
        return HOLDS if low > margin else REVERSED if high < margin else INCONCLUSIVE
    assert margin is not None  # load_claims requires it for `within`
    if -margin <= low and high <= margin:
        return HOLDS
    return REVERSED if low > margin or high < -margin else INCONCLUSIVE


def paired_differences(frame: pd.DataFrame, group: str, claim: Claim) -> pd.DataFrame:
    """Per (protocol, task, seed) both ran, of the tasks the claim is made for: `method −
    baseline` test accuracy in points (`stores_less`: the reduction of DSP in percent), how
    many of the pair's two runs did not converge (`unconverged`), and both runs' seconds."""
    runs = frame[(frame["group"] == group) & frame["task"].map(claim.covers).astype(bool)]
    index = ["protocol", "task", "seed"]
    column = "dsp_millions" if claim.relation == "stores_less" else "test_acc"
    method, baseline = (
        runs[runs["method_key"] == key].set_index(index)[[column, "converged", "run_seconds"]]
        for key in (claim.method, claim.baseline)
    )
    both = pd.concat([method, baseline], axis=1, keys=["method", "baseline"], join="inner")
    value, converged = (
        both.xs(column, axis=1, level=1),
        both.xs("converged", axis=1, level=1),
    )
    if claim.relation == "stores_less":
        diff = (1.0 - value["method"] / value["baseline"]) * 100.0
    else:
        diff = (value["method"] - value["baseline"]) * 100.0
    return pd.DataFrame(
        {
            "diff": diff,
            "unconverged": (~converged.astype(bool)).sum(axis=1),
            "method_seconds": both[("method", "run_seconds")].astype(float),
            "baseline_seconds": both[("baseline", "run_seconds")].astype(float),
        }
    ).reset_index()


def cost_ratio(pairs: pd.DataFrame) -> float:
    """The method's compute over the baseline's on the same pairs (their run seconds
    summed); NaN when a run of them recorded no time."""
    method, baseline = (
        pairs[f"{side}_seconds"].sum(min_count=len(pairs)) for side in ("method", "baseline")
    )
    return method / baseline if baseline > 0 else math.nan


def evaluate(
    frame: pd.DataFrame,
    group: str,
    claims: Sequence[Claim],
    reported: Mapping[str, Any],
    protocols: Sequence[str],
) -> pd.DataFrame:
    """One row per (claim, protocol) for a group's applicable claims (`COLUMNS`)."""
    rows = []
    for claim in claims:
        pairs = paired_differences(frame, group, claim)
        paper_diff, paper_cells = claim.paper_difference(reported)
        target = claim.margin if claim.relation == "within" else paper_diff
        bound = claim.reduction if claim.relation == "stores_less" else claim.margin
        for protocol in protocols:
            chosen = pairs[pairs["protocol"] == protocol]
            result = compare(chosen["diff"], claim.relation, bound)
            unconverged = int(chosen["unconverged"].sum())
            rows.append(
                {
                    "claim": claim.key,
                    "method_key": claim.method,
                    "baseline_key": claim.baseline,
                    "relation": claim.relation,
                    "margin": claim.margin,
                    "reduction": claim.reduction,
                    "protocol": protocol,
                    "n": result.n,
                    "mean_diff": result.mean,
                    "cost_ratio": cost_ratio(chosen),
                    "ci_low": result.low,
                    "ci_high": result.high,
                    "verdict": NOT_CONVERGED if unconverged else result.verdict,
                    "unconverged": unconverged,
                    "detectable": detectable_difference(result.n, result.sd),
                    "seeds_needed": seeds_needed(
                        target, result.sd, result.n, chosen["task"].nunique()
                    ),
                    "paper_diff": paper_diff,
                    "paper_cells": paper_cells,
                    "sources": ";".join(claim.sources),
                    "note": (
                        f"{unconverged} of the {2 * result.n} paired runs did not converge"
                        if unconverged
                        else ""
                    ),
                }
            )
    return pd.DataFrame(rows, columns=COLUMNS).astype({"seeds_needed": "Int64"})


def _reference_problems(key: str, entry: ClaimEntry, reported: Mapping[str, Any]) -> list[str]:
    """What a well-formed claim gets wrong: keys that its relation needs or forbids, and
    names that no dataset or reported table has."""
    problems = []
    if entry.method == entry.baseline:
        problems.append(f"at '{key}': method and baseline are both {entry.method!r}")
    if (entry.relation == "within") != (entry.margin is not None):
        problems.append(
            f"at '{key}': `margin` (points) is required with relation: within and "
            "meaningless with the others"
        )
    if (entry.relation == "stores_less") != (entry.reduction is not None):
        problems.append(
            f"at '{key}': `reduction` (percent) is required with relation: stores_less and "
            "meaningless with the others"
        )
    unknown_spaces = [s for s in entry.label_spaces or [] if s not in _label_spaces()]
    if unknown_spaces:
        problems.append(
            f"at '{key}.label_spaces': {', '.join(map(repr, unknown_spaces))} is no dataset's "
            f"label space; known: {', '.join(sorted(_label_spaces()))}"
        )
    unknown = [source for source in entry.sources if source not in reported]
    if unknown:
        problems.append(
            f"at '{key}.sources': {', '.join(map(repr, unknown))} not in reported.yaml; "
            f"its tables: {', '.join(sorted(reported))}"
        )
    elif entry.paper_rows is not None:
        labels = {label for source in entry.sources for label in reported[source]["rows"]}
        for label in entry.paper_rows:
            if label not in labels:
                problems.append(
                    f"at '{key}.paper_rows': row {label!r} is in none of the sources "
                    f"({', '.join(entry.sources)}); their rows: {', '.join(sorted(labels))}"
                )
    return problems


def _label_spaces() -> set[str]:
    from tlrepro.data.registry import DATASETS

    return {spec.label_space for spec in DATASETS.values()}


def load_claims(path: str | os.PathLike, reported: Mapping[str, Any]) -> list[Claim]:
    """Read config/claims.yaml, checked against `CLAIMS` and the reported tables."""
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    try:
        entries: dict[str, ClaimEntry] = CLAIMS.validate_python(data)
    except ValidationError as error:
        entries, problems = {}, problems_of(error, data)
    else:
        problems = [
            line
            for key, entry in entries.items()
            for line in _reference_problems(key, entry, reported)
        ]
    if problems:
        raise ClaimsFormatError(f"{path} is not valid:\n  " + "\n  ".join(problems))
    return [
        Claim(
            key,
            entry.method,
            entry.baseline,
            entry.relation,
            tuple(entry.sources),
            entry.margin,
            entry.target_labels,
            (entry.paper_rows[0], entry.paper_rows[1]) if entry.paper_rows is not None else None,
            entry.reduction,
            tuple(entry.label_spaces) if entry.label_spaces is not None else None,
        )
        for key, entry in entries.items()
    ]
