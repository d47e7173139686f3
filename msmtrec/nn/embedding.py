"""One fused embedding table for every categorical field, list and sequence, plus the numeric
features: what every model reads its input through."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from msmtrec.data.encoded import DataSchema, EncodedData, ListFeature
from msmtrec.nn.list_pooling import TargetAttention, lookup, pooled_bag


class FeatureEmbedding(nn.Module):
    """Embeds ``F`` categorical fields with a single table, appends the numeric features and one
    pooled vector per list or sequence feature.

    The fields' vocabularies are laid end to end in one ``nn.Embedding`` (then each
    ``multi_categorical``'s own vocabulary) and a field's ids are shifted by its offset, so a lookup
    for all fields is one ``index_select`` instead of ``F`` (:func:`~msmtrec.nn.list_pooling.lookup`).
    Id 0 of every field (unknown/missing) is a learned vector like any other. A sequence's entries are ids of its fields (the item, then
    side features) and are looked up in *those fields'* rows: the history and the candidate share
    their embeddings. Pooling (``ListFeature.pooling``): ``mean`` or ``sum`` over the row's entries
    (:func:`~msmtrec.nn.list_pooling.pooled_bag`), or ``attention`` of the row's own values of the
    sequence's fields on its entries (:class:`~msmtrec.nn.list_pooling.TargetAttention`).

    Args:
        cardinalities: vocabulary size per field (including id 0).
        dim: embedding dimension ``d``.
        num_numeric: number of numeric features ``D`` appended to the flat output.
        lists: the schema's list features (``DataSchema.lists``).
        field_names: names of the fields, which the sequences' ``fields`` refer to.
        init_std: standard deviation of the normal initialisation.

    Shapes (``P = Σ_k channels_k · d`` over the list features):
        ``fields(categorical [B, F]) -> [B, F, d]``;
        ``forward(batch) -> [B, F·d + D + P]``: ``batch.categorical [B, F]``, ``batch.numeric
        [B, D]``, ``batch.lists [B, W]`` and ``batch.list_lengths [B, K]``;
        ``forward(categorical [B, F], numeric [B, D]) -> [B, F·d + D]`` without list features.
    """

    def __init__(self, cardinalities: Sequence[int], dim: int, num_numeric: int = 0,
                 lists: Sequence[ListFeature] = (), field_names: Sequence[str] = (), init_std: float = 0.01) -> None:
        super().__init__()
        if not cardinalities and num_numeric == 0 and not lists:
            raise ValueError("FeatureEmbedding needs at least one categorical, numeric or list feature")
        self.num_fields = len(cardinalities)
        self.dim = dim
        self.num_numeric = num_numeric
        self.lists = tuple(lists)
        sizes = [*cardinalities, *(f.cardinality for f in self.lists if not f.fields)]
        starts = torch.tensor([0, *sizes], dtype=torch.int64).cumsum(0)
        self.register_buffer("offsets", starts[:self.num_fields].clone(), persistent=False)
        self.table = nn.Embedding(max(1, int(starts[-1])), dim)
        nn.init.normal_(self.table.weight, std=init_std)
        # Per list feature: its first column in batch.lists, and per channel the table offset of
        # its ids (a sequence: its fields' offsets; a list: its own vocabulary's).
        names = list(field_names)
        self._columns, self._fields = [], []
        column, own = 0, self.num_fields
        for f in self.lists:
            if f.fields:
                index = [names.index(n) for n in f.fields]
            else:
                index = [own]
                own += 1
            self._columns.append(column)
            self._fields.append(index)
            column += f.width
        for k, index in enumerate(self._fields):
            self.register_buffer(f"_list_offsets_{k}", starts[index].clone(), persistent=False)
            if index[0] < self.num_fields:
                self.register_buffer(f"_list_fields_{k}", torch.tensor(index), persistent=False)
        self.attention = nn.ModuleDict({str(k): TargetAttention(f.channels * dim) for k, f in enumerate(self.lists)
                                        if f.pooling == "attention"})

    @classmethod
    def for_schema(cls, schema: DataSchema, dim: int) -> "FeatureEmbedding":
        """The embedding of every input a schema describes."""
        return cls(schema.cardinalities, dim, num_numeric=len(schema.numeric), lists=schema.lists,
                   field_names=[n for n, _ in schema.categorical])

    @property
    def output_dim(self) -> int:
        return self.num_fields * self.dim + self.num_numeric + sum(f.channels * self.dim for f in self.lists)

    def fields(self, categorical: torch.Tensor) -> torch.Tensor:
        return lookup(self.table.weight, categorical + self.offsets)

    def forward(self, batch: EncodedData | torch.Tensor, numeric: torch.Tensor | None = None, *,
                weight: torch.Tensor | None = None) -> torch.Tensor:
        """The rows' embedding; ``weight`` replaces the table's weights (a frozen copy, say).

        ``batch`` is a batch, or — for an embedding without list features, such as a table of a
        few prior fields — the ``categorical`` tensor itself (with ``numeric``)."""
        if isinstance(batch, torch.Tensor):
            if self.lists:
                raise TypeError("this embedding has list features: call it with the batch")
            categorical = batch
        else:
            categorical, numeric = batch.categorical, batch.numeric
        w = self.table.weight if weight is None else weight
        parts = []
        if self.num_fields:
            parts.append(lookup(w, categorical + self.offsets).flatten(1))
        if self.num_numeric:
            parts.append(numeric)
        for k, f in enumerate(self.lists):
            parts.append(self._pooled(k, f, batch, w))
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)

    def _pooled(self, k: int, f: ListFeature, batch: EncodedData, w: torch.Tensor) -> torch.Tensor:
        """``[B, channels·d]``: list feature ``k`` pooled over each row's entries."""
        b, c = batch.lists.shape[0], f.channels
        start = self._columns[k]
        ids = batch.lists[:, start:start + f.width].view(b, f.max_len, c) + getattr(self, f"_list_offsets_{k}")
        lengths = batch.list_lengths[:, k]
        if f.pooling == "attention":
            fields = getattr(self, f"_list_fields_{k}")
            query = lookup(w, batch.categorical[:, fields] + self.offsets[fields]).flatten(1)  # [B, C·d]
            keys = lookup(w, ids).flatten(2)  # [B, L, C·d]
            return self.attention[str(k)](query, keys, lengths)
        bags = ids.transpose(1, 2).reshape(b * c, f.max_len)  # one bag per (row, channel)
        return pooled_bag(bags, lengths.repeat_interleave(c), w, f.pooling).view(b, c * self.dim)
