# The pipeline: prepare data -> pretrain source models -> transfer runs -> tables.
# Everything it builds is listed by src/tlrepro/plan.py from the config; every rule
# calls the `tlrepro` CLI. See README.md for targets and reruns.
from snakemake.utils import min_version

min_version("9.0")


# A user's edited copy (`--configfile my.yaml`) replaces the repository's config
# instead of being merged into it: the CLI that the rules call reads one file.
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/pretrain.smk"
include: "rules/transfer.smk"
include: "rules/tables.smk"


rule all:
    default_target: True
    localrule: True
    input:
        ACTIVE_TABLES["md"],
        str(report_dir(PROFILE)),
