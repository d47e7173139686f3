"""Bad input through the command line: each case is one line naming what and where, exit 2, and
leaves everything the user had as it was (no run directory either)."""

from __future__ import annotations

import re

from msmtrec.errors import SpecError
from msmtrec.yaml_io import load_yaml
from tests.cli.conftest import SMALL, cli, refused_untouched, succeeded, write_spec


def test_a_rule_that_matches_nothing_names_the_task_the_rule_and_the_values(user_dir):
    write_spec(user_dir, tasks=[{"name": "rich", "column": "income", "rule": {"op": "==", "value": ">50k"}}])
    message = refused_untouched(user_dir, "train", "--data", "spec.yaml", *SMALL,
                                needles=("task 'rich' has a single class in train split of census.csv",
                                         "its rule 'income' == '>50k' is false for every row (did you mean '>50K'?)"))
    counts = re.search(r"column 'income' in train split of census\.csv: '(.+?)' \(([\d,]+)\), '(.+?)' \(([\d,]+)\)$",
                       message)
    assert counts and {counts[1], counts[3]} == {">50K", "<=50K"}
    assert sum(int(counts[i].replace(",", "")) for i in (2, 4)) == 480  # the 80 % of 600 rows in train


def test_text_labels_get_a_rule_that_works(user_dir):
    write_spec(user_dir, tasks=[{"name": "subscribed", "column": "subscribed"}])
    message = refused_untouched(user_dir, "train", "--data", "spec.yaml", *SMALL,
                                needles=("task 'subscribed' column 'subscribed' must be 0/1 after its rule, found "
                                         "values ['no', 'yes']",))
    hint = load_yaml(message.split("e.g. ")[1], "hint", SpecError)
    assert hint == {"rule": {"op": "==", "value": "yes"}}
    write_spec(user_dir, tasks=[{"name": "subscribed", "column": "subscribed", **hint}])  # the hint, as given, works
    succeeded(cli("train", "--data", "spec.yaml", *SMALL, "-q"))
