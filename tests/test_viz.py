"""Rendering the graph: the DOT text checked against the graph itself and hand-computed numbers.

The DOT text is read by a small parser (``parse``) into nodes (with the titles of the boxes
around them), edges and boxes; invisible layout helpers are left out.
"""

import math
import re
import xml.etree.ElementTree as ET

import numpy as np
import pytest

import nn
from autograd import Tensor, Value, draw_graph, no_grad, save_graph, scope, topological_order
from autograd.viz import GraphvizNotFoundError

# --- a small DOT parser ---------------------------------------------------------------------
ATTR = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|[^\s"\]]+)')
NODE = re.compile(r"^\s*(\w+) \[(.*)\]$")
EDGE = re.compile(r"^\s*(\w+) -> (\w+)(?: \[(.*)\])?$")


def attributes(text):
    out = {}
    for key, value in ATTR.findall(text or ""):
        if value.startswith('"'):
            value = re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), value[1:-1])
        out[key] = value
    return out


class Dot:
    """``nodes``: name -> attributes, plus ``boxes``, the titles of the boxes around the node,
    outermost first; ``edges``: (tail, head, attributes); ``boxes``: titles in source order."""

    def __init__(self, source):
        self.nodes, self.edges, self.boxes = {}, [], []
        stack, pending = [], None
        for line in source.splitlines()[1:]:
            if m := re.match(r"^\s*subgraph (cluster_\d+) \{$", line):
                pending = m.group(1)
            elif pending and (m := re.match(r"^\s*graph \[(.*)\]$", line)):
                stack.append(attributes(m.group(1))["label"])
                self.boxes.append(tuple(stack))
                pending = None
            elif line.strip() == "}":
                if stack:
                    stack.pop()
            elif "rank=same" in line or line.strip().startswith(("graph [", "node [", "edge [")):
                continue
            elif m := EDGE.match(line):
                attrs = attributes(m.group(3))
                if attrs.get("style") != "invis":
                    self.edges.append((m.group(1), m.group(2), attrs))
            elif m := NODE.match(line):
                attrs = attributes(m.group(2))
                if attrs.get("style") != "invis":
                    attrs["boxes"] = tuple(stack)
                    self.nodes[m.group(1)] = attrs

    def named(self, first_line):
        """The nodes whose label starts with the line ``first_line``."""
        return [k for k, a in self.nodes.items() if a["label"].split("\n")[0] == first_line]

    def out_edges(self, name):
        return [(t, h, a) for t, h, a in self.edges if t == name]


def parse(drawing):
    return Dot(drawing.source)


def graph_nodes(*roots):
    """Every node the roots depend on, in the order the drawing numbers them (n0, n1, ...)."""
    nodes = set()
    for r in roots:
        nodes.update(topological_order(r))
    return sorted(nodes, key=lambda v: v._id)


def graph_edges(nodes):
    return {(p, c) for c in nodes for p in c._prev}


def rnn_output(engine, num_layers=1, T=3, hidden=2, seed=0):
    rnn = nn.RNN(2, hidden, num_layers=num_layers, engine=engine, seed=seed)
    x = np.random.default_rng(seed).standard_normal((T, 1, 2))
    return rnn, rnn(x)


def flat_roots(out):
    roots = []
    for part in out:
        roots += list(part.ravel()) if isinstance(part, np.ndarray) else [part]
    return roots


# --- nodes, edges and numbering -------------------------------------------------------------
def test_node_and_edge_counts_match_the_graph_value():
    x, w = Value(2.0, "x"), Value(-3.0, "w")
    z = x * w
    y = (z * z + z).tanh() + x * x  # z used three times, x * x uses x twice
    dot = parse(draw_graph(y))
    nodes = graph_nodes(y)
    assert len(dot.nodes) == len(nodes) == 8
    assert len(dot.edges) == len(graph_edges(nodes))
    assert sorted(a.get("label", "") for _, _, a in dot.edges) == [""] * (len(dot.edges) - 2) + ["×2", "×2"]


@pytest.mark.parametrize("engine", ["tensor", "value"])
@pytest.mark.parametrize("num_layers", [1, 2])
def test_node_and_edge_counts_match_the_graph_rnn(engine, num_layers):
    _, out = rnn_output(engine, num_layers)
    drawing = draw_graph(out)
    dot = parse(drawing)
    nodes = graph_nodes(*flat_roots(out))
    assert len(dot.nodes) == len(nodes) == drawing.node_count
    assert len(dot.edges) == len(graph_edges(nodes)) == drawing.edge_count
    # every edge joins the right nodes: n<i> is the i-th node in creation order
    index = {node: i for i, node in enumerate(nodes)}
    assert {(t, h) for t, h, _ in dot.edges} == {(f"n{index[p]}", f"n{index[c]}") for p, c in graph_edges(nodes)}


def test_same_graph_gives_the_same_text():
    sources = []
    for _ in range(2):
        _, out = rnn_output("value", num_layers=2)
        sources += [draw_graph(out).source, draw_graph(out).source]
    assert len(set(sources)) == 1


# --- boxes -----------------------------------------------------------------------------------
@pytest.mark.parametrize("engine", ["tensor", "value"])
@pytest.mark.parametrize("num_layers", [1, 2])
def test_one_box_per_time_step_per_layer(engine, num_layers):
    _, out = rnn_output(engine, num_layers)
    dot = parse(draw_graph(out))
    expected = []
    for l in range(num_layers):
        expected += [(f"layer {l}",)] + [(f"layer {l}", f"t={t}") for t in (1, 2, 3)]
    assert dot.boxes == expected  # in time order, steps nested in their layer
    nodes = graph_nodes(*flat_roots(out))
    for i, node in enumerate(nodes):
        if node._prev:  # an op sits in the box of its own scope
            assert dot.nodes[f"n{i}"]["boxes"] == node._scope


