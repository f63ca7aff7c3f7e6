"""``Value``: a scalar node, compatible with micrograd's.

Each primitive is a forward method of ``Value`` and a backward function listed in the op
table below, ``backward(op, out)``, which adds the vector-Jacobian product into the
parents' ``grad``. The backward functions are shared by every node of an op (no closure
per node), which is what makes this engine several times faster than micrograd. Derived
operations (``-``, ``/``, ``sub``) are one line on top of the primitives and have no
derivative code.
"""

from __future__ import annotations

import math
import sys
from numbers import Real

from .graph import NOT_RECORDED, STATE, AnomalyError, Node, Op, _ids, format_scope, leaf, record, too_large

__all__ = ["Value"]

_new = object.__new__
_ZERO = 0.0  # the one "no gradient yet" object: backward tells reached nodes by identity
_REACHED_ZERO = float("0")  # 0.0 as well, but another object: "reached, and it was 0"


def _real(x, what: str) -> float:
    """``x`` as a float, or a clear error for anything that is not a real number."""
    t = type(x)
    if t is float:
        return x
    if isinstance(x, Real) and not isinstance(x, bool):
        try:
            return float(x)
        except OverflowError:
            raise too_large(x, what) from None
    if _is_array(x) and x.ndim == 0 and x.dtype.kind in "iuf":
        return float(x)
    raise TypeError(f"{what} expects a real number (int or float), got {type(x).__name__}: {x!r}")


def _is_array(x) -> bool:
    """Whether ``x`` is a numpy array. NOTE: the scalar engine does not import numpy (a
    Value-only program starts without it); an array can only exist once numpy is loaded."""
    np = sys.modules.get("numpy")
    return np is not None and isinstance(x, np.ndarray)


def _ieee(f, *args) -> float:
    """Python's math raises on overflow and division by zero; IEEE (and numpy) gives
    ±inf or nan. Only the rare failing call pays for the numpy fallback."""
    try:
        return f(*args)
    except (OverflowError, ZeroDivisionError):
        import numpy as np

        with np.errstate(all="ignore"):
            npf = {math.exp: np.exp, pow: np.power}[f]
            return float(npf(*(np.float64(a) for a in args)))


# --- backward of each primitive: out.grad times the local derivative, into each parent ---
# (A zero is not added: where relu is off, the nodes behind it keep the "no gradient yet"
# 0.0 and pass nothing on. Leaves the pass found get a 0.0 of their own: _reached_leaves.)
def _add_backward(op, out):
    a = out._p0
    b = out._p1
    g = out.grad
    a.grad += g
    b.grad += g


def _mul_backward(op, out):
    a = out._p0
    b = out._p1
    g = out.grad
    a.grad += g * b.data
    b.grad += g * a.data


def _pow_backward(op, out):
    a = out._p0
    p = op.exponent
    if p == 0.0:  # x**0 is constant: its derivative is 0, also at x = 0
        return
    x = a.data
    d = _ieee(pow, x, p - 1.0)
    if abs(p) >= _EXACT:  # p is an even integer, so p - 1 is odd: x**(p - 1) has x's sign,
        d = math.copysign(d, x)  # which is lost where p - 1 rounded to an even number
    g = out.grad * p * d
    if not _NORMAL <= abs(d) < math.inf and x != 0.0 and _NORMAL <= abs(out.data) < math.inf:
        # x**(p - 1) overflowed or lost digits where x**p did not: for a
        # divisor b in a / b = a * b**-1, b**-2 is inf from |b| < 1e-154 on and subnormal
        # past 1e154, and -g / b² came out -inf, NaN (0 * inf) or 1e-5 off. Taken as
        # g p x**p / x, in that order, it is finite: -1e160 for 1e-160 / 1e-160, as in PyTorch.
        g = out.grad * p * out.data / x
    a.grad += g


# From 2**53 on, every float is an even integer: p - 1 is not representable and rounds.
_EXACT = 2.0**53
_NORMAL = sys.float_info.min  # the smallest normal float64: below it, digits are lost


def _rpow_backward(op, out):
    # d(b**x)/dx = b**x log b
    out._p0.grad += out.grad * out.data * op.log_base


def _exp_backward(op, out):
    out._p0.grad += out.grad * out.data


def _log_backward(op, out):
    a = out._p0
    a.grad += out.grad / a.data


def _tanh_backward(op, out):
    t = out.data
    out._p0.grad += out.grad * (1.0 - t * t)


def _sigmoid_backward(op, out):
    s = out.data
    out._p0.grad += out.grad * s * (1.0 - s)


def _relu_backward(op, out):
    # NOTE: relu'(0) = 0, as in micrograd and PyTorch.
    if out.data > 0:
        out._p0.grad += out.grad


def _clip_backward(op, out):
    # NOTE: the gradient passes where the input was not limited, boundaries included.
    a = out._p0
    if a.data == out.data:
        a.grad += out.grad


