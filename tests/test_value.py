"""The scalar engine: every op of the case table, composite expressions with hand-derived
gradients, accumulation, edge values of IEEE arithmetic, and the errors for bad input."""

import math
import re
import subprocess
import sys
from fractions import Fraction

import numpy as np
import pytest

from autograd import AnomalyError, Value, detect_anomaly, gradcheck, no_grad, topological_order

from .cases import CASES, Float, check_case_on


def central_difference(f, xs, i, eps=1e-6):
    """d f / d xs[i] by central differences on plain floats."""
    up, down = list(xs), list(xs)
    up[i] += eps
    down[i] -= eps
    return (f(*up) - f(*down)) / (2 * eps)


# --- the case table -----------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_case_table_on_values(case):
    rng = np.random.default_rng(0)
    for _ in range(5):
        check_case_on(Value, case, case.sample(rng), exact=True)


# --- composite expressions with hand-derived results --------------------------------------


def readme_example(a, b):
    """micrograd's README expression; runs on Values and on reference Floats."""
    c = a + b
    d = a * b + b**3
    c += c + 1
    c += 1 + c + (-a)
    d += d * 2 + (b + a).relu()
    d += 3 * d + (b - a).relu()
    e = c - d
    f = e**2
    g = f / 2.0
    g += 10.0 / f
    return g


def test_micrograd_readme_example():
    a, b = Value(-4.0), Value(2.0)
    g = readme_example(a, b)
    g.backward()
    # By hand, near (a, b) = (-4, 2) where relu(b + a) is off and relu(b - a) is on:
    #   c = 3a + 4b + 3 = -1,  d = 12(ab + b^3) + b - a = 6,  e = c - d = -7,
    #   g = e^2 / 2 + 10 / e^2 = 2421/98,  dg/de = e - 20 / e^3 = -2381/343,
    #   de/da = 4 - 12b = -20,  de/db = 3 - 12a - 36b^2 = -93.
    dg_de = Fraction(-2381, 343)
    assert g.data == pytest.approx(float(Fraction(2421, 98)), rel=1e-15)
    assert a.grad == pytest.approx(float(-20 * dg_de), rel=1e-14)
    assert b.grad == pytest.approx(float(-93 * dg_de), rel=1e-14)
    assert (round(g.data, 4), round(a.grad, 4), round(b.grad, 4)) == (24.7041, 138.8338, 645.5773)

    def g_of(a, b):
        return float(readme_example(Float(a), Float(b)))

    assert g_of(-4.0, 2.0) == g.data
    assert a.grad == pytest.approx(central_difference(g_of, (-4.0, 2.0), 0), rel=1e-7)
    assert b.grad == pytest.approx(central_difference(g_of, (-4.0, 2.0), 1), rel=1e-7)


def test_shared_node_accumulates():
    a = Value(1.5)
    b = a + a
    c = b * b
    c.backward()
    assert c.data == 9.0
    assert b.grad == 2 * b.data == 6.0
    assert a.grad == 8 * a.data == 12.0


def test_node_used_by_many_ops():
    x = Value(0.7)
    y = x * x.exp() + x.tanh() - 3 * x  # x feeds four ops
    y.backward()
    expected = math.exp(0.7) * (1 + 0.7) + 1 / math.cosh(0.7) ** 2 - 3
    assert x.grad == pytest.approx(expected, rel=1e-14)


def test_backward_seed_scales_every_gradient():
    x, w = Value(0.3), Value(-1.2)
    y = (w * x + 1).tanh()
    y.backward(2.5)
    assert y.grad == 2.5
    assert w.grad == pytest.approx(2.5 * (1 - y.data**2) * 0.3, rel=1e-15)
    assert x.grad == pytest.approx(2.5 * (1 - y.data**2) * -1.2, rel=1e-15)


def test_backward_from_a_leaf():
    x = Value(3.0)
    x.backward()
    assert x.grad == 1.0
    x.backward()
    assert x.grad == 2.0


# --- a scalar recurrence: backpropagation through time ------------------------------------

W, H0 = 0.8, 0.2
XS = [0.5, -1.0, 0.3, 0.8, -0.2, 1.1]
YS = [0.1, -0.4, 0.2, 0.5, 0.0, 0.6]


