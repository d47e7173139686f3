"""A small dataset with every kind of input (categorical, numeric, a multi_categorical list, a
given sequence, a history built from the log, a prior field, click → conversion roles) and one
trained run per registered model, shared by the export tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from msmtrec.config import TrainConfig
from msmtrec.models import MODELS, model_hyperparameters
from msmtrec.yaml_io import dump_yaml

SPEC = {
    "name": "shop",
    "files": {"path": "shop.parquet", "split": {"seed": 1}},
    "scenario": {"column": "page"},
    "tasks": [{"name": "click", "column": "click", "role": "click"},
              {"name": "buy", "column": "buy", "role": "conversion"}],
    "categorical": ["user", "item", "genre"],
    "numeric": ["price"],
    "user": "user",
    "prior_features": ["user"],
    "multi_categorical": {"tags": {"max_len": 3, "pooling": "mean"}},
    "sequences": {"recent": {"column": "recent", "item": "item", "max_len": 4, "pooling": "sum"},
                  "history": {"user": "user", "item": "item", "time": "time", "side": ["genre"], "max_len": 5}},
}


def shop_table(n: int = 900, seed: int = 0) -> pa.Table:
    """Rows of :data:`SPEC`'s columns with a learnable click and a conversion only after a click."""
    rng = np.random.default_rng(seed)
    user, item = rng.integers(1, 40, n), rng.integers(1, 60, n)
    genre = np.array(["rock", "jazz", "pop", "folk"])[item % 4]
    page = np.array(["home", "search", "cart"])[rng.integers(0, 3, n)]
    price = rng.gamma(2.0, 10.0, n)
    tags = [list(rng.choice(["new", "sale", "gift", "eco", "hot"], size=int(rng.integers(0, 4)), replace=False))
            for _ in range(n)]
    recent = [[int(v) for v in rng.integers(1, 60, int(rng.integers(0, 6)))] for _ in range(n)]
    score = (item % 3 == 0) * 1.5 + (page == "search") - price / 40 + rng.normal(0, 1, n)
    click = (score > 0).astype(np.int64)
    buy = click * (rng.random(n) < 0.4)
    return pa.table({"page": page, "user": user, "item": item, "genre": genre, "price": price,
                     "tags": pa.array(tags, pa.list_(pa.string())), "recent": pa.array(recent, pa.list_(pa.int64())),
                     "time": np.arange(n), "click": click, "buy": buy})


def small_params(name: str) -> dict:
    """A model's options with every hidden width 8 and 4-dim embeddings: any registered model."""
    hp = model_hyperparameters(MODELS[name])
    params = {k: [8] * len(v) for k, v in hp.items() if k.endswith("_dims") and v}
    if "embed_dim" in hp:
        params["embed_dim"] = 4
    return params


@pytest.fixture(scope="session")
def shop(tmp_path_factory) -> Path:
    """The dataset's folder: ``shop.parquet`` and ``spec.yaml``."""
    folder = tmp_path_factory.mktemp("shop")
    pq.write_table(shop_table(), folder / "shop.parquet")
    (folder / "spec.yaml").write_text(dump_yaml(SPEC))
    return folder


class Runs:
    """Trains a run per (model, options) the first time a test asks for it."""

    def __init__(self, data: Path, root: Path) -> None:
        self.data, self.root, self.runs = data, root, {}

    def __call__(self, name: str, **options) -> Path:
        key = (name, repr(sorted(options.items())))
        if key not in self.runs:
            from msmtrec.train import train

            config = TrainConfig(model=name, data=str(self.data / "spec.yaml"), max_epochs=1, batch_size=128, seed=3,
                                 model_params={**small_params(name), **options}, runs_root=str(self.root))
            self.runs[key] = train(config).run_dir
        return self.runs[key]


@pytest.fixture(scope="session")
def runs(shop, tmp_path_factory) -> Runs:
    return Runs(shop, tmp_path_factory.mktemp("runs"))
