"""Declared model options: every model's constructor keywords are typed, its defaults pass its
own declaration, and a wrong type or a degenerate size is one line naming the option."""

from __future__ import annotations

from typing import Any

import pytest

from msmtrec.errors import ConfigError
from msmtrec.models import MODELS, build_model
from msmtrec.models.base import model_hyperparameters
from msmtrec.models.options import option_types, validate_options
from tests.conftest import make_schema


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_option_is_declared_and_its_default_passes(name):
    model = option_types(MODELS[name])
    assert [k for k, f in model.model_fields.items() if f.annotation is Any] == []
    defaults = model_hyperparameters(MODELS[name])
    assert validate_options(MODELS[name], defaults) == defaults


@pytest.mark.parametrize("name", sorted(MODELS))
def test_a_zero_embedding_is_refused_by_every_model(name):
    with pytest.raises(ConfigError) as err:
        build_model(name, make_schema(), {"embed_dim": 0})
    assert str(err.value) == f"model '{name}': option embed_dim must be at least 1, got 0"


@pytest.mark.parametrize("name,params,message", [
    ("ple", {"num_levels": "abc"}, "model 'ple': option num_levels must be an integer, got 'abc'"),
    ("mmoe", {"expert_dims": "abc"}, "model 'mmoe': option expert_dims must be a list, got 'abc'"),
    ("mmoe", {"expert_dims": [64, 0]}, "model 'mmoe': option expert_dims[1] must be at least 1, got 0"),
    ("shared_bottom", {"dropout": 1.0}, "model 'shared_bottom': option dropout must be less than 1, got 1.0"),
    ("shared_bottom", {"batch_norm": 1}, "model 'shared_bottom': option batch_norm must be true or false, got 1 (int)"),
    ("pepnet", {"gamma": 0.0}, "model 'pepnet': option gamma must be positive, got 0.0"),
    ("autoifs", {"gate_penalty": "x"}, "model 'autoifs': option gate_penalty must be a number or a list, got 'x'"),
    ("autoifs", {"retrain_epochs": None}, None),
    ("ple", {"num_level": 3}, "model 'ple' has no option(s) num_level (did you mean 'num_levels'?); its "
                              "options are: dropout, embed_dim, expert_dims,"),
])
def test_bad_option_values_name_the_option_the_type_and_the_value(name, params, message):
    if message is None:
        assert validate_options(MODELS[name], params) == params
        return
    with pytest.raises(ConfigError) as err:
        build_model(name, make_schema(), params)
    assert str(err.value).startswith(message)
