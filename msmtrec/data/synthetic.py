"""Synthetic multi-scenario multi-task data with a known structure, at any scale.

Why: tests and benchmarks need data whose answer is known (does a model find scenario-specific
signal where there is some, and none where there is none?) and whose size is only limited by the
disk (10M+ rows written in row groups, never held in memory at once).

The generating process
----------------------
A row has ``F`` categorical fields, ``D`` numeric features, a scenario ``s`` and ``T`` binary
labels. Everything random is drawn from NumPy generators seeded by ``(seed, purpose, block)``, so
the output is a pure function of the :class:`SyntheticConfig`: the same rows come out whether they
are generated in memory, written in chunks of any size, or generated as a longer dataset (row
``i`` never depends on how many rows follow it).

1. **Scenario**: ``s ~ Categorical(scenario_weights)`` (equal by default).
2. **Features** (independent of the scenario, so that ``P(y | x, s)`` alone carries the scenario
   effect): field ``f`` draws an id in ``1..vocab_f`` from a Zipf-like popularity law
   ``P(k) ∝ k^-zipf`` (0 stays free for "unknown"); numeric features are ``N(0, 1)``.
3. **Latent representation** ``h(x) ∈ R^K`` (``K = latent_dim``)::

       h = Σ_f E_f[id_f] + W_num · x_num + P_0[id_0] ⊙ P_1[id_1]

   with random tables ``E_f, P_f ~ N(0, 1/m)`` (``m`` = number of summed terms, so each component
   of ``h`` has unit variance). The product term is a user × item style interaction that a model
   without feature crossing cannot represent exactly.
4. **Task scores**. With ``α = scenario_signal`` and ``ρ = task_correlation``::

       u_t     = unit(√ρ · c     + √(1-ρ) · r_t)          shared direction of task t
       v_{t,s} = unit(√ρ · c_s   + √(1-ρ) · r_{t,s})      scenario-specific direction
       z_t(x, s) = √(1-α) · u_t·h  +  √α · v_{t,s}·h
       logit_t(x, s) = b_t + α · δ_{t,s} + signal_scale · z_t(x, s)

   ``c, c_s, r_t, r_{t,s}`` are random unit vectors and ``δ_{t,s} ~ N(0, scenario_bias_scale²)``
   shifts the base rate of task ``t`` in scenario ``s``. At ``α = 0`` the labels do not depend on
   the scenario at all; at ``α = 1`` every scenario uses its own direction and base rate. ``ρ``
   controls how similar the tasks' directions (hence their labels) are.
5. **Labels**. ``independent``: ``y_t ~ Bernoulli(σ(logit_t))``. ``nested`` (the entire-space
   chain impression → click → conversion): task 0 is the click, ``y_0 ~ Bernoulli(σ(logit_0))``;
   every later task is a post-click event, ``y_t = y_0 · Bernoulli(σ(logit_t))``, so a positive
   later task implies a click and its label is defined on all impressions (as Ali-CCP's
   ``purchase``). Roles: task 0 ``click``, the last task ``conversion``, tasks in between
   ``action``.
6. **Base rates**. The biases ``b_t`` are solved (bisection on a fixed pilot sample) so that the
   pooled rate of ``y_t`` — the click rate for task 0 and the rate *given a click* for later nested
   tasks — matches ``base_rates``.

7. **History** (``history_len > 0``): rows are in time order (a ``time`` column, row ``i`` at time
   ``i``), ``cat_0`` is the user, ``cat_1`` the item and ``cat_2`` the item's group (observed, as
   a genre would be), and items follow each user's drifting interests
   (:mod:`msmtrec.data.synthetic_interests`); every logit gains ``history_signal · match`` (the
   row's item is in the user's current interest group), which only the user's recent items reveal.
   The written spec builds a ``history`` of ``history_len`` items (with their group as a side
   feature) from the log. At ``history_signal = 0`` the labels do not depend on the history.

The true probabilities are available (:meth:`SyntheticGenerator.probabilities`), which is what
tests that need a known answer compare against.

Entry points: :func:`make_synthetic` / :func:`make_synthetic_splits` (in memory, as
:class:`EncodedData`), :func:`write_synthetic` (Parquet train/val/test + a ``spec.yaml`` that
``msmtrec train --data DIR/spec.yaml`` reads; ``msmtrec synth`` on the command line).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch

from msmtrec.data.encoded import DataSchema, EncodedData
from msmtrec.data.io import DEFAULT_FRACTIONS, SPLITS, split_sizes
from msmtrec.data.synthetic_config import SyntheticConfig
from msmtrec.data.synthetic_interests import group_item, interest, item_group
from msmtrec.errors import ConfigError
from msmtrec.files import atomic_write, write_json

__all__ = [
    "BLOCK_ROWS",
    "SyntheticConfig",
    "SyntheticGenerator",
    "make_synthetic",
    "make_synthetic_splits",
    "write_synthetic",
]

#: Rows are generated in blocks of this many rows, each from its own seeded generator. It is part
#: of the definition of the data (changing it changes the rows), not a tuning knob.
BLOCK_ROWS = 65536

_WORLD, _PILOT, _ROWS = 0, 1, 2  # purposes mixed into the seed
_PILOT_ROWS = 32768


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _rng(seed: int, purpose: int, index: int = 0) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, purpose, index])))


class SyntheticGenerator:
    """The generating process of a :class:`SyntheticConfig` (see the module docstring).

    Holds the random "world" (embedding tables, task directions, base-rate biases); rows are
    produced block by block with :meth:`blocks`.
    """

    def __init__(self, config: SyntheticConfig) -> None:
        self.config = c = config
        rng = _rng(c.seed, _WORLD)
        k, f, d, s, t = c.latent_dim, c.num_fields, c.num_numeric, c.scenarios, c.tasks
        self.vocab = c.vocabularies
        interaction = f >= 2
        m = f + (1 if d else 0) + (1 if interaction else 0)
        scale = 1.0 / math.sqrt(m)
        # Id popularity: inverse CDF tables, one per field (ids 1..V; rank 1 most popular).
        cumulative = [np.cumsum(np.arange(1, v + 1, dtype=np.float64) ** -c.zipf) for v in self.vocab]
        self._cdf = [cdf / cdf[-1] for cdf in cumulative]
        # Row 0 of every table is the never-generated id 0.
        self._emb = [rng.standard_normal((v + 1, k)).astype(np.float32) * scale for v in self.vocab]
        self._cross = ([rng.standard_normal((self.vocab[i] + 1, k)).astype(np.float32) for i in (0, 1)]
                       if interaction else None)
        self._w_num = (rng.standard_normal((d, k)).astype(np.float32) * (scale / math.sqrt(d))) if d else None
        rho = c.task_correlation
        common = _unit(rng.standard_normal(k))
        common_s = _unit(rng.standard_normal((s, k)))
        own = _unit(rng.standard_normal((t, k)))
        own_s = _unit(rng.standard_normal((t, s, k)))
        self.task_dirs = _unit(math.sqrt(rho) * common + math.sqrt(1 - rho) * own)  # [T, K]
        self.scenario_dirs = _unit(math.sqrt(rho) * common_s[None] + math.sqrt(1 - rho) * own_s)  # [T, S, K]
        self.scenario_bias = rng.standard_normal((t, s)) * c.scenario_bias_scale  # [T, S]
        w = np.ones(s) if c.scenario_weights is None else np.asarray(c.scenario_weights, dtype=np.float64)
        self.scenario_p = w / w.sum()
        self.bias = np.zeros(t)
        self._calibrate()
        self._last_block: tuple[int, dict[str, np.ndarray]] | None = None

    # -- the process ------------------------------------------------------------------------------
    def _features(self, rng: np.random.Generator, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        c, n = self.config, len(rows)
        scenario = rng.choice(c.scenarios, size=n, p=self.scenario_p).astype(np.int64)
        cat = np.empty((n, c.num_fields), dtype=np.int64)
        for i, cdf in enumerate(self._cdf):
            cat[:, i] = np.minimum(np.searchsorted(cdf, rng.random(n), side="right"), len(cdf) - 1) + 1
        if c.history_len:  # step 7: some items come from the user's current interest
            own = np.flatnonzero(rng.random(n) < c.interest_share)
            g = interest(c.seed, cat[own, 0], rows[own], c.period, c.interest_groups)
            cat[own, 1] = group_item(rng.random(len(own)), g, self.vocab[1], c.interest_groups)
            cat[:, 2] = item_group(cat[:, 1], c.interest_groups) + 1  # the item's group is observed
        num = rng.standard_normal((n, c.num_numeric), dtype=np.float32)
        return cat, num, scenario

    def _match(self, cat: np.ndarray, rows: np.ndarray | None) -> np.ndarray:
        """Whether each row's item is in its user's current interest group (step 7)."""
        c = self.config
        if rows is None:
            raise ValueError("with a history signal the probabilities depend on the rows' positions: pass rows")
        return item_group(cat[:, 1], c.interest_groups) == interest(c.seed, cat[:, 0], rows, c.period,
                                                                    c.interest_groups)

    def _latent(self, cat: np.ndarray, num: np.ndarray) -> np.ndarray:
        h = np.zeros((cat.shape[0], self.config.latent_dim), dtype=np.float32)
        for i, table in enumerate(self._emb):
            h += table[cat[:, i]]
        if self._w_num is not None:
            h += num @ self._w_num
        if self._cross is not None:
            h += self._cross[0][cat[:, 0]] * self._cross[1][cat[:, 1]] / math.sqrt(self.config.latent_dim)
        return h

    def logits(self, cat: np.ndarray, num: np.ndarray, scenario: np.ndarray, rows: np.ndarray | None = None
               ) -> np.ndarray:
        """``[N, T]`` logits of every task for each row's scenario (conditional on a click for
        nested tasks after the first); ``rows`` (the rows' positions) when there is a history
        signal."""
        c = self.config
        h = self._latent(cat, num).astype(np.float64)
        alpha = c.scenario_signal
        shared = h @ self.task_dirs.T  # [N, T]
        score = math.sqrt(1 - alpha) * shared
        if alpha > 0:
            specific = np.einsum("nk,tnk->nt", h, self.scenario_dirs[:, scenario])
            score = score + math.sqrt(alpha) * specific
            offset = alpha * self.scenario_bias[:, scenario].T
        else:
            offset = 0.0
        if c.history_signal > 0:
            offset = offset + c.history_signal * self._match(cat, rows)[:, None]
        return self.bias[None] + offset + c.signal_scale * score

    def probabilities(self, cat: np.ndarray, num: np.ndarray, scenario: np.ndarray, *,
                      rows: np.ndarray | None = None, conditional: bool = False) -> np.ndarray:
        """True ``P(y_t = 1 | x, s)``, ``[N, T]``. For nested data the later tasks are marginal
        over the click (``P(click) · P(task | click)``) unless ``conditional``."""
        p = 1.0 / (1.0 + np.exp(-self.logits(cat, num, scenario, rows)))
        if self.config.structure == "nested" and not conditional:
            p[:, 1:] *= p[:, :1]
        return p

    def _calibrate(self) -> None:
        """Solve the biases so the pooled rates match ``rates`` on a fixed pilot sample."""
        rng = _rng(self.config.seed, _PILOT)
        rows = np.arange(_PILOT_ROWS, dtype=np.int64)
        cat, num, scenario = self._features(rng, rows)
        self.bias = np.zeros(self.config.tasks)
        base = self.logits(cat, num, scenario, rows)  # bias 0
        weights = np.ones(_PILOT_ROWS)
        for t, target in enumerate(self.config.rates):
            # Later nested tasks are calibrated given a click: weight each row by P(click).
            if t > 0 and self.config.structure == "nested":
                weights = 1.0 / (1.0 + np.exp(-(base[:, 0] + self.bias[0])))
            lo, hi = -30.0, 30.0
            for _ in range(60):
                mid = (lo + hi) / 2
                rate = np.average(1.0 / (1.0 + np.exp(-(base[:, t] + mid))), weights=weights)
                if rate < target:
                    lo = mid
                else:
                    hi = mid
            self.bias[t] = (lo + hi) / 2

    # -- rows -------------------------------------------------------------------------------------
    def block(self, index: int) -> dict[str, np.ndarray]:
        """Rows ``[index·BLOCK_ROWS, (index+1)·BLOCK_ROWS)`` as arrays: ``categorical`` [n,F] int64,
        ``numeric`` [n,D] float32, ``scenario`` [n] int64, ``labels`` [n,T] bool (and ``time`` [n]
        int64, the row's position, with a history)."""
        if self._last_block is not None and self._last_block[0] == index:
            return self._last_block[1]
        rng = _rng(self.config.seed, _ROWS, index)
        rows = np.arange(index * BLOCK_ROWS, (index + 1) * BLOCK_ROWS, dtype=np.int64)
        cat, num, scenario = self._features(rng, rows)
        p = self.probabilities(cat, num, scenario, rows=rows, conditional=True)
        labels = rng.random(p.shape) < p
        if self.config.structure == "nested":  # a later task implies the click (step 5)
            labels[:, 1:] &= labels[:, :1]
        out = {"categorical": cat, "numeric": num, "scenario": scenario, "labels": labels}
        if self.config.history_len:
            out["time"] = rows
        self._last_block = (index, out)  # consecutive splits usually share a boundary block
        return out

    def blocks(self, start: int = 0, stop: int | None = None) -> Iterator[dict[str, np.ndarray]]:
        """Rows ``[start, stop)`` (default: all) as consecutive pieces of at most BLOCK_ROWS rows."""
        stop = self.config.rows if stop is None else min(stop, self.config.rows)
        row = start
        while row < stop:
            b = row // BLOCK_ROWS
            lo = row - b * BLOCK_ROWS
            hi = min(BLOCK_ROWS, stop - b * BLOCK_ROWS)
            yield {k: v[lo:hi] for k, v in self.block(b).items()}
            row = b * BLOCK_ROWS + hi

    def generate(self, start: int = 0, stop: int | None = None) -> EncodedData:
        """Rows ``[start, stop)`` as one :class:`EncodedData` (ids as in the schema: 1..vocab).

        Raises:
            ConfigError: the config has a history (it is built from the log by the data pipeline:
                write the files with :func:`write_synthetic` and load their spec).
        """
        if self.config.history_len:
            raise ConfigError("synthetic: a history is built from the log by the data pipeline; write the data with "
                              "write_synthetic (msmtrec synth) and load its spec.yaml")
        parts = list(self.blocks(start, stop))
        if not parts:
            raise ConfigError(f"synthetic: no rows in [{start}, {stop})")
        cat = np.concatenate([p["categorical"] for p in parts])
        labels = np.concatenate([p["labels"] for p in parts])
        return EncodedData(
            categorical=torch.from_numpy(cat),
            numeric=torch.from_numpy(np.concatenate([p["numeric"] for p in parts])),
            scenario=torch.from_numpy(np.concatenate([p["scenario"] for p in parts])),
            labels=torch.from_numpy(labels.astype(np.float32)),
            label_mask=torch.ones(labels.shape, dtype=torch.bool),
            user=torch.from_numpy(cat[:, 0].copy()) if self.config.with_user else None,
        )


def _config(rows: int, options: dict[str, Any]) -> SyntheticConfig:
    config = options.pop("config", None)
    if config is not None:
        if options:
            raise ConfigError(f"synthetic: pass either config or options, not both ({', '.join(sorted(options))})")
        return config.replace(rows=rows)
    return SyntheticConfig.from_dict({"rows": rows, **options})


def make_synthetic(rows: int, **options: Any) -> tuple[EncodedData, DataSchema]:
    """``rows`` rows of synthetic data in memory, with their schema.

    ``options`` are the fields of :class:`SyntheticConfig` (``num_fields=7, vocab=1000,
    scenarios=3, tasks=2, scenario_signal=0.5, ...``), or ``config=SyntheticConfig(...)``.
    """
    cfg = _config(rows, dict(options))
    return SyntheticGenerator(cfg).generate(), cfg.schema()


def _split_sizes(rows: int, fractions: Sequence[float]) -> list[int]:
    if len(fractions) != 3 or any(f < 0 for f in fractions) or not math.isclose(sum(fractions), 1.0, abs_tol=1e-6):
        raise ConfigError(f"synthetic: fractions must be three non-negative numbers summing to 1, got {list(fractions)}")
    sizes = split_sizes(rows, fractions)
    if min(sizes) <= 0:
        raise ConfigError(f"synthetic: {rows} rows split {list(fractions)} leaves an empty split; use more rows")
    return sizes


def make_synthetic_splits(rows: int, fractions: Sequence[float] = DEFAULT_FRACTIONS,
                          **options: Any) -> tuple[EncodedData, EncodedData, EncodedData, DataSchema]:
    """Like :func:`make_synthetic`, split into train/val/test (consecutive rows; rows are i.i.d.,
    so this is a random split). The same rows as :func:`write_synthetic` writes."""
    cfg = _config(rows, dict(options))
    n_train, n_val, _ = _split_sizes(rows, fractions)
    gen = SyntheticGenerator(cfg)
    return (gen.generate(0, n_train), gen.generate(n_train, n_train + n_val), gen.generate(n_train + n_val),
            cfg.schema())



def write_synthetic(out_dir: str | Path, config: SyntheticConfig, *, fractions: Sequence[float] = DEFAULT_FRACTIONS,
                    chunk_rows: int = 1_000_000, overwrite: bool = False, progress: Any = None) -> Path:
    """Write ``config`` as Parquet (``train/val/test.parquet``, row groups of ``chunk_rows``) plus
    ``spec.yaml`` and ``synthetic.json`` (the config) into ``out_dir``; return the spec's path.

    Memory stays bounded by one chunk whatever ``config.rows`` is. Raw ids are written as they
    are generated (``1..vocab``, int64), the scenario as its name (``s0`` ...), labels as 0/1 int8.
    ``progress`` (optional) is called with the number of rows written after each row group.

    Raises:
        ConfigError: ``out_dir`` already holds a dataset (unless ``overwrite``), or a bad option.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq
    from msmtrec.yaml_io import dump_yaml

    if chunk_rows < 1:
        raise ConfigError(f"synthetic: chunk_rows must be >= 1, got {chunk_rows}")
    out = Path(out_dir)
    sizes = _split_sizes(config.rows, fractions)
    targets = [out / f"{s}.parquet" for s in SPLITS] + [out / "spec.yaml", out / "synthetic.json"]
    existing = [p.name for p in targets if p.exists()]
    if existing and not overwrite:
        raise ConfigError(f"synthetic: {out} already holds {', '.join(existing)}; choose another folder or pass "
                          f"--overwrite")
    out.mkdir(parents=True, exist_ok=True)
    gen = SyntheticGenerator(config)
    scen_names = np.array(config.scenario_names, dtype=object)
    tasks = config.names_of_tasks
    arrow_schema = pa.schema(
        [(n, pa.int64()) for n in config.categorical_names]
        + [(n, pa.float32()) for n in config.numeric_names]
        + [("scenario", pa.string())]
        + [(t, pa.int8()) for t in tasks]
        + ([("time", pa.int64())] if config.history_len else []))

    def to_table(part: dict[str, np.ndarray]) -> pa.Table:
        cat, num, lab = part["categorical"], part["numeric"], part["labels"].astype(np.int8)
        cols = ([pa.array(cat[:, i]) for i in range(cat.shape[1])] + [pa.array(num[:, j]) for j in range(num.shape[1])]
                + [pa.array(scen_names[part["scenario"]], type=pa.string())]
                + [pa.array(lab[:, t]) for t in range(lab.shape[1])]
                + ([pa.array(part["time"])] if "time" in part else []))
        return pa.Table.from_arrays(cols, schema=arrow_schema)

    written, start = 0, 0
    for split, size in zip(SPLITS, sizes):
        with pq.ParquetWriter(out / f"{split}.parquet", arrow_schema, compression="zstd") as writer:
            for lo in range(start, start + size, chunk_rows):
                hi = min(lo + chunk_rows, start + size)
                parts = list(gen.blocks(lo, hi))  # a block straddling two row groups is generated once
                writer.write_table(to_table({k: np.concatenate([p[k] for p in parts]) for k in parts[0]}),
                                   row_group_size=hi - lo)
                written += hi - lo
                if progress is not None:
                    progress(written)
        start += size

    atomic_write(out / "spec.yaml", dump_yaml(spec_dict(config)))
    write_json(out / "synthetic.json", {"config": config.to_dict(), "fractions": list(fractions),
                                        "rows": dict(zip(SPLITS, sizes))})
    return out / "spec.yaml"


def spec_dict(config: SyntheticConfig) -> dict[str, Any]:
    """The dataset spec (as plain data) of a dataset written by :func:`write_synthetic`."""
    roles = config.task_roles
    tasks = [{"name": t, "column": t, **({"role": roles[t]} if t in roles else {})} for t in config.names_of_tasks]
    spec: dict[str, Any] = {
        "name": f"synthetic-{config.rows}",
        "files": {"train": "train.parquet", "val": "val.parquet", "test": "test.parquet"},
        "scenario": {"column": "scenario", "mapping": {s: s for s in config.scenario_names}},
        "tasks": tasks,
        "categorical": list(config.categorical_names),
        "numeric": list(config.numeric_names),
    }
    if config.with_user:
        spec["user"] = "cat_0"
        spec["prior_features"] = ["cat_0"]
    if config.history_len:
        spec["sequences"] = {"history": {"user": "cat_0", "item": "cat_1", "time": "time", "side": ["cat_2"],
                                         "max_len": config.history_len, "pooling": "attention"}}
    return spec
