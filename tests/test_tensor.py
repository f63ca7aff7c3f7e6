"""``Tensor`` as a node: construction and the dtype rule, bad input, backward semantics
(seeds, accumulation, intermediates, shared use, memory), the shared core (no_grad, scope,
detect_anomaly, gradcheck), and a long unrolled loop."""

import math
import re
import tracemalloc

import numpy as np
import pytest

import nn
from autograd import (
    AnomalyError,
    GradcheckError,
    StackBuilder,
    Tensor,
    Value,
    addmm,
    concat,
    detect_anomaly,
    enable_grad,
    gradcheck,
    no_grad,
    scope,
    stack,
)


def leaf(x, **kw):
    return Tensor(x, requires_grad=True, **kw)


# --- construction and the dtype rule ---------------------------------------------------------


def test_data_is_copied_and_float64_by_default():
    source = np.array([1.0, 2.0])
    t = Tensor(source)
    source[0] = 100.0
    np.testing.assert_array_equal(t.data, [1.0, 2.0])
    assert Tensor([[1, 2], [3, 4]]).dtype == np.float64
    assert Tensor(3).dtype == np.float64 and Tensor(3).shape == ()
    assert Tensor(2.5).item() == 2.5
    assert t.grad is None and not t.requires_grad and t.is_leaf


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64, np.longdouble])
@pytest.mark.parametrize("shape", [(), (1,), (7,), (3, 5), (4, 0, 2), (2, 3, 4)])
def test_data_starts_on_a_64_byte_boundary(dtype, shape):
    # OpenBLAS multiplies by a misaligned right-hand matrix more slowly, and every
    # parameter is made by the constructor: its data starts at a multiple of 64 bytes.
    from autograd.tensor import ALIGNMENT

    rng = np.random.default_rng(0)
    source = rng.standard_normal(shape).astype(dtype)
    for given in (source, source.T, source.tolist()):  # contiguous, transposed, a list
        t = Tensor(given, dtype=dtype)
        assert t.dtype == dtype and t.shape == np.shape(given) and t.data.flags.c_contiguous
        np.testing.assert_array_equal(t.data, np.asarray(given, dtype=dtype))
        if t.data.size:
            assert t.data.ctypes.data % ALIGNMENT == 0
            assert not np.shares_memory(t.data, source)
    cast = Tensor(source.astype(np.float64), dtype=dtype)  # a cast lands on the boundary too
    np.testing.assert_array_equal(cast.data, source)


@pytest.mark.parametrize("data", [np.array([1, -2, 3], dtype=np.int32), np.array([1, -2, 3], dtype=np.int64),
                                  np.array([1, 2, 3], dtype=np.uint8), [1, -2, 3]], ids=str)
def test_integers_are_cast_to_float64(data):
    t = Tensor(data)
    assert t.dtype == np.float64
    np.testing.assert_array_equal(t.data, np.asarray(data, dtype=np.float64))


def test_booleans_are_cast_to_float64():
    t = Tensor(np.array([True, False, True]))
    assert t.dtype == np.float64
    np.testing.assert_array_equal(t.data, [1.0, 0.0, 1.0])
    assert Tensor([True, False]).dtype == np.float64


def test_float32_is_kept_and_dtype_can_be_asked_for():
    assert Tensor(np.float32([1.5, 2.5])).dtype == np.float32
    t = Tensor([1, 2], dtype=np.float32)
    assert t.dtype == np.float32
    np.testing.assert_array_equal(t.data, [1.0, 2.0])
    assert Tensor(np.float32([1.0]), dtype=np.float64).dtype == np.float64
    with pytest.raises(TypeError, match="Tensor dtype must be floating, got int32"):
        Tensor([1.0, 2.0], dtype=np.int32)


def test_a_dtype_numpy_does_not_know_is_named():
    with pytest.raises(TypeError, match=r"^Tensor: dtype must be a floating numpy dtype .*got 'foo'$"):
        Tensor([1.0], dtype="foo")


@pytest.mark.parametrize("data, problem", [
    (np.array([1, "a"], dtype=object), "dtype object"),
    (np.array([1.0, 2.0], dtype=object), "dtype object"),
    ([1 + 2j, 3.0], "dtype complex128"),
    (np.array([1j]), "dtype complex128"),
    ("abc", r"dtype <U3 \(from str\)"),
    (["1.0", "2.0"], "dtype <U3"),
])
def test_non_real_data_is_rejected(data, problem):
    with pytest.raises(TypeError, match=f"Tensor expects real numbers; got an array of {problem}.*"
                                        "complex, object and string data is not supported"):
        Tensor(data)


@pytest.mark.parametrize("data, message", [
    (None, r"got None \(NoneType\)$"),
    ({"a": 1}, r"got \{'a': 1\} \(dict\)$"),
    ([1.0, None], r"got None \(NoneType\) among the entries of the list given$"),
    ([[1.0], [Value(2.0)]], r"got Value\(data=2, grad=0\) \(Value\) among the entries of the list given$"),
])
def test_what_is_not_a_number_is_named(data, message):
    # numpy keeps these as an array of objects; the message names the object, not the array
    with pytest.raises(TypeError, match="^Tensor expects real numbers; " + message):
        Tensor(data)
    with pytest.raises(TypeError, match="^Tensor operand expects real numbers; " + message):
        Tensor([1.0]) + data  # an operand, not silently nan


def test_bad_arguments_of_ops_are_named():
    t = Tensor(np.ones((2, 2)))
    with pytest.raises(TypeError, match=r"^concat: axis must be an int, got None"):
        concat([t, t], axis=None)
    with pytest.raises(TypeError, match=r"^clip: low must be a real number, got None \(NoneType\)$"):
        t.clip(None, 1.0)
    with pytest.raises(TypeError, match=r"^clip: high must be a real number, got '1' \(str\)$"):
        t.clip(0.0, "1")
    with pytest.raises(ValueError, match=r"^mean: axis \(0, 0\) names an axis twice"):
        t.mean(axis=(0, 0))
    with pytest.raises(TypeError, match=r"^Tensor \*\* Value is not supported: the exponent must be a number"):
        t ** Value(2.0)
    with pytest.raises(ValueError, match=r"^stack\(\) needs at least one tensor$"):
        StackBuilder(0).stack()


def test_integers_past_int64_are_cast_to_float64_like_the_others():
    # numpy keeps Python ints from 2**64 on as objects; they are real numbers all the same
    np.testing.assert_array_equal(Tensor(2**64).data, np.float64(2.0**64))
    t = Tensor([1, 2**64, -(2**70)])
    assert t.data.dtype == np.float64
    np.testing.assert_array_equal(t.data, [1.0, 2.0**64, -(2.0**70)])
    np.testing.assert_array_equal((Tensor([1.0, 1.0]) * [2**64, 3]).data, [2.0**64, 3.0])
    with pytest.raises(ValueError, match=r"^Tensor: an integer is too large for a float64 \(past 1.8e308\)$"):
        Tensor([1, 10**400])


def test_ragged_lists_are_rejected():
    with pytest.raises(TypeError, match=r"Tensor expects a number, nested list or numpy array, got \[\[1, 2\], \[3\]\]"
                                        ".*inhomogeneous"):
        Tensor([[1, 2], [3]])


@pytest.mark.parametrize("node", [Value(1.0), Tensor([1.0])], ids=lambda n: type(n).__name__)
def test_nodes_are_not_data(node):
    with pytest.raises(TypeError, match=f"got a {type(node).__name__}"):
        Tensor(node)


def test_array_attributes():
    t = Tensor(np.arange(6.0).reshape(2, 3))
    assert (t.shape, t.ndim, t.size, t.dtype, len(t)) == ((2, 3), 2, 6, np.float64, 2)
    assert t.numpy() is t.data
    assert Tensor([[7.5]]).item() == 7.5
    assert isinstance(Tensor([[7.5]]).item(), float)
    with pytest.raises(ValueError, match=r"item\(\) needs a single-element Tensor, got shape \(2, 3\)"):
        t.item()
    with pytest.raises(TypeError, match="len\\(\\) of a 0-d Tensor"):
        len(Tensor(1.0))
    with pytest.raises(TypeError, match="0-d"):
        list(Tensor(1.0))


def test_numpy_shares_with_asarray_and_copies_with_array():
    # np.array(t) is a snapshot: an optimizer's in-place update must not change it.
    w = leaf([1.0, 2.0])
    snapshot, shared, copied = np.array(w), np.asarray(w), np.copy(w)
    w.data += 1.0
    np.testing.assert_array_equal(snapshot, [1.0, 2.0])
    np.testing.assert_array_equal(copied, [1.0, 2.0])
    assert shared is w.data
    assert np.array(w, dtype=np.float32).dtype == np.float32 and w.dtype == np.float64


def test_results_with_no_axes_hold_0d_arrays_and_convert_to_numbers():
    w = leaf([1.0, 2.0])
    for y in (w.sum(), w[0], w.max(), w.mean(), w @ w, Tensor(1.0) + Tensor(2.0)):
        assert type(y.data) is np.ndarray and y.data.shape == ()
        assert np.asarray(y).shape == () and float(y) == y.item()
    np.testing.assert_array_equal(np.asarray([w.sum(), w @ w]), [3.0, 5.0])  # a list of losses, for a plot


@pytest.mark.parametrize("make", [lambda h: Tensor(h, requires_grad=True), lambda h: Tensor([1.0, 2.0]) * h],
                         ids=["Tensor(list)", "operand"])
def test_a_list_holding_tensors_is_refused_rather_than_cut_from_the_graph(make):
    w = leaf([1.0, 2.0])
    with pytest.raises(TypeError, match="got a list holding Tensors; its numbers alone would lose the graph"):
        make([w * w, w * 3.0])
    with pytest.raises(TypeError, match="got a tuple holding Tensors"):  # named as given
        make((w * w, w * 3.0))
    np.testing.assert_array_equal(stack([w * w, w * 3.0]).data, [[1.0, 4.0], [3.0, 6.0]])


def test_a_boolean_mask_keeps_float32():
    t = Tensor(np.ones(3, np.float32))
    assert (t * np.array([True, False, True])).dtype == np.float32


def test_the_power_rule_keeps_its_sign_for_huge_even_exponents():
    for p in (float(2**53), float(-(2**53)), float(2**53 + 2), 1e20, -1e20):  # 2**53 - 1 is exact
        x = leaf([-1.0, 1.0])
        (x**p).sum().backward()
        np.testing.assert_array_equal(x.grad, [-p, p])


def test_repr_shows_data_dtype_and_graph_role():
    assert repr(Tensor([1.0, 2.5])) == "Tensor([1. , 2.5])"  # float64 and a constant: nothing else to say
    x = leaf([1.0, 2.0], label="x")
    assert "requires_grad=True" in repr(x) and "label='x'" in repr(x) and "op=" not in repr(x)
    assert "op='*'" in repr(x * 2)
    assert "dtype=float32" in repr(Tensor(np.float32([1.0])))


