"""Task roles, entire-space labels and evaluation targets shared by the entire-space models."""

import pytest
import torch

from msmtrec.data.encoded import EncodedData
from msmtrec.errors import ConfigError
from msmtrec.models import build_model
from msmtrec.models.entire_space_base import entire_space_roles
from tests.conftest import make_schema

CLICK_CONV = {"t0": "click", "t1": "conversion"}


def test_roles_are_read_by_task_name_not_position():
    schema = make_schema(tasks=3, task_roles={"t0": "conversion", "t1": "action", "t2": "click"},
                         conversion_without_click=True)
    r = entire_space_roles(schema)
    assert (r.click, r.action, r.conversion, r.conversion_without_click) == (2, 1, 0, True)
    assert r.sub_targets == ("y1", "y2", "y3", "y4", "y5")


@pytest.mark.parametrize("roles, message", [
    ({}, "need task roles"),
    ({"t0": "click", "t1": "click"}, "exactly one task with role click"),
    ({"t0": "conversion", "t1": "conversion"}, "exactly one task with role click"),
    ({"t0": "click", "t1": "purchase"}, "expected one of click, action, conversion"),
    ({"t0": "click"}, "t1 have no role"),
    ({"t0": "click", "t1": "conversion", "t9": "action"}, "unknown task"),
])
def test_invalid_roles_are_config_errors(roles, message):
    schema = make_schema(tasks=2, task_roles=roles)
    for name in ("esmm", "aem2tl"):
        with pytest.raises(ConfigError, match=message):
            build_model(name, schema, {})


def test_two_conversions_rejected():
    schema = make_schema(tasks=3, task_roles={"t0": "click", "t1": "conversion", "t2": "conversion"})
    with pytest.raises(ConfigError, match="at most one task may have role conversion"):
        build_model("aem2tl", schema, {})


def test_conversion_without_click_flag_needs_a_conversion_task():
    schema = make_schema(tasks=2, task_roles={"t0": "click", "t1": "action"}, conversion_without_click=True)
    r = entire_space_roles(schema)
    assert r.conversion is None and not r.conversion_without_click and r.sub_targets == ("y1", "y4")


def _rows(click, conv, click_mask=None, conv_mask=None):
    n = len(click)
    labels = torch.tensor([click, conv], dtype=torch.float32).T
    mask = torch.ones(n, 2, dtype=torch.bool)
    if click_mask is not None:
        mask[:, 0] = torch.tensor(click_mask)
    if conv_mask is not None:
        mask[:, 1] = torch.tensor(conv_mask)
    return EncodedData(categorical=torch.ones(n, 3, dtype=torch.int64), numeric=torch.zeros(n, 2),
                       scenario=torch.zeros(n, dtype=torch.int64), labels=labels, label_mask=mask)


def test_ctcvr_label_follows_the_graph_and_missing_labels_stay_masked():
    model = build_model("esmm", make_schema(tasks=2, task_roles=CLICK_CONV), {"tower_dims": [4]})
    # rows: clicked+converted, clicked, not clicked (conversion unlogged), click unknown (conversion unlogged)
    batch = _rows([1, 1, 0, 0], [1, 0, float("nan"), float("nan")], click_mask=[1, 1, 1, 0], conv_mask=[1, 1, 0, 0])
    labels = model.entire_space_labels(batch)
    y, m = labels["ctcvr"]
    assert m.tolist() == [True, True, True, False]
    assert y[:3].tolist() == [1.0, 0.0, 0.0]  # a non-click cannot convert: structural 0, not a guess
    assert torch.isfinite(model.task_losses(model(batch), batch)).all()


@pytest.mark.parametrize("without_click", [False, True])
def test_unknown_click_with_a_conversion(without_click):
    """Click unknown, conversion 1: "click and conversion" is 1 when conversions need a click, and
    unknown (masked) when they may skip it — in the CTCVR loss and the CTCVR target alike. Click
    unknown, conversion 0: it is 0 either way."""
    schema = make_schema(tasks=2, task_roles=CLICK_CONV, conversion_without_click=without_click)
    # rows: click unknown + converted, click unknown + not converted, clicked + converted, no click + converted
    batch = _rows([float("nan"), float("nan"), 1, 0], [1, 0, 1, 1], click_mask=[0, 0, 1, 1])
    for name, params in (("esmm", {"tower_dims": [4]}), ("aem2tl", {})):
        model = build_model(name, schema, params)
        y, m = model.entire_space_labels(batch)["ctcvr"]
        assert m.tolist() == [not without_click, True, True, True]
        assert y[1:].tolist() == [0.0, 1.0, 0.0]
        if not without_click:
            assert y[0] == 1.0
        _, y_eval, m_eval = model.eval_targets(model(batch), batch)["t1(ctcvr)"]
        assert torch.equal(m_eval, m) and torch.equal(y_eval, y)
        if name == "esmm":  # ESMM's CTCVR loss: the masked row contributes nothing (its click is unknown too)
            model.eval()
            rest = batch.take(slice(1, None))
            same = torch.allclose(model.task_losses(model(batch), batch), model.task_losses(model(rest), rest))
            assert same == without_click


