"""Dataset specs: which column of a raw table is what.

A :class:`DatasetSpec` is usually written as YAML and loaded with :func:`load_spec`::

    name: womens-ecommerce
    files:                       # exactly one of: path (+ split) | train + test (+ val)
      path: womens_ecommerce.parquet   # relative paths resolve against the spec file's folder
      split: {method: random, fractions: [0.8, 0.1, 0.1], seed: 2024}
      format: auto               # auto (by extension) | csv | parquet
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

Validation happens here, once, with one-line :class:`~msmtrec.errors.SpecError` messages that
name the spec file and the key ("spec womens.yaml: tasks[1].rule.op must be one of ..."). Nothing
is read from the data files at this point; checks that need the data live in
:mod:`msmtrec.data.encode`.
"""

from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from msmtrec.errors import SpecError

__all__ = [
    "COMPARISON_OPS",
    "NUMERIC_TRANSFORMS",
    "TASK_ROLES",
    "DatasetSpec",
    "FilesSpec",
    "NumericSpec",
    "RuleSpec",
    "ScenarioSpec",
    "SplitSpec",
    "TaskSpec",
    "load_spec",
]

#: Comparison operators a task rule may use.
COMPARISON_OPS: tuple[str, ...] = ("==", "!=", ">", ">=", "<", "<=")
#: Numeric transforms; ``bucketize`` turns the column into a categorical field.
NUMERIC_TRANSFORMS: tuple[str, ...] = ("standardize", "log1p", "bucketize")
#: Entire-space roles of a task in the impression → click → action/conversion graph.
TASK_ROLES: tuple[str, ...] = ("click", "action", "conversion")
#: Name of the categorical field holding the scenario id when ``scenario_as_feature`` is set.
SCENARIO_FIELD = "__scenario__"

_DEFAULT_FRACTIONS = (0.8, 0.1, 0.1)
# When only train and test files are given, validation rows are carved out of train.
_DEFAULT_VAL_CARVE = (0.9, 0.1)
_DEFAULT_SEED = 2024
_DEFAULT_BUCKETS = 10


# --------------------------------------------------------------------------------------------
# Dataclasses
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SplitSpec:
    """How one table is divided into train/val(/test).

    Attributes
    ----------
    method:
        ``"random"`` (seeded permutation) or ``"time"`` (sorted by ``column``, oldest → train).
    fractions:
        Fraction of rows per part, summing to 1: three parts (train, val, test) when splitting a
        single file, two (train, val) when carving validation rows out of a train file.
    seed:
        Seed of the permutation (``random`` only).
    column:
        Time column (``time`` only).
    """

    method: str = "random"
    fractions: tuple[float, ...] = _DEFAULT_FRACTIONS
    seed: int | None = _DEFAULT_SEED
    column: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"method": self.method, "fractions": list(self.fractions)}
        if self.method == "random":
            d["seed"] = self.seed
        else:
            d["column"] = self.column
        return d


@dataclass(frozen=True)
class FilesSpec:
    """Where the rows come from: one file split by :class:`SplitSpec`, or one file per split.

    Attributes
    ----------
    path:
        Single table, divided by ``split`` into train/val/test.
    train, val, test:
        One table per split. Without ``val``, validation rows are carved out of ``train`` by
        ``split`` (two fractions).
    split:
        How ``path`` (or ``train`` when ``val`` is absent) is divided; ``None`` when every split
        has its own file.
    format:
        ``"auto"`` (from the extension), ``"csv"`` or ``"parquet"``.
    """

    path: Path | None = None
    train: Path | None = None
    val: Path | None = None
    test: Path | None = None
    split: SplitSpec | None = None
    format: str = "auto"

    @property
    def single_file(self) -> bool:
        return self.path is not None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {}
        for key in ("path", "train", "val", "test"):
            value = getattr(self, key)
            if value is not None:
                d[key] = str(value)
        if self.split is not None:
            d["split"] = self.split.to_dict()
        d["format"] = self.format
        return d


