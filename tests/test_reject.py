"""Rejection: the confidence functions on small cases worked by hand, and `lecun1989 reject` (and the
rejection line of `paper` and the report) on tiny runs trained here."""

import json
import math
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from lecun1989.reading import confidence
from lecun1989.reading import rejection as reject
from lecun1989.cli import main
from lecun1989.results import comparison_lines
from lecun1989.store.rundir import read_json

S0, S1 = "lr0.03-seed0", "lr0.03-seed1"
WRITTEN = {"reject.png", "reject.svg", "reject.json", ".lecun1989"}
LAST = re.compile(r"reject at (\S+) error: (\d+\.\d)% ± (\d+\.\d)% of test digits \((\d+) runs?\)")


# --- the confidence functions -----------------------------------------------------------------------

def test_margin_is_the_largest_output_minus_the_second_and_zero_for_a_tie():
    out = np.array([[0.9, -1.0, 0.1, -0.5], [0.3, 0.3, -1.0, -1.0], [-0.2, -0.9, -0.8, -0.1]])
    assert np.allclose(confidence.margin(out), [0.8, 0.0, 0.1])


def test_ties_in_the_margin_are_rejected_together():
    # sorted: 0.1 (wrong), 0.1 (right), 0.5 (right), 0.9 (right); rejecting 1 alone is not a threshold
    margins, correct = np.array([0.5, 0.1, 0.9, 0.1]), np.array([True, False, True, True])
    rejected, err, thresholds = confidence.rejection_curve(margins, correct)
    assert np.allclose(rejected, [0, 0.5, 0.75]) and np.allclose(err, [0.25, 0, 0])
    assert np.allclose(thresholds, [0.1, 0.5, 0.9])
    assert confidence.rejection_at(margins, correct, 0.0) == (0.5, 0.5)
    assert confidence.rejection_at(margins, correct, 0.25) == (0.0, 0.1)


def test_all_correct_rejects_nothing():
    margins = np.array([0.3, 0.2, 0.7])
    assert confidence.rejection_at(margins, np.ones(3, bool), 0.0) == (0.0, 0.2)


def test_a_target_never_reached_short_of_rejecting_every_digit():
    # the surest digit is wrong: whatever is accepted errs
    margins, correct = np.array([0.1, 0.2, 0.9]), np.array([True, True, False])
    share, threshold = confidence.rejection_at(margins, correct, 0.01)
    assert share == 1.0 and threshold == math.inf
    # and all margins tied: no threshold but accepting everything
    assert confidence.rejection_at(np.zeros(4), np.array([True, False, True, True]), 0.1) == (1.0, math.inf)


def test_the_smallest_rejection_is_taken_where_the_error_goes_down_and_up_again():
    # rejecting 1 gives 1/3, rejecting 2 gives 1/2: the error is not monotone in the share rejected
    margins, correct = np.array([0.1, 0.2, 0.3, 0.4]), np.array([False, True, True, False])
    rejected, err, _ = confidence.rejection_curve(margins, correct)
    assert np.allclose(err, [0.5, 1 / 3, 0.5, 1.0])
    assert confidence.rejection_at(margins, correct, 0.4) == (0.25, 0.2)


def test_the_criteria_measure_the_same_outputs():
    out = np.array([[2.0, 1.0, 0.0], [0.5, 0.4, -3.0]])
    s = reject.scores(out)
    assert np.allclose(s["margin"], [1.0, 0.1]) and np.allclose(s["top"], [2.0, 0.5])
    e = np.exp(out)
    assert np.allclose(s["softmax"], e.max(1) / e.sum(1))


@pytest.mark.parametrize("error, shown", [(0.01, "1%"), (0.02, "2%"), (0.005, "0.5%"), (0.07, "7%"), (0, "0%")])
def test_the_target_is_shown_as_given(error, shown):
    assert reject.percent(error) == shown


# --- the command on tiny real runs ------------------------------------------------------------------

def strict_json(path: Path):
    def refuse(name):
        raise ValueError(f"{name} in {path}")
    return json.loads(path.read_text(encoding="utf-8"), parse_constant=refuse)


@pytest.fixture(scope="module")
def trained(usps, tmp_path_factory):
    """Two tiny runs of the reproduction's recipe, as a study folder."""
    out = tmp_path_factory.mktemp("made") / "study"
    assert main(["repro", "--train-size", "300", "--test-size", "100", "--passes", "2", "--seeds", "0-1",
                 "--out", str(out), "--quiet"]) == 0
    return out


@pytest.fixture
def root(trained, tmp_path):
    shutil.copytree(trained, tmp_path / "study")
    return tmp_path


def files(root: Path) -> dict:
    return {str(p.relative_to(root)): p.read_bytes() if p.is_file() else "folder" for p in root.rglob("*")}


