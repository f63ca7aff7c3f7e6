"""Optimizers and gradient clipping on every kind of parameter (a Tensor, an object array of
Values, a single Value), against the update formulas worked out by hand in numpy."""

import math
import re

import numpy as np
import pytest

import nn
from autograd import Tensor, Value
from nn import backends
from nn.backends import ValueBackend
from nn.optim import SGD, Adam

KINDS = ("tensor", "values", "value")
X0 = np.array([1.0, -2.0, 0.5])
G = np.array([0.5, -2.0, 0.0])


def parameter(x, kind):
    """A parameter holding ``x``: a Tensor, an object array of Values, or one Value (x scalar)."""
    x = np.asarray(x, dtype=np.float64)
    if kind == "tensor":
        return Tensor(x, requires_grad=True, label="w")
    if kind == "values":
        return ValueBackend.parameter(x, "w")
    return Value(float(x[0]) if x.ndim else float(x), label="w")


def start(kind, x=X0):
    """The parameter and its starting numbers (a single Value takes the first entry)."""
    x = np.asarray(x, dtype=np.float64)
    if kind == "value":
        x = x.ravel()[:1].reshape(())
    return parameter(x, kind), x


def fixed(a, x):
    """``a`` cut to the shape of ``x`` (the first entry for a single Value)."""
    return np.asarray(a, dtype=np.float64).ravel()[: max(x.size, 1)].reshape(x.shape)


# --- SGD ----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_sgd_plain(kind):
    p, x = start(kind)
    g = fixed(G, x)
    opt = SGD([p], lr=0.1)
    for _ in range(3):
        backends.set_grad(p, g)
        opt.step()
        x = x - 0.1 * g
        np.testing.assert_allclose(backends.data(p), x, rtol=1e-15)


@pytest.mark.parametrize("kind", KINDS)
def test_sgd_momentum_first_step_uses_the_gradient_then_accumulates(kind):
    p, x0 = start(kind)
    g = fixed(G, x0)
    opt = SGD([p], lr=0.1, momentum=0.9)
    # v1 = g, v2 = 0.9 g + g = 1.9 g, v3 = 0.9 * 1.9 g + g = 2.71 g
    for total in (1.0, 2.9, 5.61):
        backends.set_grad(p, g)
        opt.step()
        np.testing.assert_allclose(backends.data(p), x0 - 0.1 * total * g, rtol=1e-14)


@pytest.mark.parametrize("kind", KINDS)
def test_sgd_weight_decay(kind):
    p, x = start(kind)
    g = fixed(G, x)
    opt = SGD([p], lr=0.1, weight_decay=0.01)
    for _ in range(2):
        backends.set_grad(p, g)
        opt.step()
        x = x - 0.1 * (g + 0.01 * x)
        np.testing.assert_allclose(backends.data(p), x, rtol=1e-15)


def test_sgd_momentum_with_weight_decay_and_changing_gradients():
    p = parameter(X0, "tensor")
    opt = SGD([p], lr=0.05, momentum=0.5, weight_decay=0.1)
    grads = [np.array([1.0, 2.0, -1.0]), np.array([0.5, -1.0, 0.0]), np.array([-2.0, 0.25, 3.0])]
    x, v = X0.copy(), None
    for g in grads:
        backends.set_grad(p, g)
        opt.step()
        d = g + 0.1 * x
        v = d if v is None else 0.5 * v + d
        x = x - 0.05 * v
        np.testing.assert_allclose(p.data, x, rtol=1e-15)


@pytest.mark.parametrize("kind", ["tensor", "values"])
def test_sgd_minimises_a_quadratic(kind):
    # f(w) = Σ a_i (w_i - c_i)²: each step multiplies w - c by (1 - 2 a lr).
    a, c, lr = np.array([1.0, 3.0]), np.array([2.0, -1.0]), 0.1
    w0 = np.array([-1.0, 4.0])
    w = parameter(w0, kind)
    opt = SGD([w], lr=lr)
    for step in range(1, 101):
        opt.zero_grad()
        loss = ((w - c) * (w - c) * a).sum()
        loss.backward()
        opt.step()
        if step in (1, 2, 50, 100):
            np.testing.assert_allclose(backends.data(w), c + (1 - 2 * a * lr) ** step * (w0 - c), rtol=1e-12)
    np.testing.assert_allclose(backends.data(w), c, atol=1e-8)


# --- Adam ---------------------------------------------------------------------------------


