"""Code written for micrograd runs unchanged on autograd.Value, with the same numbers."""

import importlib.util
import random
import types

import graphviz
import micrograd.engine
import micrograd.nn
import pytest

import autograd
from autograd import Value

# Ops micrograd's engine supports, written once for both engines; divisors and roots
# are kept positive so that random expressions stay finite.
OPS = [
    lambda a, b: a + b,
    lambda a, b: a - b,
    lambda a, b: a * b,
    lambda a, b: a / (b * b + 1),
    lambda a, b: -a,
    lambda a, b: a.relu(),
    lambda a, b: a**2,
    lambda a, b: (a * a + 1) ** 0.5,
    lambda a, b: (b * b + 0.5) ** -1.5,
    lambda a, b: 2.5 - a,
    lambda a, b: 1.5 + a,
    lambda a, b: 0.5 * a,
    lambda a, b: a / 3,
    lambda a, b: 3 / (a * a + 1),
]


def random_expression(engine, seed, n_leaves=3, n_ops=15):
    """Leaves and every intermediate of one random expression; the last node is the output."""
    rng = random.Random(seed)
    nodes = [engine(rng.uniform(-2, 2)) for _ in range(n_leaves)]
    for _ in range(n_ops):
        op = rng.choice(OPS)
        nodes.append(op(rng.choice(nodes), rng.choice(nodes)))
    nodes.append(sum(nodes[n_leaves:]))  # every op feeds the output
    return nodes


@pytest.mark.parametrize("seed", range(20))
def test_same_expression_same_numbers(seed):
    theirs = random_expression(micrograd.engine.Value, seed)
    ours = random_expression(Value, seed)
    theirs[-1].backward()
    ours[-1].backward()
    for mine, reference in zip(ours, theirs):
        assert mine.data == pytest.approx(reference.data, rel=1e-12, abs=1e-300)
        assert mine.grad == pytest.approx(reference.grad, rel=1e-12, abs=1e-12)
    assert any(n.grad != 0 for n in ours[:3])


@pytest.fixture
def nn_on_autograd(monkeypatch):
    """micrograd/nn.py, unmodified, with its `from micrograd.engine import Value` resolved
    to autograd's Value."""
    engine = types.ModuleType("micrograd.engine")
    engine.Value = Value
    monkeypatch.setitem(__import__("sys").modules, "micrograd.engine", engine)
    spec = importlib.util.spec_from_file_location("micrograd_nn_on_autograd", micrograd.nn.__file__)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.Value is Value
    return module


def mse(model, xs, ys):
    predictions = [model(x) for x in xs]
    return sum((out - y) ** 2 for y, out in zip(ys, predictions))


def test_micrograd_nn_runs_on_autograd(nn_on_autograd):
    xs = [[2.0, 3.0, -1.0], [3.0, -1.0, 0.5], [0.5, 1.0, 1.0], [1.0, 1.0, -1.0]]
    ys = [1.0, -1.0, -1.0, 1.0]
    random.seed(1337)
    ours = nn_on_autograd.MLP(3, [4, 4, 1])
    random.seed(1337)
    theirs = micrograd.nn.MLP(3, [4, 4, 1])
    assert all(isinstance(p, autograd.Value) for p in ours.parameters())
    assert len(ours.parameters()) == len(theirs.parameters()) == 41

    for _ in range(3):  # micrograd's training loop: forward, zero_grad, backward, step
        loss_ours, loss_theirs = mse(ours, xs, ys), mse(theirs, xs, ys)
        assert loss_ours.data == pytest.approx(loss_theirs.data, rel=1e-12)
        ours.zero_grad()
        theirs.zero_grad()
        loss_ours.backward()
        loss_theirs.backward()
        for p, q in zip(ours.parameters(), theirs.parameters()):
            assert p.grad == pytest.approx(q.grad, rel=1e-12, abs=1e-15)
            p.data -= 0.05 * p.grad
            q.data -= 0.05 * q.grad
    assert any(p.grad != 0 for p in ours.parameters())


def trace(root):
    """The graph walk from micrograd's notebooks."""
    nodes, edges = set(), set()

    def build(v):
        if v not in nodes:
            nodes.add(v)
            for child in v._prev:
                edges.add((child, v))
                build(child)

    build(root)
    return nodes, edges


def draw_dot(root):
    dot = graphviz.Digraph(format="svg", graph_attr={"rankdir": "LR"})
    nodes, edges = trace(root)
    for n in nodes:
        uid = str(id(n))
        dot.node(name=uid, label=f"{{ data {n.data:.4f} | grad {n.grad:.4f} }}", shape="record")
        if n._op:
            dot.node(name=uid + n._op, label=n._op)
            dot.edge(uid + n._op, uid)
    for n1, n2 in edges:
        dot.edge(str(id(n1)), str(id(n2)) + n2._op)
    return dot


def test_notebook_graph_tracing():
    x1, w1 = Value(2.0), Value(-3.0)
    n = x1 * w1 + 6.5  # the 6.5 becomes a constant leaf, as in micrograd
    o = n.tanh()
    o.backward()
    nodes, edges = trace(o)
    assert len(nodes) == 6 and len(edges) == 5
    assert sorted(v._op for v in nodes) == ["", "", "", "*", "+", "tanh"]
    source = draw_dot(o).source
    assert f"{id(o)}tanh" in source and f"{id(n)}+" in source
    assert f"data {o.data:.4f} | grad 1.0000" in source
    assert f"grad {(1 - o.data**2) * -3.0:.4f}" in source  # x1's gradient


def test_op_names_and_derived_ops_match_micrograd():
    a, b = Value(3.0), Value(2.0)
    assert isinstance((a + b)._op, str) and (a + b)._op == "+"
    assert (a * b)._op == "*" and (a**2)._op == "**2" and (a**-1)._op == "**-1"
    neg = -a  # a * -1
    assert neg._op == "*" and neg._prev[0] is a and neg._prev[1].data == -1.0
    div = a / b  # a * b**-1
    assert div._op == "*" and div._prev[0] is a and div._prev[1]._op == "**-1"
    sub = a - b  # a + (-b)
    assert sub._op == "+" and sub._prev[1]._op == "*" and sub._prev[1]._prev[0] is b
    shared = a + a
    assert shared._prev == (a, a)
