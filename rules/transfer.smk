# One job = one method of one group on one task, all the group's seeds one after the
# other in one process (torch's start-up is paid once, not per seed); each seed's run
# resumes from its checkpoint if the job is killed. One rule per distinct seed list
# (usually one, named `transfer`), since a rule's outputs cannot vary with a wildcard.


def batch_jobs(w):
    return [PLAN.run(w.group, w.method, w.task, seed) for seed in PLAN.seeds(w.group)]


def batch_inputs(w):
    inputs = set()
    for job in batch_jobs(w):
        inputs.update(prepared(dataset) for dataset in job.datasets)
        if job.pretrain is not None:
            inputs.add(str(job.pretrain.checkpoint))
    return sorted(inputs)


def _groups_by_seeds():
    by_seeds = {}
    for name, group in PLAN.groups().items():
        by_seeds.setdefault(tuple(group["seeds"]), []).append(name)
    return by_seeds


RUN_FILE = "results/runs/{{profile}}/{{group}}/{{method}}/{{task}}/seed{seed}/{name}"

for _seeds, _groups in _groups_by_seeds().items():

    rule:
        name:
            "transfer" if len(_groups_by_seeds()) == 1 else "transfer_seeds_" + "_".join(map(str, _seeds))
        input:
            batch_inputs,
        output:
            metrics=expand(RUN_FILE, seed=_seeds, name="metrics.json"),
            model=expand(RUN_FILE, seed=_seeds, name="model.safetensors"),
            curve=expand(RUN_FILE, seed=_seeds, name="log.csv"),
        wildcard_constraints:
            group="|".join(_groups),
        params:
            identity=lambda w: fingerprint({"runs": [job.identity for job in batch_jobs(w)]}),
        log:
            "logs/{profile}/runs/{group}/{method}/{task}.log",
        benchmark:
            "benchmarks/{profile}/runs/{group}/{method}/{task}.tsv"
        threads: TORCH_THREADS
        resources:
            gpu=resource("train", "gpu", 0),
            mem_mb=resource("train", "mem_mb", 4000),
            runtime=lambda w: resource("train", "runtime", 60) * len(PLAN.seeds(w.group)),
        shell:
            "{CLI} transfer {wildcards.group} {wildcards.method} {wildcards.task} > {log} 2>&1"


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
        localrule: True
        input:
            _files,
