"""nn.Module: parameters found by walking attributes, their names and labels, state dicts,
gradients, and the printed summary, on both engines."""

import re

import numpy as np
import pytest

import nn
from autograd import Tensor, Value

from .reference import TensorLike, numbers

ENGINES = ["tensor", "value"]


class Stack(nn.Module):
    """A user model that never lists its parameters: a list holds an RNN and a Linear,
    a dict holds another Linear, and one bare Tensor is a parameter of its own."""

    def __init__(self, engine="tensor"):
        self.blocks = [nn.RNN(2, 3, num_layers=2, engine=engine, seed=1), nn.Linear(3, 4, engine=engine, seed=2)]
        self.heads = {"out": nn.Linear(4, 1, bias=False, engine=engine, seed=3)}
        self.note = "not a parameter"
        self.constant = Tensor(np.ones(3))  # requires_grad=False: a constant, not a parameter
        if engine == "tensor":
            self.scale = Tensor(2.0, requires_grad=True)

    def forward(self, x):
        out, _ = self.blocks[0](x)
        return self.heads["out"](self.blocks[1](out))


STACK_NAMES = [
    "blocks.0.cells.0.W_xh", "blocks.0.cells.0.W_hh", "blocks.0.cells.0.b_h",
    "blocks.0.cells.1.W_xh", "blocks.0.cells.1.W_hh", "blocks.0.cells.1.b_h",
    "blocks.1.W", "blocks.1.b", "heads.out.W",
]
STACK_SHAPES = [(2, 3), (3, 3), (3,), (3, 3), (3, 3), (3,), (3, 4), (4,), (4, 1)]


# --- walking the attributes --------------------------------------------------------------
def test_attributes_whose_names_start_with_an_underscore_are_walked_as_in_pytorch():
    # they were skipped: a submodule kept as self._inner was never trained nor saved
    class Private(nn.Module):
        def __init__(self):
            self._inner = nn.Linear(2, 2, seed=0)
            self._scale = Tensor(np.ones(2), requires_grad=True)
            self.w = Tensor(np.ones(2), requires_grad=True)

    m = Private()
    assert [n for n, _ in m.named_parameters()] == ["_inner.W", "_inner.b", "_scale", "w"]
    assert m._inner.W.label == "_inner.W" and "(_inner): Linear(" in repr(m)
    assert len(nn.optim.SGD(m.parameters(), lr=0.1).params) == 4 and sorted(m.state_dict())[0] == "_inner.W"


def test_user_module_finds_parameters_in_lists_dicts_and_submodules():
    m = Stack()
    named = list(m.named_parameters())
    assert [n for n, _ in named] == STACK_NAMES + ["scale"]
    assert [p.shape for _, p in named] == STACK_SHAPES + [()]
    rnn, lin, head = m.blocks[0], m.blocks[1], m.heads["out"]
    expected = [rnn.cells[0].W_xh, rnn.cells[0].W_hh, rnn.cells[0].b_h, rnn.cells[1].W_xh,
                rnn.cells[1].W_hh, rnn.cells[1].b_h, lin.W, lin.b, head.W, m.scale]
    assert len(m.parameters()) == len(expected)
    assert all(p is q for p, q in zip(m.parameters(), expected))


def test_user_module_parameters_get_their_full_names_as_labels():
    m = Stack()
    assert [p.label for p in m.parameters()] == STACK_NAMES + ["scale"]


def test_a_module_with_no_constructor_of_its_own_labels_what_is_assigned_to_it():
    class Net(nn.Module):  # its attributes are all assigned from outside
        def forward(self, x):
            return self.rnn(x)

    net = Net()
    net.rnn = nn.RNN(2, 3, seed=0)
    net.W = Tensor(np.ones((2, 2)), requires_grad=True)
    assert [p.label for p in net.parameters()] == ["rnn.cells.0.W_xh", "rnn.cells.0.W_hh", "rnn.cells.0.b_h", "W"]
    assert [name for name, _ in net.named_parameters()] == [p.label for p in net.parameters()]


