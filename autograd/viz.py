"""Drawing the computation graph with Graphviz: the unrolled network, one box per time step.

    draw_graph(root, **options) -> GraphDrawing   (a graphviz.Digraph; shows inline in Jupyter)
    save_graph(root, path, **options) -> path     (.svg, .png, .pdf, or .dot, by the extension)

``root`` is a Value, a Tensor, a numpy object array of Values, or a list or tuple of these
(several outputs, e.g. a model's ``(y, h_n)``). Every node they depend on is drawn once, with
an arrow from each parent to the node computed from it (labelled ``×2`` when the parent is
used twice, as in ``x * x``). A node shows

* its name: an op by its op (``@``, ``+``, ``tanh``, ...), a parameter by its label
  (``rnn.cells.0.W_hh``), an op that has a label as ``label = op``;
* its data: a Value's number (4 significant digits); a Tensor's shape and its entries if it
  has at most 4, else their mean and range;
* its gradient, in the same style, once backward has reached it (nothing before);
* for a leaf changed in place after the ops that read it were computed (an optimizer step
  after the forward pass): "changed in place after this graph was built", since its data
  is then newer than theirs.

Control characters in labels and scope tags are shown as their escapes (``\\x1b``).

Styles:

* op: white rounded box; an output (one of the roots): light green, thick green border;
* input or constant (a leaf that is not a parameter): grey box;
* parameter (a Tensor leaf with ``requires_grad``, or a Value leaf with a label): blue box;
* shared leaf (used by nodes of two or more different scopes, like W_hh at every time
  step): orange hexagon for a parameter, grey hexagon for a constant, drawn once with an
  arrow into every node that uses it. This is the picture of weight sharing;
* a time step folded by ``collapse=True``: a light-blue 3-D box listing the ops inside.

Boxes (``group=True``): nodes are boxed by their scope tags (:func:`autograd.scope`), one
box per distinct scope prefix, nested, titled with the tag: the "layer 0" box holds the
"t=1", "t=2", ... boxes (dashed). An op sits in the box of its own scope. A leaf sits in the
box of the deepest scope prefix common to all the nodes that use it. NOTE: so layer 0's
W_hh, used by every step, sits in the "layer 0" box outside the step boxes; a weight used by
two layers sits at the top level; and a leaf used in one scope only (the input x_t read by
step t, or a parameter used once, like the fused W_xh of the tensor engine) sits inside that
scope's box, styled as a parameter or a constant but not as shared.

Layout: left to right in time (``rankdir="LR"``). Each time step is placed after the one
before it (hidden edges keep step t + 1's box to the right of step t's). Folded steps
(``collapse=True``) wrap onto a new row after every ``steps_per_row`` (10), so that 100 of
them make a 10 x 10 grid rather than a line a hundred nodes long; Graphviz cannot be made to
stack rows of boxes in order, so unfolded steps stay on one line (collapse long sequences).

Options (all keyword-only):

* ``show_label``, ``show_data``, ``show_grad`` (True): the parts of a node's text;
* ``group`` (True): the boxes above; ``rankdir`` ("LR", or "TB", "RL", "BT");
  ``steps_per_row`` (10; None: folded steps never wrap);
* ``gradient_view`` (False): arrows point from each node to its parents, the way gradients
  flow, and each arrow's width and colour (light grey, orange, dark red) show the size of the
  gradient passing along it: exactly what that node's backward adds into that parent's
  gradient (absolute value for a Value, L2 norm for a Tensor), on a log scale spanning four
  decades below the largest arrow. Hovering over an arrow (SVG) shows the number, and
  ``edge_labels=True`` writes it beside the arrow. Dotted arrows pass no gradient: they come
  from a node backward did not reach, or go to a Tensor that takes none (a constant); an
  arrow that passes a zero (from a relu that is off) is drawn, at the thinnest. Needs a
  backward pass first, and is refused, as backward is, once a weight the graph reads was
  changed in place (an optimizer step); drawing leaves every gradient as it was;
* ``collapse`` (False): every time-step box (scope tag ``t=<number>``) becomes one node that
  lists the ops inside and counts its edges in and out; layer boxes and shared leaves stay,
  and the entries of one array that feed the steps (leaves labelled ``W_hh[0,0]``,
  ``W_hh[0,1]``, ...: a value-engine weight) become one node, ``W_hh`` over ``64 entries
  [0..7, 0..7]`` and their data and gradients as for a Tensor; the edges between two drawn nodes merge into
  one, labelled ``×k`` for k uses (their gradient sizes combine as an L2 norm); outside the
  gradient view, left to right, Graphviz bundles edges that share an end;
* ``max_nodes`` (600), ``max_edges`` (1,000), ``max_steps`` (24), each None for no limit, and
  ``on_overflow`` ("raise" or "collapse"): a drawing of more nodes or edges, or one that would
  unfold a sequence of more time steps (whose layout time grows with the square of their
  number: see ``MAX_STEPS``), raises a ValueError that suggests ``collapse=True``, or
  collapses itself; a folded drawing still too big raises, saying what to change.

The DOT text is deterministic: nodes are numbered ``n0, n1, ...`` in topological order,
folded steps ``s0, s1, ...`` and arrays of entries ``e0, e1, ...``, so the same graph gives
the same text every time. Building it takes time linear in the size of the graph; only
rendering needs Graphviz's ``dot`` program.
"""

from __future__ import annotations

import itertools
import math
import re
from contextlib import contextmanager
from functools import cache
from operator import attrgetter
from pathlib import Path

import graphviz
import numpy as np

from .graph import _CHANGED, NOT_RECORDED, Node, changed_after, refuse_changed, slot_values, topological_order

