"""Properties of random expressions (hypothesis): a Tensor computes what the scalar
engine computes entry by entry, values and gradients, and both agree with central
differences.

The Value side runs the same expression on numpy object arrays of ``Value``s, so numpy
supplies broadcasting, indexing, matmul and reductions as plain loops over scalar ops:
an implementation written independently of the Tensor primitives. The two engines need
not agree bit for bit (numpy's exp, log and tanh may differ from the math module's by an
ulp, and sums are taken in a different order), so values and gradients are compared to
1e-12, relative to the size of the numbers involved.
"""

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from autograd import Tensor, Value, concat, gradcheck, stack

RTOL = 1e-12


# --- the two engines behind one interface ----------------------------------------------------


class TensorEngine:
    @staticmethod
    def leaf(x):
        return Tensor(x, requires_grad=True)

    @staticmethod
    def call(x, name, *args, **kwargs):
        return getattr(x, name)(*args, **kwargs)

    stack, concat = staticmethod(stack), staticmethod(concat)

    @staticmethod
    def softmax(x, axis):
        return x.softmax(axis=axis)

    @staticmethod
    def log_softmax(x, axis):
        return x.log_softmax(axis=axis)

    @staticmethod
    def total(x):
        return x.sum()

    @staticmethod
    def node(x):
        return x

    @staticmethod
    def view(x):
        return x

    @staticmethod
    def data(x):
        return x.data

    @staticmethod
    def grad(x):
        return np.zeros(x.shape) if x.grad is None else x.grad


class ValueEngine:
    """Object arrays of Values; softmax written out as exp(z) / sum(exp(z))."""

    @staticmethod
    def leaf(x):
        return np.vectorize(Value, otypes=[object])(x)

    @staticmethod
    def call(x, name, *args, **kwargs):
        if name in ("reshape", "transpose"):
            return getattr(x, name)(*args, **kwargs)
        return np.vectorize(lambda v: getattr(v, name)(*args, **kwargs), otypes=[object])(x)

    @staticmethod
    def stack(xs, axis=0):
        return np.stack(xs, axis=axis)

    @staticmethod
    def concat(xs, axis=0):
        return np.concatenate(xs, axis=axis)

    @staticmethod
    def softmax(x, axis):
        e = ValueEngine.call(x, "exp")
        return e / e.sum(axis=axis, keepdims=True)

    @staticmethod
    def log_softmax(x, axis):
        return x - ValueEngine.call(ValueEngine.call(x, "exp").sum(axis=axis, keepdims=True), "log")

    @staticmethod
    def total(x):
        return np.sum(np.asarray(x, dtype=object))

    @staticmethod
    def node(x):
        """numpy's arithmetic on 0-d object arrays gives a bare Value; hold it in a 0-d
        array again, so that the array's operators (which broadcast) come first."""
        return np.asarray(x, dtype=object)

    @staticmethod
    def view(x):
        """A Tensor's view (reshape, index) is a node of its own; an object array's view
        holds the same Values, so copy them into nodes of their own to compare gradients."""
        return np.vectorize(lambda v: v + 0.0, otypes=[object])(x)

    @staticmethod
    def data(x):
        return np.vectorize(lambda v: v.data, otypes=[float])(x)

    @staticmethod
    def grad(x):
        return np.vectorize(lambda v: v.grad, otypes=[float])(x)


def mean(E, x, axis):
    if E is TensorEngine:
        return x.mean(axis=axis, keepdims=True)
    return x.sum(axis=axis, keepdims=True) / x.shape[axis]


def close(actual, expected, what):
    """Equal to RTOL, relative to the largest number compared (sums may cancel)."""
    expected = np.asarray(expected, dtype=float)
    scale = max(1.0, float(np.max(np.abs(expected), initial=0.0)))
    np.testing.assert_allclose(actual, expected, rtol=RTOL, atol=RTOL * scale, err_msg=what)


# --- elementwise expression DAGs over broadcasting leaves -----------------------------------