# --- bad operands and shapes ---------------------------------------------------------------------

MISMATCHES = {
    "+": (lambda a, b: a + b, (2, 3), (4,)),
    "-": (lambda a, b: a - b, (2, 3), (2,)),
    "*": (lambda a, b: a * b, (3,), (2, 2)),
    "/": (lambda a, b: a / b, (5, 1, 2), (3,)),
    "@": (lambda a, b: a @ b, (2, 3), (4, 5)),
}


@pytest.mark.parametrize("op", MISMATCHES)
def test_shape_mismatch_names_the_op_the_shapes_and_the_scope(op):
    f, sa, sb = MISMATCHES[op]
    with scope("layer 0"), scope("t=3"):
        a, b = leaf(np.ones(sa)), leaf(np.ones(sb))
        with pytest.raises(ValueError) as info:
            f(a, b)
    message = str(info.value)
    assert message.startswith(f"{op}: cannot apply to shapes {sa}, {sb}: ")
    assert message.endswith("(scope layer 0/t=3)")


def test_matmul_mismatches():
    with scope("t=3"):
        for sa, sb in [((3,), (4,)), ((2, 3), (2, 3)), ((2, 3, 4), (2, 5, 6)), ((3,), (4, 2))]:
            with pytest.raises(ValueError, match=rf"@: cannot apply to shapes {re.escape(str(sa))}, "
                                                 rf"{re.escape(str(sb))}: .*\(scope t=3\)"):
                Tensor(np.ones(sa)) @ Tensor(np.ones(sb))
        with pytest.raises(ValueError, match=r"@: cannot apply to shapes \(\), \(2,\)"):
            Tensor(2.0) @ Tensor([1.0, 2.0])


def test_reshape_mismatch():
    with pytest.raises(ValueError, match=r"reshape: cannot apply to shapes \(2, 3\): cannot reshape array of size 6"):
        Tensor(np.ones((2, 3))).reshape(4, 2)


@pytest.mark.parametrize("other", ["a", None, [1 + 1j]], ids=str)
def test_bad_operands_are_rejected(other):
    with pytest.raises(TypeError, match="Tensor operand expects"):
        Tensor([1.0]) + other


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_an_integer_operand_past_the_floats_range_is_refused(dtype):
    t = Tensor(np.ones(2, dtype))
    for f in (lambda: t + 10**400, lambda: 10**400 * t, lambda: t - (-10**400)):
        with pytest.raises(ValueError, match=rf"^Tensor operand: an integer of about 401 digits is too large for a "
                                             rf"{np.dtype(dtype)}$"):
            f()
    np.testing.assert_array_equal((Tensor(np.ones(2)) + 10**300).data, [1e300, 1e300])  # within range: kept


def test_masked_arrays_are_refused_as_data_and_as_operands():
    # Their conversion keeps the numbers under the mask and drops the mask.
    masked = np.ma.masked_array([1.0, 2.0], mask=[False, True])
    notice = "got a numpy masked array, whose mask would be ignored"
    t = Tensor([1.0, 1.0], requires_grad=True)
    for f, who in [(lambda: Tensor(masked), "Tensor"), (lambda: t + masked, "Tensor operand"),
                   (lambda: masked * t, "Tensor operand"), (lambda: t * (masked > 1), "Tensor operand")]:
        with pytest.raises(TypeError, match=rf"^{who}: {notice}"):
            f()
    assert t.grad is None


def test_mixing_value_and_tensor_is_rejected():
    t, v = Tensor([1.0, 2.0]), Value(3.0)
    for f in (lambda: t + v, lambda: t * v, lambda: v - t, lambda: t @ v, lambda: stack([t, v])):
        with pytest.raises(TypeError, match="cannot mix a (Tensor with a Value|Value with a Tensor)"):
            f()


def test_log_error_names_the_scope():
    with scope("t=7"), pytest.raises(ValueError, match=r"log expects positive inputs, got min -2.*scope t=7"):
        Tensor([1.0, -2.0]).log()


# --- backward: seeds ---------------------------------------------------------------------------


def test_implicit_seed_only_for_a_single_element():
    x = leaf([1.0, 2.0])
    y = x * 3.0
    with pytest.raises(RuntimeError, match=r"without a seed needs a single-element output, got shape \(2,\)"
                                           r"\. Pass grad= an array of shape \(2,\).*out\.sum\(\)\.backward\(\)"):
        y.backward()
    assert x.grad is None and y.grad is None
    for shaped in (y.sum(), y.sum().reshape(1, 1), y[1:]):
        x.grad = None
        shaped.backward()
        expected = [3.0, 3.0] if shaped.shape != (1,) else [0.0, 3.0]
        np.testing.assert_array_equal(x.grad, expected)


def test_seed_of_the_wrong_shape():
    y = leaf([1.0, 2.0]) * 2.0
    for bad, shape in [(np.ones(3), r"\(3,\)"), (np.ones((2, 1)), r"\(2, 1\)"), (1.0, r"\(\)")]:
        with pytest.raises(ValueError, match=rf"seed has shape {shape}, the output has shape \(2,\)"):
            y.backward(bad)
    with pytest.raises(TypeError, match="backward\\(\\) seed expects real numbers"):
        y.backward(["a", "b"])


@pytest.mark.parametrize("seed", [[2, -1], [2.0, -1.0], np.array([2.0, -1.0]), np.array([2, -1]),
                                  Tensor([2.0, -1.0]), np.float32([2.0, -1.0])], ids=repr)
def test_seed_as_list_array_or_tensor(seed):
    x = leaf([1.0, 3.0])
    y = x * x  # dy_i/dx_i = 2 x_i
    y.backward(seed)
    np.testing.assert_array_equal(x.grad, [4.0, -6.0])
    np.testing.assert_array_equal(y.grad, [2.0, -1.0])
    assert y.grad.dtype == np.float64


def test_the_seed_is_copied():
    seed = np.array([1.0, 1.0])
    x = leaf([1.0, 2.0])
    y = x * 1.0
    y.backward(seed)
    y.grad += 5.0
    np.testing.assert_array_equal(seed, [1.0, 1.0])


def test_backward_from_a_leaf():
    x = leaf([1.0, 2.0])
    x.backward([3.0, 4.0])
    np.testing.assert_array_equal(x.grad, [3.0, 4.0])
    x.backward([1.0, 1.0])
    np.testing.assert_array_equal(x.grad, [4.0, 5.0])


def test_backward_needs_a_tensor_that_requires_grad():
    with pytest.raises(RuntimeError, match="does not require a gradient"):
        Tensor([1.0]).backward()
    c = Tensor([1.0]) * 2.0 + np.ones(1)
    assert not c.requires_grad
    with pytest.raises(RuntimeError, match="not the output of a recorded graph"):
        c.backward()


# --- backward: what it fills ------------------------------------------------------------------


def small_network():
    """h = tanh(W x + b), y = sum(h * h): every intermediate's gradient has a closed form."""
    W = leaf([[0.5, -1.0], [0.25, 2.0]], label="W")
    x = leaf([1.0, 0.5], label="x")
    b = leaf([0.1, -0.2], label="b")
    z = W @ x + b
    h = z.tanh()
    y = (h * h).sum()
    return W, x, b, z, h, y


def test_every_intermediate_keeps_its_gradient():
    W, x, b, z, h, y = small_network()
    y.backward()
    z_np = np.array([0.5 - 0.5 + 0.1, 0.25 + 1.0 - 0.2])
    h_np = np.tanh(z_np)
    dh = 2 * h_np
    dz = dh * (1 - h_np**2)
    assert y.grad == 1.0
    np.testing.assert_allclose(h.grad, dh, rtol=1e-15)
    np.testing.assert_allclose(z.grad, dz, rtol=1e-15)
    np.testing.assert_allclose(b.grad, dz, rtol=1e-15)
    np.testing.assert_allclose(W.grad, np.outer(dz, [1.0, 0.5]), rtol=1e-15)
    np.testing.assert_allclose(x.grad, W.data.T @ dz, rtol=1e-15)
    gradcheck(lambda W, x, b: ((W @ x + b).tanh() ** 2).sum(), [W, x, b])


def test_gradients_accumulate_over_two_backward_calls():
    nodes = small_network()
    nodes[-1].backward()
    once = [n.grad.copy() for n in nodes]
    nodes[-1].backward()
    for node, g in zip(nodes, once):
        np.testing.assert_array_equal(node.grad, 2 * g)
    for node in nodes:
        node.grad = None
    nodes[-1].backward()
    for node, g in zip(nodes, once):
        np.testing.assert_array_equal(node.grad, g)


def test_two_outputs_of_one_graph_add_their_gradients():
    x = leaf([1.0, 2.0])
    h = x * x
    h.sum().backward()  # dh: 1, dx: 2x
    (h * 3.0).sum().backward()  # dh: 3, dx: 6x
    np.testing.assert_array_equal(h.grad, [4.0, 4.0])
    np.testing.assert_array_equal(x.grad, [8.0, 16.0])


def test_a_weight_used_at_every_step_gets_the_sum():
    # h_t = w * h_{t-1} + x_t with h_0 = 0, so h_T = sum_t w^(T-t) x_t:
    #   d h_T / d x_t = w^(T-t),  d h_T / d w = sum_t (T-t) w^(T-t-1) x_t.
    T = 6
    rng = np.random.default_rng(7)
    w_np, xs_np = rng.uniform(0.5, 1.2, size=3), rng.standard_normal((T, 3))
    w, xs = leaf(w_np), leaf(xs_np)
    h = Tensor(np.zeros(3))
    for t in range(T):
        h = w * h + xs[t]
    seed = np.array([1.0, -2.0, 0.5])
    h.backward(seed)
    powers = np.array([w_np ** (T - 1 - t) for t in range(T)])  # index t holds w^(T-1-t): x_t is read at step t+1
    np.testing.assert_allclose(h.data, (powers * xs_np).sum(axis=0), rtol=1e-13)
    np.testing.assert_allclose(xs.grad, powers * seed, rtol=1e-13)
    dw = sum((T - 1 - t) * w_np ** (T - 2 - t) * xs_np[t] for t in range(T - 1))
    np.testing.assert_allclose(w.grad, dw * seed, rtol=1e-13)


