"""Training precision (fp32 / bf16 / fp16) and compiled training: which options a device
accepts, what a bf16 step leaves behind (fp32 master weights, finite fp32 losses), evaluation in
the training precision, and torch.compile's results and fallback."""

import math

import pytest
import torch

import msmtrec.train.compiled as compiled_mod
from msmtrec.config import TrainConfig
from msmtrec.data import InMemoryDataset
from msmtrec.errors import ConfigError
from msmtrec.models import MODELS, build_model
from msmtrec.train import Trainer
from msmtrec.train.evaluate import collect_targets
from msmtrec.train.precision import Precision
from tests.conftest import DtypeAudit, make_batch, make_schema

ROLES = {"t0": "click", "t1": "conversion"}  # lets the entire-space models run; the others ignore it


def _trainer(name, precision="fp32", params=None, n=256, echo=None, **config):
    schema = make_schema(task_roles=ROLES)
    torch.manual_seed(0)
    model = build_model(name, schema, params or {})
    data = make_batch(schema, n)
    cfg = TrainConfig(model=name, batch_size=64, precision=precision, **config)
    return Trainer(model, cfg, InMemoryDataset(data, data, data, schema), progress=False, echo=echo), data


def test_precision_names_are_checked_by_the_config():
    assert TrainConfig(precision="bf16").precision == "bf16" and TrainConfig().precision == "fp32"
    with pytest.raises(ConfigError, match="precision must be one of fp32, bf16, fp16, got 'fp8'"):
        TrainConfig.from_dict({"precision": "fp8"})


def test_a_precision_the_device_cannot_run_is_a_config_error(monkeypatch):
    assert Precision("bf16", "cpu").forward_pass() is not None and Precision("fp32", "cpu").scaler is None
    with pytest.raises(ConfigError, match="fp16 needs a CUDA device"):
        Precision("fp16", "cpu")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a, **k: "Old GPU")
    with pytest.raises(ConfigError, match="Old GPU has no bfloat16 support; use fp16"):
        Precision("bf16", "cuda")
    with pytest.raises(ConfigError, match="fp16 needs a CUDA device"):  # refused before any training
        _trainer("shared_bottom", "fp16")


@pytest.mark.parametrize("native", [True, False])
def test_bf16_on_a_cpu_without_native_bf16_runs_with_a_note_that_says_to_use_fp32(monkeypatch, native):
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: native)
    note = Precision("bf16", "cpu").note
    assert (note is None) if native else ("emulated" in note and "use fp32" in note)
    assert Precision("fp32", "cpu").note is None
    logged = []
    _trainer("shared_bottom", "bf16", n=64, echo=logged.append)
    assert [line for line in logged if line.startswith("note: precision bf16")] == ([] if native else [f"note: {note}"])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_fp16_on_cuda_has_a_gradient_scaler():
    assert Precision("fp16", "cuda").scaler is not None and Precision("bf16", "cuda").scaler is None


@pytest.mark.parametrize("name", sorted(MODELS))
def test_a_bf16_training_step_keeps_fp32_master_weights_and_finite_fp32_losses(name):
    trainer, data = _trainer(name, "bf16")
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    audit = DtypeAudit()
    with audit:
        losses, seen = trainer.train_epoch()
    assert seen == len(data) and all(math.isfinite(v) for v in losses.values())
    matmuls = audit.matmuls()
    assert matmuls and all(dt == torch.bfloat16 for _, dt in matmuls), f"{name}: fp32 matmuls under bf16"
    params = dict(trainer.model.named_parameters())
    assert all(p.dtype == torch.float32 for p in params.values())
    assert all(p.grad.dtype == torch.float32 for p in params.values() if p.grad is not None)
    assert any(not torch.equal(before[k], p) for k, p in params.items())  # the optimiser stepped
    out = trainer.forward(data)  # what losses and metrics see
    leaves = [t for t in torch.utils._pytree.tree_leaves(out) if isinstance(t, torch.Tensor) and t.is_floating_point()]
    assert leaves and all(t.dtype == torch.float32 for t in leaves)


