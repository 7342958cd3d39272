"""The compiled engine against the PyTorch reference, from the same initial weights and data."""

import os
import subprocess
import sys

import math

import numpy as np
import pytest

from lecun1989 import recipes
from lecun1989.engines import fast as fast_module
from lecun1989.engines import initial_runs
from lecun1989.engines.fast import FastEngine, kernels_for
from lecun1989.engines.network import Settings, pack, unpack
from lecun1989.engines.torch_ref import TorchEngine
from lecun1989.draws import training_noise
from lecun1989.model import Net1989, NetConfig
from lecun1989.optim import OptimConfig


def specs(net, seeds, lr=0.03):
    return initial_runs(net, [(s, lr) for s in seeds])


def one_pass_each(net, ds, seed, dtype):
    """Both engines from the same initial weights, after one pass over ds."""
    run = specs(net, [seed])
    fast, ref = FastEngine(net, run, ds, dtype=dtype), TorchEngine(net, run, ds, dtype=dtype)
    fast.train_pass()
    ref.train_pass()
    return fast, ref


def test_the_kernels_layout_is_the_models_parameters():
    """network.py's flat vector: every block where its offsets say, of the model's sizes."""
    from lecun1989.engines import network
    params = Net1989(seed=4).get_params()
    flat = pack(params, np.float64)
    assert flat.size == network.N_FLAT == sum(v.size for v in params.values())
    for name, offset, size in zip(network.LAYOUT, network.OFFSET, network.SIZE):
        assert size == params[name[0]].size
        if name[0] in ("H1w", "H2w", "H2b", "H3b", "outb"):   # stored as the model stores them
            assert np.array_equal(flat[offset:offset + size], params[name[0]].reshape(-1))
    # every (tap row, output row) of H2 that reads H1 row r, counted by brute force
    for r, (ty, oy, n) in enumerate(network.DH1_ROWS):
        reads = [(t, o) for t in range(5) for o in range(4) if 2 * o + t - 2 == r]
        assert reads == [(ty + 2 * i, oy - i) for i in range(n)]


def test_pack_unpack_round_trip():
    params = Net1989(seed=4).get_params()
    back = unpack(pack(params, np.float64))
    assert all(np.array_equal(params[k], back[k]) and params[k].shape == back[k].shape for k in params)


@pytest.mark.parametrize("activation", ["tanh", "scaled_tanh"])
def test_one_full_pass_float64_equals_reference_within_1e_9(usps, activation):
    net = NetConfig(activation=activation, output_bias=-1.0)
    ds = usps if activation == "tanh" else usps.subset(500, 100)   # the full pass once is enough
    fast, ref = one_pass_each(net, ds, seed=2, dtype="float64")
    a, b = fast.get_params()[0], ref.get_params()[0]
    for name in a:
        assert np.abs(a[name] - b[name]).max() <= 1e-9, name
    ea, eb = fast.evaluate()[0], ref.evaluate()[0]
    for split in ("train", "test"):
        assert ea[split].misses == eb[split].misses
        assert abs(ea[split].loss - eb[split].loss) <= 1e-12


def test_float32_pass_equals_reference_within_1e_4_relative(usps):
    net = NetConfig()
    ds = usps.subset(1000, 100)
    fast, ref = one_pass_each(net, ds, seed=3, dtype="float32")
    a, b = fast.get_params()[0], ref.get_params()[0]
    for name in a:
        assert np.abs(a[name] - b[name]).max() <= 1e-4 * np.abs(b[name]).max(), name


def test_23_pass_float64_run_gives_the_same_misses_after_every_pass(usps):
    net = NetConfig()
    ds = usps.subset(150, 150)
    run = specs(net, [5], lr=0.05)
    fast, ref = FastEngine(net, run, ds, dtype="float64"), TorchEngine(net, run, ds, dtype="float64")
    for _ in range(23):
        fast.train_pass()
        ref.train_pass()
        ea, eb = fast.evaluate()[0], ref.evaluate()[0]
        assert (ea["train"].misses, ea["test"].misses) == (eb["train"].misses, eb["test"].misses)
    assert ea["train"].misses < 15   # it did learn


def flat(engine, r):
    return np.concatenate([v.ravel() for v in engine.get_params()[r].values()])


