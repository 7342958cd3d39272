"""`lecun1989 report`: one self-contained HTML page (pictures embedded) for finished runs and sweeps:
the configuration, the results table beside the paper's row, and the pictures of plots.py."""

from __future__ import annotations

import base64
import html
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
    """A picture as a data: URI, its pixel size given (the page keeps its place while it loads), scaled
    down to the page's width by the style."""
    png = files[f"{name}.png"]
    size = ""
    if png[12:16] == b"IHDR":
        w, h = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
        size = f' width="{w}" height="{h}"'
    data = base64.b64encode(png).decode("ascii")
    return f'<img alt="{html.escape(name)}" src="data:image/png;base64,{data}"{size}>'


def _table(header: list[str], rows: list[list[str]], text: tuple[int, ...] = (0,), cls: str = "",
           row_cls: list[str] | None = None) -> str:
    """A table in a box of its own that scrolls sideways when the table is wider than the screen (the
    page never does); the columns in `text` are words (left-aligned, wrapping), the others figures
    (right-aligned, each on one line). Each cell names its column (data-h) for the style of a narrow
    screen, which lays a row of a table of class "stack" out as lines."""
    def cell(tag: str, i: int, c) -> str:
        attrs = ' class="t"' if i in text else ""
        if tag == "td" and header[i]:
            attrs += f' data-h="{html.escape(header[i])}"'
        return f"<{tag}{attrs}>{html.escape(str(c))}</{tag}>"
    head = "".join(cell("th", i, h) for i, h in enumerate(header))
    body = "".join((f'<tr class="{k}">' if k else "<tr>") + "".join(cell("td", i, c) for i, c in enumerate(row))
                   + "</tr>" for row, k in zip(rows, row_cls or [""] * len(rows)))
    table = f'<table class="{cls}">' if cls else "<table>"
    return f'<div class="scroll">{table}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def _fmt(s: dict, scale: float = 1, digits: str = ".2f") -> str:
    return (f"{s['mean'] * scale:{digits}} ± {s['std'] * scale:{digits}} "
            f"({s['min'] * scale:{digits}} .. {s['max'] * scale:{digits}})")


# The settings table: the config's keys in this order (any others after them, as they come), named so.
SETTINGS_ORDER = ("command", "passes", "seed", "lr", "optimizer", "engine", "kernels", "dtype", "net", "data",
                  "versions", "git_commit")
SETTINGS_SHOWN_ELSEWHERE = ("paper",)   # the citation heads the page
SETTINGS_NAMES = {"lr": "learning rate", "net": "network", "git_commit": "commit",
                  "optimizer: schedule": "optimizer: lr schedule", "data: n_train": "data: training digits",
                  "data: n_test": "data: test digits", "data: seed": "data: draw seed"}


def _plain(value) -> str:
    """A setting's value in plain words: none, yes / no, 0.02, lists joined by commas."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(_plain(v) for v in value) if value else "none"
    if isinstance(value, dict):
        return ", ".join(f"{k} {_plain(v)}" for k, v in value.items()) if value else "none"
    return str(value)


def _flat(config: dict) -> dict[str, str]:
    """A config's settings as rows: {"optimizer": {"name": "sgd"}} is {"optimizer: name": "sgd"}."""
    keys = [k for k in SETTINGS_ORDER if k in config] + [k for k in config if k not in SETTINGS_ORDER]
    out = {}
    for k in keys:
        if k in SETTINGS_SHOWN_ELSEWHERE:
            continue
        if isinstance(config[k], dict) and config[k]:
            out.update({f"{k}: {sub}": _plain(v) for sub, v in config[k].items()})
        else:
            out[k] = _plain(config[k])
    return out


def _label(name: str) -> str:
    """'net: output_bias' is 'network: output bias'."""
    if name in SETTINGS_NAMES:
        return SETTINGS_NAMES[name]
    top, *rest = name.split(": ", 1)
    return ": ".join([SETTINGS_NAMES.get(top, top)] + rest).replace("_", " ")


