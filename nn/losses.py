"""Loss functions, on either engine, built from engine ops (no gradient code here).

Every loss takes ``reduction``: "mean" (over all entries, or all samples for
``cross_entropy``), "sum", or "none" (the per-entry losses, for instance to sum over time
steps yourself). Targets are plain numbers (numpy arrays, lists) and are not
differentiated. A sequence loss is the sum over time steps, L = Σ_t L_t, as in the
lecture notes: :func:`sequence_loss`.
"""

from __future__ import annotations

import numpy as np

from autograd import Tensor, Value, stack
from autograd.graph import flag

from . import functional as F
from .backends import ValueBackend, plain_array, real_array, swap01, type_name

__all__ = [
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "cross_entropy",
    "mse_loss",
    "sequence_loss",
]

REDUCTIONS = ("mean", "sum", "none")
# Probabilities are kept this far from 0 and 1 before their logarithm is taken (or the
# dtype's machine epsilon, if larger: 1 - 1e-12 is 1 in float32).
PROBABILITY_EPS = 1e-12


class _EntryError(ValueError):
    """A loss's error about one sample: ``row``, its index on the first axis of the
    ``rows`` rows of ``array`` ("targets" or "outputs"), for :func:`sequence_loss`, which
    passes every step at once, to say which step it is."""

    def __init__(self, message: str, row: int, rows: int, array: str = "targets"):
        super().__init__(message)
        self.row, self.rows, self.array = row, rows, array


def _target(pred, target, name: str) -> np.ndarray:
    target = plain_array(target, f"{name}: the target")  # no graph nodes among the numbers
    target = real_array(target, f"{name}: target")  # a cast would drop an imaginary part
    target = target.astype(pred.dtype if isinstance(pred, Tensor) else np.float64, copy=False)
    if target.shape != np.shape(pred):
        raise ValueError(f"{name}: prediction shape {np.shape(pred)} and target shape {target.shape} differ")
    return target


def _check_pred(pred, name: str, allow_empty: bool = False):
    if not isinstance(pred, (Tensor, Value, np.ndarray)):
        hint = ("; join the outputs of several steps with autograd.stack (Tensors) or np.array(..., dtype=object) "
                "(Values)") if isinstance(pred, (list, tuple)) else ""
        raise TypeError(f"{name}: the prediction must be a Tensor, a Value or an object array of Values, "
                        f"got {type_name(pred)}{hint}")
    if isinstance(pred, np.ndarray) and pred.dtype != object:
        raise TypeError(f"{name}: the prediction is a plain numpy array (numbers, not graph nodes); "
                        "pass the model's output")
    if np.size(pred) == 0 and not allow_empty:
        raise ValueError(f"{name}: the prediction is empty (shape {np.shape(pred)})")


def _probability_rows(t: np.ndarray, name: str) -> None:
    """A clear error unless every row of ``t`` is a distribution over the classes: entries
    >= 0 summing to 1 (to rounding). Class indices of the logits' shape, say, are not."""
    rows = t.reshape(-1, t.shape[-1])  # (C,) is one row
    eps = float(np.finfo(t.dtype).eps) if t.dtype.kind == "f" else 0.0
    off = np.abs(rows.sum(axis=1, dtype=np.float64) - 1.0) > max(1e-6, 10 * rows.shape[1] * eps)
    bad = (rows < 0).any(axis=1) | off
    if bad.any():
        r = int(np.argmax(bad))
        raise _EntryError(f"{name}: a target of the logits' shape {t.shape} is one-hot or probability rows, "
                          f"each >= 0 and summing to 1; row {r} is {rows[r].tolist()} "
                          f"(for class indices, give one per sample, shape {t.shape[:-1]})", r, len(rows))


def _numbers(pred) -> np.ndarray:
    """The numbers of a prediction (a Tensor, a Value or an object array of Values)."""
    if isinstance(pred, Tensor):
        return pred.data
    if isinstance(pred, Value):
        return np.array(pred.data)
    return np.array([v.data for v in pred.flat]).reshape(pred.shape)


def _in_unit_interval(x: np.ndarray, name: str, what: str, array: str = "targets") -> None:
    """A clear error unless every entry of ``x`` lies in [0, 1] (NaN passes, as IEEE has it)."""
    outside = (x < 0) | (x > 1)
    if outside.any():
        index = tuple(int(i) for i in np.argwhere(outside)[0])
        message = f"{name}: {what} must lie in [0, 1], got {float(x[index])}" + (f" at index {index}" if index else "")
        raise _EntryError(message, index[0], x.shape[0], array) if index else ValueError(message)


