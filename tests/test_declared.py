"""Every validation failure of a declared model reaches the user as one line of the library's own
error (SpecError / ConfigError), never as a pydantic ValidationError; what validates round-trips."""

from __future__ import annotations

import copy
from typing import Annotated, Any, Sequence

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictStr, ValidationError

from msmtrec.config import TrainConfig
from msmtrec.data.spec import DatasetSpec, load_spec
from msmtrec.declared import explain
from msmtrec.errors import ConfigError, SpecError
from msmtrec.yaml_io import dump_yaml, load_yaml


class _Tiny(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tags: Annotated[list[StrictStr], Field(max_length=2)] = []
    ratio: Annotated[StrictFloat, Field(le=1)] = 0.5


@pytest.mark.parametrize("data,message", [
    ({"ratio": 2.0}, "ratio must be at most 1, got 2.0"),
    ({"tags": "a"}, "tags must be a list, got 'a'"),
    ({"tags": ["a", 1]}, "tags[1] must be a string, got 1 (int)"),
    # A check without words of its own keeps pydantic's, still on one line with the key and the value.
    ({"tags": ["a", "b", "c"]}, "tags is invalid (list should have at most 2 items after validation, not 3), "
                                "got ['a', 'b', 'c'] (list)"),
    ({"ratio": "x", "rato": 1}, "unknown key 'rato' (did you mean 'ratio'?) (allowed: tags, ratio)"),  # first
    ({1: 2}, "unknown key '1' (allowed: tags, ratio)"),  # YAML reads `1:` as an integer key
    ({"a\nb": 2}, "unknown key '['a\\nb']' (allowed: tags, ratio)"),  # still one line
    ([1], "the document must be a mapping, got [1] (list)"),
])
def test_explain(data, message):
    with pytest.raises(ValidationError) as err:
        _Tiny.model_validate(data)
    assert explain(err.value, _Tiny, "the document") == message


class _Union(BaseModel):
    model_config = ConfigDict(strict=True)
    penalty: Annotated[float, Field(ge=0)] | Sequence[Annotated[float, Field(ge=0)]] = 0.0


@pytest.mark.parametrize("value,message", [
    ("abc", "penalty must be a number or a list, got 'abc'"),  # neither member: both named
    (-1.0, "penalty must be at least 0, got -1.0"),  # a number out of range: the number's problem
    ([1.0, -2.0], "penalty[1] must be at least 0, got -2.0"),  # a list: the problem inside it
    ([1.0, "x"], "penalty[1] must be a number, got 'x'"),
])
def test_explain_a_union_names_the_value_not_pydantics_member_tags(value, message):
    with pytest.raises(ValidationError) as err:
        _Union.model_validate({"penalty": value})
    assert explain(err.value, _Union, "the document") == message


# ---- property: random edits of valid documents ------------------------------------------------

SPECS = [
    {
        "name": "rich",
        "files": {"path": "all.csv", "split": {"method": "time", "fractions": [0.7, 0.2, 0.1], "column": "ts"},
                  "format": "csv", "csv": {"delimiter": ";", "null_values": ["?", ""], "encoding": "latin-1",
                                           "quote_char": "'"}},
        "scenario": {"column": "s", "mapping": {"a": "x", 1: "y"}, "other": "z", "drop_missing": False},
        "tasks": [{"name": "click", "column": "c", "role": "click"},
                  {"name": "buy", "column": "b", "rule": {"op": ">=", "value": 1}, "role": "conversion"},
                  {"name": "long", "column": "t", "rule": {"op": ">", "column": "d"}}],
        "categorical": ["i", 301],
        "numeric": ["n", {"column": "m", "transform": "bucketize", "buckets": 4}],
        "user": "u",
        "prior_features": ["u", "m", "__scenario__"],
        "scenario_as_feature": True,
        "min_count": 2,
        "conversion_without_click": True,
    },
    {
        "name": "two files",
        "files": {"train": "train.parquet", "test": "test.parquet", "split": {"seed": 3}},
        "scenario": {"constant": "one"},
        "tasks": [{"name": "y", "column": "y", "rule": {"op": "==", "value": "yes"}}],
        "numeric": [{"column": "x", "transform": "log1p"}],
    },
]
_WORDS = st.sampled_from(["", " ", "x", "s", "u", "m", "ts", "y", "__scenario__", "a.csv", "random", "time",
                          "bucketize", "log1p", "click", "action", "conversion", "==", "=>", "csv", "column", ";",
                          "utf-8", "utf-9", "\n", "'"])
_SCALARS = (st.none() | st.booleans() | st.integers(-2, 12) | st.floats(allow_nan=False) | _WORDS
            | st.sampled_from([0.5, 0.25, float("nan"), float("inf")]))
_VALUES = _SCALARS | st.lists(_SCALARS, max_size=3) | st.dictionaries(_WORDS | st.integers(0, 2), _SCALARS, max_size=3)


def _places(node: Any, at: tuple = ()) -> list[tuple]:
    places = [at]
    if isinstance(node, dict):
        places += [p for k, v in node.items() for p in _places(v, at + (k,))]
    elif isinstance(node, list):
        places += [p for i, v in enumerate(node) for p in _places(v, at + (i,))]
    return places


@st.composite
def edited_specs(draw: st.DrawFn) -> Any:
    """A valid spec with one to three values replaced, keys removed or keys added, anywhere."""
    doc: Any = copy.deepcopy(draw(st.sampled_from(SPECS)))
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.sampled_from(_places(doc)[1:]))
        parent = doc
        for part in at[:-1]:
            parent = parent[part]
        action = draw(st.sampled_from(["replace", "remove", "add"]))
        if action == "replace":
            parent[at[-1]] = draw(_VALUES)
        elif action == "remove":
            del parent[at[-1]]
        elif isinstance(parent[at[-1]], dict):
            parent[at[-1]][draw(_WORDS | st.integers(0, 2) | st.booleans())] = draw(_VALUES)
    return doc


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(edited_specs())
def test_any_spec_either_loads_and_round_trips_or_is_a_one_line_spec_error(doc):
    try:
        spec = load_spec(doc, base_dir="/data")
    except SpecError as err:
        assert str(err).startswith("spec <dict>: ") and "\n" not in str(err)
    else:
        assert isinstance(spec, DatasetSpec) and load_spec(spec.to_dict()) == spec


_CONFIG_KEYS = st.sampled_from([*TrainConfig.model_fields, "bogus", "batchsize"])
_CONFIG_VALUES = (st.none() | st.booleans() | st.integers(-2, 5) | st.floats(allow_nan=False) | _WORDS
                  | st.dictionaries(_WORDS, st.integers(0, 3) | st.floats(0, 2), max_size=2)
                  | st.lists(_WORDS, max_size=2))


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(_CONFIG_KEYS, _CONFIG_VALUES, max_size=4))
def test_any_config_either_validates_and_round_trips_or_is_a_one_line_config_error(values):
    results = []
    for build, prefix in [(lambda: TrainConfig.from_dict(values, source="command line"), "command line: "),
                          (lambda: TrainConfig(**values), "config: "),
                          (lambda: TrainConfig().replace(**values), "config: ")]:
        try:
            results.append(build())
        except ConfigError as err:
            assert str(err).startswith(prefix) and "\n" not in str(err)
            results.append(None)
    assert results[0] == results[1] == results[2]  # all three ways agree
    if results[0] is not None:
        text = dump_yaml(results[0].to_dict())
        assert TrainConfig.from_dict(load_yaml(text, "config", ConfigError)) == results[0]
