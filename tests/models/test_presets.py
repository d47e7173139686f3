"""Named training settings a model declares (``--preset``): resolution, precedence, errors, and
that a run records them."""

import pytest
import yaml
from click.testing import CliRunner

from msmtrec.cli import main
from msmtrec.config import TrainConfig
from msmtrec.errors import ConfigError
from msmtrec.models import MODELS, model_hyperparameters, resolve_preset
from msmtrec.models.options import validate_options


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
    validate_options(cls, config.model_params)  # each value of the declared type and range
    assert cls.presets[preset].source


def test_the_seed_models_declare_their_sources_settings():
    hinet = resolve_preset(TrainConfig(model="hinet", preset="code"))
    assert (hinet.lr, hinet.batch_size, hinet.max_epochs) == (1e-4, 4096, 8)
    aem2tl = resolve_preset(TrainConfig(model="aem2tl", preset="paper"))
    assert (aem2tl.lr, aem2tl.batch_size) == (2e-5, 1024)
    autoifs = resolve_preset(TrainConfig(model="autoifs", preset="code"))
    assert autoifs.batch_size == 4096 and autoifs.model_params["selector"] == "code"


def test_explicit_values_win_over_the_preset_and_model_params_merge_key_by_key():
    config = resolve_preset(TrainConfig(model="hinet", preset="code", lr=0.5, model_params={"cgc_gate": "softmax",
                                                                                          "embed_dim": 8}))
    assert config.lr == 0.5 and config.batch_size == 4096  # lr given; batch size from the preset
    assert config.model_params["cgc_gate"] == "softmax" and config.model_params["embed_dim"] == 8
    assert config.model_params["loss_on_all_heads"] is True
    # An explicit value equal to the default still wins (it was set), and replace() keeps unset keys unset.
    assert resolve_preset(TrainConfig(model="hinet", preset="code", batch_size=256)).batch_size == 256
    assert resolve_preset(TrainConfig(model="hinet").replace(preset="code")).batch_size == 4096
    # Resolving twice changes nothing (a run's recorded config reloads as it ran).
    again = resolve_preset(TrainConfig.from_dict(config.to_dict()))
    assert again == config
    assert resolve_preset(TrainConfig(model="hinet")) == TrainConfig(model="hinet")  # no preset: as is


def test_unknown_preset_is_one_line_naming_the_models_presets():
    with pytest.raises(ConfigError, match=r"model 'hinet' has no preset 'paper'; its presets: code$"):
        resolve_preset(TrainConfig(model="hinet", preset="paper"))
    with pytest.raises(ConfigError, match=r"model 'mmoe' has no preset 'code'; its presets: \(none\)"):
        resolve_preset(TrainConfig(model="mmoe", preset="code"))


def test_config_file_and_command_line_over_the_preset(tmp_path, monkeypatch):
    """A key in the config file wins over the preset, a command-line option over both; the run's
    config.yaml records the preset and the resolved values."""
    monkeypatch.chdir(tmp_path)
    cfg = tmp_path / "run.yaml"
    cfg.write_text("model: hinet\npreset: code\nbatch_size: 512\nmax_epochs: 3\n")
    small = ["-p", "sub_experts=1", "-p", "sub_expert_dims=[4]", "-p", "expert_dims=[4]", "-p", "tower_dims=[4]",
             "-p", "san_gate_dims=[4,1]", "-p", "scenario_embed_dim=4", "-p", "embed_dim=4"]
    res = CliRunner().invoke(main, ["train", "-c", str(cfg), "--epochs", "1", "--row-limit", "3000", "-q",
                                    "--run-dir", str(tmp_path / "run"), *small])
    assert res.exit_code == 0, res.output
    recorded = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert recorded["preset"] == "code"
    assert (recorded["batch_size"], recorded["max_epochs"], recorded["lr"]) == (512, 1, 1e-4)
    assert recorded["model_params"]["cgc_gate"] == "sum" and recorded["model_params"]["embed_dim"] == 4
    res = CliRunner().invoke(main, ["train", "--model", "hinet", "--preset", "nope", "--run-dir", str(tmp_path / "refused")])
    assert res.exit_code == 2 and "its presets: code" in res.output and len(res.output.strip().splitlines()) == 1
    assert not (tmp_path / "refused").exists() and not (tmp_path / "runs").exists()  # a refused run leaves nothing


def test_models_listing_shows_presets_with_their_source():
    out = CliRunner().invoke(main, ["models"]).output
    entry = " ".join(out.split("--preset paper:")[1].split("\n")[:3])  # the listing wraps at 100 columns
    assert "lr=2e-05" in entry and "batch_size=1024" in entry and "§V-C" in entry
    assert "san_gate_dims=[128,64,1]" in out and "--preset code" in out


def test_nproc_ranks_receive_the_preset_filled_in(tmp_path, monkeypatch):
    """``--nproc`` hands its ranks a config file in which every key is set: the preset's values
    must be in it already, or the ranks would read the run config's defaults as explicit."""
    import msmtrec.train.distributed as distributed

    seen = {}

    def launch(nproc, args):
        seen["nproc"], seen["config"] = nproc, yaml.safe_load(open(args[args.index("--config") + 1]).read())
        return 0

    monkeypatch.setattr(distributed, "launch", launch)
    res = CliRunner().invoke(main, ["train", "--model", "aem2tl", "--preset", "paper", "--nproc", "2", "--lr", "1e-3",
                                    "--runs-root", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert seen["nproc"] == 2 and seen["config"]["preset"] == "paper"
    assert (seen["config"]["batch_size"], seen["config"]["lr"]) == (1024, 1e-3)  # the preset's, and the explicit lr
