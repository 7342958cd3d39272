"""studies/: the studies as data, and the runner (skips finished rows, resumes an interrupted one)."""

import json
import shlex

import pytest

from lecun1989 import cli
from lecun1989.studies import rows as studies
from lecun1989.studies import runner
from lecun1989.cli import main
from lecun1989.errors import LecunError

TINY = studies.Study("tiny", "two seeds, one pass, a few digits", (
    studies.Row("usps", "lecun1989 repro --data usps --train-size 60 --test-size 40 --passes 1 --seeds 0-1",
                measures=("reject",), keep=1),
    studies.Row("usps-lrs", "lecun1989 repro --data usps --train-size 60 --test-size 40 --passes 1 --seeds 0-1 "
                            "--lrs 0.01,0.03"),
))


def run_tiny(tmp_path, lines=None):
    return runner.run([TINY], tmp_path / "results", cli.run_command, tmp_path / "work",
                      echo=(lines.append if lines is not None else lambda line: None))


def test_every_row_is_a_command_the_cli_takes():
    for study in studies.STUDIES.values():
        names = [row.name for row in study.rows]
        assert len(set(names)) == len(names)
        for row in study.rows:
            argv = shlex.split(row.command)
            assert argv[0] == "lecun1989" and "--out" not in argv
            cli.build_parser().parse_args(argv[1:])


def test_a_study_saves_each_row_and_skips_finished_rows(tmp_path, raw_dir):
    lines = []
    assert run_tiny(tmp_path, lines)["ran"] == 2
    row = json.loads((tmp_path / "results/tiny/usps/study.json").read_text(encoding="utf-8"))
    assert row["command"] == TINY.rows[0].command and row["data"]["source"] == "usps"
    assert [r["seed"] for r in row["runs"]] == [0, 1] and row["by_lr"][0]["final"]["test_misses"]["n"] == 2
    assert len(row["by_lr"][0]["curves"]) == 1 and 0 <= row["reject"]["margin"]["stats"]["mean"] <= 1
    kept = sorted(p.relative_to(tmp_path / "results/tiny/usps") for p in (tmp_path / "results/tiny/usps").rglob("*")
                  if p.is_file())
    assert [str(p) for p in kept] == ["lr0.03-seed0/config.json", "lr0.03-seed0/weights.safetensors", "study.json"]
    lrs = json.loads((tmp_path / "results/tiny/usps-lrs/study.json").read_text(encoding="utf-8"))["by_lr"]
    assert [g["lr"] for g in lrs] == [0.01, 0.03] and all(g["seeds"] == [0, 1] for g in lrs)
    assert lines[-1].startswith("studies tiny: 2 rows, 2 run now, 0 done already; wall time ")
    again = []
    assert run_tiny(tmp_path, again)["ran"] == 0
    assert "done already" in again[0]


def test_an_interrupted_row_continues_from_its_work_folder(tmp_path, raw_dir):
    """A row whose work folder is there (the command was interrupted) is resumed, not refused."""
    work = tmp_path / "work/tiny/usps"
    assert main(shlex.split(TINY.rows[0].command)[1:] + ["--out", str(work), "--quiet"]) == 0
    lines = []
    run_tiny(tmp_path, lines)
    assert (tmp_path / "results/tiny/usps/study.json").is_file()


def test_a_rows_wall_time_adds_up_over_the_invocations_that_made_it(tmp_path, raw_dir):
    """Measured again (its study.json removed), a row keeps the time its runs took to train and adds
    the new invocation's, rather than recording the few seconds of a resume; a damaged record counts 0."""
    run_tiny(tmp_path)
    result = tmp_path / "results/tiny/usps/study.json"
    first = json.loads(result.read_text(encoding="utf-8"))["wall_s"]
    spent = tmp_path / f"work/tiny/usps{runner.SPENT}"
    spent_s = json.loads(spent.read_text(encoding="utf-8"))
    # study.json rounds to 0.1 s, so a row this small may record 0.0: the record itself is exact
    assert spent_s > 0 and abs(first - spent_s) <= 0.05 + 1e-9
    result.unlink()
    run_tiny(tmp_path)
    again = json.loads(result.read_text(encoding="utf-8"))["wall_s"]
    assert again >= first and json.loads(spent.read_text(encoding="utf-8")) + 0.05 >= again
    spent.write_text("{not json", encoding="utf-8")
    result.unlink()
    run_tiny(tmp_path)
    assert json.loads(result.read_text(encoding="utf-8"))["wall_s"] >= 0   # a damaged record counts 0, not an error
    assert json.loads(spent.read_text(encoding="utf-8")) > 0                     # written again, whole