@pytest.mark.parametrize("state", [None, [("W", np.ones((2, 3)))], "W"])
def test_load_state_dict_of_something_that_is_not_a_dict_says_what_it_expects(state):
    m = nn.Linear(2, 3, seed=0)
    with pytest.raises(TypeError, match=rf"^Linear.load_state_dict: expected a dict of name -> array \(as "
                                        rf"state_dict\(\) gives\), got {type(state).__name__}$"):
        m.load_state_dict(state)
    with pytest.raises(TypeError, match=r"got list$"):
        m.load_state_dict(m.parameters())


def test_value_engine_labels_every_entry_with_name_and_index():
    m = Stack(engine="value")
    assert [n for n, _ in m.named_parameters()] == STACK_NAMES
    for name, p in m.named_parameters():
        assert p.dtype == object
        for index, v in np.ndenumerate(p):
            assert isinstance(v, Value)
            assert v.label == f"{name}[{','.join(map(str, index))}]"
    assert m.blocks[0].cells[1].W_hh[2, 0].label == "blocks.0.cells.1.W_hh[2,0]"
    assert m.blocks[1].b[3].label == "blocks.1.b[3]"


@pytest.mark.parametrize("engine", ENGINES)
def test_rnn_model_parameter_names(engine):
    m = nn.RNNModel(2, 3, 4, num_layers=2, engine=engine)
    assert [n for n, _ in m.named_parameters()] == [
        "rnn.cells.0.W_xh", "rnn.cells.0.W_hh", "rnn.cells.0.b_h",
        "rnn.cells.1.W_xh", "rnn.cells.1.W_hh", "rnn.cells.1.b_h", "W_hy", "b_y",
    ]
    assert m.rnn.cells[0].W_hh is dict(m.named_parameters())["rnn.cells.0.W_hh"]
    if engine == "tensor":
        assert [p.label for _, p in m.named_parameters()] == [n for n, _ in m.named_parameters()]
    else:
        assert m.rnn.cells[0].W_hh[1, 2].label == "rnn.cells.0.W_hh[1,2]"
        assert m.W_hy[2, 3].label == "W_hy[2,3]"
        assert m.b_y[0].label == "b_y[0]"


def test_subclass_of_a_layer_relabels_once_its_own_constructor_has_finished():
    class WithHead(nn.RNNModel):
        def __init__(self):
            super().__init__(2, 3, 2, mode="many_to_many")
            self.head = nn.Linear(2, 1)

    m = WithHead()
    assert [p.label for p in m.parameters()] == [
        "rnn.cells.0.W_xh", "rnn.cells.0.W_hh", "rnn.cells.0.b_h", "W_hy", "b_y", "head.W", "head.b",
    ]


def test_a_single_value_attribute_is_a_parameter():
    class Scale(nn.Module):
        def __init__(self):
            self.s = Value(2.0)
            self.layer = nn.Linear(1, 1, engine="value")

    m = Scale()
    assert [n for n, _ in m.named_parameters()] == ["s", "layer.W", "layer.b"]
    assert m.s.label == "s" and m.num_parameters() == 3
    assert m.state_dict()["s"].shape == ()


def test_labels_of_a_layer_built_on_its_own_are_its_own_names():
    cell = nn.RNNCell(2, 3)
    assert [p.label for p in cell.parameters()] == ["W_xh", "W_hh", "b_h"]
    lin = nn.Linear(2, 3, engine="value")
    assert lin.W[1, 2].label == "W[1,2]"
    assert lin.b[0].label == "b[0]"


def first_label(p) -> str:
    """A parameter's label, or (value engine) its first entry's label without the index."""
    return p.label if isinstance(p, Tensor) else p.flat[0].label.split("[")[0]


