"""Pictures of finished runs, studies and sweeps (matplotlib; PNG and SVG; readable in black and white).

    curves        error and loss versus pass, train and test, mean line with a ± std band over runs,
                  the paper's final figures marked
    misclassified the misclassified test digits, each with its true and predicted label and the
                  network's confidence
    features      the learned H1 kernels and one digit's maps through H1, H2, H3 and the outputs
    sweep         validation and test error versus the swept setting, with bands

Each function returns the paths it wrote. Lines differ by style and marker, not only by color.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from . import paper
from .errors import LecunError
from .results import read_metrics

STYLES = {"train": dict(color="black", linestyle="-", marker="o"),
          "test": dict(color="0.45", linestyle="--", marker="s")}


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")   # files only; no screen needed
    import matplotlib.pyplot as plt
    return plt


def _save(fig, out: Path, name: str) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for ext in ("png", "svg"):
        path = out / f"{name}.{ext}"
        fig.savefig(path, dpi=130, bbox_inches="tight")
        paths.append(path)
    _pyplot().close(fig)
    return paths


def read_config(run_dir: Path) -> dict:
    try:
        return json.loads((Path(run_dir) / "config.json").read_text())
    except (OSError, ValueError) as e:
        raise LecunError(f"cannot read {run_dir}/config.json ({e}); is it a run directory?") from None


def curves(run_dirs: list[Path], out: Path, title: str = "") -> list[Path]:
    """Error (%) and loss versus pass, mean over the runs with a ± std band."""
    plt = _pyplot()
    runs = [read_metrics(d) for d in run_dirs]
    n = min(len(r) for r in runs)
    config = read_config(run_dirs[0])
    loss_name = "cross-entropy" if config.get("net", {}).get("loss") == "ce" else "MSE"
    test_name = "validation" if config.get("data", {}).get("held_out") else "test"
    passes = np.array([r["pass"] for r in runs[0][:n]])
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, metric, scale, label in ((axes[0], "error", 100, "error (%)"), (axes[1], "loss", 1, loss_name)):
        for split in ("train", "test"):
            values = np.array([[row[f"{split}_{metric}"] * scale for row in r[:n]] for r in runs])
            mean, std = values.mean(0), values.std(0, ddof=1) if len(runs) > 1 else np.zeros(n)
            name = split if split == "train" else test_name
            ax.plot(passes, mean, label=f"{name} (mean of {len(runs)})" if len(runs) > 1 else name,
                    markersize=3, **STYLES[split])
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
    fig.suptitle(title or f"{config.get('data', {}).get('source', '')}: {len(runs)} run(s), ± 1 std band")
    return _save(fig, out, "curves")


def load_run(run_dir: Path, load: dict | None = None):
    """The network of a run (float64), with its latest weights, and the data it was evaluated on;
    `load` holds data.load's home / raw_dir / offline."""
    from . import data
    from .model import Net1989, NetConfig
    from .rundir import load_weights
    config = read_config(run_dir)
    params, _ = load_weights(Path(run_dir) / "weights.safetensors")
    net = Net1989(NetConfig(**config["net"])).double()
    net.set_params({k: v.astype(np.float64) for k, v in params.items()})
    d = config["data"]
    ds = data.load(d["source"], data_seed=d["seed"] if d["seed"] is not None else data.DEFAULT_DATA_SEED,
                   **(load or {}))
    if d.get("held_out"):
        ds = ds.validation(d["held_out"])
    return net, ds.subset(d["n_train"], d["n_test"])


