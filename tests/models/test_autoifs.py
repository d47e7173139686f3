"""AutoIFS: the LoRA units and the four flows against the equations of models.md §4.2 (design
notes), the pruning function, the two-stage schedule (temperature, rewind, frozen selector), the
flow report, and flow selection on data without scenario-specific signal."""

import numpy as np
import pytest
import torch

from msmtrec.data import InMemoryDataset
from msmtrec.config import TrainConfig
from msmtrec.errors import ConfigError
from msmtrec.models import build_model
from msmtrec.models.autoifs import FLOWS
from msmtrec.report.flows import flow_warnings, format_flow_report
from msmtrec.train.trainer import Trainer
from tests.conftest import make_batch, make_schema

# The released code's selection options (--preset code): most tests below check that path.
SMALL = {"embed_dim": 4, "mlp_dims": [16, 12, 8], "selector": "code", "decomposition": "code", "gate_lr_scale": 0.01,
         "gate_warmup_epochs": 0, "gate_penalty": 0.0, "flow_costs": [1.0, 1.0, 1.0, 1.0]}


def small(schema, **params):
    return build_model("autoifs", schema, {**SMALL, **params})


def randomise_specific(model, seed=0):
    """Give the LoRA B matrices and the specific biases non-zero values (they start at 0)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for bank in (model.scenario_specific, model.task_specific):
            bank.B.copy_(torch.randn(bank.B.shape, generator=g) * 0.5)
            bank.bias.copy_(torch.randn(bank.bias.shape, generator=g) * 0.5)
        model.task_shared.bias.fill_(0.3)
        model.scenario_shared.bias.normal_(0, 0.1, generator=g)
    return model


def force_gates(model, pattern):
    """Make the selector output a fixed sign pattern [T, 4] (1 → w > 0 → gate 1 → prune)."""
    p = torch.as_tensor(pattern, dtype=torch.float32)
    with torch.no_grad():
        model.selector.heads.weight.zero_()
        model.selector.heads.bias.copy_((p * 2 - 1).reshape(-1) * 5.0)


def reference_logits(model, batch):
    """AutoIFS written sample by sample, straight from the equations (no banks, no batching)."""
    x = model.embedding(batch.categorical, batch.numeric)
    h0 = model.bottom(x)
    w = model.selection_logits(batch)
    g = (w > 0).float() if bool(model.ticket) else torch.sigmoid(model.temperature * w)
    Ws, bs = model.scenario_shared.weight, model.scenario_shared.bias
    As, Bs, cs = model.scenario_specific.A, model.scenario_specific.B, model.scenario_specific.bias
    Wt, bt = model.task_shared.weight[0], model.task_shared.bias[0]
    At, Bt, ct = model.task_specific.A, model.task_specific.B, model.task_specific.bias[:, 0]
    out = torch.zeros(len(batch), model.num_tasks)
    for i in range(len(batch)):
        k = int(batch.scenario[i])
        u_sh = Ws @ h0[i] + bs
        u_k = h0[i] @ As[k] @ Bs[k] + cs[k]
        for m in range(model.num_tasks):
            def f_sh(u, bias=True):
                return Wt @ u + (bt if bias else 0.0)

            def f_m(u, bias=True):
                return (u @ At[m] @ Bt[m])[0] + (ct[m] if bias else 0.0)

            if model.decomposition == "code":
                h1 = torch.relu(u_sh + u_k)
                z = f_sh(h1) + f_m(h1)
                phi = [f_sh(u_sh), f_m(u_sh), f_sh(u_k), f_m(u_k)]
                out[i, m] = z - sum(g[i, m, j] * phi[j] for j in range(4))
            else:
                phi = [f_sh(u_sh, False), f_m(u_sh, False), f_sh(u_k, False), f_m(u_k, False)]
                out[i, m] = bt + ct[m] + sum((1 - g[i, m, j]) * phi[j] for j in range(4))
    return out


@pytest.mark.parametrize("decomposition", ["code", "linear"])
@pytest.mark.parametrize("routing", ["gather", "group"])
@pytest.mark.parametrize("hard", [False, True])
def test_matches_the_equations(decomposition, routing, hard):
    torch.manual_seed(0)
    schema = make_schema(scenarios=3, tasks=2)
    model = randomise_specific(small(schema, decomposition=decomposition, scenario_routing=routing)).eval()
    model.temperature.fill_(3.0)
    if hard:
        model.draw_ticket()
        model.start_retrain()
    batch = make_batch(schema, 24, seed=1)
    assert torch.allclose(model(batch).logits, reference_logits(model, batch), atol=1e-5)


def test_specific_units_start_as_their_bias():
    torch.manual_seed(1)
    schema = make_schema(scenarios=3, tasks=2)
    model = small(schema)
    assert model.scenario_specific.B.abs().sum() == 0 and model.task_specific.B.abs().sum() == 0
    assert model.scenario_specific.bias.abs().sum() == 0 and model.task_specific.bias.abs().sum() == 0
    with torch.no_grad():  # give the biases values to see that only they come out
        model.scenario_specific.bias.copy_(torch.randn(3, 8))
        model.task_specific.bias.copy_(torch.randn(2, 1))
    batch = make_batch(schema, 30, seed=2)
    x = model.embedding(batch.categorical, batch.numeric)
    u_sh, u_k = model.scenario_units(x, batch.scenario)
    assert torch.allclose(u_k, model.scenario_specific.bias[batch.scenario])
    _, flows = model.task_flows(u_sh, u_k)
    c_t = model.task_specific.bias[:, 0].expand(30, 2)
    assert torch.allclose(flows[..., FLOWS.index("scen_shared->task_specific")], c_t)
    assert torch.allclose(flows[..., FLOWS.index("scen_specific->task_specific")], c_t)


def test_linear_decomposition_is_exact():
    torch.manual_seed(2)
    schema = make_schema(scenarios=2, tasks=3)
    model = randomise_specific(small(schema, decomposition="linear")).eval()
    model.draw_ticket()
    model.start_retrain()
    batch = make_batch(schema, 20, seed=3)
    x = model.embedding(batch.categorical, batch.numeric)
    u_sh, u_k = model.scenario_units(x, batch.scenario)
    u = u_sh + u_k  # no activation between the layers in the linear decomposition
    whole = model.task_shared(u) + model.task_specific.all_groups(u).squeeze(-1)
    force_gates(model, torch.zeros(3, 4))  # keep every flow
    assert torch.allclose(model(batch).logits, whole, atol=1e-5)
    _, flows = model.task_flows(u_sh, u_k)
    for j in range(4):  # pruning flow j removes exactly that flow
        pattern = torch.zeros(3, 4)
        pattern[:, j] = 1
        force_gates(model, pattern)
        assert torch.allclose(model(batch).logits, whole - flows[..., j], atol=1e-5)


def test_code_decomposition_gate_one_removes_a_flow():
    torch.manual_seed(3)
    schema = make_schema(scenarios=3, tasks=2)
    model = randomise_specific(small(schema)).eval()
    model.draw_ticket()
    model.start_retrain()
    batch = make_batch(schema, 20, seed=4)
    force_gates(model, torch.zeros(2, 4))
    full = model(batch).logits
    x = model.embedding(batch.categorical, batch.numeric)
    _, flows = model.task_flows(*model.scenario_units(x, batch.scenario))
    force_gates(model, [[1, 0, 0, 1], [0, 1, 1, 0]])
    expected = full - torch.stack([flows[:, 0, 0] + flows[:, 0, 3], flows[:, 1, 1] + flows[:, 1, 2]], dim=1)
    assert torch.allclose(model(batch).logits, expected, atol=1e-5)
    assert not torch.allclose(model(batch).logits, full, atol=1e-3)


def test_large_temperature_soft_gate_equals_hard_gate():
    torch.manual_seed(4)
    schema = make_schema(scenarios=3, tasks=2)
    model = randomise_specific(small(schema)).eval()
    with torch.no_grad():
        model.selector.heads.weight.mul_(50)  # spread the selection logits away from the tie at 0
    batch = make_batch(schema, 40, seed=5)
    assert model.selection_logits(batch).abs().min() > 1e-3
    model.temperature.fill_(1.0)
    soft1 = model(batch).logits
    model.temperature.fill_(1e6)
    soft = model(batch).logits
    model.draw_ticket()  # the frozen copy equals the live table here, so the gates see the same input
    model.start_retrain()
    hard = model(batch).logits
    assert torch.allclose(soft, hard, atol=1e-5)
    assert not torch.allclose(soft1, hard, atol=1e-3)


@pytest.mark.parametrize("scenarios,tasks", [(1, 1), (2, 3), (4, 2), (5, 4)])
def test_any_number_of_scenarios_and_tasks(scenarios, tasks):
    schema = make_schema(scenarios=scenarios, tasks=tasks)
    model = small(schema, gate_penalty=[0.1] * tasks)
    batch = make_batch(schema, 33, seed=6, mask_prob=0.3)
    out = model(batch)
    assert out.logits.shape == (33, tasks)
    losses = model.task_losses(out, batch)
    assert losses.shape == (tasks,) and torch.isfinite(losses).all()
    assert model.flow_report(batch)["kept_fraction"]  # one row per present scenario
    assert len(model.training_stages(TrainConfig())) == 2


def test_group_routing_equals_gather_routing_with_gradients():
    schema = make_schema(scenarios=4, tasks=2)
    batch = make_batch(schema, 50, seed=7)
    outs, grads = [], []
    for routing in ("gather", "group"):
        torch.manual_seed(5)
        model = randomise_specific(small(schema, scenario_routing=routing))
        out = model(batch)
        model.task_losses(out, batch).sum().backward()
        outs.append(out.logits.detach())
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    assert torch.allclose(outs[0], outs[1], atol=1e-6)
    assert grads[0].keys() == grads[1].keys()
    for n in grads[0]:
        assert torch.allclose(grads[0][n], grads[1][n], atol=1e-5), n


def test_selector_sees_a_stop_gradient_embedding():
    schema = make_schema(scenarios=3, tasks=2)
    model = small(schema, gate_penalty=1.0)
    batch = make_batch(schema, 40, seed=8)
    model.train()
    out = model(batch)
    penalty = model.aux_loss(out)
    assert penalty is not None and penalty > 0
    penalty.backward()  # the penalty depends only on the gates: no gradient may reach the embedding
    assert model.embedding.table.weight.grad is None
    assert model.selector.heads.weight.grad.abs().sum() > 0
    # A positive penalty discourages pruning: its gradient raises the cost of w > 0.
    assert model.selector.heads.bias.grad.gt(0).all()


def test_gate_penalty_only_while_searching():
    schema = make_schema(scenarios=2, tasks=2)
    model = small(schema, gate_penalty=[0.5, 0.0])
    batch = make_batch(schema, 16)
    model.train()
    out = model(batch)
    assert model.aux_loss(out) is not None
    model.eval()
    out = model(batch)
    assert model.aux_loss(out) is None
    model.draw_ticket()
    model.start_retrain()
    model.train()
    out = model(batch)
    assert model.aux_loss(out) is None
    no_penalty = small(schema).train()
    out = no_penalty(batch)
    assert no_penalty.aux_loss(out) is None


@pytest.mark.parametrize("routing", ["gather", "group"])
def test_gate_penalty_comes_with_the_forward_output(routing):
    """The output carries Σ_m λ_m · mean(sigmoid(τ w_m)) (the mean over samples and flows), and
    aux_loss returns the penalty of the output it is given, not of the latest forward pass."""
    torch.manual_seed(9)
    schema = make_schema(scenarios=3, tasks=2)
    model = small(schema, gate_penalty=[0.5, 0.2], scenario_routing=routing).train()
    model.temperature.fill_(3.0)
    batch = make_batch(schema, 40, seed=13)
    out = model(batch)
    g = torch.sigmoid(3.0 * model.selection_logits(batch))  # [B, T, 4]
    expected = 0.5 * g[:, 0].mean() + 0.2 * g[:, 1].mean()
    model(make_batch(schema, 40, seed=14))
    torch.testing.assert_close(model.aux_loss(out), expected)
    assert model.aux_loss(out) is out.gate_penalty


def _state(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_two_stage_schedule_through_the_trainer():
    torch.manual_seed(6)
    schema = make_schema(scenarios=3, tasks=2)
    model = small(schema, search_epochs=3, rewind_epoch=1, final_temp=100.0, retrain_epochs=2,
                  search_lr=1e-2, retrain_lr=1e-2, gate_lr_scale=0.5)
    train, val = make_batch(schema, 600, seed=9), make_batch(schema, 200, seed=10)
    config = TrainConfig(model="autoifs", batch_size=100, patience=10, lr=0.5, weight_decay=0.0)

    search, retrain = stages = model.training_stages(config)
    assert (search.early_stopping, search.restore_best, search.select_best) == (False, False, False)
    assert (retrain.early_stopping, retrain.restore_best, retrain.select_best) == (True, True, True)
    seen: dict = {"tau": [], "retrain_selector": [], "retrain_table": []}
    hooks = (search.on_epoch_start, search.on_stage_end, retrain.on_stage_start)

    def search_epoch_start(trainer, m, epoch):
        hooks[0](trainer, m, epoch)
        seen["tau"].append(float(m.temperature))
        seen.setdefault("search_groups", [(g["lr"], g["weight_decay"], [id(p) for p in g["params"]])
                                          for g in trainer.optimizer.param_groups])
        if epoch == 1:
            seen["rewind"] = _state(m)

    def search_end(trainer, m):
        seen["end_selector"], seen["end_table"] = _state(m.selector), m.embedding.table.weight.detach().clone()
        hooks[1](trainer, m)

    def retrain_start(trainer, m):
        hooks[2](trainer, m)
        seen["retrain_start"] = _state(m)
        seen["retrain_params"] = {id(p) for g in trainer.optimizer.param_groups for p in g["params"]}

    def retrain_epoch_end(trainer, m, epoch, val_metrics):
        seen["retrain_selector"].append(_state(m.selector))
        seen["retrain_table"].append(m.selector_table.clone())

    search.on_epoch_start, search.on_stage_end = search_epoch_start, search_end
    retrain.on_stage_start, retrain.on_epoch_end = retrain_start, retrain_epoch_end
    model.training_stages = lambda cfg: stages
    Trainer(model, config, InMemoryDataset(train, val, val, schema), progress=False).fit()

    # Temperature rises geometrically from 1 to final_temp over the search epochs.
    assert seen["tau"] == pytest.approx([1.0, 10.0, 100.0])
    # Search: the selector in its own group, lr × gate_lr_scale, no weight decay.
    (lr_main, wd_main, main_ids), (lr_gate, wd_gate, gate_ids) = seen["search_groups"]
    assert (lr_main, wd_main) == (1e-2, 3e-5) and (lr_gate, wd_gate) == (pytest.approx(5e-3), 0.0)
    assert set(gate_ids) == {id(p) for p in model.selector.parameters()} and not set(gate_ids) & set(main_ids)
    # Rewind: retraining starts from exactly the snapshot of search epoch 1 (the model moved after it) ...
    start = seen["retrain_start"]
    rewound = [k for k in start if not k.startswith("selector") and k not in ("ticket", "temperature", "gates_changed")]
    assert all(torch.equal(start[k], seen["rewind"][k]) for k in rewound)
    assert not torch.equal(seen["rewind"]["embedding.table.weight"], seen["end_table"])
    # ... except the selector, its frozen embedding copy and the count of changed decisions, which
    # keep their end-of-search values.
    assert _same({k[len("selector."):]: v for k, v in start.items() if k.startswith("selector.")}, seen["end_selector"])
    assert torch.equal(start["selector_table"], seen["end_table"])
    assert bool(model.ticket)
    # Retraining: the selector is not optimised and neither it nor its embedding copy changes.
    assert not seen["retrain_params"] & {id(p) for p in model.selector.parameters()}
    assert len(seen["retrain_selector"]) == 2
    for sel, table in zip(seen["retrain_selector"], seen["retrain_table"]):
        assert _same(sel, seen["end_selector"]) and torch.equal(table, seen["end_table"])
    assert not torch.equal(model.embedding.table.weight, start["embedding.table.weight"])  # the rest did train


def test_checkpoint_keeps_the_ticket():
    torch.manual_seed(7)
    schema = make_schema(scenarios=3, tasks=2)
    model = randomise_specific(small(schema))
    model.draw_ticket()
    with torch.no_grad():
        model.embedding.table.weight.add_(1.0)  # the live table moves on; the selector keeps its copy
    model.start_retrain()
    model.eval()
    batch = make_batch(schema, 25, seed=11)
    fresh = small(schema).eval()
    fresh.load_state_dict(model.state_dict())
    assert bool(fresh.ticket)
    assert torch.equal(fresh(batch).logits, model(batch).logits)
    assert torch.equal(fresh.selection_logits(batch), model.selection_logits(batch))


def test_flow_report_counts_kept_flows(tmp_path):
    torch.manual_seed(8)
    schema = make_schema(scenarios=3, tasks=2)
    model = small(schema)
    with torch.no_grad():
        model.selector.heads.weight.mul_(100)
    batch = make_batch(schema, 300, seed=12)
    report = model.flow_report(batch)
    kept = (model.selection_logits(batch) <= 0).float()
    for s, name in enumerate(schema.scenarios):
        rows = batch.scenario == s
        assert report["samples"][name] == int(rows.sum())
        for t, task in enumerate(schema.tasks):
            got = [report["kept_fraction"][name][task][f] for f in FLOWS]
            assert got == pytest.approx(kept[rows, t].mean(0).tolist(), abs=1e-4)
    fractions = [v for d in report["kept_fraction"].values() for f in d.values() for v in f.values()]
    assert 0 < np.mean(fractions) < 1  # a mixed selection, so the comparison above means something
    assert "scen>task" in format_flow_report(report)

    extra = model.extra_report(batch, tmp_path)
    assert (tmp_path / "flow_selection.png").stat().st_size > 1000
    assert extra["flow_selection"]["heatmap"].endswith("flow_selection.png")
    params = extra["parameters"]
    assert params["total"] == model.num_parameters() == params["selector"] + params["predictor"]
    assert "flow selection" in extra["summary"]


def test_selectors_start_where_they_should():
    """code: PyTorch's random Linear initialisation (as released) — the logits start away from 0;
    instance: the same network with zero heads — every logit starts at exactly 0 (kept, undecided);
    table: one logit per (scenario, task, flow), zero at the start, read by each sample's scenario."""
    schema = make_schema(scenarios=3, tasks=2)
    batch = make_batch(schema, 30)
    torch.manual_seed(0)
    assert small(schema).selection_logits(batch).abs().min() > 0
    assert torch.equal(small(schema, selector="instance").selection_logits(batch), torch.zeros(30, 2, 4))
    table = small(schema, selector="table")
    assert table.selector.logits.shape == (3, 2, 4) and not table.selector.logits.any()
    assert table.parameter_report()["selector"] == 24 and table.selector_table.numel() == 0  # reads no features
    with torch.no_grad():
        table.selector.logits.copy_(torch.randn(3, 2, 4))
    torch.testing.assert_close(table.selection_logits(batch), table.selector.logits[batch.scenario])
    table.draw_ticket()
    table.start_retrain()
    assert not table.selector.logits.requires_grad  # frozen in retraining like the network


