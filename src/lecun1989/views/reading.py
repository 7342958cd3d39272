"""The picture of `lecun1989 predict --show`: the image with its digits' boxes, and their 16x16 inputs."""

from __future__ import annotations

import math
from io import BytesIO

from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from ..reading.images import Reading


def picture(reading: Reading, title: str) -> bytes:
    """The image with each digit's box (solid: accepted, dashed: rejected) and its reading, and below
    the 16x16 inputs the network read, each with its label and margin (PNG bytes)."""
    n = max(1, len(reading.digits))
    h, w = reading.shape
    fig = Figure(figsize=(max(6.0, 1.1 * n), 2.2 + 4.0 * h / max(w, 1) + 1.6))
    grid = fig.add_gridspec(2, n, height_ratios=[max(1.0, 3.0 * h / max(w, 1) * n / 2), 1.0])
    ax = fig.add_subplot(grid[0, :])
    ax.imshow(reading.image, cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
    for d in reading.digits:
        x0, y0, x1, y1 = d.box
        ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, edgecolor="black",
                               linewidth=1.5, linestyle="-" if d.accepted else "--"))
        ax.text((x0 + x1) / 2 - 0.5, y0 - 1.5, d.char, ha="center", va="bottom", fontsize=12,
                bbox=dict(facecolor="white", edgecolor="none", pad=1))
    ax.set_xticks([])
    ax.set_yticks([])
    threshold = f"{reading.threshold:.3f}" if math.isfinite(reading.threshold) else "none"
    # a file's name need not be UTF-8: its other bytes come as surrogates, which no font can draw
    title = title.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    ax.set_title(f"{title}: {reading.text or '(no digits)'}   (ink shown dark; margin threshold {threshold})",
                 fontsize=10, pad=22)   # room for the labels of boxes that reach the image's top edge
    for k, d in enumerate(reading.digits):
        a = fig.add_subplot(grid[1, k])
        a.imshow(d.input, cmap="gray_r", vmin=-1, vmax=1, interpolation="nearest")
        a.set_xticks([])
        a.set_yticks([])
        a.set_title(f"{d.label}{'' if d.accepted else ' ?'}  {d.margin:.2f}", fontsize=9)
    buf = BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return buf.getvalue()
