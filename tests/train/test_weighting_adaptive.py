"""Adaptive task weighting: GradNorm and uncertainty weighting."""

import pytest
import torch
from torch import nn

from msmtrec.data import InMemoryDataset
from msmtrec.config import TrainConfig
from msmtrec.errors import ConfigError
from msmtrec.models import build_model
from msmtrec.train.trainer import Trainer
from msmtrec.train.weighting import GradNormWeighting, UncertaintyWeighting, build_weighting
from tests.conftest import make_batch, make_schema




class TwoTaskRegression(nn.Module):
    """A shared layer and two linear heads. Task "easy" is a clean linear target; task "hard" is
    pure noise, so its loss cannot come down: it is the slower-learning task."""

    def __init__(self, tasks=2):
        super().__init__()
        self.shared = nn.Linear(8, 16)
        self.heads = nn.Linear(16, tasks)

    def shared_layer(self):
        return self.shared.weight

    def losses(self, x, y):
        pred = self.heads(torch.relu(self.shared(x)))
        return ((pred - y) ** 2).mean(0)


def _regression_data(n=256):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 8, generator=g)
    easy = x @ torch.randn(8, generator=g)
    hard = torch.randn(n, generator=g) * easy.std()
    return x, torch.stack([easy, hard], 1)


def _train(weighting_name, steps=150, **params):
    torch.manual_seed(0)
    model = TwoTaskRegression()
    weighting = build_weighting(weighting_name, ["easy", "hard"], model, None, params)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    x, y = _regression_data()
    history = []
    for _ in range(steps):
        losses = model.losses(x, y)
        total = weighting.combine(losses)
        opt.zero_grad()
        total.backward()
        opt.step()
        weighting.after_step()
        history.append((losses.detach(), weighting.weights()))
    return history


def test_gradnorm_moves_weight_to_the_slower_learning_task():
    history = _train("gradnorm", lr=0.05)
    first, last = history[0][0], history[-1][0]
    assert last[0] / first[0] < 0.5 * (last[1] / first[1])  # the construction: easy learns faster than hard
    w = history[-1][1]
    assert w["hard"] > 1.2 and w["easy"] < 0.8


def test_gradnorm_weights_stay_positive_and_sum_to_the_number_of_losses():
    for _, w in _train("gradnorm", steps=80, lr=1.0, alpha=3.0):  # a deliberately violent weight optimiser
        assert all(v > 0 for v in w.values())
        assert sum(w.values()) == pytest.approx(2.0, abs=1e-5)


def test_gradnorm_restoring_force_follows_the_loss_ratios():
    """Constructed losses with equal gradients: L_a has fallen to 10 % of L_a(0) (a constant offset,
    which leaves its gradient alone), L_b has not, so the GradNorm target raises w_b and lowers w_a."""
    w_shared = nn.Parameter(torch.ones(3))
    model = nn.Module()
    model.shared_layer = lambda: w_shared
    gn = GradNormWeighting(["a", "b"], model, None, alpha=1.0, lr=0.01)
    f = (w_shared ** 2).sum()
    gn.combine(torch.stack([f, f])).backward()  # step 0 records L(0)
    gn.after_step()
    for _ in range(100):
        f = (w_shared ** 2).sum()  # = 3 at w = 1
        gn.combine(torch.stack([f - 2.7, f])).backward()  # w_shared.grad piles up: GradNorm reads each backward's own
        gn.after_step()
    w = gn.weights()
    assert w["b"] > 1.3 > 0.7 > w["a"]


def test_gradnorm_does_not_pollute_model_gradients():
    torch.manual_seed(0)
    model = TwoTaskRegression()
    gn = build_weighting("gradnorm", ["easy", "hard"], model, {"easy": 3.0, "hard": 1.0}, {})
    assert gn.weights() == pytest.approx({"easy": 1.5, "hard": 0.5})  # renormalised to sum to 2
    x, y = _regression_data(64)
    gn.combine(model.losses(x, y)).backward()  # step 0 only records L(0)
    gn.after_step()
    model.zero_grad()
    x2 = x * 0.5
    w_now = gn.w.detach().clone()
    losses = model.losses(x2, y)
    total = gn.combine(losses)
    assert all(p.grad is None for p in model.parameters())  # combine leaves the model's .grad alone
    total.backward()
    assert gn.w.grad is None  # the task loss does not train the weights
    got = [p.grad.clone() for p in model.parameters()]
    gn.after_step()
    assert not torch.equal(gn.w.detach(), w_now)  # the norms train them, after the step
    model.zero_grad()
    (w_now * model.losses(x2, y)).sum().backward()
    for a, p in zip(got, model.parameters()):
        torch.testing.assert_close(a, p.grad)