__all__ = ["FORMATS", "GraphDrawing", "GraphvizNotFoundError", "draw_graph", "save_graph"]

FORMATS = ("svg", "png", "pdf", "dot")
# NOTE: dot (2.43) took 1.1 s to lay out a scalar RNN of 556 nodes unfolded, 7.5 s at 709
# nodes and over three minutes at 1,168.
MAX_NODES = 600
# NOTE: Graphviz's layout of unfolded steps grows with the square of their number: a shared
# weight's arrows into every step, and the steps' chain through the states, cross more ranks
# with every step, and dot (2.43) adds a point per rank crossed. A tensor RNN of 25 steps
# (116 nodes) took 1.8 s to lay out, 30 steps 17 s, 40 steps a minute, and 100 had not
# finished after 590 s; folded, 100 steps take under a second.
MAX_STEPS = 24
# NOTE: and its layout time grows steeply with the edges between few nodes: 15 folded steps
# of a scalar RNN of 8 units whose 64 weights each feed every step (990 edges) took 10-16 s,
# 20 steps (1,315 edges) 76 s; 665 edges took 1 s. Unfolded, 600 nodes have about 1,000.
MAX_EDGES = 1000
RANKDIRS = ("LR", "TB", "RL", "BT")
_STEP_TAG = re.compile(r"t=\d+")
_ENTRY = re.compile(r"(.+)\[(\d+(?:,\d+)*)\]")  # an entry of an array: W_hh[0,1]

NO_DOT = (
    "Graphviz's dot program was not found on PATH, so the graph cannot be rendered: install it "
    "(Debian/Ubuntu: sudo apt-get install graphviz; macOS: brew install graphviz; conda: conda install "
    "graphviz), or save it as .dot (save_graph(root, 'graph.dot'); the DOT text is also in .source)"
)


class GraphvizNotFoundError(graphviz.ExecutableNotFound):
    """Rendering was asked for, but Graphviz's ``dot`` program is not installed."""

    def __init__(self):
        RuntimeError.__init__(self, NO_DOT)


class GraphDrawing(graphviz.Digraph):
    """What :func:`draw_graph` returns: a ``graphviz.Digraph`` (``.source`` is the DOT text;
    Jupyter shows it inline) that says what to install when ``dot`` is missing.

    ``node_count`` and ``edge_count`` are the numbers of nodes and arrows drawn; ``collapsed``
    says whether the time steps were folded (asked for, or by ``on_overflow="collapse"``).
    """

    node_count = 0
    edge_count = 0
    collapsed = False

    def copy(self) -> GraphDrawing:
        drawing = super().copy()
        drawing.node_count, drawing.edge_count, drawing.collapsed = self.node_count, self.edge_count, self.collapsed
        return drawing

    def pipe(self, *args, **kwargs):
        with _needs_dot():
            return super().pipe(*args, **kwargs)

    def render(self, *args, **kwargs):
        with _needs_dot():
            return super().render(*args, **kwargs)


@contextmanager
def _needs_dot():
    """Turn graphviz's "executable not found" into an error that says what to install."""
    try:
        yield
    except GraphvizNotFoundError:
        raise
    except graphviz.ExecutableNotFound as error:
        raise GraphvizNotFoundError() from error


# --- the public functions ---------------------------------------------------------------
def draw_graph(root, *, show_label: bool = True, show_data: bool = True, show_grad: bool = True,
               group: bool = True, rankdir: str = "LR", gradient_view: bool = False, edge_labels: bool = False,
               collapse: bool = False, max_nodes: int | None = MAX_NODES, on_overflow: str = "raise",
               steps_per_row: int | None = 10, max_steps: int | None = MAX_STEPS,
               max_edges: int | None = MAX_EDGES) -> GraphDrawing:
    """The computation graph behind ``root`` (a Value, a Tensor, an object array of Values,
    or a list/tuple of those) as a :class:`GraphDrawing`, to show in Jupyter or to save::

        loss.backward()
        draw_graph(loss)                      # data and gradients, boxed by layer and time step
        draw_graph(loss, gradient_view=True)  # arrows sized by the gradient each one carries
        draw_graph(loss, collapse=True)       # one node per time step

    The module docstring describes what is drawn, the styles, the layout and every option.
    """
    _check_options(rankdir, on_overflow, steps_per_row, max_nodes=max_nodes, max_steps=max_steps,
                   max_edges=max_edges)
    roots = _roots(root)
    if gradient_view and all(r.grad is type(r)._EMPTY_GRAD for r in roots):
        raise RuntimeError(
            "draw_graph(gradient_view=True) draws the gradients of a backward pass, but no output "
            f"({len(roots)} given) has a gradient yet: call backward() first, e.g. loss.backward(), "
            "then draw the loss: draw_graph(loss, gradient_view=True)"
        )
    graph = _Graph(roots)
    if gradient_view:  # its arrows run each op's backward again, which reads today's weights
        leaves = [node for node in graph.order if node.is_leaf]
        for r in roots:
            refuse_changed(r, leaves, "draw_graph(gradient_view=True)")
    boxes = _Boxes(graph)
    _fit(graph, boxes, collapse, on_overflow, max_nodes, max_steps, max_edges)
    flows = _edge_flows(graph) if gradient_view else None
    text = _Text(show_label, show_data, show_grad, _changed_leaves(graph))
    body, edge_count = _dot_body(graph, boxes, text, flows, group, edge_labels, steps_per_row, rankdir)
    drawing = GraphDrawing(
        name="unrolled", format="svg", body=body,
        graph_attr={"rankdir": rankdir, "fontname": "Helvetica", "fontsize": "12", "nodesep": "0.2",
                    "ranksep": "0.3", "newrank": "true"},
        node_attr={"fontname": "Helvetica", "fontsize": "10", "height": "0.3", "margin": "0.08,0.03"},
        edge_attr={"color": "#6b6b6b", "arrowsize": "0.6", "fontname": "Helvetica", "fontsize": "9"},
    )
    # Bundle the many edges of shared nodes into folded steps. NOTE: not top to bottom, where
    # dot (2.43) fails on some bundles ("trouble in init_rank"; a 1-unit RNN folded in rows of 5).
    if boxes.folded and not gradient_view and rankdir in ("LR", "RL"):
        drawing.graph_attr["concentrate"] = "true"
    drawing.node_count, drawing.edge_count, drawing.collapsed = boxes.drawn, edge_count, boxes.folded
    return drawing


