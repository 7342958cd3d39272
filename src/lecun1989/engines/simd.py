"""Explicit vector code for the convolutions: whole rows of 16 or 64 positions per operation.

LLVM's auto-vectorizer leaves the convolutions' short rows scalar: it cannot prove that the views
into one workspace do not overlap, and it fully unrolls the 16-long loops before it would vectorize
them. These intrinsics emit the vector loads, multiply-adds and stores directly, unrolled for the
row length and the number of taps, which must be compile-time constants (numba literals): vectors
of 8 elements (<8 x float>, or <8 x double>, which LLVM splits to the machine's width).

    row_macc    a row += sum over taps of weight x input row          (fprop, rows in registers)
    row_dots    one dot product per tap, eight reduced at once          (bprop: weight gradients)
    row_outer   input rows += weight x a row, for every tap             (bprop: input gradients)
    run_copy, run_add   runs of 4: H1's padded rows and H2's unrolling

and, for the lane kernels (LANES runs per vector): lanes_macc, lanes_emit and lanes_fc_back (every
layer's sums of products), and follow_step, adamw_step and momentum_step (the optimizers' steps).

Arrays are flat and C-contiguous; indices are flat offsets.
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

LANES = 8
# Every float operation of the engine, here and in layers.FLAGS: contract allows FMA; no reassoc, so
# every sum adds in the order the source writes (the compiler's choice would follow its version and
# cost model); no assumptions about NaN or infinity.
FASTMATH = ("nsz", "contract")
_I32 = ir.IntType(32)


def _literals(*tys):
    return all(isinstance(t, (types.IntegerLiteral, types.BooleanLiteral)) for t in tys)


def _row_signature(out, a, b, *constants):
    """The signature of a row operation out, a, b (arrays, each with a flat offset) and its
    compile-time constants (taps, n[, square]), with their values; None until they are literals."""
    if not _literals(*constants):
        return None
    sig = types.void(out, types.intp, a, types.intp, b, types.intp, *constants)
    return sig, [c.literal_value for c in constants]


class _Arrays:
    """Element and vector access to flat arrays inside an intrinsic's codegen."""

    def __init__(self, context, builder, dtype):
        self.context, self.b = context, builder
        self.ft = context.get_value_type(dtype)
        self.vt = ir.VectorType(self.ft, LANES)
        self.align = dtype.bitwidth // 8

    def ptr(self, arrty, arr, index, offset):
        data = self.context.make_array(arrty)(self.context, self.b, arr).data
        i = self.b.add(index, ir.Constant(index.type, offset))
        return self.b.gep(data, [i], inbounds=True)

    def load(self, arrty, arr, index, offset):
        return self.b.load(self.ptr(arrty, arr, index, offset), align=self.align)

    def vload(self, arrty, arr, index, offset):
        p = self.b.bitcast(self.ptr(arrty, arr, index, offset), self.vt.as_pointer())
        return self.b.load(p, align=self.align)

    def vloads(self, arrty, arr, index, n):
        """The row arr[index:index+n] as n / LANES vectors."""
        return [self.vload(arrty, arr, index, j * LANES) for j in range(n // LANES)]

    def vstore(self, value, arrty, arr, index, offset):
        p = self.b.bitcast(self.ptr(arrty, arr, index, offset), self.vt.as_pointer())
        self.b.store(value, p, align=self.align)

    def splat(self, value):
        vec = ir.Constant(self.vt, ir.Undefined)
        for q in range(LANES):
            vec = self.b.insert_element(vec, value, ir.Constant(_I32, q))
        return vec

    def fma(self, a, x, acc, square_x=False):
        """acc + a * x, fused where the machine can. Not reassociable, so that LLVM keeps the
        independent chains of partial sums apart instead of merging them into one long chain."""
        if square_x:
            x = self.b.fmul(x, x)
        name = f"llvm.fmuladd.v{LANES}f{self.ft.intrinsic_name[1:]}"
        fmuladd = cgutils.get_or_insert_function(self.b.module, ir.FunctionType(acc.type, [acc.type] * 3), name)
        return self.b.call(fmuladd, [a, x, acc])

    def hsum(self, v):
        """The sum of v's lanes."""
        width = LANES
        while width > 1:
            width //= 2
            half = ir.VectorType(_I32, width)
            lo = self.b.shuffle_vector(v, v, ir.Constant(half, list(range(width))))
            hi = self.b.shuffle_vector(v, v, ir.Constant(half, list(range(width, 2 * width))))
            v = self.b.fadd(lo, hi, flags=FASTMATH)
        return self.b.extract_element(v, ir.Constant(_I32, 0))

    def hsums(self, vs):
        """LANES vectors -> one vector of their lane sums, by pairwise shuffles and adds: after
        level k each lane holds a sum over 2^k lanes of one input, in input order."""
        width = 1
        while len(vs) > 1:
            lo, hi = [], []
            for i in range(0, LANES, 2 * width):
                lo += [i + j for j in range(width)] + [LANES + i + j for j in range(width)]
                hi += [i + width + j for j in range(width)] + [LANES + i + width + j for j in range(width)]
            mask_lo, mask_hi = (ir.Constant(ir.VectorType(_I32, LANES), m) for m in (lo, hi))
            vs = [self.b.fadd(self.b.shuffle_vector(a, c, mask_lo), self.b.shuffle_vector(a, c, mask_hi), flags=FASTMATH)
                  for a, c in zip(vs[::2], vs[1::2])]
            width *= 2
        return vs[0]


@intrinsic
def row_macc(typingctx, a, ia, w, iw, x, ix, taps, n):
    """a[ia:ia+n] += sum over t < taps of w[iw+t] * x[ix+t*n : ix+t*n+n]."""
    typed = _row_signature(a, w, x, taps, n)
    if typed is None:
        return None
    sig, (T, N) = typed
    sets = max(1, 8 // (N // LANES))   # independent partial sums: 8 chains of additions hide their latency

    def codegen(context, builder, signature, args):
        A = _Arrays(context, builder, a.dtype)
        a_, ia_, w_, iw_, x_, ix_ = args[:6]
        acc = [[ir.Constant(A.vt, [0.0] * LANES)] * (N // LANES) for _ in range(sets)]
        for t in range(T):
            wv, s = A.splat(A.load(w, w_, iw_, t)), acc[t % sets]
            for j in range(N // LANES):
                s[j] = A.fma(wv, A.vload(x, x_, ix_, t * N + j * LANES), s[j])
        for j in range(N // LANES):
            total = A.vload(a, a_, ia_, j * LANES)
            for s in acc:
                total = builder.fadd(total, s[j])
            A.vstore(total, a, a_, ia_, j * LANES)
        return context.get_dummy_value()
    return sig, codegen


@intrinsic
def row_dots(typingctx, g, ig, d, id, x, ix, taps, n, square):
    """g[ig+t] = sum of d[id:id+n] * x[ix+t*n : ix+t*n+n] (x squared if square), for t < taps."""
    typed = _row_signature(g, d, x, taps, n, square)
    if typed is None:
        return None
    sig, (T, N, sq) = typed

    def codegen(context, builder, signature, args):
        A = _Arrays(context, builder, g.dtype)
        g_, ig_, d_, id_, x_, ix_ = args[:6]
        dv = A.vloads(d, d_, id_, N)
        zero = ir.Constant(A.vt, [0.0] * LANES)
        dots = []
        for t in range(T):
            s = zero
            for j in range(N // LANES):
                s = A.fma(dv[j], A.vload(x, x_, ix_, t * N + j * LANES), s, sq)
            dots.append(s)
        full = T - T % LANES
        for t in range(0, full, LANES):      # eight sums at once
            p = builder.bitcast(A.ptr(g, g_, ig_, t), A.vt.as_pointer())
            builder.store(A.hsums(dots[t:t + LANES]), p, align=A.align)
        for t in range(full, T):
            builder.store(A.hsum(dots[t]), A.ptr(g, g_, ig_, t), align=A.align)
        return context.get_dummy_value()
    return sig, codegen


@intrinsic
def row_outer(typingctx, y, iy, w, iw, d, id, taps, n, square):
    """y[iy+t*n : iy+t*n+n] += w[iw+t] * d[id:id+n] (w squared if square), for t < taps."""
    typed = _row_signature(y, w, d, taps, n, square)
    if typed is None:
        return None
    sig, (T, N, sq) = typed

    def codegen(context, builder, signature, args):
        A = _Arrays(context, builder, y.dtype)
        y_, iy_, w_, iw_, d_, id_ = args[:6]
        dv = A.vloads(d, d_, id_, N)
        for t in range(T):
            wt = A.load(w, w_, iw_, t)
            if sq:
                wt = builder.fmul(wt, wt, flags=FASTMATH)
            wv = A.splat(wt)
            for j in range(N // LANES):
                off = t * N + j * LANES
                A.vstore(A.fma(wv, dv[j], A.vload(y, y_, iy_, off)), y, y_, iy_, off)
        return context.get_dummy_value()
    return sig, codegen


def _run(accumulate: bool):
    def run(typingctx, dst, idst, src, isrc, n):
        if not _literals(n):
            return None
        sig = types.void(dst, types.intp, src, types.intp, n)

        def codegen(context, builder, signature, args):
            A = _Arrays(context, builder, dst.dtype)
            vt = ir.VectorType(A.ft, n.literal_value)
            d_, id_, s_, is_ = args[:4]
            pd = builder.bitcast(A.ptr(dst, d_, id_, 0), vt.as_pointer())
            v = builder.load(builder.bitcast(A.ptr(src, s_, is_, 0), vt.as_pointer()), align=A.align)
            if accumulate:
                v = builder.fadd(builder.load(pd, align=A.align), v, flags=FASTMATH)
            builder.store(v, pd, align=A.align)
            return context.get_dummy_value()
        return sig, codegen
    run.__name__ = "run_add" if accumulate else "run_copy"
    return run


run_copy = intrinsic(_run(False))
run_copy.__doc__ = "dst[idst:idst+n] = src[isrc:isrc+n], as one vector."
run_add = intrinsic(_run(True))
run_add.__doc__ = "dst[idst:idst+n] += src[isrc:isrc+n], as one vector."


# --- runs as lanes: many runs at once, one run per vector lane ---------------------------------------
# Every quantity of LANES runs is stored as one vector (element index * LANES + run), so the runs'
# arithmetic is the vector arithmetic and every unit of the network is one load or store: no
# horizontal sums, no unrolling copies. Offsets below count vectors, not elements.

def _literal_values(*tys):
    return [t.literal_value for t in tys] if _literals(*tys) else None


def _emit(A, builder, value, arrty, arr, base, offset, sty, s_, mode):
    """Store a gradient (mode 0), or step by it: arr -= lr * value with s the LANES runs' learning
    rates (mode 1), or arr -= s * value with s a step size per element like arr (mode 2)."""
    if mode == 0:
        A.vstore(value, arrty, arr, base, offset)
        return
    step = A.vload(sty, s_, ir.Constant(base.type, 0) if mode == 1 else base, 0 if mode == 1 else offset)
    old = A.vload(arrty, arr, base, offset)
    A.vstore(builder.fsub(old, builder.fmul(step, value)), arrty, arr, base, offset)


@intrinsic
def lanes_macc(typingctx, a, ia, w, iw, x, ix, s, na, aj, ku, kv, wj, wu, wv, xj, xu, xv, square_w, square_x, mode):
    """For j < na, the sum over u < ku, v < kv of w[iw + j wj + u wu + v wv] * x[ix + j xj + u xu + v xv],
    each a vector of LANES runs, with w and/or x squared (bbprop), is added to a[ia + j aj] (mode -1)
    or, as a gradient, stored there or stepped by (modes 0, 1, 2 of _emit, with s). Every layer's
    sums are this one pattern with its own strides: the na sums stay in registers (split into
    independent partial sums to hide the adder's latency), and loads of the same vector are shared."""
    consts = (na, aj, ku, kv, wj, wu, wv, xj, xu, xv, square_w, square_x, mode)
    values = _literal_values(*consts)
    if values is None:
        return None
    NA, AJ, KU, KV, WJ, WU, WV, XJ, XU, XV, SQW, SQX, MODE = values
    sig = types.void(a, types.intp, w, types.intp, x, types.intp, s, *consts)
    chains = max(1, min(4, -(-8 // NA)))

    def codegen(context, builder, signature, args):
        A = _Arrays(context, builder, a.dtype)
        a_, ia_, w_, iw_, x_, ix_, s_ = args[:7]
        ia_, iw_, ix_ = (builder.mul(i, ir.Constant(i.type, LANES)) for i in (ia_, iw_, ix_))
        cache = {}

        def vec(arrty, arr, base, offset, squared):
            key = (base, offset)
            if key not in cache:
                v = A.vload(arrty, arr, base, offset * LANES)
                cache[key] = builder.fmul(v, v) if squared else v
            return cache[key]

        zero = ir.Constant(A.vt, [0.0] * LANES)
        acc = [[zero] * chains for _ in range(NA)]
        for u in range(KU):
            # in the order of the inputs read, so that each is used as soon as it is loaded and
            # fewer values are live at once (no spills)
            terms = sorted((j * XJ + v * XV, j * WJ + v * WV, j, v) for j in range(NA) for v in range(KV))
            for xo, wo, j, v in terms:
                wv_ = vec(w, w_, iw_, wo + u * WU, SQW)
                xv_ = vec(x, x_, ix_, xo + u * XU, SQX)
                c = (u * KV + v) % chains
                acc[j][c] = A.fma(wv_, xv_, acc[j][c])
        for j in range(NA):
            total = A.vload(a, a_, ia_, j * AJ * LANES) if MODE == -1 else zero
            for part in acc[j]:
                total = builder.fadd(total, part)
            if MODE == -1:
                A.vstore(total, a, a_, ia_, j * AJ * LANES)
            else:
                _emit(A, builder, total, a, a_, ia_, j * AJ * LANES, signature.args[6], s_, MODE)
        return context.get_dummy_value()
    return sig, codegen


@intrinsic
def lanes_emit(typingctx, g, ig, gj, d, id, dj, s, n, mode):
    """For i < n the gradient d[id + i dj] stored in g[ig + i gj] or stepped by (modes 0, 1, 2 of
    _emit): the untied biases, whose gradient is the derivative itself (mode 0 also copies)."""
    values = _literal_values(gj, dj, n, mode)
    if values is None:
        return None
    GJ, DJ, N, MODE = values
    sig = types.void(g, types.intp, gj, d, types.intp, dj, s, n, mode)

    def codegen(context, builder, signature, args):
        A = _Arrays(context, builder, g.dtype)
        g_, ig_, _, d_, id_, _, s_ = args[:7]
        ig_, id_ = (builder.mul(i, ir.Constant(i.type, LANES)) for i in (ig_, id_))
        for i in range(N):
            _emit(A, builder, A.vload(d, d_, id_, i * DJ * LANES), g, g_, ig_, i * GJ * LANES,
                  signature.args[6], s_, MODE)
        return context.get_dummy_value()
    return sig, codegen


@intrinsic
def lanes_fc_back(typingctx, g, ig, w, iw, dx, idx, d, id, x, ix, s, n_in, n_out, block, square, mode):
    """A fully connected layer's bprop for `block` inputs from ix, in one pass over its weights
    w (n_out, n_in): dx[idx + i] = sum over j < n_out of w[iw + j n_in + i] * d[id + j], and the
    weights' gradients d[id + j] * x[ix + i] stored in g[ig + j n_in + i] or stepped by (modes 0, 1,
    2 of _emit). Each weight is read once and, when stepped, written once: the largest layer's
    weights are too many to stay in the nearest cache between separate passes. With square, w and
    x are squared (bbprop)."""
    values = _literal_values(n_in, n_out, block, square, mode)
    if values is None:
        return None
    NIN, NOUT, B, SQ, MODE = values
    sig = types.void(g, types.intp, w, types.intp, dx, types.intp, d, types.intp, x, types.intp, s,
                     n_in, n_out, block, square, mode)

    def codegen(context, builder, signature, args):
        A = _Arrays(context, builder, g.dtype)
        g_, ig_, w_, iw_, dx_, idx_, d_, id_, x_, ix_, s_ = args[:11]
        ig_, iw_, idx_, id_, ix_ = (builder.mul(i, ir.Constant(i.type, LANES)) for i in (ig_, iw_, idx_, id_, ix_))

        def sq(v):
            return builder.fmul(v, v) if SQ else v

        xs = [sq(A.vload(x, x_, ix_, i * LANES)) for i in range(B)]
        acc = [ir.Constant(A.vt, [0.0] * LANES)] * B
        for j in range(NOUT):
            dj = A.vload(d, d_, id_, j * LANES)
            for i in range(B):
                off = (j * NIN + i) * LANES
                acc[i] = A.fma(sq(A.vload(w, w_, iw_, off)), dj, acc[i])
                _emit(A, builder, builder.fmul(dj, xs[i]), g, g_, ig_, off, signature.args[10], s_, MODE)
        for i in range(B):
            A.vstore(acc[i], dx, dx_, idx_, i * LANES)
        return context.get_dummy_value()
    return sig, codegen


# --- the optimizers' steps in the lane kernels: LANES runs per operation ---------------------------
# steps.py's elementwise loops, whose settings change from lane to lane: LLVM leaves them scalar. Each
# call does elements i .. i + LANES - 1 (one parameter of the LANES runs) with the loop's operations,
# in its order and with its flags, so the bits are the same (the tests compare them). A run's setting
# k is hyper[k * LANES + lane], so setting k of all lanes is one vector.

def _step(arrays: tuple, settings: tuple, body):
    """The signature and codegen of an intrinsic f(*arrays, *settings, i): body(A, builder, load,
    store, setting) runs with load(k) the vector of array k at i, store(k, v) putting v there (in the
    plain loop's order of loads and stores: a value stored and read again is read from memory, as the
    loop must, the arrays possibly overlapping), and setting(n, k) setting k of settings array n."""
    if any(t.dtype != arrays[0].dtype or t.layout != "C" for t in arrays + settings):
        return None   # read as vectors of the parameters' type: anything else would be misread
    sig = types.void(*arrays, *settings, types.intp)

    def codegen(context, builder, signature, values):
        A = _Arrays(context, builder, arrays[0].dtype)
        i_ = values[-1]
        zero = ir.Constant(i_.type, 0)
        body(A, builder, lambda k: A.vload(arrays[k], values[k], i_, 0),
             lambda k, v: A.vstore(v, arrays[k], values[k], i_, 0),
             lambda n, k: A.vload(settings[n], values[len(arrays) + n], zero, k * LANES))
        return context.get_dummy_value()
    return sig, codegen


def _follow(A, b, load, store, setting):
    """SDLM's running curvature: h += decay * (new - h); steps = lr / (mu + h). Arrays h, new, steps;
    settings lr, mu, decay."""
    h = load(0)
    store(0, b.fadd(h, b.fmul(setting(0, 2), b.fsub(load(1), h, flags=FASTMATH), flags=FASTMATH), flags=FASTMATH))
    store(2, b.fdiv(setting(0, 0), b.fadd(setting(0, 1), load(0), flags=FASTMATH), flags=FASTMATH))


def _adamw(A, b, load, store, setting):
    """PyTorch's AdamW: p *= decay; m += (1 - b1) (g - m); v = v b2 + (1 - b2) g g;
    p -= step_size m / (sqrt(v) / c2 + eps). Arrays p, g, m, v; settings hyper (lr, b1, b2, eps, weight
    decay) and the step's decay, step_size and c2."""
    one = A.splat(ir.Constant(A.ft, 1.0))
    b1, b2, eps = setting(0, 1), setting(0, 2), setting(0, 3)
    g = load(1)
    store(0, b.fmul(load(0), setting(1, 0), flags=FASTMATH))
    m = load(2)
    store(2, b.fadd(m, b.fmul(b.fsub(one, b1, flags=FASTMATH), b.fsub(g, m, flags=FASTMATH), flags=FASTMATH), flags=FASTMATH))
    store(3, b.fadd(b.fmul(load(3), b2, flags=FASTMATH),
                    b.fmul(b.fmul(b.fsub(one, b2, flags=FASTMATH), g, flags=FASTMATH), g, flags=FASTMATH), flags=FASTMATH))
    sqrt = cgutils.get_or_insert_function(b.module, ir.FunctionType(A.vt, [A.vt]),
                                          f"llvm.sqrt.v{LANES}f{A.ft.intrinsic_name[1:]}")
    p = load(0)
    step = b.fmul(setting(2, 0), load(2), flags=FASTMATH)
    denominator = b.fadd(b.fdiv(b.call(sqrt, [load(3)]), setting(3, 0), flags=FASTMATH), eps, flags=FASTMATH)
    store(0, b.fsub(p, b.fdiv(step, denominator, flags=FASTMATH), flags=FASTMATH))


def _momentum(A, b, load, store, setting):
    """Momentum: m = momentum m - lr g; p += m. Arrays p, g, m; settings lr, momentum."""
    store(2, b.fsub(b.fmul(setting(0, 1), load(2), flags=FASTMATH), b.fmul(setting(0, 0), load(1), flags=FASTMATH),
                    flags=FASTMATH))
    store(0, b.fadd(load(0), load(2), flags=FASTMATH))


@intrinsic
def follow_step(typingctx, h, new, steps, hyper, i):
    """steps.follow_plain at elements i .. i + LANES - 1."""
    return _step((h, new, steps), (hyper,), _follow)


@intrinsic
def adamw_step(typingctx, p, g, m, v, hyper, decay, step_size, c2, i):
    """steps.adamw_plain at elements i .. i + LANES - 1."""
    return _step((p, g, m, v), (hyper, decay, step_size, c2), _adamw)


@intrinsic
def momentum_step(typingctx, p, g, m, hyper, i):
    """steps.momentum_plain at elements i .. i + LANES - 1."""
    return _step((p, g, m), (hyper,), _momentum)
