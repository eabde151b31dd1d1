"""Which runs share a job, and the seeds the command line adds to a group.

A job (one process, one Snakemake job, one DVC stage) trains consecutive seeds of one
method of a group on one task, one after the other: the profile's `seeds_per_job` of
them at a time, or all of them ("all": torch's start-up is paid once per job).

`--config seeds=N` (Snakemake) and `tlrepro --seeds N` give every group at least N
seeds: its own, then the smallest seeds it does not list. Every added seed is a job of
its own. Snakemake deletes a job's outputs before running it, so a job that gained a
seed would train its old seeds again; single-seed jobs never change, so raising the
seeds 3 -> 10 -> 20 trains only the seeds each step adds, whatever `seeds_per_job` is.

Neither the rules' nor the stages' text of an existing job changes: a job that holds
exactly its group's own seeds keeps the name and command line it had before jobs were
split. Kept out of tlrepro.plan.runs, which every training job runs (editing it would make
every result stale).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

from tlrepro.config.load import ConfigError
from tlrepro.plan.layout import MANIFEST, prepared_dir, seed_folder
from tlrepro.plan.runs import Plan, RunJob, build_plan

ALL = "all"
"""`seeds_per_job` for one job of all the group's own seeds (the schema's default)."""

SeedCounts = int | dict[str, int]
"""The seeds asked for on the command line: for every group, or by group name."""


def _count(value: Any, where: str) -> int:
    text = str(value).strip()
    if isinstance(value, bool) or not text.isdigit() or int(text) < 1:
        raise ConfigError(f"{where}: {value!r} is not a number of seeds (an integer >= 1)")
    return int(text)


def parse_seeds(value: Any) -> SeedCounts:
    """Snakemake's `--config seeds=10` / `seeds={gradmf: 10}` (YAML: a mapping of strings)
    or the CLI's `--seeds 10` / `--seeds gradmf=10,clip_uda=5`."""
    if isinstance(value, str) and "=" in value:
        pairs = [part.partition("=") for part in value.split(",")]
        value = {group.strip(): count for group, _, count in pairs}
    if isinstance(value, dict):
        return {str(group): _count(n, f"seeds of group {group!r}") for group, n in value.items()}
    return _count(value, "seeds")


def seeds_text(counts: SeedCounts) -> str:
    """The CLI's `--seeds` value for `counts`."""
    if isinstance(counts, int):
        return str(counts)
    return ",".join(f"{group}={n}" for group, n in counts.items())


def raise_seeds(config: dict[str, Any], counts: SeedCounts) -> dict[str, Any]:
    """A validated config whose active profile's groups have at least their `counts` of
    seeds: their own, then the smallest seeds they do not list."""
    name = config["profile"]
    profile = config["profiles"][name]
    groups = profile["groups"]
    wanted = dict.fromkeys(groups, counts) if isinstance(counts, int) else counts
    unknown = sorted(set(wanted) - set(groups))
    if unknown:
        raise ConfigError(
            f"seeds: no group {', '.join(map(repr, unknown))} in profile {name!r}; its groups: "
            f"{', '.join(groups)}"
        )
    raised = {}
    for group_name, group in groups.items():
        seeds = list(group.seeds)
        candidate = 0
        while len(seeds) < wanted.get(group_name, 0):
            if candidate not in seeds:
                seeds.append(candidate)
            candidate += 1
        raised[group_name] = group.model_copy(update={"seeds": seeds})
    profiles = {**config["profiles"], name: {**profile, "groups": raised}}
    return {**config, "profiles": profiles}


def label(seeds: tuple[int, ...]) -> str:
    """A job's seeds in a name: `seed3`, or `seeds0-2` (its first and last seed)."""
    return seed_folder(seeds[0]) if len(seeds) == 1 else f"seeds{seeds[0]}-{seeds[-1]}"


