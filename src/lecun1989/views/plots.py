"""Pictures of finished runs, studies and sweeps (matplotlib; PNG and SVG; readable in black and white).

    curves        error and loss versus pass, train and test, mean line with a ± std band over runs,
                  the paper's final figures marked
    misclassified the misclassified test digits, each with its true and predicted label and the
                  network's confidence
    features      the learned H1 kernels and one digit's maps through H1, H2, H3 and the outputs
    sweep         validation and test error versus the swept setting, with bands

Each function draws in memory and returns its files by name ({"curves.png": bytes, ...});
`store.folders.write_files` puts a folder's whole set in place at once, so a failure never leaves half of one.
Figures are made with `matplotlib.figure.Figure`, never pyplot, so the library leaves matplotlib's
backend and pyplot's state to the program that imports it. Lines differ by style and marker, not
only by color.
"""

from __future__ import annotations

from io import BytesIO
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from .. import paper
from ..data import Location
from ..errors import LecunError
from ..results import curves as mean_curves
from ..store.rundir import Runs, open_folder
from ..trained import load_run

STYLES = {"train": dict(color="black", linestyle="-", marker="o"),
          "test": dict(color="0.45", linestyle="--", marker="s")}


def diverged_note(runs: Runs) -> str:
    """'2 of 10 runs diverged (at passes 3, 5): left out'; '' when none did."""
    k, n = len(runs.diverged), len(runs.dirs)
    if k == 0:
        return ""
    at = f"at pass{'es' * (k > 1)} " + ", ".join(map(str, sorted(runs.diverged.values())))
    if k == n:
        return f"the run diverged {at}" if n == 1 else f"all {n} runs diverged ({at})"
    return f"{k} of {n} runs diverged ({at}): left out"


def pass_note(runs: Runs) -> str:
    """Which pass the figures are of: 'the last pass all 10 runs completed'."""
    who = "the run" if len(runs.kept) == 1 else f"all {len(runs.kept)} runs"
    return f"the last pass {who}{' that did not diverge' * bool(runs.diverged)} completed"


def render(fig: Figure, name: str) -> dict[str, bytes]:
    files = {}
    for ext in ("png", "svg"):
        buf = BytesIO()
        fig.savefig(buf, format=ext, dpi=130, bbox_inches="tight")
        files[f"{name}.{ext}"] = buf.getvalue()
    return files


def curves(runs: Runs) -> dict[str, bytes]:
    """Error (%) and loss versus pass, mean over the runs that did not diverge with a ± std band, over
    the passes all of them completed."""
    if not runs.kept:
        raise LecunError(f"{runs.folder}: {diverged_note(runs)}; there are no curves to draw")
    config = runs.configs[runs.kept[0]]
    notes = [diverged_note(runs)] + [f"up to pass {runs.last}, {pass_note(runs)}"] * runs.uneven
    return curves_picture(mean_curves(runs.rows), len(runs.kept), config["net"].get("loss") == "ce",
                          bool(config["data"]["held_out"]), config["data"]["source"], notes)


def curves_picture(rows: list[dict], n: int, ce: bool, held_out: bool, source: str,
                   notes: list[str] = ()) -> dict[str, bytes]:
    """The curves of `results.curves` rows (per pass, mean and std over n runs)."""
    loss_name = "cross-entropy" if ce else "MSE"
    test_name = "validation" if held_out else "test"
    passes = np.array([r["pass"] for r in rows])
    fig = Figure(figsize=(11, 4))
    axes = fig.subplots(1, 2)
    for ax, metric, scale, label in ((axes[0], "error", 100, "error (%)"), (axes[1], "loss", 1, loss_name)):
        for split in ("train", "test"):
            mean = np.array([r[f"{split}_{metric}_mean"] for r in rows]) * scale
            std = np.array([r[f"{split}_{metric}_std"] for r in rows]) * scale
            name = split if split == "train" else test_name
            ax.plot(passes, mean, label=f"{name} (mean of {n})" if n > 1 else name, markersize=3, **STYLES[split])
            ax.fill_between(passes, mean - std, mean + std, color=STYLES[split]["color"], alpha=0.2, linewidth=0)
        if loss_name == "MSE" and test_name == "test":
            marks = ((paper.TRAIN_ERROR * 100, paper.TEST_ERROR * 100) if metric == "error"
                     else (paper.TRAIN_MSE, paper.TEST_MSE))
            for value, split in zip(marks, ("train", "test")):
                ax.plot([passes[-1]], [value], linestyle="none", marker="*", markersize=12, markerfacecolor="white",
                        markeredgecolor=STYLES[split]["color"], label=f"paper, {split}")
        ax.set_yscale("log")
        ax.set_xlabel("pass")
        ax.set_ylabel(label)
        ax.grid(True, which="both", linewidth=0.3)
        ax.legend(fontsize=8)
    title = f"{source}: {n} run{'s' * (n > 1)}, ± 1 std band"
    fig.suptitle("; ".join(filter(None, [title, *notes])))
    return render(fig, "curves")


