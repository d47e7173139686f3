"""The one YAML dialect msmtrec reads and writes (dataset specs, run configs, ``--set`` values).

PyYAML's default is YAML 1.1, which reads ``109_14`` as the integer 10914, ``1:30`` as 90, ``010``
as 8 and ``yes``/``no``/``on``/``off`` as booleans; column names and raw scenario values like these
are common in recommendation data, so here they stay text (YAML 1.2 scalars): integers are decimal
without leading zeros, booleans are ``true``/``false`` only, and ``1e-3`` is a number.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from msmtrec.errors import MsmtrecError

__all__ = ["Loader", "dump_yaml", "load_yaml"]

_BOOL, _INT, _FLOAT = "tag:yaml.org,2002:bool", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float"
_RESOLVERS_1_2 = [
    (_BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")),
    (_INT, re.compile(r"^[-+]?(?:0|[1-9][0-9]*)$"), list("-+0123456789")),
    (_FLOAT, re.compile(r"^(?:[-+]?(?:[0-9]+\.[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?|[-+]?[0-9]+[eE][-+]?[0-9]+"
                        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"), list("-+0123456789.")),
]


class Loader(yaml.SafeLoader):
    """PyYAML's safe loader with YAML 1.2 booleans and numbers instead of YAML 1.1 ones."""


Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in (_BOOL, _INT, _FLOAT)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
for _tag, _regexp, _first in _RESOLVERS_1_2:
    Loader.add_implicit_resolver(_tag, _regexp, _first)
# Decimal only (the resolver guarantees it); YAML 1.1's constructor would read 010 as octal.
Loader.add_constructor(_INT, lambda loader, node: int(loader.construct_scalar(node)))


class _Dumper(yaml.SafeDumper):
    """Quotes every string that either dialect would read as something else (``yes``, ``1e5``)."""


for _tag, _regexp, _first in _RESOLVERS_1_2:
    _Dumper.add_implicit_resolver(_tag, _regexp, _first)


def load_yaml(source: str | Path, what: str, error: type[MsmtrecError]) -> Any:
    """Parse YAML text, or the file at a :class:`~pathlib.Path`.

    Parameters
    ----------
    source:
        YAML text, or the path of a UTF-8 file.
    what:
        Prefix of error messages, naming the file: ``"spec womens.yaml"``.
    error:
        The exception to raise.

    Returns
    -------
    Any
        The parsed document (``None`` when it is empty).

    Raises
    ------
    MsmtrecError
        ``error``, with one line naming ``what`` (and the line, for a syntax error): the file cannot
        be read or is not valid YAML.
    """
    if isinstance(source, Path):
        try:
            source = source.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise error(f"{what}: cannot read {source}: {exc}") from None
    try:
        return yaml.load(source, Loader=Loader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise error(f"{what}: not valid YAML{at}: {problem}") from None


def dump_yaml(data: Any) -> str:
    """``data`` as YAML text that :func:`load_yaml` (and PyYAML's ``safe_load``) read back unchanged."""
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True)
