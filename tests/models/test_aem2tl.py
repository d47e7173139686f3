"""AEM²TL: entire-space composition, branch switching, ablations, personalised gates, routing."""

import pytest
import torch

from msmtrec.models import build_model
from tests.conftest import make_batch, make_schema



FULL_ROLES = {"t0": "click", "t1": "action", "t2": "conversion"}
SMALL = {"scenario_shared_experts": 2, "scenario_specific_experts": 2, "scenario_expert_dims": [12],
         "task_shared_experts": 2, "task_specific_experts": 1, "task_expert_dims": [10], "tower_dims": [6]}


def _schema(roles=FULL_ROLES, without_click=True, prior=("f0", "f1")):
    return make_schema(scenarios=3, tasks=len(roles), task_roles=roles, conversion_without_click=without_click,
                       prior_fields=prior)


def _model(schema=None, **params):
    return build_model("aem2tl", schema or _schema(), {**SMALL, **params})


def _randomise_gates(model, std=0.3):
    """Gates start at exactly 1 (zero output layer); give them a real effect."""
    torch.manual_seed(0)
    with torch.no_grad():
        for bank in model.tower_gates:
            bank.mlp.weights[-1].normal_(0, std)
            bank.mlp.biases[-1].normal_(0, std)


def _all_scenarios_batch(schema, n=96, seed=0):
    batch = make_batch(schema, n, seed=seed)
    batch.scenario[: schema.num_scenarios] = torch.arange(schema.num_scenarios)
    return batch


def test_composed_probabilities_valid_and_ordered():
    model = _model()
    _randomise_gates(model)
    with torch.no_grad():
        for p in model.towers.biases:
            p.normal_(0, 2)  # spread the sub-targets over (0, 1)
    out = model(make_batch(model.schema, 128))
    assert model.heads == ("y1", "y2", "y3", "y4", "y5") and out["sub_targets"].shape == (128, 5)
    for name in ("ctr", "ctavr", "cvr", "ctcvr", "xcvr"):
        assert ((out[name] >= 0) & (out[name] <= 1)).all(), name
    assert (out["ctcvr"] <= out["ctr"]).all() and (out["ctavr"] <= out["ctr"]).all()
    assert (out["ctcvr"] <= out["xcvr"]).all()
    assert model.loss_names == ["ctr", "ctavr", "xcvr"]


def test_with_y3_and_y4_off_the_head_is_esmm():
    model = _model()
    s, j = model.num_scenarios, len(model.heads)
    with torch.no_grad():  # drive the y3 and y4 towers' logits to -inf, i.e. y3 = y4 = 0
        for sc in range(s):
            for k in (model.heads.index("y3"), model.heads.index("y4")):
                model.towers.biases[-1][sc * j + k] = -1e4
    out = model(make_batch(model.schema, 64))
    y1, y2 = out["sub_targets"][:, 0], out["sub_targets"][:, 1]
    torch.testing.assert_close(out["ctcvr"], y1 * y2)
    torch.testing.assert_close(out["xcvr"], y1 * y2)
    torch.testing.assert_close(out["cvr"], y2)
    assert (out["ctavr"] == 0).all()


def test_missing_roles_switch_branches_off_instead_of_training_on_zeros():
    schema = _schema(roles={"t0": "click", "t1": "conversion"}, without_click=False)
    model = _model(schema)
    assert model.heads == ("y1", "y2")
    assert model.towers.num_heads == 3 * 2  # no tower for y3, y4, y5
    assert model.loss_names == ["ctr", "ctcvr"]
    assert any("ESMM form" in n for n in model.notes)
    assert any("RAction" in n for n in model.notes) and any("y3 is off" in n for n in model.notes)
    out = model(make_batch(schema, 16))
    torch.testing.assert_close(out["xcvr"], out["ctcvr"])
    # Only the action is missing: y3 stays, the action branch and its loss go.
    schema = _schema(roles={"t0": "click", "t1": "conversion"}, without_click=True)
    model = _model(schema)
    assert model.heads == ("y1", "y2", "y3") and model.loss_names == ["ctr", "xcvr"]
    # Only the no-click path is missing.
    model = _model(_schema(without_click=False))
    assert model.heads == ("y1", "y2", "y4", "y5") and model.loss_names == ["ctr", "ctavr", "ctcvr"]


