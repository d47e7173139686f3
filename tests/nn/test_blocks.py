import pytest
import torch

from msmtrec.nn import CGC, MLP, CGCStack, ExpertBank, FeatureEmbedding, MixingGateBank, ScenarioGroups, SEIBank, TowerBank
from msmtrec.nn.grouping import capturing
from msmtrec.nn.mlp import activation


def test_feature_embedding_offsets_use_each_fields_own_rows():
    emb = FeatureEmbedding([3, 5], dim=4, num_numeric=2)
    cat = torch.tensor([[1, 4], [0, 0]])
    num = torch.tensor([[0.5, -1.0], [2.0, 3.0]])
    out = emb(cat, num)
    assert out.shape == (2, 2 * 4 + 2)
    w = emb.table.weight
    # field 1 id 4 lives at row 3 + 4 = 7 of the fused table
    torch.testing.assert_close(out[0, :4], w[1])
    torch.testing.assert_close(out[0, 4:8], w[7])
    torch.testing.assert_close(out[1, 4:8], w[3])
    torch.testing.assert_close(out[:, 8:], num)


def test_tower_bank_equals_independent_linear_towers():
    torch.manual_seed(0)
    bank = TowerBank(num_heads=3, in_dim=5, hidden=[4], out_dim=1)
    x = torch.randn(7, 5)
    out = bank(x)  # [7, 3, 1]
    for h in range(3):
        w0, b0 = bank.weights[0][h], bank.biases[0][h]
        w1, b1 = bank.weights[1][h], bank.biases[1][h]
        ref = torch.relu(x @ w0 + b0) @ w1 + b1
        torch.testing.assert_close(out[:, h], ref)
    # a slice of heads runs exactly those towers
    torch.testing.assert_close(bank(x, slice(1, 3)), out[:, 1:3])
    # per-head inputs
    xh = torch.randn(7, 3, 5)
    outh = bank(xh)
    torch.testing.assert_close(outh[:, 2], bank(xh[:, 2])[:, 2])


def test_tower_bank_gates_scale_hidden_layer():
    torch.manual_seed(0)
    bank = TowerBank(2, 3, [4], 1)
    x = torch.randn(5, 3)
    zero = [torch.zeros(5, 2, 4)]
    # zero gates kill the hidden layer: output equals the last bias
    out = bank(x, gates=zero)
    torch.testing.assert_close(out, bank.biases[1].unsqueeze(0).expand(5, 2, 1))


def test_expert_bank_matches_loop_over_experts():
    torch.manual_seed(1)
    bank = ExpertBank(4, 6, [5, 3])
    x = torch.randn(9, 6)
    out = bank(x)
    assert out.shape == (9, 4, 3)
    for e in range(4):
        h = torch.relu(x @ bank.weights[0][e] + bank.biases[0][e])
        h = torch.relu(h @ bank.weights[1][e] + bank.biases[1][e])
        torch.testing.assert_close(out[:, e], h)


def test_mixing_gate_bank_rows_sum_to_one_and_relu_variant():
    torch.manual_seed(2)
    g = MixingGateBank(3, 4, 5)
    w = g(torch.randn(10, 4))
    assert w.shape == (10, 3, 5)
    torch.testing.assert_close(w.sum(-1), torch.ones(10, 3))
    assert (w > 0).all()
    g_relu = MixingGateBank(3, 4, 5, activation="relu")
    x = torch.randn(10, 4)
    logits = torch.relu(torch.einsum("bi,gie->bge", x, g_relu.weight) + g_relu.bias)
    torch.testing.assert_close(g_relu(x), torch.softmax(logits, -1))


def test_sum_gate_has_no_parameters_and_weights_every_entry_one():
    g = MixingGateBank(3, 4, 5, kind="sum")
    assert list(g.parameters()) == []
    torch.testing.assert_close(g(torch.randn(10, 4), slice(1, 3)), torch.ones(10, 2, 5))
    torch.testing.assert_close(g(torch.randn(10, 2, 4), slice(1, 3)), torch.ones(10, 2, 5))


