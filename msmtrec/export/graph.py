"""The graph an export holds: a model as a function of the encoded tensors, returning each row's
probabilities for its own scenario.

Inputs (only those the schema has; ``B`` is dynamic): ``categorical`` int64 ``[B, F]``, ``numeric``
float32 ``[B, D]``, ``scenario`` int64 ``[B]``, ``lists`` int64 ``[B, W]`` and ``list_lengths``
int64 ``[B, K]`` (the columns of :class:`~msmtrec.data.EncodedData`). Output: ``probabilities``
float32 ``[B, T]``, in the schema's task order — what ``model.probabilities(model(batch))`` gives.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from msmtrec.data.encoded import DataSchema, EncodedData
from msmtrec.models.base import MSMTModel

OUTPUT = "probabilities"


@dataclass(frozen=True)
class GraphInput:
    """One input of the graph: its name (an :class:`EncodedData` field), dtype and width (None for
    the one-dimensional ``scenario``)."""

    name: str
    dtype: str
    width: int | None

    @property
    def shape(self) -> list[str | int]:
        return ["batch"] if self.width is None else ["batch", self.width]

    def to_dict(self) -> dict:
        return {"name": self.name, "dtype": self.dtype, "shape": self.shape}


def graph_inputs(schema: DataSchema) -> list[GraphInput]:
    """The inputs a model built for ``schema`` reads, in the graph's order."""
    out = []
    if schema.num_fields:
        out.append(GraphInput("categorical", "int64", schema.num_fields))
    if schema.numeric:
        out.append(GraphInput("numeric", "float32", len(schema.numeric)))
    out.append(GraphInput("scenario", "int64", None))
    if schema.lists:
        out += [GraphInput("lists", "int64", schema.list_width), GraphInput("list_lengths", "int64", len(schema.lists))]
    return out


def example_batch(schema: DataSchema, rows: int, seed: int = 0) -> EncodedData:
    """``rows`` rows of valid random inputs for ``schema`` (every id inside its vocabulary, the
    scenarios in turn, list lengths from 0 to ``max_len``): what a graph is traced and checked on."""
    g = torch.Generator().manual_seed(seed)
    categorical = torch.stack([torch.randint(0, c, (rows,), generator=g) for c in schema.cardinalities], 1) \
        if schema.num_fields else torch.zeros(rows, 0, dtype=torch.int64)
    lists = lengths = None
    if schema.lists:
        blocks = []
        for f in schema.lists:
            cards = [f.cardinality] if not f.fields else [schema.categorical[schema.field_index(n)][1] for n in f.fields]
            ids = torch.stack([torch.randint(0, c, (rows, f.max_len), generator=g) for c in cards], 2)  # [N, L, C]
            blocks.append(ids)
        lengths = torch.stack([torch.randint(0, f.max_len + 1, (rows,), generator=g) for f in schema.lists], 1)
        for k, ids in enumerate(blocks):  # 0 after each row's length, as the encoders pad
            ids.masked_fill_(torch.arange(ids.shape[1])[None, :, None] >= lengths[:, k, None, None], 0)
        lists = torch.cat([ids.flatten(1) for ids in blocks], 1)
    t = schema.num_tasks
    return EncodedData(categorical=categorical, numeric=torch.randn(rows, len(schema.numeric), generator=g),
                       scenario=torch.arange(rows) % schema.num_scenarios, labels=torch.zeros(rows, t),
                       label_mask=torch.zeros(rows, t, dtype=torch.bool), lists=lists, list_lengths=lengths)


def input_arrays(data: EncodedData, schema: DataSchema) -> dict[str, np.ndarray]:
    """The graph's inputs taken from ``data``, by name (contiguous numpy arrays sharing memory)."""
    return {i.name: np.ascontiguousarray(getattr(data, i.name).numpy()) for i in graph_inputs(schema)}


class ServingModel(nn.Module):
    """``model`` (in eval mode) as a function of the graph's input tensors → probabilities ``[B, T]``."""

    def __init__(self, model: MSMTModel) -> None:
        super().__init__()
        self.model = model.eval()
        self.schema = model.schema
        self.names = [i.name for i in graph_inputs(model.schema)]

    def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
        given = dict(zip(self.names, tensors))
        scenario = given["scenario"]
        b = scenario.shape[0]
        empty = {"categorical": scenario.new_zeros((b, 0)), "numeric": scenario.new_zeros((b, 0), dtype=torch.float32)}
        batch = EncodedData(categorical=given.get("categorical", empty["categorical"]),
                            numeric=given.get("numeric", empty["numeric"]), scenario=scenario,
                            labels=empty["numeric"], label_mask=empty["numeric"].bool(),
                            lists=given.get("lists"), list_lengths=given.get("list_lengths"))
        # The view keeps the number of tasks a constant of the graph (the ONNX output's shape).
        return self.model.probabilities(self.model(batch)).float().view(b, self.schema.num_tasks)
