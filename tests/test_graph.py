"""The graph core: traversal, recording state (no_grad, scope) and anomaly detection."""

import copy
import gc
import math
import pickle
import random
import sys
import tracemalloc

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import nn
from autograd import (
    AnomalyError,
    Tensor,
    Value,
    backward,
    current_scope,
    detect_anomaly,
    enable_grad,
    is_anomaly_enabled,
    is_grad_enabled,
    no_grad,
    scope,
    stack,
    topological_order,
)
from autograd.graph import NOT_RECORDED, Node, Op, _Pass, record

# --- traversal ------------------------------------------------------------------------------


def test_million_op_chain_under_the_default_recursion_limit():
    limit = sys.getrecursionlimit()
    n, c = 1_000_000, 1.0000001
    x0, rate = Value(1.0), Value(c)
    # Building two million objects triggers many full garbage collections; they are what
    # would make this test slow, not the engine.
    gc.disable()
    try:
        x = x0
        for _ in range(n):
            x = x * rate  # x_n = x0 * c^n
        x.backward()
    finally:
        gc.enable()
    assert sys.getrecursionlimit() == limit
    assert x.grad == 1.0
    assert x0.grad == pytest.approx(c**n, rel=1e-9)  # one rounding per step
    assert rate.grad == pytest.approx(n * c ** (n - 1), rel=1e-9)
    assert x.data == pytest.approx(c**n, rel=1e-9)


def random_graph(rng, n_leaves=4, n_ops=60):
    """A random DAG of Values: each op takes one or two earlier nodes."""
    nodes = [Value(rng.uniform(-1, 1), label=f"x{i}") for i in range(n_leaves)]
    for _ in range(n_ops):
        a, b = rng.choice(nodes), rng.choice(nodes)
        op = rng.randrange(4)
        nodes.append(a + b if op == 0 else a * b if op == 1 else a.tanh() if op == 2 else a - 0.5)
    return nodes


def reachable(root):
    """Every node root depends on, root included (a plain depth-first search)."""
    found, stack = {root}, [root]
    while stack:
        for parent in stack.pop()._prev:
            if parent not in found:
                found.add(parent)
                stack.append(parent)
    return found


def test_topological_order_of_something_that_is_not_a_node_says_so():
    with pytest.raises(TypeError, match=r"^topological_order\(\) expects Values or Tensors \(any number of them\), "
                                        r"got int$"):
        topological_order(3)
    with pytest.raises(TypeError, match=r"got list: pass them unpacked, topological_order\(\*nodes\)$"):
        topological_order([Value(1.0)])
    assert topological_order() == []