def test_flow_costs_weight_the_penalty_per_flow():
    """λ_m · mean_j(c_j · mean_b g_{b,m,j}); uniform costs are the code's λ_m · mean(g_m)."""
    schema = make_schema(scenarios=3, tasks=2)
    torch.manual_seed(1)
    costs = [0.0, 1.0, 1.0, 2.0]
    model = small(schema, selector="table", gate_penalty=[0.5, 0.2], flow_costs=costs).train()
    with torch.no_grad():
        model.selector.logits.normal_()
    batch = make_batch(schema, 40)
    g = torch.sigmoid(model.selection_logits(batch))  # τ = 1
    c = torch.tensor(costs)
    expected = 0.5 * (g[:, 0] * c).mean() + 0.2 * (g[:, 1] * c).mean()
    torch.testing.assert_close(model.aux_loss(model(batch)), expected)
    model.aux_loss(model(batch)).backward()
    grad = model.selector.logits.grad
    assert (grad[..., 0] == 0).all() and (grad[..., 1:] > 0).all()  # a free flow feels no penalty


def test_gate_warmup_leaves_the_selector_alone_then_trains_it():
    torch.manual_seed(2)
    schema = make_schema(scenarios=3, tasks=2)
    model = small(schema, selector="table", search_epochs=3, gate_warmup_epochs=2, retrain_epochs=1,
                  gate_lr_scale=10.0, gate_penalty=-0.1)
    seen = []
    search, retrain = stages = model.training_stages(TrainConfig(model="autoifs"))
    inner = search.on_epoch_end

    def record(trainer, m, epoch, val):
        seen.append(m.selector.logits.detach().clone())
        return inner(trainer, m, epoch, val)

    search.on_epoch_end = record
    model.training_stages = lambda cfg: stages
    train, val = make_batch(schema, 400, seed=3), make_batch(schema, 100, seed=4)
    fit = Trainer(model, TrainConfig(model="autoifs", batch_size=50), InMemoryDataset(train, val, val, schema),
                  progress=False).fit()
    assert not seen[0].any() and not seen[1].any()  # two warm-up epochs: untouched
    assert seen[2].abs().sum() > 0
    search_records = [r for r in fit.history if r["stage"] == "search"]
    assert all("gates_changed" in r and "flows_kept" in r for r in search_records)
    assert search_records[1]["gates_changed"] == 0 and search_records[2]["gates_changed"] > 0
    assert model.flow_report(val)["gates_changed_in_search"] == search_records[-1]["gates_changed"]


