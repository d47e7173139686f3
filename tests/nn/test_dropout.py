"""BitDropout: nn.Dropout's semantics with a cheaper random mask."""

import pytest
import torch
from torch import nn

from msmtrec.nn import MLP
from msmtrec.nn.dropout import BitDropout, keep_bits, keep_mask, zero_dropped_


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_drop_rate_and_scaling(p):
    torch.manual_seed(0)
    x = torch.ones(200, 501)  # odd size: the mask is cut from whole 64-bit words
    y = BitDropout(p).train()(x)
    dropped = (y == 0).float().mean().item()
    assert abs(dropped - p) < 0.01
    kept = y[y != 0]
    torch.testing.assert_close(kept, torch.full_like(kept, 1 / (1 - p)))
    assert abs(y.mean().item() - 1.0) < 0.03  # expectation preserved


def test_mask_elements_are_independent_of_their_position():
    torch.manual_seed(1)
    m = keep_mask(torch.Size([4000, 8]), 0.5, torch.device("cpu")).float()
    col = m.mean(0)  # every position within a 64-bit word keeps ~half
    assert ((col - 0.5).abs() < 0.03).all()
    assert abs(torch.corrcoef(torch.stack([m[:, 0], m[:, 1]]))[0, 1].item()) < 0.05


def test_eval_is_identity_and_zero_p_is_identity():
    x = torch.randn(5, 7)
    assert BitDropout(0.5).eval()(x) is x
    assert BitDropout(0.0).train()(x) is x


def test_gradient_is_the_mask_times_the_scale_and_seeded_runs_repeat():
    x = torch.randn(64, 33, requires_grad=True)
    torch.manual_seed(3)
    y = BitDropout(0.25).train()(x)
    y.sum().backward()
    torch.testing.assert_close(x.grad, (y != 0).float() / 0.75)
    torch.manual_seed(3)
    torch.testing.assert_close(BitDropout(0.25).train()(x), y)


def test_the_blocks_build_bit_dropout():
    drops = [m for m in MLP(3, [4, 5], dropout=0.3).modules() if isinstance(m, (nn.Dropout, BitDropout))]
    assert [type(m) for m in drops] == [BitDropout, BitDropout] and [m.p for m in drops] == [0.3, 0.3]
    with pytest.raises(ValueError, match="dropout"):
        BitDropout(1.0)


@pytest.mark.parametrize("p", [0.5, 0.3])
def test_backward_masks_a_non_contiguous_input_like_its_forward(p):
    x = torch.randn(33, 17).t().requires_grad_(True)  # a transposed view
    upstream = torch.randn(17, 33)
    y = BitDropout(p).train()(x)
    (y * upstream).sum().backward()
    keep = y != 0
    torch.testing.assert_close(y[keep], x.detach()[keep] / (1 - p))
    torch.testing.assert_close(x.grad, upstream * keep / (1 - p))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32, torch.float64])
@pytest.mark.parametrize("p", [0.5, 0.3])
def test_keep_bits_are_all_ones_or_zero_at_the_rate_independent_of_position(dtype, p):
    """Both paths (one bit per element at p = 0.5, keep_mask otherwise), every integer width."""
    torch.manual_seed(2)
    bits = keep_bits(torch.Size([6000, 67]), p, dtype, torch.device("cpu"))  # 67: not a whole word
    assert bits.shape == (6000, 67) and bits.element_size() == dtype.itemsize
    assert set(bits.unique().tolist()) == {0, -1}  # -1: every bit set
    keep = (bits != 0).float()
    assert abs(keep.mean().item() - (1 - p)) < 0.005
    flat = keep.flatten()[: 6000 * 64].view(-1, 64)  # every bit position of a 64-bit word
    assert ((flat.mean(0) - (1 - p)).abs() < 0.03).all()
    assert abs(torch.corrcoef(torch.stack([flat[:, 0], flat[:, 1]]))[0, 1].item()) < 0.05
    torch.manual_seed(2)
    assert torch.equal(keep_bits(torch.Size([6000, 67]), p, dtype, torch.device("cpu")), bits)


def test_half_rate_masks_use_each_random_bit_once():
    """At p = 0.5 the kept elements are exactly the set bits of the random words drawn (no bit
    reused for two elements, none skipped): their counts agree for a whole number of words."""
    n = 6000 * 64
    for dtype in (torch.bfloat16, torch.float32):
        torch.manual_seed(5)
        kept = int((keep_bits(torch.Size([6000, 64]), 0.5, dtype, torch.device("cpu")) != 0).sum())
        torch.manual_seed(5)
        words = torch.randint(-2**63, 2**63 - 1, (n // 64,), dtype=torch.int64)
        set_bits = int(((words.unsqueeze(1) >> torch.arange(64)) & 1).sum())
        assert kept == set_bits


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64, torch.float16])
@pytest.mark.parametrize("p", [0.5, 0.3])
def test_zero_dropped_equals_multiplying_by_the_mask(dtype, p):
    x = torch.randn(37, 11).to(dtype)
    bits = keep_bits(x.shape, p, x.dtype, x.device)
    out = zero_dropped_(x.clone(), bits)
    assert out.dtype == dtype and 0 < int((out == 0).sum()) < x.numel()
    assert torch.equal(out, x * (bits != 0))
