"""Export for serving: a trained run's model as a TorchScript or ONNX graph in a folder with the
run's encoders and a manifest (:func:`export_run`), and :class:`Scorer`, which scores raw rows with
an export folder or a run directory.

Modules: :mod:`~msmtrec.export.graph` (the graph's inputs and output), :mod:`~msmtrec.export.backends`
(writing and running the graphs), :mod:`~msmtrec.export.artifact` (the folder and its manifest),
:mod:`~msmtrec.export.scorer`.
"""

from msmtrec.export.artifact import Export, export_run, read_export
from msmtrec.export.backends import FORMATS
from msmtrec.export.scorer import Scorer

__all__ = ["Export", "FORMATS", "Scorer", "export_run", "read_export"]