def test_default_warmup_leaves_a_short_search_at_least_one_selector_epoch():
    schema = make_schema(scenarios=3, tasks=2)
    assert [small(schema, selector="table", search_epochs=e, gate_warmup_epochs=None).gate_warmup_epochs
            for e in (1, 2, 10)] == [0, 1, 3]
    assert small(schema, selector="table", search_epochs=10, gate_warmup_epochs=5).gate_warmup_epochs == 5


def test_report_warns_when_search_changed_nothing_and_when_a_pair_loses_every_flow():
    schema = make_schema(scenarios=2, tasks=2)
    torch.manual_seed(3)  # the code's selector starts away from w = 0, so a negligible lr changes no decision
    model = small(schema, search_epochs=2, retrain_epochs=1, gate_lr_scale=1e-9)
    train, val = make_batch(schema, 200, seed=5), make_batch(schema, 80, seed=6)
    Trainer(model, TrainConfig(model="autoifs", batch_size=50), InMemoryDataset(train, val, val, schema),
            progress=False).fit()
    report = model.flow_report(val)
    assert report["gates_changed_in_search"] == 0
    (warning,) = flow_warnings(report)
    assert warning.startswith("no gate decision changed during search")
    assert report["ticket_from"] == "gates" and "validation check" not in warning  # the code's selector
    assert "initialisation less what the validation check pruned" in flow_warnings({**report, "ticket_from": "validation"})[0]
    model = small(schema, selector="table")
    with torch.no_grad():
        model.selector.logits[1, 0] = 1.0  # scenario s1, task t0: every flow pruned
    report = model.flow_report(val)
    assert report["no_flow_fraction"]["s1"]["t0"] == 1.0 and report["no_flow_fraction"]["s0"]["t0"] == 0.0
    warnings = flow_warnings(report)
    assert "s1 / t0: every flow is pruned for 100.0% of its samples" in warnings
    assert "warning: s1 / t0: every flow is pruned" in format_flow_report(report)
    assert "warning: s1 / t0" in model.extra_report(val)["summary"]
    fresh = small(schema, selector="table")
    assert fresh.flow_report(val)["gates_changed_in_search"] is None and flow_warnings(fresh.flow_report(val)) == []


