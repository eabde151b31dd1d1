# The pipeline: prepare data -> pretrain source models -> transfer runs -> tables.
# Everything it builds is listed by src/tlrepro/plan.py from config/config.yaml;
# every rule calls the `tlrepro` CLI. See README.md for targets and reruns.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/pretrain.smk"
include: "rules/transfer.smk"
include: "rules/tables.smk"


rule all:
    default_target: True
    localrule: True
    input:
        "results/tables.md",