def _names(model):
    return {n for n, _ in model.named_parameters()}


@pytest.mark.parametrize("switch, removed_prefixes", [
    ("scenario_cgc", ("scenario_shared.", "scenario_specific.")),
    ("task_cgc", ("task_cgc.",)),
    ("personalized_gate", ("tower_gates.", "prior_embedding.")),
])
def test_each_ablation_removes_exactly_its_parameters(switch, removed_prefixes):
    full = _names(_model())
    ablated = _names(_model(**{switch: False}))
    removed = full - ablated
    assert not ablated - full
    assert removed and all(n.startswith(removed_prefixes) for n in removed)
    assert {n for n in full if n.startswith(removed_prefixes)} == removed
    # and the ablated model still trains
    model = _model(**{switch: False})
    batch = make_batch(model.schema, 32)
    model.task_losses(model(batch), batch).sum().backward()


def test_entire_space_ablation_predicts_each_task_directly():
    full, ablated = _model(), _model(entire_space=False)
    assert _names(full) == _names(ablated)  # same modules ...
    assert ablated.heads == ("ctr", "ctavr", "xcvr")  # ... with one tower per task instead of per sub-target
    assert ablated.towers.num_heads == 3 * 3 and full.towers.num_heads == 3 * 5
    out = ablated(make_batch(ablated.schema, 16))
    torch.testing.assert_close(out["cvr"], out["xcvr"])
    assert ablated.loss_names == full.loss_names


def test_task_cgc_gate_has_no_bias():
    model = _model()
    for cgc in model.task_cgc:
        assert not cgc.gates.bias.requires_grad and (cgc.gates.bias == 0).all()


def test_gradient_reaches_every_trainable_parameter():
    model = _model()
    _randomise_gates(model)
    batch = _all_scenarios_batch(model.schema, 256)
    model.task_losses(model(batch), batch).sum().backward()
    missing = [n for n, p in model.named_parameters()
               if p.requires_grad and (p.grad is None or p.grad.abs().sum() == 0)]
    assert not missing


def test_scenario_rows_train_only_their_scenarios_parameters():
    model = _model()
    _randomise_gates(model)
    batch = make_batch(model.schema, 64, seed=5)
    batch.scenario[:] = 2
    model.task_losses(model(batch), batch).sum().backward()
    j = len(model.heads)
    sei_w = model.scenario_specific.experts.weights[0].grad.view(3, 2, *model.scenario_specific.experts.weights[0].shape[1:])
    assert sei_w[2].abs().sum() > 0 and sei_w[:2].abs().sum() == 0
    assert model.task_cgc[2].shared.weights[0].grad.abs().sum() > 0
    assert all(p.grad is None for s in (0, 1) for p in model.task_cgc[s].parameters())
    tw = model.towers.weights[0].grad
    assert tw[2 * j:].abs().sum() > 0 and tw[: 2 * j].abs().sum() == 0
    gw = model.tower_gates[0].mlp.weights[-1].grad
    assert gw[2 * j:].abs().sum() > 0 and gw[: 2 * j].abs().sum() == 0
    assert model.scenario_shared.experts.weights[0].grad.abs().sum() > 0  # G is shared by every scenario


def test_prediction_depends_only_on_own_row():
    model = _model().eval()
    _randomise_gates(model)
    batch = make_batch(model.schema, 40, seed=1)
    ref = model.probabilities(model(batch))[0]
    other = make_batch(model.schema, 40, seed=2)
    other.categorical[0], other.numeric[0], other.scenario[0] = batch.categorical[0], batch.numeric[0], batch.scenario[0]
    torch.testing.assert_close(model.probabilities(model(other))[0], ref)
    torch.testing.assert_close(model.probabilities(model(batch.take(slice(0, 1))))[0], ref)