@pytest.mark.parametrize("engine", ENGINES)
def test_an_attribute_set_on_a_submodule_later_keeps_every_full_name(engine):
    m = nn.RNNModel(2, 3, 1, engine=engine, seed=0)
    m.rnn.cells[0].W_hh = nn.RNNCell(2, 3, engine=engine).W_hh  # set on the cell, two levels down
    m.rnn.cells[0].extra = nn.Linear(3, 1, engine=engine)
    named = list(m.named_parameters())
    assert [n for n, _ in named] == ["rnn.cells.0.W_xh", "rnn.cells.0.W_hh", "rnn.cells.0.b_h",
                                     "rnn.cells.0.extra.W", "rnn.cells.0.extra.b", "W_hy", "b_y"]
    assert [first_label(p) for _, p in named] == [n for n, _ in named]


def test_a_list_of_modules_assigned_later_is_named_and_one_changed_in_place_at_the_next_draw():
    m = nn.RNNModel(2, 3, 1, seed=0)
    m.heads = [nn.Linear(3, 2), {"aux": nn.Linear(3, 1)}]
    assert [m.heads[0].W.label, m.heads[1]["aux"].b.label] == ["heads.0.W", "heads.1.aux.b"]
    m.rnn.cells[0] = nn.RNNCell(2, 3, seed=1)  # in place: no attribute assignment to see
    assert m.rnn.cells[0].W_hh.label == "W_hh"
    m.draw(np.zeros((2, 1, 2)))
    assert m.rnn.cells[0].W_hh.label == "rnn.cells.0.W_hh"


def test_bias_false_leaves_no_bias_parameter():
    m = nn.RNNModel(2, 3, 1, bias=False)
    assert [n for n, _ in m.named_parameters()] == ["rnn.cells.0.W_xh", "rnn.cells.0.W_hh", "W_hy"]


def test_named_modules_lists_every_submodule_depth_first():
    m = Stack()
    mods = list(m.named_modules())
    assert mods[0][1] is m
    assert [mod for _, mod in mods[1:]] == [
        m.blocks[0], m.blocks[0].cells[0], m.blocks[0].cells[1], m.blocks[1], m.heads["out"],
    ]
    # A module's own parameter names, after its name, are the model's names for them.
    full = dict(m.named_parameters())
    for prefix, mod in mods:
        for name, p in mod.named_parameters():
            assert full[".".join(filter(None, [prefix.rstrip("."), name]))] is p


def test_bug_named_modules_names_have_no_trailing_dot():
    # Parameter names are "blocks.0.cells.1.W_hh"; the module holding it should be called
    # "blocks.0.cells.1" (as in PyTorch), not "blocks.0.cells.1.".
    names = [n for n, _ in Stack().named_modules()]
    assert names == ["", "blocks.0", "blocks.0.cells.0", "blocks.0.cells.1", "blocks.1", "heads.out"]


def test_bug_shared_submodule_parameters_are_listed_once():
    # Weight tying: the same Linear reached through two attributes. Listing its parameters
    # twice doubles num_parameters and makes an optimizer update them twice per step.
    class Tied(nn.Module):
        def __init__(self):
            self.encoder = nn.Linear(3, 3)
            self.decoder = self.encoder

    m = Tied()
    assert len(m.parameters()) == 2
    assert m.num_parameters() == 12