@pytest.mark.parametrize("aux, scale", [(False, 1.0), (True, 1.0), (False, 8.0)])
def test_gradnorm_takes_one_norm_from_the_steps_own_backward(aux, scale):
    """Of n losses, n − 1 norms come from backward passes of their own and loss k's from the
    gradient the step's backward brings to W, less the others' (and an aux term's, and unscaled):
    each equals the norm of a separate backward pass, whichever loss k is."""
    torch.manual_seed(0)
    model = TwoTaskRegression(tasks=3)
    gn = build_weighting("gradnorm", ["a", "b", "c"], model, None, {"lr": 0.05})
    gn.loss_scale = lambda: scale
    x, y = _regression_data(64)
    y = torch.cat([y, 0.3 * y[:, :1] + 0.1], 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    for k in (0, 1, 2, 2, 1, 0):
        gn.last_norms = torch.eye(3)[k] + 0.5  # the loss with the largest G_i is taken from the total
        losses = model.losses(x, y)
        expected = torch.stack([torch.autograd.grad(loss, model.shared.weight, retain_graph=True)[0].norm()
                                for loss in losses])
        w = gn.w.detach().clone()
        penalty = 0.1 * (model.shared.weight ** 2).sum() if aux else None
        total = gn.total(losses, penalty)
        opt.zero_grad()
        (total * scale).backward()
        opt.step()
        gn.after_step()
        torch.testing.assert_close(gn.last_norms, w * expected, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("aux", [False, True])
def test_gradnorm_after_step_needs_the_backward_of_the_total(aux):
    """Only the step's backward gives loss k's norm: not the passes GradNorm makes itself (an aux
    term's included)."""
    model = TwoTaskRegression()
    gn = build_weighting("gradnorm", ["easy", "hard"], model, None, {})
    x, y = _regression_data(16)
    gn.total(model.losses(x, y), (model.shared.weight ** 2).sum() if aux else None)
    with pytest.raises(RuntimeError, match="before the backward"):
        gn.after_step()


def test_gradnorm_waits_for_a_nonzero_initial_loss():
    w_shared = nn.Parameter(torch.ones(2))
    model = nn.Module()
    model.shared_layer = lambda: w_shared
    gn = GradNormWeighting(["a", "b"], model, None)
    f = (w_shared ** 2).sum()
    gn.combine(torch.stack([f, f * 0])).backward()  # no label for b in this batch
    gn.after_step()
    assert gn.initial_losses.tolist() == [2.0, 0.0] and gn.weights() == {"a": 1.0, "b": 1.0}
    f = (w_shared ** 2).sum()
    gn.combine(torch.stack([f, f * 2])).backward()
    gn.after_step()
    assert gn.initial_losses.tolist() == [2.0, 4.0]


def test_gradnorm_state_round_trip_and_errors():
    torch.manual_seed(0)
    history = _train("gradnorm", steps=20, lr=0.05)
    model = TwoTaskRegression()
    gn = build_weighting("gradnorm", ["easy", "hard"], model, None, {"lr": 0.05})
    state = {"w": torch.tensor([0.5, 1.5]), "initial_losses": torch.tensor([1.0, 2.0]), "steps": 7}
    gn.load_state_dict(state)
    assert gn.weights() == pytest.approx({"easy": 0.5, "hard": 1.5}) and gn.steps == 7
    assert gn.state_dict()["initial_losses"].tolist() == [1.0, 2.0]
    assert history
    with pytest.raises(ConfigError, match="shared layer"):
        build_weighting("gradnorm", ["a"], nn.Linear(2, 2), None, {})
    with pytest.raises(ConfigError, match="alpha"):
        build_weighting("gradnorm", ["easy"], model, None, {"alpha": -1})
    with pytest.raises(ConfigError, match="no option"):
        build_weighting("gradnorm", ["easy"], model, None, {"beta": 1})


def test_uncertainty_weights_converge_to_inverse_losses():
    """For constant losses L_i the optimum of exp(-s) L + s/2 is exp(-s) = 1 / (2 L)."""
    model = nn.Linear(1, 1)
    uw = UncertaintyWeighting(["a", "b"], model, None, lr=0.05)
    scale = nn.Parameter(torch.ones(()))
    for _ in range(1500):
        total = uw.combine(torch.stack([4.0 * scale, 0.25 * scale]))
        total.backward()
        uw.after_step()
        scale.grad = None
    w = uw.weights()
    assert w["a"] == pytest.approx(1 / 8, rel=0.05) and w["b"] == pytest.approx(2.0, rel=0.05)


def test_uncertainty_scales_model_gradients_by_its_weights():
    torch.manual_seed(0)
    model = TwoTaskRegression()
    uw = build_weighting("uncertainty", ["easy", "hard"], model, {"easy": 2.0, "hard": 0.5}, {})
    assert uw.weights() == pytest.approx({"easy": 2.0, "hard": 0.5})
    x, y = _regression_data(32)
    uw.combine(model.losses(x, y)).backward()
    got = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    (torch.tensor([2.0, 0.5]) * model.losses(x, y)).sum().backward()
    for a, p in zip(got, model.parameters()):
        torch.testing.assert_close(a, p.grad)


def test_trainer_uses_aem2tl_default_gradnorm_logs_weights_and_notes():
    schema = make_schema(scenarios=2, tasks=2, task_roles={"t0": "click", "t1": "conversion"})
    model = build_model("aem2tl", schema, {"scenario_expert_dims": [8], "task_expert_dims": [8], "tower_dims": [4],
                                           "scenario_shared_experts": 2, "scenario_specific_experts": 2})
    train, val = make_batch(schema, 256, seed=1), make_batch(schema, 128, seed=2)
    for b in (train, val):
        b.labels[:, 1] *= b.labels[:, 0]
    lines = []
    config = TrainConfig(model="aem2tl", batch_size=64, max_epochs=2, patience=5, weighting_params={"lr": 0.05})
    trainer = Trainer(model, config, InMemoryDataset(train, val, val, schema), echo=lines.append, progress=False)
    assert isinstance(trainer.weighting, GradNormWeighting)
    result = trainer.fit()
    assert any("ESMM form" in line for line in lines)
    for record in result.history:
        w = record["task_weights"]
        assert set(w) == {"ctr", "ctcvr"} and sum(w.values()) == pytest.approx(2.0, abs=1e-4)
    assert result.history[-1]["task_weights"] != {"ctr": 1.0, "ctcvr": 1.0}
    fixed = Trainer(model, config.replace(weighting="fixed", weighting_params={}), InMemoryDataset(train, val, val, schema))
    assert type(fixed.weighting).__name__ == "FixedWeighting"
