"""Pictures of an explanation: the importance bar chart (matplotlib's object API) and saliency overlays (Pillow):
the image or log-mel spectrogram in grey, the magnitude of its Integrated Gradients in red on top."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

    from deepwell.explain.importance import Importance
    from deepwell.explain.run import Explanation

SCALE = 4  # spectrograms are small (64 mel bands): drawn this many times larger


def importance_chart(importance: Importance, path: Path) -> None:
    from deepwell.reports.plots import save

    save(importance_figure(importance.table, importance.metric), path)


def importance_figure(table: pd.DataFrame, metric: str) -> Figure:
    """Horizontal bars, the most important column on top, with the 95% intervals as error bars."""
    from matplotlib.figure import Figure

    table = table.iloc[::-1]
    fig = Figure(figsize=(6.4, 1.2 + 0.32 * len(table)))
    ax = fig.subplots()
    ax.barh(table["column"], table["importance"], xerr=[table["importance"] - table["low"],
                                                        table["high"] - table["importance"]],
            color="#3b6fb6", capsize=3)
    worse = "higher RMSE" if metric == "rmse" else "lower accuracy"
    ax.set_xlabel(f"{worse} when the column is shuffled (95% interval)")
    ax.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    return fig


def saliency_overlay(background: np.ndarray, saliency: np.ndarray, flip: bool = False) -> Image.Image:  # noqa: F821
    """An RGB picture: `background` (0–1) in grey, |saliency| scaled to its 99th percentile in red."""
    from PIL import Image

    heat = np.abs(saliency)
    heat = np.clip(heat / max(float(np.percentile(heat, 99)), 1e-12), 0, 1)
    grey = np.clip(background, 0, 1)
    rgb = np.stack([grey * (1 - heat) + heat, grey * (1 - heat), grey * (1 - heat)], axis=-1)
    if flip:  # a spectrogram: low frequencies at the bottom
        rgb = rgb[::-1]
    picture = Image.fromarray((rgb * 255).astype(np.uint8))
    if flip:
        picture = picture.resize((picture.width * SCALE // 2, picture.height * SCALE), Image.NEAREST)
    return picture


def saliency_pngs(explanation: Explanation, folder: Path) -> list[Path]:
    """saliency/row<N>_<column>.png for every explained row and image or audio column."""
    a = explanation.attributions
    written = []
    for column, maps in a.maps.items():
        folder.mkdir(parents=True, exist_ok=True)
        audio = maps.shape[1] != maps.shape[2] or a.baselines.get(column) == "silence"
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", column)
        for i, row in enumerate(explanation.rows):
            path = folder / f"row{row}_{safe}.png"
            saliency_overlay(a.backgrounds[column][i], maps[i], flip=audio).save(path)
            written.append(path)
    return written
