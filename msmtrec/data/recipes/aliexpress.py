"""AliExpress Searching System Dataset (Tianchi dataset 74690), the per-country files used by
MTReclib, MetaHeac and the Noah's Ark MTL challenge, as ONE multi-scenario dataset.

Raw layout (as MTReclib unpacks it): one folder per country, ``AliExpress_NL/train.csv`` and
``AliExpress_NL/test.csv`` (likewise ES, FR, US, RU). A folder holding a single country's
``train.csv`` and ``test.csv`` (or ``aliexpress_{train,test}_sample.csv``) directly is accepted
too and gives a single-scenario dataset. Columns: ``search_id``, ``categorical_1..16``
(label-encoded ids), ``numerical_1..63`` (pre-normalised floats), ``click``, ``conversion``.

Framing (landscape §5):

- scenario = country, read from the folder name (``AliExpress_NL`` → ``NL``); the peers train
  one model per country, here one model serves all countries;
- tasks ``click`` (role click) and ``conversion`` (role conversion, labelled over all impressions:
  what MTReclib calls "CVR" is click ∧ conversion);
- features: the 16 categorical and 63 numerical columns (``search_id`` is kept in the files but
  is not a feature);
- split: each country's own train/test; validation = a seeded 10 % of each country's train rows
  (the peers early-stop on the test set, which this library never does).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pyarrow as pa

from msmtrec.data.recipes.base import Recipe, SplitWriter, check_share, click_conversion_batches, find_file
from msmtrec.errors import ConfigError, DataError

CATEGORICAL = [f"categorical_{i}" for i in range(1, 17)]
NUMERICAL = [f"numerical_{i}" for i in range(1, 64)]
LABELS = ["click", "conversion"]
EXPECTED = ("AliExpress_<COUNTRY>/train.csv and AliExpress_<COUNTRY>/test.csv per country (e.g. AliExpress_NL), "
            "or train.csv and test.csv of one country")
_FOLDER = re.compile(r"^AliExpress_([A-Za-z]+)$")


def _countries(raw: Path) -> dict[str, tuple[Path, Path]]:
    """Country → (train, test) from ``AliExpress_XX`` folders anywhere below ``raw``."""
    out: dict[str, tuple[Path, Path]] = {}
    incomplete = []
    for folder in sorted(p for p in raw.rglob("AliExpress_*") if p.is_dir()):
        m = _FOLDER.match(folder.name)
        if not m:
            continue
        train, test = folder / "train.csv", folder / "test.csv"
        if train.is_file() and test.is_file():
            out[m.group(1).upper()] = (train, test)
        else:
            incomplete.append(folder.name)
    if incomplete and not out:
        raise DataError(f"aliexpress: {', '.join(incomplete)} lack train.csv and/or test.csv (expected {EXPECTED})")
    return out


def build(raw: Path, writer: SplitWriter, options: dict[str, Any]) -> tuple[dict[str, Any], list[Path]]:
    countries = _countries(raw)
    single = None
    if not countries:
        train = find_file(raw, ["train.csv", "aliexpress_train_sample.csv"])
        test = find_file(raw, ["test.csv", "aliexpress_test_sample.csv"])
        if train is None or test is None:
            raise DataError(f"aliexpress: {raw} is missing the country files (expected {EXPECTED})")
        single = str(options["name"])
        countries = {single: (train, test)}
    wanted = options["countries"]
    if wanted not in (None, "all"):
        chosen = [c.strip().upper() for c in (wanted.split(",") if isinstance(wanted, str) else wanted)]
        unknown = [c for c in chosen if c not in countries]
        if unknown:
            raise ConfigError(f"aliexpress: option countries names {', '.join(unknown)}, not found in {raw} "
                              f"(found: {', '.join(countries)})")
        countries = {c: countries[c] for c in chosen}
    val_fraction = check_share(options["val_fraction"], "aliexpress option val_fraction")
    columns = ["search_id"] + CATEGORICAL + NUMERICAL + LABELS
    writer.track(labels=LABELS, scenario=None if single else "country")
    without_click = 0
    inputs: list[Path] = []
    for country, (train, test) in countries.items():
        for path, is_train in ((train, True), (test, False)):
            inputs.append(path)
            source = f"aliexpress: {path.parent.name}/{path.name}"
            for first, table, n in click_conversion_batches(path, columns, NUMERICAL, LABELS, source):
                without_click += n
                if not single:
                    table = table.append_column("country", pa.array([country] * table.num_rows, pa.string()))
                if is_train:
                    writer.write_carved(table, first, val_fraction, options["seed"])
                else:
                    writer.write("test", table)
    writer.notes["conversion_without_click_rows"] = without_click
    spec = {
        "name": "aliexpress" if single else "aliexpress-" + "-".join(c.lower() for c in countries),
        "scenario": {"constant": single} if single else {"column": "country", "mapping": {c: c for c in countries}},
        "tasks": [{"name": "click", "column": "click", "role": "click"},
                  {"name": "conversion", "column": "conversion", "role": "conversion"}],
        "conversion_without_click": without_click > 0,
        "categorical": list(CATEGORICAL),
        "numeric": [{"column": c, "transform": "standardize"} for c in NUMERICAL],
        "min_count": 1,
    }
    return spec, inputs


RECIPE = Recipe(
    name="aliexpress",
    title="AliExpress search logs: one scenario per country, click and conversion with entire-space roles",
    expected=EXPECTED,
    build=build,
    options={"seed": (2021, "seed of the validation carve-out"),
             "val_fraction": (0.1, "share of each country's train rows used for validation"),
             "countries": ("all", "comma-separated countries to keep (e.g. NL,ES), or all"),
             "name": ("aliexpress", "scenario name when the folder holds a single country's files")},
    source="https://tianchi.aliyun.com/dataset/74690",
)
