"""TrainConfig: a wrong key, type or range is a one-line ConfigError naming the key, the expected
type and the value; YAML files are read in the spec's YAML 1.2 dialect and written back losslessly."""

from __future__ import annotations

from pathlib import Path

import pytest

from msmtrec.config import TrainConfig
from msmtrec.errors import ConfigError
from msmtrec.yaml_io import dump_yaml


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "run.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("text,message", [
    ("batch_size: abc", "batch_size must be an integer, got 'abc'"),
    ("batch_size: 2.5", "batch_size must be an integer, got 2.5 (float)"),
    ("lr: fast", "lr must be a number, got 'fast'"),
    ("streaming: yes", "streaming must be true or false, got 'yes'"),  # YAML 1.2: `yes` is text
    ("model: 5", "model must be a string, got 5 (int)"),
    ("model_params: [1]", "model_params must be a mapping, got [1] (list)"),
    ("task_weights: {click: heavy}", "task_weights['click'] must be a number, got 'heavy'"),
    ("bach_size: 3", "unknown key 'bach_size' (did you mean 'batch_size'?) (allowed: model, model_params, data,"),
    ("batch_size: 0", "batch_size must be positive, got 0"),
    ("lr: -1.0e-3", "lr must be positive, got -0.001"),
    ("weight_decay: -1", "weight_decay must be at least 0, got -1"),
    ("patience: 0", "patience must be at least 1, got 0"),
    ("threads: 0", "threads must be at least 1, got 0"),
    ("- a", "the config must be a mapping, got ['a'] (list)"),
])
def test_bad_yaml_config_is_one_line_error_naming_file_key_expected_and_found(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        TrainConfig.from_yaml(path)
    assert str(err.value).startswith(f"config {path}: {message}") and "\n" not in str(err.value)


def test_every_way_of_building_a_config_checks_it():
    with pytest.raises(ConfigError, match=r"^config: batch_size must be positive, got 0$"):
        TrainConfig(batch_size=0)
    with pytest.raises(ConfigError, match=r"^config: max_epochs must be at least 1, got 0$"):
        TrainConfig().replace(max_epochs=0)
    with pytest.raises(ConfigError, match=r"^command line: unknown key 'epochs' \(did you mean 'max_epochs'\?\)"):
        TrainConfig.from_dict({"epochs": 3}, source="command line")
    with pytest.raises(ConfigError, match=r"^config: deterministic must be true or false, got 1 \(int\)$"):
        TrainConfig.from_dict({"deterministic": 1})


def test_yaml_1_2_scalars(tmp_path):
    config = TrainConfig.from_yaml(write(tmp_path, "lr: 1e-3\nrun_dir: 2024_01\ndata: 010\n"))
    # YAML 1.1 would read 1e-3 as text, 2024_01 as the integer 202401 and 010 as 8.
    assert (config.lr, config.run_dir, config.data) == (0.001, "2024_01", "010")


def test_empty_file_gives_defaults_and_missing_file_is_named(tmp_path):
    assert TrainConfig.from_yaml(write(tmp_path, "")) == TrainConfig()
    with pytest.raises(ConfigError, match=r"config file .*nope.yaml does not exist"):
        TrainConfig.from_yaml(tmp_path / "nope.yaml")


def test_written_config_reads_back_equal(tmp_path):
    config = TrainConfig(model_params={"act": "yes", "scale": "1e5", "at": "1:30", "dims": [64, 32]}, lr=1e-5,
                         task_weights={"click": 1, "buy": 0.5}, run_dir="010")
    assert TrainConfig.from_yaml(write(tmp_path, dump_yaml(config.to_dict()))) == config


def test_replace_and_to_dict():
    config = TrainConfig(batch_size=32)
    changed = config.replace(lr=0.5, model_params={"x": 1})
    assert (changed.batch_size, changed.lr, changed.model_params, config.lr) == (32, 0.5, {"x": 1}, 1e-3)
    assert TrainConfig.from_dict(changed.to_dict()) == changed
