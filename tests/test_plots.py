"""Every plot's title lies inside its figure and its legend beside the axes, where it covers no bar, line or point."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

import rnn_zoos.experiments.emulation as emulation
import rnn_zoos.hub.plots as plots
from rnn_zoos.zoos.formal_lang import FORMAL_LANG


@pytest.fixture
def drawn(monkeypatch: pytest.MonkeyPatch) -> list[Figure]:
    """The figures saved while the test runs, as saved (laid out and drawn)."""
    figures: list[Figure] = []
    save = plots.save_figure

    def keep(figure: Figure, path: Path) -> None:
        save(figure, path)
        figures.append(figure)

    monkeypatch.setattr(plots, "save_figure", keep)
    monkeypatch.setattr(emulation, "save_figure", keep)
    return figures


def assert_laid_out(figure: Figure) -> None:
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    renderer = canvas.get_renderer()
    page = figure.bbox
    for axes in figure.axes:
        title = axes.title.get_window_extent(renderer)
        assert page.x0 <= title.x0 and title.x1 <= page.x1 and title.y1 <= page.y1, (axes.get_title(), title, page)
        legend = axes.get_legend()
        if legend is not None:
            box = legend.get_window_extent(renderer)
            assert not box.overlaps(axes.get_window_extent(renderer)) and box.x1 <= page.x1, axes.get_title()


def test_pretraining_plots_fit(drawn: list[Figure], tmp_path: Path) -> None:
    scores = {split: (torch.rand(20), torch.rand(20)) for split in ("train", "validation", "ood")}
    emulation.scatter_plot(tmp_path / "cloned.png", scores, "noninteractive_probing on formal-lang: cloned performance "
                           "(the paper's measure)", "score")
    log = [{"step": 0, "validation": 0.5, "ood": 0.6}, *({"step": s, "train": 1 / s, "validation": 0.5 / s, "ood": 0.6 / s}
                                                         for s in range(10, 100, 10))]
    emulation.loss_plot(tmp_path / "loss.png", log, "interactive_probing on seq-mnist: emulation loss")
    assert len(drawn) == 2
    for figure in drawn:
        assert_laid_out(figure)


def test_card_plots_fit(drawn: list[Figure], formal_zoo: Path, tmp_path: Path) -> None:
    rows = {path.name.split("-")[0]: pq.read_table(path, columns=["run", "step", "task", "accuracy", "weight_decay"])
            for path in sorted((formal_zoo / "data").glob("*.parquet"))}
    made = plots.card_plots(tmp_path, FORMAL_LANG, rows)
    assert len(drawn) == len(made) >= 2
    for figure in drawn:
        assert_laid_out(figure)