@dataclass(frozen=True)
class ScenarioSpec:
    """Which scenario each row belongs to.

    Attributes
    ----------
    column:
        Column holding the raw scenario value (``None`` with ``constant``).
    constant:
        Name of the single scenario of a dataset that has no scenario column.
    mapping:
        Raw value (as text, e.g. ``"1"`` for the integer 1) → scenario name. Several raw values
        may map to one name. ``None`` means every raw value seen in train is its own scenario.
    other:
        Scenario name for raw values absent from ``mapping``; without it they are an error.
    drop_missing:
        Drop (and report) rows whose scenario is missing instead of failing.
    """

    column: str | None = None
    constant: str | None = None
    mapping: dict[str, str] | None = None
    other: str | None = None
    drop_missing: bool = True

    def declared_names(self) -> list[str]:
        """Scenario names the spec itself declares, in declaration order (empty without mapping)."""
        if self.constant is not None:
            return [self.constant]
        names: list[str] = []
        for name in (self.mapping or {}).values():
            if name not in names:
                names.append(name)
        if self.other is not None and self.other not in names:
            names.append(self.other)
        return names

    def to_dict(self) -> dict[str, Any]:
        if self.constant is not None:
            return {"constant": self.constant}
        d: dict[str, Any] = {"column": self.column, "drop_missing": self.drop_missing}
        if self.mapping is not None:
            d["mapping"] = dict(self.mapping)
        if self.other is not None:
            d["other"] = self.other
        return d


@dataclass(frozen=True)
class RuleSpec:
    """Turns a raw label column into 0/1: ``column <op> value`` or ``column <op> other column``.

    Attributes
    ----------
    op:
        One of :data:`COMPARISON_OPS`.
    value:
        Constant to compare with (exclusive with ``column``).
    column:
        Second column to compare with, row by row (exclusive with ``value``).
    """

    op: str
    value: str | int | float | bool | None = None
    column: str | None = None

    def describe(self, left: str) -> str:
        right = f"column '{self.column}'" if self.column is not None else repr(self.value)
        return f"'{left}' {self.op} {right}"

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"op": self.op}
        if self.column is not None:
            d["column"] = self.column
        else:
            d["value"] = self.value
        return d


@dataclass(frozen=True)
class TaskSpec:
    """One binary prediction task.

    Attributes
    ----------
    name:
        Task name (unique), used in the schema, metrics and configs.
    column:
        Label column. Without a rule it must hold 0/1 (or booleans); null means "not observed".
    rule:
        Optional comparison that turns the column into 0/1.
    role:
        Optional entire-space role (``click``, ``action``, ``conversion``).
    """

    name: str
    column: str
    rule: RuleSpec | None = None
    role: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name, "column": self.column}
        if self.rule is not None:
            d["rule"] = self.rule.to_dict()
        if self.role is not None:
            d["role"] = self.role
        return d


@dataclass(frozen=True)
class NumericSpec:
    """A numeric feature and its transform.

    Attributes
    ----------
    column:
        Column name.
    transform:
        ``standardize`` (train mean/std), ``log1p`` (signed ``log1p`` then standardise) or
        ``bucketize`` (train quantile buckets → a categorical field).
    buckets:
        Number of quantile buckets (``bucketize`` only).
    """

    column: str
    transform: str = "standardize"
    buckets: int | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"column": self.column, "transform": self.transform}
        if self.buckets is not None:
            d["buckets"] = self.buckets
        return d