@pytest.mark.parametrize("engine", ["tensor", "value"])
@pytest.mark.parametrize("num_layers", [1, 2])
def test_shared_parameters_drawn_once_outside_the_steps(engine, num_layers):
    rnn, out = rnn_output(engine, num_layers)
    dot = parse(draw_graph(out))
    for l, cell in enumerate(rnn.cells):
        entries = [cell.W_hh] if engine == "tensor" else list(cell.W_hh.ravel())
        for p in entries:
            (name,) = dot.named(p.label)  # exactly once
            node = dot.nodes[name]
            assert node["boxes"] == (f"layer {l}",)
            assert node["shape"] == "hexagon" and node["fillcolor"] == "#ffd591"
            users = dot.out_edges(name)
            assert len(users) == 3  # one use per time step
            assert sorted(dot.nodes[h]["boxes"] for _, h, _ in users) == [(f"layer {l}", f"t={t}") for t in (1, 2, 3)]
    if engine == "tensor":  # W_xh serves all steps in one fused product: a parameter, not shared
        (name,) = dot.named(rnn.cells[0].W_xh.label)
        assert dot.nodes[name]["shape"] == "box" and dot.nodes[name]["fillcolor"] == "#d6e6f5"
        assert dot.nodes[name]["boxes"] == ("layer 0",)


def test_leaf_placement_by_common_scope_of_users():
    w = Value(0.5, "w")  # used in two layers: top level
    u = Value(2.0, "u")  # used in one step only: inside it
    h = Value(1.0)
    for l in range(2):
        with scope(f"layer {l}"):
            for t in (1, 2):
                with scope(f"t={t}"):
                    h = (h * w).tanh()
                    if (l, t) == (1, 2):
                        h = h + u
    dot = parse(draw_graph(h))
    (wn,) = dot.named("w")
    (un,) = dot.named("u")
    assert dot.nodes[wn]["boxes"] == () and dot.nodes[wn]["shape"] == "hexagon"
    assert dot.nodes[un]["boxes"] == ("layer 1", "t=2") and dot.nodes[un]["shape"] == "box"
    assert len(dot.out_edges(wn)) == 4


# --- labels -----------------------------------------------------------------------------------
def test_value_labels_show_name_data_and_gradient_after_backward():
    a, b = Value(2.0, "a"), Value(-3.0, "b")
    c = a * b
    c.label = "c"
    d = c.tanh()
    before = parse(draw_graph(d))
    labels = sorted(n["label"] for n in before.nodes.values())
    assert labels == ["a\ndata 2", "b\ndata -3", "c = *\ndata -6", f"tanh\ndata {math.tanh(-6):.4g}"]
    d.backward()
    after = parse(draw_graph(d))
    dc = 1 - math.tanh(-6) ** 2
    labels = sorted(n["label"] for n in after.nodes.values())
    assert labels == [
        f"a\ndata 2\ngrad {-3 * dc:.4g}",
        f"b\ndata -3\ngrad {2 * dc:.4g}",
        f"c = *\ndata -6\ngrad {dc:.4g}",
        f"tanh\ndata {math.tanh(-6):.4g}\ngrad 1",
    ]


def test_tensor_labels_show_shape_entries_or_mean_and_range():
    W = Tensor([[1.0, 2.0, 0.5], [3.0, 4.0, -1.0]], requires_grad=True, label="W")
    x = Tensor([1.0, -1.0])
    y = x @ W  # [-2, -2, 1.5]
    s = y.sum()
    s.backward()
    dot = parse(draw_graph(s))
    (wn,) = dot.named("W")
    assert dot.nodes[wn]["label"] == "W\ndata 2×3 mean 1.583\nrange [-1, 4]\ngrad mean 0\nrange [-1, 1]"
    (yn,) = dot.named("@")
    assert dot.nodes[yn]["label"] == "@\ndata 3 [-2, -2, 1.5]\ngrad [1, 1, 1]"
    (sn,) = dot.named("sum")
    assert dot.nodes[sn]["label"] == "sum\ndata -2.5\ngrad 1"
    (xn,) = [k for k, a in dot.nodes.items() if a["label"].startswith("data")]
    assert dot.nodes[xn]["label"] == "data 2 [1, -1]" and dot.nodes[xn]["fillcolor"] == "#ececec"


def test_options_turn_parts_off():
    a, b = Value(2.0, "a"), Value(-3.0)
    c = a * b + 1.0
    c.backward()
    for option, gone in (("show_data", "data "), ("show_grad", "grad "), ("show_label", "a")):
        dot = parse(draw_graph(c, **{option: False}))
        lines = [line for n in dot.nodes.values() for line in n["label"].split("\n")]
        assert not any(line.startswith(gone) for line in lines), option
        assert len(dot.nodes) == 5
    bare = parse(draw_graph(c, show_data=False, show_grad=False, show_label=False))
    assert sorted(n["label"] for n in bare.nodes.values()) == ["*", "+", "constant", "constant", "parameter"]


def test_group_and_rankdir_options():
    _, out = rnn_output("tensor")
    flat = draw_graph(out, group=False, rankdir="TB")
    assert "cluster" not in flat.source and flat.graph_attr["rankdir"] == "TB"
    assert len(parse(flat).nodes) == len(parse(draw_graph(out)).nodes)
    with pytest.raises(ValueError, match=r"rankdir must be one of \['LR', 'TB', 'RL', 'BT'\], got 'XY'"):
        draw_graph(out, rankdir="XY")
    with pytest.raises(ValueError, match="on_overflow must be 'raise' or 'collapse', got 'ignore'"):
        draw_graph(out, on_overflow="ignore")
    with pytest.raises(ValueError, match="max_nodes must be a positive int or None, got 0"):
        draw_graph(out, max_nodes=0)


# --- roots -------------------------------------------------------------------------------------
def test_several_roots_share_their_nodes():
    x = Value(1.5, "x")
    y1, y2 = x.tanh(), x * 2.0
    for roots in ([y1, y2], (y1, y2, y1), np.array([y1, y2], dtype=object), [np.array([y1], dtype=object), y2]):
        dot = parse(draw_graph(roots))
        assert len(dot.nodes) == 4 and len(dot.edges) == 3
        outputs = [n for n in dot.nodes.values() if n["fillcolor"] == "#d9f0d3"]
        assert sorted(n["label"].split("\n")[0] for n in outputs) == ["*", "tanh"]
        assert len(dot.named("x")) == 1


