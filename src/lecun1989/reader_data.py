"""The reader's training set (`lecun1989 reader`): every training digit there is, USPS's 7,291 and
MNIST's 60,000, drawn again the ways a reader meets digits, and pieces of ink that are not a digit.

A digit cut from a page reaches the network through digits.normalize (crop, deslant, fill 16 pixels,
ink at +1). So each example here is made as such a digit is: its ink drawn at a reading scale
(32 pixels tall), then changed, then normalized by the same function predict uses:

- a digit, USPS_COPIES times for USPS and once for MNIST, each time with a new draw of: a pen
  (a quarter thin: only the ink above a level U(0.35, 0.8), a third of those one pixel eroded; a
  quarter heavy: dilated by 1 or 2 pixels; half as drawn), a rotation U(-8, 8) degrees, a shear
  U(-0.25, 0.25), a width scaled by U(0.5, 1.3) (thin tall digits, drawn at a phone's width,
  included), a blur of sd U(0, 0.8) pixels, and after normalizing, for SHIFT_SHARE of them, a shift
  of up to one pixel (the cut around a digit is not always tight). Its polarity needs no draw: the
  reader turns either polarity into ink before this step;
- not a digit, labelled NONE (the targets all -1: with MSE no output should rise, with cross-entropy no class is
  preferred, the uniform distribution), NEGATIVE_SHARE of the
  set, of four kinds drawn with the odds KINDS: a digit's left or right piece (cut at U(0.25, 0.75)
  of its width, the piece a cut in the wrong place leaves; at least WIDE_PIECE of a height wide, as
  a 1 is not); two digits side by side, three times in four touching as the zip-code benchmark makes
  them touch, else from 0.05 of a height overlapping to 0.15 apart (a cut missed); the right part of
  one digit beside the left part of the next (a window between two cuts); a dot or a dash (an
  ellipse of 0.1-0.3 of a height, wide or round);
- what the reader's own segmenter (segment.py) cuts from rows of drawn digits, as the zip-code
  readers of 1990-1992 were trained: ROWS_PER_DIGIT rows per training digit, each of 2 to 5 digits
  drawn as above (any training digit), moved up or down by up to 0.08 of a height, each neighbour
  touching (ROW_TOUCH, placed as the zip-code benchmark places one) or a gap of U(0.08, 0.5) heights
  apart. Every candidate the segmenter makes of the row (segment.atoms cutting as ROW_CUTS says,
  segment.spans, on the row's ink scaled to a strongest ink of 1) is an example, labelled by which
  digit's ink its pixels are (the digit drawn strongest at each pixel): the digit d if d owns at
  least PURE of its pixels and it holds at least WHOLE of d's; not a digit if no digit owns MIXED of
  its pixels (a cut missed), or it holds less than PART of the digit that owns the most and is at
  least WIDE_PIECE of a height wide (a wrong cut; a narrower piece may be a 1); else (nearly a whole
  digit) it is left out.

Every draw comes from numpy's Generator(PCG64) seeded with [seed, k] for example k, and row r's from
[seed, ROW_STREAM + r], so the set is
the same bytes for the same seed and sizes, whatever built it before; the set is then shuffled once
(numpy's Generator(PCG64) seeded with [seed, n], n its size), since it is trained in its order. The
test split is the 2,007 USPS test digits as they are: what the run's error and its rejection
threshold are measured on, digits it never trained on.
"""

from __future__ import annotations

import math

import numpy as np

from . import paper
from .data import Dataset, Location, Split, parse_idx
from .data import raw_digest, sha256_of
from .digits import compiled, normalize, normalized
from .segment import MASK_LEVEL, Cuts, Part, atoms, spans
from .store.atomic import atomic_write

