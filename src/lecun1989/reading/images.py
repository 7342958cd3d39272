"""Reading digits and zip codes from images with a trained network (`lecun1989 predict`).

A scanned or photographed row of digits is made to look like the 1989 USPS digits the network was
trained on (16x16, ink high, background exactly -1, the digit's box filling the frame in its longer
direction and centred, deslanted), cut into digits, and read left to right. Every step is plain
arithmetic, written down below exactly enough for another implementation (a JavaScript copy) to
reproduce the 16x16 inputs within 1e-5; docs/READING.md says the same with the measurements.

All arithmetic is in float64. Pixel (i, j) is row i, column j; its centre is at (i + 0.5, j + 0.5).

1. Grey. An image file is read with Pillow (EXIF orientation applied, first frame). 8-bit channels
   are divided by 255, 16-bit ones by 65535. Colour: grey = 0.299 R + 0.587 G + 0.114 B. Alpha a
   (in [0, 1]) is composited over white: grey = a * grey + (1 - a), so strokes drawn on a
   transparent canvas read as dark ink on light paper.
2. Polarity and ink. paper = the median of the border pixels (first and last row, first and last
   column, each pixel once; numpy's median: the mean of the two middle values for an even count).
   If paper >= 0.5 the ink is dark on light paper: ink = 1 - grey, p = 1 - paper; else ink = grey,
   p = paper. Then ink = clip((ink - p) / (1 - p), 0, 1) (the paper becomes 0), and ink = ink /
   max(ink) (the strongest ink is 1). An image with no ink left (max 0, or p = 1) is refused.
3. Components. mask = ink >= MASK_LEVEL (0.25). Connected components of the mask, 8-connected.
   A component's box is (x0, y0, x1, y1) with x1, y1 exclusive; its height y1 - y0, width x1 - x0.
4. Grouping. Hmax = the tallest component's height. A component at least Hmax / 2 tall
   (2 * height >= Hmax) starts a group. Every shorter one joins the group whose starting
   component's column range shares the most columns with its own (ties: the group whose start has
   the smaller x0, then smaller y0); one that shares no column with any is a digit of its own if it
   has at least SPECK (0.1) times the median pixel count of the starting components, else it is
   dropped as a speck.
5. Splitting touching digits. Href = the median height of the groups (numpy's median). A group is
   split while its width w > SPLIT_RATIO (0.9) times Href, and w >= 4. The cut column c is, among the columns x0 + k for k = w // 4 ..
   w - 1 - w // 4, the one with the least ink (the sum of `ink` over the group's mask in that
   column); ties: the one nearest the middle (|2 k - (w - 1)| smallest), then the leftmost. Columns
   < c form the left part, columns >= c the right one; each part's box is recomputed from its mask.
   When reading (`read_image`), the network judges the cut: it is kept only if both parts' margins
   (step 7) exceed the whole part's margin, so that a wide 0 is not cut in two; a kept part is
   split again by the same rule. With `digits=N` (a known count, e.g. 5 for a zip code) the rule
   above is not used: while there are fewer than N groups, and fewer than the ink can hold (the sum
   over the groups of max(1, floor(w / D)), D = min(S, NARROWEST (0.25) Href), S the stroke width:
   the median length of the runs of mask pixels along the rows; a digit is at least one stroke wide,
   so a row of five upright strokes holds five digits, however many are asked), the one with the
   largest w / h (ties: leftmost) of width >= 4 is cut by the same cut, unjudged; while there are
   more, the one with the fewest pixels (ties: leftmost) joins its neighbour in x0 order whose box is nearest (the
   horizontal gap between the boxes, negative when they overlap; ties: the left one). Digits are read in the order
   of their box's x0 (ties: y0).
6. A digit's image: `ink` inside its box where its own mask is set, 0 elsewhere (so a neighbour's
   strokes inside the box are left out), then `normalize`:
   a. crop to the box of the pixels > 0;
   b. deslant (on by default; the public USPS digits are deslanted): with v the pixel values, m =
      sum v, cx = sum v (j + 0.5) / m, cy = sum v (i + 0.5) / m, vyy = sum v (i + 0.5 - cy)^2,
      vxy = sum v (j + 0.5 - cx)(i + 0.5 - cy); s = vxy / vyy (0 if vyy = 0), clipped to [-1, 1].
      With h, w the crop's size, P = ceil(|s| h); the sheared image is h x (w + 2P): its pixel
      (i, j) is the input's row i at u = j + 0.5 - P + s (i + 0.5 - cy) by linear interpolation
      between pixel centres: t = u - 0.5, k = floor(t), f = t - k, value = (1 - f) in[i, k] +
      f in[i, k + 1], where in[i, k] = 0 outside 0 <= k < w. Then crop again to the pixels > 0.
   c. resample by area (a box filter): h, w the crop's size, scale = 16 / max(h, w), offsets
      oy = (16 - h scale) / 2, ox = (16 - w scale) / 2. Input row k covers [oy + k scale,
      oy + (k + 1) scale) of the output's rows; Ay[r, k] = the length of that interval's overlap
      with [r, r + 1), for r = 0..15 (the same with ox for columns: Ax). out = Ay @ crop @ Ax^T:
      each output pixel is the mean of the input over its square, the whole of every thin stroke
      kept as a lighter grey; the box is centred and fills 16 pixels in its longer direction.
   d. grey levels: x = 2 out / max(out) - 1: ink up to +1, background exactly -1.
7. The network reads each 16x16 input; the label is the largest output, the confidence the margin
   (largest minus second largest output, `confidence.margin`). A digit whose margin is below the
   threshold is shown as `?`. A run's threshold is the margin at which its own test digits err at
   1% (`confidence.rejection_at`), computed once per run and process, or given.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..data import Location, resize_bilinear
from ..errors import LecunError
from ..trained import load_net, run_data
from .confidence import margin, rejection_at

SIZE = 16
MASK_LEVEL = 0.25
SPECK = 0.1
SPLIT_RATIO = 0.9        # chosen on strips of training digits (docs/READING.md)
NARROWEST = 0.25         # no digit but a 1 (one stroke wide) is narrower than a quarter of its height
MAX_SLANT = 1.0
REJECT_ERROR = 0.01
# Images beyond this many pixels are refused rather than labelled pixel by pixel for minutes.
MAX_PIXELS = 40_000_000


# --- 1, 2: the image, its polarity, its ink --------------------------------------------------------

def load_image(path: str | Path) -> np.ndarray:
    """An image file as grey levels in [0, 1] (1 = white), float64 (H, W); step 1 of the module doc."""
    from PIL import Image, ImageOps, UnidentifiedImageError
    path = Path(path)
    if path.is_dir():
        raise LecunError(f"{path} is a folder, not an image file")
    if not path.exists():
        raise LecunError(f"{path}: no such image file")
    try:
        # MAX_PIXELS refuses a huge image in one line; Pillow's own warning about it would come first
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                im.seek(0)
                if im.width * im.height > MAX_PIXELS:
                    raise LecunError(f"{path} has {im.width}x{im.height} pixels; scale it below "
                                     f"{MAX_PIXELS:,} pixels first")
                im = ImageOps.exif_transpose(im)
                return image_array(im)
    except UnidentifiedImageError:
        raise LecunError(f"{path} is not an image file Pillow can read (PNG, JPEG, BMP, TIFF, ...)") from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise LecunError(f"cannot read {path} ({e})") from None


def image_array(im) -> np.ndarray:
    """A Pillow image as grey in [0, 1], alpha composited over white."""
    mode = im.mode
    if mode.startswith("I;16") or mode in ("I", "F"):
        a = np.asarray(im, dtype=np.float64)
        top = 1.0 if mode == "F" else (255.0 if mode == "I" and a.max() <= 255 else 65535.0)
        return np.clip(a / top, 0.0, 1.0)
    alpha = None
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in im.info):
        rgba = np.asarray(im.convert("RGBA"), dtype=np.float64) / 255.0
        rgb, alpha = rgba[..., :3], rgba[..., 3]
    elif mode in ("L", "1"):
        return np.asarray(im.convert("L"), dtype=np.float64) / 255.0
    else:
        rgb = np.asarray(im.convert("RGB"), dtype=np.float64) / 255.0
    grey = 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]
    if alpha is not None:
        grey = alpha * grey + (1.0 - alpha)
    return grey


def to_ink(grey: np.ndarray) -> tuple[np.ndarray, str]:
    """Grey levels (1 = white) -> ink in [0, 1] with the paper at 0 and the strongest ink at 1, and the
    polarity found ('dark-on-light' or 'light-on-dark'); step 2 of the module doc."""
    grey = np.asarray(grey, dtype=np.float64)
    if grey.ndim != 2 or grey.shape[0] < 1 or grey.shape[1] < 1:
        raise LecunError(f"an image must be a 2-D array of grey levels, not shape {grey.shape}")
    if not np.isfinite(grey).all():
        raise LecunError("the image holds values that are not finite numbers")
    border = np.concatenate([grey[0], grey[-1], grey[1:-1, 0], grey[1:-1, -1]]) if min(grey.shape) > 1 \
        else grey.ravel()
    paper = float(np.median(border))
    if paper >= 0.5:
        ink, p, polarity = 1.0 - grey, 1.0 - paper, "dark-on-light"
    else:
        ink, p, polarity = grey, paper, "light-on-dark"
    if p >= 1.0:
        raise LecunError("the image holds no ink (it is one flat grey)")
    ink = np.clip((ink - p) / (1.0 - p), 0.0, 1.0)
    top = ink.max()
    if top <= 0:
        raise LecunError("the image holds no ink (it is one flat grey)")
    return ink / top, polarity


# --- 3-5: components, groups, splits ---------------------------------------------------------------

def components(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """8-connected components of a boolean image: (labels, count), labels 1..count in order of the
    first pixel met scanning row by row, 0 for background. Works on runs of set pixels per row."""
    h, w = mask.shape
    runs = []   # (row, start, end exclusive)
    row_runs = []
    for r in range(h):
        m = np.concatenate([[False], mask[r], [False]])
        d = np.flatnonzero(m[1:] != m[:-1])
        row_runs.append(range(len(runs), len(runs) + len(d) // 2))
        runs.extend((r, int(a), int(b)) for a, b in zip(d[0::2], d[1::2]))
    parent = list(range(len(runs)))

    def find(a):
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for r in range(1, h):
        above = row_runs[r - 1]
        for i in row_runs[r]:
            _, a, b = runs[i]
            for j in above:   # touching, diagonals included: columns [a-1, b] meet [c, d)
                _, c, d = runs[j]
                if c <= b and a <= d:
                    ri, rj = find(i), find(j)
                    if ri != rj:
                        parent[max(ri, rj)] = min(ri, rj)
    labels = np.zeros((h, w), dtype=np.int32)
    ids = {}
    for i, (r, a, b) in enumerate(runs):
        root = find(i)
        labels[r, a:b] = ids.setdefault(root, len(ids) + 1)
    return labels, len(ids)


@dataclass(eq=False)
class Part:
    """One digit's pixels: a boolean mask over the whole image and its box (x0, y0, x1, y1)."""
    mask: np.ndarray
    box: tuple[int, int, int, int]

    @staticmethod
    def of(mask: np.ndarray) -> "Part":
        rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
        return Part(mask, (int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1))

    @property
    def width(self) -> int:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> int:
        return self.box[3] - self.box[1]


