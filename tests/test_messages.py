"""The training-update message: JSON round trip and version checks."""

import json
import math

import pytest

from g2048lab.messages import SCHEMA_VERSION, TrainingUpdate

from .factories import training_update


def message(**changes):
    return training_update(
        **{
            "run_id": "abc",
            "policy_loss": -0.01,
            "value_loss": 0.9,
            "learning_rate": 1e-3,
            **changes,
        }
    )


def test_json_round_trip_and_design_fields():
    update = message()
    data = json.loads(update.to_json())
    assert data["type"] == "training_update" and data["schema_version"] == SCHEMA_VERSION
    for name in [
        "run_id",
        "iteration",
        "episode",
        "env_steps",
        "score",
        "max_tile",
        "loss",
        "policy_loss",
        "value_loss",
        "entropy",
        "learning_rate",
        "actions",
        "board_state",
        "attention_weights",
        "expert_usage",
        "gpu_memory",
        "model_params",
        "steps_per_second",
        "timestamp",
    ]:
        assert name in data
    assert TrainingUpdate.from_json(update.to_json()) == update


def test_non_finite_numbers_become_null():
    data = json.loads(message(loss=math.nan, value_loss=math.inf).to_json())
    assert data["loss"] is None and data["value_loss"] is None


def test_newer_schema_and_other_types_are_refused_clearly():
    data = json.loads(message().to_json())
    with pytest.raises(ValueError, match="upgrade g2048lab"):
        TrainingUpdate.from_json(json.dumps({**data, "schema_version": SCHEMA_VERSION + 1}))
    with pytest.raises(ValueError, match="not a training update"):
        TrainingUpdate.from_json(json.dumps({**data, "type": "other"}))
    extra = TrainingUpdate.from_json(json.dumps({**data, "future_field": 1}))
    assert extra == message()
