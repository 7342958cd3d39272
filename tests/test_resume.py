"""--resume: an interrupted command, continued, leaves the folders an uninterrupted one leaves."""

import json

import pytest

from lecun1989.cli import main
from lecun1989.errors import LecunError
from lecun1989.model import NetConfig
from lecun1989.optim import OptimConfig
from lecun1989.train import Recipe, train

pytestmark = pytest.mark.data   # every test here reads the raw data

CASES = {
    "sgd": dict(lrs=(0.03,)),
    "sdlm-running": dict(lrs=(1e-3,), optim=OptimConfig("sdlm", hessian="running", hessian_samples=40),
                         net=NetConfig(activation="scaled_tanh", init="linear", output_bias=-1.0)),
    "adamw-dropout-shift": dict(lrs=(3e-4,), optim=OptimConfig("adamw", schedule="linear:0.3"),
                                net=NetConfig(loss="ce", activation="relu", dropout=0.25, shift=1)),
    "momentum": dict(lrs=(0.005,), optim=OptimConfig("momentum", schedule="1:2,0.5")),
}
# (engine, seeds): the reference, the single-run kernels (fewer than 7 runs), the lane kernels
KERNELS = {"reference": ("torch", (1, 2)), "single-run": ("fast", (1, 2)), "lanes": ("fast", tuple(range(7)))}


def stop_after(pass_num: int):
    def echo(line: str) -> None:
        if line.startswith(f"pass {pass_num}/"):   # printed once that pass is committed
            raise KeyboardInterrupt
    return echo


def comparable(run_dir) -> dict:
    out = {}
    for path in sorted(run_dir.rglob("*")):
        if path.is_file() and path.name != ".lecun1989.lock":
            out[str(path.relative_to(run_dir))] = path.read_bytes()
    summary = json.loads(out.pop("summary.json"))
    for key in ("wall_s", "engine_setup_s"):
        summary.pop(key)
    return {**out, "summary.json": summary}


@pytest.mark.parametrize("kernels", KERNELS)
@pytest.mark.parametrize("case", CASES)
def test_an_interrupted_command_resumed_equals_the_uninterrupted_one(usps, tmp_path, case, kernels):
    engine, seeds = KERNELS[kernels]
    recipe = Recipe(passes=3, seeds=seeds, engine=engine, **CASES[case])
    ds = usps.subset(60, 30)
    train(recipe, ds, tmp_path / "whole", quiet=True, echo=lambda s: None)
    with pytest.raises(KeyboardInterrupt) as stopped:
        train(recipe, ds, tmp_path / "cut", quiet=True, echo=stop_after(2))
    assert "holds pass 2 of 3" in stopped.value.note
    config = json.loads(next((tmp_path / "cut").rglob("config.json")).read_text())
    assert config["kernels"] == {"torch": "reference", "fast": "single" if len(seeds) < 7 else "lanes"}[engine]
    said = []
    train(recipe, ds, tmp_path / "cut", quiet=True, echo=said.append, resume=True)
    assert any("resuming" in s and "after pass 2 of 3" in s for s in said)
    for whole in [tmp_path / "whole"] if len(seeds) == 1 else sorted(p for p in (tmp_path / "whole").iterdir()
                                                                        if p.is_dir()):
        cut = tmp_path / "cut" / whole.relative_to(tmp_path / "whole")
        a, b = comparable(whole), comparable(cut)
        b["summary.json"]["dir"] = a["summary.json"]["dir"]
        assert a.keys() == b.keys()
        for name in a:
            if name.startswith("tensorboard"):
                continue   # its events carry wall times
            assert a[name] == b[name], (whole.name, name)


def test_resume_refuses_other_settings_and_keeps_the_folder(usps, tmp_path):
    ds = usps.subset(60, 30)
    recipe = Recipe(passes=3, seeds=(1, 2), engine="torch")
    with pytest.raises(KeyboardInterrupt):
        train(recipe, ds, tmp_path / "cut", quiet=True, echo=stop_after(1))
    before = {p: p.read_bytes() for p in (tmp_path / "cut").rglob("*") if p.is_file()}
    with pytest.raises(LecunError, match=r"holds runs this command does not make \(lr0.03-seed1, lr0.03-seed2\); "
                                         r"not the runs lr0.01-seed1, lr0.01-seed2 that this command makes"):
        train(Recipe(passes=3, seeds=(1, 2), lrs=(0.01,), engine="torch"), ds, tmp_path / "cut", resume=True,
              quiet=True, echo=lambda s: None)
    with pytest.raises(LecunError, match="other settings \\(passes differ\\)"):
        train(Recipe(passes=4, seeds=(1, 2), engine="torch"), ds, tmp_path / "cut", resume=True, quiet=True,
              echo=lambda s: None)
    assert {p: p.read_bytes() for p in (tmp_path / "cut").rglob("*") if p.is_file()} == before


def test_resume_of_a_finished_command_changes_nothing(usps, tmp_path, capsys):
    args = ["repro", "--engine", "torch", "--train-size", "60", "--test-size", "30", "--passes", "2", "--quiet",
            "--out", str(tmp_path / "r")]
    assert main(args) == 0
    before = {p: p.read_bytes() for p in (tmp_path / "r").rglob("*") if p.is_file()}
    capsys.readouterr()
    assert main(args + ["--resume"]) == 0
    assert "finished before" in capsys.readouterr().out
    assert {p: p.read_bytes() for p in (tmp_path / "r").rglob("*") if p.is_file()} == before
