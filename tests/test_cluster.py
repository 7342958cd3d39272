"""--cluster: a Ray cluster of two nodes inside this machine trains the same bytes as one process, through
a worker killed mid-task and an interrupted driver; what cannot work is one line."""

import contextlib
import io
import json
import functools
import os
import pickle
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray", reason="the cluster extra (pip install 'lecun1989[cluster]') is not installed")
from ray.cluster_utils import Cluster   # noqa: E402

from lecun1989 import cli, recipes   # noqa: E402
from lecun1989.config import NetConfig, OptimConfig   # noqa: E402
from lecun1989.engines import RunSpec, initial_runs   # noqa: E402
from lecun1989.engines.fast import FastEngine   # noqa: E402
from lecun1989.engines import cluster as cluster_module   # noqa: E402
from lecun1989.studies import rows as studies   # noqa: E402
from lecun1989.studies import runner   # noqa: E402

pytestmark = pytest.mark.data

SMALL = ("--train-size", "300", "--test-size", "100", "--quiet")
# nine runs: a full group of eight on the lane kernels and a group of one
LANES_RUNS = ("repro", *SMALL, "--seeds", "0-8", "--passes", "3")
TIMINGS = {"wall_s", "engine_setup_s", "measures_s"}


@pytest.fixture(scope="module")
def nodes(module_env):
    """Two nodes of one CPU each. They start with the test environment (a data home of the session's),
    though the workers read no data: it comes through Ray's object store."""
    with module_env():
        c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
        worker = c.add_node(num_cpus=1)
        c.wait_for_nodes()
    yield c, worker
    c.shutdown()


def cli_run(*argv) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = cli.main([str(a) for a in argv])
    return rc, err.getvalue()


def tree(root: Path) -> dict[str, object]:
    """Every file under root: its bytes, or for JSON its content less the timings; TensorBoard's
    events and a study row's time spent only by name."""
    out = {}
    for p in sorted(root.rglob("*")):
        if not p.is_file() or p.name.endswith(".lock"):
            continue
        rel = str(p.relative_to(root))
        if "tensorboard" in p.parts or p.name.endswith(runner.SPENT):   # wall-clock times
            out[rel] = "timing"
        elif p.suffix == ".json":
            value = json.loads(p.read_text(encoding="utf-8"))
            out[rel] = {k: v for k, v in value.items() if k not in TIMINGS} if isinstance(value, dict) else value
        else:
            out[rel] = p.read_bytes()
    return out


def same_tree(a: Path, b: Path) -> None:
    ta, tb = tree(a), tree(b)
    assert sorted(ta) == sorted(tb)
    for name in ta:
        assert ta[name] == tb[name], name


@pytest.fixture(scope="module")
def local_lanes(tmp_path_factory, module_env):
    here = tmp_path_factory.mktemp("local")
    with module_env(), contextlib.chdir(here):
        assert cli_run(*LANES_RUNS, "--out", "out")[0] == 0
    return here / "out"


def test_a_sweep_on_the_cluster_is_the_same_bytes(nodes, tmp_path, monkeypatch):
    # eight validation runs on the lane kernels (291 digits each), then four on the single-run kernels
    argv = ("sweep", "--lrs", "0.01,0.03", "--seeds", "0-3", "--passes", "1", "--validation", "7000", "--quiet",
            "--out", "out")
    for where, extra in (("local", ()), ("cluster", ("--cluster", nodes[0].address))):
        (tmp_path / where).mkdir()
        monkeypatch.chdir(tmp_path / where)
        rc, err = cli_run(*argv, *extra)
        assert rc == 0, err
    assert "cluster " in err and "2 nodes, 2 CPUs" in err
    same_tree(tmp_path / "local" / "out", tmp_path / "cluster" / "out")
    assert (tmp_path / "cluster" / "out" / "sweep.json").exists()


STUDY = studies.Study("tiny", "lanes and single runs", (
    studies.Row("lanes", "lecun1989 repro --train-size 600 --test-size 80 --passes 4 --seeds 0-8"),
    studies.Row("paper", "lecun1989 paper --train-size 600 --test-size 80 --passes 4 --seeds 0-2"),
))


