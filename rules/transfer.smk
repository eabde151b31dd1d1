# A job trains consecutive seeds of one method of a group on one task, one after the
# other in one process (torch's start-up is paid once, not per seed): the profile's
# `seeds_per_job` of them, and each seed that `--config seeds=N` adds alone
# (tlrepro.plan.jobs). Each seed's run resumes from its checkpoint if the job is killed. A
# job's outputs are every file its runs write (the method's exports included), so jobs
# with different seeds or exports need rules of their own: one rule per such signature,
# its {job} wildcard (group/method/task) constrained to exactly the jobs that have it.
# A job asks for the runtime and memory its calibrated estimate says, times a safety
# factor (tlrepro.plan.estimate.requests; docs/cost.md).
from tlrepro.plan.estimate import requests


class JobOf:
    """The inputs and params of the jobs of one seed signature, each job found from
    its {job} wildcard and the signature's seeds."""

    def __init__(self, seeds):
        self.seeds = seeds

    def job(self, w):
        return JOBS.job(w.job, self.seeds)

    def inputs(self, w):
        return self.job(w).inputs

    def identity(self, w):
        return fingerprint(self.job(w).identity)

    def code(self, w):
        return code(self.job(w).first.code_files)

    def args(self, w):
        return " ".join(self.job(w).args)

    def requests(self, w):
        return requests(PLAN, self.job(w), CALIBRATION)

    def runtime(self, w):
        return self.requests(w).runtime

    def mem_mb(self, w):
        return self.requests(w).mem_mb

    def gpu_mem_mb(self, w):
        return self.requests(w).gpu_mem_mb


def _jobs_by_signature():
    by_signature = {}
    for job in JOBS.jobs:
        signature = (job.seeds, job.first.output_names)
        by_signature.setdefault(signature, []).append(job.path)
    return by_signature


def _rule_name(seeds, names):
    """`transfer` for jobs that write a model, metrics and log only; `transfer_exporting_<x>`
    for the jobs whose methods also export files (TLVFC's transfer report, RST's sparse
    residual), plus `_seeds_<k>` where jobs hold different seeds."""
    signatures = _jobs_by_signature()
    words = ["transfer"]
    if exports := names[3:]:
        words += ["exporting", *(Path(name).stem for name in exports)]
    if len({seed_list for seed_list, _ in signatures}) > 1:
        words += ["seeds", *map(str, seeds)]
    return "_".join(words)


for (_seeds, _names), _jobs in _jobs_by_signature().items():
    _of = JobOf(_seeds)

    rule:
        name:
            _rule_name(_seeds, _names)
        input:
            _of.inputs,
        output:
            [
                str(runs_dir(PROFILE) / "{job}" / seed_folder(seed) / name)
                for seed in _seeds
                for name in _names
            ],
        log:
            f"logs/{PROFILE}/runs/{{job}}/{label(_seeds)}.log",
        benchmark:
            f"benchmarks/{PROFILE}/runs/{{job}}/{label(_seeds)}.tsv"
        wildcard_constraints:
            job="|".join(map(re.escape, _jobs)),
        threads: TORCH_THREADS
        resources:
            gpu=resource("train", "gpu", 0),
            mem_mb=_of.mem_mb,
            runtime=_of.runtime,
            gpu_mem_mb=_of.gpu_mem_mb,
        params:
            identity=_of.identity,
            code=_of.code,
            job=_of.args,
        shell:
            "{CLI} transfer {params.job} > {log} 2>&1"


# Named targets: `snakemake <method_key>` builds every run of that method key,
# `snakemake group_<name>` a whole group, `snakemake dataset_<name>` every run
# whose target is that dataset.
def _named_targets():
    targets = {}
    for job in PLAN.runs:
        for name in (job.method_key, f"group_{job.group}", f"dataset_{job.task.target}"):
            targets.setdefault(name, []).append(str(job.metrics))
    return targets


for _name, _files in _named_targets().items():

    rule:
        name:
            _name
        input:
            _files,
        localrule: True
