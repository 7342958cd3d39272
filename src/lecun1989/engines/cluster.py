"""Training on a Ray cluster (`--cluster ADDRESS`): the same runs and the same bytes, the computing spread
over machines.

Only the computing travels. The trainer's loop (train.py) stays on the driver and writes every file, with
the same commits, locks and markers as in one process: `ClusterEngine` stands where `FastEngine` stands.
Each pass the runs go out in batches that keep what makes the engine fast: units of a group of LANES runs
on the lane kernels, or of one run on the single-run kernels, shared out over the nodes, one task a
node. A task sets an engine to its runs' weights and optimizer state after the previous pass, as
--resume does, trains one pass, evaluates both splits and returns the new weights, state and figures.
It is a function of its arguments only, so a task whose worker or node dies is run again by Ray and
gives the same bytes, and so does a batch that lands on another worker (as far as the machines compute
alike: docs/CLUSTER.md). The data set goes into Ray's object store once per command, so workers need
neither the raw files nor a shared disk. Each worker process keeps the kernels it compiled (or read from
its own disk cache) for the tasks after, and the engines of its last batches with their prepared data,
so that the next pass of the same runs does not prepare it again.

Ray is an optional extra, imported only by `use` (the command line's --cluster).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
from typing import Callable

from .. import __version__
from ..errors import LecunError
from ..store.atomic import signals_deferred
from . import target
from .cache import sources_digest
from .protocol import RunSpec

INSTALL = "pip install 'lecun1989[cluster]'"
MAX_RETRIES = 3   # Ray's default for a task whose worker died; said here because the docs quote it
_USING: list[str] = []   # the address of the cluster the command in progress trains on (one at a time)
_TASK: list = []         # the remote function, made once a process has connected
_STOP = threading.Event()   # set: every pass in progress stops (a study's rows side by side, one failed)


def active() -> bool:
    """Whether the command in progress trains on a cluster."""
    return bool(_USING)


def stop_all() -> None:
    """Stop every command training on the cluster in this process (each in its own thread) at once, as
    an interrupt would: a study's rows side by side, when one failed or the study was interrupted."""
    _STOP.set()


def rows_for(cpus: int) -> int:
    """How many of a study's rows to run side by side on `cpus` cores: one for every two (a row trains 5
    or 10 runs, 2 to 5 units a pass, so one alone rarely fills a cluster), at most 64."""
    return max(1, min(64, cpus // 2))


def rows_at_once() -> int:
    """rows_for the cluster the command trains on."""
    return rows_for(int(_ray().cluster_resources().get("CPU", 1)))


def _ray():
    try:
        import ray
    except ImportError:
        raise LecunError(f"--cluster needs Ray, which is an optional extra: {INSTALL}") from None
    return ray


def code_key() -> dict:
    """What a worker must share with the driver for its runs to be the driver's: the package's version,
    the sources the kernels are compiled from and what they are compiled for (target.py)."""
    return {"lecun1989": __version__, "engine sources": sources_digest()[:12], "compiled for": target.fix()}


@contextlib.contextmanager
def use(address: str, echo: Callable[[str], None]):
    """Train on the Ray cluster at `address` (as Ray takes it: auto, HOST:PORT, ray://HOST:PORT; or
    local, a new one on this machine) while the block runs. Ray started here stops at the end of it."""
    if not address.strip():
        raise LecunError("--cluster is empty: give auto, HOST:PORT, ray://HOST:PORT, or local for a cluster on this "
                         "machine")
    ray = _ray()
    started = not ray.is_initialized()
    if started and address != "local":
        _reachable(address)
    try:
        if started:
            _connect(ray, address)
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        cpus = int(ray.cluster_resources().get("CPU", 0))
        echo(f"cluster {address}: {len(nodes)} node{'s' * (len(nodes) != 1)}, {cpus} CPU{'s' * (cpus != 1)} "
             f"(Ray {ray.__version__}); the runs' files are the same as in one process")
        if not _TASK:
            _TASK.append(ray.remote(num_cpus=1, max_retries=MAX_RETRIES)(train_batch))
        _USING.append(address)
        _STOP.clear()
        try:
            yield
        finally:
            _USING.pop()
    finally:   # also when an interrupt held while Ray started arrives as it returns
        if started and ray.is_initialized():
            ray.shutdown()


TOKEN = ("if it uses token authentication (Ray's default for clusters on one machine since 2.59), set "
         "RAY_AUTH_MODE=token here too, with its token in ~/.ray/auth_token or RAY_AUTH_TOKEN")


def _connect(ray, address: str) -> None:
    """ray.init, with SIGINT held until Ray is up or has failed (Ray interrupted halfway ends the process
    with a crash at exit). Ray sets a SIGTERM handler of its own that exits at once; the command's own is
    put back after (so a SIGTERM in the seconds Ray starts ends the command before it wrote anything)."""
    try:
        with signals_deferred(), _quiet_stderr():
            ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    except (ConnectionError, TimeoutError) as e:
        raise LecunError(f"no Ray cluster answers at --cluster {address} ({str(e).strip().splitlines()[0]}); "
                         f"start one there (`ray start --head`), or give --cluster local for one on this machine; "
                         f"{TOKEN}") from None
    except (RuntimeError, ValueError) as e:   # Ray's own version check, or an address it cannot parse
        raise LecunError(f"cannot use the Ray cluster at --cluster {address}: "
                         f"{str(e).strip().splitlines()[0]}") from None


@contextlib.contextmanager
def _quiet_stderr():
    """The standard error closed to Ray's C++ warnings while it connects (one a second to a cluster that
    does not let it in, whatever the logging level); what goes wrong is the one line after."""
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _reachable(given: str, timeout_s: float = 5.0) -> None:
    """Refuse at once an address where no Ray head answers: Ray itself retries for a minute or more, may
    wait for ever on a port where something else listens, then may end the process. A Ray head (and
    Ray's client server) speaks gRPC, so it answers HTTP/2's opening with a SETTINGS frame."""
    import socket
    address = given
    if given == "auto":   # where Ray looks: RAY_ADDRESS, then the cluster last started on this machine
        address = os.environ.get("RAY_ADDRESS", "")
        try:
            address = address or open("/tmp/ray/ray_current_cluster", encoding="utf-8").read().strip()
        except OSError:
            address = ""
        if not address:
            raise LecunError("--cluster auto finds no Ray cluster this machine belongs to (no RAY_ADDRESS, and no "
                             "`ray start` here); start one (`ray start --head`), or give --cluster local")
    named = f"--cluster {given}" + (f" ({address})" if given != address else "")
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise LecunError(f"{named}: give auto, HOST:PORT, ray://HOST:PORT, or local for a cluster on this machine")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s) as s:
            s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0]))
            frame = s.recv(9)
    except OSError as e:
        raise LecunError(f"no Ray cluster answers at {named} ({e.strerror or e}); start one there (`ray start "
                         f"--head`), or give --cluster local for one on this machine") from None
    if len(frame) < 4 or frame[3] != 4:
        raise LecunError(f"{named}: something answers there, but not a Ray head node (it does not speak gRPC); "
                         f"give the head's address (`ray status` on it shows it)")


