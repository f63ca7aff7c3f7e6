"""The graph core shared by both node kinds, :class:`~autograd.Value` and :class:`~autograd.Tensor`.

A node holds ``data``, ``grad``, its parents and the :class:`Op` that made it.
Everything that walks or tags the graph lives here, written once:

* the recording state: :func:`no_grad`, :func:`scope`, :func:`detect_anomaly`;
* the traversal: :func:`topological_order` (iterative, so no depth can break it);
* the backward loop: :func:`backward`, which calls each op's ``backward(node)`` in
  reverse topological order. An op's ``backward`` adds its vector-Jacobian product into
  the parents' ``grad``; how that addition works (floats, or arrays reduced back to
  the parent's shape) belongs to the node kind, not to this loop.

A node kind subclasses :class:`Node` and provides its class-level hooks:
``_EMPTY_GRAD`` (the gradient of a node backward has not reached), ``_is_finite(data)``,
``_seed(node, grad)`` (the gradient the output starts from) and ``_add_grads(a, b)``.
"""

from __future__ import annotations

import itertools
from contextlib import contextmanager
from operator import attrgetter

__all__ = [
    "AnomalyError",
    "Node",
    "Op",
    "backward",
    "current_scope",
    "detect_anomaly",
    "enable_grad",
    "is_anomaly_enabled",
    "is_grad_enabled",
    "no_grad",
    "scope",
    "topological_order",
]


class AnomalyError(FloatingPointError):
    """A non-finite value or gradient caught under :func:`detect_anomaly`."""


class Op(str):
    """An operation in the graph: its name, and ``backward(node)`` adding the node's
    vector-Jacobian product into its parents' gradients.

    NOTE: an ``Op`` *is* its name (a ``str``), so code written for micrograd, which keeps
    ``_op`` as a string (``str(id(n)) + n._op``), keeps working.
    """

    def __new__(cls, name: str, backward=None):
        # Each op gets its own subclass holding ``backward``: the backward loop finds it on
        # the type, which is cheaper than an instance attribute of a str subclass.
        kind = type(cls.__name__, (cls,), {"__slots__": (), "backward": staticmethod(backward)})
        return super().__new__(kind, name)

    def __reduce__(self):
        return (Op, (str(self), type(self).backward))

    def __repr__(self) -> str:
        return f"Op({str.__repr__(self)})"


# In a node's ``_p1``: its parents, more than two of them, are the tuple in ``_p0``.
MANY = object()

# The op of a result computed while recording was off: it has no parents, and backward
# from it is refused. Its name is empty, so it reads as "no op", as a leaf's does.
NOT_RECORDED = Op("")


class _State:
    """The recording settings. NOTE: they are global to the process, not per thread.
    ``plain`` caches the common case (recording on, anomaly checks off) so that the hot
    path tests one flag."""

    __slots__ = ("grad_enabled", "anomaly", "scope", "plain")

    def __init__(self):
        self.grad_enabled = True
        self.anomaly = False
        self.scope: tuple[str, ...] = ()
        self.plain = True

    def _update(self):
        self.plain = self.grad_enabled and not self.anomaly


STATE = _State()
_next_id = itertools.count().__next__
_by_id = attrgetter("_id")


def is_grad_enabled() -> bool:
    """Whether operations are being recorded for backward."""
    return STATE.grad_enabled


def is_anomaly_enabled() -> bool:
    """Whether :func:`detect_anomaly` checks are on."""
    return STATE.anomaly


@contextmanager
def _setting(name: str, value):
    old = getattr(STATE, name)
    setattr(STATE, name, value)
    STATE._update()
    try:
        yield
    finally:
        setattr(STATE, name, old)
        STATE._update()


def no_grad():
    """Context manager under which nothing is recorded: results of operations are
    constants with no parents, and ``backward`` cannot start from them.

    Use it for evaluation, for optimizer updates, and wherever a value must not be
    differentiated through. Nestable; :func:`enable_grad` turns recording back on inside.
    """
    return _setting("grad_enabled", False)


def enable_grad():
    """Context manager that turns recording back on (inside :func:`no_grad`)."""
    return _setting("grad_enabled", True)


def detect_anomaly():
    """Context manager under which the first non-finite number raises :class:`AnomalyError`.

    Forward: the first op whose result holds a NaN or an infinity. Backward: the first op
    whose vector-Jacobian product gives one of its inputs a non-finite gradient. The
    message names the op, its scope and its inputs. Outside this context, NaN and Inf
    propagate as in IEEE arithmetic. The checks cost time on every op; use it to debug.
    """
    return _setting("anomaly", True)


