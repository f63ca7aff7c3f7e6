"""RNNCell, RNN and RNNModel on both engines.

Forward results are checked against the lecture-note equations written out in numpy,

    H_t = f1(X_t W_xh + H_{t-1} W_hh + b_h),   Ŷ_t = f2(H_t W_hy + b_y),

gradients against finite differences (gradcheck) and against hand-derived BPTT, and the
value engine against the tensor engine. The unrolled graph itself is inspected: one W_hh
node used at every step, and scope tags ("layer l", "t=k") on every step's nodes.
"""

import itertools
import re

import numpy as np
import pytest

import nn
from autograd import Tensor, Value, concat, draw_graph, gradcheck, no_grad, topological_order

from .reference import ACTIVATIONS, numbers

ENGINES = ["tensor", "value"]
MODES = ["many_to_one", "many_to_many", "one_to_many"]
OUTPUTS = ["identity", "softmax", "sigmoid", "relu"]


# --- the equations, in numpy -------------------------------------------------------------
def numpy_rnn(state, x, h0, num_layers, nonlinearity, prefix="", W_hh_per_step=None):
    """x is (T, m, n). Returns the top layer's states (T, m, H) and h_n (L, m, H).
    ``W_hh_per_step[l]`` (a list of T matrices) replaces layer l's W_hh step by step."""
    f = ACTIVATIONS[nonlinearity]
    T, m, _ = x.shape
    inputs, last = x, []
    for l in range(num_layers):
        W_xh = state[f"{prefix}cells.{l}.W_xh"]
        W_hh = state[f"{prefix}cells.{l}.W_hh"]
        b_h = state.get(f"{prefix}cells.{l}.b_h", 0.0)
        H = np.zeros((m, W_hh.shape[0])) if h0 is None else h0[l]
        states = []
        for t in range(T):
            W = W_hh_per_step[l][t] if W_hh_per_step and l in W_hh_per_step else W_hh
            H = f(inputs[t] @ W_xh + H @ W + b_h)
            states.append(H)
        inputs = np.stack(states)
        last.append(H)
    return inputs, np.stack(last)


def numpy_model(state, x, mode, output_activation="identity", num_layers=1, nonlinearity="tanh", steps=None,
                batch_first=False, h0=None, W_hh_per_step=None):
    if mode == "one_to_many":
        X = np.concatenate([x[None], np.zeros((steps - 1, *x.shape))])
    else:
        X = np.swapaxes(x, 0, 1) if batch_first else x
    states, h_n = numpy_rnn(state, X, h0, num_layers, nonlinearity, "rnn.", W_hh_per_step)
    f2 = ACTIVATIONS[output_activation]
    readout = lambda H: f2(H @ state["W_hy"] + state.get("b_y", 0.0))
    if mode == "many_to_one":
        return readout(states[-1]), h_n
    y = readout(states)
    return (np.swapaxes(y, 0, 1) if batch_first else y), h_n


def _model(mode, engine="tensor", seed=0, n_in=2, hidden=3, n_out=2, **kw):
    if mode == "one_to_many":
        kw.setdefault("steps", 3)
    return nn.RNNModel(n_in, hidden, n_out, mode=mode, engine=engine, seed=seed, **kw)


def _input(mode, T=3, m=2, n_in=2, batch_first=False, seed=1):
    rng = np.random.default_rng(seed)
    if mode == "one_to_many":
        return rng.standard_normal((m, n_in))
    return rng.standard_normal((m, T, n_in) if batch_first else (T, m, n_in))


def _h0(L, m=2, hidden=3, seed=2):
    return 0.5 * np.random.default_rng(seed).standard_normal((L, m, hidden))


# --- forward against the equations ----------------------------------------------------------
@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
def test_cell_is_one_step_of_the_equation(engine, nonlinearity):
    cell = nn.RNNCell(2, 3, nonlinearity=nonlinearity, engine=engine, seed=3)
    rng = np.random.default_rng(0)
    x, h = rng.standard_normal((4, 2)), rng.standard_normal((4, 3))
    s = cell.state_dict()
    f = ACTIVATIONS[nonlinearity]
    np.testing.assert_allclose(numbers(cell(x, h)), f(x @ s["W_xh"] + h @ s["W_hh"] + s["b_h"]), rtol=0, atol=1e-14)
    np.testing.assert_allclose(numbers(cell(x)), f(x @ s["W_xh"] + s["b_h"]), rtol=0, atol=1e-14)
    wrap = Tensor if engine == "tensor" else np.vectorize(Value, otypes=[object])
    stepped = cell.step(cell.project(wrap(x)), wrap(h))
    np.testing.assert_allclose(numbers(stepped), numbers(cell(x, h)), rtol=0, atol=1e-15)
    no_bias = nn.RNNCell(2, 3, nonlinearity=nonlinearity, bias=False, engine=engine, seed=3)
    s = no_bias.state_dict()
    np.testing.assert_allclose(numbers(no_bias(x, h)), f(x @ s["W_xh"] + h @ s["W_hh"]), rtol=0, atol=1e-14)


@pytest.mark.parametrize("num_layers", [1, 2, 3])
@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
def test_rnn_forward_against_numpy(num_layers, nonlinearity):
    x = _input("many_to_many", T=4, m=3)
    for bias, batch_first, h0 in itertools.product([True, False], [False, True], [None, _h0(num_layers, m=3)]):
        rnn = nn.RNN(2, 3, num_layers, nonlinearity, bias=bias, batch_first=batch_first, seed=5)
        out, h_n = rnn(np.swapaxes(x, 0, 1) if batch_first else x, h0)
        ref_out, ref_h_n = numpy_rnn(rnn.state_dict(), x, h0, num_layers, nonlinearity)
        assert out.shape == ((3, 4, 3) if batch_first else (4, 3, 3)) and h_n.shape == (num_layers, 3, 3)
        np.testing.assert_allclose(out.data, np.swapaxes(ref_out, 0, 1) if batch_first else ref_out,
                                   rtol=0, atol=1e-14)
        np.testing.assert_allclose(h_n.data, ref_h_n, rtol=0, atol=1e-14)


@pytest.mark.parametrize("output_activation", OUTPUTS)
@pytest.mark.parametrize("num_layers", [1, 2, 3])
@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
@pytest.mark.parametrize("mode", MODES)
def test_model_forward_against_numpy(mode, nonlinearity, num_layers, output_activation):
    for bias, batch_first, with_h0 in itertools.product([True, False], [False, True], [False, True]):
        model = _model(mode, seed=4, num_layers=num_layers, nonlinearity=nonlinearity, bias=bias,
                       batch_first=batch_first, output_activation=output_activation)
        x = _input(mode, T=4, batch_first=batch_first)
        h0 = _h0(num_layers) if with_h0 else None
        y, h_n = model(x, h0)
        ref_y, ref_h_n = numpy_model(model.state_dict(), x, mode, output_activation, num_layers, nonlinearity,
                                     model.steps, batch_first, h0)
        expected_shape = {"many_to_one": (2, 2), "many_to_many": (4, 2, 2), "one_to_many": (3, 2, 2)}[mode]
        if batch_first and mode != "many_to_one":
            expected_shape = (2, expected_shape[0], 2)
        assert y.shape == expected_shape and h_n.shape == (num_layers, 2, 3)
        np.testing.assert_allclose(y.data, ref_y, rtol=0, atol=1e-14)
        np.testing.assert_allclose(h_n.data, ref_h_n, rtol=0, atol=1e-14)


