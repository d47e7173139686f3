"""BitDropout: nn.Dropout's semantics with a cheaper random mask."""

import pytest
import torch
from torch import nn

from msmtrec.nn.dropout import BitDropout, keep_mask, use_bit_dropout


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


def test_use_bit_dropout_replaces_every_nn_dropout():
    model = nn.Sequential(nn.Linear(3, 4), nn.Dropout(0.3), nn.Sequential(nn.ReLU(), nn.Dropout(0.6)))
    use_bit_dropout(model)
    drops = [m for m in model.modules() if isinstance(m, (nn.Dropout, BitDropout))]
    assert [type(m) for m in drops] == [BitDropout, BitDropout] and [m.p for m in drops] == [0.3, 0.6]
    with pytest.raises(ValueError, match="dropout"):
        BitDropout(1.0)
