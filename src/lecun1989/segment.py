"""A row of ink cut into candidate digits: steps 3-5 of reading/images.py's algorithm (components,
groups, cuts, atoms and the runs of atoms that may be one digit), written down exactly there and in
docs/READING.md. It lives in the science layer because two sides need the same cuts: `predict`
reads the candidates it makes, and the reader's training set (reader_data.py) is partly made of the
pieces it cuts from rows of training digits, so that the network learns what it will be shown."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

MASK_LEVEL = 0.25
SPECK = 0.05             # a component with fewer pixels than this share of the largest one's is a speck
FAINT = 0.75             # a component at the image's edge whose strongest ink is below this is a shadow's
CUT_RATIO = 0.75         # a part narrower than this many digit heights is never cut
CUTS_PER_HEIGHT = 3      # columns of least ink tried per digit height of a part's width (at least 2)
WIDEST_PIECE = 0.6       # digit heights a piece between two cuts may span
DRIFT = 0.02             # a cut's cost for moving one column, in ink: straight where the ink allows
MIN_PIECE = 0.15         # digit heights between two cuts, or a cut and the part's edge
THIN = 0.9               # of a part's fullest column's ink, the most a column it is cut at may hold
LONGEST_RUN = 8          # its own heights a part may span and still be cut: wider, it is a line, not digits
WIDEST_MARK = 1.2        # digit heights a short mark may span and join a digit: wider, a line under or through the row
RULE = 2.5               # the ink's heights a horizontal run of it may span in a stroke: longer, a ruled line
TILTS = (0, 1, -1, 2, -2, 3, -3, 4, -4)   # rows a ruled line may climb or fall every TILT_RUN columns
TILT_RUN = 60            # (one row in 60: about a degree, past which a line's runs are shorter than a rule)
EDGE_TALL = 1.5          # times the tallest ink away from the image's edge that ink along the edge may be
MAX_WIDTH = 1.5          # digit heights a candidate digit of several atoms may span
JOIN_GAP = 0.3           # digit heights between two groups one digit may bridge


@dataclass(frozen=True)
class Cuts:
    """How a row is cut: whether ruled lines are taken out first (step 3, `without_rules`); then (step
    5, in digit heights) a part at least `pair_width` wide is likely two digits or more, touching, and
    its pieces are at most `fine_piece` wide, so that some run of them is each digit whole; a cut may
    wander `band` from its column."""
    rules: bool
    pair_width: float
    fine_piece: float
    band: float


# reading's cuts: ruled lines out; fine pieces only in parts wide enough to be a pair (a wide single
# digit cut as finely gives twice the candidates and more ways to misread it), and straight cuts
# (wandering further, a cut goes round the merged strokes of a touching pair and takes a piece of one
# digit with it)
READING = Cuts(rules=True, pair_width=1.2, fine_piece=0.18, band=0.12)


def components(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """8-connected components of a boolean image: (labels, count), labels 1..count in order of the
    first pixel met scanning row by row, 0 for background (scipy.ndimage.label numbers them so)."""
    from scipy.ndimage import label
    labels, n = label(mask, structure=np.ones((3, 3), dtype=bool))
    return labels.astype(np.int32, copy=False), int(n)


def without_rules(mask: np.ndarray) -> np.ndarray:
    """The mask without ruled lines (step 3): digits written on a line, or a line drawn under or
    through them, would otherwise be one component with it. A line may be level or climb or fall k
    rows every TILT_RUN columns, k in TILTS (up to about 4 degrees): sheared so that such a line is
    level, the mask's longest run of set pixels held by three rows running is a rule's if at least
    RULE times the height of its rows spanned (`_runs`). While some tilt holds one, the tilt whose such
    run is the most such heights (ties: the first in TILTS) has its rules taken out (`_level_rules`, on
    the mask sheared). All of it within the box of the set pixels, with a row more above and below
    (x counted from the box's first column): the same for the rest of the image, which is empty."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return mask
    # a shear moves whole columns, so no tilt spans fewer rows than the tallest column's ink, and a rule
    # covers columns without a gap: where no columns that long hold ink, there is none (as for a row of
    # separated digits), and the tilts need not be tried
    span = mask.shape[0] - np.argmax(mask[::-1], axis=0) - np.argmax(mask, axis=0)
    gaps = np.flatnonzero(np.diff(cols) > 1)
    widest = np.diff(np.concatenate([[0], gaps + 1, [cols.size]])).max()   # of the runs of columns with ink
    if widest < RULE * span[cols].max():
        return mask
    box = np.s_[max(0, rows[0] - 1):rows[-1] + 2, cols[0]:cols[-1] + 1]
    out = mask[box]
    while True:
        found = [(_runs(_shear(out, k)).score, -i, k) for i, k in enumerate(TILTS)]
        score, _, k = max(found)
        if score < 1:
            break
        cleaned = _shear(_level_rules(_shear(out, k)), k, back=out.shape[0])
        if np.array_equal(cleaned, out):   # every pixel of it where strokes cross
            break
        out = cleaned
    whole = mask.copy()
    whole[box] = out
    return whole


class Runs(NamedTuple):
    """`_runs`' answer."""
    ys: np.ndarray
    starts: np.ndarray
    ends: np.ndarray
    longest: np.ndarray
    steady: np.ndarray
    score: float
    rule: float


def _shear(mask: np.ndarray, k: int, back: int | None = None) -> np.ndarray:
    """The mask with column x moved down floor((k x + TILT_RUN / 2) / TILT_RUN) rows, the whole kept at
    row 0 and below; with `back` (the height before), the shear undone."""
    h, w = mask.shape
    down = (np.arange(w) * k + TILT_RUN // 2) // TILT_RUN
    down -= down.min()
    out = np.zeros((h + int(down.max()), w) if back is None else (back, w), dtype=bool)
    starts = np.flatnonzero(np.diff(down, prepend=-1))   # the columns moved alike, a block at a time
    for a, b in zip(starts, [*starts[1:], w]):
        if back is None:
            out[down[a]:down[a] + h, a:b] = mask[:, a:b]
        else:
            out[:, a:b] = mask[down[a]:down[a] + back, a:b]
    return out


def _runs(mask: np.ndarray) -> Runs:
    """The rows' runs of set pixels, each row's pixels joined with those of the rows above and below it
    (a thin line, sheared or drawn at a slight slant, steps from row to row): their rows, starts and
    ends past their last pixel; each row's longest run, and the shortest of those of it and the rows
    above and below (0 in the first and last rows); the longest such over RULE times the height of the
    rows spanned (0 for an empty mask); RULE times that height."""
    joined = mask.copy()
    joined[1:] |= mask[:-1]
    joined[:-1] |= mask[1:]
    w = mask.shape[1] + 1
    # a run's start, then its end past its last pixel, row after row: the row's ink changes there
    start, end = np.flatnonzero(np.diff(np.pad(joined, ((0, 0), (1, 1))).astype(np.int8), axis=1)).reshape(-1, 2).T
    ys, starts, ends = start // w, start % w, end % w
    longest = np.zeros(mask.shape[0], dtype=np.int64)
    if ys.size:
        first = np.flatnonzero(np.diff(ys, prepend=-1))   # each row's first run: runs come row by row
        longest[ys[first]] = np.maximum.reduceat(ends - starts, first)
    rows = np.flatnonzero(longest)
    rule = RULE * (rows[-1] + 1 - rows[0]) if rows.size else math.inf
    # a line, joined with the rows beside it, is as long in three rows running; where strokes of touching
    # digits happen to line up, one or two
    steady = np.zeros_like(longest)
    steady[1:-1] = np.minimum(np.minimum(longest[:-2], longest[1:-1]), longest[2:])
    return Runs(ys, starts, ends, longest, steady, steady.max(initial=0) / rule, rule)


def _level_rules(mask: np.ndarray) -> np.ndarray:
    """The mask without level ruled lines: a row holding a rule's run, as do the rows above and below
    it (`_runs`: of rows joined with their neighbours, so that the band holds a row of ink on either
    side of the line), starts a band,
    grown by each row next to it with a run at least half as long. In the band, the columns its runs
    at least half a rule's cover are cleared, but those between a set pixel right above the band and
    one right below it, each at most the band's height plus one columns away: a stroke crossing the
    line, upright or slanted up to 45 degrees."""
    h, w = mask.shape
    ys, starts, ends, longest, steady, _, rule = _runs(mask)
    out = mask.copy()
    y = 0
    while y < h:
        if steady[y] < rule:
            y += 1
            continue
        y0, y1 = y, y
        while y0 > 0 and longest[y0 - 1] >= rule / 2:
            y0 -= 1
        while y1 + 1 < h and longest[y1 + 1] >= rule / 2:
            y1 += 1
        crossing = np.zeros(w, dtype=bool)
        if 0 < y0 and y1 + 1 < h:   # a stroke up to 45 degrees from upright meets the band's sides this far apart
            reach = y1 + 2 - y0
            (above_left, above_right), (below_left, below_right) = (_within(mask[y], reach) for y in (y0 - 1, y1 + 1))
            crossing = (above_left & below_right) | (above_right & below_left)
        covered = np.zeros(w + 1, dtype=np.int64)   # the columns the band's long runs cover
        for k in np.flatnonzero((ys >= y0) & (ys <= y1) & (ends - starts >= rule / 2)):
            covered[starts[k]] += 1
            covered[ends[k]] -= 1
        out[y0:y1 + 1, (np.cumsum(covered[:w]) > 0) & ~crossing] = False
        y = y1 + 1
    return out


def _within(line: np.ndarray, reach: int) -> tuple[np.ndarray, np.ndarray]:
    """Per column x of a boolean row: whether it is set somewhere in x - reach .. x, and in x .. x + reach."""
    n = np.concatenate([[0], np.cumsum(line)])
    x = np.arange(line.size)
    return (n[x + 1] - n[np.maximum(0, x - reach)] > 0,
            n[np.minimum(line.size, x + reach + 1)] - n[x] > 0)


@dataclass(eq=False)
class Part:
    """One digit's pixels: its box (x0, y0, x1, y1) in the image and a boolean mask of the box's size
    (the pixels inside the box that are the part's)."""
    mask: np.ndarray
    box: tuple[int, int, int, int]

    @staticmethod
    def of(mask: np.ndarray, x0: int = 0, y0: int = 0) -> "Part":
        """The part of the set pixels of `mask`, whose pixel (0, 0) is the image's (y0, x0), trimmed to their box."""
        rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
        return Part(mask[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1],
                    (x0 + int(cols[0]), y0 + int(rows[0]), x0 + int(cols[-1]) + 1, y0 + int(rows[-1]) + 1))

    @staticmethod
    def union(parts: list["Part"]) -> "Part":
        x0, y0 = min(p.box[0] for p in parts), min(p.box[1] for p in parts)
        x1, y1 = max(p.box[2] for p in parts), max(p.box[3] for p in parts)
        mask = np.zeros((y1 - y0, x1 - x0), dtype=bool)
        for p in parts:
            mask[p.box[1] - y0:p.box[3] - y0, p.box[0] - x0:p.box[2] - x0] |= p.mask
        return Part(mask, (x0, y0, x1, y1))

    def ink(self, ink: np.ndarray) -> np.ndarray:
        """The image's ink inside the box where the part's pixels are, 0 elsewhere."""
        x0, y0, x1, y1 = self.box
        return ink[y0:y1, x0:x1] * self.mask

    @property
    def width(self) -> int:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> int:
        return self.box[3] - self.box[1]


def cut_columns(part: Part, ink: np.ndarray, height: float, finer: bool = False, cuts: Cuts = READING) -> list[int]:
    """The columns a part may be cut at (step 5), left to right: none for a part narrower than
    CUT_RATIO times the row's `height`, or wider than LONGEST_RUN times its own height; else its
    columns of least ink (local minima of the column ink at least MIN_PIECE heights from the part's
    edges and from each other, holding at most THIN of its fullest column's ink, least ink first, at
    most CUTS_PER_HEIGHT per height of its width), then, while a piece between two cuts is wider than
    WIDEST_PIECE heights (cuts.fine_piece in a part at least cuts.pair_width heights wide), the widest (ties:
    leftmost) is cut at its column of least ink in its middle half (ties: nearest its middle, then
    leftmost) if that column holds at most THIN of the fullest one's ink (else the piece stays whole
    and the next widest is tried), so that every digit of a touching run can be made of whole pieces."""
    x0, y0, x1, y1 = part.box
    w = x1 - x0
    if w < 4 or (w <= CUT_RATIO * height and not finer) or w > LONGEST_RUN * part.height:
        return []
    col = part.ink(ink).sum(axis=0)
    # a cut goes where the ink thins: never through a column holding more than THIN of the part's
    # fullest column's ink (a ruled line or a dash, as thick everywhere, is never sliced into 1s)
    thin = THIN * col.max()
    edge = max(1, math.ceil(MIN_PIECE * height))
    minima = [k for k in range(edge, w - edge) if col[k] <= col[k - 1] and col[k] < col[k + 1] and col[k] <= thin]
    minima.sort(key=lambda k: (col[k], abs(2 * k - (w - 1)), k))
    picked, most = [], max(2, math.floor(CUTS_PER_HEIGHT * w / height + 0.5))
    for k in minima:
        if len(picked) < most and all(abs(k - q) >= MIN_PIECE * height for q in picked):
            picked.append(k)
    widest = cuts.fine_piece if w >= cuts.pair_width * height else WIDEST_PIECE
    whole = set()   # pieces with no column thin enough to cut
    while True:
        edges = [0, *sorted(picked), w]
        pieces = [g for g in zip(edges, edges[1:]) if g not in whole]
        if not pieces:
            return sorted(x0 + k for k in picked)
        a, b = max(pieces, key=lambda g: (g[1] - g[0], -g[0]))
        if b - a <= widest * height / (2 if finer else 1) or b - a < 4:
            return sorted(x0 + k for k in picked)
        k = min(range(a + (b - a) // 4, b - (b - a) // 4), key=lambda k: (col[k], abs(2 * k - (a + b - 1)), k))
        if col[k] <= thin:
            picked.append(k)
        else:
            whole.add((a, b))


def atoms(ink: np.ndarray, finer: bool = False, cuts: Cuts = READING) -> tuple[list[Part], list[int], float]:
    """The row's pieces (steps 3-5): (the atoms left to right, the group each belongs to, Href); `finer`
    (for a count the usual atoms cannot give) cuts every group and twice as finely; `cuts`: how."""
    return row(ink, finer, cuts)[:3]


def row(ink: np.ndarray, finer: bool = False, cuts: Cuts = READING) -> tuple[list[Part], list[int], float, list[Part]]:
    """`atoms`, and the ink left out that may hold a digit, which a reader may weigh (reading/images.py,
    step 7): the components at the edge far taller than the ink away from it (step 3), then the marks
    beside the digits that may be a digit's pieces (step 4: sharing no column with a group's start, at
    least Hmax / 4 tall and at most WIDEST_MARK Hmax wide; not a dash, a hyphen or a line)."""
    mask = ink >= MASK_LEVEL
    labels, n = components(without_rules(mask) if cuts.rules else mask)
    if n == 0:
        return [], [], 0.0, []
    from scipy.ndimage import find_objects
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    h, w = ink.shape

    def inside(box) -> bool:
        return box[1].start > 0 and box[0].start > 0 and box[1].stop < w and box[0].stop < h

    def part(k: int, box) -> Part:
        return Part(labels[box] == k, (box[1].start, box[0].start, box[1].stop, box[0].stop))

    # a faint piece at the image's edge is the corner of a shadow (as thin there as a stroke), not ink
    kept = [(k, box) for k, box in enumerate(find_objects(labels), 1)
            if inside(box) or ink[box][labels[box] == k].max() >= FAINT]
    # the edge of a card, a border or a dark shadow along the image's edge, far taller than any ink away
    # from the edge, is no digit; were it kept, its height would make the digits look like marks beside it
    tallest = max((box[0].stop - box[0].start for _, box in kept if inside(box)), default=0)
    too_tall = [bool(tallest) and not inside(box) and box[0].stop - box[0].start > EDGE_TALL * tallest for _, box in kept]
    edge = [part(k, box) for (k, box), tall in zip(kept, too_tall) if tall]
    kept = [kb for kb, tall in zip(kept, too_tall) if not tall]
    # a speck (noise on dark paper, dust) is left out before it can join a digit's group and stretch its box
    biggest = max((sizes[k] for k, _ in kept), default=0)
    comps = [part(k, box) for k, box in kept if sizes[k] >= SPECK * biggest]
    if not comps:
        return [], [], 0.0, []
    hmax = max(c.height for c in comps)
    starts = sorted((c for c in comps if 2 * c.height >= hmax), key=lambda c: (c.box[0], c.box[1]))
    # what is left out may hold a digit: the edge's tall ink (a band joined to a digit, a blot on one),
    # and below the marks beside the digits
    groups, marks = [[c] for c in starts], edge
    for c in comps:
        if 2 * c.height >= hmax:
            continue
        shared = [max(0, min(c.box[2], s.box[2]) - max(c.box[0], s.box[0])) for s in starts]
        best = int(np.argmax(shared))   # the first of equals: starts are in (x0, y0) order
        if shared[best] > 0 and c.width <= WIDEST_MARK * hmax:
            groups[best].append(c)
        # else a dot, a speck or a dash beside the digits, or a line under or through them: never a digit;
        # one at least a quarter of the tallest's height and no wider than a mark may be a digit's piece
        elif c.width <= WIDEST_MARK * hmax and 4 * c.height >= hmax:
            marks.append(c)
    parts = sorted((Part.union(g) for g in groups), key=lambda p: (p.box[0], p.box[1]))
    # the height of a digit here: touching digits make a part wide, not tall
    href = float(np.median([p.height for p in parts]))
    pieces, group_of = [], []
    for g, (p, paths) in enumerate(zip(parts, cut_paths([(p, cut_columns(p, ink, href, finer, cuts)) for p in parts],
                                                        ink, href, cuts.band))):
        x0, y0, x1, y1 = p.box
        columns = np.arange(x0, x1)[None, :]
        edges = [np.full(y1 - y0, x0), *paths, np.full(y1 - y0, x1)]
        for k in range(1, len(edges)):   # cuts never cross: each starts where the one before it ends
            edges[k] = np.maximum(edges[k], edges[k - 1])
        for a, b in zip(edges, edges[1:]):
            m = p.mask & (columns >= a[:, None]) & (columns < b[:, None])
            if m.any():
                pieces.append(Part.of(m, x0, y0))
                group_of.append(g)
    return pieces, group_of, href, marks


def cut_paths(jobs: list[tuple[Part, list[int]]], ink: np.ndarray, height: float,
              band: float = READING.band) -> list[list[np.ndarray]]:
    """The cuts through each part near its columns cs (step 5), jobs = [(part, cs), ...], each cut as the
    first column right of the cut in every row of its part: the path from top to bottom that crosses
    the least ink, moving at most one column a row (a move costs DRIFT) within `band` heights of its
    column c and inside the part's box. Every cut of the row is found together, one pass over the rows
    (each part's from its own top row) for all of them."""
    reach = max(1, math.ceil(band * height))   # in columns
    cuts = [(part, c, max(part.box[0] + 1, c - reach), min(part.box[2] - 1, c + reach)) for part, cs in jobs for c in cs]
    if not cuts:
        return [[] for _ in jobs]
    n = max(hi + 1 - lo for _, _, lo, hi in cuts)
    rows = max(part.height for part, _, _, _ in cuts)
    # every cut's columns side by side, padded with columns no path may enter (and rows below its part)
    cost = np.full((rows, len(cuts), n), np.inf)
    local = {}
    for q, (part, _, lo, hi) in enumerate(cuts):
        if id(part) not in local:
            local[id(part)] = part.ink(ink)
        cost[:part.height, q, :hi + 1 - lo] = local[id(part)][:, lo - part.box[0]:hi + 1 - part.box[0]]
    totals = np.empty_like(cost)   # totals[y]: the least ink of a path from the top row to each column of row y
    totals[0] = cost[0]
    side = np.full((len(cuts), n), np.inf)
    for y in range(1, rows):
        above = totals[y - 1]
        best = above.copy()
        side[:, 1:] = above[:, :-1] + DRIFT
        np.minimum(best, side, out=best)
        side[:, 1:] = np.inf
        side[:, :-1] = above[:, 1:] + DRIFT
        np.minimum(best, side, out=best)
        side[:, :-1] = np.inf
        np.add(best, cost[y], out=totals[y])
    paths = {id(part): [] for part, _ in jobs}
    for q, (part, c, lo, hi) in enumerate(cuts):
        last = totals[part.height - 1, q]
        x = min(range(hi + 1 - lo), key=lambda k: (last[k], abs(lo + k - c), k))
        path = np.empty(part.height, dtype=np.int64)
        for y in range(part.height - 1, -1, -1):
            path[y] = lo + x
            if y:   # the column it came from: straight first, then from the left (ties)
                t = totals[y - 1, q]
                straight, left = t[x], t[x - 1] + DRIFT if x > 0 else math.inf
                right = t[x + 1] + DRIFT if x + 1 < n else math.inf
                x = x if straight <= left and straight <= right else (x - 1 if left <= right else x + 1)
        paths[id(part)].append(path)
    return [paths[id(part)] for part, _ in jobs]


def spans(pieces: list[Part], group_of: list[int], href: float, join_gap: float = JOIN_GAP) -> list[tuple[int, int]]:
    """The candidate digits (step 5): runs i .. j - 1 of consecutive atoms, (i, j): every atom; every
    run within one group or two at most MAX_WIDTH Href wide, where passing from one group to the
    next only across a gap of at most JOIN_GAP Href between their atoms; every whole group. In order
    of j, then i."""
    out = set()
    for i in range(len(pieces)):
        x0, x1 = pieces[i].box[0], pieces[i].box[2]
        for j in range(i, len(pieces)):
            x0, x1 = min(x0, pieces[j].box[0]), max(x1, pieces[j].box[2])
            if j > i and group_of[j] != group_of[j - 1] and (group_of[j] - group_of[i] > 1 or
                                                              pieces[j].box[0] - pieces[j - 1].box[2] > join_gap * href):
                break
            if j == i or x1 - x0 <= MAX_WIDTH * href:
                out.add((i, j + 1))
    # a whole group is a candidate however wide: one digit with a long tail, or slanted, can be wider
    # than MAX_WIDTH, and without it would have to be read cut
    for g in set(group_of):
        out.add((group_of.index(g), len(group_of) - group_of[::-1].index(g)))
    return sorted(out, key=lambda c: (c[1], c[0]))
