"""Streaming the train split: the same rows, encoders and batches as the in-memory path, shuffled,
bounded, sharded by rank."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
import torch
import yaml

from msmtrec.config import TrainConfig
from msmtrec.data import load_dataset
from msmtrec.data.encoded import EncodedData
from msmtrec.data import open_dataset, open_streaming
from msmtrec.data.synthetic import SyntheticConfig, write_synthetic
from msmtrec.errors import ConfigError


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("stream")
    cfg = SyntheticConfig(rows=12000, num_fields=4, vocab=200, num_numeric=2, with_user=True, seed=8)
    write_synthetic(out, cfg, chunk_rows=1500)
    # Add a bucketized numeric and a min_count so every kind of fitted state is exercised.
    spec = yaml.safe_load((out / "spec.yaml").read_text())
    spec["numeric"] = [{"column": "num_0", "transform": "log1p"}, {"column": "num_1", "transform": "bucketize",
                                                                    "buckets": 5}]
    spec["min_count"] = 3
    (out / "spec.yaml").write_text(yaml.safe_dump(spec))
    return out


def _rows(d: EncodedData) -> list[tuple]:
    return sorted(map(tuple, torch.cat([d.categorical, d.scenario[:, None], d.labels.long(),
                                        (d.numeric * 1e4).round().long()], 1).tolist()))


def test_streaming_fit_equals_in_memory_fit(synth_dir):
    # Both paths fit through the same reader chunks: the encoders are identical, floats included.
    st = open_streaming(synth_dir / "spec.yaml")
    mem = load_dataset(synth_dir / "spec.yaml")
    assert st.encoders.to_dict() == mem.encoders.to_dict()
    assert st.schema == mem.schema
    for split in ("val", "test"):
        x, y = getattr(st, split), getattr(mem, split)
        assert torch.equal(x.categorical, y.categorical) and torch.equal(x.labels, y.labels)
        assert torch.equal(x.user, y.user) and torch.equal(x.numeric, y.numeric)
    # The report says the same about every split, train included (from the fit pass when streamed).
    for key in ("rows", "rows_read", "dropped", "scenario_rows", "label_observed", "scenario_label_counts"):
        assert st.report[key] == mem.report[key], key
    train = mem.train  # the per-scenario label counts are the train rows' own
    for j, t in enumerate(mem.schema.tasks):
        for k, name in enumerate(mem.schema.scenarios):
            rows = train.scenario == k
            counts = st.report["scenario_label_counts"]["train"][t][name]
            assert counts == {"observed": int(train.label_mask[rows, j].sum()),
                              "positive": int((train.labels[rows, j] * train.label_mask[rows, j]).sum())}
    for s in ("train", "val", "test"):
        for t, rate in mem.report["label_positive_rate"][s].items():
            assert st.report["label_positive_rate"][s][t] == pytest.approx(rate, rel=1e-12)


def test_the_shuffle_seed_does_not_change_the_encoders(synth_dir):
    # A thinned bucket-edge sample (12,000 values, 100 kept) is seeded alike in memory and streamed.
    a, b = (open_streaming(synth_dir / "spec.yaml", seed=s, quantile_sample=100).encoders.to_dict() for s in (1, 2))
    assert a == b


def test_streaming_with_other_chunks_fits_the_same_encoders(synth_dir):
    a = open_streaming(synth_dir / "spec.yaml", read_rows=700).encoders.to_dict()
    b = load_dataset(synth_dir / "spec.yaml").encoders.to_dict()
    assert a["vocabularies"] == b["vocabularies"] and a["scenario"] == b["scenario"] and a["schema"] == b["schema"]
    for col, stats in b["numeric"].items():  # Chan's merge: equal up to summation order
        for k, v in stats.items():
            assert a["numeric"][col][k] == (v if isinstance(v, (str, list)) else pytest.approx(v, rel=1e-12)), (col, k)


def test_an_epoch_yields_every_train_row_once_in_shuffled_batches(synth_dir):
    st = open_streaming(synth_dir / "spec.yaml", batch_size=256, shuffle_buffer=2000, read_rows=700, seed=3)
    mem = load_dataset(synth_dir / "spec.yaml")
    batches = list(st.train_batches(0))
    assert all(len(b) == 256 for b in batches[:-1]) and 0 < len(batches[-1]) <= 256
    epoch0 = EncodedData.concat(batches)
    assert len(st) == len(mem.train) == len(epoch0)
    assert _rows(epoch0) == _rows(mem.train)
    # Shuffled: not the file order, and the first batch already mixes rows from far apart chunks.
    assert not torch.equal(epoch0.categorical, mem.train.categorical)
    first = batches[0]
    positions = {tuple(r): i for i, r in enumerate(mem.train.categorical.tolist())}
    spread = [positions.get(tuple(r), -1) for r in first.categorical.tolist()]
    assert max(spread) - min(spread) > 2000
    # Deterministic per (seed, epoch), different across epochs.
    again = EncodedData.concat(list(st.train_batches(0)))
    assert torch.equal(again.categorical, epoch0.categorical)
    epoch1 = EncodedData.concat(list(st.train_batches(1)))
    assert not torch.equal(epoch1.categorical, epoch0.categorical)
    # The run's seed (bench: one dataset, several seeds) changes the order, not the rows.
    reseeded = EncodedData.concat(list(st.train_batches(0, seed=4)))
    assert not torch.equal(reseeded.categorical, epoch0.categorical) and _rows(reseeded) == _rows(epoch0)


def test_prefetch_thread_gives_the_same_batches_and_stops_early(synth_dir):
    threaded = open_streaming(synth_dir / "spec.yaml", batch_size=512, shuffle_buffer=3000, prefetch=2, seed=1)
    inline = open_streaming(synth_dir / "spec.yaml", batch_size=512, shuffle_buffer=3000, prefetch=0, seed=1)
    a = EncodedData.concat(list(threaded.train_batches(2)))
    b = EncodedData.concat(list(inline.train_batches(2)))
    assert torch.equal(a.categorical, b.categorical) and torch.equal(a.labels, b.labels)
    it = threaded.train_batches(0)
    next(it)
    it.close()  # a consumer that stops early must not leave the reader blocked


def test_single_file_is_split_exactly_as_in_memory(tmp_path, synth_dir):
    table = pq.read_table(synth_dir / "train.parquet")
    pq.write_table(table, tmp_path / "all.parquet", row_group_size=1000)
    spec = yaml.safe_load((synth_dir / "spec.yaml").read_text())
    spec["files"] = {"path": "all.parquet", "split": {"method": "random", "fractions": [0.7, 0.2, 0.1], "seed": 4}}
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    st = open_streaming(tmp_path / "spec.yaml", batch_size=1000, shuffle_buffer=3000)
    mem = load_dataset(tmp_path / "spec.yaml")
    n = table.num_rows
    assert (len(st), len(st.val), len(st.test)) == (round(0.7 * n), round(0.2 * n), n - round(0.7 * n) - round(0.2 * n))
    train = EncodedData.concat(list(st.train_batches(0)))
    assert _rows(train) == _rows(mem.train) and torch.equal(st.val.categorical, mem.val.categorical)
    assert not set(_rows(train)) & set(_rows(st.val))


def test_time_split_streams_the_same_rows(tmp_path, synth_dir):
    spec = yaml.safe_load((synth_dir / "spec.yaml").read_text())
    spec["files"] = {"path": str(synth_dir / "train.parquet"),
                     "split": {"method": "time", "fractions": [0.8, 0.1, 0.1], "column": "num_0"}}
    st, mem = open_streaming(spec, batch_size=500), load_dataset(spec)
    assert _rows(EncodedData.concat(list(st.train_batches(0)))) == _rows(mem.train)
    assert _rows(st.test) == _rows(mem.test)
    # Oldest rows train: every train time precedes every test time.
    raw = pq.read_table(synth_dir / "train.parquet").column("num_0").to_numpy()
    assert np.sort(raw)[int(0.8 * len(raw)) - 1] <= np.sort(raw)[int(0.9 * len(raw))]


def test_ranks_get_disjoint_equal_shares(synth_dir):
    st = open_streaming(synth_dir / "spec.yaml", batch_size=128, shuffle_buffer=2000, read_rows=700)
    shares = [EncodedData.concat(list(st.train_batches(1, rank=r, world_size=3))) for r in range(3)]
    assert len({len(s) for s in shares}) == 1 and len(shares[0]) == len(st) // 3
    rows = [set(_rows(s)) for s in shares]
    assert not (rows[0] & rows[1]) and not (rows[0] & rows[2]) and not (rows[1] & rows[2])
    assert set().union(*rows) <= set(_rows(load_dataset(synth_dir / "spec.yaml").train))


def test_csv_train_file_streams(tmp_path, synth_dir):
    for split in ("train", "val", "test"):
        pacsv.write_csv(pq.read_table(synth_dir / f"{split}.parquet"), tmp_path / f"{split}.csv")
    spec = yaml.safe_load((synth_dir / "spec.yaml").read_text())
    spec["files"] = {"train": "train.csv", "val": "val.csv", "test": "test.csv"}
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    st = open_streaming(tmp_path / "spec.yaml", batch_size=500, shuffle_buffer=2000)
    mem = load_dataset(tmp_path / "spec.yaml")
    assert st.schema == mem.schema == load_dataset(synth_dir / "spec.yaml").schema
    assert _rows(EncodedData.concat(list(st.train_batches(0)))) == _rows(mem.train)


def test_row_limit_and_bad_options(synth_dir, tmp_path):
    st = open_streaming(synth_dir / "spec.yaml", row_limit=1000, batch_size=128)
    assert len(st) == 1000 and len(st.val) == 1000
    with pytest.raises(ConfigError, match="shuffle_buffer"):
        open_streaming(synth_dir / "spec.yaml", shuffle_buffer=0)
    with pytest.raises(ConfigError, match="read_rows"):
        open_streaming(synth_dir / "spec.yaml", read_rows=-1)


def test_training_through_the_streaming_path(synth_dir):
    from msmtrec.train import train

    base = TrainConfig(model="shared_bottom", data=str(synth_dir / "spec.yaml"), max_epochs=2, batch_size=512,
                       seed=5, shuffle_buffer=4000, lr=3e-3,
                       model_params={"embed_dim": 8, "bottom_dims": [32], "tower_dims": [16]})
    streamed = train(base.replace(streaming=True), write_run=False, progress=False)
    in_memory = train(base, write_run=False, progress=False)
    assert streamed.fit.samples_seen == in_memory.fit.samples_seen == 2 * 9600
    # Both learn the (strong) synthetic signal; they differ only in batch order.
    assert streamed.test["mean_auc"] > 0.6
    assert abs(streamed.test["mean_auc"] - in_memory.test["mean_auc"]) < 0.05


def test_open_dataset_follows_the_config(synth_dir):
    config = TrainConfig(data=str(synth_dir / "spec.yaml"), batch_size=64, streaming=True)
    st = open_dataset(config)
    assert st.train is None and st.report["streaming"] is True and st.num_train_rows == 9600
    assert np.all(st.val.categorical.numpy() >= 0)
    mem = open_dataset(config.replace(streaming=False))
    assert mem.train is not None and mem.num_train_rows == 9600
    # With a run's encoders (evaluate) the data is encoded in memory with them.
    assert open_dataset(config, encoders=st.encoders).train is not None
