"""Dataset specs: which column of a raw table is what.

A :class:`DatasetSpec` is usually written as YAML and loaded with :func:`load_spec`::

    name: womens-ecommerce
    files:                       # exactly one of: path (+ split) | train + test (+ val) (spec_files.py)
      path: womens_ecommerce.parquet   # relative paths resolve against the spec file's folder
      split: {method: random, fractions: [0.8, 0.1, 0.1], seed: 2024}
      # split: {method: time, column: date, format: "%m/%d/%Y"}   # format only for text times
      format: auto               # auto (by extension) | csv | parquet
      csv: {delimiter: ";", decimal: ",", null_values: ["?"], encoding: latin-1}   # CSV only; quote_char too
    scenario:
      column: Department Name    # or `constant: <name>` for single-scenario data
      mapping: {Tops: tops}      # optional raw value → scenario name
      other: misc                # optional name for raw values not in the mapping
      drop_missing: true         # rows with a missing scenario are dropped and reported
    tasks:
      - {name: recommend, column: Recommended IND}
      - {name: five_star, column: Rating, rule: {op: "==", value: 5}}
      - {name: long_view, column: play_time_ms, rule: {op: ">=", column: duration_ms}}
    categorical: [Clothing ID, Class Name]
    numeric:
      - {column: Age, transform: bucketize, buckets: 10}
      - Price                    # a bare name means `transform: standardize`
    user: null
    prior_features: []
    scenario_as_feature: false
    min_count: 1
    conversion_without_click: false
    multi_categorical: {}        # list features, e.g. tags: {sep: "|", max_len: 10} (spec_lists.py)
    sequences: {}                # behaviour sequences of a categorical field's ids, e.g. history:
                                 # {user: user_id, item: item_id, time: ts, max_len: 50} (spec_lists.py)

The classes below declare this format: each key is a typed field, and validators state the rules
that span keys. Validation happens once, in :func:`load_spec`, with one-line
:class:`~msmtrec.errors.SpecError` messages that name the spec file and the key ("spec
womens.yaml: tasks[1].rule.op must be one of ..."). Nothing is read from the data files at this
point; checks that need the data live in :mod:`msmtrec.data.encode`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any, Literal, Mapping

import pyarrow as pa
from pydantic import (BeforeValidator, Field, PrivateAttr, StrictBool, StrictInt, ValidationError, ValidationInfo,
                      field_validator, model_validator)

from msmtrec.data.io import READ_ROWS, DataFile
from msmtrec.data.spec_files import FilesSpec, SplitSpec, file_format
from msmtrec.data.spec_lists import ListSpec, SequenceSpec
from msmtrec.data.spec_types import Column, Columns, Part, Text, first_duplicate, unique
from msmtrec.declared import explain, problem, show
from msmtrec.errors import SpecError
from msmtrec.yaml_io import load_yaml

__all__ = ["SCENARIO_FIELD", "DatasetSpec", "FilesSpec", "ListSpec", "NumericSpec", "RuleSpec", "ScenarioSpec",
           "SequenceSpec", "SplitSpec", "TaskSpec", "load_spec"]

#: Name of the categorical field holding the scenario id when ``scenario_as_feature`` is set.
SCENARIO_FIELD = "__scenario__"

_DEFAULT_BUCKETS = 10


def _scalar(value: Any) -> Any:
    if value is None or isinstance(value, (str, int, bool)) or isinstance(value, float) and math.isfinite(value):
        return value
    raise problem("{at} must be a finite number, text or true/false, got {got}", got=show(value))


class ScenarioSpec(Part):
    """Which scenario each row belongs to: the raw value of ``column``, renamed by ``mapping`` (raw
    value as text, e.g. ``"1"`` for the integer 1 → scenario name; several raw values may share a
    name; without a mapping every raw value seen in train is a scenario), or one ``constant``."""

    column: Column | None = None
    constant: Text | None = None
    mapping: dict[str, Text] | None = None
    other: Text | None = None  # scenario of raw values absent from the mapping (else they are an error)
    drop_missing: StrictBool = True  # drop (and report) rows whose scenario is missing instead of failing

    def declared_names(self) -> list[str]:
        """Scenario names the spec itself declares, in declaration order (empty without mapping)."""
        if self.constant is not None:
            return [self.constant]
        names = list(dict.fromkeys((self.mapping or {}).values()))
        return names + [self.other] if self.other is not None and self.other not in names else names

    @field_validator("mapping", mode="before")
    @classmethod
    def _raw_values_as_text(cls, mapping: Any) -> Any:
        if not isinstance(mapping, Mapping):
            return mapping  # None, or not a mapping: the declared type says so
        if not mapping:
            raise problem("{at} is empty; remove it to use the raw values as scenario names")
        out: dict[str, Any] = {}
        for raw, name in mapping.items():
            key = _raw_key(raw)
            if key is None:
                raise problem("{at} keys must be raw values (text or numbers), got {got}", got=show(raw))
            if key in out:
                raise problem("{at} lists raw value {raw} twice", raw=repr(raw))
            out[key] = name
        return out

    @model_validator(mode="after")
    def _column_or_constant(self) -> ScenarioSpec:
        if self.constant is not None:
            extra = [k for k in ("column", "mapping", "other") if getattr(self, k) is not None]
            if extra:
                raise problem("{at}.constant cannot be combined with {at}.{key}", key=extra[0])
        elif self.column is None:
            raise problem("{at} needs a column (or `constant: <name>` for data with a single scenario)")
        elif self.other is not None and self.mapping is None:
            raise problem("{at}.other needs {at}.mapping (without a mapping every raw value is a scenario)")
        return self


class RuleSpec(Part):
    """Turns a raw label column into 0/1: ``column <op> value`` or ``column <op> other column``."""

    op: Literal["==", "!=", ">", ">=", "<", "<="]
    value: Annotated[str | int | float | bool | None, BeforeValidator(_scalar)] = None  # a constant, or
    column: Column | None = None  # a second column, compared row by row

    def describe(self, left: str) -> str:
        right = f"column '{self.column}'" if self.column is not None else repr(self.value)
        return f"'{left}' {self.op} {right}"

    @model_validator(mode="after")
    def _value_or_column(self) -> RuleSpec:
        if (self.value is None) == (self.column is None):
            raise problem("{at} needs exactly one of value (compare with a constant) or column (compare with "
                          "another column)")
        return self


class TaskSpec(Part):
    """One binary prediction task: its label ``column`` holds 0/1 (or booleans, null meaning "not
    observed") unless a ``rule`` turns it into 0/1; ``role`` places it in the entire-space graph."""

    name: Text  # unique; used in the schema, metrics and configs
    column: Column
    rule: RuleSpec | None = None
    role: Literal["click", "action", "conversion"] | None = None  # impression → click → action/conversion


class NumericSpec(Part):
    """A numeric feature: ``standardize`` (train mean/std), ``log1p`` (signed log1p, then
    standardised) or ``bucketize`` (``buckets`` train quantiles → a categorical field)."""

    column: Column
    transform: Literal["standardize", "log1p", "bucketize"] = "standardize"
    buckets: Annotated[StrictInt, Field(ge=2)] | None = Field(None, validate_default=True)  # bucketize only

    @model_validator(mode="before")
    @classmethod
    def _bare_name(cls, entry: Any) -> Any:
        """A bare column name means ``transform: standardize``."""
        return {"column": entry} if isinstance(entry, (str, int)) and not isinstance(entry, bool) else entry

    @field_validator("buckets")
    @classmethod
    def _buckets_for_bucketize(cls, buckets: int | None, info: ValidationInfo) -> int | None:
        transform = info.data.get("transform")
        if transform == "bucketize":
            return _DEFAULT_BUCKETS if buckets is None else buckets
        if buckets is not None:
            raise problem("{at} is only used with transform: bucketize (got transform: {transform})",
                          transform=transform)
        return None


class DatasetSpec(Part):
    """Everything the data layer needs to turn raw files into :class:`EncodedData`.

    ``source`` is the spec file's name, which prefixes error messages; it is neither compared nor
    serialised.
    """

    name: Text  # reports, run directories
    files: FilesSpec
    scenario: ScenarioSpec
    tasks: Annotated[tuple[TaskSpec, ...], Field(min_length=1)]  # in label-column order
    categorical: Columns = ()  # ids or strings
    numeric: tuple[NumericSpec, ...] = ()
    user: Column | None = None  # user ids (enable GAUC)
    prior_features: Columns = ()  # categorical fields used as personal priors by PEPNet/AEM²TL gates
    scenario_as_feature: StrictBool = False  # also feed the scenario id as the field SCENARIO_FIELD
    min_count: Annotated[StrictInt, Field(ge=1)] = 1  # rarer categories in train map to unknown (0)
    multi_categorical: dict[Text, ListSpec] = {}  # list features by name (see spec_lists)
    sequences: dict[Text, SequenceSpec] = {}  # behaviour sequences by name: built from the log or given
    conversion_without_click: StrictBool = False  # entire-space models: may a conversion skip the click?
    _source: str = PrivateAttr("<dict>")

    def model_post_init(self, context: Any, /) -> None:
        self._source = (context or {}).get("source", "<dict>")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DatasetSpec) and self.__dict__ == other.__dict__  # the fields, not source

    @property
    def source(self) -> str:
        return self._source

    @property
    def where(self) -> str:
        """Prefix of every message about this spec: ``"spec womens.yaml"``."""
        return f"spec {self.source}"

    @property
    def task_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.tasks)

    @property
    def label_columns(self) -> tuple[str, ...]:
        return tuple(t.column for t in self.tasks)

    @property
    def feature_columns(self) -> tuple[str, ...]:
        """Columns the model sees as inputs (categorical, numeric, the user column as a prior)."""
        cols = list(self.categorical) + [n.column for n in self.numeric] + list(self.list_columns)
        if self.user is not None and self.user in self.prior_features and self.user not in cols:
            cols.append(self.user)
        return tuple(cols)

    @property
    def id_columns(self) -> tuple[str, ...]:
        """Columns holding identifiers, read as exact integers or strings, never as floats."""
        cols = [*self.categorical, self.user, self.scenario.column, *(s.user for s in self.sequences.values())]
        return tuple(dict.fromkeys(c for c in cols if c is not None))

    @property
    def number_columns(self) -> tuple[str, ...]:
        """Numeric feature columns read as numbers (a time column among them keeps its own type:
        an epoch in nanoseconds is not exact as a float)."""
        times = {self.files.split.column if self.files.split else None, *(s.time for s in self.sequences.values())}
        return tuple(n.column for n in self.numeric if n.column not in times)

    @property
    def list_columns(self) -> tuple[str, ...]:
        """Columns holding a list per row (a Parquet list, or text split on the entry's ``sep``)."""
        cols = [e.column for e in self.multi_categorical.values()]
        cols += [s.column for s in self.sequences.values() if s.column is not None]
        return tuple(dict.fromkeys(cols))

    def data_file(self, path: str | Path, fmt: str | None = None, *, read_rows: int = READ_ROWS) -> DataFile:
        """The reader of one of this spec's files (``fmt`` None: ``files.format``): ids read exactly,
        numeric columns of a CSV as numbers in every block, list columns of a CSV as text, the
        spec's CSV options."""
        return DataFile(path, self.files.format if fmt is None else fmt, id_columns=self.id_columns,
                        number_columns=self.number_columns, csv=self.files.csv,
                        column_types={c: pa.string() for c in self.list_columns}, read_rows=read_rows)

    def required_columns(self, *, labels: bool = True) -> list[str]:
        """Every column to read from a data file (labels and the time column optional)."""
        cols = [self.scenario.column, *self.categorical, *(n.column for n in self.numeric), self.user,
                *self.list_columns, *(c for s in self.sequences.values() if s.built for c in (s.user, s.time))]
        if labels:
            cols += [c for t in self.tasks for c in (t.column, t.rule.column if t.rule is not None else None)]
            split = self.files.split
            cols.append(split.column if split is not None else None)  # set for a time split only
        return list(dict.fromkeys(c for c in cols if c is not None))

    def to_dict(self) -> dict[str, Any]:
        """The spec as plain data; ``load_spec(spec.to_dict())`` gives an equal spec."""
        return self.model_dump(mode="json")

    @field_validator("categorical", "numeric", "prior_features", "multi_categorical", "sequences", mode="before")
    @classmethod
    def _null_is_empty(cls, value: Any, info: ValidationInfo) -> Any:
        return cls.model_fields[info.field_name].default if value is None else value

    @field_validator("multi_categorical", mode="before")
    @classmethod
    def _column_is_the_name(cls, value: Any) -> Any:
        """An entry without ``column`` reads the column of its name (``genres: {sep: "|"}``)."""
        if not isinstance(value, Mapping):
            return value
        return {name: {"column": name, **entry} if isinstance(entry, Mapping) and "column" not in entry
                else {"column": name} if entry is None else entry for name, entry in value.items()}

    @field_validator("tasks")
    @classmethod
    def _unique_task_names(cls, tasks: tuple[TaskSpec, ...]) -> tuple[TaskSpec, ...]:
        dup = first_duplicate(t.name for t in tasks)
        if dup is not None:
            raise problem("{at}: task name '{dup}' is used twice", dup=dup)
        return tasks

    @field_validator("numeric")
    @classmethod
    def _unique_numeric(cls, numeric: tuple[NumericSpec, ...]) -> tuple[NumericSpec, ...]:
        unique(tuple(n.column for n in numeric))
        return numeric

    @model_validator(mode="after")
    def _consistent(self) -> DatasetSpec:
        """Rules across keys (the checks that need the data live in encode.py)."""
        both = [c for c in self.categorical if c in {n.column for n in self.numeric}]
        if both:
            raise problem("column '{col}' is listed in both categorical and numeric", col=both[0])
        priors = {*self.categorical, *(n.column for n in self.numeric if n.transform == "bucketize"), self.user,
                  SCENARIO_FIELD if self.scenario_as_feature else None} - {None}
        for i, p in enumerate(self.prior_features):
            if p not in priors:
                hint = f" or the user column '{self.user}'" if self.user is not None else ""
                raise problem("prior_features[{i}] '{p}' must be a categorical column (listed in categorical{hint})",
                              i=i, p=p, hint=hint)
        if self.scenario.constant is not None and self.scenario_as_feature:
            raise problem("scenario_as_feature has no use with a constant scenario (the field would be the same "
                          "for every row)")
        clicks = [t.name for t in self.tasks if t.role == "click"]
        if len(clicks) > 1:
            raise problem("only one task may have role click, got {names}", names=", ".join(clicks))
        if not clicks and any(t.role is not None for t in self.tasks):
            raise problem("tasks with role action or conversion need a task with role click")
        if self.conversion_without_click and not any(t.role == "conversion" for t in self.tasks):
            raise problem("conversion_without_click is only used when a task has role conversion")
        split = self.files.split
        if split is not None and split.column is not None and split.column in self.label_columns:
            raise problem("files.split.column '{col}' is also a label column", col=split.column)
        self._check_lists()
        return self

    def _check_lists(self) -> None:
        """List and sequence features: names apart from the fields, items and side features among
        the categorical columns, a ``sep`` for every list read from a CSV file."""
        taken = {self.user: "the user column"} if self.user in self.prior_features else {}
        taken.update({c: "a categorical column" for c in self.categorical})
        taken.update({n.column: "a numeric column" for n in self.numeric if n.transform == "bucketize"})
        taken[SCENARIO_FIELD] = "the scenario field"
        entries: list[tuple[str, str, Any]] = [("multi_categorical", n, e) for n, e in self.multi_categorical.items()]
        entries += [("sequences", n, e) for n, e in self.sequences.items()]
        csv = next((p.name for p in self.files.paths if file_format(p, self.files.format) == "csv"), None)
        for key, name, entry in entries:
            at = f"{key}[{name!r}]"
            if name in taken:
                raise problem("{at}: the name is already {what}; name the feature differently", at=at, what=taken[name])
            taken[name] = f"a feature in {key}"
            if isinstance(entry, SequenceSpec):
                for role, col in (("item", entry.item), *(("side", c) for c in entry.side)):
                    if col not in self.categorical:
                        raise problem("{at}.{role} '{col}' must be a categorical column (listed in categorical): the "
                                      "sequence shares its vocabulary and embedding", at=at, role=role, col=col)
            if getattr(entry, "column", None) is not None and entry.sep is None and csv is not None:
                raise problem("{at}.sep is needed: {file} is CSV, where a list is text (e.g. sep: \"|\" for "
                              "Action|Comedy)", at=at, file=csv)