def scope(name: str):
    """Context manager that tags every node created inside it with ``name``.

    Scopes nest: inside ``scope("layer 0")`` and ``scope("t=3")`` a node's scope is
    ``("layer 0", "t=3")``. Rendering groups nodes by scope (one box per layer, one per
    time step inside it) and error messages name it.
    """
    if not isinstance(name, str):
        raise TypeError(f"scope() expects a str name, got {type(name).__name__}")
    return _Scope(name)


class _Scope:
    # NOTE: a class, not a @contextmanager generator: an RNN enters one per time step, and
    # the generator's machinery cost as much as a step's own ops.
    __slots__ = ("name", "old")

    def __init__(self, name: str):
        self.name = name

    def __enter__(self) -> None:
        self.old = STATE.scope
        STATE.scope = self.old + (self.name,)

    def __exit__(self, *exc) -> None:
        STATE.scope = self.old


def current_scope() -> tuple[str, ...]:
    """The scope tags that a node created now would get."""
    return STATE.scope


def format_scope(tags: tuple[str, ...]) -> str:
    return "/".join(tags) if tags else "<top level>"


class Node:
    """A node of the computation graph; base of :class:`Value` and :class:`Tensor`.

    Attributes: ``data``, ``grad``, ``label``; ``_prev`` (the parents, a tuple), ``_op``
    (the :class:`Op` that made it; ``""`` for a leaf), ``_scope`` (tuple of scope tags),
    ``_id`` (creation order, which is a topological order of any graph).

    NOTE: the parents are stored in two slots, ``_p0`` and ``_p1`` (``None`` where absent;
    a leaf sets only ``_p0``). An op with more than two parents (some Tensor ops) stores
    their tuple in ``_p0`` and :data:`MANY` in ``_p1``. ``_prev`` is read from those. A
    tuple per node would double the objects the garbage collector tracks, and every slot
    is visited by each collection, which measurably slows down building large scalar
    graphs; for the same reason ``label`` is only stored when it is set.
    """

    __slots__ = ("data", "grad", "_label", "_p0", "_p1", "_op", "_scope", "_id")

    _EMPTY_GRAD = None  # the gradient of a node that backward has not reached

    @staticmethod
    def _is_finite(data) -> bool:
        raise NotImplementedError

    @classmethod
    def _seed(cls, node, grad):
        raise NotImplementedError

    @staticmethod
    def _add_grads(a, b):
        """The sum of two gradients of this node (from two backward passes)."""
        return a + b

    # --- graph structure, for rendering and diagnostics ---------------------------
    @property
    def op(self) -> str:
        """Name of the op that produced this node (``""`` for a leaf)."""
        return str(self._op)

    @property
    def label(self) -> str:
        """A name for this node in drawings and messages (``""`` if none was given)."""
        return getattr(self, "_label", "")

    @label.setter
    def label(self, name: str) -> None:
        self._label = name

    @property
    def _prev(self) -> tuple:
        a = self._p0
        if a is None:
            return ()
        b = self._p1
        if b is None:
            return (a,)
        return a if b is MANY else (a, b)

    @property
    def parents(self) -> tuple:
        """The nodes this node was computed from."""
        return self._prev

    @property
    def scope(self) -> tuple[str, ...]:
        """The scope tags this node was created under (see :func:`autograd.scope`)."""
        return self._scope

    @property
    def is_leaf(self) -> bool:
        return self._p0 is None

    def _describe(self) -> str:
        """One line naming this node for error messages."""
        if self._op is NOT_RECORDED:
            name = self.label or "constant"
        else:
            name = self.label or (self.op or "leaf")
        return f"{name} {self._summary()}"

    def _summary(self) -> str:
        return repr(self.data)

    def backward(self, grad=None) -> None:
        """Reverse-mode differentiation from this node; see :func:`autograd.backward`."""
        backward(self, grad)


def record(out: Node, prev: tuple, op: Op, track: bool = True) -> Node:
    """Attach ``out`` to the graph as the result of ``op`` on ``prev``.

    Both node kinds finish every op here (the scalar engine inlines the common case):
    outside :func:`no_grad`, and when ``track`` (some input needs a gradient), the node
    remembers its parents; under :func:`detect_anomaly` a non-finite result raises.
    """
    out._scope = STATE.scope
    out._id = _next_id()
    if track and STATE.grad_enabled:
        link(out, prev)
        out._op = op
    else:
        out._p0 = None
        out._op = NOT_RECORDED
    if STATE.anomaly and not out._is_finite(out.data):
        raise AnomalyError(
            f"op '{op}' produced a non-finite value {out._summary()}\n"
            f"  scope: {format_scope(out._scope)}\n" + _inputs(prev)
        )
    return out


