"""The same command gives the same numbers on any machine, and numba is needed only by the compiled engine."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def lecun1989(args, cwd, env_extra=None, check=True):
    env = {**os.environ, **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "lecun1989", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, check=check)


def files(folder: Path, names=("log.txt", "metrics.jsonl")) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for name in names for p in sorted(folder.rglob(name))}


@pytest.mark.data
@pytest.mark.parametrize("seeds, n", [("0-2", 3), ("0-7", 8)], ids=["single-run kernels", "lane kernels"])
def test_a_multi_run_command_gives_the_same_bytes_under_any_thread_count(tmp_path, seeds, n):
    outs = []
    for threads in ("1", "2", "4"):
        lecun1989(["repro", "--seeds", seeds, "--passes", "2", "--train-size", "300", "--test-size", "100", "--quiet",
                   "--out", f"t{threads}"], tmp_path, {"NUMBA_NUM_THREADS": threads})
        outs.append(files(tmp_path / f"t{threads}"))
    assert len(outs[0]) == 2 * n
    assert outs[0] == outs[1] == outs[2]
    log = next(iter(outs[0].values())).decode()
    assert ("(lanes kernels)" if n >= 7 else "(single kernels)") in log


# A numba that is missing, or broken for this Python: importing it fails.
BROKEN_NUMBA = 'raise ImportError("numba is broken here (simulated)")\n'


@pytest.fixture
def without_numba(tmp_path):
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    (shadow / "numba.py").write_text(BROKEN_NUMBA)
    return {"PYTHONPATH": str(shadow)}


@pytest.mark.data
def test_every_command_but_the_compiled_engine_works_without_numba(tmp_path, without_numba):
    assert "repro" in lecun1989(["--help"], tmp_path, without_numba).stdout
    assert "usps" in lecun1989(["data"], tmp_path, without_numba).stdout
    assert "matches the paper" in lecun1989(["info"], tmp_path, without_numba).stdout
    small = ["--engine", "torch", "--train-size", "60", "--test-size", "30", "--passes", "1", "--quiet"]
    lecun1989(["repro", *small, "--seeds", "0-1", "--out", "r"], tmp_path, without_numba)
    lecun1989(["plot", "r"], tmp_path, without_numba)
    lecun1989(["report", "r", "-o", "r.html"], tmp_path, without_numba)
    assert (tmp_path / "r.html").is_file() and (tmp_path / "r" / "plots" / "curves.png").is_file()
    ascii_only = {**without_numba, "PYTHONIOENCODING": "ascii"}   # a terminal that cannot show "±"
    assert "% \\xb1 " in lecun1989(["reject", "r", "--out", "rj"], tmp_path, ascii_only).stdout
    lecun1989(["zipcodes", "--out", "z", "--n", "2"], tmp_path, without_numba)
    assert len(lecun1989(["predict", "r/lr0.03-seed0", "z/zip-00000.png"], tmp_path, without_numba).stdout) > 0
    lecun1989(["demo", "r/lr0.03-seed0", "-o", "d.html"], tmp_path, without_numba)
    for argv in (["repro", "--train-size", "60", "--test-size", "30", "--quiet", "--out", "f"], ["bench"]):
        fast = lecun1989(argv, tmp_path, without_numba, check=False)
        assert fast.returncode == 2 and "Traceback" not in fast.stderr
        assert fast.stderr.count("\n") == 1 and "numba is broken here" in fast.stderr
        assert "--engine torch" in fast.stderr
    assert not (tmp_path / "f").exists()


def test_without_the_data_the_tests_stop_at_once_with_one_line(tmp_path):
    """No raw folder, an empty data home and no downloading: pytest stops before any test, with one
    line saying how to supply the data; the tests that need no data run all the same."""
    env = {k: v for k, v in os.environ.items() if k != "LECUN1989_RAW_DIR"}
    env.update(LECUN1989_HOME=str(tmp_path / "home"), LECUN1989_OFFLINE="1")
    tests = Path(__file__).parent
    for workers in ([], ["-n", "2", "--dist", "loadfile"]):   # in one process, and as the README runs them
        run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *workers,
                              str(tests / "test_data.py")], cwd=tmp_path, env=env, capture_output=True, text=True)
        assert run.returncode == 4 and "Traceback" not in run.stdout + run.stderr, workers
        assert len(run.stderr.strip().splitlines()) == 1   # pytest's own ERROR line, then a blank one
        assert run.stderr.startswith("ERROR: the tests need the raw USPS and MNIST files")
        assert "Set LECUN1989_RAW_DIR to a folder holding usps/ and mnist/" in run.stderr
        assert not (tmp_path / "home").exists()   # nothing downloaded or made
        if not workers:   # xdist's controller prints its own summary
            assert "no tests ran" in run.stdout
    quick = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "not data",
                            str(tests / "test_data.py"), str(tests / "test_model.py")], cwd=tmp_path, env=env,
                           capture_output=True, text=True)
    assert quick.returncode == 0, quick.stdout[-2000:]
    assert " passed" in quick.stdout and "deselected" in quick.stdout


@pytest.fixture(scope="module")
def home_seen_by_module_fixtures():
    return os.environ.get("LECUN1989_HOME")


def test_fixtures_of_any_scope_use_the_tests_private_data_home(home_seen_by_module_fixtures, session_home):
    """A module's fixture that trains a run writes processed data into the data home: it must be the
    tests' own, never the user's."""
    assert home_seen_by_module_fixtures == str(session_home)


@pytest.mark.data
def test_the_engine_compiles_for_one_target_on_every_avx2_cpu_and_runs_record_it(tmp_path):
    """The fixed target where the CPU runs it (engines/target.py), the host where asked or where it does not;
    config.json says which."""
    from lecun1989.engines import fast, target   # noqa: F401  (loading the engine fixes the target)
    from numba.core import config
    fits = target._fits() and os.environ.get(target.ENV) != "host"
    assert target.chosen() == ("haswell" if fits else f"host {target._host().split()[1]}")
    if fits:
        assert (config.CPU_NAME, config.CPU_FEATURES) == (target.NAME, target.FEATURES)
        assert "+fma" in target.FEATURES.split(",") and not any("avx512" in f for f in target.FEATURES.split(","))
    for name, env in (("fixed", {}), ("host", {target.ENV: "host"})):
        lecun1989(["repro", "--passes", "1", "--train-size", "100", "--test-size", "50", "--quiet", "--out", name],
                  tmp_path, env)
    recorded = {name: json.loads((tmp_path / name / "config.json").read_text())["versions"]["compiled_for"]
                for name in ("fixed", "host")}
    assert recorded["fixed"] == target.chosen() and recorded["host"] == target._host()


def test_a_digit_normalized_before_the_engine_loads_leaves_it_its_target():
    """digits_compiled.py is the first numba code a reader command compiles (the reader's training set is
    normalized before its engine is built): it must fix the engine's target, not numba's host default."""
    code = ("import warnings, numpy as np\nwarnings.simplefilter('error')\nfrom lecun1989 import digits\n"
            "assert digits.compiled()\ndigits.normalized(np.ones((5, 3)))\n"
            "from lecun1989.engines import fast, target\nprint(target.chosen())")
    alone = "from lecun1989.engines import fast, target\nprint(target.chosen())"
    first, plain = (subprocess.run([sys.executable, "-c", c], capture_output=True, text=True) for c in (code, alone))
    assert first.returncode == 0, first.stderr
    assert first.stdout == plain.stdout, (first.stdout, plain.stdout)


def test_a_first_call_says_it_compiled_once_and_a_failed_compile_falls_back(tmp_path):
    (tmp_path / "kernels.py").write_text(
        "from numba import njit\n\n@njit(cache=True)\ndef twice(x):\n    return 2 * x\n\n"
        "@njit(cache=True)\ndef broken(x):\n    return x.no_such_attribute\n")
    code = ("import kernels\nfrom lecun1989.engines.cache import first_call\n"
            "print(first_call(kernels.twice, (1.0,), 'twice'), first_call(kernels.broken, (1.0,), 'broken'))")
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "NUMBA_CACHE_DIR": str(tmp_path / "cache")}
    first, again = (subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path)
                    for _ in range(2))
    for done in (first, again):
        assert done.returncode == 0 and done.stdout.strip() == "True False", done.stderr
        assert "note: broken failed to compile (TypingError" in done.stderr and "Traceback" not in done.stderr
    assert "compiled twice in" in first.stderr and "compiled twice" not in again.stderr