def recurrence_loss(weights, h0=H0, xs=XS, ys=YS, bump_at=None, bump=0.0):
    """L = sum_t (h_t - y_t)^2 with h_t = tanh(w_t h_{t-1} + x_t), on any engine.

    ``weights`` holds one weight per step (the same object for a tied weight); ``bump``
    is added to h_{bump_at} to differentiate L with respect to that intermediate.
    Returns L and [h_0, ..., h_T].
    """
    hs = [h0]
    loss = 0.0
    for t, (w, x, y) in enumerate(zip(weights, xs, ys), start=1):
        h = (w * hs[-1] + x).tanh()
        if t == bump_at:
            h = h + bump
        hs.append(h)
        loss = loss + (h - y) ** 2
    return loss, hs


def bptt_by_hand(w=W, h0=H0, xs=XS, ys=YS):
    """The backward pass written out: dL/dh_t and the contribution of each step's use of w."""
    hs = [h0]
    for x in xs:
        hs.append(math.tanh(w * hs[-1] + x))
    T = len(xs)
    dL_dh = [0.0] * (T + 1)
    per_step = [0.0] * T
    from_later = 0.0  # dL/dh_t through h_{t+1}
    for t in range(T, 0, -1):
        dL_dh[t] = 2 * (hs[t] - ys[t - 1]) + from_later
        pre = dL_dh[t] * (1 - hs[t] ** 2)  # dL/d(w h_{t-1} + x_t)
        per_step[t - 1] = pre * hs[t - 1]
        from_later = pre * w
    dL_dh[0] = from_later
    return dL_dh, per_step


def float_loss(w, bump_at=None, bump=0.0):
    return float(recurrence_loss([Float(w)] * len(XS), bump_at=bump_at, bump=bump)[0])


def test_tied_weight_gets_the_sum_over_time_steps():
    w = Value(W)
    h0 = Value(H0)
    loss, _ = recurrence_loss([w] * len(XS), h0=h0)
    loss.backward()
    dL_dh, per_step = bptt_by_hand()
    assert w.grad == pytest.approx(sum(per_step), rel=1e-12)
    assert h0.grad == pytest.approx(dL_dh[0], rel=1e-12)
    assert w.grad == pytest.approx(central_difference(float_loss, (W,), 0), rel=1e-7)

    # Untie the weight: one copy per step. Each copy gets its step's contribution, and
    # the contributions add up to the tied weight's gradient.
    copies = [Value(W) for _ in XS]
    untied, _ = recurrence_loss(copies)
    untied.backward()
    assert untied.data == loss.data
    for copy, contribution in zip(copies, per_step):
        assert copy.grad == pytest.approx(contribution, rel=1e-12)
    assert sum(c.grad for c in copies) == pytest.approx(w.grad, rel=1e-14)


def test_intermediate_gradients_are_filled():
    loss, hs = recurrence_loss([Value(W)] * len(XS))
    loss.backward()
    dL_dh, _ = bptt_by_hand()
    for t in range(1, len(XS) + 1):
        assert hs[t].grad == pytest.approx(dL_dh[t], rel=1e-12)

        def bumped(delta, t=t):
            return float_loss(W, bump_at=t, bump=delta)

        assert hs[t].grad == pytest.approx(central_difference(bumped, (0.0,), 0), rel=1e-7, abs=1e-9)


# --- accumulation across backward calls ------------------------------------------------------


def all_grads(root):
    return {node: node.grad for node in topological_order(root)}


def test_second_backward_doubles_every_gradient():
    a, b = Value(-4.0), Value(2.0)
    g = readme_example(a, b)
    g.backward()
    first = all_grads(g)
    assert len(first) > 20 and sum(1 for n in first if not n.is_leaf) > 15
    g.backward()
    for node, grad in all_grads(g).items():
        # A leaf adds this pass's contributions one by one onto the old sum, so the
        # rounding may differ from 2 * old in the last bit.
        assert grad == pytest.approx(2 * first[node], rel=1e-15), node


def test_reset_by_assigning_zero():
    a, b = Value(-4.0), Value(2.0)
    g = readme_example(a, b)
    g.backward()
    first = all_grads(g)
    for node in first:
        node.grad = 0.0
    g.backward()
    assert all_grads(g) == first


