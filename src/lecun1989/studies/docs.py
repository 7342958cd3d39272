"""Every measured table and figure of the docs, written from the saved results (rows.py), and checked.

In a document, a generated table sits between two markers, and a figure quoted in the text between
two more (HTML comments: invisible once rendered):

    <!-- table ablation-usps -->            <!-- fig paper/usps test_misses -->108.6 ± 6.8<!-- /fig -->
    | row | command | ... |
    <!-- /table -->

A figure's spec is `STUDY/ROW[@LR] METRIC[.STAT][/2]`: METRIC one of results.METRICS, `reject`
(the rejection for 1% error, margin criterion), `selected_lr` (a sweep's choice), `zip_threshold`
(the margin thresholds of the zip-code benchmark) or `wall_s` (the row's wall time); STAT `pm`
(mean ± std, the default), mean, std, min, max or range; `/2` halves it (the MSE with the factor
1/2). `lecun1989 docs` rewrites what is between the markers; `lecun1989 docs --check` only
compares, and names each table's first differing row and each figure that differs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from types import SimpleNamespace

from .. import paper
from ..data import Location
from ..errors import LecunError
from ..reading.rejection import stats_line
from ..recipes import LADDER, STEPS
from ..results import comparison_lines, format_int_list
from ..store.atomic import commit, write_text
from ..store.rundir import eval_line, read_json, require
from ..train import final_lines
from ..trained import load_run
from . import scaling
from .rows import RESULT, STUDIES

DOCS = ("README.md", "docs/COMMANDS.md", "docs/DATA.md", "docs/FIDELITY.md", "docs/MODERN.md", "docs/READING.md",
        "docs/SPEED.md", "docs/CLUSTER.md")
TABLE = re.compile(r"^<!-- table (?P<name>[\w.-]+) -->\n(?P<body>.*?)^<!-- /table -->$", re.M | re.S)
FIG = re.compile(r"<!-- fig (?P<spec>[^>]+?) -->(?P<body>.*?)<!-- /fig -->", re.S)


# The keys of a row's study.json that the tables and figures read, and their types.
ROW_KEYS = {"study": str, "row": str, "command": str, "runs": list, "by_lr": list, "data": dict, "net": dict}

class Results:
    """The rows' study.json files under a results folder, read once each."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self._rows: dict[str, dict] = {}

    def row(self, key: str) -> dict:
        if key not in self._rows:
            path = self.root / key / RESULT
            if not path.is_file():
                study = key.split("/")[0]
                raise LecunError(f"{path} is missing: run `lecun1989 study {study} --out {self.root}`")
            # what runner.collect writes, checked: a file of another shape is one line, not a traceback
            self._rows[key] = require(read_json(path), ROW_KEYS, str(path))
        return self._rows[key]

    def group(self, key: str, lr: float | None = None) -> dict:
        groups = self.row(key)["by_lr"]
        if lr is None:
            if len(groups) != 1:
                raise LecunError(f"{key} has {len(groups)} learning rates; name one as {key}@LR")
            return groups[0]
        for g in groups:
            if abs(g["lr"] - lr) <= 1e-12 * abs(lr):
                return g
        have = ", ".join(f"{g['lr']:g}" for g in groups)
        raise LecunError(f"{key} has no learning rate {lr:g} (it has {have})")

    def final(self, key: str, lr: float | None = None) -> dict:
        final = self.group(key, lr)["final"]
        if final is None:
            raise LecunError(f"every run of {key} diverged; it has no figures to quote")
        return final

    def command(self, key: str) -> str:
        return self.row(key)["command"]


# --- how figures are written ---------------------------------------------------------------------

def _kind(metric: str) -> str:
    return "error" if metric.endswith("error") else "misses" if metric.endswith("misses") else \
        "reject" if metric == "reject" else "loss"


def value(metric: str, v: float, std: bool = False) -> str:
    kind = _kind(metric)
    if kind in ("error", "reject"):
        return f"{v * 100:.{2 if kind == 'error' else 1}f}"
    if kind == "misses":
        return f"{v:.1f}"
    return f"{v:.{1 if std else 2}e}"