def misclassified(net, ds, out: Path, max_digits: int = 120) -> list[Path]:
    """The misclassified test digits of a saved model, each with true -> predicted and confidence:
    the softmax probability for a cross-entropy network, the margin between the two largest outputs
    (halved, in [0, 1]) for the paper's tanh outputs."""
    import torch
    plt = _pyplot()
    with torch.no_grad():
        out_ = net(torch.from_numpy(ds.test.images).double()).numpy()
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
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.05, rows * 1.3 + 0.6), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, i in zip(axes.flat, shown):
        ax.imshow(ds.test.images[i, 0], cmap="gray_r", vmin=-1, vmax=1)
        ax.set_title(f"{ds.test.labels[i]}→{pred[i]}\n{conf_name} {conf[i]:.2f}", fontsize=7)
    name = ds.test_name
    fig.suptitle(f"{len(wrong)} of {len(ds.test)} {name} digits misclassified ({len(wrong) / len(ds.test) * 100:.2f}%)"
                 + (f", first {len(shown)} shown" if len(shown) < len(wrong) else "") + "; true→predicted",
                 fontsize=10)
    return _save(fig, out, "misclassified")


def features(net, ds, out: Path, index: int = 0) -> list[Path]:
    """The 12 learned H1 kernels, then one test digit and its maps in H1 (12 of 8x8), H2 (12 of 4x4),
    H3 (30 units) and the 10 outputs."""
    import torch
    plt = _pyplot()
    x = torch.from_numpy(ds.test.images[index:index + 1]).double()
    with torch.no_grad():
        h1, h2, h3, o = (t[0].numpy() for t in net.layers(x))
    kernels = net.H1w.detach().numpy()[:, 0]
    fig = plt.figure(figsize=(12, 7.5))
    grid = fig.add_gridspec(5, 13, height_ratios=[1, 1, 1, 0.6, 0.6])
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
    ax = fig.add_subplot(grid[4, 1:])
    ax.bar(np.arange(10), o, color=["black" if i == o.argmax() else "0.7" for i in range(10)], edgecolor="black")
    ax.set_xticks(range(10))
    ax.set_ylabel("output", fontsize=8)
    ax.set_xlabel(f"class (predicted {o.argmax()}, in black)", fontsize=8)
    fig.suptitle("learned H1 kernels (row 1); one digit through H1, H2, H3 and the outputs", fontsize=10)
    return _save(fig, out, "features")


def sweep(sweep_json: dict, out: Path) -> list[Path]:
    """Validation error (and the selected point's test error) versus the swept learning rate, one line
    per value of the other swept setting, mean with a ± std band over seeds."""
    plt = _pyplot()
    points = sweep_json["points"]
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    others = sorted({p["mu"] for p in points}, key=lambda v: (v is None, v))
    markers = "osD^v<>"
    for k, mu in enumerate(others):
        pts = sorted((p for p in points if p["mu"] == mu), key=lambda p: p["lr"])
        lrs = np.array([p["lr"] for p in pts])
        mean = np.array([p["val_error"]["mean"] for p in pts]) * 100
        std = np.array([p["val_error"]["std"] for p in pts]) * 100
        label = "validation error" + (f", mu {mu:g}" if mu is not None else "")
        ax.plot(lrs, mean, color="black", linestyle=["-", "--", ":", "-."][k % 4], marker=markers[k % 7],
                label=label)
        ax.fill_between(lrs, mean - std, mean + std, color="black", alpha=0.12, linewidth=0)
    final = sweep_json.get("final")
    if final:
        sel = sweep_json["selected"]
        m, s = final["test_error"]["mean"] * 100, final["test_error"]["std"] * 100
        ax.errorbar([sel["lr"]], [m], yerr=[s], color="0.4", marker="*", markersize=12, capsize=4, linestyle="none",
                    label="test error, selected (retrained on all training digits)")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate" + (" (eps)" if sweep_json.get("optimizer") == "sdlm" else ""))
    ax.set_ylabel("error (%)")
    ax.grid(True, which="both", linewidth=0.3)
    ax.legend(fontsize=8)
    ax.set_title(f"sweep: {sweep_json.get('recipe', '')} on {sweep_json.get('data', '')}, "
                 f"{len(sweep_json.get('seeds', []))} seeds, ± 1 std", fontsize=10)
    return _save(fig, out, "sweep")
