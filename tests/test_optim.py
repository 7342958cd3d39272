"""The paper's optimizer: bbprop's second derivatives, the step sizes, the schedule, and training."""

import numpy as np
import pytest
import torch

from lecun1989 import paper
from lecun1989.cli import main
from lecun1989.engines import initial_runs
from lecun1989.engines import layers as L
from lecun1989.engines.fast import FastEngine
from lecun1989.engines.network import Settings, unpack
from lecun1989.engines.single import estimate_hessian
from lecun1989.engines.torch_ref import TorchEngine, bbprop
from lecun1989.errors import LecunError
from lecun1989.model import ACTIVATION_SCALES, Net1989, NetConfig
from lecun1989.optim import OptimConfig, parse_schedule


def brute_force_bbprop(model: Net1989, x: np.ndarray) -> dict[str, np.ndarray]:
    """The recursion written out connection by connection, for one image x (16, 16), in float64."""
    A, S = ACTIVATION_SCALES[model.config.activation]
    with torch.no_grad():
        h1, h2, h3, out = (t[0].double().numpy() for t in model.layers(torch.from_numpy(x).double()[None, None]))
    w = {k: v.astype(np.float64) for k, v in model.get_params().items()}
    fp2 = lambda y: (S / A * (A * A - y * y)) ** 2
    h = {k: np.zeros_like(v) for k, v in w.items()}
    dd_out = 2 / 10 * fp2(out)
    for i in range(30):
        for j in range(10):
            h["outw"][i, j] += h3[i] ** 2 * dd_out[j]
    h["outb"] = dd_out
    dd3 = np.array([sum(w["outw"][i, j] ** 2 * dd_out[j] for j in range(10)) for i in range(30)]) * fp2(h3)
    flat2 = h2.reshape(-1)
    for i in range(192):
        for j in range(30):
            h["H3w"][i, j] += flat2[i] ** 2 * dd3[j]
    h["H3b"] = dd3
    dd2 = np.array([sum(w["H3w"][i, j] ** 2 * dd3[j] for j in range(30)) for i in range(192)]).reshape(12, 4, 4) * fp2(h2)

    def conv(inp, W, table, dd, hW):
        """Every connection of a 5x5 stride-2 convolution over inp padded by 2 with -1."""
        d_in = np.zeros_like(inp)
        for o in range(dd.shape[0]):
            for oy in range(dd.shape[1]):
                for ox in range(dd.shape[2]):
                    for k, c in enumerate(table[o]):
                        for ty in range(5):
                            for tx in range(5):
                                iy, ix = 2 * oy + ty - 2, 2 * ox + tx - 2
                                inside = 0 <= iy < inp.shape[1] and 0 <= ix < inp.shape[2]
                                v = inp[c, iy, ix] if inside else paper.PAD_VALUE
                                hW[o, k, ty, tx] += v * v * dd[o, oy, ox]
                                if inside:
                                    d_in[c, iy, ix] += W[o, k, ty, tx] ** 2 * dd[o, oy, ox]
        return d_in

    dd1 = conv(h1, w["H2w"], model.table.numpy(), dd2, h["H2w"]) * fp2(h1)
    h["H2b"] = dd2
    conv(x[None].astype(np.float64), w["H1w"], np.zeros((12, 1), dtype=int), dd1, h["H1w"])
    h["H1b"] = dd1
    return h


@pytest.mark.parametrize("activation", ["tanh", "scaled_tanh"])
def test_bbprop_equals_the_recursion_computed_connection_by_connection(usps, activation):
    net = NetConfig(activation=activation, table="cyclic", output_bias=-1.0)
    model = Net1989(net, seed=3).double()
    x = usps.train.images[7, 0]
    expected = brute_force_bbprop(model, x)
    reference = bbprop(model, torch.from_numpy(x).double()[None, None])
    ds = usps.subset(8, 1)
    engine = FastEngine(net, initial_runs(net, [(3, 0.1)]), ds, dtype="float64")
    h = np.zeros(engine.params.shape)
    estimate_hessian(engine.settings, engine.params, engine.splits["train"], np.array([7]), h)
    fast = unpack(h[0])
    for name, e in expected.items():
        assert np.abs(reference[name].numpy() - e).max() <= 1e-12 * np.abs(e).max(), name
        assert np.abs(fast[name] - e).max() <= 1e-12 * np.abs(e).max(), name
        assert (e >= 0).all() and e.max() > 0