def figure(metric: str, s: dict, stat: str = "pm") -> str:
    pct = "%" if _kind(metric) in ("error", "reject") else ""
    if stat == "pm":
        return f"{value(metric, s['mean'])}{pct} ± {value(metric, s['std'], std=True)}"
    if stat == "mean":
        return f"{value(metric, s['mean'])}{pct}"
    if stat == "range":
        lo, hi = (f"{s[k]:.0f}" if _kind(metric) == "misses" else value(metric, s[k]) for k in ("min", "max"))
        return f"{lo} .. {hi}"
    if stat in ("min", "max"):
        return f"{s[stat]:.0f}" if _kind(metric) == "misses" else value(metric, s[stat])
    if stat == "std":
        return value(metric, s["std"], std=True)
    raise LecunError(f"unknown statistic {stat!r}: use pm, mean, std, min, max or range")


def error_cell(final: dict, split: str) -> str:
    """'0.15% ± 0.05 (10.9 ± 3.5)', or '0.32% (23)' for one run."""
    e, m = final[f"{split}_error"], final[f"{split}_misses"]
    if e["n"] == 1:
        return f"{e['mean'] * 100:.2f}% ({m['mean']:.0f})"
    return f"{figure('error', e)} ({figure('misses', m)})"


def loss_cell(final: dict, split: str) -> str:
    s = final[f"{split}_loss"]
    return f"{s['mean']:.2e}" if s["n"] == 1 else figure("loss", s)


def fig_text(results: Results, spec: str) -> str:
    m = re.fullmatch(r"(?P<key>[\w.-]+/[\w.-]+)(@(?P<lr>[\d.e+-]+))? (?P<metric>\w+)(\.(?P<stat>\w+))?(?P<half>/2)?",
                     spec.strip())
    if not m:
        raise LecunError(f"figure spec {spec!r} is not STUDY/ROW[@LR] METRIC[.STAT][/2]")
    key, metric, stat = m["key"], m["metric"], m["stat"] or "pm"
    lr = float(m["lr"]) if m["lr"] else None
    if metric == "wall_s":
        return f"{results.row(key)['wall_s']:.0f} s"
    if metric == "zip_threshold":   # the runs' margin thresholds for 1% error, as the zip benchmark used them
        t = results.row(key)["zipcodes"]["count"]["threshold"]
        return f"{t['mean']:.2f} ± {t['std']:.2f}"
    if metric == "selected_lr":
        row = results.row(key)
        if "sweep" not in row:
            raise LecunError(f"{key} is not a sweep; it has no selected learning rate")
        return f"{row['sweep']['selected']['lr']:.1e}"
    if metric == "reject":
        row = results.row(key)
        if "reject" not in row:
            raise LecunError(f"{key} has no rejection figure (its row does not measure one)")
        s = row["reject"]["margin"]["stats"]
    else:
        final = results.final(key, lr)
        if metric not in final:
            raise LecunError(f"figure spec {spec!r}: no metric {metric!r} (one of {', '.join(final)}, or reject)")
        s = final[metric]
    if m["half"]:
        s = {k: (v / 2 if k != "n" else v) for k, v in s.items()}
    return figure(metric, s, stat)


# --- the tables ----------------------------------------------------------------------------------

def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)] + ["| " + " | ".join(r) + " |"
                                                                                 for r in rows]


PAPER_ROW = ["paper, 1989", "", f"{paper.TRAIN_ERROR * 100:.2f}% ({paper.TRAIN_MISSES})",
             f"{paper.TEST_ERROR * 100:.2f}% ({paper.TEST_MISSES})", f"{paper.TRAIN_MSE:.1e}", f"{paper.TEST_MSE:.1e}"]
FOUR = ["train error (misses)", "test error (misses)", "train MSE", "test MSE"]


def _four(results: Results, key: str, label: str) -> list[str]:
    f = results.final(key)
    return [label, f"`{results.command(key)}`", error_cell(f, "train"), error_cell(f, "test"),
            loss_cell(f, "train"), loss_cell(f, "test")]


def readme_results(r: Results) -> list[str]:
    f = r.final("paper/usps")
    span = ["... min .. max over the 10 seeds", "",
            *(f"{figure(m, f[m], 'range')}{'%' if m.endswith('error') else ''}"
              for m in ("train_error", "test_error", "train_loss", "test_loss"))]
    return _table(["run", "command", *FOUR], [
        PAPER_ROW,
        _four(r, "paper/usps", "the paper's configuration (its optimizer), seeds 0-9"), span,
        _four(r, "paper/usps-hessian-pass", "h re-estimated before each pass"),
        _four(r, "paper/repro", "the reproduction's SGD recipe, seed 1337"),
        _four(r, "paper/repro-seeds", "the same, seeds 0-9")])


