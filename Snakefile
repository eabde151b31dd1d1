# The pipeline: prepare data -> pretrain source models -> transfer runs -> tables.
# Everything it builds is listed by src/tlrepro/plan/runs.py from the config; every rule
# calls the `tlrepro` CLI. See README.md for targets and reruns.
#
# Software: every rule runs in the project's pinned environment (pyproject.toml and
# constraints.txt, installed by `make setup`), the one the `tlrepro` CLI comes from,
# so no rule names a conda environment or container (`snakemake --lint` asks for one
# per rule; `make lint` accepts that lint and the one about CLI in rules/common.smk).
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
    input:
        ACTIVE_TABLES["md"],
        str(report_dir(PROFILE)),
    localrule: True