def _reduce(losses, reduction: str, name: str, count: int | None = None):
    if reduction not in REDUCTIONS:
        raise ValueError(f"{name}: reduction must be one of {list(REDUCTIONS)}, got {reduction!r}")
    if reduction == "none" or isinstance(losses, Value):  # a single loss is its own sum and mean
        return losses
    total = losses.sum()
    if reduction == "sum":
        return total
    # divided, as PyTorch's mean is, not multiplied by 1/n, whose rounding moves the last bit (a
    # Value divides by multiplying by the inverse, as micrograd's does)
    return total / (np.size(losses) if count is None else count)


def mse_loss(pred, target, reduction: str = "mean"):
    """Squared error (ŷ - y)², averaged or summed over every entry."""
    _check_pred(pred, "mse_loss")
    diff = pred - _target(pred, target, "mse_loss")
    return _reduce(diff * diff, reduction, "mse_loss")


def binary_cross_entropy(prob, target, reduction: str = "mean"):
    """-(y log p + (1 - y) log(1 - p)) for probabilities p (e.g. from a sigmoid readout).

    NOTE: p is clipped to [ε, 1 - ε] before the logarithms, ε = 1e-12 in float64 (the
    machine epsilon in float32), so p = 0 or 1 gives a finite loss (27.63 for a certain
    wrong answer in float64) and no gradient through the clipped entry: a saturated wrong
    answer teaches nothing. Prefer :func:`binary_cross_entropy_with_logits` for training.
    """
    name = "binary_cross_entropy"
    _check_pred(prob, name)
    y = _target(prob, target, name)
    _in_unit_interval(_numbers(prob), name, "the probabilities (logits? use binary_cross_entropy_with_logits)",
                      "outputs")
    _in_unit_interval(y, name, "the targets")
    eps = max(PROBABILITY_EPS, float(np.finfo(prob.dtype).eps)) if isinstance(prob, Tensor) else PROBABILITY_EPS
    p = F.clip(prob, eps, 1.0 - eps)
    losses = -(F.log(p) * y + F.log(1.0 - p) * (1.0 - y))
    return _reduce(losses, reduction, "binary_cross_entropy")


def binary_cross_entropy_with_logits(logits, target, reduction: str = "mean"):
    """Binary cross-entropy of sigmoid(z), computed stably from the logits z.

    log sigmoid(z) is taken as a log-softmax over the pair (0, z), so no exp overflows and
    the gradient is sigmoid(z) - y everywhere, z = 0 included.
    """
    _check_pred(logits, "binary_cross_entropy_with_logits")
    y = _target(logits, target, "binary_cross_entropy_with_logits")
    _in_unit_interval(y, "binary_cross_entropy_with_logits", "the targets")
    shape = np.shape(logits)
    if isinstance(logits, Tensor):
        pair = stack([Tensor(np.zeros(shape, logits.dtype)), logits], axis=-1)
    else:
        pair = np.stack([ValueBackend.zeros(shape), np.asarray(logits, dtype=object)], axis=-1)
    logp = F.log_softmax(pair, axis=-1)  # [..., 0] = log(1 - sigmoid z), [..., 1] = log sigmoid z
    losses = -(logp[..., 1] * y + logp[..., 0] * (1.0 - y))
    return _reduce(losses, reduction, "binary_cross_entropy_with_logits")


def cross_entropy(logits, target, reduction: str = "mean"):
    """Softmax cross-entropy, -Σ_c y_c log softmax(z)_c, through a stable log-softmax.

    ``logits`` is (N, C) (or (C,) for one sample). ``target`` is either integer class
    indices (N,) in [0, C), or one-hot / probability rows of the same shape as ``logits``.
    "mean" averages over the N samples.
    """
    name = "cross_entropy"
    _check_pred(logits, name)
    shape = np.shape(logits)
    if len(shape) not in (1, 2) or shape[-1] == 0:
        raise ValueError(f"{name}: logits must have shape (N, C) or (C,), got {shape}")
    t = plain_array(target, f"{name}: target")
    logp = F.log_softmax(logits, axis=-1)
    C = shape[-1]
    if t.shape == shape and t.dtype.kind in "fiub":  # one-hot or probabilities
        _probability_rows(t, name)
        t = t.astype(logits.dtype if isinstance(logits, Tensor) else np.float64, copy=False)  # float32 stays float32
        losses = -(logp * t).sum(axis=-1)
    elif t.dtype.kind in "iu" and t.shape == shape[:-1]:
        if t.size and (t.min() < 0 or t.max() >= C):
            outside = ((t < 0) | (t >= C)).ravel()
            r = int(np.argmax(outside))
            message = f"{name}: class index {t.ravel()[r]} is out of range for {C} classes (expected 0..{C - 1})"
            if t.ndim:
                raise _EntryError(f"{message}, at sample {r}", r, t.shape[0])
            raise ValueError(message)
        picked = logp[np.arange(shape[0]), t] if len(shape) == 2 else logp[int(t)]
        losses = -picked
    else:
        raise ValueError(
            f"{name}: target must be integer class indices of shape {shape[:-1]} or one-hot/probability rows "
            f"of shape {shape}; got dtype {t.dtype}, shape {t.shape}"
        )
    return _reduce(losses, reduction, name)