def test_a_matrix_weight_unrolled_matches_bptt_by_hand():
    # h_t = tanh(x_t W_xh + h_{t-1} W_hh): the backward recursion written out by hand,
    # dh_{t-1} = (dh_t * (1 - h_t^2)) W_hh^T, dW_hh += h_{t-1}^T (dh_t * (1 - h_t^2)).
    rng = np.random.default_rng(8)
    T, m, n_in, H = 5, 2, 3, 4
    x_np = rng.standard_normal((T, m, n_in))
    W_xh_np, W_hh_np = rng.standard_normal((n_in, H)) * 0.5, rng.standard_normal((H, H)) * 0.5
    x, W_xh, W_hh = leaf(x_np), leaf(W_xh_np), leaf(W_hh_np)
    h = Tensor(np.zeros((m, H)))
    hs = [h.data]
    for t in range(T):
        with scope(f"t={t + 1}"):
            h = (x[t] @ W_xh + h @ W_hh).tanh()
        hs.append(h.data)
        assert h.scope == (f"t={t + 1}",)
    loss = h.sum()
    loss.backward()

    dh = np.ones((m, H))
    dW_xh, dW_hh, dx = np.zeros_like(W_xh_np), np.zeros_like(W_hh_np), np.zeros_like(x_np)
    for t in reversed(range(T)):
        da = dh * (1 - hs[t + 1] ** 2)
        dW_xh += x_np[t].T @ da
        dW_hh += hs[t].T @ da
        dx[t] = da @ W_xh_np.T
        dh = da @ W_hh_np.T
    np.testing.assert_allclose(W_xh.grad, dW_xh, rtol=1e-12)
    np.testing.assert_allclose(W_hh.grad, dW_hh, rtol=1e-12)
    np.testing.assert_allclose(x.grad, dx, rtol=1e-12, atol=1e-15)


def test_a_node_used_twice_in_one_op():
    x = leaf([3.0, -1.0])
    (x * x).backward([1.0, 1.0])
    np.testing.assert_array_equal(x.grad, [6.0, -2.0])
    y = leaf([3.0, -1.0])
    (y + y).backward([1.0, 2.0])
    np.testing.assert_array_equal(y.grad, [2.0, 4.0])


def test_a_0d_tensor_used_twice_gets_both_gradients():
    # A 0-d tensor (a scalar parameter, or a loss term) read by two ops.
    y = leaf(2.0)
    (y * y).backward()
    assert y.grad == 4.0
    x = leaf([1.0, 2.0])
    s = x.sum()
    (s * s).backward()  # d s^2 / dx_i = 2 s = 6
    np.testing.assert_array_equal(x.grad, [6.0, 6.0])
    assert isinstance(s.grad, np.ndarray) and s.grad.shape == ()
    a = leaf(4.0)
    (a.exp() + a * 3.0).backward()
    assert a.grad == pytest.approx(math.exp(4.0) + 3.0, rel=1e-15)


def test_constants_keep_no_gradient():
    x = leaf([1.0, 2.0])
    c = Tensor([3.0, 4.0])
    k = c * 2.0  # computed from constants only: a constant too
    y = (x * c + k).sum()
    y.backward()
    assert c.grad is None and k.grad is None and not k.requires_grad and k.is_leaf
    np.testing.assert_array_equal(x.grad, [3.0, 4.0])


def test_requires_grad_spreads_from_any_input():
    a, b = leaf([1.0]), Tensor([2.0])
    assert (a + b).requires_grad and (b + a).requires_grad and (a * 2).requires_grad
    assert not (b * 2).requires_grad
    assert stack([b, a]).requires_grad and not concat([b, b]).requires_grad


# --- memory: parameter gradients are their own arrays ------------------------------------------


def test_gradients_of_an_add_do_not_share_memory():
    a, b = leaf([1.0, 2.0]), leaf([3.0, 4.0])
    c = a + b
    c.backward([1.0, 1.0])
    assert a.grad is not b.grad and a.grad is not c.grad
    a.grad += 10.0
    a.grad[0] = -1.0
    np.testing.assert_array_equal(a.grad, [-1.0, 11.0])
    np.testing.assert_array_equal(b.grad, [1.0, 1.0])
    np.testing.assert_array_equal(c.grad, [1.0, 1.0])


VIEW_OPS = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "reshape": lambda a, b: a.reshape(2, 2) + b.reshape(2, 2),
    "transpose": lambda a, b: a.reshape(2, 2).T + b.reshape(2, 2),
    "concat": lambda a, b: concat([a, b]),
    "stack": lambda a, b: stack([a, b]),
    "index": lambda a, b: a[:] + b[:],
    "sum": lambda a, b: a.sum() + b.sum(),
    "mean": lambda a, b: a.mean() + b.mean(),
}


@pytest.mark.parametrize("name", VIEW_OPS)
def test_leaf_gradients_are_private_writable_arrays(name):
    a, b = leaf([1.0, 2.0, 3.0, 4.0]), leaf([5.0, 6.0, 7.0, 8.0])
    out = VIEW_OPS[name](a, b)
    h = out * 1.0  # an intermediate downstream of the op
    h.backward(np.ones(h.shape))
    grads = {"a": a.grad, "b": b.grad, "out": out.grad, "h": h.grad}
    snapshot = {k: g.copy() for k, g in grads.items()}
    for k in ("a", "b"):
        assert grads[k].flags.writeable
        for other, g in grads.items():
            if other != k:
                assert not np.shares_memory(grads[k], g), (k, other)
    a.grad *= 7.0
    b.grad -= 1.0
    for k in ("out", "h"):
        np.testing.assert_array_equal(grads[k], snapshot[k])
    np.testing.assert_array_equal(a.grad, 7.0 * snapshot["a"])


@pytest.mark.parametrize("second", ["product", "view"])
def test_a_second_arrival_after_a_shared_gradient_leaves_the_first_alone(second):
    # h's first gradient is r's own (a reshape passes its gradient on as a view); the
    # second is a new array (h * 2) that the sum may be written into, or another view.
    x = leaf([[0.5, -1.0], [2.0, 0.25]])
    h = x.tanh()
    m = h.reshape(4) if second == "view" else h * 2.0
    r = h.reshape(4)  # created last, so reached first by backward
    (r.sum() + m.sum() * 3.0).backward()
    np.testing.assert_array_equal(h.grad, np.full((2, 2), 4.0 if second == "view" else 7.0))
    np.testing.assert_array_equal(r.grad, np.ones(4))
    np.testing.assert_array_equal(m.grad, np.full(m.shape, 3.0))
    assert not np.shares_memory(h.grad, r.grad) and not np.shares_memory(h.grad, m.grad)


# --- the shared core: no_grad, scope, detect_anomaly -------------------------------------------


def test_no_grad_results_are_constants():
    x = leaf([1.0, 2.0])
    with no_grad():
        y = x * 2.0
        z = (y + x).tanh()
        with enable_grad():
            w = x * 3.0
    assert not y.requires_grad and not z.requires_grad and y.is_leaf and y.op == ""
    assert w.requires_grad and w.parents == (x, w.parents[1])
    np.testing.assert_array_equal(y.data, [2.0, 4.0])
    with pytest.raises(RuntimeError, match="computed under no_grad"):
        y.sum().backward()
    (w.sum() + (x * y).sum()).backward()  # y is a constant here: d/dx = 3 + y
    np.testing.assert_array_equal(x.grad, [5.0, 7.0])


def test_scope_tags_tensor_nodes():
    with scope("layer 0"):
        x = leaf([1.0])
        with scope("t=3"):
            y = x * 2.0
            z = y.tanh()
        w = z + 1.0
    assert x.scope == ("layer 0",)
    assert y.scope == z.scope == ("layer 0", "t=3")
    assert w.scope == ("layer 0",)
    assert (w * 1.0).scope == ()
    assert (y.op, z.op, w.op) == ("*", "tanh", "+")
    assert z.parents == (y,)


def test_anomaly_in_forward_names_op_scope_and_inputs():
    with detect_anomaly(), scope("layer 0"), scope("t=3"), np.errstate(over="ignore"):
        x = leaf([1000.0], label="x")
        with pytest.raises(AnomalyError) as info:
            x.exp()
        message = str(info.value)
        assert "op 'exp' produced a non-finite value inf" in message
        assert "scope: layer 0/t=3" in message
        assert "input 0: x 1000" in message
        with pytest.raises(AnomalyError, match=r"op '/' produced a non-finite value shape \(2,\), 1 non-finite of 2, "
                                               r"the first at \[0\]"):
            with np.errstate(divide="ignore"):
                Tensor([1.0, 2.0]) / Tensor([0.0, 1.0])


def test_anomaly_in_a_whole_sequence_gives_the_index_of_the_first_bad_entry():
    # An op over every step at once (the input projections): the index says which step
    # (axis 0) and which sequence (axis 1) the NaN is in.
    x = np.random.default_rng(0).standard_normal((5, 4, 3))
    x[2, 1, 0] = x[4, 0, 0] = np.nan
    W = leaf(np.ones((3, 2)), label="W_xh")
    with detect_anomaly(), pytest.raises(AnomalyError) as info:
        Tensor(x).reshape(20, 3) @ W
    assert "input 0: leaf shape (5, 4, 3), 2 non-finite of 60, the first at [2, 1, 0]" in str(info.value)
    # and a recurrent layer says so before its first op, in its own terms
    for batch_first in (False, True):
        with detect_anomaly(), pytest.raises(AnomalyError, match=re.escape(
                "the input holds 2 non-finite numbers, the first, nan, at "
                f"{[1, 2, 0] if batch_first else [2, 1, 0]}: step t=3 of sequence 1")):
            nn.RNN(3, 4, batch_first=batch_first, seed=0)(x.swapaxes(0, 1) if batch_first else x)
    assert nn.RNN(3, 4, seed=0)(x)[0].data.shape == (5, 4, 4)  # outside detect_anomaly, NaN flows as IEEE has it


def test_anomaly_in_backward_names_op_and_scope():
    x = leaf([0.0, 4.0], label="x")
    with scope("t=2"):
        y = x**0.5  # finite forward, infinite derivative at 0
    with detect_anomaly(), np.errstate(divide="ignore"):
        with pytest.raises(AnomalyError) as info:
            y.sum().backward()
    message = str(info.value)
    assert "backward of op '**' gave input 0 a non-finite gradient" in message
    assert "scope: t=2" in message and "input 0: x shape (2,)" in message
    with np.errstate(divide="ignore"):  # outside the context the infinity propagates
        y.sum().backward()
    np.testing.assert_array_equal(x.grad, [np.inf, 0.25])


def test_a_failed_backward_leaves_the_gradients_as_they_were():
    x = leaf([1.0, 4.0])
    y = x**0.5
    z = y * 2.0
    z.backward([1.0, 1.0])
    before = {"x": x.grad.copy(), "y": y.grad.copy(), "z": z.grad.copy()}
    np.testing.assert_array_equal(before["x"], [1.0, 0.5])  # 2 * 0.5 / sqrt(x)
    w = (x - 1.0) ** 0.5  # infinite derivative at x = 1
    with detect_anomaly(), np.errstate(divide="ignore"), pytest.raises(AnomalyError):
        (w + z).backward([1.0, 1.0])
    for name, node in (("x", x), ("y", y), ("z", z)):
        np.testing.assert_array_equal(node.grad, before[name])
    assert w.grad is None


