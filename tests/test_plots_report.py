"""`plot` and `report` on damaged, interrupted and diverged folders: one line for every fault, never a
half-written set of pictures, and figures over the passes every run completed."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lecun1989.cli import main
from lecun1989.results import stats
from lecun1989.store.rundir import load_weights, read_metrics, read_runs, tensors_blob
from lecun1989.train import Recipe, train

pytestmark = pytest.mark.data   # every test here reads the raw data

PICTURES = [f"{name}.{ext}" for name in ("curves", "misclassified", "features") for ext in ("png", "svg")]
S0, S1 = Path("study/lr0.03-seed0"), Path("study/lr0.03-seed1")
FIGURES = {"mean": 0.4, "std": 0.01, "min": 0.39, "max": 0.41}
SWEEP = {"recipe": "repro", "data": "usps", "seeds": [0, 1], "validation": 50,
         "points": [{"mu": None, "lr": 0.03, "diverged": 0, "val_error": FIGURES, "val_loss": FIGURES}],
         "selected": {"lr": 0.03, "mu": None}, "final": {"test_error": FIGURES}}


@pytest.fixture(scope="module")
def study(usps, tmp_path_factory):
    out = tmp_path_factory.mktemp("made") / "study"
    train(Recipe(passes=2, seeds=(0, 1), engine="torch"), usps.subset(200, 100), out, quiet=True,
          echo=lambda s: None)
    return out


@pytest.fixture
def root(study, tmp_path):
    """A fresh copy of the study, holding the pictures of an earlier `plot` in study/plots."""
    shutil.copytree(study, tmp_path / "study")
    (tmp_path / "study" / "plots").mkdir()
    for name in PICTURES:
        (tmp_path / "study" / "plots" / name).write_bytes(b"earlier " + name.encode())
    return tmp_path


def files(root: Path) -> dict:
    return {str(p.relative_to(root)): p.read_bytes() if p.is_file() else "folder" for p in root.rglob("*")}


def append(path: Path, text: str) -> None:
    path.write_text(path.read_text() + text)


def edit_json(path: Path, change) -> None:
    obj = json.loads(path.read_text())
    change(obj)
    path.write_text(json.dumps(obj))


def edit_metrics(path: Path, change) -> None:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    path.write_text("".join(json.dumps(r) + "\n" for r in change(rows)))


def diverge(path: Path) -> None:
    edit_metrics(path, lambda rows: rows[:-1] + [{"pass": rows[-1]["pass"], "diverged": True, "reason": "loss is nan"}])


def make_sweep(root: Path, sweep_json: str) -> None:
    shutil.copytree(root / "study", root / "sweep" / "final", ignore=shutil.ignore_patterns("plots"))
    (root / "sweep" / "sweep.json").write_text(sweep_json)


def reshaped_weights(path: Path) -> None:
    from safetensors.numpy import save
    from lecun1989.store.rundir import load_weights
    params, metadata = load_weights(path)
    params["H1w"] = params["H1w"][:, :, :3, :3].copy()
    metadata.pop("sha256", None)
    path.write_bytes(save(params, metadata=metadata))


def sweep_without_val_loss() -> str:
    point = {k: v for k, v in SWEEP["points"][0].items() if k != "val_loss"}
    return json.dumps({**SWEEP, "points": [point]})


# id: (what is done to the copy, the command line; {r} is the copy's folder)
FAULTS = {
    "empty-metrics": (lambda r: (r / S1 / "metrics.jsonl").write_text(""), "plot {r}/study"),
    "metrics-not-json": (lambda r: append(r / S1 / "metrics.jsonl", "{oops\n"),
                         "report {r}/study -o {r}/r.html"),
    "metrics-NaN": (lambda r: (r / S1 / "metrics.jsonl").write_text('{"pass": 1, "train_error": NaN}\n'),
                    "plot {r}/study"),
    "metrics-lacks-a-figure": (lambda r: edit_metrics(r / S0 / "metrics.jsonl", lambda rows: rows[:-1] + [
        {k: v for k, v in rows[-1].items() if k != "test_error"}]), "report {r}/study -o {r}/r.html"),
    "config-without-net": (lambda r: edit_json(r / S1 / "config.json", lambda c: c.pop("net")), "plot {r}/study"),
    "config-not-json": (lambda r: (r / S0 / "config.json").write_text("{"), "report {r}/study -o {r}/r.html"),
    "config-data-lacks-n_test": (lambda r: edit_json(r / S0 / "config.json", lambda c: c["data"].pop("n_test")),
                                 "plot {r}/study"),
    "config-net-unknown-key": (lambda r: edit_json(r / S0 / "config.json", lambda c: c["net"].update(width=3)),
                               "report {r}/study -o {r}/r.html"),
    "config-net-bad-value": (lambda r: edit_json(r / S0 / "config.json", lambda c: c["net"].update(table="x")),
                             "plot {r}/study"),
    "data-differs": (lambda r: edit_json(r / S0 / "config.json", lambda c: c["data"].update(sha256="0" * 64)),
                     "plot {r}/study"),
    "weights-missing": (lambda r: (r / S0 / "weights.safetensors").unlink(), "plot {r}/study"),
    "weights-truncated": (lambda r: (r / S0 / "weights.safetensors").write_bytes(
        (r / S0 / "weights.safetensors").read_bytes()[:3000]), "report {r}/study -o {r}/r.html"),
    "weights-other-shape": (lambda r: reshaped_weights(r / S0 / "weights.safetensors"), "plot {r}/study"),
    "all-runs-diverged": (lambda r: [diverge(r / s / "metrics.jsonl") for s in (S0, S1)], "plot {r}/study"),
    "not-a-run-folder": (lambda r: (r / "empty").mkdir(), "plot {r}/empty"),
    "a-file-not-a-folder": (lambda r: None, "report {r}/study/lr0.03-seed0/log.txt -o {r}/r.html"),
    "missing-folder": (lambda r: None, "plot {r}/nothing"),
    "sweep-json-damaged": (lambda r: make_sweep(r, '{"points": ['), "plot {r}/sweep"),
    "sweep-selected-null": (lambda r: make_sweep(r, json.dumps({**SWEEP, "selected": None})),
                                  "report {r}/sweep -o {r}/r.html"),
    "sweep-point-lacks-val_loss": (lambda r: make_sweep(r, sweep_without_val_loss()), "plot {r}/sweep"),
    "out-is-a-file": (lambda r: (r / "out").write_text("x"), "plot {r}/study --out {r}/out"),
    "out-under-a-file": (lambda r: (r / "out").write_text("x"), "plot {r}/study --out {r}/out/pictures"),
    "two-folders-one-name": (lambda r: shutil.copytree(r / "study", r / "b" / "study"),
                             "plot {r}/study {r}/b/study --out {r}/out"),
    "report-o-a-folder": (lambda r: (r / "out").mkdir(), "report {r}/study -o {r}/out"),
    "report-o-under-a-file": (lambda r: (r / "out").write_text("x"), "report {r}/study -o {r}/out/r.html"),
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_every_fault_is_one_line_and_leaves_the_files_as_they_were(fault, root, capsys):
    damage, command = FAULTS[fault]
    damage(root)
    argv = command.format(r=root).split()
    before = files(root)
    # a file where the output's folder must go is the operating system's refusal: exit 1, as for training
    assert main(argv) == (1 if fault in ("out-is-a-file", "out-under-a-file", "report-o-under-a-file") else 2)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"lecun1989 {argv[0]}: error: "), err
    assert "Traceback" not in err
    assert files(root) == before


def test_plot_writes_inside_the_folder_asked_for(root, capsys):
    """`RUN/..` is the study; its pictures go to OUT/study, never beside OUT."""
    before = files(root)
    assert main(["plot", str(root / S0 / ".."), "--out", str(root / "out")]) == 0
    new = set(files(root)) - set(before)
    assert new == {"out", "out/study", "out/study/.lecun1989"} | {f"out/study/{name}" for name in PICTURES}
    assert main(["plot", str(root / S0 / "..")]) == 0
    assert {p.name for p in (root / "study" / "plots").iterdir()} == {*PICTURES, ".lecun1989"}
    assert (root / "study" / "plots" / "curves.png").read_bytes()[:4] == b"\x89PNG"


def test_plot_and_report_never_replace_files_they_did_not_make(root, tmp_path, capsys):
    mine = tmp_path / "mine"
    (mine / "study").mkdir(parents=True)
    (mine / "study" / "curves.png").write_bytes(b"my own picture")
    (mine / "page.html").write_bytes(b"my own page")
    (mine / "photo.jpg").write_bytes(b"my own photo")
    assert main(["plot", str(root / "study"), "--out", str(mine)]) == 2
    assert main(["report", str(root / "study"), "-o", str(mine / "page.html")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and all("left as it is" in line for line in err)
    assert main(["report", str(root / "study"), "-o", str(mine / "photo.jpg")]) == 2   # a page is never named .jpg
    assert "give a name ending in .html" in capsys.readouterr().err
    assert (mine / "study" / "curves.png").read_bytes() == b"my own picture"
    assert (mine / "photo.jpg").read_bytes() == b"my own photo"
    assert (mine / "page.html").read_bytes() == b"my own page"
    assert main(["report", str(root / "study"), "-o", str(mine / "r.html")]) == 0
    assert main(["report", str(root / "study"), "-o", str(mine / "r.html")]) == 0   # its own report: replaced


def test_the_library_never_touches_pyplot(root):
    code = ("import sys, matplotlib\n"
            "matplotlib.use = None   # calling it would fail\n"
            "from lecun1989.cli import main\n"
            f"assert main(['plot', {str(root / 'study')!r}, '--out', {str(root / 'out')!r}]) == 0\n"
            "assert 'matplotlib.pyplot' not in sys.modules\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert {p.name for p in (root / "out" / "study").iterdir()} == {*PICTURES, ".lecun1989"}


def results_text(page: Path) -> str:
    """The report without its pictures (base64 holds any letters)."""
    return re.sub(r"base64,[^\"]*", "", page.read_bytes().decode("utf-8"))


def test_report_of_an_interrupted_study_uses_the_last_pass_all_runs_completed(root):
    edit_metrics(root / S1 / "metrics.jsonl", lambda rows: rows[:1])
    tensors, meta = load_weights(root / S1 / "weights.safetensors")   # a run left at pass 1 holds its weights
    (root / S1 / "weights.safetensors").write_bytes(tensors_blob(tensors, {**meta, "pass": "1"}))
    assert main(["report", str(root / "study"), "-o", str(root / "r.html")]) == 0
    text = results_text(root / "r.html")
    assert "Results after pass 1, the last pass all 2 runs completed" in text
    first = [read_metrics(root / s)[0] for s in (S0, S1)]
    for key, scale, digits in (("train_error", 100, ".2f"), ("test_misses", 1, ".1f"), ("test_loss", 1, ".2e")):
        s = stats([r[key] * scale for r in first])
        assert f"{s['mean']:{digits}} ± {s['std']:{digits}} ({s['min']:{digits}} .. {s['max']:{digits}})" in text
    runs = read_runs(root / "study")   # what the curves are drawn from
    assert runs.last == 1 and runs.uneven and [len(r) for r in runs.rows] == [1, 1]
    assert main(["plot", str(root / "study")]) == 0


def test_diverged_runs_are_counted_and_left_out(root):
    diverge(root / S0 / "metrics.jsonl")
    edit_json(root / S0 / "summary.json", lambda s: s.update(diverged=True, diverged_at_pass=2, reason="loss is nan"))
    assert main(["report", str(root / "study"), "-o", str(root / "r.html")]) == 0
    text = results_text(root / "r.html")
    assert "1 of 2 runs diverged (at pass 2): left out." in text
    assert "0 (lr 0.03; diverged at pass 2), 1 (lr 0.03)" in text
    assert "Results after pass 2, the last pass the run that did not diverge completed" in text
    assert "ours, 1 run:" in text and "The network of lr0.03-seed1" in text
    last = read_metrics(root / S1)[-1]
    assert f"{last['test_error'] * 100:.2f} ± 0.00 ({last['test_error'] * 100:.2f} .. " in text
    assert "nan" not in text.lower()
    assert "±" in text   # written as UTF-8, as the page declares
    assert main(["plot", str(root / "study")]) == 0
    assert (root / "study" / "plots" / "curves.png").read_bytes()[:4] == b"\x89PNG"


def test_report_of_a_study_whose_runs_all_diverged_still_shows_its_configuration(root):
    for s in (S0, S1):
        diverge(root / s / "metrics.jsonl")
    assert main(["report", str(root / "study"), "-o", str(root / "r.html")]) == 0
    text = results_text(root / "r.html")
    assert "All 2 runs diverged (at passes 2, 2): no results and no pictures." in text
    assert "<h3>Configuration</h3>" in text and "data:image/png" not in text