@dataclass(frozen=True)
class Job:
    """Consecutive seeds of one method of a group on one task, trained in one process."""

    runs: tuple[RunJob, ...]
    whole: bool
    """It holds exactly the group's own seeds: its name and command line do not say them."""
    added: bool
    """Its seed was added on the command line: its command needs the same `--seeds`."""

    @property
    def first(self) -> RunJob:
        return self.runs[0]

    @property
    def seeds(self) -> tuple[int, ...]:
        return tuple(run.seed for run in self.runs)

    @property
    def path(self) -> str:
        """group/method/task: the rules' {job} wildcard."""
        return f"{self.first.group}/{self.first.method_key}/{self.first.task.name}"

    @property
    def label(self) -> str:
        return label(self.seeds)

    @property
    def args(self) -> list[str]:
        """The words after `tlrepro transfer`."""
        seeds = [] if self.whole else [str(seed) for seed in self.seeds]
        return [self.first.group, self.first.method_key, self.first.task.name, *seeds]

    @property
    def identity(self) -> dict[str, Any]:
        return {"runs": [run.identity for run in self.runs]}

    @property
    def inputs(self) -> list[str]:
        """The files its runs read (prepared datasets, the source model), as both runners
        declare them."""
        inputs = set()
        for run in self.runs:
            inputs.update(str(prepared_dir(run.profile, d) / MANIFEST) for d in run.datasets)
            if run.pretrain is not None:
                inputs.add(str(run.pretrain.checkpoint))
        return sorted(inputs)


@dataclass(frozen=True)
class Jobs:
    """A plan (its groups' seeds raised as the command line asks) split into jobs."""

    plan: Plan
    own_seeds: dict[str, tuple[int, ...]]
    """Each group's seeds as the config lists them."""
    raised: SeedCounts | None
    """What the command line asked for (None: nothing), for the CLI calls of the jobs."""

    def own(self, group: str) -> list[int]:
        self.plan.seeds(group)  # an unknown group's message
        return list(self.own_seeds[group])

    def split(self, batch: list[RunJob]) -> list[Job]:
        """The jobs of one method of a group on one task (its runs in seed order)."""
        own = self.own_seeds[batch[0].group]
        mine = [run for run in batch if run.seed in own]
        per_job = self.plan.profile.get("seeds_per_job", ALL)
        size = len(mine) if per_job == ALL else per_job
        whole = size >= len(mine)
        chunks = [Job(tuple(mine[i : i + size]), whole, False) for i in range(0, len(mine), size)]
        return chunks + [Job((run,), False, True) for run in batch if run.seed not in own]

    @cached_property
    def jobs(self) -> list[Job]:
        return [job for batch in self.plan.batches() for job in self.split(batch)]

    def job(self, path: str, seeds: tuple[int, ...]) -> Job:
        """The job of `path` (group/method/task) that holds `seeds`."""
        return next(
            job for job in self.split(self.plan.batch(*path.split("/"))) if job.seeds == seeds
        )

    def seeds_option(self) -> list[str]:
        """`--seeds` for a CLI call that must see the added seeds (none when none are)."""
        return [] if self.raised is None else ["--seeds", seeds_text(self.raised)]

    def job_seeds_option(self, job: Job) -> list[str]:
        """`--seeds` for a job's own CLI call: just enough seeds of its group to hold its
        seed, so that raising the seeds further leaves the call (a DVC stage's `cmd`) as
        it was."""
        if not job.added:
            return []
        count = self.plan.seeds(job.first.group).index(job.seeds[0]) + 1
        return ["--seeds", seeds_text({job.first.group: count})]


def plan_jobs(config: dict[str, Any], seeds: SeedCounts | None = None) -> Jobs:
    """The jobs of a validated config's active profile, its groups raised to `seeds`."""
    groups = config["profiles"][config["profile"]]["groups"]
    own = {name: tuple(group.seeds) for name, group in groups.items()}
    if seeds is None:
        return Jobs(build_plan(config), own, None)
    plan = build_plan(raise_seeds(config, seeds))
    added = any(len(group.seeds) > len(own[name]) for name, group in plan.groups().items())
    return Jobs(plan, own, seeds if added else None)
