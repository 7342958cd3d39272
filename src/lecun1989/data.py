"""The two data sets: the real 1989 digits (USPS) and the MNIST-derived approximation.

Raw files come from the public sources below (downloaded with pooch, MD5-checked, kept in a
data home) or, with ``raw_dir``, from a folder the user points at, read as it is and never
touching the network. The processed arrays are cached as ``.npz`` (no pickle), keyed by source,
seed, format version and the raw files' content, and written atomically.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import paper
from .errors import LecunError
from .io import atomic_write

FORMAT_VERSION = 1
DEFAULT_DATA_SEED = 1337
SOURCES = ("usps", "mnist", "mnist50k")
# Training digits drawn from MNIST-train for each MNIST-derived source. mnist50k (the modern
# recipe's data-scaling row) takes the first 50,000 of the same permutation, so it holds the 7,291
# of `mnist` (they come first, in the same order) and has the same 2,007 test digits.
MNIST_TRAIN_SIZES = {"mnist": paper.N_TRAIN, "mnist50k": 50_000}


def raw_source(source: str) -> str:
    """The raw files a source is built from."""
    return "mnist" if source in MNIST_TRAIN_SIZES else source
HOME_ENV = "LECUN1989_HOME"
RAW_DIR_ENV = "LECUN1989_RAW_DIR"
OFFLINE_ENV = "LECUN1989_OFFLINE"

_LIBSVM = "https://www.csie.ntu.edu.tw/~cjlin/libsvmtools/datasets/multiclass/"
_MNIST = "https://ossci-datasets.s3.amazonaws.com/mnist/"

# name -> (url, md5 of the original public file)
RAW_FILES = {
    "usps": {
        "usps.bz2": (_LIBSVM + "usps.bz2", "ec16c51db3855ca6c91edd34d0e9b197"),
        "usps.t.bz2": (_LIBSVM + "usps.t.bz2", "8ea070ee2aca1ac39742fdd1ef5ed118"),
    },
    "mnist": {
        "train-images-idx3-ubyte.gz": (_MNIST + "train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
        "train-labels-idx1-ubyte.gz": (_MNIST + "train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432"),
        "t10k-images-idx3-ubyte.gz": (_MNIST + "t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"),
        "t10k-labels-idx1-ubyte.gz": (_MNIST + "t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c"),
    },
}


class DataError(LecunError):
    pass


@dataclass(frozen=True)
class Split:
    images: np.ndarray   # float32 (N, 1, 16, 16), values in [-1, 1]
    labels: np.ndarray   # int64 (N,)

    @property
    def targets(self) -> np.ndarray:
        """float32 (N, 10): +1 for the class, -1 elsewhere (the paper's tanh targets)."""
        t = np.full((len(self.labels), paper.N_CLASSES), -1.0, dtype=np.float32)
        t[np.arange(len(self.labels)), self.labels] = 1.0
        return t

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, n: int) -> "Split":
        return Split(self.images[:n], self.labels[:n])


@dataclass(frozen=True)
class Dataset:
    source: str
    seed: int | None     # the MNIST draw's seed; None for USPS
    train: Split
    test: Split
    held_out: int = 0    # > 0: `test` is the last held_out training examples (a validation split)

    @property
    def test_name(self) -> str:
        return "val" if self.held_out else "test"

    @property
    def sha256(self) -> str:
        """Digest of the processed arrays, to cite which exact data a run used."""
        h = hashlib.sha256()
        for split in (self.train, self.test):
            h.update(np.ascontiguousarray(split.images, dtype="<f4").tobytes())
            h.update(np.ascontiguousarray(split.labels, dtype="<i8").tobytes())
        return h.hexdigest()

    def subset(self, n_train: int | None = None, n_test: int | None = None) -> "Dataset":
        """The first n examples of each split (the paper's order is kept)."""
        train = self.train if n_train is None else self.train.subset(n_train)
        test = self.test if n_test is None else self.test.subset(n_test)
        return Dataset(self.source, self.seed, train, test, self.held_out)

    def validation(self, n_val: int) -> "Dataset":
        """Train on all but the last n_val training examples and evaluate on those: for choosing
        settings without ever looking at the test set."""
        n = len(self.train)
        if not 0 < n_val < n:
            raise LecunError(f"the validation split must hold 1 to {n - 1} of the {n} training examples, "
                             f"got {n_val}")
        images, labels = self.train.images, self.train.labels
        return Dataset(self.source, self.seed, Split(images[:n - n_val], labels[:n - n_val]),
                       Split(images[n - n_val:], labels[n - n_val:]), n_val)


