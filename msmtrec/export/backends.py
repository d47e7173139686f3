"""The three ways to run a model on encoded rows: eager PyTorch (a run directory), a TorchScript
graph and an ONNX graph (ONNX Runtime) — and how the two graphs are written.

Both graphs are captured the same way, by ``torch.jit.trace`` of
:class:`~msmtrec.export.graph.ServingModel` on the same example rows: the TorchScript file is the
trace, frozen (weights folded in as constants); the ONNX file is written by PyTorch's
TorchScript-based ONNX exporter, which runs that trace itself. (The ``torch.export``-based exporter
also exports these models, but took 10–27 s per model here against under 1 s, and its graphs ran
slower in ONNX Runtime — docs/BENCHMARKS.md.) Every backend is called as ``backend(batch)`` on an
:class:`~msmtrec.data.EncodedData` and returns ``[n, T]`` float32 probabilities.
"""

from __future__ import annotations

import contextlib
import re
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from msmtrec.data.encoded import DataSchema, EncodedData
from msmtrec.errors import ExportError
from msmtrec.export.graph import OUTPUT, ServingModel, graph_inputs, input_arrays
from msmtrec.extras import require
from msmtrec.files import atomic_write
from msmtrec.models.base import MSMTModel

FORMATS = ("onnx", "torchscript")
GRAPH_FILES = {"onnx": "model.onnx", "torchscript": "model.pt"}
#: Opsets the TorchScript-based ONNX exporter writes that these graphs can use (NonZero,
#: ScatterElements and Einsum need 12+); 17 is run by every ONNX Runtime since 1.12.
OPSETS = range(13, 21)
DEFAULT_OPSET = 17


def write_torchscript(model: MSMTModel, example: EncodedData, path: Path) -> None:
    """The model's serving graph traced on ``example`` rows, frozen (weights as constants)."""
    with _torchscript_quiet():
        frozen = torch.jit.freeze(trace(model, example).eval())
        atomic_write(path, lambda tmp: torch.jit.save(frozen, str(tmp)))


def trace(model: MSMTModel, example: EncodedData) -> torch.jit.ScriptModule:
    """The model's serving graph traced on ``example`` rows (every scenario among them)."""
    serving = ServingModel(model)
    args = tuple(getattr(example, i.name) for i in graph_inputs(model.schema))
    with torch.no_grad(), _torchscript_quiet():
        # The tracer warns about every Python value read from a tensor (AutoIFS's ticket, sizes):
        # the export checks the graph against eager on other rows instead (artifact.check_parity).
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        return torch.jit.trace(serving, args, check_trace=False)


@contextlib.contextmanager
def _torchscript_quiet():
    """No deprecation warnings from ``torch.jit`` (TorchScript is the format asked for)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.", category=DeprecationWarning)
        yield


def write_onnx(model: MSMTModel, example: EncodedData, path: Path, opset: int = DEFAULT_OPSET) -> None:
    """The model's serving graph as ONNX, traced on ``example`` rows, checked by ``onnx.checker``."""
    onnx = require("onnx", "ONNX export", "export")
    names = [i.name for i in graph_inputs(model.schema)]
    args = tuple(getattr(example, n) for n in names)
    serving = ServingModel(model)

    def export(tmp: Path) -> None:
        # The exporter traces the module itself: handed a ScriptModule from trace() it loses
        # some dtypes (a bank's bias add in AEM²TL's Task-CGC) and gives up.
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript-based exporter (see above)
            warnings.filterwarnings("ignore", message="no signature found")  # a traced module has none
            # Advanced indexing (a scenario's row of a bank) is wrong for negative indices, which
            # encoded inputs never hold.
            warnings.filterwarnings("ignore", message="Exporting aten::index operator")
            torch.onnx.export(serving, args, str(tmp), dynamo=False, input_names=names, output_names=[OUTPUT],
                              opset_version=opset, dynamic_axes={n: {0: "batch"} for n in [*names, OUTPUT]})
        onnx.checker.check_model(str(tmp))

    atomic_write(path, export)


class EagerBackend:
    """The model itself, in eval mode, under ``torch.inference_mode``."""

    name = "eager"

    def __init__(self, model: MSMTModel) -> None:
        self.model = model.eval()

    def __call__(self, batch: EncodedData) -> np.ndarray:
        with torch.inference_mode():
            return self.model.probabilities(self.model(batch)).float().numpy()


class TorchScriptBackend:
    """A TorchScript graph written by :func:`write_torchscript`."""

    name = "torchscript"

    def __init__(self, path: Path, schema: DataSchema) -> None:
        try:
            with _torchscript_quiet():
                self.module = torch.jit.load(str(path), map_location="cpu")
        except RuntimeError as e:
            raise ExportError(f"{path} is not a TorchScript graph this torch {torch.__version__} can load "
                              f"({first_line(e)})") from None
        self.names = [i.name for i in graph_inputs(schema)]

    def __call__(self, batch: EncodedData) -> np.ndarray:
        with torch.inference_mode():
            return self.module(*(getattr(batch, n) for n in self.names)).numpy()


class OnnxBackend:
    """An ONNX graph in an ONNX Runtime session (CPU), ``threads`` intra-op threads (None: its default)."""

    name = "onnx"

    def __init__(self, path: Path, schema: DataSchema, opset: int, threads: int | None = None) -> None:
        ort = require("onnxruntime", "an ONNX graph", "export")
        options = ort.SessionOptions()
        options.log_severity_level = 3  # warnings about the graph's shapes are not the user's business
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own exception types
            supported = re.search(r"support for domain ai\.onnx is till opset (\d+)", str(e))
            if supported or "opset" in str(e).lower():
                up_to = f" (it runs up to opset {supported.group(1)})" if supported else ""
                raise ExportError(f"{path} uses ONNX opset {opset}, which this onnxruntime {ort.__version__} cannot "
                                  f"run{up_to}; export again with a lower --opset, or upgrade onnxruntime") from None
            raise ExportError(f"onnxruntime {ort.__version__} cannot load {path} ({first_line(e)})") from None
        self.schema = schema

    def __call__(self, batch: EncodedData) -> np.ndarray:
        return self.session.run(None, input_arrays(batch, self.schema))[0]


Backend = Callable[[EncodedData], np.ndarray]


def first_line(e: BaseException) -> str:
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    return lines[0][:300] if lines else type(e).__name__