def test_reject_of_a_study_writes_its_figure_and_ends_with_the_line(root, capsys):
    study = root / "study"
    assert main(["reject", str(study)]) == 0
    out = capsys.readouterr().out.splitlines()
    m = LAST.fullmatch(out[-1])
    assert m and m.group(1) == "1%" and m.group(4) == "2", out[-1]
    assert out[-1].endswith("(2 runs)")
    assert {p.name for p in (study / "reject").iterdir()} == WRITTEN
    assert (study / "reject" / "reject.png").read_bytes()[:4] == b"\x89PNG"
    assert b"<svg" in (study / "reject" / "reject.svg").read_bytes()[:2000]
    result = strict_json(study / "reject" / "reject.json")
    s = result["rejection"]["margin"]
    assert out[-1] == f"reject at 1% error: {s['mean'] * 100:.1f}% ± {s['std'] * 100:.1f}% of test digits (2 runs)"
    assert result["error"] == 0.01 and result["split"] == "test" and result["diverged"] == []
    assert set(result["rejection"]) == {"margin", "top", "softmax"} and s["n"] == 2
    assert [Path(r["dir"]).name for r in result["runs"]] == [S0, S1]
    assert any(line.startswith(("largest output alone: ", "largest softmax probability: ")) for line in out)
    # the per-run lines name the runs
    assert [line.split(":")[0] for line in out[:2]] == [str(study / S0), str(study / S1)]


def test_the_figures_are_those_of_the_runs_outputs(root, capsys):
    """Recomputed here from the weights file alone, through the module, by the confidence functions."""
    import torch
    from lecun1989 import data
    from lecun1989.model import Net1989, NetConfig
    from lecun1989.store.rundir import load_weights
    assert main(["reject", str(root / "study")]) == 0
    result = strict_json(root / "study" / "reject" / "reject.json")
    ds = data.load("usps").subset(300, 100)
    for run in result["runs"]:
        d = Path(run["dir"])
        config = read_json(d / "config.json")
        net = Net1989(NetConfig(**config["net"])).double()
        net.set_params({k: v.astype(np.float64) for k, v in load_weights(d / "weights.safetensors")[0].items()})
        with torch.no_grad():
            out = net(torch.from_numpy(ds.test.images).double()).numpy()
        correct = out.argmax(1) == ds.test.labels
        assert run["misses"] == int((~correct).sum()) == read_json(d / "summary.json")["test_misses"]
        share, threshold = confidence.rejection_at(confidence.margin(out), correct, 0.01)
        assert run["rejection"]["margin"]["share"] == pytest.approx(share)
        assert run["rejection"]["margin"]["threshold"] == (pytest.approx(threshold) if math.isfinite(threshold)
                                                            else None)
        assert run["rejection"]["top"]["share"] == pytest.approx(confidence.rejection_at(out.max(1), correct)[0])
    shares = [r["rejection"]["margin"]["share"] for r in result["runs"]]
    assert result["rejection"]["margin"]["mean"] == pytest.approx(np.mean(shares))
    assert result["rejection"]["margin"]["std"] == pytest.approx(np.std(shares, ddof=1))