# Ops on two earlier nodes, each smooth on all of its inputs' range.
ELEMENTWISE = {
    "add": lambda E, a, b: a + b,
    "sub": lambda E, a, b: a - b,
    "mul": lambda E, a, b: a * b,
    "scale": lambda E, a, b: 0.5 * a - 1.25,
    "square": lambda E, a, b: a**2,
    "cube": lambda E, a, b: a**3,
    "tanh": lambda E, a, b: E.call(a, "tanh"),
    "exp_tanh": lambda E, a, b: E.call(E.call(a, "tanh"), "exp"),
    "log_square_plus_1": lambda E, a, b: E.call(a * a + 1, "log"),
    "sigmoid": lambda E, a, b: E.call(b, "sigmoid") * a,
    "div": lambda E, a, b: a / (b * b + 1),
    "rdiv": lambda E, a, b: 2.0 / (a * a + 0.5),
    "sqrt": lambda E, a, b: (a * a + 1) ** 0.5,
    "inverse_power": lambda E, a, b: (b * b + 1) ** -1.5,
}

# Shapes that broadcast to (2, 3) together.
LEAF_SHAPES = [(2, 3), (3,), (2, 1), (1, 3), ()]


ALL_ELEMENTWISE = tuple(sorted(ELEMENTWISE))
# Ops that do the same IEEE operations on both engines. NOTE: not x ** 3: numpy's power on
# arrays has its own vectorised code (AVX-512 here), which differs from the C library's pow
# that Value calls in the last bit for about 3% of inputs. (x ** 2 is x * x on both sides.)
EXACT = ("add", "sub", "mul", "scale", "square")


@st.composite
def elementwise_graphs(draw, op_names=ALL_ELEMENTWISE):
    shapes = draw(st.lists(st.sampled_from(LEAF_SHAPES), min_size=1, max_size=3))
    leaves = [draw(hnp.arrays(np.float64, s, elements=st.floats(-2, 2))) for s in shapes]
    steps = []
    for k in range(draw(st.integers(1, 8))):
        n = len(leaves) + k
        steps.append((draw(st.sampled_from(op_names)), draw(st.integers(0, n - 1)),
                      draw(st.integers(0, n - 1))))
    return leaves, steps


def evaluate(E, steps, *leaves):
    """The DAG on engine E; the output sums every op node so that each one matters."""
    nodes = list(leaves)
    for name, i, j in steps:
        nodes.append(E.node(ELEMENTWISE[name](E, nodes[i], nodes[j])))
    ops = nodes[len(leaves):]
    total = E.total(ops[0])
    for node in ops[1:]:
        total = total + E.total(node)
    return total, nodes


def compare_engines(build, leaves):
    """Run ``build(E, *leaf_nodes)`` on both engines; check that every node's value and
    gradient agree. Returns the Tensor leaves and the Tensor output."""
    t_leaves = [TensorEngine.leaf(x) for x in leaves]
    v_leaves = [ValueEngine.leaf(x) for x in leaves]
    t_out, t_nodes = build(TensorEngine, *t_leaves)
    v_out, v_nodes = build(ValueEngine, *v_leaves)
    assume(all(np.all(np.abs(t.data) < 1e3) for t in t_nodes))
    for k, (t, v) in enumerate(zip(t_nodes, v_nodes)):
        assert t.shape == np.shape(v)
        close(t.data, ValueEngine.data(v), f"value of node {k}")
    close(t_out.data, v_out.data, "value of the output")
    t_out.backward()
    v_out.backward()
    for k, (t, v) in enumerate(zip(t_nodes, v_nodes)):
        close(TensorEngine.grad(t), ValueEngine.grad(v), f"gradient of node {k}")
    return t_leaves, t_out


@given(elementwise_graphs())
def test_tensor_matches_values_on_elementwise_graphs(graph):
    leaves, steps = graph
    t_leaves, _ = compare_engines(lambda E, *xs: evaluate(E, steps, *xs), leaves)
    gradcheck(lambda *xs: evaluate(TensorEngine, steps, *xs)[0], t_leaves, atol=1e-6, rtol=1e-5)


