"""Property-based: whatever a user hands the spec loader, the readers, the model options or
``predict`` — random spec files, tables of random types holding NaN, inf, empty strings and
unicode, random CSV and model options — the library either succeeds or raises its own error
(:class:`~msmtrec.errors.MsmtrecError`) in one line. Any other exception fails the test.

``MSMTREC_PROPERTY_EXAMPLES`` sets the examples per property (default 60, a few seconds each)."""

from __future__ import annotations

import csv
import datetime as dt
import os
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from msmtrec.config import TrainConfig
from msmtrec.data import load_dataset, load_spec, open_streaming
from msmtrec.errors import MsmtrecError
from msmtrec.models import MODELS, build_model
from msmtrec.models.base import model_hyperparameters
from msmtrec.predict import predict_file
from msmtrec.train import train
from tests.conftest import make_schema

#: Examples per property: a few seconds each in CI; MSMTREC_PROPERTY_EXAMPLES=2000 for a longer hunt.
EXAMPLES = int(os.environ.get("MSMTREC_PROPERTY_EXAMPLES", 60))
PROPERTY = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))


def outcome(run: Callable[[], Any]) -> Any:
    """``run()``'s result, or the library error it raised after checking it is one line."""
    try:
        return run()
    except MsmtrecError as err:
        message = str(err)
        assert message.strip() and "\n" not in message and "\r" not in message, repr(message)
        return err


# ---- values, columns, tables ------------------------------------------------------------------

TEXT = st.sampled_from(["", " ", "?", "NA", "null", "yes", "no", "0", "1", "1.5", "-3", "2024-01-02", "01/02/2024",
                        ";", ",", '"', "'", "\t", "a\nb", "é", "∞", "日本", "nan", "inf", "-inf", "1e400", "x" * 30,
                        "9223372036854775808"]) | st.text(max_size=5)
KINDS = ["int", "float", "text", "bool", "time", "null", "mixed"]
CELL = {
    "int": st.none() | st.integers(-3, 5) | st.integers(-2**63, 2**63 - 1),
    "float": st.none() | st.floats(allow_nan=True, allow_infinity=True, width=64) | st.sampled_from([0.0, 1.0, -0.5]),
    "text": st.none() | TEXT,
    "bool": st.none() | st.booleans(),
    "time": st.none() | st.datetimes(dt.datetime(1970, 1, 2), dt.datetime(2100, 1, 1)),
    "null": st.none(),
}
CELL["mixed"] = st.one_of(*CELL.values())
CELL["binary"] = st.sampled_from([0, 1, 1, 0, None])  # a label as it should be, mostly
CELL["few"] = st.sampled_from(["a", "b", "b", "", None, "日本"])  # scenario names, mostly
NAMES = ["s", "y", "c", "n", "u", "t", "col 1", "é", "1e5"]


@st.composite
def tables(draw: st.DrawFn, names: list[str] = NAMES) -> dict[str, tuple[str, list[Any]]]:
    """Column name → (kind, values), 2–6 columns of 0–30 rows."""
    columns = draw(st.lists(st.sampled_from(names), min_size=2, max_size=6, unique=True))
    rows = draw(st.integers(0, 30))
    out = {}
    for name in columns:
        kind = draw(st.sampled_from(KINDS))
        out[name] = (kind, draw(st.lists(CELL[kind], min_size=rows, max_size=rows)))
    return out


def _arrow(kind: str, values: list[Any]) -> pa.Array:
    types = {"int": pa.int64(), "float": pa.float64(), "text": pa.string(), "bool": pa.bool_(),
             "time": pa.timestamp("us"), "null": pa.null(), "binary": pa.int64(), "few": pa.string()}
    if kind == "mixed":
        return pa.array([None if v is None else str(v) for v in values], pa.string())
    return pa.array(values, types[kind])


def write_table(table: dict[str, tuple[str, list[Any]]], path: Path, delimiter: str = ",", quote: str = '"',
                encoding: str = "utf-8") -> None:
    """As Parquet (one type per column) or CSV (every cell as text; None as an empty field)."""
    if path.suffix == ".parquet":
        pq.write_table(pa.table({c: _arrow(k, v) for c, (k, v) in table.items()}), path)
        return
    rows = list(zip(*(v for _, v in table.values())))
    with open(path, "w", newline="", encoding=encoding, errors="replace") as f:
        writer = csv.writer(f, delimiter=delimiter, quotechar=quote)
        writer.writerow(list(table))
        writer.writerows([["" if v is None else v for v in row] for row in rows])


