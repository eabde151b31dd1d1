"""How runs are split into jobs (`seeds_per_job`) and what raising the seeds on the command
line adds: in the plan and in the DVC stages, without running anything."""

from __future__ import annotations

import pytest
import yaml

from tlrepro.config.load import ConfigError, load_config
from tlrepro.plan.jobs import Jobs, parse_seeds, plan_jobs
from tlrepro.runners.dvc_stages import render

from .conftest import REPO, tiny_config

CONFIG = REPO / "config" / "config.yaml"


def tiny(tmp_path, seeds_per_job: int | str | None = None, seeds: list[int] | None = None):
    """The tiny config's file, with its profile's `seeds_per_job` and its group's seeds."""
    config = tiny_config()
    quick = config["profiles"]["quick"]
    if seeds_per_job is not None:
        quick["seeds_per_job"] = seeds_per_job
    if seeds is not None:
        quick["groups"]["baselines"]["seeds"] = seeds
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def layout(jobs: Jobs) -> list[tuple[str, str, tuple[int, ...]]]:
    return [(job.first.method_key, job.label, job.seeds) for job in jobs.jobs]


def stages(jobs: Jobs, config_file) -> dict[str, dict]:
    dvc_text, params_text = render(jobs, config_file)
    params = yaml.safe_load(params_text)["transfer"]
    return {
        name: {**stage, "digest": params[name.removeprefix("transfer-")]}
        for name, stage in yaml.safe_load(dvc_text)["stages"].items()
        if name.startswith("transfer-")
    }


def test_quick_keeps_one_job_per_method_and_task_with_its_old_command():
    jobs = plan_jobs(load_config(CONFIG))
    assert len(jobs.jobs) == len(jobs.plan.batches())
    for job, batch in zip(jobs.jobs, jobs.plan.batches(), strict=True):
        assert job.whole and list(job.runs) == batch and job.seeds == (0, 1, 2)
        assert job.args == [batch[0].group, batch[0].method_key, batch[0].task.name]
        assert job.identity == {"runs": [run.identity for run in batch]}
    assert jobs.seeds_option() == []


def test_the_paper_profile_and_its_rehearsal_run_a_job_per_seed():
    paper = plan_jobs(load_config(CONFIG, "paper"))
    assert len(paper.jobs) == len(paper.plan.runs)
    assert all(not job.whole and job.args[-1] == str(job.seeds[0]) for job in paper.jobs)
    rehearsal = load_config(CONFIG, "rehearsal")["profiles"]["rehearsal"]
    assert rehearsal["seeds_per_job"] == 1


@pytest.mark.parametrize(
    ("per_job", "expected"),
    [
        ("all", [("seeds0-2", (0, 1, 2))]),
        (3, [("seeds0-2", (0, 1, 2))]),
        (2, [("seeds0-1", (0, 1)), ("seed2", (2,))]),
        (1, [("seed0", (0,)), ("seed1", (1,)), ("seed2", (2,))]),
    ],
)
def test_a_job_holds_consecutive_seeds_of_the_group(tmp_path, per_job, expected):
    jobs = plan_jobs(load_config(tiny(tmp_path, per_job, [0, 1, 2])))
    assert layout(jobs) == [(m, *chunk) for m in ("scratch", "finetune") for chunk in expected]
    folders = [run.folder for job in jobs.jobs for run in job.runs]
    assert folders == [run.folder for run in jobs.plan.runs]


@pytest.mark.parametrize("per_job", ["all", 2, 1])
def test_raising_the_seeds_only_adds_jobs(tmp_path, per_job):
    """3 -> 10 -> 20 seeds: every job and DVC stage of a step is in the next, unchanged."""
    config_file = tiny(tmp_path, per_job, [0, 1, 2])
    config = load_config(config_file)
    before, before_stages = [], {}
    for count in (None, 10, 20):
        jobs = plan_jobs(config, count)
        assert jobs.plan.seeds("baselines") == list(range(count or 3))
        now = [(job.path, job.seeds, job.args, job.identity) for job in jobs.jobs]
        assert all(job in now for job in before)
        added = [job for job in jobs.jobs if job.added]
        assert [job.seeds for job in added] == [(s,) for s in range(3, count or 3)] * 2
        now_stages = stages(jobs, config_file)
        assert {k: v for k, v in now_stages.items() if k in before_stages} == before_stages
        for name in set(now_stages) - set(before_stages) if before_stages else ():
            seed = int(name.rpartition("-seed")[2])
            assert f"--seeds baselines={seed + 1} transfer" in now_stages[name]["cmd"]
        before, before_stages = now, now_stages


def test_one_group_gets_the_seeds_it_is_given(tmp_path):
    config = load_config(CONFIG)
    jobs = plan_jobs(config, parse_seeds({"gradmf": "5"}))
    assert jobs.plan.seeds("gradmf") == [0, 1, 2, 3, 4]
    assert jobs.plan.seeds("clip_uda") == [0, 1, 2]
    assert jobs.seeds_option() == ["--seeds", "gradmf=5"]
    assert {job.first.group for job in jobs.jobs if job.added} == {"gradmf"}


def test_a_group_keeps_its_own_seeds_and_fills_the_gaps(tmp_path):
    config = load_config(tiny(tmp_path, seeds=[4, 1]))
    jobs = plan_jobs(config, 4)
    assert jobs.plan.seeds("baselines") == [4, 1, 0, 2]
    assert [job.label for job in jobs.jobs[:3]] == ["seeds4-1", "seed0", "seed2"]
    assert plan_jobs(config, 2).seeds_option() == [], "nothing added: nothing to pass on"


@pytest.mark.parametrize(
    ("value", "parsed"),
    [(10, 10), ("10", 10), ({"gradmf": "10"}, {"gradmf": 10}), ("a=2,b=3", {"a": 2, "b": 3})],
)
def test_seed_counts_parse_from_snakemake_and_the_cli(value, parsed):
    assert parse_seeds(value) == parsed


@pytest.mark.parametrize("value", [0, "x", True, 2.5, {"gradmf": "-1"}, "gradmf="])
def test_a_count_that_is_not_a_positive_integer_is_refused(value):
    with pytest.raises(ConfigError, match="not a number of seeds"):
        parse_seeds(value)


def test_an_unknown_group_is_refused_with_the_profiles_groups():
    with pytest.raises(ConfigError, match=r"no group 'nope'.*gradmf"):
        plan_jobs(load_config(CONFIG), {"nope": 4})


@pytest.mark.parametrize("value", [0, "some", 1.5])
def test_the_schema_takes_a_positive_integer_or_all(tmp_path, value):
    with pytest.raises(ConfigError, match="seeds_per_job"):
        load_config(tiny(tmp_path, value))