FORMAT = 13                  # the cache's; raised whenever a draw below changes
NONE = paper.N_CLASSES       # the label of an example that is not a digit: every target -1
HEIGHT = 32                  # pixels a digit is drawn at before it is changed and normalized
USPS_COPIES = 3              # draws of each USPS digit: its writers are the zip codes' own
NEGATIVE_SHARE = 1 / 3       # of the whole set
KINDS = (0.25, 0.4, 0.2, 0.15)  # the not-digits' kinds, in the module doc's order: how often each is drawn
SHIFT_SHARE = 0.25           # of the examples moved by up to a pixel after normalizing
WIDE_PIECE = 0.45            # a piece of a digit narrower than this (in heights) is not taught as a not-digit
ROWS_PER_DIGIT = 1 / 20      # rows cut by the segmenter, per training digit (about 99,000 examples in all)
ROW_DIGITS = (2, 5)          # the fewest and most digits of a row
ROW_TOUCH = 0.5              # of a row's neighbouring pairs, touching
ROW_STREAM = 1 << 40         # row r draws from [seed, ROW_STREAM + r], never an example's [seed, k]
# how its rows are cut: coarser than reading (segment.READING), as reading cut until it was changed;
# taught the pieces of reading's straighter or finer cuts, the network erred more on whole digits and
# read no better (docs/READING.md). Its rows hold no ruled line: what would be taken out as one is the
# strokes of touching digits lined up
ROW_CUTS = Cuts(rules=False, pair_width=1.0, fine_piece=0.25, band=0.2)
PURE, WHOLE = 0.9, 0.9       # a candidate is digit d: d owns PURE of its pixels, it holds WHOLE of d's
MIXED, PART = 0.75, 0.7      # not a digit: no digit owns MIXED of its pixels, or it holds under PART of one


def test_digest(test: Split) -> str:
    """The SHA-256 of a test split's arrays (as Dataset.sha256 takes them), kept in a reader run's
    config.json so that its threshold is measured on the same digits without building its training set."""
    return sha256_of(*test.arrays())


def source_digits(where: Location = Location(), n_usps: int | None = None, n_mnist: int | None = None):
    """The training digits as ink (0 = paper): a list of 2-D arrays (float in [0, 1], or MNIST's uint8
    levels), and their labels."""
    usps = where.load("usps").train
    paths = where.raw_paths("mnist")
    mnist = parse_idx(paths["train-images-idx3-ubyte.gz"], 3)
    mnist_labels = parse_idx(paths["train-labels-idx1-ubyte.gz"], 1).astype(np.int64)
    u = (usps.images[:n_usps, 0].astype(np.float64) + 1.0) / 2.0
    # MNIST stays uint8 (a sixth of its float64 size) until a digit is drawn (_ink)
    return ([*u] * USPS_COPIES + [*mnist[:n_mnist]], np.concatenate([np.tile(usps.labels[:n_usps], USPS_COPIES),
                                                                    mnist_labels[:n_mnist]]))


def _ink(v: np.ndarray) -> np.ndarray:
    return v / 255.0 if v.dtype == np.uint8 else v


def _drawn(ink: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A digit's ink at HEIGHT pixels with a new pen, pose and blur (the module doc's draws, in order)."""
    from scipy import ndimage
    ink = _ink(ink)
    v = ink[np.ix_(ink.any(1), ink.any(0))] if ink.any() else ink
    zoom = HEIGHT / v.shape[0]
    v = ndimage.zoom(np.pad(v, 1), zoom, order=1)
    pen = rng.integers(4)   # 0 thin, 1 heavy, 2 and 3 as drawn
    level, erode, grow = rng.uniform(0.35, 0.8), rng.random() < 1 / 3, int(rng.integers(1, 3))
    if pen == 0:
        v = (v >= level).astype(np.float64)
        if erode:
            thin = ndimage.binary_erosion(v > 0)
            v = thin.astype(np.float64) if thin.any() else v
    elif pen == 1:
        v = ndimage.grey_dilation(v, size=(2 * grow + 1, 2 * grow + 1))
    angle, shear, aspect = math.radians(rng.uniform(-8, 8)), rng.uniform(-0.25, 0.25), rng.uniform(0.5, 1.3)
    c, s = math.cos(angle), math.sin(angle)
    forward = np.array([[c, -s], [s, c]]) @ np.array([[1.0, 0.0], [shear, 1.0]]) @ np.diag([1.0, aspect])
    h, w = v.shape
    size = int(math.ceil(1.6 * max(h, w * aspect))) + 4
    inverse = np.linalg.inv(forward)   # (row, col) of the output -> of the input, about the centres
    centre_out, centre_in = np.array([size / 2, size / 2]), np.array([h / 2, w / 2])
    v = ndimage.affine_transform(v, inverse, offset=centre_in - inverse @ centre_out, output_shape=(size, size),
                                 order=1)
    sd = rng.uniform(0.0, 0.8)
    if sd > 0.05:
        v = ndimage.gaussian_filter(v, sd)
    v = np.clip(v, 0.0, 1.0)
    v[v < 0.02] = 0.0
    return v if v.any() else ndimage.zoom(np.pad(ink, 1), zoom, order=1).clip(0, 1)


def _shifted(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A 16x16 input moved by up to one pixel each way, the background coming in at -1."""
    if rng.random() >= SHIFT_SHARE:
        return x
    dy, dx = rng.integers(-1, 2, size=2)
    out = np.full_like(x, -1.0)
    out[max(0, dy):x.shape[0] + min(0, dy), max(0, dx):x.shape[1] + min(0, dx)] = \
        x[max(0, -dy):x.shape[0] - max(0, dy), max(0, -dx):x.shape[1] - max(0, dx)]
    return out


