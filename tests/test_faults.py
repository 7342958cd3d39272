"""Faults, end to end through the `lecun1989` command: the contract of "Trustworthy runs".

Classes (each a section below):
  force     --force replaces only folders this program made; never the current folder or a parent
  lock      one writer per output folder; a stale lock is taken over, saying so
  finite    non-finite or out-of-range option values, and settings of an optimizer the run does not use,
            are refused up front
  diverge   runs whose loss or weights stop being finite stop there; the others go on; exit 3
  interrupt SIGINT / SIGTERM at any moment: one line, 130 / 143, every folder consistent, --resume
            finishes with the numbers of an uninterrupted run
  resume    --resume continues; anything else is a one-line refusal
  data      modified and malformed raw files, LECUN1989_OFFLINE
  os        every OS error on output is one line naming the path and the cause
  seeds     seeds in 0 .. 2^32-1, no duplicates, batches that fit in memory
  rerun     a refused or failed command leaves nothing that blocks the corrected rerun
  plot      plot/report: a few OS faults (the rest is tests/test_plots_report.py)
  readers   predict, demo, reject, plot and report refuse every run whose files disagree, name a run that
            diverged before its first pass, and read no more digits than the ink holds

Every training command here is small (torch engine, 100 training / 50 test digits, 1 or 2 passes)
except the interrupt tests, which need time to interrupt and use the compiled engine where the
torch engine would be too slow; sweeps and `modern` (no --train-size / --passes of their own) use the
compiled engine too. The compiled engine is compiled once first (fast_engine_warm: about two minutes
when its disk cache is cold, a few seconds otherwise); the tests that interrupt a cold compile use an
empty NUMBA_CACHE_DIR and stop it after 3 s (`-k "not compiles"` leaves them out).
"""

from __future__ import annotations

import bz2
import contextlib
import errno
import gzip
import io
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

import lecun1989.cli as cli_module
from lecun1989 import data as data_module
from lecun1989.store import atomic as io_module
from lecun1989.store import folders as folders_module
from lecun1989.store import rundir as rundir_module
from lecun1989 import sweep as sweep_module
from lecun1989 import train as train_module
from lecun1989.store.folders import LOCK, MARKER, marked
from lecun1989.store.rundir import load_weights

pytestmark = pytest.mark.data   # every test reads the raw USPS files (conftest finds them)

SMALL = ("--engine", "torch", "--train-size", "100", "--test-size", "50", "--quiet")
FAST_SWEEP = ("sweep", "--engine", "fast", "--passes", "1", "--seeds", "0", "--validation", "7000", "--quiet")
HOST = socket.gethostname()
COMPILED_NOTE = re.compile(r"^compiled .*fast engine in [\d.]+s \(cached for next time\)$")
HELD_NOTE = re.compile(r"^stopping once numba has compiled \w+ of the fast engine \(it cannot stop midway\)$")


# --- helpers ------------------------------------------------------------------------------------

@dataclass
class Result:
    rc: object
    out: str
    err: str

    @property
    def lines(self) -> list[str]:
        """stderr's lines, less the compiled engine's notes that it compiled (a cold disk cache: the owner's
        edits to the engine, or a first run), and that an interrupt waits for a compile to end."""
        return [line for line in self.err.splitlines() if not (COMPILED_NOTE.match(line) or HELD_NOTE.match(line))]


def cli(*argv) -> Result:
    """`lecun1989 ARGV` in this process; what it printed to stdout and stderr."""
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = cli_module.main([str(a) for a in argv])
    except SystemExit as e:   # argparse
        rc = e.code
    except KeyboardInterrupt as e:   # never let an interrupt meant for the command stop the test session
        rc = f"escaped {type(e).__name__}"
    return Result(rc, out.getvalue(), err.getvalue())


def assert_one_line_error(r: Result, *needles: str, rc=(2,), command: str | None = None) -> str:
    """Exit code in rc, exactly one line on stderr, an error line holding every needle, no traceback."""
    assert r.rc in rc, (r.rc, r.err)
    assert "Traceback" not in r.out + r.err, r.err
    assert r.err.endswith("\n") and len(r.lines) == 1, r.err
    line = r.lines[0]
    assert re.match(r"lecun1989( \w+)?: error: ", line), line
    if command:
        assert line.startswith(f"lecun1989 {command}: error: ") or line.startswith("lecun1989: error: "), line
    for needle in needles:
        assert needle in line, (needle, line)
    return line


def tree(root: Path) -> dict:
    """Every entry under root (hidden ones included, symlinks not followed): bytes, 'dir' or the link."""
    out = {}
    if not root.exists():
        return out
    for base, dirs, files in os.walk(root):
        for name in dirs + files:
            p = Path(base, name)
            rel = str(p.relative_to(root))
            out[rel] = ("-> " + os.readlink(p)) if p.is_symlink() else "dir" if p.is_dir() else p.read_bytes()
    return out


def strict_loads(text: str):
    def refuse(name):
        raise AssertionError(f"{name} in JSON")
    return json.loads(text, parse_constant=refuse)


def strict_json(path: Path):
    return strict_loads(path.read_text(encoding="utf-8"))