def sequence_loss(loss_fn, outputs, targets, reduction: str = "mean", batch_first: bool = False):
    """L = Σ_t L_t over the first (time) axis, where L_t is ``loss_fn`` on step t's outputs
    and targets, reduced over that step's entries by ``reduction`` ("mean" or "sum").

    Returns ``(L, per_step)``: ``per_step`` holds L_1..L_T as graph nodes (a length-T Tensor,
    or an object array of Values), each of which can be inspected or differentiated on its
    own. The per-entry losses of all steps are computed by one call,
    ``loss_fn(outputs (T*m, ...), targets (T*m, ...), reduction="none")``, so ``loss_fn`` is
    any loss of this module (or one with the same signature). With ``batch_first``, outputs
    and targets are (m, T, ...), as a ``batch_first`` model returns them.
    """
    if not callable(loss_fn):
        raise TypeError(f"sequence_loss: loss_fn must be a loss function such as nn.mse_loss, "
                        f"got {type(loss_fn).__name__}: {loss_fn!r:.60}")
    if reduction not in ("mean", "sum"):
        raise ValueError(f"sequence_loss: reduction must be 'mean' or 'sum', got {reduction!r}")
    batch_first = flag("sequence_loss: batch_first", batch_first)
    _check_pred(outputs, "sequence_loss: the outputs", allow_empty=True)  # (an empty one is named below)
    targets = plain_array(targets, "sequence_loss: the targets")
    # the shapes as given, for the messages (batch_first ones are swapped below)
    given, layout = (np.shape(outputs), targets.shape), "(m, T, ...)" if batch_first else "(T, m, ...)"
    if batch_first:
        if np.ndim(outputs) < 2 or targets.ndim < 2:
            raise ValueError(f"sequence_loss: with batch_first, outputs and targets must be (m, T, ...), "
                             f"got {given[0]} and {given[1]}")
        outputs, targets = swap01(outputs), np.swapaxes(targets, 0, 1)
    shape = np.shape(outputs)
    if len(shape) < 2 or shape[0] == 0:
        raise ValueError(f"sequence_loss: outputs must have shape {layout} with T >= 1, got {given[0]}")
    if targets.shape[:2] != shape[:2]:
        raise ValueError(f"sequence_loss: outputs have shape {given[0]} {layout}, targets {given[1]}; "
                         "the time and batch axes must match")
    if targets.shape not in (shape, shape[:-1]):
        raise ValueError(f"sequence_loss: outputs have shape {given[0]}, targets {given[1]}; expected targets "
                         f"of the outputs' shape (values) or without their last axis (class indices)")
    T, m = shape[:2]
    if loss_fn is cross_entropy and len(shape) != 3:  # the one loss with an axis of its own, the classes
        raise ValueError(f"sequence_loss: cross_entropy needs outputs {'(m, T, C)' if batch_first else '(T, m, C)'}, "
                         f"the classes last, got {given[0]}")
    flat = outputs.reshape(T * m, *shape[2:])
    try:
        losses = loss_fn(flat, targets.reshape(T * m, *targets.shape[2:]), reduction="none")
    except ValueError as e:  # the loss sees every step at once: say what was given, and which step
        where = ""
        if isinstance(e, _EntryError) and e.rows == T * m:  # a row of the T*m passed (a loss_fn
            t, i = divmod(e.row, m)  # of our own may have reshaped them)
            index = f"{i}, {t}" if batch_first else f"{t}, {i}"
            where = f" (row {e.row} is sequence {i} at t={t + 1}: {e.array}[{index}])"
        raise ValueError(f"sequence_loss: outputs of shape {given[0]}, targets {given[1]}, the {T} steps' "
                         f"{T * m} rows passed to {getattr(loss_fn, '__name__', 'loss_fn')} at once: "
                         f"{e}{where}") from None
    if np.ndim(losses) == 0 or np.shape(losses)[0] != T * m:
        raise ValueError(f"sequence_loss: outputs of shape {given[0]}, targets {given[1]}: "
                         f"{getattr(loss_fn, '__name__', 'loss_fn')} gave losses of shape {np.shape(losses)} for the "
                         f"{T * m} rows of the {T} steps, where one per row was expected (cross_entropy needs outputs "
                         f"{'(m, T, C)' if batch_first else '(T, m, C)'}, the classes last)")
    per_step = losses.reshape(T, -1).sum(axis=1)
    if reduction == "mean":
        per_step = per_step / (np.size(losses) // T)
    return per_step.sum(), per_step