def run_study(where: Path, address: str | None, lines: list | None = None) -> dict:
    """STUDY in where/results and where/work, relative to where (the files name their folders): on the
    cluster with its rows side by side, or in one process one after another."""
    with contextlib.chdir(where), (cluster_module.use(address, echo=lambda line: None) if address
                                   else contextlib.nullcontext()), contextlib.redirect_stdout(io.StringIO()):
        return runner.run([STUDY], Path("results"), cli.run_command, Path("work"),
                          echo=lines.append if lines is not None else lambda line: None, at_once=2 if address else 1)


@pytest.fixture(scope="module")
def local_study(tmp_path_factory, module_env):
    where = tmp_path_factory.mktemp("study-local")
    with module_env():
        run_study(where, None)
    return where


def test_a_study_on_the_cluster_runs_its_rows_side_by_side_to_the_same_bytes(nodes, local_study, tmp_path):
    lines = []
    run_study(tmp_path, nodes[0].address, lines)
    started = [k for k, line in enumerate(lines) if line.endswith(tuple(row.command for row in STUDY.rows))]
    saved = [k for k, line in enumerate(lines) if ": saved " in line]
    assert len(started) == len(saved) == 2 and max(started) < min(saved), lines   # both began before either ended
    for part in ("results", "work"):
        same_tree(local_study / part, tmp_path / part)


def test_a_study_interrupted_with_its_rows_side_by_side_continues_to_the_same_bytes(nodes, local_study, tmp_path,
                                                                                    monkeypatch):
    original, results = cluster_module._result, []

    def interrupted(*args):   # Ctrl-C once both rows have trained a pass, their next ones out
        results.append(original(*args))
        if len(results) == 4:
            os.kill(os.getpid(), signal.SIGINT)
        return results[-1]

    monkeypatch.setattr(cluster_module, "_result", interrupted)
    with pytest.raises(KeyboardInterrupt) as stop:
        run_study(tmp_path, nodes[0].address)
    assert "the same `lecun1989 study` command continues them" in stop.value.note
    assert not (tmp_path / "results" / "tiny" / "lanes" / "study.json").exists()
    monkeypatch.setattr(cluster_module, "_result", original)
    assert run_study(tmp_path, nodes[0].address)["ran"] == 2
    for part in ("results", "work"):
        same_tree(local_study / part, tmp_path / part)


def _kill_first_task(killed: list, stop: threading.Event, kill: bool = True) -> None:
    """SIGKILL the first Ray worker seen training a batch (its title is ray::train_batch); or, not
    `kill`, only note it."""
    while not stop.is_set() and not killed:
        for pid in os.listdir("/proc"):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    title = f.read()
            except OSError:
                continue
            if pid.isdigit() and title.startswith(b"ray::train_batch"):
                if kill:
                    os.kill(int(pid), signal.SIGKILL)
                killed.append(int(pid))
                return
        time.sleep(0.005)