def test_cgc_stack_runs_each_scenarios_own_heads_level_by_level():
    """Two levels: the first level's head outputs feed the second level's head experts and its
    per-scenario shared gate feeds the second level's shared experts (PLE)."""
    torch.manual_seed(5)
    stack = CGCStack(2, num_scenarios=2, num_tasks=2, in_dim=5, n_specific=1, n_shared=1, expert_hidden=[3])
    x0, x1 = torch.randn(4, 5), torch.randn(6, 5)
    out0, out1 = stack([(0, x0), (1, x1)])
    assert out0.shape == (4, 2, 3) and out1.shape == (6, 2, 3)
    first, last = stack
    for s, x, out in ((0, x0, out0), (1, x1, out1)):
        heads, shared = first(x, x, slice(2 * s, 2 * s + 2))
        expected, none = last(heads, shared, slice(2 * s, 2 * s + 2))
        assert none is None
        torch.testing.assert_close(out, expected)
    torch.testing.assert_close(stack([(1, x1)])[0], out1)  # a chunk's result does not depend on the others


def test_sei_bank_is_gated_sum_of_its_own_sub_experts():
    torch.manual_seed(3)
    sei = SEIBank(num_seis=3, in_dim=4, num_sub_experts=2, hidden=[6])
    x = torch.randn(8, 4)
    out = sei(x)
    assert out.shape == (8, 3, 6)
    sub = sei.experts(x).view(8, 3, 2, 6)
    gates = sei.gate_weights(x)
    torch.testing.assert_close(out, (gates.unsqueeze(-1) * sub).sum(2))
    torch.testing.assert_close(sei(x, slice(1, 2))[:, 0], out[:, 1])


def test_cgc_head_gate_covers_own_and_shared_experts_only():
    torch.manual_seed(4)
    cgc = CGC(num_heads=4, in_dim=5, n_specific=2, n_shared=1, expert_hidden=[3], shared_gate_groups=2)
    x = torch.randn(6, 5)
    heads, shared = cgc(x, x, slice(2, 4))
    assert heads.shape == (6, 2, 3) and shared.shape == (6, 3)
    spec = cgc.specific(x).view(6, 4, 2, 3)
    sh = cgc.shared(x)
    g = cgc.gate_weights(x)  # [6, 4, 3]
    torch.testing.assert_close(g.sum(-1), torch.ones(6, 4))
    for j, h in enumerate([2, 3]):
        experts = torch.cat([spec[:, h], sh], dim=1)
        torch.testing.assert_close(heads[:, j], (g[:, h].unsqueeze(-1) * experts).sum(1))
    # shared gate of group 1 mixes heads 2-3's specific experts + the shared expert
    sg = cgc.shared_gate(x, slice(1, 2))[:, 0]
    everything = torch.cat([spec[:, 2:4].reshape(6, 4, 3), sh], dim=1)
    torch.testing.assert_close(shared, (sg.unsqueeze(-1) * everything).sum(1))


def test_scenario_groups_round_trip_and_apply():
    s = torch.tensor([2, 0, 2, 1, 0])
    g = ScenarioGroups(s, 4)
    x = torch.arange(5.0).unsqueeze(1)
    chunks = g.split(x)
    assert [c.shape[0] for c in chunks] == [2, 1, 2, 0]
    torch.testing.assert_close(g.merge(chunks), x)
    torch.testing.assert_close(g.restore(x[g.order]), x)
    out = g.apply(lambda sc, xs: xs + 100 * sc, x)
    torch.testing.assert_close(out.squeeze(1), torch.tensor([200.0, 1, 202, 103, 4]))


@pytest.mark.filterwarnings("ignore:`torch.jit.trace` is deprecated")
def test_scenario_groups_in_a_traced_graph_route_rows_the_tracing_batch_did_not_have():
    weight = torch.tensor([1.0, 10.0, 100.0])

    def scores(x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        groups = ScenarioGroups(s, 3)
        assert groups.present == [0, 1, 2] or not capturing()
        return groups.apply(lambda sc, xs: xs * weight[sc] + sc, x)

    with torch.no_grad():
        graph = torch.jit.trace(scores, (torch.ones(6, 2), torch.tensor([0, 1, 2, 0, 1, 2])))
    x, s = torch.randn(5, 2), torch.tensor([2, 2, 0, 2, 0])  # scenario 1 absent, other order and size
    torch.testing.assert_close(graph(x, s), scores(x, s))
    torch.testing.assert_close(graph(x, s)[:, 0], x[:, 0] * weight[s] + s)
    assert graph(x[:0], s[:0]).shape == (0, 2)


def test_mlp_and_activation_errors():
    m = MLP(3, [4, 2], 1, dropout=0.1, batch_norm=True)
    assert m(torch.randn(5, 3)).shape == (5, 1)
    try:
        activation("swishy")
    except ValueError as e:
        assert "swishy" in str(e)
    else:
        raise AssertionError("unknown activation accepted")
