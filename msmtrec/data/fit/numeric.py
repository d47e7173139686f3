"""Train statistics of one numeric column and the transform they define.

- ``standardize``: ``(x - mean) / std``; ``log1p``: signed ``log1p`` first, then standardised.
  Mean and variance are merged chunk by chunk (Chan et al.): fitting the same rows in different
  chunks agrees to floating-point rounding (relative 1e-12), not bit for bit.
- ``bucketize``: train quantile edges; the bucket id becomes a categorical field. The edges are
  exact while train has at most ``quantile_sample`` values of the column; beyond that they come
  from a uniform sample of about that many values, whose quantile ranks are off by about
  ``1/sqrt(quantile_sample)`` (0.001 at the default 1M; tested).

Missing values, and values a float32 input cannot hold (±inf, or beyond ±3.4e38 after the
transform, such as a ``DBL_MAX`` sentinel), are ignored when fitting and encode as the train mean
(dense) or bucket 0 (bucketize).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from msmtrec.errors import DataError

#: Values of a ``bucketize`` column kept exactly before sampling starts.
QUANTILE_SAMPLE = 1_000_000
#: The largest magnitude a model's float32 input holds.
FLOAT32_MAX = float(np.finfo(np.float32).max)


@dataclass
class NumericStats:
    """Fitted transform of one numeric column.

    Attributes:
        column: source column.
        transform: ``standardize``, ``log1p`` or ``bucketize``.
        mean, std: of the (log1p-transformed) train values; ``std`` is 1 for a constant column so
            that it encodes to 0 rather than dividing by zero.
        edges: inner quantile edges (``bucketize``): value ``x`` gets id ``1 + #{edges <= x}``,
            missing gets 0.
    """

    column: str
    transform: str
    mean: float = 0.0
    std: float = 1.0
    edges: list[float] | None = None

    @property
    def cardinality(self) -> int:
        return len(self.edges or []) + 2

    @staticmethod
    def prepare(x: np.ndarray, transform: str) -> np.ndarray:
        """``log1p``: signed ``log1p`` (heavy tails compressed, negatives defined); then NaN for what
        a float32 input cannot hold (±inf, or a magnitude beyond :data:`FLOAT32_MAX`)."""
        if transform == "log1p":
            x = np.sign(x) * np.log1p(np.abs(x))
        return np.where(np.abs(x) <= FLOAT32_MAX, x, np.nan)

    def encode_dense(self, x: np.ndarray) -> np.ndarray:
        """Standardised float32 values; missing → 0 (the train mean)."""
        z = (self.prepare(x, self.transform) - self.mean) / self.std
        return np.where(np.abs(z) <= FLOAT32_MAX, z, 0.0).astype(np.float32)

    def encode_buckets(self, x: np.ndarray) -> np.ndarray:
        """Bucket ids int64: ``1..len(edges)+1``, missing → 0."""
        x = self.prepare(x, self.transform)
        ids = np.searchsorted(np.asarray(self.edges, dtype=np.float64), x, side="right") + 1
        return np.where(np.isfinite(x), ids, 0).astype(np.int64)

    def to_dict(self) -> dict[str, Any]:
        if self.transform == "bucketize":
            return {"transform": self.transform, "edges": list(self.edges or [])}
        return {"transform": self.transform, "mean": self.mean, "std": self.std}


class NumericFitter:
    """Fits :class:`NumericStats` over train chunks of float64 values (NaN = missing).

    Args:
        column / transform / buckets: from the spec's numeric entry.
        where: message prefix (the spec).
        quantile_sample: ``bucketize`` only — values kept before uniform thinning starts.
        seed: seeds the thinning.
    """

    def __init__(self, column: str, transform: str, buckets: int | None, where: str, *,
                 quantile_sample: int = QUANTILE_SAMPLE, seed: int = 0) -> None:
        self.column, self.transform, self.buckets, self.where = column, transform, buckets, where
        self.n, self.mean, self.m2 = 0, 0.0, 0.0
        self.infinite = 0  # values read as missing that were not (±inf, beyond float32's range)
        self._sample: list[np.ndarray] = []
        self._size, self._keep = 0, 1.0
        self._cap, self._rng = quantile_sample, np.random.default_rng(seed)

    def update(self, x: np.ndarray) -> None:
        prepared = NumericStats.prepare(x, self.transform)
        self.infinite += int((np.isnan(prepared) & ~np.isnan(x)).sum())
        x = prepared[~np.isnan(prepared)]
        if self.transform == "bucketize":
            if self._keep < 1.0:
                x = x[self._rng.random(x.size) < self._keep]
            self._sample.append(x)
            self._size += x.size
            while self._size > self._cap:  # keep a random half, halve the keep rate of what follows
                kept = np.concatenate(self._sample)
                kept = kept[self._rng.random(kept.size) < 0.5]
                self._sample, self._size, self._keep = [kept], kept.size, self._keep / 2
            return
        if x.size == 0:
            return
        n_b, mean_b = x.size, float(x.mean())
        m2_b = float(np.square(x - mean_b).sum())
        if self.n == 0:  # one chunk: exactly numpy's mean and variance
            self.n, self.mean, self.m2 = n_b, mean_b, m2_b
            return
        n = self.n + n_b
        delta = mean_b - self.mean
        self.mean += delta * n_b / n
        self.m2 += m2_b + delta * delta * self.n * n_b / n
        self.n = n

    def finish(self) -> NumericStats:
        if self.transform == "bucketize":
            x = np.concatenate(self._sample) if self._sample else np.zeros(0)
            if x.size == 0:
                raise DataError(f"{self.where}: numeric column '{self.column}' has no values in train")
            assert self.buckets is not None
            edges = np.unique(np.quantile(x, np.arange(1, self.buckets) / self.buckets))
            return NumericStats(self.column, "bucketize", edges=[float(e) for e in edges])
        if self.n == 0:
            raise DataError(f"{self.where}: numeric column '{self.column}' has no values in train")
        std = math.sqrt(self.m2 / self.n)
        return NumericStats(self.column, self.transform, mean=self.mean, std=std if std > 0 else 1.0)