def test_a_run_gives_the_same_numbers_in_any_batch(usps):
    """Lanes never mix: run 0 of a batch (and run 9, in the second group of 8) equal the same runs
    trained alone on the lane kernels, and agree with the single-run kernels within float32 rounding."""
    net = NetConfig()
    ds = usps.subset(300, 100)
    batch = FastEngine(net, specs(net, [7, 8, 9, 0, 1, 2, 3, 4, 5], lr=0.02) + specs(net, [7], lr=0.05), ds)
    alone = [FastEngine(net, specs(net, [7], lr=lr), ds, kernels="lanes") for lr in (0.02, 0.05)]
    single = FastEngine(net, specs(net, [7], lr=0.02), ds)
    assert batch.lanes and not single.lanes
    for engine in (batch, *alone, single):
        for _ in range(2):
            engine.train_pass()
    assert np.array_equal(flat(batch, 0), flat(alone[0], 0))
    assert np.array_equal(flat(batch, 9), flat(alone[1], 0))
    assert not np.array_equal(flat(batch, 0), flat(batch, 1))
    assert not np.array_equal(flat(batch, 0), flat(batch, 9))   # same seed, other learning rate
    assert batch.evaluate()[0] == alone[0].evaluate()[0] and batch.evaluate()[9] == alone[1].evaluate()[0]
    a, b = batch.get_params()[0], single.get_params()[0]
    for name in a:
        assert np.abs(a[name] - b[name]).max() <= 1e-4 * np.abs(b[name]).max(), name
    # the same weights give the same figures whichever kernels trained them: every run is evaluated
    # on the lane kernels, a run alone eight examples at a time (here 300 and 100: the last vector part full)
    alone[0]._run(alone[0].params, 0)[:] = single.params[0]
    assert alone[0].evaluate()[0] == single.evaluate()[0]


def uncached(fn):
    """fn compiled with the kernels' flags from today's sources, never a copy from numba's disk cache
    (whose key for a test's function would not see an edit of the engine)."""
    from numba import njit
    from lecun1989.engines import layers
    return njit(**{**layers.FLAGS, "cache": False})(fn)


def test_no_kernel_lets_the_compiler_reorder_a_sum(usps, monkeypatch):
    """Every float operation of the kernels is compiled without reassoc, or 'fast', which includes it:
    each sum adds in the order the source or simd.py writes, not in one chosen by LLVM's version and
    cost model (docs/REPRODUCIBILITY.md). Read in the code of both kernel sets' forward and backward
    passes, bbprop, the lane kernels' evaluation and optimizer steps, each compiled here from its own
    source and flags (numba shows no code it loaded from its cache)."""
    import re
    from lecun1989.engines import lanes, single, steps
    from lecun1989.engines.simd import LANES as V

    def fresh(fn):
        return uncached(fn.py_func)

    net = NetConfig()
    engine = FastEngine(net, specs(net, [0]), usps.subset(8, 8))
    p, data = engine.params[0], engine.splits["train"]
    ws, drop = single.workspace(p, engine.settings.pad), p[:0]
    compiled = {name: fresh(getattr(single, name)) for name in ("fprop", "bprop", "bbprop")}
    compiled["fprop"](p, data.inputs[0], engine.settings, ws, drop)
    compiled["bprop"](p, data.inputs[0], data.targets[0], engine.settings, ws, drop)
    compiled["bbprop"](p, data.inputs[0], engine.settings, ws, single.workspace(p, engine.settings.pad), drop)
    # the lane kernels' functions that are not inlined, fresh, before the code that calls them
    for name in ("fprop", "back", "evaluate_one"):
        compiled["lanes." + name] = fresh(getattr(lanes, name))
        monkeypatch.setattr(lanes, name, compiled["lanes." + name])
    engine.evaluate()

    @uncached
    def lane_steps(P, ws, ws2, t, s, state, adamw, sdlm, momentum):
        hess, h, st, m, v = state
        lanes.fprop(P, ws, s, P[:0])
        lanes.bbprop(P, ws, ws2, s, P[:0], hess)
        steps.follow_curvature(h, hess, st, sdlm, V)
        lanes.bprop(P, ws, t, s, P[:0], P, st, 2)
        steps.update(steps.ADAMW, P, hess, h, m, v, st, adamw, V, 1)
        steps.update(steps.MOMENTUM, P, hess, h, m, v, st, momentum, V, 1)

    group = FastEngine(net, specs(net, range(V)), usps.subset(8, 8), kernels="lanes")
    P, pad, zero = group.params[0].copy(), group.settings.pad, np.zeros(V, group.dtype)
    lane_steps(P, lanes.workspace(P, pad), lanes.workspace(P, pad), group.splits["train"].targets[0], group.settings,
               tuple(np.zeros_like(P) for _ in range(5)), np.tile(zero, 5), np.tile(zero, 3), np.tile(zero, 2))
    compiled["lane_steps"] = lane_steps
    for name, fn in compiled.items():
        code = "\n".join(fn.inspect_llvm().values())
        flags = re.findall(r"= (?:fadd|fsub|fmul|fdiv)((?: [a-z]+)*) (?:float|double|<)", code)
        assert len(flags) > 50, name
        assert not [f for f in flags if "reassoc" in f or "fast" in f], name


