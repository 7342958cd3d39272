"""Sweeps, pictures and the HTML report, on small real runs."""

import csv
import json
import re

import pytest

from lecun1989.cli import main
from lecun1989.errors import LecunError
from lecun1989.recipes import REPRO
from lecun1989.store.rundir import read_metrics
from lecun1989.sweep import log_grid, sweep
from lecun1989.train import Recipe, train

pytestmark = pytest.mark.data   # every test here reads the raw data


@pytest.fixture(scope="module")
def swept(usps, tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep") / "s"
    base = Recipe(passes=2, net=REPRO.net)
    result = sweep(base, "repro", (0.003, 0.03), None, (0, 1), usps.subset(300, 120), 100, out, quiet=True,
                   echo=lambda s: None)
    return out, result


def test_sweep_selects_on_validation_and_reports_test_only_for_the_choice(swept):
    out, result = swept
    assert len(result["points"]) == 2
    best = min(result["points"], key=lambda p: (p["val_error"]["mean"], p["val_loss"]["mean"]))
    assert result["selected"]["lr"] == best["lr"]
    val_run = json.loads((out / "val" / "all" / f"lr{best['lr']:g}-seed0" / "config.json").read_text())
    assert val_run["data"]["held_out"] == 100 and val_run["data"]["n_train"] == 200
    final_runs = sorted(p for p in (out / "final").iterdir() if p.is_dir())
    assert [p.name for p in final_runs] == [f"lr{best['lr']:g}-seed0", f"lr{best['lr']:g}-seed1"]
    finals = [read_metrics(p)[-1] for p in final_runs]
    assert result["final"]["test_misses"]["mean"] == sum(f["test_misses"] for f in finals) / 2
    rows = list(csv.DictReader((out / "sweep.csv").open()))
    assert len(rows) == (4 + 2) * 2 and {r["phase"] for r in rows} == {"val", "final"}
    assert json.loads((out / "sweep.json").read_text())["selected"] == result["selected"]


def test_sweep_rerun_skips_finished_points_and_refuses_other_settings(swept, usps):
    out, result = swept
    stamp = (out / "val" / "all" / "lr0.003-seed0" / "metrics.jsonl").stat().st_mtime_ns
    said = []
    again = sweep(Recipe(passes=2, net=REPRO.net), "repro", (0.003, 0.03), None, (0, 1), usps.subset(300, 120), 100,
                  out, quiet=True, echo=said.append)
    assert sum("skipped" in s for s in said) == 2 and again["final"] == result["final"]
    assert (out / "val" / "all" / "lr0.003-seed0" / "metrics.jsonl").stat().st_mtime_ns == stamp
    with pytest.raises(LecunError, match="other settings"):
        sweep(Recipe(passes=3), "repro", (0.003,), None, (0,), usps.subset(300, 120), 100, out, quiet=True,
              echo=lambda s: None)


def test_log_grid():
    assert log_grid("1e-3:1e-1:3") == (0.001, 0.01, 0.1)
    assert len(log_grid("0.003:0.3:10")) == 10
    with pytest.raises(LecunError, match="bad grid"):
        log_grid("1:0.1:3")


def test_plot_draws_every_picture_of_a_sweep(swept, capsys):
    out, _ = swept
    assert main(["plot", str(out)]) == 0
    for name in ("sweep", "curves", "misclassified", "features"):
        for ext in ("png", "svg"):
            assert (out / "plots" / f"{name}.{ext}").stat().st_size > 5000, (name, ext)
    assert (out / "plots" / "curves.png").read_bytes()[:4] == b"\x89PNG"


def test_report_is_self_contained_and_its_figures_equal_the_metrics(usps, tmp_path):
    run = tmp_path / "run"
    train(Recipe(passes=2, seeds=(4,)), usps.subset(150, 80), run, quiet=True, echo=lambda s: None)
    page = tmp_path / "r.html"
    assert main(["report", str(run), "-o", str(page)]) == 0
    text = page.read_text()
    last = read_metrics(run)[-1]
    assert f"{last['train_error'] * 100:.2f} ± 0.00" in text and f"{last['test_error'] * 100:.2f} ± 0.00" in text
    assert f"{last['test_loss']:.2e} ± 0.00e+00" in text and ">102<" in text   # the paper's test misses
    # curves, misclassified digits, features and the rejection curve
    assert len(re.findall(r'src="data:image/png;base64,', text)) == 4
    assert "http" not in text.replace("http-equiv", "")


def test_plot_of_a_missing_folder_is_one_line(tmp_path, capsys):
    assert main(["plot", str(tmp_path / "nothing")]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_comparison_with_the_paper_counts_misses_and_shows_both_mse_readings():
    from lecun1989.results import comparison_lines, stats
    final = {"train_error": stats([11 / 7291, 9 / 7291]), "train_misses": stats([11, 9]),
             "test_error": stats([108 / 2007, 110 / 2007]), "test_misses": stats([108, 110]),
             "train_loss": stats([5.0e-3, 5.2e-3]), "test_loss": stats([3.8e-2, 3.9e-2])}
    lines = comparison_lines(final)
    verdict = {line.split("  ")[0].strip(): "within 1 std" in line for line in lines[1:]}
    assert verdict == {"train error": True, "test error": False, "train MSE": False, "test MSE": False,
                       "train MSE / 2": True, "test MSE / 2": False}
    assert "misses 10.0 ± 1.4" in lines[1]
