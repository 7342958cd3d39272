// The page's copy of reading/images.py (`lecun1989 predict`): the same steps, numbered as in its
// module docstring, in the same float64 arithmetic, so that a drawn row of digits is cut and
// normalized as predict cuts and normalizes an image file (tests/test_demo.py checks both).
(function (api) {
  "use strict";
  const SIZE = 16, MASK_LEVEL = 0.25, MAX_SLANT = 1.0, MIN_SLANT = 1e-9;
  const CUT_RATIO = 0.75, CUTS_PER_HEIGHT = 3, WIDEST_PIECE = 0.6, PAIR_WIDTH = 1.2, FINE_PIECE = 0.18, MIN_PIECE = 0.15, MAX_WIDTH = 1.5, JOIN_GAP = 0.3;
  const THIN = 0.9, LONGEST_RUN = 8, WIDEST_MARK = 1.2, EDGE_TALL = 1.5, RULE = 2.5, TILTS = [0, 1, -1, 2, -2, 3, -3, 4, -4], TILT_RUN = 60;
  const BAND = 0.12, DRIFT = 0.02, FAINT = 0.75, SPECK = 0.05, MIN_CONTRAST = 0.3, BLOT_EDGE = 0.3;
  const DIGIT_COST = { mse: 0.1, ce: -0.1 }, JOIN_COST = 0.5, CUT_COST = 0.5, WIDEST_DIGIT = 1.0, WIDE_COST = 2.0, COUNT_MARGIN = 1.0;
  const SKIP_COST = 1.0, SKIP_AREA = 0.03, SKIP_AREA_COST = 4.0, LEFT_OUT = 0.2, LOWEST_DIGIT = 0.5, SMALLEST_DIGIT = 8, SURE_HEIGHT = 0.7, MAX_UNLIKENESS = { mse: 0.1, ce: 0.05 };

  function median(values) {   // numpy's: the mean of the two middle values for an even count
    const s = Float64Array.from(values).sort(), n = s.length;
    return n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
  }

  // 1. RGBA bytes -> grey in [0, 1], alpha composited over white
  function greyOfRGBA(rgba, w, h) {
    const grey = new Float64Array(w * h);
    for (let i = 0; i < w * h; i++) {
      const r = rgba[4 * i] / 255, g = rgba[4 * i + 1] / 255, b = rgba[4 * i + 2] / 255, a = rgba[4 * i + 3] / 255;
      grey[i] = a * (0.299 * r + 0.587 * g + 0.114 * b) + (1 - a);
    }
    return grey;
  }

  // 2. the paper estimated locally: a grey closing (under dark ink) and opening (under light ink) over
  // W x W squares clipped to the image; the paper is the smoother of the two
  function slide(src, w, h, size, isMax, alongRows) {   // the max (min) over a window of `size`, clipped
    const out = new Float64Array(w * h), r = (size - 1) / 2, n = alongRows ? w : h, lines = alongRows ? h : w;
    const at = (line, i) => alongRows ? line * w + i : i * w + line;
    const better = isMax ? (a, b) => a >= b : (a, b) => a <= b;
    const queue = new Int32Array(n);
    for (let line = 0; line < lines; line++) {
      let head = 0, tail = 0, next = 0;
      for (let i = 0; i < n; i++) {
        const hi = Math.min(n - 1, i + r);
        for (; next <= hi; next++) {
          const v = src[at(line, next)];
          while (tail > head && better(v, src[at(line, queue[tail - 1])])) tail--;
          queue[tail++] = next;
        }
        while (queue[head] < i - r) head++;
        out[at(line, i)] = src[at(line, queue[head])];
      }
    }
    return out;
  }
  function filter2(src, w, h, size, isMax) { return slide(slide(src, w, h, size, isMax, true), w, h, size, isMax, false); }
  function toInk(grey, w, h) {
    const size = 2 * Math.floor(Math.min(w, h) / 8) + 1;
    const bright = filter2(filter2(grey, w, h, size, true), w, h, size, false);
    const dark = filter2(filter2(grey, w, h, size, false), w, h, size, true);
    const variation = a => {   // the sum of |differences| along the rows, then along the columns
      let v = 0;
      for (let y = 0; y < h; y++) for (let x = 0; x + 1 < w; x++) v += Math.abs(a[y * w + x + 1] - a[y * w + x]);
      for (let y = 0; y + 1 < h; y++) for (let x = 0; x < w; x++) v += Math.abs(a[(y + 1) * w + x] - a[y * w + x]);
      return v;
    };
    // light ink needs dark paper: where the paper under it would be light, the ink is dark
    const darkInk = variation(bright) <= variation(dark) || median(dark) >= 0.5, ink = new Float64Array(w * h);
    const light = darkInk ? grey : grey.map(g => 1 - g);
    let top = 0;
    for (let i = 0; i < w * h; i++) {
      let v = darkInk ? (bright[i] > 0 ? (bright[i] - grey[i]) / bright[i] : 0) : (dark[i] < 1 ? (grey[i] - dark[i]) / (1 - dark[i]) : 0);
      ink[i] = Math.min(1, Math.max(0, v));
      top = Math.max(top, ink[i]);
    }
    if (top > 0) top = withoutBlotEdges(ink, light, w, h, top);
    if (top <= 0) return borderInk(grey, w, h);   // no feature narrower than the window
    if (top < MIN_CONTRAST) return null;           // noise on a blank page
    for (let i = 0; i < w * h; i++) ink[i] /= top;
    return { ink, polarity: darkInk ? "dark-on-light" : "light-on-dark" };
  }
  // the rims of dark areas wider than the window (a blot, a filled shape), which it takes for paper but at
  // their edges: a mark bordering, along BLOT_EDGE of its outline or more, on pixels that are not ink yet
  // no lighter than the ink beside them is zeroed in place; the strongest ink left is returned
  function withoutBlotEdges(ink, light, w, h, top) {
    const mask = new Uint8Array(w * h);
    for (let i = 0; i < w * h; i++) mask[i] = ink[i] >= MASK_LEVEL * top ? 1 : 0;
    const marks = components(mask, w, h), label = new Int32Array(w * h);
    marks.forEach((m, k) => { for (let i = 0; i < w * h; i++) if (m[i]) label[i] = k + 1; });
    const outline = new Int32Array(marks.length + 1), dark = new Int32Array(marks.length + 1);
    for (let y = 0; y < h; y++)
      for (let x = 0; x < w; x++) {
        if (mask[y * w + x]) continue;
        let beside = -Infinity;
        const seen = new Set();
        for (let yy = Math.max(0, y - 1); yy <= Math.min(h - 1, y + 1); yy++)
          for (let xx = Math.max(0, x - 1); xx <= Math.min(w - 1, x + 1); xx++)
            if (mask[yy * w + xx]) { beside = Math.max(beside, light[yy * w + xx]); seen.add(label[yy * w + xx]); }
        for (const k of seen) { outline[k]++; if (light[y * w + x] <= beside) dark[k]++; }
      }
    let left = 0, kept = 0;
    for (let k = 1; k <= marks.length; k++) if (dark[k] < BLOT_EDGE * outline[k]) kept++;
    for (let i = 0; i < w * h; i++) {
      // nothing but rims (strokes as wide as the window, a blot alone): no ink, so one paper level reads it
      if (!kept || (label[i] && dark[label[i]] >= BLOT_EDGE * outline[label[i]])) ink[i] = 0;
      left = Math.max(left, ink[i]);
    }
    return left;
  }
  // one paper level, the median of the border pixels
  function borderInk(grey, w, h) {
    let border = [];
    if (Math.min(w, h) > 1) {
      for (let x = 0; x < w; x++) border.push(grey[x]);
      for (let x = 0; x < w; x++) border.push(grey[(h - 1) * w + x]);
      for (let y = 1; y < h - 1; y++) border.push(grey[y * w]);
      for (let y = 1; y < h - 1; y++) border.push(grey[y * w + w - 1]);
    } else border = Array.from(grey);
    const paper = median(border), dark = paper >= 0.5, p = dark ? 1 - paper : paper;
    if (p >= 1) return null;
    const ink = new Float64Array(w * h);
    let top = 0;
    for (let i = 0; i < w * h; i++) {
      ink[i] = Math.min(1, Math.max(0, ((dark ? 1 - grey[i] : grey[i]) - p) / (1 - p)));
      top = Math.max(top, ink[i]);
    }
    if (top < MIN_CONTRAST) return null;
    for (let i = 0; i < w * h; i++) ink[i] /= top;
    return { ink, polarity: dark ? "dark-on-light" : "light-on-dark" };
  }

  // 3. 8-connected components of the mask, labelled in the order of their first run, row by row
  function components(mask, w, h) {
    const runs = [], rowRuns = [];
    for (let r = 0; r < h; r++) {
      const first = runs.length;
      let x = 0;
      while (x < w) {
        if (!mask[r * w + x]) { x++; continue; }
        const a = x;
        while (x < w && mask[r * w + x]) x++;
        runs.push([r, a, x]);
      }
      rowRuns.push([first, runs.length]);
    }
    const parent = runs.map((_, i) => i);
    const find = a => { while (parent[a] !== a) { parent[a] = parent[parent[a]]; a = parent[a]; } return a; };
    for (let r = 1; r < h; r++) {
      const [b0, b1] = rowRuns[r - 1];
      for (let i = rowRuns[r][0]; i < rowRuns[r][1]; i++) {
        const [, a, b] = runs[i];
        for (let j = b0; j < b1; j++) {
          const [, c, d] = runs[j];
          if (c <= b && a <= d) {
            const ri = find(i), rj = find(j);
            if (ri !== rj) parent[Math.max(ri, rj)] = Math.min(ri, rj);
          }
        }
      }
    }
    const ids = new Map(), masks = [];
    runs.forEach(([r, a, b], i) => {
      const root = find(i);
      if (!ids.has(root)) { ids.set(root, masks.length); masks.push(new Uint8Array(w * h)); }
      masks[ids.get(root)].fill(1, r * w + a, r * w + b);
    });
    return masks;
  }

  // 3. ruled lines out of the mask (segment.without_rules): of the mask sheared by each tilt, the one whose
  // longest run held by three rows running (rows joined with their neighbours) is the most RULE heights,
  // while one is a rule's
  function withoutRules(mask, w, h) {   // within the box of the ink, a row more above and below
    let r0 = h, r1 = -1, c0 = w, c1 = -1;
    for (let y = 0; y < h; y++)
      for (let x = 0; x < w; x++)
        if (mask[y * w + x]) { r0 = Math.min(r0, y); r1 = Math.max(r1, y); c0 = Math.min(c0, x); c1 = Math.max(c1, x); }
    if (r1 < 0) return mask;
    const top = Math.max(0, r0 - 1), bh = Math.min(h, r1 + 2) - top, bw = c1 + 1 - c0;
    let out = new Uint8Array(bw * bh);
    for (let y = 0; y < bh; y++) for (let x = 0; x < bw; x++) out[y * bw + x] = mask[(top + y) * w + c0 + x];
    for (;;) {
      let best = null;
      for (const k of TILTS) {   // ties: the first
        const [s, sh] = shear(out, bw, bh, k), score = rowRuns(s, bw, sh).score;
        if (!best || score > best.score) best = { score, k };
      }
      if (best.score < 1) break;
      const [s, sh, down] = shear(out, bw, bh, best.k), level = levelRules(s, bw, sh), cleaned = new Uint8Array(bw * bh);
      for (let y = 0; y < bh; y++) for (let x = 0; x < bw; x++) cleaned[y * bw + x] = level[(y + down[x]) * bw + x];
      if (cleaned.every((v, i) => v === out[i])) break;   // every pixel of it where strokes cross
      out = cleaned;
    }
    const whole = Uint8Array.from(mask);
    for (let y = 0; y < bh; y++) for (let x = 0; x < bw; x++) whole[(top + y) * w + c0 + x] = out[y * bw + x];
    return whole;
  }

  function shear(mask, w, h, k) {   // segment._shear: [the mask sheared, its height, each column's move down]
    const down = new Int32Array(w);
    for (let x = 0; x < w; x++) down[x] = Math.floor((x * k + TILT_RUN / 2) / TILT_RUN);
    let lo = Infinity, hi = -Infinity;
    for (const d of down) { lo = Math.min(lo, d); hi = Math.max(hi, d); }
    const sh = h + hi - lo, out = new Uint8Array(sh * w);
    for (let x = 0; x < w; x++) down[x] -= lo;
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) out[(y + down[x]) * w + x] = mask[y * w + x];
    return [out, sh, down];
  }

  function rowRuns(mask, w, h) {   // segment._runs: the runs of rows joined with their neighbours
    const runs = [], longest = new Float64Array(h);
    let first = -1, last = -1;
    const at = (y, x) => mask[y * w + x] || (y > 0 && mask[(y - 1) * w + x]) || (y + 1 < h && mask[(y + 1) * w + x]);
    for (let y = 0; y < h; y++) {
      let x = 0;
      while (x < w) {
        if (!at(y, x)) { x++; continue; }
        const a = x;
        while (x < w && at(y, x)) x++;
        runs.push([y, a, x]);
        longest[y] = Math.max(longest[y], x - a);
      }
      if (longest[y] > 0) { if (first < 0) first = y; last = y; }
    }
    // a line, joined with the rows beside it, is as long in three rows running (strokes that line up, in one or two)
    const steady = new Float64Array(h);
    let held = 0;
    for (let y = 1; y + 1 < h; y++) {
      steady[y] = Math.min(longest[y - 1], longest[y], longest[y + 1]);
      held = Math.max(held, steady[y]);
    }
    const rule = first < 0 ? Infinity : RULE * (last + 1 - first);
    return { runs, longest, steady, rule, score: held / rule };
  }

  function levelRules(mask, w, h) {   // segment._level_rules
    const { runs, longest, steady, rule } = rowRuns(mask, w, h), out = Uint8Array.from(mask);
    const within = (y, reach) => {   // per column: set somewhere in x - reach .. x, and in x .. x + reach
      const n = new Int32Array(w + 1), left = new Uint8Array(w), right = new Uint8Array(w);
      for (let x = 0; x < w; x++) n[x + 1] = n[x] + mask[y * w + x];
      for (let x = 0; x < w; x++) {
        left[x] = n[x + 1] - n[Math.max(0, x - reach)] > 0 ? 1 : 0;
        right[x] = n[Math.min(w, x + reach + 1)] - n[x] > 0 ? 1 : 0;
      }
      return [left, right];
    };
    let y = 0;
    while (y < h) {
      if (steady[y] < rule) { y++; continue; }
      let y0 = y, y1 = y;
      while (y0 > 0 && longest[y0 - 1] >= rule / 2) y0--;
      while (y1 + 1 < h && longest[y1 + 1] >= rule / 2) y1++;
      const crossing = new Uint8Array(w), covered = new Uint8Array(w);
      if (0 < y0 && y1 + 1 < h) {
        const reach = y1 + 2 - y0, [al, ar] = within(y0 - 1, reach), [bl, br] = within(y1 + 1, reach);
        for (let x = 0; x < w; x++) crossing[x] = (al[x] && br[x]) || (ar[x] && bl[x]) ? 1 : 0;
      }
      for (const [ry, a, b] of runs) if (ry >= y0 && ry <= y1 && b - a >= rule / 2) covered.fill(1, a, b);
      for (let r = y0; r <= y1; r++) for (let x = 0; x < w; x++) if (covered[x] && !crossing[x]) out[r * w + x] = 0;
      y = y1 + 1;
    }
    return out;
  }

  function part(mask, w, h) {   // a mask and its box [x0, y0, x1, y1), or null when empty
    let x0 = w, y0 = h, x1 = -1, y1 = -1, n = 0;
    for (let y = 0; y < h; y++)
      for (let x = 0; x < w; x++)
        if (mask[y * w + x]) { n++; if (x < x0) x0 = x; if (x > x1) x1 = x; if (y < y0) y0 = y; if (y > y1) y1 = y; }
    if (!n) return null;
    return { mask, box: [x0, y0, x1 + 1, y1 + 1], width: x1 + 1 - x0, height: y1 + 1 - y0, pixels: n };
  }

  // 5. the columns a part may be cut at: its columns of least ink, then the widest piece's, until none is too wide
  function cutColumns(p, ink, w, height) {
    const [x0, y0, x1, y1] = p.box, pw = x1 - x0;
    if (pw < 4 || pw <= CUT_RATIO * height || pw > LONGEST_RUN * (y1 - y0)) return [];
    const col = new Float64Array(pw);
    for (let y = y0; y < y1; y++)
      for (let k = 0; k < pw; k++) col[k] += p.mask[y * w + x0 + k] ? ink[y * w + x0 + k] : 0;
    let top = 0;
    for (const v of col) if (v > top) top = v;
    const thin = THIN * top;
    const lexLess = (a, b) => { for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i] < b[i]; return false; };
    const keyOf = (k, mid2) => [col[k], Math.abs(2 * k - mid2), k];
    const edge = Math.max(1, Math.ceil(MIN_PIECE * height)), minima = [];
    for (let k = edge; k < pw - edge; k++) if (col[k] <= col[k - 1] && col[k] < col[k + 1] && col[k] <= thin) minima.push(k);
    minima.sort((a, b) => lexLess(keyOf(a, pw - 1), keyOf(b, pw - 1)) ? -1 : lexLess(keyOf(b, pw - 1), keyOf(a, pw - 1)) ? 1 : 0);
    const picked = [], most = Math.max(2, Math.floor(CUTS_PER_HEIGHT * pw / height + 0.5));
    for (const k of minima)
      if (picked.length < most && picked.every(q => Math.abs(k - q) >= MIN_PIECE * height)) picked.push(k);
    const widest = pw >= PAIR_WIDTH * height ? FINE_PIECE : WIDEST_PIECE;
    const whole = new Set();   // pieces with no column thin enough to cut
    for (;;) {
      const edges = [0, ...picked.slice().sort((a, b) => a - b), pw];
      let a = 0, b = 0, found = false;
      for (let i = 0; i + 1 < edges.length; i++)
        if (!whole.has(edges[i] + "," + edges[i + 1]) && (!found || edges[i + 1] - edges[i] > b - a)) {
          a = edges[i]; b = edges[i + 1]; found = true;
        }
      if (!found || b - a <= widest * height || b - a < 4) return picked.sort((u, v) => u - v).map(k => x0 + k);
      let best = -1;
      for (let k = a + Math.floor((b - a) / 4); k < b - Math.floor((b - a) / 4); k++)
        if (best < 0 || lexLess(keyOf(k, a + b - 1), keyOf(best, a + b - 1))) best = k;
      if (col[best] <= thin) picked.push(best); else whole.add(a + "," + b);
    }
  }

  // 5. the cut through a part near column c: per image row, the first column right of the cut; within the
  // part's rows the path crossing the least ink, one column a row at most (DRIFT a move), near c
  function cutPath(p, ink, w, h, c, height) {
    const [x0, y0, x1, y1] = p.box, band = Math.max(1, Math.ceil(BAND * height));
    const lo = Math.max(x0 + 1, c - band), hi = Math.min(x1 - 1, c + band), n = hi + 1 - lo, rows = y1 - y0;
    const cost = (y, k) => { const i = (y0 + y) * w + lo + k; return p.mask[i] ? ink[i] : 0; };
    let total = new Float64Array(n);
    for (let k = 0; k < n; k++) total[k] = cost(0, k);
    const back = new Int32Array(rows * n);
    for (let y = 1; y < rows; y++) {
      const next = new Float64Array(n);
      for (let k = 0; k < n; k++) {   // straight first, then from the left, then from the right
        let best = total[k], from = k;
        if (k > 0 && total[k - 1] + DRIFT < best) { best = total[k - 1] + DRIFT; from = k - 1; }
        if (k + 1 < n && total[k + 1] + DRIFT < best) { best = total[k + 1] + DRIFT; from = k + 1; }
        next[k] = best + cost(y, k);
        back[y * n + k] = from;
      }
      total = next;
    }
    let x = 0;
    for (let k = 1; k < n; k++) {
      const a = [total[k], Math.abs(lo + k - c), k], b = [total[x], Math.abs(lo + x - c), x];
      if (a[0] < b[0] || (a[0] === b[0] && a[1] < b[1])) x = k;
    }
    const path = new Int32Array(h).fill(c);
    for (let y = rows - 1; y >= 0; y--) { path[y0 + y] = lo + x; x = back[y * n + x]; }
    return path;
  }

  // 3-5. the row's atoms left to right, the group of each, and Href; a component beside the groups is dropped
  function atoms(ink, w, h) {
    const mask = new Uint8Array(w * h);
    for (let i = 0; i < w * h; i++) mask[i] = ink[i] >= MASK_LEVEL ? 1 : 0;
    const all = components(withoutRules(mask, w, h), w, h).map(m => part(m, w, h));
    const inside = c => c.box[0] > 0 && c.box[1] > 0 && c.box[2] < w && c.box[3] < h;
    let comps = all.filter(c => {
      if (inside(c)) return true;
      let top = 0;   // a faint piece at the image's edge is the corner of a shadow, not ink
      for (let i = 0; i < w * h; i++) if (c.mask[i] && ink[i] > top) top = ink[i];
      return top >= FAINT;
    });
    // ink along the image's edge far taller than any away from it: a card's edge, a border, a dark shadow
    const tallest = Math.max(0, ...comps.filter(inside).map(c => c.height));
    const edge = comps.filter(c => tallest && !inside(c) && c.height > EDGE_TALL * tallest);
    comps = comps.filter(c => !edge.includes(c));
    const biggest = Math.max(0, ...comps.map(c => c.pixels));   // then specks, against the largest left
    comps = comps.filter(c => c.pixels >= SPECK * biggest);
    if (!comps.length) return { pieces: [], groupOf: [], href: 0, marks: [] };
    const hmax = Math.max(...comps.map(c => c.height));
    const byBox = (a, b) => a.box[0] - b.box[0] || a.box[1] - b.box[1];
    const starts = comps.filter(c => 2 * c.height >= hmax).sort(byBox);   // Array.sort is stable
    // what is left out may hold a digit (the pixels of each): the edge's tall ink, then marks beside the digits
    const groups = starts.map(c => Uint8Array.from(c.mask)), marks = edge.map(c => c.pixels);
    for (const c of comps) {
      if (2 * c.height >= hmax) continue;
      const shared = starts.map(s => Math.max(0, Math.min(c.box[2], s.box[2]) - Math.max(c.box[0], s.box[0])));
      let best = 0;
      shared.forEach((v, i) => { if (v > shared[best]) best = i; });
      // a mark wider than WIDEST_MARK digit heights is a line under or through the row: never a digit's
      if (shared[best] > 0 && c.width <= WIDEST_MARK * hmax) { for (let i = 0; i < w * h; i++) if (c.mask[i]) groups[best][i] = 1; }
      else if (c.width <= WIDEST_MARK * hmax && 4 * c.height >= hmax) marks.push(c.pixels);   // may be a digit's piece
    }
    const parts = groups.map(m => part(m, w, h)).sort(byBox);
    const href = median(parts.map(p => p.height)), pieces = [], groupOf = [];
    parts.forEach((p, g) => {
      const edges = [new Int32Array(h), ...cutColumns(p, ink, w, href).map(c => cutPath(p, ink, w, h, c, href)),
                     new Int32Array(h).fill(w)];
      for (let e = 1; e < edges.length; e++)   // cuts never cross
        for (let y = 0; y < h; y++) edges[e][y] = Math.max(edges[e][y], edges[e - 1][y]);
      for (let e = 0; e + 1 < edges.length; e++) {
        const m = new Uint8Array(w * h);
        for (let y = 0; y < h; y++)
          for (let x = edges[e][y]; x < edges[e + 1][y]; x++) m[y * w + x] = p.mask[y * w + x];
        const q = part(m, w, h);
        if (q) { pieces.push(q); groupOf.push(g); }
      }
    });
    return { pieces, groupOf, href, marks };
  }

  // 5. the candidate digits: runs [i, j) of atoms, in order of j, then i
  function spans(pieces, groupOf, href) {
    const out = [];
    for (let i = 0; i < pieces.length; i++) {
      let x0 = pieces[i].box[0], x1 = pieces[i].box[2];
      for (let j = i; j < pieces.length; j++) {
        x0 = Math.min(x0, pieces[j].box[0]); x1 = Math.max(x1, pieces[j].box[2]);
        if (j > i && groupOf[j] !== groupOf[j - 1] &&
            (groupOf[j] - groupOf[i] > 1 || pieces[j].box[0] - pieces[j - 1].box[2] > JOIN_GAP * href)) break;
        if (j === i || x1 - x0 <= MAX_WIDTH * href) out.push([i, j + 1]);
      }
    }
    // every whole group too, however wide (a digit with a long tail, or slanted)
    for (const g of new Set(groupOf)) {
      const i = groupOf.indexOf(g), j = groupOf.lastIndexOf(g) + 1;
      if (!out.some(([a, b]) => a === i && b === j)) out.push([i, j]);
    }
    return out.sort((a, b) => a[1] - b[1] || a[0] - b[0]);
  }

  // 7. for every count k of digits, the cheapest reading of all atoms as k candidates, atom a left out at skip[a]
  function bestPaths(n, candidates, cost, skip) {
    const best = [], back = [];
    for (let j = 0; j <= n; j++) { best.push(new Array(n + 1).fill(Infinity)); back.push(new Array(n + 1).fill(null)); }
    best[0][0] = 0;
    const ending = [];
    for (let j = 0; j <= n; j++) ending.push([]);
    candidates.forEach(([i, j], c) => ending[j].push([i, cost[c]]));
    for (let j = 1; j <= n; j++) {
      for (let k = 0; k < j; k++)
        if (best[j - 1][k] + skip[j - 1] < best[j][k]) { best[j][k] = best[j - 1][k] + skip[j - 1]; back[j][k] = -1; }
      for (const [i, c] of ending[j].sort((a, b) => a[0] - b[0]))
        for (let k = 1; k <= j; k++)
          if (best[i][k - 1] + c < best[j][k]) { best[j][k] = best[i][k - 1] + c; back[j][k] = i; }
    }
    const out = [];
    for (let k = 0; k <= n; k++) {
      if (best[n][k] === Infinity) { out.push(null); continue; }
      const path = [];
      for (let j = n, kk = k; j > 0;) {
        const i = back[j][kk];
        if (i === -1) { j--; continue; }
        path.push([i, j]); j = i; kk--;
      }
      out.push({ cost: best[n][k], path: path.reverse() });
    }
    return out;
  }

  function unlikeness(y, loss) {
    let top = -Infinity;
    for (const v of y) top = Math.max(top, v);
    let s = 0;
    if (loss === "ce") { for (const v of y) s += Math.exp(v - top); return Math.log(s); }
    for (const v of y) s += (v + 1) ** 2;
    return Math.max(0, (s - 4 * top) / 2);
  }

  // 6. one digit's ink (rows x cols, row-major) -> the network's 16x16 input
  function crop(v, h, w) {
    let x0 = w, y0 = h, x1 = -1, y1 = -1;
    for (let y = 0; y < h; y++)
      for (let x = 0; x < w; x++)
        if (v[y * w + x] > 0) { if (x < x0) x0 = x; if (x > x1) x1 = x; if (y < y0) y0 = y; if (y > y1) y1 = y; }
    const ch = y1 + 1 - y0, cw = x1 + 1 - x0, out = new Float64Array(ch * cw);
    for (let y = 0; y < ch; y++) for (let x = 0; x < cw; x++) out[y * cw + x] = v[(y + y0) * w + x + x0];
    return { v: out, h: ch, w: cw };
  }
  function slant(v, h, w) {
    let m = 0, sx = 0, sy = 0;
    for (let i = 0; i < h; i++) for (let j = 0; j < w; j++) { const a = v[i * w + j]; m += a; sx += a * (j + 0.5); sy += a * (i + 0.5); }
    const cx = sx / m, cy = sy / m;
    let vyy = 0, vxy = 0;
    for (let i = 0; i < h; i++)
      for (let j = 0; j < w; j++) { const a = v[i * w + j]; vyy += a * (i + 0.5 - cy) ** 2; vxy += a * (j + 0.5 - cx) * (i + 0.5 - cy); }
    if (vyy <= 0 || Math.abs(vxy / vyy) < MIN_SLANT) return { s: 0, cy };
    return { s: Math.min(MAX_SLANT, Math.max(-MAX_SLANT, vxy / vyy)), cy };
  }
  function deslant(c) {
    const { v, h, w } = c, { s, cy } = slant(v, h, w);
    if (s === 0) return c;
    const pad = Math.ceil(Math.abs(s) * h), W = w + 2 * pad, out = new Float64Array(h * W);
    const at = (i, k) => (k >= 0 && k < w) ? v[i * w + k] : 0;
    for (let i = 0; i < h; i++)
      for (let j = 0; j < W; j++) {
        const t = j + 0.5 - pad + s * (i + 0.5 - cy) - 0.5, k = Math.floor(t), f = t - k;
        out[i * W + j] = (1 - f) * at(i, k) + f * at(i, k + 1);
      }
    return crop(out, h, W);
  }
  function areaWeights(n, scale, offset) {   // (SIZE, n): the overlap of input cell k with output cell r
    const a = new Float64Array(SIZE * n);
    for (let r = 0; r < SIZE; r++)
      for (let k = 0; k < n; k++) {
        const lo = offset + k * scale;
        a[r * n + k] = Math.max(0, Math.min(lo + scale, r + 1) - Math.max(lo, r));
      }
    return a;
  }
  function normalize(v, h, w, deslant_ = true) {
    let c = crop(v, h, w);
    if (deslant_) c = deslant(c);
    const scale = SIZE / Math.max(c.h, c.w);
    const ay = areaWeights(c.h, scale, (SIZE - c.h * scale) / 2), ax = areaWeights(c.w, scale, (SIZE - c.w * scale) / 2);
    const tmp = new Float64Array(SIZE * c.w), out = new Float64Array(SIZE * SIZE);
    for (let r = 0; r < SIZE; r++)          // Ay @ v
      for (let k = 0; k < c.h; k++) {
        const a = ay[r * c.h + k];
        if (a) for (let j = 0; j < c.w; j++) tmp[r * c.w + j] += a * c.v[k * c.w + j];
      }
    let top = 0;
    for (let r = 0; r < SIZE; r++)          // (Ay @ v) @ Ax^T
      for (let q = 0; q < SIZE; q++) {
        let s = 0;
        for (let j = 0; j < c.w; j++) s += tmp[r * c.w + j] * ax[q * c.w + j];
        out[r * SIZE + q] = s;
        top = Math.max(top, s);
      }
    for (let i = 0; i < out.length; i++) out[i] = 2 * out[i] / top - 1;
    return out;
  }

  // 6-7. read a grey image (w x h, row-major, 1 = white): the cheapest reading through the candidates, its
  // count not known (the page's drawing has any number of digits)
  function readGrey(grey, w, h) {
    const found = toInk(grey, w, h);
    if (!found) return { text: "", countSure: true, digits: [] };
    const { ink } = found, { pieces, groupOf, href, marks } = atoms(ink, w, h);
    // a candidate lower than LOWEST_DIGIT Href or SMALLEST_DIGIT pixels is never a digit: neither normalized nor read
    const candidates = [], read = [];
    for (const [i, j] of spans(pieces, groupOf, href)) {
      const m = new Uint8Array(w * h);
      for (let a = i; a < j; a++) for (let q = 0; q < w * h; q++) if (pieces[a].mask[q]) m[q] = 1;
      const p = part(m, w, h), [x0, y0, x1, y1] = p.box, pw = x1 - x0, ph = y1 - y0;
      if (ph < Math.max(LOWEST_DIGIT * href, SMALLEST_DIGIT)) continue;
      const v = new Float64Array(pw * ph);
      for (let y = 0; y < ph; y++)
        for (let x = 0; x < pw; x++) { const q = (y + y0) * w + x + x0; v[y * pw + x] = m[q] ? ink[q] : 0; }
      const input = normalize(v, ph, pw), layers = api.forward(input);
      candidates.push([i, j]);
      read.push({ box: p.box, input, layers });
    }
    const cost = candidates.map(([i, j], c) => DIGIT_COST[api.loss] + unlikeness(read[c].layers.out, api.loss) +
      CUT_COST * (i > 0 && groupOf[i - 1] === groupOf[i] ? 1 : 0) + JOIN_COST * (groupOf[j - 1] - groupOf[i]) +
      WIDE_COST * Math.max(0, (read[c].box[2] - read[c].box[0]) / href - WIDEST_DIGIT));
    // only an atom cut from a group may be left out (a stroke's tail), never a group's only atom
    const skip = groupOf.map((g, a) => groupOf.filter(x => x === g).length === 1 ? Infinity :
      SKIP_COST + SKIP_AREA_COST * Math.max(0, pieces[a].pixels / (href * href) - SKIP_AREA));
    const paths = bestPaths(pieces.length, candidates, cost, skip);
    const counts = paths.map((p, k) => k).filter(k => k > 0 && paths[k]);
    if (!counts.length) return { text: "", countSure: true, digits: [] };
    const count = counts.reduce((a, k) => paths[k].cost < paths[a].cost ? k : a, counts[0]);
    let sure = true;
    for (const k of counts) if (k !== count && !(paths[k].cost > paths[count].cost + COUNT_MARGIN)) sure = false;
    // ink left out (at the edge, or a mark beside the digits) holding LEFT_OUT of the median group's may be a digit
    const groupInk = [];
    pieces.forEach((p, a) => { groupInk[groupOf[a]] = (groupInk[groupOf[a]] || 0) + p.pixels; });
    if (marks.some(m => m >= LEFT_OUT * median(groupInk))) sure = false;
    const index = new Map(candidates.map(([i, j], c) => [i + "," + j, c]));
    const out = paths[count].path.map(([i, j]) => {
      const r = read[index.get(i + "," + j)], m = api.margin(r.layers.out), label = api.argmax(r.layers.out);
      const accepted = m >= api.threshold && unlikeness(r.layers.out, api.loss) <= MAX_UNLIKENESS[api.loss] &&
        r.box[3] - r.box[1] >= SURE_HEIGHT * href;
      return { label, margin: m, accepted, char: accepted ? String(label) : "?", box: r.box, input: r.input, layers: r.layers };
    });
    return { text: (sure ? "" : "?") + out.map(d => d.char).join(""), countSure: sure, digits: out };
  }

  Object.assign(api, { greyOfRGBA, toInk, atoms, normalize, readGrey,
    readRGBA: (rgba, w, h) => readGrey(greyOfRGBA(rgba, w, h), w, h) });
})(window.lecun1989);