def paper_output(key: str):
    def lines(r: Results) -> list[str]:
        row = r.row(key)
        out = comparison_lines(r.final(key))
        if "reject" in row:
            out.append(stats_line(row["reject"]["margin"]["stats"]))
        return ["```", *out, "```"]
    return lines


def repro_log(r: Results) -> list[str]:
    """The end of `lecun1989 repro`'s log: its last pass, as printed."""
    key = "paper/repro"
    row = r.row(key)
    last = row["runs"][0]["final"]
    evals = [eval_line(split, SimpleNamespace(**{k: last[f"{split}_{k}"] for k in ("loss", "error", "misses")}))
             for split in ("train", "test")]
    return ["```", f"pass {last['pass']}/{row['passes']}", *evals, *final_lines([last]), "```"]


ABLATION = (("paper/{d}", "**the default `lecun1989 paper`** (h as a running average), seeds 0-9"),
            ("paper/{d}-hessian-pass", "h re-estimated on 500 digits before each pass, seeds 0-9"),
            ("ablation/{d}-reference", "h before each pass, seeds 0-4: **the reference for the rows below**"),
            ("ablation/{d}-running", "h as a running average (decay 0.01)"),
            ("optimizers/{d}-sgd", "optimizer: plain SGD, lr 0.03 (the reproduction's)"),
            ("optimizers/{d}-momentum", "optimizer: SGD with momentum 0.9 (Rumelhart, Hinton & Williams 1986), "
                                        "lr 3e-3 chosen on USPS validation, seeds 0-9"),
            ("ablation/{d}-eps3e-4", "eps 3e-4 instead of 1e-3"),
            ("ablation/{d}-lenet5", "LeNet-5's decreasing eps schedule, eps 2e-3"),
            ("ablation/{d}-tanh", "activation: plain tanh"),
            ("ablation/{d}-sqrt", "init: U(±2.4/sqrt(F))"),
            ("ablation/{d}-bias0", "output biases start at 0"),
            ("ablation/{d}-cyclic", "H1->H2 table: cyclic"))


def ablation(data: str):
    def lines(r: Results) -> list[str]:
        return _table(["row", "command", *FOUR],
                      [PAPER_ROW] + [_four(r, key.format(d=data), label) for key, label in ABLATION])
    return lines


def validation(r: Results) -> list[str]:
    rows = []
    for row in STUDIES["validation"].rows:
        key = f"validation/{row.name}"
        res = r.row(key)
        net, opt = res["net"], res["optimizer"]
        for g in res["by_lr"]:
            f = g["final"]
            figures = ([f"{f['train_misses']['mean']:.1f}", figure("misses", f["test_misses"]),
                        f"{f['train_loss']['mean']:.2e}", f"{f['test_loss']['mean']:.2e}"] if f else
                       ["diverged"] * 4)
            sdlm = opt["name"] == "sdlm"
            rows.append([opt["name"] + (f" {opt['momentum']:g}" if opt["name"] == "momentum" else ""),
                         net["activation"], net["init"], f"{net['output_bias']:g}",
                         f"{opt['mu']:g}" if sdlm else "", opt["schedule"], opt["hessian"] if sdlm else "",
                         f"{g['lr']:g}", format_int_list(g["seeds"]), *figures, f"`{res['command']}`"])
    return _table(["optimizer", "activation", "init", "output bias", "mu", "schedule", "h", "eps (lr)", "seeds",
                   "train misses (of 6,291)", "validation misses (of 1,000), mean ± std", "train MSE",
                   "validation MSE", "command"], rows)


def _ladder_row(r: Results, key: str, step) -> list[str]:
    f = r.final(key)
    te = f["test_error"]
    published = "" if step.published != step.published else f"{step.published * 100:.2f}%"
    return [step.name, f"`{r.command(key)}`", str(r.row(key)["passes"]),
            f"{figure('error', f['train_error'])} ({f['train_misses']['mean']:.1f})",
            f"**{figure('error', te)}** ({te['min'] * 100:.2f}-{te['max'] * 100:.2f}; {f['test_misses']['mean']:.1f})",
            figure("loss", f["train_loss"]), figure("loss", f["test_loss"]), published]