@pytest.mark.parametrize("arity", ["one input", "two", "three", "any number"])
def test_ops_of_every_arity_honour_no_grad_and_detect_anomaly(arity):
    # Each arity has its own written-out apply; each must leave the common path the same way.
    x, w, c = leaf([[1.0, 2.0]]), leaf([[1.0], [1e308]]), leaf([1.0])
    big, bad = leaf([[1e308, 1.0]]), leaf([[np.inf, 1.0]])
    f, finite, op, parents = {  # the op on inputs that give a non-finite result, and on finite ones
        "one input": (lambda: big.exp(), lambda: x.exp(), "exp", 1),
        "two": (lambda: big * big, lambda: x * x, "*", 2),
        "three": (lambda: addmm(c, x, w), lambda: addmm(c, x, x.T), "addmm", 3),
        "any number": (lambda: stack([x, bad]), lambda: stack([x, x]), "stack", 2),
    }[arity]
    with np.errstate(over="ignore"):
        with no_grad():
            y = f()
        assert y.op == "" and y.is_leaf and not y.requires_grad
        y = f()  # the same numbers, recorded
        assert y.op == op and y.requires_grad and len(y.parents) == parents and not np.isfinite(y.data).all()
        for grad_mode in (enable_grad, no_grad):  # checked whether recorded or not
            with grad_mode(), detect_anomaly(), pytest.raises(AnomalyError, match=f"op '{re.escape(op)}' produced"):
                f()
        with detect_anomaly():
            y = finite()
        assert y.op == op and y.requires_grad and np.isfinite(y.data).all()


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
def test_anomaly_in_backward_summarises_a_large_gradient_and_one_kept_as_products():
    # the gradients are summarised as the forward's values are, not printed whole (or as the
    # engine's internal form of a weight's gradient, kept as products until it is read)
    W = Tensor(np.full((128, 128), 1e-200), requires_grad=True)
    x = Tensor(np.full((4, 128), 1e200))
    with detect_anomaly(), pytest.raises(AnomalyError) as info:  # finite forward; dL/dW = xᵀ (1e200) = inf
        (x @ W * 1e200).sum().backward()
    message = str(info.value)
    assert "gave input 1 a non-finite gradient shape (128, 128), 16384 non-finite of 16384" in message
    assert "_Products" not in message and len(message.splitlines()) < 10


def test_anomaly_mode_changes_no_number():
    def run():
        W, x, b, z, h, y = small_network()
        y.backward()
        return [n.grad for n in (W, x, b, z, h)] + [y.data]

    plain = run()
    with detect_anomaly():
        checked = run()
    for p, c in zip(plain, checked):
        np.testing.assert_array_equal(p, c)


# --- gradcheck on Tensors -------------------------------------------------------------------------


def test_gradcheck_on_a_scalar_output():
    x = leaf([[0.5, -1.0], [2.0, 0.25]], label="x")
    report = gradcheck(lambda x: (x * x.exp()).sum(), [x])
    check = report.checks[0]
    assert check.name == "x" and report.ok
    np.testing.assert_allclose(check.analytic, (1 + x.data) * np.exp(x.data), rtol=1e-15)
    np.testing.assert_allclose(check.numeric, check.analytic, rtol=1e-8)
    assert x.grad is None  # gradcheck leaves the inputs' gradients alone


def test_gradcheck_on_a_non_scalar_output_uses_a_random_direction():
    x = leaf([0.5, -1.0, 2.0])
    w = leaf([[1.0, 2.0], [0.5, -1.0], [3.0, 0.0]])
    report = gradcheck(lambda x, w: (x @ w).tanh(), [x, w], seed=3)
    v = np.random.default_rng(3).standard_normal(2)  # the direction: sum(out * v) is checked
    dz = v * (1 - np.tanh(x.data @ w.data) ** 2)
    np.testing.assert_allclose(report.checks[0].analytic, w.data @ dz, rtol=1e-14)
    np.testing.assert_allclose(report.checks[1].analytic, np.outer(x.data, dz), rtol=1e-14)
    assert report.ok


def test_gradcheck_catches_a_graph_cut_by_detach():
    x = leaf([1.0, 3.0])
    report = gradcheck(lambda x: (x.detach() * x).sum(), [x], raise_on_failure=False)
    assert not report.ok
    np.testing.assert_array_equal(report.checks[0].analytic, [1.0, 3.0])
    np.testing.assert_allclose(report.checks[0].numeric, [2.0, 6.0], rtol=1e-8)
    with pytest.raises(GradcheckError, match="MISMATCH"):
        gradcheck(lambda x: (x.detach() * x).sum(), [x])


def test_gradcheck_with_values_and_tensors_in_one_list():
    # One output cannot mix the two kinds, so each is checked through its own part of f.
    v = Value(0.7, label="v")
    t = leaf([0.1, -0.4], label="t")
    report = gradcheck(lambda v, t: (t * 2.0).tanh().sum(), [v, t])
    assert report.checks[0].analytic == 0.0 and report.checks[0].numeric == 0.0
    np.testing.assert_allclose(report.checks[1].analytic, 2 * (1 - np.tanh(2 * t.data) ** 2), rtol=1e-15)
    report = gradcheck(lambda v, t: (v * v).tanh(), [v, t])
    assert report.checks[0].analytic == pytest.approx(2 * 0.7 * (1 - math.tanh(0.49) ** 2), rel=1e-15)
    np.testing.assert_array_equal(report.checks[1].analytic, [0.0, 0.0])
    # Reading v.data leaves the graph: gradcheck sees the missing gradient.
    report = gradcheck(lambda v, t: (t * v.data).sum(), [v, t], raise_on_failure=False)
    assert [c.ok for c in report.checks] == [False, True]
    assert report.checks[0].numeric == pytest.approx(-0.3, rel=1e-8)


def test_gradcheck_keeps_tensor_data_and_gradients():
    x = leaf([1.0, 2.0])
    x.grad = np.array([5.0, 6.0])
    gradcheck(lambda x: (x**3).sum(), [x])
    np.testing.assert_array_equal(x.grad, [5.0, 6.0])
    np.testing.assert_array_equal(x.data, [1.0, 2.0])
    with pytest.raises(ValueError, match="input 0 .* is not a leaf"):
        gradcheck(lambda y: y.sum(), [x * 2.0])


# --- a long unrolled loop --------------------------------------------------------------------


def test_reading_every_step_of_a_long_sequence():
    # sum_t c_t x[t] with c_t = t + 1: d / d x[t] = c_t, for T = 2000 reads of one tensor.
    T, m, n = 2000, 4, 3
    x = leaf(np.random.default_rng(9).standard_normal((T, m, n)))
    total = x[0]
    for t in range(1, T):
        total = total + x[t] * float(t + 1)
    total.sum().backward()
    np.testing.assert_array_equal(x.grad, np.broadcast_to(np.arange(1.0, T + 1)[:, None, None], (T, m, n)))


def test_index_gradients_are_scattered_in_place():
    # Each read x[t] sends back an (m, n) gradient. Materialising it as a (T, m, n) array
    # per step would hold at least two arrays of x's size at once; gathering the rows into
    # x.grad needs only x.grad itself.
    T, m, n = 2000, 16, 16
    x = leaf(np.ones((T, m, n)))
    total = x[0]
    for t in range(1, T):
        total = total + x[t]
    loss = total.sum()
    tracemalloc.start()
    try:
        loss.backward()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    np.testing.assert_array_equal(x.grad, np.ones((T, m, n)))
    assert peak < 1.5 * x.data.nbytes, f"backward peaked at {peak / x.data.nbytes:.2f} times the size of x"


def _rows_expected(shape, reads):
    """d/dx of sum_k c_k * x[i_k].sum() for the reads [(i_k, c_k)]: c_k summed into row i_k."""
    g = np.zeros(shape)
    for i, c in reads:
        g[i] += c
    return g


@pytest.mark.parametrize("interior", [False, True])
@pytest.mark.parametrize("reads", [
    [(t, t + 1.0) for t in range(5)],  # every row once, in order
    [(4, 1.0), (0, 2.0), (-1, 3.0), (2, 4.0), (1, 5.0), (3, 6.0), (0, 7.0)],  # repeats, a negative index
    [(3, 1.5), (1, -2.0)],  # some rows never read: their gradient is zero
])
def test_rows_read_one_at_a_time_add_up_exactly(interior, reads):
    # x[i] gradients are kept as rows until x's gradient is read; the result must be the
    # same array as adding each row into zeros.
    rng = np.random.default_rng(4)
    x = leaf(rng.standard_normal((5, 2, 3)))
    src = x * 1.0 if interior else x
    total = None
    for i, c in reads:
        term = (src[i] * c).sum()
        total = term if total is None else total + term
    total.backward()
    expected = _rows_expected((5, 2, 3), reads)
    for node in (x, src):
        assert type(node.grad) is np.ndarray and node.grad.dtype == np.float64
        np.testing.assert_array_equal(node.grad, expected)
    total.backward()  # a second pass adds to the first
    np.testing.assert_array_equal(x.grad, 2 * expected)


def test_rows_mix_with_every_other_kind_of_gradient():
    x = leaf(np.arange(12.0).reshape(4, 3))
    loss = (x[0] * 2.0).sum() + (x[3] * 3.0).sum() + (x * x).sum() + x[:, 1].sum() + x[[1, 1]].sum() + x[2].sum()
    loss.backward()
    expected = 2 * x.data
    expected[0] += 2.0
    expected[3] += 3.0
    expected[:, 1] += 1.0
    expected[1] += 2.0
    expected[2] += 1.0
    np.testing.assert_array_equal(x.grad, expected)


def test_rows_keep_float32_and_pass_anomaly_checks():
    x = leaf(np.ones((3, 2), dtype=np.float32))
    with detect_anomaly():
        (x[0] * 2.0 + x[2]).sum().backward()
    assert x.grad.dtype == np.float32
    np.testing.assert_array_equal(x.grad, [[2.0, 2.0], [0.0, 0.0], [1.0, 1.0]])
    y = leaf(np.ones((3, 2), dtype=np.float32))  # every row read: the rows are stacked
    (y[0] * 2.0 + y[1] + y[2] * np.float64(3.0)).sum().backward()
    assert y.grad.dtype == np.float32
    np.testing.assert_array_equal(y.grad, [[2.0, 2.0], [1.0, 1.0], [3.0, 3.0]])


