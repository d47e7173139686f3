"""Defining properties of HiNet (models.md §2): SEI/CGC gates, SAN, both task layouts, the loss
variants, no leakage across the batch, and that it can learn."""

import pytest
import torch

from msmtrec.errors import ConfigError
from msmtrec.models import build_model
from msmtrec.models.hinet import HiNetOutput
from tests.conftest import make_batch, make_schema

TINY = {"embed_dim": 4, "sub_experts": 3, "sub_expert_dims": [8, 6], "scenario_embed_dim": 4, "san_gate_dims": [8],
        "specific_experts": 2, "shared_experts": 1, "expert_dims": [8, 5], "tower_dims": [6]}
LAYOUTS = ["pair", "scenario"]


def hinet(schema, **kw):
    return build_model("hinet", schema, {**TINY, **kw})


@pytest.mark.parametrize("layout", LAYOUTS)
def test_output_shape_and_probabilities(layout):
    schema = make_schema(scenarios=3, tasks=2)
    model = hinet(schema, task_layout=layout)
    batch = make_batch(schema, 33)
    out = model(batch)
    assert out.shape == (33, 2)
    p = model.probabilities(out)
    assert ((p > 0) & (p < 1)).all()
    assert model.task_losses(out, batch).shape == (2,)


@pytest.mark.parametrize("gate_activation", ["identity", "relu"])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_gate_weights_sum_to_one(gate_activation, layout):
    schema = make_schema(scenarios=3, tasks=2)
    model = hinet(schema, task_layout=layout, gate_activation=gate_activation)
    batch = make_batch(schema, 16)
    x = model.embedding(batch.categorical, batch.numeric)
    sei = model.scenario_experts.gate_weights(x)  # shared SEI + one per scenario, K entries each
    assert sei.shape == (16, 4, 3)
    torch.testing.assert_close(sei.sum(-1), torch.ones(16, 4))
    assert (sei >= 0).all() and sei.std() > 0
    c = model.scenario_representation(x, batch.scenario)
    cgc = model.task_experts[0] if layout == "pair" else model.task_experts
    task = cgc.gate_weights(c)  # every head's gate over its own + shared experts
    assert task.shape == (16, 6, 3)
    torch.testing.assert_close(task.sum(-1), torch.ones(16, 6))
    assert task.std() > 0


def test_sei_output_is_the_gate_weighted_sum_of_its_sub_experts():
    schema = make_schema(scenarios=2, tasks=1)
    model = hinet(schema).eval()
    x = torch.randn(5, model.embedding.output_dim)
    bank = model.scenario_experts
    sub = bank.experts(x).view(5, 3, 3, -1)  # [B, 1+M, K, d]
    expected = (bank.gate_weights(x).unsqueeze(-1) * sub).sum(2)
    torch.testing.assert_close(bank(x), expected)


@pytest.mark.parametrize("mask", ["after_softmax", "before_softmax"])
def test_san_transfer_excludes_own_scenario(mask):
    """The transfer part A of C = [A ; S ; G] does not depend on the sample's own SEI."""
    schema = make_schema(scenarios=3, tasks=1)
    model = hinet(schema, san_mask=mask).eval()
    assert torch.equal(torch.diagonal(model.san.weights()), torch.zeros(3))
    batch = make_batch(schema, 12)
    batch.scenario[:] = 1
    x = model.embedding(batch.categorical, batch.numeric)
    before = model.scenario_representation(x, batch.scenario)
    with torch.no_grad():  # change only scenario 1's specific SEI (bank entry 1 + 1)
        model.scenario_experts.gates.bias[2] += torch.tensor([5.0, -5.0, 0.0])
    after = model.scenario_representation(x, batch.scenario)
    torch.testing.assert_close(after[:, :6], before[:, :6])  # A: the other scenarios only
    assert (after[:, 6:12] - before[:, 6:12]).abs().sum(-1).min() > 0  # S: the own scenario's SEI
    torch.testing.assert_close(after[:, 12:], before[:, 12:])  # G: the shared SEI
    with torch.no_grad():  # scenario 2's SEI, by contrast, reaches A
        model.scenario_experts.gates.bias[3] += torch.tensor([5.0, -5.0, 0.0])
    assert (model.scenario_representation(x, batch.scenario)[:, :6] - after[:, :6]).abs().sum(-1).min() > 0


