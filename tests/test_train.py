import json
import re

import numpy as np
import pytest

from lecun1989.cli import main
from lecun1989.errors import LecunError
from lecun1989.store.rundir import load_weights
from lecun1989.train import Recipe, train

pytestmark = pytest.mark.data   # every test here reads the raw data

EVAL_LINE = re.compile(r"^eval: split (train|test ). loss \d\.\d{6}e[+-]\d\d\. error (\d+\.\d\d)%\. misses: (\d+)$")


def small(ds, n_train=300, n_test=200):
    return ds.subset(n_train, n_test)


def test_short_run_on_real_subset_lowers_the_error(usps, tmp_path):
    ds = small(usps)
    summaries = train(Recipe(passes=3), ds, tmp_path / "run", quiet=True, echo=lambda s: None)
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["pass"] for r in rows] == [1, 2, 3]
    assert rows[-1]["train_error"] < rows[0]["train_error"] < 0.9   # untrained: about 90% wrong
    assert rows[-1]["test_error"] < rows[0]["test_error"]
    assert summaries[0]["train_misses"] == rows[-1]["train_misses"]


def test_log_format_exact_misses_and_byte_identical_reruns(usps, tmp_path):
    ds = small(usps, 200, 150)
    logs = []
    for name in ("a", "b"):
        printed = []
        train(Recipe(passes=2, seeds=(5,)), ds, tmp_path / name, quiet=True, echo=printed.append)
        log = (tmp_path / name / "log.txt").read_text()
        assert log.splitlines()[: len(printed) - 2] == printed[: len(printed) - 2]
        logs.append(log)
    assert logs[0] == logs[1]
    evals = [EVAL_LINE.match(line) for line in logs[0].splitlines() if line.startswith("eval:")]
    assert len(evals) == 4 and all(evals)
    for m in evals:
        n = 200 if m.group(1) == "train" else 150
        assert f"{int(m.group(3)) / n * 100:.2f}" == m.group(2)
    assert "split test . loss" in logs[0]


def test_run_directory_contents(usps, tmp_path):
    out = tmp_path / "run"
    train(Recipe(passes=2, lrs=(0.02,), seeds=(9,)), small(usps, 100, 50), out, quiet=True, echo=lambda s: None)
    config = json.loads((out / "config.json").read_text())
    assert config["lr"] == 0.02 and config["seed"] == 9 and config["passes"] == 2
    assert config["data"]["source"] == "usps" and len(config["data"]["sha256"]) == 64
    assert config["net"] == {"activation": "tanh", "init": "sqrt", "output_bias": 0.0, "table": "block",
                             "loss": "mse", "dropout": 0.0, "shift": 0}
    assert config["optimizer"] == {"name": "sgd", "schedule": "constant"}
    assert {"torch", "numpy", "lecun1989"} <= set(config["versions"])
    params, meta = load_weights(out / "weights.safetensors")
    assert params["H2w"].shape == (12, 8, 5, 5) and meta["pass"] == "2"
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))
    assert not list(out.rglob("*.tmp"))


def test_existing_run_directory_needs_force(usps, tmp_path):
    out = tmp_path / "run"
    ds = small(usps, 50, 20)
    train(Recipe(passes=1), ds, out, quiet=True, echo=lambda s: None)
    before = (out / "log.txt").read_bytes()
    with pytest.raises(LecunError, match="already exists; pass --force"):
        train(Recipe(passes=1, seeds=(2,)), ds, out, quiet=True, echo=lambda s: None)
    assert (out / "log.txt").read_bytes() == before
    train(Recipe(passes=1, seeds=(2,)), ds, out, force=True, quiet=True, echo=lambda s: None)
    assert (out / "log.txt").read_bytes() != before


def test_many_runs_get_their_own_directories_and_a_summary(usps, tmp_path):
    printed = []
    summaries = train(Recipe(passes=1, seeds=(1, 2)), small(usps, 60, 30), tmp_path / "many", quiet=True,
                      echo=printed.append)
    assert [s["seed"] for s in summaries] == [1, 2]
    for seed in (1, 2):
        assert (tmp_path / "many" / f"lr0.03-seed{seed}" / "weights.safetensors").is_file()
    assert any(line.startswith("final over 2 runs") for line in printed)