def settings_rows(configs: list[dict]) -> list[list[str]]:
    """The runs' settings as (name, value) rows; a setting the runs differ in (the seed) lists their
    values, each once, in the runs' order."""
    flat = [_flat(c) for c in configs]
    rows = []
    for name in dict.fromkeys(n for f in flat for n in f):
        values = list(dict.fromkeys(f.get(name, "none") for f in flat))
        rows.append([_label(name), ", ".join(values) + (" (by run)" if len(values) > 1 else "")])
    return rows


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
    parts = [f"<section><h2>{html.escape(str(path))}</h2>"]
    result, runs = open_folder(path)
    if result is not None:
        parts.append(f"<div class=\"card\"><h3>Sweep</h3><p>Sweep of the {html.escape(result['recipe'])} recipe on "
                     f"{html.escape(result['data'])}: {len(result['points'])} grid points x {len(result['seeds'])} "
                     f"seeds, chosen on the last {result['validation']} training digits; the selected point "
                     f"retrained on the full training set.</p>")
        chosen = [(p["lr"], p["mu"]) == (result["selected"]["lr"], result["selected"]["mu"]) for p in result["points"]]
        rows = [["-" if p["mu"] is None else f"{p['mu']:g}", f"{p['lr']:g}",
                 _fmt(p["val_error"], 100) + " %" if "val_error" in p else "-",
                 _fmt(p["val_loss"], 1, ".2e") if "val_loss" in p else "-",
                 f"{p['diverged']} of {len(result['seeds'])}" if p.get("diverged") else "",
                 "selected" if c else ""]
                for p, c in zip(result["points"], chosen)]
        parts.append(_table(["mu", "lr", "validation error", "validation loss", "runs diverged", ""], rows, text=(),
                            cls="sweep stack all", row_cls=["sel" if c else "" for c in chosen]))
        parts.append(_img("sweep", plots.sweep(result)) + "</div>")
    config = runs.configs[runs.dirs[0]]
    loss_name = "MSE" if config["net"].get("loss", "mse") == "mse" else "cross-entropy"
    parts.append("<div class=\"card\"><h3>Configuration</h3>"
                 + _table(["setting", "value"], settings_rows([runs.configs[d] for d in runs.dirs]), text=(0, 1),
                          cls="settings"))
    parts.append("<p class=\"note\">Seeds and learning rates: " + html.escape(", ".join(
        f"{c['seed']} (lr {c['lr']:g}" + (f"; diverged at pass {runs.diverged[d]}" if d in runs.diverged else "")
        + ")" for d, c in runs.configs.items())) + ".</p>")
    note = plots.diverged_note(runs)
    note = note[:1].upper() + note[1:]
    if not runs.kept:
        parts.append(f"<p class=\"warn\">{html.escape(note)}: no results and no pictures.</p></div></section>")
        return "\n".join(parts)
    parts.append("</div>")
    parts.append(f"<div class=\"card\"><h3>Results after pass {runs.last}, {html.escape(plots.pass_note(runs))}</h3>")
    if note:
        parts.append(f"<p class=\"warn\">{html.escape(note)}.</p>")
    # one row a figure, our runs and the paper side by side: narrow enough for a phone
    rows = results_rows(final_stats(runs.rows), len(runs.kept), loss_name)
    figures = ["train error", "train misses", "test error", "test misses", f"train {loss_name}", f"test {loss_name}"]
    parts.append(_table(["", *(r[0] for r in rows)], [[f, *(r[i] for r in rows)] for i, f in enumerate(figures, 1)],
                        cls="results" + " vs" * (len(rows) > 1)))
    parts.append(_img("curves", plots.curves(runs)) + "</div>")
    net, ds = load_run(runs.kept[0], where)
    parts.append(f"<div class=\"card\"><p>The network of {html.escape(runs.kept[0].name)} (its latest weights):</p>")
    parts.append(_img("misclassified", plots.misclassified(net, ds)))
    parts.append(_img("features", plots.features(net, ds)) + "</div>")
    parts.append(f"<div class=\"card\">{rejection(path, where)}</div>")
    parts.append(live_panel(runs.kept[0], where) + "</section>")
    return "\n".join(parts)


def live_panel(run_dir: Path, where: Location) -> str:
    """`lecun1989 demo`'s page for one run, inside the report (an iframe of the page's own text, so the
    report stays one self-contained file), as wide as the page and as tall as its content (fit_frame)."""
    return (f"<h3>Draw digits: {html.escape(run_dir.name)} reads them live</h3>"
            f"<iframe title=\"draw digits\" srcdoc=\"{html.escape(demo.page(run_dir, where))}\" class=\"live\" "
            f"onload=\"fitFrame(this)\"></iframe>")


