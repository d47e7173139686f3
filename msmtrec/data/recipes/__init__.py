"""Public-dataset recipes: ``msmtrec prepare NAME --raw DIR --out DIR`` turns the files a user
downloaded into a ready dataset (Parquet train/val/test, ``spec.yaml``, ``manifest.json`` with the
inputs' sha256) in the framing the literature uses.

Built-in recipes: ``ml-1m``, ``kuairand``, ``ali-ccp``, ``aliexpress`` (one module each). Any
other data needs no recipe: write a dataset spec (see :mod:`msmtrec.data.spec`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from msmtrec.data.recipes import ali_ccp, aliexpress, kuairand, ml_1m
from msmtrec.data.recipes.base import OUTPUT_FILES, Recipe, prepare_with
from msmtrec.errors import ConfigError

__all__ = ["OUTPUT_FILES", "RECIPES", "Recipe", "get_recipe", "prepare"]

#: name → recipe
RECIPES: dict[str, Recipe] = {r.name: r for r in (ml_1m.RECIPE, kuairand.RECIPE, ali_ccp.RECIPE, aliexpress.RECIPE)}


def get_recipe(name: str) -> Recipe:
    key = name.strip().lower().replace("_", "-")
    if key not in RECIPES:
        raise ConfigError(f"unknown dataset recipe '{name}'; available: {', '.join(RECIPES)}")
    return RECIPES[key]


def prepare(name: str, raw_dir: str | Path, out_dir: str | Path, *, overwrite: bool = False,
            options: dict[str, Any] | None = None, echo: Callable[[str], None] | None = None) -> Path:
    """Run recipe ``name`` on the downloaded files in ``raw_dir``; write the dataset to ``out_dir``.

    Returns the path of the written ``spec.yaml`` (train with ``msmtrec train --data <it>``).

    Raises:
        DataError: ``raw_dir`` lacks a file the recipe needs (the message lists them), or a file
            does not have the published layout.
        ConfigError: unknown recipe or option, or ``out_dir`` already holds a dataset and
            ``overwrite`` is False.
    """
    return prepare_with(get_recipe(name), raw_dir, out_dir, overwrite=overwrite, options=options, echo=echo)
