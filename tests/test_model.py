import numpy as np
import pytest
import torch

from lecun1989 import paper
from lecun1989.cli import main
from lecun1989.errors import LecunError
from lecun1989.config import connection_table
from lecun1989.draws import initial_weights
from lecun1989.model import Net1989, NetConfig, table_groups

PAPER_LAYERS = {  # layer: (units, connections, free parameters), from the paper's section 5.1
    "H1": (768, 19968, 1068), "H2": (192, 38592, 2592), "H3": (30, 5790, 5790), "output": (10, 310, 310)}


def test_layer_and_total_counts_equal_the_papers():
    rows = Net1989().describe()
    for r in rows[1:]:
        assert (r["units"], r["connections"], r["parameters"]) == PAPER_LAYERS[r["layer"]]
    assert sum(r["units"] for r in rows) == paper.UNITS
    assert sum(r["connections"] for r in rows) == paper.CONNECTIONS
    assert sum(r["parameters"] for r in rows) == paper.PARAMETERS
    assert sum(p.numel() for p in Net1989().parameters()) == paper.PARAMETERS


def test_the_benchs_multiply_adds_are_the_networks_connections():
    """bench's bound counts each layer's multiply-adds from the paper's sizes: with one bias per unit
    beyond the image they are the paper's 64,660 connections, and a step is about 170,000 of them."""
    from lecun1989.bench import multiply_adds
    m = multiply_adds()
    net = Net1989(NetConfig(table="block"))
    weights = {"H1": net.H1w, "H2": net.H2w, "H3": net.H3w, "output": net.outw}
    h1_positions, h2_positions = paper.H1_SIZE ** 2, paper.H2_SIZE ** 2
    assert m["H1"] == weights["H1"].numel() * h1_positions and m["H2"] == weights["H2"].numel() * h2_positions
    assert m["H3"] == weights["H3"].numel() and m["output"] == weights["output"].numel()
    assert m["forward"] + paper.UNITS - paper.IMAGE_SIZE ** 2 == paper.CONNECTIONS
    assert m["step"] == 3 * m["forward"] - m["H1"] == 171_780