def test_the_kernel_set_depends_on_the_number_of_runs_only():
    assert [kernels_for(n) for n in (1, 5, 6, 7, 10, 32)] == ["single"] * 3 + ["lanes"] * 3


def test_compiled_code_is_cached_on_disk(usps, raw_dir, session_home):
    code = """
import sys
from lecun1989 import data
from lecun1989.engines import fast
from lecun1989.engines import initial_runs
from lecun1989.model import NetConfig
ds = data.load("usps", home=sys.argv[1], raw_dir=sys.argv[2]).subset(20, 20)
e = fast.FastEngine(NetConfig(), initial_runs(NetConfig(), [(0, 0.03)]), ds)
e.train_pass(); e.evaluate()
print(sum(e.train_chunk.stats.cache_misses.values()), sum(e.train_chunk.stats.cache_hits.values()))
"""
    outs = [subprocess.run([sys.executable, "-c", code, str(session_home), str(raw_dir)], capture_output=True,
                           text=True, check=True).stdout.split() for _ in range(2)]
    assert outs[1] == ["0", "1"]   # the second process compiled nothing


def test_a_cold_start_compiles_the_evaluation_beside_the_training_kernel(usps, raw_dir, session_home, tmp_path):
    """From an empty cache, the engine compiles its training kernel while a child process compiles the
    curvature estimate and the evaluation (ahead.py, where a core is spare): each once, and the figures
    are those of the kernels compiled in this process. What a command names with ahead.also (paper's:
    the forward pass its rejection measure reads with) is compiled by such a child while the engine
    trains, by one of its own where the engine's kernels are cached; then nothing is compiled again."""
    from lecun1989 import trained
    from lecun1989.engines import ahead
    code = """
import sys
from lecun1989 import data, model_compiled, recipes, trained
from lecun1989.engines import ahead, fast, initial_runs, lanes, single
also = sys.argv[3] == "also"
if also and trained.forward_missing():
    ahead.also(trained.FORWARD_TARGET)
ds = data.load("usps", home=sys.argv[1], raw_dir=sys.argv[2]).subset(20, 20)
net, optim = recipes.PAPER.net, recipes.PAPER.optim
e = fast.FastEngine(net, initial_runs(net, [(0, 0.001)]), ds, optim=optim)
e.train_pass()
ev = e.evaluate()[0]
assert not also or trained.compiled_forward() is model_compiled.outputs
print(*(sum(fn.stats.cache_misses.values()) for fn in (e.train_chunk, single.estimate_hessian, lanes.evaluate_one)),
      sum(model_compiled.outputs.stats.cache_misses.values()) if also else "-", ev["train"].loss.hex(), ev["test"].loss.hex())
"""
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "cache")}
    first, second, third = [subprocess.run([sys.executable, "-c", code, str(session_home), str(raw_dir), also], env=env,
                                           capture_output=True, text=True, check=True) for also in ("no", "also", "also")]
    beside = "0" if ahead.cores() >= 2 and fast_module.THREADS > 1 else "1"
    assert first.stdout.split()[:4] == ["1", beside, beside, "-"], first.stdout + first.stderr
    for kernel in ("train_chunk", "estimate_hessian", "evaluate_one"):
        assert first.stderr.count(f"compiled {kernel} ") == 1, first.stderr
    assert f"compiled {trained.FORWARD_WHAT}" not in first.stderr, first.stderr
    # the engine's kernels cached, the forward pass not: a child compiles it alone while the engine trains
    assert second.stdout.split()[:4] == ["0", "0", "0", beside], second.stdout + second.stderr
    assert second.stderr.count("compiled ") == second.stderr.count(f"compiled {trained.FORWARD_WHAT} ") == 1, second.stderr
    assert third.stdout.split()[:4] == ["0", "0", "0", "0"] and "compiled" not in third.stderr, third.stderr
    net, optim = recipes.PAPER.net, recipes.PAPER.optim
    here = FastEngine(net, specs(net, [0], lr=0.001), usps.subset(20, 20), optim=optim)
    here.train_pass()
    ev = here.evaluate()[0]
    want = [ev["train"].loss.hex(), ev["test"].loss.hex()]
    assert first.stdout.split()[4:] == second.stdout.split()[4:] == third.stdout.split()[4:] == want


