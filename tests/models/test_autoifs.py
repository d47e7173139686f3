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
from msmtrec.report.flows import format_flow_report
from msmtrec.train.trainer import Trainer
from tests.conftest import make_batch, make_schema

SMALL = {"embed_dim": 4, "mlp_dims": [16, 12, 8]}


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
    rewound = [k for k in start if not k.startswith("selector") and k not in ("ticket", "temperature")]
    assert all(torch.equal(start[k], seen["rewind"][k]) for k in rewound)
    assert not torch.equal(seen["rewind"]["embedding.table.weight"], seen["end_table"])
    # ... except the selector and its frozen embedding copy, which keep their end-of-search values.
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


@pytest.mark.parametrize("params,match", [
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


def _kept_per_flow(alpha: float, seed: int = 1) -> np.ndarray:
    from msmtrec.data.synthetic import make_synthetic_splits

    train, val, test, schema = make_synthetic_splits(20000, scenario_signal=alpha, structure="independent",
                                                     num_fields=4, vocab=50, seed=seed)
    torch.manual_seed(seed)
    # A pruning pressure (negative penalty: g = 1 prunes) and a selector lr as large as the
    # model's; docs/models/autoifs.md, "What the selection network actually does (measured)", says
    # why the selection otherwise stays near its start.
    model = build_model("autoifs", schema, {"mlp_dims": [64, 32, 16], "decomposition": "linear", "search_epochs": 3,
                                            "search_lr": 3e-3, "gate_lr_scale": 1.0, "gate_penalty": -0.05,
                                            "retrain_epochs": 1})
    Trainer(model, TrainConfig(model="autoifs", batch_size=256, seed=seed), InMemoryDataset(train, val, val, schema), progress=False).fit()
    kept = model.flow_report(test)["kept_fraction"]
    return np.array([[list(f.values()) for f in by_task.values()] for by_task in kept.values()]).mean(axis=(0, 1))


def test_scenario_specific_flows_are_pruned_when_labels_ignore_the_scenario():
    specific = [FLOWS.index("scen_specific->task_shared"), FLOWS.index("scen_specific->task_specific")]
    shared_shared = FLOWS.index("scen_shared->task_shared")
    none, full = _kept_per_flow(0.0), _kept_per_flow(1.0)
    assert none[specific].max() <= 0.1  # pruned for >= 90% of the samples
    assert none[shared_shared] >= none[specific].max() + 0.3  # not everything is pruned
    # Control: with scenario-specific labels the scenario unit's flows are kept for many samples.
    assert full[specific].max() >= 0.3
