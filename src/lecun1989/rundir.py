"""A run directory: config.json, log.txt, metrics.jsonl, TensorBoard scalars, weights.safetensors.

Every file is written atomically (rewritten whole after each pass), so a run that is stopped
leaves complete files describing the passes it finished.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from .errors import LecunError
from .io import atomic_write, write_json, write_text

SPLITS = ("train", "test")


def claim(path: Path, force: bool) -> None:
    """Fail before any work if `path` holds something and --force was not given."""
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        if not force:
            raise LecunError(f"{path} already exists; pass --force to overwrite it, or choose another --out")
        if not path.is_dir():
            raise LecunError(f"{path} is a file, not a run directory; remove it or choose another --out")


def metrics_row(pass_num: int, evals: dict) -> dict:
    row = {"pass": pass_num}
    for split in SPLITS:
        e = evals[split]
        row.update({f"{split}_loss": e.loss, f"{split}_error": e.error, f"{split}_misses": e.misses})
    return row


def eval_line(split: str, e) -> str:
    # The best-known reproduction's format, padding of the split name included.
    return f"eval: split {split:5s}. loss {e.loss:e}. error {e.error * 100:.2f}%. misses: {e.misses}"


class RunDir:
    def __init__(self, path: Path, force: bool, config: dict, tensorboard: bool = True):
        claim(path, force)
        if path.is_dir() and force:
            shutil.rmtree(path)
        path.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.lines: list[str] = []
        self.rows: list[dict] = []
        write_json(path / "config.json", config)
        self.tb = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter
            self.tb = SummaryWriter(log_dir=str(path / "tensorboard"))

    def log(self, line: str) -> None:
        self.lines.append(line)
        write_text(self.path / "log.txt", "\n".join(self.lines) + "\n")

    def record(self, pass_num: int, evals: dict) -> None:
        row = metrics_row(pass_num, evals)
        self.rows.append(row)
        write_text(self.path / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in self.rows))
        if self.tb is not None:
            for split in SPLITS:
                self.tb.add_scalar(f"error/{split}", row[f"{split}_error"], pass_num)
                self.tb.add_scalar(f"loss/{split}", row[f"{split}_loss"], pass_num)
            self.tb.flush()

    def save_weights(self, params: dict[str, np.ndarray], metadata: dict[str, str]) -> None:
        from safetensors.numpy import save
        blob = save({k: np.ascontiguousarray(v) for k, v in params.items()}, metadata=metadata)
        atomic_write(self.path / "weights.safetensors", lambda f: f.write(blob), mode="wb")

    def write_summary(self, summary: dict) -> None:
        write_json(self.path / "summary.json", summary)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def load_weights(path: Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    from safetensors import safe_open
    try:
        with safe_open(str(path), framework="numpy") as f:
            return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata() or {})
    except Exception as e:
        raise LecunError(f"cannot read weights from {path} ({e}); is it a weights.safetensors of a run?") from None
