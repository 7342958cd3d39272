"""Reading real images: the paper estimated locally (shadows, gradients, tints), candidate cuts read
by the network and the cheapest reading through them, the count flagged when unsure, the reader's
training set and command, committees, and the photo-like benchmark."""

import hashlib
import json
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from lecun1989 import reader_data, segment
from lecun1989.cli import main
from lecun1989.reading import benchmark, images as reading


def bars(shape=(60, 200), lefts=(20, 60, 100), top=10, h=40, w=10) -> np.ndarray:
    """Ink (0 = paper): upright bars h x w at the given columns."""
    ink = np.zeros(shape)
    for x in lefts:
        ink[top:top + h, x:x + w] = 1.0
    return ink


# --- paper and ink ------------------------------------------------------------------------------------

def test_a_shadow_or_a_gradient_is_not_ink():
    ink = bars()
    y, x = np.mgrid[0:60, 0:200]
    light = np.where(x + 0.5 * y > 120, 0.45, 1.0) * (0.8 + 0.2 * x / 200)   # a hard shadow and a gradient
    grey = light * (0.9 - 0.8 * ink)
    found, polarity = reading.to_ink(grey)
    assert polarity == "dark-on-light"
    # the ink is the stroke's contrast with the paper around it, as strong in the shadow as in the light
    # (within 0.01 away from the shadow's edge; a stroke across the edge loses at most a sixth there)
    assert found[ink > 0].min() > 0.8 and np.allclose(found[:, :95][ink[:, :95] > 0], 1.0, atol=0.01)
    # away from the image's edge nothing else is ink; at the edge, where the shadow's corner is as thin as
    # a stroke, it is fainter than ink and dropped
    inside = np.zeros_like(ink, dtype=bool)
    inside[1:-1, 1:-1] = True
    assert ((found >= segment.MASK_LEVEL) == (ink > 0))[inside[:, :] & (np.arange(60)[:, None] < 45)].all()
    pieces, _, _ = segment.atoms(found)
    assert [p.box for p in pieces] == [(20, 10, 30, 50), (60, 10, 70, 50), (100, 10, 110, 50)]


def test_a_flat_paper_reads_as_the_global_rule_either_polarity():
    ink = bars()
    for grey, polarity in ((0.9 - 0.8 * ink, "dark-on-light"), (0.1 + 0.8 * ink, "light-on-dark")):
        found, got = reading.to_ink(grey)
        assert got == polarity
        assert np.allclose(found, ink, atol=1e-12)


def test_a_bold_tight_crop_reads_with_one_paper_level():
    # a bar 10 wide in a 26-pixel-wide image: no feature narrower than the window, so the border's level
    grey = np.pad(np.ones((16, 10)), 8)
    ink, polarity = reading.to_ink(grey)
    assert polarity == "light-on-dark" and np.array_equal(ink, grey)


def blotted(ink: np.ndarray, cy: float, cx: float, radius: float, level: float = 0.1) -> np.ndarray:
    """Grey (1 = white) of ink on white paper, with a filled disc of grey `level` drawn over it."""
    y, x = np.mgrid[0:ink.shape[0], 0:ink.shape[1]] + 0.5
    return np.where((y - cy) ** 2 + (x - cx) ** 2 < radius ** 2, level, 0.9 - 0.8 * ink)


def test_a_blot_wider_than_the_window_leaves_no_rim_of_ink():
    """A filled disc wider than the window is taken for dark paper but at its rim, where the square window
    cannot follow its curve: those rims read as two accepted 1s (on 26 of 60 random blots). They are
    dropped, with nothing of the digits beside them; a blot alone is read with one paper level."""
    ink = bars()
    for level, polarity in ((0.1, "dark-on-light"), (0.3, "dark-on-light")):
        grey = blotted(ink, 30, 160, 24, level)   # the window is 15 pixels wide here
        found, got = reading.to_ink(grey)
        assert got == polarity
        assert np.array_equal(found >= segment.MASK_LEVEL, ink > 0)
        light_on_dark = 1.0 - grey
        assert np.array_equal(reading.to_ink(light_on_dark)[0] >= segment.MASK_LEVEL, ink > 0)
    alone = blotted(np.zeros((120, 200)), 60, 100, 40)
    found, _ = reading.to_ink(alone)
    assert found.max() == 1.0 and (found >= segment.MASK_LEVEL).sum() == ((alone < 0.5).sum())


