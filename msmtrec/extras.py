"""Optional parts of msmtrec and the extras that install them (``pip install 'msmtrec[tune]'``):
asking for a part whose library is missing is one line naming the pip command."""

from __future__ import annotations

import importlib
from types import ModuleType

from msmtrec.errors import ConfigError


def require(module: str, feature: str, extra: str) -> ModuleType:
    """``module`` imported, or a ConfigError: ``<feature> needs <module>, which is not installed: pip install ...``."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ConfigError(f"{feature} needs {module}, which is not installed: pip install 'msmtrec[{extra}]'") from None