def test_linear_ticket_never_leaves_a_pair_without_a_flow():
    """Linear decomposition: when every selection logit of a (sample, task) is > 0, the flow with the
    lowest one is kept (no flow would leave a constant); otherwise the decisions are 1[w > 0]."""
    schema = make_schema(scenarios=2, tasks=2)
    torch.manual_seed(4)
    model = randomise_specific(build_model("autoifs", schema, {**SMALL, "selector": "table", "decomposition": "linear"}))
    with torch.no_grad():
        model.selector.logits.copy_(torch.tensor([[[-1.0, 2.0, 0.5, 3.0], [2.0, 0.5, 1.0, 3.0]],
                                                  [[1.0, -2.0, -1.0, 0.1], [0.2, 0.3, 0.4, 0.5]]]))
    model.draw_ticket()
    model.start_retrain()
    model.eval()
    batch = make_batch(schema, 40)
    kept = ~model.gate_decisions(batch)
    expected = torch.tensor([[[1, 0, 0, 0], [0, 1, 0, 0]], [[0, 1, 1, 0], [1, 0, 0, 0]]], dtype=torch.bool)
    assert torch.equal(kept, expected[batch.scenario])
    report = model.flow_report(batch)
    assert all(v == 0 for by_task in report["no_flow_fraction"].values() for v in by_task.values())
    own = batch.scenario == 0
    assert model(batch).logits[own, 1].std() > 0  # s0/t1 would have lost every flow: it still ranks
    code = small(schema, selector="table")  # the code decomposition keeps the code's decisions
    with torch.no_grad():
        code.selector.logits.fill_(1.0)
    assert code.gate_decisions(batch).all()