def test_cvr_target_uses_clicked_rows_only():
    model = build_model("esmm", make_schema(tasks=2, task_roles=CLICK_CONV), {"tower_dims": [4]})
    batch = _rows([1, 0, 1, 0, 1], [1, 0, 0, 0, 0], click_mask=[1, 1, 1, 1, 0])
    targets = model.eval_targets(model(batch), batch)
    assert set(targets) == {"t0", "t1(ctcvr)", "t1(cvr@click)"}
    _, y, m = targets["t1(cvr@click)"]
    assert m.tolist() == [True, False, True, False, False]  # clicked and observed
    _, _, m_ctcvr = targets["t1(ctcvr)"]
    assert m_ctcvr.all()  # CTCVR over every impression
    out = model(batch)
    torch.testing.assert_close(targets["t1(cvr@click)"][0], out["cvr"])
    torch.testing.assert_close(targets["t1(ctcvr)"][0], out["ctcvr"])


def test_xcvr_target_only_when_conversions_can_skip_the_click():
    roles = {"t0": "click", "t1": "conversion"}
    with_path = build_model("aem2tl", make_schema(tasks=2, task_roles=roles, conversion_without_click=True), {})
    batch = _rows([1, 0, 0, 1], [1, 1, 0, 0])
    targets = with_path.eval_targets(with_path(batch), batch)
    assert "t1(xcvr)" in targets
    _, y, m = targets["t1(xcvr)"]
    assert y.tolist() == [1, 1, 0, 0] and m.all()  # the no-click conversion counts here ...
    assert targets["t1(ctcvr)"][1].tolist() == [1, 0, 0, 0]  # ... and not in CTCVR


def test_declared_comparable_targets_are_the_all_impressions_targets():
    roles = {"t0": "click", "t1": "conversion", "t2": "action"}
    small = {"scenario_expert_dims": [8], "task_expert_dims": [8], "tower_dims": [4]}
    batch = _rows([1, 0], [0, 0])
    batch = EncodedData(batch.categorical, batch.numeric, batch.scenario, torch.zeros(2, 3), torch.ones(2, 3, dtype=torch.bool))
    for without_click, conversion in ((False, "t1(ctcvr)"), (True, "t1(xcvr)")):
        schema = make_schema(tasks=3, task_roles=roles, conversion_without_click=without_click)
        model = build_model("aem2tl", schema, small)
        declared = [model.comparable_target(t) for t in schema.tasks]
        assert declared == ["t0", conversion, "t2(ctavr)"]
        assert set(declared) <= set(model.eval_targets(model(batch), batch))
    esmm = build_model("esmm", make_schema(tasks=2, task_roles=CLICK_CONV), {"tower_dims": [4]})
    assert [esmm.comparable_target(t) for t in ("t0", "t1")] == ["t0", "t1(ctcvr)"]
    plain = build_model("shared_bottom", make_schema(tasks=2), {"bottom_dims": [8], "tower_dims": [4]})
    assert [plain.comparable_target(t) for t in ("t0", "t1")] == ["t0", "t1"]


def test_probabilities_in_schema_order():
    schema = make_schema(tasks=3, task_roles={"t0": "conversion", "t1": "click", "t2": "action"})
    model = build_model("aem2tl", schema, {"scenario_expert_dims": [8], "task_expert_dims": [8], "tower_dims": [4]})
    batch = _rows([1, 0], [0, 0])
    batch = EncodedData(batch.categorical, batch.numeric, batch.scenario, torch.zeros(2, 3), torch.ones(2, 3, dtype=torch.bool))
    out = model(batch)
    p = model.probabilities(out)
    torch.testing.assert_close(p, torch.stack([out["xcvr"], out["ctr"], out["ctavr"]], 1))
