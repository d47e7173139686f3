#!/usr/bin/env python
"""Regenerate ``msmtrec/data/builtin/womens_ecommerce.parquet`` from the shared CSV.

The source is the Women's E-Commerce Clothing Reviews data (Kaggle, nicapotato, 2018; CC0 1.0)
without its free-text columns, with ``review_id`` (0..23485, original order) added. The output
keeps only the columns the built-in spec reads, in a fixed order and with fixed types, compressed
with zstd, so the file is reproducible byte for byte from the CSV.

Usage::

    python scripts/build_builtin_dataset.py [SOURCE_CSV] [--out PATH]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SOURCE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "womens-ecommerce-reviews" / "womens_clothing_reviews.csv"
DEFAULT_OUT = ROOT / "msmtrec" / "data" / "builtin" / "womens_ecommerce.parquet"

# Column → stored type. Integers are parsed as int64 (never via float); text with empty fields
# becomes null, which the spec reports as "missing scenario" for Department Name.
SCHEMA = pa.schema([
    ("review_id", pa.int64()),
    ("Clothing ID", pa.int64()),
    ("Age", pa.int64()),
    ("Rating", pa.int64()),
    ("Recommended IND", pa.int64()),
    ("Positive Feedback Count", pa.int64()),
    ("Division Name", pa.string()),
    ("Department Name", pa.string()),
    ("Class Name", pa.string()),
])


def build(source: Path, out: Path) -> pa.Table:
    """Read the CSV with fixed column types and write the zstd Parquet file; return the table."""
    table = pacsv.read_csv(
        source,
        convert_options=pacsv.ConvertOptions(
            include_columns=SCHEMA.names,
            column_types={f.name: f.type for f in SCHEMA},
            strings_can_be_null=True,
        ),
    )
    table = table.select(SCHEMA.names).cast(SCHEMA)
    out.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, out, compression="zstd", compression_level=19, use_dictionary=True,
                   write_statistics=False, store_schema=True)
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", nargs="?", type=Path, default=DEFAULT_SOURCE, help="the shared CSV")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output Parquet path")
    args = parser.parse_args(argv)
    if not args.source.is_file():
        print(f"error: source CSV not found: {args.source}", file=sys.stderr)
        return 1
    table = build(args.source, args.out)
    print(f"wrote {args.out} ({table.num_rows:,} rows, {args.out.stat().st_size / 1024:.0f} KiB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
