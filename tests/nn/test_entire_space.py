"""The entire-space composition (AEM²TL Eq. 15–21) against an enumeration of the behaviour graph."""

import itertools

import pytest
import torch

from msmtrec.nn.entire_space import compose_entire_space


def _sub_targets(n=500, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.rand(5, n, generator=g, dtype=torch.float64)
    y[:, :5] = torch.tensor([0.0, 1.0, 0.0, 1.0, 0.5], dtype=torch.float64).unsqueeze(1)  # include the edges
    return y.unbind(0)


def _enumerate_graph(y1, y2, y3, y4, y5):
    """P(conversion) and P(click ∧ conversion) summed over the paths impression → click → action → conversion."""
    p_conv = torch.zeros_like(y1)
    p_click_conv = torch.zeros_like(y1)
    for c, a in itertools.product((0, 1), (0, 1)):
        p_c = y1 if c else 1 - y1
        p_a = (y4 if a else 1 - y4) if c else torch.full_like(y1, float(a == 0))  # no action without a click
        p_b = (y5 if a else y2) if c else y3
        p_conv = p_conv + p_c * p_a * p_b
        if c:
            p_click_conv = p_click_conv + p_c * p_a * p_b
    return p_conv, p_click_conv


def test_composition_matches_the_behaviour_graph():
    y1, y2, y3, y4, y5 = _sub_targets()
    out = compose_entire_space(y1, y2, y3, y4, y5)
    p_conv, p_click_conv = _enumerate_graph(y1, y2, y3, y4, y5)
    torch.testing.assert_close(out["xcvr"], p_conv)
    torch.testing.assert_close(out["ctcvr"], p_click_conv)
    torch.testing.assert_close(out["ctavr"], y1 * y4)
    # cvr is the post-click conversion rate: P(click ∧ conv) / P(click) where a click is possible
    clicked = y1 > 0
    torch.testing.assert_close(out["cvr"][clicked], (p_click_conv / y1)[clicked])


def test_composed_probabilities_are_in_unit_interval_and_ordered():
    y1, y2, y3, y4, y5 = _sub_targets(seed=1)
    out = compose_entire_space(y1, y2, y3, y4, y5)
    for name, p in out.items():
        assert ((p >= 0) & (p <= 1)).all(), name
    assert (out["ctcvr"] <= out["ctr"]).all()
    assert (out["ctavr"] <= out["ctr"]).all()
    assert (out["ctcvr"] <= out["xcvr"]).all()


def test_without_no_click_and_action_branches_it_is_esmm():
    y1, y2, y3, y4, y5 = _sub_targets(seed=2)
    zero = torch.zeros_like(y1)
    full = compose_entire_space(y1, y2, zero, zero, y5)
    esmm = compose_entire_space(y1, y2)
    for name in ("ctr", "cvr", "ctcvr", "xcvr"):
        torch.testing.assert_close(full[name], esmm[name])
    torch.testing.assert_close(esmm["ctcvr"], y1 * y2)
    torch.testing.assert_close(esmm["xcvr"], y1 * y2)
    assert "ctavr" not in esmm


def test_inconsistent_branches_are_rejected():
    y = torch.rand(4)
    with pytest.raises(ValueError, match="y5"):
        compose_entire_space(y, y, None, y, None)
    with pytest.raises(ValueError, match="y2"):
        compose_entire_space(y, None, y)
