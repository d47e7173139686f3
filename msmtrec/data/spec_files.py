"""Where a dataset's rows come from (the spec's ``files`` key, shown in :mod:`msmtrec.data.spec`):
one file divided by a ``split`` (random, or by a time column), or one file per split, and how a
CSV among them is parsed (:class:`~msmtrec.data.csv_options.CsvOptions`)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any, Literal, Mapping

from pydantic import BeforeValidator, Field, StrictFloat, StrictInt, ValidationInfo, field_validator, model_validator

from msmtrec.data.csv_options import CsvOptions
from msmtrec.data.io import DEFAULT_FRACTIONS, DEFAULT_SPLIT_SEED, DEFAULT_VAL_FRACTIONS, detect_format
from msmtrec.data.spec_types import Column, Part, Text
from msmtrec.declared import problem, show
from msmtrec.errors import DataError

__all__ = ["FilesSpec", "SplitSpec", "file_format"]


def _data_path(value: Any, info: ValidationInfo) -> Path:
    """A data file; a relative path resolves against ``folder`` from the validation context."""
    if not isinstance(value, (str, Path)) or not str(value).strip():
        raise problem("{at} must be a non-empty string, got {got}", got=show(value))
    path = Path(value).expanduser()
    return path if path.is_absolute() else (info.context or {}).get("folder", Path.cwd()) / path


_DataPath = Annotated[Path, BeforeValidator(_data_path)]


class SplitSpec(Part):
    """How one table is divided into train/val(/test): three fractions (train, val, test) for a
    single file, two (train, val) when validation rows are carved out of a train file."""

    method: Literal["random", "time"] = "random"  # seeded permutation | sorted by `column`, oldest → train
    fractions: tuple[Annotated[StrictFloat, Field(gt=0, lt=1)], ...] = DEFAULT_FRACTIONS  # summing to 1
    seed: Annotated[StrictInt, Field(ge=0)] | None = Field(None, validate_default=True)  # random only
    column: Column | None = None  # the time column (time only)
    format: Text | None = None  # time only: how to read a text time column (strptime codes, e.g. %m/%d/%Y)

    @field_validator("fractions")
    @classmethod
    def _sum_to_one(cls, fractions: tuple[float, ...]) -> tuple[float, ...]:
        if not math.isclose(sum(fractions), 1.0, abs_tol=1e-6):
            raise problem("{at} must sum to 1, got {got} (sum {total})", got=list(fractions),
                          total=f"{sum(fractions):g}")
        return fractions

    @field_validator("seed")
    @classmethod
    def _seed_for_random(cls, seed: int | None, info: ValidationInfo) -> int | None:
        if info.data.get("method") != "time":
            return DEFAULT_SPLIT_SEED if seed is None else seed
        if seed is not None:
            raise problem("{at} has no effect with method: time (the order comes from the time column); remove it")
        return None

    @model_validator(mode="after")
    def _column_for_time(self) -> SplitSpec:
        if self.method == "random" and (self.column is not None or self.format is not None):
            raise problem("{at}.{key} is only used with method: time", key="column" if self.column else "format")
        if self.method == "time" and self.column is None:
            raise problem("{at}.method time needs {at}.column (the time column)")
        return self


class FilesSpec(Part):
    """Where the rows come from: one file (``path``) divided by ``split``, or one file per split
    (``train``, ``test`` and ``val``; without ``val``, ``split`` carves validation rows out of
    ``train``). ``split`` is ``None`` when every split has its own file."""

    path: _DataPath | None = None
    train: _DataPath | None = None
    val: _DataPath | None = None
    test: _DataPath | None = None
    split: SplitSpec | None = Field(None, validate_default=True)
    format: Literal["auto", "csv", "parquet"] = "auto"  # auto: from the extension
    csv: CsvOptions = CsvOptions()  # delimiter, null_values, encoding, quote_char, decimal

    @field_validator("split", mode="before")
    @classmethod
    def _default_split(cls, split: Any, info: ValidationInfo) -> Any:
        """Unless told otherwise, one file is split 80/10/10 and a train file gives 10% to val."""
        if info.data.get("val") is not None:
            return split
        split = {} if split is None else split
        if info.data.get("path") is None and isinstance(split, Mapping) and "fractions" not in split:
            return {**split, "fractions": DEFAULT_VAL_FRACTIONS}
        return split

    @model_validator(mode="after")
    def _one_layout(self) -> FilesSpec:
        if self.path is not None and any(p is not None for p in (self.train, self.val, self.test)):
            raise problem("{at} must give either path (+ split) or train/val/test, not both")
        if self.path is None:
            missing = [k for k in ("train", "test") if getattr(self, k) is None]
            if missing:
                raise problem("{at} needs either path, or train and test (missing: {missing})",
                              missing=", ".join(missing))
            if self.val is not None and self.split is not None:
                raise problem("{at}.split has no effect when train, val and test files are all given; remove it")
        n, parts = ((3, "train, val, test") if self.path is not None
                    else (2, "train, val (validation rows are carved out of the train file)"))
        if self.split is not None and len(self.split.fractions) != n:
            raise problem("{at}.split.fractions must be a list of {n} numbers ({parts}), got {got}",
                          n=n, parts=parts, got=list(self.split.fractions))
        if self.csv != CsvOptions() and all(file_format(p, self.format) == "parquet" for p in self.paths):
            raise problem("{at}.csv has no effect: every file is Parquet; remove it")
        return self

    @property
    def paths(self) -> list[Path]:
        """The data paths given, in the order path, train, val, test."""
        return [p for p in (self.path, self.train, self.val, self.test) if p is not None]


def file_format(path: Path, fmt: str) -> str | None:
    """``csv`` or ``parquet``, or None for an extension that says nothing (the reader will say so)."""
    try:
        return detect_format(path, fmt)
    except DataError:
        return None