def test_float32_tanh_is_within_4e_7_of_tanh_everywhere():
    """The vectorizing rational tanh the float32 engine uses, over its whole range and past the clamp."""
    from lecun1989.engines import layers as L
    x = np.linspace(-12, 12, 200_001).astype(np.float32)
    y = x.copy()
    one = np.float32(1)
    L.act_fprop(y, Settings(one, one, -one, False, False, one, np.zeros((12, 8), np.int64)))
    assert y.dtype == np.float32
    assert np.abs(y - np.tanh(x.astype(np.float64))).max() < 4e-7
    assert y.max() <= 1 and y.min() >= -1


def test_float64_tanh_is_within_2_ulp_of_libm_everywhere():
    """The vectorizing Cephes tanh the float64 engine uses: both of its pieces and the seam between them,
    tiny and huge inputs, infinities, and a NaN that stays a NaN (a diverged run must show as one)."""
    from lecun1989.engines import layers as L
    x = np.concatenate([np.linspace(-25, 25, 400_001), np.geomspace(1e-300, 30, 40_001),
                        -np.geomspace(1e-300, 30, 40_001), np.nextafter(0.625, [0, 1]), [0.0, 1e308, -np.inf, np.inf]])
    y = np.append(x, np.nan)
    one = 1.0
    L.act_fprop(y, Settings(one, one, -one, False, False, one, np.zeros((12, 8), np.int64)))
    want = np.array([math.tanh(v) for v in x])   # libm's, which the engine called before (np.tanh is numpy's own)
    assert np.isnan(y[-1])
    assert (np.abs(y[:-1] - want) <= 2 * np.spacing(np.abs(want))).all()


def test_the_disk_cache_is_keyed_on_the_compiled_sources_only():
    """The kernels inline layers.py, simd.py and steps.py and read network.py's constants: a change to
    any file the compiled code comes from must invalidate the cache, and a change to any other (the
    reference engine, the engine's driver fast.py) must not."""
    import json
    import re
    from lecun1989.engines import cache, single
    locator = single.estimate_hessian._cache._impl.locator
    assert type(locator).__name__.startswith("Engine")
    assert locator.get_source_stamp() == cache.sources_digest()
    assert type(locator).from_function(json.dumps, json.__file__) is None   # other code keeps numba's own keys
    modules = {p.stem for p in cache.ENGINE_DIR.glob("*.py")}
    imported = set()
    for name in cache.COMPILED:
        text = (cache.ENGINE_DIR / name).read_text(encoding="utf-8")
        imported |= set(re.findall(r"^from \.(\w+) import", text, re.M))
        imported |= set(re.findall(r"^from \. import (\w+)", text, re.M)) & modules
        imported |= {"../" + m for m in re.findall(r"^from \.\. import (\w+)", text, re.M)}
    # the compiled code's engine modules, and the paper's constants it bakes in; not the cache itself, nor
    # target.py, whose choice numba's cache index keys on by itself (the CPU name and features)
    assert {m + ".py" for m in imported - {"cache", "target"}} <= set(cache.COMPILED)
    assert "torch_ref.py" not in cache.COMPILED and "fast.py" not in cache.COMPILED


