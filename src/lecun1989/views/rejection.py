"""The picture of `lecun1989 reject`: the error of the accepted digits against the share rejected."""

from __future__ import annotations

import math

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from ..reading.rejection import CRITERIA, NIPS_ERROR, NIPS_REJECTION, SHORT, Rejection, curves, percent
from .plots import render

STYLES = {"margin": dict(color="black", linestyle="-"), "top": dict(color="0.45", linestyle="--"),
          "softmax": dict(color="0.45", linestyle=":")}


def picture(result: Rejection) -> dict[str, bytes]:
    """The error of the accepted digits versus the share rejected: the margin's mean over the runs
    with a min .. max band, the other criteria's means, and the target error marked."""
    target = result.error * 100
    n_runs = len(result.runs)
    fig = Figure(figsize=(7, 4.5))
    ax = fig.subplots()
    # A log axis cannot show 0: errors below the floor (0 among them) are drawn on the bottom edge.
    floor = max(min(target, 1.0) / 20, 100 / result.runs[0].n / 10)
    drawn = {c: curves(result, c) for c in CRITERIA}
    x, errs = drawn["margin"]
    s = result.stats("margin")
    # Well past the rejection at the target, and no further: beyond, a few confidently wrong digits (the
    # set's mislabelled ones among them) decide the line; reject.json holds the whole curve.
    x_end = min(100.0, max(3 * s["max"] * 100, 20.0))
    for criterion, (x, errs) in drawn.items():   # each its own length: ties end the criteria's curves apart
        shown = x * 100 <= x_end
        x, errs = x[shown] * 100, errs[:, shown] * 100
        mean = errs.mean(0)
        sc = result.stats(criterion)
        label = f"{SHORT[criterion]}: {sc['mean'] * 100:.1f}%" + (f" ± {sc['std'] * 100:.1f}" if n_runs > 1 else "")
        ax.plot(x, np.maximum(mean, floor), label=label,
                linewidth=2 if criterion == "margin" else 1.2, **STYLES[criterion])
        if criterion == "margin" and n_runs > 1:
            ax.fill_between(x, np.maximum(errs.min(0), floor), np.maximum(errs.max(0), floor), color="black",
                            alpha=0.15, linewidth=0, label=f"min .. max over the {n_runs} runs")
    ax.axhline(target, color="0.3", linewidth=0.8, linestyle="-.")
    ax.errorbar([s["mean"] * 100], [max(target, floor)], xerr=[[s["mean"] * 100 - s["min"] * 100],
                                                                [s["max"] * 100 - s["mean"] * 100]],
                marker="D", markersize=7, color="black", markerfacecolor="white", capsize=4, linestyle="none",
                label=f"{percent(result.error)} error" + (": mean, min .. max over the runs" if n_runs > 1 else ""))
    if math.isclose(result.error, NIPS_ERROR) and result.split == "test":
        ax.plot([NIPS_REJECTION * 100], [NIPS_ERROR * 100], linestyle="none", marker="*", markersize=12,
                markerfacecolor="white", markeredgecolor="0.3", label="NIPS 1989 network, its own zip-code digits")
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))   # 0.1 and 1, not 10^-1 and 10^0
    ax.set_ylim(bottom=floor * 0.9)
    ax.set_xlim(0, x_end)
    ax.set_xlabel(f"{result.split} digits rejected, least sure first (%)")
    ax.set_ylabel("error of the accepted digits (%)")
    ax.grid(True, which="both", linewidth=0.3)
    ax.legend(fontsize=7, title_fontsize=7, title=(f"mean of {n_runs} runs; " if n_runs > 1 else "")
              + f"share rejected for {percent(result.error)} error" + (" (mean ± std)" if n_runs > 1 else ""))
    source = result.runs[0].config["data"]["source"]
    title = f"{source}: {n_runs} run{'s' * (n_runs > 1)}, {result.runs[0].n} {result.split} digits"
    if result.diverged:
        title += f"; {len(result.diverged)} diverged run{'s' * (len(result.diverged) > 1)} left out"
    ax.set_title(title + f"\nerror 0 drawn on the bottom edge ({floor:.2g}%)", fontsize=9)
    return render(fig, "reject")