def save_graph(root, path, **options) -> str:
    """Draw ``root`` (or take a :class:`GraphDrawing`) and write it to ``path``; returns the path.

    The extension picks the format: ``.svg``, ``.png``, ``.pdf`` (rendered by Graphviz's
    ``dot``), or ``.dot`` (the DOT text, written without ``dot``). ``options`` go to
    :func:`draw_graph`.
    """
    path = Path(path)
    fmt = path.suffix[1:].lower()
    if fmt not in FORMATS:
        raise ValueError(
            f"save_graph: cannot tell the format of {str(path)!r} from its extension {path.suffix!r}; "
            f"use one of {', '.join('.' + f for f in FORMATS)}"
        )
    if isinstance(root, graphviz.Digraph):
        if options:
            raise TypeError(f"save_graph: got a finished drawing and drawing options {sorted(options)}; "
                            "pass the options to draw_graph, or pass the graph's output instead")
        drawing = root
    else:
        drawing = draw_graph(root, **options)
    if fmt == "dot":
        path.write_text(drawing.source, encoding="utf-8")
    else:
        with _needs_dot():
            path.write_bytes(drawing.pipe(format=fmt))
    return str(path)


def _fit(graph: _Graph, boxes: _Boxes, collapse: bool, on_overflow: str, max_nodes, max_steps, max_edges) -> None:
    """Fold the time steps if asked to (or if the drawing is too big, more than ``max_nodes``
    nodes, ``max_edges`` edges or a sequence of more than ``max_steps`` unfolded steps, and
    ``on_overflow`` is "collapse"); raise if the drawing is still too big."""
    longest = 1 + max((box.column for box in boxes.steps), default=-1)  # steps in the longest sequence
    too_long = max_steps is not None and longest > max_steps
    if boxes.steps and (collapse or (on_overflow == "collapse" and (
            too_long or (max_nodes is not None and boxes.drawn > max_nodes)
            or (max_edges is not None and len(graph.edges) > max_edges)))):
        boxes.fold_steps()  # (a graph with no time steps has nothing to fold)
    if too_long and not boxes.folded:
        raise ValueError(
            f"draw_graph: the drawing unfolds a sequence of {longest} time steps, more than "
            f"max_steps={max_steps}; Graphviz's layout of unfolded steps grows with the square of "
            "their number (30 steps of a tensor RNN took 17 s; 100 had not finished after 590 s). Pass "
            "collapse=True to fold each step into one node (or on_overflow='collapse'), draw a "
            "shorter sequence, or pass max_steps=None"
        )
    if max_nodes is not None and boxes.drawn > max_nodes:
        _too_many(graph, boxes, "nodes", boxes.drawn, max_nodes, "Graphviz slows down past a few thousand nodes")
    edges = len(graph.edges) if not boxes.folded else len(_drawn_edges(graph, boxes, None))
    if max_edges is not None and edges > max_edges:
        _too_many(graph, boxes, "edges", edges, max_edges,
                  "Graphviz's layout time grows steeply with the edges: 990 took 10 s, 1,315 took 76 s")


def _too_many(graph: _Graph, boxes: _Boxes, what: str, count: int, limit: int, why: str) -> None:
    """Raise the error for a drawing of ``count`` nodes or edges (``what``), more than ``limit``,
    saying what to do."""
    in_graph = len(graph.order) if what == "nodes" else count
    if not boxes.steps:
        raise ValueError(
            f"draw_graph: the graph has {in_graph:,} {what}, more than max_{what}={limit:,}, and no time "
            f"steps to fold (scopes named 't=...'); pass a larger max_{what} ({why}) or draw a smaller graph"
        )
    if boxes.folded:
        hint = "" if what == "nodes" else (
            "; most come from leaves that feed every step: label the entries of one array "
            "'W[0,0]', 'W[0,1]', ... to draw them as one node")
        raise ValueError(
            f"draw_graph: even with every time step collapsed the drawing has {count:,} {what} (of "
            f"{len(graph.order):,} nodes in the graph), more than max_{what}={limit:,}; pass a larger "
            f"max_{what} ({why}) or draw a shorter sequence{hint}"
        )
    raise ValueError(
        f"draw_graph: the graph has {in_graph:,} {what}, more than "
        f"max_{what}={limit:,}; pass collapse=True to fold each time step into one node "
        f"(or on_overflow='collapse'), or a larger max_{what}"
    )


def _check_options(rankdir, on_overflow, steps_per_row, **limits) -> None:
    if rankdir not in RANKDIRS:
        raise ValueError(f"draw_graph: rankdir must be one of {list(RANKDIRS)}, got {rankdir!r}")
    if on_overflow not in ("raise", "collapse"):
        raise ValueError(f"draw_graph: on_overflow must be 'raise' or 'collapse', got {on_overflow!r}")
    for name, value in {"steps_per_row": steps_per_row, **limits}.items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ValueError(f"draw_graph: {name} must be a positive int or None, got {value!r}")