def metrics_rows(run: Path) -> list[dict]:
    return [strict_loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


PASS_LINE = re.compile(r"^pass (\d+)/(\d+)$", re.M)


def check_run(d: Path) -> tuple[int, bool, bool]:
    """One run folder is consistent with itself: log.txt, metrics.jsonl, weights.safetensors and
    state.safetensors at the same pass, summary.json only when finished or diverged, strict JSON.
    Returns (last completed pass, diverged, finished)."""
    assert marked(d) == "run", d
    config = strict_json(d / "config.json")
    n = config["passes"]
    rows = metrics_rows(d)
    assert [r["pass"] for r in rows] == list(range(1, len(rows) + 1)), (d, rows)
    diverged = bool(rows) and bool(rows[-1].get("diverged"))
    assert not any(r.get("diverged") for r in rows[:-1]), d
    done = len(rows) - diverged
    log = (d / "log.txt").read_text()
    assert [int(m[1]) for m in PASS_LINE.finditer(log)] == [r["pass"] for r in rows], (d, log)
    assert all(int(m[2]) == n for m in PASS_LINE.finditer(log))
    assert log.count("eval: split train") == done, (d, log)
    weights, state = d / "weights.safetensors", d / "state.safetensors"
    if done:
        assert load_weights(weights)[1]["pass"] == str(done), d
    else:
        assert not weights.exists(), d
    if state.exists():
        assert done and load_weights(state)[1]["pass"] == str(done), d
    finished = (d / "summary.json").exists()
    if diverged:
        s = strict_json(d / "summary.json")
        assert s["diverged"] is True and s["diverged_at_pass"] == len(rows), s
        assert f"diverged at pass {len(rows)}" in log
    elif finished:
        s = strict_json(d / "summary.json")
        assert done == n and not s.get("diverged"), (d, s)
        assert "\nfinal:" in log
    else:
        assert done < n, d
    return done, diverged, finished


def check_folder(out: Path) -> int | None:
    """An output folder after a command ended, however it ended: no temporary files, no lock, every run
    consistent with itself, every run that did not diverge at the same last completed pass, every JSON
    file strict, no NaN in a CSV. Returns that pass (None when no run folder is there)."""
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")], tree(out).keys()
    assert not list(out.rglob(LOCK))
    runs = sorted(p.parent for p in out.rglob(MARKER) if marked(p.parent) == "run")
    states = [check_run(d) for d in runs]
    passes = {done for done, diverged, _ in states if not diverged}
    assert len(passes) <= 1, dict(zip(runs, states))
    for path in out.rglob("*.json"):
        strict_json(path)
    for path in out.rglob("*.csv"):
        assert "nan" not in path.read_text().lower() and "inf" not in path.read_text().lower(), path
    return passes.pop() if passes else None


def same_results(a: Path, b: Path) -> None:
    """Two output folders hold the same numbers: metrics.jsonl and weights byte for byte, run by run."""
    runs_a = sorted(p.parent.relative_to(a) for p in a.rglob("metrics.jsonl"))
    runs_b = sorted(p.parent.relative_to(b) for p in b.rglob("metrics.jsonl"))
    assert runs_a == runs_b and runs_a
    for rel in runs_a:
        assert (a / rel / "metrics.jsonl").read_bytes() == (b / rel / "metrics.jsonl").read_bytes(), rel
        if (b / rel / "weights.safetensors").exists():
            assert (a / rel / "weights.safetensors").read_bytes() == (b / rel / "weights.safetensors").read_bytes()


@contextlib.contextmanager
def signal_at(owner, name: str, n: int = 1, sig=signal.SIGINT, when: str = "after", test=None):
    """Send `sig` to this process around the n-th call of owner.name (before or after it runs): an
    interrupt at an exact moment. `test(*args)` narrows which calls count."""
    original = getattr(owner, name)
    count = 0

    def wrapper(*args, **kwargs):
        nonlocal count
        counts = test is None or test(*args, **kwargs)
        count += counts
        if counts and count == n and when == "before":
            signal.raise_signal(sig)
        result = original(*args, **kwargs)
        if counts and count == n and when == "after":
            signal.raise_signal(sig)
        return result

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(owner, name, wrapper)
        yield


@contextlib.contextmanager
def read_only(path: Path):
    """Make a folder unwritable, for root too (chattr +i) where needed."""
    if os.geteuid() == 0:
        if subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode:
            pytest.skip("running as root and chattr +i is not available here")
        try:
            yield
        finally:
            subprocess.run(["chattr", "-i", str(path)], capture_output=True)
    else:
        mode = path.stat().st_mode
        path.chmod(0o555)
        try:
            yield
        finally:
            path.chmod(mode)


def user_folder(path: Path) -> Path:
    """A folder of the user's own files."""
    (path / "sub").mkdir(parents=True)
    (path / "photo.jpg").write_bytes(bytes(random.Random(0).randrange(256) for _ in range(4096)))
    (path / "notes.txt").write_text("my notes\n")
    (path / "sub" / "deep.txt").write_text("deeper\n")
    return path


@pytest.fixture
def here(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def made(env, tmp_path_factory, name: str, *argv, hook=None, rc=0) -> Path:
    """Run a command once for the module into a folder of its own; return the folder."""
    out = tmp_path_factory.mktemp(name) / "out"
    with env(), hook or contextlib.nullcontext():
        r = cli(*argv, "--out", out)
    assert r.rc == rc, r.err
    return out


@pytest.fixture(scope="module")
def finished_run(module_env, tmp_path_factory) -> Path:
    """A finished single run: repro --seed 3, 2 passes."""
    return made(module_env, tmp_path_factory, "finished", "repro", *SMALL, "--passes", "2", "--seed", "3")


@pytest.fixture(scope="module")
def partial_batch(module_env, tmp_path_factory) -> Path:
    """Two runs interrupted after their first of 2 passes."""
    return made(module_env, tmp_path_factory, "partial", "repro", *SMALL, "--passes", "2", "--seeds", "0-1",
                hook=signal_at(train_module, "commit", n=2), rc=130)


def copy(src: Path, tmp_path: Path, name: str = "out") -> Path:
    shutil.copytree(src, tmp_path / name, symlinks=True)
    return tmp_path / name


# --- subprocesses -------------------------------------------------------------------------------

def spawn(cwd: Path, *argv, env: dict | None = None, python: tuple = ("-m", "lecun1989")) -> subprocess.Popen:
    """`lecun1989 ARGV` in a process of its own (SIGINT at its default, whatever this one inherited)."""
    full_env = {**os.environ, **(env or {})}
    with open(cwd / "stdout.txt", "w") as out, open(cwd / "stderr.txt", "w") as err:
        return subprocess.Popen([sys.executable, *python, *map(str, argv)], cwd=cwd, env=full_env, stdout=out,
                                stderr=err, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def wait_until(proc: subprocess.Popen, condition, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            pytest.fail(f"the command ended (rc {proc.returncode}) before the moment to interrupt it")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("the moment to interrupt never came")
        time.sleep(0.01)


def lines_in(path: Path) -> int:
    try:
        return len(path.read_text().splitlines())
    except OSError:
        return 0


def finish(proc: subprocess.Popen, cwd: Path, timeout: float = 180) -> Result:
    try:
        rc = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("the interrupted command did not stop")
    return Result(rc, (cwd / "stdout.txt").read_text(), (cwd / "stderr.txt").read_text())


def assert_interrupted(r: Result, sig) -> None:
    """Exit 130 (SIGINT) or 143 (SIGTERM), one line saying so, no traceback. A SIGINT that lands while
    torch is being imported sometimes ends the process by SIGINT itself (status -2) after the line:
    CPython's own exit for an interrupt it saw unhandled; a shell reads that as 130 too."""
    word, rc = ("terminated", (143,)) if sig == signal.SIGTERM else ("interrupted", (130, -signal.SIGINT))
    assert r.rc in rc, (r.rc, r.err)
    assert "Traceback" not in r.out + r.err, r.err
    assert len(r.lines) == 1 and re.match(rf"lecun1989( \w+)?: {word}", r.lines[0]), r.err


@pytest.fixture(scope="module")
def fast_engine_warm(module_env, tmp_path_factory):
    """Compile (or load from the disk cache) both kernel sets of the compiled engine first, in a fresh
    process that reads the engine's sources as they are now, so that the commands timed and interrupted
    below do not spend their time compiling."""
    base = tmp_path_factory.mktemp("warm")
    for seeds, optimizer in (("0", "sgd"), ("0-7", "adamw")):
        with module_env():
            env = dict(os.environ)
        done = subprocess.run([sys.executable, "-m", "lecun1989", "repro", "--engine", "fast", "--train-size", "20",
                               "--test-size", "10", "--passes", "1", "--quiet", "--seeds", seeds, "--optimizer",
                               optimizer, "--out", base / f"{seeds}-{optimizer}"], capture_output=True, text=True,
                              timeout=600, env=env)
        assert done.returncode == 0, done.stderr


# =================================================================================================
# force: --force replaces only folders this program made
# =================================================================================================

FORCE_COMMANDS = {
    "repro": ("repro", *SMALL, "--passes", "1"),
    "paper": ("paper", *SMALL, "--passes", "1", "--seeds", "0-1"),
    "modern": ("modern", "--engine", "torch", "--train-size", "100", "--test-size", "50", "--quiet"),
    "sweep": (*FAST_SWEEP, "--lrs", "0.01,0.03"),
}


@pytest.mark.parametrize("command", list(FORCE_COMMANDS))
def test_force_refuses_a_folder_of_the_users_own_files(here, command):
    mine = user_folder(here / "mine")
    before = tree(mine)
    r = cli(*FORCE_COMMANDS[command], "--force", "--out", mine)
    assert_one_line_error(r, "mine", "not made by lecun1989", command=command)
    assert tree(mine) == before


@pytest.mark.parametrize("where, out", [("cwd-is-a-marked-run", "."), ("cwd-is-a-marked-run", "{abs}"),
                                        ("cwd-inside-a-marked-study", ".."),
                                        ("cwd-inside-a-marked-study", "../..")])
def test_force_refuses_the_current_folder_and_its_parents(tmp_path, monkeypatch, finished_run, where, out):
    study = tmp_path / "study"
    copy(finished_run, study, "lr0.03-seed3")
    (study / MARKER).write_text(json.dumps({"kind": "study"}))
    if where == "cwd-is-a-marked-run":
        cwd = study / "lr0.03-seed3"
    else:
        cwd = study / "lr0.03-seed3" / "tensorboard"
    monkeypatch.chdir(cwd)
    before = tree(tmp_path)
    r = cli("repro", *SMALL, "--passes", "1", "--seeds", "3", "--force", "--out", out.format(abs=cwd))
    assert_one_line_error(r, "current folder or one of its parents")
    assert tree(tmp_path) == before


@pytest.mark.parametrize("fault", ["a-file", "unknown-kind", "marker-not-json", "marker-is-a-folder",
                                   "symlink-to-users-folder"])
def test_force_refuses_what_is_not_a_marked_folder(here, fault):
    mine = user_folder(here / "mine")
    out = here / "out"
    if fault == "a-file":
        out.write_text("a file of the user's\n")
    elif fault == "symlink-to-users-folder":
        out.symlink_to(mine)
    else:
        user_folder(out)
        if fault == "unknown-kind":
            (out / MARKER).write_text(json.dumps({"kind": "photos"}))
        elif fault == "marker-not-json":
            (out / MARKER).write_text("{not json")
        else:
            (out / MARKER).mkdir()
    before = tree(here)
    r = cli("repro", *SMALL, "--passes", "1", "--force", "--out", out)
    assert_one_line_error(r, "out")
    assert tree(here) == before


OTHER_KINDS = [("zipcodes", ("repro", *SMALL, "--passes", "1"), "--force"),
               ("plots", ("repro", *SMALL, "--passes", "1"), "--force"),
               ("zipcodes", ("repro", *SMALL, "--passes", "1"), "--resume"),
               ("zipcodes", (*FAST_SWEEP, "--lrs", "0.01"), "--force"),
               ("run", ("zipcodes", "--n", "2"), "--force"),
               ("study", ("zipcodes", "--n", "2"), "--force")]


@pytest.mark.parametrize("kind, argv, flag", OTHER_KINDS, ids=[f"{a[0]}{f}-on-{k}" for k, a, f in OTHER_KINDS])
def test_force_and_resume_leave_a_folder_of_another_kind_as_it_is(here, kind, argv, flag):
    """A folder the program made, but of other things (zip codes, pictures, runs): a command replaces or
    continues only folders of what it writes itself."""
    out = user_folder(here / "out")
    (out / MARKER).write_text(json.dumps({"kind": kind, "made_by": "lecun1989"}))
    before = tree(here)
    assert_one_line_error(cli(*argv, flag, "--out", out), "leaves it as it is", command=argv[0])
    assert tree(here) == before


def test_force_replaces_a_marked_run_but_not_what_a_link_inside_points_at(here, finished_run):
    out = copy(finished_run, here)
    mine = user_folder(here / "mine")
    (out / "link-to-mine").symlink_to(mine)
    before = tree(mine)
    r = cli("repro", *SMALL, "--passes", "1", "--seed", "5", "--force", "--out", out)
    assert r.rc == 0, r.err
    assert tree(mine) == before
    assert not (out / "link-to-mine").exists() and not (out / "link-to-mine").is_symlink()
    assert check_folder(out) == 1 and strict_json(out / "config.json")["seed"] == 5


@pytest.mark.parametrize("command, said", [("repro", "already exists; pass --force to replace it"),
                                           ("sweep", "holds what `lecun1989 repro` made; choose another --out")])
def test_without_force_an_existing_marked_folder_is_left_as_it_is(here, finished_run, command, said):
    """The same command's folder: --force or --resume would take it; another command's: neither would."""
    out = copy(finished_run, here)
    before = tree(out)
    argv = FORCE_COMMANDS[command]
    r = cli(*argv, "--out", out)
    assert_one_line_error(r, said)
    assert tree(out) == before


def test_force_and_resume_together_are_refused(here, finished_run):
    out = copy(finished_run, here)
    before = tree(out)
    assert_one_line_error(cli("repro", *SMALL, "--passes", "2", "--seed", "3", "--force", "--resume", "--out", out),
                          "--force", "--resume")
    assert tree(out) == before


TINY_PAPER = ("paper", "--engine", "torch", "--train-size", "60", "--test-size", "40", "--passes", "1", "--seeds", "0-1",
              "--quiet")
MADE_BY = {"paper": TINY_PAPER, "sweep": (*FAST_SWEEP, "--lrs", "0.01")}


@pytest.mark.parametrize("made_by, other", [("paper", ("repro", *SMALL, "--passes", "1")),
                                            ("paper", ("modern", "--engine", "torch", "--upto", "ce", "--seeds", "0",
                                                       "--train-size", "60", "--test-size", "40", "--quiet")),
                                            ("sweep", TINY_PAPER)], ids=["repro-on-paper", "modern-on-paper",
                                                                         "paper-on-sweep"])
def test_force_starts_only_the_same_command_over(here, fast_engine_warm, made_by, other):
    """A folder's marker records the command that made it: --force of another training command (which
    would replace a study of ten seeds by one run) leaves it as it is; the same command replaces it."""
    out = here / "out"
    assert cli(*MADE_BY[made_by], "--out", out).rc == 0
    assert strict_json(out / MARKER)["command"] == made_by
    before = tree(out)
    assert_one_line_error(cli(*other, "--force", "--out", out), f"`lecun1989 {made_by}` made",
                          "--force starts only the same command over", "leaves it as it is", command=other[0])
    assert tree(out) == before
    r = cli(*MADE_BY[made_by], "--force", "--out", out)   # its own command starts it over
    assert r.rc == 0, r.err
    check_folder(out)


# =================================================================================================
# lock: one writer per output folder
# =================================================================================================

@pytest.fixture
def live_pid():
    """A process that runs for the whole test: the owner of a live lock."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    yield proc.pid
    proc.kill()
    proc.wait()


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.fixture(scope="module")
def finished_paper(module_env, tmp_path_factory) -> Path:
    return made(module_env, tmp_path_factory, "paper", "paper", *SMALL, "--passes", "1", "--seeds", "0-1")


@pytest.fixture(scope="module")
def finished_sweep(module_env, fast_engine_warm, tmp_path_factory) -> Path:
    return made(module_env, tmp_path_factory, "sweep", *FAST_SWEEP, "--lrs", "0.01,0.03")


# Each on a folder its own command made (--force starts only the same command over): the lock is what
# refuses it.
LOCKED_COMMANDS = {
    "repro-force": ("finished_run", ("repro", *SMALL, "--passes", "2", "--seed", "3", "--force")),
    "repro-resume": ("finished_run", ("repro", *SMALL, "--passes", "2", "--seed", "3", "--resume")),
    "paper-force": ("finished_paper", ("paper", *SMALL, "--passes", "1", "--seeds", "0-1", "--force")),
    "sweep-force": ("finished_sweep", (*FAST_SWEEP, "--lrs", "0.01,0.03", "--force")),
}


@pytest.mark.parametrize("command", list(LOCKED_COMMANDS))
def test_a_folder_locked_by_a_running_command_is_refused_and_left_alone(here, request, live_pid, command):
    made_by, argv = LOCKED_COMMANDS[command]
    out = copy(request.getfixturevalue(made_by), here)
    (out / LOCK).write_text(json.dumps({"pid": live_pid, "host": HOST}))
    before = tree(out)
    r = cli(*argv, "--out", out)
    assert_one_line_error(r, "in use by another lecun1989 command", str(live_pid))
    assert tree(out) == before


def test_pictures_are_drawn_into_a_folder_under_its_lock(tmp_path, monkeypatch):
    """Two commands drawing into one folder at once would each write the record of the files drawn there
    without the other's: the folder is locked from reading the record to writing it."""
    import hashlib
    from lecun1989.store import folders
    out = tmp_path / "pictures"
    folders.write_pictures(out, {"a.png": b"1"})
    owners, write_files = [], folders.write_files

    def spy(folder, files):
        owners.append(json.loads((Path(folder) / LOCK).read_text(encoding="utf-8"))["pid"])
        return write_files(folder, files)
    monkeypatch.setattr(folders, "write_files", spy)
    folders.write_pictures(out, {"b.png": b"2"})
    assert owners == [os.getpid()] and not (out / LOCK).exists()
    assert folders.check_pictures(out, ["a.png", "b.png"]) == {
        "a.png": hashlib.sha256(b"1").hexdigest(), "b.png": hashlib.sha256(b"2").hexdigest()}


def test_a_lock_held_on_another_host_is_not_taken_over(here, finished_run):
    out = copy(finished_run, here)
    (out / LOCK).write_text(json.dumps({"pid": 1, "host": "another-host.example"}))
    before = tree(out)
    assert_one_line_error(cli(*LOCKED_COMMANDS["repro-force"][1], "--out", out), "in use", "another-host.example")
    assert tree(out) == before


STALE_COMMANDS = [
    pytest.param(("repro", *SMALL, "--passes", "1"), id="repro"),
    pytest.param(("repro", *SMALL, "--passes", "1", "--seeds", "0-1"), id="repro-batch"),
    pytest.param(("paper", *SMALL, "--passes", "1", "--seeds", "0-1", "--optimizer", "sgd", "--lr", "0.03"), id="paper"),
    pytest.param(("modern", "--engine", "fast", "--upto", "ce", "--seeds", "0", "--train-size", "100", "--test-size",
                  "50", "--quiet"), id="modern"),
    pytest.param((*FAST_SWEEP, "--lrs", "0.01,0.03"), id="sweep"),
]


@pytest.mark.parametrize("argv", STALE_COMMANDS)
def test_a_stale_lock_of_a_dead_process_is_taken_over_saying_so(here, fast_engine_warm, argv):
    out = here / "out"
    out.mkdir()
    pid = dead_pid()
    (out / LOCK).write_text(json.dumps({"pid": pid, "host": HOST}))
    r = cli(*argv, "--out", out)
    assert r.rc == 0, r.err
    assert "Traceback" not in r.err
    took = [line for line in r.lines if "took over the lock" in line]
    assert len(took) == 1 and str(pid) in took[0], r.err
    assert not (out / LOCK).exists()
    check_folder(out)


def test_a_killed_commands_temporary_files_go_when_its_lock_is_taken_over(here, finished_run):
    """kill -9 in the middle of a commit leaves io's temporary files: the next command on the folder
    removes them (the program's own names, in its own folder), and nothing else."""
    out = copy(finished_run, here)
    left = [out / ".metrics.jsonl.k3x_9a0q.tmp", out / "tensorboard" / ".events.out.ab12cd34.tmp"]
    mine = [out / "notes.tmp", out / ".mine.tmp"]
    for p in left + mine:
        p.write_text("half")
    (out / LOCK).write_text(json.dumps({"pid": dead_pid(), "host": HOST}))
    r = cli("repro", *SMALL, "--passes", "2", "--seed", "3", "--out", out, "--resume")
    assert r.rc == 0, r.err
    assert any("removed the 2 temporary files it left" in line for line in r.lines), r.err
    assert not any(p.exists() for p in left) and all(p.read_text() == "half" for p in mine)


@pytest.mark.parametrize("content", ["", "{not json", '{"pid": "12"}', "[1, 2]"])
def test_an_unreadable_lock_is_taken_over(here, finished_run, content):
    out = copy(finished_run, here)
    (out / LOCK).write_text(content)
    before = {k: v for k, v in tree(out).items() if k != LOCK}
    r = cli("repro", *SMALL, "--passes", "2", "--seed", "3", "--resume", "--out", out)
    assert r.rc == 0, r.err
    assert sum("took over the lock" in line for line in r.lines) == 1, r.err
    assert tree(out) == before   # a finished run: resuming changes nothing


def test_a_second_command_on_a_running_commands_folder_is_refused(here):
    """A real running command (its own process): a second command on its folder refuses, whatever it
    asks, and leaves it alone; the first one is then stopped and its folder is consistent."""
    args = ("repro", "--engine", "torch", "--seeds", "0-1", "--passes", "60", "--train-size", "30",
            "--test-size", "20", "--quiet", "--out", "busy")
    proc = spawn(here, *args)
    wait_until(proc, lambda: lines_in(here / "busy" / "lr0.03-seed0" / "metrics.jsonl") >= 1)
    assert_one_line_error(cli(*args), "already exists")
    for extra in (("--force",), ("--resume",)):
        assert_one_line_error(cli(*args, *extra), "in use by another lecun1989 command", str(proc.pid))
    assert proc.poll() is None, "the running command ended before the second one was refused: give it more passes"
    proc.send_signal(signal.SIGTERM)
    assert_interrupted(finish(proc, here), signal.SIGTERM)
    assert check_folder(here / "busy") >= 1


def test_paper_holds_its_folder_until_its_last_read(here, monkeypatch):
    """`paper` reads its runs once more after training, for the rejection line of its table: the folder
    stays locked until then, so a second command (its own process) cannot replace the runs under it."""
    from lecun1989.reading import rejection
    out, original, seen = here / "out", rejection.measure, {}

    def measure(paths, error, where):
        seen["lock"] = strict_json(out / LOCK)
        before = tree(out)
        done = subprocess.run([sys.executable, "-m", "lecun1989", *TINY_PAPER, "--force", "--out", str(out)],
                              cwd=here, capture_output=True, text=True, timeout=300)
        seen["second"] = Result(done.returncode, done.stdout, done.stderr)
        seen["untouched"] = tree(out) == before
        return original(paths, error, where)

    monkeypatch.setattr(rejection, "measure", measure)
    r = cli(*TINY_PAPER, "--out", out)
    assert r.rc == 0, r.err
    assert seen["lock"] == {"pid": os.getpid(), "host": HOST}
    assert_one_line_error(seen["second"], "in use by another lecun1989 command", f"pid {os.getpid()}",
                          command="paper")
    assert seen["untouched"]
    assert check_folder(out) == 1
    table = [line for line in r.out.splitlines() if line.startswith("reject for 1%")]
    assert len(table) == 1 and "not measured" not in table[0], r.out


NESTED = ("--engine", "torch", "--seeds", "0-1", "--train-size", "30", "--test-size", "20", "--quiet")


@pytest.mark.parametrize("case", ["force-a-run-of-a-running-study", "force-a-study-holding-a-running-command"])
def test_a_folder_inside_or_around_a_running_commands_folder_is_refused(here, case):
    if case == "force-a-run-of-a-running-study":
        proc = spawn(here, "paper", *NESTED, "--optimizer", "sgd", "--lr", "0.03", "--passes", "60", "--out", "busy")
        first = here / "busy" / "lr0.03-seed0"   # a run of `paper`: its own command may start it over, but not now
        second = ("paper", *SMALL, "--passes", "1", "--seeds", "0", "--optimizer", "sgd", "--lr", "0.03", "--force",
                  "--out", first)
    else:
        assert cli("paper", *NESTED, "--optimizer", "sgd", "--lr", "0.03", "--passes", "1", "--out", "busy").rc == 0
        proc = spawn(here, "repro", *NESTED, "--passes", "60", "--out", "busy/inner")
        first = here / "busy" / "inner" / "lr0.03-seed0"
        second = ("paper", *NESTED, "--optimizer", "sgd", "--lr", "0.03", "--passes", "1", "--force", "--out", "busy")
    try:
        wait_until(proc, lambda: lines_in(first / "metrics.jsonl") >= 1)
        r = cli(*second)
        assert proc.poll() is None, "the running command ended too soon: give it more passes"
    finally:
        proc.send_signal(signal.SIGTERM)
        finish(proc, here)
    assert_one_line_error(r, "in use")


# =================================================================================================
# finite: non-finite or out-of-range option values are refused up front
# =================================================================================================

NON_FINITE = [
    ("repro", "--lr", "inf"), ("repro", "--lr", "nan"), ("repro", "--lr=-inf"), ("repro", "--lr", "-inf"),
    ("repro", "--lr", "1e400"),
    ("repro", "--lrs", "0.01,nan"), ("repro", "--lrs", "inf,0.01"),
    ("repro", "--output-bias", "nan"), ("repro", "--output-bias=-inf"),
    ("repro", "--schedule", "nan"), ("repro", "--schedule", "1:2,inf"), ("repro", "--schedule", "linear:nan"),
    ("repro", "--schedule", "inf:2,0.5"),
    ("repro", "--mu", "inf"), ("repro", "--weight-decay", "inf"), ("repro", "--weight-decay", "nan"),
    ("repro", "--dropout", "nan"), ("repro", "--dropout", "inf"), ("repro", "--hessian-decay", "nan"),
    ("paper", "--mu", "nan"), ("paper", "--lr", "inf"),
    ("sweep", "--lrs", "0.01,inf"), ("sweep", "--mus", "nan", "--recipe", "paper", "--lrs", "0.01"),
    ("sweep", "--lr-grid", "nan:1:3"), ("sweep", "--lr-grid", "1e-3:inf:3"), ("sweep", "--lr-grid", "1e-3:1e400:4"),
]


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")   # see the next test
@pytest.mark.parametrize("argv", NON_FINITE, ids=" ".join)
def test_a_non_finite_option_is_refused_up_front(here, argv):
    command, *options = argv
    base = {"repro": ("repro", *SMALL, "--passes", "1"), "paper": ("paper", *SMALL, "--passes", "1"),
            "sweep": FAST_SWEEP}[command]
    r = cli(*base, *options, "--out", here / "out")
    assert_one_line_error(r, command=command)
    assert os.listdir(here) == []


def test_an_infinite_grid_bound_is_one_line_in_a_real_process(here):
    """In a process of its own, where Python's warnings reach stderr (pytest captures them in this one)."""
    done = subprocess.run([sys.executable, "-m", "lecun1989", *FAST_SWEEP, "--lr-grid", "1e-3:inf:3", "--out", "out"],
                          cwd=here, capture_output=True, text=True, timeout=120)
    assert_one_line_error(Result(done.returncode, done.stdout, done.stderr), command="sweep")
    assert os.listdir(here) == []


OUT_OF_RANGE = [
    (("repro", "--output-bias", "1e308"), "--output-bias 1e+308 is outside -10000 .. 10000"),
    (("repro", "--output-bias=-20000"), "--output-bias -20000 is outside -10000 .. 10000"),
    (("paper", "--output-bias", "1e5"), "--output-bias 100000 is outside"),
    (("info", "--output-bias", "1e308"), "--output-bias 1e+308 is outside"),
    (("repro", "--lr", "1e308"), "learning rate 1e+308 is more than float32 holds"),
    (("repro", "--lrs", "0.01,1e39"), "learning rate 1e+39 is more than float32 holds"),
    (("repro", "--optimizer", "momentum", "--lr", "1e39"), "learning rate 1e+39 is more than float32 holds"),
    (("repro", "--schedule", "1:1,1e308"), "largest factor 1e+308"),
    (("repro", "--schedule", "linear:1e300"), "largest factor 1e+300"),
    (("paper", "--mu", "1e39"), "mu 1e+39 is more than float32 holds"),
    (("repro", "--optimizer", "adamw", "--weight-decay", "1e39"), "weight decay 1e+39 is more than float32 holds"),
    (("repro", "--dropout", "2"), "--dropout must be in [0, 1)"),
    (("repro", "--shift", "-1"), "--shift must be 0, 1 or 2"),
    (("repro", "--optimizer", "momentum", "--momentum", "1e308"), "--momentum must be in [0, 1)"),
    (("repro", "--optimizer", "sdlm", "--hessian", "running", "--hessian-decay", "1e308"), "--hessian-decay"),
    (("sweep", "--lrs", "0.01,1e39"), "learning rate 1e+39 is more than float32 holds"),
    (("sweep", "--recipe", "paper", "--lrs", "0.01", "--mus", "1e39"), "mu 1e+39 is more than float32 holds"),
]


@pytest.mark.parametrize("argv, needle", OUT_OF_RANGE, ids=[" ".join(a) for a, _ in OUT_OF_RANGE])
def test_a_finite_option_out_of_its_range_is_refused_up_front(here, argv, needle):
    """Finite, but more than the network or the run's precision can hold: --output-bias 1e308 overflowed
    in torch (a traceback), --lr 1e308 in PyTorch's SGD step."""
    command, *options = argv
    base = {"repro": ("repro", *SMALL, "--passes", "1"), "paper": ("paper", *SMALL, "--passes", "1"),
            "sweep": FAST_SWEEP, "info": ("info",)}[command]
    r = cli(*base, *options, *(("--out", here / "out") if command != "info" else ()))
    assert_one_line_error(r, needle, command=command)
    assert os.listdir(here) == []


def test_the_largest_learning_rate_a_precision_holds_trains_and_diverges(here):
    """The bound is the precision's, not a guess: just under it the run trains, and diverges at once."""
    r = cli("repro", *SMALL, "--passes", "1", "--lr", "3e38", "--out", here / "out")
    assert_diverged_command(r, "repro", "diverged at pass 1")


def test_more_hessian_samples_than_training_examples_are_refused(here):
    r = cli("repro", *SMALL, "--passes", "1", "--optimizer", "sdlm", "--hessian-samples", "100000", "--out", "out")
    assert_one_line_error(r, "--hessian-samples 100000 is more than the 100 training examples there are",
                          "give at most 100", command="repro")
    assert os.listdir(here) == []
    r = cli("paper", "--engine", "torch", "--validation", "7200", "--test-size", "50", "--quiet", "--passes", "1",
            "--hessian-samples", "92", "--out", "out")   # the training examples left beside the validation split
    assert_one_line_error(r, "--hessian-samples 92 is more than the 91 training examples there are",
                          command="paper")
    assert os.listdir(here) == []


def test_the_recipes_hessian_samples_are_cut_to_the_training_examples_and_said_so(here):
    """sdlm's default 500 on 100 training examples averages over the 100 there are: the log and
    config.json say 100, not the 500 that were not used."""
    r = cli("repro", *SMALL, "--passes", "1", "--optimizer", "sdlm", "--out", "out")
    assert r.rc == 0, r.err
    assert "(h averaged over 100 examples before each pass)" in (here / "out" / "log.txt").read_text()
    assert strict_json(here / "out" / "config.json")["optimizer"]["hessian_samples"] == 100
    r = cli("repro", *SMALL, "--passes", "1", "--optimizer", "sdlm", "--hessian-samples", "100", "--out", "given")
    assert r.rc == 0, r.err
    assert (here / "given" / "metrics.jsonl").read_bytes() == (here / "out" / "metrics.jsonl").read_bytes()


IGNORED = [
    (("repro", "--mu", "0.1"), "--mu is a setting of the sdlm optimizer, not of sgd", "--optimizer sdlm"),
    (("repro", "--hessian", "pass"), "--hessian is a setting of the sdlm optimizer, not of sgd", "--optimizer sdlm"),
    (("repro", "--hessian-samples", "50"), "--hessian-samples is a setting of the sdlm optimizer", "--optimizer sdlm"),
    (("repro", "--hessian-decay", "0.1"), "--hessian-decay is a setting of the sdlm optimizer", "--optimizer sdlm"),
    (("repro", "--momentum", "0.5"), "--momentum is a setting of the momentum optimizer, not of sgd",
     "--optimizer momentum"),
    (("repro", "--optimizer", "adamw", "--momentum", "0.5"), "not of adamw", "--optimizer momentum"),
    (("repro", "--weight-decay", "0.1"), "--weight-decay is a setting of the adamw optimizer, not of sgd",
     "--optimizer adamw"),
    (("paper", "--momentum", "0.9"), "--momentum is a setting of the momentum optimizer, not of sdlm",
     "--optimizer momentum"),
    (("paper", "--optimizer", "sgd", "--mu", "0.02"), "--mu is a setting of the sdlm optimizer, not of sgd",
     "--optimizer sdlm"),
    (("paper", "--optimizer", "momentum", "--hessian", "running"), "not of momentum", "--optimizer sdlm"),
    (("paper", "--hessian", "pass", "--hessian-decay", "0.05"), "--hessian-decay is a setting of sdlm's running "
     "curvature", "--hessian running"),
    (("repro", "--optimizer", "sdlm", "--hessian-decay", "0.05"), "running curvature", "--hessian running"),
]


@pytest.mark.parametrize("argv, needle, fix", IGNORED, ids=[" ".join(a) for a, _, _ in IGNORED])
def test_a_setting_of_another_optimizer_is_refused_not_ignored(here, argv, needle, fix):
    """As `sweep --mus` without sdlm is: a setting the run's optimizer does not use would be left out of
    its config.json and log without a word."""
    command, *options = argv
    r = cli(command, *SMALL, "--passes", "1", *options, "--out", "out")
    assert_one_line_error(r, needle, f"drop it or add {fix}", command=command)
    assert os.listdir(here) == []


def test_the_recipes_own_optimizer_settings_and_those_given_for_its_optimizer_still_work(here):
    r = cli("paper", *SMALL, "--passes", "1", "--seeds", "0", "--mu", "0.05", "--hessian-decay", "0.02", "--out",
            "sdlm")
    assert r.rc == 0, r.err
    optimizer = strict_json(here / "sdlm" / "config.json")["optimizer"]
    assert optimizer == {"name": "sdlm", "schedule": "constant", "mu": 0.05, "hessian_samples": 100,
                         "hessian": "running", "decay": 0.02}
    r = cli("paper", *SMALL, "--passes", "1", "--seeds", "0", "--optimizer", "sgd", "--lr", "0.03", "--out", "sgd")
    assert r.rc == 0, r.err   # the recipe's own mu is not the user's: nothing to refuse
    assert strict_json(here / "sgd" / "config.json")["optimizer"] == {"name": "sgd", "schedule": "constant"}


# =================================================================================================
# diverge: a run whose loss or weights stop being finite stops at that pass; the others go on
# =================================================================================================

def assert_diverged_command(r: Result, command: str, *needles: str) -> str:
    """Exit 3; the command's last word is one error line naming the diverged runs; no traceback."""
    assert r.rc == 3, r.err
    assert "Traceback" not in r.out + r.err
    errors = [line for line in r.lines if ": error: " in line]
    assert len(errors) == 1 and r.lines[-1] == errors[0], r.err
    assert r.lines[-1].startswith(f"lecun1989 {command}: error: "), r.err
    for needle in needles:
        assert needle in r.lines[-1], (needle, r.err)
    return r.lines[-1]


def test_a_single_run_that_explodes_stops_at_that_pass(here):
    out = here / "out"
    r = cli("repro", *SMALL, "--passes", "2", "--lr", "1e6", "--out", out)
    assert_diverged_command(r, "repro", "diverged at pass 1")
    assert check_folder(out) is None   # its only run diverged
    rows = metrics_rows(out)
    assert rows == [{"pass": 1, "diverged": True, "reason": rows[0]["reason"]}] and "exploded" in rows[0]["reason"]
    assert "diverged at pass 1" in (out / "log.txt").read_text()
    assert strict_json(out / "summary.json")["diverged"] is True
    assert not (out / "weights.safetensors").exists()


def test_a_run_that_diverges_at_pass_2_keeps_pass_1(here):
    out = here / "out"
    r = cli("repro", *SMALL, "--passes", "2", "--optimizer", "adamw", "--lr", "0.001", "--schedule", "1:1,1e9",
            "--out", out)
    assert_diverged_command(r, "repro", "diverged at pass 2")
    check_folder(out)
    rows = metrics_rows(out)
    assert rows[0]["pass"] == 1 and "train_loss" in rows[0] and rows[1]["diverged"] is True
    assert load_weights(out / "weights.safetensors")[1]["pass"] == "1"
    assert "weights.safetensors holds pass 1" in (out / "log.txt").read_text()
    summary = strict_json(out / "summary.json")
    assert summary["diverged"] is True and summary["diverged_at_pass"] == 2


def test_in_a_batch_the_other_runs_go_on(here):
    out = here / "out"
    r = cli("repro", *SMALL, "--passes", "2", "--optimizer", "adamw", "--lrs", "0.001,1e5", "--seeds", "4", "--out",
            out)
    assert_diverged_command(r, "repro", "1 of 2 runs diverged", "lr100000-seed4 (pass 1)")
    assert check_folder(out) == 2
    good = strict_json(out / "lr0.001-seed4" / "summary.json")
    assert not good.get("diverged") and [row["pass"] for row in metrics_rows(out / "lr0.001-seed4")] == [1, 2]
    assert strict_json(out / "lr100000-seed4" / "summary.json")["diverged"] is True


def test_a_study_never_averages_a_diverged_run(here):
    out = here / "out"
    r = cli("paper", *SMALL, "--passes", "1", "--optimizer", "adamw", "--lrs", "0.001,1e5", "--seeds", "1",
            "--out", out)
    assert_diverged_command(r, "paper", "1 of 2 runs diverged", "lr100000-seed1")
    check_folder(out)
    study = strict_json(out / "study.json")
    assert study["final"]["test_error"]["n"] == 1 and [d["pass"] for d in study["diverged"]] == [1]
    assert study["per_run"] == [metrics_rows(out / "lr0.001-seed1")[-1]]


def test_a_study_whose_runs_all_diverge(here):
    out = here / "out"
    r = cli("paper", *SMALL, "--passes", "1", "--lr", "1e6", "--seeds", "1,2", "--optimizer", "sgd", "--out", out)
    assert_diverged_command(r, "paper", "2 of 2 runs diverged")
    check_folder(out)
    study = strict_json(out / "study.json")
    assert study["final"] is None and len(study["diverged"]) == 2


def test_a_sweep_leaves_a_diverging_point_out_of_the_choice(here):
    out = here / "out"
    r = cli(*FAST_SWEEP, "--recipe", "ce", "--lrs", "0.01,1e4", "--out", out)
    assert r.rc == 0, r.err
    result = strict_json(out / "sweep.json")
    assert result["selected"]["lr"] == 0.01
    assert [p["diverged"] for p in result["points"]] == [0, 1]
    check_folder(out)


def test_a_sweep_whose_points_all_diverge_is_exit_3_and_can_be_redone(here):
    out = here / "out"
    r = cli(*FAST_SWEEP, "--recipe", "ce", "--lrs", "1e4,1e5", "--out", out)
    assert_diverged_command(r, "sweep", "every grid point had a diverging run")
    check_folder(out)
    assert cli(*FAST_SWEEP, "--recipe", "ce", "--lrs", "0.01", "--force", "--out", out).rc == 0


def test_the_compiled_engine_stops_a_diverged_run_too(here, fast_engine_warm):
    out = here / "out"
    r = cli("repro", "--engine", "fast", "--train-size", "100", "--test-size", "50", "--quiet", "--passes", "2",
            "--optimizer", "adamw", "--lrs", "0.001,1e5", "--out", out)
    assert_diverged_command(r, "repro", "1 of 2 runs diverged")
    assert check_folder(out) == 2


# =================================================================================================
# interrupt: SIGINT / SIGTERM at any moment
# =================================================================================================

TORCH_BATCH = ("repro", "--engine", "torch", "--seeds", "0-1", "--passes", "3", "--train-size", "30", "--test-size",
               "20", "--quiet")


@pytest.fixture(scope="module")
def torch_batch_reference(module_env, tmp_path_factory) -> Path:
    return made(module_env, tmp_path_factory, "torch-reference", *TORCH_BATCH)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_held_signal_is_noted_as_it_comes_and_delivered_when_the_block_ends(sig):
    """A compile cannot be stopped midway: the engine is told of an interrupt at once (to say, if the
    compile goes on, that the command stops after it), and the interrupt stops it when the block ends."""
    from lecun1989.errors import handle_sigterm
    notes, after = [], []
    previous = handle_sigterm()   # as the command line does: SIGTERM raises Terminated, an interrupt
    try:
        with pytest.raises(KeyboardInterrupt), io_module.signals_deferred(notes.append):
            signal.raise_signal(sig)
            signal.raise_signal(sig)
            after.append(list(notes))   # told at once, and once
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert after == [[sig]] and notes == [sig]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupt_during_training_then_resume(here, torch_batch_reference, sig):
    proc = spawn(here, *TORCH_BATCH, "--out", "out")
    wait_until(proc, lambda: lines_in(here / "out" / "lr0.03-seed0" / "metrics.jsonl") >= 1)
    proc.send_signal(sig)
    r = finish(proc, here)
    assert_interrupted(r, sig)
    done = check_folder(here / "out")
    assert done in (1, 2) and f"holds pass {done} of 3" in r.err and "--resume" in r.err
    resumed = cli(*TORCH_BATCH, "--out", "out", "--resume")
    assert resumed.rc == 0, resumed.err
    assert check_folder(here / "out") == 3
    same_results(here / "out", torch_batch_reference)


MODERN = ("modern", "--engine", "fast", "--seeds", "0-1", "--train-size", "100", "--test-size", "50", "--quiet")


@pytest.fixture(scope="module")
def modern_reference(module_env, fast_engine_warm, tmp_path_factory) -> Path:
    return made(module_env, tmp_path_factory, "modern-reference", *MODERN)


def test_interrupt_a_study_with_optimizer_state_and_noise_then_resume(here, modern_reference):
    """AdamW's moments, dropout and shifts: what state.safetensors must carry for --resume to give the
    same numbers."""
    proc = spawn(here, *MODERN, "--out", "out")
    wait_until(proc, lambda: lines_in(here / "out" / "lr0.0003-seed1" / "metrics.jsonl") >= 5)
    time.sleep(random.Random(1).uniform(0, 0.05))
    proc.send_signal(signal.SIGTERM)
    assert_interrupted(finish(proc, here), signal.SIGTERM)
    done = check_folder(here / "out")
    assert 5 <= done < 80 and not (here / "out" / "study.json").exists()
    resumed = cli(*MODERN, "--out", "out", "--resume")
    assert resumed.rc == 0, resumed.err
    assert check_folder(here / "out") == 80
    same_results(here / "out", modern_reference)
    assert strict_json(here / "out" / "study.json")["final"] == strict_json(modern_reference / "study.json")["final"]


WRITING = ("repro", "--engine", "fast", "--seeds", "0-15", "--train-size", "10", "--test-size", "10", "--passes", "12",
           "--quiet")


@pytest.fixture(scope="module")
def writing_reference(module_env, fast_engine_warm, tmp_path_factory) -> Path:
    return made(module_env, tmp_path_factory, "writing-reference", *WRITING)


@pytest.mark.parametrize("passes_done, delay, sig", [(1, 0.0, signal.SIGTERM), (3, 0.023, signal.SIGINT),
                                                    (6, 0.051, signal.SIGTERM), (9, 0.087, signal.SIGINT)])
def test_interrupt_while_sixteen_runs_commit_their_files(here, writing_reference, passes_done, delay, sig):
    """Sixteen runs on tiny subsets: most of the time goes into committing their files. The signal comes
    a few milliseconds into a pass (a pass takes about 0.1 to 0.4 s here)."""
    proc = spawn(here, *WRITING, "--out", "out")
    wait_until(proc, lambda: lines_in(here / "out" / "lr0.03-seed15" / "metrics.jsonl") >= passes_done)
    time.sleep(delay)
    proc.send_signal(sig)
    r = finish(proc, here)
    if r.rc == 0 or not r.lines or "error" in r.lines[-1] or not re.search("interrupted|terminated", r.lines[-1]):
        pytest.fail(f"the command finished before the signal (rc {r.rc}); give it more passes")
    assert_interrupted(r, sig)
    assert 1 <= check_folder(here / "out") < 12
    resumed = cli(*WRITING, "--out", "out", "--resume")
    assert resumed.rc == 0, resumed.err
    assert check_folder(here / "out") == 12
    same_results(here / "out", writing_reference)


EVALUATING = ("repro", "--engine", "fast", "--seeds", "0-1", "--train-size", "7291", "--test-size", "2007",
              "--passes", "3", "--quiet")

# Sends the signal from a timer while the compiled evaluation of pass AT runs (it takes tens of ms).
EVAL_DRIVER = """
import os, signal, sys, threading
from lecun1989 import cli
from lecun1989.engines import fast
at, sig = int(os.environ["AT"]), getattr(signal, os.environ["SIG"])
evaluate, calls = fast.FastEngine.evaluate, []
def timed(self):
    calls.append(1)
    if len(calls) == at:
        threading.Timer(0.005, os.kill, (os.getpid(), sig)).start()
    return evaluate(self)
fast.FastEngine.evaluate = timed
sys.exit(cli.main(sys.argv[1:]))
"""


@pytest.fixture(scope="module")
def evaluating_reference(module_env, fast_engine_warm, tmp_path_factory) -> Path:
    return made(module_env, tmp_path_factory, "evaluating-reference", *EVALUATING)


@pytest.mark.parametrize("at, sig", [(1, "SIGTERM"), (2, "SIGINT")])
def test_interrupt_during_the_compiled_evaluation(here, evaluating_reference, at, sig):
    proc = spawn(here, *EVALUATING, "--out", "out", env={"AT": str(at), "SIG": sig}, python=("-c", EVAL_DRIVER))
    r = finish(proc, here)
    assert_interrupted(r, getattr(signal, sig))
    # interrupted in pass 1, the folder holds pass 0 (or nothing at all); in pass 2, pass 1
    done = check_folder(here / "out") if (here / "out").exists() else None
    assert done in ((0, None) if at == 1 else (at - 1,)), done
    resumed = cli(*EVALUATING, "--out", "out", "--resume")
    assert resumed.rc == 0, resumed.err
    same_results(here / "out", evaluating_reference)


@pytest.mark.parametrize("delay", [0.02, 0.09])
def test_interrupt_at_a_random_moment_of_a_pass_with_a_long_evaluation(here, fast_engine_warm, delay):
    """Best effort: somewhere in training, evaluation or committing of pass 2."""
    proc = spawn(here, *EVALUATING, "--out", "out")
    wait_until(proc, lambda: lines_in(here / "out" / "lr0.03-seed1" / "metrics.jsonl") >= 1)
    time.sleep(delay)
    proc.send_signal(signal.SIGINT)
    r = finish(proc, here)
    assert r.rc in (130, 0, -signal.SIGINT), r.err   # (-2: the signal came as the finished command exited)
    if r.rc == 130:
        assert_interrupted(r, signal.SIGINT)
    check_folder(here / "out")


@pytest.mark.parametrize("sig, seeds", [(signal.SIGINT, "0"), (signal.SIGTERM, "0-7")], ids=["single-SIGINT",
                                                                                             "lanes-SIGTERM"])
def test_interrupt_while_the_engine_compiles(here, tmp_path_factory, sig, seeds):
    """A cold cache (an empty NUMBA_CACHE_DIR): the signal comes while numba compiles."""
    cache = tmp_path_factory.mktemp("numba-cache")
    args = ("repro", "--engine", "fast", "--seeds", seeds, "--train-size", "100", "--test-size", "50", "--passes",
            "2", "--quiet", "--out", "out")
    proc = spawn(here, *args, env={"NUMBA_CACHE_DIR": str(cache)})
    first = here / "out" / ("config.json" if seeds == "0" else "lr0.03-seed0/config.json")
    wait_until(proc, first.exists)
    time.sleep(3)
    proc.send_signal(sig)
    sent = time.monotonic()
    r = finish(proc, here)
    assert_interrupted(r, sig)
    held = [line for line in r.err.splitlines() if HELD_NOTE.match(line)]
    assert len(held) <= 1, r.err
    if time.monotonic() - sent > 2.5:   # held for over NOTE_AFTER_S: numba was compiling, and the command said so
        assert held, r.err
    if (here / "out").exists():
        assert check_folder(here / "out") in (0, None)


# Runs `python -m lecun1989` and sends the signal as the module named $MODULE begins to import: at a
# moment, not after a guessed delay (how far a process gets in 0.4 s depends on the machine's load and on
# what is cached).
IMPORT_DRIVER = """
import importlib.abc, os, runpy, signal, sys
class Interrupt(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == os.environ["MODULE"]:
            sys.meta_path.remove(self)
            signal.raise_signal(getattr(signal, os.environ["SIG"]))
        return None
sys.meta_path.insert(0, Interrupt())
sys.argv = ["lecun1989", *sys.argv[1:]]
runpy.run_module("lecun1989", run_name="__main__", alter_sys=True)
"""


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_interrupt_while_it_starts(here, sig):
    """While torch loads (its C++ import would abort the process on an interrupt raised inside it): one
    line, and whatever was written is consistent."""
    proc = spawn(here, "repro", *SMALL, "--passes", "1", "--out", "out", env={"SIG": sig, "MODULE": "torch"},
                 python=("-c", IMPORT_DRIVER))
    assert_interrupted(finish(proc, here), getattr(signal, sig))
    if (here / "out").exists():
        assert check_folder(here / "out") in (0, None)


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_interrupt_while_the_command_line_module_loads(here, sig):
    """Before main() runs."""
    proc = spawn(here, "repro", *SMALL, "--passes", "1", "--out", "out", env={"SIG": sig, "MODULE": "lecun1989.cli"},
                 python=("-c", IMPORT_DRIVER))
    assert_interrupted(finish(proc, here), getattr(signal, sig))
    assert not (here / "out").exists()


def test_a_closed_output_stops_the_command_like_an_interrupt(here):
    """`lecun1989 repro | head -1`: the reader leaves; the command stops with one line, keeps what it
    committed, and --resume finishes it. (Unbuffered, so that the closed pipe is seen at the next line,
    as on a terminal; block-buffered, the whole output fits the buffer and the run simply finishes.)"""
    argv = ("repro", *SMALL, "--passes", "3", "--seeds", "0-1", "--out", "out")
    proc = subprocess.Popen([sys.executable, "-m", "lecun1989", *argv], cwd=here, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    proc.stdout.readline()
    proc.stdout.close()   # as `head -1` does
    err = proc.stderr.read()
    assert proc.wait(timeout=180) == 141, err
    assert err.count("\n") == 1 and "output closed" in err and "Traceback" not in err
    check_folder(here / "out")
    assert cli(*argv, "--resume").rc == 0
    assert check_folder(here / "out") == 3


def test_interrupt_inside_a_commit_waits_for_the_whole_pass(here, finished_run):
    """SIGTERM between two renames of a commit is held until every file of the pass is in place."""
    out = here / "out"
    with signal_at(io_module.os, "replace", n=9, sig=signal.SIGTERM):   # pass 1's commit, mid-way
        r = cli("repro", *SMALL, "--passes", "2", "--seed", "3", "--out", out)
    assert_interrupted(r, signal.SIGTERM)
    assert check_folder(out) == 1
    assert cli("repro", *SMALL, "--passes", "2", "--seed", "3", "--out", out, "--resume").rc == 0
    same_results(out, finished_run)


def test_interrupt_after_training_before_the_study_files(here):
    """The runs finished but study.json was not written yet: --resume writes it."""
    out = here / "out"
    argv = ("paper", *SMALL, "--passes", "1", "--seeds", "0-1", "--optimizer", "sgd", "--lr", "0.03", "--out", out)
    import lecun1989.results as results_module
    with signal_at(results_module, "write_study", sig=signal.SIGINT, when="before"):
        r = cli(*argv)
    assert_interrupted(r, signal.SIGINT)
    assert check_folder(out) == 1 and not (out / "study.json").exists()
    r = cli(*argv, "--resume")
    assert r.rc == 0, r.err
    assert strict_json(out / "study.json")["final"]["test_error"]["n"] == 2


def test_interrupt_while_the_folders_are_marked(here):
    out = here / "out"
    argv = ("repro", *SMALL, "--passes", "1", "--seeds", "0-2", "--out", out)
    with signal_at(train_module, "marker", test=lambda path, kind, command=None: kind == "run"):
        assert_interrupted(cli(*argv), signal.SIGINT)
    r = cli(*argv, "--resume")   # (and when the study's marker is missing, --force refuses as well)
    assert r.rc == 0, r.err
    assert check_folder(out) == 1


def test_interrupt_while_force_replaces_a_folder(here, partial_batch):
    """SIGTERM while --force empties a marked folder: the marker stays, so --force may finish the job."""
    out = copy(partial_batch, here)
    argv = ("repro", *SMALL, "--passes", "2", "--seeds", "0-1", "--out", out)
    with signal_at(folders_module.shutil, "rmtree", sig=signal.SIGTERM):
        assert_interrupted(cli(*argv, "--force"), signal.SIGTERM)
    assert (out / MARKER).is_file()
    r = cli(*argv, "--force")
    assert r.rc == 0, r.err
    assert check_folder(out) == 2


def test_interrupt_a_sweep_before_its_settings_are_written(here):
    out = here / "out"
    argv = (*FAST_SWEEP, "--lrs", "0.01,0.03", "--out", out)
    with signal_at(sweep_module, "marker"):
        assert_interrupted(cli(*argv), signal.SIGINT)
    r = cli(*argv)
    assert r.rc == 0, r.err


def test_interrupt_a_sweep_after_its_validation_runs_then_rerun(here):
    out = here / "out"
    argv = (*FAST_SWEEP, "--lrs", "0.01,0.03", "--out", out)
    with signal_at(sweep_module, "train", sig=signal.SIGTERM):
        r = cli(*argv)
    assert_interrupted(r, signal.SIGTERM)
    assert r.lines[0].endswith("keeps what was trained; the same command continues it")   # no --resume to give
    check_folder(out)
    assert not (out / "sweep.json").exists()
    r = cli(*argv)
    assert r.rc == 0, r.err
    assert "finished before, skipped" in r.out
    check_folder(out)
    assert strict_json(out / "sweep.json")["selected"]["lr"] in (0.01, 0.03)


# =================================================================================================
# resume: continues from the last completed pass; anything else is a one-line refusal
# =================================================================================================

@pytest.mark.parametrize("change, differs", [(("--lr", "0.01"), "lr0.01-seed0"), (("--passes", "3"), "passes"),
                                             (("--optimizer", "adamw"), "optimizer"),
                                             (("--train-size", "90"), "data"), (("--activation", "relu"), "net")])
def test_resume_with_other_settings_is_refused(here, partial_batch, change, differs):
    out = copy(partial_batch, here)
    before = tree(out)
    argv = ["repro", *SMALL, "--passes", "2", "--seeds", "0-1", "--out", out, "--resume"]
    for i in range(0, len(change), 2):
        if change[i] in argv:
            argv[argv.index(change[i]) + 1] = change[i + 1]
        else:
            argv += change[i:i + 2]
    assert_one_line_error(cli(*argv), differs)
    assert tree(out) == before


def test_resume_continues_from_the_last_completed_pass(here, partial_batch):
    out = copy(partial_batch, here)
    assert check_folder(out) == 1
    r = cli("repro", *SMALL, "--passes", "2", "--seeds", "0-1", "--out", out, "--resume")
    assert r.rc == 0, r.err
    assert f"resuming {out} after pass 1 of 2" in r.out
    assert check_folder(out) == 2


def test_resume_after_one_run_of_the_batch_diverged(here):
    """The diverged run stays stopped; the other one finishes; the command again ends with exit 3."""
    argv = ("repro", *SMALL, "--passes", "2", "--optimizer", "adamw", "--lrs", "0.001,1e5", "--seeds", "4", "--out",
            here / "out")
    with signal_at(train_module, "commit", n=2):
        assert_interrupted(cli(*argv), signal.SIGINT)
    assert check_folder(here / "out") == 1
    assert_diverged_command(cli(*argv, "--resume"), "repro", "lr100000-seed4 (pass 1)")
    assert check_folder(here / "out") == 2
    assert [row["pass"] for row in metrics_rows(here / "out" / "lr100000-seed4")] == [1]


def test_resume_of_a_finished_run_changes_nothing(here, finished_run):
    out = copy(finished_run, here)
    before = tree(out)
    r = cli("repro", *SMALL, "--passes", "2", "--seed", "3", "--out", out, "--resume")
    assert r.rc == 0, r.err
    assert tree(out) == before


@pytest.mark.parametrize("damage, needle", [
    ("sibling-behind", "different passes"),
    ("weights-truncated", "weights.safetensors"),
    ("weights-tampered", "weights.safetensors"),
    ("metrics-nan", "metrics.jsonl"),
    ("config-missing", "config.json"),
    ("run-unmarked", "lr0.03-seed1"),
    ("metrics-extra-pass", "metrics.jsonl's passes are 1, 99, not 1 to 2 in order"),
    ("metrics-emptied", "log.txt has 1 passes and metrics.jsonl 0"),
    ("log-behind", "log.txt has 0 passes and metrics.jsonl 1"),
    ("weights-of-another-pass", "weights.safetensors holds pass 2 and metrics.jsonl ends at pass 1"),
    ("weights-missing", "weights.safetensors is missing"),
    ("weights-of-another-run", "weights.safetensors holds the run of seed 1, lr 0.03, not this one's"),
])
def test_resume_of_a_damaged_folder_is_one_line(here, partial_batch, damage, needle):
    """A folder whose files do not tell one story (damaged, or edited by hand) is refused, not continued
    from the wrong pass."""
    out = copy(partial_batch, here)
    run0, run1 = out / "lr0.03-seed0", out / "lr0.03-seed1"
    header_only = (run1 / "log.txt").read_text().splitlines()[0] + "\n"
    if damage == "sibling-behind":   # as if two commands had written it: one run, whole, back at pass 0
        (run1 / "metrics.jsonl").write_text("")
        (run1 / "log.txt").write_text(header_only)
        (run1 / "weights.safetensors").unlink()
    elif damage == "metrics-extra-pass":
        with open(run0 / "metrics.jsonl", "a") as f:
            f.write('{"pass": 99, "train_loss": 1}\n')
    elif damage == "metrics-emptied":
        (run0 / "metrics.jsonl").write_text("")
    elif damage == "log-behind":
        (run0 / "log.txt").write_text(header_only)
    elif damage == "weights-of-another-pass":
        tensors, meta = load_weights(run0 / "weights.safetensors")
        (run0 / "weights.safetensors").write_bytes(rundir_module.tensors_blob(tensors, {**meta, "pass": "2"}))
    elif damage == "weights-missing":
        (run0 / "weights.safetensors").unlink()
    elif damage == "weights-of-another-run":   # its sibling's, of the same pass
        shutil.copy(run1 / "weights.safetensors", run0 / "weights.safetensors")
    elif damage == "weights-truncated":
        (run0 / "weights.safetensors").write_bytes((run0 / "weights.safetensors").read_bytes()[:1000])
    elif damage == "weights-tampered":
        blob = bytearray((run0 / "weights.safetensors").read_bytes())
        blob[-5] ^= 0xFF
        (run0 / "weights.safetensors").write_bytes(bytes(blob))
    elif damage == "metrics-nan":
        (run1 / "metrics.jsonl").write_text('{"pass": 1, "train_loss": NaN}\n')
    elif damage == "config-missing":
        (run0 / "config.json").unlink()
    else:
        (run1 / MARKER).unlink()
    before = tree(out)
    assert_one_line_error(cli("repro", *SMALL, "--passes", "2", "--seeds", "0-1", "--out", out, "--resume"), needle)
    assert tree(out) == before


@pytest.mark.parametrize("what", ["users-folder", "a-sweep", "a-study-as-a-single-run", "no-out"])
def test_resume_of_what_is_not_this_commands_folder_is_refused(here, partial_batch, what):
    out = here / "out"
    if what == "users-folder":
        user_folder(out)
    elif what == "a-sweep":
        out.mkdir()
        (out / MARKER).write_text(json.dumps({"kind": "sweep"}))
        (out / "sweep-config.json").write_text("{}")
    elif what == "a-study-as-a-single-run":
        copy(partial_batch, here)
    before = tree(here)
    argv = ["repro", *SMALL, "--passes", "2", "--resume"] + ([] if what == "no-out" else ["--out", out])
    assert_one_line_error(cli(*argv))
    assert tree(here) == before


# =================================================================================================
# data: modified and malformed raw files; LECUN1989_OFFLINE
# =================================================================================================

@pytest.fixture(scope="module")
def usps_rows(raw_dir) -> list[str]:
    return bz2.decompress((raw_dir / "usps" / "usps.bz2").read_bytes()).decode().splitlines()


def raw_folder(root: Path, raw_dir: Path, train_rows: list[str] | None = None, train_bytes: bytes | None = None,
               test: bool = True) -> Path:
    """A raw folder with its own usps.bz2 (rows or bytes) and, unless told not to, the published usps.t.bz2."""
    folder = root / "raw"
    (folder / "usps").mkdir(parents=True)
    if train_rows is not None:
        train_bytes = bz2.compress(("\n".join(train_rows) + "\n").encode(), compresslevel=1)
    (folder / "usps" / "usps.bz2").write_bytes(train_bytes)
    if test:
        (folder / "usps" / "usps.t.bz2").symlink_to(raw_dir / "usps" / "usps.t.bz2")
    return folder


def set_pixel(row: str, index: int, value: str) -> str:
    return re.sub(rf"(\s{index}):\S+", rf"\g<1>:{value}", row, count=1)


BAD_ROWS = {
    "nan-pixel": (lambda r: set_pixel(r, 7, "nan"), "not a finite number"),
    "inf-pixel": (lambda r: set_pixel(r, 7, "inf"), "not a finite number"),
    "incomplete-features": (lambda r: re.sub(r"\s256:\S+", "", r), "255 features"),
    "duplicate-feature": (lambda r: re.sub(r"\s256:\S+", " 255:0.5", r), "feature 255 is given more than once"),
    "fractional-label": (lambda r: "3.5" + r[r.index(" "):], "not a whole number"),
    "label-out-of-range": (lambda r: "11" + r[r.index(" "):], "outside 1..10"),
    "not-libsvm": (lambda r: "garbage here", "LIBSVM"),
}


def cached(home: Path) -> set[str]:
    return set(os.listdir(home / "processed")) if (home / "processed").exists() else set()


@pytest.mark.parametrize("fault", list(BAD_ROWS))
def test_a_malformed_usps_row_is_one_line_naming_file_and_line(here, raw_dir, usps_rows, session_home, fault):
    change, needle = BAD_ROWS[fault]
    rows = usps_rows[:5]
    rows[2] = change(rows[2])
    folder = raw_folder(here, raw_dir, rows)
    processed = cached(session_home)
    r = cli("repro", *SMALL, "--passes", "1", "--raw-dir", folder, "--out", here / "out")
    assert_one_line_error(r, str(folder / "usps" / "usps.bz2"), "line 3", needle)
    assert not (here / "out").exists()
    assert cached(session_home) == processed   # no cache file built from the bad file


@pytest.mark.parametrize("fault", ["truncated", "not-bz2", "missing-test-file"])
def test_a_broken_raw_file_is_one_line(here, raw_dir, fault):
    published = (raw_dir / "usps" / "usps.bz2").read_bytes()
    blob = published[: len(published) // 2] if fault == "truncated" else b"plain text" if fault == "not-bz2" \
        else published
    folder = raw_folder(here, raw_dir, train_bytes=blob, test=fault != "missing-test-file")
    r = cli("repro", *SMALL, "--passes", "1", "--raw-dir", folder, "--out", here / "out")
    assert_one_line_error(r, "usps.t.bz2" if fault == "missing-test-file" else "usps.bz2")
    assert not (here / "out").exists()


def test_a_damaged_cache_offline_is_named_with_how_to_rebuild_it(here, monkeypatch, raw_dir):
    """Offline, with no raw files in the data home, the processed cache is all there is: when it is
    damaged, the line names it and says how to build it again (not merely that the raw files are missing)."""
    home = here / "home"
    assert cli("data", "usps", "--data-home", home, "--raw-dir", raw_dir).rc == 0
    cache, = (home / "processed").glob("usps-*.npz")
    cache.write_bytes(cache.read_bytes()[:100_000])
    monkeypatch.delenv(data_module.RAW_DIR_ENV)
    before = tree(here)
    assert_one_line_error(cli("data", "usps", "--data-home", home, "--offline"), f"the processed cache {cache} is damaged",
                          "rebuild it with `lecun1989 data usps` online", "--raw-dir", "usps.bz2 and usps.t.bz2",
                          command="data")
    assert tree(here) == before
    assert cli("data", "usps", "--data-home", home, "--raw-dir", raw_dir).rc == 0   # what the line says rebuilds it
    assert cli("data", "usps", "--data-home", home, "--offline").rc == 0


@pytest.mark.parametrize("where", ["raw-dir", "data-home"])
def test_a_raw_file_that_is_a_folder_is_named_so(here, monkeypatch, raw_dir, where):
    if where == "raw-dir":
        folder = here / "raw" / "usps"
        argv = ("--raw-dir", here / "raw")
    else:
        folder = here / "home" / "raw" / "usps"
        argv = ("--data-home", here / "home", "--offline")
        monkeypatch.delenv(data_module.RAW_DIR_ENV)
    (folder / "usps.bz2").mkdir(parents=True)
    (folder / "usps.t.bz2").symlink_to(raw_dir / "usps" / "usps.t.bz2")
    before = tree(here)
    assert_one_line_error(cli("data", "usps", *argv), f"{folder / 'usps.bz2'} is a folder, not the raw file usps.bz2",
                          command="data")
    assert tree(here) == before


def test_an_mnist_label_out_of_range_names_the_file(here, raw_dir):
    folder = here / "raw" / "mnist"
    folder.mkdir(parents=True)
    for name in data_module.RAW_FILES["mnist"]:
        (folder / name).symlink_to(raw_dir / "mnist" / name)
    labels = bytearray(gzip.decompress((raw_dir / "mnist" / "train-labels-idx1-ubyte.gz").read_bytes()))
    labels[8 + 1234] = 11   # after the 8-byte header: example 1234
    (folder / "train-labels-idx1-ubyte.gz").unlink()
    (folder / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(bytes(labels), compresslevel=1))
    assert_one_line_error(cli("data", "mnist", "--raw-dir", here / "raw"),
                          f"{folder / 'train-labels-idx1-ubyte.gz'}: label 11 (of example 1234) is not a digit 0..9",
                          command="data")


@pytest.fixture(scope="module")
def modified_raw(raw_dir, usps_rows, tmp_path_factory) -> Path:
    rows = list(usps_rows)
    rows[41] = set_pixel(rows[41], 100, "0.123")
    return raw_folder(tmp_path_factory.mktemp("modified"), raw_dir, rows)


def test_modified_data_is_refused_naming_the_file(here, modified_raw):
    r = cli("repro", *SMALL, "--passes", "1", "--raw-dir", modified_raw, "--out", here / "out")
    assert_one_line_error(r, str(modified_raw / "usps" / "usps.bz2"), "--allow-modified-data")
    assert not (here / "out").exists()


def test_modified_data_is_used_when_allowed_and_recorded(here, modified_raw):
    r = cli("repro", *SMALL, "--passes", "1", "--raw-dir", modified_raw, "--allow-modified-data", "--out",
            here / "out")
    assert r.rc == 0, r.err
    assert strict_json(here / "out" / "config.json")["data"]["modified"] is True
    assert check_folder(here / "out") == 1


@pytest.mark.parametrize("value, online", [("false", True), ("0", True), ("off", True), ("", True), ("No", True),
                                           ("1", False), ("true", False), ("ON", False), (" yes ", False)])
def test_offline_switch_values(here, monkeypatch, value, online):
    """Without a raw folder and with an empty data home: online tries to download (stubbed here),
    offline says what to fetch."""
    monkeypatch.setenv(data_module.OFFLINE_ENV, value)
    monkeypatch.delenv(data_module.RAW_DIR_ENV)
    monkeypatch.setenv(data_module.HOME_ENV, str(here / "home"))
    tried = []

    def no_network(source, name, cache):
        tried.append(name)
        raise data_module.DataError(f"download of {name} stubbed out")
    monkeypatch.setattr(data_module, "_download", no_network)
    r = cli("data", "usps")
    assert_one_line_error(r, "stubbed out" if online else "no download possible", command="data")
    assert bool(tried) == online


@pytest.mark.parametrize("value", ["maybe", "2", "offline", "tru"])
def test_an_unknown_offline_value_is_one_line(here, monkeypatch, value):
    monkeypatch.setenv(data_module.OFFLINE_ENV, value)
    r = cli("repro", *SMALL, "--passes", "1", "--out", here / "out")
    assert_one_line_error(r, data_module.OFFLINE_ENV, repr(value))
    assert not (here / "out").exists()


# =================================================================================================
# os: every OS error on output is one line naming the path and the cause
# =================================================================================================

@pytest.mark.parametrize("where, cause", [
    ("under-a-file", "Not a directory"),
    ("proc", None), ("sys", None),
    ("dev-null", "is a file"),
    ("read-only-folder", None),
    ("name-too-long", "File name too long"),
    ("dangling-symlink", None),
])
@pytest.mark.parametrize("command", ["repro", "paper", "sweep"])
def test_an_os_error_on_output_is_one_line_naming_path_and_cause(here, where, cause, command):
    (here / "a-file").write_text("x")
    (here / "ro").mkdir()
    out = {"under-a-file": here / "a-file" / "run", "proc": Path("/proc/lecun1989-run"),
           "sys": Path("/sys/lecun1989-run"), "dev-null": Path("/dev/null"), "read-only-folder": here / "ro" / "run",
           "name-too-long": here / ("x" * 300), "dangling-symlink": here / "link"}[where]
    (here / "link").symlink_to(here / "nowhere" / "run")
    argv = {"repro": ("repro", *SMALL, "--passes", "1"), "paper": ("paper", *SMALL, "--passes", "1", "--seeds", "0-1"),
            "sweep": (*FAST_SWEEP, "--lrs", "0.01,0.03")}[command]
    with read_only(here / "ro") if where == "read-only-folder" else contextlib.nullcontext():
        r = cli(*argv, "--out", out)
    line = assert_one_line_error(r, str(out), rc=(1, 2), command=command)
    assert cause is None or cause in line, line
    assert line.rstrip().split(": ")[-1].strip(), line   # a cause after the path
    assert tree(here / "ro") == {}


@contextlib.contextmanager
def out_of_space_at(n: int):
    """Every fsync from the n-th commit of train.py on fails as a full disk does (errno 28, no file name)."""
    state = {"commits": 0}
    original_commit, original_fsync = train_module.commit, io_module.os.fsync

    def commit(files):
        state["commits"] += 1
        return original_commit(files)

    def fsync(fd):
        if state["commits"] >= n:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return original_fsync(fd)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(train_module, "commit", commit)
        mp.setattr(io_module.os, "fsync", fsync)
        yield


@pytest.fixture(scope="module")
def out_of_space(module_env, tmp_path_factory):
    """A run whose disk fills while it commits pass 2 (of 2)."""
    out = tmp_path_factory.mktemp("full") / "out"
    with module_env(), out_of_space_at(3):
        r = cli("repro", *SMALL, "--passes", "2", "--seed", "3", "--out", out)
    return r, out


def test_a_full_disk_keeps_the_completed_passes_and_resume_finishes(out_of_space, finished_run):
    r, out = out_of_space
    assert r.rc == 1 and len(r.lines) == 1 and "No space left on device" in r.err, r.err
    assert check_folder(out) == 1
    resumed = cli("repro", *SMALL, "--passes", "2", "--seed", "3", "--out", out, "--resume")
    assert resumed.rc == 0, resumed.err
    same_results(out, finished_run)


def test_a_full_disk_names_the_path(out_of_space):
    r, out = out_of_space
    assert_one_line_error(r, str(out), "No space left on device", rc=(1,))


def test_a_folder_made_read_only_mid_run_keeps_the_completed_passes(here, finished_run):
    out = here / "out"
    original = train_module.commit
    calls = []

    def commit(files):
        original(files)
        calls.append(1)
        if len(calls) == 2:   # pass 1 is in place: the folder becomes unwritable
            stack.enter_context(read_only(out))

    with contextlib.ExitStack() as stack, pytest.MonkeyPatch.context() as mp:
        mp.setattr(train_module, "commit", commit)
        r = cli("repro", *SMALL, "--passes", "2", "--seed", "3", "--out", out)
        line = assert_one_line_error(r, str(out), rc=(1, 2))
        assert re.search(r"Operation not permitted|Permission denied|Read-only", line), line
        after = tree(out)
    assert [json.loads(x)["pass"] for x in after["metrics.jsonl"].decode().splitlines()] == [1]
    (out / LOCK).unlink(missing_ok=True)   # left by a command that could not remove it; stale either way
    assert check_folder(out) == 1
    assert cli("repro", *SMALL, "--passes", "2", "--seed", "3", "--out", out, "--resume").rc == 0
    same_results(out, finished_run)


# =================================================================================================
# seeds: 0 .. 2^32-1, no duplicates, batches that fit in memory
# =================================================================================================

SEED_FAULTS = [
    ("repro", ("--seed", "-5"), "outside 0 .. 4294967295"),
    ("repro", ("--seeds=-3",), "outside 0 .. 4294967295"),
    ("repro", ("--seed", "4294967296"), "outside 0 .. 4294967295"),
    ("repro", ("--seeds", "4294967295-4294967296"), "outside 0 .. 4294967295"),
    ("repro", ("--data-seed", "-1"), "-1"),
    ("repro", ("--data", "mnist", "--data-seed", "4294967296"), "4294967296"),
    ("repro", ("--seeds", "1,1"), "seed 1 is given more than once"),
    ("repro", ("--seeds", "0-3,2"), "seed 2 is given more than once"),
    ("repro", ("--lrs", "0.01,0.01"), "given more than once"),
    ("repro", ("--seed", "1", "--seeds", "2,3"), "--seed or --seeds"),
    ("repro", ("--seeds", "5-3"), "5-3"),
    ("repro", ("--seeds", "1.5"), "1.5"),
    ("repro", ("--seeds", "0-100000"), "GiB"),
    ("repro", ("--seeds", "0-99999999"), "99999999"),
    ("paper", ("--seeds", "1,1"), "given more than once"),
    ("paper", ("--seeds", "0-100000"), "GiB"),
    ("modern", ("--seeds", "3,3"), "given more than once"),
    ("modern", ("--seeds", "0-100000"), "GiB"),
    ("sweep", ("--seeds", "1,1"), "given more than once"),
    ("sweep", ("--seeds", "0-100000"), "GiB"),
    ("sweep", ("--data-seed", "-1"), "-1"),
]


@pytest.mark.parametrize("command, options, needle", SEED_FAULTS,
                         ids=[f"{c} {' '.join(o)}" for c, o, _ in SEED_FAULTS])
def test_a_bad_seed_is_refused_before_anything_is_written(here, command, options, needle):
    base = {"repro": ("repro", *SMALL, "--passes", "1"), "paper": ("paper", *SMALL, "--passes", "1"),
            "modern": ("modern", "--engine", "torch", "--train-size", "100", "--test-size", "50", "--quiet"),
            "sweep": (*FAST_SWEEP[:5], "--validation", "7000", "--quiet", "--lrs", "0.01")}[command]
    t0 = time.perf_counter()
    r = cli(*base, *options, "--out", here / "out")
    assert_one_line_error(r, needle, command=command)
    assert os.listdir(here) == []
    assert time.perf_counter() - t0 < 60   # refused before allocating, not after


COUNT_FAULTS = [
    (("repro", *SMALL, "--passes", "10001"), "'10001' is more than 10,000"),
    (("paper", *SMALL, "--passes", "100000000000"), "is more than 10,000"),
    (("sweep", "--lrs", "0.01", "--passes", "20000"), "is more than 10,000"),
    (("bench", "--runs", "100000000"), "is more than 1,024"),
    (("bench", "--ref-steps", "2000000"), "is more than 1,000,000"),
    (("zipcodes", "--out", "z", "--n", "100001"), "is more than 100,000"),
    (("zipcodes", "--out", "z", "--n", "0"), "'0' is not a positive integer"),
    (("reader", "--usps-digits", "8000", "--out", "r"), "there are 7,291 USPS training digits"),
    (("reader", "--mnist-digits", "60001", "--out", "r"), "there are 60,000 MNIST training digits"),
    (("predict", "run", "x.png", "--threshold", "-1"), "'-1' is below 0: a margin"),
    (("demo", "run", "-o", "d.html", "--threshold", "-0.5"), "'-0.5' is below 0: a margin"),
    (("sweep", "--lr-grid", "1e-3:1e-1:10000000000"), "has 10,000,000,000 points; a sweep takes at most 1000"),
    (("sweep", "--lr-grid", "1e-3:1e-1:999"), "closer than its 3 significant digits tell apart"),
]


@pytest.mark.parametrize("argv, needle", COUNT_FAULTS, ids=[" ".join(a[:1] + a[-2:]) for a, _ in COUNT_FAULTS])
def test_a_count_out_of_its_range_is_refused_before_anything_is_written(here, argv, needle):
    assert_one_line_error(cli(*argv), needle, command=argv[0])
    assert os.listdir(here) == []


@pytest.mark.parametrize("argv, needle", [
    (("demo", "run", "-o", ""), "-o is empty: give the demo page's file name"),
    (("report", "run", "-o", ""), "-o is empty: give the report's file name"),
    (("docs", "--check", "--results", ""), "--results is empty"),
    (("docs", "--root", ""), "--root is empty"),
    (("study", "paper", "--out", ""), "--out is empty"),
    (("repro", *SMALL, "--data-home", ""), "--data-home is empty"),
    (("zipcodes", "--out", "z", "--raw-dir", ""), "--raw-dir is empty"),
], ids=lambda v: " ".join(v) if isinstance(v, tuple) else None)
def test_an_empty_path_is_refused_not_taken_for_the_current_folder(here, argv, needle):
    assert_one_line_error(cli(*argv), needle, command=argv[0])
    assert os.listdir(here) == []


@pytest.mark.parametrize("how", ["--data-home", "LECUN1989_HOME"])
def test_a_data_home_that_is_a_file_is_one_line(here, monkeypatch, how):
    (here / "afile").write_text("mine")
    if how == "LECUN1989_HOME":
        monkeypatch.setenv("LECUN1989_HOME", "afile")
    argv = ("repro", *SMALL, "--passes", "1", "--out", "out") + (("--data-home", "afile") if how == "--data-home" else ())
    assert_one_line_error(cli(*argv), "afile is a file, not a folder")
    assert tree(here) == {"afile": b"mine"}


def test_a_failed_download_leaves_no_empty_folders(here, monkeypatch):
    import pooch

    def no_network(*args, **kwargs):
        raise ConnectionError("no network")
    monkeypatch.delenv("LECUN1989_RAW_DIR", raising=False)
    monkeypatch.delenv("LECUN1989_OFFLINE", raising=False)
    monkeypatch.setattr(pooch, "retrieve", no_network)
    (here / "home").mkdir()
    assert_one_line_error(cli("data", "--data-home", "home/new/deeper"), "no download possible",
                          "(download failed: ConnectionError)")
    assert tree(here) == {"home": "dir"}   # the folder that was there stays; the ones made for the download go


# =================================================================================================
# rerun: a refused or failed command leaves nothing that blocks the corrected rerun
# =================================================================================================

RERUNS = {
    "sweep-validation-too-large": ((*FAST_SWEEP[:5], "--validation", "99999", "--quiet", "--lrs", "0.01"),
                                   (*FAST_SWEEP, "--lrs", "0.01")),
    "sweep-mus-without-sdlm": ((*FAST_SWEEP, "--lrs", "0.01", "--mus", "0.1"), (*FAST_SWEEP, "--lrs", "0.01")),
    "sweep-no-learning-rates": ((*FAST_SWEEP,), (*FAST_SWEEP, "--lrs", "0.01")),
    "repro-validation-too-large": (("repro", *SMALL, "--passes", "1", "--validation", "99999"),
                                   ("repro", *SMALL, "--passes", "1", "--validation", "60")),
    "repro-sdlm-with-ce": (("repro", *SMALL, "--passes", "1", "--optimizer", "sdlm", "--loss", "ce"),
                           ("repro", *SMALL, "--passes", "1", "--loss", "ce")),
    "paper-too-many-seeds": (("paper", *SMALL, "--passes", "1", "--seeds", "0-100000", "--optimizer", "sgd"),
                             ("paper", *SMALL, "--passes", "1", "--seeds", "0-1", "--optimizer", "sgd")),
    "modern-usps-data50k": (("modern", "--engine", "fast", "--upto", "data50k", "--quiet"),
                            ("modern", "--engine", "fast", "--upto", "ce", "--train-size", "100", "--test-size", "50",
                             "--seeds", "0", "--quiet")),
}


@pytest.mark.parametrize("case", list(RERUNS))
def test_a_refused_command_leaves_nothing_in_the_way(here, case, fast_engine_warm):
    refused, corrected = RERUNS[case]
    r = cli(*refused, "--out", "out")
    assert_one_line_error(r)
    assert os.listdir(here) == []
    r = cli(*corrected, "--out", "out")
    assert r.rc == 0, r.err
    check_folder(here / "out")


def test_a_full_standard_output_is_one_line_naming_it(here):
    class Full(io.StringIO):   # what `> /dev/full` gives a write
        def write(self, text):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    err = io.StringIO()
    with contextlib.redirect_stdout(Full()), contextlib.redirect_stderr(err):
        rc = cli_module.main(["zipcodes", "--out", "z", "--n", "1"])
    assert (rc, err.getvalue()) == (1, "lecun1989 zipcodes: error: the output: No space left on device\n")
    for argv, name in ((["--help"], "lecun1989"), (["predict", "--help"], "lecun1989"), (["--version"], "lecun1989")):
        err = io.StringIO()   # argparse itself would ignore the failed write and exit 0
        with contextlib.redirect_stdout(Full()), contextlib.redirect_stderr(err):
            rc = cli_module.main(argv)
        assert (rc, err.getvalue()) == (1, f"{name}: error: the output: No space left on device\n"), argv


@pytest.mark.parametrize("command", ["repro", "paper"])
def test_a_command_that_fails_before_its_first_pass_leaves_nothing_in_the_way(here, command):
    argv = (command, *SMALL, "--passes", "1", "--seeds", "0-1", "--optimizer", "sgd", "--lr", "0.03", "--out", "out")
    with out_of_space_at(1):   # the very first commit (the run folders' files) fails
        r = cli(*argv)
    assert_one_line_error(r, "No space left on device", rc=(1,))
    assert os.listdir(here) == []
    r = cli(*argv)
    assert r.rc == 0, r.err
    assert check_folder(here / "out") == 1


def test_a_failure_in_the_engine_leaves_nothing_in_the_way(here, monkeypatch):
    from lecun1989.engines import torch_ref

    def broken(*args, **kwargs):
        raise OSError(errno.EIO, os.strerror(errno.EIO), "/dev/imaginary")
    argv = ("repro", *SMALL, "--passes", "1", "--out", "out")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(torch_ref.TorchEngine, "train_pass", broken)
        assert_one_line_error(cli(*argv), "/dev/imaginary", rc=(1,))
    assert os.listdir(here) == []
    assert cli(*argv).rc == 0


# =================================================================================================
# plot/report: a few OS faults (the rest: tests/test_plots_report.py)
# =================================================================================================

@pytest.mark.parametrize("argv", [("report", "{run}", "-o", "/sys/lecun1989-report.html"),
                                  ("plot", "{run}", "--out", "{ro}/plots")])
def test_plot_and_report_os_errors_are_one_line(here, finished_run, argv):
    run = copy(finished_run, here, "run")
    (here / "ro").mkdir()
    before = tree(run)
    with read_only(here / "ro"):
        r = cli(*[a.format(run=run, ro=here / "ro") for a in argv])
    assert_one_line_error(r, rc=(1,), command=argv[0])   # an OS error: exit 1, as for training commands
    assert tree(run) == before and tree(here / "ro") == {}


def test_plot_report_and_reject_read_a_folder_a_command_is_writing(here, partial_batch, live_pid):
    """A command still training holds its folder's lock; plot and report take the passes committed so
    far (pass 1 of 2 here) and say so, reject takes finished runs only, and none writes into the
    command's folder (one writer per folder)."""
    run = copy(partial_batch, here, "out")
    (run / LOCK).write_text(json.dumps({"pid": live_pid, "host": HOST}))
    before = tree(run)
    for argv in (("plot", run), ("plot", run, "--out", run / "mine"), ("report", run, "-o", run / "r.html")):
        assert_one_line_error(cli(*argv), f"a running lecun1989 command writes (pid {live_pid})", command=argv[0])
    assert tree(run) == before
    assert cli("plot", run, "--out", "pictures").rc == 0
    assert_one_line_error(cli("reject", run, "--out", "rejection"), "is not a finished run",
                          f"(pid {live_pid}) is still training it", command="reject")
    r = cli("report", run, "-o", "report.html")
    assert r.rc == 0, r.err
    assert "Results after pass 1, the last pass all 2 runs completed" in (here / "report.html").read_text()
    assert tree(run) == before


def test_an_unknown_option_is_named_by_its_command(here):
    assert_one_line_error(cli("modern", "--passes", "12"), "unrecognized arguments: --passes 12",
                          "(see lecun1989 modern --help)", command="modern")
    assert os.listdir(here) == []


# =================================================================================================
# readers: predict, demo, reject, plot and report read only what a training command left whole
# =================================================================================================

def ink_image(path: Path, bars: int = 5) -> Path:
    """A PNG of `bars` upright strokes, 6 pixels wide and 40 tall, dark on white."""
    from PIL import Image
    pixels = bytearray([255] * (60 * 200))
    for k in range(bars):
        for y in range(10, 50):
            for x in range(20 + 35 * k, 26 + 35 * k):
                pixels[y * 200 + x] = 0
    Image.frombytes("L", (200, 60), bytes(pixels)).save(path)
    return path


READERS = {
    "predict": lambda run, folder, here: ("predict", run, ink_image(here / "bars.png")),
    "demo": lambda run, folder, here: ("demo", run, "-o", here / "demo.html"),
    "reject": lambda run, folder, here: ("reject", folder, "--out", here / "rejection"),
    "plot": lambda run, folder, here: ("plot", folder),
    "report": lambda run, folder, here: ("report", folder, "-o", here / "report.html"),
}


@pytest.fixture(scope="module")
def three_passes(module_env, tmp_path_factory) -> Path:
    """Two finished runs of 3 passes (repro --seeds 0-1)."""
    return made(module_env, tmp_path_factory, "three", "repro", *SMALL, "--passes", "3", "--seeds", "0-1")


@pytest.mark.parametrize("reader", list(READERS))
def test_a_run_whose_metrics_were_cut_back_is_refused_by_every_reader(here, three_passes, reader):
    """The second run's metrics.jsonl cut back to pass 1 while its weights and summary are of pass 3 (a
    folder edited or mixed by hand): every reader refuses it, even those that load only the first run's
    network (plot, report) and read the others' figures."""
    folder = copy(three_passes, here, "study")
    run = folder / "lr0.03-seed1"
    metrics = (run / "metrics.jsonl").read_text().splitlines()
    (run / "metrics.jsonl").write_text(metrics[0] + "\n")
    argv = READERS[reader](run, folder, here)
    before = tree(here)
    assert_one_line_error(cli(*argv), "lr0.03-seed1's files disagree",
                          "weights.safetensors holds pass 3 and metrics.jsonl ends at pass 1", command=reader)
    assert tree(here) == before


@pytest.mark.parametrize("name", ["../x.png", "{abs}"])
def test_predict_truth_opens_only_the_images_in_its_folder(here, finished_run, name):
    """A zipcodes.json names the images beside it: a name that leads out of its folder (another folder's
    file, an absolute path) is refused, not opened."""
    outside = ink_image(here / "x.png")
    (here / "zips").mkdir()
    truth = here / "zips" / "zipcodes.json"
    truth.write_text(json.dumps({"zips": [{"file": name.format(abs=outside), "zip": "11111"}]}))
    before = tree(here)
    assert_one_line_error(cli("predict", finished_run, "--truth", truth), str(truth),
                          repr(name.format(abs=outside)), "not a file in its folder", command="predict")
    assert tree(here) == before


@pytest.fixture(scope="module")
def diverged_run(module_env, tmp_path_factory) -> Path:
    """A run that diverged at its first pass: config, log, metrics and summary, no weights."""
    out = made(module_env, tmp_path_factory, "diverged", "repro", *SMALL, "--passes", "2", "--lr", "1e6", rc=3)
    assert (out / "config.json").is_file() and not (out / "weights.safetensors").exists()
    return out


@pytest.mark.parametrize("reader", ["predict", "demo"])
def test_a_run_that_diverged_before_any_pass_is_named_so(here, diverged_run, reader):
    argv = READERS[reader](diverged_run, diverged_run, here)
    before = tree(here)
    line = assert_one_line_error(cli(*argv), str(diverged_run), "diverged at pass 1", "no weights to read",
                                 command=reader)
    assert "not a run folder" not in line
    assert tree(here) == before


def test_predict_finds_no_more_digits_than_the_ink_holds(here, finished_run):
    """Five upright strokes asked for nine digits: cutting strokes in halves would invent four digits, so
    predict reads five and says that only five of the nine asked are there."""
    image = ink_image(here / "bars.png")
    r = cli("predict", finished_run, image, "--digits", "9")
    assert r.rc == 0, r.err
    line = r.out.splitlines()[-1]
    assert len(line.split("[")[1].split("]")[0].split(",")) == 5, line
    assert "(only 5 of the 9 digits asked: the ink has no more places to cut)" in line, line
    r = cli("predict", finished_run, image, "--digits", "9", "--json")
    boxes = [d["box"] for d in strict_loads(r.out)["images"][0]["digits"]]
    assert boxes == [[20 + 35 * k, 10, 26 + 35 * k, 50] for k in range(5)]
    r = cli("predict", finished_run, image, "--digits", "5")
    assert r.rc == 0 and len(r.out.splitlines()[-1].split("[")[1].split("]")[0].split(",")) == 5 and "only" not in r.out


# --- the second fresh-clone trial's findings ----------------------------------------------------

def test_the_rejection_picture_takes_criteria_whose_curves_end_apart(tmp_path):
    """Saturated outputs tie, so one criterion can stop rejecting long before another (repro --lr 10 drew
    a traceback in reject and report): each curve is cut to the picture's range on its own."""
    import numpy as np
    from lecun1989.reading import rejection
    from lecun1989.views.rejection import picture
    rng = np.random.default_rng(0)
    correct = rng.random(200) < 0.8
    margin = rng.random(200)
    runs = [rejection.RunResult(tmp_path, {"data": {"held_out": 0, "source": "usps"}}, None, correct,
                                {"margin": margin, "top": np.ones(200), "softmax": margin ** 2})]
    at = {c: [rejection.confidence.rejection_at(runs[0].scores[c], correct, 0.01)] for c in rejection.CRITERIA}
    result = rejection.Rejection(0.01, runs, {}, at)
    assert len(rejection.curves(result, "top")[0]) < len(rejection.curves(result, "margin")[0])
    assert picture(result)["reject.png"].startswith(b"\x89PNG")


def test_resume_refuses_a_finished_run_whose_metrics_were_cut_back(finished_run, tmp_path):
    out = copy(finished_run, tmp_path)
    metrics = out / "metrics.jsonl"
    metrics.write_text(metrics.read_text(encoding="utf-8").splitlines()[0] + "\n", encoding="utf-8")
    before = tree(out)
    r = cli("repro", *SMALL, "--passes", "2", "--seed", "3", "--out", out, "--resume")
    assert_one_line_error(r, "cannot be resumed", "weights.safetensors holds pass 2", command="repro")
    assert tree(out) == before


def test_another_commands_folder_is_named_whatever_the_flags(finished_paper, tmp_path):
    out = copy(finished_paper, tmp_path)
    before = tree(out)
    for flags in ((), ("--resume",)):
        r = cli("repro", *SMALL, "--passes", "1", "--seeds", "0-1", "--out", out, *flags)
        assert_one_line_error(r, "holds what `lecun1989 paper` made", "choose another --out", command="repro")
    assert tree(out) == before


def test_sweep_takes_lrs_or_a_grid_not_both(here):
    r = cli(*FAST_SWEEP, "--lrs", "0.01,0.03", "--lr-grid", "1e-3:1e-1:3", "--out", "s")
    assert_one_line_error(r, "give --lrs or --lr-grid, not both", command="sweep")
    assert not (here / "s").exists()


def test_a_study_folder_reads_as_a_committee_a_folder_of_studies_names_its_runs(finished_paper, here):
    from PIL import Image
    Image.new("L", (40, 20), 255).save(here / "x.png")
    r = cli("demo", finished_paper, "-o", "d.html")
    assert r.rc == 0 and "the 2 runs of" in (here / "d.html").read_text(encoding="utf-8")
    r = cli("predict", finished_paper, "x.png")
    assert r.rc == 2 and "holds no ink" in r.err   # read with both runs; a blank page has nothing to read
    shutil.copytree(finished_paper, here / "outer" / "study")
    for command in (["demo", here / "outer", "-o", "e.html"], ["predict", here / "outer", "x.png"]):
        r = cli(*command)
        assert_one_line_error(r, "holds 2 runs, not one", "e.g.", command=command[0])
    assert not (here / "e.html").exists()


def test_a_truth_file_naming_a_nul_byte_is_one_line(finished_run, here):
    (here / "zipcodes.json").write_text(json.dumps({"zips": [{"file": "a\u0000.png", "zip": "12345"}]}),
                                        encoding="utf-8")
    r = cli("predict", finished_run, "--truth", here / "zipcodes.json")
    assert_one_line_error(r, "not a file in its folder", command="predict")


@pytest.mark.parametrize("content", ["[]", "{}", "null", '"x"'])
def test_docs_check_names_a_study_result_of_another_shape(tmp_path, content):
    root = tmp_path / "repo"
    shutil.copytree(Path(__file__).resolve().parents[1] / "results", root / "results")
    for name in ("README.md", "docs"):
        src = Path(__file__).resolve().parents[1] / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, root / name)
    (root / "results/paper/usps/study.json").write_text(content, encoding="utf-8")
    r = cli("docs", "--check", "--root", root)
    assert_one_line_error(r, str(root / "results/paper/usps/study.json"), command="docs")


def test_an_interrupt_as_the_command_returns_is_one_line(monkeypatch, capsys):
    """SIGINT after main's own handler let go (it restores SIGTERM's handler on the way out)."""
    from lecun1989 import __main__ as entry

    def interrupted_on_the_way_out(argv=None):
        raise KeyboardInterrupt
    monkeypatch.setattr(cli_module, "main", interrupted_on_the_way_out)
    assert entry.run() == 130
    assert capsys.readouterr().err == "lecun1989: interrupted\n"


def test_a_study_works_in_no_folder_another_command_made(finished_paper, here):
    for flag, folder in (("--work", finished_paper), ("--out", finished_paper / "lr0.001-seed0" / "more")):
        r = cli("study", "paper", flag, folder)
        assert_one_line_error(r, f"{flag} {folder}", "another lecun1989 command made", command="study")
    assert not (finished_paper / "lr0.001-seed0" / "more").exists() and not (here / "results").exists()
