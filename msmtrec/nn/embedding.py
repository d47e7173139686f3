"""One fused embedding table for every categorical field, plus the numeric features."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn


class FeatureEmbedding(nn.Module):
    """Embeds ``F`` categorical fields with a single table and appends the numeric features.

    The fields' vocabularies are laid end to end in one ``nn.Embedding`` and a field's ids are
    shifted by its offset, so a lookup for all fields is one ``index_select`` instead of ``F``.
    Id 0 of every field (unknown/missing) is a learned vector like any other.

    Args:
        cardinalities: vocabulary size per field (including id 0).
        dim: embedding dimension ``d``.
        num_numeric: number of numeric features ``D`` appended to the flat output.
        init_std: standard deviation of the normal initialisation.

    Shapes:
        ``fields(categorical [B, F]) -> [B, F, d]``;
        ``forward(categorical [B, F], numeric [B, D]) -> [B, F·d + D]``.
    """

    def __init__(self, cardinalities: Sequence[int], dim: int, num_numeric: int = 0, init_std: float = 0.01) -> None:
        super().__init__()
        if not cardinalities and num_numeric == 0:
            raise ValueError("FeatureEmbedding needs at least one categorical or numeric feature")
        self.num_fields = len(cardinalities)
        self.dim = dim
        self.num_numeric = num_numeric
        offsets = torch.tensor([0, *list(cardinalities)[:-1]], dtype=torch.int64).cumsum(0) if cardinalities else torch.zeros(0, dtype=torch.int64)
        self.register_buffer("offsets", offsets, persistent=False)
        self.table = nn.Embedding(max(1, int(sum(cardinalities))), dim)
        nn.init.normal_(self.table.weight, std=init_std)

    @property
    def output_dim(self) -> int:
        return self.num_fields * self.dim + self.num_numeric

    def fields(self, categorical: torch.Tensor) -> torch.Tensor:
        return self.table(categorical + self.offsets)

    def forward(self, categorical: torch.Tensor, numeric: torch.Tensor | None = None) -> torch.Tensor:
        parts = []
        if self.num_fields:
            parts.append(self.fields(categorical).flatten(1))
        if self.num_numeric:
            parts.append(numeric)
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)