def _roots(obj) -> list:
    """The nodes in ``obj`` (a node, an object array of nodes, or a list/tuple of those),
    each once, in the order given."""
    found = []
    pending = [obj]
    while pending:
        x = pending.pop()
        if isinstance(x, Node):
            found.append(x)
        elif isinstance(x, np.ndarray) and x.dtype == object:
            pending.extend(reversed(x.ravel().tolist()))
        elif isinstance(x, (list, tuple)):
            pending.extend(reversed(x))
        else:
            what = f"a numpy {x.dtype} array" if isinstance(x, np.ndarray) else f"a {type(x).__name__}"
            raise TypeError(
                "draw_graph expects a Value, a Tensor, a numpy object array of Values, or a list/tuple "
                f"of those; got {what} ({x!r:.60})"
            )
    if not found:
        raise ValueError(f"draw_graph: nothing to draw, {obj!r:.60} holds no Value or Tensor")
    return list(dict.fromkeys(found))


# --- the graph: nodes numbered in topological order, and their edges ---------------------
class _Graph:
    """``order``: every node the roots depend on, each after its parents (by creation
    order); ``is_op[i]``: whether node i has parents; ``edges``: ``(parent, child,
    multiplicity)`` as indices into ``order``, one per distinct pair, grouped by child."""

    def __init__(self, roots: list):
        self.order = topological_order(*roots)
        self.index = index = {node: i for i, node in enumerate(self.order)}
        self.roots = {index[r] for r in roots}
        self.edges = []
        self.is_op = []
        for i, node in enumerate(self.order):
            prev = node._prev
            self.is_op.append(bool(prev))
            if len(prev) == 1:
                self.edges.append((index[prev[0]], i, 1))
            elif prev:
                counts = {}
                for p in prev:
                    counts[p] = counts.get(p, 0) + 1
                self.edges.extend((index[p], i, k) for p, k in counts.items())


def _is_parameter(node) -> bool:
    """A Tensor leaf that requires a gradient, or (a Value, which has no such flag) a labelled
    leaf that is not a constant (detached, or made under no_grad)."""
    requires_grad = getattr(node, "requires_grad", None)
    return bool(node.label) and node._op is not NOT_RECORDED if requires_grad is None else requires_grad


# --- boxes: where each node is drawn --------------------------------------------------------
class _Box:
    """One scope prefix: its tag, the nodes drawn directly in it, its sub-boxes, and ``first``,
    the rank of the first op inside (sibling boxes are drawn in that order). A time-step box
    also has ``step`` (its number among all steps) and ``column`` (its place among its
    siblings' steps), and is drawn as one node once ``folded``."""

    __slots__ = ("tag", "parent", "children", "nodes", "first", "step", "column", "folded")

    def __init__(self, tag: str, parent):
        self.tag, self.parent = tag, parent
        self.children: dict[str, _Box] = {}
        self.nodes: list[int] = []
        self.first = None
        self.step = self.column = -1
        self.folded = False

    def sorted_children(self) -> list:
        return sorted(self.children.values(), key=attrgetter("first"))