def ladder(data: str):
    def lines(r: Results) -> list[str]:
        names = [row.name for row in STUDIES["modern"].rows if row.name.startswith(f"{data}-")
                 and row.name[len(data) + 1:] in STEPS]
        return _table(["step", "command", "passes", "train error (misses)", "test error (min-max; misses)",
                       "train loss", "test loss", "published (its MNIST draw, 1 seed)"],
                      [_ladder_row(r, f"modern/{n}", STEPS[n[len(data) + 1:]]) for n in names])
    return lines


def published_draw(r: Results) -> list[str]:
    rows = []
    for step in LADDER[:-1]:
        cells = [step.name, f"{step.published * 100:.2f}%"]
        for data in ("mnist-published", "mnist"):
            te = r.final(f"modern/{data}-{step.name}")["test_error"]
            cells.append(f"{figure('error', te)} ({te['min'] * 100:.2f}-{te['max'] * 100:.2f})")
        cells.append(f"`{r.command(f'modern/mnist-published-{step.name}')}`")
        rows.append(cells)
    return _table(["step", "published (1 seed)", "the published draw, seeds 0-4: test error (min-max)",
                   "our default draw, seeds 0-4: test error (min-max)", "command (published draw)"], rows)


def rejection(r: Results) -> list[str]:
    rows = []
    for key, label in (("paper/usps", "the paper's configuration, seeds 0-9"),
                       ("modern/usps-relu-dropout", "the modern recipe (relu-dropout, USPS), seeds 0-4")):
        rej = r.row(key)["reject"]
        m = rej["margin"]["stats"]
        rows.append([label, f"`{r.command(key)}`", figure("error", r.final(key)["test_error"]),
                     f"**{figure('reject', m)}** ({figure('reject', m, 'range')})",
                     figure("reject", rej["top"]["stats"]), figure("reject", rej["softmax"]["stats"])])
    return _table(["runs", "command", "test error", "rejection for 1% error, by the margin",
                   "the largest output alone", "the softmax probability"], rows)


def reading_mnist(r: Results) -> list[str]:
    ways = r.row("paper/usps")["reading_mnist"]
    labels = {"normalized, deslanted": "predict's normalization, deslanted",
              "normalized, not deslanted": "predict's normalization, not deslanted",
              "naive bilinear 28->16": "the whole 28x28 image, bilinear to 16x16 (`data.resize_bilinear`, as the MNIST "
                                       "approximation)"}
    return _table(["input", "accuracy", "rejection for 1% error"],
                  [[labels[way], figure("error", f["accuracy"]), figure("reject", f["rejection_at_1pct"])]
                   for way, f in ways.items()])


ZIP_SCORES = (("miscounted_zips", "strips cut into a wrong number of digits"), ("digit_accuracy", "digit accuracy"),
              ("zip_accuracy", "whole-zip accuracy"), ("accepted_zips", "strips shown with no '?'"),
              ("accepted_zip_accuracy", "whole-zip accuracy among them"),
              ("accepted_digit_error", "error of the accepted digits"))


def zipcodes(r: Results) -> list[str]:
    z = r.row("paper/usps")["zipcodes"]
    cell = lambda mode, k: ("0" if z[mode][k]["max"] == 0 else
                            f"{z[mode][k]['mean'] * 100:.1f}% ± {z[mode][k]['std'] * 100:.1f}")
    return _table(["", "without a count", "`--digits 5`"],
                  [[label, cell("count", k), cell("digits5", k)] for k, label in ZIP_SCORES])


def _pct(v) -> str:
    return "n/a" if v is None else f"{v * 100:.1f}%"


def reader_zipcodes(r: Results) -> list[str]:
    """The reader's committee on the zip-code benchmark and its photographs, 1,000 strips each."""
    z = r.row("reader/reader")["reading"]
    parts = (("separated", "separated digits"), ("touching", "a touching pair"), (None, "all"))
    head = [""] + [f"{kind}: {label} ({(z[name]['count'] if part is None else z[name]['count'][part])['zips']})"
                   for name, kind in (("plain", "strips"), ("photo", "photographs")) for part, label in parts]
    rows = []
    for label, mode, key in (("whole zip right, no count given", "count", "zip_accuracy"),
                             ("cut into a wrong number of digits", "count", "miscounted_zips"),
                             ("shown with no '?'", "count", "accepted_zips"),
                             ("right among those", "count", "accepted_zip_accuracy"),
                             ("whole zip right, `--digits 5`", "digits5", "zip_accuracy")):
        rows.append([label] + [_pct((z[name][mode] if part is None else z[name][mode][part])[key])
                               for name in ("plain", "photo") for part, _ in parts])
    return _table(head, rows)


