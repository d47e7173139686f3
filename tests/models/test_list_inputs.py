"""Every model reads list and sequence features through its embedding: they change its
predictions, train the shared table, and survive AutoIFS's frozen-table selector."""

from __future__ import annotations

import pytest
import torch

from msmtrec.data.encoded import DataSchema, EncodedData, ListFeature
from msmtrec.models import MODELS, build_model
from msmtrec.train.precision import Precision


def schema() -> DataSchema:
    lists = (ListFeature("tags", 4, "mean", cardinality=9), ListFeature("hist", 5, "attention", fields=("item", "g")))
    return DataSchema(categorical=(("user", 8), ("item", 20), ("g", 5)), numeric=("x",), scenarios=("a", "b"),
                      tasks=("click", "buy"), task_roles={"click": "click", "buy": "conversion"},
                      prior_fields=("user",), has_user=True, lists=lists)


def batch(n: int = 48, seed: int = 0) -> EncodedData:
    g = torch.Generator().manual_seed(seed)
    cat = torch.stack([torch.randint(0, c, (n,), generator=g) for c in (8, 20, 5)], 1)
    lists = torch.cat([torch.randint(0, 9, (n, 4), generator=g),
                       torch.stack([torch.randint(0, 20, (n, 5), generator=g), torch.randint(0, 5, (n, 5), generator=g)],
                                   2).flatten(1)], 1)
    lengths = torch.stack([torch.randint(0, 5, (n,), generator=g), torch.randint(1, 6, (n,), generator=g)], 1)
    labels = torch.randint(0, 2, (n, 2), generator=g).float()
    labels[:, 1] *= labels[:, 0]
    return EncodedData(categorical=cat, numeric=torch.randn(n, 1, generator=g), scenario=torch.randint(0, 2, (n,), generator=g),
                       labels=labels, label_mask=torch.ones(n, 2, dtype=torch.bool), user=cat[:, 0].clone(),
                       lists=lists, list_lengths=lengths)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_model_reads_the_lists_through_its_embedding(name):
    torch.manual_seed(0)
    model = build_model(name, schema(), {})
    model.eval()
    b = batch()
    assert model.embedding.output_dim == 3 * 16 + 1 + 16 + 2 * 16
    other = EncodedData(**{**b.__dict__, "lists": torch.flip(b.lists, [0]), "list_lengths": torch.flip(b.list_lengths, [0])})
    p, q = model.probabilities(model(b)), model.probabilities(model(other))
    assert p.shape == (48, 2) and not torch.equal(p, q)
    model.train()
    model.task_losses(model(b), b).sum().backward()
    assert model.embedding.table.weight.grad.abs().sum() > 0
    assert all(prm.grad is not None for prm in model.embedding.attention.parameters())


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_model_trains_its_lists_under_bf16_autocast(name):
    """The pooled lists and the attention unit run in bf16 inside autocast; the gradients that
    reach the shared table and the unit are finite and fp32, as the master weights are."""
    torch.manual_seed(0)
    model = build_model(name, schema(), {})
    b = batch()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(b)
    model.task_losses(Precision.fp32(out), b).sum().backward()
    unit = list(model.embedding.attention.parameters())
    grads = [model.embedding.table.weight.grad, *(p.grad for p in unit)]
    assert all(g.dtype == torch.float32 and torch.isfinite(g).all() for g in grads)
    assert all(g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize("selector", ["instance", "code"])
def test_autoifs_selector_reads_the_lists_through_its_frozen_table(selector):
    """A per-sample selection network (not the default per-scenario table) reads the row."""
    torch.manual_seed(0)
    model = build_model("autoifs", schema(), {"selector": selector})
    with torch.no_grad():  # the instance selector's heads start at zero: give it weights that read the row
        for prm in model.selector.parameters():
            prm.normal_(0.0, 0.5)
    model.eval()
    b = batch()
    model.draw_ticket()
    model.start_retrain()
    before = model.selection_logits(b)
    with torch.no_grad():
        model.embedding.table.weight.add_(1.0)  # the live table moves on; the selector's copy does not
    torch.testing.assert_close(model.selection_logits(b), before)
    other = EncodedData(**{**b.__dict__, "list_lengths": torch.zeros_like(b.list_lengths)})
    assert not torch.allclose(model.selection_logits(other), before)
