"""Truncated BPTT (``nn.train_truncated``) and ``nn.detach``.

The reference is a hand-written forward and backward pass in numpy for a one-layer tanh
RNN with a linear readout and L = Σ_t mean((Ŷ_t - Y_t)²): it takes the incoming hidden
state as a plain array, so it is truncated by construction."""

import re
from collections import namedtuple

import numpy as np
import pytest

import nn
from autograd import Tensor, Value
from nn import backends
from nn.backends import ValueBackend
from nn.optim import SGD, Adam

from .reference import TensorLike

NAMES = ("rnn.cells.0.W_xh", "rnn.cells.0.W_hh", "rnn.cells.0.b_h", "W_hy", "b_y")
LR = 0.1


def sequence_mse(y, target):
    return nn.sequence_loss(nn.mse_loss, y, target)[0]


def numpy_chunk(params, x, target, h0):
    """Loss, gradients (by name) and last hidden state of one chunk, h0 a constant.

    H_t = tanh(X_t W_xh + H_{t-1} W_hh + b_h),  Ŷ_t = H_t W_hy + b_y,  L = Σ_t mean((Ŷ_t - Y_t)²)
    """
    W_xh, W_hh, b_h, W_hy, b_y = (params[n] for n in NAMES)
    hs, dys, loss = [h0], [], 0.0
    for x_t, y_t in zip(x, target):
        hs.append(np.tanh(x_t @ W_xh + hs[-1] @ W_hh + b_h))
        err = hs[-1] @ W_hy + b_y - y_t
        loss += np.mean(err**2)
        dys.append(2 * err / err.size)
    g = {n: np.zeros_like(params[n]) for n in NAMES}
    dh_next = np.zeros_like(h0)
    for t in reversed(range(len(x))):
        h, h_prev = hs[t + 1], hs[t]
        g["W_hy"] += h.T @ dys[t]
        g["b_y"] += dys[t].sum(axis=0)
        da = (dys[t] @ W_hy.T + dh_next) * (1 - h**2)
        g["rnn.cells.0.W_xh"] += x[t].T @ da
        g["rnn.cells.0.W_hh"] += h_prev.T @ da
        g["rnn.cells.0.b_h"] += da.sum(axis=0)
        dh_next = da @ W_hh.T
    return loss, g, hs[-1]


def model(engine="tensor", hidden=3, batch_first=False, num_layers=1, seed=5):
    return nn.RNNModel(2, hidden, 2, mode="many_to_many", num_layers=num_layers, batch_first=batch_first,
                       engine=engine, seed=seed)