def test_single_scenario_san_contributes_zeros():
    schema = make_schema(scenarios=1, tasks=2)
    model = hinet(schema)
    batch = make_batch(schema, 10)
    x = model.embedding(batch.categorical, batch.numeric)
    c = model.scenario_representation(x, batch.scenario)
    assert torch.equal(c[:, :6], torch.zeros(10, 6)) and c[:, 6:].abs().sum() > 0
    assert model(batch).shape == (10, 2)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_sum_gate_is_the_codes_singleton_softmax(layout):
    """cgc_gate=sum: every expert weight is 1 — what the code's softmax over a [B, E, 1] axis gives —
    so a head's output is the plain sum of its own and the shared experts; the gate has no
    parameters to train."""
    schema = make_schema(scenarios=3, tasks=2)
    torch.manual_seed(0)
    softmax, summed = hinet(schema, task_layout=layout).eval(), hinet(schema, task_layout=layout, cgc_gate="sum").eval()
    summed.load_state_dict(softmax.state_dict(), strict=False)  # same experts; the sum gate has no weights
    assert {k for k in softmax.state_dict()} - {k for k in summed.state_dict()} == {
        k for k in softmax.state_dict() if k.startswith("task_experts.") and ".gates." in k}
    batch = make_batch(schema, 16)
    c = softmax.scenario_representation(softmax.embedding(batch.categorical, batch.numeric), batch.scenario)
    code_gate = torch.softmax(torch.randn(16, 6, 3).unsqueeze(-1), dim=-1).squeeze(-1)  # the code's op
    cgc = summed.task_experts[0] if layout == "pair" else summed.task_experts
    torch.testing.assert_close(cgc.gate_weights(c), code_gate)
    torch.testing.assert_close(code_gate, torch.ones(16, 6, 3))
    # Head outputs: the sum of the experts the softmax version mixes (gate weights replaced by 1).
    if layout == "pair":
        level = softmax.task_experts[0]
        spec = level.specific(c).view(16, 6, 2, -1)
        experts = torch.cat([spec, level.shared(c).unsqueeze(1).expand(16, 6, 1, -1)], dim=2)
        torch.testing.assert_close(summed.task_experts([(0, c)])[0], experts[:, :2].sum(2))
        weighted = (level.gate_weights(c)[:, :2].unsqueeze(-1) * experts[:, :2]).sum(2)
        torch.testing.assert_close(softmax.task_experts([(0, c)])[0], weighted)
    assert not torch.allclose(summed(batch), softmax(batch))


@pytest.mark.parametrize("kw", [{"task_layout": "pair"}, {"task_layout": "scenario"}, {"loss_on_all_heads": True},
                                {"input_norm": "batch_norm"}, {"input_norm": "affine"}, {"task_levels": 3},
                                {"cgc_gate": "sum", "task_levels": 2}])