@dataclass(frozen=True)
class DatasetSpec:
    """Everything the data layer needs to turn raw files into :class:`EncodedData`.

    Attributes
    ----------
    name:
        Dataset name (reports, run directories).
    files:
        Where the rows come from.
    scenario:
        How each row's scenario is found.
    tasks:
        The binary tasks, in label-column order.
    categorical:
        Categorical feature columns (ids or strings).
    numeric:
        Numeric feature columns with their transforms.
    user:
        Optional user-id column (enables GAUC).
    prior_features:
        Categorical fields used as personal priors by PEPNet/AEM²TL gates.
    scenario_as_feature:
        Also feed the scenario id as a categorical field named ``__scenario__``.
    min_count:
        Categories seen fewer times than this in train map to unknown (0).
    conversion_without_click:
        Whether a conversion can happen without a click (entire-space models).
    source:
        The spec file's name, used to prefix error messages.
    """

    name: str
    files: FilesSpec
    scenario: ScenarioSpec
    tasks: tuple[TaskSpec, ...]
    categorical: tuple[str, ...] = ()
    numeric: tuple[NumericSpec, ...] = ()
    user: str | None = None
    prior_features: tuple[str, ...] = ()
    scenario_as_feature: bool = False
    min_count: int = 1
    conversion_without_click: bool = False
    source: str = field(default="<dict>", compare=False)

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
        cols = list(self.categorical) + [n.column for n in self.numeric]
        if self.user is not None and self.user in self.prior_features and self.user not in cols:
            cols.append(self.user)
        return tuple(cols)

    @property
    def id_columns(self) -> tuple[str, ...]:
        """Columns holding identifiers, read as exact integers or strings, never as floats."""
        cols = list(self.categorical)
        if self.user is not None:
            cols.append(self.user)
        if self.scenario.column is not None:
            cols.append(self.scenario.column)
        return tuple(dict.fromkeys(cols))

    def required_columns(self, *, labels: bool = True) -> list[str]:
        """Every column to read from a data file (labels and the time column optional)."""
        cols: list[str] = []
        if self.scenario.column is not None:
            cols.append(self.scenario.column)
        cols += list(self.categorical) + [n.column for n in self.numeric]
        if self.user is not None:
            cols.append(self.user)
        if labels:
            for t in self.tasks:
                cols.append(t.column)
                if t.rule is not None and t.rule.column is not None:
                    cols.append(t.rule.column)
            split = self.files.split
            if split is not None and split.method == "time" and split.column is not None:
                cols.append(split.column)
        return list(dict.fromkeys(cols))

    def to_dict(self) -> dict[str, Any]:
        """The spec as plain data; ``load_spec(spec.to_dict())`` gives an equal spec."""
        return {
            "name": self.name,
            "files": self.files.to_dict(),
            "scenario": self.scenario.to_dict(),
            "tasks": [t.to_dict() for t in self.tasks],
            "categorical": list(self.categorical),
            "numeric": [n.to_dict() for n in self.numeric],
            "user": self.user,
            "prior_features": list(self.prior_features),
            "scenario_as_feature": self.scenario_as_feature,
            "min_count": self.min_count,
            "conversion_without_click": self.conversion_without_click,
        }


# --------------------------------------------------------------------------------------------
# YAML
# --------------------------------------------------------------------------------------------


class SpecLoader(yaml.SafeLoader):
    """PyYAML's safe loader with YAML 1.2 scalars instead of YAML 1.1 ones.

    YAML 1.1 (PyYAML's default) reads ``109_14`` as the integer 10914, ``1:30`` as 90, ``010`` as
    8 and ``yes``/``no``/``on``/``off`` as booleans; column names and raw scenario values like
    these are common in recommendation data, so they stay text here. Integers are decimal without
    leading zeros, booleans are ``true``/``false`` only.
    """


SpecLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers
            if tag not in ("tag:yaml.org,2002:bool", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float")]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
SpecLoader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                                 list("tTfF"))
SpecLoader.add_implicit_resolver("tag:yaml.org,2002:int", re.compile(r"^[-+]?(?:0|[1-9][0-9]*)$"),
                                 list("-+0123456789"))
SpecLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^(?:[-+]?(?:[0-9]+\.[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?|[-+]?[0-9]+[eE][-+]?[0-9]+"
               r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"),
    list("-+0123456789."))


def _construct_int(loader: yaml.SafeLoader, node: yaml.Node) -> int:
    return int(loader.construct_scalar(node))  # decimal only (the resolver guarantees it)


SpecLoader.add_constructor("tag:yaml.org,2002:int", _construct_int)


# --------------------------------------------------------------------------------------------
# Loading and validation
# --------------------------------------------------------------------------------------------


class _Checker:
    """Small helpers that raise :class:`SpecError` with the spec file and the key path."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, msg: str) -> SpecError:
        return SpecError(f"spec {self.source}: {msg}")

    def mapping(self, value: Any, key: str) -> dict:
        if not isinstance(value, Mapping):
            raise self.fail(f"{key} must be a mapping, got {_show(value)}")
        return dict(value)

    def keys(self, d: Mapping, key: str, allowed: tuple[str, ...], required: tuple[str, ...] = ()) -> None:
        for k in d:
            if k not in allowed:
                where = f"{key}." if key else ""
                hint = _did_you_mean(str(k), allowed)
                raise self.fail(f"unknown key '{where}{k}'{hint} (allowed: {', '.join(allowed)})")
        for k in required:
            if k not in d or d[k] is None:
                where = f"{key} is" if key else "the spec is"
                raise self.fail(f"{where} missing required key '{k}'")

    def string(self, value: Any, key: str) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.fail(f"{key} must be a non-empty string, got {_show(value)}")
        return value

    def column(self, value: Any, key: str) -> str:
        # YAML reads a bare `301` as an integer; file headers are always text.
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        if not isinstance(value, str) or value == "":
            raise self.fail(f"{key} must be a column name, got {_show(value)}")
        return value

    def columns(self, value: Any, key: str) -> tuple[str, ...]:
        if value is None:
            return ()
        if not isinstance(value, (list, tuple)):
            raise self.fail(f"{key} must be a list of column names, got {_show(value)}")
        cols = tuple(self.column(v, f"{key}[{i}]") for i, v in enumerate(value))
        dup = _first_duplicate(cols)
        if dup is not None:
            raise self.fail(f"{key} lists column '{dup}' twice")
        return cols

    def boolean(self, value: Any, key: str) -> bool:
        if not isinstance(value, bool):
            raise self.fail(f"{key} must be true or false, got {_show(value)}")
        return value

    def integer(self, value: Any, key: str, minimum: int | None = None) -> int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise self.fail(f"{key} must be an integer, got {_show(value)}")
        if minimum is not None and value < minimum:
            raise self.fail(f"{key} must be at least {minimum}, got {value}")
        return value

    def choice(self, value: Any, key: str, options: tuple[str, ...]) -> str:
        if value not in options:
            raise self.fail(f"{key} must be one of {', '.join(options)}, got {_show(value)}")
        return value


def load_spec(path_or_dict: str | Path | Mapping[str, Any], *, base_dir: str | Path | None = None) -> DatasetSpec:
    """Load and validate a dataset spec.

    Parameters
    ----------
    path_or_dict:
        Path to a YAML file, or the already-parsed mapping.
    base_dir:
        Folder that relative data paths resolve against. Defaults to the spec file's folder (or
        the current directory for a mapping).

    Returns
    -------
    DatasetSpec
        The validated spec, with absolute data paths.

    Raises
    ------
    SpecError
        The file is missing or not YAML, or a key is unknown, missing or of the wrong type. The
        message names the spec file and the key.
    """
    if isinstance(path_or_dict, Mapping):
        raw: Any = dict(path_or_dict)
        source = "<dict>"
        folder = Path(base_dir) if base_dir is not None else Path.cwd()
    else:
        path = Path(path_or_dict)
        source = path.name
        if not path.is_file():
            raise SpecError(f"spec file not found: {path}")
        try:
            raw = yaml.load(path.read_text(encoding="utf-8"), Loader=SpecLoader)  # noqa: S506 (safe subclass)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            at = f" at line {mark.line + 1}" if mark is not None else ""
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise SpecError(f"spec {source}: not valid YAML{at}: {problem}") from None
        folder = Path(base_dir) if base_dir is not None else path.resolve().parent
    ck = _Checker(source)
    if raw is None:
        raise ck.fail("is empty")
    raw = ck.mapping(raw, "the spec")
    top = ("name", "files", "scenario", "tasks", "categorical", "numeric", "user", "prior_features",
           "scenario_as_feature", "min_count", "conversion_without_click")
    ck.keys(raw, "", top, required=("name", "files", "scenario", "tasks"))

    name = ck.string(raw["name"], "name")
    files = _parse_files(ck, raw["files"], folder.resolve())
    scenario = _parse_scenario(ck, raw["scenario"])
    tasks = _parse_tasks(ck, raw["tasks"])
    categorical = ck.columns(raw.get("categorical"), "categorical")
    numeric = _parse_numeric(ck, raw.get("numeric"))
    user = None if raw.get("user") is None else ck.column(raw["user"], "user")
    prior = ck.columns(raw.get("prior_features"), "prior_features")
    scenario_as_feature = ck.boolean(raw.get("scenario_as_feature", False), "scenario_as_feature")
    min_count = ck.integer(raw.get("min_count", 1), "min_count", minimum=1)
    conversion_without_click = ck.boolean(raw.get("conversion_without_click", False), "conversion_without_click")

    spec = DatasetSpec(name=name, files=files, scenario=scenario, tasks=tasks, categorical=categorical,
                       numeric=numeric, user=user, prior_features=prior, scenario_as_feature=scenario_as_feature,
                       min_count=min_count, conversion_without_click=conversion_without_click, source=source)
    _check_consistency(ck, spec)
    return spec


def _parse_files(ck: _Checker, raw: Any, folder: Path) -> FilesSpec:
    d = ck.mapping(raw, "files")
    ck.keys(d, "files", ("path", "split", "train", "val", "test", "format"))
    fmt = ck.choice(d.get("format", "auto"), "files.format", ("auto", "csv", "parquet"))

    def resolve(key: str) -> Path | None:
        if d.get(key) is None:
            return None
        p = Path(ck.string(d[key], f"files.{key}")).expanduser()
        return p if p.is_absolute() else folder / p

    path, train, val, test = (resolve(k) for k in ("path", "train", "val", "test"))
    if path is not None and any(p is not None for p in (train, val, test)):
        raise ck.fail("files must give either path (+ split) or train/val/test, not both")
    if path is None:
        if train is None or test is None:
            missing = [k for k, p in (("train", train), ("test", test)) if p is None]
            raise ck.fail(f"files needs either path, or train and test (missing: {', '.join(missing)})")
        if val is not None:
            if d.get("split") is not None:
                raise ck.fail("files.split has no effect when train, val and test files are all given; remove it")
            return FilesSpec(train=train, val=val, test=test, split=None, format=fmt)
        split = _parse_split(ck, d.get("split"), parts=2)
        return FilesSpec(train=train, test=test, split=split, format=fmt)
    return FilesSpec(path=path, split=_parse_split(ck, d.get("split"), parts=3), format=fmt)


def _parse_split(ck: _Checker, raw: Any, *, parts: int) -> SplitSpec:
    default = _DEFAULT_FRACTIONS if parts == 3 else _DEFAULT_VAL_CARVE
    if raw is None:
        return SplitSpec(method="random", fractions=default, seed=_DEFAULT_SEED)
    d = ck.mapping(raw, "files.split")
    ck.keys(d, "files.split", ("method", "fractions", "seed", "column"))
    method = ck.choice(d.get("method", "random"), "files.split.method", ("random", "time"))
    fr = d.get("fractions", list(default))
    what = "train, val, test" if parts == 3 else "train, val (validation rows are carved out of the train file)"
    if (not isinstance(fr, (list, tuple)) or len(fr) != parts
            or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in fr)):
        raise ck.fail(f"files.split.fractions must be a list of {parts} numbers ({what}), got {_show(fr)}")
    fractions = tuple(float(x) for x in fr)
    if any(not (0.0 < x < 1.0) for x in fractions):
        raise ck.fail(f"files.split.fractions must each be between 0 and 1 (exclusive), got {list(fr)}")
    if not math.isclose(sum(fractions), 1.0, abs_tol=1e-6):
        raise ck.fail(f"files.split.fractions must sum to 1, got {list(fr)} (sum {sum(fractions):g})")
    if method == "random":
        if d.get("column") is not None:
            raise ck.fail("files.split.column is only used with method: time")
        seed = ck.integer(d.get("seed", _DEFAULT_SEED), "files.split.seed", minimum=0)
        return SplitSpec(method="random", fractions=fractions, seed=seed)
    if d.get("seed") is not None:
        raise ck.fail("files.split.seed has no effect with method: time (the order comes from the time column); "
                      "remove it")
    if d.get("column") is None:
        raise ck.fail("files.split.method time needs files.split.column (the time column)")
    return SplitSpec(method="time", fractions=fractions, seed=None, column=ck.column(d["column"], "files.split.column"))


def _parse_scenario(ck: _Checker, raw: Any) -> ScenarioSpec:
    d = ck.mapping(raw, "scenario")
    ck.keys(d, "scenario", ("column", "constant", "mapping", "other", "drop_missing"))
    if d.get("constant") is not None:
        extra = [k for k in ("column", "mapping", "other") if d.get(k) is not None]
        if extra:
            raise ck.fail(f"scenario.constant cannot be combined with scenario.{extra[0]}")
        return ScenarioSpec(constant=ck.string(d["constant"], "scenario.constant"))
    if d.get("column") is None:
        raise ck.fail("scenario needs a column (or `constant: <name>` for data with a single scenario)")
    column = ck.column(d["column"], "scenario.column")
    mapping = None
    if d.get("mapping") is not None:
        m = ck.mapping(d["mapping"], "scenario.mapping")
        if not m:
            raise ck.fail("scenario.mapping is empty; remove it to use the raw values as scenario names")
        mapping = {}
        for k, v in m.items():
            key = _raw_key(k)
            if key is None:
                raise ck.fail(f"scenario.mapping keys must be raw values (text or numbers), got {_show(k)}")
            if key in mapping:
                raise ck.fail(f"scenario.mapping lists raw value {k!r} twice")
            mapping[key] = ck.string(v, f"scenario.mapping[{k!r}]")
    other = None
    if d.get("other") is not None:
        if mapping is None:
            raise ck.fail("scenario.other needs scenario.mapping (without a mapping every raw value is a scenario)")
        other = ck.string(d["other"], "scenario.other")
    drop = ck.boolean(d.get("drop_missing", True), "scenario.drop_missing")
    return ScenarioSpec(column=column, mapping=mapping, other=other, drop_missing=drop)


def _parse_tasks(ck: _Checker, raw: Any) -> tuple[TaskSpec, ...]:
    if not isinstance(raw, (list, tuple)) or not raw:
        raise ck.fail(f"tasks must be a non-empty list, got {_show(raw)}")
    tasks = []
    for i, item in enumerate(raw):
        key = f"tasks[{i}]"
        d = ck.mapping(item, key)
        ck.keys(d, key, ("name", "column", "rule", "role"), required=("name", "column"))
        name = ck.string(d["name"], f"{key}.name")
        column = ck.column(d["column"], f"{key}.column")
        rule = None
        if d.get("rule") is not None:
            r = ck.mapping(d["rule"], f"{key}.rule")
            ck.keys(r, f"{key}.rule", ("op", "value", "column"), required=("op",))
            op = ck.choice(r["op"], f"{key}.rule.op", COMPARISON_OPS)
            has_value, has_column = "value" in r and r["value"] is not None, r.get("column") is not None
            if has_value == has_column:
                raise ck.fail(f"{key}.rule needs exactly one of value (compare with a constant) or column "
                              f"(compare with another column)")
            if has_column:
                rule = RuleSpec(op=op, column=ck.column(r["column"], f"{key}.rule.column"))
            else:
                value = r["value"]
                if not isinstance(value, (str, int, float, bool)):
                    raise ck.fail(f"{key}.rule.value must be a number, text or true/false, got {_show(value)}")
                rule = RuleSpec(op=op, value=value)
        role = None
        if d.get("role") is not None:
            role = ck.choice(d["role"], f"{key}.role", TASK_ROLES)
        tasks.append(TaskSpec(name=name, column=column, rule=rule, role=role))
    dup = _first_duplicate([t.name for t in tasks])
    if dup is not None:
        raise ck.fail(f"tasks: task name '{dup}' is used twice")
    return tuple(tasks)


def _parse_numeric(ck: _Checker, raw: Any) -> tuple[NumericSpec, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, (list, tuple)):
        raise ck.fail(f"numeric must be a list, got {_show(raw)}")
    out = []
    for i, item in enumerate(raw):
        key = f"numeric[{i}]"
        if isinstance(item, (str, int)) and not isinstance(item, bool):
            out.append(NumericSpec(column=ck.column(item, key)))
            continue
        d = ck.mapping(item, key)
        ck.keys(d, key, ("column", "transform", "buckets"), required=("column",))
        transform = ck.choice(d.get("transform", "standardize"), f"{key}.transform", NUMERIC_TRANSFORMS)
        buckets = None
        if transform == "bucketize":
            buckets = ck.integer(d.get("buckets", _DEFAULT_BUCKETS), f"{key}.buckets", minimum=2)
        elif d.get("buckets") is not None:
            raise ck.fail(f"{key}.buckets is only used with transform: bucketize (got transform: {transform})")
        out.append(NumericSpec(column=ck.column(d["column"], f"{key}.column"), transform=transform, buckets=buckets))
    dup = _first_duplicate([n.column for n in out])
    if dup is not None:
        raise ck.fail(f"numeric lists column '{dup}' twice")
    return tuple(out)


def _check_consistency(ck: _Checker, spec: DatasetSpec) -> None:
    """Cross-key checks that need the whole spec (data-dependent checks live in encode.py)."""
    numeric_cols = {n.column for n in spec.numeric}
    both = [c for c in spec.categorical if c in numeric_cols]
    if both:
        raise ck.fail(f"column '{both[0]}' is listed in both categorical and numeric")
    allowed_priors = set(spec.categorical) | {n.column for n in spec.numeric if n.transform == "bucketize"}
    if spec.user is not None:
        allowed_priors.add(spec.user)
    if spec.scenario_as_feature:
        allowed_priors.add(SCENARIO_FIELD)
    for i, p in enumerate(spec.prior_features):
        if p not in allowed_priors:
            hint = f" or the user column '{spec.user}'" if spec.user is not None else ""
            raise ck.fail(f"prior_features[{i}] '{p}' must be a categorical column (listed in categorical{hint})")
    if spec.scenario.constant is not None and spec.scenario_as_feature:
        raise ck.fail("scenario_as_feature has no use with a constant scenario (the field would be the same for "
                      "every row)")
    roles = [t.role for t in spec.tasks if t.role is not None]
    if roles:
        clicks = [t.name for t in spec.tasks if t.role == "click"]
        if len(clicks) > 1:
            raise ck.fail(f"only one task may have role click, got {', '.join(clicks)}")
        if not clicks:
            raise ck.fail("tasks with role action or conversion need a task with role click")
    if spec.conversion_without_click and not any(t.role == "conversion" for t in spec.tasks):
        raise ck.fail("conversion_without_click is only used when a task has role conversion")
    if spec.files.split is not None and spec.files.split.method == "time":
        col = spec.files.split.column
        if col in spec.label_columns:
            raise ck.fail(f"files.split.column '{col}' is also a label column")


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def _raw_key(value: Any) -> str | None:
    """A raw scenario value as the text the data layer compares with (``1`` → ``"1"``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, str)):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return None


def _first_duplicate(items: Any) -> Any:
    seen = set()
    for x in items:
        if x in seen:
            return x
        seen.add(x)
    return None


def _did_you_mean(word: str, options: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(word, options, n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _show(value: Any) -> str:
    """A short, typed rendering of a bad value for an error message."""
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    kind = type(value).__name__
    return f"{text} ({kind})" if not isinstance(value, str) else text
