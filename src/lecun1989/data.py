"""The two data sets: the real 1989 digits (USPS) and the MNIST-derived approximation.

Raw files come from the public sources below (downloaded with pooch, MD5-checked, kept in a
data home) or, with ``raw_dir``, from a folder the user points at, read as it is and never
touching the network. The parsed raw arrays are checked against the digests of the published sets
(see CONTENT_SHA256). The processed arrays are cached as ``.npz`` (no pickle), keyed by source,
seed, format version and the raw files' content, written atomically, and verified on every load.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import os
import re
import struct
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from . import paper
from .errors import LecunError
from .store.atomic import atomic_write

FORMAT_VERSION = 3   # 3: MNIST resized with PyTorch's fused multiply-adds (resize_bilinear)
DEFAULT_DATA_SEED = 1337
MAX_DATA_SEED = 2**32 - 1  # numpy's RandomState takes seeds in 0 .. 2**32 - 1
SOURCES = ("usps", "mnist", "mnist50k", "mnist-published")
MNIST_TRAIN_FILE = 60_000   # digits in MNIST's training file (train-images-idx3-ubyte), all of which the reader draws from
# Training digits drawn from MNIST-train for each MNIST-derived source. mnist50k (the modern
# recipe's data-scaling row) takes the first 50,000 of the same permutation, so it holds the 7,291
# of `mnist` (they come first, in the same order) and has the same 2,007 test digits.
MNIST_TRAIN_SIZES = {"mnist": paper.N_TRAIN, "mnist50k": 50_000, "mnist-published": paper.N_TRAIN}
# Which split draws its permutation first from the one seeded generator. The best-known
# reproduction's prepro loop visits the set {'train', 'test'}, so its order follows Python's hash
# seed: `mnist` is the order with 'train' first; `mnist-published` the other, 'test' first, the
# draw its published figures fit (docs/DATA.md: its recipe with seed 1337 ends at the published 45 train
# misses there, and at 62 on `mnist`).
DRAW_ORDER = {"mnist": "train first", "mnist50k": "train first", "mnist-published": "test first"}


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


# SHA-256 of what each published raw file parses to, computed once from the copies in the
# project's shared data folder: for usps.bz2 and usps.t.bz2, the parse_usps arrays (images as
# little-endian float32 (N, 1, 16, 16), then labels as little-endian int64); for each MNIST file,
# its parse_idx uint8 array. A file with its original's MD5 (RAW_FILES) is accepted too: the two
# are independent proofs that the data is the published set.
CONTENT_SHA256 = {
    "usps.bz2": "ad07aad0f88c3bdfc8ceee161092929534d66bced583fc9f91155915aaa43a39",
    "usps.t.bz2": "77a7d1653939ec9c4cfd5e15902b492f188f085b06f3ca2eafac77b96a0c00d4",
    "train-images-idx3-ubyte.gz": "741c988805d008ac6e4c904b69001ba184c24b2c540a4ef403f4c71b676cf757",
    "train-labels-idx1-ubyte.gz": "1feba77c54802fa5339a11837ea4b2866434b83314ec45192930f1df69120c13",
    "t10k-images-idx3-ubyte.gz": "6d87418db22cc8025d05968bec9bd5c3932904b23485740db143a061a2c9d161",
    "t10k-labels-idx1-ubyte.gz": "ddeff807876a9661a1110d45c266c86239a3a1b7d37da0c3716a7a683c852ff5",
}
_DIFFERS = {"usps": "its digits differ from the published USPS set",
            "mnist": "its content differs from the published MNIST set"}
# Dataset.sha256 of the sets built from the published files, where pinned: a cached set that
# claims to be one of these must be it, whatever digest the cache stores.
PROCESSED_SHA256 = {
    ("usps", None): "6e6f4058bd683c58a0c2af67af8c14513e3a611fff0c6c3013cd118a85d0967c",
    ("mnist", 1337): "fb1b2d228193ab6a913c7dcd6562d455fae83ea06e0feac3ed1b464bd73df539",
    ("mnist50k", 1337): "c96459bd3175bfc62c4f42be014df239b47bb081fb6c70e80303195e3b1234b6",
    ("mnist-published", 1337): "3311897d9a2a90ad9815fd07afb2790208ffff7b07d12a4a9e147023f27a2aaa",
}

_OFFLINE_VALUES = {**dict.fromkeys(("1", "true", "yes", "on"), True),
                   **dict.fromkeys(("", "0", "false", "no", "off"), False)}


class DataError(LecunError):
    pass


def sha256_of(*arrays: np.ndarray) -> str:
    """Digest of the arrays' bytes in turn, little-endian so that it is the same on every machine."""
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<")).tobytes())
    return h.hexdigest()