@pytest.mark.parametrize("seed", range(5))
def test_topological_order_puts_every_node_after_its_parents(seed):
    nodes = random_graph(random.Random(seed))
    root = nodes[-1] + nodes[-7] * nodes[len(nodes) // 2]
    order = topological_order(root)
    position = {node: i for i, node in enumerate(order)}
    assert len(position) == len(order)  # each node once
    assert set(order) == reachable(root)
    assert order[-1] is root
    for node in order:
        for parent in node._prev:
            assert position[parent] < position[node]


def test_topological_order_of_a_leaf_and_of_a_diamond():
    x = Value(1.0)
    assert topological_order(x) == [x]
    left, right = x * 2, x.tanh()
    top = left + right
    order = topological_order(top)
    assert order[0] is x and order[-1] is top and len(order) == 5  # x, 2, left, right, top


def reference_backward(root):
    """Backward the plain way, for comparison: every node in topological order, reversed."""
    order = topological_order(root)
    for node in order:
        node.grad = type(node)._EMPTY_GRAD
    root.grad = 1.0 if isinstance(root, Value) else np.ones_like(root.data)
    for node in reversed(order):
        if node._op and node._op is not NOT_RECORDED and node.grad is not type(node)._EMPTY_GRAD:
            node._op.backward(node)
    return [node.grad for node in order]


def gapped_graph(rng, n_ops=40, gap=0.3):
    """A random graph of Values with unrelated nodes created between its nodes (so that its
    creation numbers have gaps), some of them long runs."""
    unrelated = []
    nodes = [Value(rng.uniform(-1, 1)) for _ in range(3)]
    for _ in range(n_ops):
        while rng.random() < gap:
            unrelated.append(Value(0.0) * 2.0)
        a, b = rng.choice(nodes), rng.choice(nodes[-6:])
        op = rng.randrange(3)
        nodes.append(a * b if op == 0 else a + b.tanh() if op == 1 else (a - 0.5).relu())
    return sum(nodes[3:]), unrelated


@pytest.mark.parametrize("reach", [1, 3, 16, _Pass.REACH])
@pytest.mark.parametrize("seed", range(8))
def test_backward_runs_nodes_newest_first_whatever_the_gaps_in_creation_order(monkeypatch, reach, seed):
    # A small reach makes every gap "far": the pass then works in many short stretches.
    monkeypatch.setattr(_Pass, "REACH", reach)
    root, _ = gapped_graph(random.Random(seed))
    root.backward()
    ours = [node.grad for node in topological_order(root)]
    assert ours == reference_backward(root)  # the same sums in the same order: equal to the bit


@given(st.integers(0, 10**6), st.integers(1, 8))
def test_tensor_graphs_with_many_input_ops_and_gaps(seed, reach):
    rng = np.random.default_rng(seed)
    pass_reach = _Pass.REACH
    _Pass.REACH = reach
    try:
        x = Tensor(rng.standard_normal((3, 2)), requires_grad=True)
        parts = []
        for _ in range(int(rng.integers(2, 6))):
            for _ in range(int(rng.integers(0, 4))):
                Tensor(1.0) * 2.0  # unrelated nodes: gaps in the creation order
            parts.append((x * float(rng.uniform(-1, 1))).tanh())
        y = stack(parts, axis=1) * x[:, None, :]
        root = (y * y).sum() + parts[0].sum()
        root.backward()
        ours = [None if n.grad is None else n.grad.copy() for n in topological_order(root)]
        expected = reference_backward(root)
    finally:
        _Pass.REACH = pass_reach
    for a, b in zip(ours, expected):
        assert (a is None and b is None) or np.array_equal(a, b)


def test_a_node_made_long_before_the_rest_of_its_graph():
    # x * 2 is created, then a hundred thousand unrelated nodes, then the rest of the graph:
    # the pass reaches x * 2 far behind the others, and must not queue the gap in between.
    x = Value(1.5, label="x")
    old = x * 2.0
    unrelated = [Value(0.0) for _ in range(100_000)]
    y = (old * old).tanh() + x * 3.0
    tracemalloc.start()
    y.backward()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    t = math.tanh(9.0)  # (2x)^2 at x = 1.5
    assert x.grad == pytest.approx((1 - t * t) * 8 * 1.5 + 3.0, rel=1e-15)
    assert old.grad == pytest.approx((1 - t * t) * 2 * 3.0, rel=1e-15)
    assert peak < 100_000  # a queue over the gap would take 800 kB
    assert all(v.grad is Value._EMPTY_GRAD for v in unrelated)  # the gap was never visited


def test_a_sparse_graph_gets_short_queues(monkeypatch):
    # Ten unrelated nodes between any two of the graph's: a queue over the whole span would
    # be 90% empty, so the pass works in stretches that are at least a quarter full.
    monkeypatch.setattr(_Pass, "REACH", 64)
    lengths = []
    finish = _Pass.finish
    monkeypatch.setattr(_Pass, "finish", lambda self, *a: (lengths.extend(map(len, self.queues)), finish(self, *a)))
    x, w = Value(0.3), Value(0.9)
    y, unrelated = x, []
    for _ in range(2000):
        unrelated += [Value(0.0) for _ in range(10)]
        y = (y * w).tanh()
    y.backward()
    assert sum(lengths) <= 4 * 4000 + 64 * len(lengths)
    assert [n.grad for n in topological_order(y)] == reference_backward(y)


@pytest.mark.parametrize("how", ["deepcopy", "pickle"])
def test_copies_of_a_graph_are_new_nodes_that_run_with_the_originals(how):
    x = Value(0.5, label="x")
    h = (x * x + x).tanh()
    h_copy = copy.deepcopy(h) if how == "deepcopy" else pickle.loads(pickle.dumps(h))
    (x_copy,) = {n for n in topological_order(h_copy) if n.label == "x"}
    assert x_copy is not x and h_copy._id > h._id  # made after the original graph
    loss = h * 2.0 + h_copy * 3.0
    loss.backward()
    d = (1 - math.tanh(0.75) ** 2) * (2 * 0.5 + 1)
    assert x.grad == pytest.approx(2 * d, rel=1e-15) and x_copy.grad == pytest.approx(3 * d, rel=1e-15)
    assert [n.grad for n in topological_order(loss)] == reference_backward(loss)
    order = topological_order(loss)
    assert all(p._id < n._id for n in order for p in n._prev)


def test_old_nodes_found_in_creation_order_keep_the_pass_linear(monkeypatch):
    # 20,000 nodes made first, then used newest-last: backward meets each of them far behind
    # the end of its queue, the oldest first. Each is sent to wait for the next stretch; how
    # full the queue is must not be counted again for each of them (that was quadratic).
    counts = []
    count = _Pass.count_filled

    def counting(self):
        n = count(self)
        counts.append(self.requests == 0)  # True where the queue was counted just now
        return n

    monkeypatch.setattr(_Pass, "count_filled", counting)
    n = 20_000
    w = Value(1.0)
    early = [w * 2.0 for _ in range(n)]
    loss = sum(b * 3.0 for b in reversed(early))
    loss.backward()
    assert w.grad == 6.0 * n and all(b.grad == 3.0 for b in early)
    assert len(counts) > n // 2  # the pattern does ask, once for nearly every early node
    assert sum(counts) <= 40  # ... but the queue was counted at most a few dozen times


def test_nodes_far_apart_among_many_others_keep_the_pass_linear(monkeypatch):
    # Each use of x lies 100 creation numbers after the last (thrown-away work in between),
    # farther than the reach: every node waits, and the pass takes one stretch per node. A
    # stretch takes only the waiting nodes that fit it; going over all of them at every
    # stretch was quadratic (3.2 s for 64,000 such nodes, against 0.29 s now).
    monkeypatch.setattr(_Pass, "REACH", 16)
    calls = []
    place = _Pass.place
    monkeypatch.setattr(_Pass, "place", lambda self, node, k: (calls.append(k), place(self, node, k))[1])
    n = 2_000
    x = Value(1.0)
    uses = []
    for _ in range(n):
        uses.append(x * 2.0)
        for _ in range(99):
            x * 3.0
    total = sum(uses)
    total.backward()
    assert x.grad == 2.0 * n and all(u.grad == 1.0 for u in uses)
    assert len(calls) <= 3 * n  # about twice per node: found, then taken by its stretch (was about n**2 / 2)


@pytest.mark.parametrize("kind", ["value", "tensor"])
def test_deepcopy_of_a_graph_far_deeper_than_the_recursion_limit(kind):
    # Python's copy descends from node to parent: it stopped at about 140 ops deep
    x = Value(0.5, "x") if kind == "value" else Tensor([0.5, 1.5], requires_grad=True, label="x")
    z = x
    for _ in range(3000):
        z = (z * 1.0001).tanh() if kind == "tensor" else z * 1.0001 + 0.0
    x_copy, z_copy = copy.deepcopy((x, z))
    out = z_copy if kind == "value" else z_copy.sum()
    out.backward()
    (z if kind == "value" else z.sum()).backward()
    assert x_copy is not x and x_copy.label == "x"
    np.testing.assert_array_equal(x_copy.grad, x.grad)
    np.testing.assert_array_equal(z_copy.data, z.data)


def test_deepcopy_of_many_outputs_of_one_graph_copies_each_node_once(monkeypatch):
    # each output walks only the nodes not copied yet: no walk of the whole graph per output
    import nn

    out, _ = nn.RNN(2, 3, engine="value", seed=0)(np.ones((4, 1, 2)))
    made = []
    restore = Node.__setstate__
    monkeypatch.setattr(Node, "__setstate__", lambda self, state: (made.append(1), restore(self, state))[1])
    dup = copy.deepcopy(out)
    assert len(made) == len(topological_order(*out.ravel()))
    assert all(a.data == b.data and a is not b for a, b in zip(dup.ravel(), out.ravel()))


class Tagged(Value):
    """A Value with a private slot of its own (stored as _Tagged__tag)."""

    __slots__ = ("__tag",)

    def tag(self, value=None):
        if value is not None:
            self.__tag = value
        return self.__tag


@pytest.mark.parametrize("how", ["deepcopy", "copy", "pickle"])
def test_a_copy_keeps_a_subclass_s_private_slots(how):
    v = Tagged(2.0)
    v.tag("hi")
    dup = {"deepcopy": copy.deepcopy, "copy": copy.copy, "pickle": lambda c: pickle.loads(pickle.dumps(c))}[how](v)
    assert dup.tag() == "hi" and dup.data == 2.0 and dup is not v


@pytest.mark.parametrize("how", ["deepcopy", "copy", "pickle"])
def test_a_copy_of_a_no_grad_result_is_still_a_constant(how):
    with no_grad():
        c = Value(2.0) * 3.0
    dup = {"deepcopy": copy.deepcopy, "copy": copy.copy, "pickle": lambda c: pickle.loads(pickle.dumps(c))}[how](c)
    assert dup._op is NOT_RECORDED
    with pytest.raises(RuntimeError, match="it is not the output of a recorded graph"):
        dup.backward()


@pytest.mark.parametrize("how", ["deepcopy", "copy", "pickle"])
def test_a_copy_keeps_not_reached_apart_from_a_zero_gradient(how):
    # "Not reached yet" is one particular 0.0 object on a Value (optimizers skip such
    # parameters); a pickle would give back another 0.0, which reads as reached.
    dup = {"deepcopy": copy.deepcopy, "copy": copy.copy, "pickle": lambda n: pickle.loads(pickle.dumps(n))}[how]
    fresh, reached = Value(1.0), Value(-1.0)
    reached.relu().backward()  # relu is off: reached, with a gradient of 0
    assert dup(fresh).grad is Value._EMPTY_GRAD
    copied = dup(reached)
    assert copied.grad == 0.0 and copied.grad is not Value._EMPTY_GRAD
    t = Tensor([1.0], requires_grad=True)
    assert dup(t).grad is None


def test_an_unpickled_model_steps_only_the_parameters_backward_reached():
    model = pickle.loads(pickle.dumps(nn.Linear(2, 1, engine="value", seed=0)))
    b = model.b[0].data
    opt = nn.optim.SGD(model.parameters(), lr=0.1, weight_decay=0.5)
    (model.W[0, 0] * 1.0 + model.W[1, 0] * 2.0).backward()  # the bias is not used
    W = [model.W[0, 0].data, model.W[1, 0].data]
    opt.step()
    assert model.b[0].data == b
    assert [model.W[0, 0].data, model.W[1, 0].data] == [w - 0.1 * (g + 0.5 * w) for w, g in zip(W, [1.0, 2.0])]


@pytest.mark.parametrize("how", ["deepcopy", "pickle"])
def test_tensor_graphs_copy_and_pickle_and_run(how):
    # The ops' backward functions are closures; a copy finds each op again by name. An op
    # with three or more inputs (stack, addmm) marks its parents by identity, also in a copy.
    x = Tensor([[0.5, -1.0]], requires_grad=True)
    W = Tensor([[0.3], [0.2]], requires_grad=True)
    loss = stack([(x @ W).tanh(), x @ W, x @ W * 2.0]).sum()
    dup = copy.deepcopy(loss) if how == "deepcopy" else pickle.loads(pickle.dumps(loss))
    assert dup.parents[0]._op is loss.parents[0]._op
    dup.backward()
    x_dup, W_dup = (n for n in topological_order(dup) if n.is_leaf and n.requires_grad)
    z = 0.5 * 0.3 - 0.2
    np.testing.assert_allclose(W_dup.grad, [[0.5 * (1 - math.tanh(z) ** 2 + 3)], [-1.0 * (1 - math.tanh(z) ** 2 + 3)]],
                               rtol=1e-15)
    assert x.grad is None and W.grad is None  # the originals are untouched


@pytest.mark.parametrize("op", ["tanh", "sigmoid", "relu", "exp"])
def test_an_unpickled_graph_of_large_arrays_runs_backward(op):
    # numpy unpickles an array of 128 entries or more as a view of the bytes it read: its
    # base is not an array (the ops whose VJP looks for a shared stack read it)
    x = Tensor(np.linspace(-1.0, 1.0, 1000), requires_grad=True)
    loss = getattr(x * 1.0, op)().sum()
    dup = pickle.loads(pickle.dumps(loss))
    assert type(next(n for n in topological_order(dup) if n.op == op).data.base) is not np.ndarray
    dup.backward()
    loss.backward()
    x_dup = next(n for n in topological_order(dup) if n.is_leaf and n.requires_grad)
    np.testing.assert_array_equal(x_dup.grad, x.grad)


def test_a_scope_object_may_be_entered_again_inside_itself():
    s = scope("a")
    with s:
        with s:
            assert current_scope() == ("a", "a")
        assert current_scope() == ("a",)
    assert current_scope() == ()


@pytest.mark.parametrize("engine", ["value", "tensor"])
def test_a_gradient_of_the_wrong_kind_set_by_hand_is_named_and_nothing_changes(engine):
    # Adding this pass's gradients to those already there fails for b (set to something that
    # cannot be added to). The error names b, and no gradient changes, a's included.
    if engine == "value":
        a, b, c = Value(2.0, label="a"), Value(3.0, label="b"), Value(5.0, label="c")
        bad, error = None, TypeError
    else:
        a, b, c = (Tensor([v], requires_grad=True, label=n) for v, n in ((2.0, "a"), (3.0, "b"), (5.0, "c")))
        bad, error = np.zeros((2, 2)), ValueError
    y = c * a + a * b
    (y.sum() if engine == "tensor" else y).backward()
    b.grad, c.grad = bad, (100.0 if engine == "value" else np.array([100.0]))
    before = [a.grad, b.grad, c.grad]
    reset = "the Value's grad to 0.0" if engine == "value" else "the Tensor's grad to None"  # its kind's own
    with pytest.raises(error, match=r"backward\(\): cannot add this pass's gradient of b .* to the one it already "
                                    rf"had.*Reset gradients with zero_grad\(\), or set {reset}$"):
        (y.sum() if engine == "tensor" else y).backward()
    for node, old in zip((a, b, c), before):
        assert node.grad is old
    if engine == "tensor":  # 0.0, a Value's reset, is not a Tensor's: the error names the Tensor's
        b.grad = 0.0
        with pytest.raises(ValueError, match=r"got float of shape \(\)\). .*or set the Tensor's grad to None$"):
            y.sum().backward()


def test_anomaly_catches_an_overflow_when_a_pass_adds_to_earlier_gradients():
    x = Value(1.0)
    y = x * 1e308
    y.backward()
    with detect_anomaly(), pytest.raises(AnomalyError, match="gives a non-finite gradient inf"):
        y.backward()  # 1e308 + 1e308
    assert x.grad == 1e308  # the failed pass was undone


def _failing_backward(op, out):
    raise RuntimeError("this op's backward fails")


FAILS = Op("fails", _failing_backward)


@pytest.mark.parametrize("engine", ["value", "tensor"])
def test_a_pass_that_raises_leaves_every_gradient_as_it_was(engine):
    if engine == "value":
        a, b = Value(2.0), Value(3.0)
        copy = float
    else:
        a, b = Tensor([2.0, -1.0], requires_grad=True), Tensor([3.0, 0.5], requires_grad=True)
        copy = np.copy
    h = a * b
    first = (h * a).sum() if engine == "tensor" else h * a
    first.backward()
    nodes = topological_order(first)
    before = [copy(n.grad) for n in nodes]
    bad = record(type(h)(h.data), (h,), FAILS)
    if engine == "tensor":
        bad.requires_grad = True
    loss = (bad + h * a).sum() if engine == "tensor" else bad + h * a
    with pytest.raises(RuntimeError, match="this op's backward fails"):
        loss.backward()  # h * a runs first and adds into h and a, then `fails` raises
    for node, old in zip(nodes, before):
        assert np.array_equal(node.grad, old)
    assert bad.grad is type(bad)._EMPTY_GRAD


def test_backward_from_a_leaf_seeds_it_only():
    x = Value(2.0)
    x.backward()
    x.backward(0.5)
    assert x.grad == 1.5


def test_node_structure_accessors():
    x = Value(2.0, label="x")
    y = x.tanh()
    assert (x.is_leaf, x.op, x.parents, x.label) == (True, "", (), "x")
    assert (y.is_leaf, y.op, y.parents, y.label) == (False, "tanh", (x,), "")
    assert type(y.op) is str and y.parents == y._prev


def test_backward_rejects_non_nodes():
    with pytest.raises(TypeError, match="backward.*expects a Value or Tensor, got float"):
        backward(1.0)


# --- no_grad / enable_grad ------------------------------------------------------------------


def test_no_grad_results_are_constants():
    x = Value(2.0)
    with no_grad():
        assert not is_grad_enabled()
        y = x * 3 + 1
        z = y.tanh()
    assert is_grad_enabled()
    assert y.data == 7.0 and z.data == math.tanh(7.0)
    assert y._prev == () and y.is_leaf and y.op == "" and z._prev == ()


def test_no_grad_constant_blocks_gradient():
    x = Value(2.0)
    with no_grad():
        c = x * x  # a number computed from x, but not differentiated through
    y = x * c
    y.backward()
    assert x.grad == c.data == 4.0


def test_grad_mode_is_restored_after_an_exception():
    with pytest.raises(ValueError):
        with no_grad():
            Value(-1.0).log()
    assert is_grad_enabled()
    assert (Value(1.0) * 2)._prev != ()


def test_enable_grad_inside_no_grad():
    x = Value(2.0)
    with no_grad():
        with enable_grad():
            assert is_grad_enabled()
            y = x * 3
            with no_grad():
                z = x * 3
        assert not is_grad_enabled()
    assert y._prev[0] is x and z._prev == ()
    y.backward()
    assert x.grad == 3.0


def test_no_grad_as_a_decorator():
    @no_grad()
    def evaluate(x):
        return x * 2

    x = Value(1.0)
    assert evaluate(x)._prev == () and evaluate(x)._prev == ()
    assert is_grad_enabled()


def test_a_no_grad_object_can_be_entered_again_also_inside_itself():
    off = no_grad()
    x = Value(1.0)
    for _ in range(2):
        with off:
            with off:
                assert (x * 2)._prev == ()
            assert not is_grad_enabled() and (x * 2)._prev == ()
        assert is_grad_enabled() and (x * 2)._prev[0] is x


def test_settings_nest_in_any_order_and_restore_on_errors():
    on, checks = enable_grad(), detect_anomaly()
    with no_grad():
        with checks:
            with on:
                assert is_grad_enabled() and is_anomaly_enabled()
                with pytest.raises(AnomalyError):
                    Value(float("inf")) * 1.0
            assert not is_grad_enabled() and is_anomaly_enabled()
        assert not is_anomaly_enabled()
    assert is_grad_enabled() and not is_anomaly_enabled()
    assert repr(on) == "enable_grad()" and repr(checks) == "detect_anomaly()" and repr(no_grad()) == "no_grad()"


def test_a_decorated_function_may_call_itself_and_keeps_its_name():
    @no_grad()
    def depth(x, n):
        """Doc."""
        assert not is_grad_enabled()
        return x * 1.0 if n == 0 else depth(x, n - 1)

    assert depth(Value(1.0), 3)._prev == () and is_grad_enabled()
    assert depth.__name__ == "depth" and depth.__doc__ == "Doc."
    with pytest.raises(TypeError, match=r"no_grad\(\) decorates a function, got int"):
        no_grad()(3)


def test_a_decorated_generator_runs_its_body_under_the_setting_and_the_caller_outside_it():
    x = Value(2.0)
    seen = []

    @no_grad()
    def steps(n):
        for _ in range(n):
            sent = yield (x * 3.0)._prev == ()
            seen.append((sent, is_grad_enabled()))
        return "done"

    g = steps(2)
    assert next(g) is True and is_grad_enabled() and (x * 3.0)._prev[0] is x  # the caller records
    assert g.send("a") is True and is_grad_enabled()
    with pytest.raises(StopIteration) as end:
        g.send("b")
    assert end.value.value == "done" and seen == [("a", False), ("b", False)]

    @no_grad()
    def catching():
        try:
            yield 1
        except KeyError:
            yield is_grad_enabled()

    g = catching()
    next(g)
    assert g.throw(KeyError("k")) is False and is_grad_enabled()
    g.close()
    assert is_grad_enabled() and list(steps(3)) == [True, True, True]


# --- scope ----------------------------------------------------------------------------------


def test_scopes_nest_and_tag_nodes():
    x = Value(1.0)
    assert current_scope() == () and x.scope == ()
    with scope("layer 0"):
        w = Value(0.5)
        with scope("t=3"):
            assert current_scope() == ("layer 0", "t=3")
            y = w * x
        z = y + 1
    assert current_scope() == ()
    assert w.scope == ("layer 0",)
    assert y.scope == ("layer 0", "t=3") and y._prev[1].scope == ()
    assert z.scope == ("layer 0",) and z._prev[1].scope == ("layer 0",)  # the constant 1


def test_scope_is_restored_after_an_exception():
    with scope("outer"):
        with pytest.raises(ValueError):
            with scope("inner"):
                Value(-1.0).log()
        assert current_scope() == ("outer",)
    assert current_scope() == ()


def test_scope_rejects_non_str_names():
    with pytest.raises(TypeError, match="scope.*expects a str name, got int"):
        with scope(3):
            pass
    assert current_scope() == ()


def test_scope_under_no_grad_still_tags():
    with scope("eval"), no_grad():
        y = Value(1.0) + 1
    assert y.scope == ("eval",)


# --- detect_anomaly ---------------------------------------------------------------------------


def test_anomaly_in_forward_names_op_scope_and_inputs():
    x = Value(1000.0, label="logit")
    with detect_anomaly(), scope("layer 0"), scope("t=2"):
        assert is_anomaly_enabled()
        with pytest.raises(AnomalyError) as info:
            x.exp()
    message = str(info.value)
    assert "op 'exp' produced a non-finite value inf" in message
    assert "scope: layer 0/t=2" in message
    assert "input 0: logit 1000" in message
    assert not is_anomaly_enabled()
    assert isinstance(info.value, FloatingPointError)


def test_anomaly_zero_times_inf():
    zero, big = Value(0.0, label="a"), Value(math.inf, label="b")  # leaves are not checked
    expected = r"(?s)op '\*' .* nan.*scope: <top level>.*input 0: a 0.*input 1: b inf"
    with detect_anomaly(), pytest.raises(AnomalyError, match=expected):
        zero * big


def test_anomaly_division_by_zero():
    with detect_anomaly(), pytest.raises(AnomalyError, match=r"op '\*\*-1' produced a non-finite value inf"):
        1 / Value(0.0)


@pytest.mark.parametrize("divisor", [0.0, -0.0, 0, 1e-320])
def test_anomaly_names_the_division_by_a_number_whose_inverse_is_not_finite(divisor):
    # x / y is x * (1/y): the error names '/', not '*' and a constant 1/y never written
    x = Value(2.0, label="x")
    with detect_anomaly(), scope("t=1"), pytest.raises(AnomalyError) as info:
        x / divisor
    y = repr(float(divisor))
    assert str(info.value) == f"op '/' divides x 2 by {y}: 1/{y} is not finite\n  scope: t=1"
    assert (x / divisor).data == math.copysign(math.inf, divisor)  # outside it: IEEE's answer


def test_anomaly_in_backward_names_op_and_scope():
    # sqrt at 0: the value (0) is finite, its derivative is not.
    x = Value(0.0, label="x")
    with detect_anomaly():
        with scope("t=2"):
            y = x**0.5
            loss = y * 3
        assert loss.data == 0.0
        with pytest.raises(AnomalyError) as info:
            loss.backward()
    message = str(info.value)
    assert "backward of op '**0.5' gave input 0 a non-finite gradient inf" in message
    assert "scope: t=2" in message and "input 0: x 0" in message


def test_anomaly_rejects_a_non_finite_seed():
    y = Value(2.0) * 3
    with detect_anomaly(), pytest.raises(AnomalyError, match="seed gradient is not finite: nan"):
        y.backward(math.nan)


def test_no_anomaly_error_outside_the_context():
    x = Value(0.0)
    y = x**0.5 * 3
    y.backward()
    assert x.grad == math.inf
    assert Value(1000.0).exp().data == math.inf


def test_anomaly_mode_changes_no_number():
    def run():
        w, h = Value(0.7), Value(-0.3)
        for x in (0.5, -1.0, 2.0):
            h = (w * h + x).tanh().sigmoid() + (h * h + 1).log()
        h.backward()
        return h.data, w.grad

    plain = run()
    with detect_anomaly():
        checked = run()
    assert checked == plain


def test_topological_order_of_several_roots_lists_shared_nodes_once():
    x = Value(0.5, "x")
    shared = x * 3.0
    y, z = shared.tanh(), shared + x
    order = topological_order(y, z, y)
    assert len(order) == len(set(order)) == len(set(topological_order(y)) | set(topological_order(z)))
    position = {node: i for i, node in enumerate(order)}
    for node in order:
        assert all(position[p] < position[node] for p in node._prev)


def test_backward_from_a_result_of_inputs_that_need_no_gradient_says_so():
    with pytest.raises(RuntimeError, match=r"it is not the output of a recorded graph \(none of its inputs requires "
                                           r"a gradient, or it was computed under no_grad\(\), or detached\)"):
        (Tensor([1.0]) * 2).sum().backward()


def test_a_gradient_set_by_hand_that_numpy_cannot_add_to_names_the_node():
    a = Tensor([[1.0, 2.0]], requires_grad=True, label="a")
    y = (a * 2.0).sum()
    y.backward()
    a.grad = np.array([["1", "1"]])  # strings: numpy refuses to add floats to them
    with pytest.raises(TypeError, match=r"backward\(\): cannot add this pass's gradient of a .* to the one it "
                                        r"already had"):
        y.backward()
    np.testing.assert_array_equal(a.grad, [["1", "1"]])


@pytest.mark.parametrize("dtype", [np.float32, np.int64])
def test_a_gradient_set_by_hand_in_another_dtype_sums_in_the_tensors_own(dtype):
    # the sum was made in the dtype set by hand: a float64 leaf's gradients went on in float32
    a = Tensor([[1.0, 2.0]], requires_grad=True)
    y = (a / 3.0).sum()
    a.grad = np.array([[0.1, 2.0]]).astype(dtype)  # 0.1 in float32 is 0.10000000149...
    before = a.grad.astype(np.float64)
    y.backward()
    assert a.grad.dtype == np.float64
    np.testing.assert_array_equal(a.grad, before + 1 / 3)


@pytest.mark.parametrize("make", [lambda: Value(1.0, label=5), lambda: Tensor(1.0, label=["a"])])
def test_a_label_must_be_a_string(make):
    # drawings and messages print it; a number or a list failed only there, later
    with pytest.raises(TypeError, match="a node's label must be a str, got (int: 5|list: \\['a'\\])"):
        make()
    node = Value(1.0)
    with pytest.raises(TypeError, match="a node's label must be a str, got NoneType"):
        node.label = None