class _Boxes:
    """The box tree (one box per scope prefix), the shared leaves, and the time steps:
    ``steps[k]`` is the k-th outermost time-step box (tag ``t=<number>``) in drawing order,
    ``step_nodes[k]`` the nodes inside it, ``step_of[i]`` the step holding node i (or -1).
    ``rep[i]`` is what draws node i: i itself, ``n + k`` once step k is folded, or
    ``n + len(steps) + g`` for the g-th group of ``entries`` (the entries of one array, drawn
    as one node once the steps are folded); ``drawn`` is the number of nodes drawn."""

    def __init__(self, graph: _Graph):
        self.graph = graph
        n = len(graph.order)
        place, self.shared = _placement(graph)
        self.top = _Box("", None)
        boxes = {(): self.top}
        for i, where in enumerate(place):
            box = boxes.get(where) or self._make(where, boxes)
            box.nodes.append(i)
            place[i] = box
        self.box_of = place
        # sibling boxes are drawn in the order of their first op (time order for an unrolled
        # loop); a box that holds only leaves comes after all of those
        is_op = graph.is_op
        for rank, i in enumerate([i for i in range(n) if is_op[i]] + [i for i in range(n) if not is_op[i]]):
            box = place[i]
            while box is not None and box.first is None:
                box.first = rank
                box = box.parent
        self.steps: list[_Box] = []
        self.step_nodes: list[list[int]] = []
        self.step_of = [-1] * n
        self._find_steps(self.top)
        self.rep = range(n)
        self.drawn = n
        self.folded = False
        self.step_labels: list[str] = []
        self.entries: list[tuple[str, list[int]]] = []

    def _make(self, where: tuple, boxes: dict) -> _Box:
        parent = boxes.get(where[:-1]) or self._make(where[:-1], boxes)
        box = boxes[where] = parent.children[where[-1]] = _Box(where[-1], parent)
        return box

    def _find_steps(self, box: _Box) -> None:
        column = 0
        for child in box.sorted_children():
            if not _STEP_TAG.fullmatch(child.tag):
                self._find_steps(child)
                continue
            child.step, child.column = len(self.steps), column
            column += 1
            inside = sorted(_all_nodes(child))
            for i in inside:
                self.step_of[i] = child.step
            self.steps.append(child)
            self.step_nodes.append(inside)

    def fold_steps(self) -> None:
        """Draw every time-step box, with all it holds, as one node, and the entries of each
        array left outside the steps (``W_hh[0,0]``, ``W_hh[0,1]``, ... on the value engine)
        as one node: each entry feeds every step, so that drawn one by one they would make
        entries x steps edges, more than Graphviz lays out in minutes."""
        order, n = self.graph.order, len(self.graph.order)
        self.rep = [i if k < 0 else n + k for i, k in enumerate(self.step_of)]
        self.entries = self._entry_groups()
        for g, (_, members) in enumerate(self.entries):
            for i in members:
                self.rep[i] = n + len(self.steps) + g
        ins, outs = [0] * len(self.steps), [0] * len(self.steps)
        for j, i, _ in self.graph.edges:
            a, b = self.step_of[j], self.step_of[i]
            if a != b:
                if b >= 0:
                    ins[b] += 1
                if a >= 0:
                    outs[a] += 1
        self.step_labels = [_step_label(box.tag, [order[i] for i in inside], ins[k], outs[k])
                            for k, (box, inside) in enumerate(zip(self.steps, self.step_nodes))]
        for box in self.steps:
            box.folded = True
        self.drawn = (n - sum(map(len, self.step_nodes)) + len(self.steps)
                      - sum(len(members) - 1 for _, members in self.entries))
        self.folded = True

    def _entry_groups(self) -> list:
        """``(name, members)`` for each set of two or more leaves that feed the steps from
        outside, in one box, of one kind, holding one number each and labelled
        ``name[i,j,...]``: the entries of one array (entries read outside the steps only, like
        a readout's, stay one by one; so do Tensors labelled so, each an array of its own)."""
        graph, shared, step_of = self.graph, self.shared, self.step_of
        feeds_steps = {j for j, i, _ in graph.edges if step_of[i] >= 0 > step_of[j]}
        groups: list[tuple[str, list[int]]] = []
        open_groups: dict[tuple, tuple[list, set]] = {}  # the group each key fills now, and its indices
        for i in sorted(feeds_steps):  # in the order the entries were made
            node = graph.order[i]
            if not graph.is_op[i] and np.ndim(node.data) == 0 and (m := _ENTRY.fullmatch(node.label or "")):
                key = (m.group(1), id(self.box_of[i]), _node_kind(graph, shared, i))
                members, indices = open_groups.get(key, (None, None))
                if members is None or m.group(2) in indices:
                    # an index met again: another array of the same name (two cells' W_hh)
                    members, indices = [], set()
                    open_groups[key] = (members, indices)
                    groups.append((m.group(1), members))
                members.append(i)
                indices.add(m.group(2))
        return [(name, members) for name, members in groups if len(members) > 1]

    def name(self, k: int) -> str:
        """The DOT name of drawn node ``k`` (an index into ``rep``'s values)."""
        n, steps = len(self.graph.order), len(self.steps)
        return f"n{k}" if k < n else f"s{k - n}" if k < n + steps else f"e{k - n - steps}"


def _placement(graph: _Graph) -> tuple[list, set]:
    """The scope whose box each node is drawn in, and the shared leaves.

    An op goes to its own scope; a leaf to the deepest scope prefix common to all the nodes
    that use it (its own scope if nothing uses it). A leaf is shared when its users are in
    two or more different scopes.
    """
    order = graph.order
    place = [node._scope for node in order]
    first_user: dict[int, tuple] = {}
    shared: set[int] = set()
    for j, i, _ in graph.edges:
        if graph.is_op[j]:
            continue
        where = order[i]._scope
        first = first_user.get(j)
        if first is None:
            first_user[j] = place[j] = where
        elif where != first:
            shared.add(j)
            place[j] = _common_prefix(place[j], where)
    return place, shared


def _common_prefix(a: tuple, b: tuple) -> tuple:
    k = 0
    for x, y in zip(a, b):
        if x != y:
            break
        k += 1
    return a[:k]


def _all_nodes(box: _Box):
    pending = [box]
    while pending:
        box = pending.pop()
        yield from box.nodes
        pending.extend(box.children.values())


def _step_label(tag: str, nodes: list, edges_in: int, edges_out: int) -> str:
    """E.g. ``t=3: 3 ops`` over ``getitem 1, addmm 1, tanh 1``, the leaves folded with it
    (if any), and the number of edges in and out."""
    counts: dict[str, int] = {}
    leaves = 0
    for node in nodes:
        if node._op:
            op = str(node._op)
            counts[op] = counts.get(op, 0) + 1
        else:
            leaves += 1
    ops = sum(counts.values())
    lines = [f"{tag}: {ops} op{'s' * (ops != 1)}"]
    kinds = [f"{op} {c}" for op, c in counts.items()]
    lines += [", ".join(kinds[k:k + 4]) for k in range(0, len(kinds), 4)]
    if leaves:
        lines.append(f"{leaves} lea{'ves' if leaves != 1 else 'f'}")
    lines.append(f"edges: {edges_in} in, {edges_out} out")
    return "\n".join(lines)


def _changed_leaves(graph: _Graph) -> set:
    """The leaves changed in place (an optimizer step, ``load_state_dict``) after some op of
    the graph that reads them was made: that op's data was computed from their old numbers."""
    if not _CHANGED:  # nothing was changed in place since the process started (or the record was cleared)
        return frozenset()
    order, is_op = graph.order, graph.is_op
    return {order[j] for j, i, _ in graph.edges if not is_op[j] and changed_after(order[j], order[i]._id)}