@given(elementwise_graphs(op_names=EXACT))
def test_tensor_computes_what_values_compute_bit_for_bit(graph):
    leaves, steps = graph
    _, t_nodes = evaluate(TensorEngine, steps, *map(TensorEngine.leaf, leaves))
    _, v_nodes = evaluate(ValueEngine, steps, *map(ValueEngine.leaf, leaves))
    for t, v in zip(t_nodes, v_nodes):
        np.testing.assert_array_equal(t.data, ValueEngine.data(v))


@given(elementwise_graphs(), st.integers(0, 4), st.booleans())
def test_gradient_is_linear_in_the_seed(graph, power, negative):
    # Scaling the seed by a power of two scales every product and sum of the backward
    # pass exactly (scaling up, so that no subnormal number loses bits).
    seed = (-1.0 if negative else 1.0) * 2.0**power
    leaves, steps = graph
    once = [TensorEngine.leaf(x) for x in leaves]
    out, nodes = evaluate(TensorEngine, steps, *once)
    assume(all(np.all(np.abs(n.data) < 1e2) for n in nodes))
    out.backward()
    # A subnormal gradient has already lost bits, so doubling the seed may round it differently.
    tiny = np.finfo(np.float64).tiny
    assume(all(np.all((n.grad == 0) | (np.abs(n.grad) >= tiny)) for n in nodes if n.grad is not None))
    scaled = [TensorEngine.leaf(x) for x in leaves]
    evaluate(TensorEngine, steps, *scaled)[0].backward(seed)
    for a, b in zip(once, scaled):
        np.testing.assert_array_equal(TensorEngine.grad(b), seed * TensorEngine.grad(a))


# --- pipelines of array ops: matmul, reductions, shape ops, indexing, joining ----------------

def recurrence(E, x, W, b, p):
    """x's rows as the steps of a sequence, h_k = tanh(x_k + h_{k-1} W), the states stacked."""
    n = x.shape[0]
    steps = E.call(x, "reshape", n, 1, n)
    h, states = steps[p % n] * 0.5, []
    for k in range(n):
        h = E.call(steps[k] + h @ W, "tanh")
        states.append(h)
    return E.view(E.call(E.stack(states, axis=0), "reshape", n, n))


# Each step maps an (n, n) node to an (n, n) node, using the leaf weights W (n, n) and b (n,).
PIPELINE = {
    "matmul": lambda E, x, W, b, p: x @ W,
    "matmul_left": lambda E, x, W, b, p: W.T @ x,
    "bias": lambda E, x, W, b, p: x + b,
    "tanh": lambda E, x, W, b, p: E.call(x, "tanh"),
    "sigmoid": lambda E, x, W, b, p: E.call(x, "sigmoid"),
    "softmax_rows": lambda E, x, W, b, p: E.softmax(x, -1),
    "softmax_columns": lambda E, x, W, b, p: E.softmax(x, 0),
    "log_softmax": lambda E, x, W, b, p: E.log_softmax(x, p % 2) * 0.25,
    "centre": lambda E, x, W, b, p: x - mean(E, x, p % 2),
    "row_sums": lambda E, x, W, b, p: x * x.sum(axis=1, keepdims=True) * 0.1,
    "transpose": lambda E, x, W, b, p: E.call(x, "transpose", *[(), (1, 0)][p % 2]) * W,
    "reverse": lambda E, x, W, b, p: E.view(E.call(E.call(x, "reshape", -1)[::-1], "reshape", x.shape)),
    "gather_rows": lambda E, x, W, b, p: E.view(x[[(p + k * k) % x.shape[0] for k in range(x.shape[0])]]),
    # every row read once by an integer index, in a rotated order, and one again from the end
    "rows": lambda E, x, W, b, p: E.stack([x[(p + k) % len(x)] * float(k + 1) for k in range(len(x))], axis=0)
    + x[-1 - p % 2] * 0.5,
    "recurrence": recurrence,
    "stack": lambda E, x, W, b, p: E.stack([x, x * W, b * x], axis=p % 3).sum(axis=p % 3) * 0.5,
    "concat": lambda E, x, W, b, p: E.concat([x * 0.5, x * W], axis=-1)[:, p % 2::2] + E.concat([x, W], axis=-2)[1::2],
}