def test_bad_roots_raise_clear_errors():
    with pytest.raises(TypeError, match="expects a Value, a Tensor.*got a float"):
        draw_graph(3.0)
    with pytest.raises(TypeError, match="got a numpy float64 array"):
        draw_graph(np.zeros(3))
    with pytest.raises(ValueError, match="nothing to draw"):
        draw_graph([])


# --- collapse and the size guard ----------------------------------------------------------------
@pytest.mark.parametrize("engine", ["tensor", "value"])
def test_collapse_folds_each_time_step_into_one_node(engine):
    _, out = rnn_output(engine, num_layers=2)
    full, folded = parse(draw_graph(out)), parse(draw_graph(out, collapse=True))
    steps = [b for b in full.boxes if b[-1].startswith("t=")]
    summaries = [k for k in folded.nodes if k.startswith("s")]
    assert len(summaries) == len(steps) == 6
    assert folded.boxes == [("layer 0",), ("layer 1",)]
    nodes = graph_nodes(*flat_roots(out))
    for k in summaries:
        node = folded.nodes[k]
        title = node["label"].split(":")[0]
        inside = [v for v in nodes if v._scope == node["boxes"] + (title,)]
        ops = [str(v._op) for v in inside if v._op]
        counts = ", ".join(f"{op} {ops.count(op)}" for op in dict.fromkeys(ops))
        text = node["label"].replace("\n", ", ")
        assert text.startswith(f"{title}: {len(ops)} ops, {counts}")
    # shared parameters stay, one per layer (on the value engine, one for all the entries)
    assert len(folded.named("cells.1.W_hh")) == 1


def test_collapse_labels_and_merged_edges_by_hand():
    _, out = rnn_output("tensor", num_layers=1, T=3)
    dot = parse(draw_graph(out, collapse=True))
    labels = {k: n["label"] for k, n in dot.nodes.items() if k.startswith("s")}
    ops = "getitem 1, addmm 1, tanh 1"  # addmm: X_t W_xh + b_h + H_{t-1} W_hh
    # t=1 also holds H_0 = 0; its inputs: X_1 W_xh + b_h (sliced from the fused product) and W_hh
    assert labels == {
        "s0": f"t=1: 3 ops\n{ops}\n1 leaf\nedges: 2 in, 2 out",
        "s1": f"t=2: 3 ops\n{ops}\nedges: 3 in, 2 out",
        "s2": f"t=3: 3 ops\n{ops}\nedges: 3 in, 2 out",
    }
    _, out = rnn_output("value", num_layers=1, T=3, hidden=2)
    dot = parse(draw_graph(out, collapse=True))
    between = [a.get("label") for t, h, a in dot.edges if (t, h) in (("s0", "s1"), ("s1", "s2"))]
    assert between == ["×4", "×4"]  # h_{t-1}[i] * W_hh[i, j] for i, j in 2 x 2


def test_collapse_draws_the_entries_of_a_value_engine_parameter_as_one_node():
    # Each entry of W_hh feeds every step: drawn one by one, 30 steps of 8 hidden units made
    # 2,990 edges, which dot took 398 s to lay out. One node per array: arrays x steps edges.
    T, hidden = 30, 8
    rnn, (out, h_n) = rnn_output("value", T=T, hidden=hidden)
    loss = sum(h_n.ravel())
    loss.backward()
    drawing = draw_graph(loss, collapse=True)
    dot = parse(drawing)
    weights, grads = rnn.state_dict(), rnn.grad_dict()
    steps = [f"s{k}" for k in range(T)]
    for name, uses in (("W_xh", 2 * hidden), ("W_hh", hidden * hidden), ("b_h", hidden)):
        (node,) = dot.named(f"cells.0.{name}")
        w, g = weights[f"cells.0.{name}"], grads[f"cells.0.{name}"]
        spans = ", ".join(f"0..{n - 1}" for n in w.shape)
        assert dot.nodes[node]["label"].split("\n") == [
            f"cells.0.{name}", f"{w.size} entries [{spans}]",
            f"data mean {w.mean():.4g}", f"range [{w.min():.4g}, {w.max():.4g}]",
            f"grad mean {g.mean():.4g}", f"range [{g.min():.4g}, {g.max():.4g}]"]
        assert dot.nodes[node]["shape"] == "hexagon" and dot.nodes[node]["boxes"] == ("layer 0",)
        assert sorted((h, a["label"]) for _, h, a in dot.out_edges(node)) == sorted((s, f"×{uses}") for s in steps)
    assert not [k for k, a in dot.nodes.items() if "[" in a["label"].split("\n")[0]]  # no entry is left alone
    # arrays into steps, step into step, and the sum (0 + h[0]) + h[1] ... of the last state
    assert drawing.edge_count == len(dot.edges) == 3 * T + (T - 1) + hidden + hidden
    # two arrays of one name (two cells' W_hh, side by side in one box) stay two nodes
    c1, c2 = nn.RNNCell(1, 2, engine="value", seed=0), nn.RNNCell(2, 2, engine="value", seed=1)
    h1 = h2 = None
    for t in range(3):
        with scope(f"t={t + 1}"):
            h1 = c1(np.ones((1, 1)), h1)
            h2 = c2(h1, h2)
    dot = parse(draw_graph(sum(h2.ravel()), collapse=True))
    assert [dot.nodes[k]["label"].split("\n")[1] for k in dot.named("W_hh")] == ["4 entries [0..1, 0..1]"] * 2
    assert sorted(dot.nodes[k]["label"].split("\n")[1] for k in dot.named("W_xh")) == [
        "2 entries [0, 0..1]", "4 entries [0..1, 0..1]"]  # c1's is 1 x 2
    # Tensors labelled as entries are arrays of their own: they stay apart
    xs = [Tensor(np.ones(3), requires_grad=True, label=f"x[{i}]") for i in range(2)]
    h = Tensor(np.zeros(3))
    for t in range(1, 4):
        with scope(f"t={t}"):
            h = (h + xs[0] * xs[1]).tanh()
    assert parse(draw_graph(h.sum(), collapse=True)).named("x[1]")
    # unfolded, the entries are drawn one by one, each with its own edges
    rnn, (out, h_n) = rnn_output("value", T=3, hidden=2)
    unfolded = parse(draw_graph(h_n))
    assert len([k for k, a in unfolded.nodes.items() if a["label"].startswith("cells.0.W_hh[")]) == 4