@dataclass(frozen=True)
class Split:
    images: np.ndarray   # float32 (N, 1, 16, 16), values in [-1, 1]
    labels: np.ndarray   # int64 (N,)

    @property
    def targets(self) -> np.ndarray:
        """float32 (N, 10): +1 for the class, -1 elsewhere (the paper's tanh targets); all -1 for an
        example labelled N_CLASSES, which is no digit (the reader's training set, reader_data.py)."""
        t = np.full((len(self.labels), paper.N_CLASSES), -1.0, dtype=np.float32)
        digit = np.flatnonzero(self.labels < paper.N_CLASSES)
        t[digit, self.labels[digit]] = 1.0
        return t

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, n: int) -> "Split":
        return Split(self.images[:n], self.labels[:n])

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """Images as float32 and labels as int64: the form every digest is taken of."""
        return self.images.astype(np.float32, copy=False), self.labels.astype(np.int64, copy=False)


@dataclass(frozen=True)
class Dataset:
    source: str
    seed: int | None     # the MNIST draw's seed; None for USPS
    train: Split
    test: Split
    held_out: int = 0    # > 0: `test` is the last held_out training examples (a validation split)
    modified: bool = False  # built from raw files that differ from the published set (allow_modified)

    @property
    def test_name(self) -> str:
        return "val" if self.held_out else "test"

    @property
    def sha256(self) -> str:
        """Digest of the processed arrays, to cite which exact data a run used."""
        return sha256_of(*self.train.arrays(), *self.test.arrays())

    def subset(self, n_train: int | None = None, n_test: int | None = None) -> "Dataset":
        """The first n examples of each split (the paper's order is kept)."""
        train = self.train if n_train is None else self.train.subset(n_train)
        test = self.test if n_test is None else self.test.subset(n_test)
        return replace(self, train=train, test=test)

    def validation(self, n_val: int) -> "Dataset":
        """Train on all but the last n_val training examples and evaluate on those: for choosing
        settings without ever looking at the test set."""
        n = len(self.train)
        if not 0 < n_val < n:
            raise LecunError(f"the validation split must hold 1 to {n - 1} of the {n} training examples, "
                             f"got {n_val}")
        images, labels = self.train.images, self.train.labels
        return replace(self, train=Split(images[:n - n_val], labels[:n - n_val]),
                       test=Split(images[n - n_val:], labels[n - n_val:]), held_out=n_val)


# --- settings -------------------------------------------------------------------------------

def env_offline() -> bool:
    """$LECUN1989_OFFLINE as a switch; a value that is neither on nor off is an error, not a guess."""
    value = os.environ.get(OFFLINE_ENV, "")
    try:
        return _OFFLINE_VALUES[value.strip().lower()]
    except KeyError:
        raise DataError(f"{OFFLINE_ENV}={value!r} is not understood: set it to 1, true, yes or on to work "
                        f"offline, or to 0, false, no, off or nothing to allow downloads") from None


