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
``_seed(node, grad)`` (the gradient the output starts from), ``_add_grads(a, b)``,
``_grad_norm(g)`` (a gradient's size, also of one kept provisionally, for drawings) and
``_settle_grads()`` (called at the end of every pass: gradients the kind kept in a
provisional form during the pass become final) and ``_reached_leaves(leaves)`` (also at the
end of a pass: the leaves it found, whether or not a gradient reached them).
"""

from __future__ import annotations

import functools
import heapq
import inspect
import itertools
import sys
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
    """An operation in the graph: its name, and ``backward(op, node)`` adding the node's
    vector-Jacobian product into its parents' gradients. Keyword arguments are constants
    of the op that its backward reads (``op.exponent`` of ``x**p``).

    NOTE: an ``Op`` *is* its name (a ``str``), so code written for micrograd, which keeps
    ``_op`` as a string (``str(id(n)) + n._op``), keeps working.
    """

    __slots__ = ()
    constants: dict = {}
    # The inputs whose numbers the backward reads (positions), or None for all of them: an
    # op whose backward reads none (+, a reshape, tanh, which reads its output) can run at
    # an input changed in place since (see _Pass.refuse_stale). Given as a constant: reads=()
    # for none; for a product, {k: the inputs whose gradients read input k}: {0: (1,), 1: (0,)}
    # for a * b, whose b is read only if a takes a gradient.
    reads = None

    def __new__(cls, name: str, backward=None, **constants):
        # Each op gets its own subclass, with ``backward`` as a method: the backward loop
        # calls ``node._op.backward(node)`` once per node, and a method found on the type of
        # a slot-less object is the cheapest call CPython makes from there.
        kind = type(cls.__name__, (cls,), {"__slots__": (), "backward": backward, "constants": constants,
                                           **constants})
        return super().__new__(kind, name)

    _key = None

    def register(self, key: str) -> Op:
        """Let copies and pickles of this op be this very op, found again by ``key`` (unique,
        e.g. ``"autograd.tensor.ADD"``): for ops tested by identity, and ops whose backward
        is a closure, which pickle cannot store."""
        type(self)._key = key
        _REGISTERED[key] = self
        return self

    def __reduce__(self):
        key = type(self)._key
        if key is not None:
            return (_registered_op, (key,))
        return (_rebuild_op, (str(self), type(self).backward, self.constants))

    def __repr__(self) -> str:
        return f"Op({str.__repr__(self)})"


_REGISTERED: dict[str, Op] = {}


def _registered_op(key: str) -> Op:
    return _REGISTERED[key]


def _rebuild_op(name, backward, constants):
    return Op(name, backward, **constants)


class _Marker:
    """A unique marker object that copies and pickles as itself (backward tests it by identity)."""

    __slots__ = ("name",)

    def __init__(self, name: str):
        self.name = name

    def __reduce__(self) -> str:
        return self.name  # the module-level name: pickle and copy give back this very object

    def __repr__(self) -> str:
        return self.name


# In a node's ``_p1``: its parents, more than two of them, are the tuple in ``_p0``.
MANY = _Marker("MANY")

# In a copy's state (pickle, deepcopy): the gradient was its kind's ``_EMPTY_GRAD``, "not
# reached yet", which for a Value is one particular 0.0 object that a pickle would not keep.
EMPTY_GRAD = _Marker("EMPTY_GRAD")

# The op of a result computed while recording was off: it has no parents, and backward
# from it is refused. Its name is empty, so it reads as "no op", as a leaf's does.
NOT_RECORDED = Op("").register("autograd.graph.NOT_RECORDED")


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
# Creation numbers: ``next(_ids)`` (cheaper to call than the bound ``__next__``).
_ids = itertools.count()
_by_id = attrgetter("_id")


def mark() -> int:
    """A creation number: every node made after this call has a larger ``_id`` (to tell the
    nodes a step made from those it was given)."""
    return next(_ids)


def is_grad_enabled() -> bool:
    """Whether operations are being recorded for backward."""
    return STATE.grad_enabled


def is_anomaly_enabled() -> bool:
    """Whether :func:`detect_anomaly` checks are on."""
    return STATE.anomaly


class _Setting:
    """A context manager that sets one recording setting and restores it on leaving.

    NOTE: a class, not a ``@contextmanager`` generator: the object :func:`no_grad` returns
    may be kept and entered again, also inside itself (each entry remembers what it
    replaced), as PyTorch's may. Also a decorator: ``@no_grad()`` runs the function under
    the setting on every call."""

    __slots__ = ("name", "value", "_saved")

    def __init__(self, name: str, value):
        self.name = name
        self.value = value
        self._saved = []

    def __enter__(self) -> None:
        self._saved.append(getattr(STATE, self.name))
        setattr(STATE, self.name, self.value)
        STATE._update()

    def __exit__(self, *exc) -> None:
        setattr(STATE, self.name, self._saved.pop())
        STATE._update()

    def __call__(self, f):
        if not callable(f):
            raise TypeError(f"{self!r} decorates a function, got {type(f).__name__}")
        if inspect.isgeneratorfunction(f):
            return self._generator(f)

        @functools.wraps(f)
        def under_setting(*args, **kwargs):
            with self:
                return f(*args, **kwargs)

        return under_setting

    def _generator(self, f):
        """A generator function's body runs each time the generator resumes: each resume runs
        under the setting, and the caller's code between them under the caller's."""

        @functools.wraps(f)
        def under_setting(*args, **kwargs):
            gen = f(*args, **kwargs)
            step, value = gen.send, None
            while True:
                try:
                    with self:
                        out = step(value)
                except StopIteration as end:
                    return end.value
                try:
                    value, step = (yield out), gen.send
                except GeneratorExit:
                    with self:
                        gen.close()
                    raise
                except BaseException as e:  # thrown in by the caller: into the body, under the setting
                    value, step = e, gen.throw

        return under_setting

    def __repr__(self) -> str:
        return {("grad_enabled", False): "no_grad()", ("grad_enabled", True): "enable_grad()",
                ("anomaly", True): "detect_anomaly()"}[self.name, self.value]


def no_grad():
    """Context manager under which nothing is recorded: results of operations are
    constants with no parents, and ``backward`` cannot start from them.

    Use it for evaluation, for optimizer updates, and wherever a value must not be
    differentiated through. Nestable; :func:`enable_grad` turns recording back on inside.
    Also a decorator (``@no_grad()``), and the object it returns may be entered again.
    """
    return _Setting("grad_enabled", False)


def enable_grad():
    """Context manager that turns recording back on (inside :func:`no_grad`)."""
    return _Setting("grad_enabled", True)


def detect_anomaly():
    """Context manager under which the first non-finite number raises :class:`AnomalyError`.

    Forward: the first op whose result holds a NaN or an infinity. Backward: the first op
    whose vector-Jacobian product gives one of its inputs a non-finite gradient. The
    message names the op, its scope and its inputs. Outside this context, NaN and Inf
    propagate as in IEEE arithmetic. The checks cost time on every op; use it to debug.
    """
    return _Setting("anomaly", True)


class scope:
    """Context manager that tags every node created inside it with ``name``.

    Scopes nest: inside ``scope("layer 0")`` and ``scope("t=3")`` a node's scope is
    ``("layer 0", "t=3")``. Rendering groups nodes by scope (one box per layer, one per
    time step inside it) and error messages name it.
    """

    # NOTE: a class, not a @contextmanager generator or a function returning one: an RNN
    # enters one per time step, and the generator's machinery cost as much as a step's own
    # ops. Leaving drops the last tag (``with`` blocks nest), so one scope object may be
    # entered again inside itself.
    __slots__ = ("name",)

    def __init__(self, name: str):
        if not isinstance(name, str):
            raise TypeError(f"scope() expects a str name, got {type(name).__name__}")
        self.name = name

    def __enter__(self) -> None:
        STATE.scope += (self.name,)

    def __exit__(self, *exc) -> None:
        STATE.scope = STATE.scope[:-1]

    def __repr__(self) -> str:
        return f"scope({self.name!r})"


def flag(what: str, value) -> bool:
    """``value`` as a bool, or a clear error naming ``what`` unless it is True or False (numpy's
    too): a string such as ``'no'`` would otherwise count as true."""
    if value is True or value is False:
        return value
    np = sys.modules.get("numpy")  # loaded if the value can be numpy's (the core does not import it)
    if np is not None and isinstance(value, np.bool_):
        return bool(value)
    raise TypeError(f"{what} must be True or False, got {type(value).__name__}: {value!r}")


def too_large(x: int, what: str, kind: str = "a float") -> ValueError:
    """The error for an int past the range of the float ``kind``, giving its size (``str()``
    refuses ints past 4,300 digits)."""
    digits = int(abs(x).bit_length() * 0.30103) + 1
    return ValueError(f"{what}: an integer of about {digits} digits is too large for {kind}")


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
    # The gradient of a node the pass found but no gradient reached (all its uses behind a
    # relu that is off, say): a kind that skips adding zeros says "reached, 0" with it.
    _NOTHING_ARRIVED = None

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

    @staticmethod
    def _grad_norm(g) -> float:
        """The size of the gradient ``g`` (the L2 norm), also of one kept provisionally."""
        return abs(float(g))

    @staticmethod
    def _settle_grads() -> None:
        """At the end of a pass: make final any gradient this kind kept provisionally."""

    @staticmethod
    def _reached_leaves(leaves) -> None:
        """At the end of a pass: ``leaves`` are the leaves it found (their gradients are
        this pass's own, before the held ones are added back)."""

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
        self._label = _label(name)

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

    # --- ordering comparisons: not ops, refused saying what to compare ---------------------
    _COMPARED = "v.data {} x"  # what a kind suggests comparing instead

    def _refuse_comparison(self, other, symbol: str):
        if not isinstance(other, (Node, int, float)) and not hasattr(other, "__array__"):
            return NotImplemented  # another kind of object may know how to compare with a node
        raise TypeError(
            f"{symbol} on a {type(self).__name__} is not an op (no gradient flows through a comparison): "
            f"compare the numbers, {self._COMPARED.format(symbol)}"
        )

    def __lt__(self, other):
        return self._refuse_comparison(other, "<")

    def __le__(self, other):
        return self._refuse_comparison(other, "<=")

    def __gt__(self, other):
        return self._refuse_comparison(other, ">")

    def __ge__(self, other):
        return self._refuse_comparison(other, ">=")

    def _describe(self) -> str:
        """One line naming this node for error messages."""
        if self._op is NOT_RECORDED:
            name = self.label or "constant"
        else:
            name = self.label or (self.op or "leaf")
        return f"{name} {self._summary()}"

    def _summary(self) -> str:
        return self._summarize(self.data)

    def _how_to_reset(self) -> str:
        """How to reset this node's gradient by hand, for error messages: its kind's own
        "not reached yet" (0.0 for a Value, None for a Tensor)."""
        return f"Reset gradients with zero_grad(), or set the {type(self).__name__}'s grad to {self._EMPTY_GRAD!r}"

    @staticmethod
    def _summarize(x) -> str:
        """A short line for numbers of this node kind (its data, or a gradient) in messages."""
        return repr(x)

    def backward(self, grad=None) -> None:
        """Reverse-mode differentiation from this node; see :func:`autograd.backward`."""
        backward(self, grad)

    def __deepcopy__(self, memo):
        """A copy of the graph behind this node, made without recursion: the nodes not copied
        yet, oldest first, each after its parents, so that copying a node's state meets
        only parents already copied. (Python's own copy descends from node to parent and
        stopped at about 140 ops deep.) Each node is copied as ``copy.copy`` and ``pickle``
        copy it: by ``__getstate__`` and ``__setstate__``."""
        import copy

        found, stack = {}, [self]
        while stack:
            node = stack.pop()
            if id(node) not in memo and id(node) not in found:
                found[id(node)] = node
                stack.extend(node._prev)
        for node in sorted(found.values(), key=_by_id):
            new = memo[id(node)] = object.__new__(type(node))
            new.__setstate__(copy.deepcopy(node.__getstate__(), memo))
            copy._keep_alive(node, memo)  # (as deepcopy keeps what it copied until it is done)
        return memo[id(self)]

    def __getstate__(self):
        # (the __dict__ or None, the slots' values), as Python 3.11's object.__getstate__ gives
        slots = slot_values(self)
        if slots.get("grad", EMPTY_GRAD) is self._EMPTY_GRAD:
            slots["grad"] = EMPTY_GRAD
        return getattr(self, "__dict__", None) or None, slots

    def __setstate__(self, state) -> None:
        # A copy (``copy``, ``deepcopy``, ``pickle``) is a new node: it gets a creation number
        # of its own, made now. Its parents' copies were finished before it (they are part
        # of its state), so creation order stays a topological order, and a graph that mixes
        # copies with the originals, or with nodes of another process, still runs right.
        attributes, slots = state if isinstance(state, tuple) else (state, None)
        if attributes:  # a subclass with a __dict__
            self.__dict__.update(attributes)
        for name, value in (slots or {}).items():
            setattr(self, name, self._EMPTY_GRAD if value is EMPTY_GRAD else value)
        self._id = next(_ids)


@functools.cache
def _slot_names(cls) -> tuple:
    """The attribute names of the slots of ``cls`` and its bases, private ones (``__tag``)
    as Python stores them (``_Class__tag``), as ``object.__getstate__`` lists them."""
    names = []
    for klass in cls.__mro__:
        slots = klass.__dict__.get("__slots__", ())
        for name in [slots] if isinstance(slots, str) else slots:
            if name in ("__dict__", "__weakref__"):
                continue
            if name.startswith("__") and not name.endswith("__"):
                name = f"_{klass.__name__.lstrip('_')}{name}"
            names.append(name)
    return tuple(names)


_UNSET = object()


def slot_values(node: Node) -> dict:
    """The values of the slots of ``node`` that are set, by name (an unset one, such as a
    ``_label`` never given, is left out)."""
    return {name: value for name in _slot_names(type(node))
            if (value := getattr(node, name, _UNSET)) is not _UNSET}


def record(out: Node, prev: tuple, op: Op, track: bool = True) -> Node:
    """Attach ``out`` to the graph as the result of ``op`` on ``prev``.

    Both node kinds finish every op here (the scalar engine inlines the common case):
    outside :func:`no_grad`, and when ``track`` (some input needs a gradient), the node
    remembers its parents; under :func:`detect_anomaly` a non-finite result raises.
    """
    out._scope = STATE.scope
    out._id = next(_ids)
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


def _label(name) -> str:
    """``name`` if it is a str, else a clear error (drawings and messages print labels)."""
    if not isinstance(name, str):
        raise TypeError(f"a node's label must be a str, got {type(name).__name__}: {name!r}")
    return name


def leaf(node: Node, data, grad, label: str = "") -> Node:
    """Fill in ``node`` as a leaf made now: no parents, the current scope, the next id."""
    node.data = data
    node.grad = grad
    if label:
        node._label = _label(label)
    node._p0 = None
    node._op = ""
    node._scope = STATE.scope
    node._id = next(_ids)
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


# id(leaf) -> the creation number current when the leaf's numbers were last changed in
# place (note_changed). NOTE: keyed by id, as nodes take no weak references: an entry can
# outlive its leaf, and a new leaf can get the same id, but only after the entry was made,
# so the entry is older than every graph the new leaf is in and never refuses one.
_CHANGED: dict[int, int] = {}
_CHANGED_LIMIT = 1 << 20  # entries kept before the oldest are forgotten (a missed refusal, never a false one)


def note_changed(node: Node) -> None:
    """Record that the numbers of ``node`` (a leaf: a parameter) were just changed in place,
    as an optimizer step or ``load_state_dict`` does. A backward pass from an output made
    before now that reaches ``node`` is then refused: its ops would read the new numbers and
    give gradients for weights the graph was not built with (PyTorch refuses the same).

    NOTE: the check compares with the output's creation number, one lookup per leaf per
    pass, and then with the oldest op the pass ran: only when a leaf changed after that one
    does it look at the ops that read the leaf (:meth:`_Pass.refuse_stale`), so that a graph
    that reaches back to before the change (a state carried across a training step without
    detaching it) is caught too, without a cost on every op or on every pass, where
    PyTorch's per-tensor version counters cost on every op."""
    if len(_CHANGED) >= _CHANGED_LIMIT:
        _CHANGED.clear()
    _CHANGED[id(node)] = next(_ids)


def changed_after(leaf: Node, made: int) -> bool:
    """Whether ``leaf`` was changed in place (:func:`note_changed`) after the node with
    creation number ``made`` was made."""
    changed = _CHANGED.get(id(leaf))
    return changed is not None and changed > made


def refuse_changed(root: Node, leaves, what: str = "backward()") -> None:
    """A clear error if one of ``leaves`` was changed in place (:func:`note_changed`) after
    ``root`` was made: the ops of ``root``'s graph would read its new numbers."""
    if not _CHANGED:
        return
    made = root._id
    for leaf in leaves:
        if changed_after(leaf, made):
            raise RuntimeError(
                f"{what} from {root._describe()}: {leaf._describe()} was changed in place (an optimizer "
                "step or load_state_dict) after this graph was built, so its gradients would be taken at the "
                "new numbers. Run backward before the step, or run the forward pass again after it"
            )


def _reads(op: Op, parents: tuple, k: int) -> bool:
    """Whether ``op``'s backward reads the numbers of its input ``k`` (see ``Op.reads``)."""
    reads = op.reads
    if reads is None:
        return True
    if isinstance(reads, dict):  # a product: read for the others' gradients, if they take one
        return any(takes_gradient(parents[j]) for j in reads.get(k, ()))
    return k in reads


def takes_gradient(node: Node) -> bool:
    """Whether backward computes a gradient for ``node``: a Tensor that requires one, a Value
    that is not a constant."""
    return getattr(node, "requires_grad", node._op is not NOT_RECORDED)


def topological_order(*roots: Node) -> list:
    """Every node reachable from ``roots``, each once and after all of its parents.

    Iterative: it collects the reachable nodes with an explicit stack, then sorts them by
    creation order, which is topological because a node's parents exist before it.
    """
    for root in roots:
        if not isinstance(root, Node):
            raise TypeError(f"topological_order() expects Values or Tensors (any number of them), got "
                            f"{type(root).__name__}" + (": pass them unpacked, topological_order(*nodes)"
                                                         if isinstance(root, (list, tuple)) else ""))
    seen = set(roots)
    stack = list(seen)
    while stack:
        for parent in stack.pop()._prev:
            if parent not in seen:
                seen.add(parent)
                stack.append(parent)
    return sorted(seen, key=_by_id)


def backward(root: Node, grad=None) -> None:
    """Fill ``grad`` on every node that ``root`` depends on with d root / d node.

    ``grad`` is the seed (the gradient of some scalar with respect to ``root``); the node
    kind decides the default (1.0 for a scalar). Gradients *accumulate*: a second
    backward adds to the gradients already there, on leaves and intermediates alike, as
    if the two passes had been one. Reset them with ``zero_grad`` (on a module or an
    optimizer) or by assigning ``node.grad = 0.0`` (``None`` for a Tensor).

    Nodes run in decreasing creation order, a reverse topological order: a node's parents
    were created before it, so all the nodes that use a node have passed their gradients
    to it before it passes its own on. (PyTorch's engine orders nodes by creation too.)
    """
    if not isinstance(root, Node):
        raise TypeError(f"backward() expects a Value or Tensor, got {type(root).__name__}")
    if root._op is NOT_RECORDED:
        raise RuntimeError(
            f"backward() from {root._describe()}: it is not the output of a recorded graph (none of "
            "its inputs requires a gradient, or it was computed under no_grad(), or detached)"
        )
    seed = type(root)._seed(root, grad)
    if STATE.anomaly and not root._is_finite(seed):
        raise AnomalyError(f"the seed gradient is not finite: {seed!r}")
    run = _Pass(root)
    try:
        run.propagate(seed, STATE.anomaly)
        if _CHANGED:  # some leaf was changed in place since the process started
            run.refuse_stale()
        run.finish(STATE.anomaly)
    except BaseException:
        run.undo()
        raise


class _Pass:
    """One backward pass from ``root``.

    One sweep both finds the nodes and runs their ops. The queue is a list in which the
    node created ``k`` nodes before the top one sits at index ``k``: a node's parents are
    older than the node, so they land ahead of the point the sweep has reached, and it
    meets every node once, in decreasing creation order. Leaves are collected, not queued.

    A node found far behind the end of the queue (created long before the rest of the
    graph, say) waits in ``later``, and the next stretch of the sweep starts from it once
    the queue is done: the queue stays about as long as the graph, whatever the gaps
    between creation numbers. The waiting nodes are kept in a heap, newest first, so that a
    stretch takes only those that fit it and the others wait untouched: a graph whose nodes
    lie far apart among many others needs many stretches, and going over every waiting
    node at each of them was quadratic.

    A pass computes fresh gradients: a gradient already on a node when the pass first
    reaches it is held aside and added back at the end (:meth:`finish`), so that interior
    nodes do not pass it on twice, and a pass that raises leaves every gradient as it was
    (:meth:`undo`).
    """

    # How far past the end of the queue a newly found node may be for the queue to grow to it.
    REACH = 1 << 16

    __slots__ = ("root", "empty", "held", "leaves", "later", "waiting", "queues", "top", "queue", "limit",
                 "filled", "counted_at", "requests")

    def __init__(self, root: Node):
        self.root = root
        self.empty = root._EMPTY_GRAD
        self.held = []
        self.leaves = {}
        self.later = {}  # the waiting nodes, for "is it waiting"; and, newest first, in the heap:
        self.waiting = []  # (-creation number, node)
        self.queues = []

    def hold(self, node) -> None:
        """Set aside the gradient ``node`` had before this pass (see the class docstring)."""
        g = node.grad
        if g is not self.empty:
            self.held.append((node, g))
            node.grad = self.empty

    def found(self, node) -> None:
        """Note that the sweep reached ``node`` (the general case; :meth:`propagate`
        handles the common ones itself)."""
        if node._p0 is None:
            if node in self.leaves:
                return
            self.leaves[node] = None
        else:
            k = self.top - node._id
            if k < len(self.queue):
                if self.queue[k] is not None:
                    return
            elif node in self.later:
                return
            if not self.place(node, k):
                self.wait(node)
        self.hold(node)

    def place(self, node, k: int) -> bool:
        """Put ``node`` at index ``k`` of the queue, growing the queue if need be, and say
        so; or, if that would take it past a waiting node, more than ``REACH`` past its end,
        or leave it less than a quarter full, refuse (no node as old or older joins this
        stretch then)."""
        queue = self.queue
        if k >= len(queue):
            size = max(k + 1, 2 * len(queue))
            if (k >= self.limit or k >= len(queue) + self.REACH
                    or (size > self.REACH and 4 * self.count_filled() < size)):
                self.limit = min(self.limit, k)
                return False
            queue.extend([None] * (min(size, self.limit) - len(queue)))
        queue[k] = node
        return True

    def wait(self, node) -> None:
        """Let ``node`` wait for a later stretch."""
        self.later[node] = None
        heapq.heappush(self.waiting, (-node._id, node))  # (creation numbers differ: nodes are never compared)

    def count_filled(self) -> int:
        """How many places of the queue hold a node. NOTE: counting is linear in the queue's
        length, so it is done again only once the queue has grown or after a number of
        requests an eighth of its length: a graph that keeps asking for nodes far behind the
        queue, one at a time, would otherwise take quadratic time. Between counts the sweep
        may have filled more places; a node refused for a low count waits for the next
        stretch, which is only slower, never wrong."""
        n = len(self.queue)
        if n != self.counted_at or self.requests >= n >> 3:
            self.filled = n - self.queue.count(None)
            self.counted_at, self.requests = n, 0
        else:
            self.requests += 1
        return self.filled

    def stretch(self) -> None:
        """Start a new queue from the newest waiting node, and put in it the next newest
        while they fit; the rest go on waiting."""
        waiting, later = self.waiting, self.later
        first = heapq.heappop(waiting)[1]
        del later[first]
        self.top = first._id
        self.queue = [first]
        self.queues.append(self.queue)
        self.limit = 1 << 62  # no node at or past this index joins this queue
        self.counted_at = -1
        while waiting:
            node = waiting[0][1]
            if not self.place(node, self.top - node._id):
                break
            heapq.heappop(waiting)
            del later[node]

    def propagate(self, seed, checked: bool) -> None:
        """Seed the root with ``seed`` and run the sweep; ``checked``: look at the gradients
        each op gives its inputs (:func:`detect_anomaly`)."""
        root = self.root
        self.hold(root)
        root.grad = seed
        if root._p0 is None:
            return
        empty, held, leaves, found = self.empty, self.held, self.leaves, self.found
        nothing = root._NOTHING_ARRIVED
        self.wait(root)
        while self.waiting:
            self.stretch()
            queue, top = self.queue, self.top
            size = len(queue)
            for node in queue:
                if node is None:
                    continue
                # NOTE: the same few lines for each parent, written out three times: for
                # the first and the second parent, and in the loop over the parents of an
                # op with three or more. This loop runs once per node: a loop over the two
                # parents measured 6% (a while loop) to 17% (a tuple) more backward
                # instructions on a scalar RNN, and sending the many parents of a Tensor
                # RNN step's addmm through found() cost 4% of the backward instructions of a
                # small one (T=100, 4 hidden units).
                # Leaves and nodes past the end of the queue go through found().
                p = node._p0
                q = node._p1
                if q is MANY:
                    for parent in p:
                        if parent._p0 is None:
                            if parent not in leaves:
                                found(parent)
                        else:
                            k = top - parent._id
                            if k >= size:
                                found(parent)
                                size = len(queue)
                            elif queue[k] is None:
                                queue[k] = parent
                                g = parent.grad
                                if g is not empty:
                                    held.append((parent, g))
                                    parent.grad = empty
                    q = None
                else:
                    if p._p0 is None:
                        if p not in leaves:
                            found(p)
                    else:
                        k = top - p._id
                        if k >= size:
                            found(p)
                            size = len(queue)
                        elif queue[k] is None:
                            queue[k] = p
                            g = p.grad
                            if g is not empty:
                                held.append((p, g))
                                p.grad = empty
                if q is not None:
                    if q._p0 is None:
                        if q not in leaves:
                            found(q)
                    else:
                        k = top - q._id
                        if k >= size:
                            found(q)
                            size = len(queue)
                        elif queue[k] is None:
                            queue[k] = q
                            g = q.grad
                            if g is not empty:
                                held.append((q, g))
                                q.grad = empty
                if node.grad is not empty:
                    node._op.backward(node)
                    if checked:
                        _check_backward(node)
                else:  # a node no gradient reached passes nothing on
                    node.grad = nothing

    def refuse_stale(self) -> None:
        """A clear error if a leaf this pass reached was changed in place after an op of the
        graph that reads it was made: after the output (:func:`refuse_changed`), or after an
        older op inside a graph whose output is newer than the change, as when a hidden state
        is carried into the next chunk without ``nn.detach``, whose backward reads the leaf's
        numbers (``Op.reads``: a product, not a sum or a view); the gradient would be taken
        at the new numbers without a word. (As in PyTorch, which checks the tensors each op
        saved for its backward.)"""
        root = self.root
        refuse_changed(root, self.leaves)
        oldest = root._id
        for queue in self.queues:  # each stretch's oldest op is its last one
            for node in reversed(queue):
                if node is not None:
                    oldest = min(oldest, node._id)
                    break
        stale = {id(leaf): leaf for leaf in self.leaves if changed_after(leaf, oldest)}
        if not stale:
            return
        for queue in self.queues:
            for node in queue:
                if node is None:
                    continue
                parents = node._prev
                for k, parent in enumerate(parents):
                    if id(parent) in stale and changed_after(parent, node._id) and _reads(node._op, parents, k):
                        raise RuntimeError(
                            f"backward() from {root._describe()}: {parent._describe()} was changed in place (an "
                            f"optimizer step or load_state_dict) after {node._describe()}, an op of this graph "
                            "that reads it, was computed: the graph reaches back to before the step, and its "
                            "gradients there would be taken at the new numbers. Carry a hidden state into the "
                            "next chunk detached (h = nn.detach(h) after each step, as nn.train_truncated "
                            "does), or run the forward pass again"
                        )

    def undo(self) -> None:
        """After a failure: every gradient back to what it was before the pass."""
        self.root._settle_grads()
        for nodes in [self.leaves, self.later, *self.queues]:
            for node in nodes:
                if node is not None:
                    node.grad = self.empty
        self.root.grad = self.empty
        for node, old in self.held:
            node.grad = old

    def finish(self, checked: bool = False) -> None:
        """Add the gradients held aside back onto this pass's; ``checked``: the sums must be
        finite (:func:`detect_anomaly`). If one cannot be formed (a gradient the user set to
        something of the wrong type or shape), a clear error names the node; the caller
        then undoes the pass."""
        root = self.root
        root._settle_grads()
        root._reached_leaves(self.leaves)
        empty = self.empty
        sums = []
        for node, old in self.held:
            new = node.grad
            if new is empty:
                sums.append(old)
                continue
            try:
                total = node._add_grads(old, new)
            except (TypeError, ValueError) as e:  # numpy's own subclasses take other arguments
                raise (ValueError if isinstance(e, ValueError) else TypeError)(
                    f"backward(): cannot add this pass's gradient of {node._describe()} to the one "
                    f"it already had ({e}). {node._how_to_reset()}"
                ) from None
            if checked and node._op is not NOT_RECORDED and not node._is_finite(total):
                raise AnomalyError(
                    f"adding this pass's gradient of {node._describe()} to the one it already had "
                    f"gives a non-finite gradient {node._summarize(total)}\n  scope: {format_scope(node._scope)}"
                )
            sums.append(total)
        for (node, _), total in zip(self.held, sums):  # nothing is written until every sum is made
            node.grad = total


def _check_backward(node) -> None:
    is_finite = node._is_finite
    for i, p in enumerate(node._prev):
        g = p.grad
        # (a constant, such as a number operand, takes a gradient nothing reads: its
        # overflow is no anomaly)
        if g is not None and p._op is not NOT_RECORDED and not is_finite(g):
            raise AnomalyError(
                f"backward of op '{node._op}' gave input {i} a non-finite gradient {p._summarize(g)}\n"
                f"  scope: {format_scope(node._scope)}\n"
                f"  output: {node._describe()}, grad {node._summarize(node.grad)}\n" + _inputs(node._prev)
            )