def train_batch(key: dict, net, optim, dtype: str, passes: int, kernels: str, threads: int, specs: list[RunSpec],
                states: list[dict] | None, passes_done: int, data: list):
    """One pass of a batch of runs, from their weights and optimizer state after pass `passes_done`:
    (figures, weights, state) per run, as FastEngine gives them. Runs on a worker; `data` is [the data
    set's object reference], fetched only by a worker that builds an engine."""
    mine = code_key()
    if key != mine:
        where = os.uname().nodename
        if {k: v for k, v in key.items() if k != "compiled for"} == {k: v for k, v in mine.items() if k != "compiled for"}:
            raise LecunError(f"a worker on {where} compiles the engine for {mine['compiled for']}, the driver for "
                             f"{key['compiled for']}, so their runs would differ (a CPU without AVX2 and FMA, or "
                             f"{target.ENV}=host on one side): leave that node out, or set {target.ENV} alike")
        raise LecunError(f"a worker on {where} runs other code ({mine}) than the driver ({key}); install the same "
                         f"lecun1989 on every node of the cluster")
    engine = _engine(net, optim, dtype, passes, kernels, threads, specs, data[0], passes_done)
    if passes_done:
        engine.set_state(states, passes_done)
    engine.train_pass()
    return engine.evaluate(), engine.get_params(), engine.get_state()


# What a worker process keeps for its batches' next passes: their last engines, with their prepared data
# (USPS: 50 MB on the single-run kernels in float32, which unroll the training images; mnist50k 320 MB),
# as many as fit in KEPT_BYTES, and at least the newest.
KEPT, KEPT_BYTES = 2, 1 << 30
_KEPT: dict = {}   # (the data, the settings, the runs) -> the engine that last trained them here, oldest first


def _engine(net, optim, dtype: str, passes: int, kernels: str, threads: int, specs: list[RunSpec], data_ref,
            passes_done: int):
    """The engine for a task: the one this worker process built for the same runs' earlier pass, given
    the task's weights (and by the caller its state: everything a pass reads that it does not compute
    first), or a new one. Building one prepares the data again (a third of a second a pass for the
    single-run kernels, which unroll the training images); either way the pass computes the same."""
    from .fast import FastEngine
    key = repr((data_ref.hex(), net, optim, dtype, passes, kernels, threads, [(s.seed, s.lr) for s in specs]))
    engine = _KEPT.pop(key, None)
    if engine is not None and passes_done:
        engine.set_params([s.params for s in specs])
    else:   # a first pass starts from a new engine's zero state
        engine = FastEngine(net, specs, _ray().get(data_ref), optim=optim, dtype=dtype, passes=passes,
                            kernels=kernels, threads=threads)
    _KEPT[key] = engine
    while len(_KEPT) > KEPT or (len(_KEPT) > 1 and sum(map(_data_bytes, _KEPT.values())) > KEPT_BYTES):
        del _KEPT[next(iter(_KEPT))]
    return engine


