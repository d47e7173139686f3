"""Pooled lists and target attention: equal to a per-row loop, padding never read, sequences
sharing their fields' embedding rows."""

from __future__ import annotations

import pytest
import torch

from msmtrec.data.encoded import DataSchema, EncodedData, ListFeature
from msmtrec.nn import FeatureEmbedding
from msmtrec.nn.list_pooling import TargetAttention, pooled_bag


def ragged(n: int, max_len: int, vocab: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(0, max_len + 1, (n,), generator=g)
    lengths[0] = 0  # an empty row
    ids = torch.randint(0, vocab, (n, max_len), generator=g)
    return ids, lengths


@pytest.mark.parametrize("mode", ["mean", "sum"])
def test_pooled_bag_equals_a_per_row_loop(mode):
    weight = torch.randn(30, 4, dtype=torch.float64)
    ids, lengths = ragged(20, 6, 30)
    out = pooled_bag(ids, lengths, weight, mode)
    for i in range(20):
        rows = weight[ids[i, :lengths[i]]]
        want = torch.zeros(4, dtype=torch.float64) if lengths[i] == 0 else rows.mean(0) if mode == "mean" else rows.sum(0)
        torch.testing.assert_close(out[i], want)


def test_target_attention_equals_dins_unit_row_by_row():
    """The decomposed linear layer computes DIN's W [k; q; k - q; k * q] + b: set the unit from a
    random full W and compare with the textbook form, one row and one entry at a time."""
    torch.manual_seed(0)
    d, h = 6, 5
    unit = TargetAttention(d, hidden=h).double()
    w_full, b = torch.randn(h, 4 * d, dtype=torch.float64), torch.randn(h, dtype=torch.float64)
    w1, w2, w3, w4 = w_full.split(d, dim=1)
    with torch.no_grad():
        unit.key.weight.copy_(w1 + w3)
        unit.key.bias.copy_(b)
        unit.query.weight.copy_(w2 - w3)
        unit.product.weight.copy_(w4)
    keys, query = torch.randn(12, 7, d, dtype=torch.float64), torch.randn(12, d, dtype=torch.float64)
    _, lengths = ragged(12, 7, 2)
    out = unit(query, keys, lengths)
    for i in range(12):
        n = int(lengths[i])
        if n == 0:
            torch.testing.assert_close(out[i], torch.zeros(d, dtype=torch.float64))
            continue
        scores = []
        for j in range(n):
            k, q = keys[i, j], query[i]
            hidden = w_full @ torch.cat([k, q, k - q, k * q]) + b
            hidden = torch.relu(hidden)
            scores.append(unit.out.weight[0] @ hidden + unit.out.bias[0])
        weights = torch.stack(scores)  # unnormalised, as in DIN
        torch.testing.assert_close(out[i], (weights[:, None] * keys[i, :n]).sum(0))


def schema_with_lists() -> DataSchema:
    lists = (ListFeature("tags", 4, "mean", cardinality=9),
             ListFeature("hist", 5, "attention", fields=("item", "brand")),
             ListFeature("recent", 3, "sum", fields=("item",)))
    return DataSchema(categorical=(("user", 6), ("item", 11), ("brand", 4)), numeric=("x",), scenarios=("a",),
                      tasks=("t",), lists=lists)


def batch_for(schema: DataSchema, n: int = 16, seed: int = 0) -> EncodedData:
    g = torch.Generator().manual_seed(seed)
    cat = torch.stack([torch.randint(0, c, (n,), generator=g) for c in schema.cardinalities], 1)
    columns = [torch.randint(0, 9, (n, 4), generator=g),
               torch.stack([torch.randint(0, 11, (n, 5), generator=g), torch.randint(0, 4, (n, 5), generator=g)],
                           2).flatten(1),
               torch.randint(0, 11, (n, 3), generator=g)]
    lengths = torch.stack([torch.randint(0, f.max_len + 1, (n,), generator=g) for f in schema.lists], 1)
    return EncodedData(categorical=cat, numeric=torch.randn(n, 1, generator=g), scenario=torch.zeros(n, dtype=torch.long),
                       labels=torch.zeros(n, 1), label_mask=torch.ones(n, 1, dtype=torch.bool),
                       lists=torch.cat(columns, 1), list_lengths=lengths)


def test_feature_embedding_of_lists_equals_a_per_row_loop():
    torch.manual_seed(0)
    schema = schema_with_lists()
    emb = FeatureEmbedding.for_schema(schema, 3)
    batch = batch_for(schema)
    out = emb(batch)
    assert out.shape == (16, emb.output_dim) and emb.output_dim == 3 * 3 + 1 + 3 + 2 * 3 + 3
    w = emb.table.weight
    start = {"user": 0, "item": 6, "brand": 17, "tags": 21}  # fields end to end, then the list's vocabulary
    for i in range(16):
        cat, n = batch.categorical[i], batch.list_lengths[i]
        want = [w[start[f] + int(cat[j])] for j, f in enumerate(("user", "item", "brand"))] + [batch.numeric[i]]
        tags = batch.lists[i, :4][:n[0]]
        want.append(w[start["tags"] + tags].mean(0) if n[0] else torch.zeros(3))
        hist = batch.lists[i, 4:14].view(5, 2)[:n[1]]
        keys = torch.cat([w[start["item"] + hist[:, 0]], w[start["brand"] + hist[:, 1]]], 1)  # the fields' own rows
        query = torch.cat([w[start["item"] + cat[1]], w[start["brand"] + cat[2]]])
        want.append(emb.attention["1"](query[None], keys[None], n[1:2]).squeeze(0) if n[1] else torch.zeros(6))
        recent = batch.lists[i, 14:17][:n[2]]
        want.append(w[start["item"] + recent].sum(0) if n[2] else torch.zeros(3))
        torch.testing.assert_close(out[i], torch.cat(want))


def test_padding_is_never_read_and_the_history_trains_the_candidates_rows():
    torch.manual_seed(0)
    schema = schema_with_lists()
    emb = FeatureEmbedding.for_schema(schema, 3)
    batch = batch_for(schema, seed=1)
    out = emb(batch)
    width = schema.list_width
    position = torch.cat([torch.arange(4), torch.arange(5).repeat_interleave(2), torch.arange(3)])
    feature = torch.tensor([0] * 4 + [1] * 10 + [2] * 3)
    padding = position[None, :] >= batch.list_lengths[:, feature]  # [n, W]
    noisy = EncodedData(**{**batch.__dict__, "lists": torch.where(padding, torch.randint(0, 4, (16, width)), batch.lists)})
    torch.testing.assert_close(emb(noisy), out)
    # Only the "recent" sequence reads item ids from row 0 of the batch: its gradient lands on the
    # item field's rows of the one table (shared with the candidate), not on rows of its own.
    only = EncodedData(**{**batch.__dict__, "list_lengths": torch.tensor([[0, 0, 3]] * 16)})
    emb.table.weight.grad = None
    emb(only)[:, -3:].sum().backward()
    rows = emb.table.weight.grad.abs().sum(1).nonzero().flatten()
    assert set(rows.tolist()) <= set(range(6, 17)) and len(rows) > 0


def test_a_replaced_weight_is_used_everywhere():
    schema = schema_with_lists()
    emb = FeatureEmbedding.for_schema(schema, 3)
    batch = batch_for(schema)
    other = torch.randn_like(emb.table.weight)
    with torch.no_grad():
        got = emb(batch, weight=other)
        emb.table.weight.copy_(other)
        torch.testing.assert_close(got, emb(batch))


def test_tensor_form_is_only_for_embeddings_without_lists():
    emb = FeatureEmbedding([3, 5], 2, num_numeric=1)
    out = emb(torch.tensor([[1, 4]]), torch.tensor([[0.5]]))
    torch.testing.assert_close(out, torch.cat([emb.table.weight[1], emb.table.weight[7], torch.tensor([0.5])])[None])
    with pytest.raises(TypeError, match="has list features"):
        FeatureEmbedding.for_schema(schema_with_lists(), 2)(torch.zeros(1, 3, dtype=torch.long), torch.zeros(1, 1))


def test_target_attentions_backward_equals_autograds_of_its_forward():
    """The hand-written backward against numerical gradients (double), ragged rows and an empty
    one, and against autograd of the plain operators in float32."""
    from msmtrec.nn.list_pooling import _AttendWithGradient

    torch.manual_seed(0)
    b, length, d, h = 5, 4, 3, 2
    _, lengths = ragged(b, length, 2)
    mask = (torch.arange(length) < lengths[:, None]).double()
    args = [torch.randn(s, dtype=torch.float64, requires_grad=True) for s in ((b, length, d), (b, h, d), (b, h), (h,), ())]
    assert torch.autograd.gradcheck(_AttendWithGradient.apply, (*args, mask))
    unit = TargetAttention(8, hidden=16)
    query, keys = torch.randn(64, 8, requires_grad=True), torch.randn(64, 10, 8, requires_grad=True)
    lengths = torch.randint(0, 11, (64,))
    weight = torch.randn(64, 8)
    grads = []
    for fused in (True, False):
        for t in (query, keys, *unit.parameters()):
            t.grad = None
        out = unit(query, keys, lengths) if fused else _plain(unit, query, keys, lengths)
        (out * weight).sum().backward()
        grads.append([t.grad.clone() for t in (query, keys, *unit.parameters())])
    for got, want in zip(*grads):
        torch.testing.assert_close(got, want)


def _plain(unit, query, keys, lengths):
    from msmtrec.nn.list_pooling import _attend

    return _attend(*unit.unit_inputs(query, keys, lengths))[2]
