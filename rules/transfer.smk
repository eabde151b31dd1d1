# One run = one method of one group on one task with one seed; resumes if killed.


def run_job(w):
    return PLAN.run(w.group, w.method, w.task, int(w.seed))


def run_inputs(w):
    job = run_job(w)
    inputs = [prepared(dataset) for dataset in job.datasets]
    if job.pretrain is not None:
        inputs.append(str(job.pretrain.checkpoint))
    return inputs


rule transfer:
    input:
        run_inputs,
    output:
        metrics="results/runs/{profile}/{group}/{method}/{task}/seed{seed}/metrics.json",
        model="results/runs/{profile}/{group}/{method}/{task}/seed{seed}/model.safetensors",
        curve="results/runs/{profile}/{group}/{method}/{task}/seed{seed}/log.csv",
    params:
        identity=lambda w: fingerprint(run_job(w).identity),
    log:
        "logs/{profile}/runs/{group}/{method}/{task}/seed{seed}.log",
    benchmark:
        "benchmarks/{profile}/runs/{group}/{method}/{task}/seed{seed}.tsv"
    threads: TORCH_THREADS
    resources:
        gpu=resource("train", "gpu", 0),
        mem_mb=resource("train", "mem_mb", 4000),
        runtime=resource("train", "runtime", 60),
    shell:
        "{CLI} transfer {wildcards.group} {wildcards.method} {wildcards.task} {wildcards.seed}"
        " > {log} 2>&1"


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