def data(T=5, m=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((T, m, 2)), rng.standard_normal((T, m, 2))


class Recorder:
    """Records, at each chunk, the parameters the forward pass used and the gradients
    backward left (``on_chunk`` runs after backward, before the step)."""

    def __init__(self):
        self.params, self.grads, self.calls = [], [], []

    def __call__(self, i, loss, model):
        self.calls.append((i, loss))
        self.params.append(model.state_dict())
        self.grads.append(model.grad_dict())


class Spy:
    """Wraps a model and keeps what each chunk's forward pass was given and returned."""

    def __init__(self, model):
        self.model, self.batch_first, self.seen = model, model.batch_first, []

    def __getattr__(self, name):  # state_dict, grad_dict...
        return getattr(self.model, name)

    def __call__(self, x, h0=None):
        y, h_n = self.model(x, h0)
        self.seen.append((x, h0, y, h_n))
        return y, h_n


def assert_dicts_close(a, b, rtol=1e-12, atol=1e-14):
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_allclose(a[name], b[name], rtol=rtol, atol=atol, err_msg=name)


def stepped(params, grads, lr=LR):
    return {n: params[n] - lr * grads[n] for n in params}


# --- k >= T is full BPTT ------------------------------------------------------------------


@pytest.mark.parametrize("k", [5, 8])
def test_k_at_least_T_is_full_bptt(k):
    x, target = data()
    m = model()
    start = m.state_dict()
    rec = Recorder()
    losses = nn.train_truncated(m, x, target, sequence_mse, SGD(m.parameters(), lr=LR), k=k, on_chunk=rec)
    assert len(losses) == 1 and [i for i, _ in rec.calls] == [0]

    # full BPTT by hand, and by the engine on a fresh model with the same weights
    loss, grads, _ = numpy_chunk(start, x, target, np.zeros((3, 3)))
    full = model()
    sequence_mse(full(x)[0], target).backward()
    assert losses[0] == pytest.approx(loss, rel=1e-13)
    assert_dicts_close(rec.grads[0], grads)
    assert_dicts_close(rec.grads[0], full.grad_dict(), rtol=1e-14, atol=1e-16)
    assert_dicts_close(m.state_dict(), stepped(start, grads))


# --- k < T: each chunk's gradient stops at the chunk's start -----------------------------


@pytest.mark.parametrize("engine, T, m, hidden", [("tensor", 7, 3, 3), ("value", 3, 1, 2)])
def test_chunk_gradients_are_truncated(engine, T, m, hidden):
    k = 2
    x, target = data(T, m)
    net = model(engine, hidden)
    rec = Recorder()
    losses = nn.train_truncated(net, x, target, sequence_mse, SGD(net.parameters(), lr=LR), k=k, on_chunk=rec)
    chunks = [slice(s, min(s + k, T)) for s in range(0, T, k)]
    assert len(losses) == len(chunks) == len(rec.params)
    assert rec.calls == list(enumerate(losses))

    h = np.zeros((m, hidden))
    for j, chunk in enumerate(chunks):
        loss, grads, h_next = numpy_chunk(rec.params[j], x[chunk], target[chunk], h)
        assert losses[j] == pytest.approx(loss, rel=1e-13)
        assert_dicts_close(rec.grads[j], grads)
        following = rec.params[j + 1] if j + 1 < len(chunks) else net.state_dict()
        assert_dicts_close(following, stepped(rec.params[j], grads))  # the step used this gradient
        if j:  # the carried state matters: starting the chunk from zeros gives another loss
            assert abs(numpy_chunk(rec.params[j], x[chunk], target[chunk], 0 * h)[0] - loss) > 1e-6
        h = h_next


def test_chunk_gradients_of_a_two_layer_model_match_a_fresh_copy_fed_the_carried_state():
    x, target = data(T=6, m=2)
    net = model(num_layers=2)
    rec = Recorder()
    nn.train_truncated(net, x, target, sequence_mse, Adam(net.parameters(), lr=0.05), k=3, on_chunk=rec)
    h = None
    for j, chunk in enumerate([slice(0, 3), slice(3, 6)]):
        copy = model(num_layers=2, seed=99)
        copy.load_state_dict(rec.params[j])
        y, h_n = copy(x[chunk], h)  # h: a plain array, so nothing flows back past the chunk
        loss = sequence_mse(y, target[chunk])
        loss.backward()
        assert rec.calls[j][1] == pytest.approx(loss.item(), rel=1e-14)
        assert_dicts_close(rec.grads[j], copy.grad_dict(), rtol=1e-13, atol=1e-15)
        h = h_n.data.copy()
    full = model(num_layers=2, seed=99)
    full.load_state_dict(rec.params[1])
    sequence_mse(full(x)[0][3:], target[3:]).backward()  # the same steps' loss, not truncated
    assert not np.allclose(full.grad_dict()["rnn.cells.0.W_hh"], rec.grads[1]["rnn.cells.0.W_hh"])


@pytest.mark.parametrize("engine", ["tensor", "value"])
def test_hidden_state_is_carried_and_detached(engine):
    x, target = data(T=4, m=1)
    spy = Spy(model(engine, hidden=2))
    rec = Recorder()
    first_state_grads = []

    def on_chunk(i, loss, net):
        rec(i, loss, net)
        first_state_grads.append(backends.grad(spy.seen[0][3]).copy())

    nn.train_truncated(spy, x, target, sequence_mse, SGD(spy.parameters(), lr=LR), k=2, on_chunk=on_chunk)
    (x0, h_first, _, h_n0), (x1, h_carried, y1, _) = spy.seen
    np.testing.assert_array_equal(x0, x[:2])
    np.testing.assert_array_equal(x1, x[2:])
    assert h_first is None
    # The second chunk starts from the first chunk's last state, as a node with no past...
    np.testing.assert_array_equal(backends.data(h_carried), backends.data(h_n0))
    if engine == "tensor":
        assert h_carried.is_leaf and not h_carried.requires_grad and h_carried.grad is None
    else:
        assert all(v.is_leaf for v in h_carried.flat)
    # ...so the second chunk's backward sends nothing into the first chunk's graph.
    np.testing.assert_array_equal(first_state_grads[1], first_state_grads[0])
    # Its outputs are those of the recorded weights run from that state.
    p = rec.params[1]
    h, ys = backends.data(h_carried)[0], []
    for x_t in x[2:]:
        h = np.tanh(x_t @ p[NAMES[0]] + h @ p[NAMES[1]] + p[NAMES[2]])
        ys.append(h @ p["W_hy"] + p["b_y"])
    np.testing.assert_allclose(backends.data(y1), ys, rtol=1e-13)


def test_engines_agree_on_truncated_training():
    x, target = data(T=3, m=1, seed=4)
    results = {}
    for engine in ("tensor", "value"):
        net = model(engine, hidden=2)
        losses = nn.train_truncated(net, x, target, sequence_mse, Adam(net.parameters(), lr=0.05), k=2)
        results[engine] = losses, net.state_dict()
    np.testing.assert_allclose(results["value"][0], results["tensor"][0], rtol=1e-13)
    assert_dicts_close(results["value"][1], results["tensor"][1])


def test_batch_first_splits_along_axis_1():
    x, target = data(T=5, m=3)
    time_first, batch_first = model(), Spy(model(batch_first=True))
    rec_t, rec_b = Recorder(), Recorder()
    losses_t = nn.train_truncated(time_first, x, target, sequence_mse, SGD(time_first.parameters(), lr=LR), k=2,
                                  on_chunk=rec_t)

    def batch_first_mse(y, target):  # sequence_loss sums over the first axis: give it time first
        return sequence_mse(y.transpose(1, 0, 2), target.swapaxes(0, 1))

    losses_b = nn.train_truncated(batch_first, x.swapaxes(0, 1), target.swapaxes(0, 1), batch_first_mse,
                                  SGD(batch_first.parameters(), lr=LR), k=2, on_chunk=rec_b)
    assert [np.shape(seen[0]) for seen in batch_first.seen] == [(3, 2, 2), (3, 2, 2), (3, 1, 2)]
    np.testing.assert_array_equal(batch_first.seen[1][0], x[2:4].swapaxes(0, 1))
    assert [np.shape(seen[2]) for seen in batch_first.seen] == [(3, 2, 2), (3, 2, 2), (3, 1, 2)]
    np.testing.assert_allclose(losses_b, losses_t, rtol=1e-14)
    for gb, gt in zip(rec_b.grads, rec_t.grads):
        assert_dicts_close(gb, gt)
    assert_dicts_close(batch_first.state_dict(), time_first.state_dict())


# --- clipping inside the loop -------------------------------------------------------------


def one_clipped_chunk(**clips):
    """Train one chunk of 3 steps with ``clips``; returns (the weights before, after, and
    the gradients as backward left them, before clipping)."""
    x, target = data(T=3)
    net = model()
    start = net.state_dict()
    rec = Recorder()
    nn.train_truncated(net, x, target, sequence_mse, SGD(net.parameters(), lr=LR), k=3, on_chunk=rec, **clips)
    return start, net.state_dict(), rec.grads[0]


def by_norm(g, max_norm):
    """The gradients ``g`` clipped to the joint norm ``max_norm``, as worked out by hand."""
    norm = np.sqrt(sum(np.sum(v**2) for v in g.values()))
    return {n: v * min(1.0, max_norm / (norm + 1e-6)) for n, v in g.items()}, norm


def test_clip_norm_applies_after_on_chunk_and_before_the_step():
    start, end, g = one_clipped_chunk(clip_norm=0.05)
    clipped, norm = by_norm(g, 0.05)
    assert norm > 0.05
    assert_dicts_close(end, stepped(start, clipped))


def test_clip_value_applies_before_the_step():
    start, end, g = one_clipped_chunk(clip_value=0.02)
    assert max(np.max(np.abs(v)) for v in g.values()) > 0.02
    assert_dicts_close(end, stepped(start, {n: np.clip(v, -0.02, 0.02) for n, v in g.items()}))


def test_with_both_clips_the_norm_is_clipped_first_then_each_value():
    start, end, g = one_clipped_chunk(clip_norm=0.05, clip_value=0.01)
    want = {n: np.clip(v, -0.01, 0.01) for n, v in by_norm(g, 0.05)[0].items()}
    other_order, _ = by_norm({n: np.clip(v, -0.01, 0.01) for n, v in g.items()}, 0.05)
    assert max(np.max(np.abs(want[n] - other_order[n])) for n in g) > 1e-4  # the order shows
    assert_dicts_close(end, stepped(start, want))


# --- a non-finite loss --------------------------------------------------------------------


@pytest.mark.parametrize("engine", ["tensor", "value"])
def test_non_finite_loss_stops_before_updating(engine):
    x, target = data(T=4, m=1)
    x[2, 0, 1] = np.nan  # inside the second chunk (time steps 3..4)
    net = model(engine, hidden=2)
    start = net.state_dict()
    rec = Recorder()
    loss0, grads0, _ = numpy_chunk(start, x[:2], target[:2], np.zeros((1, 2)))
    message = (f"the loss of chunk 2 of 2 (time steps 3..4) is nan; stopped before updating the parameters. "
               f"Last finite loss: {loss0:.6g}")
    with pytest.raises(FloatingPointError, match=re.escape(message)):
        nn.train_truncated(net, x, target, sequence_mse, SGD(net.parameters(), lr=LR), k=2, on_chunk=rec)
    assert len(rec.calls) == 1  # the failing chunk never reached backward
    assert_dicts_close(net.state_dict(), stepped(start, grads0))  # only the first chunk's step


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
@pytest.mark.parametrize("engine", ["tensor", "value"])
def test_a_finite_loss_with_a_non_finite_gradient_stops_before_updating(engine):
    # An infinite input saturates tanh: the loss stays finite, but dL/dW_xh = x_tᵀ δ_t holds
    # inf * 0 = nan. Stepping with it would turn W_xh into nan.
    x, target = data(T=4, m=1)
    x[2, 0, 1] = np.inf  # inside the second chunk
    net = model(engine, hidden=2)
    start = net.state_dict()
    loss0, grads0, _ = numpy_chunk(start, x[:2], target[:2], np.zeros((1, 2)))
    with pytest.raises(FloatingPointError) as info:
        nn.train_truncated(net, x, target, sequence_mse, SGD(net.parameters(), lr=LR), k=2)
    message = str(info.value)
    assert re.search(r"the loss of chunk 2 of 2 \(time steps 3..4\) is finite \([-0-9.e]+\) but the gradient of "
                     r"rnn.cells.0.W_xh is not; stopped before updating the parameters. Last finite loss: ", message)
    assert message.endswith(f"{loss0:.6g}")
    assert_dicts_close(net.state_dict(), stepped(start, grads0))  # only the first chunk's step


@pytest.mark.parametrize("engine", ["tensor", "value"])
def test_a_loss_that_is_not_one_number_is_refused_before_anything_changes(engine):
    x, target = data(T=4, m=1)
    net = model(engine, hidden=2)
    start = net.state_dict()
    with pytest.raises(TypeError) as info:  # the outputs themselves, not a loss of them
        nn.train_truncated(net, x, target, lambda y, t: y, SGD(net.parameters(), lr=LR), k=2)
    kind = "Tensor" if engine == "tensor" else "numpy array"
    assert str(info.value) == ("train_truncated: loss_fn must return the loss to differentiate, a Tensor of one "
                               f"element or a Value; for chunk 1 of 2 (time steps 1..2) it returned a {kind} of "
                               f"shape {(2, 1, np.shape(target)[-1])}")
    assert_dicts_close(net.state_dict(), start)


def test_the_first_chunk_starts_from_h0_and_the_next_from_the_carried_state():
    x, target = data(T=4, m=3)
    h0 = np.random.default_rng(9).standard_normal((1, 3, 3))  # (layers, m, hidden)
    net = model()
    rec = Recorder()
    losses = nn.train_truncated(net, x, target, sequence_mse, SGD(net.parameters(), lr=LR), k=2, h0=h0,
                                on_chunk=rec)
    first, grads, h = numpy_chunk(rec.params[0], x[:2], target[:2], h0[0])
    second, _, _ = numpy_chunk(rec.params[1], x[2:], target[2:], h)
    assert losses == pytest.approx([first, second], rel=1e-13)
    assert_dicts_close(rec.grads[0], grads)
    assert losses[0] != pytest.approx(numpy_chunk(rec.params[0], x[:2], target[:2], np.zeros((3, 3)))[0])


def test_a_list_sequence_is_accepted_and_a_target_without_a_time_axis_is_named():
    x, target = data(T=4)
    a, b = model(), model()
    losses = nn.train_truncated(a, x.tolist(), target, sequence_mse, SGD(a.parameters(), lr=LR), k=2)
    assert losses == nn.train_truncated(b, x, target, sequence_mse, SGD(b.parameters(), lr=LR), k=2)
    with pytest.raises(ValueError, match=re.escape("x has 4 time steps along axis 0 (shape (4, 3, 2)), "
                                                   "target has shape ()")):
        nn.train_truncated(a, x, 1.0, sequence_mse, SGD(a.parameters(), lr=LR), k=2)


def test_non_finite_loss_in_the_first_chunk_changes_nothing():
    x, target = data(T=4, m=1)
    target[1, 0, 0] = np.inf
    net = model()
    start = net.state_dict()
    with pytest.raises(FloatingPointError, match=re.escape("chunk 1 of 2 (time steps 1..2) is inf") + ".*"
                       + re.escape("Last finite loss: none (it was the first chunk)")):
        nn.train_truncated(net, x, target, sequence_mse, Adam(net.parameters()), k=2)
    for name, value in net.state_dict().items():
        np.testing.assert_array_equal(value, start[name])


# --- arguments ----------------------------------------------------------------------------


@pytest.mark.parametrize("k", [0, -1, 1.5, True, "2", None])
def test_k_must_be_a_positive_int(k):
    net = model()
    x, target = data(T=3)
    with pytest.raises(ValueError, match=re.escape(f"train_truncated: k must be an int >= 1, got {k!r}")):
        nn.train_truncated(net, x, target, sequence_mse, SGD(net.parameters(), lr=LR), k=k)


def test_k_may_be_a_numpy_integer_and_the_last_chunk_shorter():
    net = model()
    x, target = data(T=5)
    rec = Recorder()
    losses = nn.train_truncated(net, x, target, sequence_mse, SGD(net.parameters(), lr=LR), k=np.int64(3),
                                on_chunk=rec)
    _, _, h = numpy_chunk(rec.params[0], x[:3], target[:3], np.zeros((3, 3)))
    last, _, _ = numpy_chunk(rec.params[1], x[3:], target[3:], h)
    assert len(losses) == 2 and losses[1] == pytest.approx(last, rel=1e-13)


def test_sequence_and_target_lengths():
    net = model()
    x, target = data(T=4)
    with pytest.raises(ValueError, match=re.escape("x has 4 time steps along axis 0 (shape (4, 3, 2)), "
                                                   "target has shape (3, 3, 2)")):
        nn.train_truncated(net, x, target[:3], sequence_mse, SGD(net.parameters(), lr=LR), k=2)
    with pytest.raises(ValueError, match=r"the sequence is empty \(shape \(0, 3, 2\)\)"):
        nn.train_truncated(net, x[:0], target[:0], sequence_mse, SGD(net.parameters(), lr=LR), k=2)


# --- detach -------------------------------------------------------------------------------


def test_detach_tensor_stops_the_gradient():
    w = Tensor([1.5, -2.0], requires_grad=True)
    h = w * w
    d = nn.detach(h)
    np.testing.assert_array_equal(d.data, [2.25, 4.0])
    assert not d.requires_grad and d.is_leaf
    (d * w).sum().backward()
    np.testing.assert_array_equal(w.grad, [2.25, 4.0])  # d w² w / dw would be 3 w² = (6.75, 12)
    assert h.grad is None and d.grad is None


def test_detach_value_stops_the_gradient():
    w = Value(1.5)
    h = w * w
    d = nn.detach(h)
    assert d.data == 2.25 and d.is_leaf
    (d * w).backward()
    assert w.grad == 2.25
    assert h.grad == 0.0


@pytest.mark.parametrize("shape", [(2, 2), ()])
def test_detach_object_array_stops_the_gradient(shape):
    numbers = np.arange(1.0, 1.0 + np.prod(shape, dtype=int)).reshape(shape)
    w = ValueBackend.parameter(numbers, "w")
    h = np.empty(shape, dtype=object)
    h[...] = w * w  # numpy unwraps 0-d object arrays in arithmetic: wrap the result again
    d = nn.detach(h)
    assert isinstance(d, np.ndarray) and d.dtype == object and d.shape == shape
    assert all(v.is_leaf for v in np.ravel(d))
    np.testing.assert_array_equal(backends.data(d), numbers**2)
    np.sum(d * w).backward()
    np.testing.assert_array_equal(backends.grad(w), numbers**2)
    np.testing.assert_array_equal(backends.grad(h), 0.0)


FUNCTIONS = ["tanh", "sigmoid", "relu", "exp", "log", "clip", "detach", "softmax", "log_softmax"]


@pytest.mark.parametrize("name", FUNCTIONS)
def test_functions_on_object_arrays_name_the_first_entry_that_is_not_a_value(name):
    f = {"clip": lambda x: nn.functional.clip(x, 0.0, 1.0), "detach": nn.detach}.get(
        name, getattr(nn.functional, name, None))
    values = np.array([Value(0.5), Value(2.0)], dtype=object)
    np.testing.assert_allclose(backends.data(f(values)), {
        "tanh": np.tanh([0.5, 2.0]), "sigmoid": 1 / (1 + np.exp([-0.5, -2.0])), "relu": [0.5, 2.0],
        "exp": np.exp([0.5, 2.0]), "log": np.log([0.5, 2.0]), "clip": [0.5, 1.0], "detach": [0.5, 2.0],
        "softmax": np.exp([0.5, 2.0]) / np.exp([0.5, 2.0]).sum(),
        "log_softmax": np.log(np.exp([0.5, 2.0]) / np.exp([0.5, 2.0]).sum())}[name], rtol=1e-15, atol=0)
    for bad, shown, at in [(np.array([Value(1.0), 2.5], dtype=object), "float 2.5", "(1,)"),
                           (np.array(None, dtype=object), "NoneType None", "()")]:
        with pytest.raises(TypeError, match=re.escape(f"{name}() expects an object array of Values, got {shown} "
                                                      f"at entry {at}")):
            f(bad)


@pytest.mark.parametrize("name", [n for n in FUNCTIONS if n != "detach"])
def test_functions_take_a_list_of_values_as_micrograd_layers_return_them(name):
    f = (lambda x: nn.functional.clip(x, 0.0, 1.0)) if name == "clip" else getattr(nn.functional, name)
    as_list, as_array = [Value(0.5), Value(2.0)], np.array([Value(0.5), Value(2.0)], dtype=object)
    from_list, from_array = f(as_list), f(as_array)
    np.testing.assert_array_equal(backends.data(from_list), backends.data(from_array))
    from_list[0].backward()
    from_array[0].backward()
    assert [v.grad for v in as_list] == [v.grad for v in as_array] and as_list[0].grad != 0.0
    with pytest.raises(TypeError, match=r"got a list: join Tensors into one with autograd\.stack"):
        f([Tensor([1.0]), Tensor([2.0])])


@pytest.mark.parametrize("name", [n for n in FUNCTIONS if n != "detach"])
def test_functions_on_plain_numbers_say_they_have_no_graph(name):
    # softmax of a float array or a list failed with an AttributeError from inside numpy
    f = (lambda x: nn.functional.clip(x, 0.0, 1.0)) if name == "clip" else getattr(nn.functional, name)
    for bad, shown in [(np.array([0.5, 2.0]), "a numpy float64 array"), ([0.5, 2.0], "a list"), (2.0, "a float")]:
        with pytest.raises(TypeError, match=rf"{name}\(\) expects .*, got {shown}: plain numbers have no graph; "
                                            r"make them a Tensor first"):
            f(bad)
    if name in ("softmax", "log_softmax"):  # along an axis: one Value has none
        with pytest.raises(TypeError, match=rf"{name}\(\) expects a Tensor or an object array of Values \(it runs "
                                            r"along an axis\), got a Value: put the Values along the axis in an"):
            f(Value(1.0))


class Wrapped(nn.Module):
    """A module holding the model it runs: it has no mode or batch_first of its own."""

    def __init__(self, *models):
        self.models = list(models)

    def forward(self, x, h0=None):
        return self.models[0](x, h0)


def test_a_wrapped_batch_first_model_is_split_along_its_time_axis():
    # The wrapper has no batch_first: read off the model inside, not taken as time-first,
    # which split the batch into chunks and carried one sample's state into another's.
    x, target = data(T=5, m=4)
    x, target = np.swapaxes(x, 0, 1), np.swapaxes(target, 0, 1)  # (m, T, n)
    inner = model(batch_first=True)
    wrapped = Wrapped(inner)
    ref = model(batch_first=True)
    loss_fn = lambda y, t: nn.sequence_loss(nn.mse_loss, y, t, batch_first=True)[0]  # noqa: E731
    losses = nn.train_truncated(wrapped, x, target, loss_fn, SGD(wrapped.parameters(), lr=LR), k=2)
    expected = nn.train_truncated(ref, x, target, loss_fn, SGD(ref.parameters(), lr=LR), k=2)
    assert losses == expected and len(losses) == 3
    assert_dicts_close(inner.state_dict(), ref.state_dict(), rtol=0, atol=0)


def test_a_wrapped_model_without_an_output_per_step_or_with_layers_that_disagree_is_refused():
    x, target = data(T=4, m=3)
    many_to_one = Wrapped(nn.RNNModel(2, 3, 2, mode="many_to_one", seed=0))
    with pytest.raises(ValueError, match=r"^train_truncated: the model must give an output at every input step .*"
                                         r"got mode='many_to_one'$"):
        nn.train_truncated(many_to_one, x, target, sequence_mse, SGD(many_to_one.parameters(), lr=LR), k=2)
    mixed = Wrapped(model(), model(batch_first=True))
    opt = SGD(mixed.parameters(), lr=LR)
    with pytest.raises(ValueError, match=r"^train_truncated: the model has no batch_first of its own, and its layers "
                                         r"disagree \(False, True\); pass batch_first=True or False$"):
        nn.train_truncated(mixed, x, target, sequence_mse, opt, k=2)
    assert len(nn.train_truncated(mixed, x, target, sequence_mse, opt, k=2, batch_first=False)) == 2
    with pytest.raises(TypeError, match=r"^train_truncated: batch_first must be True or False, got str: 'no'$"):
        nn.train_truncated(mixed, x, target, sequence_mse, opt, k=2, batch_first="no")


def test_an_input_without_a_time_axis_or_that_the_model_refuses_is_named_as_given():
    net = model(batch_first=True)
    opt = SGD(net.parameters(), lr=LR)
    with pytest.raises(ValueError, match=r"^train_truncated: x must have a time axis, axis 1 \(\(m, T, \.\.\.\) for a "
                                         r"batch-first model\), got shape \(5,\)$"):
        nn.train_truncated(net, np.zeros(5), np.zeros((4, 5, 2)), sequence_mse, opt, k=3)
    with pytest.raises(ValueError, match=r"^train_truncated: chunk 1 of 4 \(time steps 1\.\.3\), the model refused "
                                         r"its input: x's steps \(shape \(4, 3\) of x's \(4, 10\)\) and no "
                                         r"initial state: RNNModel\(.*\): the input must have shape \(m, T, 2\), "
                                         r"got \(4, 3\)$"):
        nn.train_truncated(net, np.zeros((4, 10)), np.zeros((4, 10, 2)), sequence_mse, opt, k=3)
    # a bad h0 is named as h0, not blamed on x
    with pytest.raises(ValueError, match=r"the model refused its input: x's steps \(shape \(4, 3, 2\) of x's "
                                         r"\(4, 10, 2\)\) and h0 as given: RNNModel\(.*\): h0 must have shape "
                                         r"\(1, 4, 3\), got \(4, 3\)"):
        nn.train_truncated(net, np.zeros((4, 10, 2)), np.zeros((4, 10, 2)), sequence_mse, opt, k=3, h0=np.zeros((4, 3)))


def test_a_model_whose_modules_point_back_at_each_other_trains():
    # the lookup of mode and batch_first through the modules went round the loop forever
    class Owned(nn.Module):
        def __init__(self):
            self.rnn = nn.RNN(2, 3, seed=0)
            self.rnn.owner = self

        def forward(self, x, h0=None):
            return self.rnn(x, h0)

    x, target = data(T=6)
    m = Owned()
    losses = nn.train_truncated(m, x, np.zeros((6, 3, 3)), sequence_mse, SGD(m.parameters(), lr=LR), k=3)
    assert len(losses) == 2 and all(np.isfinite(losses))


@pytest.mark.parametrize("engine", ["tensor", "value"])
def test_the_final_state_can_be_returned_to_go_on_along_the_sequence_in_a_later_call(engine):
    # two calls on the halves of a sequence, the state handed from one to the other, train as
    # one call on the whole sequence does (the halves are whole chunks)
    x, target = data(T=6)
    one, two = model(engine), model(engine)
    whole, h = nn.train_truncated(one, x, target, sequence_mse, SGD(one.parameters(), lr=LR), k=3,
                                  return_state=True)
    opt = SGD(two.parameters(), lr=LR)
    first, h_half = nn.train_truncated(two, x[:3], target[:3], sequence_mse, opt, k=3, return_state=True)
    second = nn.train_truncated(two, x[3:], target[3:], sequence_mse, opt, k=3, h0=h_half)
    assert whole == first + second
    assert_dicts_close(one.state_dict(), two.state_dict(), rtol=0, atol=0)
    assert np.shape(h) == (1, 3, 3)  # (num_layers, m, hidden), detached: no graph behind it
    assert all(v.is_leaf for v in np.ravel(h)) if engine == "value" else h.is_leaf
    with pytest.raises(TypeError, match=r"^train_truncated: return_state must be True or False, got str: 'yes'$"):
        nn.train_truncated(one, x, target, sequence_mse, SGD(one.parameters(), lr=LR), k=3, return_state="yes")


def test_a_loss_fn_returning_sequence_loss_whole_is_told_to_take_its_first_part():
    x, target = data()
    net = model()
    with pytest.raises(TypeError, match=r"it returned a tuple \(nn.sequence_loss returns \(L, per_step\): "
                                        r"return its \[0\]\)$"):
        nn.train_truncated(net, x, target, lambda y, t: nn.sequence_loss(nn.mse_loss, y, t),
                           SGD(net.parameters(), lr=LR), k=2)


def test_sequence_loss_itself_as_loss_fn_is_told_how_to_wrap_it():
    # it failed inside the first chunk with "sequence_loss() missing 1 required positional argument"
    x, target = data()
    net = model()
    before = net.state_dict()
    with pytest.raises(TypeError, match=re.escape("sequence_loss takes the step loss first and returns (L, per_step): "
                                                  "pass lambda y, t: nn.sequence_loss(nn.mse_loss, y, t)[0]")):
        nn.train_truncated(net, x, target, nn.sequence_loss, SGD(net.parameters(), lr=LR), k=2)
    assert_dicts_close(net.state_dict(), before, rtol=0, atol=0)


class TwoPartState(nn.Module):
    """A model whose state has two parts, as an LSTM's (h, c) has: two RNNs read the same
    input, and the output is the sum of their readouts."""

    def __init__(self, engine, seed=0):
        self.a = nn.RNNModel(2, 3, 2, mode="many_to_many", engine=engine, seed=seed)
        self.b = nn.RNNModel(2, 4, 2, mode="many_to_many", engine=engine, seed=seed + 1)
        self.batch_first = False

    def forward(self, x, state=None):
        h_a, h_b = (None, None) if state is None else state
        (y_a, h_a), (y_b, h_b) = self.a(x, h_a), self.b(x, h_b)
        return y_a + y_b, (h_a, h_b)


@pytest.mark.parametrize("engine", ["tensor", "value"])
def test_a_state_of_several_parts_is_carried_detached_across_chunks(engine):
    x, target = data(T=5)
    net = TwoPartState(engine)
    spy = Spy(net)
    nn.train_truncated(spy, x, target, sequence_mse, SGD(net.parameters(), lr=LR), k=2)
    assert len(spy.seen) == 3 and spy.seen[0][1] is None
    for (_, _, _, h_end), (_, h_next, _, _) in zip(spy.seen, spy.seen[1:]):
        assert isinstance(h_next, tuple) and len(h_next) == 2
        for end, carried in zip(h_end, h_next):  # the same numbers, with no graph behind them
            np.testing.assert_array_equal(backends.data(carried), backends.data(end))
            assert all(v.is_leaf for v in np.ravel(carried)) if engine == "value" else carried.is_leaf
    # the same training written out by hand, one chunk at a time
    ref = TwoPartState(engine)
    opt, state = SGD(ref.parameters(), lr=LR), None
    for start in range(0, 5, 2):
        y, state = ref(x[start:start + 2], state)
        opt.zero_grad()
        sequence_mse(y, target[start:start + 2]).backward()
        opt.step()
        state = tuple(nn.detach(part) for part in state)
    assert_dicts_close(net.state_dict(), ref.state_dict(), rtol=0, atol=0)


def test_a_pytorch_target_is_taken_as_its_numbers_also_when_it_requires_grad():
    # one that requires grad refuses np.asarray: the loss failed with PyTorch's own error
    _, target = data()
    pred = Tensor(target * 0.5, requires_grad=True)
    loss = nn.mse_loss(pred, TensorLike(target))  # (stands in for torch.tensor(target, requires_grad=True))
    assert loss.item() == pytest.approx(np.mean((target * 0.5 - target) ** 2), rel=1e-15)
    _, per_step = nn.sequence_loss(nn.mse_loss, pred, TensorLike(target))
    assert per_step.shape == (target.shape[0],)


def test_another_librarys_tensor_is_named_with_its_package():
    # "must be a Tensor ..., got Tensor" read as a contradiction for a torch.Tensor
    Foreign = type("Tensor", (), {"__module__": "torch"})
    with pytest.raises(TypeError, match=r"the prediction must be a Tensor, a Value or an object array of Values, "
                                        r"got torch\.Tensor$"):
        nn.mse_loss(Foreign(), [1.0, 1.0])
    with pytest.raises(TypeError, match=r"parameter 0 is a torch\.Tensor; expected a Tensor with requires_grad=True"):
        SGD([Foreign()], lr=0.1)


def test_a_state_that_cannot_be_detached_stops_training_before_the_step():
    # it was detached after the optimizer's step: the parameters had moved when it raised
    class OddState(nn.Module):
        def __init__(self):
            self.rnn = nn.RNNModel(2, 3, 2, mode="many_to_many", seed=0)

        def forward(self, x, state=None):
            y, h = self.rnn(x, None if state is None else state[0])
            return y, (h, "step count")

    x, target = data(T=4)
    net = OddState()
    before = net.state_dict()
    with pytest.raises(TypeError, match="detach\\(\\) expects .* got str"):
        nn.train_truncated(net, x, target, sequence_mse, SGD(net.parameters(), lr=LR), k=2)
    assert_dicts_close(net.state_dict(), before, rtol=0, atol=0)


@pytest.mark.parametrize("bad", [np.ones(2), 1.5, "h"])
def test_detach_rejects_other_things(bad):
    with pytest.raises(TypeError, match=f"detach\\(\\) expects a Tensor, a Value, an object array of Values, or a "
                                        f"tuple or list of them, got {type(bad).__name__}"):
        nn.detach(bad)
    with pytest.raises(TypeError, match="got float"):
        nn.detach((Tensor([1.0]), [Value(1.0), 2.0]))


def test_detach_keeps_the_kind_of_container_of_a_state():
    # a named tuple came back a plain tuple (state.h failed at the next chunk), a list was refused
    State = namedtuple("State", "h c")
    h, c = Tensor([1.0], requires_grad=True) * 2, Value(3.0) * 2
    for state in (State(h, c), [h, c], (h, [c])):
        out = nn.detach(state)
        assert type(out) is type(state) and len(out) == 2
        assert out[0].is_leaf and not out[0].requires_grad and out[0].data == 2.0
    assert nn.detach(State(h, c)).c.data == 6.0 and nn.detach((h, [c]))[1][0].is_leaf


def test_tensors_in_a_list_as_the_input_or_a_graph_node_as_the_target_are_refused():
    # Their numbers alone would cut them from their graph without a word.
    x, target = data()
    net = model()
    opt = SGD(net.parameters(), lr=LR)
    steps = [Tensor(x_t, requires_grad=True) for x_t in x]
    with pytest.raises(TypeError, match="train_truncated: x: got a list holding Tensors"):
        nn.train_truncated(net, steps, target, sequence_mse, opt, k=2)
    assert all(s.grad is None for s in steps)
    with pytest.raises(TypeError, match="train_truncated: the target must be numbers .*, not a Tensor"):
        nn.train_truncated(net, x, Tensor(target) * 2.0, sequence_mse, opt, k=2)


@pytest.mark.parametrize("mode", ["one_to_many", "many_to_one"])
def test_a_model_without_an_output_per_input_step_is_refused(mode):
    # one_to_many's input has no time axis to split (its first axis is the batch), and
    # many_to_one reads out only the last step of each chunk.
    net = nn.RNNModel(2, 3, 1, mode=mode, steps=2 if mode == "one_to_many" else None, seed=0)
    x = np.ones((4, 2)) if mode == "one_to_many" else np.ones((4, 3, 2))
    with pytest.raises(ValueError, match=rf"train_truncated: the model must give an output at every input step "
                                         rf".*; got mode='{mode}'"):
        nn.train_truncated(net, x, np.ones((4, 2, 1)), sequence_mse, SGD(net.parameters(), lr=LR), k=2)


@pytest.mark.parametrize("bad", [None, "cell", "function"])
def test_a_model_that_is_not_a_sequence_module_is_refused(bad):
    x, target = data()
    net = model()
    what = {None: None, "cell": net.rnn.cells[0], "function": lambda x, h: (x, h)}[bad]
    given = {None: "NoneType", "cell": r"RNNCell\(input_size=2, .*\), which takes one step",
             "function": "function"}[bad]
    with pytest.raises(TypeError, match=r"^train_truncated: model must be a sequence module called as model\(x, h0\) "
                                        r"-> \(y, h_n\) \(nn.RNN, or nn.RNNModel with mode='many_to_many'\), "
                                        rf"got {given}$"):
        nn.train_truncated(what, x, target, sequence_mse, SGD(net.parameters(), lr=LR), k=2)


def test_a_masked_input_or_target_is_refused_before_anything_changes():
    x, target = data()
    net = model()
    before = net.state_dict()
    opt = SGD(net.parameters(), lr=LR)
    for bad_x, bad_target, who in [(np.ma.masked_array(x), target, "x"), (x, np.ma.masked_array(target), "the target")]:
        with pytest.raises(TypeError, match=rf"^train_truncated: {who}: got a numpy masked array"):
            nn.train_truncated(net, bad_x, bad_target, sequence_mse, opt, k=2)
    assert all(np.array_equal(before[k], v) for k, v in net.state_dict().items())


@pytest.mark.parametrize("bad", ["another model's optimizer", "clip_norm", "on_chunk", "loss_fn"])
def test_bad_arguments_are_refused_before_any_gradient_changes(bad):
    x, target = data()
    net = model()
    opt = SGD(net.parameters(), lr=LR)
    kw = {"clip_norm": -1.0} if bad == "clip_norm" else {"on_chunk": 5} if bad == "on_chunk" else {}
    loss_fn = 5 if bad == "loss_fn" else sequence_mse
    if bad == "another model's optimizer":
        opt = SGD(model(seed=9).parameters(), lr=LR)
    for p in net.parameters():
        p.grad = np.full(p.shape, 7.0)
    message = {"another model's optimizer": "the optimizer holds none of the model's parameters",
               "clip_norm": "clip_norm must be a positive number or None, got -1.0",
               "on_chunk": "on_chunk must be a function", "loss_fn": "loss_fn must be a function"}[bad]
    with pytest.raises((TypeError, ValueError), match=f"train_truncated: {message}"):
        nn.train_truncated(net, x, target, loss_fn, opt, k=2, **kw)
    assert all((p.grad == 7.0).all() for p in net.parameters())
