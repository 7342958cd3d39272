"""`lecun1989 report`: one self-contained HTML page (pictures embedded) for finished runs and sweeps:
the configuration, the results table beside the paper's row, and the pictures of plots.py."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

from .. import paper
from ..data import Location
from ..errors import LecunError
from ..reading import rejection as reject
from ..results import final_stats
from ..store.rundir import open_folder
from ..trained import load_run
from . import demo, plots
from .rejection import picture as rejection_picture


def _img(name: str, files: dict[str, bytes]) -> str:
    data = base64.b64encode(files[f"{name}.png"]).decode("ascii")
    return f'<img alt="{html.escape(name)}" src="data:image/png;base64,{data}">'


def _table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _fmt(s: dict, scale: float = 1, digits: str = ".2f") -> str:
    return (f"{s['mean'] * scale:{digits}} ± {s['std'] * scale:{digits}} "
            f"({s['min'] * scale:{digits}} .. {s['max'] * scale:{digits}})")


def results_rows(final: dict, n: int, loss_name: str) -> list[list[str]]:
    rows = [[f"ours, {n} run{'s' * (n > 1)}: mean ± std (min .. max)",
             _fmt(final["train_error"], 100) + " %", _fmt(final["train_misses"], 1, ".1f"),
             _fmt(final["test_error"], 100) + " %", _fmt(final["test_misses"], 1, ".1f"),
             _fmt(final["train_loss"], 1, ".2e"), _fmt(final["test_loss"], 1, ".2e")]]
    if loss_name == "MSE":
        rows.append(["paper (1989)", f"{paper.TRAIN_ERROR * 100:.2f} %", str(paper.TRAIN_MISSES),
                     f"{paper.TEST_ERROR * 100:.2f} %", str(paper.TEST_MISSES), f"{paper.TRAIN_MSE:.2e}",
                     f"{paper.TEST_MSE:.2e}"])
    return rows


def section(path: Path, where: Location) -> str:  # noqa: C901 (one page section, top to bottom)
    """The HTML of one argument: a sweep folder, or a run / study folder."""
    parts = [f"<h2>{html.escape(str(path))}</h2>"]
    result, runs = open_folder(path)
    if result is not None:
        parts.append(f"<p>Sweep of the {html.escape(result['recipe'])} recipe on {html.escape(result['data'])}: "
                     f"{len(result['points'])} grid points x {len(result['seeds'])} seeds, chosen on the last "
                     f"{result['validation']} training digits; the selected point retrained on the full training set."
                     f"</p>")
        rows = [["-" if p["mu"] is None else f"{p['mu']:g}", f"{p['lr']:g}",
                 _fmt(p["val_error"], 100) + " %" if "val_error" in p else "-",
                 _fmt(p["val_loss"], 1, ".2e") if "val_loss" in p else "-",
                 f"{p['diverged']} of {len(result['seeds'])}" if p.get("diverged") else "",
                 "selected" if (p["lr"], p["mu"]) == (result["selected"]["lr"], result["selected"]["mu"]) else ""]
                for p in result["points"]]
        parts.append(_table(["mu", "lr", "validation error", "validation loss", "runs diverged", ""], rows))
        parts.append(_img("sweep", plots.sweep(result)))
    config = runs.configs[runs.dirs[0]]
    loss_name = "MSE" if config["net"].get("loss", "mse") == "mse" else "cross-entropy"
    shown = {k: config[k] for k in ("command", "passes", "optimizer", "engine", "dtype", "net", "data")
             if k in config}
    parts.append("<h3>Configuration</h3><pre>" + html.escape(json.dumps(shown, indent=2)) + "</pre>")
    parts.append("<p>Seeds and learning rates: " + html.escape(", ".join(
        f"{c['seed']} (lr {c['lr']:g}" + (f"; diverged at pass {runs.diverged[d]}" if d in runs.diverged else "")
        + ")" for d, c in runs.configs.items())) + ".</p>")
    note = plots.diverged_note(runs)
    note = note[:1].upper() + note[1:]
    if not runs.kept:
        parts.append(f"<p>{html.escape(note)}: no results and no pictures.</p>")
        return "\n".join(parts)
    if note:
        parts.append(f"<p>{html.escape(note)}.</p>")
    parts.append(f"<h3>Results after pass {runs.last}, {html.escape(plots.pass_note(runs))}</h3>")
    parts.append(_table(["", "train error", "train misses", "test error", "test misses", f"train {loss_name}",
                         f"test {loss_name}"], results_rows(final_stats(runs.rows), len(runs.kept), loss_name)))
    parts.append(_img("curves", plots.curves(runs)))
    net, ds = load_run(runs.kept[0], where)
    parts.append(f"<p>The network of {html.escape(runs.kept[0].name)} (its latest weights):</p>")
    parts.append(_img("misclassified", plots.misclassified(net, ds)))
    parts.append(_img("features", plots.features(net, ds)))
    parts.append(rejection(path, where))
    parts.append(live_panel(runs.kept[0], where))
    return "\n".join(parts)


def live_panel(run_dir: Path, where: Location) -> str:
    """`lecun1989 demo`'s page for one run, inside the report (an iframe of the page's own text, so the
    report stays one self-contained file)."""
    return (f"<h3>Draw digits: {html.escape(run_dir.name)} reads them live</h3>"
            f"<iframe title=\"draw digits\" srcdoc=\"{html.escape(demo.page(run_dir, where))}\" "
            f"style=\"width:100%;height:1500px;border:1px solid #ccc\"></iframe>")


def rejection(path: Path, where: Location) -> str:
    """The share of test digits the runs must reject for 1% error (reject.py), by each criterion, or
    why it was not measured (an unfinished run): the rest of the page stands without it."""
    try:
        result = reject.measure([path], reject.NIPS_ERROR, where)
    except LecunError as e:
        return f"<h3>Rejection for 1% error</h3><p>Not measured: {html.escape(str(e))}.</p>"
    n, k = len(result.runs), result.runs[0].n
    rows = [[reject.CRITERIA["margin"] + " (the zip-code work's)", _fmt(result.stats("margin"), 100, ".1f") + " %", ""]]
    for c in reject.CRITERIA:
        if c != "margin":
            d = reject.compared(result, c)
            rows.append([reject.CRITERIA[c], _fmt(result.stats(c), 100, ".1f") + " %",
                         f"{d['difference']['mean'] * 100:+.1f} points; lower in {d['lower_in']} of {n} runs"])
    rows.append(["Le Cun et al., NIPS 2 (1989): another network, its own zip-code digits",
                 f"about {reject.NIPS_REJECTION * 100:.0f} %", "not comparable digit for digit"])
    note = f" {reject.diverged_line(result)}." if result.diverged else ""
    return (f"<h3>Rejection for 1% error</h3><p>The share of the {k} {result.split} digits each run must reject, "
            f"least sure first, for the accepted ones to err at most 1%, with its final weights, over "
            f"{n} finished run{'s' * (n > 1)}: mean ± std (min .. max).{html.escape(note)}</p>"
            + _table(["criterion", "rejected", "against the margin"], rows) + _img("reject", rejection_picture(result)))


STYLE = """body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#111}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #999;padding:4px 8px;text-align:right}
img{max-width:100%;display:block;margin:1em 0}pre{background:#f4f4f4;padding:1em;overflow:auto}"""


HEAD = "<!DOCTYPE html><html><head><meta charset='utf-8'><title>lecun1989 report</title>"




def page(paths: list[str | Path], where: Location = Location()) -> str:
    """The whole page, every section made before it is returned: a fault leaves no page behind."""
    body = "\n".join(section(Path(p), where) for p in paths)
    return (f"{HEAD}<meta name='viewport' content='width=device-width, initial-scale=1'><style>{STYLE}</style>"
            f"</head><body><h1>lecun1989 report</h1><p>{html.escape(paper.CITATION)}</p>{body}</body></html>")