def test_rows_are_dropped_when_a_pass_fails():
    from autograd.graph import record
    from autograd.tensor import _PENDING

    from .test_graph import FAILS

    x = leaf(np.ones((3, 2)))
    h = x * 1.0
    bad = record(Tensor(h.data), (h,), FAILS)
    bad.requires_grad = True
    loss = (bad + h[0] + h[2]).sum()  # the reads of h run first, then `fails` raises
    with pytest.raises(RuntimeError, match="this op's backward fails"):
        loss.backward()
    assert h.grad is None and x.grad is None and not _PENDING


# --- stacked states share storage; a weight used at every step is one product -------------
def test_stack_and_concat_share_storage_with_the_results_of_ops_only():
    rng = np.random.default_rng(6)
    x = leaf(rng.standard_normal((3, 2, 4)))
    states = [x[i] * float(i + 1) for i in range(3)]  # results of ops, each owning its array
    before = [s.data.copy() for s in states]
    const, view = Tensor(np.ones((2, 4))), x[0]
    narrow = Tensor(np.ones((2, 4), dtype=np.float32)) * 1.0  # cast when stacked with float64: not shared
    out = stack([*states, const, view, narrow])
    for s, b in zip(states, before):
        assert np.shares_memory(s.data, out.data)
        np.testing.assert_array_equal(s.data, b)
    assert not np.shares_memory(const.data, out.data)  # a leaf keeps its own array
    assert np.shares_memory(view.data, x.data) and not np.shares_memory(view.data, out.data)  # still a view of x
    assert narrow.data.dtype == np.float32 and not np.shares_memory(narrow.data, out.data)
    w = rng.standard_normal(out.shape)
    (out * w).sum().backward()
    expected = w[:3] * np.array([1.0, 2.0, 3.0])[:, None, None]
    expected[0] += w[4]  # through the view x[0]
    np.testing.assert_array_equal(x.grad, expected)

    a, b = x * 2.0, x[:1] * 3.0
    joined = concat([a, b], axis=0)
    assert np.shares_memory(a.data, joined.data) and np.shares_memory(b.data, joined.data)
    np.testing.assert_array_equal(joined.data[:3], 2.0 * x.data)
    side = x * 2.0
    concat([side, x * 1.0], axis=1)
    assert side.data.base is None  # a piece along axis 1 is not contiguous: not shared
    row = x[0] * 1.0
    stack([row, row], axis=1)
    assert row.data.base is None


def _recurrence(x, W, collect):
    """Five tanh steps through W over the rows of x, appended to ``collect`` one by one."""
    h = Tensor(np.zeros((2, 3)))
    for t in range(x.shape[0]):
        h = addmm(x[t], h, W).tanh()
        collect.append(h)
    return h


def test_a_stack_built_step_by_step_is_the_stack_without_a_copy():
    rng = np.random.default_rng(21)
    x0, W0, w = rng.standard_normal((5, 2, 3)), rng.standard_normal((3, 3)) * 0.5, rng.standard_normal((5, 2, 3))
    runs = {}
    for kind in ("stack", "builder"):
        x, W = leaf(x0), leaf(W0)
        if kind == "stack":
            states = []
            _recurrence(x, W, states)
            out = stack(states)
        else:
            builder = StackBuilder(5)
            _recurrence(x, W, builder)
            out, states = builder.stack(), builder.tensors
            for t, s in enumerate(states):  # each state's data is its piece of the stack's: no copy
                assert s.data.base is out.data and np.shares_memory(s.data, out.data[t])
        assert out.op == "stack" and out.parents == tuple(states) and out.shape == (5, 2, 3)
        (out * w).sum().backward()
        runs[kind] = (out.data.copy(), x.grad, W.grad, [s.grad for s in states])
    for a, b in zip(runs["stack"][:3], runs["builder"][:3]):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(runs["stack"][3], runs["builder"][3]):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("build", ["stack", "builder"])
def test_stacking_results_without_axes_keeps_them_arrays(build):
    # Per-step losses are 0-d. Their pieces of the stack must be 0-d views: numpy gives
    # numpy scalars, which are copies, when it iterates a 1-D array.
    x = leaf(np.array([1.0, 2.0, 3.0]))
    items = [x[i] * x[i] for i in range(3)]
    if build == "stack":
        out = stack(items)
    else:
        builder = StackBuilder(3)
        for item in items:
            builder.append(item)
        out = builder.stack()
    for i, item in enumerate(items):
        assert type(item.data) is np.ndarray and item.data.shape == () and item.data.base is out.data
        assert np.asarray(item) == x.data[i] ** 2
    ((out * out).sum() + items[0].tanh()).backward()
    np.testing.assert_allclose(x.grad, 4 * x.data**3 + np.array([2 * (1 - np.tanh(1.0) ** 2), 0, 0]), rtol=1e-15)


@pytest.mark.parametrize("n, error", [("3", TypeError), (2.5, TypeError), (True, TypeError), (-1, ValueError)])
def test_a_stack_builder_needs_a_count(n, error):
    message = f"StackBuilder expects the number of tensors to come, an int.*got {re.escape(repr(n))}"
    with pytest.raises(error, match=message):
        StackBuilder(n)


@pytest.mark.parametrize("case", ["a leaf", "a view", "another shape", "too few", "too many", "none expected",
                                  "no grad"])
def test_a_stack_builder_that_cannot_place_everything_is_a_plain_stack(case):
    x = leaf(np.arange(12.0).reshape(2, 2, 3))
    items = [x[0] * 1.0, x[1] * 2.0, x[0] * 3.0]
    n = {"too few": 4, "too many": 2, "none expected": 0}.get(case, 3)
    if case == "a leaf":
        items[1] = Tensor(np.ones((2, 3)))
    elif case == "a view":
        items[1] = x[1]
    builder = StackBuilder(n)
    for item in items:
        builder.append(item)
    if case == "another shape":
        builder.append(x[0, 0] * 1.0)
        with pytest.raises(ValueError, match="stack: cannot apply to shapes"):  # the error stack() gives
            builder.stack()
        return
    if case == "no grad":
        with no_grad():
            out = builder.stack()
        assert not out.requires_grad and out.is_leaf
    else:
        out = builder.stack()
        assert out.op == "stack" and len(out.parents) == 3
    np.testing.assert_array_equal(out.data, np.stack([i.data for i in items]))
    if case != "no grad":
        out.sum().backward()
        second = {"a leaf": 0.0, "a view": 1.0}.get(case, 2.0)  # d/dx[1] of the second item
        np.testing.assert_array_equal(x.grad, np.stack([np.full((2, 3), 1.0 + 3.0), np.full((2, 3), second)]))


def _pairs_sum(pairs):
    return sum(a.T @ g for a, g in pairs)


ACTIVATIONS = {
    "tanh": (lambda z: z.tanh(), lambda h, z: 1.0 - h * h),
    "sigmoid": (lambda z: z.sigmoid(), lambda h, z: h * (1.0 - h)),
    "relu": (lambda z: z.relu(), lambda h, z: (z > 0).astype(float)),
    "exp": (lambda z: (z * 0.1).exp(), None),  # d/dz exp(z/10) = h/10, through the * node
}


@pytest.mark.parametrize("other", ["none", "early", "late", "leaf"])
@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_the_rows_of_stacked_steps_join_without_a_copy(name, other):
    # h_t = f(xw[t] + h_{t-1} W), states stacked: each step's elementwise VJP writes its
    # input's gradient into the same place of the stacked states' twin, so the rows of
    # xw's gradient lie side by side and are joined without a copy. Another gradient for
    # xw, from a use made before the steps (it arrives after their rows) or after them
    # (it arrives first), is added out of place: the steps' own gradients, which the
    # rows are, stay as they were. A leaf xw gets a gradient of its own.
    import autograd.tensor as tensor_module

    f, f_prime = ACTIVATIONS[name]
    rng = np.random.default_rng(11)
    T, m, H = 5, 3, 4
    x0, W0, C = rng.standard_normal((T * m, H)), rng.standard_normal((H, H)) * 0.5, rng.standard_normal((T, m, H))
    x, W = leaf(x0), leaf(W0)
    xw = leaf(x0.reshape(T, m, H)) if other == "leaf" else (x * 1.0).reshape(T, m, H)
    loss = (xw * 2.0).sum() if other == "early" else None
    h, pre, states = Tensor(np.zeros((m, H))), [], []
    for t in range(T):
        pre.append(addmm(xw[t], h, W))
        h = f(pre[-1])
        states.append(h)
    steps = (stack(states) * C).sum()
    loss = steps if loss is None else loss + steps
    if other == "late":
        loss = loss + (xw * 2.0).sum()
    loss.backward()
    # by hand: dL/dpre_t = (C_t + dL/dpre_{t+1} Wᵀ) ⊙ f'(pre_t), from the last step back
    expected, d_next = [None] * T, np.zeros((m, H))
    for t in range(T - 1, -1, -1):
        hd, z = states[t].data, pre[t].data
        local = f_prime(hd, z) if f_prime else 0.1 * hd
        expected[t] = (C[t] + d_next @ W0.T) * local
        d_next = expected[t]
    for p, e in zip(pre, expected):
        np.testing.assert_allclose(p.grad, e, rtol=1e-13, atol=1e-14)
    rows = np.stack(expected) + (2.0 if other in ("early", "late") else 0.0)
    np.testing.assert_allclose(xw.grad, rows, rtol=1e-13, atol=1e-14)
    if other != "leaf":
        np.testing.assert_allclose(x.grad, rows.reshape(T * m, H), rtol=1e-13, atol=1e-14)
        assert not np.shares_memory(x.grad, xw.grad)  # a leaf's gradient is its own
    shared = [np.shares_memory(xw.grad, p.grad) for p in pre]
    # exp's VJP feeds the * node in front of it, not addmm, so nothing joins there
    assert shared == [other == "none" and name != "exp"] * T
    assert not tensor_module._TWINS and not tensor_module._PLACES  # both dropped at the end of the pass


def test_the_places_of_pieces_handed_out_for_a_twin_agree_with_their_addresses():
    # _fresh_like notes where the pieces it meets and hands out lie (for _piece, which
    # otherwise asks for addresses): the same base and byte offset as the addresses give.
    import autograd.tensor as tensor_module
    from autograd.tensor import _fresh_like, _piece

    rng = np.random.default_rng(12)
    steps = [Tensor(rng.standard_normal((3, 4)), requires_grad=True) * 1.0 for _ in range(5)]
    states = stack(steps)
    try:
        pieces = [(t.data, _fresh_like(t.data)) for t in steps]
        twin = tensor_module._TWINS[id(states.data)][1]  # flat
        address = tensor_module._address
        tensor_module._address = None  # noted pieces are answered without asking for an address
        try:
            noted = {id(x): _piece(x, {}) for pair in pieces for x in pair}
        finally:
            tensor_module._address = address
        assert len(tensor_module._PLACES) == 2 * len(steps)
        tensor_module._PLACES.clear()
        for k, (state, piece) in enumerate(pieces):
            np.testing.assert_array_equal(state, steps[k].data)
            assert piece.shape == state.shape and np.shares_memory(piece, twin)
            for x in (state, piece):
                by_address = _piece(x, {})
                assert noted[id(x)][0] is by_address[0] and noted[id(x)][1] == by_address[1]
        # the k-th pieces are k items into the stacked states and into the twin
        assert [noted[id(s)][1] for s, _ in pieces] == [k * 12 * 8 for k in range(5)]
        assert [noted[id(p)][1] - noted[id(pieces[0][1])][1] for _, p in pieces] == [k * 12 * 8 for k in range(5)]
    finally:
        tensor_module.Tensor._settle_grads()
    assert not tensor_module._PLACES and not tensor_module._TWINS