# --- where files live -------------------------------------------------------------------------

def data_home(home: str | os.PathLike | None = None) -> Path:
    if home is None:
        home = os.environ.get(HOME_ENV)
    if home is None:
        import platformdirs
        home = platformdirs.user_cache_dir("lecun1989")
    return Path(home).expanduser()


def _find_in(raw_dir: Path, source: str, name: str) -> Path | None:
    for candidate in (raw_dir / source / name, raw_dir / name):
        if candidate.is_file():
            return candidate
    return None


def raw_paths(source: str, home: Path, raw_dir: str | os.PathLike | None = None,
              offline: bool = False) -> dict[str, Path]:
    """Paths of the raw files of `source`, downloading the missing ones unless told not to."""
    source = raw_source(source)
    files = RAW_FILES[source]
    if raw_dir is not None:
        raw_dir = Path(raw_dir).expanduser()
        if not raw_dir.is_dir():
            raise DataError(f"--raw-dir {raw_dir} is not a folder; point it at the folder that holds "
                            f"{source}/ (or the files {', '.join(files)})")
        found = {name: _find_in(raw_dir, source, name) for name in files}
        missing = [name for name, path in found.items() if path is None]
        if missing:
            raise DataError(f"{', '.join(missing)} not found in {raw_dir} or {raw_dir / source}; "
                            f"get them from {_origin(source, missing)}")
        return found

    cache = home / "raw" / source
    found = {name: cache / name for name in files}
    missing = [name for name, path in found.items() if not path.is_file()]
    if missing and offline:
        raise DataError(_offline_message(source, missing, cache))
    for name in missing:
        found[name] = _download(source, name, cache)
    return found


def _origin(source: str, names: list[str]) -> str:
    return " and ".join(RAW_FILES[source][n][0] for n in names)


def _offline_message(source: str, missing: list[str], cache: Path) -> str:
    return (f"{source} raw files missing ({', '.join(missing)}) and no download possible: "
            f"fetch them from {_origin(source, missing)} into {cache}, "
            f"or pass --raw-dir DIR (or set {RAW_DIR_ENV}) to a folder that holds them")


def _download(source: str, name: str, cache: Path) -> Path:
    import pooch  # imported here so that offline use never needs the network stack
    url, md5 = RAW_FILES[source][name]
    try:
        return Path(pooch.retrieve(url, known_hash=f"md5:{md5}", fname=name, path=cache,
                                   progressbar=True))
    except ValueError as e:  # pooch's checksum mismatch; it has already removed the download
        raise DataError(f"download of {url} failed its MD5 check ({e}); try again, or use --raw-dir") from None
    except Exception as e:  # no network, DNS, HTTP errors: all mean "could not download"
        raise DataError(_offline_message(source, [name], cache) + f" (download failed: {type(e).__name__})") from None


# --- parsing ----------------------------------------------------------------------------------

def _read_compressed(path: Path, opener) -> bytes:
    try:
        with opener(path, "rb") as f:
            return f.read()
    except (OSError, EOFError, ValueError) as e:
        raise DataError(f"{path} is truncated or corrupt ({e}); delete it and download it again, "
                        f"or point --raw-dir at a good copy") from None