@pytest.mark.parametrize("params,match", [
    ({"selector": "oracle"}, "selector"),
    ({"search_epochs": 4, "gate_warmup_epochs": 4}, "gate_warmup_epochs"),
    ({"flow_costs": [1, 1, 1]}, "flow_costs"),
    ({"flow_costs": [1, 1, 1, -1]}, "flow_costs"),
    ({"decomposition": "exact"}, "decomposition"),
    ({"scenario_routing": "loop"}, "scenario_routing"),
    ({"search_epochs": 10, "rewind_epoch": 10}, "rewind_epoch"),
    ({"search_epochs": 0}, "search_epochs"),
    ({"mlp_dims": [8]}, "mlp_dims"),
    ({"gate_penalty": [0.1, 0.2, 0.3]}, "gate_penalty"),
    ({"final_temp": 0}, "final_temp"),
    ({"gate_lr_scale": -1}, "gate_lr_scale"),
    ({"no_such_option": 1}, "no_such_option"),
])
def test_bad_options(params, match):
    with pytest.raises(ConfigError, match=match):
        build_model("autoifs", make_schema(scenarios=3, tasks=2), params)


def _selection(alpha: float, seed: int = 2, task_correlation: float = 0.5) -> tuple[np.ndarray, dict]:
    """Kept share per flow (mean over scenarios and tasks) after the default search and ticket, on
    data whose labels ignore the scenario (α = 0) or depend only on it (α = 1), and whose two
    tasks share one direction (ρ = 1) or not."""
    from msmtrec.data.synthetic import make_synthetic_splits

    train, val, test, schema = make_synthetic_splits(40000, scenario_signal=alpha, task_correlation=task_correlation,
                                                     structure="independent",
                                                     num_fields=4, vocab=50, signal_scale=3.0, scenario_bias_scale=0.0,
                                                     seed=seed)
    torch.manual_seed(seed)
    model = build_model("autoifs", schema, {"mlp_dims": [64, 32, 16], "retrain_epochs": 1})  # default selection
    Trainer(model, TrainConfig(model="autoifs", batch_size=256, seed=seed), InMemoryDataset(train, val, val, schema),
            progress=False).fit()
    report = model.flow_report(test)
    kept = np.array([[list(f.values()) for f in by_task.values()] for by_task in report["kept_fraction"].values()])
    return kept.mean(axis=(0, 1)), report