MODERN_CASES = {
    "ce-sgd": (NetConfig(loss="ce"), OptimConfig("sgd"), 0.01),
    "ce-adamw-linear": (NetConfig(loss="ce"), OptimConfig("adamw", schedule="linear:0.333333"), 3e-4),
    "shift": (NetConfig(loss="ce", shift=1), OptimConfig("adamw"), 3e-4),
    "relu-dropout-shift": (NetConfig(loss="ce", activation="relu", dropout=0.25, shift=1),
                           OptimConfig("adamw", schedule="linear:0.333333", weight_decay=0.1), 3e-4),
    "mse-relu-dropout-sgd": (NetConfig(activation="relu", dropout=0.5), OptimConfig("sgd"), 0.01),
}


@pytest.mark.parametrize("lanes", ["single", "lanes"], ids=["single-run kernels", "lane kernels"])
@pytest.mark.parametrize("case", MODERN_CASES)
def test_modern_pieces_float64_equal_reference_within_1e_9(usps, case, lanes, side_by_side):
    """Cross-entropy, AdamW with linear decay, rolls, ReLU and dropout: the same draws, the same numbers."""
    net, optim, lr = MODERN_CASES[case]
    runs = initial_runs(net, [(2, lr), (3, lr)])
    fast, ref = side_by_side(net, optim, runs, usps.subset(150, 60), lanes, train=3, passes=3)
    for ea, eb in zip(fast.evaluate(), ref.evaluate()):
        for split in ("train", "test"):
            assert ea[split].misses == eb[split].misses
            assert abs(ea[split].loss - eb[split].loss) <= 1e-9
    assert not np.array_equal(flat(fast, 0), flat(fast, 1))


@pytest.mark.parametrize("lanes", ["single", "lanes"], ids=["single-run kernels", "lane kernels"])
def test_cross_entropy_teaches_a_not_digit_the_uniform_distribution(usps, lanes, side_by_side):
    """An example labelled N_CLASSES (every target -1: the reader's not-digits) is taught by
    cross-entropy towards 1/10 on every class, not towards some class: the kernels and the reference
    agree to 1e-9, and its loss is logsumexp(y) - mean(y)."""
    from dataclasses import replace as dc_replace
    from lecun1989 import paper
    from lecun1989.data import Split
    ds = usps.subset(150, 60)
    labels = ds.train.labels.copy()
    labels[::3] = paper.N_CLASSES
    ds = dc_replace(ds, train=Split(ds.train.images, labels))
    net, optim = NetConfig(loss="ce", activation="relu"), OptimConfig("adamw")
    runs = initial_runs(net, [(2, 3e-4), (3, 3e-4)])
    fast, ref = side_by_side(net, optim, runs, ds, lanes, train=2, passes=2)
    for ea, eb in zip(fast.evaluate(), ref.evaluate()):
        assert abs(ea["train"].loss - eb["train"].loss) <= 1e-9
    import torch
    from lecun1989.engines.torch_ref import loss_fn
    y = torch.tensor([[0.5, -1.0, 2.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0]], dtype=torch.float64)
    expected = torch.logsumexp(y, 1) - y.mean()
    assert abs(float(loss_fn(net, y, -torch.ones_like(y)) - expected)) < 1e-12


def test_training_noise_is_seeded_per_run_and_pass():
    net = NetConfig(loss="ce", dropout=0.25, shift=1)
    s1, k1 = training_noise(net, 4, 2, 1000)
    s2, k2 = training_noise(net, 4, 2, 1000)
    assert np.array_equal(s1, s2) and np.array_equal(k1, k2)
    s3, k3 = training_noise(net, 5, 2, 1000)
    s4, _ = training_noise(net, 4, 3, 1000)
    assert not np.array_equal(s1, s3) and not np.array_equal(k1, k3) and not np.array_equal(s1, s4)
    assert set(np.unique(s1)) == {-1, 0, 1} and abs(1 - k1.mean() - 0.25) < 0.01
    assert training_noise(NetConfig(), 4, 2, 10) == (None, None)