def test_no_twin_is_made_past_the_size_malloc_keeps_on_its_heap(monkeypatch):
    # A stacked array of _TWIN_BYTES or more gets no twin: the rows are stacked as before,
    # with the same gradients.
    import autograd.tensor as tensor_module

    rng = np.random.default_rng(12)
    T, m, H = 4, 2, 3
    x0, W0 = rng.standard_normal((T, m, H)), rng.standard_normal((H, H)) * 0.5

    def run():
        x, W = leaf(x0), leaf(W0)
        xw = x * 1.0
        h, states, pre = Tensor(np.zeros((m, H))), [], []
        for t in range(T):
            pre.append(addmm(xw[t], h, W))
            h = pre[-1].tanh()
            states.append(h)
        stack(states).sum().backward()
        return xw.grad, [p.grad for p in pre]

    joined, steps = run()
    assert all(np.shares_memory(joined, g) for g in steps)
    monkeypatch.setattr(tensor_module, "_TWIN_BYTES", T * m * H * 8)  # this stack's size: no twin
    stacked, steps = run()
    assert not any(np.shares_memory(stacked, g) for g in steps)
    np.testing.assert_array_equal(stacked, joined)


def test_a_leaf_stacked_through_an_elementwise_op_keeps_a_gradient_of_its_own():
    # p.tanh() stacked with other states: p's gradient would be a piece of the pass's twin,
    # which would keep every other state's gradient alive; a leaf copies it.
    rng = np.random.default_rng(13)
    p = leaf(rng.standard_normal((2, 3)))
    others = leaf(rng.standard_normal((6, 2, 3))) * 1.0
    states = [p.tanh()] + [others[i].tanh() for i in range(6)]
    C = rng.standard_normal((7, 2, 3))
    (stack(states) * C).sum().backward()
    np.testing.assert_allclose(p.grad, C[0] * (1.0 - np.tanh(p.data) ** 2), rtol=1e-14)
    assert p.grad.base is None or p.grad.base.nbytes == p.grad.nbytes
    assert not any(np.shares_memory(p.grad, s.grad) for s in states)


def test_a_twin_is_made_only_for_arrays_stack_shared():
    # An op result whose data was set to a piece of some other array by hand gets an
    # array of its own for its VJP, not a twin of that whole array.
    import autograd.tensor as tensor_module

    big = np.zeros((1000, 4))
    z = leaf(np.ones(4))
    h = z.tanh()
    h.data = big[3]  # as if stacked, but by hand
    (h * 2.0).sum().backward()
    np.testing.assert_allclose(z.grad, 2.0 * (1.0 - big[3] ** 2))
    fresh = tensor_module._fresh_like(big[3])
    assert fresh.base is None and fresh.shape == (4,)


def test_runs_join_consecutive_pieces_and_nothing_else():
    from autograd.tensor import _runs

    rng = np.random.default_rng(7)
    A, G, G2 = rng.standard_normal((6, 3, 4)), rng.standard_normal((6, 3, 5)), rng.standard_normal((6, 3, 5))
    frozen = G.copy()
    frozen.setflags(write=False)
    cases = {  # name: (pairs, the number of products they become)
        "down": ([(A[i], G[i]) for i in reversed(range(6))], 1),
        "up": ([(A[i], G[i]) for i in range(6)], 1),
        "shifted": ([(A[i], G[i + 1]) for i in reversed(range(5))], 1),
        "opposite directions": ([(A[i], G[5 - i]) for i in range(6)], 6),
        "a gap": ([(A[i], G[i]) for i in (5, 4, 2, 1, 0)], 2),
        "turning back": ([(A[i], G[i]) for i in (0, 1, 2, 1, 0)], 2),
        "another array": ([(A[i], (G if i < 3 else G2)[i]) for i in range(6)], 2),
        "read-only": ([(A[i], frozen[i]) for i in range(6)], 6),
        "not contiguous": ([(A[i][:, :2], G[i]) for i in range(6)], 6),
        "not views": ([(A[i].copy(), G[i].copy()) for i in range(6)], 6),
        "not whole items": ([(A[i], np.ndarray((3, 5), buffer=G, offset=8 * 15 * i + 3)) for i in range(5)], 5),
        "one pair": ([(A[2], G[2])], 1),
    }
    for name, (pairs, count) in cases.items():
        runs = _runs(pairs)
        assert len(runs) == count, name
        np.testing.assert_allclose(_pairs_sum(runs), _pairs_sum(pairs), rtol=1e-13, atol=1e-13, err_msg=name)
    (joined,) = _runs(cases["down"][0])
    assert joined[0].shape == (18, 4) and np.shares_memory(joined[0], A)  # a view: nothing copied
    assert joined[1].shape == (18, 5) and np.shares_memory(joined[1], G)


def _unrolled(W, x, C):
    """A tanh recurrence through ``W`` over the steps of ``x`` (T, m, n), like an RNN's."""
    h, states = Tensor(np.zeros(x.shape[1:])), []
    for t in range(x.shape[0]):
        h = addmm(x[t], h, W).tanh()
        states.append(h)
    return (stack(states) * C).sum()


def _bptt(W, x, C):
    """dL/dW of :func:`_unrolled`, derived by hand."""
    hs = [np.zeros(x.shape[1:])]
    for t in range(x.shape[0]):
        hs.append(np.tanh(x[t] + hs[-1] @ W))
    grad, from_next = np.zeros_like(W), np.zeros_like(hs[0])
    for t in reversed(range(x.shape[0])):
        delta = (C[t] + from_next) * (1.0 - hs[t + 1] ** 2)
        grad += hs[t].T @ delta
        from_next = delta @ W.T
    return grad