def test_the_edge_guard_refuses_a_drawing_dot_would_take_minutes_over():
    # A hand-written scalar RNN whose weights w_i_j (not w[i,j]) each feed every step: folded,
    # 20 steps of 8 units make 1,315 edges, which dot took 76 s to lay out.
    T, hidden = 20, 8
    W = [[Value(0.1 * (i - j), label=f"w_{i}_{j}") for j in range(hidden)] for i in range(hidden)]
    h = [Value(0.0) for _ in range(hidden)]
    for t in range(1, T + 1):
        with scope(f"t={t}"):
            h = [sum((W[i][j] * h[i] for i in range(hidden)), Value(0.5)).tanh() for j in range(hidden)]
    loss = sum(h)
    edges = hidden * hidden * T + (T - 1) + hidden + hidden  # weights into steps, steps, the sum
    with pytest.raises(ValueError, match=rf"even with every time step collapsed the drawing has {edges:,} edges "
                                         r".*more than max_edges=1,000; .*label the entries of one array"):
        draw_graph(loss, collapse=True)
    assert draw_graph(loss, collapse=True, max_edges=None).edge_count == edges
    unfolded_edges = len({(p, v) for v in graph_nodes(loss) for p in v._prev})
    with pytest.raises(ValueError, match=rf"the graph has {unfolded_edges:,} edges, more than max_edges=1,000; "
                                         "pass collapse=True"):
        draw_graph(loss, max_nodes=None, max_steps=None)
    with pytest.raises(ValueError, match="max_edges must be a positive int or None, got 0"):
        draw_graph(loss, max_edges=0)
    # labelled as the entries of one array, the weights are one node with an edge into each step
    for i, row in enumerate(W):
        for j, w in enumerate(row):
            w.label = f"w[{i},{j}]"
    drawing = draw_graph(loss, collapse=True)
    assert drawing.edge_count == T + (T - 1) + hidden + hidden
    assert parse(drawing).named("w") and "64 entries [0..7, 0..7]" in drawing.source


def test_size_guard_suggests_collapse_or_collapses():
    _, out = rnn_output("value", T=3)
    n = len(graph_nodes(*flat_roots(out)))
    with pytest.raises(ValueError, match=rf"the graph has {n} nodes, more than max_nodes={n - 1}; pass collapse=True"):
        draw_graph(out, max_nodes=n - 1)
    drawing = draw_graph(out, max_nodes=n - 1, on_overflow="collapse")
    assert drawing.collapsed and sum(k.startswith("s") for k in parse(drawing).nodes) == 3
    assert drawing.node_count == len(parse(drawing).nodes) < n
    with pytest.raises(ValueError, match=rf"even with every time step collapsed the drawing has {drawing.node_count} "):
        draw_graph(out, max_nodes=drawing.node_count - 1, on_overflow="collapse")
    assert not draw_graph(out, max_nodes=n).collapsed


def test_long_sequences_wrap_into_rows():
    _, out = rnn_output("tensor", T=25)
    drawing = draw_graph(out, collapse=True)
    dot = parse(drawing)
    constraint = {(t, h): a.get("constraint") for t, h, a in dot.edges if t.startswith("s") and h.startswith("s")}
    assert constraint[("s9", "s10")] == constraint[("s19", "s20")] == "false"  # into rows 2 and 3
    assert constraint[("s8", "s9")] is None and constraint[("s10", "s11")] is None
    # the k-th steps of all rows share a rank, stacked in time order (top to bottom in LR)
    assert "{rank=same; s20 -> s10 -> s0 [style=invis]}" in drawing.source
    for one_line in (draw_graph(out, collapse=True, steps_per_row=None), draw_graph(out, max_steps=None)):
        assert "rank=same" not in one_line.source and "constraint=false" not in one_line.source


def test_a_sequence_too_long_to_lay_out_unfolded_asks_to_be_collapsed():
    # dot's layout of unfolded steps grows with the square of their number (30 steps of this
    # RNN took 17 s; 100 had not finished after 590 s): past max_steps the drawing refuses, or collapses
    from autograd.viz import MAX_STEPS

    _, out = rnn_output("tensor", T=MAX_STEPS + 1)
    with pytest.raises(ValueError, match=rf"unfolds a sequence of {MAX_STEPS + 1} time steps, more than "
                                         rf"max_steps={MAX_STEPS}; .*Pass collapse=True"):
        draw_graph(out)
    assert draw_graph(out, on_overflow="collapse").collapsed
    assert draw_graph(out, collapse=True).collapsed
    assert not draw_graph(out, max_steps=None).collapsed
    assert not draw_graph(out, max_steps=MAX_STEPS + 1).collapsed
    _, short = rnn_output("tensor", T=MAX_STEPS)
    assert not draw_graph(short).collapsed
    for bad in (0, -1, 2.5, True, "24"):
        with pytest.raises(ValueError, match=rf"max_steps must be a positive int or None, got {re.escape(repr(bad))}"):
            draw_graph(short, max_steps=bad)


# --- gradient view ---------------------------------------------------------------------------------
def flow(attrs):
    return float(re.fullmatch(r"gradient passed back: (\S+)", attrs["tooltip"]).group(1))


def node_state(v):
    """Every slot of a node, by identity."""
    slots = [name for klass in type(v).__mro__ for name in getattr(klass, "__slots__", ())]
    return [(name, id(getattr(v, name, None))) for name in slots]