def misclassified(net, ds, max_digits: int = 120) -> dict[str, bytes]:
    """The misclassified test digits of a saved model, each with true -> predicted and confidence:
    the softmax probability for a cross-entropy network, the margin between the two largest outputs
    (halved, in [0, 1]) for the paper's tanh outputs."""
    out_ = net.outputs(ds.test.images)
    pred = out_.argmax(1)
    wrong = np.flatnonzero(pred != ds.test.labels)
    if net.config.loss == "ce":
        e = np.exp(out_ - out_.max(1, keepdims=True))
        conf, conf_name = (e / e.sum(1, keepdims=True)).max(1), "p"
    else:
        top2 = np.sort(out_, axis=1)[:, -2:]
        conf, conf_name = (top2[:, 1] - top2[:, 0]) / 2, "margin"
    shown = wrong[:max_digits]
    cols = 12
    rows = max(1, int(np.ceil(len(shown) / cols)))
    fig = Figure(figsize=(cols * 1.05, rows * 1.3 + 0.6))
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, i in zip(axes.flat, shown):
        ax.imshow(ds.test.images[i, 0], cmap="gray_r", vmin=-1, vmax=1)
        ax.set_title(f"{ds.test.labels[i]}→{pred[i]}\n{conf_name} {conf[i]:.2f}", fontsize=7)
    name = ds.test_name
    fig.suptitle(f"{len(wrong)} of {len(ds.test)} {name} digits misclassified ({len(wrong) / len(ds.test) * 100:.2f}%)"
                 + (f", first {len(shown)} shown" if len(shown) < len(wrong) else "") + "; true→predicted",
                 fontsize=10)
    return render(fig, "misclassified")


def features(net, ds, index: int = 0) -> dict[str, bytes]:
    """The 12 learned H1 kernels, then one test digit and its maps in H1 (12 of 8x8), H2 (12 of 4x4),
    H3 (30 units) and the 10 outputs."""
    h1, h2, h3, o = (t[0] for t in net.activations(ds.test.images[index:index + 1]))
    kernels = net.H1w.detach().numpy()[:, 0]
    fig = Figure(figsize=(12, 7.5))
    grid = fig.add_gridspec(5, 13, height_ratios=[1, 1, 1, 0.6, 0.6], hspace=0.6)
    k = np.abs(kernels).max()
    for j in range(12):
        ax = fig.add_subplot(grid[0, j + 1])
        ax.imshow(kernels[j], cmap="gray_r", vmin=-k, vmax=k)
        ax.set_title(f"kernel {j}", fontsize=7)
        ax.axis("off")
    ax = fig.add_subplot(grid[1:3, 0])
    ax.imshow(ds.test.images[index, 0], cmap="gray_r", vmin=-1, vmax=1)
    ax.set_title(f"test digit {index}\nlabel {ds.test.labels[index]}", fontsize=8)
    ax.axis("off")
    lo, hi = (0, None) if net.config.activation == "relu" else (-1.7159, 1.7159)
    for j in range(12):
        for row, maps, name in ((1, h1, "H1"), (2, h2, "H2")):
            ax = fig.add_subplot(grid[row, j + 1])
            ax.imshow(maps[j], cmap="gray_r", vmin=lo, vmax=hi if hi else max(maps.max(), 1e-9))
            ax.set_title(f"{name}.{j}", fontsize=7)
            ax.axis("off")
    ax = fig.add_subplot(grid[3, 1:])
    ax.bar(np.arange(30), h3, color="0.4", edgecolor="black")
    ax.set_ylabel("H3", fontsize=8)
    ax.set_xticks(range(0, 30, 5))
    ax.tick_params(labelsize=8)
    ax = fig.add_subplot(grid[4, 1:])
    ax.bar(np.arange(10), o, color=["black" if i == o.argmax() else "0.7" for i in range(10)], edgecolor="black")
    ax.set_xticks(range(10))
    ax.tick_params(labelsize=8)
    ax.set_ylabel("output", fontsize=8)
    ax.set_xlabel(f"class (predicted {o.argmax()}, in black)", fontsize=8)
    fig.suptitle("learned H1 kernels (row 1); one digit through H1, H2, H3 and the outputs", fontsize=10)
    return render(fig, "features")