def _split(part: Part, ink: np.ndarray) -> list[Part]:
    """Cut a part at its column of least ink in its middle half (step 5)."""
    x0, y0, x1, y1 = part.box
    w = x1 - x0
    column_ink = (ink * part.mask)[y0:y1, x0:x1].sum(axis=0)
    ks = np.arange(w // 4, w - w // 4)
    best = min(ks, key=lambda k: (column_ink[k], abs(2 * k - (w - 1)), k))
    c = x0 + int(best)
    left, right = part.mask.copy(), part.mask.copy()
    left[:, c:] = False
    right[:, :c] = False
    return [Part.of(m) for m in (left, right) if m.any()]


def stroke_width(mask: np.ndarray) -> float:
    """The width of the ink's strokes: the median length of the runs of set pixels along the mask's
    rows (0 for an empty mask)."""
    edges = np.diff(np.pad(mask, ((0, 0), (1, 1))).astype(np.int8), axis=1)
    starts, ends = np.nonzero(edges == 1)[1], np.nonzero(edges == -1)[1]   # row by row, in order
    return float(np.median(ends - starts)) if len(starts) else 0.0


def capacity(parts: list[Part], mask: np.ndarray, height: float) -> int:
    """The most digits the parts can be cut into: a part W wide holds at most W // D of them (and at
    least itself), D the narrowest a digit can be: one stroke (a 1), or NARROWEST times the row's
    `height` where that is less (ink in solid blocks, whose rows are one run as wide as the digit)."""
    narrowest = min(stroke_width(mask), NARROWEST * height)
    return sum(max(1, int(p.width // narrowest)) if narrowest > 0 else 1 for p in parts)


def segment(ink: np.ndarray, digits: int | None = None, judge=None) -> list[Part]:
    """The digits of a row, left to right (steps 3-5 of the module doc). `judge(parts) -> margins`,
    when given, vetoes a split whose pieces the network is less sure of than the whole."""
    labels, n = components(ink >= MASK_LEVEL)
    if n == 0:
        return []
    comps = [Part.of(labels == k) for k in range(1, n + 1)]
    hmax = max(c.height for c in comps)
    starts = sorted((c for c in comps if 2 * c.height >= hmax), key=lambda c: (c.box[0], c.box[1]))
    groups = [c.mask.copy() for c in starts]
    typical = float(np.median([c.mask.sum() for c in starts]))
    loose = []
    for c in comps:
        if 2 * c.height >= hmax:
            continue
        shared = [max(0, min(c.box[2], s.box[2]) - max(c.box[0], s.box[0])) for s in starts]
        best = int(np.argmax(shared))   # the first of equals: starts are in (x0, y0) order
        if shared[best] > 0:
            groups[best] |= c.mask
        elif c.mask.sum() >= SPECK * typical:
            loose.append(c.mask.copy())
    parts = [Part.of(m) for m in groups + loose]
    # the height of a digit here: touching digits make a part wide, not tall
    href = float(np.median([p.height for p in parts]))
    done, todo = [], parts
    while todo:
        p = todo.pop()
        if digits is None and p.width > SPLIT_RATIO * href and p.width >= 4:
            pieces = _split(p, ink)
            if len(pieces) == 2 and (judge is None or min(judge(pieces)) > judge([p])[0]):
                todo.extend(pieces)
                continue
        done.append(p)
    if digits is not None:
        # No more digits than the ink can hold: cutting a one-stroke-wide part (a 1, a bar) into more would
        # invent digits out of halves of strokes.
        most = min(digits, capacity(done, ink >= MASK_LEVEL, href))
        while len(done) < most:
            wide = [p for p in done if p.width >= 4]
            if not wide:
                break
            p = max(wide, key=lambda p: (p.width / p.height, -p.box[0]))
            pieces = _split(p, ink)
            if len(pieces) < 2:
                break
            done = [q for q in done if q is not p] + pieces
        while len(done) > digits:
            done.sort(key=lambda p: (p.box[0], p.box[1]))
            k = min(range(len(done)), key=lambda k: (done[k].mask.sum(), k))
            gap = lambda j: max(done[j].box[0], done[k].box[0]) - min(done[j].box[2], done[k].box[2])
            j = min((j for j in (k - 1, k + 1) if 0 <= j < len(done)), key=lambda j: (gap(j), j))
            merged = Part.of(done[j].mask | done[k].mask)
            done = [q for i, q in enumerate(done) if i not in (j, k)] + [merged]
    return sorted(done, key=lambda p: (p.box[0], p.box[1]))


# --- 6: one digit to a 16x16 input -----------------------------------------------------------------

def crop(v: np.ndarray) -> np.ndarray:
    rows, cols = np.flatnonzero((v > 0).any(1)), np.flatnonzero((v > 0).any(0))
    return v[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]


def slant(v: np.ndarray) -> float:
    """The slant s = cov(x, y) / var(y) of the ink (step 6b), clipped to [-MAX_SLANT, MAX_SLANT]."""
    h, w = v.shape
    y, x = np.arange(h)[:, None] + 0.5, np.arange(w)[None, :] + 0.5
    m = v.sum()
    cx, cy = (v * x).sum() / m, (v * y).sum() / m
    vyy = (v * (y - cy) ** 2).sum()
    if vyy <= 0:
        return 0.0
    s = (v * (x - cx) * (y - cy)).sum() / vyy
    return float(min(MAX_SLANT, max(-MAX_SLANT, s)))


def deslant(v: np.ndarray) -> np.ndarray:
    """Shear the rows so that the ink's principal axis is vertical (step 6b); `v` cropped."""
    s = slant(v)
    if s == 0.0:
        return v
    h, w = v.shape
    cy = (v * (np.arange(h)[:, None] + 0.5)).sum() / v.sum()
    pad = math.ceil(abs(s) * h)
    j = np.arange(w + 2 * pad)[None, :]
    t = (j + 0.5 - pad + s * (np.arange(h)[:, None] + 0.5 - cy)) - 0.5
    k = np.floor(t).astype(np.int64)
    f = t - k
    padded = np.pad(v, ((0, 0), (1, 1)))   # in[i, -1] = in[i, w] = 0
    rows = np.arange(h)[:, None]

    def at(kk):
        inside = (kk >= -1) & (kk <= w)
        return np.where(inside, padded[rows, np.clip(kk, -1, w) + 1], 0.0)

    return crop((1.0 - f) * at(k) + f * at(k + 1))


def area_weights(n: int, scale: float, offset: float) -> np.ndarray:
    """(SIZE, n): entry [r, k] = the length of [offset + k scale, offset + (k + 1) scale) within [r, r + 1)."""
    lo = offset + np.arange(n) * scale
    r = np.arange(SIZE)[:, None]
    return np.clip(np.minimum(lo + scale, r + 1.0) - np.maximum(lo, r), 0.0, None)


def normalize(ink: np.ndarray, deslant_: bool = True) -> np.ndarray:
    """One digit's ink (2-D, >= 0, 0 = paper) -> the network's 16x16 input in [-1, 1], background
    exactly -1 (step 6 of the module doc)."""
    v = np.asarray(ink, dtype=np.float64)
    if v.ndim != 2 or not np.isfinite(v).all() or (v < 0).any():
        raise LecunError("a digit's ink must be a 2-D array of finite values >= 0")
    if not (v > 0).any():
        raise LecunError("the digit holds no ink")
    v = crop(v)
    if deslant_:
        v = deslant(v)
    h, w = v.shape
    scale = SIZE / max(h, w)
    out = area_weights(h, scale, (SIZE - h * scale) / 2) @ v @ area_weights(w, scale, (SIZE - w * scale) / 2).T
    return 2.0 * out / out.max() - 1.0


def resize_naive(images: np.ndarray) -> np.ndarray:
    """The comparison: whole images (N, H, W) in [0, 1] resized bilinearly to 16x16 (data.py's MNIST
    approximation), scaled to [-1, 1]."""
    small = resize_bilinear(np.asarray(images, dtype=np.float32) * 2 - 1, SIZE)
    return small.astype(np.float64)


# --- 7: reading ------------------------------------------------------------------------------------

@dataclass
class Digit:
    label: int
    margin: float
    accepted: bool
    box: tuple[int, int, int, int]   # x0, y0, x1, y1 (exclusive) in the image's pixels
    input: np.ndarray                 # the 16x16 input the network read
    outputs: np.ndarray               # the network's 10 outputs

    @property
    def char(self) -> str:
        return str(self.label) if self.accepted else "?"


@dataclass
class Reading:
    text: str
    digits: list[Digit]
    threshold: float
    polarity: str
    shape: tuple[int, int]
    image: np.ndarray = field(repr=False)   # the ink, for pictures

    def to_json(self, name: str | None = None) -> dict:
        out = {"text": self.text, "threshold": self.threshold if math.isfinite(self.threshold) else None,
               "polarity": self.polarity, "height": self.shape[0], "width": self.shape[1],
               "digits": [{"label": d.label, "margin": round(float(d.margin), 6), "accepted": d.accepted,
                           "box": list(d.box)} for d in self.digits]}
        return {"image": name, **out} if name is not None else out


@dataclass
class Reader:
    """A network and the margin its digits need to be accepted."""
    net: object
    threshold: float
    run_dir: Path | None = None
    test_rejection: float | None = None   # the share of the run's test digits rejected at the threshold

    def outputs(self, inputs: np.ndarray) -> np.ndarray:
        return self.net.outputs(np.asarray(inputs, dtype=np.float64))


def run_threshold(net, run_dir: Path, where: Location = Location()) -> tuple[float, float]:
    """(the margin at which the run's own test digits err at 1%, the share of them rejected there)."""
    ds = run_data(run_dir, where)
    reader = Reader(net, 0.0)
    out = reader.outputs(ds.test.images)
    correct = out.argmax(1) == ds.test.labels
    share, threshold = rejection_at(margin(out), correct, REJECT_ERROR)
    return threshold, share


@lru_cache(maxsize=None)
def _reader(run_dir: Path, threshold: float | None, where: Location) -> Reader:
    net = load_net(run_dir)
    if threshold is not None:
        return Reader(net, threshold, run_dir)
    t, share = run_threshold(net, run_dir, where)
    return Reader(net, t, run_dir, share)


def reader(net_or_run, threshold: float | None = None, where: Location = Location()) -> Reader:
    """A Reader from a Reader, a network (threshold None: accept every digit) or a run folder
    (threshold None: the run's 1%-error margin, computed once per run and process)."""
    if isinstance(net_or_run, Reader):
        return net_or_run if threshold is None else Reader(net_or_run.net, threshold, net_or_run.run_dir)
    if isinstance(net_or_run, (str, Path)):
        return _reader(Path(net_or_run).resolve(), threshold, where)
    return Reader(net_or_run, -math.inf if threshold is None else threshold)


def read_image(net_or_run, image: np.ndarray, threshold: float | None = None, deslant: bool = True,
               digits: int | None = None, where: Location = Location()) -> Reading:
    """Read a row of digits: `image` is a 2-D array of grey levels in [0, 1] (either polarity), or a
    path to an image file. `net_or_run`: a Net1989, a run folder or a Reader."""
    r = reader(net_or_run, threshold, where)
    grey = load_image(image) if isinstance(image, (str, Path)) else image
    ink, polarity = to_ink(grey)

    def inputs_of(parts):
        return np.array([normalize(np.where(p.mask, ink, 0.0)[p.box[1]:p.box[3], p.box[0]:p.box[2]], deslant)
                         for p in parts]).reshape(-1, SIZE, SIZE)

    parts = segment(ink, digits, judge=lambda ps: margin(r.outputs(inputs_of(ps))))
    inputs = inputs_of(parts)
    out = r.outputs(inputs) if len(parts) else np.zeros((0, 10))
    margins = margin(out) if len(parts) else np.zeros(0)
    found = [Digit(int(o.argmax()), float(m), bool(m >= r.threshold), p.box, x, o)
             for p, x, o, m in zip(parts, inputs, out, margins)]
    return Reading("".join(d.char for d in found), found, r.threshold, polarity, ink.shape, ink)
