"""The drifting interests behind the synthetic data's history signal
(:class:`~msmtrec.data.synthetic.SyntheticConfig` with ``history_len > 0``).

Items (ids ``1..V`` of field ``cat_1``) fall into ``G`` interest groups, item ``k`` in group
``(k - 1) mod G``. At row ``i`` (rows are in time order, row ``i`` at time ``i``) user ``u`` (field
``cat_0``) has the interest ``g(u, i) = hash(seed, u, ⌊(i + φ_u) / P⌋) mod G``, which changes every
``P`` rows (``interest_period``) at a user-specific phase ``φ_u``. With probability
``interest_share`` a row's item is drawn uniformly from the user's current group, otherwise as any
other field. A row *matches* when its item's group is the user's current interest; the labels'
logits gain ``history_signal · match``.

Neither the user (whose interests change) nor the item alone tells a match, but the user's recent
items do: they mostly come from the current interest. Everything is a function of ``(seed, user,
row)``, so the rows of a block never depend on other blocks.
"""

from __future__ import annotations

import numpy as np

from msmtrec.data.io import splitmix64

__all__ = ["interest", "group_item", "item_group"]

_SALT = np.uint64(0x5EED1E5)


def _hash(seed: int, *keys: np.ndarray) -> np.ndarray:
    x = np.full(np.broadcast(*keys).shape, np.uint64(seed) ^ _SALT, dtype=np.uint64)
    for k in keys:
        x = splitmix64(x ^ np.asarray(k).astype(np.uint64))
    return x


def interest(seed: int, users: np.ndarray, rows: np.ndarray, period: int, groups: int) -> np.ndarray:
    """``g(u, i)`` for each ``(users[j], rows[j])``: the group the user is interested in at that row."""
    phase = (_hash(seed, users) % np.uint64(period)).astype(np.int64)
    epoch = (rows + phase) // period
    return (_hash(seed + 1, users, epoch) % np.uint64(groups)).astype(np.int64)


def item_group(items: np.ndarray, groups: int) -> np.ndarray:
    """The group of each item id (``1..V``)."""
    return (items - 1) % groups


def group_item(u: np.ndarray, group: np.ndarray, vocab: int, groups: int) -> np.ndarray:
    """An item of ``group`` drawn by the uniform numbers ``u`` (one per row); ``groups <= vocab``."""
    size = (vocab - 1 - group) // groups + 1  # items k with (k - 1) mod G == group
    return group + 1 + groups * np.minimum((u * size).astype(np.int64), size - 1)