def adam_by_hand(x, grads, lr, b1, b2, eps):
    """Parameter values after each Adam step, from Kingma & Ba's formulas."""
    m = v = np.zeros_like(x)
    out = []
    for t, g in enumerate(grads, start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g**2
        x = x - lr * (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps)
        out.append(x)
    return out


@pytest.mark.parametrize("kind", KINDS)
def test_adam_with_a_fixed_gradient_moves_lr_per_step(kind):
    # With g fixed, bias correction makes m̂ = g and v̂ = g² at every step, so each step is
    # lr g / (|g| + eps): lr in the direction of -sign(g), and nothing where g = 0.
    p, x0 = start(kind)
    g = fixed(G, x0)
    opt = Adam([p], lr=0.01)
    for t in (1, 2, 3):
        backends.set_grad(p, g)
        opt.step()
        np.testing.assert_allclose(backends.data(p), x0 - t * 0.01 * g / (np.abs(g) + 1e-8), rtol=1e-12)


@pytest.mark.parametrize("kind", KINDS)
def test_adam_steps_1_2_3_with_changing_gradients(kind):
    p, x0 = start(kind)
    grads = [fixed(g, x0) for g in ([0.5, -2.0, 0.0], [1.5, 0.5, -1.0], [-0.25, 3.0, 2.0])]
    opt = Adam([p], lr=0.1, betas=(0.8, 0.99), eps=1e-6)
    expected = adam_by_hand(x0, grads, 0.1, 0.8, 0.99, 1e-6)
    for g, x in zip(grads, expected):
        backends.set_grad(p, g)
        opt.step()
        np.testing.assert_allclose(backends.data(p), x, rtol=1e-13)


def test_adam_on_a_quadratic_matches_hand_formulas():
    c = np.array([1.0, -1.0, 3.0])
    w = parameter(X0, "tensor")
    opt = Adam([w], lr=0.1)
    x, m, v = X0.copy(), np.zeros(3), np.zeros(3)
    for t in (1, 2, 3):
        opt.zero_grad()
        ((w - c) * (w - c)).sum().backward()
        opt.step()
        g = 2 * (x - c)
        m, v = 0.9 * m + 0.1 * g, 0.999 * v + 0.001 * g * g
        x = x - 0.1 * (m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.999**t)) + 1e-8)
        np.testing.assert_allclose(w.data, x, rtol=1e-13)


def test_adam_keeps_separate_moments_per_parameter():
    a, b = parameter([1.0, 2.0], "tensor"), parameter([[3.0]], "tensor")
    ga, gb = np.array([0.5, -1.0]), np.array([[4.0]])
    opt = Adam([a, b], lr=0.1)
    for _ in range(2):
        backends.set_grad(a, ga)
        backends.set_grad(b, gb)
        opt.step()
    np.testing.assert_allclose(a.data, adam_by_hand(np.array([1.0, 2.0]), [ga, ga], 0.1, 0.9, 0.999, 1e-8)[-1])
    np.testing.assert_allclose(b.data, adam_by_hand(np.array([[3.0]]), [gb, gb], 0.1, 0.9, 0.999, 1e-8)[-1])


def test_adam_bias_correction_counts_each_parameters_own_steps():
    # PyTorch counts steps per parameter: a parameter first reached by backward at the
    # second step() gets its first update, lr g / (|g| + eps), not a second-step one.
    a, b = parameter([1.0], "tensor"), parameter([1.0], "tensor")
    opt = Adam([a, b], lr=0.1)
    backends.set_grad(a, [1.0])  # b has no gradient yet: skipped
    opt.step()
    assert b.data[0] == 1.0
    backends.set_grad(a, [1.0])
    backends.set_grad(b, [1.0])
    opt.step()
    np.testing.assert_allclose(b.data, [1.0 - 0.1 / (1 + 1e-8)], rtol=1e-12)


# --- both optimizers --------------------------------------------------------------------


@pytest.mark.parametrize("make", [lambda ps: SGD(ps, lr=0.1, momentum=0.9, weight_decay=0.1),
                                  lambda ps: Adam(ps, lr=0.1)], ids=["SGD", "Adam"])
def test_parameters_without_a_gradient_are_skipped(make):
    used, unused = parameter([1.0, 2.0], "tensor"), parameter([3.0, 4.0], "tensor")
    opt = make([used, unused])
    for _ in range(2):
        opt.zero_grad()
        (used * used).sum().backward()
        assert unused.grad is None
        opt.step()
    np.testing.assert_array_equal(unused.data, [3.0, 4.0])
    assert np.all(used.data < [1.0, 2.0])


