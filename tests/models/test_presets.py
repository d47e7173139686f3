"""Named training settings a model declares (``--preset``): resolution, precedence, errors, and
that a run records them."""

import pytest
from click.testing import CliRunner

from msmtrec.cli import main
from msmtrec.config import TrainConfig
from msmtrec.errors import ConfigError
from msmtrec.models import MODELS, model_hyperparameters, resolve_preset


@pytest.mark.parametrize("name, preset", [(n, p) for n, cls in sorted(MODELS.items()) for p in sorted(cls.presets)])
def test_every_preset_is_valid_config_and_model_options(name, preset):
    cls = MODELS[name]
    config = resolve_preset(TrainConfig(model=name, preset=preset))
    settings = cls.presets[preset].settings
    for key, value in settings.items():
        if key != "model_params":
            assert getattr(config, key) == value
    assert set(config.model_params) == set(settings.get("model_params", {}))
    assert set(config.model_params) <= set(model_hyperparameters(cls))
    assert cls.presets[preset].source


def test_explicit_values_win_over_the_preset():
    config = resolve_preset(TrainConfig(model="aem2tl", preset="paper", lr=0.5))
    assert config.lr == 0.5 and config.batch_size == 1024  # lr given; batch size from the preset
    # An explicit value equal to the default still wins (it was set), and replace() keeps unset keys unset.
    assert resolve_preset(TrainConfig(model="aem2tl", preset="paper", batch_size=256)).batch_size == 256
    assert resolve_preset(TrainConfig(model="aem2tl").replace(preset="paper")).batch_size == 1024
    # Resolving twice changes nothing (a run's recorded config reloads as it ran).
    again = resolve_preset(TrainConfig.from_dict(config.to_dict()))
    assert again == config
    assert resolve_preset(TrainConfig(model="aem2tl")) == TrainConfig(model="aem2tl")  # no preset: as is


def test_unknown_preset_is_one_line_naming_the_models_presets():
    with pytest.raises(ConfigError, match=r"model 'aem2tl' has no preset 'code'; its presets: paper$"):
        resolve_preset(TrainConfig(model="aem2tl", preset="code"))
    with pytest.raises(ConfigError, match=r"model 'mmoe' has no preset 'code'; its presets: \(none\)"):
        resolve_preset(TrainConfig(model="mmoe", preset="code"))


def test_models_listing_shows_presets_with_their_source():
    out = CliRunner().invoke(main, ["models"]).output
    line = next(line for line in out.splitlines() if "--preset paper" in line)
    assert "lr=2e-05" in line and "batch_size=1024" in line and "§V-C" in line
