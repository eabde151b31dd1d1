# Aggregate every run of the profile into results/tables.{md,csv} and figures.


rule tables:
    input:
        metrics=[str(job.metrics) for job in PLAN.runs],
        curves=[str(job.folder / "log.csv") for job in PLAN.runs],
        reported=str(CONFIG_FILE.parent / "reported.yaml"),
    output:
        md="results/tables.md",
        csv="results/tables.csv",
        figures=[f"results/figures/{group}.png" for group in PLAN.groups()],
    params:
        # Snakemake does not rebuild an existing target for inputs it lacks: a
        # changed profile or list of runs must make the tables stale by itself.
        runs=fingerprint({"profile": PROFILE, "runs": [str(job.metrics) for job in PLAN.runs]}),
    log:
        f"logs/{PROFILE}/tables.log",
    benchmark:
        f"benchmarks/{PROFILE}/tables.tsv"
    threads: 1
    resources:
        gpu=0,
        mem_mb=resource("tables", "mem_mb", 1000),
        runtime=resource("tables", "runtime", 10),
    shell:
        "{CLI} tables > {log} 2>&1"
