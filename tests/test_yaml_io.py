"""The one YAML dialect: YAML 1.2 scalars when reading, and writing that both dialects read back."""

from __future__ import annotations

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from msmtrec.errors import ConfigError, SpecError
from msmtrec.yaml_io import dump_yaml, load_yaml


def test_yaml_1_1_scalars_stay_text_and_1_2_numbers_are_numbers():
    d = load_yaml("a: yes\nb: off\nc: 010\nd: 1:30\ne: 109_14\nf: 1e-3\ng: true\nh: 12\ni: .inf\n", "x", SpecError)
    assert d == {"a": "yes", "b": "off", "c": "010", "d": "1:30", "e": "109_14", "f": 0.001, "g": True, "h": 12,
                 "i": float("inf")}


def test_errors_are_the_callers_type_and_name_the_file_and_line(tmp_path):
    with pytest.raises(ConfigError, match=r"^config run.yaml: not valid YAML at line 2: mapping values are not"):
        load_yaml("a: 1\nb: c: d\n", "config run.yaml", ConfigError)
    path = tmp_path / "latin1.yaml"
    path.write_bytes("name: caf\xe9\n".encode("latin-1"))
    with pytest.raises(SpecError, match=r"^spec latin1.yaml: cannot read .*latin1.yaml: 'utf-8' codec") as err:
        load_yaml(path, "spec latin1.yaml", SpecError)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("text", ["yes", "no", "on", "010", "1:30", "109_14", "1e5", "1e-3", "true", "null", "~",
                                  ".inf", "0x1f", "2024-01-01"])
def test_dumped_strings_that_look_like_other_scalars_are_quoted(text):
    dumped = dump_yaml({"k": text})
    assert load_yaml(dumped, "x", SpecError) == {"k": text}
    assert yaml.safe_load(dumped) == {"k": text}  # also YAML 1.1 readers (PyYAML's default)


_TEXT = st.text(st.characters(exclude_categories=("Cc", "Cs", "Zl", "Zp")), max_size=10)  # PyYAML mangles some
_LOOKALIKES = st.from_regex(r"[-+]?[0-9._:eE]{1,8}|yes|no|on|off|null|~|true|False|\.inf|\.nan", fullmatch=True)
_SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | _TEXT | _LOOKALIKES
_DOCS = st.recursive(_SCALARS, lambda c: st.lists(c, max_size=4) | st.dictionaries(_TEXT, c, max_size=4),
                     max_leaves=12)


@settings(max_examples=300, deadline=None)
@given(_DOCS)
def test_dump_then_load_gives_the_same_data(doc):
    text = dump_yaml(doc)
    assert load_yaml(text, "x", SpecError) == doc
    assert yaml.safe_load(text) == doc