@pytest.mark.parametrize("mode", MODES)
def test_value_engine_forward_against_numpy(mode):
    model = _model(mode, engine="value", seed=4, num_layers=2, nonlinearity="relu", batch_first=True,
                   output_activation="softmax")
    x, h0 = _input(mode, batch_first=True), _h0(2)
    y, h_n = model(x, h0)
    ref_y, ref_h_n = numpy_model(model.state_dict(), x, mode, "softmax", 2, "relu", model.steps, True, h0)
    np.testing.assert_allclose(numbers(y), ref_y, rtol=0, atol=1e-14)
    np.testing.assert_allclose(numbers(h_n), ref_h_n, rtol=0, atol=1e-14)


def test_one_to_many_feeds_x_first_and_zeros_after():
    # By hand for one hidden unit: H_1 = tanh(x w_xh + b), H_t = tanh(H_{t-1} w_hh + b) after.
    model = nn.RNNModel(1, 1, 1, mode="one_to_many", steps=3, seed=0)
    model.load_state_dict({"rnn.cells.0.W_xh": [[2.0]], "rnn.cells.0.W_hh": [[0.5]], "rnn.cells.0.b_h": [0.1],
                           "W_hy": [[3.0]], "b_y": [-1.0]})
    y, h_n = model(np.array([[0.4]]))
    h1 = np.tanh(0.4 * 2.0 + 0.1)
    h2 = np.tanh(h1 * 0.5 + 0.1)
    h3 = np.tanh(h2 * 0.5 + 0.1)
    np.testing.assert_allclose(y.data.ravel(), [3 * h1 - 1, 3 * h2 - 1, 3 * h3 - 1], rtol=0, atol=1e-15)
    np.testing.assert_allclose(h_n.data.ravel(), [h3], rtol=0, atol=1e-15)
    one = nn.RNNModel(1, 1, 1, mode="one_to_many", steps=1, seed=0)
    one.load_state_dict(model.state_dict())
    np.testing.assert_allclose(one(np.array([[0.4]]))[0].data.ravel(), [3 * h1 - 1], rtol=0, atol=1e-15)


def test_many_to_one_is_the_last_step_of_many_to_many():
    x = _input("many_to_many", T=5)
    last, _ = _model("many_to_one", seed=8, num_layers=2)(x)
    every, _ = _model("many_to_many", seed=8, num_layers=2)(x)
    np.testing.assert_array_equal(last.data, every.data[-1])


# --- gradients --------------------------------------------------------------------------
def _flat_outputs(model, x, h0):
    y, h_n = model(x, h0)
    return concat([y.reshape(-1), h_n.reshape(-1)])


@pytest.mark.parametrize("output_activation", OUTPUTS)
@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
@pytest.mark.parametrize("mode", MODES)
def test_model_gradcheck_every_parameter_and_h0(mode, nonlinearity, output_activation):
    model = _model(mode, seed=6, num_layers=2, nonlinearity=nonlinearity, output_activation=output_activation)
    x = _input(mode)
    h0 = Tensor(_h0(2), requires_grad=True, label="h0")
    report = gradcheck(lambda *_: _flat_outputs(model, x, h0), model.parameters() + [h0])
    assert [c.name for c in report.checks] == [n for n, _ in model.named_parameters()] + ["h0"]
    assert all(np.abs(c.analytic).max() > 1e-4 for c in report.checks)


@pytest.mark.parametrize("mode", MODES)
def test_model_gradcheck_without_bias_batch_first(mode):
    model = _model(mode, seed=7, num_layers=2, bias=False, batch_first=True)
    x = _input(mode, batch_first=True)
    report = gradcheck(lambda *_: _flat_outputs(model, x, None), model.parameters())
    assert len(report.checks) == 5


def test_rnn_gradcheck_with_input_tensor():
    rnn = nn.RNN(2, 3, num_layers=2, nonlinearity="relu", batch_first=True, seed=3)
    x = Tensor(np.random.default_rng(0).standard_normal((2, 3, 2)), requires_grad=True)
    report = gradcheck(lambda x, *_: concat([t.reshape(-1) for t in rnn(x)]), [x] + rnn.parameters())
    assert report.ok and np.abs(report.checks[0].analytic).max() > 1e-3


@pytest.mark.parametrize("mode", MODES)
def test_value_entries_gradcheck(mode):
    model = _model(mode, engine="value", seed=2, num_layers=2)
    x = _input(mode, T=2)

    def loss(*_):
        y, h_n = model(x)
        return (y * y).sum() + h_n.sum()

    picks = [model.rnn.cells[0].W_hh[1, 2], model.rnn.cells[1].W_xh[0, 0], model.rnn.cells[0].b_h[2],
             model.W_hy[2, 1], model.b_y[0]]
    report = gradcheck(loss, picks)
    assert [c.name for c in report.checks] == ["rnn.cells.0.W_hh[1,2]", "rnn.cells.1.W_xh[0,0]",
                                               "rnn.cells.0.b_h[2]", "W_hy[2,1]", "b_y[0]"]


# --- BPTT: dL/dW_hh is the sum of every step's contribution ---------------------------------
def _bptt_by_hand(state, x, dY, nonlinearity):
    """One layer, identity readout, loss L with dL/dŶ_t = dY[t]. Returns each step's
    contribution H_{t-1}^T δ_t to dL/dW_hh, where δ_t = dL/d(pre-activation of step t),
    and the gradients of the other parameters."""
    W_xh, W_hh, b_h, W_hy = state["rnn.cells.0.W_xh"], state["rnn.cells.0.W_hh"], state["rnn.cells.0.b_h"], \
        state["W_hy"]
    T, m, _ = x.shape
    H, Z = [np.zeros((m, W_hh.shape[0]))], []
    for t in range(T):
        Z.append(x[t] @ W_xh + H[-1] @ W_hh + b_h)
        H.append(ACTIVATIONS[nonlinearity](Z[-1]))
    contributions = [None] * T
    grads = {"rnn.cells.0.W_xh": 0.0, "rnn.cells.0.b_h": 0.0, "W_hy": 0.0, "b_y": 0.0}
    from_next = np.zeros_like(H[0])  # δ_{t+1} W_hh^T: what reaches H_t through step t+1
    for t in reversed(range(T)):
        dH = dY[t] @ W_hy.T + from_next
        delta = dH * (1 - H[t + 1] ** 2 if nonlinearity == "tanh" else Z[t] > 0)
        contributions[t] = H[t].T @ delta
        grads["rnn.cells.0.W_xh"] = grads["rnn.cells.0.W_xh"] + x[t].T @ delta
        grads["rnn.cells.0.b_h"] = grads["rnn.cells.0.b_h"] + delta.sum(0)
        grads["W_hy"] = grads["W_hy"] + H[t + 1].T @ dY[t]
        grads["b_y"] = grads["b_y"] + dY[t].sum(0)
        from_next = delta @ W_hh.T
    return contributions, grads