def test_a_worker_killed_mid_task_is_retried_with_the_same_bytes(nodes, local_lanes, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    killed, stop = [], threading.Event()
    killer = threading.Thread(target=_kill_first_task, args=(killed, stop))
    killer.start()
    try:
        rc, err = cli_run(*LANES_RUNS, "--out", "out", "--cluster", nodes[0].address)
    finally:
        stop.set()
        killer.join()
    assert rc == 0, err
    assert killed, "no worker was seen training"
    same_tree(local_lanes, tmp_path / "out")


def test_an_interrupted_driver_resumes_on_the_cluster_to_the_same_bytes(nodes, local_lanes, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    original, results = cluster_module._result, []

    def interrupted(*args):   # Ctrl-C as the first batch of pass 2 comes back, the other still out
        results.append(original(*args))
        if len(results) == 3:   # two batches a pass: eight runs on the lane kernels, then one
            os.kill(os.getpid(), signal.SIGINT)
        return results[-1]

    monkeypatch.setattr(cluster_module, "_result", interrupted)
    rc, err = cli_run(*LANES_RUNS, "--out", "out", "--cluster", nodes[0].address)
    assert rc == 130, err
    assert "out holds pass 1 of 3; the same command with --resume continues it" in err
    monkeypatch.setattr(cluster_module, "_result", original)
    rc, err = cli_run(*LANES_RUNS, "--out", "out", "--cluster", nodes[0].address, "--resume")
    assert rc == 0, err
    same_tree(local_lanes, tmp_path / "out")


def test_a_node_lost_mid_command_is_retried_on_the_others_with_the_same_bytes(nodes, local_lanes, tmp_path,
                                                                               monkeypatch):
    """It takes the second node away for good: the tests after it need only the head."""
    monkeypatch.chdir(tmp_path)
    head, worker = nodes
    seen, stop = [], threading.Event()

    def lose_node():   # as soon as both nodes train (a pass is two batches, one core each)
        _kill_first_task(seen, stop, kill=False)
        if seen:
            head.remove_node(worker, allow_graceful=False)
            seen.append("removed")

    thread = threading.Thread(target=lose_node)
    thread.start()
    try:
        rc, err = cli_run(*LANES_RUNS, "--out", "out", "--cluster", head.address)
    finally:
        stop.set()
        thread.join()
    assert rc == 0, err
    assert seen[-1:] == ["removed"] and worker not in head.list_all_nodes()
    same_tree(local_lanes, tmp_path / "out")


KEPT_CASES = {   # optimizers that carry state from pass to pass, and the modern recipe's training noise
    "sdlm-running": (recipes.PAPER.net, recipes.PAPER.optim, (0.02, 0.05)),
    "adamw-noisy": (NetConfig(activation="relu", loss="ce", dropout=0.25, shift=1), OptimConfig("adamw"),
                    (1e-3, 3e-4)),
}


@pytest.mark.parametrize("case", list(KEPT_CASES))
@pytest.mark.parametrize("kernels", ["single", "lanes"])
def test_a_task_gives_the_same_bytes_from_the_engine_its_worker_kept_as_from_a_new_one(nodes, usps, kernels, case):
    """A worker keeps the engine of a batch's last pass; the next task of the batch sets it to the task's
    weights and state, so what it returns depends on its arguments only, as one process's engine would."""
    net, optim, lrs = KEPT_CASES[case]
    ds = usps.subset(200, 60)
    runs = initial_runs(net, [(0, lrs[0]), (1, lrs[1])])
    alone = FastEngine(net, runs, ds, optim=optim, dtype="float64", passes=3, kernels=kernels)
    expected = []
    for _ in range(2):
        alone.train_pass()
        expected.append((alone.evaluate(), alone.get_params(), alone.get_state()))
    with cluster_module.use(nodes[0].address, echo=lambda line: None):
        task = functools.partial(cluster_module.train_batch, cluster_module.code_key(), net, optim, "float64", 3,
                                 kernels, 1, data=[ray.put(ds)])
        cluster_module._KEPT.clear()
        first = task(runs, None, 0)
        kept = list(cluster_module._KEPT.values())
        after = [RunSpec(r.seed, r.lr, p) for r, p in zip(runs, first[1])]
        second = task(after, first[2], 1)
        assert list(cluster_module._KEPT.values()) == kept   # the kept engine trained it
        again = task(after, first[2], 1)                     # the same task, from an engine one pass further on
        cluster_module._KEPT.clear()
        new = task(after, first[2], 1)                       # and from a new engine
    assert same(first, expected[0])
    for result in (second, again, new):
        assert same(result, expected[1])


def same(a, b) -> bool:
    """Two results of a pass (figures, weights, state per run), bit for bit."""
    return pickle.dumps(a) == pickle.dumps(b)


def test_a_worker_with_other_code_is_one_line(nodes, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(cluster_module, "code_key", lambda: {"lecun1989": "0.0.0", "engine sources": "older"})
    rc, err = cli_run("repro", *SMALL, "--passes", "1", "--out", "out", "--cluster", nodes[0].address)
    assert rc == 2 and len(err.strip().splitlines()) == 2, err   # the cluster's line, then the error
    assert "runs other code" in err and "install the same lecun1989 on every node" in err


def test_a_worker_compiling_for_another_target_is_one_line(nodes, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    real = cluster_module.code_key()
    monkeypatch.setattr(cluster_module, "code_key", lambda: {**real, "compiled for": "host znver4"})
    rc, err = cli_run("repro", *SMALL, "--passes", "1", "--out", "out", "--cluster", nodes[0].address)
    assert rc == 2 and len(err.strip().splitlines()) == 2, err
    assert f"compiles the engine for {real['compiled for']}, the driver for host znver4" in err


def test_an_address_where_nothing_listens_is_one_line(tmp_path, monkeypatch):
    import socket
    monkeypatch.chdir(tmp_path)
    with socket.socket() as s:   # a port that was free a moment ago
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    rc, err = cli_run("repro", *SMALL, "--passes", "1", "--out", "out", "--cluster", f"127.0.0.1:{port}")
    assert rc == 2 and err.count("\n") == 1 and "no Ray cluster answers" in err, err
    assert not (tmp_path / "out").exists()


def test_an_address_where_something_else_listens_is_one_line_at_once(tmp_path, monkeypatch):
    import socket
    monkeypatch.chdir(tmp_path)
    with socket.socket() as server:   # a web server's answer to anything, not gRPC's
        server.bind(("127.0.0.1", 0))
        server.listen()

        def answer():
            with contextlib.suppress(OSError):
                conn, _ = server.accept()
                with conn:
                    conn.recv(64)
                    conn.sendall(b"HTTP/1.0 400 Bad Request\r\n\r\n")
        threading.Thread(target=answer, daemon=True).start()
        t0 = time.monotonic()
        rc, err = cli_run("repro", *SMALL, "--passes", "1", "--out", "out", "--cluster",
                          f"127.0.0.1:{server.getsockname()[1]}")
    assert rc == 2 and err.count("\n") == 1 and "not a Ray head node" in err, err
    assert time.monotonic() - t0 < 20 and not (tmp_path / "out").exists()


def test_auto_with_a_dead_cluster_address_is_one_line(tmp_path, monkeypatch):
    import socket
    monkeypatch.chdir(tmp_path)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("RAY_ADDRESS", f"127.0.0.1:{port}")   # what Ray's auto reads first
    rc, err = cli_run("repro", *SMALL, "--passes", "1", "--out", "out", "--cluster", "auto")
    assert rc == 2 and err.count("\n") == 1 and f"no Ray cluster answers at --cluster auto (127.0.0.1:{port})" in err


def test_the_reference_engine_is_refused_before_ray_starts(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rc, err = cli_run("sweep", "--engine", "torch", "--lrs", "0.01", "--seeds", "0", "--validation", "7000",
                      "--passes", "1", "--out", "f1", "--cluster", "local")
    assert rc == 2 and err == "lecun1989 sweep: error: --cluster trains on the compiled engine; drop --engine torch\n"
    assert not (tmp_path / "f1").exists()


def test_without_ray_the_option_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, "ray", None)   # what `import ray` meets where it is not installed
    rc, err = cli_run("repro", *SMALL, "--passes", "1", "--out", "out", "--cluster", "local")
    assert rc == 2 and err.count("\n") == 1 and "pip install 'lecun1989[cluster]'" in err, err
    assert not (tmp_path / "out").exists()


def test_without_the_option_ray_is_not_imported(tmp_path):
    code = ("import sys\nfrom lecun1989.cli import main\n"
            f"assert main(['repro', '--train-size', '50', '--test-size', '20', '--passes', '1', '--quiet', "
            f"'--out', {str(tmp_path / 'out')!r}]) == 0\n"
            "print('ray' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.stdout.strip().splitlines()[-1] == "False", done.stdout + done.stderr