def test_another_error_is_shown_as_given_and_one_run_reads_zero_spread(root, capsys):
    assert main(["reject", str(root / "study"), "--error", "0.02", "--out", str(root / "a")]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("reject at 2% error: ")
    assert main(["reject", str(root / "study" / S0), "--error", "0.005"]) == 0
    last = capsys.readouterr().out.splitlines()[-1]
    m = LAST.fullmatch(last)
    assert m and m.group(1) == "0.5%" and m.group(3) == "0.0" and last.endswith("(1 run)"), last
    assert {p.name for p in (root / "study" / S0 / "reject").iterdir()} == WRITTEN


def test_several_folders_are_pooled_once_each_into_out(root, capsys):
    study = root / "study"
    assert main(["reject", str(study / S0), str(study / S1), str(study), "--out", str(root / "both")]) == 0
    assert capsys.readouterr().out.splitlines()[-1].endswith("(2 runs)")
    assert {p.name for p in (root / "both").iterdir()} == WRITTEN


def test_a_sweep_folder_means_its_retrained_final_runs(root, capsys):
    sweep = root / "sweep"
    shutil.copytree(root / "study", sweep / "final")
    shutil.copytree(root / "study" / S0, sweep / "lr0.03" / S0)   # a grid point's run: not measured
    (sweep / "sweep.json").write_text("{}")
    assert main(["reject", str(sweep)]) == 0
    assert capsys.readouterr().out.splitlines()[-1].endswith("(2 runs)")
    result = strict_json(sweep / "reject" / "reject.json")
    assert [Path(r["dir"]).parent for r in result["runs"]] == [sweep / "final"] * 2


def test_diverged_runs_are_counted_apart(root, capsys):
    path = root / "study" / S0 / "summary.json"
    path.write_text(json.dumps({"seed": 0, "lr": 0.03, "passes": 2, "diverged": True, "diverged_at_pass": 2,
                                "reason": "loss is nan"}))
    assert main(["reject", str(root / "study")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-2] == f"1 diverged run left out: {S0} (pass 2)"
    assert out[-1].endswith("(1 run)")
    result = strict_json(root / "study" / "reject" / "reject.json")
    assert [Path(d["dir"]).name for d in result["diverged"]] == [S0]
    assert [Path(r["dir"]).name for r in result["runs"]] == [S1]


def test_reject_replaces_its_own_figure_and_nothing_else(root, capsys):
    study = root / "study"
    assert main(["reject", str(study)]) == 0
    assert main(["reject", str(study), "--error", "0.03"]) == 0   # its own folder: replaced
    assert strict_json(study / "reject" / "reject.json")["error"] == 0.03
    mine = root / "mine"
    mine.mkdir()
    (mine / "reject.png").write_bytes(b"my own picture")
    (study / "reject" / ".lecun1989").unlink()
    (study / "reject" / "notes.txt").write_text("mine")
    capsys.readouterr()
    before = files(root)
    assert main(["reject", str(study), "--out", str(mine)]) == 2
    assert main(["reject", str(study)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and all("left as it is" in line for line in err), err
    assert files(root) == before


def unfinished(r):
    (r / "study" / S1 / "summary.json").unlink()


def other_digits(r):
    path = r / "study" / S1 / "config.json"
    config = json.loads(path.read_text())
    config["data"]["n_test"] = 99
    path.write_text(json.dumps(config))


def all_diverged(r):
    for s in (S0, S1):
        (r / "study" / s / "summary.json").write_text(json.dumps({"diverged": True, "diverged_at_pass": 1}))


# id: (what is done to the copy, the arguments after `reject`; {r} is the copy's folder)
FAULTS = {
    "no-such-folder": (None, "{r}/nothing"),
    "a-file": (None, "{r}/study/{s0}/log.txt"),
    "no-runs": (lambda r: (r / "empty").mkdir(), "{r}/empty --out {r}/out"),
    "unfinished-run": (unfinished, "{r}/study"),
    "other-digits": (other_digits, "{r}/study"),
    "all-diverged": (all_diverged, "{r}/study"),
    "summary-not-json": (lambda r: (r / "study" / S0 / "summary.json").write_text("{"), "{r}/study"),
    "weights-missing": (lambda r: (r / "study" / S0 / "weights.safetensors").unlink(), "{r}/study"),
    "error-one": (None, "{r}/study --error 1"),
    "error-negative": (None, "{r}/study --error -0.01"),
    "error-nan": (None, "{r}/study --error nan"),
    "error-words": (None, "{r}/study --error one"),
    "several-without-out": (None, "{r}/study/{s0} {r}/study/{s1}"),
    "out-is-a-file": (lambda r: (r / "out").write_text("x"), "{r}/study --out {r}/out"),
    "out-is-a-run": (None, "{r}/study --out {r}/study/{s0}"),
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_every_fault_is_one_line_and_leaves_the_files_as_they_were(fault, root, capsys):
    damage, args = FAULTS[fault]
    if damage:
        damage(root)
    argv = ["reject", *args.format(r=root, s0=S0, s1=S1).split()]
    before = files(root)
    try:
        status = main(argv)
    except SystemExit as e:   # argparse's refusals: one line, status 2, as well
        status = e.code
    assert status == 2
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and captured.err.startswith("lecun1989 reject: error: "), captured.err
    assert "Traceback" not in captured.err and captured.out == ""
    assert files(root) == before


# --- in `paper`'s table and the report -------------------------------------------------------------

def test_paper_ends_its_table_with_the_rejection_line(usps, tmp_path, capsys):
    out = tmp_path / "p"
    assert main(["paper", "--train-size", "300", "--test-size", "100", "--passes", "2", "--seeds", "0-1",
                 "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out.splitlines()
    table = comparison_lines(read_json(out / "study.json")["final"])
    at = printed.index(table[0])
    assert printed[at:at + len(table)] == table   # the table as before, the rejection line below it
    line = printed[at + len(table)]
    s = reject.measure([out]).stats()
    assert line.startswith(f"reject for 1%      ~9% (NIPS)   {s['mean'] * 100:.1f}% ± {s['std'] * 100:.1f} "
                           f"({s['min'] * 100:.1f} .. {s['max'] * 100:.1f})   not compared   "), line
    assert "other zip-code digits" in line
    assert not (out / "reject").exists()   # `paper` prints it; it writes no figure of it


def test_the_report_shows_the_rejection_of_a_study(root):
    assert main(["report", str(root / "study"), "-o", str(root / "r.html")]) == 0
    text = re.sub(r"base64,[^\"]*", "", (root / "r.html").read_text(encoding="utf-8"))
    s = reject.measure([root / "study"]).stats()
    assert "<h3>Rejection for 1% error</h3>" in text and '<img alt="reject"' in text
    assert f"{s['mean'] * 100:.1f} ± {s['std'] * 100:.1f} ({s['min'] * 100:.1f} .. {s['max'] * 100:.1f}) %" in text
    unfinished(root)
    assert main(["report", str(root / "study"), "-o", str(root / "r.html")]) == 0   # the rest of the page stands
    assert "Not measured: " in (root / "r.html").read_text(encoding="utf-8")
