"""DatasetSpec loading: the fixture specs parse as intended, and every mistake is a one-line
SpecError naming the spec file and the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from msmtrec.data import builtin_datasets, resolve_spec
from msmtrec.data.spec import SCENARIO_FIELD, load_spec
from msmtrec.errors import SpecError
from tests.data.conftest import FIXTURES, spec_dict


def write_spec(tmp_path: Path, text: str, name: str = "bad.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


BASE = """\
name: t
files: {path: data.csv}
scenario: {column: s}
tasks:
  - {name: a, column: y}
categorical: [c]
"""


# ---- the fixture specs ------------------------------------------------------------------------


def test_ali_ccp_spec_keeps_numeric_looking_column_names_as_text():
    spec = load_spec(FIXTURES / "ali_ccp.yaml")
    # YAML 1.1 would read 109_14 as the integer 10914; the spec loader keeps it as written.
    assert "109_14" in spec.categorical and "10914" not in spec.categorical
    assert spec.scenario.column == "301" and spec.user == "101"
    assert [(t.name, t.role) for t in spec.tasks] == [("click", "click"), ("purchase", "conversion")]
    assert all(n.transform == "standardize" for n in spec.numeric) and len(spec.numeric) == 8
    assert spec.files.train == FIXTURES / "ali_ccp_train_sample.csv"  # relative to the spec file
    assert spec.files.split is None and spec.source == "ali_ccp.yaml"


def test_kuairand_spec_rule_compares_two_columns():
    spec = load_spec(FIXTURES / "kuairand.yaml")
    rule = spec.tasks[1].rule
    assert (spec.tasks[1].column, rule.op, rule.column, rule.value) == ("play_time_ms", ">=", "duration_ms", None)
    assert spec.files.path == FIXTURES / "kuairand_sample.csv"
    assert spec.files.split.fractions == (0.8, 0.1, 0.1) and spec.files.split.seed == 2024
    assert "duration_ms" in spec.required_columns() and "play_time_ms" not in spec.feature_columns


def test_aliexpress_spec_carves_val_from_train():
    spec = load_spec(FIXTURES / "aliexpress.yaml")
    assert spec.files.val is None and spec.files.split.fractions == (0.9, 0.1)
    assert spec.scenario.constant == "aliexpress" and len(spec.numeric) == 63


def test_defaults():
    spec = load_spec(spec_dict())
    assert spec.files.split.method == "random"
    assert spec.files.split.fractions == (0.8, 0.1, 0.1) and spec.files.split.seed == 2024
    assert spec.scenario.drop_missing is True and spec.min_count == 1
    assert spec.user is None and spec.prior_features == () and spec.scenario_as_feature is False
    # A bare numeric name means standardize; bucketize defaults to 10 buckets.
    spec = load_spec(spec_dict(numeric=["x", {"column": "z", "transform": "bucketize"}]))
    assert [(n.column, n.transform, n.buckets) for n in spec.numeric] == [("x", "standardize", None),
                                                                         ("z", "bucketize", 10)]


def test_to_dict_round_trips(tmp_path):
    for path in [FIXTURES / "ali_ccp.yaml", FIXTURES / "kuairand.yaml", FIXTURES / "aliexpress.yaml",
                 *builtin_datasets().values()]:
        spec = load_spec(path)
        assert load_spec(spec.to_dict()) == spec


def test_yaml_1_1_scalars_stay_text_in_mapping(tmp_path):
    path = write_spec(tmp_path, BASE.replace("scenario: {column: s}",
                                             "scenario: {column: s, mapping: {yes: a, no: b, 010: c, 1: d}}"))
    assert load_spec(path).scenario.mapping == {"yes": "a", "no": "b", "010": "c", "1": "d"}


def test_relative_paths_resolve_against_spec_folder_or_base_dir(tmp_path):
    sub = tmp_path / "specs"
    sub.mkdir()
    spec = load_spec(write_spec(sub, BASE, "s.yaml"))
    assert spec.files.path == sub.resolve() / "data.csv"
    assert load_spec(spec_dict(), base_dir=tmp_path).files.path == tmp_path.resolve() / "unused.csv"


# ---- errors -----------------------------------------------------------------------------------

BAD_SPECS = [
    # (replace this, with this, expected message fragment)
    ("categorical: [c]", "categorical: [c]\nfils: 1",
     "spec bad.yaml: unknown key 'fils' (did you mean 'files'?)"),
    ("  - {name: a, column: y}", "  - {name: a, column: y}\n  - {name: b, column: r, rule: {op: '=>', value: 5}}",
     "spec bad.yaml: tasks[1].rule.op must be one of ==, !=, >, >=, <, <=, got '=>'"),
    ("  - {name: a, column: y}", "  - {name: a}", "spec bad.yaml: tasks[0] is missing required key 'column'"),
    ("categorical: [c]", "categorical: [c]\nmin_count: many", "spec bad.yaml: min_count must be an integer, got 'many'"),
    ("categorical: [c]", "categorical: [c]\nmin_count: 0", "spec bad.yaml: min_count must be at least 1, got 0"),
    ("categorical: [c]", "categorical: c", "spec bad.yaml: categorical must be a list of column names, got 'c'"),
    ("categorical: [c]", "categorical: [c, c]", "spec bad.yaml: categorical lists column 'c' twice"),
    ("files: {path: data.csv}", "files: {path: a.csv, train: b.csv}",
     "files must give either path (+ split) or train/val/test, not both"),
    ("files: {path: data.csv}", "files: {train: b.csv}", "files needs either path, or train and test (missing: test)"),
    ("files: {path: data.csv}", "files: {path: a.csv, format: xlsx}",
     "spec bad.yaml: files.format must be one of auto, csv, parquet, got 'xlsx'"),
    ("files: {path: data.csv}", "files: {path: a.csv, split: {fractions: [0.8, 0.1, 0.2]}}",
     "files.split.fractions must sum to 1, got [0.8, 0.1, 0.2]"),
    ("files: {path: data.csv}", "files: {path: a.csv, split: {fractions: [0.9, 0.1]}}",
     "files.split.fractions must be a list of 3 numbers (train, val, test)"),
    ("files: {path: data.csv}", "files: {path: a.csv, split: {method: time}}",
     "files.split.method time needs files.split.column"),
    ("files: {path: data.csv}", "files: {path: a.csv, split: {method: time, column: ts, seed: 1}}",
     "files.split.seed has no effect with method: time"),
    ("files: {path: data.csv}", "files: {path: a.csv, split: {method: shuffle}}",
     "files.split.method must be one of random, time, got 'shuffle'"),
    ("files: {path: data.csv}", "files: {train: a.csv, val: b.csv, test: c.csv, split: {seed: 1}}",
     "files.split has no effect when train, val and test files are all given"),
    ("scenario: {column: s}", "scenario: {mapping: {a: b}}", "scenario needs a column (or `constant: <name>`"),
    ("scenario: {column: s}", "scenario: {column: s, other: misc}", "scenario.other needs scenario.mapping"),
    ("scenario: {column: s}", "scenario: {column: s, drop_missing: 'yes'}",
     "scenario.drop_missing must be true or false, got 'yes'"),
    ("  - {name: a, column: y}", "  - {name: a, column: y, rule: {op: '>', value: 1, column: z}}",
     "tasks[0].rule needs exactly one of value (compare with a constant) or column"),
    ("  - {name: a, column: y}", "  - {name: a, column: y}\n  - {name: a, column: z}",
     "tasks: task name 'a' is used twice"),
    ("  - {name: a, column: y}", "  - {name: a, column: y, role: impression}",
     "tasks[0].role must be one of click, action, conversion, got 'impression'"),
    ("  - {name: a, column: y}", "  - {name: a, column: y, role: click}\n  - {name: b, column: z, role: click}",
     "only one task may have role click, got a, b"),
    ("  - {name: a, column: y}", "  - {name: a, column: y, role: conversion}",
     "tasks with role action or conversion need a task with role click"),
    ("tasks:\n  - {name: a, column: y}", "tasks: []", "tasks must be a non-empty list"),
    ("categorical: [c]", "categorical: [c]\nnumeric: [{column: x, transform: standardize, buckets: 4}]",
     "numeric[0].buckets is only used with transform: bucketize"),
    ("categorical: [c]", "categorical: [c]\nnumeric: [{column: x, transform: zscore}]",
     "numeric[0].transform must be one of standardize, log1p, bucketize, got 'zscore'"),
    ("categorical: [c]", "categorical: [c]\nnumeric: [c]", "column 'c' is listed in both categorical and numeric"),
    ("categorical: [c]", "categorical: [c]\nprior_features: [u]",
     "prior_features[0] 'u' must be a categorical column"),
    ("categorical: [c]", "categorical: [c]\nconversion_without_click: true",
     "conversion_without_click is only used when a task has role conversion"),
    ("name: t", "name: ''", "spec bad.yaml: name must be a non-empty string"),
    ("name: t\n", "", "spec bad.yaml: the spec is missing required key 'name'"),
]


@pytest.mark.parametrize("old,new,message", BAD_SPECS, ids=[m[:40] for _, _, m in BAD_SPECS])
def test_bad_spec_is_one_line_error_naming_file_and_key(tmp_path, old, new, message):
    assert old in BASE
    path = write_spec(tmp_path, BASE.replace(old, new))
    with pytest.raises(SpecError) as err:
        load_spec(path)
    text = str(err.value)
    assert message in text
    assert text.startswith("spec bad.yaml: ") and "\n" not in text


# Messages now produced by the declared models' types and validators (the ones above are pinned
# from the hand-written checker they replace).
MORE_BAD_SPECS = [
    ("  - {name: a, column: y}", "  - {name: a, column: y, rule: {op: '>', vaule: 1}}",
     "spec bad.yaml: unknown key 'tasks[0].rule.vaule' (did you mean 'value'?) (allowed: op, value, column)"),
    ("categorical: [c]", "categorical: [c]\nsource: x.yaml", "spec bad.yaml: unknown key 'source' (allowed: name,"),
    ("  - {name: a, column: y}", "  - 5", "spec bad.yaml: tasks[0] must be a mapping, got 5 (int)"),
    ("  - {name: a, column: y}", "  - {name: a, column: y, rule: {op: '>', value: [1]}}",
     "spec bad.yaml: tasks[0].rule.value must be a finite number, text or true/false, got [1] (list)"),
    ("  - {name: a, column: y}", "  - {name: a, column: y, rule: {op: '<', value: .inf}}",
     "spec bad.yaml: tasks[0].rule.value must be a finite number, text or true/false, got inf (float)"),
    ("scenario: {column: s}", "scenario: {column: s, mapping: {Tops: 5}}",
     "spec bad.yaml: scenario.mapping['Tops'] must be a non-empty string, got 5 (int)"),
    ("scenario: {column: s}", "scenario: {column: s, mapping: {1: a, '1': b}}",
     "spec bad.yaml: scenario.mapping lists raw value '1' twice"),
    ("scenario: {column: s}", "scenario: {column: s, mapping: {}}", "spec bad.yaml: scenario.mapping is empty;"),
    ("scenario: {column: s}", "scenario: {column: s, mapping: [a]}",
     "spec bad.yaml: scenario.mapping must be a mapping, got ['a'] (list)"),
    ("scenario: {column: s}", "scenario: {constant: x, column: s}",
     "spec bad.yaml: scenario.constant cannot be combined with scenario.column"),
    ("files: {path: data.csv}", "files: [data.csv]", "spec bad.yaml: files must be a mapping, got ['data.csv'] (list)"),
    ("files: {path: data.csv}", "files: {path: 5}",
     "spec bad.yaml: files.path must be a non-empty string, got 5 (int)"),
    ("files: {path: data.csv}", "files: {path: a.csv, split: {fractions: [0.8, x, 0.1]}}",
     "spec bad.yaml: files.split.fractions[1] must be a number, got 'x'"),
    ("files: {path: data.csv}", "files: {path: a.csv, split: {fractions: [1.8, -0.9, 0.1]}}",
     "spec bad.yaml: files.split.fractions[0] must be less than 1, got 1.8"),
    ("files: {path: data.csv}", "files: {train: a.csv, test: b.csv, split: {fractions: [0.8, 0.1, 0.1]}}",
     "spec bad.yaml: files.split.fractions must be a list of 2 numbers (train, val (validation rows are carved"),
    ("files: {path: data.csv}", "files: {path: a.csv, split: {column: t}}",
     "spec bad.yaml: files.split.column is only used with method: time"),
    ("files: {path: data.csv}", "files: {path: a.csv, split: {seed: -1}}",
     "spec bad.yaml: files.split.seed must be at least 0, got -1"),
    ("files: {path: data.csv}", "files: {path: a.csv, split: {method: time, column: y}}",
     "spec bad.yaml: files.split.column 'y' is also a label column"),
    ("categorical: [c]", "categorical: [c, 1.5]",
     "spec bad.yaml: categorical[1] must be a column name, got 1.5 (float)"),
    ("categorical: [c]", "categorical: [c]\nnumeric: abc", "spec bad.yaml: numeric must be a list, got 'abc'"),
    ("categorical: [c]", "categorical: [c]\nnumeric: [1.5]", "spec bad.yaml: numeric[0] must be a mapping, got 1.5"),
    ("categorical: [c]", "categorical: [c]\nnumeric: [x, {column: x, transform: log1p}]",
     "spec bad.yaml: numeric lists column 'x' twice"),
    ("categorical: [c]", "categorical: [c]\nnumeric: [{column: x, transform: bucketize, buckets: 1}]",
     "spec bad.yaml: numeric[0].buckets must be at least 2, got 1"),
    ("categorical: [c]", "categorical: [c]\nmin_count: 010", "spec bad.yaml: min_count must be an integer, got '010'"),
    ("name: t\n", "nme: t\n", "spec bad.yaml: unknown key 'nme' (did you mean 'name'?)"),  # before "missing name"
]


@pytest.mark.parametrize("old,new,message", MORE_BAD_SPECS, ids=[m[15:55] for _, _, m in MORE_BAD_SPECS])
def test_declared_spec_errors_are_one_line_naming_file_key_expected_and_found(tmp_path, old, new, message):
    assert old in BASE
    with pytest.raises(SpecError) as err:
        load_spec(write_spec(tmp_path, BASE.replace(old, new)))
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


def test_source_names_a_mapping_in_messages_and_is_not_compared():
    spec = load_spec(spec_dict(), source="womens.yaml")
    assert spec.source == "womens.yaml" and spec.where == "spec womens.yaml" and "source" not in spec.to_dict()
    assert spec == load_spec(spec_dict()) and load_spec(spec_dict()).source == "<dict>"
    with pytest.raises(SpecError, match=r"^spec womens.yaml: min_count must be at least 1, got 0$"):
        load_spec(spec_dict(min_count=0), source="womens.yaml")


def test_spec_file_that_is_not_utf8_is_named(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes(BASE.replace("name: t", "name: caf\xe9").encode("latin-1"))
    with pytest.raises(SpecError, match=r"^spec latin1.yaml: cannot read .*latin1.yaml: 'utf-8' codec"):
        load_spec(path)


def test_prior_features_may_name_the_user_column_or_scenario_field():
    spec = load_spec(spec_dict(user="u", prior_features=["u", "c", SCENARIO_FIELD], scenario_as_feature=True))
    assert spec.prior_features == ("u", "c", SCENARIO_FIELD)
    assert "u" in spec.feature_columns  # the user becomes a categorical field as a prior


def test_missing_empty_and_invalid_yaml_files(tmp_path):
    with pytest.raises(SpecError, match="spec file not found: .*nope.yaml"):
        load_spec(tmp_path / "nope.yaml")
    with pytest.raises(SpecError, match=r"^spec empty.yaml: is empty$"):
        load_spec(write_spec(tmp_path, "", "empty.yaml"))
    with pytest.raises(SpecError, match=r"^spec broken.yaml: not valid YAML at line \d+"):
        load_spec(write_spec(tmp_path, "name: [unclosed\n", "broken.yaml"))
    with pytest.raises(SpecError, match="the spec must be a mapping"):
        load_spec(write_spec(tmp_path, "- a\n- b\n", "list.yaml"))


def test_resolve_spec_by_name_alias_and_path():
    assert resolve_spec("womens-ecommerce").name == "womens-ecommerce"
    assert resolve_spec("womens_ecommerce").name == "womens-ecommerce"
    assert resolve_spec(str(FIXTURES / "kuairand.yaml")).name == "kuairand-sample"
    spec = resolve_spec(FIXTURES / "kuairand.yaml")
    assert resolve_spec(spec) is spec


def test_resolve_spec_unknown_lists_builtin_names():
    with pytest.raises(SpecError, match=r"unknown dataset 'movielens'.*womens-ecommerce"):
        resolve_spec("movielens")
    with pytest.raises(SpecError, match=r"spec file not found: missing/spec.yaml \(built-in datasets: womens-ecommerce"):
        resolve_spec("missing/spec.yaml")