def test_zeroing_only_the_leaves_gives_them_one_pass():
    # What an optimizer's zero_grad does: intermediates keep their old gradients, yet
    # they must not flow into the leaves a second time.
    a, b = Value(-4.0), Value(2.0)
    g = readme_example(a, b)
    g.backward()
    first = all_grads(g)
    a.grad = b.grad = 0.0
    g.backward()
    assert (a.grad, b.grad) == (first[a], first[b])


# --- behaviour at the edges -------------------------------------------------------------------


def test_repr_is_short_and_shows_data_and_grad():
    x = Value(2.5)
    y = x * x
    y.backward()
    assert repr(x) == "Value(data=2.5, grad=5)"
    assert "data=6.25" in repr(y) and "grad=1" in repr(y)
    assert len(repr(Value(1 / 3, label="h"))) < 60


def test_math_functions_on_a_value_are_refused_rather_than_cut_the_graph():
    # math.tanh(x) * x gave dL/dx = tanh(x) = 0.462 at 0.5, not 0.855: math.tanh took the
    # float of x, and the product's gradient alone came back (micrograd refuses it too)
    x = Value(0.5)
    for f in (math.tanh, math.exp, math.log, float):
        with pytest.raises(TypeError, match=r"a Value is not converted to a float implicitly \(got leaf 0\.5\): "
                                            r"math\.tanh\(v\), math\.exp\(v\) .* Use the Value's own ops "
                                            r"\(v\.tanh\(\)"):
            f(x)
    y = x.tanh() * x
    y.backward()
    assert x.grad == pytest.approx(math.tanh(0.5) + 0.5 * (1 - math.tanh(0.5) ** 2), rel=1e-15)
    assert x.item() == x.data == 0.5


def test_numpy_scalars():
    for x in (3, np.float32(0.5), np.int64(-2), np.array(1.25)):
        v = Value(x)
        assert type(v.data) is float and v.data == float(x)


def test_relu_derivative_at_zero_is_zero():
    x = Value(0.0)
    y = x.relu()
    y.backward()
    assert y.data == 0.0 and x.grad == 0.0


@pytest.mark.parametrize("x, s", [(-1000.0, 0.0), (1000.0, 1.0)])
def test_sigmoid_is_stable_at_large_inputs(x, s):
    v = Value(x)  # 1 / (1 + exp(1000)) would overflow
    y = v.sigmoid()
    y.backward()
    assert y.data == s and v.grad == 0.0


@pytest.mark.parametrize("x", [-30.0, -700.0])
def test_sigmoid_is_accurate_far_left(x):
    v = Value(x)
    y = v.sigmoid()
    y.backward()
    e = math.exp(x)
    assert y.data == pytest.approx(e / (1 + e), rel=1e-15)
    assert v.grad == pytest.approx(e / (1 + e) ** 2, rel=1e-14)


@pytest.mark.parametrize("x", [1000.0, -1000.0])
def test_tanh_saturates(x):
    v = Value(x)
    y = v.tanh()
    y.backward()
    assert y.data == math.copysign(1.0, x) and v.grad == 0.0


def test_overflow_and_division_by_zero_give_inf():
    big = Value(1000.0)
    y = big.exp()
    y.backward()
    assert y.data == math.inf and big.grad == math.inf
    assert (1 / Value(0.0)).data == math.inf
    assert (Value(0.0) ** -1).data == math.inf
    assert (-1 / Value(0.0)).data == -math.inf
    assert (Value(1e200) ** 2).data == math.inf
    assert (Value(1e200) * 1e200).data == math.inf


def test_division_by_a_number_zero_gives_inf_as_by_a_value_zero():
    # Python's 0.0 ** -1 raises; the engine's arithmetic is IEEE's, whatever holds the zero.
    for zero in (0.0, 0, Value(0.0)):
        x = Value(1.0)
        y = x / zero
        y.backward()
        assert y.data == math.inf and x.grad == math.inf
    assert (Value(-2.0) / 0.0).data == -math.inf and math.isnan((Value(0.0) / 0).data)


def test_huge_integers_are_refused_with_their_size():
    # str() refuses ints of more than 4300 digits, so the message cannot quote them.
    for x, digits in ((10**400, 401), (-(10**5000), 5001)):
        with pytest.raises(ValueError, match=f"Value: an integer of about {digits} digits is too large for a float"):
            Value(x)


