# Train a source model on a source dataset; fine-tuning style methods start from it.
# Its request is sized from the calibrated cost of the method it resembles, like a
# transfer job's (tlrepro.plan.estimate.pretrain_requests; docs/cost.md).


rule pretrain:
    input:
        lambda w: prepared(w.dataset),
    output:
        model=str(pretrained_dir("{profile}", "{model}", "{dataset}") / MODEL_FILE),
        metrics=str(pretrained_dir("{profile}", "{model}", "{dataset}") / METRICS_FILE),
        curve=str(pretrained_dir("{profile}", "{model}", "{dataset}") / LOG_FILE),
    log:
        "logs/{profile}/pretrain/{model}/{dataset}.log",
    benchmark:
        "benchmarks/{profile}/pretrain/{model}/{dataset}.tsv"
    threads: TORCH_THREADS
    resources:
        gpu=resource("train", "gpu", 0),
        mem_mb=lambda w: pretrain_request(w).mem_mb,
        runtime=lambda w: pretrain_request(w).runtime,
        gpu_mem_mb=lambda w: pretrain_request(w).gpu_mem_mb,
    params:
        identity=lambda w: fingerprint(PLAN.pretrain(w.model, w.dataset).identity),
        code=lambda w: code(PLAN.pretrain(w.model, w.dataset).code_files),
    shell:
        "{CLI} pretrain {wildcards.model} {wildcards.dataset} > {log} 2>&1"
