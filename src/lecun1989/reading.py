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
   above is not used: while there are fewer than N groups, the one with the largest w / h (ties:
   leftmost) of width >= 4 is cut by the same cut, unjudged; while there are more, the one with the
   fewest pixels (ties: leftmost) joins its neighbour in x0 order whose box is nearest (the
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
import sys
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from .errors import LecunError

SIZE = 16
MASK_LEVEL = 0.25
SPECK = 0.1
SPLIT_RATIO = 0.9        # chosen on strips of training digits (docs/READING.md)
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
        while len(done) < digits:
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

def _crop(v: np.ndarray) -> np.ndarray:
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

    return _crop((1.0 - f) * at(k) + f * at(k + 1))


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
    v = _crop(v)
    if deslant_:
        v = deslant(v)
    h, w = v.shape
    scale = SIZE / max(h, w)
    out = area_weights(h, scale, (SIZE - h * scale) / 2) @ v @ area_weights(w, scale, (SIZE - w * scale) / 2).T
    return 2.0 * out / out.max() - 1.0


def resize_naive(images: np.ndarray) -> np.ndarray:
    """The comparison: whole images (N, H, W) in [0, 1] resized bilinearly to 16x16 (data.py's MNIST
    approximation), scaled to [-1, 1]."""
    from .data import resize_bilinear
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


def load_net(run_dir: Path):
    """The network of a run folder (float64) with its latest weights; needs no data."""
    from .model import Net1989, NetConfig
    from .plots import read_config
    from .rundir import load_weights
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise LecunError(f"{run_dir} is not a folder; give a run folder (one holding config.json and "
                         f"weights.safetensors)")
    if not (run_dir / "config.json").is_file() or not (run_dir / "weights.safetensors").is_file():
        raise LecunError(f"{run_dir} is not a run folder (it lacks config.json or weights.safetensors); "
                         f"give one of the folders a training command wrote")
    if not (run_dir / "summary.json").is_file():
        print(f"note: {run_dir} has not finished training; reading with the weights of its last completed pass",
              file=sys.stderr)
    config = read_config(run_dir)
    try:
        net = Net1989(NetConfig(**config["net"])).double()
    except (TypeError, LecunError) as e:
        raise LecunError(f"{run_dir / 'config.json'}: bad network settings ({e})") from None
    path = run_dir / "weights.safetensors"
    params, _ = load_weights(path)
    want = {name: tuple(getattr(net, name).shape) for name in net.PARAMS}
    if {n: tuple(v.shape) for n, v in params.items()} != want:
        raise LecunError(f"{path} does not fit the network of its config.json")
    net.set_params({k: v.astype(np.float64) for k, v in params.items()})
    net.eval()
    return net


def run_threshold(net, run_dir: Path, load: dict | None = None) -> tuple[float, float]:
    """(the margin at which the run's own test digits err at 1%, the share of them rejected there)."""
    from . import confidence
    from .plots import load_run
    _, ds = load_run(run_dir, load)
    reader = Reader(net, 0.0)
    out = reader.outputs(ds.test.images)
    correct = out.argmax(1) == ds.test.labels
    share, threshold = confidence.rejection_at(confidence.margin(out), correct, REJECT_ERROR)
    return threshold, share


@lru_cache(maxsize=None)
def _reader(run_dir: Path, threshold: float | None, load_items: tuple) -> Reader:
    net = load_net(run_dir)
    if threshold is not None:
        return Reader(net, threshold, run_dir)
    t, share = run_threshold(net, run_dir, dict(load_items) or None)
    return Reader(net, t, run_dir, share)


def reader(net_or_run, threshold: float | None = None, load: dict | None = None) -> Reader:
    """A Reader from a Reader, a network (threshold None: accept every digit) or a run folder
    (threshold None: the run's 1%-error margin, computed once per run and process)."""
    if isinstance(net_or_run, Reader):
        return net_or_run if threshold is None else Reader(net_or_run.net, threshold, net_or_run.run_dir)
    if isinstance(net_or_run, (str, Path)):
        return _reader(Path(net_or_run).resolve(), threshold, tuple(sorted((load or {}).items())))
    return Reader(net_or_run, -math.inf if threshold is None else threshold)


def read_image(net_or_run, image: np.ndarray, threshold: float | None = None, deslant: bool = True,
               digits: int | None = None, load: dict | None = None) -> Reading:
    """Read a row of digits: `image` is a 2-D array of grey levels in [0, 1] (either polarity), or a
    path to an image file. `net_or_run`: a Net1989, a run folder or a Reader."""
    r = reader(net_or_run, threshold, load)
    grey = load_image(image) if isinstance(image, (str, Path)) else image
    ink, polarity = to_ink(grey)
    from .confidence import margin

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


# --- the zip-code benchmark ------------------------------------------------------------------------

ZIP_LENGTH = 5
TOUCH_SHARE = 0.25        # the share of neighbouring pairs pushed together until their strokes touch
DARK_ON_LIGHT_SHARE = 0.5
MAX_ZIPCODES = 100_000    # the files are named zip-00000.png .. zip-99999.png


def test_digits(load: dict | None = None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The digits the benchmark is made of, as ink in [0, 1] (0 = paper): MNIST's 10,000 test digits
    (28x28) and USPS's 2,007 test digits (16x16); neither is in any training set of this package."""
    from . import data
    load = dict(load or {})
    raw_dir = load.get("raw_dir") or __import__("os").environ.get(data.RAW_DIR_ENV) or None
    offline = load.get("offline")
    paths = data.raw_paths("mnist", data.data_home(load.get("home")), raw_dir,
                           data.env_offline() if offline is None else offline)
    mnist = data.parse_idx(paths["t10k-images-idx3-ubyte.gz"], 3).astype(np.float64) / 255.0
    mnist_labels = data.parse_idx(paths["t10k-labels-idx1-ubyte.gz"], 1).astype(np.int64)
    usps = data.load("usps", **load).test
    return {"mnist": (mnist, mnist_labels), "usps": ((usps.images[:, 0].astype(np.float64) + 1.0) / 2.0, usps.labels)}


def _transform(ink: np.ndarray, shear: float, height: int) -> np.ndarray:
    """A digit's ink sheared (x moves by shear * (y - middle)) and scaled to `height` rows (Pillow)."""
    from PIL import Image
    v = _crop(ink)
    h, w = v.shape
    pad = math.ceil(abs(shear) * h / 2) + 1
    im = Image.fromarray(np.round(v * 255).astype(np.uint8), "L")
    im = im.transform((w + 2 * pad, h), Image.Transform.AFFINE, (1, shear, -shear * h / 2 - pad, 0, 1, 0),
                      resample=Image.Resampling.BILINEAR)
    v = _crop(np.asarray(im, dtype=np.float64) / 255.0)
    h, w = v.shape
    im = Image.fromarray(np.round(v * 255).astype(np.uint8), "L")
    im = im.resize((max(1, round(w * height / h)), height), Image.Resampling.LANCZOS)
    return np.asarray(im, dtype=np.float64) / 255.0


def make_zip(digits: dict, seed: int, index: int) -> tuple[np.ndarray, dict]:
    """Zip code `index` of benchmark `seed`: a grey uint8 image and what it holds. It depends on
    (seed, index) only: numpy's Generator(PCG64) seeded with [seed, index] draws, in this order, per
    digit: its set (MNIST or USPS, even odds), its index, its height (H0 x U(0.85, 1.15), H0 drawn
    once, uniform in 24..48 pixels), its shear U(-0.3, 0.3) and its vertical jitter U(-0.08, 0.08) H0;
    per neighbouring pair: touching (TOUCH_SHARE) or a gap U(0.08, 0.5) H0; then the margin
    U(0.2, 0.6) H0, the polarity, the paper and ink grey levels and Gaussian noise (sd 0.015)."""
    rng = np.random.default_rng([seed, index])
    h0 = int(rng.integers(24, 49))
    picks, inks = [], []
    for _ in range(ZIP_LENGTH):
        source = "mnist" if rng.random() < 0.5 else "usps"
        i = int(rng.integers(len(digits[source][1])))
        height = round(h0 * rng.uniform(0.85, 1.15))
        shear, jitter = rng.uniform(-0.3, 0.3), rng.uniform(-0.08, 0.08) * h0
        picks.append((source, i, int(digits[source][1][i])))
        inks.append((_transform(digits[source][0][i], shear, height), jitter))
    touching = [bool(rng.random() < TOUCH_SHARE) for _ in range(ZIP_LENGTH - 1)]
    gaps = [round(rng.uniform(0.08, 0.5) * h0) for _ in range(ZIP_LENGTH - 1)]
    margin = round(rng.uniform(0.2, 0.6) * h0)
    dark_on_light = bool(rng.random() < DARK_ON_LIGHT_SHARE)
    paper, ink_level = ((rng.uniform(0.75, 1.0), rng.uniform(0.0, 0.35)) if dark_on_light
                        else (rng.uniform(0.0, 0.25), rng.uniform(0.65, 1.0)))
    height = 2 * margin + round(1.5 * h0)
    canvas = np.zeros((height, sum(v.shape[1] for v, _ in inks) + sum(gaps) + 2 * margin + 1))
    x = margin
    for k, (v, jitter) in enumerate(inks):
        top = int(round(height / 2 - v.shape[0] / 2 + jitter))
        if k:
            if touching[k - 1]:
                # leftmost strong ink of the new digit one column right of the rightmost strong ink
                # already there, in the row where they come closest: the strokes touch in that row
                prev = canvas[top:top + v.shape[0]] >= 0.5
                new = v >= 0.5
                rows = prev.any(1) & new.any(1)
                if rows.any():
                    right = np.array([np.flatnonzero(r)[-1] for r in prev[rows]])
                    left = np.array([np.flatnonzero(r)[0] for r in new[rows]])
                    # never left of the canvas: a new digit whose ink starts far right in its box,
                    # touching a narrow one, would otherwise start before column 0
                    x = max(0, int((right + 1 - left).max()))
            else:
                x += gaps[k - 1]
        canvas[top:top + v.shape[0], x:x + v.shape[1]] = np.maximum(canvas[top:top + v.shape[0], x:x + v.shape[1]], v)
        x += v.shape[1]
    cols = np.flatnonzero(canvas.any(0))
    canvas = canvas[:, max(0, cols[0] - margin):cols[-1] + 1 + margin]
    grey = paper + (ink_level - paper) * canvas + rng.normal(0.0, 0.015, canvas.shape)
    image = np.round(np.clip(grey, 0.0, 1.0) * 255).astype(np.uint8)
    return image, {"zip": "".join(str(label) for _, _, label in picks),
                   "sources": [[s, i] for s, i, _ in picks], "touching": touching,
                   "polarity": "dark-on-light" if dark_on_light else "light-on-dark"}


def make_zipcodes(out: Path, n: int, seed: int, load: dict | None = None, force: bool = False) -> Path:
    """Write `n` zip-code strips zip-NNNNN.png and zipcodes.json (their true codes) into `out`."""
    from io import BytesIO
    from PIL import Image
    from .io import commit, json_text
    from .rundir import Lock, check_output, marker, replace_contents
    out = Path(out)
    state = check_output(out, force=force, resumable=False, kinds=("zipcodes",))
    digits = test_digits(load)
    files, zips = {}, []
    for i in range(n):
        image, meta = make_zip(digits, seed, i)
        buf = BytesIO()
        Image.fromarray(image, "L").save(buf, format="PNG")
        name = f"zip-{i:05d}.png"
        files[out / name] = buf.getvalue()
        zips.append({"file": name, **meta})
    files[out / "zipcodes.json"] = json_text({
        "made_by": f"lecun1989 zipcodes --n {n} --seed {seed}", "seed": seed, "n": n,
        "digits": "MNIST test (10,000) and USPS test (2,007) digits, never in training", "zips": zips})
    with Lock(out):
        if state == "replace":
            replace_contents(out)
        commit({**files, **marker(out, "zipcodes")})
    return out / "zipcodes.json"


def read_truth(path: Path) -> list[dict]:
    from .results import read_json
    path = Path(path)
    truth = read_json(path)
    zips = truth.get("zips") if isinstance(truth, dict) else None
    if not isinstance(zips, list) or not all(isinstance(z, dict) and isinstance(z.get("file"), str)
                                             and isinstance(z.get("zip"), str) for z in zips):
        raise LecunError(f"{path} is not a zipcodes.json written by `lecun1989 zipcodes`")
    return zips


def score_zipcodes(net_or_run, truth_path: Path, threshold: float | None = None, deslant: bool = True,
                   digits: int | None = None, load: dict | None = None) -> dict:
    """Digit accuracy, whole-zip accuracy and whole-zip accuracy among zips with no rejected digit.
    A zip cut into another number of digits than its code has counts all its digits as wrong (and as
    a wrong zip when accepted); the error of accepted digits is over the zips cut right."""
    r = reader(net_or_run, threshold, load)
    truth_path = Path(truth_path)
    zips = read_truth(truth_path)
    right_digits = whole = accepted = accepted_right = miscount = accepted_digits = accepted_digits_right = 0
    n_digits = 0
    for z in zips:
        reading = read_image(r, load_image(truth_path.parent / z["file"]), deslant=deslant, digits=digits)
        labels = "".join(str(d.label) for d in reading.digits)
        ok = [d.accepted for d in reading.digits]
        n_digits += len(z["zip"])
        # a zip read with no '?' is accepted, whether or not it was cut into the right number of digits
        accepted += bool(ok) and all(ok)
        if len(labels) != len(z["zip"]):
            miscount += 1
            continue
        hits = [a == b for a, b in zip(labels, z["zip"])]
        right_digits += sum(hits)
        whole += all(hits)
        accepted_digits += sum(ok)
        accepted_digits_right += sum(h for h, o in zip(hits, ok) if o)
        accepted_right += all(ok) and all(hits)
    n = len(zips)
    return {"zips": n, "threshold": r.threshold if math.isfinite(r.threshold) else None,
            "digit_accuracy": right_digits / n_digits if n_digits else None,
            "zip_accuracy": whole / n if n else None,
            "miscounted_zips": miscount / n if n else None,
            "accepted_zips": accepted / n if n else None,
            "accepted_zip_accuracy": accepted_right / accepted if accepted else None,
            "accepted_digit_error": 1 - accepted_digits_right / accepted_digits if accepted_digits else None}


# --- pictures --------------------------------------------------------------------------------------

def picture(reading: Reading, title: str) -> bytes:
    """The image with each digit's box (solid: accepted, dashed: rejected) and its reading, and below
    the 16x16 inputs the network read, each with its label and margin (PNG bytes)."""
    from io import BytesIO
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle
    n = max(1, len(reading.digits))
    h, w = reading.shape
    fig = Figure(figsize=(max(6.0, 1.1 * n), 2.2 + 4.0 * h / max(w, 1) + 1.6))
    grid = fig.add_gridspec(2, n, height_ratios=[max(1.0, 3.0 * h / max(w, 1) * n / 2), 1.0])
    ax = fig.add_subplot(grid[0, :])
    ax.imshow(reading.image, cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
    for d in reading.digits:
        x0, y0, x1, y1 = d.box
        ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, edgecolor="black",
                               linewidth=1.5, linestyle="-" if d.accepted else "--"))
        ax.text((x0 + x1) / 2 - 0.5, y0 - 1.5, d.char, ha="center", va="bottom", fontsize=12,
                bbox=dict(facecolor="white", edgecolor="none", pad=1))
    ax.set_xticks([])
    ax.set_yticks([])
    threshold = f"{reading.threshold:.3f}" if math.isfinite(reading.threshold) else "none"
    ax.set_title(f"{title}: {reading.text or '(no digits)'}   (ink shown dark; margin threshold {threshold})",
                 fontsize=10)
    for k, d in enumerate(reading.digits):
        a = fig.add_subplot(grid[1, k])
        a.imshow(d.input, cmap="gray_r", vmin=-1, vmax=1, interpolation="nearest")
        a.set_xticks([])
        a.set_yticks([])
        a.set_title(f"{d.label}{'' if d.accepted else ' ?'}  {d.margin:.2f}", fontsize=9)
    buf = BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return buf.getvalue()


# --- the commands ----------------------------------------------------------------------------------

def add_subcommand(sub) -> None:
    """Add `predict` and `zipcodes` to an argparse subparsers object."""
    from .cli import add_data_location_args, at_most, finite_float, seed
    p = sub.add_parser("predict", help="read the digits (a zip code) in image files with a trained run",
                       description="Read a row of handwritten digits in each image with the network of RUN_DIR. "
                                   "Digits less sure than the threshold (by default the margin at which the run's "
                                   "test digits err at 1%) are shown as '?'.")
    p.add_argument("run", metavar="RUN_DIR", help="a run folder (config.json + weights.safetensors)")
    p.add_argument("images", metavar="IMAGE", nargs="*", help="image files (PNG, JPEG, ...; either polarity)")
    p.add_argument("--json", action="store_true", help="print strict JSON instead of lines")
    p.add_argument("--show", metavar="FOLDER", help="save a picture per image: its digits' boxes and 16x16 inputs")
    p.add_argument("--threshold", type=finite_float, help="accept a digit when its margin is at least this "
                                                          "(default: the run's 1%%-error margin on its test set)")
    p.add_argument("--digits", type=at_most(1000), help="the number of digits each image holds (e.g. 5 for a zip "
                                                    "code): touching digits are split until there are that many")
    p.add_argument("--no-deslant", dest="deslant", action="store_false", help="do not deslant the digits")
    p.add_argument("--truth", metavar="ZIPCODES_JSON", help="score the images listed in a zipcodes.json (from "
                                                            "`lecun1989 zipcodes`) against their true codes")
    add_data_location_args(p)
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("zipcodes", help="make the zip-code benchmark: strips of 5 MNIST and USPS test digits",
                       description="Write N images of 5-digit zip codes composed of MNIST and USPS test digits "
                                   "(varied sizes, gaps, slants, touching neighbours, both polarities) and "
                                   "zipcodes.json with their true codes; the same --seed gives the same files.")
    p.add_argument("--out", required=True, metavar="FOLDER", help="a new folder for the images")
    p.add_argument("--n", type=at_most(MAX_ZIPCODES), default=1000,
                   help=f"how many zip codes, at most {MAX_ZIPCODES:,} (default 1000)")
    p.add_argument("--seed", type=seed, default=0, help="the benchmark's seed (default 0)")
    p.add_argument("--force", action="store_true", help="replace a folder this command made before")
    add_data_location_args(p)
    p.set_defaults(func=cmd_zipcodes)


def _picture_names(images: list[str]) -> list[str]:
    names, seen = [], set()
    for path in images:
        stem, k = Path(path).stem or "image", 1
        name = f"{stem}-reading.png"
        while name in seen:
            k += 1
            name = f"{stem}-{k}-reading.png"
        seen.add(name)
        names.append(name)
    return names


def cmd_predict(args) -> None:
    from .cli import load_kwargs
    from .io import json_text
    if not args.images and not args.truth:
        raise LecunError("give at least one IMAGE to read (or --truth ZIPCODES_JSON)")
    if args.truth and args.images:
        raise LecunError("--truth reads the images its zipcodes.json lists: give no IMAGE with it")
    if args.truth and args.show:
        raise LecunError("--show draws the images given as IMAGE; it does not go with --truth")
    load = load_kwargs(args)
    if args.show:
        from .plots import check_picture_folder
        check_picture_folder(Path(args.show), "--show")
    greys = [load_image(path) for path in args.images]   # every file checked before any work
    r = reader(Path(args.run), args.threshold, load)
    if args.truth:
        scores = score_zipcodes(r, Path(args.truth), deslant=args.deslant, digits=args.digits)
        if args.json:
            sys.stdout.write(json_text({"run": str(args.run), "truth": str(args.truth), **scores}))
            return
        pct = lambda v: "n/a" if v is None else f"{100 * v:.2f}%"
        print(f"{args.truth}: {scores['zips']} zip codes, margin threshold "
              f"{'none' if scores['threshold'] is None else format(scores['threshold'], '.4f')}")
        print(f"digit accuracy {pct(scores['digit_accuracy'])}, whole-zip accuracy {pct(scores['zip_accuracy'])}, "
              f"cut into the wrong number of digits {pct(scores['miscounted_zips'])}")
        print(f"zips with no rejected digit {pct(scores['accepted_zips'])}, of which right "
              f"{pct(scores['accepted_zip_accuracy'])}; error of accepted digits {pct(scores['accepted_digit_error'])}")
        return
    read, failed = [], []   # an image that cannot be read (no ink) does not keep the others from being read
    for path, g in zip(args.images, greys):
        try:
            read.append((path, read_image(r, g, deslant=args.deslant, digits=args.digits)))
        except LecunError as e:
            failed.append((path, str(e)))
    paths, readings = [p for p, _ in read], [rd for _, rd in read]
    if args.json:
        sys.stdout.write(json_text({"run": str(args.run),
                                    "threshold": r.threshold if math.isfinite(r.threshold) else None,
                                    "images": [rd.to_json(str(path)) for path, rd in read],
                                    "failed": [{"image": str(path), "error": e} for path, e in failed]}))
    else:
        how = ("given" if args.threshold is not None else
               f"1% error on the run's test digits, where {100 * r.test_rejection:.1f}% of them are rejected")
        t = f"{r.threshold:.4f}" if math.isfinite(r.threshold) else "none (no margin reaches 1% error)"
        print(f"margin threshold {t} ({how}); '?' marks a digit below it")
        for path, rd in read:
            each = ", ".join(f"{d.label}{'' if d.accepted else '?'} {d.margin:.2f}" for d in rd.digits)
            short = (f"   (only {len(rd.digits)} of the {args.digits} digits asked: the ink has no more places to "
                     f"cut)" if args.digits and len(rd.digits) < args.digits else "")
            print(f"{path}: {rd.text or '(no digits found)'}   [{each}]{short}")
    if args.show:
        from .io import write_files
        from .rundir import MARKER, marker
        folder = Path(args.show)
        files = {name: picture(rd, Path(path).name) for name, path, rd in zip(_picture_names(paths), paths, readings)}
        if files:
            written = write_files(folder, {**files, MARKER: marker(folder, "plots")[folder / MARKER]})
            print(f"pictures: {', '.join(str(p) for p in written if p.name != MARKER)}",
                  file=sys.stderr if args.json else sys.stdout)
    if failed:
        more = f" ({len(failed) - 1} more image{'s' * (len(failed) > 2)} could not be read)" if len(failed) > 1 else ""
        raise LecunError(f"{failed[0][0]}: {failed[0][1]}{more}")


def cmd_zipcodes(args) -> None:
    from .cli import load_kwargs
    path = make_zipcodes(Path(args.out), args.n, args.seed, load_kwargs(args), force=args.force)
    print(f"{args.n} zip codes written to {args.out}; their true codes in {path}")


def measure_mnist(run_dirs: list[Path], load: dict | None = None) -> dict:
    """MNIST's 10,000 test digits read by each run three ways: predict's normalization with and
    without deslanting, and the whole 28x28 image resized bilinearly to 16x16 (`resize_naive`).
    Per way: accuracy and the share rejected for 1% error, mean and std over the runs, and per run."""
    from .confidence import margin, rejection_at
    images, labels = test_digits(load)["mnist"]
    ways = {"normalized, deslanted": np.array([normalize(x, True) for x in images]),
            "normalized, not deslanted": np.array([normalize(x, False) for x in images]),
            "naive bilinear 28->16": resize_naive(images)}
    table = {way: {"accuracy": [], "rejection_at_1pct": []} for way in ways}
    for run in run_dirs:
        r = Reader(load_net(Path(run)), 0.0)
        for way, inputs in ways.items():
            out = r.outputs(inputs)
            correct = out.argmax(1) == labels
            table[way]["accuracy"].append(float(correct.mean()))
            table[way]["rejection_at_1pct"].append(rejection_at(margin(out), correct, REJECT_ERROR)[0])
    return {way: {k: {"mean": float(np.mean(v)), "std": float(np.std(v, ddof=1)) if len(v) > 1 else 0.0,
                      "runs": v} for k, v in figures.items()} for way, figures in table.items()}