def test_a_weight_used_at_every_step_gets_its_gradient_as_one_product(monkeypatch):
    import autograd.tensor as tensor_module

    rng = np.random.default_rng(8)
    T, m, H = 6, 4, 96  # a 96 x 96 gradient is large enough to be kept as products
    W0, x0, C = rng.standard_normal((H, H)) * 0.1, rng.standard_normal((T, m, H)), rng.standard_normal((T, m, H))
    seen = []
    runs = tensor_module._runs
    monkeypatch.setattr(tensor_module, "_runs", lambda pairs: seen.append(runs(pairs)) or seen[-1])
    W, x = leaf(W0), leaf(x0)
    _unrolled(W, x, C).backward()
    expected = _bptt(W0, x0, C)
    np.testing.assert_allclose(W.grad, expected, rtol=0, atol=1e-12)
    # Steps 2..T read H_1..H_{T-1}, pieces of the stacked states, and their gradients are
    # the rows of x's gradient: one product. Step 1 reads the initial zeros: one more.
    assert [[A.shape for A, _ in r] for r in seen] == [[((T - 1) * m, H), (m, H)]]
    assert type(W.grad) is np.ndarray and type(x.grad) is np.ndarray
    from autograd.tensor import _MOVED, _PENDING
    assert not _PENDING and not _MOVED

    _unrolled(W, x, C).backward()  # a second pass adds to the first
    np.testing.assert_allclose(W.grad, 2 * expected, rtol=0, atol=2e-12)

    seen.clear()
    monkeypatch.setattr(tensor_module, "_KEEP_BYTES", 1 << 62)  # nothing kept: one product per step
    W1, x1 = leaf(W0), leaf(x0)
    _unrolled(W1, x1, C).backward()
    assert not seen
    np.testing.assert_allclose(W1.grad, W.grad / 2, rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(x1.grad, x.grad / 2, rtol=1e-13, atol=1e-14)


@pytest.mark.parametrize("copy_is_faster", [True, False])
def test_a_weight_multiplied_at_every_step_is_transposed_once_per_pass(monkeypatch, copy_is_faster):
    # Backward's g Wᵀ uses a contiguous copy of Wᵀ from the _COPY_AFTER-th product by the
    # same W on, where the copy multiplies faster (else the view throughout): the same
    # gradients (to rounding), and a copy that lives for one pass only, so a W changed in
    # place between passes (an optimizer step) is seen by the next one.
    import autograd.tensor as tensor_module

    monkeypatch.setattr(tensor_module, "_COPY_FASTER", {})
    asked = []
    monkeypatch.setattr(tensor_module, "_copy_is_faster", lambda g, view, copy: asked.append(g.shape) or copy_is_faster)

    rng = np.random.default_rng(10)
    T, m, H = 7, 3, 5
    W0, xw0, C = rng.standard_normal((H, H)) * 0.5, rng.standard_normal((T, m, H)), rng.standard_normal((T, m, H))

    def run(W):
        W0, h0 = W.data, leaf(np.zeros((m, H)))
        W.grad = None
        hs = [h0]
        for t in range(T):
            hs.append(addmm(Tensor(xw0[t]), hs[-1], W).tanh())
        (stack(hs[1:]) * C).sum().backward()
        # by hand: δ_t = (C_t + δ_{t+1} Wᵀ) ⊙ (1 - H_t²), from the last step back
        states = [h.data for h in hs]
        delta, d_h = None, C[T - 1]
        gW, gh = np.zeros((H, H)), [None] * (T + 1)
        for t in range(T, 0, -1):
            delta = d_h * (1.0 - states[t] ** 2)
            gW += states[t - 1].T @ delta
            gh[t - 1] = delta @ W0.T
            d_h = C[t - 2] + gh[t - 1] if t > 1 else None
        np.testing.assert_allclose(W.grad, gW, rtol=1e-13, atol=1e-14)
        for h, g in zip(hs[1:-1], gh[1:-1]):  # every interior state's gradient, dL/dH_t
            np.testing.assert_allclose(h.grad, g + C[hs.index(h) - 1], rtol=1e-13, atol=1e-14)
        np.testing.assert_allclose(h0.grad, gh[0], rtol=1e-13, atol=1e-14)
        assert not tensor_module._TRANSPOSED  # dropped at the end of the pass

    used = []
    transposed = tensor_module._transposed
    monkeypatch.setattr(tensor_module, "_transposed",
                        lambda b, g: used.append((b, transposed(b, g))) or used[-1][1])
    W = leaf(W0)
    run(W)
    assert len(used) == T  # one product g Wᵀ per step
    views = [np.shares_memory(bt, b) for b, bt in used]
    k = tensor_module._COPY_AFTER - 1
    # the first few by the view, the rest by one copy or all by the view
    assert views == [True] * k + [not copy_is_faster] * (T - k)
    if copy_is_faster:
        assert len({id(bt) for _, bt in used[k:]}) == 1
    W.data += 1.0  # in place, as an optimizer writes
    used.clear()
    run(W)  # the same W, whose gradients are checked against its new numbers
    if copy_is_faster:
        assert len({id(bt) for _, bt in used[k:]}) == 1
    assert asked == [(m, H)]  # measured once per process for the shapes, not once per pass


def test_the_copy_of_a_transpose_serves_only_products_of_the_shape_it_was_measured_for(monkeypatch):
    # Once the copy of Wᵀ is taken (here: measured faster), a g of another shape, which may
    # go to a routine that sums in another order (a 1-row g does), still uses the view:
    # its gradient has the same bits in every process, whichever way the process chose.
    import autograd.tensor as tensor_module

    monkeypatch.setattr(tensor_module, "_COPY_FASTER", {})
    monkeypatch.setattr(tensor_module, "_copy_is_faster", lambda g, view, copy: True)
    rng = np.random.default_rng(12)
    W = leaf(rng.standard_normal((128, 128)))
    xs = [leaf(rng.standard_normal((8, 128))) for _ in range(5)]
    one, short = leaf(rng.standard_normal((1, 128))), leaf(rng.standard_normal((3, 128)))
    used = []
    transposed = tensor_module._transposed
    monkeypatch.setattr(tensor_module, "_transposed",
                        lambda b, g: used.append((g.shape, transposed(b, g))) or used[-1][1])
    V = [rng.standard_normal((8, 128)) for _ in xs]
    v1, v3 = rng.standard_normal((1, 128)), rng.standard_normal((3, 128))
    loss = sum(((x @ W) * v).sum() for x, v in zip(xs, V)) + ((one @ W) * v1).sum() + ((short @ W) * v3).sum()
    loss.backward()
    copies = [shape for shape, bt in used if not np.shares_memory(bt, W.data)]
    assert copies and set(copies) == {(8, 128)}  # the copy was taken, for the 8-row products only
    np.testing.assert_array_equal(one.grad, v1 @ W.data.T)  # the view's bits
    np.testing.assert_array_equal(short.grad, v3 @ W.data.T)


@pytest.mark.parametrize("reverse", [False, True])
def test_an_rnn_loop_that_reads_its_steps_backwards_in_time_differentiates_as_any_graph(reverse):
    # The rows xw[t] of the input projections, and the states stacked as they come, join
    # into one gradient without a copy only if they lie in order; a loop over t from T-1
    # down to 0 (a backward-running RNN) puts them in the other order.
    rng = np.random.default_rng(4)
    T, m, n, H = 6, 3, 2, 4
    X, V = rng.standard_normal((T, m, n)), rng.standard_normal((T, m, H))

    def loss(W_xh, W_hh, b):
        xw = addmm(b, Tensor(X.reshape(T * m, n)), W_xh).reshape(T, m, H)
        h, states = Tensor(np.zeros((m, H))), StackBuilder(T)
        for t in (reversed(range(T)) if reverse else range(T)):
            h = addmm(xw[t], h, W_hh).tanh()
            states.append(h)
        return (states.stack() * V).sum()

    params = [leaf(rng.standard_normal((n, H)) * 0.5), leaf(rng.standard_normal((H, H)) * 0.5),
              leaf(rng.standard_normal(H) * 0.5)]
    assert gradcheck(loss, params).ok


def test_the_copy_of_a_transpose_is_taken_where_it_is_faster_and_rounds_the_same():
    from autograd.tensor import _copy_is_faster

    rng = np.random.default_rng(11)
    g, W = rng.standard_normal((6, 5)), rng.standard_normal((4, 5))
    copy = np.ascontiguousarray(W.T)

    # the layout whose products take less time on the clock is chosen
    assert _copy_is_faster(g, W.T, copy, clock=_Clock({"copy": 1.0, "view": 2.0}))
    assert not _copy_is_faster(g, W.T, copy, clock=_Clock({"copy": 2.0, "view": 1.0}))
    # a 1-row g (a matrix-vector product, summed in another order per layout): always the view
    assert not _copy_is_faster(g[:1], W.T, copy, clock=_Clock({"copy": 1.0, "view": 2.0}))
    # a "copy" that does not give the same bits is never taken, however fast
    assert not _copy_is_faster(g, W.T, copy + 1e-9, clock=_Clock({"copy": 1.0, "view": 2.0}))


def test_no_copy_of_a_transpose_is_considered_for_a_large_g(monkeypatch):
    # where the product is the cost, and the decision would draw a probe of g's size
    from autograd import tensor as tensor_module

    monkeypatch.setattr(tensor_module, "_TRANSPOSED", {})
    monkeypatch.setattr(tensor_module, "_COPY_FASTER", {})
    monkeypatch.setattr(tensor_module, "_copy_is_faster", lambda g, view, copy: True)
    monkeypatch.setattr(tensor_module, "_COPY_G_ENTRIES", 40)
    W = np.random.default_rng(1).standard_normal((4, 5))
    for rows, copied in [(9, False), (8, True), (2, True)]:  # 9 x 5 entries are past the limit of 40
        tensor_module._TRANSPOSED.clear()
        g = np.ones((rows, 5))
        got = [tensor_module._transposed(W, g) for _ in range(tensor_module._COPY_AFTER + 1)]
        assert np.shares_memory(got[-1], W) is not copied


def test_whether_the_two_layouts_agree_is_asked_of_numbers_drawn_for_it_not_of_the_pass(monkeypatch):
    # A masked step's g of zeros gives the same bits by any layout: on a processor whose
    # kernels sum the two layouts in different orders, the copy was then taken, and the
    # next passes' products differed in the last bit from those of a process that chose the view.
    from autograd import tensor as tensor_module
    from autograd.tensor import _copy_is_faster, _layouts_agree

    W = np.random.default_rng(12).standard_normal((4, 5))
    zeros, copy = np.zeros((6, 5)), np.ascontiguousarray(W.T)
    faster_copy = _Clock({"copy": 1.0, "view": 2.0})
    monkeypatch.setattr(tensor_module, "_layouts_agree", lambda g_shape, bt_shape, dtype: False)
    assert not _copy_is_faster(zeros, W.T, copy, clock=faster_copy)
    monkeypatch.undo()
    # it asks its question of numbers that say something (no zeros), in both layouts, and
    # hears a difference where the layouts sum in different orders
    seen = []

    def spy(a, b):
        seen.append((a.copy(), b.flags.c_contiguous))
        return np.matmul(a, b)
    assert _layouts_agree((6, 5), (5, 4), np.float64, multiply=spy)
    assert [contiguous for _, contiguous in seen] == [False, True]
    assert all(np.all(a != 0) and a.std() > 0.1 for a, _ in seen) and np.array_equal(seen[0][0], seen[1][0])

    def other_order(a, b):  # as a kernel that sums the contiguous layout in another order
        return np.matmul(a, b) * (1 + 2**-52 if b.flags.c_contiguous else 1)
    assert not _layouts_agree((6, 5), (5, 4), np.float64, multiply=other_order)
    # and the answer is that of other numbers of those shapes, every time it is asked
    rng = np.random.default_rng(5)
    for g_shape, bt_shape, dtype in [((6, 5), (5, 4), np.float64), ((32, 128), (128, 128), np.float64),
                                     ((8, 33), (33, 17), np.float32)]:
        p, w = rng.standard_normal(g_shape).astype(dtype), rng.standard_normal(bt_shape[::-1]).astype(dtype)
        agree = np.array_equal(p @ w.T, p @ np.ascontiguousarray(w.T))
        assert _layouts_agree(g_shape, bt_shape, dtype) is agree is _layouts_agree(g_shape, bt_shape, dtype)


class _Clock:
    """A clock for _copy_is_faster: each product (two readings) takes the time given for
    its layout; the layouts take turns, the view first."""

    def __init__(self, cost):
        self.order, self.cost, self.now, self.reads = ("view", "copy"), cost, 0.0, 0

    def __call__(self):
        if self.reads % 2:  # the end of a product
            self.now += self.cost[self.order[(self.reads // 2) % 2]]
        self.reads += 1
        return self.now


@pytest.mark.parametrize("products_first", [True, False])
def test_kept_products_mix_with_every_other_kind_of_gradient(products_first):
    rng = np.random.default_rng(9)
    W0, x0 = rng.standard_normal((128, 128)), rng.standard_normal((3, 128))
    W = leaf(W0)
    terms = [lambda: (Tensor(x0) @ W).sum(), lambda: (x0[:2] @ W).sum(), lambda: (W * W).sum(),
             lambda: W[5].sum(), lambda: W[[1, 1]].sum()]
    loss = None
    for term in terms if products_first else reversed(terms):
        loss = term() if loss is None else loss + term()
    loss.backward()
    expected = x0.T @ np.ones((3, 128)) + x0[:2].T @ np.ones((2, 128)) + 2 * W0
    expected[5] += 1.0
    expected[1] += 2.0
    np.testing.assert_allclose(W.grad, expected, rtol=1e-13, atol=1e-12)


def test_kept_products_keep_float32():
    W = leaf(np.ones((128, 128), dtype=np.float32))
    x = np.full((2, 128), 0.5, dtype=np.float32)
    ((Tensor(x) @ W).sum() + (Tensor(x[:1]) @ W).sum()).backward()
    assert W.grad.dtype == np.float32
    np.testing.assert_array_equal(W.grad, np.full((128, 128), 1.5, dtype=np.float32))


def test_a_non_finite_kept_product_is_caught_at_its_op():
    # Forward stays finite: (x @ W) is about 1e2, times 1e300. Backward: x's gradient
    # g Wᵀ is about 1e293, but W's, xᵀ g, overflows: the op and the input are named.
    x = Tensor(np.full((32, 128), 1e9))
    W = leaf(np.full((128, 128), 1e-9))
    out = ((x @ W) * 1e300).sum()
    with detect_anomaly(), np.errstate(over="ignore"), \
            pytest.raises(AnomalyError, match="backward of op .@. gave input 1 a non-finite"):
        out.backward()
    from autograd.tensor import _MOVED, _PENDING
    assert W.grad is None and not _PENDING and not _MOVED


def test_kept_products_are_dropped_when_a_pass_fails():
    from autograd.graph import record
    from autograd.tensor import _MOVED, _PENDING

    from .test_graph import FAILS

    W = leaf(np.eye(128))
    x = leaf(np.ones((4, 3, 128)))
    steps = stack([addmm(x[t], x[t], W) for t in range(4)])
    bad = record(Tensor(steps.data), (steps,), FAILS)
    bad.requires_grad = True
    loss = (bad + steps).sum()
    with pytest.raises(RuntimeError, match="this op's backward fails"):
        loss.backward()
    assert W.grad is None and x.grad is None and not _PENDING and not _MOVED


def test_deep_chain_does_not_recurse():
    x = leaf([0.5])
    y = x
    for _ in range(20000):
        y = y * 1.0 + 0.0
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, [1.0])


def test_mean_over_an_empty_axis_says_so():
    with pytest.raises(ValueError, match=r"mean over an empty axis of a Tensor of shape \(0, 3\)"):
        Tensor(np.zeros((0, 3)), requires_grad=True).mean(axis=0)


@pytest.mark.parametrize("call, message", [
    (lambda a: stack([a, a], axis=True), r"stack: an axis must be an int, got True \(bool\)"),
    (lambda a: stack([a, a], axis=(0,)), r"stack: axis must be an int, got \(0,\)"),
    (lambda a: concat([a, a], axis=[0, 1]), r"concat: axis must be an int, got \[0, 1\]"),
    (lambda a: stack(None), r"stack\(\) expects a list or tuple of Tensors, got NoneType"),
    (lambda a: stack(a), r"stack\(\) expects a list or tuple of Tensors, got Tensor"),
    (lambda a: concat({"k": a}), r"concat\(\) expects a list or tuple of Tensors, got dict"),
])
def test_stack_and_concat_say_what_they_take(call, message):
    with pytest.raises(TypeError, match=message):
        call(Tensor([1.0, 2.0]))


@pytest.mark.parametrize("op, grad", [
    (lambda x: x.relu(), [0.0, 0.0, 0.25]),
    (lambda x: x.clip(0.0, 9.0), [0.0, math.inf, 0.25]),
])
def test_an_infinite_gradient_does_not_pass_where_the_mask_is_off(op, grad):
    # sqrt'(0) is inf; where relu is off (or clip limits) nothing passes, not even that:
    # inf * 0 would have made it NaN, and the NaN would spread to everything behind it.
    x = leaf(np.array([-1.0, 0.0, 4.0]))
    with np.errstate(divide="ignore"):
        (op(x) ** 0.5).sum().backward()
    np.testing.assert_array_equal(x.grad, grad)
    values = [Value(v) for v in (-1.0, 0.0, 4.0)]
    if grad[1] == 0.0:  # the value engine agrees
        sum(op(v) ** 0.5 for v in values).backward()
        assert [v.grad for v in values] == grad


def test_an_infinite_gradient_reaches_only_the_maximum():
    x = leaf(np.array([[-1.0, 0.0], [-3.0, -2.0]]))
    with np.errstate(divide="ignore"):
        (x.max() ** 0.5).backward()
    np.testing.assert_array_equal(x.grad, [[0.0, math.inf], [0.0, 0.0]])


def test_a_numpy_operand_is_copied_so_writing_to_it_later_changes_no_gradient():
    W = leaf(np.ones((2, 2)))
    buf = np.ones((1, 2))
    y = (buf @ W).sum()
    buf[:] = 5.0
    y.backward()
    np.testing.assert_array_equal(W.grad, np.ones((2, 2)))


@pytest.mark.parametrize("kind", ["ints", "mask", "in a tuple"])
def test_an_index_array_is_copied_so_writing_to_it_later_changes_no_gradient(kind):
    # backward reads the index again: the caller's array, changed, sent the gradient elsewhere
    c = np.array([[1.0, 2.0], [3.0, 4.0]])
    x = leaf(np.zeros((3, 2)))
    index = {"ints": np.array([0, 1]), "mask": np.array([True, True, False]),
             "in a tuple": np.array([0, 1])}[kind]
    picked = x[(index, slice(None))] if kind == "in a tuple" else x[index]
    y = (picked * c).sum()
    index[:] = {"ints": 2, "mask": True, "in a tuple": 2}[kind]
    y.backward()
    np.testing.assert_array_equal(x.grad, [[1.0, 2.0], [3.0, 4.0], [0.0, 0.0]])
    np.testing.assert_array_equal(picked.data, 0.0)


# --- what would leave the graph without a word is refused -------------------------------------
NUMPY_ON_A_TENSOR = [  # a numpy function on x, and the use the refusal names instead
    (lambda x: np.dot(x, np.ones(3)), "a @ b"),
    (lambda x: np.einsum("i,i", x, x), "einsum has no Tensor form"),
    (lambda x: np.outer(x, x), "a.reshape(-1, 1) * b"),
    (lambda x: np.stack([x, x]), "autograd.stack(tensors, axis)"),
    (lambda x: np.concatenate([x, x]), "autograd.concat(tensors, axis)"),
    (lambda x: np.sum(x), "t.sum(axis)"),
    (lambda x: np.mean(x), "t.mean(axis)"),
    (lambda x: np.max(x), "t.max(axis)"),
    (lambda x: np.clip(x, 0.0, 1.0), "t.clip(low, high)"),
    (lambda x: np.where(x.data > 1.5, x, 0.0), "mask * a + (1 - mask) * b"),
    (lambda x: np.linalg.norm(x), "(t * t).sum() ** 0.5"),
    (lambda x: np.cumsum(x), "the Tensor's own ops"),
    (lambda x: np.sort(x), "the Tensor's own ops"),
]


@pytest.mark.parametrize("call, instead", NUMPY_ON_A_TENSOR, ids=[i for i, _ in enumerate(NUMPY_ON_A_TENSOR)])
def test_numpy_functions_that_would_drop_the_graph_are_refused_saying_what_to_use(call, instead):
    # np.dot(x, w) gave plain numbers: (x * np.dot(x, 1)).sum() then had gradient sum(x), not 2 sum(x)
    x = leaf([1.0, 2.0, 3.0])
    with pytest.raises(TypeError, match=r"numpy(\.linalg)?\.\w+ got a Tensor: numpy would compute on its numbers "
                                        rf"alone .* Use .*{re.escape(instead)}"):
        call(x)


def test_the_graph_way_of_a_refused_numpy_function_gives_the_true_gradient():
    x = leaf([1.0, 2.0, 3.0])
    (x * (x @ np.ones(3))).sum().backward()  # (sum x)^2
    np.testing.assert_array_equal(x.grad, [12.0, 12.0, 12.0])
    # numpy functions meant to read the numbers out answer on the data
    assert np.shape(x) == (3,) and np.ndim(x) == 1 and np.size(x) == 3
    assert np.allclose(x, [1.0, 2.0, 3.0]) and np.array_equal(x, np.array([1.0, 2.0, 3.0]))
    assert type(np.copy(x)) is np.ndarray and np.copy(x) is not x.data
    assert np.allclose(x, b=[1.0, 2.0, 3.0])  # by keyword too (it recursed until Python's limit)
    # and those that plotting and testing use (matplotlib's bar broadcasts its heights)
    heights, _ = np.broadcast_arrays(x, 1.0)
    assert type(heights) is np.ndarray and np.atleast_2d(x).shape == (1, 3)
    assert np.result_type(x) == np.float64 and list(np.histogram(x, bins=2)[0]) == [1, 2]
    np.testing.assert_almost_equal(x, [1.0, 2.0, 3.0])


def test_a_tensor_saves_with_numpy_by_position_and_by_keyword(tmp_path):
    w = leaf([[1.0, 2.0], [3.0, 4.0]])
    np.savez(tmp_path / "a.npz", w, W=w)
    np.save(tmp_path / "b.npy", arr=w)
    with np.load(tmp_path / "a.npz") as saved:
        np.testing.assert_array_equal(saved["W"], w.data)
        np.testing.assert_array_equal(saved["arr_0"], w.data)
    np.testing.assert_array_equal(np.load(tmp_path / "b.npy"), w.data)


def test_a_tensor_as_an_index_is_refused_since_a_mask_and_positions_look_alike():
    # Tensor([True, False, True]) holds 1.0, 0.0, 1.0, which were taken as positions 1, 0, 1
    x = leaf([10.0, 20.0, 30.0])
    with pytest.raises(IndexError, match=r"a Tensor cannot index a Tensor \(got one of shape \(3,\)\).*"
                                         r"a bool array for a mask \(t.data > 0.5\)"):
        x[Tensor([True, False, True])]
    with pytest.raises(IndexError, match="a Tensor cannot index"):
        x[1:, Tensor([0.0])]
    picked = x[np.array([True, False, True])]
    (picked * np.array([2.0, 3.0])).sum().backward()
    np.testing.assert_array_equal(picked.data, [10.0, 30.0])
    np.testing.assert_array_equal(x.grad, [2.0, 0.0, 3.0])


def test_a_subclass_of_tensor_runs_every_op_as_a_tensor_does():
    # every op on a subclass went back and forth between the fast and the general apply
    class Named(Tensor):
        __slots__ = ()

    a, b = Named([0.5, -1.0], requires_grad=True), leaf([3.0, 4.0])
    y = (a * b + a.tanh() + 2.0 * a + addmm(a, a[None, :], np.eye(2))[0]).sum()
    y.backward()
    np.testing.assert_allclose(a.grad, b.data + (1 - np.tanh(a.data) ** 2) + 2.0 + 2.0, rtol=1e-15)
    np.testing.assert_array_equal(b.grad, a.data)
    assert type(y) is Tensor


def test_an_ordering_comparison_says_to_compare_the_numbers():
    # Python's own "'>' not supported between instances" named no way out
    t = leaf([-1.0, 2.0])
    for compare, symbol in [(lambda: t > 0, ">"), (lambda: t <= 1.0, "<="), (lambda: 0 < t, ">"),
                            (lambda: np.zeros(2) >= t, "<=")]:
        with pytest.raises(TypeError, match=rf"^{re.escape(symbol)} on a Tensor is not an op .* t\.data "
                                            rf"{re.escape(symbol)} x, for a bool array"):
            compare()
    relu = t * (t.data > 0)  # the way the message gives
    relu.sum().backward()
    np.testing.assert_array_equal(t.grad, [0.0, 1.0])


def test_the_size_of_a_gradient_kept_as_rows_is_correctly_rounded():
    # the squares of the rows' norms are added as math.fsum adds them (the built-in sum of
    # floats rounds differently from Python 3.12 on): 1 and four of 1e-16 give 1 + 4e-16
    from autograd.tensor import _Rows

    x = Tensor(np.zeros((5, 1)), requires_grad=True) * 1.0
    rows = _Rows(x)
    for i, r in enumerate([1.0, 1e-8, 1e-8, 1e-8, 1e-8]):
        rows.add(i, np.array([r]))
    assert Tensor._grad_norm(rows) == math.sqrt(math.fsum([1.0] + [1e-16] * 4)) == 1.0000000000000002
    Tensor._settle_grads()  # as the end of a pass does
