# Download or render a dataset and write its train/val/test tensors + manifest.


rule prepare:
    output:
        manifest=str(prepared_dir("{profile}", "{dataset}") / MANIFEST),
        splits=[str(prepared_dir("{profile}", "{dataset}") / name) for name in SPLIT_FILES],
    log:
        "logs/{profile}/prepare/{dataset}.log",
    benchmark:
        "benchmarks/{profile}/prepare/{dataset}.tsv"
    threads: 1
    resources:
        gpu=0,
        mem_mb=resource("prepare", "mem_mb", 2000),
        runtime=resource("prepare", "runtime", 30),
    params:
        options=lambda w: fingerprint(
            {**PLAN.dataset_options(w.dataset), "image_size": PLAN.image_size(w.dataset)}
        ),
        code=lambda w: code(PLAN.prepare_code_files(w.dataset)),
    shell:
        "{CLI} prepare {wildcards.dataset} > {log} 2>&1"
