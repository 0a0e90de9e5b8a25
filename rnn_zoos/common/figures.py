"""Drawing helpers shared by every figure the package makes: save a figure atomically, a legend beside the axes,
a wrapped title, the colour of each split. Figures are :class:`matplotlib.figure.Figure` objects, so drawing leaves
matplotlib's global backend alone."""

from __future__ import annotations

import textwrap
from pathlib import Path

from matplotlib.axes import Axes
from matplotlib.figure import Figure

from .files import atomic_write

SPLIT_COLOURS = {"train": "tab:blue", "validation": "tab:orange", "ood": "tab:red"}


def save_figure(figure: Figure, path: Path) -> None:
    """Write ``figure`` as a PNG to ``path`` atomically (laid out tight unless it has a layout engine of its own)."""
    if figure.get_layout_engine() is None:
        figure.tight_layout()
    with atomic_write(path) as temporary:
        figure.savefig(temporary, format="png")


def legend_beside(axes: Axes, **settings: object) -> None:
    """The legend of ``axes`` to the right of it, where it covers no bar, line or point."""
    axes.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, **settings)


def set_title(axes: Axes, title: str, width: int = 48) -> None:
    """A title wrapped to lines of ``width`` characters, so that it fits above a narrow figure."""
    axes.set_title(textwrap.fill(title, width))