def test_gradient_view_edges_carry_the_vjp_contributions():
    a, b = Value(2.0, "a"), Value(-3.0, "b")
    c = a * b
    d = c.tanh()
    d.backward()
    grads = [(v, v.grad) for v in (a, b, c, d)]
    dot = parse(draw_graph(d, gradient_view=True, edge_labels=True))
    name = {v: dot.named(label)[0] for v, label in ((a, "a"), (b, "b"), (c, "*"), (d, "tanh"))}
    edges = {(t, h): attrs for t, h, attrs in dot.edges}
    assert all(attrs["dir"] == "back" for attrs in edges.values())  # arrows point to the parents
    dc = 1 - math.tanh(-6) ** 2
    expected = {(c, d): dc, (a, c): abs(dc * b.data), (b, c): abs(dc * a.data)}
    for (p, child), size in expected.items():
        attrs = edges[(name[p], name[child])]
        assert flow(attrs) == pytest.approx(size, rel=1e-5)
        assert float(attrs["xlabel"]) == pytest.approx(size, rel=1e-2)
    # the largest edge (into a) is the widest and darkest; the others are thinner on a log scale
    # over 4 decades: a k times smaller edge gets 0.5 + 4.5 (1 - log10(k) / 4)
    assert edges[(name[a], name[c])]["penwidth"] == "5.00" and edges[(name[a], name[c])]["color"] == "#8c0000"
    for p, k in ((b, 1.5), (c, 3.0)):
        width = float(edges[(name[p], name[c if p is b else d])]["penwidth"])
        assert width == pytest.approx(0.5 + 4.5 * (1 - math.log10(k) / 4), abs=0.006)
    assert all(v.grad == g for v, g in grads)  # drawing changed no gradient


def test_gradient_view_sums_both_uses_of_a_parent():
    x = Value(3.0, "x")
    y = x * x
    y.backward()
    ((_, _, attrs),) = parse(draw_graph(y, gradient_view=True)).edges
    assert attrs["label"] == "×2" and flow(attrs) == pytest.approx(6.0)


def test_gradient_view_tensor_norms_and_grads_restored_exactly():
    W = Tensor([[0.5, -1.0], [2.0, 0.25]], requires_grad=True, label="W")
    b = Tensor([0.1, -0.2], requires_grad=True, label="b")
    x = Tensor([1.0, -2.0])
    h = (x @ W + b).tanh()
    loss = (h + h * h).sum()  # h gets its gradient from an op that passes g itself on, and from *
    loss.backward()
    before = {id(v): v.grad for v in graph_nodes(loss)}
    copies = {k: None if g is None else g.copy() for k, g in before.items()}
    states = {id(v): node_state(v) for v in graph_nodes(loss)}
    dot = parse(draw_graph(loss, gradient_view=True))
    edges = {(dot.nodes[t]["label"].split("\n")[0], dot.nodes[h]["label"].split("\n")[0]): a for t, h, a in dot.edges}
    g_pre = (1 + 2 * h.data) * (1 - h.data**2)  # dloss / d(x W + b)
    assert flow(edges[("W", "@")]) == pytest.approx(np.linalg.norm(np.outer(x.data, g_pre)), rel=1e-5)
    assert flow(edges[("b", "+")]) == pytest.approx(np.linalg.norm(g_pre), rel=1e-5)
    (const,) = [a for (t, _), a in edges.items() if t == "data 2 [1, -2]"]
    assert const["style"] == "dotted"  # x takes no gradient
    for v in graph_nodes(loss):  # the same gradient objects, with the same numbers
        assert v.grad is before[id(v)]
        assert (v.grad is None) or np.array_equal(v.grad, copies[id(v)])
        assert node_state(v) == states[id(v)]  # and the bookkeeping beside them
    first = W.grad.copy()
    loss.backward()  # and the engine's bookkeeping beside them is intact: a second pass adds
    np.testing.assert_allclose(W.grad, 2 * first)


def test_gradient_view_of_rows_read_one_at_a_time():
    x = Tensor(np.ones((3, 2)), requires_grad=True, label="x")
    loss = (x[0] * 2.0).sum() + (x[2] * 3.0).sum()
    loss.backward()
    grad = x.grad
    dot = parse(draw_graph(loss, gradient_view=True))
    (xn,) = dot.named("x")
    sizes = sorted(flow(a) for _, _, a in dot.out_edges(xn))
    assert sizes == pytest.approx([2 * math.sqrt(2), 3 * math.sqrt(2)], rel=1e-5)  # |dloss/dx[i]| per read
    assert x.grad is grad and type(grad) is np.ndarray  # drawing left the gradient as it was
    np.testing.assert_array_equal(grad, [[2.0, 2.0], [0.0, 0.0], [3.0, 3.0]])


def test_gradient_view_on_an_rnn_reverses_every_edge():
    model = nn.RNNModel(2, 3, 2, mode="many_to_many", seed=0)
    x = np.random.default_rng(0).standard_normal((3, 1, 2))
    y, _ = model(x)
    loss = (y * y).sum()
    loss.backward()
    grads = {name: g.copy() for name, g in model.grad_dict().items()}
    dot = parse(draw_graph(loss, gradient_view=True))
    assert dot.edges and all(a["dir"] == "back" for _, _, a in dot.edges)
    (whh,) = dot.named("rnn.cells.0.W_hh")
    sizes = sorted(flow(a) for _, _, a in dot.out_edges(whh))
    assert sizes[0] == 0.0  # step 1 multiplies H_0 = 0
    # Each step's edge carries that step's share of dL/dW_hh: ||H_{t-1}ᵀ g_t||, where g_t is
    # the gradient of the step's addmm node (xw_t + H_{t-1} W_hh).
    W_hh = model.rnn.cells[0].W_hh
    steps = [n for n in topological_order(loss) if any(p is W_hh for p in n._prev)]
    expected = sorted(float(np.linalg.norm(n._prev[1].data.T @ n.grad)) for n in steps)
    assert len(sizes) == len(expected) == 3 and expected[1] > 0
    np.testing.assert_allclose(sizes, expected, rtol=1e-5, atol=0)  # (the tooltip prints 6 digits)
    assert all(np.array_equal(g, model.grad_dict()[name]) for name, g in grads.items())


