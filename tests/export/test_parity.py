"""Every registered model exports in both formats, and the graph gives the eager model's
probabilities within 1e-5 on real rows (the run's test split, encoded by its encoders): whole, one
scenario alone, a few rows — the batch axis is dynamic and the routing is inside the graph."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from msmtrec.data.encoded import EncodedData
from msmtrec.export import export_run, read_export
from msmtrec.export.backends import EagerBackend
from msmtrec.models import MODELS
from msmtrec.train import load_run, run_dataset

#: Options whose forward takes another path, exported too.
VARIANTS = {
    "hinet": [{"task_layout": "scenario"}, {"loss_on_all_heads": True, "gate_activation": "relu"},
              {"task_levels": 2, "cgc_gate": "sum"}],
    "autoifs": [{"decomposition": "code", "scenario_routing": "gather"}, {"selector": "instance"}],
    "aem2tl": [{"entire_space": False}, {"task_cgc": False, "scenario_cgc": False}],
    "star": [{"partitioned_norm": False}],
    "esmm": [{"bottom_dims": [8]}],
    "ple": [{"num_levels": 1}],
}
#: Every model at its defaults, each of its presets, and the variants above.
CASES = [(name, {}) for name in sorted(MODELS)] + \
    [(name, preset.settings.get("model_params", {})) for name in sorted(MODELS)
     for preset in getattr(MODELS[name], "presets", {}).values()] + \
    [(n, v) for n, vs in VARIANTS.items() for v in vs]


def batches(data: EncodedData) -> dict[str, EncodedData]:
    """The rows to compare on: all, one scenario's, the first 3 and a single row."""
    one = data.take((data.scenario == 1).nonzero().view(-1))
    return {"all": data, "one scenario": one, "3 rows": data.take(slice(0, 3)), "1 row": data.take(slice(5, 6))}


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
@pytest.mark.parametrize("name,options", CASES, ids=[f"{n}{'-' + '-'.join(o) if o else ''}" for n, o in CASES])
def test_export_matches_eager_on_real_rows(runs, tmp_path, name, options, fmt):
    run_dir = runs(name, **options)
    folder = export_run(run_dir, fmt, tmp_path / "export")
    export = read_export(folder)
    run = load_run(run_dir)
    assert export.format == fmt and export.schema == run.schema
    test = run_dataset(run).test
    assert len(test) > 50 and test.lists is not None and len(set(test.scenario.tolist())) == 3
    eager, graph = EagerBackend(run.model), export.backend(threads=1)
    for what, batch in batches(test).items():
        expected, got = eager(batch), graph(batch)
        assert got.shape == expected.shape == (len(batch), 2), what
        assert np.abs(got - expected).max() <= 1e-5, what
        assert np.all((got > 0) & (got < 1)), what
    if name == "autoifs":
        assert bool(run.model.ticket)  # a trained AutoIFS scores with its hard gates


def test_the_onnx_graph_declares_a_dynamic_batch_axis(runs, tmp_path):
    folder = export_run(runs("shared_bottom"), "onnx", tmp_path / "export")
    graph = onnx.load(str(folder / "model.onnx")).graph
    manifest = read_export(folder).manifest
    shapes = {v.name: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
              for v in [*graph.input, *graph.output]}
    assert shapes == {"categorical": ["batch", 3], "numeric": ["batch", 1], "scenario": ["batch"],
                      "lists": ["batch", 3 + 4 + 2 * 5], "list_lengths": ["batch", 3], "probabilities": ["batch", 2]}
    assert {i["name"]: i["shape"] for i in manifest["inputs"]} == {k: v for k, v in shapes.items() if k != "probabilities"}
