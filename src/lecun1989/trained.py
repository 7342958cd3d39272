"""A trained run, loaded: its network with the weights of its last completed pass, and the data it
was evaluated on. The one loader every reader uses (predict, reject, plot, report, demo, docs)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from . import reader_data
from .data import DEFAULT_DATA_SEED, Dataset, Location, Split
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


def load_net(run_dir: Path, note=lambda line: print(line, file=sys.stderr)):
    """The network of a run folder (float64, in evaluation mode) with its latest weights, checked
    (check_run_folder; the weights must fit the network of its config.json). `note` is told when the
    run has not finished training."""
    from .model import Net1989, NetConfig   # torch
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
        net = Net1989(NetConfig(**config["net"])).double()
    except (TypeError, LecunError) as e:
        raise LecunError(f"{run_dir / 'config.json'}: bad network settings ({e})") from None
    path = run_dir / "weights.safetensors"
    params, _ = load_weights(path)
    want = {name: tuple(getattr(net, name).shape) for name in net.PARAMS}
    got = {name: tuple(v.shape) for name, v in params.items()}
    if got != want:
        bad = sorted(n for n in want.keys() | got.keys() if want.get(n) != got.get(n))
        raise LecunError(f"{path} does not fit the network of its config.json: " + ", ".join(
            f"{n} is {got.get(n, 'missing')} where the network has {want.get(n, 'none')}" for n in bad))
    net.set_params({k: v.astype(np.float64) for k, v in params.items()})
    net.eval()
    return net


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