def draw_folder(path: Path, where: Location = Location()) -> dict[str, bytes]:
    """Every picture of a run, study or sweep folder: the sweep's, the curves, and the misclassified
    digits and features of the first run that did not diverge."""
    result, runs = open_folder(path)
    files = sweep(result) if result is not None else {}
    files |= curves(runs)
    net, ds = load_run(runs.kept[0], where)
    return files | misclassified(net, ds) | features(net, ds)


def sweep(sweep_json: dict) -> dict[str, bytes]:
    """Validation error (and the selected point's test error) versus the swept learning rate, one line
    per value of the other swept setting, mean with a ± std band over the seeds that did not diverge;
    a point where some seed diverged is drawn hollow, one where all did is left out."""
    points = [p for p in sweep_json["points"] if "val_error" in p]
    fig = Figure(figsize=(6.5, 4.2))
    ax = fig.subplots()
    others = sorted({p["mu"] for p in points}, key=lambda v: (v is None, v))
    markers = "osD^v<>"
    for k, mu in enumerate(others):
        pts = sorted((p for p in points if p["mu"] == mu), key=lambda p: p["lr"])
        lrs = np.array([p["lr"] for p in pts])
        mean = np.array([p["val_error"]["mean"] for p in pts]) * 100
        std = np.array([p["val_error"]["std"] for p in pts]) * 100
        label = "validation error" + (f", mu {mu:g}" if mu is not None else "")
        line, = ax.plot(lrs, mean, color="black", linestyle=["-", "--", ":", "-."][k % 4], marker=markers[k % 7],
                        label=label)
        line.set_markevery([i for i, p in enumerate(pts) if not p.get("diverged")])
        hollow = [i for i, p in enumerate(pts) if p.get("diverged")]
        ax.plot(lrs[hollow], mean[hollow], linestyle="none", marker=markers[k % 7], markerfacecolor="white",
                markeredgecolor="black")
        ax.fill_between(lrs, mean - std, mean + std, color="black", alpha=0.12, linewidth=0)
    final = sweep_json["final"]
    if final is not None:
        sel, test = sweep_json["selected"], final["test_error"]
        ax.errorbar([sel["lr"]], [test["mean"] * 100], yerr=[test["std"] * 100], color="0.4", marker="*",
                    markersize=12, capsize=4, linestyle="none",
                    label="test error, selected (retrained on all training digits)")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate" + (" (eps)" if sweep_json.get("optimizer") == "sdlm" else ""))
    ax.set_ylabel("error (%)")
    ax.grid(True, which="both", linewidth=0.3)
    ax.legend(fontsize=8)
    diverged = sum(bool(p.get("diverged")) for p in sweep_json["points"])
    ax.set_title(f"sweep: {sweep_json['recipe']} on {sweep_json['data']}, {len(sweep_json['seeds'])} seeds, ± 1 std"
                 + (f"\nruns diverged at {diverged} of {len(sweep_json['points'])} points (hollow: some seeds; "
                    f"missing: all)" if diverged else ""), fontsize=10)
    return render(fig, "sweep")
