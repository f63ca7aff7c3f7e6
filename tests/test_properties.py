"""Properties of random expression graphs (hypothesis): backward agrees with central
differences, and a Value computes exactly what plain floats compute."""

import math

from hypothesis import assume, given
from hypothesis import strategies as st

from autograd import Value, gradcheck

from .cases import Float

# Ops on one or two earlier nodes, each defined on all reals and smooth there. The
# `exact` ones do the same IEEE operations on a Value as on a float.
OPS = {
    "add": (lambda a, b: a + b, True),
    "sub": (lambda a, b: a - b, True),
    "mul": (lambda a, b: a * b, True),
    "scale": (lambda a, b: 0.5 * a - 1.25, True),
    "square": (lambda a, b: a**2, True),
    "cube": (lambda a, b: a**3, True),
    "tanh": (lambda a, b: a.tanh(), True),
    "exp_tanh": (lambda a, b: a.tanh().exp(), True),
    "log_square_plus_1": (lambda a, b: (a * a + 1).log(), True),
    "sigmoid": (lambda a, b: b.sigmoid() * a, False),
    "div": (lambda a, b: a / (b * b + 1), False),
    "rpow": (lambda a, b: 2 ** a.tanh(), False),
}
EXACT_OPS = [name for name, (_, exact) in OPS.items() if exact]


@st.composite
def graphs(draw, op_names=tuple(OPS)):
    """Leaf values and a list of (op, i, j): op applied to nodes i and j built before it."""
    leaves = draw(st.lists(st.floats(-2, 2), min_size=1, max_size=3))
    steps = []
    for k in range(draw(st.integers(1, 10))):
        n = len(leaves) + k
        op = draw(st.sampled_from(op_names))
        steps.append((op, draw(st.integers(0, n - 1)), draw(st.integers(0, n - 1))))
    return leaves, steps


def evaluate(steps, *leaves):
    """The graph on any engine; the output sums every op node so that each one matters."""
    nodes = list(leaves)
    for name, i, j in steps:
        nodes.append(OPS[name][0](nodes[i], nodes[j]))
    return sum(nodes[len(leaves):]), nodes


@given(graphs())
def test_backward_matches_central_differences(graph):
    leaves, steps = graph
    inputs = [Value(x) for x in leaves]
    out, nodes = evaluate(steps, *inputs)
    # Keep the graph where finite differences with eps = 1e-6 are accurate.
    assume(all(abs(n.data) < 1e4 for n in nodes))
    report = gradcheck(lambda *xs: evaluate(steps, *xs)[0], inputs, eps=1e-6, atol=1e-6, rtol=1e-5)
    assert report.ok


@given(graphs(op_names=tuple(EXACT_OPS)))
def test_value_computes_what_floats_compute(graph):
    leaves, steps = graph
    out, nodes = evaluate(steps, *map(Value, leaves))
    expected, expected_nodes = evaluate(steps, *map(Float, leaves))
    for node, x in zip(nodes, expected_nodes):
        assert node.data == x or (math.isnan(node.data) and math.isnan(x))
    assert out.data == expected


@given(graphs(), st.integers(-4, 4), st.booleans())
def test_gradients_are_linear_in_the_seed(graph, power, negative):
    # A power-of-two seed scales every product and sum of the backward pass exactly.
    seed = (-1.0 if negative else 1.0) * 2.0**power
    leaves, steps = graph
    once = [Value(x) for x in leaves]
    evaluate(steps, *once)[0].backward()
    scaled = [Value(x) for x in leaves]
    evaluate(steps, *scaled)[0].backward(seed)
    for a, b in zip(once, scaled):
        assert b.grad == seed * a.grad