def test_clip_passes_the_gradient_where_the_input_is_not_limited_boundaries_included():
    # As the Tensor op: y = clip(x, -1, 1) has dy/dx = 1 for -1 <= x <= 1, else 0.
    for x, value, slope in ((-2.0, -1.0, 0.0), (-1.0, -1.0, 1.0), (0.0, 0.0, 1.0), (1.0, 1.0, 1.0), (2.0, 1.0, 0.0)):
        v = Value(x)
        y = v.clip(-1.0, 1.0) * 3.0
        y.backward()
        assert (y.data, v.grad) == (3.0 * value, 3.0 * slope)


@pytest.mark.parametrize("low, high", [(1.0, 0.0), (math.nan, 1.0), (0.0, math.nan)])
def test_clip_needs_low_at_most_high_and_no_nan(low, high):
    with pytest.raises(ValueError, match=f"clip: needs numbers low <= high, got low={low}, high={high}"):
        Value(0.5).clip(low, high)


def test_subclasses_of_value_are_values():
    class Named(Value):
        pass

    a, b = Named(2.0), Named(3.0)
    y = a * b - a / b + 1.0
    y.backward()
    assert y.data == pytest.approx(6.0 - 2.0 / 3.0 + 1.0, rel=1e-15)
    assert a.grad == pytest.approx(3.0 - 1.0 / 3.0, rel=1e-15) and b.grad == pytest.approx(2.0 + 2.0 / 9.0, rel=1e-15)
    a.note = "kept by copies"
    import copy

    assert copy.copy(a).note == "kept by copies" and type(copy.deepcopy(a)) is Named


def test_the_power_rule_keeps_its_sign_for_huge_even_exponents():
    # From 2**53 on, p - 1 rounds to an even float: (-1)**(p-1) must still be -1.
    for p in (float(2**53), float(-(2**53)), float(2**53 + 2), 1e20, -1e20):  # 2**53 - 1 is exact
        x = Value(-1.0)
        (x**p).backward()
        assert x.grad == -p


def test_repr_with_a_gradient_set_to_none_by_hand():
    v = Value(3.0)
    v.grad = None
    assert repr(v) == "Value(data=3, grad=None)"


def test_sqrt_at_zero_has_infinite_derivative():
    x = Value(0.0)
    y = x**0.5
    y.backward()
    assert y.data == 0.0 and x.grad == math.inf


@pytest.mark.parametrize("fn", [
    lambda x: x + 1, lambda x: x * 2, lambda x: x**2, lambda x: x.exp(), lambda x: x.log(),
    lambda x: x.tanh(), lambda x: x.sigmoid(), lambda x: 2**x, lambda x: 1 / x,
], ids=["add", "mul", "pow", "exp", "log", "tanh", "sigmoid", "rpow", "div"])
def test_nan_propagates(fn):
    assert math.isnan(fn(Value(math.nan)).data)


def test_inf_minus_inf_is_nan():
    x = Value(math.inf)
    assert math.isnan((x - x).data)
    assert math.isnan((x * 0).data)


def test_relu_propagates_nan():
    # NaN must not turn into a number silently: max(nan, 0) is nan in IEEE arithmetic,
    # numpy and micrograd.
    assert math.isnan(Value(math.nan).relu().data)


def test_power_zero_has_zero_derivative_at_zero():
    # x ** 0 is the constant 1, so its derivative is 0 everywhere, 0 included
    # (a polynomial sum(c_k * x ** k) evaluated at x = 0 hits this).
    x = Value(0.0)
    y = x**0
    y.backward()
    assert y.data == 1.0 and x.grad == 0.0


# --- bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize("data, name", [
    ("a", "str"), (None, "NoneType"), ([1], "list"), (True, "bool"), (1 + 2j, "complex"),
    (Value(1.0), "Value"),
])
def test_value_rejects_non_real_data(data, name):
    with pytest.raises(TypeError, match=rf"Value expects a real number.*got {name}: {re.escape(repr(data))}"):
        Value(data)


def test_operand_errors_name_the_op_and_the_type():
    x = Value(2.0)
    with pytest.raises(TypeError, match=r"Value \+ x .*got str: 'x'"):
        x + "x"
    with pytest.raises(TypeError, match=r"Value \+ x .*got str: 'x'"):
        "x" + x
    with pytest.raises(TypeError, match=r"Value \* x .*got NoneType"):
        x * None
    with pytest.raises(TypeError, match=r"^Value - x expects a real number \(int or float\), got str: 'x'$"):
        x - "x"
    with pytest.raises(TypeError, match=r"^x - Value expects a real number \(int or float\), got str: 'x'$"):
        "x" - x
    with pytest.raises(TypeError, match=r"^Value / x expects a real number \(int or float\), got list: \[1.0\]$"):
        x / [1.0]
    with pytest.raises(TypeError, match=r"^x / Value expects a real number \(int or float\), got list: \[1.0\]$"):
        [1.0] / x
    with pytest.raises(TypeError, match=r"Value \*\* p .*got bool"):
        x**True


