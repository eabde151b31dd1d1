# Train a source model on a source dataset; fine-tuning style methods start from it.


rule pretrain:
    input:
        lambda w: prepared(w.dataset),
    output:
        model="results/pretrained/{profile}/{model}/{dataset}/model.safetensors",
        metrics="results/pretrained/{profile}/{model}/{dataset}/metrics.json",
        curve="results/pretrained/{profile}/{model}/{dataset}/log.csv",
    log:
        "logs/{profile}/pretrain/{model}/{dataset}.log",
    benchmark:
        "benchmarks/{profile}/pretrain/{model}/{dataset}.tsv"
    threads: TORCH_THREADS
    resources:
        gpu=resource("train", "gpu", 0),
        mem_mb=resource("train", "mem_mb", 4000),
        runtime=resource("train", "runtime", 60),
    params:
        identity=lambda w: fingerprint(PLAN.pretrain(w.model, w.dataset).identity),
        code=lambda w: code(PLAN.pretrain(w.model, w.dataset).code_files),
    shell:
        "{CLI} pretrain {wildcards.model} {wildcards.dataset} > {log} 2>&1"