def _data_bytes(engine) -> int:
    return sum(a.nbytes for split in engine.splits.values() for a in split if hasattr(a, "nbytes"))


class ClusterEngine:
    """FastEngine's surface, each pass computed on the cluster (the module's doc)."""
    name = "fast"

    @staticmethod
    def kernels_for(n_runs: int) -> str:
        from .fast import kernels_for
        return kernels_for(n_runs)

    def __init__(self, net, runs: list[RunSpec], data, optim, dtype: str = "float32", passes: int = 1,
                 kernels: str | None = None):
        from .fast import LANES
        ray = _ray()
        self.net, self.optim, self.dtype, self.passes = net, optim, dtype, passes
        self.kernels = kernels or self.kernels_for(len(runs))
        # Each pass is one task a node (or a unit, where there are fewer units than nodes), its units
        # trained on as many threads as the smallest node has cores: one process a node shares the data
        # in its caches and builds its engine once a pass, where a task per unit would each read and
        # prepare a copy of their own (a fifth slower on two cores). The numbers are the same for any
        # grouping: every unit computes alone.
        unit = LANES if self.kernels == "lanes" else 1
        cores = [int(n["Resources"].get("CPU", 0)) for n in ray.nodes()
                 if n.get("Alive") and n["Resources"].get("CPU", 0) >= 1]
        units = [range(a, min(a + unit, len(runs))) for a in range(0, len(runs), unit)]
        tasks = max(1, min(len(units), len(cores)))
        cut = [round(k * len(units) / tasks) for k in range(tasks + 1)]
        self.batches = [range(units[a].start, units[b - 1].stop) for a, b in zip(cut, cut[1:])]
        self.cores = [min(min(cores, default=1), b - a) for a, b in zip(cut, cut[1:])]
        self.specs, self.states, self.evals = list(runs), [{} for _ in runs], []
        self.passes_done = 0
        self.n_train = len(data.train)
        self.data = ray.put(data)
        self.key = code_key()

    def set_state(self, states: list[dict], passes_done: int) -> None:
        self.states, self.passes_done = list(states), passes_done

    def train_pass(self, tick: Callable[[int], None] = lambda n: None) -> None:
        ray = _ray()
        pending = {_TASK[0].options(num_cpus=cores).remote(
            self.key, self.net, self.optim, self.dtype, self.passes, self.kernels, cores,
            [self.specs[r] for r in b], [self.states[r] for r in b], self.passes_done, [self.data]): b
            for b, cores in zip(self.batches, self.cores)}
        done = {}
        try:
            while pending:
                if _STOP.is_set():   # in a row's thread: stopped as the main thread is by Ctrl-C
                    raise KeyboardInterrupt
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
                for ref in ready:
                    batch = pending.pop(ref)
                    done[batch.start] = (batch, _result(ray, ref, batch))
                    tick(len(batch) * self.n_train)
        finally:   # interrupted, or a batch failed for good: the others stop too
            for ref in pending:
                ray.cancel(ref, force=True)
        self.evals = [None] * len(self.specs)
        for batch, (evals, params, states) in done.values():
            for k, r in enumerate(batch):
                spec = self.specs[r]
                self.specs[r] = RunSpec(spec.seed, spec.lr, params[k])
                self.states[r], self.evals[r] = states[k], evals[k]
        self.passes_done += 1

    def evaluate(self) -> list[dict]:
        return list(self.evals)

    def get_params(self) -> list[dict]:
        return [spec.params for spec in self.specs]

    def get_state(self) -> list[dict]:
        return list(self.states)


def _result(ray, ref, batch: range):
    """A task's result, or one line saying why there is none."""
    runs = f"run{'s' * (len(batch) > 1)} {batch.start + 1}" + (f"-{batch.stop}" if len(batch) > 1 else "")
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as e:   # the task itself raised: the same on any worker
        cause = e.cause if isinstance(getattr(e, "cause", None), BaseException) else e
        if isinstance(cause, LecunError):
            raise LecunError(str(cause)) from None
        raise LecunError(f"the cluster's task training {runs} failed ({type(cause).__name__}: "
                         f"{str(cause).strip().splitlines()[-1] if str(cause).strip() else ''})") from None
    except ray.exceptions.RayError as e:   # a worker or node lost more often than Ray retries
        check = "" if _USING[-1:] == ["local"] else "check its nodes with `ray status`, then "
        raise LecunError(f"the cluster lost the task training {runs} ({type(e).__name__}, after Ray's "
                         f"{MAX_RETRIES} retries); {check}run the same command with --resume") from None
