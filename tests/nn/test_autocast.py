"""The shared blocks under bf16 autocast: every activation stays bf16 forward and backward (no
silent fp32 fallback, no bf16 ↔ fp32 round trips), and chunks handed to row-wise functions are
padded to a few shapes (oneDNN compiles a kernel per matmul shape)."""

import pytest
import torch

from msmtrec.nn import CGC, ExpertBank, MixingGateBank, ScenarioGroups, SEIBank, TowerBank
from msmtrec.nn.experts import mix
from msmtrec.nn.fused_sei import FusedSEIBank
from msmtrec.nn.gate_nu import GateNUBank
from msmtrec.nn.lora import LoRABank
from msmtrec.nn.scenario_cgc import ScenarioCGC
from tests.conftest import DtypeAudit

B = 512  # rows; every weight below has fewer elements, so "numel >= B" means an activation
IN = 6


def _blocks():
    """``(name, block, run)``: ``run(block, x2 [B, in], x3 [B, 3, in], w [B, 2, 4])`` → a tensor;
    ``x2`` is fp32 (an embedding), ``x3`` and ``w`` bf16 (per-head inputs and gate weights come from
    blocks under autocast)."""
    gates = GateNUBank(3, IN, 5)
    lora = LoRABank(3, IN, 5, 2)
    torch.nn.init.normal_(lora.B)
    idx = torch.randint(0, 3, (B,))
    yield "tower bank, shared input", TowerBank(3, IN, [5, 4], 1), lambda m, x2, x3, w: m(x2)
    yield "tower bank, per-head input + gates", TowerBank(3, IN, [5], 1), \
        lambda m, x2, x3, w: m(x3, gates=[gates(x2)])
    yield "expert bank", ExpertBank(4, IN, [5, 3]), lambda m, x2, x3, w: m(x2, slice(1, 3))
    yield "mixing gates (relu)", MixingGateBank(3, IN, 4, activation="relu"), lambda m, x2, x3, w: m(x3)
    yield "SEI bank", SEIBank(2, IN, 3, [5, 4]), lambda m, x2, x3, w: m(x2)
    yield "fused SEI bank, dropout", FusedSEIBank(2, IN, 3, [5, 4], dropout=0.5), lambda m, x2, x3, w: m(x2)
    yield "CGC with shared gates", CGC(4, IN, 2, 1, [5], shared_gate_groups=2), \
        lambda m, x2, x3, w: torch.cat([t.flatten(1) for t in m(x2, None, slice(2, 4))], 1)
    yield "scenario CGC", ScenarioCGC(3, 2, IN, 1, 2, [5]), lambda m, x2, x3, w: m(x2, slice(1, 2))
    yield "LoRA bank, per-row groups", lora, lambda m, x2, x3, w: m(x2, idx)
    yield "LoRA bank, one group", lora, lambda m, x2, x3, w: m.group(x2, 1)
    yield "LoRA bank, all groups", LoRABank(2, IN, 1, 2), lambda m, x2, x3, w: m.all_groups(x3)
    yield "Gate NU bank", gates, lambda m, x2, x3, w: m(x2, slice(0, 2))
    yield "mix", ExpertBank(4, IN, [5]), lambda m, x2, x3, w: mix(torch.softmax(w, -1), m(x2).unsqueeze(1))


@pytest.mark.parametrize("name,block,run", list(_blocks()), ids=[b[0] for b in _blocks()])
def test_block_stays_in_bf16_forward_and_backward(name, block, run):
    torch.manual_seed(0)
    block.train()
    inputs = torch.randn(B, IN), torch.randn(B, 3, IN, dtype=torch.bfloat16), torch.randn(B, 2, 4, dtype=torch.bfloat16)
    audit = DtypeAudit()
    with audit:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = run(block, *inputs)
        assert out.dtype == torch.bfloat16
        out.backward(torch.ones_like(out))  # a bf16 upstream gradient: nothing fp32 at the boundary
    assert audit.fp32(B) == [], f"{name}: activation-sized fp32 ops under autocast"
    assert audit.matmuls() and all(dt == torch.bfloat16 for _, dt in audit.matmuls())
    grads = [p.grad for p in block.parameters() if p.requires_grad and p.grad is not None]
    assert grads and all(g.dtype == torch.float32 for g in grads)  # master weights stay fp32


def _blocks_seen(rowwise, autocast):
    scenario = torch.tensor([0] * 70 + [2] * 5 + [1] * 130)[torch.randperm(205, generator=torch.Generator().manual_seed(0))]
    x = torch.randn(205, 4)
    seen = []

    def fn(s, block):
        seen.append(block.shape[0])
        return block.sum(1, keepdim=True) * (s + 1)  # row-wise

    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        groups = ScenarioGroups(scenario, 3, rowwise=rowwise)
        out = groups.apply(fn, x)
    assert torch.equal(groups.restore(groups.sort(x)), x)
    return seen, out, (x.sum(1, keepdim=True) * (scenario + 1).unsqueeze(1)), groups


def test_rowwise_groups_pad_blocks_under_autocast_only_and_drop_the_padding():
    seen, out, expected, groups = _blocks_seen(rowwise=True, autocast=True)
    assert seen == groups.sizes == [128, 192, 64] and groups.counts == [70, 130, 5]
    torch.testing.assert_close(out, expected)
    blocks = groups.split(torch.ones(205, 2))  # real rows first in each block, then zero rows
    assert [int(b[:, 0].sum()) for b in blocks] == groups.counts and all(b[n:].abs().sum() == 0
                                                                          for b, n in zip(blocks, groups.counts))
    for rowwise, autocast in ((True, False), (False, True)):  # fp32, or a function that couples rows
        seen, out, expected, groups = _blocks_seen(rowwise, autocast)
        assert seen == groups.sizes == [70, 130, 5]
        torch.testing.assert_close(out, expected)
