"""``gradcheck``: autograd's gradients against central finite differences."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .graph import NOT_RECORDED, Node, enable_grad, flag, no_grad, topological_order
from .value import _real

if TYPE_CHECKING:  # numpy is imported when gradcheck runs, not with autograd
    import numpy as np

__all__ = ["GradcheckError", "GradcheckReport", "gradcheck"]

_DEFAULTS = (1e-6, 1e-5, 1e-3)  # eps, atol, rtol: float64's


class GradcheckError(AssertionError):
    """Raised by :func:`gradcheck` when an analytic gradient disagrees with the numeric one."""

    def __init__(self, report: GradcheckReport):
        super().__init__("gradcheck failed:\n" + str(report))
        self.report = report


@dataclass
class InputCheck:
    """The comparison for one input: ``analytic`` from backward, ``numeric`` from
    central differences (both shaped like the input), and the worst errors."""

    name: str
    analytic: np.ndarray
    numeric: np.ndarray
    max_abs_error: float
    max_rel_error: float
    ok: bool


@dataclass
class GradcheckReport:
    """Result of :func:`gradcheck`: one :class:`InputCheck` per input; prints as a table."""

    checks: list[InputCheck] = field(default_factory=list)
    eps: float = _DEFAULTS[0]
    atol: float = _DEFAULTS[1]
    rtol: float = _DEFAULTS[2]

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def __bool__(self) -> bool:
        return self.ok

    def __getitem__(self, i) -> InputCheck:
        return self.checks[i]

    def __str__(self) -> str:
        head = ("input", "shape", "analytic", "numeric", "abs error", "rel error", "")
        rows = [head]
        for c in self.checks:
            rows.append((
                c.name,
                "scalar" if c.analytic.ndim == 0 else "x".join(map(str, c.analytic.shape)),
                _show(c.analytic),
                _show(c.numeric),
                f"{c.max_abs_error:.2e}",
                f"{c.max_rel_error:.2e}",
                "ok" if c.ok else "MISMATCH",
            ))
        widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
        lines = ["  ".join(s.ljust(w) for s, w in zip(r, widths)).rstrip() for r in rows]
        lines.insert(1, "-" * max(map(len, lines)))
        lines.append(f"(central differences, eps={self.eps:g}; "
                     f"pass: |a-n| <= {self.atol:g} + {self.rtol:g}|n|)")
        if not self.ok:
            lines.append("(a mismatch is expected within eps of a point where f has no derivative: relu or "
                         "|x| at 0, clip at a bound, max at a tie; check at points away from them)")
        return "\n".join(lines)

    __repr__ = __str__


def _show(a: np.ndarray) -> str:
    """A scalar in full; an array by its norm (the table has to stay one line per input)."""
    import numpy as np

    if a.size == 1:
        return f"{a.item():.10g}"
    return f"|.|={np.linalg.norm(a):.6g}"


def gradcheck(f, inputs, *, eps: float = _DEFAULTS[0], atol: float = _DEFAULTS[1], rtol: float = _DEFAULTS[2],
              seed: int = 0, raise_on_failure: bool = True) -> GradcheckReport:
    """Compare autograd's gradient of ``f(*inputs)`` with central finite differences.

    ``inputs`` are leaf ``Value``s or ``Tensor``s (they may be mixed). ``f`` must rebuild
    its graph from them on every call. For each input x and each of its entries x_i:

        numeric_i = (F(x_i + eps) - F(x_i - eps)) / ((x_i + eps) - (x_i - eps))

    (the divisor is the step actually taken, 2 eps unless x_i is so large that x_i ± eps
    rounds; an eps too small to change x_i at all is refused), where F is the output if it
    is a scalar, and ``sum(output * v)`` for a fixed random direction ``v`` (drawn from
    ``seed``) if it is a non-scalar Tensor, so that every entry of the output is checked
    at once. The analytic side is one ``backward`` (seeded
    with ``v``). An entry passes when ``|analytic - numeric| <= atol + rtol |numeric|``.

    Gradients already on the inputs, and on every other node of ``f``'s graph (parameters
    it closes over), are left as they were. On a mismatch it raises
    :class:`GradcheckError`, whose message is the report table, unless
    ``raise_on_failure=False``, in which case it returns the report with ``ok == False``.
    Finite differences need float64: a float32 input is refused with the default ``eps``,
    ``atol`` and ``rtol`` (check float32 graphs in float64, or pass tolerances of its own).
    """
    import numpy as np

    if not callable(f):
        raise TypeError(f"gradcheck: f must be a function of the inputs, got {type(f).__name__}")
    raise_on_failure = flag("gradcheck: raise_on_failure", raise_on_failure)
    if isinstance(inputs, Node):
        raise TypeError(f"gradcheck: inputs must be a list of Values or Tensors, got a single "
                        f"{type(inputs).__name__}; wrap it in a list")
    inputs = list(inputs)
    if not inputs:
        raise ValueError("gradcheck: got no inputs to check")
    for name, value, positive in (("eps", eps, True), ("atol", atol, False), ("rtol", rtol, False)):
        x = _real(value, f"gradcheck: {name}")
        if not (x > 0 if positive else x >= 0) or math.isinf(x):  # NaN fails too
            raise ValueError(f"gradcheck: {name} must be a finite number {'> 0' if positive else '>= 0'}, "
                             f"got {value!r}")
    for i, x in enumerate(inputs):
        if not isinstance(x, Node):
            raise TypeError(f"gradcheck: input {i} must be a Value or Tensor, got {type(x).__name__}")
        if getattr(x, "requires_grad", True) is False:
            raise ValueError(f"gradcheck: input {i} ({x._describe()}) has requires_grad=False, so backward "
                             "gives it no gradient; create it with requires_grad=True")
        if x._op is NOT_RECORDED:
            raise ValueError(f"gradcheck: input {i} ({x._describe()}) is a constant (detached, or made under "
                             "no_grad), so backward gives it no gradient; pass the Value itself")
        if not x.is_leaf:
            raise ValueError(
                f"gradcheck: input {i} ({x._describe()}) is not a leaf; pass the leaves f is built from"
            )
        if (eps, atol, rtol) == _DEFAULTS:
            _refuse_narrow(x.data, f"input {i} ({x._describe()})")

    with enable_grad():
        out = f(*inputs)
    if not isinstance(out, Node):
        raise TypeError(f"gradcheck: f must return a Value or Tensor, got {type(out).__name__}")
    direction = None
    if isinstance(out.data, np.ndarray) and out.data.size != 1:
        direction = np.random.default_rng(seed).standard_normal(out.data.shape)

    def scalar_output() -> float:
        with no_grad():
            y = f(*inputs).data
        return float(np.vdot(y, direction)) if direction is not None else float(np.asarray(y).reshape(()))

    # Every node backward reaches keeps its gradient: the inputs, and also leaves that f
    # closes over (a model's parameters), which the pass would otherwise add to.
    nodes = list(dict.fromkeys([*inputs, *topological_order(out)]))
    saved = [(node, node.grad) for node in nodes]
    try:
        for node in nodes:
            node.grad = node._EMPTY_GRAD
        if out._op is not NOT_RECORDED:  # else nothing f returned depends on its inputs: zeros
            out.backward(direction)  # None: the implicit seed of a scalar output
        analytic = [np.zeros(np.shape(x.data)) if x.grad is None else np.array(x.grad, dtype=float)
                    for x in inputs]
    finally:
        for node, g in saved:
            node.grad = g

    report = GradcheckReport(eps=eps, atol=atol, rtol=rtol)
    for i, x in enumerate(inputs):
        numeric = np.zeros(np.shape(x.data))
        for index in np.ndindex(numeric.shape):
            numeric[index] = _central_difference(x, index, eps, scalar_output)
        a = analytic[i]
        err = np.abs(a - numeric)
        rel = err / np.maximum(np.abs(numeric), np.finfo(float).tiny)
        ok = bool(np.all(err <= atol + rtol * np.abs(numeric)))
        name = x.label or f"input {i}"
        report.checks.append(InputCheck(name, a, numeric, float(err.max(initial=0.0)),
                                        float(rel.max(initial=0.0)), ok))
    if raise_on_failure and not report.ok:
        raise GradcheckError(report)
    return report


def _refuse_narrow(data, what: str) -> None:
    """A float32 (or float16) input is refused: central differences in it keep only
    a few digits (float32's machine epsilon is 1.2e-7), so right gradients would show as
    mismatches."""
    dtype = getattr(data, "dtype", None)
    if dtype is not None and dtype.kind == "f" and dtype.itemsize < 8:
        raise ValueError(
            f"gradcheck: {what} is {dtype}: central differences in {dtype} keep only a few digits, so "
            "with the default eps, atol and rtol (float64's) a right gradient would be reported as a "
            "mismatch. Check the graph in float64 (e.g. Tensor(x.data.astype(np.float64), "
            "requires_grad=True), and float64 parameters), or pass eps, atol and rtol suited to "
            f"{dtype} (e.g. eps=1e-2, atol=rtol=1e-2)"
        )


def _central_difference(x: Node, index: tuple, eps: float, F) -> float:
    import numpy as np

    def at(value):  # x_i set to value (as stored: rounded to x's dtype), and F there
        if isinstance(x.data, np.ndarray):
            x.data[index] = value
            return float(x.data[index]), F()
        x.data = value
        return float(x.data), F()

    original = x.data[index] if isinstance(x.data, np.ndarray) else x.data
    step = None
    try:
        step = original + eps
        high, up = at(step)
        step = original - eps
        low, down = at(step)
    except (ValueError, ArithmeticError) as e:  # f refused x moved by eps: out of its domain (log)
        if type(e) not in (ValueError, ZeroDivisionError, OverflowError):
            raise
        where = f" entry {index}" if index else ""
        raise type(e)(f"gradcheck: f failed with {x.label or 'the input'}{where} at {float(original):g} moved to "
                      f"{float(step):g} (± eps={eps:g}): {e}. Near the edge of f's domain a smaller eps "
                      "keeps both points inside it") from None
    finally:
        if isinstance(x.data, np.ndarray):
            x.data[index] = original
        else:
            x.data = original
    if high == low:
        raise ValueError(f"gradcheck: eps={eps:g} does not change {x._describe()} at entry {index} "
                         f"({float(original):g} ± eps rounds to itself); pass a larger eps")
    return (up - down) / (high - low)