def test_an_unknown_study_is_one_line(capsys):
    assert main(["study", "nonesuch"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no study named 'nonesuch'" in err and "ablation" in err
    with pytest.raises(LecunError):
        studies.select(["paper", "x"])


def test_an_interrupted_study_is_one_line_and_the_same_command_continues(tmp_path, raw_dir, capsys, monkeypatch):
    monkeypatch.setattr(studies, "STUDIES", {"tiny": TINY})
    real = runner.collect
    calls = []

    def interrupt_second(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(runner, "collect", interrupt_second)
    argv = ["study", "tiny", "--out", str(tmp_path / "results"), "--work", str(tmp_path / "work")]
    assert main(argv) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == (f"lecun1989 study: interrupted; tiny/usps-lrs stopped in {tmp_path / 'work/tiny/usps-lrs'}; "
                       f"the same `lecun1989 study` command continues it, and skips the rows done")
    assert (tmp_path / "results/tiny/usps/study.json").is_file()
    assert not (tmp_path / "results/tiny/usps-lrs").exists()
    monkeypatch.setattr(runner, "collect", real)
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "[1/2] tiny/usps: done already" in out and "2 rows, 1 run now, 1 done already" in out


def test_a_sweep_row_keeps_its_grid_and_its_retrained_runs(tmp_path, raw_dir):
    study = studies.Study("tiny-sweep", "a sweep", (studies.Row(
        "repro", "lecun1989 sweep --recipe repro --lrs 0.01,0.03 --seeds 0-1 --passes 1 --validation 500"),))
    runner.run([study], tmp_path / "results", cli.run_command, tmp_path / "work", echo=lambda line: None)
    row = json.loads((tmp_path / "results/tiny-sweep/repro/study.json").read_text(encoding="utf-8"))
    sweep = json.loads((tmp_path / "work/tiny-sweep/repro/sweep.json").read_text(encoding="utf-8"))
    assert row["sweep"]["selected"] == sweep["selected"] and len(row["sweep"]["points"]) == 2
    assert [g["lr"] for g in row["by_lr"]] == [sweep["selected"]["lr"]]
    assert row["by_lr"][0]["final"]["test_misses"] == sweep["final"]["test_misses"]
    assert row["data"]["held_out"] == 0 and row["data"]["n_test"] == 2007


@pytest.mark.parametrize("argv, needle", [
    (["--out", ""], "--out is empty"),
    (["--work", ""], "--work is empty"),
    (["--out", "afile"], "--out afile: afile is a file, not a folder"),
    (["--out", "afile/results"], "--out afile/results: afile is a file, not a folder"),
    (["--work", "afile/work"], "--work afile/work: afile is a file, not a folder"),
    (["--out", "mine"], "mine/paper/usps/study.json is not a study result lecun1989 wrote"),
])
def test_a_study_refuses_its_folders_before_training(tmp_path, monkeypatch, capsys, argv, needle):
    """Not after minutes of training, and never over a file of the user's."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile").write_text("mine")
    (tmp_path / "mine" / "paper" / "usps").mkdir(parents=True)
    (tmp_path / "mine" / "paper" / "usps" / "study.json").write_text('{"mine": 1}')
    assert main(["study", "paper", *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and needle in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "mine"]
    assert (tmp_path / "mine" / "paper" / "usps" / "study.json").read_text() == '{"mine": 1}'


def test_the_cluster_simulation_follows_the_scheduler():
    """studies/scaling.py: a pass takes ceil(units / workers) rounds of one unit's pass; a row for every two
    cores at once."""
    from lecun1989.studies import scaling
    base = {"study": "s", "optimizer": {"name": "sgd"}, "kernels": "single", "passes": 10}
    five = scaling.row_model({**base, "row": "five", "runs": [{}] * 5, "wall_s": 2.0 + 10 * 3 * 1.5})
    assert five.blocks == ((5, 10),) and abs(five.unit_pass_s - 1.5) < 1e-12   # measured on 2 cores: 3 rounds
    assert abs(five.seconds(1) - (2 + 10 * 5 * 1.5)) < 1e-9 and five.seconds(5) == five.seconds(500)
    lanes = scaling.row_model({**base, "row": "lanes", "kernels": "lanes", "runs": [{}] * 10,
                               "wall_s": 2.0 + 10 * 1 * 0.5})
    assert lanes.blocks == ((2, 10),) and abs(lanes.unit_pass_s - 0.5) < 1e-12 and lanes.seconds(1) == 2 + 10 * 2 * 0.5
    sweep = scaling.row_model({**base, "row": "sweep", "runs": [{}] * 5, "sweep": {"points": [{}] * 5},
                               "wall_s": 4.0 + 10 * (2 + 3) * 1.0})
    assert sweep.blocks == ((4, 10), (5, 10)) and abs(sweep.unit_pass_s - 1.0) < 1e-12
    untimed = {**base, "row": "untimed", "runs": [{}] * 5, "wall_s": 1.0}   # trained before its time was kept
    rows = scaling.models([{**base, "row": "five", "runs": [{}] * 5, "wall_s": 47.0}, untimed])
    assert rows[1].unit_pass_s == rows[0].unit_pass_s
    assert scaling.study([five, lanes], 2) == five.seconds(2) + lanes.seconds(2)   # one row at a time
    assert scaling.study([five, lanes], 4) == max(five.seconds(2), lanes.seconds(2))   # two, two cores each
    assert scaling.study([five, lanes, lanes], 4) == max(five.seconds(2), 2 * lanes.seconds(2))
    assert scaling.bound([five, lanes], 1000) == max(five.seconds(1000), lanes.seconds(1000))
    assert scaling.grid(10_000, 1.0).blocks == ((1250, 23),)
    from lecun1989.engines import fast, simd   # the copies scaling.py keeps, so as not to import numba
    assert (scaling.LANES, scaling.LANES_FROM) == (simd.LANES, fast.LANES_FROM)