def test_prediction_depends_only_on_own_row(kw):
    schema = make_schema(scenarios=3, tasks=2)
    model = hinet(schema, **kw)
    model.train()
    for _ in range(2):  # move the BatchNorm statistics away from their initial values
        model(make_batch(schema, 64, seed=5))
    model.eval()
    batch = make_batch(schema, 40, seed=1)
    ref = model.probabilities(model(batch))[0]
    other = make_batch(schema, 40, seed=2)
    other.categorical[0], other.numeric[0], other.scenario[0] = batch.categorical[0], batch.numeric[0], batch.scenario[0]
    other.scenario[1:] = (batch.scenario[0] + 1) % 3  # every other sample in another scenario
    torch.testing.assert_close(model.probabilities(model(other))[0], ref)
    torch.testing.assert_close(model.probabilities(model(batch.take(slice(0, 1))))[0], ref)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_gradient_reaches_every_scenarios_experts_through_san(layout):
    torch.manual_seed(0)
    schema = make_schema(scenarios=3, tasks=2)
    model = hinet(schema, task_layout=layout, sei_dropout=0.0)
    batch = make_batch(schema, 64)
    batch.scenario[:] = 0  # only scenario 0 in the batch
    model.task_losses(model(batch), batch).sum().backward()
    # per SEI (a sub-expert whose ReLUs are all off for this batch legitimately gets none)
    first = model.scenario_experts.experts.weights[0].grad.abs().sum((1, 2)).view(4, 3).sum(1)  # [1+M]
    assert (first > 0).all(), "every SEI (shared and every scenario's) must get gradient"
    towers = model.towers.weights[0].grad.abs().sum((1, 2))  # [M*T]
    assert (towers[:2] > 0).all() and towers[2:].sum() == 0  # own-scenario heads only


def test_san_gradient_disappears_without_san_path():
    """Control for the test above: a scenario's SEI gets gradient from scenario-0 rows only via SAN,
    so zeroing SAN's weights on it removes that gradient."""
    torch.manual_seed(0)
    schema = make_schema(scenarios=3, tasks=2)
    model = hinet(schema, sei_dropout=0.0)
    model.san.weights = lambda: torch.zeros(3, 3)  # SAN transfers nothing
    batch = make_batch(schema, 64)
    batch.scenario[:] = 0
    model.task_losses(model(batch), batch).sum().backward()
    first = model.scenario_experts.experts.weights[0].grad.abs().sum((1, 2)).view(4, 3).sum(1)
    assert (first[:2] > 0).all() and first[2:].sum() == 0


def test_loss_on_all_heads_uses_per_scenario_labels():
    """The code's loss: head (m, t) against label column (m, t) — the row's own label in its own
    scenario's head (masked when missing), 0 in the other scenarios' heads — summed over m."""
    schema = make_schema(scenarios=3, tasks=2)
    torch.manual_seed(0)
    model = hinet(schema, loss_on_all_heads=True, sei_dropout=0.0)
    own_only = hinet(schema, sei_dropout=0.0)
    own_only.load_state_dict(model.state_dict())
    batch = make_batch(schema, 50, mask_prob=0.3)
    out = model(batch)
    assert isinstance(out, HiNetOutput) and out.all_logits.shape == (50, 3, 2)
    torch.testing.assert_close(out.logits, own_only(batch))  # same own-scenario predictions
    # The code's label columns scernario_<m>_is_<t>, as its TFRecord parser fills them for data
    # that carry each row's own scenario's labels only (default_value 0).
    columns = torch.zeros(50, 3, 2)
    observed = torch.ones(50, 3, 2, dtype=torch.bool)
    for i in range(50):
        s = int(batch.scenario[i])
        columns[i, s], observed[i, s] = batch.labels[i], batch.label_mask[i]
    expected = torch.zeros(2)
    for m in range(3):
        for t in range(2):
            keep = observed[:, m, t]
            expected[t] += torch.nn.functional.binary_cross_entropy_with_logits(out.all_logits[keep, m, t],
                                                                                columns[keep, m, t])
    torch.testing.assert_close(model.task_losses(out, batch), expected)
    # A row's own label never reaches another scenario's head: flipping it leaves those heads' loss.
    flipped = batch.take(slice(None))
    flipped.labels = 1 - batch.labels
    grads = []
    for b in (batch, flipped):
        model.zero_grad()
        model.task_losses(model(b), b).sum().backward()
        grads.append(model.towers.weights[-1].grad.clone())
    own_heads = {int(s) * 2 + t for s in batch.scenario for t in range(2)}
    assert len(own_heads) == 6  # every scenario is in the batch, so every head sees own rows ...
    batch.scenario[:] = 0
    flipped.scenario[:] = 0
    for i, b in enumerate((batch, flipped)):
        model.zero_grad()
        model.task_losses(model(b), b).sum().backward()
        grads[i] = model.towers.weights[-1].grad.clone()
    torch.testing.assert_close(grads[0][2:], grads[1][2:])  # ... scenario-0 rows: heads 1, 2 unaffected
    assert not torch.allclose(grads[0][:2], grads[1][:2])
    assert (grads[0].abs().sum((1, 2)) > 0).all()  # every scenario's heads learn (as negatives)