def test_a_faint_shadow_corner_at_the_edge_is_dropped_ink_is_kept():
    ink = bars()
    ink[0:8, 150:200] = 0.5            # a faint dark sliver along the top edge, as a shadow's corner
    ink[52:60, 20:30] = 1.0            # a strong stroke at the bottom edge: ink, kept
    pieces, _, _ = segment.atoms(ink)
    assert not any(p.box[1] == 0 for p in pieces)
    assert any(p.box[3] == 60 for p in pieces)


# --- candidates and the cheapest reading --------------------------------------------------------------

def test_a_card_edge_or_a_dark_shadow_along_the_image_edge_is_no_digit():
    """Ink along the image's edge far taller than any away from it (a card's edge, a border line, a dark
    shadow) is dropped: kept, it was read as a sure 1 and made the digits look like marks beside it. As
    it may hold a digit (a band or a blot at the edge joined to one: the second fresh-clone trial read
    41176 as a sure 1176), the count is then unsure."""
    ink = np.pad(bars(), ((30, 30), (0, 0)))            # three bars 40 tall, 30 rows of paper above and below
    for edge in (np.s_[:, 2:5], np.s_[:, -8:]):         # a border line; a dark band along the right edge
        marked = ink.copy()
        marked[edge] = 0.9
        pieces, groups, href = segment.atoms(marked)
        assert [p.box for p in pieces] == [(20, 40, 30, 80), (60, 40, 70, 80), (100, 40, 110, 80)]
        assert href == 40
        assert reading.read_image(FixedNet(1), 1.0 - 0.9 * marked).text == "?111"
    joined = ink.copy()
    joined[:, :6] = 0.4                                  # a faint band along the left edge, joined to a digit
    joined[40:80, 6:12] = 1.0
    got = reading.read_image(FixedNet(1), 1.0 - 0.9 * joined)
    assert [d.box[0] for d in got.digits] == [20, 60, 100] and not got.count_sure
    tight = np.ones((40, 10))                            # a tight crop: all its ink touches the edge, and stays
    assert [p.box for p in segment.atoms(tight)[0]] == [(0, 0, 10, 40)]


def test_dots_and_dashes_beside_the_digits_are_never_digits():
    ink = bars()
    ink[45:49, 140:144] = 1.0          # a dot
    ink[30:32, 150:170] = 1.0          # a dash
    pieces, groups, href = segment.atoms(ink)
    assert [p.box for p in pieces] == [(20, 10, 30, 50), (60, 10, 70, 50), (100, 10, 110, 50)]
    assert groups == [0, 1, 2] and href == 40


def test_a_line_is_never_sliced_into_digits_and_an_underline_never_joins_one():
    # a dash alone, a ruled line, a wavy one: far longer than the ink is tall, taken out as rules (of the
    # wavy one, a few pixels at its ends are left)
    dash = np.zeros((120, 120))
    dash[57:63, 20:100] = 1.0
    ruled = np.zeros((20, 3000))
    ruled[9:11, 10:2990] = 1.0
    wavy = np.zeros((60, 400))
    for x in range(20, 380):
        y = int(round(30 + 3 * np.sin(x / 40)))
        wavy[y - 2:y + 3, x] = 1.0
    assert segment.atoms(dash)[0] == segment.atoms(ruled)[0] == []
    assert sum(p.mask.sum() for p in segment.atoms(wavy)[0]) <= 12
    # a line under three digits, apart from them, shorter than a rule: never sliced into 1-pixel slivers
    # (LONGEST_RUN), never joined to a digit; they are cut and ordered as without it
    ink = bars()
    under = ink.copy()
    under[54:56, 15:115] = 1.0
    assert [p.box for p in segment.atoms(under)[0]] == [p.box for p in segment.atoms(ink)[0]]


