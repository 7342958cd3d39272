"""`lecun1989 demo`: one self-contained HTML page where anyone draws digits and watches the network read.

The page holds the run's weights (float64, base64), its network settings and its rejection
threshold, and two scripts: the network's forward pass (web/demo.html) and a copy of predict's
segmentation and normalization (web/reading.js). It needs no server and loads nothing from
elsewhere, so it works offline and from any static host.
"""

from __future__ import annotations

import base64
import json
from importlib import resources
from pathlib import Path

from .. import paper
from ..data import Location
from ..reading.images import run_threshold
from ..store.rundir import read_config
from ..trained import load_net

HEAD = "<!DOCTYPE html>\n<html lang=\"en\">\n<!-- lecun1989 demo:"


def _template(name: str) -> str:
    return resources.files("lecun1989.views").joinpath("web", name).read_text(encoding="utf-8")


def model_data(run_dir: Path, where: Location = Location(), threshold: float | None = None) -> dict:
    """What the page needs of a run: its weights and settings, and the margin its digits need."""
    net = load_net(run_dir)
    config = read_config(run_dir)
    if threshold is None:
        threshold, share = run_threshold(net, run_dir, where)
        note = f"digits with a smaller margin are rejected: {share * 100:.1f}% of its test digits"
    else:
        note = "threshold given"
    params = {name: {"shape": list(getattr(net, name).shape),
                     "data": base64.b64encode(getattr(net, name).detach().numpy().astype("<f8").tobytes()).decode()}
              for name in net.PARAMS}
    n = config["net"]
    d = config.get("data", {})
    info = (f"run {Path(run_dir).resolve().name}, trained on {d.get('source', '?')} "
            f"({n['activation']}, {n['loss']} loss); {note}")
    return {"params": params, "activation": n["activation"], "loss": n["loss"], "pad": paper.PAD_VALUE,
            "table": net.table.numpy().reshape(-1).tolist(), "threshold": float(threshold), "info": info}


def page(run_dir: Path, where: Location = Location(), threshold: float | None = None) -> str:
    model = json.dumps(model_data(run_dir, where, threshold)).replace("</", "<\\/")
    html = _template("demo.html")
    assert html.startswith(HEAD)
    return html.replace("/*MODEL*/null", model, 1).replace("/*READING*/", _template("reading.js"), 1)