def test_num_parameters_closed_forms():
    assert nn.Linear(5, 3).num_parameters() == 5 * 3 + 3
    assert nn.Linear(5, 3, bias=False).num_parameters() == 5 * 3
    assert nn.MLP(4, [6, 5, 2]).num_parameters() == (4 * 6 + 6) + (6 * 5 + 5) + (5 * 2 + 2)
    n_in, H, n_out = 4, 7, 3
    assert nn.RNNCell(n_in, H).num_parameters() == n_in * H + H * H + H
    for L in (1, 2, 3):
        rnn_count = (n_in * H + H * H + H) + (L - 1) * (H * H + H * H + H)
        assert nn.RNN(n_in, H, num_layers=L).num_parameters() == rnn_count
        assert nn.RNNModel(n_in, H, n_out, num_layers=L).num_parameters() == rnn_count + H * n_out + n_out
        assert nn.RNNModel(n_in, H, n_out, num_layers=L, bias=False).num_parameters() == (
            n_in * H + H * H + (L - 1) * 2 * H * H + H * n_out
        )
    assert nn.RNNModel(2, 3, 2, engine="value", num_layers=2).num_parameters() == (
        (2 * 3 + 9 + 3) + (9 + 9 + 3) + 3 * 2 + 2
    )
    assert Stack().num_parameters() == (6 + 9 + 3) + (9 + 9 + 3) + (12 + 4) + 4 + 1


# --- gradients ---------------------------------------------------------------------------
def _run_and_backward(m):
    y, h_n = m(np.random.default_rng(0).standard_normal((3, 2, 2)))
    ((y * y).sum() + h_n.sum()).backward()