def test_power_errors():
    with pytest.raises(TypeError, match=r"Value \*\* Value is not supported.*leaf 3"):
        Value(2.0) ** Value(3.0)
    with pytest.raises(ValueError, match=r"Value \*\* 0.5: a negative base \(-8.0\) needs an integer"):
        Value(-8) ** 0.5
    for base in (-2, 0):
        with pytest.raises(ValueError, match=rf"{float(base)} \*\* Value: the base must be positive"):
            base ** Value(1.0)


@pytest.mark.parametrize("x", [0.0, -0.0, -1.5])
def test_log_of_non_positive(x):
    with pytest.raises(ValueError, match=rf"log expects a positive input, got {x}"):
        Value(x).log()


def test_backward_errors():
    with no_grad():
        y = Value(2.0) * 3
    with pytest.raises(RuntimeError, match=r"backward\(\) from constant 6.*no_grad"):
        y.backward()
    z = Value(2.0) * 3
    for seed, name in [("1", "str"), ([1.0], "list"), (True, "bool")]:
        with pytest.raises(TypeError, match=rf"backward\(\) seed expects a real number.*got {name}"):
            z.backward(seed)


def test_gradcheck_agrees_on_the_readme_example():
    gradcheck(readme_example, [Value(-4.0), Value(2.0)])


# --- a Value-only program does not load numpy ---------------------------------------------

VALUE_ONLY = """
import sys
from autograd import Value, gradcheck, no_grad, scope
x = Value(2.0)
y = (x * x + 1.0).tanh() * x.exp() + x ** 3 - 1 / x
y.backward()
loaded = ",".join(m for m in ("numpy", "graphviz") if m in sys.modules) or "none"
big = Value(1000.0).exp()  # overflow: IEEE inf, from the rare fallback that loads numpy
print(loaded, y.data, x.grad, big.data)
"""


def test_a_value_only_program_does_not_import_numpy_or_graphviz():
    out = subprocess.run([sys.executable, "-c", VALUE_ONLY], capture_output=True, text=True, check=True)
    loaded, data, grad, big = out.stdout.rsplit(maxsplit=3)
    t = math.tanh(5.0)
    assert loaded == "none"
    assert float(data) == pytest.approx(t * math.exp(2.0) + 8.0 - 0.5, rel=1e-15)
    assert float(grad) == pytest.approx((1 - t * t) * 4.0 * math.exp(2.0) + t * math.exp(2.0) + 12.0 + 0.25,
                                        rel=1e-14)
    assert big == "inf"


def test_the_rest_of_the_engine_loads_on_first_use():
    import autograd
    import autograd.tensor
    import autograd.viz

    assert autograd.Tensor is autograd.tensor.Tensor and "draw_graph" in dir(autograd)
    from autograd import draw_graph, stack

    assert draw_graph is autograd.viz.draw_graph and stack is autograd.tensor.stack

    with pytest.raises(AttributeError, match="module 'autograd' has no attribute 'Tensr'"):
        autograd.Tensr  # noqa: B018


def test_numpy_arrays_still_apply_value_ops_entrywise():
    v = Value(2.0)
    out = v * np.array([1.0, 3.0])
    assert out.dtype == object and [e.data for e in out] == [2.0, 6.0]
    out = np.array([1.0, 3.0]) + v
    assert [e.data for e in out] == [3.0, 5.0]


def test_item_gives_the_number_as_a_tensor_s_does():
    loss = (Value(1.5) * 2.0).tanh()
    assert loss.item() == loss.data == math.tanh(3.0) and type(loss.item()) is float


@pytest.mark.parametrize("a, b", [(1e-160, 1e-160), (0.0, 1e-160), (1e-300, 1e-300), (1e160, 1e160),
                                  (1e300, 1e300), (3.0, 7.0)])