def test_cli_repro_end_to_end(tmp_path, capsys):
    out = tmp_path / "cli"
    assert main(["repro", "--train-size", "80", "--test-size", "40", "--passes", "2", "--quiet",
                 "--out", str(out)]) == 0
    stdout = capsys.readouterr().out
    assert stdout == (out / "log.txt").read_text()
    assert stdout.count("eval: split") == 4 and "paper (1989)" in stdout
    assert main(["repro", "--train-size", "80", "--passes", "1", "--quiet", "--out", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err


@pytest.mark.parametrize("args, message", [
    (["--lr", "-1"], "learning rates must be positive"),
    (["--data", "usps", "--raw-dir", "/nonexistent-dir"], "is not a folder"),
    (["--lr", "0.1", "--lrs", "0.2"], "give --lr or --lrs, not both"),
    (["--train-size", "999999"], "--train-size 999999 is more than the 7291 examples there are"),
    (["--validation", "1000", "--train-size", "6500"], "more than the 6291 examples there are"),
])
def test_cli_repro_bad_input_is_one_line(tmp_path, capsys, args, message):
    assert main(["repro", "--quiet", "--out", str(tmp_path / "x"), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "x").exists()


def test_cli_rejects_nonsense_numbers(capsys):
    with pytest.raises(SystemExit) as e:
        main(["repro", "--passes", "0"])
    assert e.value.code == 2 and "not a positive integer" in capsys.readouterr().err


def test_cli_paper_prints_the_comparison_and_saves_curves(tmp_path, capsys):
    out = tmp_path / "paper"
    assert main(["paper", "--train-size", "120", "--test-size", "60", "--passes", "2", "--seeds", "3,4",
                 "--hessian-samples", "40", "--quiet", "--out", str(out)]) == 0
    stdout = capsys.readouterr().out
    study = json.loads((out / "study.json").read_text())
    per_run = [[json.loads(line) for line in (out / f"lr0.001-seed{s}" / "metrics.jsonl").read_text().splitlines()]
               for s in (3, 4)]
    assert study["final"]["test_misses"]["mean"] == (per_run[0][-1]["test_misses"] + per_run[1][-1]["test_misses"]) / 2
    assert study["command"].startswith("lecun1989 paper")
    curves = (out / "curves.csv").read_text().splitlines()
    assert len(curves) == 3 and curves[0].startswith("pass,runs,train_error_mean,train_error_std")
    assert float(curves[2].split(",")[2]) == pytest.approx((per_run[0][1]["train_error"] + per_run[1][1]["train_error"]) / 2)
    for label in ("train error", "test error", "train MSE", "test MSE"):
        assert any(line.startswith(label) and "1 std" in line for line in stdout.splitlines())
    config = json.loads((out / "lr0.001-seed3" / "config.json").read_text())
    assert config["command"] == "paper" and config["net"]["activation"] == "scaled_tanh"
    assert config["optimizer"] == {"name": "sdlm", "schedule": "constant", "mu": 0.02, "hessian_samples": 40,
                                   "hessian": "running", "decay": 0.01}


def test_validation_split_is_labelled_and_never_compared_with_the_paper(usps, tmp_path):
    ds = usps.validation(100).subset(200)
    assert len(ds.test) == 100 and ds.test_name == "val"
    assert (ds.test.labels == usps.train.labels[-100:]).all()
    printed = []
    train(Recipe(passes=1), ds, tmp_path / "v", quiet=True, echo=printed.append)
    assert any(line.startswith("eval: split val  .") for line in printed)
    assert not any("paper (1989)" in line for line in printed)
    assert json.loads((tmp_path / "v" / "config.json").read_text())["data"]["held_out"] == 100
    with pytest.raises(LecunError, match="validation split"):
        usps.validation(len(usps.train))


def test_cli_modern_step_end_to_end(tmp_path, capsys):
    out = tmp_path / "modern"
    assert main(["modern", "--upto", "shift", "--data", "usps", "--seeds", "0,1", "--train-size", "100",
                 "--test-size", "50", "--quiet", "--out", str(out)]) == 0
    stdout = capsys.readouterr().out
    config = json.loads((out / "lr0.0003-seed1" / "config.json").read_text())
    assert config["passes"] == 60 and config["net"]["loss"] == "ce" and config["net"]["shift"] == 1
    assert config["optimizer"]["name"] == "adamw" and config["optimizer"]["schedule"] == "linear:0.333333"
    assert "train CE" in stdout and "MSE" not in stdout and "published" in stdout and "2.19%" in stdout
    rows = [json.loads(line) for line in (out / "lr0.0003-seed1" / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 60 and rows[-1]["train_loss"] < rows[0]["train_loss"]


def test_cli_modern_refuses_the_50k_step_on_usps(capsys, tmp_path):
    assert main(["modern", "--upto", "data50k", "--data", "usps", "--out", str(tmp_path / "m")]) == 2
    assert "use --data mnist" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()


def test_sdlm_refuses_the_modern_network(tmp_path, capsys):
    assert main(["repro", "--optimizer", "sdlm", "--loss", "ce", "--out", str(tmp_path / "r")]) == 2
    assert "sdlm is the paper's method" in capsys.readouterr().err


def test_the_python_api_takes_str_or_path_folders(usps, tmp_path, monkeypatch):
    """Every function of the Python API that takes a folder or file takes a str as well as a Path."""
    from lecun1989 import trained
    from lecun1989.cli import pages, pictures
    from lecun1989.reading import images, rejection
    from lecun1989.store import rundir
    from lecun1989.views import demo, report
    monkeypatch.chdir(tmp_path)
    ds = usps.subset(120, 40)
    train(Recipe(passes=1, seeds=(0, 1)), ds, "study", quiet=True, echo=lambda s: None)
    train(Recipe(passes=1), ds, "one", quiet=True, echo=lambda s: None)
    assert len(rundir.run_dirs_under(["study"])) == 2 and rundir.read_metrics("one")[-1]["pass"] == 1
    assert rundir.read_config("one")["passes"] == 1 and trained.load_run("one")[1].sha256 == ds.sha256
    assert list(pictures.plot_folders(["study"], "pictures", trained.Location()))
    assert "<h1>lecun1989 report</h1>" in report.page(["study"])
    assert rejection.measure(["study"]).runs and pictures.reject(["one"], "rejected")[1]
    assert len(images.read_image("one", np.pad(np.ones((16, 10)), 8)).digits) == 1   # a light bar on dark
    assert pages.write_page("demo.html", demo.HEAD, "demo page", "demo.html", lambda: demo.page("one")).is_file()


def test_counts_read_as_words_and_an_empty_out_is_refused(usps, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["repro", "--train-size", "60", "--test-size", "20", "--passes", "1", "--seeds", "0-1",
                 "--out", "r", "--quiet"]) == 0
    assert "2 runs (2 seeds x 1 learning rate), data usps" in capsys.readouterr().out
    assert "1 pass, seed 0" in (tmp_path / "r" / "lr0.03-seed0" / "log.txt").read_text(encoding="utf-8")
    for command in (["repro"], ["paper"], ["sweep", "--lrs", "0.01"], ["plot", "r"], ["reject", "r"]):
        assert main([*command, "--out", ""]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "--out is empty" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r"]   # nothing made by the refused ones


def test_the_git_commit_is_recorded_only_for_a_checkouts_own_code(tmp_path, monkeypatch):
    """An installed copy inside a clone (a virtual environment in it) is not the clone's code: its
    commit would be a false record."""
    import subprocess
    from lecun1989 import train as train_module

    def git(*args):
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=tmp_path, check=True,
                       capture_output=True)
    git("init", "-q")
    (tmp_path / ".gitignore").write_text(".venv/\n")
    installed = tmp_path / ".venv" / "lecun1989" / "train.py"
    installed.parent.mkdir(parents=True)
    installed.write_text("# an installed copy\n")
    checkout = tmp_path / "src" / "lecun1989" / "train.py"
    checkout.parent.mkdir(parents=True)
    checkout.write_text("# the checkout's code\n")
    git("add", ".gitignore", "src")
    git("commit", "-q", "-m", "one")
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=tmp_path, capture_output=True, text=True).stdout.strip()
    monkeypatch.setattr(train_module, "__file__", str(installed))
    assert train_module.git_commit() is None
    monkeypatch.setattr(train_module, "__file__", str(checkout))
    assert train_module.git_commit() == head
    checkout.write_text("# edited\n")
    assert train_module.git_commit() == head + "-dirty"


def test_the_progress_bar_leaves_the_compile_time_out_of_its_rate():
    """A first pass compiles for seconds before its first step: the bar's clock moves on by that time, so
    that its rate and time left are those of the training."""
    import io
    from tqdm import tqdm
    from lecun1989 import train as train_module

    class Engine:
        compile_s = 0.0
    engine = Engine()
    bar = tqdm(total=1000, file=io.StringIO(), mininterval=0)
    tick, start = train_module.progress(bar, engine), bar.start_t
    engine.compile_s = 30.0   # its first call compiled for 30 s
    tick(10)
    assert (bar.start_t, bar.n) == (start + 30, 10) and bar.format_dict["elapsed"] < 30
    tick(10)                  # nothing more compiled
    assert (bar.start_t, bar.n) == (start + 30, 20)
    quiet = tqdm(total=10, disable=True)
    train_module.progress(quiet, engine)(5)   # a quiet command's bar keeps no clock to move