def leaf(node: Node, data, grad, label: str = "") -> Node:
    """Fill in ``node`` as a leaf made now: no parents, the current scope, the next id."""
    node.data = data
    node.grad = grad
    if label:
        node._label = label
    node._p0 = None
    node._op = ""
    node._scope = STATE.scope
    node._id = _next_id()
    return node


def link(out: Node, prev: tuple) -> None:
    """Store the parents ``prev`` on ``out`` (see the NOTE on :class:`Node`)."""
    n = len(prev)
    if n > 2:
        out._p0, out._p1 = tuple(prev), MANY
    else:
        out._p0 = prev[0] if n else None
        out._p1 = prev[1] if n > 1 else None


def _inputs(prev) -> str:
    return "".join(f"  input {i}: {p._describe()}\n" for i, p in enumerate(prev))


def topological_order(*roots: Node) -> list:
    """Every node reachable from ``roots``, each once and after all of its parents.

    Iterative: it collects the reachable nodes with an explicit stack, then sorts them by
    creation order, which is topological because a node's parents exist before it.
    """
    return _walk(roots, object())[0]


def _walk(roots, empty) -> tuple[list, list]:
    """:func:`topological_order`, and (node, grad) for the nodes whose grad is not ``empty``."""
    seen = set(roots)
    held = [(r, r.grad) for r in seen if r.grad is not empty]
    hold = held.append
    add = seen.add
    stack = list(seen)
    pop = stack.pop
    push = stack.append
    while stack:
        node = pop()
        p = node._p0
        if p is None:
            continue
        q = node._p1
        if q is MANY:
            for r in p:
                if r not in seen:
                    add(r)
                    push(r)
                    if r.grad is not empty:
                        hold((r, r.grad))
            continue
        if p not in seen:
            add(p)
            push(p)
            if p.grad is not empty:
                hold((p, p.grad))
        if q is not None and q not in seen:
            add(q)
            push(q)
            if q.grad is not empty:
                hold((q, q.grad))
    return sorted(seen, key=_by_id), held


def backward(root: Node, grad=None) -> None:
    """Fill ``grad`` on every node that ``root`` depends on with d root / d node.

    ``grad`` is the seed (the gradient of some scalar with respect to ``root``); the node
    kind decides the default (1.0 for a scalar). Gradients *accumulate*: a second
    backward adds to the gradients already there, on leaves and intermediates alike, as
    if the two passes had been one. Reset them with ``zero_grad`` (on a module or an
    optimizer) or by assigning ``node.grad = 0.0`` (``None`` for a Tensor).
    """
    if not isinstance(root, Node):
        raise TypeError(f"backward() expects a Value or Tensor, got {type(root).__name__}")
    if root._op is NOT_RECORDED:
        raise RuntimeError(
            f"backward() from {root._describe()}: it is not the output of a recorded "
            "graph (it was computed under no_grad() or detached)"
        )
    seed = type(root)._seed(root, grad)
    # A pass computes fresh gradients: those already there are held aside and added back
    # at the end, so interior nodes do not propagate them twice, and a pass that raises
    # leaves every gradient as it was before it started.
    empty = root._EMPTY_GRAD
    order, held = _walk((root,), empty)
    for node, _ in held:
        node.grad = empty
    root.grad = seed
    order.reverse()
    try:
        if STATE.anomaly:
            _run_checked(order, empty)
        else:
            for node in order:
                op = node._op
                if op and node.grad is not empty:  # unreached nodes pass nothing on
                    op.backward(node)
    except BaseException:
        for node in order:
            node.grad = empty
        for node, old in held:
            node.grad = old
        raise
    for node, old in held:
        node.grad = old if node.grad is empty else node._add_grads(old, node.grad)


def _run_checked(order, empty) -> None:
    is_finite = order[0]._is_finite
    if not is_finite(order[0].grad):
        raise AnomalyError(f"the seed gradient is not finite: {order[0].grad!r}")
    for node in order:
        op = node._op
        if not op or node.grad is empty:
            continue
        op.backward(node)
        for i, p in enumerate(node._prev):
            g = p.grad
            if g is not None and not is_finite(g):
                raise AnomalyError(
                    f"backward of op '{op}' gave input {i} a non-finite gradient {g!r}\n"
                    f"  scope: {format_scope(node._scope)}\n"
                    f"  output: {node._describe()}, grad {node.grad!r}\n" + _inputs(node._prev)
                )