# ---- the spec loader ---------------------------------------------------------------------------


@settings(max_examples=2 * EXAMPLES, deadline=None)
@given(st.text(max_size=80) | st.sampled_from(["name: x\nfiles: [", "{", "- a\n- b", "name: 1e5", "\ufeffname: x",
                                                "tasks: !!python/object:os.system x", "a: b\n\tc: d"]))
def test_any_spec_file_loads_or_is_one_spec_error(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("spec") / "spec.yaml"
    path.write_text(text, encoding="utf-8")
    outcome(lambda: load_spec(path))


# ---- the readers: random tables under random specs ----------------------------------------------


@st.composite
def datasets(draw: st.DrawFn) -> tuple[dict, dict, dict]:
    """A table, how it is written (format, CSV dialect) and a spec giving its columns their roles:
    a label (mostly 0/1), a scenario (mostly a few names), features, maybe a user and a time."""
    rows = draw(st.integers(0, 40))
    column = lambda kind: (kind, draw(st.lists(CELL[kind], min_size=rows, max_size=rows)))  # noqa: E731
    kind = st.sampled_from(KINDS)
    table = {"y": column(draw(st.sampled_from(["binary"] * 4 + KINDS))),
             "s": column(draw(st.sampled_from(["few"] * 4 + KINDS)))}
    features = draw(st.lists(st.sampled_from(["c", "n", "u", "t", "col 1", "é", "1e5"]), unique=True, max_size=4))
    table.update({c: column(draw(kind)) for c in features})
    rule = draw(st.none() | st.none() | st.fixed_dictionaries({"op": st.sampled_from(["==", "!=", ">", "<="]),
                                                               "value": st.integers(-1, 2) | TEXT | st.floats()})
                | st.fixed_dictionaries({"op": st.just(">"), "column": st.sampled_from(["s", *features])}))
    scenario = {"constant": "all"} if draw(st.integers(0, 4)) == 0 else {"column": "s"}
    if "column" in scenario and draw(st.booleans()):
        scenario["drop_missing"] = draw(st.booleans())
    cut = draw(st.integers(0, len(features)))
    numeric = [{"column": c, **draw(st.sampled_from([{}, {"transform": "log1p"}, {"transform": "bucketize",
                                                                                 "buckets": 3}]))}
               for c in features[cut:]]
    fmt = draw(st.sampled_from(["csv", "parquet"]))
    times = st.sampled_from(["s", *features])
    split = draw(st.sampled_from([{}, {"seed": 3}, {"method": "time", "column": draw(times)},
                                  {"method": "time", "column": draw(times), "format": draw(st.sampled_from(
                                      ["%m/%d/%Y", "%Y-%m-%d", "%H"]))}]))
    dialect = {"delimiter": draw(st.sampled_from([",", ";", "\t", "|"])), "quote": draw(st.sampled_from(['"', "'"])),
               "encoding": draw(st.sampled_from(["utf-8", "latin-1"]))}
    files: dict[str, Any] = {"path": f"data.{fmt}", **({"split": split} if split else {})}
    if fmt == "csv" and draw(st.integers(0, 3)):  # say how it was written (or, sometimes, something else)
        files["csv"] = {"delimiter": draw(st.sampled_from([dialect["delimiter"]] * 6 + [";", ";;", "\n"])),
                        "quote_char": dialect["quote"], "null_values": draw(st.lists(TEXT, max_size=2)),
                        "encoding": draw(st.sampled_from([dialect["encoding"]] * 6 + ["utf-8", "cp1252", "utf-9"]))}
    spec = {"name": "random", "files": files, "scenario": scenario,
            "tasks": [{"name": "y", "column": "y", **({"rule": rule} if rule else {})}],
            "categorical": features[:cut], "numeric": numeric, "min_count": draw(st.integers(1, 3)),
            **({"user": draw(st.sampled_from(features))} if features and draw(st.booleans()) else {})}
    return table, {"format": fmt, **dialect}, spec


@PROPERTY
@given(datasets(), st.booleans())
def test_any_table_under_any_spec_loads_or_is_one_error(tmp_path_factory, case, streamed):
    table, written, spec = case
    folder = tmp_path_factory.mktemp("data")
    write_table(table, folder / f"data.{written['format']}", written["delimiter"], written["quote"],
                written["encoding"])
    load = (lambda s: open_streaming(s, batch_size=8, prefetch=0)) if streamed else load_dataset
    result = outcome(lambda: load(load_spec(spec, base_dir=folder)))
    if not isinstance(result, MsmtrecError):
        assert len(result.val) > 0 and len(result.test) > 0
        assert set(np.unique(result.test.labels.numpy())) <= {0.0, 1.0}


# ---- model options -----------------------------------------------------------------------------

OPTION_VALUES = (st.none() | st.booleans() | st.integers(-2, 6) | st.floats(-0.5, 1.5) | TEXT
                 | st.lists(st.integers(-1, 6), max_size=3) | st.lists(TEXT, max_size=2))


@st.composite
def model_options(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    name = draw(st.sampled_from(sorted(MODELS)))
    keys = st.sampled_from([*model_hyperparameters(MODELS[name]), "bogus", "embed"])
    return name, draw(st.dictionaries(keys, OPTION_VALUES, max_size=3))


@PROPERTY
@given(model_options())
def test_any_model_options_build_or_are_one_config_error(case):
    name, params = case
    schema = make_schema(scenarios=2, tasks=2, fields=2, vocab=5, numeric=1, prior_fields=("f0",),
                         task_roles={"t0": "click", "t1": "conversion"})
    outcome(lambda: build_model(name, schema, params))


# ---- predict's input path ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("run")
    rng = np.random.default_rng(0)
    n = 300
    pq.write_table(pa.table({"s": rng.choice(["a", "b"], n), "c": rng.integers(0, 20, n), "n": rng.normal(size=n),
                             "u": rng.integers(0, 30, n), "y": rng.integers(0, 2, n)}), folder / "d.parquet")
    spec = {"name": "tiny", "files": {"path": str(folder / "d.parquet")}, "scenario": {"column": "s"},
            "tasks": [{"name": "y", "column": "y"}], "categorical": ["c"], "numeric": ["n"], "user": "u"}
    result = train(TrainConfig(data=str(_write_spec(folder, spec)), max_epochs=1, runs_root=str(folder / "runs"),
                               model_params={"embed_dim": 4, "bottom_dims": [8], "tower_dims": [4]}))
    return result.run_dir


def _write_spec(folder: Path, spec: dict) -> Path:
    from msmtrec.yaml_io import dump_yaml

    (folder / "spec.yaml").write_text(dump_yaml(spec))
    return folder / "spec.yaml"


@PROPERTY
@given(tables(names=["s", "c", "n", "u", "y", "extra", "y_prob"]),
       st.sampled_from(["in.csv", "in.parquet", "in.tsv", "in.txt", "in.dat"]),
       st.sampled_from(["out.csv", "out.parquet", "out.json"]), st.sampled_from(["error", "skip", "drop"]))
def test_any_input_to_predict_is_scored_or_one_error(tmp_path_factory, run_dir, table, input_name, output_name,
                                                      unknown):
    folder = tmp_path_factory.mktemp("predict")
    source, target = folder / input_name, folder / output_name
    write_table(table, source, delimiter="\t" if source.suffix == ".tsv" else ",")
    result = outcome(lambda: predict_file(run_dir, source, target, unknown_scenario=unknown))
    if isinstance(result, MsmtrecError):
        assert not target.exists()
        return
    written, skipped = result
    out = pq.read_table(target) if target.suffix == ".parquet" else None
    assert written == len(next(iter(table.values()))[1]) and 0 <= skipped <= written
    if out is not None:
        probs = out.column("y_prob").to_numpy(zero_copy_only=False)
        assert np.all((probs[~np.isnan(probs)] > 0) & (probs[~np.isnan(probs)] < 1))
