# Aggregate every run of the profile into its own tables and figures, then copy them
# to results/tables.{md,csv}: each profile's tables are distinct outputs, so switching
# profile plans that profile's missing jobs.


rule tables:
    input:
        [str(path) for path in PLAN.tables_inputs(CONFIG_FILE)],
    output:
        **PROFILE_TABLES,
        figures=directory(str(figures_dir(PROFILE))),
    log:
        f"logs/{PROFILE}/tables.log",
    benchmark:
        f"benchmarks/{PROFILE}/tables.tsv"
    threads: 1
    resources:
        gpu=0,
        mem_mb=resource("tables", "mem_mb", 1000),
        runtime=resource("tables", "runtime", 10),
    params:
        # Snakemake does not rebuild an existing target for inputs it lacks: a
        # changed list of runs must make the tables stale by itself.
        runs=fingerprint({"runs": [str(job.metrics) for job in PLAN.runs]}),
        code=code(tables_code_files()),
    shell:
        "{CLI} tables > {log} 2>&1"


rule active_tables:
    input:
        **PROFILE_TABLES,
    output:
        **ACTIVE_TABLES,
    log:
        f"logs/{PROFILE}/active_tables.log",
    benchmark:
        f"benchmarks/{PROFILE}/active_tables.tsv"
    localrule: True
    threads: 1
    resources:
        gpu=0,
        mem_mb=100,
        runtime=1,
    params:
        profile=PROFILE,
    shell:
        "{CLI} publish-tables > {log} 2>&1"


# Pages for `snakemake --report results/report.html`: one category per group.
rule report_pages:
    input:
        tables=PROFILE_TABLES["csv"],
        claims=PROFILE_TABLES["claims"],
        figures=str(figures_dir(PROFILE)),
    output:
        report(
            directory(str(report_dir(PROFILE))),
            patterns=["{group}/{item}"],
            category="{group}",
            caption="../report/group.rst",
        ),
    log:
        f"logs/{PROFILE}/report_pages.log",
    benchmark:
        f"benchmarks/{PROFILE}/report_pages.tsv"
    threads: 1
    resources:
        gpu=0,
        mem_mb=1000,
        runtime=5,
    params:
        code=code(report_code_files()),
    shell:
        "{CLI} report-pages > {log} 2>&1"
