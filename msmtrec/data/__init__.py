"""The data layer: raw files → encoded tensors, fitted on the train split only.

Typical use::

    from msmtrec.data import load_dataset

    ds = load_dataset("womens-ecommerce")          # a built-in name, or a path to a YAML spec
    print(ds.summary())                              # rows per split, dropped rows, label rates
    for batch in ds.train_batches(epoch=0):
        ...

Modules, in the order data flows through them: :mod:`~msmtrec.data.spec` (the declared spec; its
building blocks in :mod:`~msmtrec.data.spec_types`, list and sequence features in
:mod:`~msmtrec.data.spec_lists`), :mod:`~msmtrec.data.csv_options` (how a CSV is parsed),
:mod:`~msmtrec.data.io` (the one reader; splits), :mod:`~msmtrec.data.fingerprint` (what the files
were), :mod:`~msmtrec.data.fit` (one fitted piece per module) and :mod:`~msmtrec.data.fitter` (the
one fitter), :mod:`~msmtrec.data.history` (histories built from the log),
:mod:`~msmtrec.data.encode` (encoders), :mod:`~msmtrec.data.encoded` (the tensors),
:mod:`~msmtrec.data.dataset` (in-memory and streamed datasets),
:mod:`~msmtrec.data.quality` (the report's warnings), :mod:`~msmtrec.data.stream` (shuffle buffer,
read-ahead), :mod:`~msmtrec.data.catalog` (built-in datasets).
"""

from msmtrec.data.catalog import builtin_datasets, describe_dataset, resolve_spec
from msmtrec.data.dataset import Dataset, InMemoryDataset, StreamedDataset, load_dataset, open_dataset, open_streaming
from msmtrec.data.encode import Encoders
from msmtrec.data.encoded import DataSchema, EncodedData, iterate_batches
from msmtrec.data.io import read_table
from msmtrec.data.spec import DatasetSpec, load_spec

__all__ = [
    "DataSchema", "Dataset", "DatasetSpec", "EncodedData", "Encoders", "InMemoryDataset", "StreamedDataset",
    "builtin_datasets", "describe_dataset", "iterate_batches", "load_dataset", "load_spec", "open_dataset",
    "open_streaming", "read_table", "resolve_spec",
]