def test_a_divisors_gradient_holds_far_into_the_float_range(a, b):
    # b**-2 overflows from |b| < 1e-154 on and is subnormal past 1e154: d(a/b)/db came out
    # -inf, NaN or 1e-5 off, where -a/b² = -(a/b)/b is a normal float (PyTorch's numbers)
    x, y = Value(a), Value(b)
    (x / y).backward()
    assert y.grad == pytest.approx(-(a / b) / b, rel=1e-15, abs=0)
    assert x.grad == pytest.approx(1 / b, rel=1e-15, abs=0)
    z = Value(a if a else 1.0)
    (z / z).backward()
    assert z.grad == pytest.approx(0.0, abs=1e-300 if a else 0)  # d(z/z)/dz = 0


def test_anomaly_mode_does_not_blame_a_number_operand_for_its_gradient():
    # (x / 1e100) * w: the constant 1e-100 takes the gradient 1e200 * 1e150 = inf, which
    # nothing reads; every real gradient is finite
    x, w = Value(1e200, "x"), Value(1e150, "w")
    with detect_anomaly():
        loss = (x / 1e100) * w
        loss.backward()
    assert (x.grad, w.grad) == (pytest.approx(1e50, rel=1e-15), pytest.approx(1e100, rel=1e-15))
    with detect_anomaly(), pytest.raises(AnomalyError, match="gave input 0 a non-finite gradient inf"):
        x, w, v = Value(1e-200, "x"), Value(1e200, "w"), Value(1e200, "v")
        ((x * w) * v).backward()  # dL/dx = w v overflows on a real input: still caught


def test_an_ordering_comparison_of_values_says_to_compare_the_numbers():
    a, b = Value(1.0), Value(2.0)
    for compare, symbol in [(lambda: a > 0, ">"), (lambda: a <= b, "<="), (lambda: max(a, b), ">"),
                            (lambda: sorted([b, a]), "<")]:
        with pytest.raises(TypeError, match=rf"^{re.escape(symbol)} on a Value is not an op .* compare the "
                                            rf"numbers, v\.data {re.escape(symbol)} x$"):
            compare()
    assert max([a, b], key=lambda v: v.data) is b  # the way it says



def test_a_powers_gradient_keeps_its_digits_where_only_the_power_is_subnormal():
    # the fallback for a subnormal x**(p - 1) took x**p / x, which had lost more digits
    x = Value(1e-15)
    (x**21.55).backward()
    assert x.grad == pytest.approx(21.55 * 1e-15**20.55, rel=1e-14, abs=0)
    y = Value(1e-12)
    (y**26.7).backward()
    assert y.grad == pytest.approx(26.7 * 1e-12**25.7, rel=1e-14, abs=0)


@pytest.mark.parametrize("x, p, c", [(1e103, -2.0, 1e200), (1e-103, -2.0, 1e-200), (1e78, -3.0, 1e200),
                                     (1e-62, -4.5, 1e-250)])
def test_a_powers_gradient_where_only_x_to_the_p_minus_1_leaves_the_normal_range(x, p, c):
    # x**(p - 1) is subnormal or overflows while x**p is normal: d(c x**p)/dx is taken as
    # c p x**p / x, a normal float here. (A divisor's p = -1 cannot tell p from 1/p: these can.)
    def normal(e):
        try:
            return sys.float_info.min <= abs(x**e) < math.inf
        except OverflowError:
            return False

    assert normal(p) and not normal(p - 1)  # the case the fallback is for
    v = Value(x)
    (c * v**p).backward()
    want = c * p * x**p / x
    assert sys.float_info.min <= abs(want) < math.inf
    assert v.grad == pytest.approx(want, rel=1e-14, abs=0)


def test_anomaly_mode_lets_a_number_operand_take_gradients_over_two_passes():
    x, w = Value(1e200, "x"), Value(1e150, "w")
    with detect_anomaly():
        loss = (x / 1e100) * w
        loss.backward()
        loss.backward()  # the constant's inf + inf: still nothing reads it
    assert x.grad == pytest.approx(2e50, rel=1e-15)


def test_a_comparison_with_an_object_that_knows_how_is_left_to_it():
    class Bound:
        def __init__(self, v):
            self.v = v

        def __gt__(self, other):
            return self.v > other.data

    assert (Value(1.0) < Bound(2.0)) is True  # Python asks Bound.__gt__ once Value declines
