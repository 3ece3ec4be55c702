"""The study's plots: accuracy per method, data efficiency, DSU firing against held-out accuracy."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lab.study.tables import Page, Row


def plot_main(page: Page, rows: list[Row], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # The held-out splits in a format some methods trained on are a group of their own, never in "held-out".
    groups = [("held-in", page.held_in), ("held-out, format unseen", page.held_out),
              *([("held-out, format trained by some", page.held_out_seen)] if page.held_out_seen else []),
              ("EI-Test", page.ei_test)]
    figure, axis = plt.subplots(figsize=(13, 6))
    width = 0.8 / len(rows)
    colours = plt.cm.tab20(np.linspace(0, 1, 20))  # tab10 would repeat colours past ten methods
    for i, row in enumerate(rows):
        estimates = [page.estimate(row, datasets) for _, datasets in groups]
        values = [100 * e.value if e else 0 for e in estimates]
        errors = [[100 * (e.value - e.low) if e else 0 for e in estimates], [100 * (e.high - e.value) if e else 0
                                                                             for e in estimates]]
        axis.bar([g + i * width for g in range(len(groups))], values, width, yerr=errors, capsize=2, label=row.title,
                 color=colours[(2 * i) % 20 + (2 * i) // 20])
    axis.set_xticks([g + width * (len(rows) - 1) / 2 for g in range(len(groups))], [name for name, _ in groups])
    axis.set_ylabel("accuracy (%), 95% CI over seeds and questions")
    axis.legend(fontsize=8, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.08))
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def plot_fractions(page: Page, curves: dict[str, list[tuple[float, Row]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(11, 4))
    groups = [("held-in", page.held_in), ("held-out, format unseen", page.held_out)]
    for axis, (group, datasets) in zip(axes, groups, strict=True):
        for name, points in curves.items():
            found = [(f, page.estimate(row, datasets)) for f, row in points]
            found = [(f, e) for f, e in found if e is not None]
            if not found:
                continue
            fractions = [f for f, _ in found]
            axis.plot(fractions, [100 * e.value for _, e in found], marker="o", label=name)
            axis.fill_between(fractions, [100 * e.low for _, e in found], [100 * e.high for _, e in found], alpha=0.2)
        axis.set_xscale("log")
        ticks = sorted({f for points in curves.values() for f, _ in points})  # the fractions the spec runs
        axis.set_xticks(ticks, [f"{100 * f:g}%" for f in ticks])
        axis.set_xticks([], minor=True)  # the log axis's own minor labels (3x10^-1, ...) would crowd the fractions
        axis.set_xlabel("fraction of the training questions")
        axis.set_ylabel(f"{group} accuracy (%)")
        if axis.get_legend_handles_labels()[0]:  # nothing evaluated yet: no legend to draw
            axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def plot_dsu(fired: dict[int, list[float]], held_out: dict[int, list[float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 4))
    steps = sorted(fired)
    axis.plot(steps, [np.mean(fired[s]) for s in steps], color="tab:red", label="DSU bonus firing rate")
    axis.set_xlabel("ExGRPO step")
    axis.set_ylabel("fraction of questions with the bonus")
    other = axis.twinx()
    points = sorted(held_out)
    other.plot(points, [np.mean(held_out[s]) for s in points], marker="o", color="tab:blue", label="held-out accuracy")
    other.set_ylabel("held-out accuracy (%), mean over seeds")
    figure.legend(loc="lower left", bbox_to_anchor=(0.1, 0.12), fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


