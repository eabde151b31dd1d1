# One job = one method of one group on one task, all the group's seeds one after the
# other in one process (torch's start-up is paid once, not per seed); each seed's run
# resumes from its checkpoint if the job is killed. A job's outputs are every file its
# runs write (the method's exports included), so jobs with different seed lists or
# exports need rules of their own: one rule per such signature, its {job} wildcard
# (group/method/task) constrained to exactly the jobs that have it.


def batch_jobs(w):
    return PLAN.batch(*w.job.split("/"))


def batch_inputs(w):
    inputs = set()
    for job in batch_jobs(w):
        inputs.update(prepared(dataset) for dataset in job.datasets)
        if job.pretrain is not None:
            inputs.add(str(job.pretrain.checkpoint))
    return sorted(inputs)


def _jobs_by_signature():
    by_signature = {}
    for batch in PLAN.batches():
        first = batch[0]
        signature = (tuple(run.seed for run in batch), first.output_names)
        job = f"{first.group}/{first.method_key}/{first.task.name}"
        by_signature.setdefault(signature, []).append(job)
    return by_signature


def _rule_name(seeds, names):
    """`transfer`, suffixed by what tells this rule's jobs from the others' jobs."""
    signatures = _jobs_by_signature()
    words = ["transfer"]
    if len({exports for _, exports in signatures}) > 1:
        words += [Path(name).stem for name in names[3:]] or ["plain"]
    if len({seed_list for seed_list, _ in signatures}) > 1:
        words += ["seeds", *map(str, seeds)]
    return "_".join(words)


for (_seeds, _names), _jobs in _jobs_by_signature().items():

    rule:
        name:
            _rule_name(_seeds, _names)
        input:
            batch_inputs,
        output:
            [
                f"results/runs/{PROFILE}/{{job}}/seed{seed}/{name}"
                for seed in _seeds
                for name in _names
            ],
        log:
            f"logs/{PROFILE}/runs/{{job}}.log",
        benchmark:
            f"benchmarks/{PROFILE}/runs/{{job}}.tsv"
        wildcard_constraints:
            job="|".join(map(re.escape, _jobs)),
        threads: TORCH_THREADS
        resources:
            gpu=resource("train", "gpu", 0),
            mem_mb=resource("train", "mem_mb", 4000),
            runtime=resource("train", "runtime", 60) * len(_seeds),
        params:
            identity=lambda w: fingerprint({"runs": [job.identity for job in batch_jobs(w)]}),
            code=lambda w: code(batch_jobs(w)[0].code_files),
            job=lambda w: " ".join(Path(w.job).parts),
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