ADD = Op("+", _add_backward, reads=())  # reads=: see Op.reads
MUL = Op("*", _mul_backward, reads={0: (1,), 1: (0,)})
_POW_OPS: dict[tuple, Op] = {}


def _pow_op(p: float) -> Op:
    """The op ``x**p`` (named ``**p``, as micrograd names it), carrying its exponent."""
    return _cached_op(("**", p), lambda: Op(f"**{p:g}", _pow_backward, exponent=p))


def _rpow_op(b: float) -> Op:
    """The op ``b**x`` for a number base ``b`` (named ``b**``), carrying log b."""
    return _cached_op(("rpow", b), lambda: Op(f"{b:g}**", _rpow_backward, log_base=math.log(b), reads=()))


def _cached_op(key, make) -> Op:
    op = _POW_OPS.get(key)
    if op is None:
        op = make()
        if len(_POW_OPS) < 4096:
            _POW_OPS[key] = op
    return op


EXP = Op("exp", _exp_backward, reads=())
LOG = Op("log", _log_backward)
TANH = Op("tanh", _tanh_backward, reads=())
SIGMOID = Op("sigmoid", _sigmoid_backward, reads=())
RELU = Op("relu", _relu_backward, reads=())
CLIP = Op("clip", _clip_backward)


def _binary(op: Op, what: str):
    """The method ``self + other`` or ``self * other`` (and the reflected one, ``other + self``):
    the two primitives with two inputs. The parents are the Value, then the other operand.

    NOTE: it builds the node itself rather than calling :func:`_result`: ``+`` and ``*`` are
    most of a scalar graph's nodes, and the call saved is a sixth of their cost.
    """
    add = op is ADD

    def method(self, other):
        if type(other) is not Value:
            other = _as_value(other, what)
            if other is NotImplemented:
                return other
        out = _new(Value)
        out.data = self.data + other.data if add else self.data * other.data
        out.grad = _ZERO
        if STATE.plain:
            out._p0 = self
            out._p1 = other
            out._op = op
            out._scope = STATE.scope
            out._id = next(_ids)
            return out
        return record(out, (self, other), op)

    return method


