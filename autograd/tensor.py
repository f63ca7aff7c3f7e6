"""``Tensor``: a numpy-backed node with the same semantics as ``Value``, on the same graph core.

Every primitive is one row of the table at the end of this file: its forward on raw
numpy arrays and, for each input, its vector-Jacobian product (VJP)

    vjp_i(g, out, *inputs, **params) -> the gradient for input i

where ``g`` is d(loss)/d(out) and the arrays are the op's raw data. A VJP may return a
gradient with the *broadcast* shape; it is reduced back to the input's shape once, at
the edge, when it is added into the input's ``grad`` (:meth:`Tensor._accumulate`). A
VJP is only called for inputs that need a gradient. Everything else (``-``, ``mean``,
``T``...) is built from primitives and has no derivative code.

Dtypes: floating data keeps its dtype (float64 by default, float32 kept); integer and
boolean data is cast to float64; complex, object and string data is rejected.
"""

from __future__ import annotations

import ctypes
import functools
import math
import operator
import sys
import time
import weakref
from numbers import Integral, Number

import numpy as np

from . import memory  # keeps freed memory for the next step: see its docstring
from .graph import MANY, STATE, Node, Op, _ids, flag, format_scope, leaf, record, too_large

__all__ = ["StackBuilder", "Tensor", "addmm", "concat", "stack"]

_new = object.__new__


def _as_array(data, what: str = "Tensor") -> np.ndarray:
    """``data`` as a floating numpy array, by the dtype rule in the module docstring."""
    if isinstance(data, Node):
        raise TypeError(f"{what} expects a number, nested list or numpy array, got a {type(data).__name__}")
    if isinstance(data, np.ndarray):
        if type(data) is not np.ndarray:
            refuse_masked(data, what)
        arr = data
    else:
        try:
            arr = asarray_keeping_graphs(data)
        except RefusedConversion as e:
            raise TypeError(f"{what}: {e}") from None
        except (ValueError, TypeError) as e:  # ragged lists, unconvertible objects
            raise TypeError(
                f"{what} expects a number, nested list or numpy array, got {data!r}: {e}"
            ) from None
    kind = arr.dtype.kind
    if kind == "f":
        return arr
    if kind in "iub":
        return arr.astype(np.float64)
    if kind == "O" and arr is not data:  # numbers numpy keeps as objects (ints past 2**64), or not numbers
        bad = [v for v in arr.flat if isinstance(v, complex) or not isinstance(v, Number)][:1]
        if not bad:
            try:
                return arr.astype(np.float64)
            except OverflowError:
                raise ValueError(f"{what}: an integer is too large for a float64 (past 1.8e308)") from None
        where = "" if arr.ndim == 0 else f" among the entries of the {type(data).__name__} given"
        raise TypeError(f"{what} expects real numbers; got {bad[0]!r} ({type(bad[0]).__name__}){where}")
    raise TypeError(
        f"{what} expects real numbers; got an array of dtype {arr.dtype} "
        f"(from {type(data).__name__}). Integer and boolean data is cast to float64; "
        "complex, object and string data is not supported"
    )


_CONVERTING = [False]  # set while asarray_keeping_graphs converts: see Tensor.__array__


def asarray_keeping_graphs(data) -> np.ndarray:
    """``np.asarray(data)``, except that a Tensor met inside a list (``[t1, t2]``) refuses to
    become plain numbers, which would cut it from its graph without a word: raises
    :class:`NestedTensorError` instead, and a masked array, whose mask would be lost,
    :class:`RefusedConversion` (both ``TypeError``). Both engines convert inputs so."""
    refuse_masked(data)
    _CONVERTING[0] = True
    try:
        return np.asarray(data)
    except NestedTensorError:  # raised by Tensor.__array__, which cannot see the container
        container = "tuple" if isinstance(data, tuple) else "list"
        raise NestedTensorError(
            f"got a {container} holding Tensors; its numbers alone would lose the graph and the "
            "gradients. Use autograd.stack / autograd.concat to join Tensors, or t.data "
            "for plain numbers"
        ) from None
    finally:
        _CONVERTING[0] = False


def refuse_masked(data, what: str = "") -> None:
    """:class:`RefusedConversion` for a numpy masked array: its conversion keeps the numbers
    under the mask and drops the mask, so a masked target would count the entries meant to
    be left out. ``what``, if given, is put in front of the message."""
    ma = sys.modules.get("numpy.ma")  # loaded if a masked array can exist
    if ma is not None and isinstance(data, ma.MaskedArray):
        raise RefusedConversion(
            f"{what + ': ' if what else ''}got a numpy masked array, whose mask would be ignored. Pass "
            "plain numbers: x.filled(value) replaces the masked entries, x.compressed() keeps only the others"
        )


ALIGNMENT = 64  # bytes: where the data of every Tensor made by the constructor starts