# --- what a node says ---------------------------------------------------------------------
class _Text:
    """A node's text: its name (label and/or op), its data, and its gradient once reached;
    a leaf in ``changed`` says that its numbers are newer than the ops that read them."""

    def __init__(self, show_label: bool, show_data: bool, show_grad: bool, changed=frozenset()):
        self.show_label, self.show_data, self.show_grad = show_label, show_data, show_grad
        self.changed = changed

    def __call__(self, node, parameter: bool) -> str:
        op = str(node._op)
        label = node.label if self.show_label else ""
        name = f"{label} = {op}" if op and label else op or label
        lines = [name] if name else []
        if self.show_data:
            data = node.data
            shape = f"{'×'.join(map(str, data.shape))} " if isinstance(data, np.ndarray) and data.ndim else ""
            lines += _numbers(data, "data " + shape)
        if self.changed and node in self.changed:
            lines.append("changed in place after this graph was built")
        if self.show_grad and node.grad is not type(node)._EMPTY_GRAD:
            lines += _numbers(node.grad, "grad ")
        return "\n".join(lines) or ("parameter" if parameter else "constant")


    def entries(self, name: str, nodes: list) -> str:
        """The text of the entries of one array, drawn as one node: e.g. ``W_hh`` over
        ``64 entries [0..7, 0..7]`` (the indices they span: only the entries drawn, which may
        be part of the array) and the mean and range of their data and gradients."""
        found = sorted((tuple(map(int, _ENTRY.fullmatch(node.label).group(2).split(","))), k)
                       for k, node in enumerate(nodes))
        nodes = [nodes[k] for _, k in found]  # in the order of their indices
        indices = [index for index, _ in found]
        spans = ""
        if len({len(index) for index in indices}) == 1:
            spans = " [" + ", ".join(f"{min(c)}" if min(c) == max(c) else f"{min(c)}..{max(c)}"
                                     for c in zip(*indices)) + "]"
        lines = [name if self.show_label else "", f"{len(nodes)} entries{spans}"]

        def gather(attribute: str) -> np.ndarray:  # (a gradient backward did not reach is a zero)
            values = [getattr(node, attribute) for node in nodes]
            if attribute == "grad":
                values = [0.0 if v is type(node)._EMPTY_GRAD else v for v, node in zip(values, nodes)]
            return np.array(values, dtype=float)

        if self.show_data:
            lines += _numbers(gather("data"), "data ")
        if self.changed and any(node in self.changed for node in nodes):
            lines.append("changed in place after this graph was built")
        if self.show_grad and any(node.grad is not type(node)._EMPTY_GRAD for node in nodes):
            lines += _numbers(gather("grad"), "grad ")
        return "\n".join(line for line in lines if line)


def _numbers(x, head: str) -> list:
    """A number to 4 significant digits, or an array's entries if it has at most 4, else
    their mean and (on a second line) their range."""
    if not isinstance(x, np.ndarray):
        return [f"{head}{x:.4g}" if isinstance(x, (int, float, np.number)) else f"{head}{x!r}"]  # None set by hand
    flat = x.ravel()
    if flat.size <= 4:
        text = ", ".join(f"{v:.4g}" for v in flat.tolist())
        return [f"{head}[{text}]" if x.ndim else head + text]
    return [f"{head}mean {flat.mean():.4g}", f"range [{flat.min():.4g}, {flat.max():.4g}]"]


def _quote(text: str) -> str:
    """``text`` as a DOT string shown literally, its lines joined by DOT's line break.
    Control characters (and lone surrogates) are written as their escapes (``\\x1b``): dot
    refuses some, and the SVG it writes with others is not well-formed XML."""
    if _UNPRINTABLE.search(text):  # (rare: searching is cheaper than a substitution that finds nothing)
        text = _UNPRINTABLE.sub(_escape, text)
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


_UNPRINTABLE = re.compile("[\x00-\x08\x0b-\x1f\x7f\ud800-\udfff]")


def _escape(match) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


# --- gradient view: how much gradient passes along each edge ---------------------------------
def _edge_flows(graph: _Graph) -> dict:
    """``{(parent, child): size}`` for every edge: the size of what the child's backward adds
    into the parent's gradient (|g| for a Value, the L2 norm for a Tensor; summed over both
    uses when the parent is used twice; 0 when it adds nothing, as a relu that is off adds
    nothing on the value engine), or None when no gradient passes (the child was not
    reached, or the parent takes no gradient)."""
    flows = {}
    for i, child in enumerate(graph.order):
        if graph.is_op[i]:
            parents = list(dict.fromkeys(child._prev))
            for p, size in zip(parents, _contributions(child, parents)):
                flows[(graph.index[p], i)] = size
    return flows


def _contributions(node, parents: list) -> list:
    """Run ``node``'s backward alone, into emptied parent gradients, and read what arrived.

    Each parent's whole state (its gradient, and whatever bookkeeping the node kind keeps
    beside it) is saved first and restored exactly after, so drawing changes no gradient.
    """
    backward = getattr(node._op, "backward", None)
    if backward is None or node.grad is type(node)._EMPTY_GRAD:
        return [None] * len(parents)
    saved = [slot_values(p) for p in parents]
    try:
        for p in parents:
            p.grad = type(p)._EMPTY_GRAD
        try:
            backward(node)
            # NOTE: read before the kind settles what it keeps provisionally: a Tensor's
            # gradient kept as rows would become an array the size of the whole sequence
            # at every step, which made the view quadratic in the number of steps.
            return [_arrived(p) for p in parents]
        except (TypeError, ValueError, AttributeError) as e:  # a gradient set by hand to the wrong thing
            raise (ValueError if isinstance(e, ValueError) else TypeError)(
                f"draw_graph(gradient_view=True): cannot pass back the gradient of {node._describe()}: "
                f"it holds {node.grad!r:.80} ({e}). {node._how_to_reset()}, and run backward() again"
            ) from None
    finally:
        for p, state in zip(parents, saved):
            for name, value in state.items():
                setattr(p, name, value)
        node._settle_grads()  # nothing left to settle: it clears the kind's records of the pass


