"""Ali-CCP (Alibaba Click and Conversion Prediction, Tianchi dataset 408; the ESMM data) in the
widely used processed CSV layout (Scenario-Wise-Rec ``scripts/data/ali-ccp``, torch-rechub).

Raw files: ``ali_ccp_train.csv``, ``ali_ccp_test.csv`` and optionally ``ali_ccp_val.csv`` (the
``*_sample.csv`` files of those repositories are accepted too). Columns: ``click``, ``purchase``,
sparse label-encoded ids ``101`` (user), ``121 .. 129`` (user profile), ``205 .. 216`` (item,
category, shop, intention node, brand), ``508, 509, 702, 853`` (user × item crosses), ``301``
(context/position field), ``109_14, 110_14, 127_14, 150_14`` (user behaviour), and dense ``D*``.

Framing (AEM²TL §V-A and models.md §3.9; SWR for the scenarios):

- scenarios = the three values of field ``301``;
- tasks ``click`` (role click) and ``purchase`` (role conversion: purchase = 1 implies click = 1,
  labelled over all impressions, as the entire-space models expect; a file with purchases
  without a click is reported in the manifest and sets ``conversion_without_click``);
- features: every sparse field except ``301`` (it is the scenario) and the dense ``D*`` columns,
  standardised; the user id ``101`` is the user (GAUC) and a personal prior. No column derived
  from a label is kept (torch-rechub issue #56 leaked one into the features);
- split: the files' own train/(val)/test; without a val file, a seeded 10 % of train.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from msmtrec.data.recipes.base import (Recipe, SplitWriter, check_share, click_conversion_batches, find_file,
                                      require_files)

SPARSE = ["101", "121", "122", "124", "125", "126", "127", "128", "129", "205", "206", "207", "210", "216", "508",
          "509", "702", "853", "109_14", "110_14", "127_14", "150_14"]
DENSE = ["D109_14", "D110_14", "D127_14", "D150_14", "D508", "D509", "D702", "D853"]
LABELS = ["click", "purchase"]
SCENARIO = "301"
EXPECTED = "ali_ccp_train.csv and ali_ccp_test.csv (+ optional ali_ccp_val.csv), the processed Ali-CCP layout"


def _names(split: str) -> list[str]:
    return [f"ali_ccp_{split}.csv", f"ali_ccp_{split}_sample.csv"]


def build(raw: Path, writer: SplitWriter, options: dict[str, Any]) -> tuple[dict[str, Any], list[Path]]:
    files = require_files("ali-ccp", raw, {"train": _names("train"), "test": _names("test")}, EXPECTED)
    val = find_file(raw, _names("val"))
    columns = LABELS + SPARSE + [SCENARIO] + DENSE
    writer.track(labels=LABELS, scenario=SCENARIO)
    val_fraction = check_share(options["val_fraction"], "ali-ccp option val_fraction") if val is None else 0.0
    if val is None:  # split None: validation rows are carved out of train
        parts = [(files["train"], None), (files["test"], "test")]
    else:
        parts = [(files["train"], "train"), (val, "val"), (files["test"], "test")]
    without_click = 0
    for path, split in parts:
        for first, table, n in click_conversion_batches(path, columns, DENSE, LABELS, f"ali-ccp: {path.name}"):
            without_click += n
            if split is None:
                writer.write_carved(table, first, val_fraction, options["seed"])
            else:
                writer.write(split, table)
    writer.notes["purchase_without_click_rows"] = without_click
    spec = {
        "name": "ali-ccp",
        "scenario": {"column": SCENARIO},
        "tasks": [{"name": "click", "column": "click", "role": "click"},
                  {"name": "purchase", "column": "purchase", "role": "conversion"}],
        # The processed data labels purchases after a click only; say so if a file disagrees.
        "conversion_without_click": without_click > 0,
        "categorical": list(SPARSE),
        "numeric": [{"column": c, "transform": "standardize"} for c in DENSE],
        "user": "101",
        "prior_features": ["101"],
        "min_count": 1,
    }
    return spec, [path for path, _ in parts]


RECIPE = Recipe(
    name="ali-ccp",
    title="Ali-CCP: 3 scenarios (field 301), click and purchase with entire-space roles",
    expected=EXPECTED,
    build=build,
    options={"seed": (2021, "seed of the validation carve-out (only without a val file)"),
             "val_fraction": (0.1, "share of train used for validation when there is no val file")},
    source="https://tianchi.aliyun.com/dataset/408 (processed CSVs: Xiaopengli1/Scenario-Wise-Rec scripts/data/ali-ccp)",
)
