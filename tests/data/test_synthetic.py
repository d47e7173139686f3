"""The synthetic generator produces data with the structure it promises."""

from __future__ import annotations

import re

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
import yaml

from msmtrec.data.synthetic import (BLOCK_ROWS, SyntheticConfig, SyntheticGenerator, make_synthetic,
                                    make_synthetic_splits, write_synthetic)
from msmtrec.errors import ConfigError
from msmtrec.metrics import auc


def _same(a, b) -> None:
    for name in ("categorical", "numeric", "scenario", "labels", "label_mask"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name


def test_schema_matches_data():
    data, schema = make_synthetic(2000, num_fields=4, vocab=(5, 50, 500, 7), num_numeric=2, scenarios=4, tasks=3,
                                  with_user=True, seed=3)
    assert schema.cardinalities == [6, 51, 501, 8]
    assert data.categorical.dtype == torch.int64 and data.numeric.shape == (2000, 2)
    assert int(data.categorical.min()) >= 1  # 0 is reserved for unknown
    assert (data.categorical.max(0).values < torch.tensor(schema.cardinalities)).all()
    assert set(data.scenario.tolist()) == {0, 1, 2, 3}
    assert schema.tasks == ("click", "action_1", "conversion")
    assert schema.task_roles == {"click": "click", "action_1": "action", "conversion": "conversion"}
    assert schema.has_user and torch.equal(data.user, data.categorical[:, 0])
    assert data.label_mask.all()


def test_deterministic_given_seed_and_prefix_stable():
    a, _ = make_synthetic(3000, seed=11)
    b, _ = make_synthetic(3000, seed=11)
    c, _ = make_synthetic(3000, seed=12)
    _same(a, b)
    assert not torch.equal(a.categorical, c.categorical)
    # Row i does not depend on how many rows follow it, across a block boundary too.
    longer, _ = make_synthetic(BLOCK_ROWS + 500, seed=11)
    _same(a, longer.take(slice(0, 3000)))
    gen = SyntheticGenerator(SyntheticConfig(rows=BLOCK_ROWS + 500, seed=11))
    _same(gen.generate(BLOCK_ROWS - 100, BLOCK_ROWS + 300), longer.take(slice(BLOCK_ROWS - 100, BLOCK_ROWS + 300)))


def test_nested_conversion_implies_click_and_rates_match():
    data, schema = make_synthetic(60000, tasks=2, base_rates=(0.25, 0.08), scenario_signal=0.7, seed=5)
    y = data.labels.numpy().astype(bool)
    assert not (y[:, 1] & ~y[:, 0]).any()  # conversion ⊂ click
    assert abs(y[:, 0].mean() - 0.25) < 0.01
    assert abs(y[y[:, 0], 1].mean() - 0.08) < 0.01  # rate given a click
    assert schema.task_roles == {"click": "click", "conversion": "conversion"}


def test_independent_tasks_are_not_nested():
    data, schema = make_synthetic(20000, tasks=2, structure="independent", base_rates=(0.5, 0.3), seed=5)
    y = data.labels.numpy().astype(bool)
    assert (y[:, 1] & ~y[:, 0]).sum() > 1000
    assert schema.task_roles == {}
    assert abs(y[:, 1].mean() - 0.3) < 0.015


def _per_scenario_rates(data):
    y, s = data.labels.numpy(), data.scenario.numpy()
    return np.stack([y[s == k].mean(0) for k in range(int(s.max()) + 1)]), np.bincount(s)


def test_scenario_signal_zero_means_labels_ignore_the_scenario():
    cfg = SyntheticConfig(rows=60000, scenario_signal=0.0, structure="independent", base_rates=(0.4, 0.2), seed=2)
    gen = SyntheticGenerator(cfg)
    data = gen.generate()
    cat, num, scen = data.categorical.numpy(), data.numeric.numpy(), data.scenario.numpy()
    # The true probability of a row is the same whatever scenario it is put in.
    p = gen.probabilities(cat, num, scen)
    np.testing.assert_array_equal(p, gen.probabilities(cat, num, (scen + 1) % cfg.scenarios))
    rates, counts = _per_scenario_rates(data)
    se = np.sqrt(rates * (1 - rates) / counts[:, None])
    assert (np.abs(rates - rates.mean(0)) < 4 * se).all()


def test_scenario_signal_one_makes_scenarios_differ():
    cfg = SyntheticConfig(rows=60000, scenario_signal=1.0, structure="independent", base_rates=(0.4, 0.2), seed=2)
    gen = SyntheticGenerator(cfg)
    data = gen.generate()
    cat, num, scen = data.categorical.numpy(), data.numeric.numpy(), data.scenario.numpy()
    p = gen.probabilities(cat, num, scen)
    moved = gen.probabilities(cat, num, (scen + 1) % cfg.scenarios)
    assert np.abs(p - moved).mean() > 0.05
    rates, counts = _per_scenario_rates(data)
    se = np.sqrt(rates * (1 - rates) / counts[:, None])
    assert (np.abs(rates - rates.mean(0)) > 6 * se).any()


def _one_hot(cat: np.ndarray, vocab: int) -> np.ndarray:
    n, f = cat.shape
    out = np.zeros((n, f * (vocab + 1)), dtype=np.float32)
    out[np.arange(n)[:, None], cat + np.arange(f) * (vocab + 1)] = 1.0
    return out


@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_scenario_signal_is_learnable_only_when_present(alpha):
    """Per-scenario logistic fits beat one pooled fit by a clear margin when the labels are scenario
    specific, and do not when scenario_signal = 0 (same AUC up to estimation noise)."""
    from sklearn.linear_model import LogisticRegression

    train, _, test, _ = make_synthetic_splits(40000, fractions=(0.75, 0.0001, 0.2499), num_fields=3, vocab=12,
                                              scenarios=2, tasks=1, structure="independent", scenario_signal=alpha,
                                              zipf=0.0, signal_scale=3.0, seed=4)
    x_tr, x_te = _one_hot(train.categorical.numpy(), 12), _one_hot(test.categorical.numpy(), 12)
    y_tr, y_te = train.labels[:, 0].numpy(), test.labels[:, 0].numpy()
    s_tr, s_te = train.scenario.numpy(), test.scenario.numpy()
    pooled = LogisticRegression(max_iter=300).fit(x_tr, y_tr)
    gains = []
    for s in range(2):
        own = LogisticRegression(max_iter=300).fit(x_tr[s_tr == s], y_tr[s_tr == s])
        rows = s_te == s
        gains.append(auc(own.predict_proba(x_te[rows])[:, 1], y_te[rows])
                     - auc(pooled.predict_proba(x_te[rows])[:, 1], y_te[rows]))
    if alpha == 0.0:
        assert max(abs(g) for g in gains) < 0.01
    else:
        assert min(gains) > 0.05


def test_task_correlation_controls_task_similarity():
    def logit_corr(rho: float) -> float:
        gen = SyntheticGenerator(SyntheticConfig(rows=5000, tasks=2, structure="independent", scenario_signal=0.0,
                                                 task_correlation=rho, seed=9))
        d = gen.generate()
        z = gen.logits(d.categorical.numpy(), d.numeric.numpy(), d.scenario.numpy())
        return float(np.corrcoef(z[:, 0], z[:, 1])[0, 1])

    assert logit_corr(1.0) > 0.999
    assert logit_corr(0.0) < 0.9
    assert logit_corr(0.8) > logit_corr(0.2)


def test_chunked_write_equals_in_memory_generation(tmp_path):
    cfg = SyntheticConfig(rows=3000, num_fields=3, vocab=40, num_numeric=2, scenarios=3, tasks=2, seed=21)
    spec_path = write_synthetic(tmp_path / "d", cfg, chunk_rows=700)
    parts = make_synthetic_splits(3000, config=cfg)
    for split, expected in zip(("train", "val", "test"), parts[:3]):
        f = pq.ParquetFile(tmp_path / "d" / f"{split}.parquet")
        sizes = [f.metadata.row_group(i).num_rows for i in range(f.metadata.num_row_groups)]
        assert all(s == 700 for s in sizes[:-1]) and 0 < sizes[-1] <= 700
        t = f.read()
        cat = np.stack([t.column(f"cat_{i}").to_numpy() for i in range(3)], 1)
        num = np.stack([t.column(f"num_{j}").to_numpy() for j in range(2)], 1)
        scen = np.array([int(s[1:]) for s in t.column("scenario").to_pylist()])
        lab = np.stack([t.column(n).to_numpy() for n in ("click", "conversion")], 1)
        np.testing.assert_array_equal(cat, expected.categorical.numpy())
        np.testing.assert_array_equal(num, expected.numeric.numpy())
        np.testing.assert_array_equal(scen, expected.scenario.numpy())
        np.testing.assert_array_equal(lab, expected.labels.numpy())
    spec = yaml.safe_load(spec_path.read_text())
    assert [t.get("role") for t in spec["tasks"]] == ["click", "conversion"]
    assert spec["files"] == {"train": "train.parquet", "val": "val.parquet", "test": "test.parquet"}


def test_write_refuses_to_overwrite(tmp_path):
    cfg = SyntheticConfig(rows=500, seed=1)
    write_synthetic(tmp_path, cfg)
    with pytest.raises(ConfigError, match="already holds"):
        write_synthetic(tmp_path, cfg)
    write_synthetic(tmp_path, cfg.replace(seed=2), overwrite=True)


@pytest.mark.parametrize("options, key", [
    ({"scenario_signal": 1.5}, "scenario_signal"),
    ({"structure": "tree"}, "structure"),
    ({"vocab": (3, 4)}, "vocab"),
    ({"base_rates": (0.2,)}, "base_rates"),
    ({"no_such_option": 1}, "no_such_option"),
])
def test_bad_options_name_the_option(options, key):
    with pytest.raises(ConfigError, match=key):
        make_synthetic(100, **options)


def test_cli_synth(tmp_path):
    from click.testing import CliRunner

    from msmtrec.cli import main

    runner = CliRunner()
    res = runner.invoke(main, ["synth", "--out", str(tmp_path / "s"), "--rows", "2000", "--scenarios", "2",
                               "--scenario-signal", "0", "-p", "with_user=true", "--chunk-rows", "500"])
    assert res.exit_code == 0, res.output
    spec = yaml.safe_load((tmp_path / "s" / "spec.yaml").read_text())
    assert spec["user"] == "cat_0" and list(spec["scenario"]["mapping"]) == ["s0", "s1"]
    expected, _ = make_synthetic(2000, scenarios=2, scenario_signal=0.0, with_user=True)
    got = pq.read_table(tmp_path / "s" / "train.parquet")
    np.testing.assert_array_equal(got.column("cat_0").to_numpy(), expected.categorical[:1600, 0].numpy())
    bad = runner.invoke(main, ["synth", "--out", str(tmp_path / "t"), "--scenario-signal", "2"])
    assert bad.exit_code == 2 and "scenario_signal" in bad.output


def test_history_data_follows_drifting_interests_and_writes_a_history_spec(tmp_path):
    from msmtrec.data.synthetic_interests import interest, item_group

    cfg = SyntheticConfig(rows=4000, num_fields=3, vocab=(20, 40, 8), history_len=5, history_signal=2.0,
                          interest_groups=4, seed=3)
    spec = yaml.safe_load(write_synthetic(tmp_path, cfg).read_text())
    assert spec["sequences"]["history"] == {"user": "cat_0", "item": "cat_1", "time": "time", "side": ["cat_2"],
                                            "max_len": 5, "pooling": "attention"}
    t = pq.read_table(tmp_path / "train.parquet")
    rows, users, items = t.column("time").to_numpy(), t.column("cat_0").to_numpy(), t.column("cat_1").to_numpy()
    assert (rows == np.arange(3200)).all()  # row i at time i: the files are in time order
    np.testing.assert_array_equal(t.column("cat_2").to_numpy(), item_group(items, 4) + 1)
    match = item_group(items, 4) == interest(3, users, rows, cfg.period, 4)
    assert abs(match.mean() - (0.7 + 0.3 / 4)) < 0.03  # interest_share, plus chance for the others
    gen = SyntheticGenerator(cfg)
    block = gen.block(0)
    z = gen.logits(block["categorical"], block["numeric"], block["scenario"], block["time"])
    z0 = SyntheticGenerator(cfg.replace(history_signal=0.0)).logits(block["categorical"], block["numeric"],
                                                                    block["scenario"])
    shift = z - z0 - 2.0 * gen._match(block["categorical"], block["time"])[:, None]
    np.testing.assert_allclose(shift, np.broadcast_to(shift[:1], shift.shape), atol=1e-9)  # + the calibrated bias
    with pytest.raises(ConfigError, match="write_synthetic"):
        gen.generate()


@pytest.mark.parametrize("options, message", [
    ({"history_signal": 1.0}, "history_signal needs a history"),
    ({"history_len": 5, "num_fields": 2}, "a history needs num_fields >= 3"),
    ({"history_len": 5, "vocab": 5, "interest_groups": 8}, "at least interest_groups (8) ids"),
])
def test_bad_history_options_are_one_line(options, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        SyntheticConfig(rows=100, **options)