def _arrived(p):
    """The size of what arrived in ``p.grad``; 0.0 if nothing did but ``p`` takes gradients
    (a Value behind a relu that is off passes nothing on rather than add a zero), None if it
    takes none (a Tensor constant)."""
    if p.grad is type(p)._EMPTY_GRAD:
        return 0.0 if getattr(p, "requires_grad", True) else None
    return type(p)._grad_norm(p.grad)


_DECADES = 4.0  # edges 10,000 times smaller than the largest get the thinnest, palest line
_RAMP = ((0.85, 0.85, 0.85), (0.96, 0.62, 0.33), (0.55, 0.0, 0.0))  # light grey, orange, dark red


def _flow_style(size, largest: float) -> list:
    """Edge attributes for a gradient of ``size`` (None: no gradient) on the log scale."""
    if size is None:
        return ['style=dotted', 'color="#c8c8c8"', 'tooltip="no gradient passes here"']
    if not math.isfinite(size):
        t = 1.0
    elif size <= 0.0:
        t = 0.0
    else:
        t = min(1.0, max(0.0, 1.0 + math.log10(size / largest) / _DECADES))
    tooltip = f'tooltip="gradient passed back: {size:.6g}"'
    return [f"penwidth={0.5 + 4.5 * t:.2f}", f'color="{_ramp(round(t, 2))}"', tooltip]


@cache
def _ramp(t: float) -> str:
    k = min(int(t * (len(_RAMP) - 1)), len(_RAMP) - 2)
    u = t * (len(_RAMP) - 1) - k
    rgb = (a + (b - a) * u for a, b in zip(_RAMP[k], _RAMP[k + 1]))
    return "#" + "".join(f"{round(255 * c):02x}" for c in rgb)


# --- the DOT text -------------------------------------------------------------------------------
_NODE_STYLE = {
    "op": 'shape=box style="rounded,filled" fillcolor="#ffffff" color="#707070"',
    "output": 'shape=box style="rounded,filled" fillcolor="#d9f0d3" color="#2e7d32" penwidth=2',
    "constant": 'shape=box style=filled fillcolor="#ececec" color="#a8a8a8" fontcolor="#444444"',
    "parameter": 'shape=box style=filled fillcolor="#d6e6f5" color="#2f6aa3"',
    "shared parameter": 'shape=hexagon style=filled fillcolor="#ffd591" color="#c2410c" penwidth=2',
    "shared constant": 'shape=hexagon style=filled fillcolor="#ececec" color="#808080" penwidth=2',
    "step": 'shape=box3d style=filled fillcolor="#e3ecf8" color="#4a6fa5"',
}
_BOX_STYLE = {
    "step": 'style="rounded,dashed" color="#6f8fb8" fontcolor="#33507a" labeljust=l',
    "other": 'style="rounded,filled" fillcolor="#f4f4f4" color="#b0b0b0" fontsize=14 labeljust=l',
}


def _node_kind(graph: _Graph, shared: set, i: int) -> str:
    if graph.is_op[i]:
        return "output" if i in graph.roots else "op"
    return ("shared " if i in shared else "") + ("parameter" if _is_parameter(graph.order[i]) else "constant")


def _dot_body(graph: _Graph, boxes: _Boxes, text: _Text, flows, group: bool, edge_labels: bool,
              steps_per_row: int | None, rankdir: str):
    """The DOT statements (nodes inside nested clusters, then edges) and the number of edges."""
    order = graph.order
    if not (boxes.folded and steps_per_row and any(box.column >= steps_per_row for box in boxes.steps)):
        steps_per_row = None  # no row to wrap (boxes cannot be stacked in order: only folded steps wrap)
    lines = []
    clusters = itertools.count()  # box numbers (a small graph may sit in more boxes than it has nodes)

    first_entries = {members[0]: (name, members) for name, members in boxes.entries}

    def write(box: _Box, indent: str) -> None:
        for i in box.nodes:
            if boxes.rep[i] != i and i not in first_entries:
                continue  # an entry of an array, drawn with the first one
            kind = _node_kind(graph, boxes.shared, i)
            if i in first_entries:
                name, members = first_entries[i]
                label = text.entries(name, [order[j] for j in members])
            else:
                label = text(order[i], kind.endswith("parameter"))
            lines.append(f"{indent}{boxes.name(boxes.rep[i])} [label={_quote(label)} {_NODE_STYLE[kind]}]\n")
        for child in box.sorted_children():
            if child.folded:
                lines.append(f"{indent}s{child.step} [label={_quote(boxes.step_labels[child.step])} "
                             f"{_NODE_STYLE['step']}]\n")
            elif not group:
                write(child, indent)
            else:
                style = _BOX_STYLE["step" if child.step >= 0 else "other"]
                lines.append(f"{indent}subgraph cluster_{next(clusters)} {{\n")
                lines.append(f"{indent}\tgraph [label={_quote(child.tag)} {style}]\n")
                write(child, indent + "\t")
                lines.append(f"{indent}}}\n")
            if child.step >= 0 and _same_row(child, _next_step(boxes, child), steps_per_row):
                lines.append(f"{indent}j{child.step} [shape=point style=invis width=0 height=0]\n")

    write(boxes.top, "\t")
    lines += _time_order(graph, boxes, steps_per_row, rankdir in ("LR", "RL"))
    edges = _drawn_edges(graph, boxes, flows)
    lines += _edge_lines(edges, boxes.name, _rows(boxes, steps_per_row), flows is not None, edge_labels)
    return lines, len(edges)


