"""Number formatting shared by the tables (a missing value is shown as ``–``)."""

from __future__ import annotations


def number(v: float | None, digits: int = 4, signed: bool = False) -> str:
    if v is None:
        return "–"
    return f"{v:+.{digits}f}" if signed else f"{v:.{digits}f}"


def integer(v: float | None) -> str:
    return "–" if v is None else f"{v:,.0f}"


def mean_std(stat: tuple[float | None, float | None, int], digits: int = 4) -> str:
    """``mean ± std`` of a ``(mean, std, n)`` aggregate; the mean alone when ``n`` is 1."""
    mean, std, n = stat
    if mean is None:
        return "–"
    return f"{mean:.{digits}f} ± {std:.{digits}f}" if n > 1 else f"{mean:.{digits}f}"
