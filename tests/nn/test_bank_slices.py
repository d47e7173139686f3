"""Bank parameters cast and split once per forward pass (msmtrec.nn.bank_slices)."""

import contextlib

import pytest
import torch

from msmtrec.models import MODELS, build_model
from msmtrec.nn.bank_slices import bank_slice, shared_slices
from msmtrec.train.precision import Precision
from tests.conftest import make_batch, make_schema

ROLES = {"t0": "click", "t1": "conversion"}


def _step(name, shared, mixed):
    schema = make_schema(scenarios=3, task_roles=ROLES)
    torch.manual_seed(0)
    model = build_model(name, schema, {})
    data = make_batch(schema, 200)
    torch.manual_seed(1)  # the same dropout masks both ways
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if mixed else contextlib.nullcontext()
    with autocast, (shared_slices() if shared else contextlib.nullcontext()):
        out = model(data)
    model.task_losses(out, data).sum().backward()
    return {k: p.grad for k, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("mixed", [False, True], ids=["fp32", "bf16"])
@pytest.mark.parametrize("name", sorted(MODELS))
def test_shared_slices_give_every_model_the_same_gradients(name, mixed):
    """A slice's gradient is the same whether it was cut from the parameter or from one cast and
    split of it: the slices are disjoint, so the whole one's gradient assembles them exactly."""
    sliced, shared = _step(name, False, mixed), _step(name, True, mixed)
    assert sliced.keys() == shared.keys() and sliced
    for k in sliced:
        assert torch.equal(sliced[k], shared[k]), k


class Audit(torch.utils._python_dispatch.TorchDispatchMode):
    """Inside it: the storage of every tensor cast (``_to_copy``), and the shape of every
    ``slice_backward`` result (a zero-filled tensor of the whole sliced parameter)."""

    def __init__(self) -> None:
        super().__init__()
        self.cast: list[int] = []
        self.unsliced: list[tuple[int, ...]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        if name == "_to_copy":
            self.cast.append(args[0].untyped_storage().data_ptr())
        if name == "slice_backward":
            self.unsliced.append(tuple(args[1]))
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_a_bank_read_per_scenario_is_cast_once_and_its_gradient_built_once(precision):
    schema = make_schema(scenarios=3, task_roles=ROLES)
    torch.manual_seed(0)
    model = build_model("shared_bottom", schema, {})
    data = make_batch(schema, 120)  # every scenario present: the towers' bank is read three times
    banks = [p for p in model.towers.parameters()]
    storages = [p.untyped_storage().data_ptr() for p in banks]
    shapes = {tuple(p.shape) for p in banks}

    def audit(context):
        model.zero_grad()
        with Audit() as seen:
            with context:
                out = model(data)
            model.task_losses(out, data).sum().backward()
        return [storages.index(ptr) for ptr in seen.cast if ptr in storages], [s for s in seen.unsliced if s in shapes]

    plain = torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16" else contextlib.nullcontext()
    casts, unsliced = audit(plain)
    assert len(unsliced) == 3 * len(banks)  # one whole-bank gradient per scenario and parameter
    if precision == "bf16":
        assert len(casts) > len(banks)  # slice by slice
    casts, unsliced = audit(Precision(precision, "cpu").forward_pass())
    assert unsliced == []
    assert sorted(casts) == (list(range(len(banks))) if precision == "bf16" else [])  # each whole, once


def test_slices_live_for_one_forward_pass():
    """A parameter updated in place (fused Adam does not bump its version counter) is cast and
    split anew in the next pass; outside a pass, or without autocast, slices are the parameter's."""
    p = torch.nn.Parameter(torch.arange(12.0).view(6, 2))
    assert torch.equal(bank_slice(p, slice(2, 4)), p[2:4]) and bank_slice(p, slice(2, 4))._base is p
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert bank_slice(p, slice(2, 4)).dtype == torch.float32  # autocast alone: its own casting applies
        with shared_slices():
            whole = bank_slice(p)
            assert whole.dtype == torch.bfloat16 and bank_slice(p) is whole
            chunk = bank_slice(p, slice(2, 4))
            assert bank_slice(p, slice(2, 4)) is chunk and torch.equal(chunk, whole[2:4])
            assert torch.equal(bank_slice(p, slice(1, 4)), whole[1:4])  # not one of equal chunks: cut as asked
        with torch.no_grad():
            p.add_(1.0)
        with shared_slices():
            assert torch.equal(bank_slice(p, slice(2, 4)), (torch.arange(4.0, 8.0).view(2, 2) + 1).bfloat16())
    with shared_slices():
        assert bank_slice(p) is p and bank_slice(p, slice(4, 6))._base is p  # no autocast: fp32 as it is


def test_a_compiled_forward_pass_does_not_break_its_graph_at_bank_slices():
    """Dynamo cannot trace a ContextVar's ``get``: :func:`bank_slice` must answer a compiled
    forward pass before reaching it, or every bank read splits the compiled graph."""
    schema = make_schema(scenarios=3, task_roles=ROLES)
    torch.manual_seed(0)
    model = build_model("aem2tl", schema, {})
    torch._dynamo.reset()
    try:
        with shared_slices():
            explained = torch._dynamo.explain(model)(make_batch(schema, 64))
    finally:
        torch._dynamo.reset()  # leave no compiled frames of the models' code to later tests
    frames = [f.filename for b in explained.break_reasons for f in b.user_stack]
    assert explained.graph_count >= 1
    assert not [f for f in frames if f.endswith("bank_slices.py")], explained.break_reasons