class Value(Node):
    """A scalar in the computation graph.

    ``Value(data, label="")``: ``data`` is a float, ``grad`` starts at 0.0 and holds
    d(output)/d(this node) after ``output.backward()`` — on every node, intermediates
    included. Python numbers mix freely on either side of ``+ - * / **``.
    """

    __slots__ = ()
    _EMPTY_GRAD = _ZERO
    _NOTHING_ARRIVED = _REACHED_ZERO  # a zero is not added (see the op table), but it was reached

    def __init__(self, data, label: str = ""):
        leaf(self, _real(data, "Value"), _ZERO, label)

    # --- node-kind hooks used by the graph core -------------------------------------
    _is_finite = staticmethod(math.isfinite)

    @classmethod
    def _seed(cls, node, grad):
        return 1.0 if grad is None else _real(grad, "backward() seed")

    @staticmethod
    def _reached_leaves(leaves) -> None:
        # A leaf the pass found but gave nothing (every path from it ran through a relu that
        # is off) gets a 0.0 that is not the "no gradient yet" one: an optimizer tells the
        # parameters a pass reached from those it did not by it (nn.backends.has_grad), as
        # a Tensor's gradient is zeros rather than None there.
        for node in leaves:
            if node.grad is _ZERO:
                node.grad = _REACHED_ZERO

    @staticmethod
    def _summarize(x) -> str:
        return f"{x:.6g}"

    # --- primitives -----------------------------------------------------------------
    __add__ = __radd__ = _binary(ADD, "Value + x")
    __mul__ = __rmul__ = _binary(MUL, "Value * x")

    def __pow__(self, exponent):
        if isinstance(exponent, Value):
            raise TypeError(
                "Value ** Value is not supported: the exponent must be a number "
                f"(int or float), got a Value ({exponent._describe()})"
            )
        p = _real(exponent, "Value ** p")
        x = self.data
        if x < 0 and not p.is_integer():
            raise ValueError(f"Value ** {p}: a negative base ({x}) needs an integer exponent")
        return _result(_ieee(pow, x, p), self, None, _pow_op(p))

    def exp(self):
        return _result(_ieee(math.exp, self.data), self, None, EXP)

    def log(self):
        x = self.data
        if x <= 0:
            raise ValueError(f"log expects a positive input, got {x} ({self._describe()})")
        return _result(math.log(x), self, None, LOG)

    def tanh(self):
        return _result(math.tanh(self.data), self, None, TANH)

    def sigmoid(self):
        x = self.data
        if x >= 0:
            s = 1.0 / (1.0 + math.exp(-x))
        else:  # exp(x) cannot overflow here
            e = math.exp(x)
            s = e / (1.0 + e)
        return _result(s, self, None, SIGMOID)

    def relu(self):
        x = self.data
        return _result(0.0 if x <= 0 else x, self, None, RELU)  # NaN stays NaN

    def clip(self, low: float, high: float):
        """``x`` limited to ``[low, high]``; the gradient passes where low <= x <= high."""
        low, high = _real(low, "clip low"), _real(high, "clip high")
        if not low <= high:  # NaN fails too
            raise ValueError(f"clip: needs numbers low <= high, got low={low}, high={high}")
        return _result(min(max(self.data, low), high), self, None, CLIP)

    def detach(self):
        """The same number as a constant: no gradient flows back through it, and, as a
        detached Tensor, it is not a parameter (a model keeping its last state finds no
        parameter in it) and no backward starts from it."""
        out = Value(self.data, label=self.label)
        out._op = NOT_RECORDED
        return out

    # --- derived: no derivative code of their own --------------------------------------
    def __neg__(self):
        return self * -1.0

    def __sub__(self, other):
        other = _operand(other, "Value - x")
        return NotImplemented if other is NotImplemented else self + (-other)

    def __rsub__(self, other):
        return (-self) + _operand(other, "x - Value")

    def __truediv__(self, other):
        other = _operand(other, "Value / x")
        if type(other) is float:  # x / 0.0 is ±inf or nan, as for Values (Python's 0.0**-1 raises)
            inverse = _ieee(pow, other, -1.0)
            if STATE.anomaly and not math.isfinite(inverse):  # (else the error would name '*' and a
                raise AnomalyError(  # constant 1/y the user never wrote)
                    f"op '/' divides {self._describe()} by {other}: 1/{other} is not finite\n"
                    f"  scope: {format_scope(STATE.scope)}"
                )
            return self * inverse
        return NotImplemented if other is NotImplemented else self * other**-1

    def __rtruediv__(self, other):
        return _operand(other, "x / Value") * self**-1

    def __rpow__(self, base):
        b = _real(base, "x ** Value")
        if b <= 0:
            raise ValueError(f"{b} ** Value: the base must be positive")
        return _result(_ieee(pow, b, self.data), self, None, _rpow_op(b))

    def __float__(self):
        """Refused: ``math.tanh(v)``, ``math.exp(v)`` would call it and compute on the number
        alone, and whatever is built on their float would get a wrong gradient without a
        word (micrograd's Value, which has no ``__float__``, refuses them too)."""
        raise TypeError(
            f"a Value is not converted to a float implicitly (got {self._describe()}): math.tanh(v), "
            "math.exp(v) and the like would drop the graph, and gradients through them would be "
            "wrong. Use the Value's own ops (v.tanh(), v.exp(), v.log(), v.relu(), v.sigmoid()), "
            "or v.item() / v.data for the number"
        )

    def item(self) -> float:
        """The number, as a Tensor's ``item()`` gives it: code that reads ``loss.item()``
        runs on both engines."""
        return self.data

    def __repr__(self):
        parts = [f"data={_short(self.data)}", f"grad={_short(self.grad)}"]
        if self._op:
            parts.append(f"op={str(self._op)!r}")
        if self.label:
            parts.append(f"label={self.label!r}")
        return f"Value({', '.join(parts)})"


def _short(x) -> str:
    """A number in six digits; anything else (a grad set to None by hand) as its repr."""
    return f"{x:.6g}" if type(x) is float else repr(x)


def _operand(x, what: str):
    """``x`` unchanged if it is a Value or a real number, else a clear error. (Derived
    ops check their operand before they transform it.)"""
    if type(x) is Value or type(x) is float or isinstance(x, Value):
        return x
    if _is_array(x) and x.ndim:
        return NotImplemented  # numpy applies the op to each entry
    if isinstance(x, Node):
        raise TypeError(f"{what}: cannot mix a Value with a {type(x).__name__}")
    return _real(x, what)


def _as_value(x, what: str):
    """The other operand of a primitive as a Value: a number becomes a constant leaf (as
    micrograd does); a numpy array gives NotImplemented, so that numpy applies the op to
    each entry."""
    if type(x) is not float:
        x = _operand(x, what)
        if x is NotImplemented or isinstance(x, Value):  # a subclass of Value is a Value
            return x
    constant = leaf(_new(Value), x, _ZERO)
    constant._op = NOT_RECORDED  # (so detect_anomaly does not blame it for the gradient it is given)
    return constant


def _result(data: float, a: Value, b: Value | None, op: Op,
            _new=_new, Value=Value, _ZERO=_ZERO, state=STATE, _ids=_ids) -> Value:
    """The node for ``op``'s result ``data`` computed from ``a`` (and ``b``).
    (The keyword defaults make module globals local names: this runs once per node.)"""
    out = _new(Value)
    out.data = data
    out.grad = _ZERO
    if state.plain:  # the hot path: recording on, no anomaly checks
        out._p0 = a
        out._p1 = b
        out._op = op
        out._scope = state.scope
        out._id = next(_ids)
        return out
    return record(out, (a,) if b is None else (a, b), op)