def test_cli_info_prints_counts_beside_the_paper(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "1,256       64,660       9,760" in out and "matches the paper" in out


def test_gradients_match_finite_differences_for_every_parameter():
    torch.manual_seed(0)
    net = Net1989(NetConfig(output_bias=-1.0), seed=3).double()
    x = torch.rand(2, 1, 16, 16, dtype=torch.float64) * 2 - 1
    t = -torch.ones(2, 10, dtype=torch.float64)
    t[0, 3] = t[1, 7] = 1
    loss = torch.mean((t - net(x)) ** 2)
    loss.backward()
    rng = np.random.default_rng(0)
    eps = 1e-6
    for name in Net1989.PARAMS:
        p = getattr(net, name)
        flat = p.data.view(-1)
        # 40 entries of every tensor (all of a small one), central differences in float64
        for i in rng.choice(flat.numel(), size=min(40, flat.numel()), replace=False):
            old = flat[i].item()
            with torch.no_grad():
                flat[i] = old + eps
                up = torch.mean((t - net(x)) ** 2).item()
                flat[i] = old - eps
                down = torch.mean((t - net(x)) ** 2).item()
                flat[i] = old
            numeric = (up - down) / (2 * eps)
            assert abs(numeric - p.grad.view(-1)[i].item()) <= 1e-8 + 1e-5 * abs(numeric), (name, i)


@pytest.mark.parametrize("table_name", ["block", "cyclic"])
def test_h2_planes_read_only_their_eight_h1_planes(table_name):
    net = Net1989(NetConfig(table=table_name))
    table = connection_table(table_name)
    h1 = torch.rand(1, 12, 8, 8)
    with torch.no_grad():
        base = net.h2_sums(torch.nn.functional.pad(h1, (2,) * 4, value=-1))
        for plane in range(12):
            h = h1.clone()
            h[0, plane] += 1
            moved = net.h2_sums(torch.nn.functional.pad(h, (2,) * 4, value=-1))
            changed = (moved - base).abs().amax(dim=(0, 2, 3)) > 0
            assert changed.tolist() == [plane in row for row in table.tolist()]


@pytest.mark.parametrize("table_name", ["block", "cyclic"])
def test_h2_weight_k_of_plane_o_weighs_h1_plane_table_o_k(table_name):
    # H2's sums written out as 12 single-plane convolutions, one per (H2 plane, connection), in float64
    net = Net1989(NetConfig(table=table_name), seed=4).double()
    table = connection_table(table_name)
    h1p = torch.rand(3, 12, 12, 12, dtype=torch.float64)
    expected = torch.zeros(3, 12, 4, 4, dtype=torch.float64)
    with torch.no_grad():
        for o in range(12):
            for k, c in enumerate(table[o]):
                expected[:, o] += torch.nn.functional.conv2d(h1p[:, [c]], net.H2w[o:o + 1, [k]], stride=2)[:, 0]
        assert torch.allclose(net.h2_sums(h1p), expected, rtol=1e-12, atol=1e-12)


def test_block_tables_groups_are_the_reproductions_three_convolutions():
    assert table_groups(connection_table("block")) == [
        (slice(0, 4), [0, 1, 2, 3, 4, 5, 6, 7]),
        (slice(4, 8), [4, 5, 6, 7, 8, 9, 10, 11]),
        (slice(8, 12), [0, 1, 2, 3, 8, 9, 10, 11])]
    assert [planes for planes, _ in table_groups(connection_table("cyclic"))] == [slice(o, o + 1) for o in range(12)]


def test_init_rules_and_biases():
    sqrt_net, lin_net = Net1989(NetConfig(init="sqrt")), Net1989(NetConfig(init="linear"))
    for name, fan_in in (("H1w", 25), ("H2w", 200), ("H3w", 192), ("outw", 30)):
        w_sqrt, w_lin = getattr(sqrt_net, name), getattr(lin_net, name)
        assert w_sqrt.abs().max() <= 2.4 / fan_in ** 0.5 and w_sqrt.abs().max() > 0.9 * 2.4 / fan_in ** 0.5
        assert w_lin.abs().max() <= 2.4 / fan_in and w_lin.abs().max() > 0.9 * 2.4 / fan_in
    for name in ("H1b", "H2b", "H3b", "outb"):
        assert (getattr(sqrt_net, name) == 0).all()
    assert (Net1989(NetConfig(output_bias=-1)).outb == -1).all()


@pytest.mark.parametrize("init", ["sqrt", "linear"])
@pytest.mark.parametrize("seed", [1337, 0, 2 ** 31 + 5, 2 ** 32 - 1])
def test_same_seed_gives_the_reproductions_initial_weights(seed, init):
    """The best-known reproduction: torch.manual_seed(1337), then torch.rand per weight tensor in order,
    scaled in float32. The package draws them with numpy (draws.py), so a run starts without torch."""
    g = torch.Generator().manual_seed(seed)
    shapes = [(25, (12, 1, 5, 5)), (200, (12, 8, 5, 5)), (192, (192, 30)), (30, (30, 10))]
    ref = [(torch.rand(*s, generator=g) - 0.5) * 2 * 2.4 / (f ** 0.5 if init == "sqrt" else f) for f, s in shapes]
    config = NetConfig(init=init)
    weights, net = initial_weights(config, seed), Net1989(config, seed)
    for r, name in zip(ref, ("H1w", "H2w", "H3w", "outw")):
        assert weights[name].dtype == np.float32 and np.array_equal(r.numpy(), weights[name])
        assert torch.equal(r, getattr(net, name).detach())
    assert not np.array_equal(initial_weights(config, seed ^ 1)["H1w"], weights["H1w"])


def test_scaled_tanh_is_lecuns_sigmoid():
    net = Net1989(NetConfig(activation="scaled_tanh"))
    a = torch.linspace(-3, 3, 7)
    assert torch.allclose(net.act(a), 1.7159 * torch.tanh(2 * a / 3))
    assert abs(float(net.act(torch.tensor(1.0))) - 1.0) < 1e-3


def test_params_round_trip_and_unknown_settings():
    a, b = Net1989(seed=1), Net1989(seed=2)
    b.set_params(a.get_params())
    assert all(np.array_equal(v, b.get_params()[k]) for k, v in a.get_params().items())
    with pytest.raises(LecunError, match="unknown activation"):
        NetConfig(activation="sigmoid")


@pytest.mark.parametrize("n", [1, 50])
def test_h2_with_the_block_table_is_the_reproductions_computation_bit_for_bit(n):
    # repro.py's H2: three 8-plane convolutions, concatenated; the same sums and gradients, bit for bit
    F = torch.nn.functional
    net = Net1989(seed=1337)
    h1p = (torch.rand(n, 12, 12, 12) * 2 - 1).requires_grad_()
    w = net.H2w.detach().clone().requires_grad_()
    grad = torch.randn(n, 12, 4, 4)
    slice1 = F.conv2d(h1p[:, 0:8], w[0:4], stride=2)
    slice2 = F.conv2d(h1p[:, 4:12], w[4:8], stride=2)
    slice3 = F.conv2d(torch.cat((h1p[:, 0:4], h1p[:, 8:12]), dim=1), w[8:12], stride=2)
    expected = torch.cat((slice1, slice2, slice3), dim=1)
    expected.backward(grad)
    expected_grads = h1p.grad.clone(), w.grad.clone()
    h1p.grad = None
    sums = net.h2_sums(h1p)
    sums.backward(grad)
    assert torch.equal(sums, expected)
    assert torch.equal(h1p.grad, expected_grads[0]) and torch.equal(net.H2w.grad, expected_grads[1])


def test_figures_of_a_saved_network_are_computed_on_one_thread(monkeypatch):
    """predict, reject and the pictures read a network through outputs()/activations(): torch's sums
    split over threads would make their last bits depend on the machine's thread count."""
    net = Net1989().double()
    seen, layers = [], Net1989.layers
    monkeypatch.setattr(Net1989, "layers", lambda self, x: seen.append(torch.get_num_threads()) or layers(self, x))
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        out = net.outputs(np.zeros((3, 16, 16)))
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    assert seen == [1] and out.shape == (3, 10) and out.dtype == np.float64