def _aligned_empty(shape, dtype) -> np.ndarray:
    """An uninitialised C-contiguous array whose data starts at a multiple of ``ALIGNMENT``
    bytes (a cache line), as PyTorch's CPU allocator gives; numpy's start at multiples of 16.

    NOTE: OpenBLAS multiplies by a misaligned right-hand matrix more slowly: on the
    benchmark machine a (32 x 128) @ (128 x 128) product, an RNN step's H_{t-1} W_hh, took
    13 µs with W_hh at a multiple of 64 bytes and 17.5 µs at any other multiple of 16,
    whatever the other operands' places (13.8 and 21.7 µs inside the benchmark RNN's
    forward). Parameters are made by the constructor, so every step of every layer gets
    the faster product. A ``copy.deepcopy`` or pickle of a Tensor holds the array numpy
    made for it, wherever that starts (the numbers are the same; only the speed differs);
    ``load_state_dict`` into a model made anew writes into its aligned parameters.
    """
    dtype = np.dtype(dtype)
    size = math.prod(shape)
    raw = np.empty(size + ALIGNMENT // dtype.itemsize, dtype)  # numpy's own are 16-byte aligned, so
    start = (-raw.ctypes.data % ALIGNMENT) // dtype.itemsize  # the gap is whole items of any float
    return raw[start:start + size].reshape(shape)


class RefusedConversion(TypeError):
    """Data that ``np.asarray`` would make numbers of while losing something: the graph of a
    Tensor in a list (:class:`NestedTensorError`), the mask of a masked array. Whoever
    converts puts what it was converting in front of the message."""


class NestedTensorError(RefusedConversion):
    """A Tensor met inside a list that is becoming the data of a new Tensor or operand."""


class Tensor(Node):
    """An n-dimensional array in the computation graph.

    ``Tensor(data, requires_grad=False, label="")``: ``data`` is a number, nested list or
    numpy array (copied). ``grad`` is ``None`` until backward reaches the tensor, then an
    array of the same shape. Results of operations on tensors that require gradients
    require gradients themselves and keep theirs after backward, as every ``Value`` does.
    Operands may be Tensors, numpy arrays or Python numbers on either side; numpy
    broadcasting applies.
    """

    __slots__ = ("requires_grad", "_params", "_borrowed")
    __array_ufunc__ = None  # numpy defers to our reflected operators: ndarray * Tensor -> Tensor

    def __array_function__(self, func, types, args, kwargs):
        """numpy functions that compute what a model computes (``np.dot(t, w)``,
        ``np.stack([a, b])``, ``np.sum(t)``, ``np.tanh`` aside, a ufunc: see
        ``_NUMPY_COMPUTING``) are refused, saying what to use: they would compute on the
        numbers alone, and the result would leave the graph without a word, so no gradient
        would flow back through it. The others (``np.shape``, ``np.copy``, ``np.allclose``,
        ``np.save``, ``np.broadcast_arrays``, ``np.histogram``: what plotting, testing and
        saving use) answer on the data, as on ``np.asarray(t)``."""
        name = func.__name__
        if name not in _NUMPY_COMPUTING:  # (Tensors by keyword too: np.savez(f, W=w))
            return func(*[a.data if isinstance(a, Tensor) else a for a in args],
                        **{k: v.data if isinstance(v, Tensor) else v for k, v in kwargs.items()})
        module = getattr(func, "__module__", "numpy") or "numpy"
        instead = _NUMPY_INSTEAD.get(name, "the Tensor's own ops (+ - * / ** @, t.sum(), t.tanh(), ...)")
        raise TypeError(
            f"{module}.{name} got a Tensor: numpy would compute on its numbers alone and the result "
            f"would not be in the graph, so no gradient would flow back through it. Use {instead}; "
            "or pass t.data for plain numbers (no gradient)"
        )

    def __init__(self, data, requires_grad: bool = False, label: str = "", dtype=None):
        src = _as_array(data)
        if dtype is None:
            dtype = src.dtype
        else:
            try:
                dtype = np.dtype(dtype)
            except TypeError:
                raise TypeError(f"Tensor: dtype must be a floating numpy dtype (np.float64, np.float32 "
                                f"or its name), got {dtype!r}") from None
        if dtype.kind != "f":
            raise TypeError(f"Tensor dtype must be floating, got {dtype}")
        arr = _aligned_empty(src.shape, dtype)
        arr[...] = src
        leaf(self, arr, None, label)
        self.requires_grad = flag("Tensor: requires_grad", requires_grad)
        self._params = None
        self._borrowed = False

    # --- node-kind hooks used by the graph core -------------------------------------
    @staticmethod
    def _is_finite(data) -> bool:
        if type(data) is _Rows:  # a gradient still kept as rows
            return all(bool(np.isfinite(g).all()) for g in data.rows.values())
        if type(data) is _Products:
            return bool(np.isfinite(data.total()).all())
        return bool(np.isfinite(data).all())

    @staticmethod
    def _grad_norm(g) -> float:
        if type(g) is _Rows:  # distinct rows: the squares of their norms add up
            return math.sqrt(math.fsum(float(np.vdot(r, r)) for r in g.rows.values()))
        if type(g) is _Products:
            g = g.total()
        return float(np.linalg.norm(np.ravel(g)))

    @staticmethod
    def _settle_grads() -> None:
        for kind in (_Rows, _Products):  # rows first: the products may read the rows' new places
            for node in _PENDING:
                if type(node.grad) is kind:
                    node.grad.settle(node, True)
        _PENDING.clear()
        _MOVED.clear()
        _TRANSPOSED.clear()
        _TWINS.clear()
        _PLACES.clear()

    @classmethod
    def _seed(cls, node, grad):
        if not node.requires_grad:
            raise RuntimeError(
                f"backward() from {node._describe()}: it does not require a gradient "
                "(no input it was computed from has requires_grad=True)"
            )
        shape = node.data.shape
        if grad is None:
            if node.data.size != 1:
                raise RuntimeError(
                    f"backward() without a seed needs a single-element output, got shape {shape}. "
                    f"Pass grad= an array of shape {shape} (np.ones({shape}) differentiates the sum), "
                    "or reduce the output first, e.g. out.sum().backward()"
                )
            return np.ones(shape, dtype=node.data.dtype)
        seed = np.array(_as_array(grad.data if isinstance(grad, Tensor) else grad, "backward() seed"),
                        dtype=node.data.dtype, copy=True)
        if seed.shape != shape:
            raise ValueError(f"backward() seed has shape {seed.shape}, the output has shape {shape}")
        return seed

    @staticmethod
    def _add_grads(a, b):
        if type(a) is not np.ndarray or a.shape != b.shape:  # a gradient set by hand
            raise ValueError(f"expected an array of shape {b.shape}, got {type(a).__name__} of shape {np.shape(a)}")
        return np.add(a, b, out=np.empty_like(b))  # in the pass's dtype, the tensor's: not one set by hand

    @staticmethod
    def _summarize(d) -> str:
        if type(d) is _Products:  # a gradient still kept as products
            d = d.total()
        elif type(d) is _Rows:  # or as rows: the ones that arrived
            return f"rows {sorted(d.rows)} of {d.n} so far: " + Tensor._summarize(np.stack(list(d.rows.values())))
        if type(d) is not np.ndarray:
            return repr(d)
        if d.size == 1:
            return f"{d.reshape(()).item():.6g}"
        finite = np.isfinite(d)
        bad = d.size - int(finite.sum())
        if bad:  # where the first is: in a sequence of all steps at once, its index names the step
            first = ", ".join(map(str, np.unravel_index(int(np.argmin(finite)), d.shape)))
            info = f"{bad} non-finite of {d.size}, the first at [{first}]"
        else:
            info = f"mean {d.mean():.4g}"
        return f"shape {d.shape}, {info}"

    def _accumulate(self, g, aliased: bool) -> None:
        """Add the gradient ``g`` arriving from one use of this tensor into ``self.grad``.

        Broadcasting is undone here, once for every op: ``g`` is summed over the axes
        numpy broadcast. An :class:`_AddInto` gradient (an index's, or a weight's product
        aᵀ g) adds itself into place, except that while only products arrive they are kept
        as their pairs (:class:`_Products`), until the gradient is read. (While only whole
        rows ``x[i]`` arrive, ``x[i]``'s backward keeps them as rows without coming here:
        see :func:`_getitem_backward`.)

        ``aliased`` says ``g`` may be another node's gradient (or a view of it), as after
        ``+`` or ``reshape``; otherwise ``g`` is a new array that the edge owns. An interior
        node keeps an aliased ``g`` without copying it, and the next arrival is added out
        of place (into that arrival's own array, if it has one); everything else is added
        in place. A leaf copies it, so that the gradients of parameters never share memory.
        """
        buf = self.grad
        if type(g) is not np.ndarray:  # the common case, a plain array, passes one test
            if isinstance(g, _AddInto):
                if type(g) is _Product:
                    if buf is None:
                        buf = self.grad = _Products(self)
                    if type(buf) is _Products:
                        buf.pairs.append((g.a, g.g))
                        return
                if buf is not None and type(buf) is not np.ndarray:
                    buf = buf.settle(self)
                if buf is None or self._borrowed:
                    buf = self.grad = np.zeros(self.data.shape, self.data.dtype) if buf is None else buf.copy()
                    self._borrowed = False
                g.add_into(buf)
                return
            g = np.asarray(g)  # numpy returns scalars, not 0-d arrays, from 0-d arithmetic
            aliased = False
        if buf is not None and type(buf) is not np.ndarray:
            buf = buf.settle(self)
        shape = self.data.shape
        if g.shape != shape:
            g = _unbroadcast(g, shape)
            aliased = False
        if buf is None:
            # A leaf keeps an array of its own: not another node's, and not a piece of a
            # larger array (a twin's, see _fresh_like), which it would keep alive.
            if g.dtype != self.data.dtype or (self._p0 is None and (
                    aliased or (g.base is not None and g.base.nbytes > g.nbytes))):
                g = g.astype(self.data.dtype)
                aliased = False
            self.grad = g
            self._borrowed = aliased
        elif self._borrowed:
            # The sum needs an array of its own: this arrival's, if it is one (a new array
            # nothing else holds), rather than a fresh one, which costs cold memory.
            if aliased or g.dtype != buf.dtype:
                g = np.add(buf, g, out=np.empty_like(buf))
            else:
                g += buf
            self.grad = g
            self._borrowed = False
        else:
            buf += g

    # --- array-like attributes ------------------------------------------------------
    @property
    def shape(self) -> tuple:
        return self.data.shape

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def size(self) -> int:
        return self.data.size

    def __len__(self) -> int:
        if self.data.ndim == 0:
            raise TypeError("len() of a 0-d Tensor")
        return len(self.data)

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    def __array__(self, dtype=None, copy=None):
        """The numbers, for numpy and plotting; no graph comes along. ``np.asarray(t)``
        shares them, ``np.array(t)`` copies them (numpy's ``copy`` rule)."""
        if _CONVERTING[0]:
            raise NestedTensorError("a Tensor inside a list")  # (asarray_keeping_graphs words it)
        data = self.data
        if dtype is not None and data.dtype != np.dtype(dtype):
            if copy is False:
                raise ValueError(f"Tensor of dtype {data.dtype} as {np.dtype(dtype)} needs a copy")
            return data.astype(dtype)
        return data.copy() if copy else data

    _COMPARED = "t.data {} x, for a bool array (a mask to multiply by, or to index with)"

    def __bool__(self) -> bool:
        if self.data.size != 1:
            raise ValueError(f"the truth value of a Tensor of shape {self.data.shape} is ambiguous")
        return bool(self.data.reshape(()).item())

    def __float__(self) -> float:
        return self.item()

    def item(self) -> float:
        if self.data.size != 1:
            raise ValueError(f"item() needs a single-element Tensor, got shape {self.data.shape}")
        return self.data.reshape(()).item()

    def numpy(self) -> np.ndarray:
        """The data (shared, not copied)."""
        return self.data

    def detach(self) -> Tensor:
        """The same data as a constant: no gradient flows back through it (truncated BPTT)."""
        out = _new(Tensor)
        out.data = self.data
        out.grad = None
        if self.label:
            out.label = self.label
        out.requires_grad = False
        out._params = None
        out._borrowed = False
        return record(out, (), DETACH, track=False)

    def __repr__(self) -> str:
        body = np.array2string(self.data, precision=4, threshold=20, edgeitems=2, separator=", ",
                               prefix="Tensor(")
        extras = ""
        if self.data.dtype != np.float64:
            extras += f", dtype={self.data.dtype}"
        if self.requires_grad:
            extras += ", requires_grad=True"
        if self._op:
            extras += f", op={str(self._op)!r}"
        if self.label:
            extras += f", label={self.label!r}"
        return f"Tensor({body}{extras})"

    # --- operators: each is one primitive or a line on top of primitives ---------------
    def __add__(self, other):
        return ADD.apply(self, other)

    def __radd__(self, other):
        return ADD.apply(other, self)

    def __sub__(self, other):
        return SUB.apply(self, other)

    def __rsub__(self, other):
        return SUB.apply(other, self)

    def __mul__(self, other):
        return MUL.apply(self, other)

    def __rmul__(self, other):
        return MUL.apply(other, self)

    def __truediv__(self, other):
        return DIV.apply(self, other)

    def __rtruediv__(self, other):
        return DIV.apply(other, self)

    def __matmul__(self, other):
        return MATMUL.apply(self, other)

    def __rmatmul__(self, other):
        return MATMUL.apply(other, self)

    def __neg__(self):
        return NEG.apply(self)

    def __pow__(self, exponent):
        if isinstance(exponent, Node):
            raise TypeError(
                f"Tensor ** {type(exponent).__name__} is not supported: the exponent must be a number"
            )
        if not isinstance(exponent, Number) or isinstance(exponent, (bool, complex)):
            raise TypeError(f"Tensor ** p expects a real number p, got {type(exponent).__name__}")
        p = float(exponent)
        if not p.is_integer() and (self.data < 0).any():
            raise ValueError(f"Tensor ** {p}: negative entries need an integer exponent")
        return POW.apply(self, p=p)

    def __rpow__(self, base):
        if isinstance(base, Node) or not isinstance(base, Number) or isinstance(base, (bool, complex)):
            raise TypeError(f"x ** Tensor expects a real number x, got {type(base).__name__}")
        if not base > 0:
            raise ValueError(f"{base} ** Tensor: the base must be positive")
        return RPOW.apply(self, base=float(base))

    def exp(self):
        return EXP.apply(self)

    def log(self):
        if (self.data <= 0).any():
            raise ValueError(
                f"log expects positive inputs, got min {self.data.min():g} ({self._describe()}; "
                f"scope {format_scope(STATE.scope)})"
            )
        return LOG.apply(self)

    def tanh(self):
        return TANH.apply(self)

    def sigmoid(self):
        return SIGMOID.apply(self)

    def relu(self):
        return RELU.apply(self)

    def clip(self, low: float, high: float):
        """Entries limited to ``[low, high]``; the gradient passes where low <= x <= high."""
        for name, v in (("low", low), ("high", high)):
            if isinstance(v, (bool, complex)) or not isinstance(v, Number):
                raise TypeError(f"clip: {name} must be a real number, got {v!r} ({type(v).__name__})")
        if not low <= high:  # NaN fails too
            raise ValueError(f"clip: needs numbers low <= high, got low={low}, high={high}")
        return CLIP.apply(self, low=float(low), high=float(high))

    def sum(self, axis=None, keepdims: bool = False):
        return SUM.apply(self, axis=_axes(axis, self.data.ndim, "sum"), keepdims=flag("sum: keepdims", keepdims))

    def mean(self, axis=None, keepdims: bool = False):
        axes = _axes(axis, self.data.ndim, "mean")
        keepdims = flag("mean: keepdims", keepdims)
        if axes is not None and len(set(axes)) != len(axes):  # (else sum would name itself in the error)
            raise ValueError(f"mean: axis {axis!r} names an axis twice (scope {format_scope(STATE.scope)})")
        count = self.data.size if axes is None else int(np.prod([self.data.shape[a] for a in axes]))
        if count == 0:
            raise ValueError(f"mean over an empty axis of a Tensor of shape {self.data.shape}")
        return self.sum(axes, keepdims) / count  # a division, not a product by 1/count: correctly rounded

    def max(self, axis=None, keepdims: bool = False):
        """Maximum; NOTE: where several entries tie for the maximum, the gradient is
        shared equally between them."""
        return MAX.apply(self, axis=_axes(axis, self.data.ndim, "max"), keepdims=flag("max: keepdims", keepdims))

    def reshape(self, *shape):
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return RESHAPE.apply(self, shape=shape)

    def transpose(self, *axes):
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        if axes:
            axes = _axes(axes, self.data.ndim, "transpose")
            if sorted(axes) != list(range(self.data.ndim)):
                raise ValueError(f"transpose: axes {axes} are not a permutation of the {self.data.ndim} axes "
                                 f"of a Tensor of shape {self.data.shape} (scope {format_scope(STATE.scope)})")
        return TRANSPOSE.apply(self, axes=axes or None)

    @property
    def T(self):
        return self.transpose()

    def __getitem__(self, index):
        if type(index) is not int:  # an int (a time step of a sequence) is already normal
            index = _index(index)
        return GETITEM.apply(self, index=index)

    def softmax(self, axis=-1):
        return SOFTMAX.apply(self, axis=axis)

    def log_softmax(self, axis=-1):
        return LOG_SOFTMAX.apply(self, axis=axis)


# --- the one place every op goes through ---------------------------------------------
def _operand(x, like: np.ndarray | None) -> Tensor:
    """Operands that are not Tensors become constants; a Python number takes the dtype of
    the tensor it meets, so float32 stays float32."""
    if isinstance(x, Tensor):
        return x
    if isinstance(x, Node):
        raise TypeError(f"cannot mix a Tensor with a {type(x).__name__}")
    is_array = isinstance(x, np.ndarray)
    if is_array and type(x) is not np.ndarray:
        refuse_masked(x, "Tensor operand")
    if like is not None and (type(x) is float or type(x) is int  # the common numbers, and arrays,
                             or (is_array and x.dtype.kind == "b")  # before the slower test of the ABC
                             or (not is_array and isinstance(x, Number) and not isinstance(x, complex))):
        try:
            arr = np.asarray(x, dtype=like.dtype)  # as numpy does: float32 * mask stays float32
        except OverflowError:  # an int past the float's range
            raise too_large(x, "Tensor operand", f"a {like.dtype}") from None
    else:
        arr = _as_array(x, "Tensor operand")
    if arr is x:  # the caller's own array: a copy, so that writing to it later changes no gradient
        arr = arr.copy()
    out = leaf(_new(Tensor), arr, None)
    out.requires_grad = False
    out._params = None
    out._borrowed = False
    return out


def _apply(prim: Primitive, *args, **params) -> Tensor:
    """Run ``prim`` on ``args`` (Tensors, arrays or numbers) and record the result: the
    general case, which every op's ``apply`` hands anything but Tensors to, and the
    ``apply`` of ops with any number of inputs (stack, concat)."""
    inputs = args
    for a in args:
        if type(a) is not Tensor:
            like = None  # the data of the first Tensor, whose dtype a number takes
            for t in args:
                if isinstance(t, Tensor):
                    like = t.data
                    break
            inputs = tuple([t if type(t) is Tensor else _operand(t, like) for t in args])
            # every input a Tensor now (not a subclass, which would come back here): the
            # op's written-out apply
            if prim.arity in (1, 2, 3) and all(type(t) is Tensor for t in inputs):
                return prim.apply(*inputs, **params)
            break
    try:
        data = prim.forward(*[x.data for x in inputs], **params)
    except (ValueError, IndexError, TypeError) as e:
        raise _failed(prim, inputs, e) from None
    track = False
    for x in inputs:
        if x.requires_grad:
            track = True
            break
    return _result(prim, data, params, inputs, track)


def _failed(prim: Primitive, inputs, e: Exception) -> Exception:
    """The error to raise when ``prim``'s forward rejects ``inputs``: the same kind, naming the op."""
    shapes = ", ".join(str(x.data.shape) for x in inputs)
    return type(e)(f"{prim.op}: cannot apply to shapes {shapes}: {e} (scope {format_scope(STATE.scope)})")


def _result(prim: Primitive, data, params, inputs: tuple, track: bool) -> Tensor:
    """The Tensor holding ``data``, what ``prim`` made of ``inputs``, recorded if ``track``
    (some input needs a gradient). The common case (recording on, no anomaly checks) is
    written out, the parents stored as ``graph.link`` stores them; everything else goes
    through the core's ``record``. (The ``apply`` of an op of one to three inputs inlines
    this: see :func:`_apply_function`.)"""
    if type(data) is not np.ndarray:  # numpy gives scalars, not 0-d arrays, from 0-d results
        data = np.asarray(data)
    out = _new(Tensor)
    out.data = data
    out.grad = None
    out._params = params or None
    out._borrowed = False
    if track and STATE.plain:
        out.requires_grad = True
        n = len(inputs)
        if n > 2:
            out._p0, out._p1 = inputs, MANY
        else:
            out._p0 = inputs[0]
            out._p1 = inputs[1] if n == 2 else None
        out._op = prim.op
        out._scope = STATE.scope
        out._id = next(_ids)
        return out
    out.requires_grad = track and STATE.grad_enabled
    return record(out, inputs, prim.op, track)


def _apply_function(prim: Primitive, arity):
    """``prim.apply(*inputs, **params)``: run the op and record its result.

    NOTE: the common case (every input a Tensor, an array result, recording on, no anomaly
    checks) written out for one, two and three inputs, as :func:`_backward_function` writes
    out the backward; everything else goes to :func:`_apply` or :func:`_result`. An RNN
    step runs three ops, and the general :func:`_apply` (a loop over the inputs, their
    count tested three times, calls through ``*args``) ran 133 bytecodes for each, 42,000
    of a T=100 forward's 69,000; these run 84. Any other input (a number, an
    array) takes the general way."""
    forward, op = prim.forward, prim.op
    if arity == 1:
        def apply(a, **params):
            if type(a) is not Tensor:
                return _apply(prim, a, **params)
            try:
                data = forward(a.data, **params) if params else forward(a.data)
            except (ValueError, IndexError, TypeError) as e:
                raise _failed(prim, (a,), e) from None
            track = a.requires_grad
            if track and STATE.plain and type(data) is np.ndarray:
                out = _new(Tensor)
                out.data = data
                out.grad = None
                out._params = params or None
                out._borrowed = False
                out.requires_grad = True
                out._p0 = a
                out._p1 = None
                out._op = op
                out._scope = STATE.scope
                out._id = next(_ids)
                return out
            return _result(prim, data, params, (a,), track)
    elif arity == 2:
        def apply(a, b, **params):
            if type(a) is not Tensor or type(b) is not Tensor:
                return _apply(prim, a, b, **params)
            try:
                data = forward(a.data, b.data, **params) if params else forward(a.data, b.data)
            except (ValueError, IndexError, TypeError) as e:
                raise _failed(prim, (a, b), e) from None
            track = a.requires_grad or b.requires_grad
            if track and STATE.plain and type(data) is np.ndarray:
                out = _new(Tensor)
                out.data = data
                out.grad = None
                out._params = params or None
                out._borrowed = False
                out.requires_grad = True
                out._p0 = a
                out._p1 = b
                out._op = op
                out._scope = STATE.scope
                out._id = next(_ids)
                return out
            return _result(prim, data, params, (a, b), track)
    elif arity == 3:
        def apply(a, b, c, **params):
            if type(a) is not Tensor or type(b) is not Tensor or type(c) is not Tensor:
                return _apply(prim, a, b, c, **params)
            try:
                data = forward(a.data, b.data, c.data, **params) if params else forward(a.data, b.data, c.data)
            except (ValueError, IndexError, TypeError) as e:
                raise _failed(prim, (a, b, c), e) from None
            track = a.requires_grad or b.requires_grad or c.requires_grad
            if track and STATE.plain and type(data) is np.ndarray:
                out = _new(Tensor)
                out.data = data
                out.grad = None
                out._params = params or None
                out._borrowed = False
                out.requires_grad = True
                out._p0 = (a, b, c)
                out._p1 = MANY
                out._op = op
                out._scope = STATE.scope
                out._id = next(_ids)
                return out
            return _result(prim, data, params, (a, b, c), track)
    else:  # any number of inputs: the general way
        apply = functools.partial(_apply, prim)
    return apply


class Primitive:
    """One row of the op table: ``forward(*arrays, **params)`` and one VJP per input;
    ``apply(*inputs, **params)`` runs it on Tensors (or numbers, arrays) and records the result.

    ``aliases`` marks ops whose VJPs may return ``g`` itself or a view of it (add, reshape,
    ...), so that the edge copies before keeping it: ``True`` for every input, or one
    flag per input. Variadic ops (stack, concat) give one VJP
    ``vjp(g, out, arrays, **params)`` via ``variadic=True`` that returns the gradients of
    all the inputs at once, where ``arrays`` is the tuple of all inputs (one call, not one
    per input: an RNN stacks its T states, and a concat's i-th gradient starts where the
    first i end). ``backward``: the op's own ``backward(op, node)`` in place of the one made
    from its VJPs, for an op that keeps its inputs' gradients in a form of its own (``x[i]``:
    see :func:`_getitem_backward`); it gives the gradients the VJPs give.
    """

    def __init__(self, name, forward, *vjps, aliases=False, variadic=False, backward=None, reads=None):
        self.forward = forward
        aliases = tuple(aliases) if isinstance(aliases, (tuple, list)) else (bool(aliases),) * len(vjps)
        if len(aliases) != len(vjps):
            raise ValueError(f"{name}: {len(aliases)} aliases flags for {len(vjps)} VJPs")
        backward = backward or _backward_function(vjps, aliases, variadic)
        self.op = Op(name, backward) if reads is None else Op(name, backward, reads=reads)
        self.arity = None if variadic else len(vjps)  # how many inputs; None: any number
        self.apply = _apply_function(self, self.arity)


def _backward_function(vjps, aliases, variadic):
    """The op's ``backward(op, node)``: each input that needs a gradient gets its VJP,
    added in at the edge (:meth:`Tensor._accumulate`).

    NOTE: the one-, two- and three-input cases are the loop written out, with the VJPs
    bound in the closure: this runs once per node of every backward pass, and the loop
    (a tuple of inputs, ``zip``, the attribute lookups) and a bound method called through
    a lambda cost 5% of the backward instructions of a small Tensor RNN (T=100, 4 hidden
    units). They make plain calls, which cost half of calls with ``**params``; a node of
    two or three inputs that has params goes through the loop."""
    def loop(op, node):
        g, out, prev = node.grad, node.data, node._prev
        if type(g) is not np.ndarray:
            g = g.settle(node, True)
        arrays = tuple([p.data for p in prev])
        params = node._params or _NO_PARAMS
        if variadic:  # its one VJP gives every input's gradient
            alias = aliases[0]
            for p, gi in zip(prev, vjps[0](g, out, arrays, **params)):
                if p.requires_grad:
                    p._accumulate(gi, alias)
            return
        for i, p in enumerate(prev):
            if p.requires_grad:
                p._accumulate(vjps[i](g, out, *arrays, **params), aliases[i])

    if variadic or len(vjps) not in (1, 2, 3):
        return loop

    if len(vjps) == 1:
        (vjp,), (alias,) = vjps, aliases

        def backward(op, node):
            a, g = node._p0, node.grad
            if type(g) is not np.ndarray:
                g = g.settle(node, True)
            if a.requires_grad:
                params = node._params
                a._accumulate(vjp(g, node.data, a.data) if params is None else vjp(g, node.data, a.data, **params),
                              alias)

    elif len(vjps) == 2:
        (vjp0, vjp1), (alias0, alias1) = vjps, aliases

        def backward(op, node):
            if node._params is not None:
                return loop(op, node)
            a, b = node._p0, node._p1
            g, out, x, y = node.grad, node.data, a.data, b.data
            if type(g) is not np.ndarray:
                g = g.settle(node, True)
            if a.requires_grad:
                a._accumulate(vjp0(g, out, x, y), alias0)
            if b.requires_grad:
                b._accumulate(vjp1(g, out, x, y), alias1)

    else:  # three inputs
        (vjp0, vjp1, vjp2), (alias0, alias1, alias2) = vjps, aliases

        def backward(op, node):
            if node._params is not None:
                return loop(op, node)
            a, b, c = node._p0
            g, out, x, y, z = node.grad, node.data, a.data, b.data, c.data
            if type(g) is not np.ndarray:
                g = g.settle(node, True)
            if a.requires_grad:
                a._accumulate(vjp0(g, out, x, y, z), alias0)
            if b.requires_grad:
                b._accumulate(vjp1(g, out, x, y, z), alias1)
            if c.requires_grad:
                c._accumulate(vjp2(g, out, x, y, z), alias2)

    return backward


_NO_PARAMS: dict = {}


class _AddInto:
    """A gradient that adds itself into its input's gradient buffer, rather than an array
    the edge may keep: see :class:`_IndexGrad` and :class:`_Product`."""

    __slots__ = ()

    def add_into(self, buf: np.ndarray) -> None:
        raise NotImplementedError


class _IndexGrad(_AddInto):
    """The gradient of ``x[index]``: ``g`` to be added into ``x``'s gradient at ``index``.
    Kept sparse so that reading every step ``x[t]`` of a sequence stays linear in T."""

    __slots__ = ("index", "g")

    def __init__(self, index, g):
        self.index, self.g = index, g

    def add_into(self, buf: np.ndarray) -> None:
        index = self.index
        if _has_array(index):  # integer arrays may repeat an index: every occurrence adds
            np.add.at(buf, index, self.g)
        elif type(index) is slice or (type(index) is int and buf.ndim > 1):  # a view: no write-back
            view = buf[index]
            view += self.g
        else:
            buf[index] += self.g


def _getitem_backward(op, node) -> None:
    """The backward of ``x[index]``: its gradient ``g`` goes into ``x``'s at ``index``
    (:class:`_IndexGrad`, through :meth:`Tensor._accumulate`), except that while only whole
    rows ``x[i]`` have arrived, they are kept as rows (:class:`_Rows`).

    NOTE: its own backward, not its VJP through the generic one: an RNN reads ``xw[t]`` at
    every step, and the way through the VJP (a call with the index as a keyword, the
    gradient object, the dispatch in ``_accumulate``) ran about 120 bytecodes and five
    calls per step where this runs 56 and two."""
    x = node._p0
    if not x.requires_grad:
        return
    g = node.grad
    if type(g) is not np.ndarray:
        g = g.settle(node, True)
    index = node._params["index"]
    buf = x.grad
    if type(index) is int and (buf is None or type(buf) is _Rows) and x.data.ndim:
        if buf is None:
            buf = x.grad = _Rows(x)
        buf.add(index, g)
    else:
        x._accumulate(_IndexGrad(index, g), False)


class _Rows:
    """A gradient that has so far arrived only as whole rows ``x[i]`` (an integer index on
    the first axis), kept as those rows until it is read: the gradient of a sequence read
    one step at a time, like the input projections ``xw[t]`` of an RNN.

    NOTE: adding each row into a zeroed buffer writes the whole buffer twice (the zeros,
    then the sums), and by the time the last rows arrive the first pass has left the
    cache. Kept as rows, the gradient is written once: stacked, if every row arrived,
    else the rows are copied into zeros; or not written at all, if the rows already lie
    side by side in one array, as an RNN's do (:func:`_fresh_like`): then the gradient of
    an interior node is that array, shared with the nodes the rows came from and never
    added to in place. :meth:`settle` makes it one array before
    anything reads it: when a gradient of another kind arrives, before the node's own
    backward runs, and at the end of the pass (:meth:`Tensor._settle_grads`).
    """

    __slots__ = ("rows", "n")

    def __init__(self, node):
        self.rows = {}
        self.n = node.data.shape[0]
        _PENDING.append(node)

    def add(self, i: int, g: np.ndarray) -> None:
        i %= self.n  # the forward accepted i, so -n <= i < n
        old = self.rows.get(i)
        self.rows[i] = g if old is None else old + g  # never in place: g may be another node's

    def __repr__(self) -> str:  # only seen if something reads a gradient before it is settled
        return f"_Rows(rows {sorted(self.rows)} of {self.n})"

    def settle(self, node, final: bool = False) -> np.ndarray:
        """Make ``node.grad`` (this) one array of the node's shape, and return it.

        ``final``: no other gradient will reach the node in this pass (its own backward is
        about to run, or the pass is over), so the rows' places in the result are noted
        in :data:`_MOVED` for the products still kept."""
        data, rows = node.data, self.rows
        joined = _joined([rows.get(i) for i in range(self.n)], data.shape) if node._p0 is not None else None
        if joined is not None:
            node.grad = joined
            node._borrowed = True  # the rows are other nodes' gradients: never added to in place
            return joined
        if len(rows) == self.n:  # each row is a node's gradient, so it has the node's dtype
            grad = np.stack([rows[i] for i in range(self.n)])
        else:
            grad = np.zeros(data.shape, data.dtype)
            for i, g in rows.items():
                grad[i] = g
        if final:
            for i, g in rows.items():
                _MOVED[id(g)] = (g, grad[i])
        node.grad = grad
        node._borrowed = False
        return grad


# Tensors whose gradient may still be kept as rows or products (:class:`_Rows`,
# :class:`_Products`); settled at the end of every backward pass.
_PENDING: list = []
# During a pass: id(row) -> (row, an equal piece of a settled gradient that will not
# change again in this pass), so that kept products can find their operands in one array.
_MOVED: dict = {}
_KEEP_BYTES = 1 << 16  # weight gradients at least this large are kept as products


class _Product(_AddInto):
    """The gradient aᵀ g that ``a @ W`` (2-D) gives ``W``; see :class:`_Products`."""

    __slots__ = ("a", "g")

    def __init__(self, a, g):
        self.a, self.g = a, g

    def add_into(self, buf: np.ndarray) -> None:
        buf += self.a.T @ self.g


class _Products:
    """A weight's gradient Σᵢ aᵢᵀ gᵢ that has so far arrived only as products, kept as the
    pairs (aᵢ, gᵢ) until it is read: the gradient of W_hh, which an RNN uses at every step.

    NOTE: one product per step, each added into the gradient, writes the (hidden x hidden)
    gradient T times, and each product is too small to keep the cores busy. But the aᵢ are
    consecutive pieces of one array (the stacked states, which the states share: see
    :func:`_share_storage`) and so are the gᵢ (the rows of the input projections' gradient,
    once stacked: see :data:`_MOVED`), so the whole sum is one product of the two arrays,
    Aᵀ G, with no copy (:func:`_runs`). On a T=100, 128-unit RNN, this and the shared
    storage made forward + backward 4 to 10% faster. Small weights (under ``_KEEP_BYTES``)
    are not kept: finding the runs costs more than it saves there. Settled like
    :class:`_Rows`; the sum is the same up to rounding.
    """

    __slots__ = ("pairs", "sum")

    def __init__(self, node):
        self.pairs = []
        self.sum = None
        _PENDING.append(node)

    def __repr__(self) -> str:
        return f"_Products({len(self.pairs)} pairs not yet multiplied out)"

    def total(self) -> np.ndarray:
        """The sum so far (pairs kept since the last call are multiplied out now)."""
        total, tmp = self.sum, None
        for A, G in _runs(self.pairs):
            if total is None:
                total = A.T @ G
            else:  # one buffer serves every further product
                if tmp is None:
                    tmp = np.empty_like(total)
                total += np.matmul(A.T, G, out=tmp)
        self.sum, self.pairs = total, []
        return total

    def settle(self, node, final: bool = False) -> np.ndarray:
        """Make ``node.grad`` (this) one array of the node's dtype, and return it."""
        grad = self.total()
        if grad.dtype != node.data.dtype:
            grad = grad.astype(node.data.dtype)
        node.grad = grad
        node._borrowed = False
        return grad


def _runs(pairs) -> list:
    """The pairs (a, g) as a list of (A, G) whose products Aᵀ G add up to the same sum.

    A run of pairs whose a's are consecutive pieces of one array, in order, and whose g's
    are consecutive pieces of another, in the same order (up or down in memory, the same
    for both), becomes one pair: those whole stretches of the two arrays. Any other pair
    stays as it is.

    NOTE: one loop with the run in local variables: this runs over every kept product of
    every pass (an RNN's W_hh: one per step); a helper asked per pair whether it extended
    the run, and the loop without it runs 5,000 fewer bytecodes per backward pass of a
    T=100, 128-unit RNN (of 149,000).
    """
    out, starts = [], {}
    k = 0  # pairs in the current run, which started with (a0, g0), at offsets first_* of base_*
    a0 = g0 = base_a = base_g = None
    first_a = first_g = last_a = last_g = step_a = step_g = 0
    if _MOVED:  # rows since settled into one gradient: the g's that were rows are read there
        pairs = [(a, m[1] if (m := _MOVED.get(id(g))) is not None and m[0] is g else g) for a, g in pairs]
    for a, g in pairs:
        place = _PLACES.get(id(a))  # what _piece answers first, without a call
        pa = place[1] if place is not None and place[0] is a else _piece(a, starts)
        if pa is None:
            pg = None
        else:
            place = _PLACES.get(id(g))
            pg = place[1] if place is not None and place[0] is g else _piece(g, starts)
        if pg is None:
            if k:
                out.append(_run(a0, g0, base_a, base_g, first_a, first_g, last_a, last_g, k))
                k = 0
            out.append((a, g))
            continue
        if k:
            da, dg = pa[1] - last_a, pg[1] - last_g
            if (pa[0] is base_a and pg[0] is base_g and a.shape == a0.shape and g.shape == g0.shape
                    and (da == step_a and dg == step_g if k > 1 else
                         (da == a0.nbytes and dg == g0.nbytes) or (da == -a0.nbytes and dg == -g0.nbytes))):
                step_a, step_g = da, dg
                last_a, last_g = pa[1], pg[1]
                k += 1
                continue
            out.append(_run(a0, g0, base_a, base_g, first_a, first_g, last_a, last_g, k))
        a0, g0, k = a, g, 1
        (base_a, first_a), (base_g, first_g) = pa, pg
        last_a, last_g = first_a, first_g
    if k:
        out.append(_run(a0, g0, base_a, base_g, first_a, first_g, last_a, last_g, k))
    return out


def _run(a0, g0, base_a, base_g, first_a, first_g, last_a, last_g, k) -> tuple:
    """The run of ``k`` pairs that starts with (a0, g0), at byte offsets ``first_*`` of the
    arrays ``base_*`` and ends at ``last_*``, as one pair of views of those arrays."""
    if k == 1:
        return a0, g0
    return (_span(base_a, min(first_a, last_a) // a0.itemsize, (k * a0.shape[0], *a0.shape[1:])),
            _span(base_g, min(first_g, last_g) // g0.itemsize, (k * g0.shape[0], *g0.shape[1:])))


def _span(base: np.ndarray, start: int, shape: tuple) -> np.ndarray:
    """The view of ``base``'s items from ``start`` on (in its memory order) as ``shape``."""
    return base.reshape(-1)[start:start + math.prod(shape)].reshape(shape)


def _piece(x, starts: dict):
    """``(base, offset)``: the C-contiguous array of the same dtype that ``x`` is a
    C-contiguous view of, and where (in bytes, a whole number of items) ``x`` starts in
    it; or None. ``starts`` caches each base's address; the pieces :func:`_fresh_like` met
    and handed out in this pass are answered from :data:`_PLACES`, without an address."""
    place = _PLACES.get(id(x))
    if place is not None and place[0] is x:
        return place[1]
    base = x.base
    if type(base) is not np.ndarray or base.dtype != x.dtype or not x.flags.c_contiguous:
        return None
    start = starts.get(id(base))
    if start is None:
        start = starts[id(base)] = _address(base)
    x_start = _address(x)
    if start is None or x_start is None or (x_start - start) % x.itemsize:
        return None
    return base, x_start - start


def _address(x: np.ndarray):
    """The address of ``x``'s first byte, if ``x`` is writable, C-contiguous and not empty."""
    try:
        return ctypes.addressof(ctypes.c_char.from_buffer(x))
    except (TypeError, ValueError, BufferError):
        return None


def _unbroadcast(g: np.ndarray, shape: tuple) -> np.ndarray:
    """Sum ``g`` over the axes that broadcasting added to or stretched in ``shape``."""
    lead = g.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(
        lead + i for i, n in enumerate(shape) if n == 1 and g.shape[lead + i] != 1
    )
    if axes:
        g = g.sum(axis=axes, keepdims=True)
    return g.reshape(shape)


def _axes(axis, ndim: int, op: str):
    if axis is None:
        return None
    axes = tuple(axis) if isinstance(axis, (tuple, list)) else (axis,)
    out = []
    for a in axes:
        if isinstance(a, (bool, np.bool_)) or not isinstance(a, (int, np.integer)):
            raise TypeError(f"{op}: an axis must be an int, got {a!r} ({type(a).__name__}) "
                            f"(scope {format_scope(STATE.scope)})")
        if not -ndim <= a < ndim:
            raise ValueError(f"{op}: axis {a} is out of range for a {ndim}-d Tensor "
                             f"(scope {format_scope(STATE.scope)})")
        out.append(int(a) % ndim)
    return tuple(out)


def _axis(axis, ndim: int, op: str) -> int:
    """One axis of an ``ndim``-d array, as :func:`_axes` checks it (not None, not several)."""
    if axis is None or isinstance(axis, (tuple, list)):
        raise TypeError(f"{op}: axis must be an int, got {axis!r}")
    return _axes(axis, ndim, op)[0]


def _ndim(x) -> int:
    return np.ndim(x.data if isinstance(x, Tensor) else x)


# numpy functions refused on a Tensor (Tensor.__array_function__): those a model would be
# built from, whose plain-number result would leave the graph without a word
_NUMPY_COMPUTING = frozenset((
    "dot", "matmul", "inner", "vdot", "einsum", "outer", "tensordot", "kron", "trace",
    "stack", "concatenate", "concat", "hstack", "vstack", "dstack", "column_stack",
    "sum", "mean", "average", "max", "amax", "min", "amin", "prod", "cumsum", "cumprod", "std", "var",
    "nansum", "nanmean", "clip", "where", "sort", "diff", "norm", "inv", "solve", "det",
    "reshape", "transpose", "swapaxes", "moveaxis", "squeeze", "expand_dims", "ravel",
    "tile", "repeat", "roll", "flip", "pad", "split", "array_split",
))
_NUMPY_INSTEAD = {  # what to use for a numpy function refused on a Tensor (Tensor.__array_function__)
    **dict.fromkeys(("dot", "matmul", "inner", "vdot"), "a @ b"),
    "einsum": "@, * and t.sum(axis) (einsum has no Tensor form)",
    "outer": "a.reshape(-1, 1) * b",
    "stack": "autograd.stack(tensors, axis)",
    **dict.fromkeys(("concatenate", "concat", "hstack", "vstack"), "autograd.concat(tensors, axis)"),
    "sum": "t.sum(axis)", "mean": "t.mean(axis)", **dict.fromkeys(("max", "amax"), "t.max(axis)"),
    "clip": "t.clip(low, high)", "reshape": "t.reshape(shape)", "transpose": "t.transpose() or t.T",
    "where": "a mask as numbers: mask * a + (1 - mask) * b",
    "norm": "(t * t).sum() ** 0.5",
}


def _index(index):
    """Normalise an index: lists become integer arrays, and a numpy array is copied: backward
    reads the index again, so writing to the caller's array later would send the gradient to
    other entries. A Tensor is refused: its data is float, so a mask made into a Tensor holds
    0.0 and 1.0, and nothing tells positions from a mask."""
    if type(index) is int or type(index) is slice:
        return index
    items = index if isinstance(index, tuple) else (index,)
    norm = []
    for k in items:
        if isinstance(k, Tensor):
            raise IndexError(
                f"a Tensor cannot index a Tensor (got one of shape {k.data.shape}): its data is float, so "
                "a boolean mask made into a Tensor holds 0.0 and 1.0 and would be taken for positions. "
                "Index with a numpy array: a bool array for a mask (t.data > 0.5), integers for "
                "positions (t.data.astype(int))"
            )
        if isinstance(k, list):
            k = np.asarray(k) if k else np.zeros(0, np.intp)
        elif isinstance(k, np.ndarray):
            refuse_masked(k, "a Tensor index")
            k = k.copy()
        if isinstance(k, np.ndarray) and k.dtype.kind == "f":
            raise IndexError(f"Tensor indices must be integers, slices or booleans, got a {k.dtype} array")
        norm.append(k)
    return tuple(norm) if isinstance(index, tuple) else norm[0]


def _has_array(index) -> bool:
    if type(index) is int or type(index) is slice:
        return False
    items = index if isinstance(index, tuple) else (index,)
    return any(isinstance(k, np.ndarray) and k.dtype.kind in "iu" for k in items)


def _keep(g, axis, keepdims):
    """``g`` with the reduced axes restored (size 1), so it broadcasts against the input."""
    if axis is None or keepdims:
        return g
    return np.expand_dims(g, axis)


def _matmul_grad(which, g, a, b):
    """The gradient of ``a @ b`` for ``a`` (``which`` = 0) or ``b`` (1), given ``g``."""
    if a.ndim == b.ndim == 2:
        return _matmul_grad_2d(which, g, a, b)
    # Promote 1-D operands as matmul does, apply the 2-D rule, then drop the added axes.
    a2 = a[None, :] if a.ndim == 1 else a
    b2 = b[:, None] if b.ndim == 1 else b
    g2 = g
    if b.ndim == 1:
        g2 = g2[..., None]
    if a.ndim == 1:
        g2 = np.expand_dims(g2, -2)
    if which == 0:
        ga = g2 @ np.swapaxes(b2, -1, -2)
        return ga[..., 0, :] if a.ndim == 1 else ga
    gb = np.swapaxes(a2, -1, -2) @ g2
    return gb[..., 0] if b.ndim == 1 else gb


def _matmul_grad_2d(which, g, a, b):
    """x @ W for 2-D x and W (so g is 2-D too): g Wᵀ for x; xᵀ g for W, kept as the pair if large."""
    if which == 0:
        return g @ _transposed(b, g)
    if a.shape[1] * g.shape[1] * g.itemsize >= _KEEP_BYTES:
        return _Product(a, g)
    return a.T @ g


# During a pass: id(W) -> [W, products g Wᵀ so far, what they use from then on (the view
# or an aligned C-contiguous copy of Wᵀ), or None, and the shape of g it was chosen for];
# see _transposed. Emptied at the end of every pass, before anything can change W.
_TRANSPOSED: dict = {}
_COPY_AFTER = 4  # products by the same W before the way to multiply by Wᵀ is settled
# No copy for a g of more entries (a batch of 8,192 rows of 128): there the product, not the
# layout, is the cost, and deciding would draw and multiply a probe of g's size.
_COPY_G_ENTRIES = 1 << 20
# (shape of g, shape of W, dtype) -> whether g Wᵀ is faster by a copy of Wᵀ than by the view,
# measured once per process: see _copy_is_faster.
_COPY_FASTER: dict = {}


def _transposed(b: np.ndarray, g: np.ndarray) -> np.ndarray:
    """``b.T``, for a product g bᵀ of backward; from the ``_COPY_AFTER``-th such product of
    one pass on, an aligned C-contiguous copy of it instead, made once and used by the
    rest, where that multiplies faster on this machine (:func:`_copy_is_faster`).

    NOTE: which is faster depends on the processor. On the machine of the earlier
    measurements g W_hhᵀ for a (32 x 128) g took 21 µs by the transposed view and 13.6 µs
    by the copy (14.6 µs inside the benchmark RNN's backward), which costs 15 µs to make;
    on an AMD EPYC measured later, 14.1 µs by the view and 15.2 µs by the copy, which made
    the benchmark RNN's forward + backward 2% slower. An RNN's backward makes this product
    once per step with the same W_hh. A weight used once or twice per pass (a layer's) is
    not copied. At 512 units, where the copy costs about as much as a hundred products
    save, it is not made either (``b.size`` past 2**16). The copy serves only products with
    a g of the shape it was measured for, whose bits it was found to give: another shape
    (a 1-row g, a shorter last batch) may go to a routine that sums in another order.
    """
    entry = _TRANSPOSED.get(id(b))
    if entry is not None and entry[2] is not None and entry[0] is b:  # settled: every product after the fourth
        return entry[2] if g.shape == entry[3] else b.T
    if b.size > 1 << 16 or g.size > _COPY_G_ENTRIES or not b.flags.c_contiguous:
        return b.T
    if entry is None or entry[0] is not b:
        _TRANSPOSED[id(b)] = [b, 1, None, None]
        return b.T
    entry[1] += 1
    if entry[1] < _COPY_AFTER:
        return b.T
    key = (g.shape, b.shape, b.dtype.str)
    faster = _COPY_FASTER.get(key)
    if faster is False:
        entry[2] = b.T
    else:
        copy = _aligned_empty(b.shape[::-1], b.dtype)
        np.copyto(copy, b.T)
        if faster is None:
            faster = _COPY_FASTER[key] = _copy_is_faster(g, b.T, copy)
        entry[2] = copy if faster else b.T
    entry[3] = g.shape
    return entry[2]


def _copy_is_faster(g: np.ndarray, view: np.ndarray, copy: np.ndarray, rounds: int = 3,
                    clock=time.perf_counter) -> bool:
    """Whether ``g @ copy`` runs faster than ``g @ view`` (the same matrix), by the fastest of
    ``rounds`` products each, taking turns.

    NOTE: the choice is made by measuring, so two processes may choose differently; the
    numbers do not depend on it. The copy is taken only if both layouts give the same bits
    here (:func:`_layouts_agree`): with the kernels OpenBLAS picks for AMD's processors they
    do, for every g of two rows or more; with those of AVX-512 Intel processors they differ
    for many shapes (a 1-row g goes to another routine everywhere, whose two layouts sum in
    different orders). Where they differ every process keeps the view, and runs stay
    reproducible.
    """
    if (g.shape[0] < 2 or not np.array_equal(g @ view, g @ copy, equal_nan=True)  # g is 2-D here
            or not _layouts_agree(g.shape, view.shape, g.dtype)):
        return False
    best = {"view": math.inf, "copy": math.inf}
    for _ in range(rounds):
        for name, b in (("view", view), ("copy", copy)):
            start = clock()
            g @ b
            best[name] = min(best[name], clock() - start)
    return best["copy"] < best["view"]


def _layouts_agree(g_shape: tuple, bt_shape: tuple, dtype, multiply=np.matmul) -> bool:
    """Whether a product g Wᵀ (g of ``g_shape``, Wᵀ of ``bt_shape``) gives the same bits by
    the transposed view of a C-contiguous W and by an aligned C-contiguous copy of Wᵀ, tried
    on numbers drawn for it from a fixed seed. NOTE: not on the pass's own g, which may say
    nothing: a step whose loss is masked off has a g of zeros, which every layout multiplies
    to the same zeros, while the next pass's g may not. (Its cost is bounded: the copy is
    only considered for g of at most ``_COPY_G_ENTRIES`` entries and W of 2**16.)"""
    rng = np.random.default_rng(0)
    draw = dtype if dtype in (np.float32, np.float64) else np.float64  # the dtypes the generator draws
    probe = (rng.random(g_shape, dtype=draw) - 0.5).astype(dtype, copy=False)
    w = _aligned_empty(bt_shape[::-1], dtype)
    w[...] = rng.random(w.shape, dtype=draw) - 0.5
    copy = _aligned_empty(bt_shape, dtype)
    np.copyto(copy, w.T)
    return np.array_equal(multiply(probe, w.T), multiply(probe, copy))


def _addmm_vjp(which):
    """The VJP of ``c + a @ b`` for ``a`` (``which`` = 0) or ``b`` (1): that of ``a @ b``,
    from ``g`` summed back to the product's shape where ``c`` broadcast the sum past it.
    (A closure, not a lambda around a function of ``which``: one call fewer for every
    step of an RNN.)"""
    def vjp(g, out, c, a, b):
        if a.ndim == 2 and b.ndim == 2 and g.shape == (a.shape[0], b.shape[1]):  # x W + b, c broadcast or not
            return _matmul_grad_2d(which, g, a, b)
        shape = _matmul_shape(a.shape, b.shape)
        if g.shape != shape:
            g = _unbroadcast(g, shape)
        return _matmul_grad(which, g, a, b)

    return vjp


def _matmul_shape(a: tuple, b: tuple) -> tuple:
    """The shape of ``x @ y`` for ``x`` of shape ``a`` and ``y`` of shape ``b``."""
    if len(a) == 1:
        return () if len(b) == 1 else b[:-2] + b[-1:]
    if len(b) == 1:
        return a[:-1]
    return np.broadcast_shapes(a[:-2], b[:-2]) + (a[-2], b[-1])


def _addmm(c, a, b):
    """``c + a @ b`` with one new array: the product, and ``c`` added into it in place.

    NOTE: out of place only where it must be, when ``c`` broadcasts to more than the
    product's shape or has a wider dtype (a float64 ``c`` with float32 matrices)."""
    out = np.matmul(a, b)
    if type(out) is np.ndarray and (c.dtype == out.dtype or np.can_cast(c.dtype, out.dtype)):
        try:
            return np.add(out, c, out=out)
        except ValueError:  # c's shape does not fit into the product's
            pass
    return np.add(out, c)


def _max_vjp(g, out, x, axis, keepdims):
    top = _keep(out, axis, keepdims)
    mask = x == top
    if np.isnan(top).any():  # np.max gives NaN where one is (NaN == NaN is false): the NaNs take the gradient
        mask |= np.isnan(x)
    return _masked(_keep(g, axis, keepdims) / mask.sum(axis=axis, keepdims=True), mask)


def _masked(g, mask, out=None):
    """``g`` where ``mask`` holds, 0 elsewhere (broadcast to ``mask``'s shape). NOTE: not
    ``g * mask``, which makes an infinite incoming gradient NaN where the mask is off (inf *
    0): where relu is off or clip limits, nothing passes, not even an infinity, as in
    PyTorch and on the value engine."""
    if np.isfinite(g).all():
        return np.multiply(g, mask, out=out)
    if out is None:
        return np.where(mask, g, np.zeros((), g.dtype))
    np.copyto(out, np.where(mask, g, np.zeros((), g.dtype)))
    return out


def _sigmoid(x):
    e = np.exp(-np.abs(x))  # never overflows; the same formula as Value.sigmoid, per branch
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def _log_softmax(x, axis):
    shifted = x - _reduce(np.maximum, x, axis)
    return shifted - np.log(_reduce(np.add, np.exp(shifted), axis))


def _softmax(x, axis):
    e = np.exp(x - _reduce(np.maximum, x, axis))
    return e / _reduce(np.add, e, axis)


_SHORT = 32  # a last axis at most this long is reduced another way (see _reduce)


def _reduce(ufunc, x, axis):
    """``ufunc.reduce(x, axis, keepdims=True)`` for ``np.add`` or ``np.maximum``.

    NOTE: numpy reduces a short last axis one row at a time: the max over 10 classes of
    3,200 rows of logits (the RNN benchmark's) takes 143 µs, the sum 76 µs. Sums become a
    product with a vector of ones (20 µs), and maxima reduce the first axis of a
    transposed copy, whole rows at a time (38 µs). The max is the same number; the sum
    may differ in the last bit, as numpy's own sums do between layouts.
    """
    n = x.shape[-1] if x.ndim >= 2 and type(axis) is int and axis in (-1, x.ndim - 1) else 0
    if 0 < n <= _SHORT and x.dtype.kind == "f":
        rows = x.reshape(-1, n)
        if ufunc is np.add:
            out = rows @ np.ones(n, x.dtype)
        else:
            out = ufunc.reduce(np.ascontiguousarray(rows.T), axis=0)
        return out.reshape(x.shape[:-1] + (1,))
    return ufunc.reduce(x, axis=axis, keepdims=True)


def _stack_vjp(g, out, arrays, axis):
    """The gradients of ``stack(arrays, axis)``: the pieces of ``g`` along ``axis``, as views."""
    return list(g if axis in (0, -g.ndim) else np.moveaxis(g, axis, 0))


def _concat_vjp(g, out, arrays, axis):
    """The gradients of ``concat(arrays, axis)``: the pieces of ``g`` each input filled, as views."""
    return np.split(g, np.cumsum([a.shape[axis] for a in arrays[:-1]]), axis=axis)


def _power_less_one(a, p):
    """``a ** (p - 1)``. From 2**53 on every float is an even integer, so ``p - 1`` rounds to
    an even number where the true one is odd: the sign of ``a`` is put back there."""
    d = np.power(a, p - 1)
    return np.copysign(d, a) if abs(p) >= 2.0**53 else d


def _joined(rows, shape):
    """The arrays ``rows`` (None where one is missing) as one array of ``shape``, without a
    copy, if they are consecutive pieces of one array, in order, as the pieces that
    :func:`_fresh_like` hands out for consecutive states are; else None."""
    first = rows[0]
    if first is None:
        return None
    starts = {}
    place = _piece(first, starts)
    if place is None:
        return None
    base, offset = place
    at, size = offset, first.nbytes
    for row in rows[1:]:
        if row is None or row.shape != first.shape:
            return None
        at += size
        place = _PLACES.get(id(row))  # what _piece answers first, without a call
        place = place[1] if place is not None and place[0] is row else _piece(row, starts)
        if place is None or place[0] is not base or place[1] != at:
            return None
    return _span(base, offset // first.itemsize, shape)


# Arrays that stack or concat made and lent pieces of to their inputs (_share_storage),
# by id; and during a pass, id(such an array) -> (the array, its twin): see _fresh_like.
_SHARED = weakref.WeakValueDictionary()
_TWINS: dict = {}
# During a pass: id(x) -> (x, (base, offset)), for the pieces _fresh_like met and handed out:
# where each lies in its array (what _piece finds), known without asking for addresses again.
_PLACES: dict = {}
_TWIN_BYTES = memory.MMAP_THRESHOLD  # no twins this large: see _fresh_like


def _fresh_like(out: np.ndarray) -> np.ndarray:
    """A new uninitialised array like ``out``, where an elementwise op's VJP writes the
    gradient for its input: if ``out`` is a piece of an array that ``stack`` shared
    (H_t in the stacked states of an RNN), the same piece of that array's twin, made
    once per pass.

    NOTE: so the gradients of consecutive steps' pre-activations lie side by side, in the
    order of the steps, as their states do. They are the rows of the input projections'
    gradient (xw[t] + H_{t-1} W_hh passes its gradient on to xw[t] as it is), which then
    join without a copy (:func:`_joined`), and the gᵢ of W_hh's kept products
    (:class:`_Products`) are one array as they come. Stacking those rows instead copied
    every one of them at the end of the pass: without that copy a T=100, 128-unit RNN's
    forward + backward took 2 to 4% less time (``benchmarks.rnn``, taking turns).

    A twin of ``_TWIN_BYTES`` or more (32 MB: the size from which malloc maps fresh memory
    for each allocation instead of reusing its heap, once :mod:`autograd.memory` has set
    it; where those settings are off or do not apply, malloc's own threshold starts lower
    and grows as memory is freed, and a smaller twin may be fresh memory too) is not made:
    its pages would be faulted in anew while every pass writes them, where the arrays of
    the steps come from the heap the process keeps. At 512 units and T = 1000 (a twin of
    131 MB), backward right after a numpy run took 1.0 s with the twin and 0.55 s without.
    """
    base = out.base
    if type(base) is not np.ndarray or not out.flags.c_contiguous or out.dtype != base.dtype:
        return np.empty_like(out)  # (an unpickled array's base is the bytes it was read from)
    twin = _TWINS.get(id(base))
    if twin is None or twin[0] is not base:
        if _SHARED.get(id(base)) is not base or base.nbytes >= _TWIN_BYTES:
            return np.empty_like(out)
        start = _address(base)
        if start is None:
            return np.empty_like(out)
        made = _aligned_empty(base.shape, base.dtype)
        # (the array, its twin (flat), the array's address, the array the twin is a view of,
        # and where the twin starts in it)
        twin = _TWINS[id(base)] = (base, made.reshape(-1), start, made.base, _address(made) - _address(made.base))
    here = _address(out)
    if here is None:
        return np.empty_like(out)
    offset = here - twin[2]
    first = offset // out.itemsize
    piece = twin[1][first:first + out.size].reshape(out.shape)
    _PLACES[id(out)] = (out, (base, offset))
    _PLACES[id(piece)] = (piece, (twin[3], twin[4] + offset))  # where _piece would find it
    return piece


def _tanh_vjp(g, out, a):
    d = np.multiply(out, out, out=_fresh_like(out))  # g (1 - tanh²) in one new array, not three
    np.subtract(1.0, d, out=d)
    return np.multiply(g, d, out=d)


def _sigmoid_vjp(g, out, a):
    d = np.multiply(g, out, out=_fresh_like(out))  # (g σ)(1 - σ), in the order Value computes it
    return np.multiply(d, 1.0 - out, out=d)


# --- the op table ----------------------------------------------------------------------
# reads=: the inputs whose numbers the VJPs read (Op.reads; all of them unless given)
ADD = Primitive("+", np.add, lambda g, out, a, b: g, lambda g, out, a, b: g, aliases=True, reads=())
SUB = Primitive("-", np.subtract, lambda g, out, a, b: g, lambda g, out, a, b: -g, aliases=True, reads=())
MUL = Primitive("*", np.multiply, lambda g, out, a, b: g * b, lambda g, out, a, b: g * a, reads={0: (1,), 1: (0,)})
DIV = Primitive("/", np.divide, lambda g, out, a, b: g / b, lambda g, out, a, b: -g * out / b, reads={1: (0, 1)})
NEG = Primitive("neg", np.negative, lambda g, out, a: -g, reads=())
POW = Primitive(
    "**",
    lambda a, p: np.power(a, p),
    # x**0 is constant: its derivative is 0, also at x = 0
    lambda g, out, a, p: g * p * _power_less_one(a, p) if p != 0 else np.zeros_like(g),
)
MATMUL = Primitive("@", np.matmul, lambda g, out, a, b: _matmul_grad(0, g, a, b),
                   lambda g, out, a, b: _matmul_grad(1, g, a, b), reads={0: (1,), 1: (0,)})
# c + a @ b as one node (torch.addmm): a layer's x W + b, an RNN step's xw_t + h W_hh.
ADDMM = Primitive("addmm", _addmm, lambda g, out, c, a, b: g, _addmm_vjp(0), _addmm_vjp(1),
                  aliases=(True, False, False), reads={1: (2,), 2: (1,)})
RPOW = Primitive("rpow", lambda a, base: np.power(base, a), lambda g, out, a, base: g * out * np.log(base),
                 reads=())
EXP = Primitive("exp", np.exp, lambda g, out, a: np.multiply(g, out, out=_fresh_like(out)), reads=())
LOG = Primitive("log", np.log, lambda g, out, a: g / a)
TANH = Primitive("tanh", np.tanh, _tanh_vjp, reads=())
SIGMOID = Primitive("sigmoid", _sigmoid, _sigmoid_vjp, reads=())
# NOTE: relu'(0) = 0, as for Value.
RELU = Primitive("relu", lambda a: np.maximum(a, 0.0), lambda g, out, a: _masked(g, a > 0, _fresh_like(out)))
CLIP = Primitive(
    "clip",
    lambda a, low, high: np.clip(a, low, high),
    lambda g, out, a, low, high: _masked(g, (a >= low) & (a <= high)),
)
SUM = Primitive(
    "sum",
    lambda a, axis, keepdims: np.sum(a, axis=axis, keepdims=keepdims),
    lambda g, out, a, axis, keepdims: np.broadcast_to(_keep(g, axis, keepdims), a.shape),
    aliases=True,
    reads=(),
)
MAX = Primitive("max", lambda a, axis, keepdims: np.max(a, axis=axis, keepdims=keepdims), _max_vjp)
RESHAPE = Primitive(
    "reshape",
    lambda a, shape: np.reshape(a, shape),
    lambda g, out, a, shape: np.reshape(g, a.shape),
    aliases=True,
    reads=(),
)
TRANSPOSE = Primitive(
    "transpose",
    lambda a, axes: np.transpose(a, axes),
    lambda g, out, a, axes: np.transpose(g, None if axes is None else np.argsort(axes)),
    aliases=True,
    reads=(),
)
GETITEM = Primitive(
    "getitem",
    lambda a, index: a[index],
    lambda g, out, a, index: _IndexGrad(index, g),  # what its own backward gives, rows kept as rows
    backward=_getitem_backward,
    reads=(),
)
SOFTMAX = Primitive(
    "softmax",
    _softmax,
    lambda g, out, a, axis: out * (g - _reduce(np.add, g * out, axis)),
    reads=(),
)
LOG_SOFTMAX = Primitive(
    "log_softmax",
    _log_softmax,
    lambda g, out, a, axis: g - np.exp(out) * _reduce(np.add, g, axis),
    reads=(),
)
STACK = Primitive(
    "stack",
    lambda *arrays, axis: np.stack(arrays, axis=axis),
    _stack_vjp,
    aliases=True,
    variadic=True,
    reads=(),
)
CONCAT = Primitive(
    "concat",
    lambda *arrays, axis: np.concatenate(arrays, axis=axis),
    _concat_vjp,
    aliases=True,
    variadic=True,
    reads=(),
)
DETACH = Op("detach")

# The ops' backward functions are closures: copies and pickles of a graph find the ops
# again by name (graph.Op.register).
for _name, _prim in list(globals().items()):
    if isinstance(_prim, Primitive):
        _prim.op.register(f"autograd.tensor.{_name}")
DETACH.register("autograd.tensor.DETACH")
del _name, _prim


def addmm(c, a, b) -> Tensor:
    """``c + a @ b`` as one op (``torch.addmm(input, mat1, mat2)``): a layer's x W + b.

    ``a @ b`` is any product ``@`` takes (1-D, 2-D, batched) and ``c`` broadcasts against
    it, as in ``c + a @ b``, which gives the same numbers and gradients. One node and one
    new array instead of two of each: d/dc = g (summed back to c's shape), d/da = g bᵀ,
    d/db = aᵀ g.
    """
    return ADDMM.apply(c, a, b)


def stack(tensors, axis: int = 0) -> Tensor:
    """Join tensors of equal shape along a new axis (``np.stack``)."""
    tensors = _sequence(tensors, "stack")
    axis = _axis(axis, _ndim(tensors[0]) + 1, "stack")  # the new axis may also come after the last
    out = STACK.apply(*tensors, axis=axis)
    if axis == 0:
        _share_storage(out, tensors, _pieces(out.data))
    return out


def _pieces(stacked: np.ndarray) -> list:
    """The views of ``stacked`` along its first axis. (Iterating an array gives them, but
    as numpy scalars, which are copies, where the pieces have no axes of their own.)"""
    return list(stacked) if stacked.ndim > 1 else [stacked[i, ...] for i in range(len(stacked))]


def concat(tensors, axis: int = 0) -> Tensor:
    """Join tensors along an existing axis (``np.concatenate``)."""
    tensors = _sequence(tensors, "concat")
    if axis is None:  # np.concatenate flattens then; say so rather than fail inside
        raise TypeError("concat: axis must be an int, got None (to join flattened tensors, reshape them to 1-D first)")
    out = CONCAT.apply(*tensors, axis=_axis(axis, _ndim(tensors[0]), "concat"))
    if out._params["axis"] == 0:  # np.split gives the pieces as views
        _share_storage(out, tensors, np.split(out.data, np.cumsum([np.shape(t)[0] for t in tensors[:-1]])))
    return out


class StackBuilder:
    """``stack`` of tensors that arrive one at a time: ``b = StackBuilder(n)``, then
    ``b.append(t)`` for each of the ``n`` tensors, then ``b.stack()``, which is
    ``stack([t_1, ..., t_n])`` (along a new first axis): the same node, numbers and
    gradients.

    Each appended op result takes its place in the stacked array at once, as ``stack``
    would give it at the end (see :func:`_share_storage`), and ``stack()`` then needs no
    copy. NOTE: an RNN stacks its states so. Copied in as each state is made, while its
    numbers are still in the cache, and freeing its own array for the next step's op to
    reuse, the states cost about 1% less of a T=100, 128-unit RNN's forward + backward than
    when ``stack`` copies all of them at the end (in one process, taking turns). Anything
    that cannot take its place (a leaf, a view, another shape or dtype, more or fewer than
    ``n`` tensors) makes ``stack()`` the plain ``stack`` of what was appended.
    """

    __slots__ = ("n", "tensors", "taken", "slots")

    def __init__(self, n: int):
        if type(n) is bool or not isinstance(n, Integral):
            raise TypeError(f"StackBuilder expects the number of tensors to come, an int, got {n!r}")
        if n < 0:
            raise ValueError(f"StackBuilder expects the number of tensors to come, an int >= 0, got {n}")
        self.n = int(n)
        self.tensors = []
        self.taken = 0  # how many of the first tensors took their places (all, or none since)
        self.slots = ()  # the pieces of the stacked array, made at the first append

    def append(self, t) -> None:
        tensors = self.tensors
        i = len(tensors)
        tensors.append(t)
        if i != self.taken or i >= self.n or type(t) is not Tensor or not t._op:
            return
        data = t.data
        if i == 0 and data.base is None:  # the pieces have the stacked array as their base,
            self.slots = _pieces(np.empty((self.n, *data.shape), data.dtype))  # which _fresh_like reads
        elif data.base is not None or data.shape != self.slots[0].shape or data.dtype != self.slots[0].dtype:
            return
        piece = self.slots[i]
        piece[...] = data
        t.data = piece
        self.taken = i + 1

    def stack(self) -> Tensor:
        tensors, slots = self.tensors, self.slots
        if (not tensors or self.taken != self.n or len(tensors) != self.n
                or not all(map(operator.is_, [t.data for t in tensors], slots))):
            return stack(tensors)
        stacked = slots[0].base
        _SHARED[id(stacked)] = stacked  # for the twin of its gradient (see _fresh_like)
        return _result(STACK, stacked, {"axis": 0}, tuple(tensors), True in [t.requires_grad for t in tensors])


def _share_storage(out: Tensor, tensors, pieces) -> None:
    """Let each op result among ``tensors`` that owns its array take the matching piece
    of ``out``'s data (a view with the same numbers) instead, and free its own.

    NOTE: an RNN stacks its states H_1..H_T into one array, and every state, as a node,
    keeps its data: so each state was held twice. Sharing the stacked array halves that
    memory, and the smaller graph is faster to differentiate (about 2% of a T=100,
    128-unit RNN's forward + backward). Only the results of ops move (never a leaf,
    whose array the user or an optimizer may write to), and only to a contiguous piece of
    the same dtype, so nothing reads differently.
    """
    dtype = out.data.dtype
    shared = False
    for t, piece in zip(tensors, pieces):
        if type(t) is Tensor and t._op and t.data.base is None and t.data.dtype == dtype:
            t.data = piece
            shared = True
    if shared:
        _SHARED[id(out.data)] = out.data


def _sequence(tensors, what):
    if isinstance(tensors, (Node, np.ndarray, dict, str)) or not hasattr(tensors, "__iter__"):
        raise TypeError(f"{what}() expects a list or tuple of Tensors, got {type(tensors).__name__}")
    tensors = list(tensors)
    if not tensors:
        raise ValueError(f"{what}() needs at least one tensor")
    return tensors