def test_a_ruled_line_is_taken_out_and_the_strokes_crossing_it_kept():
    """Step 3: digits written on a line, or a line drawn through them, would be one component with it.
    The line goes; a stroke that crosses it, upright or slanted, stays whole; a digit's own long stroke
    (a 7's top) is no line."""
    ink = bars()                                    # three bars, rows 10-49
    ink[50:53, 5:160] = 1.0                         # a line under them, touching their feet
    ink[28:31, 5:160] = 1.0                         # and one through their middles
    for y in range(10, 50):                         # a slanted stroke crossing the line
        ink[y, 130 + (y - 10) // 2:136 + (y - 10) // 2] = 1.0
    pieces, groups, href = segment.atoms(ink)
    # the bars as they were (less the row that touched the line under them), whole through the other
    assert [p.box for p in pieces] == [(20, 10, 30, 49), (60, 10, 70, 49), (100, 10, 110, 49), (130, 10, 155, 49)]
    assert all(p.mask.all() for p in pieces[:3])
    kept = segment.without_rules(ink >= segment.MASK_LEVEL)
    assert not kept[49:54].any() and not kept[27:32, 5:20].any() and not kept[27:32, 156:160].any()
    # the same, the whole image tilted a row every 30 columns (about 2 degrees)
    tilted = np.zeros((70, 200))
    for x in range(200):
        tilted[x // 30:x // 30 + 60, x] = ink[:, x]
    assert len(segment.atoms(tilted)[0]) == 4 and not segment.without_rules(tilted > 0)[:, 5:19].any()
    seven = np.zeros((60, 60))
    seven[10:14, 10:50] = 1.0                       # a top stroke as wide as the digit is tall
    for y in range(14, 50):
        seven[y, 45 - (y - 14) // 2:50 - (y - 14) // 2] = 1.0
    assert np.array_equal(segment.without_rules(seven > 0), seven > 0)


def test_a_touching_pair_is_cut_where_the_ink_is_thinnest():
    ink = bars(lefts=(20, 44))
    ink[28:31, 30:44] = 1.0            # a thin bridge joins the two bars: one group 34 wide
    ink[10:50, 10:19] = 1.0            # and a third bar touching the first: 44 columns in all
    ink[28:31, 19:20] = 1.0
    pieces, groups, href = segment.atoms(ink)
    assert len(set(groups)) == 1 and len(pieces) >= 3
    cuts = sorted({p.box[0] for p in pieces} - {10})
    assert all(19 <= c <= 20 or 30 <= c <= 44 for c in cuts), cuts
    spans = segment.spans(pieces, groups, href)
    assert (0, len(pieces)) in spans                  # the whole group, read as one digit if it reads best
    assert all((i, i + 1) in spans for i in range(len(pieces)))


def test_a_cut_wanders_from_its_column_only_as_far_as_its_band(usps, monkeypatch):
    """Step 5: a cut path stays within ceil(band Href) of its column, where a wider band would follow
    a thin gap further; reading cuts as segment.READING says, the reader's training rows as ROW_CUTS."""
    ink = np.zeros((44, 60))
    ink[2:42, 4:56] = 1.0
    ink[2:42, 30] = 0.0                  # a gap 10 columns right of the cut's column, the only thin way down
    part = segment.Part.of(ink > 0)
    wander = {}
    for band in (0.1, 0.3):
        (path,), = segment.cut_paths([(part, [20])], ink, 40.0, band)
        wander[band] = int(np.abs(path - 20).max())
        assert wander[band] <= math.ceil(band * 40)
    assert wander == {0.1: 0, 0.3: 10}      # the narrow band cannot reach the gap: straight down; the wide one goes down it
    assert np.array_equal(segment.cut_paths([(part, [20])], ink, 40.0)[0][0],
                          segment.cut_paths([(part, [20])], ink, 40.0, segment.READING.band)[0][0])
    seen = []
    monkeypatch.setattr(reader_data, "atoms", lambda ink, cuts: seen.append(cuts) or segment.atoms(ink, cuts=cuts))
    inks, labels = reader_data.source_digits(n_usps=10, n_mnist=0)
    reader_data.row_examples(inks, labels, 3, 0)
    assert seen == [reader_data.ROW_CUTS] and reader_data.ROW_CUTS.band > segment.READING.band


def test_a_part_as_wide_as_two_digits_is_cut_finer_than_one():
    """Step 5: a part at least pair_width Href wide (likely touching digits) is cut into pieces at most
    fine_piece Href wide, so that some run of them is each digit whole; one narrower keeps WIDEST_PIECE."""
    def ring(w, h=40, t=3):
        a = np.zeros((h, w))
        a[:t] = a[-t:] = a[:, :t] = a[:, -t:] = 1.0
        return a

    def pieces(ink, cuts=segment.READING, href=40.0):
        ink = np.pad(ink, 2)
        part = segment.Part.of(ink >= segment.MASK_LEVEL)
        edges = [part.box[0], *segment.cut_columns(part, ink, href, cuts=cuts), part.box[2]]
        return [b - a for a, b in zip(edges, edges[1:])]

    fine = segment.READING.fine_piece * 40
    pair = pieces(np.hstack([ring(26), ring(26)[:, 1:]]))       # two rings touching: 1.27 Href
    assert len(pair) > 4 and max(pair) <= fine
    wide = pieces(ring(44))                                      # one wide ring, 1.1 Href: cut coarsely
    assert 1 < len(wide) < 4 and max(wide) > fine and max(wide) <= segment.WIDEST_PIECE * 40
    # the reader's training rows are cut with ROW_CUTS: from 1.0 Href, finely
    assert max(pieces(ring(44), cuts=reader_data.ROW_CUTS)) <= reader_data.ROW_CUTS.fine_piece * 40
    one = pieces(ring(34))                                       # one ring, 0.85 Href: cut, but coarsely
    assert 1 < len(one) < 4 and max(one) > fine and max(one) <= segment.WIDEST_PIECE * 40


def test_a_whole_group_is_a_candidate_however_wide():
    """Step 5: a digit wider than MAX_WIDTH Href (a long tail, a slant) can still be read whole; runs of
    atoms of two groups stay limited."""
    href = 20.0
    pieces = [segment.Part(np.ones((20, 14), bool), (14 * k, 0, 14 * (k + 1), 20)) for k in range(3)]   # 2.1 Href
    pieces.append(segment.Part(np.ones((20, 10), bool), (46, 0, 56, 20)))
    runs = segment.spans(pieces, [0, 0, 0, 1], href)
    assert (0, 3) in runs and (0, 4) not in runs and (1, 4) not in runs
    assert {(0, 1), (1, 2), (2, 3), (3, 4), (0, 2), (1, 3), (2, 4)} <= set(runs)


def test_best_paths_per_count():
    cost = {(0, 1): 1.0, (1, 2): 1.0, (0, 2): 1.5, (2, 3): 0.2, (1, 3): 0.1}
    paths = reading.best_paths(3, cost)
    assert paths[0] is None
    assert paths[1] is None                                    # no candidate spans all three atoms
    assert paths[2] == (1.1, [(0, 1), (1, 3)])
    assert paths[3] == (2.2, [(0, 1), (1, 2), (2, 3)])


class FixedNet:
    """A stand-in network: every input reads as `label` with outputs +1 / -1 (MSE targets)."""
    config = SimpleNamespace(loss="mse")

    def __init__(self, label):
        self.label = label

    def read(self, x):   # what a Reader reads its candidates with (TrainedNet.read)
        out = -np.ones((len(x), 10))
        out[:, self.label] = 1.0
        return out


def test_a_count_the_network_cannot_tell_apart_is_flagged():
    ink = bars(lefts=(20, 60, 100))
    grey = 1.0 - 0.9 * ink
    sure = reading.read_image(FixedNet(1), grey)
    assert (sure.text, sure.count_sure) == ("111", True)   # apart, three groups: three digits
    # two bars 8 pixels apart: read as one digit or as two, equally well for this network
    near = bars(lefts=(20, 38, 100))
    unsure = reading.read_image(FixedNet(1), 1.0 - 0.9 * near)
    assert not unsure.count_sure and unsure.text.startswith("?")
    assert unsure.to_json()["count_sure"] is False
    # a known count is never unsure
    known = reading.read_image(FixedNet(1), 1.0 - 0.9 * near, digits=3)
    assert known.count_sure and len(known.digits) == 3


def test_a_strokes_tail_is_left_out_but_not_half_a_digits_ink():
    """Step 7: leaving a cut piece out costs more the more ink it holds, so a touching pair is not read
    as one digit by dropping its neighbour's half."""
    href = 40.0
    digit = segment.Part(np.ones((40, 8), bool), (0, 0, 8, 40))                 # reads as a sure 1

    def read(piece):
        y = -np.ones((3, 10))
        y[0, 1] = 1.0                                  # the digit
        y[1, 7] = 1.0 - math.sqrt(2 * 1.2)             # the piece alone: a poor 7, unlikeness 1.2
        # both together read as nothing (unlikeness 2)
        c = reading.Candidates([digit, piece], [0, 0], [(0, 1), (1, 2), (0, 2)],
                               [digit.box, piece.box, (0, 0, piece.box[2], 40)], np.zeros((3, 16, 16)), y, 0.0, href, [])
        return [k for k, p in enumerate(c.paths("mse")) if p is not None and k > 0
                and p[0] == min(q[0] for q in c.paths("mse")[1:] if q is not None)]

    tail = segment.Part(np.ones((20, 2), bool), (8, 20, 10, 40))              # 40 pixels: 0.025 Href^2
    assert reading.skip_cost(tail, href) == reading.SKIP_COST
    assert read(tail) == [1]                           # the tail left out: one digit
    half = segment.Part(np.ones((30, 16), bool), (8, 10, 24, 40))             # 480 pixels: 0.3 Href^2
    assert reading.skip_cost(half, href) == pytest.approx(reading.SKIP_COST + reading.SKIP_AREA_COST * (0.3 - reading.SKIP_AREA))
    assert read(half) == [2]                           # read as two digits (the second unsure), not one


def test_a_count_asked_below_what_the_ink_reads_as_is_said():
    """With a count asked, a reading of fewer digits than the ink reads best as says so (a digit may
    have been left out to keep the count); without one, nothing is added."""
    grey = 1.0 - 0.9 * bars(lefts=(20, 60, 100))
    kept = reading.read_image(FixedNet(1), grey, digits=2)
    assert len(kept.digits) == 2 and kept.best_count == 3 and kept.to_json()["best_count"] == 3
    free = reading.read_image(FixedNet(1), grey)
    assert free.best_count is None and "best_count" not in free.to_json() and free.text == "111"


def test_unlikeness():
    digit = -np.ones((1, 10))
    digit[0, 4] = 1.0
    nothing = -np.ones((1, 10))
    two = digit.copy()
    two[0, 7] = 1.0
    u = lambda y: float(reading.unlikeness(y, "mse")[0])
    assert u(digit) == 0.0 and u(nothing) == 2.0 and u(two) == 2.0
    assert reading.unlikeness(np.array([[0.0] * 9 + [100.0]]), "ce")[0] < 1e-12


# --- the reader's training set and command -------------------------------------------------------------

def test_the_reader_set_is_digits_and_not_digits_the_same_bytes_for_a_seed(usps):
    inks, labels = reader_data.source_digits(n_usps=20, n_mnist=30)
    assert len(inks) == 20 * reader_data.USPS_COPIES + 30
    a = reader_data.build(inks, labels, seed=3)
    b = reader_data.build(inks, labels, seed=3, start=40, stop=reader_data.total(len(inks)))
    assert np.array_equal(a.images[40:], b.images) and np.array_equal(a.labels[40:], b.labels)
    assert len(a) == reader_data.total(len(inks)) and (a.labels == reader_data.NONE).sum() == len(a) - len(inks)
    assert a.images.min() == -1.0 and np.isclose(a.images.max(axis=(1, 2, 3)), 1.0).all()
    # a not-digit's targets are all -1: no output should rise
    t = a.targets
    assert (t[a.labels == reader_data.NONE] == -1).all() and (t[a.labels < 10].max(axis=1) == 1).all()
    assert not np.array_equal(reader_data.build(inks, labels, seed=4).images, a.images)


def test_rows_cut_by_the_segmenter_teach_its_whole_digits_and_its_wrong_cuts(usps):
    inks, labels = reader_data.source_digits(n_usps=30, n_mnist=30)
    a = reader_data.build_rows(inks, labels, seed=3, start=0, stop=12)
    b = reader_data.build_rows(inks, labels, seed=3, start=6, stop=12)
    tail = sum(len(reader_data.row_examples(inks, labels, 3, r)[1]) for r in range(6, 12))
    assert len(b) == tail and np.array_equal(a.images[-tail:], b.images)   # a row depends on (seed, row) only
    assert a.images.min() == -1.0 and np.isclose(a.images.max(axis=(1, 2, 3)), 1.0).all()
    assert set(a.labels.tolist()) - set(range(11)) == set()
    # every row yields its cut pieces and merged pairs as not-digits, and most of its digits whole
    assert (a.labels == reader_data.NONE).sum() >= 12 and (a.labels < 10).sum() >= 12
    # every digit taught from a row is one of the row's own digits
    for r in range(12):
        ink, owner, picks = reader_data._row(inks, np.random.default_rng([3, reader_data.ROW_STREAM + r]))
        assert ink.max() == 1.0 and set(np.unique(owner)) <= set(range(-1, len(picks)))
        assert reader_data.ROW_DIGITS[0] <= len(picks) <= reader_data.ROW_DIGITS[1]
        inputs, taught = reader_data.row_examples(inks, labels, 3, r)
        assert set(taught) - {reader_data.NONE} <= {int(labels[i]) for i in picks}


@pytest.fixture(scope="module")
def reader_run(usps, tmp_path_factory):
    out = tmp_path_factory.mktemp("reader") / "reader"
    assert main(["reader", "--usps-digits", "400", "--mnist-digits", "400", "--passes", "2", "--seeds", "0-1",
                 "--quiet", "--out", str(out)]) == 0
    return out


def test_reader_trains_the_papers_network_and_predict_reads_with_its_committee(reader_run, capsys):
    runs = sorted(p.parent for p in reader_run.glob("*/weights.safetensors"))
    assert len(runs) == 2
    config = json.loads((runs[0] / "config.json").read_text())
    assert config["data"]["source"] == "reader" and {k: config["reader"][k] for k in ("usps_digits", "mnist_digits")} == {"usps_digits": 400, "mnist_digits": 400}
    # the paper's network (its table, its 9,760 parameters) with the modern recipe
    assert {k: config["net"][k] for k in ("table", "activation", "loss")} == {"table": "block", "activation": "relu", "loss": "ce"}
    assert config["optimizer"]["name"] == "adamw"
    r = reading.reader(reader_run)
    assert len(r.nets) == 2 and math.isfinite(r.threshold)
    x = np.random.default_rng(0).uniform(-1, 1, (4, 16, 16))
    assert np.allclose(r.outputs(x), (r.nets[0].torch().outputs(x) + r.nets[1].torch().outputs(x)) / 2, atol=1e-15)
    # a test set's worth, the networks read side by side in threads: the same bits as one after the other
    x = np.random.default_rng(1).uniform(-1, 1, (reading.SIDE_BY_SIDE_AT, 16, 16))
    assert np.array_equal(r.outputs(x), np.mean([r.nets[0].read(x), r.nets[1].read(x)], axis=0))
    # one run reads alone, the folder as a committee: both through predict
    grey = 1.0 - 0.9 * bars()
    from PIL import Image
    path = reader_run.parent / "bars.png"
    Image.fromarray(np.round(grey * 255).astype(np.uint8)).save(path)
    for folder in (reader_run, runs[0]):
        assert main(["predict", str(folder), str(path), "--json"]) == 0
        got = json.loads(capsys.readouterr().out)
        assert len(got["images"][0]["digits"]) == 3 and "count_sure" in got["images"][0]


def test_a_study_whose_runs_differ_is_not_a_committee(reader_run, tmp_path):
    import shutil
    mixed = tmp_path / "mixed"
    for k, run in enumerate(sorted(p.parent for p in reader_run.glob("*/weights.safetensors"))):
        shutil.copytree(run, mixed / f"run{k}")
    config = json.loads((mixed / "run1" / "config.json").read_text())
    config["net"]["table"] = "cyclic"
    (mixed / "run1" / "config.json").write_text(json.dumps(config))
    with pytest.raises(Exception, match="differ in their network"):
        reading.reader(mixed)


# --- the benchmark ------------------------------------------------------------------------------------

def test_photo_strips_are_deterministic_jpegs_and_scored_apart(reader_run, tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    for folder in (a, b):
        assert main(["zipcodes", "--out", str(folder), "--n", "6", "--seed", "5", "--photo"]) == 0
    files = sorted(p.name for p in a.iterdir() if p.suffix == ".jpg")
    assert len(files) == 6 and all((a / f).read_bytes() == (b / f).read_bytes() for f in files)
    truth = json.loads((a / "zipcodes.json").read_text())
    assert truth["photo"] is True and all("shadow" in z["photo"] for z in truth["zips"])
    capsys.readouterr()
    assert main(["predict", str(reader_run), "--truth", str(a / "zipcodes.json"), "--json"]) == 0
    scores = json.loads(capsys.readouterr().out)
    n_touching = sum(any(z["touching"]) for z in truth["zips"])
    assert scores["touching"]["zips"] == n_touching and scores["separated"]["zips"] == 6 - n_touching
    assert scores["digits_per_second"] > 0 and scores["network_digits_per_second"] > 0
    # and per strip what was read, so that a wrong one can be looked at
    assert [s["file"] for s in scores["strips"]] == [z["file"] for z in truth["zips"]]
    assert all(set(s) == {"file", "zip", "text", "right", "shown_whole"} for s in scores["strips"])
    assert scores["zip_accuracy"] == sum(s["right"] for s in scores["strips"]) / 6
    assert main(["predict", str(reader_run), "--truth", str(a / "zipcodes.json")]) == 0
    out = capsys.readouterr().out
    assert "separated digits" in out and "a touching pair" in out and "digits a second" in out


def test_plain_strips_keep_their_bytes(usps):
    digits = benchmark.test_digits()
    image, meta = benchmark.make_zip(digits, 0, 0)
    # the strip of seed 0, index 0 as every earlier version made it
    assert hashlib.sha256(image.tobytes()).hexdigest() == \
        "4b83c9ff5ce4133f37588213cd3ba39d24ca2881cb0f162842df7ec0b5305739"
    assert image.shape == (100, 264) and meta["zip"] == "45628" and "photo" not in meta
    photo, pmeta = benchmark.make_zip(digits, 0, 0, photo=True)
    assert photo.shape == (100, 264, 3) and pmeta["zip"] == "45628" and pmeta["polarity"] == "dark-on-light"


# --- what a trial on images of its own found ------------------------------------------------------------

def test_noise_on_shadowed_paper_is_not_ink_and_never_joins_a_digit():
    """A large photo: three bars on paper half in shadow, with noise: the specks the noise leaves on the
    dark half are dropped before they can join a bar and stretch its box (or fill memory with masks)."""
    rng = np.random.default_rng(0)
    ink = bars(shape=(300, 900), lefts=(300, 420, 540), top=120, h=60, w=14)
    y, x = np.mgrid[0:300, 0:900]
    light = np.where(x > 450, 0.5, 1.0)
    grey = np.clip(light * (0.9 - 0.8 * ink) + rng.normal(0, 0.02, ink.shape), 0, 1)
    found, _ = reading.to_ink(grey)
    pieces, groups, href = segment.atoms(found)
    assert [p.box for p in pieces] == [(300, 120, 314, 180), (420, 120, 434, 180), (540, 120, 554, 180)]


def test_a_speck_or_a_blot_alone_is_no_digit(usps):   # usps: the reader's threshold, off its test split
    """A speck of a few pixels alone on the page, the tallest ink there, was read as a sure 1, and a blot
    wider than the window as two (its rims)."""
    r = reading.reader(READER_FOR_CLI)
    speck = np.ones((100, 200))
    speck[50:54, 90:92] = 0.1
    assert reading.read_image(r, speck).digits == []
    for blot in (blotted(np.zeros((120, 200)), 60, 100, 40), blotted(np.zeros((300, 220)), 150, 110, 70, 0.3)):
        assert not any(d.accepted for d in reading.read_image(r, blot).digits)


def test_noise_alone_holds_no_ink(tmp_path, capsys, usps):   # usps: predict reads the threshold off its test split
    from PIL import Image
    grey = np.clip(0.9 + np.random.default_rng(1).normal(0, 0.03, (120, 400)), 0, 1)
    with pytest.raises(Exception, match="holds no ink"):
        reading.to_ink(grey)
    path = tmp_path / "noise.png"
    Image.fromarray(np.round(grey * 255).astype(np.uint8)).save(path)
    assert main(["predict", str(READER_FOR_CLI), str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "holds no ink" in err[0]


READER_FOR_CLI = Path(__file__).resolve().parent.parent / "results" / "reader" / "reader"


def test_predict_takes_images_after_its_options_and_says_a_count_it_could_not_keep(usps, tmp_path, capsys):
    from PIL import Image
    grey = 1.0 - 0.9 * bars(shape=(60, 400), lefts=(20, 80, 140, 200, 260, 320))   # six strokes far apart
    for name in ("a.png", "b.png"):
        Image.fromarray(np.round(grey * 255).astype(np.uint8)).save(tmp_path / name)
    assert main(["predict", str(READER_FOR_CLI), "--digits", "5", str(tmp_path / "a.png"), str(tmp_path / "b.png")]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith(str(tmp_path))]
    assert len(lines) == 2 and all("6 digits where 5 were asked" in line for line in lines)
    Image.fromarray(np.round((1.0 - 0.9 * bars()) * 255).astype(np.uint8)).save(tmp_path / "three.png")
    assert main(["predict", str(READER_FOR_CLI), "--digits", "2", str(tmp_path / "three.png")]) == 0
    assert "without --digits it reads best as 3 digits" in capsys.readouterr().out
    with pytest.raises(SystemExit):   # an unknown option is still refused, as argparse refuses it
        main(["predict", str(READER_FOR_CLI), "--digits", "5", str(tmp_path / "a.png"), "--bogus"])
    assert "unrecognized arguments" in capsys.readouterr().err
    # an image given as the truth file is named as such, in one line
    assert main(["predict", str(READER_FOR_CLI), "--truth", str(tmp_path / "a.png")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is not a zipcodes.json" in err[0]
    # a truth file that is not there, or that lists no strips, says so and what to give
    (tmp_path / "none.json").write_text('{"zips": []}')
    for name, said in (("lost.json", "no such file; give the zipcodes.json"), ("none.json", "lists no strips")):
        assert main(["predict", str(READER_FOR_CLI), "--truth", str(tmp_path / name)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and said in err[0], err


def two_stroke_digit() -> np.ndarray:
    """Three bars 40 tall, then a digit of two strokes 18 tall (a 5 written in two), sharing no column
    with the bars: both strokes are left out as marks beside the digits (step 4)."""
    ink = bars((60, 220))
    ink[10:28, 150:160] = ink[32:50, 165:175] = 1.0
    return ink


def test_zip_codes_written_on_a_line_or_crossed_by_one_read_as_without_it(usps):   # usps: the threshold
    """Ten strips of separated test digits (benchmark seed 7), a ruled line drawn under them touching
    their feet, then through their middles: the reader reads them as it reads them bare (the reader of
    before step 3's rules read none of those on a line right, and one crossed by it)."""
    r = reading.reader(READER_FOR_CLI)
    digits = benchmark.test_digits()
    right = {"bare": 0, "on a line": 0, "crossed": 0}
    strips = (benchmark.make_zip(digits, 7, i) for i in range(40))
    for image, meta in [s for s in strips if not any(s[1]["touching"])][:10]:
        grey = image.astype(np.float64) / 255
        rows = np.flatnonzero((reading.to_ink(grey)[0] >= 0.5).any(axis=1))
        t = max(2, (rows[-1] - rows[0]) // 12)   # a pen a little thinner than the digits'
        light_ink = grey.mean() < 0.5
        for case, y in (("bare", None), ("on a line", rows[-1] - t // 2), ("crossed", (rows[0] + rows[-1]) // 2)):
            lined = grey.copy()
            if y is not None:
                lined[y:y + t] = 1 - (1 - lined[y:y + t]) * 0.1 if light_ink else lined[y:y + t] * 0.1
            right[case] += "".join(str(d.label) for d in reading.read_image(r, lined).digits) == meta["zip"]
    assert right["bare"] >= 9 and right["on a line"] >= right["bare"] - 1 and right["crossed"] >= right["bare"] - 2, right


def test_a_digit_left_out_as_marks_makes_the_count_unsure(usps):   # usps: the reader's threshold
    """A 5 of two short strokes was left out as two marks, and the zip code shown sure without it (the
    second fresh-clone trial). Marks that large now make the count unsure; a dot, a hyphen or a line
    under the digits does not."""
    ink = two_stroke_digit()
    pieces, _, _, marks = segment.row(ink)
    assert len(pieces) == 3 and [m.box for m in marks] == [(150, 10, 160, 28), (165, 32, 175, 50)]
    r = reading.reader(READER_FOR_CLI)
    unsure = reading.read_image(r, 1.0 - 0.9 * ink)
    assert not unsure.count_sure and unsure.text.startswith("?") and len(unsure.digits) == 3
    for y, x in ((np.s_[44:50], np.s_[150:156]),     # a dot: 36 pixels, under a tenth of a bar's
                 (np.s_[28:31], np.s_[140:170]),     # a hyphen (a ZIP+4's): as many pixels as a fifth, but flat
                 (np.s_[54:56], np.s_[15:115])):     # a line under the digits
        marked = bars((60, 220))
        marked[y, x] = 1.0
        assert reading.read_image(r, 1.0 - 0.9 * marked).count_sure


def test_a_stroke_lower_than_the_rows_digits_is_never_shown_sure(usps, capsys):   # usps: the threshold
    """A stray stroke beside a row of digits, shorter than them, scaled to 16x16 reads as a sure 1 (the
    fresh-clone trial's ticks): it is read, and shown as '?'."""
    ink = bars((60, 260), lefts=(20, 60, 100, 140))
    ink[25:45, 200:208] = 1.0                                   # half a digit's height, in the row
    reading_ = reading.read_image(reading.reader(READER_FOR_CLI), 1.0 - 0.9 * ink)
    assert [d.box for d in reading_.digits][-1] == (200, 25, 208, 45)
    assert [d.short for d in reading_.digits] == [False] * 4 + [True] and not reading_.digits[-1].accepted
    assert reading_.text.endswith("?")