def test_rolled_unrolling_equals_unrolling_the_rolled_image():
    import torch
    from lecun1989.engines import layers as L
    from lecun1989.engines.fast import roll_sources, shift_indices
    idx1 = L.im2col_index(16, 5, 2, 2)
    rolls, ids = roll_sources(1)
    idx1s = shift_indices(idx1, rolls)
    image = np.random.default_rng(0).random((1, 256))
    for (dy, dx), k in ids.items():
        rolled = torch.roll(torch.from_numpy(image).view(1, 1, 16, 16), (dy, dx), (2, 3)).numpy().reshape(1, 256)
        a, b = np.empty((1, 25, 64)), np.empty((1, 25, 64))
        L.im2col(np.append(image, -1.0)[None], idx1s[k], a)    # images carry the pad value last
        L.im2col(np.append(rolled, -1.0)[None], idx1, b)
        assert np.array_equal(a, b)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_lane_kernels_vector_steps_give_the_bits_of_the_plain_loops(dtype):
    """AdamW, momentum and SDLM's running curvature for a group of LANES runs, each lane with settings
    of its own: simd.py's vector steps, as the lane kernels take them, and steps.py's elementwise
    loops, 20 steps from the same state, bit for bit."""
    from lecun1989.engines import steps
    from lecun1989.engines.network import N_FLAT
    from lecun1989.engines.simd import LANES as V

    @uncached
    def vector(kind, p, g, h, m, v, st, hyper, t):
        if kind == -1:
            steps.follow_curvature(h, g, st, hyper, V)
        else:
            steps.update(kind, p, g, h, m, v, st, hyper, V, t)

    @uncached
    def plain(kind, p, g, h, m, v, st, hyper, t):
        if kind == -1:
            steps.follow_plain(h, g, st, hyper, V)
        elif kind == steps.MOMENTUM:
            steps.momentum_plain(p, g, m, hyper, V)
        else:
            decay, step_size, c2 = steps.adamw_factors(p, hyper, V, t)
            steps.adamw_plain(p, g, m, v, hyper, decay, step_size, c2, V)

    settings = {steps.ADAMW: [3e-4, 0.9, 0.999, 1e-8, 0.01], steps.MOMENTUM: [0.01, 0.9], -1: [1e-3, 0.02, 0.01]}
    rng = np.random.default_rng(5)
    n = N_FLAT * V
    for kind, values in settings.items():
        hyper = (np.repeat(values, V) * (1 - 1e-3 * rng.random(len(values) * V))).astype(dtype)
        grads = (rng.standard_normal((20, n)) * 1e-2).astype(dtype)
        start = [rng.standard_normal(n).astype(dtype), np.abs(grads[0]), np.zeros(n, dtype), np.zeros(n, dtype)]
        ends = []
        for fn in (plain, vector):
            p, h, m, v = (a.copy() for a in start)
            st = np.zeros(n, dtype)
            for t in range(20):
                fn(kind, p, grads[t], h, m, v, st, hyper, t + 1)
            ends.append((p, h, m, v, st))
        for a, b in zip(*ends):
            assert np.isfinite(a).all() and np.array_equal(a, b), kind


@pytest.mark.data
def test_a_run_on_the_compiled_engine_never_loads_torch(usps, tmp_path):
    """The initial weights are drawn with numpy (draws.py) and the compiled engine needs nothing of
    torch, so a run starts a second sooner."""
    code = ("import sys\nfrom lecun1989.cli import main\n"
            f"assert main(['repro', '--train-size', '50', '--test-size', '20', '--passes', '1', '--quiet', "
            f"'--out', {str(tmp_path / 'out')!r}]) == 0\n"
            "print('torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.stdout.strip().splitlines()[-1:] == ["False"], done.stdout + done.stderr


@pytest.mark.data
def test_paper_with_its_rejection_measure_and_predict_never_load_torch(usps, tmp_path):
    """The rejection measure and reading run the compiled forward pass (trained.TrainedNet), not torch's."""
    from PIL import Image
    image = tmp_path / "digit.png"
    Image.fromarray(((1 - usps.test.images[0, 0]) * 127.5).astype(np.uint8)).resize((64, 64)).save(image)
    out = tmp_path / "paper"
    code = ("import sys\nfrom lecun1989.cli import main\n"
            f"assert main(['paper', '--train-size', '50', '--test-size', '40', '--passes', '1', '--seeds', '0-1', "
            f"'--quiet', '--out', {str(out)!r}]) == 0\n"
            f"assert main(['predict', {str(out)!r}, {str(image)!r}]) == 0\n"
            "print('torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert "reject for 1%" in done.stdout and "not measured" not in done.stdout, done.stdout + done.stderr
    assert done.stdout.strip().splitlines()[-1:] == ["False"], done.stdout + done.stderr
