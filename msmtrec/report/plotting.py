"""matplotlib for writing figures to files, when it is installed (``pip install 'msmtrec[plot]'``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from msmtrec.files import atomic_write

MISSING = "matplotlib is not installed (pip install 'msmtrec[plot]')"


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the file-only Agg backend, or None without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def save_figure(fig: Any, path: str | Path, **savefig: Any) -> None:
    """Lay ``fig`` out, write it atomically (format from the file extension) and close it."""
    import matplotlib.pyplot as plt

    path = Path(path)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format=path.suffix.lstrip("."), dpi=110, **savefig))
    plt.close(fig)