@pytest.mark.parametrize("engine", ENGINES)
def test_zero_grad_clears_every_gradient(engine):
    m = nn.RNNModel(2, 3, 2, mode="many_to_many", engine=engine)
    _run_and_backward(m)
    grads = m.grad_dict()
    assert all(np.abs(g).max() > 0 for g in grads.values())
    m.zero_grad()
    for p in m.parameters():
        if engine == "tensor":
            assert p.grad is None
        else:
            assert all(v.grad == 0.0 for v in p.flat)
    assert all(np.array_equal(g, np.zeros_like(g)) for g in m.grad_dict().values())
    # A fresh backward after zero_grad gives the same gradients, not twice them.
    _run_and_backward(m)
    for name, g in m.grad_dict().items():
        np.testing.assert_allclose(g, grads[name], rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("engine", ENGINES)
def test_grad_dict_accumulates_and_has_zeros_where_backward_did_not_reach(engine):
    m = nn.RNNModel(2, 3, 2, mode="many_to_many", engine=engine)
    grads = m.grad_dict()
    assert set(grads) == {n for n, _ in m.named_parameters()}
    assert all(g.dtype == np.float64 and g.shape == np.shape(p) and not g.any()
               for (_, p), g in zip(m.named_parameters(), grads.values()))
    # h_n alone does not depend on the readout: W_hy and b_y stay zero.
    _, h_n = m(np.random.default_rng(1).standard_normal((3, 2, 2)))
    h_n.sum().backward()
    grads = m.grad_dict()
    assert not grads["W_hy"].any() and not grads["b_y"].any()
    assert np.abs(grads["rnn.cells.0.W_hh"]).min() > 0
    once = grads["rnn.cells.0.W_hh"]
    _, h_n = m(np.random.default_rng(1).standard_normal((3, 2, 2)))
    h_n.sum().backward()
    np.testing.assert_allclose(m.grad_dict()["rnn.cells.0.W_hh"], 2 * once, rtol=1e-13)


@pytest.mark.parametrize("engine", ENGINES)
def test_grad_dict_returns_copies(engine):
    m = nn.Linear(2, 2, engine=engine)
    m(np.ones((1, 2))).sum().backward()
    g = m.grad_dict()
    g["W"][...] = 123.0
    assert np.array_equal(m.grad_dict()["W"], np.ones((2, 2)))


# --- state dicts -------------------------------------------------------------------------
@pytest.mark.parametrize("engine", ENGINES)
def test_state_dict_holds_copies(engine):
    m = nn.RNNModel(2, 3, 2, num_layers=2, engine=engine, seed=4)
    state = m.state_dict()
    assert list(state) == [n for n, _ in m.named_parameters()]
    for name, p in m.named_parameters():
        assert state[name].dtype == np.float64
        assert np.array_equal(state[name], numbers(p))
    before = {k: v.copy() for k, v in state.items()}
    for arr in state.values():
        arr[...] = 7.0
    for name, p in m.named_parameters():
        assert np.array_equal(numbers(p), before[name])


@pytest.mark.parametrize("engine", ENGINES)
def test_load_state_dict_round_trip_keeps_parameter_objects(engine):
    src = nn.RNNModel(2, 3, 2, num_layers=2, engine=engine, seed=1)
    dst = nn.RNNModel(2, 3, 2, num_layers=2, engine=engine, seed=2)
    assert not np.array_equal(src.state_dict()["W_hy"], dst.state_dict()["W_hy"])
    objects = dst.parameters()
    entry = dst.W_hy[0, 0] if engine == "value" else None
    dst.load_state_dict(src.state_dict())
    for name, arr in src.state_dict().items():
        assert np.array_equal(dst.state_dict()[name], arr)
    assert all(p is q for p, q in zip(dst.parameters(), objects))
    if engine == "value":
        assert dst.W_hy[0, 0] is entry
        assert entry.data == src.W_hy[0, 0].data
    x = np.random.default_rng(0).standard_normal((3, 1, 2))
    ys, yd = src(x)[0], dst(x)[0]
    assert np.array_equal(numbers(ys), numbers(yd))


def test_load_state_dict_of_a_models_own_parameters_swapped_swaps_them():
    # The values are the parameters themselves: each must be read before any is written
    # (the second weight got its own old numbers back, as the first had been overwritten)
    m = nn.MLP(2, [2, 2], seed=0)
    own, before = dict(m.named_parameters()), m.state_dict()
    m.load_state_dict({**before, "layers.0.W": own["layers.1.W"], "layers.1.W": own["layers.0.W"]})
    after = m.state_dict()
    np.testing.assert_array_equal(after["layers.0.W"], before["layers.1.W"])
    np.testing.assert_array_equal(after["layers.1.W"], before["layers.0.W"])
    rnn = nn.RNN(2, 2, num_layers=2, seed=0)
    torch_state, cells = nn.to_torch_state_dict(rnn), rnn.cells
    swapped = {"weight_hh_l0": cells[1].W_hh.data.T, "weight_hh_l1": cells[0].W_hh.data.T}  # views of the weights
    nn.from_torch_state_dict(rnn, {**torch_state, **swapped})
    np.testing.assert_array_equal(cells[0].W_hh.data, torch_state["weight_hh_l1"].T)
    np.testing.assert_array_equal(cells[1].W_hh.data, torch_state["weight_hh_l0"].T)


@pytest.mark.parametrize("engine", ENGINES)
def test_an_op_result_set_as_a_weight_in_the_constructor_is_refused_by_name(engine):
    # meant as a parameter, it is not one (only leaves are): it was left out without a word
    # and never trained, where a state kept by forward is rightly left out
    w = np.random.default_rng(0).standard_normal((3, 1))

    class Net(nn.Module):
        def __init__(self):
            self.lin = nn.Linear(3, 1, engine=engine, seed=0)
            scaled = (Tensor(w, requires_grad=True) * 0.1 if engine == "tensor"
                      else nn.backends.ValueBackend.parameter(w, "W") * 0.1)
            self.extra = [scaled]

    with pytest.raises(TypeError, match=r"^Net: extra\.0 is the result of an op \('\*'\), not a parameter: only "
                                        r"leaves are parameters\. Make it one directly"):
        Net()


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("detached", [True, False], ids=["detached", "live"])
def test_a_state_kept_on_a_module_is_not_a_parameter_on_either_engine(engine, detached):
    # Detached, as a detached Tensor is a constant; on the value engine any object array of
    # Values counted, so the state showed up in state_dict and blocked exports and strict
    # loads. Live (an op's result, as an LSTM's (h, c) after forward), both parts counted, as
    # "state.0" and "state.1", in state_dict, the optimizer and the exports.
    class Stateful(nn.Module):
        def __init__(self, engine):
            self.rnn = nn.RNN(2, 3, engine=engine, seed=0)
            self.state = None

        def forward(self, x):
            out, h = self.rnn(x, self.state[0] if self.state else None)
            self.state = nn.detach((h, out[-1])) if detached else (h, out[-1])
            return out

    m = Stateful(engine)
    m(np.ones((2, 1, 2)))
    m(np.ones((2, 1, 2)))
    assert sorted(m.state_dict()) == ["rnn.cells.0.W_hh", "rnn.cells.0.W_xh", "rnn.cells.0.b_h"]
    assert m.num_parameters() == 18 and len(nn.optim.SGD(m.parameters(), lr=0.1).params) == 3
    assert sorted(nn.to_torch_state_dict(m)) == ["rnn.bias_hh_l0", "rnn.bias_ih_l0", "rnn.weight_hh_l0",
                                                 "rnn.weight_ih_l0"]
    Stateful(engine).load_state_dict(m.state_dict())
    if engine == "value" and detached:
        with pytest.raises(RuntimeError, match="not the output of a recorded graph"):
            m.state[0].flat[0].backward()


def test_loads_with_keys_of_mixed_types_sort_them_in_messages_and_skip_them_when_not_strict():
    m = nn.Linear(2, 2, seed=0)
    state = {**m.state_dict(), 0: 1.0, "junk": 2.0}
    m.load_state_dict(state, strict=False)
    with pytest.raises(KeyError, match=r"missing \[\], unexpected \['junk', 0\]"):
        m.load_state_dict(state)
    with pytest.raises(KeyError, match=r"missing \[\], unexpected \['junk', 0\]"):
        nn.from_torch_state_dict(m, {**nn.to_torch_state_dict(m), 0: 1.0, "junk": 2.0})


@pytest.mark.parametrize("engine", ENGINES)
def test_a_ragged_list_in_a_state_names_the_entry(engine):
    m = nn.Linear(2, 2, engine=engine, seed=0)
    with pytest.raises(ValueError, match=r"^Linear.load_state_dict: W: expected a regular array of numbers: "):
        m.load_state_dict({**m.state_dict(), "W": [[1.0, 2.0], [3.0]]})
    with pytest.raises(ValueError, match=r"^from_torch_state_dict: weight: expected a regular array of numbers: "):
        nn.from_torch_state_dict(m, {**nn.to_torch_state_dict(m), "weight": [[1.0, 2.0], [3.0]]})


@pytest.mark.parametrize("engine", ENGINES)
def test_a_malformed_gradient_is_named_by_its_parameter_in_grad_dict_and_the_export(engine):
    m = nn.RNNModel(2, 3, 2, engine=engine, seed=0)
    if engine == "tensor":
        m.rnn.cells[0].b_h.grad = np.ones(2)
    else:
        m.rnn.cells[0].b_h[1].grad = "x"
    with pytest.raises(TypeError, match=r"^RNNModel.grad_dict: the gradient of rnn.cells.0.b_h"):
        m.grad_dict()
    with pytest.raises(TypeError, match=r"^to_torch_state_dict: the gradient of rnn.cells.0.b_h"):
        nn.to_torch_state_dict(m, grads=True)


def test_load_state_dict_across_engines():
    src = nn.RNNModel(2, 3, 2, engine="tensor", seed=1)
    dst = nn.RNNModel(2, 3, 2, engine="value", seed=2)
    dst.load_state_dict(src.state_dict())
    for name, arr in src.state_dict().items():
        assert np.array_equal(dst.state_dict()[name], arr)


def _unchanged_after_failed_load(m, state, error, *words):
    before = m.state_dict()
    with pytest.raises(error) as info:
        m.load_state_dict(state)
    for word in words:
        assert word in str(info.value)
    after = m.state_dict()
    assert all(np.array_equal(before[k], after[k]) for k in before)


@pytest.mark.parametrize("engine", ENGINES)
def test_strict_load_rejects_missing_and_unexpected_keys_and_changes_nothing(engine):
    m = nn.RNNModel(2, 3, 2, engine=engine, seed=1)
    state = {k: v + 1.0 for k, v in m.state_dict().items()}
    missing = dict(state)
    del missing["b_y"]
    _unchanged_after_failed_load(m, missing, KeyError, "missing", "b_y")
    extra = dict(state, W_extra=np.zeros(2))
    _unchanged_after_failed_load(m, extra, KeyError, "unexpected", "W_extra")


@pytest.mark.parametrize("engine", ENGINES)
def test_load_rejects_a_wrong_shape_and_changes_nothing(engine):
    m = nn.RNNModel(2, 3, 2, engine=engine, seed=1)
    state = {k: v + 1.0 for k, v in m.state_dict().items()}
    state["b_y"] = np.zeros(3)  # the last one written: everything before it must stay
    _unchanged_after_failed_load(m, state, ValueError, "b_y", "(2,)", "(3,)")
    state = {k: v + 1.0 for k, v in m.state_dict().items()}
    state["rnn.cells.0.W_xh"] = np.zeros((3, 2))
    _unchanged_after_failed_load(m, state, ValueError, "rnn.cells.0.W_xh", "(2, 3)", "(3, 2)")


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("bad, dtype", [(np.array([1 + 2j, 0.0]), "complex128"), (np.array(["1", "2"]), "<U1")])
def test_load_rejects_complex_or_string_numbers_and_changes_nothing(engine, bad, dtype):
    # A cast would drop the imaginary part (or parse the strings) without a word.
    m = nn.RNNModel(2, 3, 2, engine=engine, seed=1)
    state = {k: v + 1.0 for k, v in m.state_dict().items()}
    state["b_y"] = bad
    _unchanged_after_failed_load(m, state, TypeError, "load_state_dict: b_y: expected real numbers", dtype)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("bad, shown", [([None, 1.0], "NoneType None at entry (0,)"),
                                        (np.array(["2.5", 1.0], dtype=object), "str '2.5' at entry (0,)")])
def test_load_rejects_none_or_strings_among_numbers_and_changes_nothing(engine, bad, shown):
    # numpy's cast would make None a NaN weight and parse the string
    m = nn.RNNModel(2, 3, 2, engine=engine, seed=1)
    state = {k: v + 1.0 for k, v in m.state_dict().items()}
    state["b_y"] = bad
    _unchanged_after_failed_load(m, state, TypeError, f"load_state_dict: b_y: expected real numbers, got {shown}")
    message = f"from_torch_state_dict: readout.bias: expected real numbers, got {shown}"
    with pytest.raises(TypeError, match=re.escape(message)):
        nn.from_torch_state_dict(m, {**nn.to_torch_state_dict(m), "readout.bias": bad})


@pytest.mark.parametrize("engine", ENGINES)
def test_load_rejects_masked_arrays_and_changes_nothing(engine):
    m = nn.RNNModel(2, 3, 2, engine=engine, seed=1)
    state = {k: v + 1.0 for k, v in m.state_dict().items()}
    state["b_y"] = np.ma.masked_array(state["b_y"], mask=[True, False])
    _unchanged_after_failed_load(m, state, TypeError, "load_state_dict: b_y: got a numpy masked array, whose mask "
                                                     "would be ignored")


@pytest.mark.parametrize("engine", ENGINES)
def test_load_takes_the_numbers_of_tensors_that_refuse_asarray(engine):
    m = nn.RNNModel(2, 3, 2, engine=engine, seed=1)
    state = {k: v + 1.0 for k, v in m.state_dict().items()}
    m.load_state_dict({k: TensorLike(v) for k, v in state.items()})
    after = m.state_dict()
    assert all(np.array_equal(after[k], state[k]) for k in state)


def test_non_strict_load_skips_unknown_keys_and_keeps_missing_ones():
    m = nn.RNNModel(2, 3, 2, seed=1)
    before = m.state_dict()
    keys = m.load_state_dict({"W_hy": np.full((3, 2), 0.5), "junk": np.zeros(4)}, strict=False)
    # what was left and what was not used, as PyTorch returns them (a load of nothing said nothing)
    assert keys.missing_keys == ["b_y", "rnn.cells.0.W_hh", "rnn.cells.0.W_xh", "rnn.cells.0.b_h"]
    assert keys.unexpected_keys == ["junk"]
    assert m.load_state_dict(before) == ([], [])
    m.load_state_dict({"W_hy": np.full((3, 2), 0.5)}, strict=False)
    after = m.state_dict()
    assert np.array_equal(after["W_hy"], np.full((3, 2), 0.5))
    assert all(np.array_equal(after[k], before[k]) for k in before if k != "W_hy")
    # Shapes are checked even when not strict.
    _unchanged = m.state_dict()
    with pytest.raises(ValueError, match="b_y"):
        m.load_state_dict({"W_hy": np.zeros((3, 2)), "b_y": np.zeros(5)}, strict=False)
    assert all(np.array_equal(m.state_dict()[k], _unchanged[k]) for k in _unchanged)


# --- display -----------------------------------------------------------------------------
def test_repr_of_a_module_that_points_back_at_its_owner_shows_each_module_once():
    # it recursed until Python's limit
    class Child(nn.Module):
        def __init__(self, owner):
            self.owner = owner
            self.lin = nn.Linear(2, 2)

    class Parent(nn.Module):
        def __init__(self):
            self.child = Child(self)

    text = repr(Parent())
    assert text.count("Linear(") == 1 and "(owner): Parent (shown above)" in text
    assert text.startswith("Parent() {\n  (child): Child() {\n")


def test_repr_lists_submodules_and_parameter_shapes():
    text = repr(nn.RNNModel(2, 3, 4, num_layers=2))
    lines = [line.strip() for line in text.splitlines()]
    assert lines[0].startswith("RNNModel(mode='many_to_one'")
    assert "(rnn): RNN(input_size=2, hidden_size=3, num_layers=2, batch_first=False, engine='tensor') {" in lines
    assert sum(line.startswith("(cells.0): RNNCell(input_size=2, hidden_size=3") for line in lines) == 1
    assert sum(line.startswith("(cells.1): RNNCell(input_size=3, hidden_size=3") for line in lines) == 1
    assert lines.count("W_xh: 2x3") == 1 and lines.count("W_xh: 3x3") == 1
    assert lines.count("W_hh: 3x3") == 2 and lines.count("b_h: 3") == 2
    assert "W_hy: 3x4" in lines and "b_y: 4" in lines
    # Indentation shows the nesting: a cell's parameters are three levels deep.
    assert "      W_hh: 3x3" in text.splitlines()


def test_repr_of_a_user_module_and_a_scalar_parameter():
    text = repr(Stack())
    assert text.splitlines()[0] == "Stack() {"
    assert "  (blocks.1): Linear(in_features=3, out_features=4, engine='tensor') {" in text.splitlines()
    assert "  (heads.out): Linear(in_features=4, out_features=1, engine='tensor') {" in text.splitlines()
    assert "  scale: scalar" in text.splitlines()
    assert "_hidden" not in text and "constant" not in text


def test_forward_must_be_defined():
    class Empty(nn.Module):
        pass

    with pytest.raises(NotImplementedError, match="Empty"):
        Empty()(1.0)


@pytest.mark.parametrize("engine", ENGINES)
def test_load_takes_the_numbers_of_our_own_tensors(engine):
    m = nn.Linear(2, 1, engine=engine, seed=0)
    m.load_state_dict({"W": Tensor([[1.0], [2.0]]), "b": Tensor([3.0])})
    np.testing.assert_array_equal(m.state_dict()["W"], [[1.0], [2.0]])
    np.testing.assert_array_equal(m.state_dict()["b"], [3.0])
