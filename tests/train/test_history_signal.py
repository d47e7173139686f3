"""The synthetic planted history signal, end to end through spec, history builder, embedding and
trainer: a model that reads the users' histories (target attention) beats the same model without
them when the labels depend on the users' recent items, and gains nothing when they do not."""

from __future__ import annotations

import pytest
import yaml

from msmtrec.config import TrainConfig
from msmtrec.data.synthetic import SyntheticConfig, write_synthetic
from msmtrec.train import train
from msmtrec.yaml_io import dump_yaml


@pytest.mark.parametrize("signal", [4.0, 0.0])
def test_the_history_helps_exactly_when_the_labels_depend_on_it(tmp_path, signal):
    config = SyntheticConfig(rows=40_000, num_fields=3, vocab=(50, 100, 10), tasks=1, scenarios=2, history_len=8,
                             history_signal=signal, interest_groups=4, signal_scale=0.5, seed=0)
    spec = write_synthetic(tmp_path, config)
    plain = {k: v for k, v in yaml.safe_load(spec.read_text()).items() if k != "sequences"}
    (tmp_path / "plain.yaml").write_text(dump_yaml(plain))
    auc = {}
    for name, path in (("history", spec), ("none", tmp_path / "plain.yaml")):
        run = TrainConfig(model="shared_bottom", data=str(path), max_epochs=3, batch_size=128, lr=3e-3, seed=1,
                          model_params={"bottom_dims": [64], "tower_dims": [16]})
        auc[name] = train(run, write_run=False, progress=False).test["mean_auc"]
    gain = auc["history"] - auc["none"]
    if signal:
        assert gain > 0.012, auc
    else:
        assert abs(gain) < 0.008, auc


def test_ml_1m_fixture_with_and_without_history_trains_end_to_end(tmp_path):
    from msmtrec.data.recipes import prepare
    from tests.data.conftest import FIXTURES

    results = {}
    for history in (0, 5):
        spec = prepare("ml-1m", FIXTURES / "recipes" / "ml-1m", tmp_path / str(history), options={"history": history})
        run = TrainConfig(model="shared_bottom", data=str(spec), max_epochs=2, batch_size=16, seed=1,
                          runs_root=str(tmp_path / "runs"))
        results[history] = train(run, progress=False)
    assert results[5].test["mean_auc"] is not None and results[0].test["mean_auc"] is not None
    assert (results[5].run_dir / "encoders.json").read_text().count('"history"') >= 1