def test_gradient_view_collapsed_merges_sizes_as_a_norm():
    _, (out, _) = rnn_output("value", T=3, hidden=2)
    loss = sum(out.ravel())
    loss.backward()
    full = parse(draw_graph(loss, gradient_view=True))
    step = {k: n["boxes"][-1] if n["boxes"] else "" for k, n in full.nodes.items()}
    between = [flow(a) for t, h, a in full.edges if (step[t], step[h]) == ("t=1", "t=2")]
    assert len(between) == 4
    folded = parse(draw_graph(loss, gradient_view=True, collapse=True))
    (attrs,) = [a for t, h, a in folded.edges if (t, h) == ("s0", "s1")]
    assert attrs["label"] == "×4" and attrs["dir"] == "back"
    assert flow(attrs) == pytest.approx(math.sqrt(sum(s * s for s in between)), rel=1e-5)
    # so do the edges of the entries of W_hh into a step: W_hh[i,j] * h_1[i] for the 4 entries
    entries = {k for k, a in full.nodes.items() if a["label"].startswith("cells.0.W_hh[")}
    into_t2 = [flow(a) for t, h, a in full.edges if t in entries and step[h] == "t=2"]
    assert len(into_t2) == 4
    (attrs,) = [a for t, h, a in folded.edges if (t, h) == (folded.named("cells.0.W_hh")[0], "s1")]
    assert flow(attrs) == pytest.approx(math.sqrt(sum(s * s for s in into_t2)), rel=1e-5)


def test_gradient_view_needs_a_backward_pass():
    y = Value(2.0) * Value(3.0)
    with pytest.raises(RuntimeError, match=r"no output \(1 given\) has a gradient yet: call backward\(\) first"):
        draw_graph(y, gradient_view=True)


# --- models ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("engine", ["tensor", "value"])
def test_model_draw_names_the_parameters(engine):
    model = nn.RNNModel(2, 2, 1, mode="many_to_many", engine=engine, seed=0)
    x = np.random.default_rng(0).standard_normal((3, 1, 2))
    with no_grad():  # draw records the graph even here
        drawing = model.draw(x, collapse=False)
    dot = parse(drawing)
    names = [n["label"].split("\n")[0] for n in dot.nodes.values()]
    for pname, p in model.named_parameters():
        expected = [pname] if engine == "tensor" else [v.label for v in p.ravel()]
        for label in expected:
            assert names.count(label) == 1, label
    y, h_n = model(x)
    assert len(dot.nodes) == len(graph_nodes(*flat_roots((y, h_n))))
    titles = set(dot.boxes)
    assert ("layer 0", "t=3") in titles and ("readout",) in titles
    if engine == "value":
        assert ("readout", "t=2") in titles