def test_evaluation_runs_in_the_training_precision_and_returns_fp32():
    fp32, data = _trainer("hinet")
    bf16, _ = _trainer("hinet", "bf16")
    bf16.model.load_state_dict(fp32.model.state_dict())
    a = collect_targets(fp32.model, data, 100, forward=fp32.forward)
    b = collect_targets(bf16.model, data, 100, forward=bf16.forward)
    for name in a:
        assert b[name][0].dtype == "float32"
        assert not (a[name][0] == b[name][0]).all()  # bf16 really ran ...
        assert abs(a[name][0] - b[name][0]).max() < 0.02  # ... and agrees with fp32 to bf16's precision


def test_compile_falls_back_to_eager_with_one_note(monkeypatch):
    import torch._dynamo

    calls = []

    def broken(model):
        def run(batch):
            calls.append(1)
            raise torch._dynamo.exc.TorchDynamoException("cannot trace this\nmore detail")
        return run

    monkeypatch.setattr(torch, "compile", broken)
    notes = []
    trainer, data = _trainer("shared_bottom", compile=True, params={"bottom_dims": [8], "tower_dims": [4]})
    trainer.echo = notes.append
    trainer.train_epoch()
    assert isinstance(trainer.run_model, compiled_mod.CompiledForward) and not trainer.run_model.active
    assert calls == [1]  # tried once, eager ever after
    assert notes == ["note: torch.compile failed for model 'shared_bottom' (TorchDynamoException: cannot trace "
                     "this); running it eagerly"]
    trainer.model.eval()
    torch.testing.assert_close(trainer.forward(data), trainer.model(data))


def test_compiled_and_eager_evaluation_agree():
    """One real torch.compile (slow to warm up: the smallest model, one batch shape)."""
    eager, data = _trainer("shared_bottom", params={"bottom_dims": [8], "tower_dims": [4]}, n=64)
    comp, _ = _trainer("shared_bottom", params={"bottom_dims": [8], "tower_dims": [4]}, n=64, compile=True)
    comp.model.load_state_dict(eager.model.state_dict())
    a = collect_targets(eager.model, data, 64, forward=eager.forward)
    b = collect_targets(comp.model, data, 64, forward=comp.forward)
    assert comp.run_model.active  # it really ran compiled
    for name in a:
        torch.testing.assert_close(torch.from_numpy(b[name][0]), torch.from_numpy(a[name][0]), rtol=1e-5, atol=1e-6)


def test_compiled_training_takes_gradnorms_extra_backward_passes():
    """GradNorm's per-loss gradients go through the compiled graph with retain_graph, which a
    compiled backward with donated buffers refuses: compiled training learns the weights eager does."""
    params = {"bottom_dims": [8], "tower_dims": [4]}
    eager, _ = _trainer("shared_bottom", params=params, n=128, weighting="gradnorm")
    comp, _ = _trainer("shared_bottom", params=params, n=128, weighting="gradnorm", compile=True)
    eager.train_epoch()
    comp.train_epoch()
    assert comp.run_model.active
    learned = comp.weighting.weights()
    assert learned != {"t0": 1.0, "t1": 1.0}
    assert learned == pytest.approx(eager.weighting.weights(), abs=1e-4)


def test_the_scaled_step_unscales_before_the_update_and_skips_an_overflow():
    """fp16's path (scale → backward → unscale + step → update), exercised with a CPU scaler."""
    prec = Precision("bf16", "cpu")
    prec.scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    w = torch.nn.Parameter(torch.tensor([1.0, 2.0]))
    opt = torch.optim.SGD([w], lr=0.1)
    prec.backward_step((w * torch.tensor([3.0, 4.0])).sum(), opt)
    torch.testing.assert_close(w.detach(), torch.tensor([0.7, 1.6]))  # the true gradient, not 1024x
    opt.zero_grad()
    prec.backward_step(w.sum() * float("inf"), opt)  # overflowing gradients: no step, smaller scale
    torch.testing.assert_close(w.detach(), torch.tensor([0.7, 1.6]))
    assert prec.scaler.get_scale() < 1024.0
