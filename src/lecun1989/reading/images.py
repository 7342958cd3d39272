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
2. Paper and ink. The paper is estimated locally, so that a shadow, a gradient of light or tinted
   paper is not taken for ink: W = 2 (min(H, W_img) // 8) + 1 (odd, about a quarter of the image's shorter
   side; far wider than a stroke). max_W and min_W are the largest and smallest value in the W x W
   square centred on each pixel, the square clipped to the image. bright = min_W(max_W(grey)) (a
   grey closing: every dark feature narrower than W filled in with the paper around it) is the paper
   under dark ink; dark = max_W(min_W(grey)) (an opening) the paper under light ink. The paper is the
   smoother of the two, since the other one jumps between paper and ink: the image is dark on light
   paper if V(bright) <= V(dark), else light on dark, V the total variation (the sum of |a[i, j + 1] -
   a[i, j]| over the rows, then of |a[i + 1, j] - a[i, j]| over the columns); but light ink needs
   dark paper: where the median of `dark` is 0.5 or more, the ink is dark. Dark on light: ink = (bright - grey) / bright (0 where
   bright = 0), which is 1 - grey / paper, the ink's contrast whatever light falls on it; light on
   dark: ink = (grey - dark) / (1 - dark) (0 where dark = 1). Then ink = clip(ink, 0, 1). A dark area
   wider than W (a blot, a filled shape) is taken for paper but at its rim, where the square cannot
   follow its curve; such a rim is dropped (`without_blot_edges`): with light = grey (1 - grey for
   light ink) and the marks the 8-connected components of ink >= MASK_LEVEL max(ink), a pixel outside
   the marks is dark if its light is at most the largest light of the mark pixels among its 8
   neighbours (no lighter than the ink beside it: beside a stroke the paper is lighter), and a mark's
   ink is set to 0 where at least BLOT_EDGE (0.3) of its outline (the pixels outside the marks with
   one of its pixels among their 8 neighbours) is dark; where every mark is such a rim, the ink is 0
   everywhere. Where that leaves no ink (no feature narrower than W: a tight crop of a bold digit,
   strokes as wide as W, or a blot alone), the paper is one level (`border_ink`): the
   median of the border pixels (first and last row, first and last column, each pixel once; numpy's
   median); if it is >= 0.5 the ink is dark, ink = 1 - grey and p =
   1 - paper, else ink = grey and p = paper; ink = clip((ink - p) / (1 - p), 0, 1) (0 if p = 1).
   Then ink = ink / max(ink) (the strongest ink is 1). An image with no ink left, or whose strongest
   ink is below MIN_CONTRAST (0.3: noise on a blank page), is refused. On a
   flat paper (a clean canvas) the local rule is the global one: the paper the same level everywhere.
3. Components (steps 3-5 in segment.py). mask = ink >= MASK_LEVEL (0.25), without ruled lines
   (`without_rules`), all of it within the box of the set pixels with one row more above and below
   (inside the image), x counted from the box's first column. For a tilt k in TILTS (0, 1, -1, 2, -2,
   3, -3, 4, -4) the mask is sheared: column x moved down floor((k x + 30) / 60) rows (TILT_RUN 60;
   the least move made 0). In a sheared mask
   each row is joined (or) with the rows above and below it; of the joined rows' runs of set pixels,
   longest[y] is row y's longest, steady[y] = min(longest[y - 1], longest[y], longest[y + 1]) (0 in the
   first and last rows), T the rows from the first with a run to the last, and a rule's length
   R = RULE (2.5) T. While some tilt has max(steady) >= R, the one with the largest max(steady) / R
   (ties: the first) is taken: in its sheared mask, from the top, each row y with steady[y] >= R starts
   a band, grown up and down by every next row with longest >= R / 2; in the band's rows, the columns
   covered by a run of theirs at least R / 2 long are cleared, but a column x between a set pixel of
   the (sheared, unjoined) row just above the band and one of the row just below it, each within
   (band rows + 1) columns of x, one at or left of x and the other at or right of x (a stroke crossing
   the line, slanted up to 45 degrees); a band at the sheared mask's top or bottom keeps none. The mask
   is sheared back, and the tilts tried again (a clearing that changes nothing ends it). Connected components of the mask, 8-connected.
   A component's box is (x0, y0, x1, y1) with x1, y1 exclusive; its height y1 - y0, width x1 - x0.
   In this order: a component that touches the image's edge and whose strongest ink is below FAINT
   (0.75) is dropped (where a shadow's edge meets the image's edge the shadow is as thin as a stroke,
   but fainter than ink); where some component does not touch the edge, one that does and is more
   than EDGE_TALL (1.5) times as tall as the tallest that does not is dropped (a card's edge, a
   border, a dark shadow along the edge); then one with fewer pixels than SPECK (0.05) times the
   largest one left is dropped as a speck (noise on dark paper, dust).