@st.composite
def pipelines(draw, op):
    """Leaf arrays x, W (n, n) and b (n,), and a few steps, one of which is ``op``."""
    n = draw(st.integers(2, 3))
    arrays = [draw(hnp.arrays(np.float64, shape, elements=st.floats(-1.5, 1.5))) for shape in ((n, n), (n, n), (n,))]
    step = st.tuples(st.sampled_from(sorted(PIPELINE)), st.integers(0, 11))
    steps = draw(st.lists(step, max_size=4))
    steps.insert(draw(st.integers(0, len(steps))), (op, draw(st.integers(0, 11))))
    return arrays, steps


def run_pipeline(E, steps, x, W, b):
    nodes = [x]
    for name, p in steps:
        nodes.append(PIPELINE[name](E, nodes[-1], W, b, p))
    return E.total(nodes[-1] * nodes[-1]) + E.total(nodes[1]), [x, W, b] + nodes[1:]


@pytest.mark.parametrize("op", sorted(PIPELINE))
@given(data=st.data())
def test_tensor_matches_values_on_array_pipelines(op, data):
    arrays, steps = data.draw(pipelines(op))
    t_leaves, _ = compare_engines(lambda E, *xs: run_pipeline(E, steps, *xs), arrays)
    gradcheck(lambda *xs: run_pipeline(TensorEngine, steps, *xs)[0], t_leaves, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("op", ["matmul", "recurrence"])
@given(data=st.data())
def test_kept_weight_products_match_values_on_array_pipelines(op, data):
    # Every weight gradient of a 2-D product kept as its pairs (autograd.tensor._Products),
    # whatever its size: mixed with the other kinds of gradient W receives, and, in a
    # recurrence, multiplied out as one product over the stacked states.
    import autograd.tensor as tensor_module

    arrays, steps = data.draw(pipelines(op))
    keep = tensor_module._KEEP_BYTES
    tensor_module._KEEP_BYTES = 0
    try:
        compare_engines(lambda E, *xs: run_pipeline(E, steps, *xs), arrays)
    finally:
        tensor_module._KEEP_BYTES = keep


@given(hnp.arrays(np.float64, st.tuples(st.integers(1, 3), st.integers(1, 4)), elements=st.floats(-50, 50)),
       st.sampled_from([None, 0, 1, -1, (0, 1)]), st.booleans())
def test_reductions_match_values(x, axis, keepdims):
    # sum and mean on object arrays of Values are sequential scalar additions (and the
    # sum of one entry is that entry itself, hence the view).
    def build(E, x):
        s = E.view(x.sum(axis=axis, keepdims=keepdims))
        if E is TensorEngine:
            m = x.mean(axis=axis, keepdims=keepdims)
        else:
            count = x.size if axis is None else np.prod([x.shape[a] for a in np.atleast_1d(axis)])
            m = x.sum(axis=axis, keepdims=keepdims) / float(count)
        return E.total(s * m), [x, s, m]

    compare_engines(build, [x])


@given(hnp.arrays(np.float64, st.tuples(st.integers(1, 3), st.integers(1, 4)), elements=st.floats(-30, 30)),
       st.integers(0, 1))
def test_max_gradient_splits_between_ties(x, axis):
    # Rounding to integers makes ties common; the gradient of a max goes to the entries
    # equal to it, shared equally, so each group of ties gets exactly the seed in total.
    x = np.round(x / 10.0)
    t = TensorEngine.leaf(x)
    seed = np.arange(1.0, x.shape[1 - axis] + 1.0)
    t.max(axis=axis).backward(seed)
    winners = x == x.max(axis=axis, keepdims=True)
    expected = winners * np.expand_dims(seed, axis) / winners.sum(axis=axis, keepdims=True)
    np.testing.assert_array_equal(t.grad, expected)
    np.testing.assert_allclose(t.grad.sum(axis=axis), seed, rtol=1e-15)
