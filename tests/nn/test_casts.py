"""Bank parameters cast once per forward pass under autocast (msmtrec.nn.casts)."""

import contextlib

import pytest
import torch

from msmtrec.models import MODELS, build_model
from msmtrec.nn.casts import in_compute_dtype, shared_casts
from msmtrec.train.precision import Precision
from tests.conftest import make_batch, make_schema

ROLES = {"t0": "click", "t1": "conversion"}


def _step(name, shared):
    schema = make_schema(scenarios=3, task_roles=ROLES)
    torch.manual_seed(0)
    model = build_model(name, schema, {})
    data = make_batch(schema, 200)
    torch.manual_seed(1)  # the same dropout masks both ways
    with torch.autocast("cpu", dtype=torch.bfloat16), (shared_casts() if shared else contextlib.nullcontext()):
        out = model(data)
    model.task_losses(out, data).sum().backward()
    return {k: p.grad for k, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_shared_casts_give_every_model_the_same_gradients(name):
    """A slice's gradient is the same whether it was cut from its own cast or from the whole
    parameter's: the slices are disjoint, so the whole one's gradient adds them exactly."""
    sliced, shared = _step(name, False), _step(name, True)
    assert sliced.keys() == shared.keys() and sliced
    for k in sliced:
        assert torch.equal(sliced[k], shared[k]), k


class CastAudit(torch.utils._python_dispatch.TorchDispatchMode):
    """The storage of every tensor cast (``_to_copy``) inside it: a slice shares its parameter's."""

    def __init__(self) -> None:
        super().__init__()
        self.sources: list[int] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func.overloadpacket.__name__ == "_to_copy":
            self.sources.append(args[0].untyped_storage().data_ptr())
        return func(*args, **(kwargs or {}))


def test_a_bank_read_per_scenario_is_cast_once_in_the_trainers_autocast():
    schema = make_schema(scenarios=3, task_roles=ROLES)
    torch.manual_seed(0)
    model = build_model("shared_bottom", schema, {})
    data = make_batch(schema, 120)  # every scenario present: the towers' bank is read three times
    banks = [p.untyped_storage().data_ptr() for p in model.towers.parameters()]

    def casts(context):
        audit = CastAudit()
        with context, audit:
            model(data)
        return [banks.index(ptr) for ptr in audit.sources if ptr in banks]

    assert len(casts(torch.autocast("cpu", dtype=torch.bfloat16))) > len(banks)  # slice by slice
    assert sorted(casts(Precision("bf16", "cpu").autocast())) == list(range(len(banks)))  # each whole, once


def test_casts_live_for_one_forward_pass():
    """A parameter updated in place (fused Adam does not bump its version counter) is cast anew in
    the next pass; outside a pass, or without autocast, the parameter itself is used."""
    p = torch.nn.Parameter(torch.ones(4, 3))
    assert in_compute_dtype(p) is p
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert in_compute_dtype(p) is p  # autocast alone: its own casting applies
        with shared_casts():
            first = in_compute_dtype(p)
            assert first.dtype == torch.bfloat16 and in_compute_dtype(p) is first
        with torch.no_grad():
            p.add_(1.0)
        with shared_casts():
            assert torch.equal(in_compute_dtype(p), torch.full((4, 3), 2.0, dtype=torch.bfloat16))
    with shared_casts():
        assert in_compute_dtype(p) is p  # no autocast: fp32 as it is