def reader_digits(r: Results) -> list[str]:
    """The reader's committee on single digits at its threshold: its own test digits and other writers'."""
    z = r.row("reader/reader")["reading"]
    return _table(["", "USPS test digits (2,007: the threshold is set on them)",
                   "MNIST test digits (10,000: other writers)"],
                  [[label, _pct(z["usps"][key]), _pct(z["mnist"][key])]
                   for label, key in (("error", "error"), ("rejected at the threshold", "rejected"),
                                      ("error of the accepted", "accepted_error"))])


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min" if seconds < 7200 else \
        f"{seconds / 3600:.1f} h"


SCALING_WORKERS = (1, 2, 8, 32, 64, 256)
GRID_RUNS, GRID_ROW = 10_000, "paper/usps-hessian-pass"   # the paper's configuration, lane kernels


def cluster_scaling(r: Results) -> list[str]:
    """`study all` and a 10,000-run grid on W cores, simulated from the rows' wall times (scaling.py)."""
    rows = scaling.models([r.row(f"{study.name}/{row.name}") for study in STUDIES.values() for row in study.rows])
    longest = max(rows, key=lambda m: m.seconds(10 ** 9))
    big = scaling.grid(GRID_RUNS, next(m for m in rows if m.name == GRID_ROW).unit_pass_s)
    return _table(["workers (cores)", "rows side by side", f"`study all` ({len(rows)} rows)",
                   f"no scheduler does better (the longest row, {longest.name}, alone takes "
                   f"{_duration(longest.seconds(10 ** 9))})",
                   f"a grid of {GRID_RUNS:,} runs of the paper's configuration (one command)"],
                  [[str(w), str(scaling.rows_for(w)), _duration(scaling.study(rows, w)),
                    _duration(scaling.bound(rows, w)), _duration(big.seconds(w))] for w in SCALING_WORKERS])


TABLES = {
    "readme-results": readme_results,
    "paper-usps-output": paper_output("paper/usps"),
    "repro-log": repro_log,
    "paper-mnist-output": paper_output("paper/mnist"),
    "validation": validation,
    "ablation-usps": ablation("usps"),
    "ablation-mnist": ablation("mnist"),
    "modern-usps": ladder("usps"),
    "modern-mnist": ladder("mnist"),
    "modern-published-draw": published_draw,
    "rejection": rejection,
    "reading-mnist": reading_mnist,
    "zipcodes": zipcodes,
    "reader-zipcodes": reader_zipcodes,
    "reader-digits": reader_digits,
    "cluster-scaling": cluster_scaling,
}


# --- the pictures --------------------------------------------------------------------------------

def pictures(r: Results, where: Location = Location()) -> dict[str, bytes]:
    """docs/img/*.png from the results: the paper configuration's curves, and the misclassified digits
    and kernels of its first run, from the weights the study kept."""
    from ..views import plots   # matplotlib: only when the pictures are drawn
    key = "paper/usps"
    row, group = r.row(key), r.group(key)
    files = {"paper-usps-curves.png": plots.curves_picture(
        group["curves"], group["final"]["test_error"]["n"], row["net"]["loss"] == "ce",
        bool(row["data"]["held_out"]), row["data"]["source"])["curves.png"]}
    kept = sorted(p.parent for p in (r.root / key).glob("*/weights.safetensors"))
    if not kept:
        raise LecunError(f"{r.root / key} keeps no weights: run `lecun1989 study paper --out {r.root}` again")
    net, ds = load_run(kept[0], where)
    files["paper-usps-misclassified.png"] = plots.misclassified(net, ds)["misclassified.png"]
    files["paper-usps-features.png"] = plots.features(net, ds)["features.png"]
    return files


# --- writing and checking ------------------------------------------------------------------------

@dataclass
class Difference:
    doc: str
    where: str
    ours: str
    theirs: str
    line_no: int = 0

    def line(self) -> str:
        return f"{self.doc}: {self.where}: the docs say {self.ours!r}, the results say {self.theirs!r}"