def check_data_seed(seed) -> int:
    """The data seed as an int, if numpy's RandomState takes it."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed <= MAX_DATA_SEED:
        raise DataError(f"the data seed (--data-seed) must be a whole number from 0 to {MAX_DATA_SEED}, "
                        f"got {seed!r}")
    return int(seed)


# --- where files live -------------------------------------------------------------------------

def data_home(home: str | os.PathLike | None = None) -> Path:
    if home is not None and str(home) == "":
        raise DataError("--data-home is empty: name a folder, or leave it out for the default")
    if home is None:
        home = os.environ.get(HOME_ENV) or None   # set but empty: as if unset
    if home is None:
        import platformdirs
        home = platformdirs.user_cache_dir("lecun1989")
    home = Path(home).expanduser()
    if home.exists() and not home.is_dir():
        raise DataError(f"the data home {home} is a file, not a folder; give --data-home (or {HOME_ENV}) "
                        f"a folder, new or holding earlier downloads")
    return home


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
            raise DataError(f"the raw folder {raw_dir} (--raw-dir, or {RAW_DIR_ENV}) is not a folder; point it at "
                            f"the folder that holds {source}/ (or the files {', '.join(files)})")
        found = {name: _find_in(raw_dir, source, name) for name in files}
        missing = [name for name, path in found.items() if path is None]
        for name in missing:   # a folder under the file's name is not a file not found: it is in the way
            for candidate in (raw_dir / source / name, raw_dir / name):
                if candidate.is_dir():
                    raise DataError(f"{candidate} is a folder, not the raw file {name}; put the file there in its "
                                    f"place (from {_origin(source, [name])}), or point --raw-dir at a folder that "
                                    f"holds it")
        if missing:
            raise DataError(f"{', '.join(missing)} not found in {raw_dir} or {raw_dir / source}; "
                            f"get them from {_origin(source, missing)}")
        return found

    cache = _home_raw_dir(home, source)
    found = {name: cache / name for name in files}
    missing = [name for name, path in found.items() if not path.is_file()]
    for name in missing:
        if found[name].is_dir():
            raise DataError(f"{found[name]} is a folder, not the raw file {name}; remove it so that the file can be "
                            f"downloaded there, or pass --raw-dir DIR (or set {RAW_DIR_ENV}) to a folder that holds "
                            f"the raw files")
    if missing and offline:
        raise DataError(_offline_message(source, missing, cache))
    made = [d for d in (cache, *cache.parents) if not d.exists()]
    try:
        for name in missing:
            found[name] = _download(source, name, cache)
    except DataError:
        for folder in made:  # only the empty folders this download made: they would hide nothing but mislead
            try:
                folder.rmdir()
            except OSError:
                break
        raise
    return found


def _home_raw_dir(home: Path, source: str) -> Path:
    return home / "raw" / source


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


# A label, then `index:value` pairs; the numbers themselves are checked after matching.
_LIBSVM_LINE = re.compile(r"(\S+)((?:[ \t]+\d+:[^\s:]+)*)")


def parse_usps(path: Path, sparse: bool = False) -> Split:
    """A LIBSVM file of 16x16 digits: `label idx:value ...`, label = digit + 1, values in [-1, 1].

    Every row must list each of the 256 pixels once. sparse=True lets rows leave pixels out as
    zeros, the LIBSVM convention, for a file known by its MD5 to be the published one (whose
    rows may do so; the copies this was tested on list every pixel, zeros included).
    """
    text = _read_compressed(path, bz2.open).decode("ascii", errors="replace")
    rows = [(number, line.strip()) for number, line in enumerate(text.splitlines(), 1) if line.strip()]
    n_pixels = paper.IMAGE_SIZE ** 2
    images = np.zeros((len(rows), n_pixels), dtype=np.float32)
    labels = np.empty(len(rows), dtype=np.int64)
    for row, (number, line) in enumerate(rows):
        where = f"{path}, line {number}"
        match = _LIBSVM_LINE.fullmatch(line)
        try:
            label = float(match[1])
            pairs = np.array(match[2].replace(":", " ").split(), dtype=np.float64).reshape(-1, 2)
        except (TypeError, ValueError):  # TypeError: no match
            raise DataError(f"{where}: not in LIBSVM format `label idx:value ...`") from None
        if not label.is_integer():
            raise DataError(f"{where}: label {match[1]} is not a whole number (digit + 1)")
        if not 1 <= label <= paper.N_CLASSES:
            raise DataError(f"{where}: label {int(label)} is outside 1..10 (digit + 1)")
        idx, values = pairs[:, 0], pairs[:, 1]
        if len(idx) and (idx.min() < 1 or idx.max() > n_pixels):
            raise DataError(f"{where}: feature index outside 1..{n_pixels}; expected 16x16 images")
        idx = idx.astype(np.int64)
        repeated = np.flatnonzero(np.bincount(idx, minlength=n_pixels + 1) > 1)
        if len(repeated):
            raise DataError(f"{where}: feature {repeated[0]} is given more than once")
        if not sparse and len(idx) != n_pixels:
            raise DataError(f"{where}: {len(idx)} features, expected all {n_pixels} (one per pixel of "
                            f"a 16x16 image)")
        if not np.isfinite(values).all():
            raise DataError(f"{where}: pixel value {values[~np.isfinite(values)][0]} is not a finite number")
        if len(values) and (values.min() < -1 or values.max() > 1):
            raise DataError(f"{where}: pixel values outside [-1, 1]")
        images[row, idx - 1] = values
        labels[row] = int(label) - 1
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


def _fma32(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """float32 a * b + c rounded once, as a fused multiply-add gives it, in float64 arithmetic only
    (so the same on every machine, FMA unit or not).

    The product of two float32 is exact in float64 (24 + 24 bits < 53); TwoSum carries the error of
    the float64 sum, which then is rounded to odd (nudged toward the exact value whenever it was
    rounded and its last bit is even), and rounding that to float32 rounds the exact a * b + c once.
    """
    p = a.astype(np.float64) * b.astype(np.float64)
    c = np.broadcast_to(c.astype(np.float64), p.shape)
    s = p + c
    v = s - p
    e = (p - (s - v)) + (c - v)   # s + e == p + c exactly
    inexact_even = (e != 0) & ((s.view(np.int64) & 1) == 0)
    return np.where(inexact_even, np.nextafter(s, np.copysign(np.inf, e)), s).astype(np.float32)


def resize_bilinear(images: np.ndarray, size: int) -> np.ndarray:
    """(N, H, W) float32 -> (N, size, size), bilinear without antialiasing: the bytes PyTorch's
    `interpolate(mode="bilinear", align_corners=False)` gives on CPUs with AVX2 or AVX-512, computed
    in numpy so that they are the same on every machine.

    For outputs of up to 128 rows plus columns (16x16 here) PyTorch 2.x takes its channels-last
    kernel (`_use_vectorized_kernel_cond_2d`), whose one-channel case is a scalar loop in float32:
    src = max(in / out * (dst + 0.5) - 0.5, 0), l1 = src - floor(src), l0 = 1 - l1 per axis, weights
    w00 = lh0 * lw0 and so on, and out = x00 * w00 + x01 * w01 + x10 * w10 + x11 * w11. Its AVX2 and
    AVX-512 builds are compiled with fused multiply-adds, and the compiler fuses
    src = fma(in / out, dst + 0.5, -0.5) and the sum as fma(x11, w11, fma(x10, w10, fma(x00, w00,
    x01 * w01))): that is what this computes, the fused steps emulated exactly (_fma32). PyTorch's
    DEFAULT build (CPUs without AVX2, or ATEN_CPU_CAPABILITY=default) rounds every product and sum
    instead, and gives about one pixel in sixteen of the MNIST approximation a unit in the last place
    lower or higher. Checked byte for byte against the AVX2 and AVX-512 kernels on all 70,000 MNIST
    digits (28 -> 16, where every src, l and weight is exact, so only the sum's rounding matters) and
    on random images of other sizes. (Larger outputs go through PyTorch's generic, separable kernel,
    whose roundings this does not follow.)
    """
    def axis(n_in: int):
        scale = np.float32(n_in / size)   # float32(in) / out, correctly rounded either way
        dst = np.arange(size, dtype=np.float32) + np.float32(0.5)
        src = np.maximum(_fma32(np.full(size, scale), dst, np.float32(-0.5)), np.float32(0))
        i0 = np.minimum(src.astype(np.int64), n_in - 1)
        i1 = np.minimum(i0 + 1, n_in - 1)
        lam1 = np.clip(src - i0.astype(np.float32), np.float32(0), np.float32(1))
        return i0, i1, np.float32(1) - lam1, lam1

    h0, h1, hl0, hl1 = axis(images.shape[1])
    w0, w1, wl0, wl1 = axis(images.shape[2])
    weight = lambda lh, lw: lh[:, None] * lw[None, :]   # float32, as the kernel's opmath_t
    w00, w01, w10, w11 = weight(hl0, wl0), weight(hl0, wl1), weight(hl1, wl0), weight(hl1, wl1)
    images = np.asarray(images, dtype=np.float32)
    out = np.empty((len(images), size, size), dtype=np.float32)
    for i in range(0, len(images), 4096):   # in blocks: the float64 temporaries stay in the cache
        top, bottom = images[i:i + 4096, h0, :], images[i:i + 4096, h1, :]
        acc = _fma32(top[:, :, w0], w00, top[:, :, w1] * w01)
        acc = _fma32(bottom[:, :, w0], w10, acc)
        out[i:i + 4096] = _fma32(bottom[:, :, w1], w11, acc)
    return out


def _mnist_split(images: np.ndarray, labels: np.ndarray, picks: np.ndarray) -> Split:
    """The reproduction's preprocessing of the picked digits: `torch.from_numpy(np.array(I,
    dtype=np.float32)) / 127.5 - 1.0` (a float32 division, then a float32 subtraction: PyTorch's CPU
    kernel divides by the scalar, it does not multiply by its reciprocal), then resize_bilinear."""
    scaled = images[picks].astype(np.float32) / np.float32(127.5) - np.float32(1.0)
    small = resize_bilinear(scaled, paper.IMAGE_SIZE)
    return Split(np.ascontiguousarray(small[:, None]), labels[picks].astype(np.int64))


def _published_md5(source: str, name: str, path: Path) -> bool:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "md5").hexdigest() == RAW_FILES[source][name][1]


def _differs(source: str, name: str, path: Path, digest: str, allow_modified: bool) -> bool:
    """Whether a parsed raw file differs from the published one; refused unless allowed."""
    if digest == CONTENT_SHA256[name]:
        return False
    if not allow_modified:
        raise DataError(f"{path}: {_DIFFERS[source]} (sha256 {digest}); point --raw-dir at an unmodified "
                        f"copy, or pass --allow-modified-data to use it anyway")
    return True


def build_mnist(paths: dict[str, Path], seed: int, n_train: int = paper.N_TRAIN,
                allow_modified: bool = False, test_first: bool = False) -> tuple[Split, Split, bool]:
    """The reproduction's approximation: 7,291 (n_train) random MNIST-train and 2,007 MNIST-test digits,
    and whether the MNIST files differ from the published ones (refused unless allow_modified).

    One legacy numpy generator seeded once draws the train permutation, then the test one (or, with
    test_first, the test one first): a fixed order (the reproduction's depended on set iteration
    order, DRAW_ORDER), and for seed 1337 the same digits the reproduction got in that order.
    """
    rng = np.random.RandomState(seed)
    out, modified = {}, False
    order = (("train", n_train), ("t10k", paper.N_TEST))
    for prefix, n in (order[::-1] if test_first else order):
        files = {kind: f"{prefix}-{kind}-idx{ndim}-ubyte.gz" for kind, ndim in (("images", 3), ("labels", 1))}
        images = parse_idx(paths[files["images"]], 3)
        labels = parse_idx(paths[files["labels"]], 1)
        if images.shape[1:] != (28, 28) or len(images) != len(labels):
            raise DataError(f"{paths[files['images']]} and {paths[files['labels']]} disagree: {images.shape} images, "
                            f"{labels.shape} labels; expected (N, 28, 28) images and N labels")
        if len(images) < n:
            raise DataError(f"{paths[files['images']]} holds {len(images)} images, need at least {n}; is it a "
                            f"complete copy of {files['images']}?")
        if labels.max() >= paper.N_CLASSES:
            at = int(np.argmax(labels >= paper.N_CLASSES))
            raise DataError(f"{paths[files['labels']]}: label {labels[at]} (of example {at}) is not a digit 0..9; "
                            f"point --raw-dir at an unmodified copy of {files['labels']}")
        for name, array in ((files["images"], images), (files["labels"], labels)):
            if not _published_md5("mnist", name, paths[name]):
                modified |= _differs("mnist", name, paths[name], sha256_of(array), allow_modified)
        out[prefix] = _mnist_split(images, labels, rng.permutation(len(images))[:n])
    return out["train"], out["t10k"], modified


def build_usps(paths: dict[str, Path], allow_modified: bool = False) -> tuple[Split, Split, bool]:
    """The 7,291 training and 2,007 test digits, and whether the files differ from the published ones
    (refused unless allow_modified)."""
    splits, modified = [], False
    for name, n in (("usps.bz2", paper.N_TRAIN), ("usps.t.bz2", paper.N_TEST)):
        published = _published_md5("usps", name, paths[name])
        split = parse_usps(paths[name], sparse=published)
        if len(split) != n:
            raise DataError(f"{paths[name]} holds {len(split)} digits, expected {n}; "
                            f"is it a complete copy of {name}?")
        if not published:
            modified |= _differs("usps", name, paths[name], sha256_of(*split.arrays()), allow_modified)
        splits.append(split)
    return splits[0], splits[1], modified


# --- the cache and the loader -----------------------------------------------------------------

def raw_digest(paths: dict[str, Path]) -> str:
    h = hashlib.sha256()
    for name in sorted(paths):
        with open(paths[name], "rb") as f:
            h.update(hashlib.file_digest(f, "sha256").digest())
    return h.hexdigest()[:16]


def _cache_path(home: Path, source: str, seed: int | None, raw_digest: str) -> Path:
    seed_part = "" if seed is None else f"-seed{seed}"
    return home / "processed" / f"{source}{seed_part}-v{FORMAT_VERSION}-{raw_digest}.npz"


_SPLIT_FIELDS = ("train_images", "train_labels", "test_images", "test_labels")
_CACHE_FIELDS = {*_SPLIT_FIELDS, "source", "seed", "format", "modified", "sha256"}


def _seed_field(seed: int | None) -> int:
    return -1 if seed is None else seed  # an npz field holds no None, and seeds are never negative


def _read_cache(path: Path, source: str, seed: int | None) -> Dataset | None:
    """The cached set if it is whole and what it claims to be; None means: rebuild it."""
    try:
        with np.load(path, allow_pickle=False) as z:
            if set(z.files) != _CACHE_FIELDS:
                return None
            f = {name: z[name] for name in z.files}
    except Exception:  # missing, truncated, pickled or from elsewhere
        return None
    if not (f["source"].dtype.kind == "U" and f["sha256"].dtype.kind == "U"
            and f["seed"].dtype == np.int64 and f["format"].dtype == np.int64 and f["modified"].dtype == bool
            and all(f[name].shape == () for name in _CACHE_FIELDS - set(_SPLIT_FIELDS))):
        return None
    if (str(f["source"]), int(f["seed"]), int(f["format"])) != (source, _seed_field(seed), FORMAT_VERSION):
        return None
    size = paper.IMAGE_SIZE
    for prefix, n in (("train", MNIST_TRAIN_SIZES.get(source, paper.N_TRAIN)), ("test", paper.N_TEST)):
        images, labels = f[f"{prefix}_images"], f[f"{prefix}_labels"]
        if not (images.dtype == np.float32 and images.shape == (n, 1, size, size)
                and labels.dtype == np.int64 and labels.shape == (n,)):
            return None
        if not (np.isfinite(images).all() and images.min() >= -1 and images.max() <= 1
                and labels.min() >= 0 and labels.max() < paper.N_CLASSES):
            return None
    ds = Dataset(source, seed, Split(f["train_images"], f["train_labels"]),
                 Split(f["test_images"], f["test_labels"]), modified=bool(f["modified"]))
    digest = ds.sha256
    if digest != str(f["sha256"]):
        return None
    # A stored digest only shows the file is whole; a pinned one shows it is the published set.
    if not ds.modified and PROCESSED_SHA256.get((source, seed), digest) != digest:
        return None
    return ds


def _write_cache(path: Path, ds: Dataset) -> None:
    def write(f):
        np.savez(f, train_images=ds.train.images, train_labels=ds.train.labels,
                 test_images=ds.test.images, test_labels=ds.test.labels,
                 source=np.array(ds.source), seed=np.array(_seed_field(ds.seed), dtype=np.int64),
                 format=np.array(FORMAT_VERSION, dtype=np.int64), modified=np.array(ds.modified),
                 sha256=np.array(ds.sha256))
    try:
        atomic_write(path, write, mode="wb")
    except OSError:
        pass  # a read-only data home only costs a rebuild next time


def _any_cache(home: Path, source: str, seed: int | None, allow_modified: bool) -> Dataset | None:
    """A verified cache of this source and seed whatever raw files it was built from: the newest
    one built from the published files, else (when allowed) the newest one that was not."""
    pattern = _cache_path(home, source, seed, "*")
    candidates = sorted(pattern.parent.glob(pattern.name), key=lambda p: p.stat().st_mtime, reverse=True)
    usable = [ds for p in candidates
              if (ds := _read_cache(p, source, seed)) is not None and (allow_modified or not ds.modified)]
    return min(usable, key=lambda ds: ds.modified, default=None)


def _refuse_damaged_cache(home: Path, source: str, seed: int | None) -> None:
    """Offline, without the raw files, a processed cache that cannot be read or is not what it claims to
    be is the cause to name (rather than the raw files alone), with the way to build it again."""
    pattern = _cache_path(home, source, seed, "*")
    damaged = [p for p in sorted(pattern.parent.glob(pattern.name)) if _read_cache(p, source, seed) is None]
    if damaged:
        raw = raw_source(source)
        raise DataError(f"the processed cache {damaged[0]} is damaged (truncated, or not the verified {source} set "
                        f"it names) and the raw files to rebuild it are missing: rebuild it with `lecun1989 data "
                        f"{source}{'' if seed in (None, DEFAULT_DATA_SEED) else f' --data-seed {seed}'}` online (it "
                        f"downloads them), or with --raw-dir DIR (or {RAW_DIR_ENV}) naming a folder that holds "
                        f"{' and '.join(RAW_FILES[raw])}")