def test_a_missing_label_is_masked_not_zero():
    schema = make_schema(scenarios=2, tasks=2)
    model = hinet(schema)
    batch = make_batch(schema, 20)
    batch.label_mask[:, 1] = False
    out = model(batch)
    l1 = model.task_losses(out, batch)
    batch.labels[:, 1] = 1 - batch.labels[:, 1]
    l2 = model.task_losses(out, batch)
    assert l1[1] == 0 and l2[1] == 0 and l1[0] == l2[0]


@pytest.mark.parametrize("kw", [{"task_layout": "pair"}, {"task_layout": "scenario", "san_mask": "before_softmax"},
                                {"gate_activation": "relu"}])
def test_overfits_a_tiny_batch(kw):
    torch.manual_seed(0)
    schema = make_schema(scenarios=3, tasks=2, vocab=50)
    model = hinet(schema, sei_dropout=0.0, **kw)
    batch = make_batch(schema, 48, seed=3)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(150):
        loss = model.task_losses(model(batch), batch).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    p = model.probabilities(model(batch))
    assert ((p > 0.5).float() == batch.labels).all()


def test_default_sizes_follow_the_official_code():
    schema = make_schema(scenarios=6, tasks=2)
    model = build_model("hinet", schema)
    bank = model.scenario_experts
    assert bank.num_seis == 7 and bank.k == 5
    assert [w.shape[-1] for w in bank.experts.weights] == [128, 64]
    assert model.san.scenario_embedding.embedding_dim == 64
    (cgc,) = model.task_experts  # one level (the code's level_number=1)
    assert cgc.specific.num_experts == 12 * 2 and cgc.shared.num_experts == 2
    assert [w.shape[1:] for w in cgc.shared.weights] == [(192, 128), (128, 64)]
    assert [w.shape[1:] for w in model.towers.weights] == [(64, 128), (128, 64), (64, 1)]
    assert model.towers.num_heads == 12
    # The paper's gates by default; the code's behaviour is an option (and the code preset).
    assert cgc.gates.kind == "softmax" and isinstance(model.input_norm, torch.nn.Identity)


def test_code_preset_switches_to_the_codes_behaviour():
    from msmtrec.config import TrainConfig
    from msmtrec.models import resolve_preset
    from msmtrec.nn.norm import FrozenBatchNorm

    config = resolve_preset(TrainConfig(model="hinet", preset="code", model_params={"embed_dim": 8}))
    assert (config.lr, config.batch_size, config.max_epochs, config.patience) == (1e-4, 4096, 8, 8)
    model = build_model("hinet", make_schema(scenarios=3), config.model_params)
    assert model.task_experts[0].gates.kind == "sum" and model.loss_on_all_heads
    assert isinstance(model.input_norm, FrozenBatchNorm) and model.san.relu_output
    assert [m.out_features for m in model.san.gate.net if isinstance(m, torch.nn.Linear)] == [128, 64, 1, 3]
    assert model.embedding.table.embedding_dim == 8  # the explicit value wins