def _row_label(line: str) -> str:
    cells = [c.strip() for c in line.strip().strip("|").split("|")]
    return cells[0] if cells else line


def _check_markers(text: str, doc: str) -> None:
    """Markers come in pairs, opening then end, never nested: an opening without its end (or an end
    without its opening) would leave what lies between unchecked, without a word."""
    forms = {"table": "`<!-- table NAME -->` and `<!-- /table -->`, each on a line of its own",
             "fig": "`<!-- fig SPEC -->FIGURE<!-- /fig -->`"}
    for kind, pattern in (("table", TABLE), ("fig", FIG)):
        opened = None

        def fail(m: re.Match, what: str):
            line = text.count("\n", 0, m.start()) + 1
            raise LecunError(f"{doc}: line {line}: {m.group()} {what}; write the markers as {forms[kind]}")
        for m in re.finditer(rf"<!-- {kind} [^>]*-->|<!-- /{kind} -->", text):
            is_end = m.group().startswith("<!-- /")
            if is_end and opened is None:
                fail(m, "ends a pair never opened")
            if not is_end and opened is not None:
                fail(opened, "has no end before the next opening")
            opened = None if is_end else m
        if opened is not None:
            fail(opened, "has no end")
        if kind == "table" and len(pattern.findall(text)) != text.count("<!-- /table -->"):
            fail(next(m for m in re.finditer(r"<!-- table [^>]*-->", text)
                      if not any(t.start() == m.start() for t in pattern.finditer(text))), "is not on a line of its own")


def _fill(text: str, doc: str, results: Results, tables: dict, found: list[Difference]) -> str:
    """The text with its tables and figures written anew; what differed is added to `found`, in the
    order of the text."""
    _check_markers(text, doc)
    here: list[Difference] = []

    def table(m: re.Match) -> str:
        name = m["name"]
        if name not in tables:
            raise LecunError(f"{doc}: no table named {name!r} (the tables are: {', '.join(tables)})")
        new = tables[name](results)
        old = m["body"].splitlines()
        if old != new:
            at = next((i for i, (a, b) in enumerate(zip(old, new)) if a != b), min(len(old), len(new)))
            ours = old[at] if at < len(old) else "(nothing)"
            theirs = new[at] if at < len(new) else "(nothing)"
            line = figured.count("\n", 0, m.start("body")) + 1 + at
            here.append(Difference(doc, f"line {line}, table {name}, row "
                                        f"{_row_label(theirs if at < len(new) else ours)!r}", ours, theirs, line))
        return f"<!-- table {name} -->\n" + "".join(line + "\n" for line in new) + "<!-- /table -->"

    def fig(m: re.Match) -> str:
        new = fig_text(results, m["spec"])
        if m["body"] != new:
            line = text.count("\n", 0, m.start()) + 1
            here.append(Difference(doc, f"line {line}, figure {m['spec'].strip()}", m["body"], new, line))
        return f"<!-- fig {m['spec']} -->{new}<!-- /fig -->"

    figured = FIG.sub(fig, text)   # figures first: their line numbers are the text's
    out = TABLE.sub(table, figured)
    found += sorted(here, key=lambda d: d.line_no)
    return out


def docs(root: Path, results: Path | None = None, check: bool = False, where: Location = Location(),
         tables: dict | None = None, files: tuple[str, ...] | None = None,
         with_pictures: bool = True) -> list[Difference]:
    """Fill (or with check, compare) every marked table and figure of `files` under `root` from
    `results` (default ROOT/results); returns the differences found. Writing also redraws docs/img."""
    root, tables, files = Path(root), tables or TABLES, files or DOCS
    res = Results(results if results is not None else root / "results")
    missing = [f for f in files if not (root / f).is_file()]
    if missing:
        raise LecunError(f"{root / missing[0]} does not exist; run `lecun1989 docs` in a clone of the repository, "
                         f"or give --root")
    found: list[Difference] = []
    new_texts = {}
    for name in files:
        text = (root / name).read_text(encoding="utf-8")
        new_texts[name] = (_fill(text, name, res, tables, found), text)
    if check:
        return found
    images = pictures(res, where) if with_pictures else {}
    for name, (new, old) in new_texts.items():
        if new != old:
            write_text(root / name, new)
    commit({root / "docs" / "img" / name: blob for name, blob in images.items()})
    return found
