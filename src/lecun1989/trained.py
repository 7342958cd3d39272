"""A trained run, loaded: its network with the weights of its last completed pass, and the data it
was evaluated on. The one loader every reader uses (predict, reject, plot, report, demo, docs)."""

from __future__ import annotations

import functools
import sys
import threading
from pathlib import Path

import numpy as np

from . import paper, reader_data
from .config import ACTIVATION_SCALES, NetConfig, connection_table
from .data import DEFAULT_DATA_SEED, Dataset, Location, Split
from .draws import SHAPES
from .engines import ahead
from .engines.cache import first_call, in_disk_cache
from .errors import LecunError
from .store.rundir import check_passes, diverged_at, load_weights, read_config, read_metrics


def check_run_folder(run_dir: Path) -> list[dict] | None:
    """A folder a training command wrote, with weights to read; returns its metrics.jsonl's rows (None
    for a study's kept weights, which have none). Where they are kept, the weights must be of the last
    pass they completed (store.rundir.check_passes)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise LecunError(f"{run_dir} is not a folder; give a run folder (one holding config.json and "
                         f"weights.safetensors)")
    has_metrics = (run_dir / "metrics.jsonl").is_file()
    rows = read_metrics(run_dir) if has_metrics else []
    at = diverged_at(rows)
    if not (run_dir / "config.json").is_file() or not (run_dir / "weights.safetensors").is_file():
        if (run_dir / "config.json").is_file() and at is not None:
            raise LecunError(f"{run_dir} diverged at pass {at} before completing a pass, so it has no weights to "
                             f"read; give a run that did not diverge")
        inside = sorted(m.parent for m in run_dir.glob("**/weights.safetensors"))
        if inside:   # a study's or a sweep's folder: its runs are in folders of their own
            if len(inside) == 1:
                raise LecunError(f"{run_dir} is not a run folder; the one run under it is {inside[0]}: give that")
            together = [d.parent for d in inside if sum(e.parent == d.parent for e in inside) > 1]
            raise LecunError(f"{run_dir} holds {len(inside)} runs, not one: give one of them, e.g. {inside[0]}" +
                             (f" (predict also reads the runs of one folder together, as {together[0]})"
                              if together else ""))
        raise LecunError(f"{run_dir} is not a run folder (it lacks config.json or weights.safetensors); "
                         f"give one of the folders a training command wrote")
    if not has_metrics:
        return None
    check_passes(run_dir, rows)
    return rows


class TrainedNet:
    """A trained run's network as reading and `reject` use it: its settings and float64 weights
    (model.Net1989's names and layouts). It reads with the compiled forward pass (model_compiled.py),
    which loads neither torch nor a thread setting: a `predict` or the rejection measure of `paper`
    never loads torch. Where numba cannot be loaded, it reads with model.Net1989's (torch, one thread)."""

    def __init__(self, config: NetConfig, params: dict[str, np.ndarray]):
        self.config = config
        self.params = {name: np.require(np.asarray(params[name], dtype=np.float64), None, "CW") for name in SHAPES}
        self.table = connection_table(config.table)
        self._torch = None

    def read(self, images: np.ndarray) -> np.ndarray:
        """The outputs (logits for the cross-entropy loss) for images (N, 16, 16), float64; Net1989.outputs's
        to rounding (tests/test_reading.py)."""
        forward = compiled_forward()
        if forward is None:
            # one network at a time: torch's thread count, set to one for the call, is the process's
            with _FORWARD_LOCK:
                return self.torch().outputs(images)
        return forward(*forward_args(self.config, self.params, self.table, images))

    def torch(self):
        """The same network as a model.Net1989 (float64, in evaluation mode); torch is loaded for it."""
        if self._torch is None:
            from .model import Net1989   # torch
            net = Net1989(self.config).double()
            net.set_params(self.params)
            net.eval()
            self._torch = net
        return self._torch


def forward_args(config: NetConfig, params: dict[str, np.ndarray], table: np.ndarray, images: np.ndarray) -> tuple:
    """model_compiled.outputs's arguments: the images and the weights in float64 (writable arrays, of the
    one type it is compiled for: a read-only input would compile it again), the network's settings."""
    x = np.require(np.asarray(images, dtype=np.float64).reshape(-1, paper.IMAGE_SIZE, paper.IMAGE_SIZE), None, "CW")
    w = [np.require(np.asarray(params[name], dtype=np.float64), None, "CW") for name in SHAPES]
    a, s = ACTIVATION_SCALES.get(config.activation, (1.0, 1.0))
    return (x, *w, np.require(table, None, "CW"), config.activation == "relu", float(a), float(s), config.loss == "ce",
            float(paper.PAD_VALUE), paper.STRIDE, paper.PAD)


def compiled_forward():
    """model_compiled.outputs, called once (compiled, or loaded from numba's disk cache); None where numba
    cannot be loaded or fails to compile it. Threads that ask at once wait for the first."""
    with _FORWARD_LOCK:
        if _compiled_forward.cache_info().currsize == 0:
            ahead.wait_also()   # a child compiling ahead may be compiling it for this command now
        return _compiled_forward()


_FORWARD_LOCK = threading.Lock()


@functools.lru_cache(maxsize=1)
def _compiled_forward():
    outputs = _outputs()
    return outputs if outputs is not None and first_call(outputs, _empty_args(), FORWARD_WHAT) else None


def _outputs():
    """model_compiled.outputs, not yet called; None where numba cannot be loaded."""
    try:
        from .model_compiled import outputs   # numba
    except Exception:   # numba missing, or broken for this Python: any error while loading it
        return None
    return outputs


def _empty_args() -> tuple:
    """Every network's arguments have the same types: the paper's, on no images, compute nothing."""
    return forward_args(NetConfig(), {name: np.zeros(shape) for name, (shape, _) in SHAPES.items()},
                        connection_table(NetConfig().table), np.zeros((0, paper.IMAGE_SIZE, paper.IMAGE_SIZE)))


FORWARD_WHAT = "the forward pass that predict and reject read with"
FORWARD_TARGET = f"{__name__}:{compiled_forward.__name__}"   # for ahead.also


def forward_missing() -> bool:
    """Whether the compiled forward pass is missing from numba's disk cache (False without numba: there is
    nothing to compile)."""
    outputs = _outputs()
    return outputs is not None and in_disk_cache(outputs, _empty_args()) is False


def load_trained(run_dir: Path, note=lambda line: print(line, file=sys.stderr)) -> TrainedNet:
    """The network of a run folder with its latest weights, checked (check_run_folder; the weights must
    fit the network of its config.json). `note` is told when the run has not finished training."""
    run_dir = Path(run_dir)
    rows = check_run_folder(run_dir)
    if rows is not None:
        at = diverged_at(rows)
        if at is not None:
            note(f"note: {run_dir} diverged at pass {at}; reading with the weights of pass {at - 1}, the last it "
                 f"completed")
        elif not (run_dir / "summary.json").is_file():
            note(f"note: {run_dir} has not finished training; reading with the weights of its last completed pass")
    config = read_config(run_dir)
    try:
        net_config = NetConfig(**config["net"])
    except (TypeError, LecunError) as e:
        raise LecunError(f"{run_dir / 'config.json'}: bad network settings ({e})") from None
    path = run_dir / "weights.safetensors"
    params, _ = load_weights(path)
    want = {name: shape for name, (shape, _) in SHAPES.items()}
    got = {name: tuple(v.shape) for name, v in params.items()}
    if got != want:
        bad = sorted(n for n in want.keys() | got.keys() if want.get(n) != got.get(n))
        raise LecunError(f"{path} does not fit the network of its config.json: " + ", ".join(
            f"{n} is {got.get(n, 'missing')} where the network has {want.get(n, 'none')}" for n in bad))
    return TrainedNet(net_config, params)


def load_net(run_dir: Path, note=lambda line: print(line, file=sys.stderr)):
    """load_trained's network as a model.Net1989 (float64, in evaluation mode): for the pictures of its
    kernels and activations."""
    return load_trained(run_dir, note).torch()


def run_data(run_dir: Path, where: Location = Location()) -> Dataset:
    """The digits a run was trained and evaluated on (its held-out split and subset included), checked
    against the SHA-256 in its config.json: figures of other digits than the run saw would be
    silently wrong."""
    config = read_config(run_dir)
    d = config["data"]
    if d["source"] == "reader":
        sizes = config.get("reader") if isinstance(config.get("reader"), dict) else {}
        ds = reader_data.load(where, d["seed"], sizes.get("usps_digits"), sizes.get("mnist_digits"))
    else:
        ds = where.load(d["source"], d["seed"] if d["seed"] is not None else DEFAULT_DATA_SEED)
    if d["held_out"]:
        ds = ds.validation(d["held_out"])
    ds = ds.subset(d["n_train"], d["n_test"])
    if ds.sha256 != d["sha256"]:
        raise LecunError(f"the {d['source']} data loaded now (sha256 {ds.sha256[:12]}) is not the data "
                         f"{run_dir} was trained on ({d['sha256'][:12]}); were the raw files or their "
                         f"processing changed?")
    return ds


def run_test_split(run_dir: Path, where: Location = Location()) -> Split:
    """The digits a run was tested on (run_data's test split). A reader run's are the USPS test digits,
    checked against the digest its config.json keeps of them alone: reading with it never builds its
    drawn training set again."""
    config = read_config(run_dir)
    reader = config.get("reader") if isinstance(config.get("reader"), dict) else {}
    if config["data"]["source"] != "reader" or "test_sha256" not in reader:
        return run_data(run_dir, where).test
    test = where.load("usps").test
    if reader_data.test_digest(test) != reader["test_sha256"]:
        raise LecunError(f"the USPS test digits loaded now are not those {run_dir} was tested on; were the raw "
                         f"files or their processing changed?")
    return test


def load_run(run_dir: Path, where: Location = Location(), note=lambda line: None):
    """(the network of `load_net`, the data of `run_data`)."""
    return load_net(run_dir, note), run_data(run_dir, where)