def _per_step_finite_differences(state, x, C, mode, num_layers, nonlinearity, layer=0, eps=1e-6):
    """dL/dW_hh^(t): perturb only the copy of layer ``layer``'s W_hh used at step t."""
    T = x.shape[0]
    W_hh = state[f"rnn.cells.{layer}.W_hh"]

    def loss(copies):
        y, _ = numpy_model(state, x, mode, num_layers=num_layers, nonlinearity=nonlinearity,
                           W_hh_per_step={layer: copies})
        return float((y * C).sum())

    contributions = []
    for t in range(T):
        d = np.zeros_like(W_hh)
        for index in np.ndindex(W_hh.shape):
            up = [W_hh.copy() for _ in range(T)]
            down = [W_hh.copy() for _ in range(T)]
            up[t][index] += eps
            down[t][index] -= eps
            d[index] = (loss(up) - loss(down)) / (2 * eps)
        contributions.append(d)
    return contributions


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
@pytest.mark.parametrize("mode", ["many_to_one", "many_to_many"])
def test_W_hh_gradient_is_the_sum_of_per_step_contributions(mode, nonlinearity):
    T = 4
    x = _input(mode, T=T, m=3, seed=10)
    model = _model(mode, seed=11, nonlinearity=nonlinearity)
    C = np.random.default_rng(12).standard_normal((T, 3, 2) if mode == "many_to_many" else (3, 2))
    y, _ = model(x)
    (y * C).sum().backward()
    state = model.state_dict()
    dY = C if mode == "many_to_many" else np.concatenate([np.zeros((T - 1, 3, 2)), C[None]])
    by_hand, other_grads = _bptt_by_hand(state, x, dY, nonlinearity)
    numeric = _per_step_finite_differences(state, x, C, mode, 1, nonlinearity)
    for t in range(T):  # each step's contribution, found two independent ways
        np.testing.assert_allclose(by_hand[t], numeric[t], rtol=0, atol=1e-8, err_msg=f"step {t + 1}")
    W_hh_grad = model.rnn.cells[0].W_hh.grad
    np.testing.assert_allclose(W_hh_grad, sum(by_hand), rtol=0, atol=1e-12)
    np.testing.assert_allclose(W_hh_grad, sum(numeric), rtol=0, atol=1e-8)
    # The steps really differ and several of them matter: no single one is the total.
    assert sum(np.abs(c).max() > 1e-4 for c in by_hand[1:]) >= 2
    assert all(np.abs(W_hh_grad - c).max() > 1e-4 for c in by_hand)
    assert np.array_equal(by_hand[0], np.zeros((3, 3)))  # H_0 = 0: step 1 adds nothing
    grads = model.grad_dict()
    for name, g in other_grads.items():
        np.testing.assert_allclose(grads[name], g, rtol=0, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
def test_a_wide_W_hh_gradient_is_the_hand_derived_sum(nonlinearity):
    # With 96 hidden units, W_hh's gradient is large enough for the engine to keep its
    # per-step products and multiply them out as one (autograd.tensor._Products).
    T, m, hidden = 6, 4, 96
    x = _input("many_to_many", T=T, m=m, n_in=5, seed=16)
    model = _model("many_to_many", seed=17, n_in=5, hidden=hidden, n_out=3, nonlinearity=nonlinearity)
    C = np.random.default_rng(18).standard_normal((T, m, 3))
    y, _ = model(x)
    (y * C).sum().backward()
    by_hand, other_grads = _bptt_by_hand(model.state_dict(), x, C, nonlinearity)
    grads = model.grad_dict()
    np.testing.assert_allclose(grads["rnn.cells.0.W_hh"], sum(by_hand), rtol=0, atol=1e-12)
    for name, g in other_grads.items():
        np.testing.assert_allclose(grads[name], g, rtol=0, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("engine", ENGINES)
def test_lower_layer_W_hh_gradient_is_the_sum_of_per_step_contributions(engine):
    T = 3
    x = _input("many_to_many", T=T, m=2, seed=13)
    model = _model("many_to_many", engine=engine, seed=14, num_layers=2)
    C = np.random.default_rng(15).standard_normal((T, 2, 2))
    y, _ = model(x)
    (y * C).sum().backward()
    numeric = _per_step_finite_differences(model.state_dict(), x, C, "many_to_many", 2, "tanh", layer=0)
    np.testing.assert_allclose(model.grad_dict()["rnn.cells.0.W_hh"], sum(numeric), rtol=0, atol=1e-8)
    if engine == "tensor":  # and each step's contribution, read off that step's addmm node: H_{t-1}ᵀ g_t
        W_hh = model.rnn.cells[0].W_hh
        users = [n for n in topological_order(y) if any(p is W_hh for p in n._prev)]
        assert [u.scope for u in users] == [("layer 0", f"t={t}") for t in range(1, T + 1)]
        for step, node, expected in zip(range(1, T + 1), users, numeric):
            _, h_prev, _ = node._prev
            np.testing.assert_allclose(h_prev.data.T @ node.grad, expected, rtol=0, atol=1e-8, err_msg=f"t={step}")


# --- the unrolled graph ---------------------------------------------------------------------
def _consumers(order, node):
    return [n for n in order if any(p is node for p in n._prev)]


@pytest.mark.parametrize("mode", MODES)
def test_one_W_hh_node_serves_every_step_tensor_engine(mode):
    T, L = 4, 2
    model = _model(mode, seed=1, num_layers=L, steps=T if mode == "one_to_many" else None)
    y, h_n = model(_input(mode, T=T))
    order = topological_order(y.sum() + h_n.sum())
    for l in range(L):
        W_hh = model.rnn.cells[l].W_hh
        labelled = [n for n in order if n.label == f"rnn.cells.{l}.W_hh"]
        assert len(labelled) == 1 and labelled[0] is W_hh
        users = _consumers(order, W_hh)
        assert len(users) == T
        assert [u.op for u in users] == ["addmm"] * T  # xw_t + h_prev @ W_hh, one op
        assert [u.scope for u in users] == [(f"layer {l}", f"t={t}") for t in range(1, T + 1)]


def test_each_layers_states_are_pieces_of_its_stacked_output():
    # The layer stacks its states as they are made (autograd.StackBuilder): the stacked
    # array is the states' own storage, held once, with the numbers of the states.
    rnn = nn.RNN(3, 4, num_layers=2, seed=2)
    x = np.random.default_rng(3).standard_normal((5, 2, 3))
    out, h_n = rnn(x)
    states = out.parents
    assert out.op == "stack" and len(states) == 5 and [s.op for s in states] == ["tanh"] * 5
    for t, s in enumerate(states):
        assert s.data.base is out.data and np.shares_memory(s.data, out.data[t])
    np.testing.assert_array_equal(out.data[-1], h_n.data[-1])


def test_one_node_per_W_hh_entry_serves_every_step_value_engine():
    T, m = 3, 2
    model = _model("many_to_many", engine="value", seed=1)
    y, _ = model(_input("many_to_many", T=T, m=m))
    order = topological_order(y.sum())
    W_hh = model.rnn.cells[0].W_hh
    for index, w in np.ndenumerate(W_hh):
        label = f"rnn.cells.0.W_hh[{index[0]},{index[1]}]"
        labelled = [n for n in order if n.label == label]
        assert len(labelled) == 1 and labelled[0] is w
        users = _consumers(order, w)
        assert len(users) == T * m  # one product per step and per sequence in the batch
        assert sorted({u.scope for u in users}) == [("layer 0", f"t={t}") for t in range(1, T + 1)]


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
@pytest.mark.parametrize("mode", MODES)
def test_scope_tags_of_steps_and_readout_tensor_engine(mode, nonlinearity):
    T, L = 3, 2
    model = _model(mode, seed=1, num_layers=L, nonlinearity=nonlinearity, output_activation="softmax")
    y, h_n = model(_input(mode, T=T))
    order = topological_order(y.sum() + h_n.sum())
    steps = [n for n in order if n.op == nonlinearity]
    assert [n.scope for n in steps] == [(f"layer {l}", f"t={t}") for l in range(L) for t in range(1, T + 1)]
    for parameter in (model.W_hy, model.b_y):
        assert all(u.scope[0] == "readout" for u in _consumers(order, parameter))
    assert y.scope[0] == "readout"
    assert [n.op for n in order if n.scope and n.scope[0] == "readout"].count("softmax") == 1
    assert not any(n.scope and n.scope[0] == "readout" for n in order if n.op == nonlinearity)
    # Everything the loop creates for step t of layer l is tagged with it.
    for l, t in itertools.product(range(L), range(1, T + 1)):
        tagged = [n for n in order if n.scope == (f"layer {l}", f"t={t}")]
        assert sorted(n.op for n in tagged) == sorted(["getitem", "addmm", nonlinearity])


@pytest.mark.parametrize("mode", MODES)
def test_the_states_are_named_H_t_as_in_the_notes_tensor_engine(mode):
    T, L = 3, 2
    model = _model(mode, seed=1, num_layers=L)
    h0 = Tensor(_h0(L), label="mine")
    y, h_n = model(_input(mode, T=T), h0)
    order = topological_order(y.sum() + h_n.sum())
    for l in range(L):
        states = [n for n in order if n.scope[:1] == (f"layer {l}",) and n.op == "tanh"]
        assert [(n.label, n.scope[1]) for n in states] == [(f"H_{t}", f"t={t}") for t in range(1, T + 1)]
    # only the states: the caller's h0, the stacked output and every other op keep their names
    assert h0.label == "mine" and h_n.label == ""
    assert {n.label for n in order if n.op and n.op != "tanh"} == {""}


def test_the_states_are_named_entry_by_entry_on_the_value_engine():
    T, m, H = 3, 2, 3
    rnn = nn.RNN(2, H, engine="value", seed=1)
    out, h_n = rnn(np.random.default_rng(0).standard_normal((T, m, 2)))
    for t, i, j in itertools.product(range(T), range(m), range(H)):
        assert out[t][i, j].label == f"H_{t + 1}[{i},{j}]"
    assert h_n[0][1, 2] is out[-1][1, 2]
    # under no_grad the states are constants, and stay unnamed (a named Value leaf draws as a
    # parameter); so does the zero initial state
    first = {p for v in out[0].ravel() for n in topological_order(v) for p in n.parents if p.is_leaf}
    assert {p.label for p in first if p.data == 0.0} == {""}
    with no_grad():
        quiet, _ = rnn(np.ones((2, m, 2)))
    assert {v.label for v in quiet.ravel()} == {""} and all(v.is_leaf for v in quiet.ravel())


def test_only_op_results_made_after_the_mark_and_not_yet_named_are_named():
    from autograd.graph import mark
    from nn.backends import TensorBackend

    before = Tensor([1.0], requires_grad=True) * 2.0
    made_after = mark()
    leaf_, result, named = Tensor([1.0], requires_grad=True), before * 3.0, before * 4.0
    named.label = "mine"
    with no_grad():
        constant = before * 5.0
    for x in (before, leaf_, result, named, constant):
        TensorBackend.name_state(x, "H_1", made_after)
    assert [x.label for x in (before, leaf_, result, named, constant)] == ["", "", "H_1", "mine", ""]


def test_a_drawing_names_the_states_as_the_notes_do():
    model = _model("many_to_one", seed=1)
    y, _ = model(_input("many_to_one", T=2))
    source = draw_graph(y.sum()).source
    assert "H_1 = tanh" in source and "H_2 = tanh" in source


def test_scope_tags_value_engine_and_picking_one_unit():
    T, L = 3, 2
    rnn = nn.RNN(2, 3, num_layers=L, engine="value", seed=1)
    x = _input("many_to_many", T=T)
    out, h_n = rnn(x)
    assert out.dtype == object and out.shape == (T, 2, 3) and h_n.shape == (L, 2, 3)
    for (t, _, _), v in np.ndenumerate(out):
        assert isinstance(v, Value) and v.scope == (f"layer {L - 1}", f"t={t + 1}")
    for (l, _, _), v in np.ndenumerate(h_n):
        assert v.scope == (f"layer {l}", f"t={T}")
    model = _model("many_to_many", engine="value", seed=1)
    y, _ = model(x)
    assert all(v.scope == ("readout", f"t={t + 1}") for (t, _, _), v in np.ndenumerate(y))
    y1, _ = _model("many_to_one", engine="value", seed=1)(x)
    assert y1.shape == (2, 2) and all(v.scope == ("readout",) for v in y1.flat)


@pytest.mark.parametrize("pick", [(0, 0, 2), (1, 1, 0), (2, 0, 1)])
def test_one_hidden_unit_at_one_step_backward_fills_parameter_grads(pick):
    x = _input("many_to_many", T=3, seed=20)
    value_rnn = nn.RNN(2, 3, num_layers=2, engine="value", seed=21)
    tensor_rnn = nn.RNN(2, 3, num_layers=2, seed=21)
    out_v, _ = value_rnn(x)
    out_v[pick].backward()
    out_t, _ = tensor_rnn(x)
    seed = np.zeros(out_t.shape)
    seed[pick] = 1.0
    out_t.backward(seed)
    assert out_v[pick].data == pytest.approx(out_t.data[pick], abs=1e-15)
    expected = tensor_rnn.grad_dict()
    for name, g in value_rnn.grad_dict().items():
        np.testing.assert_allclose(g, expected[name], rtol=0, atol=1e-12, err_msg=name)
    assert np.abs(expected["cells.1.W_xh"]).max() > 0
    # A unit at step t does not depend on later steps: for t = 1, W_hh of the top layer only
    # meets H_0 = 0, so its gradient is exactly zero.
    if pick[0] == 0:
        assert not value_rnn.grad_dict()["cells.1.W_hh"].any()


# --- both engines agree --------------------------------------------------------------------
@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
@pytest.mark.parametrize("output_activation", OUTPUTS)
@pytest.mark.parametrize("mode", MODES)
def test_engines_agree_on_values_and_gradients(mode, output_activation, nonlinearity):
    for batch_first, bias, with_h0 in [(False, True, True), (True, False, False)]:
        x = _input(mode, T=3, batch_first=batch_first, seed=30)
        h0 = _h0(2, seed=31) if with_h0 else None
        C = None
        results = {}
        for engine in ENGINES:
            model = _model(mode, engine=engine, seed=32, num_layers=2, nonlinearity=nonlinearity, bias=bias,
                           batch_first=batch_first, output_activation=output_activation)
            h = None
            if with_h0:
                h = Tensor(h0, requires_grad=True) if engine == "tensor" else np.vectorize(Value, otypes=[object])(h0)
            y, h_n = model(x, h)
            if C is None:
                rng = np.random.default_rng(33)
                C, D = rng.standard_normal(np.shape(y)), rng.standard_normal(np.shape(h_n))
            ((y * C).sum() + (h_n * D).sum()).backward()
            h0_grad = None if h is None else (h.grad if engine == "tensor" else np.vectorize(
                lambda v: v.grad, otypes=[float])(h))
            results[engine] = (numbers(y), numbers(h_n), model.grad_dict(), h0_grad)
        (yt, ht, gt, h0t), (yv, hv, gv, h0v) = results["tensor"], results["value"]
        np.testing.assert_allclose(yv, yt, rtol=0, atol=1e-12)
        np.testing.assert_allclose(hv, ht, rtol=0, atol=1e-12)
        assert list(gv) == list(gt)
        for name in gt:
            np.testing.assert_allclose(gv[name], gt[name], rtol=0, atol=1e-12, err_msg=name)
        if with_h0:
            assert np.abs(h0t).max() > 1e-6
            np.testing.assert_allclose(h0v, h0t, rtol=0, atol=1e-12)


# --- bad input ------------------------------------------------------------------------------
@pytest.mark.parametrize("engine", ENGINES)
def test_cell_bad_shapes_name_layer_expected_and_given(engine):
    cell = nn.RNNCell(2, 3, engine=engine)
    head = f"RNNCell(input_size=2, hidden_size=3, nonlinearity='tanh', engine='{engine}'): "
    for x, given in [(np.zeros(2), "(2,)"), (np.zeros((4, 5)), "(4, 5)"), (np.zeros((0, 2)), "(0, 2)"),
                     (np.zeros((1, 4, 2)), "(1, 4, 2)")]:
        with pytest.raises(ValueError) as info:
            cell(x)
        assert str(info.value) == head + f"x_t must have shape (m, 2) with m >= 1, got {given}"
    with pytest.raises(ValueError) as info:
        cell(np.zeros((4, 2)), np.zeros((3, 3)))
    assert str(info.value) == head + "h_prev must have shape (4, 3) with m >= 1, got (3, 3)"


@pytest.mark.parametrize("mode", ["many_to_many", "one_to_many"])
def test_float32_weights_keep_float32_states_with_the_default_zero_state(mode):
    # the zero state was float64, which made every step of a float32 model float64
    model = nn.RNNModel(2, 3, 2, mode=mode, steps=3 if mode == "one_to_many" else None, seed=0)
    for p in model.parameters():
        p.data = p.data.astype(np.float32)
    x = np.ones((3, 1, 2) if mode == "many_to_many" else (1, 2), np.float32)
    y, h_n = model(x)
    assert y.dtype == h_n.dtype == np.float32
    cell = model.rnn.cells[0]
    assert cell(np.ones((1, 2), np.float32)).dtype == np.float32


@pytest.mark.parametrize("engine", ENGINES)
def test_cell_project_and_step_check_what_they_are_given(engine):
    cell = nn.RNNCell(2, 3, engine=engine, seed=0)
    head = re.escape(f"RNNCell(input_size=2, hidden_size=3, nonlinearity='tanh', engine='{engine}'): ")
    with pytest.raises(TypeError, match=rf"^{head}project: x: "):
        cell.project(None)
    with pytest.raises(ValueError, match=rf"^{head}project: x must have shape \(\.\.\., 2\), got \(4, 3\)$"):
        cell.project(np.ones((4, 3)))
    xw = cell.project(np.ones((4, 2)))
    with pytest.raises(ValueError, match=rf"^{head}step: xw_t must have shape \(m, 3\) with m >= 1, got \(4, 2\)$"):
        cell.step(np.ones((4, 2)), np.zeros((4, 3)))
    with pytest.raises(ValueError, match=rf"^{head}step: h_prev must have shape \(4, 3\) with m >= 1, got \(3, 3\)$"):
        cell.step(xw, np.zeros((3, 3)))
    with pytest.raises(TypeError, match=rf"^{head}step: h_prev: "):
        cell.step(xw, "h")
    np.testing.assert_array_equal(numbers(cell.step(xw, np.zeros((4, 3)))), numbers(cell(np.ones((4, 2)))))


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("engine", ENGINES)
def test_rnn_bad_shapes_name_layer_expected_and_given(engine, batch_first):
    rnn = nn.RNN(2, 3, num_layers=2, batch_first=batch_first, engine=engine)
    order = "(m, T, 2)" if batch_first else "(T, m, 2)"
    for shape in [(4, 2), (4, 1, 5), (1, 4, 1, 2)]:
        with pytest.raises(ValueError) as info:
            rnn(np.zeros(shape))
        message = str(info.value)
        assert message.startswith("RNN(input_size=2, hidden_size=3, num_layers=2")
        assert f"the input must have shape {order}, got {shape}" in message
    with pytest.raises(ValueError, match=r"h0 must have shape \(2, 4, 3\), got \(1, 4, 3\)"):
        rnn(np.zeros((4, 4, 2)), np.zeros((1, 4, 3)))
    with pytest.raises(ValueError, match=r"h0 must have shape \(2, 4, 3\), got \(4, 3\)"):
        rnn(np.zeros((4, 4, 2)), np.zeros((4, 3)))


@pytest.mark.parametrize("engine", ENGINES)
def test_empty_sequence_and_empty_batch(engine):
    for batch_first in (False, True):
        rnn = nn.RNN(2, 3, batch_first=batch_first, engine=engine)
        empty_T = (4, 0, 2) if batch_first else (0, 4, 2)
        empty_m = (0, 4, 2) if batch_first else (4, 0, 2)
        with pytest.raises(ValueError, match=r"RNN\(input_size=2, .*\): the input sequence is empty \(T = 0\), "
                                             + re.escape(f"shape {empty_T}")):
            rnn(np.zeros(empty_T))
        with pytest.raises(ValueError, match=r"RNN\(input_size=2, .*\): the batch is empty \(m = 0\), "
                                             + re.escape(f"shape {empty_m}")):
            rnn(np.zeros(empty_m))
    model = _model("many_to_many", engine=engine)
    with pytest.raises(ValueError, match=r"T = 0"):
        model(np.zeros((0, 4, 2)))
    with pytest.raises(ValueError, match=r"one_to_many expects one input vector per sequence, shape \(m, 2\) "
                                         r"with m >= 1, got \(0, 2\)"):
        _model("one_to_many", engine=engine)(np.zeros((0, 2)))


@pytest.mark.parametrize("engine", ENGINES)
def test_model_bad_shapes(engine):
    model = _model("many_to_one", engine=engine, num_layers=2)
    with pytest.raises(ValueError, match=r"input must have shape \(T, m, 2\), got \(3, 4, 5\)"):
        model(np.zeros((3, 4, 5)))
    with pytest.raises(ValueError, match=r"h0 must have shape \(2, 4, 3\), got \(2, 4, 2\)"):
        model(np.zeros((3, 4, 2)), np.zeros((2, 4, 2)))
    one = _model("one_to_many", engine=engine)
    for shape in [(3, 4, 2), (4, 3), (2,)]:
        with pytest.raises(ValueError) as info:
            one(np.zeros(shape))
        message = str(info.value)
        assert message.startswith("RNNModel(mode='one_to_many', input_size=2")
        assert f"shape (m, 2) with m >= 1, got {shape}" in message
    batch_first = _model("many_to_many", engine=engine, batch_first=True)
    with pytest.raises(ValueError, match=r"RNNModel\(.*the input must have shape \(m, T, 2\), got \(5, 4\)"):
        batch_first(np.zeros((5, 4)))
    # h0 is (layers, batch, hidden) with batch_first too; the error names the model the user
    # built, not its inner time-first RNN
    with pytest.raises(ValueError, match=r"^RNNModel\(mode='many_to_many'.*h0 must have shape \(1, 5, 3\), "
                                         r"got \(1, 4, 3\) \(h0 is layers x batch x hidden\)"):
        batch_first(np.zeros((5, 4, 2)), np.zeros((1, 4, 3)))
    assert np.shape(batch_first(np.zeros((5, 4, 2)), np.zeros((1, 5, 3)))[0]) == (5, 4, 2)


def test_bug_batch_first_model_size_error_names_the_given_shape():
    # The model swaps the axes before its inner (time-first) RNN checks the size, so the
    # message says "(T, m, 2), got (4, 5, 3)" for an input the user gave as (5, 4, 3).
    model = nn.RNNModel(2, 3, 2, mode="many_to_many", batch_first=True)
    with pytest.raises(ValueError) as info:
        model(np.zeros((5, 4, 3)))
    assert "(m, T, 2)" in str(info.value) and "(5, 4, 3)" in str(info.value)


def test_bad_constructor_arguments():
    cases = [
        (lambda: nn.RNNModel(2, 3, 2, mode="many_to_few"),
         r"mode must be one of \['many_to_one', 'many_to_many', 'one_to_many'\], got 'many_to_few'"),
        (lambda: nn.RNNModel(2, 3, 2, output_activation="tanh"),
         r"must be one of \['identity', 'softmax', 'sigmoid', 'relu'\], got 'tanh'"),
        (lambda: nn.RNNModel(2, 3, 2, nonlinearity="sigmoid"), r"must be one of \['tanh', 'relu'\], got 'sigmoid'"),
        (lambda: nn.RNN(2, 3, nonlinearity="gelu"), r"must be one of \['tanh', 'relu'\], got 'gelu'"),
        (lambda: nn.RNNCell(2, 3, nonlinearity="identity"), r"must be one of \['tanh', 'relu'\], got 'identity'"),
        (lambda: nn.RNNModel(2, 3, 2, engine="torch"), r"engine must be one of \['tensor', 'value'\], got 'torch'"),
        (lambda: nn.RNN(2, 3, engine=None), r"engine must be one of \['tensor', 'value'\], got None"),
        (lambda: nn.RNNCell(2, 3, engine="Value"), r"engine must be one of \['tensor', 'value'\], got 'Value'"),
        (lambda: nn.RNNModel(2, 3, 2, mode="one_to_many"),
         r"steps \(for mode='one_to_many'\) must be an int >= 1, got None"),
        (lambda: nn.RNNModel(2, 3, 2, mode="one_to_many", steps=0),
         r"steps \(for mode='one_to_many'\) must be an int >= 1, got 0"),
        (lambda: nn.RNNModel(2, 3, 2, steps=3),
         r"steps is only used by mode='one_to_many', got steps=3 with mode='many_to_one'"),
        (lambda: nn.RNNModel(2, 3, 2, mode="many_to_many", steps=3),
         r"steps is only used by mode='one_to_many', got steps=3 with mode='many_to_many'"),
        (lambda: nn.RNN(2, 3, num_layers=0), r"num_layers must be an int >= 1, got 0"),
        (lambda: nn.RNN(2, 0), r"hidden_size must be an int >= 1, got 0"),
        (lambda: nn.RNNCell(1.5, 3), r"input_size must be an int >= 1, got 1.5"),
        (lambda: nn.RNNModel(2, 3, 0), r"output_size must be an int >= 1, got 0"),
    ]
    for make, message in cases:
        with pytest.raises(ValueError, match=message):
            make()
    # the message starts with the class built (and the inner one, where that one refused)
    with pytest.raises(ValueError, match=r"^RNN: hidden_size must be an int >= 1, got 0$"):
        nn.RNN(2, 0)
    with pytest.raises(ValueError, match=r"^RNNModel: RNN: hidden_size must be an int >= 1, got 0$"):
        nn.RNNModel(2, 0, 2)
    with pytest.raises(ValueError, match=r"^RNNModel: mode must be one of"):
        nn.RNNModel(2, 3, 2, mode="many_to_few")


def _with_bad_entry(shape, index, bad):
    """An object array of numbers of ``shape`` holding ``bad`` at ``index``."""
    x = np.zeros(shape).astype(object)
    x[index] = bad
    return x


@pytest.mark.parametrize("engine", ENGINES)
def test_non_numbers_in_an_input_name_the_layer_the_argument_and_the_entry(engine):
    # A string or None among the numbers: the value engine names the entry it could not
    # make a Value of; either engine's error says which layer and which argument.
    entry = r"entry \(0, 1, 1\): Value expects a real number .*got str: 'a'" if engine == "value" else (
        r"engine='tensor' got a numpy object array; it takes arrays of real numbers \(x.astype\(float\)")
    for layer in (nn.RNN(2, 3, engine=engine), _model("many_to_many", engine=engine)):
        with pytest.raises(TypeError, match=rf"^{type(layer).__name__}\(.*engine='{engine}'\): the input: {entry}"):
            layer(_with_bad_entry((3, 2, 2), (0, 1, 1), "a"))
    entry = entry.replace("0, 1, 1", "0, 0, 2").replace("str: 'a'", "NoneType: None")
    with pytest.raises(TypeError, match=rf"^RNN\(.*\): h0: {entry}"):
        nn.RNN(2, 3, engine=engine)(np.zeros((3, 2, 2)), _with_bad_entry((1, 2, 3), (0, 0, 2), None))
    entry = entry.replace("0, 0, 2", "1, 0").replace("NoneType: None", "str: 'a'")
    cell = nn.RNNCell(2, 3, engine=engine)
    with pytest.raises(TypeError, match=rf"^RNNCell\(.*\): x_t: {entry}"):
        cell(_with_bad_entry((2, 2), (1, 0), "a"))
    with pytest.raises(TypeError, match=rf"^RNNCell\(.*\): h_prev: {entry}"):
        cell(np.zeros((2, 2)), _with_bad_entry((2, 3), (1, 0), "a"))
    with pytest.raises(TypeError, match=r"^RNN\(.*\): the input: .*real numbers(,|;) got an array of dtype <U1"):
        nn.RNN(2, 3, engine=engine)(np.full((3, 2, 2), "1"))
    # the model converts h0 itself, so its own name leads the message
    entry = entry.replace("1, 0", "0, 1, 2")
    with pytest.raises(TypeError, match=rf"^RNNModel\(.*\): h0: {entry}"):
        _model("many_to_many", engine=engine)(np.zeros((3, 2, 2)), _with_bad_entry((1, 2, 3), (0, 1, 2), "a"))


def test_wrong_engine_inputs_are_rejected():
    values = np.vectorize(Value, otypes=[object])(np.zeros((3, 2, 2)))
    for layer in (nn.RNN(2, 3), _model("many_to_many")):
        with pytest.raises(TypeError, match="engine='tensor' got a numpy object array"):
            layer(values)
    with pytest.raises(TypeError, match="engine='tensor' got a numpy object array"):
        nn.RNNCell(2, 3)(values[0])
    tensor = Tensor(np.zeros((3, 2, 2)))
    for layer in (nn.RNN(2, 3, engine="value"), _model("many_to_many", engine="value")):
        with pytest.raises(TypeError, match="engine='value' got a Tensor"):
            layer(tensor)
    with pytest.raises(TypeError, match="engine='value' got a Tensor"):
        nn.RNNCell(2, 3, engine="value")(tensor[0])
    with pytest.raises(TypeError, match="engine='value' got a Tensor"):
        nn.RNN(2, 3, engine="value")(np.zeros((3, 2, 2)), Tensor(np.zeros((1, 2, 3))))
    with pytest.raises(TypeError, match="engine='value' got a Tensor"):
        _model("one_to_many", engine="value")(Tensor(np.zeros((2, 2))))


# --- a new cell is one class: the stack, checks, training and interop take it as it is -----
class LeakyCell(nn.RecurrentCell):
    """A test cell with two gates and a state of two parts, as an LSTM has:
    [a | f] = xw_t + h_{t-1} W_hh, c_t = f c_{t-1} + (1 - f) tanh(a), h_t = tanh(c_t),
    with f = sigmoid of its block."""

    GATES = 2
    STATE = ("h", "c")

    def _step(self, xw_t, state):
        h, c = state
        z = nn.functional.addmm(xw_t, h, self.W_hh)
        H = self.hidden_size
        f = nn.functional.sigmoid(z[:, H:])
        c = f * c + (1.0 - f) * nn.functional.tanh(z[:, :H])
        return nn.functional.tanh(c), c


class LeakyStack(nn.RecurrentStack):
    CELL = LeakyCell


def numpy_leaky(state, x, h0, c0, num_layers):
    """The equations of LeakyCell, layer by layer; returns the top outputs, h_n and c_n."""
    inputs, hs, cs = x, [], []
    for l in range(num_layers):
        W_xh, W_hh, b_h = (state[f"cells.{l}.{name}"] for name in ("W_xh", "W_hh", "b_h"))
        H = W_hh.shape[0]
        h, c, outs = h0[l], c0[l], []
        for x_t in inputs:
            z = x_t @ W_xh + b_h + h @ W_hh
            f = 1 / (1 + np.exp(-z[:, H:]))
            c = f * c + (1 - f) * np.tanh(z[:, :H])
            h = np.tanh(c)
            outs.append(h)
        inputs = np.stack(outs)
        hs.append(h)
        cs.append(c)
    return inputs, np.stack(hs), np.stack(cs)


@pytest.mark.parametrize("engine", ENGINES)
def test_a_cell_with_gates_and_a_two_part_state_unrolls_on_both_engines(engine):
    stack = LeakyStack(2, 3, num_layers=2, engine=engine, seed=0)
    weights = stack.state_dict()
    assert weights["cells.0.W_xh"].shape == (2, 6) and weights["cells.1.W_hh"].shape == (3, 6)
    x = np.random.default_rng(1).standard_normal((4, 2, 2))
    h0, c0 = _h0(2, m=2, hidden=3), _h0(2, m=2, hidden=3, seed=3)
    for given, (h_start, c_start) in [(None, (np.zeros((2, 2, 3)),) * 2), ((h0, c0), (h0, c0))]:
        out, (h_n, c_n) = stack(x, given)
        want_out, want_h, want_c = numpy_leaky(weights, x, h_start, c_start, 2)
        np.testing.assert_allclose(numbers(out), want_out, rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(numbers(h_n), want_h, rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(numbers(c_n), want_c, rtol=1e-13, atol=1e-15)
    # one cell alone takes and gives the state as a tuple
    cell = stack.cells[0]
    h1, c1 = cell(x[0], (h0[0], c0[0]))
    np.testing.assert_array_equal(numbers(h1), numbers(cell.step(cell.project(x[0]), (h0[0], c0[0]))[0]))
    assert numbers(cell(x[0])[1]).shape == (2, 3)


def test_each_part_of_a_new_cells_state_is_named_for_its_letter():
    stack = LeakyStack(2, 3, num_layers=2, seed=0)
    out, (h_n, c_n) = stack(np.random.default_rng(1).standard_normal((4, 2, 2)))
    order = topological_order(out.sum() + c_n.sum())
    for l in range(2):
        named = {(n.label, n.op, n.scope[1]) for n in order if n.label and n.scope[:1] == (f"layer {l}",)}
        parts = (("H", "tanh"), ("C", "+"))
        assert named == {(f"{letter}_{t}", op, f"t={t}") for t in range(1, 5) for letter, op in parts}


class CarryCell(nn.RecurrentCell):
    """A test cell whose state's second part is the last h, passed on as it was given."""

    STATE = ("h", "p")

    def _step(self, xw_t, state):
        h, _ = state
        return nn.functional.tanh(nn.functional.addmm(xw_t, h, self.W_hh)), h


class CarryStack(nn.RecurrentStack):
    CELL = CarryCell


@pytest.mark.parametrize("engine", ENGINES)
def test_a_state_part_passed_on_unchanged_keeps_the_name_it_has(engine):
    # Only the nodes a step makes are named for that step: the p passed on is H_{t-1}
    # (it was named P_t, and each H_t then P_{t+1}), and a caller's h0 keeps its names.
    T = 4
    encoder = nn.RNN(2, 3, engine=engine, seed=1)
    _, h_n = encoder(np.random.default_rng(0).standard_normal((T, 2, 2)))
    stack = CarryStack(2, 3, engine=engine, seed=0)
    out, (h_last, p_last) = stack(np.random.default_rng(1).standard_normal((T, 2, 2)), (h_n, h_n))

    def name(x):
        return x.label if engine == "tensor" else x[0, 0].label
    states = [out.parents[t] for t in range(T)] if engine == "tensor" else [out[t] for t in range(T)]
    want = [f"H_{t}" if engine == "tensor" else f"H_{t}[0,0]" for t in range(1, T + 1)]
    assert [name(s) for s in states] == want
    assert name(h_n[0] if engine == "value" else h_n.parents[0]) == ("H_4[0,0]" if engine == "value" else "H_4")
    if engine == "value":
        assert p_last[0][0, 0] is states[-2][0, 0] and p_last[0][0, 0].label == "H_3[0,0]"


def test_the_new_cell_is_differentiated_as_any_graph_and_both_engines_agree():
    x = np.random.default_rng(1).standard_normal((3, 2, 2))
    grads = {}
    for engine in ENGINES:
        stack = LeakyStack(2, 3, num_layers=2, engine=engine, seed=0)
        out, (h_n, c_n) = stack(x)
        loss = (out * out).sum() + c_n.sum() if engine == "tensor" else sum((out * out).ravel()) + sum(c_n.ravel())
        loss.backward()
        grads[engine] = stack.grad_dict()
    for name, g in grads["tensor"].items():
        np.testing.assert_allclose(grads["value"][name], g, rtol=1e-12, atol=1e-14)
    stack = LeakyStack(2, 3, num_layers=2, seed=0)

    def loss(*params):
        out, (h_n, c_n) = stack(x)
        return (out * out).sum() + c_n.sum()

    assert gradcheck(loss, stack.parameters()).ok


@pytest.mark.parametrize("engine", ENGINES)
def test_a_two_part_state_of_the_wrong_form_is_named(engine):
    stack = LeakyStack(2, 3, num_layers=2, engine=engine, seed=0)
    head = re.escape(f"LeakyStack(input_size=2, hidden_size=3, num_layers=2, batch_first=False, engine='{engine}'): ")
    x, h = np.ones((4, 2, 2)), np.zeros((2, 2, 3))
    with pytest.raises(TypeError, match=rf"^{head}the initial state must be a tuple \(h0, c0\) of 2 arrays of shape "
                                        r"\(2, 2, 3\), got a numpy array of shape \(2, 2, 3\)$"):
        stack(x, h)
    with pytest.raises(TypeError, match=r"got a tuple of 3$"):
        stack(x, (h, h, h))
    with pytest.raises(ValueError, match=rf"^{head}c0 must have shape \(2, 2, 3\), got \(2, 1, 3\)"):
        stack(x, (h, np.zeros((2, 1, 3))))
    cell = stack.cells[0]
    with pytest.raises(TypeError, match=r"the state must be a tuple \(h, c\) of 2 arrays, got a numpy array of "
                                        r"shape \(2, 3\)$"):
        cell(np.ones((2, 2)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"step: c must have shape \(2, 3\) with m >= 1, got \(2, 4\)"):
        cell.step(cell.project(np.ones((2, 2))), (np.zeros((2, 3)), np.zeros((2, 4))))


def test_the_new_stack_trains_truncated_and_exports_to_pytorch_names():
    x = np.random.default_rng(1).standard_normal((4, 2, 2))
    target = np.random.default_rng(2).standard_normal((4, 2, 3))

    def loss_fn(y, t):
        return nn.sequence_loss(nn.mse_loss, y, t)[0]

    net, ref = LeakyStack(2, 3, seed=0), LeakyStack(2, 3, seed=0)
    _, (h, c) = nn.train_truncated(net, x, target, loss_fn, nn.optim.SGD(net.parameters(), lr=0.1), k=2,
                                   return_state=True)
    opt, state = nn.optim.SGD(ref.parameters(), lr=0.1), None
    for start in (0, 2):  # by hand: the (h, c) state carried across the chunks, detached
        y, state = ref(x[start:start + 2], state)
        opt.zero_grad()
        loss_fn(y, target[start:start + 2]).backward()
        opt.step()
        state = nn.detach(state)
    for name, w in ref.state_dict().items():
        np.testing.assert_array_equal(net.state_dict()[name], w)
    assert h.is_leaf and c.is_leaf and np.array_equal(c.data, state[1].data)
    torch_state = nn.to_torch_state_dict(net)
    assert {k: v.shape for k, v in torch_state.items()} == {
        "weight_ih_l0": (6, 2), "weight_hh_l0": (6, 3), "bias_ih_l0": (6,), "bias_hh_l0": (6,)}
    fresh = LeakyStack(2, 3, seed=5)
    nn.from_torch_state_dict(fresh, torch_state)
    for name, w in net.state_dict().items():
        np.testing.assert_array_equal(fresh.state_dict()[name], w)
    with pytest.raises(TypeError, match="model must be a sequence module .* which takes one step"):
        nn.train_truncated(net.cells[0], x, target, loss_fn, nn.optim.SGD(net.parameters(), lr=0.1), k=2)