def parse_usps(path: Path) -> Split:
    """A LIBSVM file of 16x16 digits: `label idx:value ...`, label = digit + 1, values in [-1, 1]."""
    text = _read_compressed(path, bz2.open).decode("ascii", errors="replace")
    lines = [line for line in text.splitlines() if line.strip()]
    n_pixels = paper.IMAGE_SIZE ** 2
    images = np.zeros((len(lines), n_pixels), dtype=np.float32)  # LIBSVM may omit zeros
    labels = np.empty(len(lines), dtype=np.int64)
    for row, line in enumerate(lines):
        head, _, rest = line.partition(" ")
        try:
            label = int(float(head))
            pairs = np.array(rest.replace(":", " ").split(), dtype=np.float64).reshape(-1, 2)
        except ValueError:
            raise DataError(f"{path}, line {row + 1}: not in LIBSVM format `label idx:value ...`") from None
        idx = pairs[:, 0].astype(np.int64)
        if not 1 <= label <= paper.N_CLASSES:
            raise DataError(f"{path}, line {row + 1}: label {label} is outside 1..10 (digit + 1)")
        if len(idx) and (idx.min() < 1 or idx.max() > n_pixels):
            raise DataError(f"{path}, line {row + 1}: feature index outside 1..{n_pixels}; "
                            f"expected 16x16 images")
        values = pairs[:, 1]
        if len(values) and (values.min() < -1 or values.max() > 1):
            raise DataError(f"{path}, line {row + 1}: pixel values outside [-1, 1]")
        images[row, idx - 1] = values
        labels[row] = label - 1
    return Split(images.reshape(-1, 1, paper.IMAGE_SIZE, paper.IMAGE_SIZE), labels)


def parse_idx(path: Path, ndim: int) -> np.ndarray:
    """An IDX file (MNIST's format) of unsigned bytes with `ndim` dimensions."""
    raw = _read_compressed(path, gzip.open)
    header = 4 + 4 * ndim
    if len(raw) < header or raw[:4] != bytes([0, 0, 8, ndim]):
        raise DataError(f"{path} is not an IDX file of unsigned bytes with {ndim} dimension(s)")
    shape = struct.unpack(">" + "I" * ndim, raw[4:header])
    if len(raw) - header != int(np.prod(shape)):
        raise DataError(f"{path}: header says shape {shape} but holds {len(raw) - header} bytes")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def resize_bilinear(images: np.ndarray, size: int) -> np.ndarray:
    """(N, H, W) float32 -> (N, size, size), bilinear without antialiasing.

    Follows PyTorch's `interpolate(mode="bilinear", align_corners=False)` operation for
    operation, in float32, so the numbers match it and are the same on every machine.
    """
    def axis(n_in: int):
        scale = np.float32(n_in / size)
        src = np.maximum((np.arange(size, dtype=np.float32) + np.float32(0.5)) * scale - np.float32(0.5),
                         np.float32(0))
        i0 = src.astype(np.int64)
        i1 = np.minimum(i0 + 1, n_in - 1)
        lam1 = src - i0.astype(np.float32)
        return i0, i1, np.float32(1) - lam1, lam1

    h0, h1, hl0, hl1 = axis(images.shape[1])
    w0, w1, wl0, wl1 = axis(images.shape[2])
    rows0, rows1 = images[:, h0, :], images[:, h1, :]
    hl0, hl1 = hl0[None, :, None], hl1[None, :, None]
    return (hl0 * (wl0 * rows0[:, :, w0] + wl1 * rows0[:, :, w1])
            + hl1 * (wl0 * rows1[:, :, w0] + wl1 * rows1[:, :, w1])).astype(np.float32)


def _mnist_split(images: np.ndarray, labels: np.ndarray, picks: np.ndarray) -> Split:
    scaled = images[picks].astype(np.float32) / np.float32(127.5) - np.float32(1.0)
    small = resize_bilinear(scaled, paper.IMAGE_SIZE)
    return Split(np.ascontiguousarray(small[:, None]), labels[picks].astype(np.int64))