4. Grouping. Hmax = the tallest component's height. A component at least Hmax / 2 tall
   (2 * height >= Hmax) starts a group. Every shorter one joins the group whose starting
   component's column range shares the most columns with its own (ties: the group whose start has
   the smaller x0, then smaller y0); one that shares no column with any, or is wider than
   WIDEST_MARK (1.2) Hmax, is dropped: a dot, a speck or a dash beside the digits, or a line under or
   through them, is never a digit. Groups are ordered by (x0, y0).
5. Candidates. Href = the median height of the groups (numpy's median). A group narrower than
   CUT_RATIO (0.75) Href, or than 4 pixels, or wider than LONGEST_RUN (8) times its own height (a
   line), is one atom. A wider one is cut into atoms at columns x0 + k: col[k] is the sum of `ink`
   over the group's mask in column x0 + k, and no column holding more than THIN (0.9) max(col) is
   ever cut at (a line, as thick everywhere, is never sliced); its local minima
   (col[k] <= col[k - 1] and col[k] < col[k + 1]) for e <= k < w - e, e = max(1, ceil(MIN_PIECE
   (0.15) Href)), taken least ink first (ties: |2k - (w - 1)| smallest, then smallest k) while fewer
   than max(2, floor(CUTS_PER_HEIGHT (3) w / Href + 0.5)) are taken, each at least MIN_PIECE Href
   from those taken; then, while the widest piece between consecutive cuts (0 and w included;
   ties: the leftmost; pieces found uncuttable left out) is wider than WIDEST_PIECE (0.6) Href (in a
   group at least pair_width (1.2) Href wide, likely touching digits: fine_piece (0.18) Href) and at
   least 4 pixels, it is cut at its column of least ink among a + (b - a) // 4 .. b - 1 - (b - a) // 4
   (ties: |2k - (a + b - 1)| smallest, then smallest k) if that column holds at most THIN max(col),
   else the piece is uncuttable and stays whole. Each cut column c becomes a cut path (`cut_paths`): from the group's
   top row to its bottom, one column per row, moving at most one column a row (a move costs DRIFT,
   0.02, in ink) within ceil(band (0.12) Href) of c and inside the box, the path crossing the least
   ink (dynamic programming, ties: straight, then from the left; the end nearest c, then leftmost);
   above and below the group it is c. A cut never crosses the one before it (per row, the larger).
   An atom is the group's pixels between two consecutive cuts (an empty one is left out); atoms are
   numbered left to right, group after group. A candidate digit is a run of
   atoms i .. j - 1: every single atom, and every longer run at most MAX_WIDTH (1.5) Href wide (the
   union of the atoms' boxes) that stays within one group or passes into the next one only where the
   gap between its two atoms there (next x0 minus previous x1) is at most JOIN_GAP (0.3) Href; and
   every whole group, however wide.
6. A candidate's image: `ink` inside its box where its atoms' masks are set, 0 elsewhere (so a
   neighbour's strokes inside the box are left out), then `normalize` (digits.py):
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
7. Reading. The network (or a committee: its networks' outputs averaged) reads every candidate at
   least LOWEST_DIGIT Href and SMALLEST_DIGIT pixels tall (the others are never digits, below).
   Its unlikeness u (`unlikeness`): for a network trained with cross-entropy, -log of the top
   class's softmax probability; for one trained with MSE towards +1 / -1, max(0, (sum_k (y_k + 1)^2 -
   4 max_k y_k) / 2), half the squared distance to the nearest target. A candidate (i, j) costs
   DIGIT_COST (0.1 for MSE, -0.1 for cross-entropy) + u + CUT_COST (0.5) if atom i - 1 is of the same group as atom i (the reading
   cuts a group there) + JOIN_COST (0.5) times the groups it spans beyond one + WIDE_COST (2) times
   max(0, its width / Href - WIDEST_DIGIT (1)); one lower than LOWEST_DIGIT (0.5) Href (a sliver that
   a cut path leaves at a blob's edge, which scaled to 16x16 would read as a sure 1), or than
   SMALLEST_DIGIT (8) pixels (a speck alone on the page), is never a digit.
   An atom cut from a group (not a group's only atom) may be
   left out of the reading at SKIP_COST (1.0) + SKIP_AREA_COST (4) times max(0, its mask's pixels /
   Href^2 - SKIP_AREA (0.03)): a stroke's tail that reads as no digit, not a piece as large as half
   a digit (a neighbour cut badly, whose reading is then better left unsure). For every count
   k the cheapest reading of all atoms as k consecutive candidates is found (`best_paths`: for each
   j in turn, leaving atom j - 1 out, then the candidates (i, j) in order of i; a cost replaces
   another only when smaller). Without a known count the reading is the cheapest over all k (ties:
   the fewer digits), and the count is sure only if every other count's cheapest reading costs more
   than COUNT_MARGIN (1.0) above it and nothing left out holds LEFT_OUT (0.2) of the median group's
   pixels of mask or more: a component dropped in step 3 as far taller than the ink away from the
   edge (a band or a blot at the edge joined to a digit), or a mark left out in step 4 at least a
   quarter of the tallest's height and no wider than WIDEST_MARK Hmax (a digit of pieces all shorter
   than half the tallest; not a dash, a hyphen or a line); an unsure count puts '?' before the text (and count_sure false
   in --json). With `digits=N` the reading has N digits; where no reading has N, the candidates are
   made again, with finer cuts (every group cut, WIDEST_PIECE and fine_piece halved) when every
   reading has fewer, or with joins across any gap when some have more; then N, else the most below
   N, else the fewest (predict says so, as it says where the cheapest reading without a count has
   more digits: `best_count`). Each digit's label is its largest output and its margin
   the largest minus the second largest output (`confidence.margin`); it is shown as `?` unless its
   margin is at least the threshold, its unlikeness at most MAX_UNLIKENESS (0.1 for MSE, 0.05 for
   cross-entropy: it reads as one digit) and its height at least SURE_HEIGHT (0.7) Href (a stray
   stroke beside the row, shorter than its digits, scaled to 16x16 reads as a sure 1). A run's threshold is the margin at which its own test
   digits err at 1% (`confidence.rejection_at`), computed once per run (or study) and process, or given.
"""

from __future__ import annotations

import math
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..data import Location, resize_bilinear
from ..digits import SIZE, compiled, normalized
from ..segment import JOIN_GAP, MASK_LEVEL, Part, components, row, spans
from ..engines.ahead import cores
from ..errors import LecunError
from ..store.rundir import read_config
from ..trained import TrainedNet, load_trained, run_test_split
from .confidence import margin, rejection_at

MIN_CONTRAST = 0.3       # the least contrast with the paper that is ink: below it, noise on a blank page
# each digit's cost besides its own unlikeness, per loss (the unlikenesses are on their own scales):
# for MSE, of equally sure readings the one of fewer digits; cross-entropy's -log p is near 0 for a
# sure digit, and there a small reward per digit keeps touching pairs apart (chosen on benchmark
# seeds 1 and 2: docs/READING.md)
DIGIT_COST = {"mse": 0.1, "ce": -0.1}
JOIN_COST = 0.5          # the cost of one digit made of two groups: apart, they are two digits unless they read worse
WIDEST_DIGIT = 1.0       # digit heights a single digit is seldom wider than; two touching are
WIDE_COST = 2.0          # the cost of each digit height of width beyond it
CUT_COST = 0.5           # the cost of a cut through a connected group: a group is one digit unless it reads worse
# a digit shown needs this little unlikeness too: it reads as one digit, not a piece or two. Per loss,
# as the two unlikenesses are on their own scales: for cross-entropy, a top class of at least 95%
MAX_UNLIKENESS = {"mse": 0.1, "ce": 0.05}
SKIP_COST = 1.0          # the cost of leaving an atom out: a stroke's tail or a mark that reads as no digit
# and of each Href^2 of its mask beyond SKIP_AREA: a tail is small, and leaving a digit's worth of ink
# out to read a touching pair as one digit was the commonest wrong count (chosen on strips of
# training digits: docs/READING.md)
SKIP_AREA, SKIP_AREA_COST = 0.03, 4.0
LOWEST_DIGIT = 0.5       # digit heights a candidate must span to be a digit: a sliver a cut leaves is not one
# and pixels: half the USPS digits' 16; a speck alone on the page, the tallest ink, read as a sure 1
SMALLEST_DIGIT = 8
# and digit heights a digit needs to be shown as sure: a stroke beside the row shorter than its digits
# reads as a sure 1 (0.4% of the digits read in 300 benchmark strips are lower, 1% in its photographs)
SURE_HEIGHT = 0.7
# a mark that borders, along this share of its outline or more, on pixels that are not ink yet no
# lighter than the ink beside them is the rim of a dark area the window took for paper (step 2)
BLOT_EDGE = 0.3
# ink left out holding this share of a group's or more (the median group's) may hold a digit: the edge's
# tall ink (step 3: a band or a blot at the edge joined to a digit), or a mark beside the digits (step 4:
# a digit of pieces all shorter than half the tallest, as a 5 of two strokes); the count is then unsure
LEFT_OUT = 0.2
COUNT_MARGIN = 1.0       # a reading of another count this close in cost makes the count unsure
REJECT_ERROR = 0.01
# Images beyond this many pixels are refused rather than labelled pixel by pixel for minutes.
MAX_PIXELS = 40_000_000
SIDE_BY_SIDE_AT = 256   # images a committee reads with its networks in threads: a thread costs more than a strip


# --- 1, 2: the image, its polarity, its ink --------------------------------------------------------

class NoInk(LecunError):
    """An image with nothing darker (or lighter) than its paper to read: a blank page."""


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
        raise LecunError(f"{path}: cannot be read as an image ({e})") from None


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


def paper_window(shape: tuple[int, int]) -> int:
    """The side of the square the paper is estimated over (step 2): odd, about a quarter of the shorter side."""
    return 2 * (min(shape) // 8) + 1


def variation(a: np.ndarray) -> float:
    """The total variation: the sum of the absolute differences between neighbours along rows and columns."""
    return float(np.abs(np.diff(a, axis=1)).sum() + np.abs(np.diff(a, axis=0)).sum())


def to_ink(grey: np.ndarray) -> tuple[np.ndarray, str]:
    """Grey levels (1 = white) -> ink in [0, 1] with the paper at 0 and the strongest ink at 1, and the
    polarity found ('dark-on-light' or 'light-on-dark'); step 2 of the module doc."""
    from scipy.ndimage import maximum_filter, minimum_filter
    grey = np.asarray(grey, dtype=np.float64)
    if grey.ndim != 2 or grey.shape[0] < 1 or grey.shape[1] < 1:
        raise LecunError(f"an image must be a 2-D array of grey levels, not shape {grey.shape}")
    if not np.isfinite(grey).all():
        raise LecunError("the image holds values that are not finite numbers")
    # mode="nearest" repeats the edge, which for a max or a min is the square clipped to the image
    w = paper_window(grey.shape)
    bright = minimum_filter(maximum_filter(grey, w, mode="nearest"), w, mode="nearest")
    dark = maximum_filter(minimum_filter(grey, w, mode="nearest"), w, mode="nearest")
    # light ink needs dark paper: where the paper under it would be light, the ink is dark
    if variation(bright) <= variation(dark) or float(np.median(dark)) >= 0.5:
        ink, polarity = np.divide(bright - grey, bright, out=np.zeros_like(grey), where=bright > 0), "dark-on-light"
        light = grey
    else:
        ink, polarity = np.divide(grey - dark, 1.0 - dark, out=np.zeros_like(grey), where=dark < 1), "light-on-dark"
        light = 1.0 - grey
    ink = without_blot_edges(np.clip(ink, 0.0, 1.0), light)
    if ink.max() <= 0:   # no feature narrower than the window but rims: ink as wide as a quarter of the image
        ink, polarity = border_ink(grey)
    top = ink.max()
    if top <= 0:
        raise NoInk("the image holds no ink (it is one flat grey)")
    if top < MIN_CONTRAST:
        raise NoInk(f"the image holds no ink: nothing in it is darker (or lighter) than its paper by "
                         f"{100 * MIN_CONTRAST:.0f}% or more, only noise")
    return ink / top, polarity


def without_blot_edges(ink: np.ndarray, light: np.ndarray) -> np.ndarray:
    """Step 2's last rule: the ink without the rims of dark areas wider than the window (a blot, a
    filled shape, a hard-edged shadow), which the window takes for paper except at their edges; `light`
    is the grey with the paper light (1 - grey for light ink)."""
    from scipy.ndimage import binary_dilation, find_objects, maximum_filter
    if ink.max() <= 0:
        return ink
    mask = ink >= MASK_LEVEL * ink.max()
    labels, _ = components(mask)
    # beside a stroke the paper is lighter than the ink; beside a rim, the dark area is as dark as it
    dark = ~mask & (light <= maximum_filter(np.where(mask, light, -np.inf), 3, mode="constant", cval=-np.inf))
    out, kept = ink.copy(), 0
    for k, box in enumerate(find_objects(labels), 1):
        rows, cols = (slice(max(0, b.start - 1), b.stop + 1) for b in box)
        mark = labels[rows, cols] == k
        outline = binary_dilation(mark, np.ones((3, 3), bool)) & ~mask[rows, cols]
        if dark[rows, cols][outline].sum() >= BLOT_EDGE * outline.sum():
            out[rows, cols][mark] = 0.0
        else:
            kept += 1
    # nothing but rims: strokes as wide as the window (a bold pen, cropped tight) or a blot alone, which
    # one paper level reads (to_ink), not the faint fringe the rims leave
    return out if kept else np.zeros_like(ink)


def border_ink(grey: np.ndarray) -> tuple[np.ndarray, str]:
    """Step 2 where the window finds no ink: one paper level, the median of the border pixels."""
    border = np.concatenate([grey[0], grey[-1], grey[1:-1, 0], grey[1:-1, -1]]) if min(grey.shape) > 1 \
        else grey.ravel()
    paper = float(np.median(border))
    ink, p, polarity = (1.0 - grey, 1.0 - paper, "dark-on-light") if paper >= 0.5 else (grey, paper, "light-on-dark")
    if p >= 1.0:
        return np.zeros_like(grey), polarity
    return np.clip((ink - p) / (1.0 - p), 0.0, 1.0), polarity


def best_paths(n: int, cost: dict[tuple[int, int], float],
               skip: list[float] | None = None) -> list[tuple[float, list[tuple[int, int]]] | None]:
    """For every count k = 0 .. n of digits, the cheapest way to read atoms 0 .. n - 1 as k consecutive
    candidates, atom a left out at the cost skip[a] (cost, the candidates left to right), or None where
    no way has k (step 7). For each j = 1 .. n in turn: leaving atom j - 1 out, then the candidates
    (i, j) in order of i; a cost replaces another only when smaller."""
    skip = skip or [math.inf] * n
    inf = math.inf
    best = [[inf] * (n + 1) for _ in range(n + 1)]   # best[j][k]: atoms 0 .. j - 1 as k digits
    back = [[None] * (n + 1) for _ in range(n + 1)]   # i, or -1: atom j - 1 left out
    best[0][0] = 0.0
    ending = {}
    for (i, j), c in cost.items():
        ending.setdefault(j, []).append((i, c))
    for j in range(1, n + 1):
        for k in range(j):
            if best[j - 1][k] + skip[j - 1] < best[j][k]:
                best[j][k], back[j][k] = best[j - 1][k] + skip[j - 1], -1
        for i, c in sorted(ending.get(j, [])):
            for k in range(1, j + 1):
                if best[i][k - 1] + c < best[j][k]:
                    best[j][k], back[j][k] = best[i][k - 1] + c, i
    out = []
    for k in range(n + 1):
        if best[n][k] == inf:
            out.append(None)
            continue
        path, j, kk = [], n, k
        while j > 0:
            i = back[j][kk]
            if i == -1:
                j -= 1
                continue
            path.append((i, j))
            j, kk = i, kk - 1
        out.append((best[n][k], path[::-1]))
    return out


# --- the comparison for MNIST's whole images -----------------------------------------------------


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
    unlikeness: float = 0.0           # how far the outputs are from one digit's (step 7)
    short: bool = False               # lower than SURE_HEIGHT Href: never shown as sure (step 7)

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
    count_sure: bool = True                  # False: a reading of another number of digits was nearly as good,
                                             # or ink that may hold a digit was left out (step 7)
    network_seconds: float = 0.0             # of the reading's time, the network's forward passes
    best_count: int | None = None            # with a count asked: the digits of the cheapest reading without it

    def to_json(self, name: str | None = None) -> dict:
        out = {"text": self.text, "count_sure": self.count_sure, "threshold": self.threshold if math.isfinite(self.threshold) else None,
               **({} if self.best_count is None else {"best_count": self.best_count}), "polarity": self.polarity, "height": self.shape[0], "width": self.shape[1],
               "digits": [{"label": d.label, "margin": round(float(d.margin), 6),
                           "unlikeness": round(float(d.unlikeness), 6), "accepted": d.accepted,
                           "box": list(d.box)} for d in self.digits]}
        return {"image": name, **out} if name is not None else out


@dataclass
class Reader:
    """A network, or a committee of networks whose outputs are averaged, and the margin its digits need
    to be accepted."""
    net: object                           # a trained.TrainedNet, or a tuple of them (a committee); a
                                          # model.Net1989 is made one (readable)
    threshold: float
    run_dir: Path | None = None
    test_rejection: float | None = None   # the share of the run's test digits rejected at the threshold
    test_unsure: float | None = None      # the share shown as '?' by the threshold and the unlikeness limit
    test_shown_error: float | None = None  # the error of the others, shown (None: none is)

    def __post_init__(self):
        self.net = tuple(map(readable, self.net)) if isinstance(self.net, (tuple, list)) else readable(self.net)
        # the compiled code's first calls (a compile, or a load from the disk cache) now, so that no
        # reading's time holds them (predict --truth prints the speed it read at)
        compiled()
        for net in self.nets:
            net.read(np.zeros((0, SIZE, SIZE)))

    def rejection_note(self) -> str:
        """What the threshold does on the run's test digits, and what the whole rule of step 7 does."""
        if self.test_shown_error is None:
            return f"{100 * self.test_rejection:.1f}% of them rejected by it; with the unlikeness limit every one shows as '?'"
        return (f"{100 * self.test_rejection:.1f}% of them rejected by it; with the unlikeness limit "
                f"{100 * self.test_unsure:.1f}% show as '?' and the others err at {100 * self.test_shown_error:.2f}%")

    @property
    def nets(self) -> tuple:
        return self.net if isinstance(self.net, tuple) else (self.net,)

    def outputs(self, inputs: np.ndarray) -> np.ndarray:
        x = np.asarray(inputs, dtype=np.float64)
        if len(self.nets) == 1 or len(x) < SIDE_BY_SIDE_AT:
            return np.mean([net.read(x) for net in self.nets], axis=0)
        # a test set's outputs: the committee's networks read side by side, one a core (the compiled
        # forward pass holds no lock); the same mean of the same outputs
        with ThreadPoolExecutor(min(len(self.nets), cores())) as pool:
            return np.mean(list(pool.map(lambda net: net.read(x), self.nets)), axis=0)

    @property
    def loss(self) -> str:
        return self.nets[0].config.loss


def run_folders(folder: Path) -> list[Path]:
    """The runs to read with: a run folder itself, or every run of a study folder (a folder of run
    folders, as `paper`, `modern` and `reader` write), which then read as one committee; they must be of
    one network and one data set."""
    folder = Path(folder)
    if (folder / "config.json").is_file() or not folder.is_dir():
        return [folder]
    runs = sorted(m.parent for m in folder.glob("*/weights.safetensors"))
    if len(runs) < 2:
        return runs or [folder]
    first = read_config(runs[0])
    for run in runs[1:]:
        config = read_config(run)
        for key, what in (("net", "network"), ("data", "training data")):
            if config.get(key) != first.get(key):
                raise LecunError(f"{run} and {runs[0]} differ in their {what}, so they do not read as one committee; "
                                 f"give one of them")
    return runs


def run_threshold(net, run_dir: Path, where: Location = Location()) -> tuple[float, float, float, float]:
    """(the margin at which the run's own test digits err at 1%, the share of them rejected there, the
    share shown as '?' by the whole rule of step 7 (that margin and the unlikeness limit), the error
    of those shown); `net` a network or a tuple of them, `run_dir` a run or study folder."""
    test = run_test_split(run_folders(run_dir)[0], where)
    r = Reader(net, 0.0)
    out = r.outputs(test.images)
    correct = out.argmax(1) == test.labels
    share, threshold = rejection_at(margin(out), correct, REJECT_ERROR)
    shown = (margin(out) >= threshold) & (unlikeness(out, r.loss) <= MAX_UNLIKENESS[r.loss])
    return threshold, share, 1.0 - float(shown.mean()), float(1.0 - correct[shown].mean()) if shown.any() else None


@lru_cache(maxsize=None)
def _reader(run_dir: Path, threshold: float | None, where: Location) -> Reader:
    nets = tuple(load_trained(run) for run in run_folders(run_dir))
    net = nets if len(nets) > 1 else nets[0]
    if threshold is not None:
        return Reader(net, threshold, run_dir)
    t, share, unsure, shown_error = run_threshold(net, run_dir, where)
    return Reader(net, t, run_dir, share, unsure, shown_error)


def reader(net_or_run, threshold: float | None = None, where: Location = Location()) -> Reader:
    """A Reader from a Reader, a network (threshold None: accept every digit), a run folder or a study
    folder, whose runs read as a committee (threshold None: the 1%-error margin on the run's test digits,
    computed once per folder and process)."""
    if isinstance(net_or_run, Reader):
        return net_or_run if threshold is None else Reader(net_or_run.net, threshold, net_or_run.run_dir)
    if isinstance(net_or_run, (str, Path)):
        return _reader(Path(net_or_run).resolve(), threshold, where)
    return Reader(net_or_run, -math.inf if threshold is None else threshold)


def readable(net):
    """A network as a Reader reads with it: a model.Net1989 (torch) as a TrainedNet of its weights."""
    return TrainedNet(net.config, net.get_params()) if not hasattr(net, "read") and hasattr(net, "get_params") else net


def unlikeness(outputs: np.ndarray, loss: str) -> np.ndarray:
    """(n, 10) outputs -> (n,) how far each candidate is from reading as a digit, >= 0 (step 7): for a
    network trained with cross-entropy, -log of the top class's softmax probability; for one trained with
    MSE towards +1 for the class and -1 elsewhere, half the squared distance to the nearest such target
    (the MSE as a Gaussian's -log likelihood): it grows when two outputs are high, as for two digits in
    one, or none is, as for a piece of one."""
    y = np.asarray(outputs, dtype=np.float64)
    if loss == "ce":
        top = y.max(axis=1)
        return np.log(np.exp(y - top[:, None]).sum(axis=1))
    return np.maximum(0.0, (((y + 1.0) ** 2).sum(axis=1) - 4.0 * y.max(axis=1)) / 2.0)


def skip_cost(atom: Part, href: float) -> float:
    """The cost of leaving an atom cut from a group out of the reading (step 7)."""
    return SKIP_COST + SKIP_AREA_COST * max(0.0, float(atom.mask.sum()) / href ** 2 - SKIP_AREA)


@dataclass
class Candidates:
    """A row's atoms (step 5) and its candidate digits read by the network (steps 6, 7): `candidates`
    makes them, leaving out those lower than LOWEST_DIGIT Href or SMALLEST_DIGIT pixels, which `paths`
    then need not price."""
    pieces: list[Part]
    group_of: list[int]
    spans: list[tuple[int, int]]
    boxes: list[tuple[int, int, int, int]]
    inputs: np.ndarray       # (n, 16, 16)
    outputs: np.ndarray      # (n, 10)
    network_seconds: float
    href: float
    marks: list[Part]        # left out: the edge's tall ink (step 3), marks beside the digits (step 4)

    def left_out(self) -> float:
        """The largest ink left out (`marks`), in pixels of the median group's (step 7)."""
        if not self.marks:
            return 0.0
        ink = np.bincount(self.group_of, weights=[p.mask.sum() for p in self.pieces])
        return max(int(m.mask.sum()) for m in self.marks) / float(np.median(ink))

    def paths(self, loss: str) -> list:
        """best_paths over the candidates' costs (step 7)."""
        g = self.group_of
        cost = dict(zip(self.spans, DIGIT_COST[loss] + unlikeness(self.outputs, loss) + np.array(
            [CUT_COST * (i > 0 and g[i - 1] == g[i]) + JOIN_COST * (g[j - 1] - g[i])
             + WIDE_COST * max(0.0, (b[2] - b[0]) / self.href - WIDEST_DIGIT) for (i, j), b in zip(self.spans, self.boxes)])))
        # only an atom cut from a group may be left out (a stroke's tail), never a group's only atom
        alone = [g.count(x) == 1 for x in g]
        return best_paths(len(self.pieces), cost, [math.inf if a else skip_cost(p, self.href)
                                                   for a, p in zip(alone, self.pieces)])


def candidates(r: Reader, ink: np.ndarray, deslant: bool = True, finer: bool = False,
               join_gap: float = JOIN_GAP) -> Candidates:
    """Steps 3-6 and the network's outputs for every candidate that may be a digit, in one batch (one
    lower than LOWEST_DIGIT Href or SMALLEST_DIGIT pixels never is: it is neither normalized nor read, a
    fifth of them on strips)."""
    pieces, group_of, href, marks = row(ink, finer)
    runs, boxes, inputs = [], [], []
    for i, j in spans(pieces, group_of, href, join_gap):
        part = Part.union(pieces[i:j])
        if part.height < max(LOWEST_DIGIT * href, SMALLEST_DIGIT):
            continue
        runs.append((i, j))
        boxes.append(part.box)
        # already cropped: the box is tight around the mask, where the ink is at least MASK_LEVEL
        inputs.append(normalized(part.ink(ink), deslant))
    inputs = np.array(inputs).reshape(-1, SIZE, SIZE)
    t0 = time.perf_counter()
    out = r.outputs(inputs) if len(inputs) else np.zeros((0, 10))
    return Candidates(pieces, group_of, runs, boxes, inputs, out, time.perf_counter() - t0, href, marks)


def read_image(net_or_run, image: np.ndarray, threshold: float | None = None, deslant: bool = True,
               digits: int | None = None, where: Location = Location()) -> Reading:
    """Read a row of digits: `image` is a 2-D array of grey levels in [0, 1] (either polarity), or a
    path to an image file. `net_or_run`: a run or study folder, a network (trained.TrainedNet or
    model.Net1989), or a Reader."""
    r = reader(net_or_run, threshold, where)
    grey = load_image(image) if isinstance(image, (str, Path)) else image
    ink, polarity = to_ink(grey)
    c = candidates(r, ink, deslant)
    paths, network = c.paths(r.loss), c.network_seconds
    cheapest = min((k for k, p in enumerate(paths) if p is not None and k > 0), key=lambda k: (paths[k][0], k), default=0)
    if digits is not None and (len(paths) <= digits or paths[digits] is None):
        # a count the usual candidates cannot give: finer cuts give more digits, joins across any gap fewer
        finer = all(p is None for p in paths[digits:])
        c = candidates(r, ink, deslant, finer, JOIN_GAP if finer else math.inf)
        paths, network = c.paths(r.loss), network + c.network_seconds
    found = [k for k, p in enumerate(paths) if p is not None and k > 0]
    if not found:
        return Reading("", [], r.threshold, polarity, ink.shape, ink, True, network)
    if digits is None:
        count = cheapest   # the paths of no retry: made only for a count asked
        others = [paths[k][0] for k in found if k != count]
        sure = bool((not others or min(others) > paths[count][0] + COUNT_MARGIN) and c.left_out() < LEFT_OUT)
    else:   # as many as asked, or as near as the atoms allow
        count, sure = max((k for k in found if k <= digits), default=min(found)), True
    index = {span: n for n, span in enumerate(c.spans)}
    chosen = [index[span] for span in paths[count][1]]
    margins, far = margin(c.outputs[chosen]), unlikeness(c.outputs[chosen], r.loss)
    short = [c.boxes[n][3] - c.boxes[n][1] < SURE_HEIGHT * c.href for n in chosen]
    read = [Digit(int(c.outputs[n].argmax()), float(m), bool(m >= r.threshold and u <= MAX_UNLIKENESS[r.loss] and not low),
                  c.boxes[n], c.inputs[n], c.outputs[n], float(u), low) for n, m, u, low in zip(chosen, margins, far, short)]
    text = ("" if sure else "?") + "".join(d.char for d in read)
    return Reading(text, read, r.threshold, polarity, ink.shape, ink, sure, network, None if digits is None else cheapest)
