"""AutoIFS's ticket from the validation loss (msmtrec/models/flow_ticket.py): the refit task layer
against scikit-learn, the flows found on units with a planted structure, and the model's use of
them at the end of search."""

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss

from msmtrec.errors import ConfigError
from msmtrec.models import build_model
from msmtrec.models.flow_ticket import TaskLayer, needed_flows, refit_pair_losses
from tests.conftest import make_batch, make_schema

WIDTH = 4


def zero_layer(tasks):
    return TaskLayer(torch.zeros(WIDTH), torch.zeros(()), torch.zeros(tasks, WIDTH), torch.zeros(tasks))


def planted(n=12000, task_correlation=1.0, seed=0):
    """Units of 2 scenarios × 2 tasks: both tasks read u_sh along d (and, if task_correlation < 1,
    task 1 partly along its own e); scenario 1 adds u_k along d (what the scenario layer's unit is
    trained to give the shared task unit), scenario 0 ignores u_k."""
    g = torch.Generator().manual_seed(seed)
    u_sh, u_k = torch.randn(n, WIDTH, generator=g), torch.randn(n, WIDTH, generator=g)
    scenario = torch.arange(n) % 2
    d, e = torch.tensor([1.5, 0, 0, 0]), torch.tensor([0, 1.5, 0, 0])
    task1 = task_correlation * d + (1 - task_correlation) * e
    scen = (scenario == 1).float()[:, None] * (u_k @ d)[:, None]
    logits = torch.stack([u_sh @ d, u_sh @ task1], dim=1) + scen
    labels = torch.bernoulli(torch.sigmoid(logits), generator=g)
    return u_sh, u_k, scenario, labels


def test_refit_pair_losses_match_scikit_learn_two_fold():
    u_sh, u_k, scenario, labels = planted(n=3000)
    scenario, labels = torch.zeros_like(scenario), labels[:, :1]  # one pair
    for keep, x in [([True] * 4, u_sh + u_k), ([True, False, False, False], u_sh)]:
        ours = refit_pair_losses(u_sh, u_k, scenario, labels, torch.ones_like(labels, dtype=torch.bool),
                                 torch.tensor(keep).view(1, 1, 4), zero_layer(1), 1)
        even = np.arange(len(labels)) % 2 == 0
        y, total = labels[:, 0].numpy(), 0.0
        for fit in (even, ~even):
            lr = LogisticRegression(C=np.inf, tol=1e-10, max_iter=2000).fit(x[fit].numpy(), y[fit])
            total += log_loss(y[~fit], lr.predict_proba(x[~fit].numpy())[:, 1], normalize=False, labels=[0, 1])
        assert float(ours[0, 0]) == pytest.approx(total / len(y), abs=1e-4)


def test_needed_flows_find_the_planted_units():
    u_sh, u_k, scenario, labels = planted()
    mask = torch.ones_like(labels, dtype=torch.bool)
    keep, judged, rise = needed_flows(u_sh, u_k, scenario, labels, mask, zero_layer(2), 2, 0.01)
    assert judged.all()
    # Both tasks share one direction: no task unit; the scenario unit only where the labels read it.
    assert keep[..., 0].all() and not keep[..., 1].any() and not keep[..., 3].any()
    assert keep[1, :, 2].all() and not keep[0, :, 2].any()
    assert (rise["scenario unit"][1] > 0.05).all()
    # Tasks with different directions: the shared vector serves at most one, the other needs its unit.
    u_sh, u_k, scenario, labels = planted(task_correlation=0.0, seed=1)
    keep, _, rise = needed_flows(u_sh, u_k, scenario, labels, mask, zero_layer(2), 2, 0.01)
    assert keep[:, :, 1].any(dim=0).any() and (rise["task unit"].max(dim=0).values > 0.05).any()


def test_a_pair_without_labels_is_not_judged():
    u_sh, u_k, scenario, labels = planted(n=2000)
    mask = torch.ones_like(labels, dtype=torch.bool)
    mask[scenario == 0, 1] = False
    _, judged, _ = needed_flows(u_sh, u_k, scenario, labels, mask, zero_layer(2), 2, 0.01)
    assert judged.tolist() == [[True, False], [True, True]]


def test_the_model_prunes_from_the_gates_ticket_what_is_not_needed():
    """Labels that ignore every feature: no unit is needed, so a pair keeps sh→sh alone where the
    gates kept it, and the gates' ticket where it would keep nothing; task 1 has no labels, and
    keeps the gates' decisions."""
    schema = make_schema(scenarios=2, tasks=2)
    model = build_model("autoifs", schema, {"embed_dim": 4, "mlp_dims": [16, 12, 8]})
    assert model.ticket_from == "validation"
    batch = make_batch(schema, n=6000, seed=3)
    batch.label_mask[:, 1] = False
    with torch.no_grad():
        model.selector.logits.copy_(torch.randn(model.selector.logits.shape, generator=torch.Generator().manual_seed(0)))
        model.selector.logits[0, 0] = torch.tensor([-0.5, -0.2, -0.1, 0.3])  # keeps sh→sh, sh→task, scen→sh
        model.selector.logits[1, 0] = torch.tensor([0.5, -0.2, 0.1, 0.3])  # keeps sh→task alone
    before = model.selector.logits.clone()
    changed = model.ticket_from_validation(batch)
    after = model.selector.logits
    assert after[0, 0].tolist() == [-1.0, 1.0, 1.0, 1.0] and after[1, 0].tolist() == [1.0, -1.0, 1.0, 1.0]
    assert torch.equal(after[:, 1] > 0, before[:, 1] > 0)
    assert changed == int(((after > 0) != (before > 0)).sum()) == 2


@pytest.mark.parametrize("params", [{"selector": "instance", "ticket_from": "validation"},
                                    {"decomposition": "code", "ticket_from": "validation"},
                                    {"ticket_from": "sometimes"}, {"ticket_tolerance": -0.1}])
def test_bad_ticket_options(params):
    with pytest.raises(ConfigError, match="ticket_"):
        build_model("autoifs", make_schema(scenarios=3, tasks=2), params)


def test_other_selectors_draw_the_gates_ticket():
    schema = make_schema(scenarios=2, tasks=2)
    assert build_model("autoifs", schema, {"selector": "instance"}).ticket_from == "gates"
    assert build_model("autoifs", schema, {"decomposition": "code"}).ticket_from == "gates"
