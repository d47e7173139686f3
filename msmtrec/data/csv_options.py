"""How a CSV file is parsed: a spec's ``files.csv`` (delimiter, missing-value markers, text
encoding, quote character, decimal mark), declared once and handed to :class:`~msmtrec.data.io.DataFile`."""

from __future__ import annotations

import codecs
from pathlib import Path
from typing import Annotated, Any

import pyarrow.csv as pacsv
from pydantic import BeforeValidator, StrictStr, model_validator

from msmtrec.data.spec_types import Part
from msmtrec.declared import problem, show

__all__ = ["CsvOptions"]

_ARROW_NULLS = tuple(pacsv.ConvertOptions().null_values)


def _character(value: Any) -> Any:
    if not isinstance(value, str) or len(value) != 1 or value in "\r\n":
        raise problem("{at} must be a single character (not a line break), got {got}", got=show(value))
    return value


def _encoding(value: Any) -> Any:
    if not isinstance(value, str):
        return value  # the declared type says what is wrong
    try:
        codecs.lookup(value)
        return value
    except LookupError:
        raise problem("{at} must be a text encoding such as utf-8, latin-1 or cp1252, got {got}",
                      got=show(value)) from None


_Character = Annotated[str, BeforeValidator(_character)]


class CsvOptions(Part):
    """How a CSV file is parsed (a spec's ``files.csv``).

    Attributes:
        delimiter: the field separator; None: tab for ``.tsv``, else comma.
        null_values: texts read as missing, besides the empty field and the usual markers
            (``NA``, ``null``, ``NaN``, ``N/A``, ...): e.g. ``["?"]``.
        encoding: the file's text encoding.
        quote_char: the character that quotes a field holding the delimiter.
        decimal: the decimal mark of numeric columns (``,`` in many European exports).
    """

    delimiter: _Character | None = None
    null_values: tuple[StrictStr, ...] = ()
    encoding: Annotated[StrictStr, BeforeValidator(_encoding)] = "utf-8"
    quote_char: _Character = '"'
    decimal: _Character = "."

    @model_validator(mode="after")
    def _distinct(self) -> CsvOptions:
        if self.delimiter == self.quote_char:
            raise problem("{at}.delimiter and {at}.quote_char must differ, both are {got}", got=show(self.quote_char))
        return self

    def parse_options(self, path: Path) -> pacsv.ParseOptions:
        tsv = ".tsv" in [s.lower() for s in path.suffixes]
        return pacsv.ParseOptions(delimiter=self.delimiter or ("\t" if tsv else ","), quote_char=self.quote_char)

    def read_options(self, block_size: int) -> pacsv.ReadOptions:
        return pacsv.ReadOptions(block_size=block_size, encoding=self.encoding)

    def null_markers(self) -> list[str]:
        return [*_ARROW_NULLS, *(v for v in self.null_values if v not in _ARROW_NULLS)]