def test_personalized_gate_depends_on_prior_fields():
    model = _model().eval()
    _randomise_gates(model)
    batch = make_batch(model.schema, 32, seed=6)
    before = model.probabilities(model(batch))
    with torch.no_grad():
        model.prior_embedding.table.weight.normal_(0, 1.0)  # only the gate sees this table
    after = model.probabilities(model(batch))
    assert (before - after).abs().max() > 1e-4
    plain = _model(personalized_gate=False)
    assert plain.prior_embedding is None and plain.tower_gates is None


def test_stop_gradient_no_gradient_reaches_the_embedding_through_the_gate():
    model = _model()
    _randomise_gates(model)
    batch = _all_scenarios_batch(model.schema, 64, seed=7)
    # 1) gates alone: the shared embedding gets nothing, the prior embedding does.
    x = model.embedding(batch.categorical, batch.numeric)
    z = model.gate_input(batch, x)
    sum(bank(z).sum() for bank in model.tower_gates).backward()
    assert model.embedding.table.weight.grad is None or model.embedding.table.weight.grad.abs().sum() == 0
    assert model.prior_embedding.table.weight.grad.abs().sum() > 0
    # 2) whole model: the embedding gradient is the same as with a gate input carrying no graph at all.
    model.zero_grad()
    model.task_losses(model(batch), batch).sum().backward()
    with_gate = model.embedding.table.weight.grad.clone()
    model.zero_grad()
    original = model.gate_input
    model.gate_input = lambda b, x_: original(b, x_).detach()
    model.task_losses(model(batch), batch).sum().backward()
    torch.testing.assert_close(model.embedding.table.weight.grad, with_gate)


def test_gradnorm_is_the_default_and_shared_layer_is_scenario_shared_expert():
    model = _model()
    assert type(model).default_weighting == "gradnorm"
    assert model.shared_layer() is model.scenario_shared.experts.weights[-1]
    assert _model(scenario_cgc=False).shared_layer() is not None


def test_invalid_options_are_config_errors():
    from msmtrec.errors import ConfigError
    with pytest.raises(ConfigError, match="gate_gamma"):
        _model(gate_gamma=0)
    with pytest.raises(ConfigError, match="no option"):
        _model(gamma=2)
    with pytest.raises(ConfigError, match="prior field"):
        build_model("aem2tl", _schema(prior=("nope",)), SMALL)


def test_trains_end_to_end_on_the_ali_ccp_fixture():
    """Roles come from the dataset spec; the run evaluates the entire-space targets and logs
    GradNorm's weights per epoch."""
    from pathlib import Path

    from msmtrec.config import TrainConfig
    from msmtrec.train.api import train

    spec = Path(__file__).resolve().parents[1] / "fixtures" / "ali_ccp.yaml"
    lines = []
    config = TrainConfig(model="aem2tl", data=str(spec), model_params=SMALL, batch_size=32, max_epochs=2, patience=2)
    result = train(config, write_run=False, echo=lines.append, progress=False)
    assert result.model.loss_names == ["ctr", "ctcvr"] and result.model.heads == ("y1", "y2")
    assert set(result.test["per_target"]) == {"click", "purchase(ctcvr)", "purchase(cvr@click)"}
    assert result.summary()["comparable_targets"] == {"click": "click", "purchase": "purchase(ctcvr)"}
    assert result.test["per_target"]["purchase(cvr@click)"]["n"] < result.test["per_target"]["click"]["n"]
    assert any("ESMM form" in line for line in lines)
    assert all(sum(r["task_weights"].values()) == pytest.approx(2.0, abs=1e-4) for r in result.fit.history)