def rejection(path: Path, where: Location) -> str:
    """The share of test digits the runs must reject for 1% error (reading/rejection.py), by each criterion, or
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
            + _table(["criterion", "rejected", "against the margin"], rows, text=(0, 2), cls="stack")
            + _img("reject", rejection_picture(result)))


# The look of `lecun1989 demo`'s page (views/web/demo.html): its fonts, colours, cards and spacing.
STYLE = """:root{--ink:#1d2330;--muted:#6b7280;--line:#e5e7eb;--accent:#2563eb;--bad:#b91c1c}
*{box-sizing:border-box}
body{margin:0;font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--ink);background:#f8fafc}
main{max-width:980px;margin:0 auto;padding:16px}
h1{font-size:1.25rem;margin:0 0 4px}
p.sub{margin:0 0 12px;color:var(--muted)}
section{margin-top:20px}
h2{font-size:1.1rem;margin:0 0 10px;overflow-wrap:anywhere}
h3{font-size:1rem;margin:0 0 8px}
.card{background:#fff;border:1px solid var(--line);border-radius:10px;padding:12px;margin-bottom:12px}
.card p{margin:0 0 8px}
.note{color:var(--muted);font-size:.85rem}
.warn{color:var(--bad)}
.scroll{overflow-x:auto;margin:0 0 8px}
table{border-collapse:collapse;font-variant-numeric:tabular-nums}
th,td{padding:4px 10px;border-bottom:1px solid var(--line);text-align:right;white-space:nowrap;vertical-align:top}
th{font-weight:600;color:var(--muted);white-space:normal;vertical-align:bottom}
th.t,td.t{text-align:left;white-space:normal}
tr.sel td{background:#eff6ff;font-weight:600}
table.sweep{font-size:.9rem}table.sweep td{padding:4px 6px}
table.settings{width:100%;font-size:.9rem}
table.settings td{padding-top:3px;padding-bottom:3px;overflow-wrap:anywhere}
table.settings td:first-child{color:var(--muted);white-space:nowrap;width:1%}
img{display:block;max-width:100%;height:auto;margin:8px auto}
iframe.live{display:block;width:100%;height:1500px;border:1px solid var(--line);border-radius:10px;background:#f8fafc}
@media (max-width:600px){main{padding:10px}.card{padding:10px}th,td{padding:4px 6px}
table.results,table.results>*{display:block}
table.results tr{display:grid;grid-template-columns:1fr}table.results.vs tr{grid-template-columns:1fr 6.5em}
table.results th:first-child{display:none}
table.results td:first-child{grid-column:1/-1;border:0;padding-bottom:0;color:var(--muted)}
table.results td{white-space:normal}
table.stack thead{display:none}table.stack tr{display:block;border-bottom:1px solid var(--line);padding:4px 0}
table.stack td{display:block;border:0;padding:1px 6px;text-align:left;white-space:normal}
table.stack td:first-child{font-weight:600}
table.stack td+td[data-h]:not(:empty)::before{content:attr(data-h) ": ";color:var(--muted)}
table.stack.all td{display:inline-block;padding-right:10px;font-weight:inherit;background:none}
table.stack.all td:empty{display:none}
table.stack.all td[data-h]::before{content:attr(data-h) ": ";color:var(--muted);font-weight:400}
table.sweep td{white-space:nowrap}table.sweep td:nth-child(n+3)[data-h]::before{display:block;font-size:.8rem}
table.stack tr.sel{background:#eff6ff}}"""

# The live panel's iframe as tall as the demo page inside it, as it grows (digits drawn) or the
# window narrows; where the frame cannot be read it keeps the style's height.
SCRIPT = """function fitFrame(f){try{const d=f.contentDocument.documentElement,
fit=()=>{f.style.height=Math.ceil(d.getBoundingClientRect().height)+2+"px"};fit();new ResizeObserver(fit).observe(d)}
catch(e){}}"""


HEAD = "<!DOCTYPE html><html><head><meta charset='utf-8'><title>lecun1989 report</title>"


def page(paths: list[str | Path], where: Location = Location()) -> str:
    """The whole page, every section made before it is returned: a fault leaves no page behind."""
    body = "\n".join(section(Path(p), where) for p in paths)
    return (f"{HEAD}<meta name='viewport' content='width=device-width, initial-scale=1'><style>{STYLE}</style>"
            f"<script>{SCRIPT}</script></head><body><main><h1>lecun1989 report</h1>"
            f"<p class=\"sub\">{html.escape(paper.CITATION)}</p>{body}</main></body></html>")
