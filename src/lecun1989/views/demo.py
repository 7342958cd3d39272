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
from ..reading.images import reader, run_folders
from ..store.rundir import read_config

HEAD = "<!DOCTYPE html>\n<html lang=\"en\">\n<!-- lecun1989 demo:"


def _template(name: str) -> str:
    return resources.files("lecun1989.views").joinpath("web", name).read_text(encoding="utf-8")


def _params(net) -> dict:
    return {name: {"shape": list(value.shape), "data": base64.b64encode(value.astype("<f8").tobytes()).decode()}
            for name, value in net.params.items()}


def model_data(run_dir: Path, where: Location = Location(), threshold: float | None = None) -> dict:
    """What the page needs of a run (or of a study's runs, read as a committee): the weights and settings,
    and the margin its digits need."""
    r = reader(run_dir, threshold, where)
    runs = run_folders(run_dir)
    note = ("threshold given" if threshold is not None else
            f"a digit needs the margin at which its test digits err at 1%: {r.rejection_note()}")
    config = read_config(runs[0])
    n, d = config["net"], config.get("data", {})
    who = (f"run {Path(run_dir).resolve().name}" if len(runs) == 1 else
           f"the {len(runs)} runs of {Path(run_dir).resolve().name}, their outputs averaged")
    data = ("every USPS and MNIST training digit, drawn again, and ink that is no digit"
            if d.get("source") == "reader" else d.get("source", "?"))
    info = f"{who}, trained on {data} ({n['activation']}, {n['loss']} loss); {note}"
    first, *others = r.nets
    return {"params": _params(first), "committee": [_params(net) for net in others],
            "activation": n["activation"], "loss": n["loss"], "pad": paper.PAD_VALUE,
            "table": first.table.reshape(-1).tolist(), "threshold": float(r.threshold), "info": info}


def page(run_dir: Path, where: Location = Location(), threshold: float | None = None) -> str:
    model = json.dumps(model_data(run_dir, where, threshold)).replace("</", "<\\/")
    html = _template("demo.html")
    assert html.startswith(HEAD)
    return html.replace("/*MODEL*/null", model, 1).replace("/*READING*/", _template("reading.js"), 1)


