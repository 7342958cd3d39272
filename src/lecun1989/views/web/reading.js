// The page's copy of reading/images.py (`lecun1989 predict`): the same steps, numbered as in its
// module docstring, in the same float64 arithmetic, so that a drawn row of digits is cut and
// normalized as predict cuts and normalizes an image file (tests/test_demo.py checks both).
(function (api) {
  "use strict";
  const SIZE = 16, MASK_LEVEL = 0.25, SPECK = 0.1, SPLIT_RATIO = 0.9, MAX_SLANT = 1.0;

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

  // 2. polarity from the border's median; ink in [0, 1], the paper at 0, the strongest ink at 1
  function toInk(grey, w, h) {
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
      const v = dark ? 1 - grey[i] : grey[i];
      ink[i] = Math.min(1, Math.max(0, (v - p) / (1 - p)));
      top = Math.max(top, ink[i]);
    }
    if (top <= 0) return null;
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

  function part(mask, w, h) {   // a mask and its box [x0, y0, x1, y1), or null when empty
    let x0 = w, y0 = h, x1 = -1, y1 = -1, n = 0;
    for (let y = 0; y < h; y++)
      for (let x = 0; x < w; x++)
        if (mask[y * w + x]) { n++; if (x < x0) x0 = x; if (x > x1) x1 = x; if (y < y0) y0 = y; if (y > y1) y1 = y; }
    if (!n) return null;
    return { mask, box: [x0, y0, x1 + 1, y1 + 1], width: x1 + 1 - x0, height: y1 + 1 - y0, pixels: n };
  }

  // 5. cut a part at its column of least ink in its middle half
  function split(p, ink, w, h) {
    const [x0, y0, x1, y1] = p.box, pw = x1 - x0, colInk = new Float64Array(pw);
    for (let y = y0; y < y1; y++)
      for (let k = 0; k < pw; k++) colInk[k] += p.mask[y * w + x0 + k] ? ink[y * w + x0 + k] : 0;
    let best = -1;
    for (let k = Math.floor(pw / 4); k < pw - Math.floor(pw / 4); k++) {
      if (best < 0) { best = k; continue; }
      const a = [colInk[k], Math.abs(2 * k - (pw - 1)), k], b = [colInk[best], Math.abs(2 * best - (pw - 1)), best];
      if (a[0] < b[0] || (a[0] === b[0] && (a[1] < b[1] || (a[1] === b[1] && a[2] < b[2])))) best = k;
    }
    const c = x0 + best, left = Uint8Array.from(p.mask), right = Uint8Array.from(p.mask);
    for (let y = 0; y < h; y++) { left.fill(0, y * w + c, y * w + w); right.fill(0, y * w, y * w + c); }
    return [part(left, w, h), part(right, w, h)].filter(Boolean);
  }

  // 3-5. the digits of a row, left to right; judge(parts) -> margins vetoes unsure cuts
  function segment(ink, w, h, judge) {
    const mask = new Uint8Array(w * h);
    for (let i = 0; i < w * h; i++) mask[i] = ink[i] >= MASK_LEVEL ? 1 : 0;
    const comps = components(mask, w, h).map(m => part(m, w, h));
    if (!comps.length) return [];
    const hmax = Math.max(...comps.map(c => c.height));
    const byBox = (a, b) => a.box[0] - b.box[0] || a.box[1] - b.box[1];
    const starts = comps.filter(c => 2 * c.height >= hmax).sort(byBox);   // Array.sort is stable
    const groups = starts.map(c => Uint8Array.from(c.mask));
    const typical = median(starts.map(c => c.pixels)), loose = [];
    for (const c of comps) {
      if (2 * c.height >= hmax) continue;
      const shared = starts.map(s => Math.max(0, Math.min(c.box[2], s.box[2]) - Math.max(c.box[0], s.box[0])));
      let best = 0;
      shared.forEach((v, i) => { if (v > shared[best]) best = i; });
      if (shared[best] > 0) { for (let i = 0; i < w * h; i++) if (c.mask[i]) groups[best][i] = 1; }
      else if (c.pixels >= SPECK * typical) loose.push(Uint8Array.from(c.mask));
    }
    const parts = groups.concat(loose).map(m => part(m, w, h));
    const href = median(parts.map(p => p.height));
    const done = [], todo = parts;
    while (todo.length) {
      const p = todo.pop();
      if (p.width > SPLIT_RATIO * href && p.width >= 4) {
        const pieces = split(p, ink, w, h);
        if (pieces.length === 2 && (!judge || Math.min(...judge(pieces)) > judge([p])[0])) {
          todo.push(...pieces);
          continue;
        }
      }
      done.push(p);
    }
    return done.sort(byBox);
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
    if (vyy <= 0) return { s: 0, cy };
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

  // 6-7. read a grey image (w x h, row-major, 1 = white)
  function readGrey(grey, w, h) {
    const found = toInk(grey, w, h);
    if (!found) return [];
    const { ink } = found;
    const inputOf = p => {
      const [x0, y0, x1, y1] = p.box, pw = x1 - x0, ph = y1 - y0, v = new Float64Array(pw * ph);
      for (let y = 0; y < ph; y++)
        for (let x = 0; x < pw; x++) { const i = (y + y0) * w + x + x0; v[y * pw + x] = p.mask[i] ? ink[i] : 0; }
      return normalize(v, ph, pw);
    };
    const judge = ps => ps.map(p => api.margin(api.forward(inputOf(p)).out));
    return segment(ink, w, h, judge).map(p => {
      const input = inputOf(p), layers = api.forward(input), m = api.margin(layers.out), label = api.argmax(layers.out);
      const accepted = m >= api.threshold;
      return { label, margin: m, accepted, char: accepted ? String(label) : "?", box: p.box, input, layers };
    });
  }

  Object.assign(api, { greyOfRGBA, toInk, segment, normalize, readGrey,
    readRGBA: (rgba, w, h) => readGrey(greyOfRGBA(rgba, w, h), w, h) });
})(window.lecun1989);