@pytest.mark.parametrize("engine", ["tensor", "value"])
def test_a_parameter_backward_reached_in_part_is_updated_where_it_was_reached(engine):
    # On the value engine a weight is an array of Values: a loss on one output unit reaches
    # one column of W and one entry of b. Those move by lr * gradient; the rest of the
    # array, reached or not, is the parameter's too and must not be taken for "no gradient".
    layer = nn.Linear(2, 2, engine=engine, seed=0)
    before = layer.state_dict()
    y = layer(np.array([[1.0, 2.0]]))
    y[0, 0].backward()
    SGD(layer.parameters(), lr=0.1).step()
    after = layer.state_dict()
    np.testing.assert_allclose(after["W"] - before["W"], [[-0.1, 0.0], [-0.2, 0.0]], rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(after["b"] - before["b"], [-0.1, 0.0], rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("engine", ["tensor", "value"])
def test_a_parameter_no_backward_reached_is_skipped_on_both_engines(engine):
    # The loss depends on h_n only: the readout W_hy, b_y is not in its graph. With weight
    # decay, updating it anyway would move it (by lr * 0.5 * W_hy); neither engine does.
    x = np.random.default_rng(0).standard_normal((4, 2, 3))
    model = nn.RNNModel(3, 4, 2, mode="many_to_many", engine=engine, seed=0)
    opt = SGD(model.parameters(), lr=0.1, weight_decay=0.5)
    before = model.state_dict()
    for _ in range(2):
        _, h_n = model(x)
        loss = h_n.sum() if engine == "tensor" else sum(h_n.ravel())
        opt.zero_grad()
        loss.backward()
        assert not backends.has_grad(model.W_hy) and backends.has_grad(model.rnn.cells[0].W_hh)
        opt.step()
    after = model.state_dict()
    for name in ("W_hy", "b_y"):
        np.testing.assert_array_equal(after[name], before[name])
    assert not np.allclose(after["rnn.cells.0.W_hh"], before["rnn.cells.0.W_hh"])


@pytest.mark.parametrize("kind", ["tensor", "value"])
def test_a_parameter_reached_only_through_an_inactive_relu_is_updated(kind):
    # Backward reaches w, with gradient 0 (relu is off): weight decay still applies, on both
    # engines, as in PyTorch, where w.grad is a zero tensor rather than None.
    w = Tensor([2.0], requires_grad=True) if kind == "tensor" else Value(2.0)
    opt = SGD([w], lr=0.1, weight_decay=0.5)
    opt.zero_grad()
    y = (w * -1.0).relu()
    (y.sum() if kind == "tensor" else y).backward()
    assert backends.has_grad(w)
    np.testing.assert_array_equal(backends.grad(w), 0.0 if kind == "value" else [0.0])
    opt.step()
    np.testing.assert_allclose(backends.data(w), 2.0 - 0.1 * 0.5 * 2.0, rtol=1e-15)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("cls", [SGD, Adam])
def test_zero_grad(kind, cls):
    p, x = start(kind)
    backends.set_grad(p, fixed(G, x) + 1.0)
    opt = cls([p], lr=0.1)
    opt.zero_grad()
    if kind == "tensor":
        assert p.grad is None
    else:
        np.testing.assert_array_equal(backends.grad(p), 0.0)
    opt.step()  # nothing to follow: the parameter stays where it was
    np.testing.assert_array_equal(backends.data(p), x)


@pytest.mark.parametrize("cls", [SGD, Adam])
def test_updates_are_in_place(cls):
    p = parameter(X0, "tensor")
    values = ValueBackend.parameter(X0, "v")
    entries = list(values)
    buffer = p.data
    opt = cls([p, values], lr=0.1)
    backends.set_grad(p, G)
    backends.set_grad(values, G)
    opt.step()
    assert p.data is buffer
    assert all(a is b for a, b in zip(values, entries))
    np.testing.assert_allclose(backends.data(values), p.data, rtol=1e-15)


def make_rnn(engine):
    return nn.RNNModel(2, 3, 3, mode="many_to_one", seed=7, engine=engine)


@pytest.mark.parametrize("make", [lambda ps: SGD(ps, lr=0.2, momentum=0.9, weight_decay=0.01),
                                  lambda ps: Adam(ps, lr=0.05, betas=(0.8, 0.95))], ids=["SGD", "Adam"])
def test_trajectories_agree_across_engines(make):
    rng = np.random.default_rng(3)
    x, classes = rng.standard_normal((3, 2, 2)), np.array([0, 2])
    models = {engine: make_rnn(engine) for engine in ("tensor", "value")}
    opts = {engine: make(model.parameters()) for engine, model in models.items()}
    start_state = models["tensor"].state_dict()
    for _ in range(4):
        losses = {}
        for engine, model in models.items():
            opts[engine].zero_grad()
            loss = nn.cross_entropy(model(x)[0], classes)
            loss.backward()
            opts[engine].step()
            losses[engine] = float(loss.data)
        assert losses["tensor"] == pytest.approx(losses["value"], rel=1e-12)
        tensor_state, value_state = models["tensor"].state_dict(), models["value"].state_dict()
        for name in tensor_state:
            np.testing.assert_allclose(value_state[name], tensor_state[name], rtol=1e-12, atol=1e-14)
    assert any(not np.allclose(tensor_state[n], start_state[n]) for n in start_state)


@pytest.mark.parametrize("engine", ["tensor", "value"])
@pytest.mark.parametrize("change", ["step", "load_state_dict"])
def test_backward_after_the_weights_changed_in_place_is_refused_and_changes_nothing(engine, change):
    # The graph's ops would read the new weights: gradients for weights it was not built with.
    model = nn.MLP(3, [4, 1], seed=0, engine=engine)
    opt = SGD(model.parameters(), lr=0.5)
    x = np.random.default_rng(0).standard_normal((4, 3))
    nn.mse_loss(model(x), np.zeros((4, 1))).backward()
    stale = nn.mse_loss(model(x), np.zeros((4, 1)))  # built with the weights before the change
    if change == "step":
        opt.step()
    else:
        model.load_state_dict({k: v * 0.5 for k, v in model.state_dict().items()})
    grads = model.grad_dict()
    message = (r"backward\(\) from .*: layers\.\d\.\w+(\[\d+(,\d+)?\])? .* was changed in place "
               r"\(an optimizer step or load_state_dict\) after this graph was built")
    with pytest.raises(RuntimeError, match=message):
        stale.backward()
    after = model.grad_dict()
    assert all(np.array_equal(grads[k], after[k]) for k in grads)  # nothing was written
    # the training loop's order, forward after the step, runs and learns
    losses = []
    for _ in range(20):
        opt.zero_grad()
        loss = nn.mse_loss(model(x), np.zeros((4, 1)))
        loss.backward()
        opt.step()
        losses.append(float(np.asarray(backends.data(loss)).reshape(())))
    assert losses[-1] < 0.1 * losses[0]


def test_a_graph_built_after_the_step_runs_even_through_leaves_made_before_it():
    # Only the weights' change after the output was made is refused: a detached state from
    # before the step (truncated BPTT) is a constant of the new graph.
    W = Tensor(np.eye(2) * 0.5, requires_grad=True)
    opt = SGD([W], lr=0.1)
    h = (Tensor(np.ones((1, 2))) @ W).tanh()
    h.sum().backward()
    carried = h.detach()
    opt.step()
    opt.zero_grad()
    out = (carried @ W).sum()
    out.backward()
    np.testing.assert_allclose(W.grad, carried.data.T @ np.ones((1, 2)), rtol=1e-15)


@pytest.mark.parametrize("engine", ["tensor", "value"])
def test_a_state_carried_across_a_step_without_detaching_is_refused(engine):
    # The second chunk's graph reached back into the first's, whose ops read W_hh before the
    # step: backward took their gradients at the new weights, a wrong answer without a word.
    model = nn.RNNModel(2, 3, 1, mode="many_to_many", engine=engine, seed=0)
    opt = SGD(model.parameters(), lr=0.1)
    x, target = np.ones((4, 1, 2)), np.zeros((4, 1, 1))

    def chunk(c, h):
        y, h = model(x[2 * c:2 * c + 2], h)
        return nn.sequence_loss(nn.mse_loss, y, target[2 * c:2 * c + 2])[0], h

    loss, h = chunk(0, None)
    loss.backward()
    opt.step()
    opt.zero_grad()
    loss, _ = chunk(1, h)  # h not detached
    grads = model.grad_dict()
    with pytest.raises(RuntimeError, match=r"backward\(\) from .*: rnn\.cells\.0\.W_(hh|xh)\S* .*was changed in "
                                           r"place \(an optimizer step or load_state_dict\) after .*, an op of this "
                                           r"graph that reads it, was computed: .*h = nn\.detach\(h\)"):
        loss.backward()
    assert all(np.array_equal(g, model.grad_dict()[k]) for k, g in grads.items())  # nothing was written
    loss, _ = chunk(1, nn.detach(h))  # detached, it runs
    loss.backward()


def test_old_ops_whose_backward_does_not_read_the_changed_weight_run():
    # A view of W made once (W.T, tied weights in a loop) and x W + b of data x: their
    # backward reads neither W's nor b's numbers, so the new ones change no gradient (as in
    # PyTorch, which checks only what each op saved for its backward)
    W = Tensor([[0.5, -0.25], [0.125, 1.0]], requires_grad=True)
    V = W.T  # made before the steps, shares W's numbers
    x = np.array([[1.0, 2.0]])
    opt = SGD([W], lr=0.1)
    for _ in range(3):
        opt.zero_grad()
        (x @ V).tanh().sum().backward()
        expected = (x.T @ (1 - np.tanh(x @ W.data.T) ** 2)).T  # d/dW of sum tanh(x Wᵀ)
        np.testing.assert_allclose(W.grad, expected, rtol=1e-15)
        opt.step()
    A, B = nn.Linear(2, 2, seed=0), nn.Linear(2, 1, seed=1)
    z = A(x)  # reads x and W for each other's gradient: x takes none, so W's numbers are not read
    nn.mse_loss(z, np.zeros((1, 2))).backward()
    SGD(A.parameters(), lr=0.1).step()
    lossB = B(z.tanh()).sum()  # built after A's step, through A's old addmm
    lossB.backward()
    np.testing.assert_allclose(B.W.grad, np.tanh(z.data).T, rtol=1e-15)


def test_an_old_op_that_reads_only_leaves_left_unchanged_runs():
    # a graph may reach back past a step through ops that read no changed leaf: a feature of
    # a frozen weight E computed once, before training
    E, W = Tensor([[1.0, 2.0]], requires_grad=True), Tensor([[0.5], [0.25]], requires_grad=True)
    feature = E * 3.0  # made before the steps; E is not in the optimizer
    opt = SGD([W], lr=0.1)
    expected = np.zeros((1, 2))  # E's gradient adds up over the passes (nothing resets it)
    for _ in range(3):
        opt.zero_grad()
        expected += 3.0 * W.data.T  # each pass at the W of its forward
        (feature @ W).sum().backward()
        opt.step()
    np.testing.assert_array_equal(W.grad, feature.data.T)
    np.testing.assert_allclose(E.grad, expected, rtol=1e-15)


# --- bad input ----------------------------------------------------------------------------


@pytest.mark.parametrize("cls", [SGD, Adam])
def test_empty_parameter_list(cls):
    with pytest.raises(ValueError, match=f"{cls.__name__}: got an empty parameter list"):
        cls([], lr=0.1)
    with pytest.raises(ValueError, match="empty parameter list"):
        cls(iter(()), lr=0.1)


@pytest.mark.parametrize("cls", [SGD, Adam])
def test_a_used_up_generator_and_an_uncalled_parameters_method_are_named(cls):
    model = nn.Linear(2, 2)
    params = (p for p in model.parameters())
    cls(params, lr=0.1)  # takes both parameters; the generator is used up now
    with pytest.raises(ValueError, match=r"empty parameter list \(a generator with nothing left: one already used "
                                         r"up\? model.parameters\(\) gives a fresh list each time\)"):
        cls(params, lr=0.1)
    with pytest.raises(ValueError, match=r"empty parameter list$"):  # a list is no iterator: no guess
        cls([], lr=0.1)
    with pytest.raises(TypeError, match=r"got method; call it: model.parameters\(\)$"):
        cls(model.parameters, lr=0.1)
    for other in (model.state_dict, 1.5):  # no guess where it would mislead
        with pytest.raises(TypeError, match=r"e.g. model.parameters\(\)\), got (method|float)$"):
            cls(other, lr=0.1)


@pytest.mark.parametrize("cls", [SGD, Adam])
@pytest.mark.parametrize("bad, name", [(np.zeros(3), "ndarray"), (Tensor([1.0]), "Tensor"), (1.5, "float"),
                                       ([Value(1.0)], "list")])
def test_non_parameters_are_rejected(cls, bad, name):
    with pytest.raises(TypeError, match=rf"parameter 1 is a {name}; expected a Tensor with requires_grad=True"):
        cls([parameter(X0, "tensor"), bad], lr=0.1)


@pytest.mark.parametrize("cls", [SGD, Adam, nn.clip_grad_norm_])
def test_op_results_are_rejected_on_both_engines(cls):
    # An update would move the result and leave the leaves it came from where they were.
    a = Value(1.0)
    with pytest.raises(TypeError, match=r"parameter 0 is the result of an op \('\*'\), not a leaf Value"):
        cls([a * 2.0], 0.1)
    W = nn.Linear(2, 2, engine="value").W
    with pytest.raises(TypeError, match=r"parameter 1 entry \(0, 0\) is the result of an op \('\*'\), not a leaf"):
        cls([a, W * 2.0], 0.1)
    with pytest.raises(TypeError, match=r"parameter 0 entry \(1,\) is a float, not a Value"):
        cls([np.array([Value(1.0), 3.0], dtype=object)], 0.1)
    with pytest.raises(TypeError, match=r"parameter 0 is the result of an op \('\*'\), not a leaf tensor"):
        cls([Tensor([1.0], requires_grad=True) * 2], 0.1)


@pytest.mark.parametrize("make, name, bad", [
    (lambda p, x: SGD(p, lr=x), "SGD: lr", "0.1"),
    (lambda p, x: SGD(p, lr=x), "SGD: lr", None),
    (lambda p, x: SGD(p, lr=x), "SGD: lr", np.array([0.1, 0.2])),
    (lambda p, x: SGD(p, 0.1, momentum=x), "SGD: momentum", None),
    (lambda p, x: SGD(p, 0.1, weight_decay=x), "SGD: weight_decay", "0"),
    (lambda p, x: Adam(p, eps=x), "Adam: eps", None),
    (lambda p, x: Adam(p, betas=(0.9, x)), "Adam: betas", "0.99"),
    (lambda p, x: nn.clip_grad_norm_(p, x), "clip_grad_norm_: max_norm", None),
    (lambda p, x: nn.clip_grad_value_(p, x), "clip_grad_value_: clip_value", True),
])
def test_settings_that_are_not_numbers_are_named(make, name, bad):
    with pytest.raises(TypeError, match=re.escape(f"{name} expects a real number (int or float), "
                                                  f"got {type(bad).__name__}: ")):
        make([parameter(X0, "tensor")], bad)


def test_adam_betas_must_be_a_pair():
    with pytest.raises(TypeError, match=re.escape("Adam: betas must be two numbers in [0, 1), such as (0.9, 0.999), "
                                                  "got 0.9")):
        Adam([parameter(X0, "tensor")], betas=0.9)


@pytest.mark.parametrize("cls", [SGD, Adam])
def test_a_single_tensor_instead_of_a_list_is_rejected(cls):
    # Iterating over one Tensor yields its rows, which are not the parameter: training would
    # silently do nothing.
    for single in (parameter(np.ones((3, 2)), "tensor"), parameter(np.ones((3, 2)), "values"), Value(1.0)):
        with pytest.raises(TypeError, match=rf"{cls.__name__}: expected a list of parameters "
                                            r"\(e.g. model.parameters\(\)\), got a single \w+; wrap it in a list"):
            cls(single, lr=0.1)


@pytest.mark.parametrize("cls", [SGD, Adam])
@pytest.mark.parametrize("lr", [0.0, -0.1, float("nan")])
def test_lr_must_be_positive(cls, lr):
    with pytest.raises(ValueError, match=rf"{cls.__name__}: lr must be positive, got {lr!r}"):
        cls([parameter(X0, "tensor")], lr=lr)


@pytest.mark.parametrize("betas", [(1.0, 0.999), (0.9, 1.0), (-0.1, 0.999), (0.9, float("nan"))])
def test_adam_betas_must_be_in_0_1(betas):
    with pytest.raises(ValueError, match=r"Adam: betas must be two numbers in \[0, 1\), got"):
        Adam([parameter(X0, "tensor")], betas=betas)


@pytest.mark.parametrize("cls", [SGD, Adam, nn.clip_grad_norm_])
def test_a_parameter_listed_twice_is_rejected(cls):
    # It would be updated twice per step (and counted twice in a norm).
    p, q = parameter(X0, "tensor"), parameter(X0, "tensor")
    with pytest.raises(ValueError, match="parameters 0 and 2 are the same object; each parameter must appear once"):
        cls([p, q, p], 0.1)


@pytest.mark.parametrize("kw", [{"momentum": -0.5}, {"weight_decay": -1.0}, {"momentum": float("nan")},
                                {"weight_decay": float("nan")}])
def test_sgd_momentum_and_weight_decay_must_not_be_negative(kw):
    with pytest.raises(ValueError, match="SGD: momentum and weight_decay must be >= 0"):
        SGD([parameter(X0, "tensor")], lr=0.1, **kw)


# --- clipping -----------------------------------------------------------------------------

# Gradients of norm sqrt(9 + 16 + 144) = 13 over three parameters of different shapes.
CLIP_GRADS = [np.array([3.0, 0.0]), np.array([[-4.0]]), np.array([[0.0, 12.0], [0.0, 0.0]])]


def clip_params(kind):
    ps = [parameter(np.ones_like(g), kind) for g in CLIP_GRADS]
    for p, g in zip(ps, CLIP_GRADS):
        backends.set_grad(p, g)
    return ps


@pytest.mark.parametrize("kind", ["tensor", "values"])
def test_clip_grad_norm_scales_when_above(kind):
    ps = clip_params(kind)
    assert nn.clip_grad_norm_(ps, 6.5) == 13.0
    scale = 6.5 / (13.0 + 1e-6)
    for p, g in zip(ps, CLIP_GRADS):
        np.testing.assert_allclose(backends.grad(p), g * scale, rtol=1e-15)
    assert math.sqrt(sum(float(np.sum(backends.grad(p) ** 2)) for p in ps)) < 6.5


def test_clipping_writes_into_the_gradient_arrays_so_references_see_the_clipped_numbers():
    # as PyTorch's clip_grad_norm_ and clip_grad_value_ do (a reference kept from before
    # clipping held the unclipped numbers, and a step taken with it would not be clipped)
    ps = clip_params("tensor")
    kept = [p.grad for p in ps]
    nn.clip_grad_norm_(ps, 6.5)
    assert all(p.grad is g for p, g in zip(ps, kept))
    for g, original in zip(kept, CLIP_GRADS):
        np.testing.assert_allclose(g, original * (6.5 / (13.0 + 1e-6)), rtol=1e-15)
    nn.clip_grad_value_(ps, 1.0)
    assert all(p.grad is g for p, g in zip(ps, kept)) and max(float(np.abs(g).max()) for g in kept) == 1.0
    np.testing.assert_array_equal(CLIP_GRADS[2], [[0.0, 12.0], [0.0, 0.0]])  # (set_grad copied them in)


@pytest.mark.parametrize("kind", ["tensor", "values"])
@pytest.mark.parametrize("max_norm", [13.0, 100.0])
def test_clip_grad_norm_leaves_gradients_below_the_limit(kind, max_norm):
    ps = clip_params(kind)
    assert nn.clip_grad_norm_(ps, max_norm) == 13.0
    for p, g in zip(ps, CLIP_GRADS):
        np.testing.assert_array_equal(backends.grad(p), g)


def test_clip_grad_norm_leaves_a_tiny_norm_below_a_tiny_limit_alone():
    # PyTorch's factor max_norm / (norm + 1e-6) is 2/3 here, and PyTorch applies it whenever
    # it is below 1; clipping by norm changes nothing when the norm is within the limit.
    p = Tensor(np.zeros(2), requires_grad=True)
    p.grad = np.array([3e-7, 4e-7])  # norm 5e-7
    assert nn.clip_grad_norm_([p], 1e-6) == pytest.approx(5e-7, rel=1e-15)
    np.testing.assert_array_equal(p.grad, [3e-7, 4e-7])


def test_clip_grad_norm_sums_the_squares_correctly_rounded_on_every_python():
    # The squares 1 and four of 1e-16 (relative to the largest entry): added left to right,
    # as the built-in sum did before Python 3.12, each 1e-16 is lost against 1 and the norm
    # is 1.0; the correctly rounded sum keeps them. From 3.12 on, the built-in sum rounds
    # differently, and a training run clipped by norm then drifted apart between Pythons
    # (the README's truncated BPTT example ended at 3.40 on 3.11 and 2.94 on 3.13).
    ps = [Tensor(np.zeros(1), requires_grad=True) for _ in range(5)]
    for p, g in zip(ps, [1.0, 1e-8, 1e-8, 1e-8, 1e-8]):
        p.grad = np.array([g])
    squares = [1.0, 1e-16, 1e-16, 1e-16, 1e-16]
    left_to_right = 0.0
    for s in squares:
        left_to_right += s
    assert math.sqrt(left_to_right) == 1.0  # what the old sum gave
    assert nn.clip_grad_norm_(ps, 10.0) == math.sqrt(math.fsum(squares)) == 1.0000000000000002


def test_clip_grad_norm_of_single_values_and_missing_gradients():
    a, b = Value(1.0), Value(2.0)
    a.grad, b.grad = 6.0, -8.0
    missing = parameter([5.0], "tensor")  # never reached by backward: counts as zero, stays None
    assert nn.clip_grad_norm_([a, b, missing], 5.0) == 10.0
    assert (a.grad, b.grad) == pytest.approx((3.0, -4.0), rel=1e-6)
    assert a.grad == 6.0 * 5.0 / (10.0 + 1e-6)
    assert missing.grad is None


@pytest.mark.parametrize("kind", ["tensor", "values"])
@pytest.mark.parametrize("bad", [math.inf, -math.inf, math.nan])
def test_clip_grad_norm_with_a_non_finite_gradient_changes_nothing(kind, bad):
    grads = [g.copy() for g in CLIP_GRADS]
    grads[1][0, 0] = bad
    ps = [parameter(np.ones_like(g), kind) for g in grads]
    for p, g in zip(ps, grads):
        backends.set_grad(p, g)
    norm = nn.clip_grad_norm_(ps, 1.0)
    assert (math.isnan(norm) if math.isnan(bad) else norm == math.inf)
    for p, g in zip(ps, grads):
        np.testing.assert_array_equal(backends.grad(p), g)


@pytest.mark.parametrize("kind", ["tensor", "values"])
def test_clip_grad_value_clamps_each_entry(kind):
    ps = clip_params(kind)
    assert nn.clip_grad_value_(ps, 3.5) is None
    for p, g in zip(ps, CLIP_GRADS):
        np.testing.assert_array_equal(backends.grad(p), np.clip(g, -3.5, 3.5))
    v = Value(0.0)
    v.grad = -7.0
    nn.clip_grad_value_([v], 2.0)
    assert v.grad == -2.0


def test_clip_grad_value_leaves_missing_gradients_missing():
    p = parameter([1.0], "tensor")
    nn.clip_grad_value_([p], 1.0)
    assert p.grad is None


@pytest.mark.parametrize("clip", [lambda ps: nn.clip_grad_norm_(ps, 0.1), lambda ps: nn.clip_grad_value_(ps, 0.1)],
                         ids=["norm", "value"])
def test_clipping_one_gradient_leaves_the_others_alone(clip):
    # a and b receive the very same upstream gradient through y = a + b: clipping a must not
    # reach b's gradient or the intermediate y's.
    c = np.array([[1.0, -2.0], [3.0, 0.5]])
    a, b = parameter(np.zeros((2, 2)), "tensor"), parameter(np.ones((2, 2)), "tensor")
    y = a + b
    z = y.reshape(4)
    (z * c.reshape(4)).sum().backward()
    for node in (a, b, y, z):
        np.testing.assert_array_equal(node.grad.reshape(2, 2), c)
    clip([a])
    assert np.max(np.abs(a.grad)) <= 0.1
    for node in (b, y, z):
        np.testing.assert_array_equal(node.grad.reshape(2, 2), c)


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan")])
def test_clipping_limits_must_be_positive(bad):
    ps = clip_params("tensor")
    with pytest.raises(ValueError, match=rf"clip_grad_norm_: max_norm must be positive, got {bad!r}"):
        nn.clip_grad_norm_(ps, bad)
    with pytest.raises(ValueError, match=rf"clip_grad_value_: clip_value must be positive, got {bad!r}"):
        nn.clip_grad_value_(ps, bad)


def test_clipping_rejects_non_parameters():
    with pytest.raises(TypeError, match="clip_grad_norm_: parameter 0 is a ndarray"):
        nn.clip_grad_norm_([np.ones(2)], 1.0)
    with pytest.raises(ValueError, match="clip_grad_value_: got an empty parameter list"):
        nn.clip_grad_value_([], 1.0)


def test_a_value_in_two_parameters_is_refused():
    # A view or an entry of a value-engine parameter shares its Values: updated twice.
    W = nn.Linear(2, 2, engine="value").W
    for other in (W[0, 0], W[:1]):
        with pytest.raises(ValueError, match=r"parameter 1( entry \(0, 0\))? is also in parameter 0"):
            SGD([W, other], 0.1)


@pytest.mark.parametrize("bad, shown", [(None, "NoneType: None"), ("3.5", "str: '3.5'"), (True, "bool: True")])
def test_a_value_gradient_set_by_hand_to_a_non_number_stops_the_step_before_anything_changes(bad, shown):
    lin = nn.Linear(2, 1, engine="value", seed=0)
    opt = SGD(lin.parameters(), lr=0.1, momentum=0.9)
    (lin.W[0, 0] * 1.0 + lin.W[1, 0] + lin.b[0]).backward()
    before = lin.state_dict()
    lin.b[0].grad = bad
    message = f"SGD.step: the gradient of parameter 1 at entry (0,) expects a real number (int or float), got {shown}"
    with pytest.raises(TypeError, match=re.escape(message)):
        opt.step()
    after = lin.state_dict()
    assert all(np.array_equal(before[k], after[k]) for k in before) and opt.steps == 0 and not opt.velocity


@pytest.mark.parametrize("bad", [2.0, np.ones((1, 1)), np.ones((2, 1), dtype=bool)])
def test_a_tensor_gradient_set_by_hand_of_the_wrong_shape_is_not_broadcast(bad):
    lin = nn.Linear(2, 1, seed=0)
    opt = Adam(lin.parameters(), lr=0.1)
    lin.b.grad = np.ones(1)
    lin.W.grad = bad
    before = lin.state_dict()
    with pytest.raises(TypeError, match=r"Adam.step: the gradient of parameter 0: expected an array of real numbers "
                                        r"of shape \(2, 1\), got"):
        opt.step()
    assert all(np.array_equal(before[k], lin.state_dict()[k]) for k in before) and not opt.t
    with pytest.raises(TypeError, match=r"clip_grad_norm_: the gradient of parameter 0: expected an array"):
        nn.clip_grad_norm_(lin.parameters(), 1.0)


@pytest.mark.parametrize("make, name", [(lambda p: SGD(p, lr=math.inf), "SGD: lr"),
                                        (lambda p: SGD(p, 0.1, momentum=math.inf), "SGD: momentum"),
                                        (lambda p: SGD(p, 0.1, weight_decay=math.inf), "SGD: weight_decay"),
                                        (lambda p: Adam(p, lr=1e400), "Adam: lr"),
                                        (lambda p: Adam(p, eps=math.inf), "Adam: eps")])
def test_infinite_settings_are_refused(make, name):
    # a step would make the weights inf or NaN, or never move them
    with pytest.raises(ValueError, match=f"{name} must be finite, got inf"):
        make([parameter(X0, "tensor")])


@pytest.mark.parametrize("cls", [SGD, Adam, nn.clip_grad_norm_])
def test_a_module_or_none_instead_of_its_parameters_is_named(cls):
    with pytest.raises(TypeError, match=rf"{cls.__name__}: expected a list of parameters, got the module Linear "
                                        r"itself; pass model.parameters\(\)"):
        cls(nn.Linear(2, 1), 0.1)
    with pytest.raises(TypeError, match=rf"{cls.__name__}: expected a list of parameters .*got NoneType"):
        cls(None, 0.1)


@pytest.mark.parametrize("kind", ["tensor", "values"])
@pytest.mark.parametrize("bad, error, message", [
    (np.array([5.0, 6.0]), ValueError,
     r"^set_grad: expected a gradient of the parameter's shape \(2, 2\), got \(2,\)$"),
    (np.ones((2, 2)) * 1j, TypeError, r"^set_grad: expected real numbers, got an array of dtype complex128$"),
])
def test_set_grad_refuses_a_gradient_of_another_shape_or_not_real(kind, bad, error, message):
    # numpy broadcast a row into every row of a Tensor's gradient, and the value engine set
    # only the first entries; a complex gradient lost its imaginary part
    p = parameter(np.ones((2, 2)), kind)
    backends.set_grad(p, np.full((2, 2), 3.0))
    with pytest.raises(error, match=message):
        backends.set_grad(p, bad)
    np.testing.assert_array_equal(backends.grad(p), 3.0)


def test_adam_at_the_edges_of_its_settings_betas_0_and_eps_0():
    # As in PyTorch, betas in [0, 1) and eps >= 0: with no averaging and no eps, a step is
    # lr * g / |g|, the sign of each gradient entry (where it is not zero)
    p = Tensor(np.array([1.0, -2.0, 0.5]), requires_grad=True)
    p.grad = np.array([0.3, -4.0, 1e-8])
    Adam([p], lr=0.1, betas=(0.0, 0.0), eps=0.0).step()
    np.testing.assert_allclose(p.data, [0.9, -1.9, 0.4], rtol=1e-15)
    for betas, eps in [((1.0, 0.9), 1e-8), ((0.9, 1.0), 1e-8), ((-1e-9, 0.9), 1e-8), ((0.9, 0.99), -1e-300)]:
        with pytest.raises(ValueError, match=r"^Adam: (betas must be two numbers in \[0, 1\)|eps must be >= 0)"):
            Adam([p], lr=0.1, betas=betas, eps=eps)
