"""The config's typed model: the generated schema is current and still serves Snakemake's
validate and editors, a loaded config hands the plan typed blocks, and a key added
without a default leaves existing identities alone."""

from __future__ import annotations

import pytest
import yaml
from pydantic import ValidationError

from tlrepro.config.load import load_config
from tlrepro.config.model import SCHEMA_FILE, schema_text
from tlrepro.config.training import Training
from tlrepro.methods.settings import Settings
from tlrepro.plan.runs import build_plan

from .conftest import REPO

CONFIG = REPO / "config" / "config.yaml"


def test_the_schema_file_is_generated_from_the_models():
    assert SCHEMA_FILE.read_text() == schema_text(), (
        "config/schema.yaml lags behind tlrepro.config.model: run `tlrepro schema`"
    )


def test_snakemakes_validate_accepts_the_config_with_the_generated_schema_and_refuses_a_fault():
    from snakemake.utils import validate as snakemake_validate

    config = yaml.safe_load(CONFIG.read_text())
    snakemake_validate(config, schema=str(SCHEMA_FILE), set_default=False)
    config["profiles"]["quick"]["groups"]["gradmf"]["training"]["epochs"] = 0
    with pytest.raises(Exception, match="epochs"):
        snakemake_validate(config, schema=str(SCHEMA_FILE), set_default=False)


def test_the_plan_receives_complete_typed_training_blocks_and_settings():
    plan = build_plan(load_config(CONFIG, "quick"))
    for job in [*plan.runs, *plan.pretrains.values()]:
        assert isinstance(job.training, Training)
        assert job.training.record().keys() >= Training().record().keys()
    assert all(isinstance(run.settings, Settings) for run in plan.runs)
    run = plan.run("clip_uda", "zeroshot", "mnist_5k-to-digits_uci", 0)
    assert (run.training.epochs, run.training.steps_per_epoch) == (1, 1)


def test_a_key_without_a_default_is_recorded_only_where_given():
    """`precision` came after many runs existed: absent, it must not enter their identity."""
    assert "precision" not in Training().record()
    assert Training().autocast == "bf16"
    given = Training(precision="fp32")
    assert given.record()["precision"] == "fp32" and given.autocast == "fp32"
    assert given.updated({"lr": 0.5}).record()["precision"] == "fp32"


def test_an_int_given_for_a_float_is_recorded_as_written_and_a_bool_is_no_number():
    """A run's identity records what the config says: `lr: 1` stays 1, not 1.0."""
    assert Training.model_validate({"lr": 1}).record()["lr"] == 1
    assert type(Training.model_validate({"lr": 1}).lr) is int
    with pytest.raises(ValidationError, match="lr"):
        Training.model_validate({"lr": True})
    with pytest.raises(ValidationError, match="epochs"):
        Training.model_validate({"epochs": "10"})