def build_mnist(paths: dict[str, Path], seed: int, n_train: int = paper.N_TRAIN) -> tuple[Split, Split]:
    """The reproduction's approximation: 7,291 (n_train) random MNIST-train and 2,007 MNIST-test digits.

    One legacy numpy generator seeded once draws the train permutation, then the test one: a fixed
    order (the reproduction's depended on set iteration order), and for seed 1337 the same digits
    the reproduction got whenever its loop visited 'train' first.
    """
    rng = np.random.RandomState(seed)
    out = []
    for prefix, n in (("train", n_train), ("t10k", paper.N_TEST)):
        images = parse_idx(paths[f"{prefix}-images-idx3-ubyte.gz"], 3)
        labels = parse_idx(paths[f"{prefix}-labels-idx1-ubyte.gz"], 1)
        if images.shape[1:] != (28, 28) or len(images) != len(labels):
            raise DataError(f"{prefix} MNIST files disagree: {images.shape} images, {labels.shape} labels; "
                            f"expected (N, 28, 28) images and N labels")
        if len(images) < n:
            raise DataError(f"{prefix} MNIST files hold {len(images)} images, need at least {n}")
        if labels.max() >= paper.N_CLASSES:
            raise DataError(f"{prefix} MNIST labels go up to {labels.max()}, expected digits 0..9")
        out.append(_mnist_split(images, labels, rng.permutation(len(images))[:n]))
    return out[0], out[1]


def build_usps(paths: dict[str, Path]) -> tuple[Split, Split]:
    train, test = parse_usps(paths["usps.bz2"]), parse_usps(paths["usps.t.bz2"])
    for name, split, n in (("usps.bz2", train, paper.N_TRAIN), ("usps.t.bz2", test, paper.N_TEST)):
        if len(split) != n:
            raise DataError(f"{paths[name]} holds {len(split)} digits, expected {n}; "
                            f"is it a complete copy of {name}?")
    return train, test


# --- the cache and the loader -----------------------------------------------------------------

def _raw_digest(paths: dict[str, Path]) -> str:
    h = hashlib.sha256()
    for name in sorted(paths):
        with open(paths[name], "rb") as f:
            h.update(hashlib.file_digest(f, "sha256").digest())
    return h.hexdigest()[:16]


def _cache_path(home: Path, source: str, seed: int | None, raw_digest: str) -> Path:
    seed_part = "" if seed is None else f"-seed{seed}"
    return home / "processed" / f"{source}{seed_part}-v{FORMAT_VERSION}-{raw_digest}.npz"


def _read_cache(path: Path) -> tuple[Split, Split] | None:
    try:
        with np.load(path, allow_pickle=False) as z:
            return (Split(z["train_images"], z["train_labels"]),
                    Split(z["test_images"], z["test_labels"]))
    except Exception:  # missing, truncated or from elsewhere: rebuild it
        return None


def _write_cache(path: Path, train: Split, test: Split) -> None:
    def write(f):
        np.savez(f, train_images=train.images, train_labels=train.labels,
                 test_images=test.images, test_labels=test.labels)
    try:
        atomic_write(path, write, mode="wb")
    except OSError:
        pass  # a read-only data home only costs a rebuild next time


def load(source: str = "usps", data_seed: int = DEFAULT_DATA_SEED, home: str | os.PathLike | None = None,
         raw_dir: str | os.PathLike | None = None, offline: bool | None = None) -> Dataset:
    """Load a data set as arrays: `load("usps").train.images` is float32 (7291, 1, 16, 16).

    raw_dir (or $LECUN1989_RAW_DIR) reads the raw files from a folder and never downloads;
    offline (or $LECUN1989_OFFLINE=1) never downloads either and uses the data home only.
    """
    if source not in SOURCES:
        raise DataError(f"unknown data source {source!r}; choose one of {', '.join(SOURCES)}")
    if raw_dir is None:
        raw_dir = os.environ.get(RAW_DIR_ENV) or None
    if offline is None:
        offline = os.environ.get(OFFLINE_ENV, "") not in ("", "0")
    home_path = data_home(home)
    paths = raw_paths(source, home_path, raw_dir, offline)
    seed = data_seed if source in MNIST_TRAIN_SIZES else None
    cache = _cache_path(home_path, source, seed, _raw_digest(paths))
    splits = _read_cache(cache)
    if splits is None:
        splits = (build_mnist(paths, seed, MNIST_TRAIN_SIZES[source]) if source in MNIST_TRAIN_SIZES
                  else build_usps(paths))
        _write_cache(cache, *splits)
    return Dataset(source, seed, *splits)