def test_affine_input_norm_is_the_codes_inference_mode_batch_norm():
    """tf.layers.batch_normalization(x) without training=True: normalised with the initial running
    statistics (0, 1) in training too, never updated — γ·x/√(1+ε) + β."""
    schema = make_schema(scenarios=2)
    model = hinet(schema, input_norm="affine").train()
    norm = model.input_norm
    with torch.no_grad():
        norm.weight.uniform_(0.5, 2.0)
        norm.bias.uniform_(-1.0, 1.0)
    x = torch.randn(32, model.embedding.output_dim) * 3 + 5
    torch.testing.assert_close(norm(x), norm.weight * x / (1 + 1e-3) ** 0.5 + norm.bias)
    model.task_losses(model(make_batch(schema, 32)), make_batch(schema, 32)).sum().backward()
    assert torch.equal(norm.running_mean, torch.zeros_like(norm.running_mean))
    assert torch.equal(norm.running_var, torch.ones_like(norm.running_var))
    assert norm.weight.grad.abs().sum() > 0  # γ and β train
    bn = hinet(schema, input_norm="batch_norm").train()  # a real BatchNorm normalises the batch
    out = bn.input_norm(x)
    torch.testing.assert_close(out.mean(0), torch.zeros(out.shape[1]), atol=1e-5, rtol=0)


def test_task_levels_stack_cgc_levels():
    torch.manual_seed(0)
    schema = make_schema(scenarios=3, tasks=2)
    model = hinet(schema, task_levels=3, sei_dropout=0.0)
    assert len(model.task_experts) == 3
    assert [level.shared_gate is not None for level in model.task_experts] == [True, True, False]
    batch = make_batch(schema, 30)
    out = model(batch)
    assert out.shape == (30, 2)
    model.task_losses(out, batch).sum().backward()
    for level in model.task_experts:  # every level's experts train
        assert level.specific.weights[0].grad.abs().sum() > 0 and level.shared.weights[0].grad.abs().sum() > 0


def test_shared_layer_is_the_scenario_shared_sei_only():
    """GradNorm measures gradient norms on the scenario-shared SEI: a loss that reaches only the
    scenario-specific SEIs has norm 0 there, while its gradient on the whole bank is not 0."""
    from msmtrec.train.weighting import GradNormWeighting

    schema = make_schema(scenarios=3, tasks=2)
    model = hinet(schema, sei_dropout=0.0)
    weight, rows = model.shared_layer()
    assert weight is model.scenario_experts.experts.weights[-1] and rows == slice(0, 3)
    batch = make_batch(schema, 24)
    x = model.embedding(batch.categorical, batch.numeric)
    specific_only = model.scenario_experts(x)[:, 1:].sum()
    weighting = GradNormWeighting(["a", "b"], model)
    (full,) = torch.autograd.grad(specific_only, weight, retain_graph=True)
    assert full[3:].abs().sum() > 0 and full[:3].abs().sum() == 0
    assert weighting.shared is weight and weighting.shared_rows == rows
    weighting.combine(model.task_losses(model(batch), batch)).backward()  # measures on the shared rows
    weighting.after_step()  # and steps
    w = weighting.w.detach()
    assert torch.isfinite(w).all() and not torch.equal(w, torch.ones(2))


@pytest.mark.parametrize("params, word", [({"task_layout": "tree"}, "task_layout"), ({"san_mask": "x"}, "san_mask"),
                                          ({"gate_activation": "tanh"}, "activation"), ({"sei_dropout": 1.0}, "sei_dropout"),
                                          ({"sub_experts": 0}, "sub_experts"), ({"experts": 3}, "experts"),
                                          ({"cgc_gate": "max"}, "gate kind"), ({"input_norm": "layer"}, "input_norm"),
                                          ({"task_levels": 0}, "task_levels"),
                                          ({"task_levels": 2, "task_layout": "scenario"}, "task_levels")])
def test_bad_options_raise_config_error(params, word):
    with pytest.raises(ConfigError, match=word):
        build_model("hinet", make_schema(), params)
