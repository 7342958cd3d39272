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

Arrays are flat and C-contiguous; indices are flat offsets.
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

LANES = 8
_FAST = ("fast",)
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
            v = self.b.fadd(lo, hi, flags=_FAST)
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
            vs = [self.b.fadd(self.b.shuffle_vector(a, c, mask_lo), self.b.shuffle_vector(a, c, mask_hi), flags=_FAST)
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
                wt = builder.fmul(wt, wt, flags=_FAST)
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
                v = builder.fadd(builder.load(pd, align=A.align), v, flags=_FAST)
            builder.store(v, pd, align=A.align)
            return context.get_dummy_value()
        return sig, codegen
    run.__name__ = "run_add" if accumulate else "run_copy"
    return run


run_copy = intrinsic(_run(False))
run_copy.__doc__ = "dst[idst:idst+n] = src[isrc:isrc+n], as one vector."
run_add = intrinsic(_run(True))
run_add.__doc__ = "dst[idst:idst+n] += src[isrc:isrc+n], as one vector."