@dataclass(frozen=True)
class Location:
    """Where a data set's files live, as the user gave it (--data-home, --raw-dir, --offline,
    --allow-modified-data); None means "as the environment says". The environment's rule is here and
    nowhere else: $LECUN1989_HOME (set but empty: as if unset) or the user cache folder is the home;
    $LECUN1989_RAW_DIR (empty: unset) is the raw folder; $LECUN1989_OFFLINE is the offline switch."""
    home: str | os.PathLike | None = None
    raw_dir: str | os.PathLike | None = None
    offline: bool | None = None
    allow_modified: bool = False

    def home_path(self) -> Path:
        return data_home(self.home)

    def raw_folder(self) -> str | os.PathLike | None:
        if self.raw_dir is not None and str(self.raw_dir) == "":
            raise DataError("--raw-dir is empty: name the folder that holds the raw files, or leave it out")
        return self.raw_dir if self.raw_dir is not None else os.environ.get(RAW_DIR_ENV) or None

    def is_offline(self) -> bool:
        return env_offline() if self.offline is None else self.offline

    def raw_paths(self, source: str) -> dict[str, Path]:
        """The raw files of `source` (data.raw_paths by this location's rules)."""
        return raw_paths(source, self.home_path(), self.raw_folder(), self.is_offline())

    def load(self, source: str = "usps", data_seed: int = DEFAULT_DATA_SEED) -> Dataset:
        """Load a data set as arrays: `Location().load("usps").train.images` is float32 (7291, 1, 16, 16).

        The raw folder reads the raw files from a folder and never downloads; offline never
        downloads either and uses the data home only. Without a raw folder, when the data home lacks
        the raw files, a verified processed cache there serves instead of a download. Raw files that
        differ from the published set are refused unless allow_modified; the set built from them
        then has `modified` set.
        """
        if source not in SOURCES:
            raise DataError(f"unknown data source {source!r}; choose one of {', '.join(SOURCES)}")
        data_seed = check_data_seed(data_seed)
        raw_dir, offline, home_path = self.raw_folder(), self.is_offline(), self.home_path()
        seed = data_seed if source in MNIST_TRAIN_SIZES else None
        if raw_dir is None and not all((_home_raw_dir(home_path, raw_source(source)) / name).is_file()
                                       for name in RAW_FILES[raw_source(source)]):
            cached = _any_cache(home_path, source, seed, self.allow_modified)
            if cached is not None:
                return cached
            if offline:
                _refuse_damaged_cache(home_path, source, seed)
        paths = raw_paths(source, home_path, raw_dir, offline)
        cache = _cache_path(home_path, source, seed, raw_digest(paths))
        ds = _read_cache(cache, source, seed)
        if ds is None or (ds.modified and not self.allow_modified):  # rebuilding says which file is modified
            train, test, modified = (build_mnist(paths, seed, MNIST_TRAIN_SIZES[source], self.allow_modified,
                                                 test_first=DRAW_ORDER[source] == "test first")
                                     if source in MNIST_TRAIN_SIZES else build_usps(paths, self.allow_modified))
            ds = Dataset(source, seed, train, test, modified=modified)
            _write_cache(cache, ds)
        return ds


def load(source: str = "usps", data_seed: int = DEFAULT_DATA_SEED, home: str | os.PathLike | None = None,
         raw_dir: str | os.PathLike | None = None, offline: bool | None = None,
         allow_modified: bool = False) -> Dataset:
    """Load a data set as arrays: `load("usps").train.images` is float32 (7291, 1, 16, 16); the
    keywords are those of Location, whose `load` this is."""
    return Location(home, raw_dir, offline, allow_modified).load(source, data_seed)
