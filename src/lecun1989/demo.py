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

from . import paper
from .io import check_page, write_files

HEAD = "<!DOCTYPE html>\n<html lang=\"en\">\n<!-- lecun1989 demo:"


def _template(name: str) -> str:
    return resources.files("lecun1989").joinpath("web", name).read_text(encoding="utf-8")


def model_data(run_dir: Path, load: dict | None = None, threshold: float | None = None) -> dict:
    """What the page needs of a run: its weights and settings, and the margin its digits need."""
    from . import reading
    from .plots import read_config
    net = reading.load_net(run_dir)
    config = read_config(run_dir)
    if threshold is None:
        threshold, share = reading.run_threshold(net, run_dir, load)
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


def page(run_dir: Path, load: dict | None = None, threshold: float | None = None) -> str:
    model = json.dumps(model_data(run_dir, load, threshold)).replace("</", "<\\/")
    html = _template("demo.html")
    assert html.startswith(HEAD)
    return html.replace("/*MODEL*/null", model, 1).replace("/*READING*/", _template("reading.js"), 1)


def write_page(run_dir: Path, out: Path, load: dict | None = None, threshold: float | None = None) -> Path:
    """Write the page to `out`, replacing only a file that this command made."""
    check_page(out, HEAD, "demo page", "demo.html")
    out = Path(out)
    real = out.resolve()
    write_files(real.parent, {real.name: page(Path(run_dir), load, threshold).encode("utf-8")})
    return out


def add_subcommand(sub) -> None:
    """Add `demo` to an argparse subparsers object."""
    from .cli import add_data_location_args, finite_float
    p = sub.add_parser("demo", help="a self-contained page where anyone draws digits and watches the network read")
    p.add_argument("run", metavar="RUN_DIR", type=Path, help="a run folder (as repro or paper write them)")
    p.add_argument("-o", "--out", default="demo.html", help="the HTML file (default demo.html)")
    p.add_argument("--threshold", type=finite_float,
                   help="the margin a digit needs to be accepted (default: the run's 1%%-error margin)")
    add_data_location_args(p)
    p.set_defaults(func=cmd_demo)


def cmd_demo(args) -> None:
    from .cli import load_kwargs
    out = write_page(args.run, args.out, load_kwargs(args), args.threshold)
    print(f"demo page written to {out}: open it in a browser and draw digits")