# --- files and rendering ------------------------------------------------------------------------------
def test_save_graph_each_format(tmp_path):
    _, out = rnn_output("value")
    svg = save_graph(out, tmp_path / "g.svg")
    assert svg == str(tmp_path / "g.svg")
    texts = {el.text for el in ET.parse(svg).iter() if el.text}
    assert {"t=1", "t=2", "t=3", "layer 0"} <= texts
    assert (tmp_path / "g.png").exists() is False
    assert open(save_graph(out, tmp_path / "g.png"), "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    assert open(save_graph(out, tmp_path / "g.PDF"), "rb").read(5) == b"%PDF-"
    assert open(save_graph(out, tmp_path / "g.dot")).read() == draw_graph(out).source
    drawing = draw_graph(out, collapse=True)
    assert open(save_graph(drawing, tmp_path / "c.dot")).read() == drawing.source
    with pytest.raises(TypeError, match="finished drawing and drawing options"):
        save_graph(drawing, tmp_path / "c.svg", collapse=True)
    with pytest.raises(ValueError, match=r"extension '\.jpg'; use one of \.svg, \.png, \.pdf, \.dot"):
        save_graph(out, tmp_path / "g.jpg")


def test_control_characters_in_labels_and_scopes_are_shown_as_their_escapes():
    # dot refused a NUL ("syntax error"), and wrote SVG that is not well-formed XML for others
    with scope("t\x1b=1"):
        y = Value(1.0, "a\x00b\x1b[31m\ud800 \"q\" \\ <i>") * 2
    drawing = draw_graph(y)
    dot = parse(drawing)
    assert dot.nodes["n0"]["label"].split("\n")[0] == "a\\x00b\\x1b[31m\\ud800 \"q\" \\ <i>"
    assert dot.boxes == [("t\\x1b=1",)]
    texts = {el.text for el in ET.fromstring(drawing.pipe(format="svg")).iter() if el.text}
    assert "a\\x00b\\x1b[31m\\ud800 \"q\" \\ <i>" in texts and "t\\x1b=1" in texts


def test_a_copy_of_a_drawing_keeps_its_counts():
    drawing = draw_graph(rnn_output("tensor", T=3)[1], collapse=True)
    copy = drawing.copy()
    assert type(copy) is type(drawing) and copy.source == drawing.source
    assert (copy.node_count, copy.edge_count, copy.collapsed) == (drawing.node_count, drawing.edge_count, True)
    assert drawing.node_count > 0 and drawing.edge_count > 0


def svg_boxes(drawing):
    """{title: (left, top)} of every node and box of the rendered SVG (y grows downwards)."""
    ns = {"svg": "http://www.w3.org/2000/svg"}
    out = {}
    for g in ET.fromstring(drawing.pipe(format="svg")).iter("{http://www.w3.org/2000/svg}g"):
        title, shape = g.find("svg:title", ns), g.find("svg:polygon", ns)
        if shape is None:  # rounded boxes are paths
            shape = g.find("svg:path", ns)
        if title is None or shape is None or g.get("class") not in ("node", "cluster"):
            continue
        label = g.find("svg:text", ns).text if g.get("class") == "cluster" else title.text
        numbers = [float(v) for v in re.findall(r"-?\d+\.?\d*", shape.get("points") or shape.get("d"))]
        out[label] = (min(numbers[0::2]), min(numbers[1::2]))
    return out


def test_rendered_layout_runs_left_to_right_in_time():
    _, out = rnn_output("value", T=3)
    where = svg_boxes(draw_graph(out))
    assert where["t=1"][0] < where["t=2"][0] < where["t=3"][0]
    _, out = rnn_output("tensor", T=25)
    where = svg_boxes(draw_graph(out, collapse=True))
    for row in range(3):  # rows of 10 steps, stacked top to bottom
        columns = [where[f"s{k}"][0] for k in range(10 * row, min(10 * row + 10, 25))]
        assert columns == sorted(columns) and len(set(columns)) == len(columns)
    assert where["s0"][1] < where["s10"][1] < where["s20"][1]


def test_without_dot_building_works_and_rendering_says_what_to_install(tmp_path, monkeypatch):
    y = Value(2.0, "x").tanh()
    monkeypatch.setenv("PATH", str(tmp_path))  # no dot here
    drawing = draw_graph(y)
    assert drawing.source.startswith("digraph unrolled {")
    assert save_graph(y, tmp_path / "g.dot") and "tanh" in (tmp_path / "g.dot").read_text()
    message = r"Graphviz's dot program was not found on PATH.*sudo apt-get install graphviz.*brew install graphviz"
    with pytest.raises(GraphvizNotFoundError, match=message):
        save_graph(y, tmp_path / "g.svg")
    with pytest.raises(GraphvizNotFoundError, match=message):
        drawing._repr_mimebundle_()  # what Jupyter calls to show it inline
    with pytest.raises(GraphvizNotFoundError, match=r"save it as \.dot"):
        drawing.render(tmp_path / "out")


def test_a_small_graph_in_more_boxes_than_it_has_nodes():
    with scope("model"), scope("layer 0"), scope("t=1"):
        h = Value(0.5, "h")
    dot = parse(draw_graph(h))
    assert dot.boxes == [("model",), ("model", "layer 0"), ("model", "layer 0", "t=1")]
    assert dot.nodes["n0"]["boxes"] == ("model", "layer 0", "t=1")


@pytest.mark.parametrize("engine", ["value", "tensor"])
def test_one_folded_step_per_row_renders(engine):
    # Each step in a row of its own: the edges from one step to the next run within one rank,
    # where Graphviz cannot route a label, so their "×k" is an xlabel there.
    rnn = nn.RNN(1, 2, engine=engine, seed=0)
    _, h = rnn(np.ones((6, 1, 1)))
    drawing = draw_graph(h, collapse=True, steps_per_row=1)
    wrapped = [a for _, _, a in parse(drawing).edges if a.get("constraint") == "false"]
    assert len(wrapped) == 5 and all("label" not in a for a in wrapped)
    # On the value engine the 2 entries of H_t each reach 2 products of the next step (×4);
    # on the tensor engine H_t is one node used once, with no count to show.
    assert [a.get("xlabel") for a in wrapped] == (["×4"] * 5 if engine == "value" else [None] * 5)
    svg = drawing.pipe(format="svg").decode()
    assert all(f"t={t}" in svg for t in range(1, 7))


@pytest.mark.parametrize("rankdir", ["TB", "BT", "LR"])
def test_folded_rows_lay_out_top_to_bottom_too(rankdir):
    # with edges bundled (concentrate), dot failed on this one: "trouble in init_rank"
    m = nn.RNNModel(1, 1, 1, mode="many_to_many", engine="value", seed=0)
    y, _ = m(np.random.default_rng(0).standard_normal((12, 1, 1)))
    loss = nn.sequence_loss(nn.mse_loss, y, np.zeros((12, 1, 1)))[0]
    drawing = draw_graph(loss, collapse=True, steps_per_row=5, rankdir=rankdir)
    svg = drawing.pipe(format="svg").decode()
    assert all(f"t={t}" in svg for t in range(1, 13))
    assert ("concentrate" in drawing.graph_attr) == (rankdir == "LR")


def test_a_too_big_graph_without_time_steps_is_not_told_to_collapse():
    v = Value(1.0, "a")
    for _ in range(30):
        v = v * 1.5
    for options in ({}, {"on_overflow": "collapse"}):
        with pytest.raises(ValueError, match="more than max_nodes=20, and no time steps to fold"):
            draw_graph(v, max_nodes=20, **options)
    drawing = draw_graph(v, collapse=True)
    assert not drawing.collapsed and drawing.node_count == 61 and "concentrate" not in drawing.graph_attr


def test_module_draw_refuses_the_gradient_view_with_the_way_to_get_it():
    model = nn.RNNModel(2, 2, 1, seed=0)
    with pytest.raises(ValueError, match=r"RNNModel.draw runs a new forward pass.*"
                                         r"draw_graph\(loss, gradient_view=True\)"):
        model.draw(np.ones((2, 1, 2)), gradient_view=True)


def test_an_edge_into_a_new_row_keeps_its_use_count_beside_its_gradient():
    # An edge into the next row of folded steps carries "×k" as an xlabel (Graphviz cannot
    # route a label there); the gradient view's size goes into the same xlabel, since of two
    # xlabels Graphviz keeps only the last.
    m = nn.RNNModel(2, 2, 1, mode="many_to_one", engine="value", seed=0)
    y, _ = m(np.random.default_rng(0).standard_normal((12, 1, 2)))
    loss = nn.mse_loss(y, np.array([[0.5]]))
    loss.backward()
    dot = parse(draw_graph(loss, collapse=True, gradient_view=True, edge_labels=True))
    across = [attrs for _, _, attrs in dot.edges if attrs.get("constraint") == "false"]
    assert across
    for attrs in across:
        uses, size = attrs["xlabel"].split(" ")
        assert re.fullmatch(r"×\d+", uses) and float(size) == pytest.approx(flow(attrs), rel=1e-2)
    plain = parse(draw_graph(loss, collapse=True))
    assert all(re.fullmatch(r"×\d+", attrs["xlabel"]) for _, _, attrs in plain.edges if "xlabel" in attrs)


def test_gradient_view_after_an_optimizer_step_is_refused_as_backward_is():
    # Its arrows run each op's backward again, which would read the new weights: sizes that
    # never flowed, beside node labels that show the old gradients.
    lin = nn.Linear(1, 1, bias=False, seed=0)
    x = Tensor([[2.0]], requires_grad=True, label="x")
    loss = (lin(x) * 1.0).sum()
    loss.backward()
    before = draw_graph(loss, gradient_view=True).source
    assert f"{x.grad[0, 0]:.4g}" in before
    nn.optim.SGD(lin.parameters(), lr=1.0).step()
    with pytest.raises(RuntimeError, match=r"draw_graph\(gradient_view=True\) from .*: W .* was changed in place"):
        draw_graph(loss, gradient_view=True)
    # the graph itself can still be drawn, its data as it is now: the changed weight says so
    dot = parse(draw_graph(loss))
    (w,) = dot.named("W")
    assert dot.nodes[w]["label"].split("\n")[1:] == [
        f"data 1×1 [{lin.W.data[0, 0]:.4g}]", "changed in place after this graph was built",
        f"grad [{lin.W.grad[0, 0]:.4g}]"]
    assert not any("changed" in a["label"] for k, a in dot.nodes.items() if k != w)
    assert "changed" not in draw_graph((lin(x) * 1.0).sum()).source  # a forward pass after the step


@pytest.mark.parametrize("engine", ["value", "tensor"])
def test_an_edge_that_passes_a_zero_is_drawn_as_such_on_both_engines(engine):
    # The value engine's relu adds nothing where it is off (rather than a zero): the arrow
    # into x was still followed, and carried 0, as on the tensor engine.
    x = Value(-1.0, "x") if engine == "value" else Tensor(-1.0, requires_grad=True, label="x")
    y = x.relu() * 2
    y.backward()
    dot = parse(draw_graph(y, gradient_view=True))
    (into_x,) = [a for t, h, a in dot.edges if t == dot.named("x")[0]]
    assert flow(into_x) == 0.0 and into_x.get("style") != "dotted"
    constant = Tensor(np.ones(2)) * Tensor(np.ones(2), requires_grad=True, label="w")  # takes no gradient
    constant.sum().backward()
    dot = parse(draw_graph(constant, gradient_view=True))
    [(_, _, from_constant)], [(_, _, from_w)] = dot.out_edges("n0"), dot.out_edges("n1")  # made first: n0
    assert from_constant["style"] == "dotted" and from_constant["tooltip"] == "no gradient passes here"
    assert flow(from_w) == pytest.approx(math.sqrt(2), rel=1e-5)


@pytest.mark.parametrize("engine", ["value", "tensor"])
def test_gradient_view_of_a_gradient_set_by_hand_to_the_wrong_thing_names_the_node(engine):
    if engine == "value":
        a = Value(1.0)
        m = a.tanh()
        y = m * 2
        y.backward()
        bad = [None, "x"]
    else:
        W = Tensor([1.0, 2.0], requires_grad=True)
        m = (W * 3).tanh()
        y = m.sum()
        y.backward()
        bad = [0.0, np.ones(5)]
    for g in bad:
        m.grad = g
        with pytest.raises((TypeError, ValueError), match=r"^draw_graph\(gradient_view=True\): cannot pass back "
                                                          rf"the gradient of tanh .*: it holds {re.escape(repr(g))} "):
            draw_graph(y, gradient_view=True)


def test_gradient_view_of_a_sequence_read_step_by_step_sizes_each_steps_rows_without_settling_them(monkeypatch):
    # The input projections' gradient arrives one step's rows at a time (kept as rows);
    # settling it at every step made a (T, m, hidden) array per step: quadratic in T.
    from autograd import tensor

    out, _ = nn.RNN(3, 4, seed=0)(np.random.default_rng(0).standard_normal((6, 2, 3)))
    loss = out.sum()
    loss.backward()
    xw = next(node for node in topological_order(loss) if node.op == "reshape" and node.data.shape == (6, 2, 4))
    settled = []
    real_settle = tensor._Rows.settle
    monkeypatch.setattr(tensor._Rows, "settle", lambda rows, node, final=False: (
        settled.append(node), real_settle(rows, node, final))[1])
    dot = parse(draw_graph(loss, gradient_view=True, max_steps=None))
    assert settled == []
    order = graph_nodes(loss)
    rows = sorted((int(h[1:]), flow(a)) for t, h, a in dot.edges if order[int(t[1:])] is xw)
    assert len(rows) == 6  # one x[t] per step, each passed the norm of its step's rows of the gradient
    for (_, size), g_t in zip(rows, xw.grad):
        assert size == pytest.approx(np.linalg.norm(g_t), rel=1e-5)


def test_a_detached_value_is_drawn_as_a_constant_as_a_detached_tensor_is():
    w = Value(2.0, label="w")
    t = Tensor([2.0], requires_grad=True, label="w")
    for y in (w.detach() * Value(3.0), t.detach() * Tensor([3.0], requires_grad=True)):
        dot = parse(draw_graph(y))
        (node,) = dot.named("w")
        assert dot.nodes[node]["fillcolor"] == "#ececec"  # the constants' grey, not the parameters' blue
    dot = parse(draw_graph(w * 3.0))
    assert dot.nodes[dot.named("w")[0]]["fillcolor"] == "#d6e6f5"


def test_a_value_node_behind_an_off_relu_shows_its_zero_gradient():
    # backward reached it, and 0 arrived: as on the tensor engine, where the node shows [0]
    w, x = Value(2.0, "w"), Value(-1.0, "x")
    z = w * x
    y = z.relu() + w
    y.backward()
    assert z.grad == 0.0 and z.grad is not Value._EMPTY_GRAD and x.grad == 0.0
    assert '"*\\ndata -2\\ngrad 0"' in draw_graph(y).source
    fresh = Value(1.0) * Value(2.0)  # not reached by any backward: no gradient shown
    assert "grad" not in draw_graph(fresh).source.split("label=")[1].split('"')[1]


def test_a_gradient_set_to_none_by_hand_is_drawn_not_a_crash():
    v = Value(1.0)
    y = v * 2
    y.backward()
    v.grad = None
    assert "grad None" in draw_graph(y).source
