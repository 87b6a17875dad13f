"""Pictures of tasks and answers: the examples, the test input, the two attempts and the truth."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on these machines
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import ListedColormap  # noqa: E402

from .grids import Grid  # noqa: E402

# The ten ARC colours as the ARC web app shows them: black, blue, red, green, yellow, grey, magenta,
# orange, light blue, maroon.
ARC_COLOURS = ("#000000", "#0074D9", "#FF4136", "#2ECC40", "#FFDC00",
               "#AAAAAA", "#F012BE", "#FF851B", "#7FDBFF", "#870C25")
ARC_CMAP = ListedColormap(ARC_COLOURS)


def draw_grid(ax, grid: Grid | None, title: str = "", edge: str | None = None) -> None:
    """One grid on an axis, cells outlined; an empty panel for None."""
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=8)
    if grid is None:
        ax.axis("off")
        return
    g = np.asarray(grid)
    ax.imshow(g, cmap=ARC_CMAP, vmin=0, vmax=9, interpolation="nearest")
    ax.set_xticks(np.arange(-0.5, g.shape[1], 1), minor=True)
    ax.set_yticks(np.arange(-0.5, g.shape[0], 1), minor=True)
    ax.grid(which="minor", color="#555555", linewidth=0.4)
    ax.tick_params(which="minor", length=0)
    if edge:
        for spine in ax.spines.values():
            spine.set_edgecolor(edge)
            spine.set_linewidth(3)


def plot_answer(path: str | Path, title: str, train: Sequence[tuple[Grid, Grid]], test_input: Grid,
                attempts: Sequence[Grid | None], truth: Grid | None = None) -> Path:
    """A PNG: training pairs on the left, then the test input, the attempts and (if known) the truth.

    An attempt equal to the truth is framed green, a wrong one red.
    """
    columns = max(len(train), 1)
    fig, axes = plt.subplots(2, columns + 4, figsize=(1.6 * (columns + 4), 3.4), squeeze=False)
    for i in range(columns):
        pair = train[i] if i < len(train) else (None, None)
        draw_grid(axes[0, i], pair[0], f"example {i + 1} in")
        draw_grid(axes[1, i], pair[1], f"example {i + 1} out")
    draw_grid(axes[0, columns], test_input, "test input")
    axes[1, columns].axis("off")
    for j in range(2):
        attempt = attempts[j] if j < len(attempts) else None
        right = truth is not None and attempt is not None and np.array_equal(attempt, truth)
        edge = None if truth is None else ("#2ECC40" if right else "#FF4136")
        draw_grid(axes[0, columns + 1 + j], attempt, f"attempt {j + 1}", edge)
        axes[1, columns + 1 + j].axis("off")
    draw_grid(axes[0, columns + 3], truth, "truth" if truth is not None else "")
    axes[1, columns + 3].axis("off")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def plot_training(losses: Sequence[float], evaluations: Sequence[dict], path: str | Path, title: str = "",
                  smooth: int = 20) -> Path:
    """The training loss of every optimizer step (and its running mean over ``smooth`` steps) and, where
    measured, the held-out loss and accuracy, as a PNG at ``path``."""
    fig, ax = plt.subplots(figsize=(8, 4.5))
    steps = np.arange(1, len(losses) + 1)
    if len(losses):
        ax.plot(steps, losses, color="#9ecae1", linewidth=0.8, label="training loss (per step)")
        if len(losses) >= smooth:
            mean = np.convolve(losses, np.ones(smooth) / smooth, mode="valid")
            ax.plot(steps[smooth - 1:], mean, color="#08519c", linewidth=1.5,
                    label=f"training loss ({smooth}-step mean)")
    measured = [e for e in evaluations if "loss" in e]
    if measured:
        ax.plot([e["step"] for e in measured], [e["loss"] for e in measured], "o-", color="#d62728",
                label="held-out loss")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss per output token")
    if any("accuracy" in e for e in measured):
        acc = ax.twinx()
        acc.plot([e["step"] for e in measured], [100 * e.get("accuracy", 0.0) for e in measured], "s--",
                 color="#2ca02c", label="held-out accuracy")
        acc.set_ylabel("held-out accuracy (%)")
        acc.set_ylim(0, max(10.0, 100 * max(e.get("accuracy", 0.0) for e in measured) * 1.2))
        acc.legend(loc="upper center", fontsize=8)
    ax.legend(loc="upper right", fontsize=8)
    ax.set_title(title or "fine-tuning")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