def test_bbprop_of_one_layer_is_the_exact_gauss_newton_diagonal():
    """For y = f(W x + b) and the MSE, the recursion drops nothing but f'': it is diag(J^T (2/n) J)."""
    rng = np.random.default_rng(0)
    x, W, b = rng.normal(size=30), rng.normal(size=(10, 30)) * 0.3, rng.normal(size=10) * 0.3
    settings = Settings(*ACTIVATION_SCALES["scaled_tanh"], -1.0, False, False, 1.0, np.zeros((12, 8), np.int64))
    y = np.empty(10)
    L.fc_fprop(x, W, b, y)
    L.act_fprop(y, settings)
    ddy, dd, hW, hb, ddx = np.empty(10), np.empty(10), np.empty((10, 30)), np.empty(10), np.empty(30)
    L.mse_bbprop(y, ddy)
    L.act_bbprop(y, ddy, settings, dd)
    L.fc_bprop(x, W, dd, hW, hb, ddx, True, True)

    def f(W_, b_):
        return 1.7159 * torch.tanh(2 / 3 * (W_ @ torch.from_numpy(x) + b_))

    JW, Jb = torch.func.jacrev(f, argnums=(0, 1))(torch.from_numpy(W), torch.from_numpy(b))
    JW = JW.reshape(10, -1)
    assert np.allclose(hW.reshape(-1), (JW ** 2).sum(0).numpy() * 2 / 10, rtol=1e-12, atol=0)
    assert np.allclose(hb, (Jb ** 2).sum(0).numpy() * 2 / 10, rtol=1e-12, atol=0)


@pytest.mark.parametrize("hessian", ["pass", "running"])
@pytest.mark.parametrize("lanes", ["single", "lanes"], ids=["single-run kernels", "lane kernels"])
def test_sdlm_float64_equals_reference_within_1e_9(usps, hessian, lanes, side_by_side):
    net = NetConfig(output_bias=-1.0)
    optim = OptimConfig("sdlm", schedule="1:1,0.5", hessian_samples=60, hessian=hessian)
    runs = initial_runs(net, [(2, 5e-4), (3, 1e-3)])
    fast, ref = side_by_side(net, optim, runs, usps.subset(200, 100), lanes, train=2)
    assert [e["train"].misses for e in fast.evaluate()] == [e["train"].misses for e in ref.evaluate()]


@pytest.mark.parametrize("lanes", ["single", "lanes"], ids=["single-run kernels", "lane kernels"])
def test_sdlm_running_curvature_sees_the_shifted_dropped_example_in_every_engine(usps, lanes):
    """With rolls and dropout, the running curvature is that of the example as its gradient saw it
    (docs/FIDELITY.md): the reference and both kernel sets agree, and it differs from the clean one."""
    net = NetConfig(output_bias=-1.0, shift=1, dropout=0.25)
    optim = OptimConfig("sdlm", hessian_samples=40, hessian="running")
    ds = usps.subset(120, 40)
    runs = initial_runs(net, [(2, 5e-4), (3, 1e-3)])
    fast = FastEngine(net, runs, ds, optim, "float64", passes=1, kernels=lanes)
    ref = TorchEngine(net, runs, ds, optim, "float64", passes=1)
    fast.train_pass()
    ref.train_pass()
    for a, b, sa, sb in zip(fast.get_params(), ref.get_params(), fast.get_state(), ref.get_state()):
        for name in a:
            assert np.abs(a[name] - b[name]).max() <= 1e-9, name
            assert np.abs(sa["h." + name] - sb["h." + name]).max() <= 1e-9 * np.abs(sb["h." + name]).max(), name
    model = Net1989(net, seed=2).double()
    x = torch.from_numpy(ds.train.images[:1]).double()
    keep = np.zeros((12, 4, 4), dtype=bool)
    keep[:6] = True
    clean, noisy = bbprop(model, x), bbprop(model, x, (1, -1), keep)
    assert not torch.equal(clean["H1w"], noisy["H1w"])
    assert torch.equal(noisy["H3w"].reshape(12, 16, -1)[6:], torch.zeros_like(noisy["H3w"].reshape(12, 16, -1)[6:]))