def load_spec(path_or_dict: str | Path | Mapping[str, Any], *, base_dir: str | Path | None = None,
              source: str | None = None) -> DatasetSpec:
    """Load and validate a dataset spec: a YAML file, or the already-parsed mapping.

    Relative data paths resolve against ``base_dir``, by default the spec file's folder (the
    current directory for a mapping). ``source`` names the spec in messages and ``spec.source``;
    it defaults to the file's name (``"<dict>"`` for a mapping).

    Raises
    ------
    SpecError
        The file is missing or not YAML, or a key is unknown, missing or of the wrong type. The
        message names the spec file and the key.
    """
    if isinstance(path_or_dict, Mapping):
        raw: Any = dict(path_or_dict)
        source = source or "<dict>"
        folder = Path(base_dir) if base_dir is not None else Path.cwd()
    else:
        path = Path(path_or_dict)
        if not path.is_file():
            raise SpecError(f"spec file not found: {path}")
        source = source or path.name
        raw = load_yaml(path, f"spec {source}", SpecError)
        folder = Path(base_dir) if base_dir is not None else path.resolve().parent
    if raw is None:
        raise SpecError(f"spec {source}: is empty")
    try:
        return DatasetSpec.model_validate(raw, context={"folder": folder.resolve(), "source": source})
    except ValidationError as exc:
        raise SpecError(f"spec {source}: {explain(exc, DatasetSpec, 'the spec')}") from None


def _raw_key(value: Any) -> str | None:
    """A raw scenario value as the text the data layer compares with (``1`` → ``"1"``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, str)):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return None