def _drawn_edges(graph: _Graph, boxes: _Boxes, flows) -> list:
    """``(tail, head, uses, size)`` for every edge drawn: the graph's own edges or, once the
    steps are folded, one per pair of drawn nodes (edges inside a step vanish; the others
    merge, adding up their uses and combining their gradient sizes as an L2 norm)."""
    if not boxes.folded:
        return [(j, i, uses, None if flows is None else flows[(j, i)]) for j, i, uses in graph.edges]
    rep = boxes.rep
    merged: dict[tuple, list] = {}
    for j, i, uses in graph.edges:
        key = (rep[j], rep[i])
        if key[0] != key[1]:
            entry = merged.setdefault(key, [0, []])
            entry[0] += uses
            if flows is not None:
                entry[1].append(flows[(j, i)])
    return [(a, b, uses, _merge(sizes)) for (a, b), (uses, sizes) in merged.items()]


def _merge(sizes: list):
    """The size of several gradients passed along one merged edge: the L2 norm of their sizes."""
    known = [s for s in sizes if s is not None]
    if not known:
        return None
    return known[0] if len(known) == 1 else math.hypot(*known)


def _edge_lines(edges: list, name, rows, gradient_view: bool, edge_labels: bool) -> list:
    largest = max((e[3] for e in edges if e[3] is not None and 0.0 < e[3] < math.inf), default=1.0)
    lines = []
    for a, b, uses, size in edges:
        attrs, xlabel = [], []
        across = rows is not None and rows[a] and rows[b] and rows[a][0] == rows[b][0] and rows[a][1] != rows[b][1]
        if uses > 1:
            # NOTE: an edge into a later row is laid out as one within a rank, where Graphviz
            # (2.43) cannot route a label: it fails with "illegal values of prev 1 and next 1".
            if across:
                xlabel.append(f"×{uses}")
            else:
                attrs.append(f'label="×{uses}"')
        if across:
            attrs.append("constraint=false")  # an edge into a later row must not pull that row right
        if gradient_view:
            attrs.append("dir=back")
            attrs += _flow_style(size, largest)
            if edge_labels and size is not None:
                xlabel.append(f"{size:.3g}")
        if xlabel:  # one xlabel: of two, Graphviz keeps only the last
            attrs.append(f'xlabel="{" ".join(xlabel)}"')
        tail, head = name(a), name(b)
        lines.append(f"\t{tail} -> {head} [{' '.join(attrs)}]\n" if attrs else f"\t{tail} -> {head}\n")
    return lines


# --- keeping time steps in order, left to right, in rows ------------------------------------------
def _next_step(boxes: _Boxes, box: _Box):
    """The step box after ``box`` among its siblings, or None."""
    k = box.step + 1
    if k < len(boxes.steps) and boxes.steps[k].parent is box.parent:
        return boxes.steps[k]
    return None


def _same_row(a: _Box, b, steps_per_row) -> bool:
    return b is not None and (not steps_per_row or a.column // steps_per_row == b.column // steps_per_row)


def _time_order(graph: _Graph, boxes: _Boxes, steps_per_row, upward: bool) -> list:
    """Invisible edges that put each time step after the previous one in the layout.

    Dot only keeps two boxes side by side when every node of the second is ranked after
    every node of the first: so the nodes of step t that use nothing else of step t (its
    entries) get an invisible edge from a hidden point ``j<t>`` that every node of step
    t - 1 that feeds nothing else of it (its exits) points to. A folded step is one node.
    After ``steps_per_row`` steps, the next step starts a new row: the edges into it do not
    constrain the layout (see :func:`_rows`), and folded rows are stacked by :func:`_stacked_rows`.
    """
    step_of, n = boxes.step_of, len(graph.order)
    feeds_inside, fed_inside = bytearray(n), bytearray(n)
    for j, i, _ in graph.edges:
        if step_of[i] >= 0 and step_of[i] == step_of[j]:
            feeds_inside[j] = fed_inside[i] = 1
    lines = []
    for box in boxes.steps:
        after = _next_step(boxes, box)
        if not _same_row(box, after, steps_per_row):
            continue
        k, hidden = box.step, f"j{box.step}"
        if box.folded:
            lines.append(f"\ts{k} -> {hidden} [style=invis]\n\t{hidden} -> s{after.step} [style=invis]\n")
            continue
        lines += [f"\tn{i} -> {hidden} [style=invis]\n" for i in boxes.step_nodes[k] if not feeds_inside[i]]
        lines += [f"\t{hidden} -> n{i} [style=invis]\n" for i in boxes.step_nodes[after.step] if not fed_inside[i]]
    return lines + _stacked_rows(boxes, steps_per_row, upward)


def _stacked_rows(boxes: _Boxes, steps_per_row, upward: bool) -> list:
    """Rows of folded steps stacked in time order: the k-th steps of all rows share a rank,
    chained by invisible edges in that rank, which Graphviz lays out in the chain's order
    (``upward`` reverses the chain, as a left-to-right layout stacks it bottom to top)."""
    if not steps_per_row:
        return []
    columns: dict[tuple, list] = {}
    for box in boxes.steps:
        columns.setdefault((id(box.parent), box.column % steps_per_row), []).append(f"s{box.step}")
    lines = []
    for names in columns.values():
        if len(names) > 1:
            chain = " -> ".join(reversed(names) if upward else names)
            lines.append(f"\t{{rank=same; {chain} [style=invis]}}\n")
    return lines


def _rows(boxes: _Boxes, steps_per_row):
    """For every drawn node (nodes, folded steps, then arrays of entries): ``(its step's box,
    row)`` if it is in a time step, else None; or None if no sequence is long enough to wrap."""
    if not steps_per_row:
        return None
    keys = [(id(box.parent), box.column // steps_per_row) for box in boxes.steps]
    return [keys[k] if k >= 0 else None for k in boxes.step_of] + keys + [None] * len(boxes.entries)