def test_default_selection_prunes_the_scenario_flows_exactly_when_labels_ignore_the_scenario():
    """The planted structure, in small (the study in benchmarks/autoifs_selection.py has the
    full grid and seeds): α = 0 → the scenario-specific unit's flows go; α = 1 → scen→sh stays."""
    specific = [FLOWS.index("scen_specific->task_shared"), FLOWS.index("scen_specific->task_specific")]
    none, report = _selection(0.0)
    assert none[specific].max() <= 0.1  # pruned for >= 90% of the samples
    assert report["gates_changed_in_search"] > 0 and flow_warnings(report) == []
    assert min(v for by_task in report["no_flow_fraction"].values() for v in by_task.values()) == 0
    full, _ = _selection(1.0)
    assert full[FLOWS.index("scen_specific->task_shared")] >= 0.6


def test_default_ticket_prunes_the_task_flows_when_both_tasks_share_a_direction():
    """ρ = 1: the task-specific unit's flows are useless. The gates alone keep sh→task for half
    of the (scenario, task) pairs here; the validation check of the ticket prunes them."""
    specific = [FLOWS.index("scen_shared->task_specific"), FLOWS.index("scen_specific->task_specific")]
    kept, report = _selection(0.5, task_correlation=1.0)
    assert kept[specific].max() <= 0.1
    assert kept[FLOWS.index("scen_specific->task_shared")] >= 0.9  # the scenario information (α = 0.5) stays
    assert min(v for by_task in report["no_flow_fraction"].values() for v in by_task.values()) == 0
