"""Truncated backpropagation through time."""

from __future__ import annotations

import math

import numpy as np

from autograd import Tensor, Value
from autograd.graph import flag
from autograd.tensor import refuse_masked

from . import backends
from .losses import sequence_loss
from .module import Module
from .optim import _number, clip_grad_norm_, clip_grad_value_
from .recurrent import RecurrentCell

__all__ = ["train_truncated"]


def train_truncated(model, x, target, loss_fn, optimizer, k: int, h0=None, clip_norm: float | None = None,
                    clip_value: float | None = None, on_chunk=None, batch_first: bool | None = None,
                    return_state: bool = False):
    """Train on one long sequence with truncated BPTT: chunks of ``k`` steps.

    For each chunk of ``k`` consecutive time steps (the last may be shorter):

        y, h = model(x_chunk, h)            # h carried over from the previous chunk
        loss = loss_fn(y, target_chunk)     # e.g. the sum over the chunk's steps
        zero_grad; loss.backward(); clip (optional: by norm, then by value); optimizer.step()
        h = detach(h)                       # gradients never flow into earlier chunks

    So each gradient sums the contributions of the chunk's own steps only, reaching back
    at most ``k`` steps; with ``k >= T`` it is exactly full BPTT. ``model`` is any module
    called as ``model(x, h0) -> (y, h_n)`` (``nn.RNN``, ``nn.RNNModel`` in "many_to_many"
    mode, or a module holding one); ``x`` and ``target`` are split along the time axis (axis
    1 if the model is ``batch_first``, else axis 0), and ``loss_fn`` receives them in the
    model's layout (pass ``batch_first=True`` to :func:`nn.sequence_loss` for a batch-first
    model). The model's ``mode`` and ``batch_first`` are its own attributes or, for a module
    wrapping recurrent layers, the ones those layers agree on; ``batch_first=`` says it for a
    model whose layers disagree or that has none.
    ``on_chunk(i, loss, model)``, with i counting chunks from 0, if given, is called after
    each backward, before clipping and the step.

    Returns the chunk losses; with ``return_state=True``, ``(losses, h)``, where ``h`` is the
    last chunk's final state, detached: pass it as ``h0`` to go on along the same sequence
    (the next part of a long text, say) in a later call. A non-finite loss, or a finite loss
    with a non-finite gradient, stops training before that chunk updates any parameter
    (earlier chunks' updates stay), with an error naming the chunk, its steps (and the
    parameters) and the last finite loss.
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"train_truncated: k must be an int >= 1, got {k!r}")
    # everything checked before the first chunk changes a gradient
    return_state = flag("train_truncated: return_state", return_state)
    if isinstance(model, RecurrentCell) or not (callable(model) and hasattr(model, "named_parameters")):
        raise TypeError("train_truncated: model must be a sequence module called as model(x, h0) -> (y, h_n) "
                        "(nn.RNN, or nn.RNNModel with mode='many_to_many'), got "
                        + (model._where() + ", which takes one step" if isinstance(model, RecurrentCell)
                           else backends.type_name(model)))
    if not callable(loss_fn):
        raise TypeError(f"train_truncated: loss_fn must be a function (y, target) -> loss, "
                        f"got {type(loss_fn).__name__}")
    if loss_fn is sequence_loss:  # it takes the step loss first, and returns (L, per_step)
        raise TypeError("train_truncated: loss_fn is called as loss_fn(y, target) and must return the loss; "
                        "sequence_loss takes the step loss first and returns (L, per_step): pass "
                        "lambda y, t: nn.sequence_loss(nn.mse_loss, y, t)[0]")
    if on_chunk is not None and not callable(on_chunk):
        raise TypeError(f"train_truncated: on_chunk must be a function (i, loss, model) or None, "
                        f"got {type(on_chunk).__name__}")
    if not all(hasattr(optimizer, name) for name in ("params", "step", "zero_grad")):
        raise TypeError(f"train_truncated: optimizer must be an optimizer (nn.optim.SGD, nn.optim.Adam), "
                        f"got {type(optimizer).__name__}")
    ours = {id(p) for p in model.parameters()}
    if not any(id(p) in ours for p in optimizer.params):
        raise ValueError("train_truncated: the optimizer holds none of the model's parameters "
                         "(it was made for another model?): training would change nothing")
    for name, limit in (("clip_norm", clip_norm), ("clip_value", clip_value)):
        if limit is not None and not _number("train_truncated", name, limit, finite=False) > 0:
            raise ValueError(f"train_truncated: {name} must be a positive number or None, got {limit!r}")
    mode = _setting(model, "mode", "many_to_many")
    if mode != "many_to_many":
        raise ValueError(f"train_truncated: the model must give an output at every input step (nn.RNN, or "
                         f"nn.RNNModel with mode='many_to_many') to be split into chunks of steps; got mode={mode!r}")
    if batch_first is None:
        batch_first = _setting(model, "batch_first", False, "pass batch_first=True or False")
    axis = 1 if flag("train_truncated: batch_first", batch_first) else 0
    if isinstance(x, (list, tuple)):
        x = backends.plain_array(x, "train_truncated: x")
    refuse_masked(x, "train_truncated: x")
    if np.ndim(x) <= axis:
        layout = "(m, T, ...) for a batch-first model" if axis else "(T, m, ...) for a model"
        raise ValueError(f"train_truncated: x must have a time axis, axis {axis} ({layout}), got shape {np.shape(x)}")
    T = np.shape(x)[axis]
    if T == 0:
        raise ValueError(f"train_truncated: the sequence is empty (shape {np.shape(x)})")
    target = backends.plain_array(target, "train_truncated: the target")
    if target.ndim <= axis or target.shape[axis] != T:
        raise ValueError(f"train_truncated: x has {T} time steps along axis {axis} (shape {np.shape(x)}), "
                         f"target has shape {target.shape}")
    names = {id(p): name for name, p in model.named_parameters()}
    losses, h = [], h0
    for i, start in enumerate(range(0, T, k)):
        steps = slice(start, min(start + k, T))
        index = (slice(None),) * axis + (steps,)
        chunk = f"chunk {i + 1} of {-(-T // k)} (time steps {steps.start + 1}..{steps.stop})"
        try:
            y, h = model(x[index], h)
        except (ValueError, TypeError) as e:
            if type(e) not in (ValueError, TypeError):
                raise  # a subclass may not take a message alone
            state = ("h0 as given" if h0 is not None else "no initial state") if i == 0 else (
                "the state carried from the chunk before")
            raise type(e)(f"train_truncated: {chunk}, the model refused its input: x's steps (shape "
                          f"{np.shape(x[index])} of x's {np.shape(x)}) and {state}: {e}") from None
        loss = loss_fn(y, target[index])
        if not isinstance(loss, (Tensor, Value)) or np.size(loss.data) != 1:
            raise TypeError(f"train_truncated: loss_fn must return the loss to differentiate, a Tensor of "
                            f"one element or a Value; for {chunk} it returned {_describe(loss)}")
        value = float(np.asarray(loss.data).reshape(()))
        last = f"{losses[-1]:.6g}" if losses else "none (it was the first chunk)"
        if not math.isfinite(value):
            raise FloatingPointError(
                f"train_truncated: the loss of {chunk} is {value}; stopped before updating the "
                f"parameters. Last finite loss: {last}"
            )
        optimizer.zero_grad()
        loss.backward()
        if on_chunk is not None:
            on_chunk(i, value, model)
        bad = [names.get(id(p), f"parameter {j}") for j, p in enumerate(optimizer.params)
               if not np.isfinite(backends.grad(p)).all()]
        if bad:
            raise FloatingPointError(
                f"train_truncated: the loss of {chunk} is finite ({value:.6g}) but the gradient of "
                f"{', '.join(bad)} is not; stopped before updating the parameters. "
                f"Last finite loss: {last}"
            )
        h = backends.detach(h)  # before the step: a state it cannot detach stops with nothing changed
        if clip_norm is not None:
            clip_grad_norm_(optimizer.params, clip_norm)
        if clip_value is not None:
            clip_grad_value_(optimizer.params, clip_value)
        optimizer.step()
        losses.append(value)
    return (losses, h) if return_state else losses


def _setting(model, name: str, default, remedy: str = ""):
    """The model's ``name`` (``mode``, ``batch_first``): its own attribute; else, for a module
    wrapping recurrent layers, the value they all have (the outermost ones that have it: an
    RNNModel's own RNN is time-first whatever the model's layout); else ``default``."""
    found, pending, seen = set(), [model], set()
    while pending:
        m = pending.pop()
        if id(m) in seen:  # (a module reachable twice, or pointing back at its owner)
            continue
        seen.add(id(m))
        if hasattr(m, name):
            found.add(getattr(m, name))
        elif isinstance(m, Module):
            pending.extend(child for _, child in m._children() if isinstance(child, Module))
    if len(found) > 1:
        raise ValueError(f"train_truncated: the model has no {name} of its own, and its layers disagree "
                         f"({', '.join(map(repr, sorted(found, key=repr)))}){'; ' + remedy if remedy else ''}")
    return found.pop() if found else default


def _describe(x) -> str:
    if isinstance(x, tuple):  # nn.sequence_loss gives (L, per_step)
        return "a tuple (nn.sequence_loss returns (L, per_step): return its [0])"
    return backends.given(x)