def _side_by_side(a: np.ndarray, b: np.ndarray, gap: int) -> np.ndarray:
    """Two inks on one row, bottoms aligned by their centres, `gap` columns apart (negative: overlapping)."""
    h = max(a.shape[0], b.shape[0])
    w = a.shape[1] + max(0, gap) + b.shape[1]
    out = np.zeros((h, w + max(0, -gap)))
    ta, tb = (h - a.shape[0]) // 2, (h - b.shape[0]) // 2
    out[ta:ta + a.shape[0], :a.shape[1]] = a
    x = max(0, a.shape[1] + gap)
    out[tb:tb + b.shape[0], x:x + b.shape[1]] = np.maximum(out[tb:tb + b.shape[0], x:x + b.shape[1]], b)
    return out


def touching_column(placed: np.ndarray, new: np.ndarray) -> int | None:
    """Where a new digit's box starts so that it touches the ink already placed, as the zip-code
    benchmark places a touching neighbour: the new digit's leftmost strong ink (>= 0.5) one column
    right of the placed rightmost strong ink, in the row where they come closest, never left of
    column 0 (a digit whose ink starts far right in its box, touching a narrow one); `placed` and
    `new` cover the same rows. None where no row holds strong ink of both."""
    prev, ahead = placed >= 0.5, new >= 0.5
    rows = prev.any(1) & ahead.any(1)
    if not rows.any():
        return None
    right = np.array([np.flatnonzero(r)[-1] for r in prev[rows]])
    left = np.array([np.flatnonzero(r)[0] for r in ahead[rows]])
    return max(0, int((right + 1 - left).max()))