def test_sdlm_learns_and_batches_keep_runs_independent(usps):
    net = NetConfig(output_bias=-1.0)
    ds = usps.subset(500, 200)
    optim = OptimConfig("sdlm", hessian_samples=100)
    before = FastEngine(net, initial_runs(net, [(1, 1e-3)]), ds, optim).evaluate()[0]
    batch = FastEngine(net, initial_runs(net, [(1, 1e-3), (2, 1e-3), (1, 3e-4)]), ds, optim)
    alone = FastEngine(net, initial_runs(net, [(1, 1e-3)]), ds, optim)
    for _ in range(3):
        batch.train_pass()
        alone.train_pass()
    after = alone.evaluate()[0]
    assert after["train"].misses < 0.1 * before["train"].misses
    assert after["test"].misses < 0.3 * before["test"].misses
    same = [all(np.array_equal(a[k], b[k]) for k in a) for a, b in
            ((batch.get_params()[0], alone.get_params()[0]), (batch.get_params()[0], batch.get_params()[2]))]
    assert same == [True, False]


def test_schedule_factors_and_hessian_windows():
    lenet = OptimConfig(schedule="lenet5")
    assert [lenet.factor(p, 23) for p in range(1, 15)] == [1, 1, .4, .4, .4, .2, .2, .2, .1, .1, .1, .1, .02, .02]
    assert [OptimConfig().factor(p, 23) for p in (1, 23)] == [1, 1]
    linear = OptimConfig(schedule="linear:0.25")
    assert [linear.factor(p, 4) for p in (1, 2, 3, 4)] == pytest.approx([1, 0.75, 0.5, 0.25], abs=1e-15)
    assert linear.factor(1, 1) == 1
    assert parse_schedule("2:1,0.5") == [(2.0, 1), (0.5, None)]
    opt = OptimConfig("sdlm", hessian_samples=300)
    assert list(opt.hessian_examples(1, 1000)[[0, -1]]) == [0, 299]
    assert list(opt.hessian_examples(4, 1000)[[0, -1]]) == [900, 199]   # wraps around


@pytest.mark.parametrize("kwargs", [dict(schedule="1:2"), dict(schedule="x"), dict(schedule="1:0,1"),
                                    dict(schedule="linear:-1"), dict(name="adamw", weight_decay=-1),
                                    dict(name="adam"), dict(mu=0), dict(hessian="sometimes"), dict(decay=0)])
def test_bad_optimizer_settings_are_refused(kwargs):
    with pytest.raises(LecunError):
        OptimConfig(**kwargs)


def test_cli_bad_schedule_is_one_line(capsys, tmp_path):
    assert main(["repro", "--optimizer", "sdlm", "--schedule", "1:2", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "bad schedule" in err
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("lanes", ["single", "lanes"], ids=["single-run kernels", "lane kernels"])
def test_momentum_float64_equals_reference_within_1e_9(usps, lanes):
    """SGD with momentum (Rumelhart, Hinton & Williams 1986) in both kernel sets and the reference,
    with a schedule (the change carries the old learning rate's steps into the next pass)."""
    net = NetConfig(output_bias=-1.0)
    optim = OptimConfig("momentum", schedule="1:1,0.5", momentum=0.8)
    ds = usps.subset(150, 60)
    runs = initial_runs(net, [(2, 0.01), (3, 0.005)])
    fast = FastEngine(net, runs, ds, optim, "float64", passes=2, kernels=lanes)
    ref = TorchEngine(net, runs, ds, optim, "float64", passes=2)
    for _ in range(2):
        fast.train_pass()
        ref.train_pass()
    for a, b, sa, sb in zip(fast.get_params(), ref.get_params(), fast.get_state(), ref.get_state()):
        for name in a:
            assert np.abs(a[name] - b[name]).max() <= 1e-9, name
            assert np.abs(sa["m." + name] - sb["m." + name]).max() <= 1e-9, name
    assert [e["train"].misses for e in fast.evaluate()] == [e["train"].misses for e in ref.evaluate()]
    plain = FastEngine(net, runs, ds, OptimConfig("sgd", schedule="1:1,0.5"), "float64", passes=2, kernels=lanes)
    plain.train_pass()
    plain.train_pass()
    assert not np.array_equal(flat_params(plain), flat_params(fast))


def flat_params(engine):
    return np.concatenate([v.ravel() for v in engine.get_params()[0].values()])


def test_momentum_from_the_command_line(usps, tmp_path, capsys):
    common = ["repro", "--train-size", "100", "--test-size", "40", "--passes", "1", "--optimizer", "momentum",
              "--quiet"]
    assert main([*common, "--momentum", "0.5", "--out", str(tmp_path / "a")]) == 0
    assert "sgd lr 0.03 with momentum 0.5" in (tmp_path / "a" / "log.txt").read_text()
    capsys.readouterr()
    assert main([*common, "--momentum", "1", "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--momentum must be in [0, 1)" in err and not (tmp_path / "b").exists()
