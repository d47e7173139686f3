"""FusedSEIBank computes exactly what SEIBank computes, dropout included."""

import pytest
import torch

import msmtrec.nn.fused_sei as fused_sei
from msmtrec.nn import SEIBank
from msmtrec.nn.fused_sei import FusedSEIBank


def _pair(dims, p=0.0, seed=0):
    torch.manual_seed(seed)
    ref = SEIBank(3, 6, 4, dims, dropout=p)
    fast = FusedSEIBank(3, 6, 4, dims, dropout=p)
    fast.load_state_dict(ref.state_dict())
    return ref, fast


@pytest.mark.parametrize("dims", [(8,), (8, 5), (8, 7, 5)])
@pytest.mark.parametrize("seis", [slice(None), slice(1, 2), slice(0, 2)])
def test_matches_sei_bank_forward_and_backward(dims, seis):
    ref, fast = _pair(dims)
    x = torch.randn(9, 6)
    x1, x2 = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    y_ref, y_fast = ref(x1, seis), fast(x2, seis)
    torch.testing.assert_close(y_fast, y_ref)
    upstream = torch.randn_like(y_ref)
    (y_ref * upstream).sum().backward()
    (y_fast * upstream).sum().backward()
    torch.testing.assert_close(x2.grad, x1.grad)
    for (name, a), b in zip(ref.named_parameters(), fast.parameters()):
        torch.testing.assert_close(b.grad if b.grad is not None else torch.zeros_like(b),
                                   a.grad if a.grad is not None else torch.zeros_like(a), msg=name)


def test_dropout_matches_an_explicit_computation_with_the_same_masks(monkeypatch):
    """Masks drawn by the fused path, replayed by hand: inverted dropout after every layer."""
    ref, fast = _pair((8, 5), p=0.4)
    masks = []
    real = fused_sei.keep_bits

    def recording(shape, p, dtype, device):
        m = real(shape, p, dtype, device)
        masks.append(m != 0)
        return m

    monkeypatch.setattr(fused_sei, "keep_bits", recording)
    x = torch.randn(7, 6)
    y = fast.train()(x)
    assert len(masks) == 2 and 0.2 < 1 - masks[0].float().mean() < 0.6
    w0, w1 = ref.experts.weights
    b0, b1 = ref.experts.biases
    h = torch.relu(torch.einsum("bi,gio->bgo", x, w0) + b0) * masks[0].view(7, 12, 8) / 0.6  # [B, G, 8]
    h = torch.relu(torch.einsum("bgi,gio->bgo", h, w1) + b1) * masks[1].permute(1, 0, 2) / 0.6  # [B, G, 5]
    gate = ref.gates(x)  # [B, 3, 4]
    expected = (gate.unsqueeze(-1) * h.view(7, 3, 4, 5)).sum(2)
    torch.testing.assert_close(y, expected)
    torch.testing.assert_close(fast.eval()(x), ref.eval()(x))


def test_half_dropout_masks_replayed_by_hand(monkeypatch):
    """At p = 0.5 (HiNet's default) the masks take the one-bit path; the same replay holds."""
    ref, fast = _pair((8, 5), p=0.5)
    masks = []
    real = fused_sei.keep_bits
    monkeypatch.setattr(fused_sei, "keep_bits", lambda *a: masks.append(real(*a)) or masks[-1])
    x = torch.randn(7, 6)
    y = fast.train()(x)
    keep = [m != 0 for m in masks]
    w0, w1 = ref.experts.weights
    b0, b1 = ref.experts.biases
    h = torch.relu(torch.einsum("bi,gio->bgo", x, w0) + b0) * keep[0].view(7, 12, 8) / 0.5
    h = torch.relu(torch.einsum("bgi,gio->bgo", h, w1) + b1) * keep[1].permute(1, 0, 2) / 0.5
    expected = (ref.gates(x).unsqueeze(-1) * h.view(7, 3, 4, 5)).sum(2)
    torch.testing.assert_close(y, expected)