def _touching(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Two inks on one row, centred on it, b placed as the zip-code benchmark places a touching
    neighbour: its strong ink (>= 0.5) one column right of a's in the row where they come closest."""
    h = max(a.shape[0], b.shape[0])
    ta, tb = (h - a.shape[0]) // 2, (h - b.shape[0]) // 2
    pa, pb = np.zeros((h, a.shape[1])), np.zeros((h, b.shape[1]))
    pa[ta:ta + a.shape[0]], pb[tb:tb + b.shape[0]] = a, b
    x = touching_column(pa, pb)
    if x is None:
        return _side_by_side(a, b, 0)
    out = np.zeros((h, max(pa.shape[1], x + pb.shape[1])))
    out[:, :pa.shape[1]] = pa
    out[:, x:x + pb.shape[1]] = np.maximum(out[:, x:x + pb.shape[1]], pb)
    return out


def _cut(v: np.ndarray, at: float, side: int) -> np.ndarray:
    """The left (side 0) or right (side 1) piece of an ink cut at the fraction `at` of its inked width."""
    cols = np.flatnonzero(v.any(0))
    c = int(round(cols[0] + at * (cols[-1] + 1 - cols[0])))
    return v[:, :c] if side == 0 else v[:, c:]


def _wide(v: np.ndarray) -> bool:
    """Whether an ink's inked box is at least WIDE_PIECE as wide as it is tall."""
    if not v.any():
        return False
    rows, cols = np.flatnonzero(v.any(1)), np.flatnonzero(v.any(0))
    return cols[-1] + 1 - cols[0] >= WIDE_PIECE * (rows[-1] + 1 - rows[0])


def _row(inks: list[np.ndarray], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """A row of 2-5 drawn digits (the module doc): (its ink, the index of the digit drawn strongest at
    each pixel or -1, the indices of its digits in `inks`)."""
    picks = [int(rng.integers(len(inks))) for _ in range(int(rng.integers(ROW_DIGITS[0], ROW_DIGITS[1] + 1)))]
    drawn = []
    for i in picks:
        v = _drawn(inks[i], rng)
        drawn.append((v[np.ix_(v.any(1), v.any(0))], int(round(rng.uniform(-0.08, 0.08) * HEIGHT))))
    touching = [bool(rng.random() < ROW_TOUCH) for _ in picks[1:]]
    gaps = [int(round(rng.uniform(0.08, 0.5) * HEIGHT)) for _ in picks[1:]]
    margin = 2
    height = 2 * margin + max(v.shape[0] + 2 * abs(dy) for v, dy in drawn)
    ink = np.zeros((height, 2 * margin + sum(v.shape[1] for v, _ in drawn) + sum(gaps)))
    owner = np.full(ink.shape, -1)
    x = margin
    for k, (v, dy) in enumerate(drawn):
        top = (height - v.shape[0]) // 2 + dy
        if k and touching[k - 1]:
            at = touching_column(ink[top:top + v.shape[0]], v)   # as the benchmark places a touching neighbour
            x = x if at is None else at
        elif k:
            x += gaps[k - 1]
        box = (slice(top, top + v.shape[0]), slice(x, x + v.shape[1]))
        owner[box][v > ink[box]] = k
        ink[box] = np.maximum(ink[box], v)
        x += v.shape[1]
    return ink / ink.max(), owner, picks


def row_examples(inks: list[np.ndarray], labels: np.ndarray, seed: int, r: int) -> tuple[list[np.ndarray], list[int]]:
    """Row r's examples (the module doc): the 16x16 inputs of the segmenter's candidates that are
    taught, and their labels (NONE: not a digit)."""
    ink, owner, picks = _row(inks, np.random.default_rng([seed, ROW_STREAM + r]))
    pieces, group_of, href = atoms(ink, cuts=ROW_CUTS)
    inputs, out = [], []
    if not pieces:
        return inputs, out
    size = np.bincount(owner[(ink >= MASK_LEVEL) & (owner >= 0)], minlength=len(picks))
    for i, j in spans(pieces, group_of, href):
        part = Part.union(pieces[i:j])
        x0, y0, x1, y1 = part.box
        mine = owner[y0:y1, x0:x1][part.mask]
        counts = np.bincount(mine[mine >= 0], minlength=len(picks))
        d = int(counts.argmax())
        pure, whole = counts[d] / part.mask.sum(), counts[d] / max(1, size[d])
        if pure >= PURE and whole >= WHOLE:
            label = int(labels[picks[d]])
        elif pure < MIXED or (whole < PART and x1 - x0 >= WIDE_PIECE * href):
            label = NONE
        else:
            continue
        inputs.append(normalized(part.ink(ink)))
        out.append(label)
    return inputs, out


def rows(n_digits: int) -> int:
    """The rows cut by the segmenter for a set of n_digits drawn digits."""
    return int(round(n_digits * ROWS_PER_DIGIT))


def build_rows(inks: list[np.ndarray], labels: np.ndarray, seed: int, start: int, stop: int) -> Split:
    """The examples of rows start .. stop - 1, row after row."""
    inputs, out = [], []
    for r in range(start, stop):
        x, y = row_examples(inks, labels, seed, r)
        inputs += x
        out += y
    images = np.array(inputs, dtype=np.float32).reshape(-1, 1, paper.IMAGE_SIZE, paper.IMAGE_SIZE)
    return Split(images, np.array(out, dtype=np.int64))


def _not_a_digit(inks: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """One of the four kinds of ink that is not a digit (the module doc), drawn from random digits."""
    kind = int(np.searchsorted(np.cumsum(KINDS), rng.random() * sum(KINDS), side="right"))
    a, b = (_drawn(inks[int(rng.integers(len(inks)))], rng) for _ in range(2))
    if kind == 0:
        for _ in range(5):   # a piece as narrow as a 1 may be one: not taught as a not-digit
            piece = _cut(a, rng.uniform(0.25, 0.75), int(rng.integers(2)))
            if _wide(piece):
                return piece
        kind = 1
    gap = int(round(rng.uniform(-0.05, 0.15) * HEIGHT))
    if kind == 1:
        return _touching(a, b) if rng.random() < 0.75 else _side_by_side(a, b, gap)
    if kind == 2:
        window = _side_by_side(_cut(a, rng.uniform(0.3, 0.7), 1), _cut(b, rng.uniform(0.3, 0.7), 0), gap)
        return window if _wide(window) else _side_by_side(a, b, gap)
    ry, rx = rng.uniform(0.05, 0.15) * HEIGHT, rng.uniform(0.05, 0.3) * HEIGHT
    yy, xx = np.mgrid[-HEIGHT // 2:HEIGHT // 2, -HEIGHT // 2:HEIGHT // 2] + 0.5
    return (((yy / ry) ** 2 + (xx / rx) ** 2) <= 1.0).astype(np.float64)


def total(n_digits: int) -> int:
    """The examples of a set of n_digits drawn digits: they and NEGATIVE_SHARE of the whole not-digits."""
    return n_digits + int(round(n_digits * NEGATIVE_SHARE / (1 - NEGATIVE_SHARE)))


def build(inks: list[np.ndarray], labels: np.ndarray, seed: int, start: int = 0, stop: int | None = None) -> Split:
    """Examples start .. stop - 1 of the training split: every digit drawn once (as listed), then the
    not-digits. Example k depends on (seed, k) only, so the set can be built in pieces."""
    stop = total(len(inks)) if stop is None else stop
    images = np.empty((stop - start, 1, paper.IMAGE_SIZE, paper.IMAGE_SIZE), dtype=np.float32)
    for k in range(start, stop):
        rng = np.random.default_rng([seed, k])
        v = _drawn(inks[k], rng) if k < len(inks) else _not_a_digit(inks, rng)
        if not v.any():   # a piece with no ink left: a dot instead
            v = np.ones((3, 3))
        images[k - start, 0] = _shifted(normalize(v), rng)
    ks = np.arange(start, stop)
    return Split(images, np.where(ks < len(inks), labels[np.minimum(ks, len(labels) - 1)], NONE).astype(np.int64))


_SOURCE: tuple = ()   # a worker's copy of the digits, sent once (_set_source) rather than with every piece


def _set_source(inks, labels) -> None:
    global _SOURCE
    _SOURCE = (inks, labels)


def _build_range(args) -> tuple[np.ndarray, np.ndarray]:
    seed, start, stop, of_rows = args
    split = (build_rows if of_rows else build)(*_SOURCE, seed, start, stop)
    return split.images, split.labels


def load(where: Location = Location(), seed: int = 0, n_usps: int | None = None,
         n_mnist: int | None = None, workers: int | None = None) -> Dataset:
    """The reader's data set: the drawn training digits and not-digits, and the USPS test digits. Built
    once (about a minute on two cores for the whole set) and kept in the data home's processed/ folder,
    named by the seed, the sizes and the raw files' digest, and checked by its own digest when read."""
    import os
    from concurrent.futures import ProcessPoolExecutor
    test = where.load("usps").test
    paths = {**where.raw_paths("usps"), **where.raw_paths("mnist")}
    sizes = f"u{'all' if n_usps is None else n_usps}-m{'all' if n_mnist is None else n_mnist}"
    # normalized without numba, the set's last bits are the numpy steps': another file
    steps = "" if compiled() else "-numpy"
    cache = where.home_path() / "processed" / f"reader-seed{seed}-{sizes}-v{FORMAT}{steps}-{raw_digest(paths)}.npz"
    try:
        with np.load(cache, allow_pickle=False) as z:
            train = Split(z["images"], z["labels"])
            if str(z["sha256"]) == sha256_of(*train.arrays()):
                return Dataset("reader", seed, train, test)
    except Exception:   # missing, truncated or from elsewhere: built again
        pass
    inks, labels = source_digits(where, n_usps, n_mnist)
    n = total(len(inks))
    workers = workers or min(os.cpu_count() or 1, 8)
    jobs = []
    for size, of_rows in ((n, False), (rows(len(inks)), True)):
        bounds = np.linspace(0, size, workers * 4 + 1).astype(int)
        jobs += [(seed, int(a), int(b), of_rows) for a, b in zip(bounds, bounds[1:]) if b > a]
    if workers > 1 and n > 2000:
        with ProcessPoolExecutor(workers, initializer=_set_source, initargs=(inks, labels)) as pool:
            parts = list(pool.map(_build_range, jobs))
    else:
        parts = [(build_rows if of_rows else build)(inks, labels, seed, a, b) for seed, a, b, of_rows in jobs]
        parts = [(p.images, p.labels) for p in parts]
    n = sum(len(p[1]) for p in parts)
    # one fixed shuffle: trained online in this order, a set sorted by kind would teach the last kind last
    order = np.random.default_rng([seed, n]).permutation(n)
    train = Split(np.concatenate([p[0] for p in parts])[order], np.concatenate([p[1] for p in parts])[order])

    def write(f):
        np.savez(f, images=train.images, labels=train.labels, sha256=np.array(sha256_of(*train.arrays())))
    try:
        atomic_write(cache, write, mode="wb")
    except OSError:
        pass   # a read-only data home only costs a rebuild next time
    return Dataset("reader", seed, train, test)
