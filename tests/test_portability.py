"""The same command gives the same numbers on any machine, and numba is needed only by the compiled engine."""

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
    fast = lecun1989(["repro", "--train-size", "60", "--test-size", "30", "--quiet", "--out", "f"], tmp_path,
                     without_numba, check=False)
    assert fast.returncode == 2 and "Traceback" not in fast.stderr
    assert fast.stderr.count("\n") == 1 and "numba is broken here" in fast.stderr and "--engine torch" in fast.stderr
    assert not (tmp_path / "f").exists()
